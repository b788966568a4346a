"""Decode a dataset once into a uint8 on-disk cache and serve it through tf.data.

The paper read every image into a Python list of float32 arrays (peak ≈ 2× the float32 array:
~16 GB for HAM10000's training split). Here each official split is decoded once, in parallel,
into a memory-mapped uint8 `.npy` (¼ of float32, paged in on demand), keyed by dataset, split,
size, channels and a fingerprint of the file list; later runs open it instantly. Training reads
batches from the memmap and scales to [0, 1] inside the tf.data graph.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_class_weight
from tqdm.auto import tqdm

from data_setup.datasets import CUSTOM, DatasetInfo, dataset_info
from data_setup.files import (
    check_free_space,
    ensure_writable_dir,
    remove_stale_temps,
    write_atomic,
    write_json_atomic,
)
from data_setup.layouts import DatasetError, Listing, discover

CACHE_VERSION = 2  # 2: damaged files are decoded and recorded
PROTOCOLS = ("paper", "holdout")


def default_cache_dir() -> Path:
    return Path(os.environ.get("S3F_CACHE_DIR", Path.home() / ".cache" / "s3f-kit"))


# --------------------------------------------------------------------------- decoding


class BadImage(Exception):
    """One image that cannot be used; the reason is the message."""


def damage_of(data: np.ndarray) -> str | None:
    """Why a file that OpenCV decodes may still be damaged, or None. The paper used every file
    OpenCV decodes, so this only warns (skip_damaged=True drops them). Judged by content, not
    suffix: real folders hold PNGs named .jpg and the reverse. Bytes *after* a proper end
    marker (phone "motion photos", some exporters) are not damage."""
    raw = data.tobytes()
    if raw.startswith(b"\xff\xd8"):
        scan = raw.rfind(b"\xff\xda")  # last start-of-scan; entropy data stuffs every 0xFF
        if raw.find(b"\xff\xd9", max(scan, 0)) < 0:
            return "JPEG cut off (no end-of-image marker after its last scan)"
    elif raw.startswith(b"\x89PNG") and b"IEND" not in raw:
        return "PNG cut off (no IEND chunk)"
    return None


def read_bytes(path: Path) -> np.ndarray:
    try:
        data = np.fromfile(path, dtype=np.uint8)  # bytes first: works for any path encoding
    except OSError as error:  # permissions, I/O errors, a vanished file
        raise BadImage(f"unreadable ({error.strerror or error})") from error
    if data.size == 0:
        raise BadImage("empty file (0 bytes)")
    return data


def decode_bytes(
    data: np.ndarray, size_hw: tuple[int, int], channels: int, path: Path | None = None
) -> np.ndarray:
    flags = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    image = cv2.imdecode(data, flags)
    if image is None and path is not None:
        # The paper read files with cv2.imread, whose file decoder still returns a cut-off
        # JPEG (imdecode on the same bytes refuses it): use what the paper used.
        image = cv2.imread(str(path), flags)
    if image is None:
        raise BadImage("not a decodable image")
    if channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    height, width = size_hw
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return image.reshape(height, width, channels)


def decode_image(path: Path, size_hw: tuple[int, int], channels: int) -> np.ndarray:
    """The paper's preprocessing up to the float scale: gray or RGB, area-resized, uint8.
    Every file OpenCV decodes is used, as in the paper (see damage_of for warnings)."""
    return decode_bytes(read_bytes(path), size_hw, channels, path)


def _fingerprint(items: list[tuple[Path, int]], root: Path) -> str:
    digest = hashlib.sha256()
    for path, label in items:
        stat = path.stat()
        digest.update(
            f"{path.relative_to(root)}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode(
                errors="surrogateescape"
            )
        )
    return digest.hexdigest()[:16]


@dataclass
class SourceSplit:
    """One official split decoded into the cache: images (memmap) and labels."""

    name: str
    images: np.ndarray  # (N, H, W, C) uint8, memory-mapped
    labels: np.ndarray  # (N,) int32
    files: list[str]  # relative to the dataset root
    skipped: list[tuple[str, str]]  # (file, reason)
    damaged: dict[str, str]  # file (relative) → why it looks damaged; used unless skip_damaged
    fingerprint: str
    cache_path: Path


def _decode_into(path: Path, items, size_hw, channels, workers, description):
    """Decode `items` into a new .npy at `path`; returns (kept indices, skipped, damaged):
    skipped = (index, reason) that cannot be used, damaged = (index, reason) used but suspect."""
    height, width = size_hw
    array = np.lib.format.open_memmap(path, "w+", np.uint8, (len(items), height, width, channels))
    skipped, kept, damaged = [], [], []

    def work(index):
        file, _ = items[index]
        try:
            data = read_bytes(file)
            array[index] = decode_bytes(data, size_hw, channels, file)
            return index, None, damage_of(data)
        except BadImage as error:
            return index, str(error), None

    with ThreadPoolExecutor(workers) as pool:  # OpenCV releases the GIL while decoding
        results = pool.map(work, range(len(items)), chunksize=16)
        for index, reason, damage in tqdm(results, total=len(items), desc=description, unit="img"):
            if reason:
                skipped.append((index, reason))
            else:
                kept.append(index)
                if damage:
                    damaged.append((index, damage))
    array.flush()
    return kept, skipped, damaged


def _cache_split(listing: Listing, info, split, size_hw, channels, cache_dir, workers, refresh):
    items = listing.splits[split]
    fingerprint = _fingerprint(items, listing.root)
    key = hashlib.sha256(
        json.dumps(
            [CACHE_VERSION, info.id, split, list(size_hw), channels, fingerprint, str(listing.root)]
        ).encode()
    ).hexdigest()[:20]
    stem = f"{info.id}_{split}_{size_hw[0]}x{size_hw[1]}x{channels}_{key}"
    images_path, meta_path = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"
    if refresh or not (images_path.is_file() and meta_path.is_file()):
        ensure_writable_dir(cache_dir)
        remove_stale_temps(cache_dir)
        needed = len(items) * size_hw[0] * size_hw[1] * channels + 4096
        check_free_space(cache_dir, needed, f"the {info.id} {split} cache")
        tmp = cache_dir / f".{stem}.{os.getpid()}.tmp.npy"
        compact_tmp = cache_dir / f".{stem}.{os.getpid()}.compact.tmp.npy"
        try:
            kept, skipped, damaged = _decode_into(
                tmp,
                items,
                size_hw,
                channels,
                workers,
                f"{info.id} {split} → {size_hw[0]}×{size_hw[1]}",
            )
            if skipped:  # compact: only usable images stay, in order
                check_free_space(cache_dir, needed, f"compacting the {info.id} {split} cache")
                full = np.load(tmp, mmap_mode="r")
                compact = np.lib.format.open_memmap(
                    compact_tmp,
                    "w+",
                    np.uint8,
                    (len(kept), *full.shape[1:]),
                )
                for start in range(0, len(kept), 256):
                    compact[start : start + 256] = full[kept[start : start + 256]]
                compact.flush()
                del compact, full
                os.replace(compact_tmp, tmp)
            meta = {
                "files": [str(items[i][0].relative_to(listing.root)) for i in kept],
                "labels": [items[i][1] for i in kept],
                "skipped": [[str(items[i][0]), reason] for i, reason in skipped],
                "damaged": [
                    [str(items[i][0].relative_to(listing.root)), reason] for i, reason in damaged
                ],
                "fingerprint": fingerprint,
            }
            os.replace(tmp, images_path)  # atomic: a half-written cache is never picked up
            write_json_atomic(meta_path, meta)
        finally:
            tmp.unlink(missing_ok=True)
            compact_tmp.unlink(missing_ok=True)
    meta = json.loads(meta_path.read_text())
    return SourceSplit(
        name=split,
        images=np.load(images_path, mmap_mode="r"),
        labels=np.asarray(meta["labels"], dtype=np.int32),
        files=meta["files"],
        skipped=[tuple(s) for s in meta["skipped"]],
        damaged=dict(meta.get("damaged", [])),
        fingerprint=meta["fingerprint"],
        cache_path=images_path,
    )


# --------------------------------------------------------------------------- protocol splits


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
        """split.csv (file,split): what load_dataset(split_file=…) takes to pin this split."""
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["file", "split"])
        writer.writerows(self.split_table())
        write_atomic(Path(path), buffer.getvalue())

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
        if self.info.id == "BUSI" and "split_file" not in self.extras:
            lines.append(
                "  (BUSI: a seeded stratified 80/20 split of the sorted file list — not the "
                "paper's test set, which came from an unrecoverable os.listdir order; every run "
                "records its own in split.csv, and split_file= pins one)"
            )
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


def _stratified(indices, labels, fraction, seed, what):
    try:
        return train_test_split(indices, test_size=fraction, stratify=labels, random_state=seed)
    except ValueError as error:  # e.g. a class with a single image
        raise DatasetError(f"cannot make a stratified {what} split: {error}") from error


def _holdout_rows(source, rows, fraction, seed, features):
    """A stratified validation split that keeps each near-duplicate group on one side
    (data_setup.audit; `features`: the rows' cached audit features), so validation never
    scores copies of training images."""
    from sklearn.model_selection import StratifiedGroupKFold

    from data_setup import audit

    rows = np.asarray(rows)
    labels = source.labels[rows]
    groups = audit.duplicate_groups(features, progress="holdout")
    if len(set(groups)) < len(groups):
        folds = max(2, round(1 / fraction))
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        try:
            fit, val = next(splitter.split(rows, labels, groups))
        except ValueError:
            fit = val = np.array([], int)
        if len(np.unique(labels[fit])) == len(np.unique(labels)) and len(val):
            return rows[fit], rows[val]
        warnings.warn(
            "holdout: near-duplicate groups leave no stratified validation split; "
            "split without grouping",
            stacklevel=3,
        )
    return _stratified(rows, labels, fraction, seed, "holdout validation")


def read_split_file(path) -> dict[str, str]:
    """A split CSV (file,split; file relative to the dataset root) → {file: split}."""
    import csv

    path = Path(path).expanduser()
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
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


def _rows_from_split_file(table, sources, path):
    """{split: (source, rows)} from a split file; every usable image must be listed once."""
    where = {}
    for source in sources.values():
        for row, file in enumerate(source.files):
            where[file] = (source, row)
    unknown = sorted(set(table) - set(where))
    if unknown:
        raise DatasetError(
            f"{path}: {len(unknown)} listed file(s) are not usable images of this dataset, "
            f"e.g. {', '.join(unknown[:3])}"
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
) -> Dataset:
    """Load one of the four datasets from the folder the user unzipped, through the cache.

    img_size: (H, W), default the paper's. protocol: "paper" (validation = test, as the original)
    or "holdout" (a stratified `val_fraction` of train, seeded; test touched once).
    split_file: a CSV file,split (e.g. a run's split.csv) that pins the split exactly. Under
    "paper" its val rows train too (validation is the test split); under "holdout" its val rows
    are the validation split, and without any a validation split is carved from its train rows.
    skip_damaged: drop images that decode but look damaged (the paper used them).
    dataset_id "Custom" (your own data; see data_setup.custom): channels (1 or 3) and
    test_fraction (when the data has no test split) apply; img_size defaults to 256×256.
    """
    if dataset_id == CUSTOM:
        from data_setup.custom import custom_dataset

        # split seed fixed (42) whatever the run's seed: every run tests on the same images
        dataset_id = custom_dataset(root, channels or 1, img_size or (256, 256), test_fraction)
    info = dataset_info(dataset_id)
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    size_hw = tuple(int(v) for v in (img_size or info.image_size))
    if len(size_hw) != 2 or min(size_hw) < 2:
        raise ValueError(f"img_size must be [H, W] with positive sides, got {img_size!r}")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    workers = workers or min(8, os.cpu_count() or 1)
    listing = discover(dataset_id, root)
    if listing.problems:
        warnings.warn(
            f"{listing.root}: {len(listing.problems)} problem file(s):\n"
            + "\n".join(f"  {p}: {why}" for p, why in listing.problems),
            stacklevel=2,
        )
    sources = {
        split: _cache_split(
            listing, info, split, size_hw, info.channels, cache_dir, workers, refresh
        )
        for split in listing.splits
    }
    skipped = [s for source in sources.values() for s in source.skipped]
    damaged = [(f, why) for source in sources.values() for f, why in source.damaged.items()]
    if skipped:
        warnings.warn(
            f"{listing.root}: skipped {len(skipped)} unusable image(s):\n"
            + "\n".join(f"  {p}: {why}" for p, why in skipped),
            stacklevel=2,
        )
    if damaged:
        warnings.warn(
            f"{listing.root}: {len(damaged)} image(s) decode but look damaged "
            + ("(skipped: skip_damaged=True)" if skip_damaged else "(used, as the paper did)")
            + ":\n"
            + "\n".join(f"  {p}: {why}" for p, why in damaged),
            stacklevel=2,
        )
    for source in sources.values():
        if len(source.labels) == 0:
            raise DatasetError(f"{listing.root}: split '{source.name}' has no readable images")

    def usable(source, rows):
        if not skip_damaged or not source.damaged:
            return np.asarray(rows)
        return np.asarray([r for r in rows if source.files[r] not in source.damaged], dtype=int)

    extras = {}
    if split_file:
        chosen = _rows_from_split_file(read_split_file(split_file), sources, split_file)
        extras["split_file"] = str(split_file)
        train_src, train_rows = chosen["train"]
        test_src, test_rows = chosen["test"]
        if "val" in chosen and protocol == "paper":  # validation is the test split here
            val_src, val_rows = chosen["val"]
            if val_src is not train_src:
                raise DatasetError(f"{split_file}: 'val' rows must come from the training folder")
            train_rows = np.sort(np.concatenate([train_rows, val_rows]))
        elif "val" in chosen:
            extras["val_rows"] = chosen["val"]
    elif "all" in sources:  # no split of its own: a seeded stratified split
        every = sources["all"]
        all_rows = np.arange(len(every.labels))
        train_rows, test_rows = _stratified(
            all_rows, every.labels, info.test_fraction, info.split_seed, f"{info.id} train/test"
        )
        train_src = test_src = every
    else:
        train_src, test_src = sources["train"], sources["test"]
        train_rows, test_rows = np.arange(len(train_src.labels)), np.arange(len(test_src.labels))
    train_rows, test_rows = usable(train_src, train_rows), usable(test_src, test_rows)
    test = Split("test", test_src, np.sort(test_rows))
    if protocol == "paper":
        train, val = Split("train", train_src, np.sort(train_rows)), test
    elif "val_rows" in extras:
        val_src, val_rows = extras.pop("val_rows")
        train = Split("train", train_src, np.sort(train_rows))
        val = Split("val", val_src, np.sort(usable(val_src, val_rows)))
    else:
        from data_setup.audit_cache import source_features

        features = source_features(info.id, train_src, listing.root).take(train_rows)
        fit_rows, val_rows = _holdout_rows(train_src, train_rows, val_fraction, seed, features)
        train, val = (
            Split("train", train_src, np.sort(fit_rows)),
            Split("val", train_src, np.sort(val_rows)),
        )
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
    )
