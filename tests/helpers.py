"""Small builders shared by the prediction and export tests."""

import json

from data_setup.datasets import DATASETS
from tests import paper_format


def run_folder(root, model, dataset, size_hw, channels, paper_format_file=False):
    """A run folder as training writes it: model.keras + preprocessing.json (the model saved by
    the kit, or in the paper's own format with `paper_format_file`)."""
    root.mkdir(parents=True)
    if paper_format_file:  # the paper's classes (SpectralFilterLayer, module __main__)
        paper_format.save_in_paper_format(model, root / "model.keras")
    else:
        model.save(root / "model.keras")
    record = {
        "dataset": dataset,
        "class_names": list(DATASETS[dataset].class_names),
        "image_size": list(size_hw),
        "channels": channels,
        "interpolation": "area",
        "scale": 1 / 255,
        "color": "gray" if channels == 1 else "rgb",
    }
    (root / "preprocessing.json").write_text(json.dumps(record))
    return root
