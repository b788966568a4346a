"""What the paper used and what a careful user expects of bad input (issues: faithful
corrections, robustness): every decodable image, Chest X-Ray's val/, split files, named
problems instead of tracebacks or silent wrong answers, and your own data ("Custom")."""

import os
import shutil

import cv2
import numpy as np
import pytest

import data_setup.loading as loading
from data_setup import DatasetError, load_dataset
from data_setup.__main__ import main as cli
from data_setup.synth import synth_dataset

SIZE = (24, 32)


def _load(dataset, root, tmp_path, **kw):
    return load_dataset(dataset, root, img_size=SIZE, cache_dir=tmp_path / "cache", **kw)


def test_chest_xray_trains_on_train_and_val_under_both_protocols(copy_of, tmp_path):
    root = copy_of("ChestXRay")
    val_files = sorted((root / "chest_xray" / "val").rglob("*.jpeg"))
    assert len(val_files) == 4
    paper = _load("ChestXRay", root, tmp_path)
    train_files = set(paper.splits["train"].files)
    assert {str(f.relative_to(paper.root)) for f in val_files} <= train_files
    holdout = _load("ChestXRay", root, tmp_path, protocol="holdout")
    pooled = set(holdout.splits["train"].files) | set(holdout.splits["val"].files)
    assert pooled == train_files  # val/ pooled with train/ before the validation split


def test_bytes_after_the_end_marker_are_not_damage(copy_of, tmp_path):
    root = copy_of("BRISC2025")
    path = sorted((root / "classification_task/train/glioma").iterdir())[0]
    reference = loading.decode_image(path, SIZE, 1)
    path.write_bytes(path.read_bytes() + os.urandom(1024))  # a "motion photo" tail
    data = _load("BRISC2025", root, tmp_path)
    assert not data.skipped and not data.damaged
    row = data.splits["train"].files.index(str(path.relative_to(data.root)))
    np.testing.assert_array_equal(data.splits["train"].source.images[row], reference)


def test_unreadable_files_and_non_utf8_names_are_named_problems(copy_of, tmp_path, monkeypatch):
    root = copy_of("BUSI")
    folder = root / "Dataset_BUSI_with_GT" / "benign"
    locked = sorted(folder.iterdir())[0]
    real_fromfile = np.fromfile

    def fromfile(path, *args, **kwargs):  # root ignores chmod: simulate the permission error
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_fromfile(path, *args, **kwargs)

    monkeypatch.setattr(np, "fromfile", fromfile)  # read_bytes reads with it
    odd = os.fsencode(folder) + b"/caf\xe9.png"  # a Latin-1 name: not valid UTF-8
    shutil.copy(sorted(folder.iterdir())[1], odd)
    with pytest.warns(UserWarning) as record:
        data = _load("BUSI", root, tmp_path)
    text = "\n".join(str(w.message) for w in record)
    assert "unreadable (Permission denied)" in text and locked.name in text
    assert "not valid UTF-8" in text
    assert len(data.skipped) == 1
    assert cli(["check", "BUSI", str(root)]) == 0  # named, not a traceback


def test_latin1_byte_in_the_ham_csv_is_a_clear_error(copy_of, tmp_path, capsys):
    root = copy_of("HAM10000")
    csv_path = root / "GroundTruth.csv"
    csv_path.write_bytes(csv_path.read_bytes() + b"ISIC_caf\xe9,1,0,0,0,0,0,0\n")
    with pytest.raises(DatasetError, match=r"GroundTruth.csv: line \d+ is not valid UTF-8"):
        _load("HAM10000", root, tmp_path)
    assert cli(["check", "HAM10000", str(root)]) == 1
    assert "not valid UTF-8" in capsys.readouterr().err


def test_a_class_without_training_images_is_an_error(copy_of, tmp_path, capsys):
    root = copy_of("BRISC2025")
    for path in (root / "classification_task/train/meningioma").iterdir():
        path.unlink()
    with pytest.raises(DatasetError, match="no training images of class"):
        _load("BRISC2025", root, tmp_path)  # empty folder: the split has images, the class none
    root = copy_of("HAM10000")
    csv_path = root / "GroundTruth.csv"
    lines = csv_path.read_text().splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if line.split(",")[6] != "1.0"]  # no DF
    csv_path.write_text("\n".join(kept) + "\n")
    with pytest.raises(DatasetError, match="no training images of class.*DF"):
        _load("HAM10000", root, tmp_path)
    assert cli(["check", "HAM10000", str(root)]) == 1
    assert "no training images of class(es) DF" in capsys.readouterr().err


def test_nested_unknown_and_duplicate_inputs_are_listed(copy_of, tmp_path):
    root = copy_of("BRISC2025")
    train = root / "classification_task/train"
    nested = train / "glioma" / "extra"
    nested.mkdir()
    shutil.copy(sorted((train / "glioma").glob("*.jpg"))[0], nested / "copy.jpg")
    (train / "astrocytoma").mkdir()
    shutil.copy(sorted((train / "glioma").glob("*.jpg"))[0], train / "astrocytoma" / "a.jpg")
    with pytest.warns(UserWarning) as record:
        data = _load("BRISC2025", root, tmp_path)
    text = "\n".join(str(w.message) for w in record)
    assert "sub-folder inside a class folder" in text and "not a class of BRISC2025" in text
    assert data.counts()["train"]["glioma"] == 6  # the nested copy is not counted

    root = copy_of("HAM10000")
    csv_path = root / "GroundTruth.csv"
    lines = csv_path.read_text().splitlines()
    bad_id = lines[2].split(",")[0]
    lines[2] = f"{bad_id},1.0,1.0,0.0,0.0,0.0,0.0,0.0"  # two classes at once
    lines.append(lines[1])  # the same row twice
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning) as record:
        data = _load("HAM10000", root, tmp_path)
    text = "\n".join(str(w.message) for w in record)
    assert "listed again, counted once" in text
    assert "not a one-hot label" in text
    assert f"{bad_id}.jpg: image with no row" not in text
    assert len(data.splits["train"]) == 41


