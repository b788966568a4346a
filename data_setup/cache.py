"""The decode cache: each official split decoded once into a memory-mapped uint8 `.npy`.

The paper read every image into a Python list of float32 arrays (peak ≈ 2× the float32 array:
~16 GB for HAM10000's training split). Here each official split is decoded once, in parallel,
into a memory-mapped uint8 `.npy` (¼ of float32, paged in on demand), keyed by dataset, split,
size, channels and a fingerprint of the file list; later runs open it instantly. Files that
cannot be decoded are left out (and recorded); files that decode but look damaged are kept and
recorded (data_setup.decode.damage_of).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from data_setup.decode import BadImage, damage_of, decode_bytes, read_bytes
from data_setup.files import (
    check_free_space,
    ensure_writable_dir,
    remove_stale_temps,
    write_json_atomic,
)
from data_setup.layouts import DatasetError, Listing, file_problem

CACHE_VERSION = 3  # 2: damaged files are decoded and recorded; 3: decoder warnings are damage


def default_cache_dir() -> Path:
    """$S3F_CACHE_DIR, else ~/.cache/s3f-kit (the audit's feature cache sits beside it too)."""
    return Path(os.environ.get("S3F_CACHE_DIR", Path.home() / ".cache" / "s3f-kit"))


def files_fingerprint(items: list[tuple[Path, int]], root: Path) -> str:
    """A split's identity: each file's path (relative to root), label, size and mtime.

    `items` come from discover, which keeps only usable files (layouts.file_problem); one that
    stopped being usable since (removed, replaced by a link) is named, never a traceback."""
    digest = hashlib.sha256()
    for path, label in items:
        try:
            stat = path.stat()
            name = path.relative_to(root)
        except (OSError, ValueError) as error:
            why = file_problem(path, root) or (getattr(error, "strerror", None) or str(error))
            raise DatasetError(
                f"{path}: {why}; it changed since the dataset was listed: run again"
            ) from None
        digest.update(
            f"{name}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode(errors="surrogateescape")
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


def cache_split(listing: Listing, info, split, size_hw, cache_dir, workers, refresh) -> SourceSplit:
    """Official split `split` of `listing` decoded to `size_hw` (H, W) at info.channels, from the
    cache when its key (dataset, split, size, channels, file fingerprint, root) is there, else
    decoded (in `workers` threads) and written atomically; refresh: decode again regardless."""
    items, channels = listing.splits[split], info.channels
    fingerprint = files_fingerprint(items, listing.root)
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
        damaged=dict(meta["damaged"]),
        fingerprint=meta["fingerprint"],
        cache_path=images_path,
    )
