"""Find a dataset's files in the folder the user has and list them per official split.

Pure file-system work (no decoding): `discover(dataset_id, root)` → `Listing`. Everything odd
found on the way is kept in `Listing.problems` so `check` can print it and loaders can report it.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from data_setup.datasets import DatasetInfo, dataset_info

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
SEARCH_DEPTH = 3  # how far below the given root the dataset folder may sit
IGNORED_NAMES = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}


class DatasetError(ValueError):
    """The dataset cannot be used as given; the message names the path and what was expected."""


@dataclass
class Listing:
    dataset: str
    root: Path  # the folder the layout was found in
    splits: dict[str, list[tuple[Path, int]]]  # official split → (file, label index)
    problems: list[tuple[Path, str]] = field(default_factory=list)  # (path, what is wrong)
    ignored_masks: int = 0

    def counts(self, class_names) -> dict[str, dict[str, int]]:
        return {
            split: {
                name: Counter(label for _, label in items)[i] for i, name in enumerate(class_names)
            }
            for split, items in self.splits.items()
        }


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _is_busi_mask(path: Path) -> bool:
    return "_mask" in path.stem


def _candidates(root: Path):
    """root itself, then its subfolders breadth-first up to SEARCH_DEPTH (skipping junk)."""
    level = [root]
    for _ in range(SEARCH_DEPTH + 1):
        yield from level
        level = [
            child
            for folder in level
            for child in sorted(folder.iterdir())
            if child.is_dir() and child.name not in IGNORED_NAMES and not child.name.startswith(".")
        ]


def _has_split_folders(folder: Path, info: DatasetInfo) -> bool:
    return all((folder / s).is_dir() for s in ("train", "test")) and any(
        (folder / "train" / c).is_dir() for c in info.class_names
    )


def _has_class_folders(folder: Path, info: DatasetInfo) -> bool:
    return any((folder / c).is_dir() for c in info.class_names)


def _has_ham_csv(folder: Path, info: DatasetInfo) -> bool:
    return (folder / "GroundTruth.csv").is_file()


_MARKERS = {
    "BRISC2025": _has_split_folders,
    "ChestXRay": _has_split_folders,
    "BUSI": _has_class_folders,
    "HAM10000": _has_ham_csv,
}


def find_root(dataset_id: str, root) -> Path:
    """The folder holding the dataset's layout, at or below `root`."""
    info = dataset_info(dataset_id)
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: folder does not exist (expected {info.title}: {info.layout})")
    if not root.is_dir():
        raise DatasetError(f"{root}: is a file, expected a folder holding {info.layout}")
    for folder in _candidates(root):
        if _MARKERS[dataset_id](folder, info):
            return folder
    raise DatasetError(
        f"{root}: no {info.title} found here or up to {SEARCH_DEPTH} folders below. "
        f"Expected the layout {info.layout} (download: {info.source})"
    )


def _list_class_folders(folder: Path, info: DatasetInfo, listing: Listing, split_name: str):
    missing = [c for c in info.class_names if not (folder / c).is_dir()]
    if missing:
        raise DatasetError(
            f"{folder}: missing class folder(s) {', '.join(missing)}; expected one folder per "
            f"class ({', '.join(info.class_names)}) in {info.layout}"
        )
    items = []
    for label, class_name in enumerate(info.class_names):
        for path in sorted((folder / class_name).rglob("*")):
            if path.is_dir() or path.name in IGNORED_NAMES:
                continue
            if not _is_image(path):
                listing.problems.append((path, "not an image file (ignored)"))
            elif info.id == "BUSI" and _is_busi_mask(path):
                listing.ignored_masks += 1  # segmentation masks are never classified
            else:
                items.append((path, label))
    if not items:
        raise DatasetError(f"{folder}: split '{split_name}' has no images; expected {info.layout}")
    return items


def _read_ham_csv(csv_path: Path, image_dir: Path, info: DatasetInfo, listing: Listing, split):
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: missing; HAM10000 expects {info.layout}")
    if not image_dir.is_dir():
        raise DatasetError(f"{image_dir}: missing image folder; HAM10000 expects {info.layout}")
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    header = [h.strip() for h in rows[0]] if rows else []
    expected = ["image", *info.class_names]
    if header[: len(expected)] != expected:
        raise DatasetError(
            f"{csv_path}: columns {header} — expected {expected} (image id, then one-hot classes)"
        )
    items, listed = [], set()
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or not row[0].strip():
            continue
        image_id = row[0].strip()
        try:
            onehot = [float(v) for v in row[1 : len(expected)]]
        except ValueError:
            onehot = []
        if len(onehot) != len(info.class_names) or sorted(onehot) != [0.0] * (len(onehot) - 1) + [
            1.0
        ]:
            listing.problems.append(
                (csv_path, f"line {line_no} ({image_id}): not a one-hot label, skipped")
            )
            continue
        path = image_dir / f"{image_id}.jpg"
        listed.add(path.name)
        if not path.is_file():
            listing.problems.append(
                (path, f"listed in {csv_path.name} line {line_no} but missing, skipped")
            )
            continue
        items.append((path, onehot.index(1.0)))
    for path in sorted(image_dir.iterdir()):
        if path.name in IGNORED_NAMES or path.is_dir():
            continue
        if path.name not in listed:
            why = "image with no row in" if _is_image(path) else "not an image, not in"
            listing.problems.append((path, f"{why} {csv_path.name} (ignored)"))
    if not items:
        raise DatasetError(f"{csv_path}: split '{split}' has no usable images in {image_dir}")
    return items


def discover(dataset_id: str, root) -> Listing:
    """List the dataset's images per official split ('train'/'test', or 'all' for BUSI)."""
    info = dataset_info(dataset_id)
    folder = find_root(dataset_id, root)
    listing = Listing(dataset=dataset_id, root=folder, splits={})
    if dataset_id in ("BRISC2025", "ChestXRay"):
        for split in ("train", "test"):
            if not (folder / split).is_dir():
                raise DatasetError(
                    f"{folder / split}: missing split folder; expected {info.layout}"
                )
            listing.splits[split] = _list_class_folders(folder / split, info, listing, split)
    elif dataset_id == "BUSI":
        listing.splits["all"] = _list_class_folders(folder, info, listing, "all")
    else:
        listing.splits["train"] = _read_ham_csv(
            folder / "GroundTruth.csv", folder / "images", info, listing, "train"
        )
        listing.splits["test"] = _read_ham_csv(
            folder / "Test_GroundTruth.csv", folder / "Test_images", info, listing, "test"
        )
    return listing