def test_missing_test_folder_and_jpg_ids_are_named(copy_of, tmp_path):
    root = copy_of("BRISC2025")
    shutil.rmtree(root / "classification_task/test")
    with pytest.raises(DatasetError, match=r"classification_task/test: missing split folder"):
        _load("BRISC2025", root, tmp_path)
    root = copy_of("HAM10000")
    csv_path = root / "Test_GroundTruth.csv"
    lines = csv_path.read_text().splitlines()
    fixed = [lines[0]] + [
        f"{line.split(',', 1)[0]}.jpg,{line.split(',', 1)[1]}" for line in lines[1:]
    ]
    csv_path.write_text("\n".join(fixed) + "\n")
    with pytest.raises(DatasetError, match=r"no usable images .*e\.g\..*\.jpg\.jpg"):
        _load("HAM10000", root, tmp_path)


def test_a_split_file_pins_the_split_exactly(copy_of, tmp_path):
    root = copy_of("BUSI")
    first = _load("BUSI", root, tmp_path, protocol="holdout", seed=3)
    first.write_split_csv(tmp_path / "split.csv")
    again = _load(
        "BUSI", root, tmp_path, protocol="holdout", seed=99, split_file=tmp_path / "split.csv"
    )
    for name in ("train", "val", "test"):
        assert again.splits[name].files == first.splits[name].files
    paper = _load("BUSI", root, tmp_path, split_file=tmp_path / "split.csv")  # val rows train
    assert set(paper.splits["train"].files) == set(first.splits["train"].files) | set(
        first.splits["val"].files
    )
    lines = (tmp_path / "split.csv").read_text().splitlines()
    (tmp_path / "short.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DatasetError, match="short.csv: 1 image.*not in the split file"):
        _load("BUSI", root, tmp_path, split_file=tmp_path / "short.csv")
    (tmp_path / "extra.csv").write_text("\n".join([*lines, "nowhere.png,train"]) + "\n")
    with pytest.raises(DatasetError, match="extra.csv: 1 listed file.*nowhere.png"):
        _load("BUSI", root, tmp_path, split_file=tmp_path / "extra.csv")


def _write_images(folder, classes, per_class, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    for index, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 60, (40, 48)).astype(np.uint8)
            image[8 * index : 8 * index + 10, :] = 250  # a class-specific band
            if channels == 3:
                image = np.dstack([image, image // 2, 255 - image])
            cv2.imwrite(str(folder / name / f"{name}_{i}.png"), image)


@pytest.mark.parametrize("layout", ["class_folders", "split_folders", "label_csv"])
def test_custom_data_in_each_layout(layout, tmp_path, capsys):
    root = tmp_path / "mine"
    classes = ["cyst", "lesion", "normal"]
    if layout == "split_folders":
        _write_images(root / "train", classes, 6)
        _write_images(root / "test", classes, 2, seed=1)
    else:
        _write_images(root / "images", classes, 8)
        if layout == "class_folders":
            root = root / "images"
        else:
            rows = ["file,label"] + [
                f"images/{c}/{p.name},{c}"
                for c in classes
                for p in sorted((root / "images" / c).iterdir())
            ]
            (root / "labels.csv").write_text("\n".join(rows) + "\n")
    data = load_dataset("Custom", root, img_size=(16, 16), cache_dir=tmp_path / "cache", seed=5)
    assert data.class_names == classes and data.input_shape == (16, 16, 1)
    counts = data.counts()
    assert all(counts["test"][c] >= 1 for c in classes)
    other_seed = load_dataset(
        "Custom", root, img_size=(16, 16), cache_dir=tmp_path / "cache", seed=6
    )
    assert (
        other_seed.splits["test"].files == data.splits["test"].files
    )  # one test set for all seeds
    assert cli(["check", "Custom", str(root)]) == 0
    out = capsys.readouterr().out
    assert "classes (label order): cyst, lesion, normal" in out and "usable" in out


def test_custom_rgb_binary(tmp_path):
    root = tmp_path / "skin"
    _write_images(root, ["benign", "malignant"], 6, channels=3)
    data = load_dataset("Custom", root, img_size=(16, 16), channels=3, cache_dir=tmp_path / "c")
    assert data.input_shape == (16, 16, 3) and len(data.class_names) == 2
    assert data.splits["train"].source.images.shape[-1] == 3


def test_custom_without_classes_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no dataset found"):
        load_dataset("Custom", tmp_path / "empty", cache_dir=tmp_path / "c")


def test_synth_writes_chest_xray_val(tmp_path):
    synth_dataset("ChestXRay", tmp_path / "cx", count=4, size=32, seed=0)
    assert any((tmp_path / "cx").rglob("val/NORMAL/*.jpeg"))
