"""Which images belong together: the patient of a chest film, the lesion of a dermoscopy photo.

A validation split that shares a patient or a lesion with training selects checkpoints on
leaked data. Near-duplicate grouping (data_setup.audit) does not catch it, because two films of
one patient, or two photographs of one lesion, are different images. The groups come from what
each dataset records:

- Chest X-Ray (Kermany): the file name. `person1946_bacteria_4874.jpeg` and
  `person1946_bacteria_4875.jpeg` are patient `person1946`. Normal films are `IM-NNNN-MMMM` or
  `NORMAL2-IM-NNNN-MMMM`, patient `IM-NNNN` or `NORMAL2-IM-NNNN`; the two series are numbered
  apart, so they are kept apart.
- HAM10000: the lesion id, from the ISIC 2018 lesion-groupings CSV
  (`ISIC2018_Task3_Training_LesionGroupings.csv`: `image`, `lesion_id`) or the HAM10000 metadata
  (`HAM10000_metadata.csv`: `lesion_id`, `image_id`, …), when either sits in the dataset folder.
  Without one, images stay ungrouped, and `check` says so.
- Custom data: an optional `group` column in its CSV (read by data_setup.custom).

Which rule applies is a fact of each dataset (`DatasetInfo.grouping`).
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path

from data_setup.layouts import DatasetError

KERMANY_PATIENT = re.compile(r"^(person\d+)_|^((?:NORMAL2-)?IM-\d+)-", re.IGNORECASE)
LESION_CSVS = {  # file name → (image column, lesion column)
    "ISIC2018_Task3_Training_LesionGroupings.csv": ("image", "lesion_id"),
    "HAM10000_metadata.csv": ("image_id", "lesion_id"),
}
GROUP_NOUNS = {"kermany_patient": "patients", "ham_lesion": "lesions", "csv_group": "groups"}
MAX_CSV_BYTES = 32 * 2**20  # the real lesion CSVs are < 1 MB; a larger file is not one of them


def kermany_patient(file_name: str) -> str | None:
    """The patient of a Kermany chest film from its file name, or None if it has none."""
    match = KERMANY_PATIENT.match(Path(file_name).name)
    if not match:
        return None
    return match.group(1).lower() if match.group(1) else match.group(2).upper()


def _find_lesion_csv(root: Path) -> Path | None:
    for depth in ("", "*/", "*/*/"):
        for name in LESION_CSVS:
            found = sorted(root.glob(depth + name))
            if found:
                return found[0]
    return None


def read_lesion_csv(path: Path) -> dict[str, str]:
    """image id → lesion id from one of the LESION_CSVS (bounded read, one clear error)."""
    image_column, lesion_column = LESION_CSVS[path.name]
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise DatasetError(
            f"{path}: {size / 2**20:.0f} MB is too large for a lesion-groupings CSV "
            f"(at most {MAX_CSV_BYTES // 2**20} MB expected)"
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text ({error.reason})") from error
    rows = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in rows.fieldnames or []]
    if image_column not in header or lesion_column not in header:
        raise DatasetError(
            f"{path}: columns {header}; expected '{image_column}' and '{lesion_column}'"
        )
    table = {}
    for row in rows:
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        if row.get(image_column) and row.get(lesion_column):
            table[row[image_column]] = row[lesion_column]
    return table


def image_groups(grouping: str, root: Path, files: list[Path]) -> tuple[list[str | None], str]:
    """(group of each file, where the groups come from) under the dataset's grouping rule.
    `files` are paths of the dataset's images; an image with no group gets None."""
    if grouping == "kermany_patient":
        return [kermany_patient(f.name) for f in files], "patient ids from Kermany file names"
    if grouping == "ham_lesion":
        path = _find_lesion_csv(Path(root))
        if path is None:
            names = " or ".join(LESION_CSVS)
            return [None] * len(files), f"no lesion ids (put {names} in the dataset folder)"
        table = read_lesion_csv(path)
        return [table.get(f.stem) for f in files], f"lesion ids from {path.name}"
    return [None] * len(files), "no patient or lesion ids"


