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

from data_setup.datasets import DatasetInfo, dataset_info
from data_setup.files import write_json_atomic
from data_setup.layouts import DatasetError, Listing, discover

CACHE_VERSION = 1
PROTOCOLS = ("paper", "holdout")
BUSI_TEST_FRACTION, BUSI_SPLIT_SEED = 0.2, 42  # the paper's BUSI split


def default_cache_dir() -> Path:
    return Path(os.environ.get("S3F_CACHE_DIR", Path.home() / ".cache" / "s3f-kit"))


# --------------------------------------------------------------------------- decoding


class BadImage(Exception):
    """One image that cannot be used; the reason is the message."""


def _looks_truncated(data: np.ndarray) -> bool:
    # OpenCV decodes a cut-off JPEG into a half-grey picture without complaint; check the end.
    # Judged by content, not suffix: real folders hold PNGs named .jpg and the reverse.
    head, tail = data[:8].tobytes(), data[-256:].tobytes()
    if head.startswith(b"\xff\xd8"):
        return b"\xff\xd9" not in tail
    if head.startswith(b"\x89PNG"):
        return b"IEND" not in tail
    return False


def decode_image(path: Path, size_hw: tuple[int, int], channels: int) -> np.ndarray:
    """The paper's preprocessing up to the float scale: gray or RGB, area-resized, uint8."""
    data = np.fromfile(path, dtype=np.uint8)  # bytes first: works for any path encoding
    if data.size == 0:
        raise BadImage("empty file (0 bytes)")
    if _looks_truncated(data):
        raise BadImage("truncated (no end-of-image marker)")
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR)
    if image is None:
        raise BadImage("not a decodable image")
    if channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    height, width = size_hw
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return image.reshape(height, width, channels)


def _fingerprint(items: list[tuple[Path, int]], root: Path) -> str:
    digest = hashlib.sha256()
    for path, label in items:
        stat = path.stat()
        digest.update(
            f"{path.relative_to(root)}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode()
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
    fingerprint: str
    cache_path: Path


def _decode_into(path: Path, items, size_hw, channels, workers, description):
    """Decode `items` into a new .npy at `path`; returns (kept indices, skipped)."""
    height, width = size_hw
    array = np.lib.format.open_memmap(path, "w+", np.uint8, (len(items), height, width, channels))
    skipped, kept = [], []

    def work(index):
        file, _ = items[index]
        try:
            array[index] = decode_image(file, size_hw, channels)
            return index, None
        except BadImage as error:
            return index, str(error)

    with ThreadPoolExecutor(workers) as pool:  # OpenCV releases the GIL while decoding
        results = pool.map(work, range(len(items)), chunksize=16)
        for index, reason in tqdm(results, total=len(items), desc=description, unit="img"):
            if reason:
                skipped.append((index, reason))
            else:
                kept.append(index)
    array.flush()
    return kept, skipped


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
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f".{stem}.{os.getpid()}.tmp.npy"
        compact_tmp = cache_dir / f".{stem}.{os.getpid()}.compact.tmp.npy"
        try:
            kept, skipped = _decode_into(
                tmp,
                items,
                size_hw,
                channels,
                workers,
                f"{info.id} {split} → {size_hw[0]}×{size_hw[1]}",
            )
            if skipped:  # compact: only usable images stay, in order
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
) -> Dataset:
    """Load one of the four datasets from the folder the user unzipped, through the cache.

    img_size: (H, W), default the paper's. protocol: "paper" (validation = test, as the original)
    or "holdout" (a stratified `val_fraction` of train, seeded; test touched once).
    """
    info = dataset_info(dataset_id)
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    size_hw = tuple(int(v) for v in (img_size or info.image_size))
    if len(size_hw) != 2 or min(size_hw) < 8:
        raise ValueError(f"img_size must be [H, W] with sides ≥ 8, got {img_size!r}")
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
    if skipped:
        warnings.warn(
            f"{listing.root}: skipped {len(skipped)} unusable image(s):\n"
            + "\n".join(f"  {p}: {why}" for p, why in skipped),
            stacklevel=2,
        )
    for source in sources.values():
        if len(source.labels) == 0:
            raise DatasetError(f"{listing.root}: split '{source.name}' has no readable images")

    if dataset_id == "BUSI":  # one folder; the paper's stratified 80/20 split with seed 42
        every = sources["all"]
        all_rows = np.arange(len(every.labels))
        train_rows, test_rows = _stratified(
            all_rows, every.labels, BUSI_TEST_FRACTION, BUSI_SPLIT_SEED, "BUSI train/test"
        )
        train_src = test_src = every
    else:
        train_src, test_src = sources["train"], sources["test"]
        train_rows, test_rows = np.arange(len(train_src.labels)), np.arange(len(test_src.labels))
    test = Split("test", test_src, np.sort(test_rows))
    if protocol == "paper":
        train, val = Split("train", train_src, np.sort(train_rows)), test
    else:
        fit_rows, val_rows = _stratified(
            train_rows, train_src.labels[train_rows], val_fraction, seed, "holdout validation"
        )
        train, val = (
            Split("train", train_src, np.sort(fit_rows)),
            Split("val", train_src, np.sort(val_rows)),
        )
    fingerprint = hashlib.sha256(
        "|".join(s.fingerprint for s in sources.values()).encode()
    ).hexdigest()[:16]
    return Dataset(
        info=info,
        root=listing.root,
        protocol=protocol,
        image_size=size_hw,
        splits={"train": train, "val": val, "test": test},
        skipped=skipped,
        problems=[(str(p), why) for p, why in listing.problems],
        fingerprint=fingerprint,
    )
