"""The built-in demo: synthetic data that both branches can learn from, demo settings that apply
only on demo data, and notebooks that train a model clearly better than chance (docs/demo.md)."""

import json
from pathlib import Path

import numpy as np
import pytest

from data_setup.datasets import DATASETS
from data_setup.synth import grating_cycles, synth_dataset
from s3f_kit import experiments as s3f_experiments

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return {name: synth_dataset(name, root / name, count=4, size=96, seed=3) for name in DATASETS}


def _class_power_spectra(dataset, root):
    """Mean 2-D power spectrum per class at the demo image size (shape painted over), and each
    bin's radius in cycles across the longer side (the unit of grating_cycles)."""
    from data_setup.layouts import discover
    from data_setup.loading import decode_image

    info = DATASETS[dataset]
    height, width = s3f_experiments.DEMO_IMAGE_SIZES[dataset]
    power = np.zeros((len(info.class_names), height, width))
    for items in discover(dataset, root).splits.values():
        for path, label in items:
            image = decode_image(path, (height, width), info.channels).astype(float)
            gray = image.reshape(height, width, -1).mean(axis=-1)
            # the bright shape is the other cue (tested below); its edges would swamp the low
            # frequencies, so paint it over with the background's median
            gray[gray > 0.8 * gray.max()] = np.median(gray)
            power[label] += np.abs(np.fft.fft2(gray - gray.mean())) ** 2
    longer = max(height, width)
    radius = np.hypot(
        np.fft.fftfreq(height)[:, None] * longer, np.fft.fftfreq(width)[None, :] * longer
    )
    return power, radius


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_each_class_has_its_own_frequency_signature_at_the_demo_size(dataset, synthetic):
    power, radius = _class_power_spectra(dataset, synthetic[dataset])
    classes = len(power)
    height, width = s3f_experiments.DEMO_IMAGE_SIZES[dataset]
    for k in range(classes):
        cycles = grating_cycles(k, classes)
        assert cycles < 0.4 * max(height, width), "above Nyquist at the demo size: aliased"
        ring = np.abs(radius - cycles) <= 0.5
        own = power[k][ring].mean()
        strongest_other = max(power[j][ring].mean() for j in range(classes) if j != k)
        assert own > 2 * strongest_other, f"class {k}: its grating ring is not its own"


def test_each_class_has_its_own_shape(synthetic):
    """The spatial cue: how much of its bounding box the bright shape fills differs by class."""
    from data_setup.layouts import discover
    from data_setup.loading import decode_image

    fill = {}
    for path, label in discover("BRISC2025", synthetic["BRISC2025"]).splits["train"]:
        bright = decode_image(path, (64, 64), 1).reshape(64, 64) > 0.8 * 255
        rows, cols = np.flatnonzero(bright.any(axis=1)), np.flatnonzero(bright.any(axis=0))
        box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
        fill.setdefault(label, []).append(bright.sum() / box)
    disk, square, triangle = (np.mean(fill[k]) for k in range(3))  # BRISC's first three classes
    assert square > 0.9 > disk > 0.7 > triangle > 0.4


def test_demo_settings_fill_only_what_a_demo_run_leaves_none(capsys, keras):
    from s3f_kit.run.training import Run

    demo = Run(experiment="S3F_Concat_BUSI", data_dir="", epochs=50)
    note = capsys.readouterr().out
    assert demo.bn_momentum == s3f_experiments.DEMO_BN_MOMENTUM
    assert demo.img_size == s3f_experiments.DEMO_IMAGE_SIZES["BUSI"]
    assert demo.demo_count == s3f_experiments.DEMO_COUNTS["BUSI"]
    assert "bn_momentum = 0.9 (paper: 0.99)" in note and "img_size" in note

    chosen = Run(experiment="S3F_Concat_BUSI", data_dir="", bn_momentum=0.99, img_size=[16, 16])
    note = capsys.readouterr().out
    assert (chosen.bn_momentum, chosen.img_size) == (0.99, [16, 16])
    assert "bn_momentum" not in note and "img_size" not in note and "demo_count" in note

    real = Run(experiment="S3F_Concat_BUSI", data_dir="/data/BUSI")
    assert capsys.readouterr().out == ""
    assert real.bn_momentum is None and real.demo_count is None
    assert real.img_size == [256, 256]


# Two demo notebooks at fewer epochs than the mission's 50: the one whose model used to collapse
# (BUSI, 3 classes) and the binary task (Chest X-Ray, F1 of the positive class for selection).
DEMO_CASES = [("S3F_Concat_BUSI", 30), ("SpectraNet_ChestXRay", 25)]


@pytest.mark.e2e
@pytest.mark.parametrize("name, epochs", DEMO_CASES)
def test_demo_notebook_trains_a_model_clearly_better_than_chance(
    name, epochs, tmp_path, kernel_env
):
    import papermill

    papermill.execute_notebook(
        str(REPO / "notebooks" / f"{name}.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters={"epochs": epochs, "output_dir": str(tmp_path / "runs"), "verbose": 0},
        kernel_name="python3",
        progress_bar=False,
    )
    metrics = json.loads((tmp_path / "runs" / name / "seed42" / "metrics.json").read_text())
    assert metrics["demo_data"] is True
    assert metrics["run_settings"]["bn_momentum"] == s3f_experiments.DEMO_BN_MOMENTUM
    assert metrics["cohen_kappa"] >= 0.5, metrics["confusion_matrix"]
