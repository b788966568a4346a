"""Bring your own data, as the README walks it: a folder of class subfolders → check → the
S3F_Custom notebook through papermill → a results table → s3f-predict with Grad-CAM → SavedModel
and TFLite exports with their numerical check (issue: bring your own data)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def _images(root: Path, classes, per_class, seed=0):
    rng = np.random.default_rng(seed)
    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 60, (48, 40, 3)).astype(np.uint8)
            image[10 * index : 10 * index + 12, :, index] = 250  # a class-specific coloured band
            cv2.imwrite(str(root / name / f"{name}_{i:02d}.jpg"), image)


def test_from_a_folder_of_class_subfolders_to_predictions_and_exports(kernel_env, tmp_path):
    data = tmp_path / "my_images"
    classes = ["blue_band", "green_band", "red_band"]
    _images(data, classes, 10)
    python = sys.executable
    check = subprocess.run(
        [python, "-m", "data_setup", "check", "Custom", str(data), "--channels", "3"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert check.returncode == 0, check.stderr
    assert "classes (label order): blue_band, green_band, red_band" in check.stdout

    runs = tmp_path / "runs"
    subprocess.run(
        [
            python,
            "-m",
            "papermill",
            "notebooks/S3F_Custom.ipynb",
            str(tmp_path / "out.ipynb"),
            "-p",
            "data_dir",
            str(data),
            "-p",
            "channels",
            "3",
            "-p",
            "img_size",
            "[16, 16]",
            "-p",
            "epochs",
            "3",
            "-p",
            "output_dir",
            str(runs),
            "-p",
            "bn_momentum",
            "0.9",
        ],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    run_dir = runs / "S3F_Custom" / "seed42"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["class_names"] == classes and metrics["dataset"] == "Custom"
    assert metrics["image_size"] == [16, 16]
    assert sum(sum(row) for row in metrics["confusion_matrix"]) == 6  # 20 % of 30

    results = tmp_path / "results"
    subprocess.run(
        [python, "-m", "s3f_kit.reports.results", str(runs), str(results)],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    summary = pd.read_csv(results / "summary.csv")
    assert "S3F_Custom" in set(summary["experiment"])
    assert "S3F_Custom" in (results / "README.md").read_text()

    files = sorted(data.rglob("*.jpg"))[:3] + [tmp_path / "notes.txt"]
    (tmp_path / "notes.txt").write_text("not an image")
    out = tmp_path / "predictions.csv"
    predicted = subprocess.run(
        [
            python,
            "-m",
            "s3f_kit.apply.predict",
            str(run_dir),
            *map(str, files),
            "--out",
            str(out),
            "--gradcam",
            str(tmp_path / "cams"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert predicted.returncode == 1  # one file could not be predicted; the others were
    table = pd.read_csv(out)
    assert table["predicted_label"].dropna().isin(classes).sum() == 3
    assert table["error"].notna().sum() == 1
    assert len(list((tmp_path / "cams").rglob("*.png"))) == 3

    exported = subprocess.run(
        [python, "-m", "s3f_kit.apply.export", str(run_dir), str(tmp_path / "export")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert exported.returncode == 0, exported.stdout + exported.stderr
    report = json.loads((tmp_path / "export" / "export.json").read_text())
    assert (tmp_path / "export" / "model.tflite").is_file()
    assert (tmp_path / "export" / "saved_model").is_dir()
    assert "max" in exported.stdout and report


def test_ninety_images_with_the_default_settings_learn_and_say_which_momentum(kernel_env, tmp_path):
    """Issue 19.2: 3 classes × 30 demo-like images at 32×32 for 20 epochs (100 optimizer steps)
    collapsed to one class with BatchNorm momentum 0.99; the run now chooses 0.9 and says so."""
    from data_setup.synth import synth_image

    data = tmp_path / "my_images"
    rng = np.random.default_rng(0)
    for label, name in enumerate(("alpha", "beta", "gamma")):
        (data / name).mkdir(parents=True)
        for i in range(30):
            image, _ = synth_image(rng, label, 48, 48, 1, 3)
            cv2.imwrite(str(data / name / f"{name}_{i:02d}.png"), image)
    runs, executed = tmp_path / "runs", tmp_path / "out.ipynb"
    subprocess.run(
        [
            sys.executable, "-m", "papermill", "notebooks/S3F_Custom.ipynb", str(executed),
            "-p", "data_dir", str(data), "-p", "img_size", "[32, 32]", "-p", "epochs", "20",
            "-p", "output_dir", str(runs),
        ],
        check=True,
        capture_output=True,
        cwd=REPO,
    )  # fmt: skip
    metrics = json.loads((runs / "S3F_Custom" / "seed42" / "metrics.json").read_text())
    assert metrics["cohen_kappa"] >= 0.5 and not metrics["collapsed"]
    assert metrics["bn_momentum"] == 0.9 and metrics["bn_momentum_reason"] == "chosen for 100 steps"
    assert "bn_momentum = 0.9 (paper: 0.99): 100 optimizer steps" in executed.read_text()
