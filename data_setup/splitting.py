"""Which images train, validate and test: load_dataset's row choice and protocol.

choose_rows: the train and test rows of the cached official splits — the dataset's own split,
a seeded stratified split of data that has none, or a split file that pins them (and maybe the
validation rows). validation_rows: the protocol — "paper" validates on the test split, as the
original notebooks; "holdout" on a stratified part of train that keeps every patient, lesion
and near-duplicate group on one side (or on a split file's val rows). Rows are indices into a
data_setup.cache.SourceSplit; load_dataset makes them the Dataset's Splits.
fold_rows: cross-validation instead — stratified group k-fold over the training pool (the
official test set is scored every fold) or over the whole dataset where it has no split.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from data_setup.cache import SourceSplit
from data_setup.datasets import DatasetInfo
from data_setup.files import csv_text
from data_setup.groups import assign_groups, combine_groups, grouped_folds, largest_group_share
from data_setup.layouts import DatasetError

PROTOCOLS = ("paper", "holdout")
Rows = tuple[SourceSplit, np.ndarray]  # rows (indices) of one cached official split


def choose_rows(info: DatasetInfo, sources: dict, split_file, root, skip_damaged) -> dict:
    """{"train": Rows, "test": Rows[, "val": Rows]} ("val" only from a split file's val rows);
    skip_damaged: without the images that decode but look damaged."""
    if split_file:
        chosen = _rows_from_split_file(read_split_file(split_file), sources, split_file, root)
    elif "all" in sources:  # no split of its own: a seeded stratified split
        every = sources["all"]
        train_rows, test_rows = _stratified(
            np.arange(len(every.labels)),
            every.labels,
            info.test_fraction,
            info.split_seed,
            f"{info.id} train/test",
            info.class_names,
        )
        chosen = {"train": (every, train_rows), "test": (every, test_rows)}
    else:
        chosen = {
            name: (sources[name], np.arange(len(sources[name].labels)))
            for name in ("train", "test")
        }
    return {
        name: (source, _usable(source, rows, skip_damaged))
        for name, (source, rows) in chosen.items()
    }


def _usable(source: SourceSplit, rows, skip_damaged) -> np.ndarray:
    if not skip_damaged or not source.damaged:
        return np.asarray(rows)
    return np.asarray([r for r in rows if source.files[r] not in source.damaged], dtype=int)


def validation_rows(protocol, chosen, *, val_fraction, seed, dataset_id, root, groups, split_file,
                    class_names=()):  # fmt: skip
    """(train Rows, validation Rows or None, the holdout's grouping or None, what the grouping
    found or None) under `protocol`.
    "paper": None, validation is the test split (a split file's val rows train too).
    "holdout": a split file's val rows, else a grouped stratified `val_fraction` of train
    (`groups`: file → patient/lesion id; near-duplicates from the audit's cached features) with
    every class on both sides, or one DatasetError sentence before any training."""
    train_source, train_rows = chosen["train"]
    if protocol == "paper":
        if "val" in chosen:  # validation is the test split here: its rows train
            val_source, val_rows = chosen["val"]
            if val_source is not train_source:
                raise DatasetError(f"{split_file}: 'val' rows must come from the training folder")
            train_rows = np.sort(np.concatenate([train_rows, val_rows]))
        return (train_source, train_rows), None, None, None
    if "val" in chosen:
        return chosen["train"], chosen["val"], None, None
    from data_setup.audit_cache import source_features

    features = source_features(dataset_id, train_source, root).take(train_rows)
    patients = [groups.get(train_source.files[r]) for r in train_rows]
    fit_rows, val_rows, kept, found = _holdout_rows(
        train_source, train_rows, val_fraction, seed, features, patients, class_names
    )
    return (train_source, fit_rows), (train_source, val_rows), kept, found


def fold_rows(chosen, pooled, *, folds, fold, val_fraction, seed, dataset_id, root, groups,
              class_names=()):  # fmt: skip
    """(fit Rows, validation Rows, test Rows, what the folds kept together, what the grouping
    found: largest_group_share and chains_split) of cross-validation fold `fold` (1..folds).

    The folds are a stratified group k-fold (seeded by the run's seed: one seed is one
    repetition) in which every patient, lesion and near-duplicate group stays in one fold and
    every fold holds every class (data_setup.groups.grouped_folds).
    pooled (a dataset without an official split, e.g. BUSI): the folds cover the whole dataset;
    fold k is the test set, and a grouped `val_fraction` of the rest validates. Otherwise the
    folds split the official training set; fold k validates and the official test set is scored
    in every fold. class_names: to name a class too small for `folds` (folds_problem)."""
    from data_setup import audit
    from data_setup.audit_cache import source_features

    if "val" in chosen:
        raise DatasetError("cross-validation (folds) makes its own splits: leave split_file empty")
    if not 1 <= fold <= folds:
        raise ValueError(f"fold must be in 1..{folds}, got {fold}")
    source, pool = chosen["train"]
    if pooled:
        test_source, test_rows = chosen["test"]
        if test_source is not source:
            raise DatasetError("pooled cross-validation needs one source of all images")
        pool = np.concatenate([pool, test_rows])
    pool = np.sort(np.asarray(pool))
    what = "the dataset" if pooled else "the training set"
    if problem := folds_problem(source.labels[pool], folds, what, class_names):
        raise DatasetError(problem)  # before the features, grouping and any training
    features = source_features(dataset_id, source, root)
    counts: dict = {}
    duplicates = list(audit.duplicate_groups(features.take(pool), "folds", counts))
    patients = [groups.get(source.files[r]) for r in pool]
    together = combine_groups(duplicates, patients)
    labels = source.labels[pool]
    folded = grouped_folds(labels, together, folds, seed, class_names,
                           names=[source.files[r] for r in pool])  # fmt: skip
    found = {
        "largest_group_share": largest_group_share(labels, together, class_names),
        "chains_split": counts["chains_split"],
    }
    rest, held = (pool[part] for part in folded[fold - 1])
    kept = "patients/lesions and near-duplicates"
    if not pooled:
        return (source, rest), (source, held), chosen["test"], kept, found
    fit, val, _, _ = _holdout_rows(
        source, rest, val_fraction, seed, features.take(rest), patients=[
            groups.get(source.files[r]) for r in rest], class_names=class_names,
    )  # fmt: skip
    return (source, fit), (source, val), (source, held), kept, found


def stratified_split_problem(labels, fraction, what, class_names=()) -> str | None:
    """Why a stratified split of `labels` holding out `fraction` cannot be made, in words, or
    None. scikit-learn's rule (every class has 2 images; each side gets at least one image per
    class), in one place so that `check` and load_dataset agree."""
    classes, counts = np.unique(np.asarray(labels, dtype=int), return_counts=True)
    names = [class_names[c] if c < len(class_names) else str(c) for c in classes]
    single = [name for name, count in zip(names, counts, strict=True) if count < 2]
    if single:
        return (
            f"cannot make a stratified {what} split: class(es) {', '.join(single)} have a single "
            "image; every class needs at least 2"
        )

    def smaller_side(n):
        held = math.ceil(fraction * n)  # as scikit-learn rounds
        return min(held, n - held)

    total, k = int(counts.sum()), len(classes)
    if smaller_side(total) >= k:
        return None
    held = math.ceil(fraction * total)
    enough = next((n for n in range(total, 100 * total) if smaller_side(n) >= k), None)
    return (
        f"cannot make a stratified {what} split: {fraction:.0%} of {total} images holds out "
        f"{held} and keeps {total - held}, but each side needs an image of every one of the {k} "
        "classes" + (f"; add images (at least {enough} in all)" if enough else "")
    )


def folds_problem(labels, folds, what, class_names=()) -> str | None:
    """Why `labels` cannot make `folds` stratified cross-validation folds, in words, or None:
    every class needs an image in each fold (scikit-learn's StratifiedGroupKFold warns, or fails
    when every class is short, in its own words)."""
    classes, counts = np.unique(np.asarray(labels, dtype=int), return_counts=True)
    short = [(int(c), int(n)) for c, n in zip(classes, counts, strict=True) if n < folds]
    if not short:
        return None
    listed = ", ".join(
        f"{class_names[c] if c < len(class_names) else c} ({n} image{'s' * (n != 1)})"
        for c, n in short
    )
    one = len(short) == 1
    smallest = int(counts.min())
    advice = (
        f"use at most {smallest} folds (--folds {smallest}) or add images of "
        + ("that class" if one else "those classes")
        if smallest >= 2
        else "add images: cross-validation needs at least 2 of every class"
    )
    return (
        f"cannot make {folds} cross-validation folds of {what}: "
        f"{'class' if one else 'classes'} {listed} {'has' if one else 'have'} fewer images than "
        f"the {folds} folds asked, so some folds would hold none of {'it' if one else 'them'}; "
        f"{advice}"
    )


def _stratified(indices, labels, fraction, seed, what, class_names=()):
    if problem := stratified_split_problem(labels, fraction, what, class_names):
        raise DatasetError(problem)
    try:
        return train_test_split(indices, test_size=fraction, stratify=labels, random_state=seed)
    except ValueError as error:  # anything the rule above does not foresee
        raise DatasetError(f"cannot make a stratified {what} split: {error}") from error


# What to do when the groups cannot give every side every class (the refusal's last words).
REGROUP_ADVICE = (
    "; list the near-duplicates with `s3f-data audit` and remove the copies, add images of that "
    "class, pin a split with split_file=, or validate on the test split (protocol='paper')"
)


def _holdout_rows(source, rows, fraction, seed, features, patients, class_names=()):
    """A stratified validation split that keeps each near-duplicate group (data_setup.audit;
    `features`: the rows' cached audit features) and each patient or lesion (`patients`: an id
    or None per row, data_setup.groups) on one side, so validation never scores copies of
    training images or their patients' other films; every class on both sides
    (data_setup.groups.assign_groups), or one DatasetError sentence naming the class.
    Returns (fit rows, validation rows, the grouping kept, what the grouping found)."""
    from data_setup import audit

    rows = np.asarray(rows)
    labels = source.labels[rows]
    counts: dict = {}
    groups = combine_groups(list(audit.duplicate_groups(features, "holdout", counts)), patients)
    found = {
        "largest_group_share": largest_group_share(labels, groups, class_names),
        "chains_split": counts["chains_split"],
    }
    if len(set(groups)) == len(groups):  # nothing to keep together
        fit, val = _stratified(rows, labels, fraction, seed, "holdout validation", class_names)
        return fit, val, "none needed (no two images share a group)", found
    part = assign_groups(
        labels, groups, [1 - fraction, fraction], seed,
        "cannot make a holdout validation split with every class",
        class_names, names=[source.files[r] for r in rows], advice=REGROUP_ADVICE,
    )  # fmt: skip
    return rows[part == 0], rows[part == 1], "patients/lesions and near-duplicates", found


def read_split_file(path) -> dict[str, str]:
    """A split CSV (file,split; file relative to the dataset root) → {file: split}."""
    path = Path(path).expanduser()
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            # a file name the kit's split.csv wrote with csv_cell's quote gets it back
            rows = [[csv_text(cell) for cell in row] for row in csv.reader(handle)]
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read the split file ({error})") from error
    if not rows or [h.strip() for h in rows[0][:2]] != ["file", "split"]:
        raise DatasetError(f"{path}: expected a CSV with the header 'file,split'")
    table = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) < 2 or row[1].strip() not in ("train", "val", "test"):
            raise DatasetError(f"{path} line {line}: expected 'file,train|val|test', got {row}")
        if row[0] in table:
            raise DatasetError(f"{path} line {line}: {row[0]} is listed twice")
        table[row[0]] = row[1].strip()
    return table


def _relative_hint(unknown, known, root) -> str:
    """How to write the split file's paths, with an example drawn from the user's own rows when
    they carry a folder prefix (e.g. the dataset folder's name) in front of a real file."""
    for file in unknown:
        parts = Path(file).parts
        for cut in range(1, len(parts)):
            stripped = Path(*parts[cut:]).as_posix()
            if stripped in known:
                return (
                    f"; paths are relative to the dataset root {root}: write '{stripped}', "
                    f"not '{file}'"
                )
    example = min(known, default="")
    return f"; paths are relative to the dataset root {root}, e.g. '{example}'"


def _rows_from_split_file(table, sources, path, root):
    """{split: (source, rows)} from a split file; every usable image must be listed once."""
    where = {}
    for source in sources.values():
        for row, file in enumerate(source.files):
            where[file] = (source, row)
    unknown = sorted(set(table) - set(where))
    if unknown:
        raise DatasetError(
            f"{path}: {len(unknown)} listed file(s) are not usable images of this dataset, "
            f"e.g. {', '.join(unknown[:3])}" + _relative_hint(unknown, where, root)
        )
    unlisted = sorted(set(where) - set(table))
    if unlisted:
        raise DatasetError(
            f"{path}: {len(unlisted)} image(s) of the dataset are not in the split file, "
            f"e.g. {', '.join(unlisted[:3])}"
        )
    chosen = {}
    for name in ("train", "val", "test"):
        members = [where[f] for f, split in table.items() if split == name]
        if not members:
            continue
        owners = {id(source) for source, _ in members}
        if len(owners) > 1:
            raise DatasetError(
                f"{path}: the '{name}' rows mix the dataset's official train and test folders; "
                "a split file can only re-split within them"
            )
        chosen[name] = (members[0][0], np.sort([row for _, row in members]))
    for name in ("train", "test"):
        if name not in chosen:
            raise DatasetError(f"{path}: no '{name}' rows")
    return chosen
