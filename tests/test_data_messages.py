"""Clear messages instead of vague or wrong ones (issue 17.9): numeric CSV labels, a Custom
set that cannot be split, a one-class folder, split-file paths with the folder's name."""

import itertools

import cv2
import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from data_setup import DatasetError, load_dataset
from data_setup.__main__ import main as cli
from data_setup.custom import CUSTOM_LAYOUT
from data_setup.loading import stratified_split_problem


def _pngs(folder, count, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (12, 12), dtype=np.uint8))


def _load(root, tmp_path, **kw):
    return load_dataset("Custom", root, img_size=(16, 16), cache_dir=tmp_path / "cache", **kw)


def test_numeric_csv_labels_are_numbers_with_a_note(tmp_path, capsys):
    root = tmp_path / "mine"
    _pngs(root / "images", 24)
    labels = ["1", "01", "2", "10"] * 6
    rows = ["file,label"] + [f"images/{i}.png,{label}" for i, label in enumerate(labels)]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    note = "labels '01' and '1' read as the number 1: one class '1'"
    with pytest.warns(UserWarning, match=note):
        data = _load(root, tmp_path)
    assert data.class_names == ["1", "2", "10"]  # one class '1', in numeric order
    counts = {c: data.counts()["train"][c] + data.counts()["test"][c] for c in data.class_names}
    assert counts == {"1": 12, "2": 6, "10": 6}
    assert cli(["check", "Custom", str(root)]) == 0
    assert f"{root / 'labels.csv'}: {note}" in capsys.readouterr().out


def test_check_refuses_a_custom_set_that_load_dataset_cannot_split(tmp_path, capsys):
    root = tmp_path / "many"
    for index in range(100):
        _pngs(root / f"class{index:03d}", 2, seed=index)
    message = (
        "cannot make a stratified Custom train/test split: 20% of 200 images holds out 40 and "
        "keeps 160, but each side needs an image of every one of the 100 classes; add images "
        "(at least 496 in all)"
    )
    assert cli(["check", "Custom", str(root)]) == 1
    captured = capsys.readouterr()
    assert f"error: {root}: {message}" in captured.err and "usable" not in captured.out
    with pytest.raises(DatasetError) as error:
        _load(root, tmp_path)
    assert str(error.value) == message


def test_the_split_rule_is_scikit_learns():
    for classes, per_class, fraction in itertools.product((2, 5, 30), (2, 3, 7), (0.1, 0.2, 0.5)):
        labels = np.repeat(np.arange(classes), per_class)
        try:
            train_test_split(labels, test_size=fraction, stratify=labels, random_state=0)
            feasible = True
        except ValueError:
            feasible = False
        problem = stratified_split_problem(labels, fraction, "x")
        assert (problem is None) == feasible, (classes, per_class, fraction, problem)
    lonely = stratified_split_problem([0, 0, 1], 0.2, "Custom train/test", ("cat", "dog"))
    assert lonely == (
        "cannot make a stratified Custom train/test split: class(es) dog have a single image; "
        "every class needs at least 2"
    )


def test_a_one_class_folder_says_so(tmp_path, capsys):
    root = tmp_path / "cats_only"
    _pngs(root / "cats", 4)
    message = (
        f"{root}: found one class (cats); a dataset needs at least two classes "
        f"(expected {CUSTOM_LAYOUT})"
    )
    with pytest.raises(DatasetError) as error:
        _load(root, tmp_path)
    assert str(error.value) == message
    assert cli(["check", "Custom", str(root)]) == 1
    assert f"error: {message}" in capsys.readouterr().err


def test_split_file_paths_are_explained_relative_to_the_dataset_root(copy_of, tmp_path):
    root = copy_of("BUSI")
    first = load_dataset("BUSI", root, img_size=(16, 16), cache_dir=tmp_path / "cache")
    first.write_split_csv(tmp_path / "split.csv")
    lines = (tmp_path / "split.csv").read_text().splitlines()
    prefixed = [lines[0]] + [f"Dataset_BUSI_with_GT/{line}" for line in lines[1:]]
    (tmp_path / "prefixed.csv").write_text("\n".join(prefixed) + "\n")
    with pytest.raises(DatasetError) as error:
        load_dataset(
            "BUSI",
            root,
            img_size=(16, 16),
            cache_dir=tmp_path / "cache",
            split_file=tmp_path / "prefixed.csv",
        )
    first_file = sorted(line.split(",")[0] for line in lines[1:])[0]
    assert str(error.value).endswith(
        f"; paths are relative to the dataset root {first.root}: write '{first_file}', "
        f"not 'Dataset_BUSI_with_GT/{first_file}'"
    )
    (tmp_path / "wrong.csv").write_text("\n".join([*lines, "nowhere.png,train"]) + "\n")
    with pytest.raises(DatasetError) as error:
        load_dataset(
            "BUSI",
            root,
            img_size=(16, 16),
            cache_dir=tmp_path / "cache",
            split_file=tmp_path / "wrong.csv",
        )
    assert str(error.value) == (
        f"{tmp_path / 'wrong.csv'}: 1 listed file(s) are not usable images of this dataset, "
        f"e.g. nowhere.png; paths are relative to the dataset root {first.root}, "
        f"e.g. '{first_file}'"
    )
