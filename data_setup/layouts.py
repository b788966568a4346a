"""Find a dataset's files in the folder the user has and list them per official split.

Pure file-system work (no decoding): `discover(dataset_id, root)` → `Listing`, for every layout
kind (DatasetInfo.layout_kind), your own data's label CSV included (data_setup.custom only
detects which layout your folder has). Everything odd found on the way is kept in
`Listing.problems` so `check` can print it and loaders can report it.
"""

from __future__ import annotations

import csv
import errno
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from data_setup.datasets import ONEHOT_CSV_FILES, DatasetInfo, dataset_info

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
SEARCH_DEPTH = 3  # how far below the given root the dataset folder may sit
IGNORED_NAMES = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}
NO_SUCH_FILE = "no such file"  # file_problem's answer for a name with nothing behind it


class DatasetError(ValueError):
    """The dataset cannot be used as given; the message names the path and what was expected."""


@dataclass
class Listing:
    dataset: str
    root: Path  # the folder the layout was found in
    splits: dict[str, list[tuple[Path, int]]]  # official split → (file, label index)
    problems: list[tuple[Path, str]] = field(default_factory=list)  # (path, what is wrong)
    ignored_masks: int = 0
    groups: dict[Path, str] = field(default_factory=dict)  # file → patient/lesion (custom CSV)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def spelled_from(root: Path, path: Path) -> Path | None:
    """`path` as root / its part below root ('..' and an absolute spelling resolved on the names
    as written, links not followed), or None when it lies outside root."""
    absolute, base = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    return root / absolute.relative_to(base) if absolute.is_relative_to(base) else None


def file_problem(path: Path, root: Path | None = None) -> str | None:
    """Why `path` cannot be used as an image file, or None: the kit's one definition of a usable
    file on disk. discover() applies it to every file it lists, so `check`, loading, the cache's
    fingerprint and the audit see the same files and print the same sentence; s3f-predict
    applies it to each input (without a `root`). Usable: inside the dataset folder `root`
    (judged on the path as listed, so a dataset or class folder linked in from another disk
    still works, while a CSV row naming /elsewhere or ../.. does not), and a regular file once
    symbolic links are followed (not a link that loops or points nowhere, not a FIFO that would
    block a reader). What needs the file's bytes (empty, not decodable, a header over
    data_setup.decode.MAX_IMAGE_PIXELS) is judged where they are read, so listing a dataset
    reads no image."""
    if root is not None and spelled_from(root, path) is None:
        return f"outside the dataset folder {root}; only files inside it are used"
    try:
        mode = os.stat(path).st_mode  # follows symbolic links
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symbolic link that loops (it never reaches a file)"
        if error.errno == errno.ENOENT:
            return "a symbolic link to a missing file" if path.is_symlink() else NO_SUCH_FILE
        return f"unreadable ({error.strerror or error})"
    if not stat.S_ISREG(mode):
        return "a folder, not an image file" if stat.S_ISDIR(mode) else "not a regular file"
    return None


def _utf8_problem(path: Path) -> str | None:
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8 (skipped: rename it)"
    return None


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as error:
        raise DatasetError(
            f"{folder}: cannot list the folder ({error.strerror or error})"
        ) from error


def _candidates(root: Path):
    """root itself, then its subfolders breadth-first up to SEARCH_DEPTH (skipping junk)."""
    level = [root]
    for _ in range(SEARCH_DEPTH + 1):
        yield from level
        level = [
            child
            for folder in level
            for child in _children(folder)
            if child.is_dir() and child.name not in IGNORED_NAMES and not child.name.startswith(".")
        ]


def _has_split_folders(folder: Path, info: DatasetInfo) -> bool:
    # train/ with class folders marks the layout; a missing test/ is then named by discover
    return (folder / "train").is_dir() and any(
        (folder / "train" / c).is_dir() for c in info.class_names
    )


def _has_class_folders(folder: Path, info: DatasetInfo) -> bool:
    return any((folder / c).is_dir() for c in info.class_names)


def _has_onehot_csv(folder: Path, info: DatasetInfo) -> bool:
    return (folder / ONEHOT_CSV_FILES["train"][0]).is_file()


def _has_label_csv(folder: Path, info: DatasetInfo) -> bool:
    return (folder / info.csv_name).is_file()


