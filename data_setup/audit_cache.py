"""The audit's per-image features (a 64×64 grayscale thumbnail and the SHA-256 of the file),
computed once per dataset split and kept beside the decode cache.

Decoding a 1–2 thousand pixel film is most of the audit's cost, so the features are cached
in `<cache>/<dataset>_<split>_audit64_<key>.npz`, keyed by the same fingerprint as the decoded
split (file names, labels, sizes, modification times: data_setup.loading) and by the dataset
root: any change to the data gives a new key, hence a recomputation. `s3f-data audit`, the
holdout grouping and every run's clean-test check read the same file. Written atomically
(data_setup.files), with a CRC-32 of its arrays (data_setup.cache.crc32_of); every read checks
that the archive holds exactly those arrays, uncompressed, no larger than its split's files
allow, of one row count and the right shapes and types, and that the checksum matches. A file
that does not is computed again, with one warning naming it and what did not match.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from data_setup.decode import decode_workers, pixels_problem

THUMB = 64
FEATURES_VERSION = 2  # bump when the thumbnail changes; 2: a checksum, checked on every read
_ARRAYS = ("files", "thumbs", "digests", "usable")  # and "checksum", of these four
# the most one row can take: its thumbnail, SHA-256 (hex), usable flag and file name (numpy
# stores names as 4-byte characters padded to the longest; a path is at most 4096 bytes)
ROW_BYTES_MAX = THUMB * THUMB + 64 + 1 + 4 * 4096


@dataclass
class Features:
    """Per image: thumbnail (N, 64, 64) uint8, SHA-256 of the file (None for in-memory
    images) and whether it decoded (an unusable image matches nothing)."""

    thumbs: np.ndarray
    digests: list[str] | None = None
    usable: np.ndarray | None = None

    def __post_init__(self):
        if self.usable is None:
            self.usable = np.ones(len(self.thumbs), bool)

    def __len__(self):
        return len(self.thumbs)

    def take(self, rows) -> Features:
        rows = np.asarray(rows, int)
        digests = None if self.digests is None else [self.digests[r] for r in rows]
        return Features(self.thumbs[rows], digests, self.usable[rows])

    @staticmethod
    def concatenate(parts) -> Features:
        known = all(p.digests is not None for p in parts)
        digests = [d for p in parts for d in p.digests] if known else None
        return Features(
            np.concatenate([p.thumbs for p in parts]).reshape(-1, THUMB, THUMB),
            digests,
            np.concatenate([p.usable for p in parts]),
        )


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """The 64×64 uint8 grayscale image the search works on."""
    return cv2.resize(gray, (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[-1] == 1:
        return image[..., 0]
    if image.ndim == 3:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return image


def features_of_arrays(images) -> Features:
    """Features of in-memory (N, H, W[, C]) uint8 images (no digests)."""
    return Features(np.array([thumbnail(_gray(np.asarray(im))) for im in images], np.uint8)
                    .reshape(-1, THUMB, THUMB))  # fmt: skip


def features_of_files(paths, workers: int | None = None, desc: str = "audit features"):
    """Features of image files; a file that does not decode is marked unusable."""
    paths = list(paths)

    def one(path):
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError:
            return None, ""
        if len(data) and pixels_problem(data):  # refused as decoding refuses it (data_setup.decode)
            return None, hashlib.sha256(data.tobytes()).hexdigest()
        # Reduced decoding: a JPEG decodes straight to ½, ¼ or ⅛ size (much faster for
        # 2000 px films); the thumbnail is far smaller than any of them.
        image = None
        if len(data):
            shorter = _reduced_flag(data)
            image = cv2.imdecode(data, shorter)
            if image is None:
                image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
        if image is None and len(data):  # cut-off JPEGs: the file decoder still reads them
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        thumb = thumbnail(image) if image is not None and image.size else None
        return thumb, hashlib.sha256(data.tobytes()).hexdigest() if len(data) else ""

    workers = workers or decode_workers()
    with ThreadPoolExecutor(workers) as pool:  # OpenCV releases the GIL while decoding
        results = list(tqdm(pool.map(one, paths), total=len(paths), desc=desc, unit="img",
                            disable=len(paths) < 200))  # fmt: skip
    thumbs = np.zeros((len(paths), THUMB, THUMB), np.uint8)
    usable = np.zeros(len(paths), bool)
    for index, (thumb, _) in enumerate(results):
        if thumb is not None:
            thumbs[index], usable[index] = thumb, True
    return Features(thumbs, [d for _, d in results], usable)


def _reduced_flag(data: np.ndarray) -> int:
    """IMREAD_REDUCED_GRAYSCALE_k for JPEGs big enough that k-fold reduction still leaves
    ≥ 4× the thumbnail's side; plain grayscale otherwise (PNGs gain nothing)."""
    if data[:2].tobytes() != b"\xff\xd8":
        return cv2.IMREAD_GRAYSCALE
    size = _jpeg_size(data)
    if size is None:
        return cv2.IMREAD_GRAYSCALE
    shorter = min(size)
    for factor, flag in ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
                         (2, cv2.IMREAD_REDUCED_GRAYSCALE_2)):  # fmt: skip
        if shorter // factor >= 4 * THUMB:
            return flag
    return cv2.IMREAD_GRAYSCALE


