"""load_dataset: one of the paper's datasets (or your own) as train/validation/test Splits.

    listing (data_setup.layouts) → decode cache (data_setup.cache) → rows and protocol
    (data_setup.splitting) → Dataset, whose Splits are row views into the cached splits;
    training reads batches from the memmap and scales to [0, 1] inside the tf.data graph.

The names other modules import from here (decoding, the cache, the split rules) are re-exported
from where they now live.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from data_setup.cache import (
    CACHE_VERSION,
    SourceSplit,
    cache_split,
    default_cache_dir,
    files_fingerprint,
)
from data_setup.custom import CUSTOM_IMAGE_SIZE, custom_dataset
from data_setup.datasets import CUSTOM, MAX_IMAGE_SIDE, DatasetInfo, dataset_info
from data_setup.decode import (
    PAPER_RESIZE,
    RESIZE_MODES,
    BadImage,
    damage_of,
    decode_bytes,
    decode_image,
    decode_workers,
    jpeg_decoder_warning,
    jpeg_end,
    read_bytes,
)
from data_setup.files import write_csv_atomic
from data_setup.groups import group_facts_line, listing_groups
from data_setup.layouts import DatasetError, Listing, discover
from data_setup.manifest import data_manifest
from data_setup.shortcuts import recorded_summary
from data_setup.splitting import (
    PROTOCOLS,
    choose_rows,
    fold_rows,
    read_split_file,
    stratified_split_problem,
    validation_rows,
)

# data_setup.audit_cache imports this name from here (it is data_setup.cache.files_fingerprint)
_fingerprint = files_fingerprint

__all__ = [
    "CACHE_VERSION",
    "PROTOCOLS",
    "BadImage",
    "Dataset",
    "SourceSplit",
    "Split",
    "damage_of",
    "decode_bytes",
    "decode_image",
    "default_cache_dir",
    "jpeg_decoder_warning",
    "jpeg_end",
    "load_dataset",
    "read_bytes",
    "read_split_file",
    "stratified_split_problem",
]


@dataclass
class Split:
    """A protocol split: a view (row indices) into one cached official split."""

    name: str
    source: SourceSplit
    indices: np.ndarray

    def __len__(self):
        return len(self.indices)

    @property
    def labels(self) -> np.ndarray:
        return self.source.labels[self.indices]

    @property
    def files(self) -> list[str]:
        return [self.source.files[i] for i in self.indices]

    def images(self, scale=True) -> np.ndarray:
        """All images in memory (evaluation-sized splits); float32 in [0, 1] when scaled."""
        batch = self.source.images[self.indices]
        return batch.astype(np.float32) / 255.0 if scale else np.asarray(batch)


@dataclass
class Dataset:
    info: DatasetInfo
    root: Path
    protocol: str
    image_size: tuple[int, int]
    splits: dict[str, Split]  # "train", "val", "test" ("val" is "test" under the paper protocol)
    skipped: list[tuple[str, str]]
    problems: list[tuple[str, str]]
    fingerprint: str
    extras: dict = field(default_factory=dict)
    damaged: list[tuple[str, str]] = field(default_factory=list)  # used, but look damaged
    groups: dict[str, str] = field(default_factory=dict)  # file → patient/lesion id (known ones)
    grouping: str = "no patient or lesion ids"  # where the ids come from (data_setup.groups)
    manifest: dict | None = None  # data_setup.manifest: the copy's identity and counts
    resize: str = PAPER_RESIZE  # the shortcut-neutral arms it was decoded with (data_setup.decode)
    reencode: bool = False
    shortcuts: dict | None = None  # data_setup.shortcuts.summary: the header-only audit

    def groups_of(self, split: str) -> list[str | None]:
        """The patient or lesion of each image of a split (None where unknown)."""
        return [self.groups.get(f) for f in self.splits[split].files]

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    @property
    def channels(self) -> int:
        return self.info.channels

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (*self.image_size, self.channels)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            name: {c: int((split.labels == i).sum()) for i, c in enumerate(self.class_names)}
            for name, split in self.splits.items()
        }

    def class_weights(self) -> dict[int, float]:
        """'balanced' weights from the training labels, as the paper."""
        labels = self.splits["train"].labels
        present = np.unique(labels)
        weights = compute_class_weight("balanced", classes=present, y=labels)
        return {int(c): float(w) for c, w in zip(present, weights, strict=True)}

    def audit_features(self, name: str):
        """The leakage audit's features of split `name`'s images, in row order, from the
        feature cache beside the decode cache (computed on first use: data_setup.audit_cache)."""
        from data_setup.audit_cache import source_features

        view = self.splits[name]
        return source_features(self.info.id, view.source, self.root).take(view.indices)

    def split_table(self) -> list[tuple[str, str]]:
        """(file, split) for every image used, files relative to the dataset root. Under the
        paper protocol the validation data is the test split, so no 'val' rows appear."""
        names = ("train", "test") if self.protocol == "paper" else ("train", "val", "test")
        return [(file, name) for name in names for file in self.splits[name].files]

    def write_split_csv(self, path) -> None:
        """split.csv (file,split,group): what load_dataset(split_file=…) takes to pin this split;
        group is the image's patient or lesion where known (the grouping the split kept)."""
        rows = [("file", "split", "group")]  # group: patient/lesion, "" if unknown
        rows += [(f, split, self.groups.get(f, "")) for f, split in self.split_table()]
        write_csv_atomic(Path(path), rows)

    def _kit_split_not_papers(self) -> bool:
        """The kit splits one folder (class_folders) whose paper test set was not an official
        split (its record states a test support of its own: BUSI)."""
        return self.info.layout_kind == "class_folders" and bool(self.info.paper_test_support)

    def summary(self) -> str:
        lines = [
            f"{self.info.title} at {self.root} — protocol '{self.protocol}', "
            f"{self.image_size[0]}×{self.image_size[1]}×{self.channels}"
        ]
        for name, counts in self.counts().items():
            total = sum(counts.values())
            lines.append(
                f"  {name:5s} {total:6d}  " + "  ".join(f"{k}={v}" for k, v in counts.items())
            )
        if self.protocol == "paper":
            lines.append("  (paper protocol: validation = test, as in the original notebooks)")
        if "folds" in self.extras:
            lines.append(
                f"  (cross-validation fold {self.extras['fold']} of {self.extras['folds']}: "
                f"test = {self.extras['fold_test']}; {self.extras['fold_grouping']} kept "
                "within one fold)"
            )
        elif self._kit_split_not_papers() and "split_file" not in self.extras:
            test = round(100 * self.info.test_fraction)
            lines.append(
                f"  ({self.info.id}: a seeded stratified {100 - test}/{test} split of the sorted "
                "file list — not the paper's test set, which came from an unrecoverable "
                "os.listdir order; every run records its own in split.csv, and split_file= "
                "pins one)"
            )
        if "group_facts" in self.extras:
            lines.append("  " + group_facts_line(self.extras["group_facts"]))
        if self.damaged:
            lines.append(f"  {len(self.damaged)} image(s) decode but look damaged (used):")
            lines += [f"    {path}: {reason}" for path, reason in self.damaged]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} unusable image(s):")
            lines += [f"    {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)

    def tf_dataset(
        self,
        split: str,
        batch_size: int = 16,
        shuffle: bool = False,
        seed: int = 0,
        epochs: int | None = None,
        first_epoch: int = 0,
    ):
        """Batches of (float32 images in [0, 1], int32 labels) read from the memmap cache.

        With `epochs`, the dataset holds epochs first_epoch … epochs-1 back to back, each in an
        order that depends only on (seed, epoch): a run resumed at epoch k sees exactly the
        batches an uninterrupted run would (tf.data's reshuffling depends on how often Keras
        happens to re-create iterators). Use it with fit(steps_per_epoch=steps_per_epoch(…))."""
        import tensorflow as tf

        view = self.splits[split]
        images, labels = view.source.images, view.source.labels
        shape = (None, *images.shape[1:])

        def gather(rows):
            return images[rows], labels[rows]

        def load(rows):
            x, y = tf.numpy_function(gather, [rows], [tf.uint8, tf.int32], stateful=False)
            x.set_shape(shape)
            y.set_shape((None,))
            return tf.cast(x, tf.float32) / 255.0, y

        indices = view.indices.astype(np.int64)
        if epochs is not None:
            orders = np.stack(
                [
                    np.random.default_rng([seed, e]).permutation(indices)
                    for e in range(first_epoch, epochs)
                ]
            )
            data = tf.data.Dataset.from_tensor_slices(orders).flat_map(
                lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
            )
        else:
            data = tf.data.Dataset.from_tensor_slices(indices)
            if shuffle:
                data = data.shuffle(len(view), seed=seed, reshuffle_each_iteration=True)
            data = data.batch(batch_size)
        data = data.map(load, num_parallel_calls=tf.data.AUTOTUNE)
        return data.prefetch(tf.data.AUTOTUNE)


def load_dataset(
    dataset_id: str,
    root,
    img_size=None,
    protocol: str = "paper",
    val_fraction: float = 0.15,
    seed: int = 42,
    cache_dir=None,
    workers: int | None = None,
    refresh: bool = False,
    split_file=None,
    skip_damaged: bool = False,
    channels: int | None = None,
    test_fraction: float = 0.2,
    folds: int = 0,
    fold: int = 1,
    resize: str = PAPER_RESIZE,
    reencode: bool = False,
    shortcuts: bool = False,
) -> Dataset:
    """Load one of the four datasets from the folder the user unzipped, through the cache.

    img_size: (H, W), default the paper's. protocol: "paper" (validation = test, as the original)
    or "holdout" (a stratified `val_fraction` of train, seeded; test touched once).
    split_file: a CSV file,split (e.g. a run's split.csv) that pins the split exactly. Under
    "paper" its val rows train too (validation is the test split); under "holdout" its val rows
    are the validation split, and without any a validation split is carved from its train rows.
    skip_damaged: drop images that decode but look damaged (the paper used them).
    dataset_id "Custom" (your own data; see data_setup.custom): channels (1 or 3) and
    test_fraction (when the data has no test split) apply; img_size defaults to
    CUSTOM_IMAGE_SIZE.
    folds ≥ 2: cross-validation fold `fold` (1..folds) of a stratified group k-fold seeded by
    `seed` (data_setup.splitting.fold_rows); it needs the "holdout" protocol, since a fold
    validates on a part of the training data and never on its test images.
    resize, reencode: the shortcut-neutral arms (data_setup.decode.RESIZE_MODES and
    REENCODE_QUALITY; issue 35); the defaults are the paper's squash and decode.
    shortcuts: also the header-only shortcut audit's summary (data_setup.shortcuts.
    recorded_summary, cached beside the decode cache), which a run records in metrics.json.
    """
    if dataset_id == CUSTOM:
        # split seed fixed (42) whatever the run's seed: every run tests on the same images
        size = img_size or CUSTOM_IMAGE_SIZE
        dataset_id = custom_dataset(root, channels or 1, size, test_fraction)
    info = dataset_info(dataset_id)
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    size_hw = tuple(int(v) for v in (img_size or info.image_size))
    if len(size_hw) != 2 or min(size_hw) < 2 or max(size_hw) > MAX_IMAGE_SIDE:
        raise ValueError(
            f"img_size must be [H, W] with sides from 2 to {MAX_IMAGE_SIDE}, got {img_size!r}"
        )
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    workers = workers or decode_workers()

    # the files of each official split, decoded once into the cache
    listing = discover(info, root)
    group_table, group_source = listing_groups(info, listing)
    if listing.problems:
        warnings.warn(
            f"{listing.root}: {len(listing.problems)} problem file(s):\n"
            + "\n".join(f"  {p}: {why}" for p, why in listing.problems),
            stacklevel=2,
        )
    sources = {
        split: cache_split(
            listing, info, split, size_hw, cache_dir, workers, refresh, resize, bool(reencode)
        )
        for split in listing.splits
    }
    skipped, damaged = _decode_report(listing, sources, skip_damaged)
    manifest = data_manifest(info, listing, cache_dir, workers)  # hashes: beside the cache
    found_shortcuts = recorded_summary(info, listing, cache_dir) if shortcuts else None

    # which rows train and test, then the protocol's validation rows (or a cross-validation fold)
    chosen = choose_rows(info, sources, split_file, listing.root, skip_damaged)
    where = dict(dataset_id=info.id, root=listing.root, groups=group_table)
    extras = {"split_file": str(split_file)} if split_file else {}
    if folds:
        if folds < 2 or protocol != "holdout":
            raise ValueError(
                f"cross-validation needs folds ≥ 2 and protocol 'holdout' (a fold validates on "
                f"training data, never on its test images); got folds={folds}, "
                f"protocol={protocol!r}"
            )
        pooled = "all" in sources  # no official split: the folds cover every image
        train_rows, val_rows, test_rows, kept, found = fold_rows(
            chosen, pooled, folds=folds, fold=fold, val_fraction=val_fraction,
            seed=seed, class_names=info.class_names, **where,
        )  # fmt: skip
        extras.update(
            folds=folds,
            fold=fold,
            fold_grouping=kept,
            fold_test="the held fold" if pooled else "the official test set",
        )
    else:
        train_rows, val_rows, kept, found = validation_rows(
            protocol, chosen, val_fraction=val_fraction, seed=seed, split_file=split_file,
            class_names=info.class_names, **where,
        )  # fmt: skip
        test_rows = chosen["test"]
        if kept is not None:
            extras["holdout_grouping"] = kept
    if found is not None:  # what the split's grouping found (largest_group_share, chains_split)
        extras["group_facts"] = found

    # the Dataset: each split a sorted row view into its cached official split
    test = Split("test", test_rows[0], np.sort(test_rows[1]))
    train = Split("train", train_rows[0], np.sort(train_rows[1]))
    val = test if val_rows is None else Split("val", val_rows[0], np.sort(val_rows[1]))
    missing = [c for i, c in enumerate(info.class_names) if not np.any(train.labels == i)]
    if missing:  # a model that never saw a class cannot be evaluated on it
        raise DatasetError(
            f"{listing.root}: no training images of class(es) {', '.join(missing)}; "
            f"expected every class of {', '.join(info.class_names)} in the training data"
        )
    fingerprint = hashlib.sha256(
        "|".join(s.fingerprint for s in sources.values()).encode()
    ).hexdigest()[:16]
    used = {f for split in (train, val, test) for f in split.files}
    return Dataset(
        info=info,
        root=listing.root,
        protocol=protocol,
        image_size=size_hw,
        splits={"train": train, "val": val, "test": test},
        skipped=skipped + [(f, f"{why} (skip_damaged)") for f, why in damaged if skip_damaged],
        problems=[(str(p), why) for p, why in listing.problems],
        fingerprint=fingerprint,
        extras=extras,
        damaged=[(f, why) for f, why in damaged if f in used],
        groups=group_table,
        grouping=group_source,
        manifest=manifest,
        resize=resize,
        reencode=bool(reencode),
        shortcuts=found_shortcuts,
    )


def _decode_report(listing: Listing, sources: dict[str, SourceSplit], skip_damaged: bool):
    """(skipped, damaged) over all cached splits, each warned about once; a split left with no
    readable image is an error."""
    skipped = [s for source in sources.values() for s in source.skipped]
    damaged = [(f, why) for source in sources.values() for f, why in source.damaged.items()]
    if skipped:
        warnings.warn(
            f"{listing.root}: skipped {len(skipped)} unusable image(s):\n"
            + "\n".join(f"  {p}: {why}" for p, why in skipped),
            stacklevel=3,
        )
    if damaged:
        warnings.warn(
            f"{listing.root}: {len(damaged)} image(s) decode but look damaged "
            + ("(skipped: skip_damaged=True)" if skip_damaged else "(used, as the paper did)")
            + ":\n"
            + "\n".join(f"  {p}: {why}" for p, why in damaged),
            stacklevel=3,
        )
    for source in sources.values():
        if len(source.labels) == 0:
            raise DatasetError(f"{listing.root}: split '{source.name}' has no readable images")
    return skipped, damaged