def listing_groups(info, listing) -> tuple[dict[str, str], str]:
    """{file relative to the dataset root: patient or lesion id} of a discovered dataset, and
    where the ids come from. Files without an id are left out."""
    if listing.groups:  # a custom CSV's group column
        table = {str(p.relative_to(listing.root)): g for p, g in listing.groups.items()}
        return table, "the CSV's group column"
    files = [path for items in listing.splits.values() for path, _ in items]
    ids, source = image_groups(info.grouping, listing.root, files)
    table = {str(p.relative_to(listing.root)): g for p, g in zip(files, ids, strict=True) if g}
    return table, source


def group_report(groups_by_split: dict[str, list[str | None]]) -> dict:
    """Groups per split, images without a group, and the groups two splits share."""
    sets = {split: set(groups) - {None} for split, groups in groups_by_split.items()}
    report = {
        "groups": {split: len(found) for split, found in sets.items()},
        "ungrouped": {
            split: sum(g is None for g in groups) for split, groups in groups_by_split.items()
        },
        "largest": {
            split: max(Counter(g for g in groups if g is not None).values(), default=0)
            for split, groups in groups_by_split.items()
        },
    }
    splits = sorted(sets)
    report["shared"] = {
        f"{a}/{b}": sorted(sets[a] & sets[b])
        for i, a in enumerate(splits)
        for b in splits[i + 1 :]
        if sets[a] & sets[b]
    }
    return report


def combine_groups(*labelings) -> list[int]:
    """One integer group per image such that two images share a group whenever any labeling
    puts them together (a patient id, a lesion id, a near-duplicate group), transitively: the
    connected components of the graph linking each image to the first one with its label (as
    data_setup.audit groups duplicate pairs). None in a labeling means no group there."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    sizes = {len(labels) for labels in labelings}
    if len(sizes) != 1:
        raise ValueError(f"combine_groups: labelings of different lengths {sorted(sizes)}")
    count = sizes.pop()
    rows, cols = [], []
    for labels in labelings:
        first = {}
        for index, label in enumerate(labels):
            if label is not None:
                rows.append(first.setdefault(label, index))
                cols.append(index)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(count, count))
    return connected_components(graph, directed=False)[1].tolist()


def grouped_folds(labels, groups, folds: int, seed: int):
    """[(fit_rows, held_rows)] of a stratified group k-fold: every group on one side of each
    fold, class proportions kept as far as the groups allow (sklearn's StratifiedGroupKFold).
    One clear error when the data cannot make `folds` folds with every class in each fit part."""
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    distinct = len(np.unique(groups))
    if distinct < folds:
        raise DatasetError(
            f"cannot make {folds} grouped folds from {distinct} patient/lesion/duplicate groups"
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    result = []
    for number, (fit, held) in enumerate(splitter.split(labels, labels, groups)):
        missing = set(np.unique(labels)) - set(np.unique(labels[fit]))
        if missing or not len(held):
            raise DatasetError(
                f"grouped fold {number} of {folds} leaves class(es) {sorted(missing)} out of "
                "its training part; use fewer folds"
            )
        result.append((fit, held))
    return result


def report_lines(info, listing, excluded=frozenset()) -> list[str]:
    """What `check` prints about patients or lesions: ids per split, images without one, and
    the ids that two official splits share (a leak the split itself makes). `excluded`: files
    (paths) that check found unusable."""
    if not (info.grouping or listing.groups):
        return []
    table, source = listing_groups(info, listing)
    noun = GROUP_NOUNS.get(info.grouping, "groups") if not listing.groups else "groups"
    by_split = {
        split: [table.get(str(p.relative_to(listing.root))) for p, _ in items if p not in excluded]
        for split, items in listing.splits.items()
    }
    report = group_report(by_split)
    counts = ", ".join(f"{split} {n:,}" for split, n in report["groups"].items())
    lines = [f"  {noun} ({source}): {counts}"]
    ungrouped = {s: n for s, n in report["ungrouped"].items() if n}
    if ungrouped and table:
        lines.append(
            "  images without an id: " + ", ".join(f"{s} {n:,}" for s, n in ungrouped.items())
        )
    for pair, shared in report["shared"].items():
        a, b = pair.split("/")
        lines.append(
            f"  warning: {len(shared):,} {noun} have images in both {a} and {b} "
            f"(e.g. {', '.join(shared[:3])}): the official split is not {noun[:-1]}-disjoint; "
            "clean-test metrics leave their test images out"
        )
    return lines