def _jpeg_size(data: np.ndarray) -> tuple[int, int] | None:
    """(height, width) from a JPEG's start-of-frame marker, or None."""
    raw = data[: 1 << 16].tobytes()
    at = 2
    while at + 9 < len(raw):
        if raw[at] != 0xFF:
            return None
        marker = raw[at + 1]
        length = int.from_bytes(raw[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(raw[at + 5 : at + 7], "big"), int.from_bytes(
                raw[at + 7 : at + 9], "big"
            )
        at += 2 + length
    return None


def _cache_path(cache_dir: Path, dataset_id: str, split: str, fingerprint: str, root) -> Path:
    key = hashlib.sha256(
        json.dumps([FEATURES_VERSION, dataset_id, split, fingerprint, str(root)]).encode()
    ).hexdigest()[:20]
    return cache_dir / f"{dataset_id}_{split}_audit{THUMB}_{key}.npz"


def split_features(
    dataset_id: str,
    split: str,
    root,
    items,
    fingerprint: str | None = None,
    cache_dir=None,
    workers: int | None = None,
    listed: int | None = None,
) -> Features:
    """Features of one split's files (`items`: (path, label) as in a Listing), in that order,
    from the cache when the fingerprint matches, else computed and cached. listed: how many
    files the fingerprint covers (default len(items); more where `items` leaves out the files
    that did not decode): the cache holds at most that many rows."""
    from data_setup.cache import CacheRebuilt, crc32_of, default_cache_dir
    from data_setup.cache import files_fingerprint as _fingerprint
    from data_setup.files import ensure_writable_dir, write_atomic

    root = Path(root)
    fingerprint = fingerprint or _fingerprint(items, root)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    path = _cache_path(cache_dir, dataset_id, split, fingerprint, root)
    names = [str(Path(p).relative_to(root)) for p, _ in items]
    cached, problem = _read(path, max(listed or 0, len(items)))
    if cached is not None:
        where = {name: row for row, name in enumerate(cached[0])}
        if all(name in where for name in names):
            return cached[1].take([where[name] for name in names])
    elif problem:
        warnings.warn(f"{path}: {problem}; computing the audit features again", CacheRebuilt,
                      stacklevel=2)  # fmt: skip
    features = features_of_files([p for p, _ in items], workers, f"{dataset_id} {split} audit")
    ensure_writable_dir(cache_dir)
    arrays = {
        "files": np.array(names, dtype=str),
        "thumbs": features.thumbs,
        "digests": np.array(features.digests, dtype="S64"),
        "usable": features.usable,
    }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, checksum=np.array(crc32_of(arrays[a] for a in _ARRAYS)))
    write_atomic(path, buffer.getvalue())
    return features


def source_features(dataset_id: str, source, root) -> Features:
    """Features of a cached official split's rows (data_setup.loading.SourceSplit), from the
    feature cache beside its decode cache."""
    root = Path(root)
    items = [(root / name, int(label)) for name, label in zip(source.files, source.labels,
                                                               strict=True)]  # fmt: skip
    return split_features(dataset_id, source.name, root, items, source.fingerprint,
                          source.cache_path.parent,
                          listed=len(source.files) + len(source.skipped))  # fmt: skip


def _declared_bytes(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> int:
    """The bytes an .npy member's header says its array takes (read before numpy allocates it)."""
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"npy format {version}")
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def _archive_problem(path: Path, rows_at_most: int) -> str | None:
    """What makes `path` not a feature cache numpy may read (sizes bounded before it allocates
    anything), or None."""
    size, bound = path.stat().st_size, 4096 + rows_at_most * ROW_BYTES_MAX
    if size > bound:
        return f"{size:,} bytes, more than {bound:,} for at most {rows_at_most:,} images"
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        names = sorted(m.filename for m in members)
        if names != sorted(f"{a}.npy" for a in (*_ARRAYS, "checksum")):
            return f"holds {', '.join(names) or 'nothing'}, not the feature arrays"
        for member in members:  # np.savez stores: no member can unpack beyond the file's size
            if member.compress_type != zipfile.ZIP_STORED:
                return f"{member.filename} is compressed (the kit stores it uncompressed)"
            if _declared_bytes(archive, member) > member.file_size:
                return f"{member.filename} claims more data than it holds"
    return None


def _read(path: Path, rows_at_most: int):
    """(files, Features) from the feature cache at `path` and None; (None, None) when there is
    none; (None, what is wrong) when it is damaged or not what it claims to be."""
    from data_setup.cache import crc32_of

    if not path.is_file():
        return None, None
    try:
        problem = _archive_problem(path, rows_at_most)
        if problem:
            return None, problem
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in (*_ARRAYS, "checksum")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        return None, f"not a readable feature archive ({error})"
    files, thumbs, digests, usable = (arrays[name] for name in _ARRAYS)
    if files.ndim != 1 or files.dtype.kind != "U":
        return None, f"'files' is {files.dtype} of shape {files.shape}, not a list of names"
    rows = len(files)
    expected = {
        "thumbs": (np.dtype(np.uint8), (rows, THUMB, THUMB)),
        "digests": (np.dtype("S64"), (rows,)),
        "usable": (np.dtype(np.bool_), (rows,)),
    }
    for name, (dtype, shape) in expected.items():
        if arrays[name].dtype != dtype or arrays[name].shape != shape:
            return None, (
                f"'{name}' is {arrays[name].dtype} of shape {arrays[name].shape}, expected "
                f"{dtype} of shape {shape} for the {rows} file(s)"
            )
    if rows > rows_at_most:
        return None, f"{rows:,} rows, more than the split's {rows_at_most:,} files"
    if str(arrays["checksum"]) != crc32_of(arrays[name] for name in _ARRAYS):
        return None, "its checksum does not match its arrays (damaged or changed)"
    features = Features(thumbs, [d.decode() for d in digests], usable)
    return ([str(f) for f in files], features), None