_MARKERS = {
    "split_folders": _has_split_folders,
    "class_folders": _has_class_folders,
    "onehot_csv": _has_onehot_csv,
    "label_csv": _has_label_csv,
}


def find_root(dataset_id, root) -> Path:
    """The folder holding the dataset's layout, at or below `root`."""
    info = dataset_info(dataset_id)
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: folder does not exist (expected {info.title}: {info.layout})")
    if not root.is_dir():
        raise DatasetError(f"{root}: is a file, expected a folder holding {info.layout}")
    for folder in _candidates(root):
        if _MARKERS[info.layout_kind](folder, info):
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
    expected = {*info.class_names, *IGNORED_NAMES, "train", "test", *info.extra_train}
    for child in _children(folder):
        if child.is_dir() and child.name not in expected and not child.name.startswith("."):
            classes = ", ".join(info.class_names)
            why = f"folder is not a class of {info.id} ({classes}); ignored"
            listing.problems.append((child, why))
    items = []
    for label, class_name in enumerate(info.class_names):
        for path in _children(folder / class_name):
            if path.name in IGNORED_NAMES or path.name.startswith("."):
                continue
            if path.is_dir():
                listing.problems.append(
                    (path, "sub-folder inside a class folder; its files are not used")
                )
            elif not _is_image(path):
                listing.problems.append((path, "not an image file (ignored)"))
            elif info.ignore_stem and info.ignore_stem in path.stem:
                listing.ignored_masks += 1  # segmentation masks are never classified
            elif why := file_problem(path, listing.root):
                listing.problems.append((path, f"{why} (skipped)"))
            elif why := _utf8_problem(path):
                listing.problems.append((path, why))
            else:
                items.append((path, label))
    if not items:
        reasons = [f"{p.name}: {why}" for p, why in listing.problems if p.parent.parent == folder]
        raise DatasetError(
            f"{folder}: split '{split_name}' has no images; expected {info.layout}"
            + ("; e.g. " + "; ".join(reasons[:3]) if reasons else "")
        )
    return items


