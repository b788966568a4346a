"""The decode cache: each official split decoded once into a memory-mapped uint8 `.npy`.

The paper read every image into a Python list of float32 arrays (peak ≈ 2× the float32 array:
~16 GB for HAM10000's training split). Here each official split is decoded once, in parallel,
into a memory-mapped uint8 `.npy` (¼ of float32, paged in on demand), keyed by dataset, split,
size, channels and a fingerprint of the file list; later runs open it instantly. Files that
cannot be decoded are left out (and recorded); files that decode but look damaged are kept and
recorded (data_setup.decode.damage_of).

Each entry's JSON header says what the entry is: the images' shape (count, H, W, C), the files
and their labels with a digest of both, and a CRC-32 of the `.npy` computed when it was written.
Every load checks them (the CRC once per process per file state: 0.3–0.6 s/GB, HAM10000's
2.1 GB in 0.7–1.2 s, benchmarks/bench_cache_checksum.py, docs/scale.md) and against the
dataset's listing; an entry that is not what its key says (damaged, cut short, edited, planted
under another key) is decoded again, with one warning naming the file and what did not match.
This guards against corruption, not against someone who can write to the cache folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from data_setup.decode import PAPER_RESIZE, BadImage, damage_of, decode_bytes, read_bytes
from data_setup.files import (
    check_free_space,
    ensure_writable_dir,
    remove_path,
    remove_stale_temps,
    sha256_of,
    write_json_atomic,
)
from data_setup.layouts import DatasetError, Listing, file_problem

CACHE_VERSION = 4  # 2: damaged files are decoded and recorded; 3: decoder warnings are damage;
# 4: the header records shape, labels digest and content checksum, checked on every load
HEADER_BYTES_PER_FILE = 16 << 10  # a header's bound: a path, label, reason (JSON) per listed file
_CHUNK = 16 << 20  # bytes read per step of a checksum


class CacheRebuilt(UserWarning):
    """A cache entry was not what its key says and is being built again (the message names the
    file and what did not match)."""


def crc32_of(buffers) -> str:
    """The kit's content checksum of a sequence of bytes-like objects: CRC-32 (zlib; 1.8–3.1 GB/s
    on this project's machine, the fastest in the standard library; a corruption check, not a
    cryptographic one) as 'crc32:xxxxxxxx'."""
    crc = 0
    for buffer in buffers:
        crc = zlib.crc32(buffer, crc)
    return f"crc32:{crc:08x}"


def content_checksum(path) -> str:
    """crc32_of a file's bytes, read in 16 MiB blocks (page cache, not the process's RSS)."""
    with open(path, "rb") as handle:
        return crc32_of(iter(lambda: handle.read(_CHUNK), b""))


def labels_digest(files: list[str], labels: list[int]) -> str:
    """A cache entry's (file, label) pairs in one digest: rotated or edited labels change it."""
    return hashlib.sha256(json.dumps([files, labels]).encode()).hexdigest()[:16]


# (path, device, inode, size, mtime) of the .npy files whose checksum this process has verified
# (or written): a sweep's fold runs or a notebook that reloads read the 2 GB once, not each time
_VERIFIED: set[tuple] = set()


def _file_state(path: Path) -> tuple:
    stat = path.stat()
    return str(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


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


def _pairs(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)
        for pair in value
    )


def _all(value, kind) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, kind) and not isinstance(v, bool) for v in value
    )


def _ints(value) -> bool:
    return _all(value, int)


# what each header field must be (a header that is not this is damaged, whatever else it holds)
_HEADER_FIELDS = {
    "files": ("a list of file names", lambda v: _all(v, str)),
    "labels": ("a list of integers", _ints),
    "skipped": ("a list of [file, reason]", _pairs),
    "damaged": ("a list of [file, reason]", _pairs),
    "fingerprint": ("a string", lambda v: isinstance(v, str)),
    "shape": ("[count, height, width, channels]", lambda v: _ints(v) and len(v) == 4),
    "labels_digest": ("a string", lambda v: isinstance(v, str)),
    "checksum": ("a string", lambda v: isinstance(v, str)),
}


