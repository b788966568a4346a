"""The shortcut audit (issue 35, item 1): storage that tracks the class is flagged, the same
images stored alike are not, and the command reads like the kit's other commands."""

import json
import warnings

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from data_setup.__main__ import main as cli
from data_setup.shortcuts import FLAG_KAPPA, jpeg_quality, metadata_of, tensor_features

TRAIN, TEST = 16, 8  # images per class


def _images(count, seed):
    """Distinct smooth gray images (blurred noise): content that no class owns."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        field = gaussian_filter(rng.normal(size=(80, 96)), 4)
        field = (field - field.min()) / (np.ptp(field) + 1e-9)
        out.append((field * 255).astype(np.uint8))
    return out


def _save(pixels, path, storage):
    if storage == "png_gray":
        Image.fromarray(pixels).save(path.with_suffix(".png"))
    else:  # the same pixels as an RGB JPEG of quality 75
        Image.fromarray(pixels).convert("RGB").save(path.with_suffix(".jpeg"), quality=75)


def _chest(root, storage_by_class):
    """A ChestXRay layout whose two classes hold the *same* images, stored per class."""
    for split, count, seed in (("train", TRAIN, 1), ("test", TEST, 2)):
        images = _images(count, seed)
        for name, storage in storage_by_class.items():
            folder = root / "chest_xray" / split / name
            folder.mkdir(parents=True)
            for i, pixels in enumerate(images):
                _save(pixels, folder / f"person{i}_{name}_{split}", storage)
    return root


def test_classes_differing_only_in_storage_are_flagged(tmp_path, capsys):
    root = _chest(tmp_path / "d", {"NORMAL": "png_gray", "PNEUMONIA": "jpeg_rgb"})
    out = tmp_path / "audit.json"
    assert cli(["shortcuts", "ChestXRay", str(root), "--json", str(out),
                "--out", str(tmp_path / "files.csv")]) == 0  # fmt: skip
    found = json.loads(out.read_text())
    assert found["flagged"] is True and found["kappa"] >= FLAG_KAPPA
    assert found["kappa"] == found["metadata"]["kappa"]
    assert found["evaluation"].startswith("official")
    assert found["metadata"]["scored_images"] == 2 * TEST
    lo, hi = found["metadata"]["kappa_ci"]
    assert lo <= found["kappa"] <= hi
    normal, pneumonia = found["per_class"]["NORMAL"], found["per_class"]["PNEUMONIA"]
    assert normal["stored"] == {"gray": 1.0} and pneumonia["stored"] == {"rgb_equal": 1.0}
    assert normal["format"] == {"PNG": 1.0} and pneumonia["median_jpeg_quality"] == 75
    storage = ("format=", "stored=", "subsampling=", "jpeg_quality", "bits")
    assert found["metadata"]["top_features"]
    assert all(name.startswith(storage) for name in found["metadata"]["top_features"])
    printed = capsys.readouterr().out
    table = printed.splitlines()
    assert any(line.startswith("NORMAL") and "PNG 100%" in line for line in table)
    assert any(line.startswith("PNEUMONIA") and "JPEG 100%" in line for line in table)
    assert table[-1].startswith("FLAGGED") and "κ" in table[-1]
    assert len((tmp_path / "files.csv").read_text().splitlines()) == 2 * (TRAIN + TEST) + 1


def test_the_same_images_stored_alike_are_not_flagged(tmp_path, capsys):
    root = _chest(tmp_path / "d", {"NORMAL": "jpeg_rgb", "PNEUMONIA": "jpeg_rgb"})
    out = tmp_path / "audit.json"
    assert cli(["shortcuts", "ChestXRay", str(root), "--json", str(out)]) == 0
    found = json.loads(out.read_text())
    assert found["flagged"] is False and found["kappa"] < FLAG_KAPPA
    assert found["tensor"]["flagged"] is False  # identical tensors: nothing to learn either
    assert capsys.readouterr().out.splitlines()[-1].startswith("not flagged")


def test_classes_that_differ_in_content_but_are_stored_alike_are_not_flagged(tmp_path):
    """A textured class compresses to more bytes per pixel, and a bright one has bright edges:
    that is the disease, not the storage, and must not flag the dataset."""
    root = tmp_path / "d"
    for split, count, seed in (("train", TRAIN, 1), ("test", TEST, 2)):
        for name, texture in (("NORMAL", 0.0), ("PNEUMONIA", 60.0)):
            folder = root / "chest_xray" / split / name
            folder.mkdir(parents=True)
            rng = np.random.default_rng([seed, int(texture)])
            for i, pixels in enumerate(_images(count, seed)):
                grain = rng.normal(0, texture + 1e-9, pixels.shape) + texture
                textured = np.clip(pixels * 0.6 + grain, 0, 255).astype(np.uint8)
                Image.fromarray(textured).save(folder / f"person{i}_{name}.png")
    out = tmp_path / "audit.json"
    assert cli(["shortcuts", "ChestXRay", str(root), "--header-only", "--json", str(out)]) == 0
    found = json.loads(out.read_text())
    profiles = found["per_class"]
    assert (
        profiles["PNEUMONIA"]["median_bytes_per_pixel"]
        > profiles["NORMAL"]["median_bytes_per_pixel"]
    )  # shown per class ...
    assert found["flagged"] is False  # ... but not what flags a dataset


def test_a_dataset_without_a_split_is_scored_by_grouped_folds_and_check_says_it(tmp_path, capsys):
    root = tmp_path / "busi" / "Dataset_BUSI_with_GT"
    for seed, (name, storage) in enumerate((("benign", "png_gray"), ("malignant", "png_gray"),
                                            ("normal", "jpeg_rgb"))):  # fmt: skip
        (root / name).mkdir(parents=True)
        for i, pixels in enumerate(_images(12, seed)):  # distinct images: each its own group
            _save(pixels, root / name / f"{name} ({i})", storage)
    assert cli(["shortcuts", "BUSI", str(tmp_path / "busi"), "--header-only",
                "--json", str(tmp_path / "a.json")]) == 0  # fmt: skip
    found = json.loads((tmp_path / "a.json").read_text())
    assert found["evaluation"].startswith("grouped") and "tensor" not in found
    assert found["metadata"]["scored_images"] == 36 and found["flagged"] is True
    capsys.readouterr()
    assert cli(["check", "BUSI", str(tmp_path / "busi")]) == 0
    assert "shortcuts: FLAGGED" in capsys.readouterr().out


def test_bad_input_is_one_sentence_and_an_unreadable_file_is_listed(tmp_path, capsys):
    assert cli(["shortcuts", "ChestXRay", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    root = _chest(tmp_path / "d", {"NORMAL": "png_gray", "PNEUMONIA": "png_gray"})
    broken = root / "chest_xray" / "train" / "NORMAL" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert cli(["shortcuts", "ChestXRay", str(root), "--header-only"]) == 0
    printed = capsys.readouterr().out
    assert "left out" in printed and "broken.png" in printed
    assert f"{2 * (TRAIN + TEST)} images" in printed


@pytest.mark.parametrize("quality", [30, 75, 95])
def test_jpeg_quality_is_read_from_the_quantization_tables(tmp_path, quality):
    path = tmp_path / "x.jpg"
    Image.fromarray(_images(1, 0)[0]).save(path, quality=quality)
    assert jpeg_quality(Image.open(path).quantization) == quality
    assert metadata_of(path)["jpeg_quality"] == quality


def test_a_black_border_shows_in_the_metadata_and_the_tensor(tmp_path):
    pixels = _images(1, 5)[0].copy()
    plain = tmp_path / "plain.png"
    Image.fromarray(pixels).save(plain)
    pixels[:, :12] = 0
    barred = tmp_path / "barred.png"
    Image.fromarray(pixels).save(barred)
    assert metadata_of(plain)["border"] == 0 < metadata_of(barred)["border"]
    image = np.asarray(Image.open(barred))[..., None]
    plain_image = np.asarray(Image.open(plain))[..., None]
    dark = tensor_features(image)["border_mean"]
    assert dark < tensor_features(plain_image)["border_mean"]


def test_the_vectorized_bootstrap_metrics_are_scikit_learns():
    from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score

    from data_setup.shortcuts import resampled_metrics

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 60)
    predicted = np.where(rng.random(60) < 0.5, truth, rng.integers(0, 5, 60))  # a 5th class
    draws = rng.integers(0, 60, (25, 60))
    draws[0] = np.flatnonzero(truth == truth[0])[0]  # one class only: no κ
    got = resampled_metrics(truth, predicted, draws)
    for row, (bacc, kappa) in zip(draws, got, strict=True):
        t, p = truth[row], predicted[row]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert bacc == pytest.approx(balanced_accuracy_score(t, p))
            expected = cohen_kappa_score(t, p)
        assert (np.isnan(kappa) and np.isnan(expected)) or kappa == pytest.approx(expected)