def _read_ham_csv(csv_path: Path, image_dir: Path, info: DatasetInfo, listing: Listing, split):
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: missing; {info.id} expects {info.layout}")
    if not image_dir.is_dir():
        raise DatasetError(f"{image_dir}: missing image folder; {info.id} expects {info.layout}")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError as error:
        line = csv_path.read_bytes()[: error.start].count(b"\n") + 1
        raise DatasetError(
            f"{csv_path}: line {line} is not valid UTF-8 (byte {error.object[error.start]:#x}); "
            "save the CSV as UTF-8"
        ) from error
    except OSError as error:
        raise DatasetError(f"{csv_path}: cannot read ({error.strerror or error})") from error
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
        path = image_dir / f"{image_id}.jpg"
        if path.name in listed:
            listing.problems.append(
                (csv_path, f"line {line_no} ({image_id}): listed again, counted once")
            )
            continue
        listed.add(path.name)
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
        if (why := file_problem(path, listing.root)) == NO_SUCH_FILE:
            listing.problems.append(
                (path, f"listed in {csv_path.name} line {line_no} but missing, skipped")
            )
            continue
        if why:
            listing.problems.append(
                (path, f"listed in {csv_path.name} line {line_no}: {why} (skipped)")
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
        reasons = [
            f"{p.name}: {why}"
            for p, why in listing.problems
            if p == csv_path or p.parent == image_dir
        ]
        raise DatasetError(
            f"{csv_path}: split '{split}' has no usable images in {image_dir}"
            + ("; e.g. " + "; ".join(reasons[:3]) if reasons else "")
        )
    return items


# --------------------------------------------------------------------------- label CSV


def _csv_rows(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read as a UTF-8 CSV ({error})") from error


def class_label(text: str) -> str:
    """A CSV label as a class name: a whole number is read as that number, so '01' and '1' (as
    spreadsheets write them) name one class '1'; any other text is kept as written."""
    text = text.strip()
    return str(int(text)) if re.fullmatch(r"[+-]?[0-9]{1,30}", text) else text


def _class_order(name: str):
    """Numbers in numeric order (2 before 10), before any other names in text order."""
    return (0, int(name), "") if re.fullmatch(r"-?[0-9]{1,30}", name) else (1, 0, name)


def _number_notes(path: Path, spellings: dict[str, set[str]]) -> list[tuple[Path, str]]:
    """A note for each class whose labels were written differently from its number."""
    notes = []
    for name, written in sorted(spellings.items(), key=lambda item: _class_order(item[0])):
        if written == {name}:
            continue
        shown = " and ".join(repr(w) for w in sorted(written))
        if len(written) == 1:
            notes.append((path, f"label {shown} read as the number {name} (class '{name}')"))
        else:
            notes.append((path, f"labels {shown} read as the number {name}: one class '{name}'"))
    return notes


def read_label_csv(folder: Path, info: DatasetInfo, listing: Listing) -> dict[str, list]:
    """Splits of a file,label[,split][,group] CSV: 'train'/'test' when it has a split column, else
    'all' (split by load_dataset). Rows naming missing files or other classes are problems."""
    path = folder / info.csv_name
    rows = _csv_rows(path)
    header = [h.strip().lower() for h in rows[0]]
    has_split = "split" in header[2:]
    split_column = header.index("split") if has_split else None
    # optional: the patient/lesion each image belongs to (kept on one side of every split)
    group_column = header.index("group") if "group" in header[2:] else None
    splits: dict[str, list] = {}
    seen, spellings = set(), {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not row[0].strip():
            continue
        file = folder / row[0].strip()
        file = spelled_from(folder, file) or file  # one spelling per file: ./a, b/../a, /…/a
        written = row[1].strip() if len(row) > 1 else ""
        label = class_label(written)
        spellings.setdefault(label, set()).add(written)
        split = "all"
        if has_split and len(row) > split_column:
            split = row[split_column].strip().lower()
        group = row[group_column].strip() if group_column and len(row) > group_column else ""
        if file in seen:
            listing.problems.append((path, f"line {line} ({row[0]}): listed again, counted once"))
            continue
        seen.add(file)
        if label not in info.class_names:
            listing.problems.append((path, f"line {line}: unknown label {label!r}, skipped"))
        elif has_split and split not in ("train", "test"):
            listing.problems.append((path, f"line {line}: split must be train or test, skipped"))
        elif (why := file_problem(file, listing.root)) == NO_SUCH_FILE:
            listing.problems.append((file, f"listed in {path.name} line {line} but missing"))
        elif why:
            listing.problems.append((file, f"listed in {path.name} line {line}: {why} (skipped)"))
        elif why := _utf8_problem(file):
            listing.problems.append((file, why))
        else:
            splits.setdefault(split, []).append((file, info.class_names.index(label)))
            if group:
                listing.groups[file] = group
    listing.problems += _number_notes(path, {k: v for k, v in spellings.items() if k})
    if not splits:
        raise DatasetError(f"{path}: no usable rows (expected file,label[,split])")
    if has_split and set(splits) != {"train", "test"}:
        raise DatasetError(f"{path}: the split column needs both train and test rows")
    return splits


def discover(dataset_id, root) -> Listing:
    """List the dataset's images per official split ('train'/'test', or 'all' when the layout
    has no split of its own). `dataset_id`: a registered id or a DatasetInfo (custom data)."""
    info = dataset_info(dataset_id)
    folder = find_root(info, root)
    listing = Listing(dataset=info.id, root=folder, splits={})
    kind = info.layout_kind
    if kind == "split_folders":
        for split in ("train", "test"):
            if not (folder / split).is_dir():
                raise DatasetError(
                    f"{folder / split}: missing split folder '{split}/'; expected {info.layout}"
                )
            listing.splits[split] = _list_class_folders(folder / split, info, listing, split)
        for extra in info.extra_train:  # e.g. Chest X-Ray's val/: the paper trained on it too
            if (folder / extra).is_dir():
                listing.splits["train"] += _list_class_folders(folder / extra, info, listing, extra)
    elif kind == "class_folders":
        listing.splits["all"] = _list_class_folders(folder, info, listing, "all")
    elif kind == "onehot_csv":
        for split, (csv_name, images) in ONEHOT_CSV_FILES.items():
            listing.splits[split] = _read_ham_csv(
                folder / csv_name, folder / images, info, listing, split
            )
    else:
        listing.splits.update(read_label_csv(folder, info, listing))
    return listing