def _json_object(path: Path, files: int, subject: str):
    """(the JSON object at `path`, None), or (None, why not): a cache entry's JSON is read only
    up to a size that its number of files allows, and must be an object. `subject` names it in
    the sentence ("the header", "it")."""
    size, bound = path.stat().st_size, 4096 + files * HEADER_BYTES_PER_FILE
    if size > bound:
        return None, f"{subject} is {size:,} bytes, more than {bound:,} for {files} files"
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as error:
        return None, f"{subject} cannot be read ({error.strerror or error})"
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None, f"{subject} is not JSON"
    if not isinstance(value, dict):
        return None, f"{subject} is a JSON {type(value).__name__}, not an object"
    return value, None


def _header_problem(meta_path: Path, items, root, expected_shape, fingerprint):
    """(header, None) when the JSON header at meta_path is what the entry's key says, else
    (None, what is wrong, in words)."""
    meta, problem = _json_object(meta_path, len(items), "the header")
    if problem:
        return None, problem
    for field, (what, valid) in _HEADER_FIELDS.items():
        if field not in meta:
            return None, f"the header has no '{field}'"
        if not valid(meta[field]):
            return None, f"the header's '{field}' is not {what}"
    files, labels = meta["files"], meta["labels"]
    if meta["fingerprint"] != fingerprint:
        return None, "the header's file fingerprint is not the key's"
    if len(labels) != len(files):
        return None, f"the header lists {len(files)} files but {len(labels)} labels"
    if len(set(files)) != len(files):
        return None, "the header lists a file twice"
    if tuple(meta["shape"]) != (len(files), *expected_shape):
        return None, (
            f"the header says shape {tuple(meta['shape'])}, expected "
            f"{(len(files), *expected_shape)}"
        )
    if labels_digest(files, labels) != meta["labels_digest"]:
        return None, "the labels (or files) differ from their digest"
    listed = {str(path.relative_to(root)): label for path, label in items}
    for file, label in zip(files, labels, strict=True):
        if file not in listed:
            return None, f"the header lists {file}, which the dataset does not"
        if listed[file] != label:
            return None, f"the header gives {file} label {label}, the dataset {listed[file]}"
    return meta, None


