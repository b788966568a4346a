"""Your own data, described like the paper's four datasets so every module works on it.

    info = custom_dataset("~/data/skin", channels=3, image_size=(224, 224))
    data = load_dataset(info, "~/data/skin", protocol="holdout")   # or load_dataset("Custom", …)

Three layouts are recognised (searched up to three folders down, like the paper's datasets):
  <root>/{train,test}/<class>/*   the split you have
  <root>/<class>/*                split into train/test with a seeded stratified test fraction
  <root>/<name>.csv               columns file,label[,split][,group]; file relative to the
                                  CSV's folder; group (optional): the patient or lesion
Class names are the sorted folder names (or sorted CSV labels); their order is the label index.
CSV labels that are whole numbers are read as numbers: '01' and '1' are one class '1' (with a
note), and numbers sort numerically (2 before 10). This module detects the layout and classes;
data_setup.layouts lists the files, as for the paper's datasets.
"""

from __future__ import annotations

import csv
from pathlib import Path

from data_setup.datasets import CUSTOM, CUSTOM_LICENCE, DatasetInfo
from data_setup.layouts import (
    IGNORED_NAMES,
    SEARCH_DEPTH,
    DatasetError,
    _candidates,
    _children,
    _class_order,
    _csv_rows,
    _is_image,
    class_label,
)

CUSTOM_LAYOUT = "<root>/{train,test}/<class>/*, <root>/<class>/*, or a CSV file,label[,split]"
# The input size of your own images when a run does not choose one: the one place it is set
# (the registry's S3F_Custom experiment, which RunConfig resolves img_size from, reads it).
CUSTOM_IMAGE_SIZE = (256, 256)


def _class_dirs(folder: Path) -> list[str]:
    return sorted(
        c.name
        for c in _children(folder)
        if c.is_dir() and c.name not in IGNORED_NAMES and not c.name.startswith(".")
    )


def _has_images(folder: Path) -> bool:
    return any(_is_image(p) for p in _children(folder) if p.is_file())


def _label_csvs(folder: Path) -> list[Path]:
    found = []
    for path in _children(folder):
        if path.suffix.lower() == ".csv" and path.is_file():
            with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
                header = [h.strip().lower() for h in next(csv.reader(handle), [])]
            if header[:2] == ["file", "label"]:
                found.append(path)
    return found


def _detect(root: Path):
    """(layout kind, folder, class names, csv name) of the first layout found below root."""
    single = None  # the first folder holding one class folder only
    for folder in _candidates(root):
        if (folder / "train").is_dir() and (folder / "test").is_dir():
            classes = _class_dirs(folder / "train")
            if classes:
                return "split_folders", folder, classes, ""
        csvs = _label_csvs(folder)
        if csvs:
            return "label_csv", folder, _csv_classes(csvs[0]), csvs[0].name
        classes = [c for c in _class_dirs(folder) if _has_images(folder / c)]
        if len(classes) >= 2:
            return "class_folders", folder, classes, ""
        if len(classes) == 1 and single is None:
            single = folder, classes
    if single:  # one class folder is a dataset with a class missing, not "no dataset"
        raise DatasetError(_too_few_classes(*single))
    raise DatasetError(
        f"{root}: no dataset found here or up to {SEARCH_DEPTH} folders below; "
        f"expected {CUSTOM_LAYOUT}"
    )


def _too_few_classes(folder: Path, classes: list[str]) -> str:
    found = f"one class ({classes[0]})" if len(classes) == 1 else "no class"
    return (
        f"{folder}: found {found}; a dataset needs at least two classes (expected {CUSTOM_LAYOUT})"
    )


def _csv_classes(path: Path) -> list[str]:
    labels = {class_label(row[1]) for row in _csv_rows(path)[1:] if len(row) >= 2}
    return sorted(labels - {""}, key=_class_order)


def custom_dataset(
    root,
    channels: int = 1,
    image_size=CUSTOM_IMAGE_SIZE,
    test_fraction: float = 0.2,
    split_seed: int = 42,
) -> DatasetInfo:
    """Describe the data under `root` (layout, classes) for load_dataset/check/audit/sweep."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected {CUSTOM_LAYOUT})")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    if not 0 < float(test_fraction) < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
    kind, folder, classes, csv_name = _detect(root)
    if len(classes) < 2:
        raise DatasetError(_too_few_classes(folder, classes))
    return DatasetInfo(
        id=CUSTOM,
        title=f"custom dataset ({len(classes)} classes: {', '.join(classes)})",
        class_names=tuple(classes),
        channels=int(channels),
        image_size=tuple(int(v) for v in image_size),
        layout=CUSTOM_LAYOUT,
        source=str(folder),
        licence=CUSTOM_LICENCE,
        paper_split=f"stratified {1 - test_fraction:.0%}/{test_fraction:.0%}, seed {split_seed}",
        layout_kind=kind,
        test_fraction=float(test_fraction),
        split_seed=int(split_seed),
        csv_name=csv_name,
    )
