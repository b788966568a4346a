"""Getting, checking, caching and synthesizing the paper's four datasets (and a fifth: one
record, `register_dataset`; docs/extending.md).

    from data_setup import load_dataset
    data = load_dataset("BUSI", "~/data/BUSI", protocol="holdout")
    train = data.tf_dataset("train", batch_size=16, shuffle=True)

Importing this package is light (no TensorFlow, OpenCV or scikit-learn until a name needs
them); `tf_dataset` imports TensorFlow on first use.
"""

import importlib

# Where each public name lives. Imported on first use (PEP 562), so `from data_setup.datasets
# import DATASETS` (console commands answering --help) does not pay for OpenCV and scikit-learn.
_PUBLIC = {
    "DATASETS": "datasets",
    "DatasetInfo": "datasets",
    "dataset_info": "datasets",
    "register_dataset": "datasets",
    "SynthRecipe": "datasets",
    "DatasetError": "layouts",
    "discover": "layouts",
    "find_root": "layouts",
    "Dataset": "loading",
    "load_dataset": "loading",
    "synth_all": "synth",
    "synth_dataset": "synth",
}


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'data_setup' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"data_setup.{_PUBLIC[name]}"), name)
    globals()[name] = value  # once: later look-ups are plain attributes
    return value


def __dir__():
    return sorted([*globals(), *_PUBLIC])


__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetError",
    "DatasetInfo",
    "SynthRecipe",
    "dataset_info",
    "discover",
    "find_root",
    "load_dataset",
    "register_dataset",
    "synth_all",
    "synth_dataset",
]