def _open_cached(split, images_path, meta_path, items, root, expected_shape, fingerprint):
    """(SourceSplit, None) for a cache entry that is what its key says, else (None, the file and
    what did not match). The .npy's shape and dtype are checked on every open, its checksum once per
    process per file state (_VERIFIED)."""
    meta, problem = _header_problem(meta_path, items, root, expected_shape, fingerprint)
    if problem:
        return None, f"{meta_path}: {problem}"
    try:
        images = np.load(images_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        return None, f"{images_path}: does not open as .npy ({error})"
    if not isinstance(images, np.ndarray):  # an .npz archive under the .npy name
        images.close()
        return None, f"{images_path}: not an .npy array"
    if images.dtype != np.uint8 or images.shape != tuple(meta["shape"]):
        return None, (
            f"{images_path}: holds {images.dtype} images of shape {images.shape}, its header "
            f"says uint8 {tuple(meta['shape'])}"
        )
    state = _file_state(images_path)
    if state not in _VERIFIED:
        try:
            checksum = content_checksum(images_path)
        except OSError as error:
            return None, f"{images_path}: cannot be read ({error.strerror or error})"
        if checksum != meta["checksum"]:
            return None, f"{images_path}: its checksum is not its header's (damaged or changed)"
        _VERIFIED.add(state)
    return SourceSplit(
        name=split,
        images=images,
        labels=np.asarray(meta["labels"], dtype=np.int32),
        files=meta["files"],
        skipped=[tuple(s) for s in meta["skipped"]],
        damaged=dict(meta["damaged"]),
        fingerprint=meta["fingerprint"],
        cache_path=images_path,
    ), None


def _decode_into(path: Path, items, size_hw, channels, workers, description, arms=()):
    """Decode `items` into a new .npy at `path`; returns (kept indices, skipped, damaged):
    skipped = (index, reason) that cannot be used, damaged = (index, reason) used but suspect."""
    height, width = size_hw
    array = np.lib.format.open_memmap(path, "w+", np.uint8, (len(items), height, width, channels))
    skipped, kept, damaged = [], [], []

    def work(index):
        file, _ = items[index]
        try:
            data = read_bytes(file)
            array[index] = decode_bytes(data, size_hw, channels, file, *arms)
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


def arms_tag(resize: str = PAPER_RESIZE, reencode: bool = False) -> str:
    """'' for the paper's decode, else the shortcut-neutral arms (data_setup.decode) in a name:
    '-crop', '-reencode', '-reflect-reencode'. Part of a cache entry's key and name only when
    not the paper's, so the paper's entries keep theirs."""
    return "".join(
        ["" if resize == PAPER_RESIZE else f"-{resize}", "-reencode" if reencode else ""]
    )


def cache_split(
    listing: Listing,
    info,
    split,
    size_hw,
    cache_dir,
    workers,
    refresh,
    resize: str = PAPER_RESIZE,
    reencode: bool = False,
) -> SourceSplit:
    """Official split `split` of `listing` decoded to `size_hw` (H, W) at info.channels, from the
    cache when its key (dataset, split, size, channels, file fingerprint, root, and the
    shortcut-neutral arms where not the paper's) is there and the entry is what the key says
    (_open_cached; else a CacheRebuilt warning), else decoded (in `workers` threads) and
    written atomically; refresh: decode again regardless."""
    items, channels = listing.splits[split], info.channels
    fingerprint = files_fingerprint(items, listing.root)
    tag = arms_tag(resize, reencode)
    keyed = [CACHE_VERSION, info.id, split, list(size_hw), channels, fingerprint, str(listing.root)]
    key = hashlib.sha256(json.dumps(keyed + ([tag] if tag else [])).encode()).hexdigest()[:20]
    stem = f"{info.id}_{split}_{size_hw[0]}x{size_hw[1]}x{channels}{tag}_{key}"
    images_path, meta_path = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"
    expected_shape = (size_hw[0], size_hw[1], channels)
    if not refresh and images_path.is_file() and meta_path.is_file():
        cached, problem = _open_cached(
            split, images_path, meta_path, items, listing.root, expected_shape, fingerprint
        )
        if cached is not None:
            return cached
        warnings.warn(f"{problem}; decoding the split again", CacheRebuilt, stacklevel=3)
    # one of the pair alone is no mismatch: a writer between its two renames, or one killed there
    ensure_writable_dir(cache_dir)
    remove_stale_temps(cache_dir)
    needed = len(items) * size_hw[0] * size_hw[1] * channels + 4096
    check_free_space(cache_dir, needed, f"the {info.id} {split} cache")
    tmp = cache_dir / f".{stem}.{os.getpid()}.tmp.npy"
    compact_tmp = cache_dir / f".{stem}.{os.getpid()}.compact.tmp.npy"
    for name in (tmp, compact_tmp):  # open_memmap follows links: a planted one goes first
        remove_path(name)
    try:
        kept, skipped, damaged = _decode_into(
            tmp,
            items,
            size_hw,
            channels,
            workers,
            f"{info.id} {split} → {size_hw[0]}×{size_hw[1]}{tag}",
            (resize, reencode),
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
        files = [str(items[i][0].relative_to(listing.root)) for i in kept]
        labels = [items[i][1] for i in kept]
        meta = {
            "files": files,
            "labels": labels,
            "skipped": [[str(items[i][0]), reason] for i, reason in skipped],
            "damaged": [
                [str(items[i][0].relative_to(listing.root)), reason] for i, reason in damaged
            ],
            "fingerprint": fingerprint,
            "shape": [len(kept), *expected_shape],
            "labels_digest": labels_digest(files, labels),
            "checksum": content_checksum(tmp),  # once, as written; checked on every load
        }
        os.replace(tmp, images_path)  # atomic: a half-written cache is never picked up
        write_json_atomic(meta_path, meta)
    finally:
        tmp.unlink(missing_ok=True)
        compact_tmp.unlink(missing_ok=True)
    _VERIFIED.add(_file_state(images_path))  # this process wrote it: no need to read it back
    return SourceSplit(
        name=split,
        images=np.load(images_path, mmap_mode="r"),
        labels=np.asarray(labels, dtype=np.int32),
        files=files,
        skipped=[tuple(s) for s in meta["skipped"]],
        damaged=dict(meta["damaged"]),
        fingerprint=fingerprint,
        cache_path=images_path,
    )


# --------------------------------------------------------------------------- content hashes
# The data manifest (data_setup.manifest) needs each file's SHA-256. On Google Drive reading
# 6,000 files costs minutes, so each split's hashes are stored beside its decode cache entry,
# keyed by the same file fingerprint (path, label, size, mtime): a run reads the files once,
# later runs read a small JSON. Checked on load like the decode entries (bounded, its fields, its
# key's fingerprint, the dataset's files in order); anything else is hashed again with a warning.

HASHES_VERSION = 1
_SHA256_HEX = frozenset("0123456789abcdef")


def _is_sha256(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _SHA256_HEX


def _hashes_problem(path: Path, files: list[str], fingerprint: str):
    """(hashes, None) when the hash entry at `path` is what its key says, else (None, why)."""
    entry, problem = _json_object(path, len(files), "it")
    if problem:
        return None, problem
    if entry.get("fingerprint") != fingerprint:
        return None, "its file fingerprint is not the key's"
    if entry.get("files") != files:
        return None, "it does not list the dataset's files"
    hashes = entry.get("sha256")
    if not isinstance(hashes, list) or len(hashes) != len(files):
        return None, f"its 'sha256' is not a list of {len(files)} hashes"
    if not all(_is_sha256(h) for h in hashes):
        return None, "its 'sha256' holds something that is not a SHA-256"
    return hashes, None


def file_hashes(listing: Listing, info, split, cache_dir, workers) -> list[str | None]:
    """The content SHA-256 of each file of `listing.splits[split]`, in order (None for one that
    cannot be read now), from the hash entry beside the split's decode cache when its key is
    there and sound, else read (in `workers` threads) and stored atomically. cache_dir None:
    read, store nothing (a cache folder that cannot be written is no reason to refuse)."""
    items = listing.splits[split]
    files = [str(path.relative_to(listing.root)) for path, _ in items]
    fingerprint = files_fingerprint(items, listing.root)
    key = hashlib.sha256(
        json.dumps([HASHES_VERSION, info.id, split, fingerprint, str(listing.root)]).encode()
    ).hexdigest()[:20]
    path = Path(cache_dir) / f"{info.id}_{split}_sha256_{key}.json" if cache_dir else None
    if path is not None and path.is_file():
        hashes, problem = _hashes_problem(path, files, fingerprint)
        if hashes is not None:
            return hashes
        warnings.warn(f"{path}: {problem}; hashing the files again", CacheRebuilt, stacklevel=3)

    def work(item):
        try:
            return sha256_of(item[0])
        except OSError:
            return None  # the decode cache names it (skipped); the manifest counts it unread

    with ThreadPoolExecutor(workers) as pool:  # hashlib releases the GIL; Drive waits overlap
        hashes = list(
            tqdm(pool.map(work, items), total=len(items), desc=f"{info.id} {split} sha256")
        )
    if path is not None and None not in hashes:  # a file unread now may be readable next time
        try:
            ensure_writable_dir(path.parent)
            write_json_atomic(path, {"fingerprint": fingerprint, "files": files, "sha256": hashes})
        except OSError as error:  # CacheError, a full disk: the hashes are still right
            warnings.warn(f"{path}: the file hashes were not stored ({error})", stacklevel=3)
    return hashes
