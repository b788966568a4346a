"""Leakage audit: exact and near-duplicate images within and across a dataset's splits.

BUSI is reported to hold ~19 % duplicated images and HAM10000 several photos per lesion, so a
test image may have a (near-)copy in training and inflate every number.

    python -m data_setup audit BUSI ~/data/BUSI --out busi_pairs.csv

Near-duplicates are found in two stages (see NEAR_THRESHOLD and MIN_CORRELATION below): a
shift-invariant spectral hash proposes candidate pairs, and a pixel correlation after aligning
the pair confirms them. Measured recall on planted copies (resized, re-encoded, shifted) and
false-pair rate on distinct images: benchmarks/audit_accuracy.py. Exact: identical bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

# Stage 1 (candidates): a shift-invariant spectral hash — the log-magnitude of the image's 2-D
# FFT at the lowest frequencies, thresholded at its median (63 bits). Magnitudes ignore where
# things are, so shifted and cropped copies keep their hash; resizing and JPEG keep the low
# frequencies. Stage 2 (verification): align the pair by phase correlation and require a
# Pearson correlation of the aligned 64×64 grayscale images ≥ MIN_CORRELATION, which rejects
# distinct images that merely share a texture.
NEAR_THRESHOLD = 10  # Hamming distance (of 63 bits) for a candidate pair
MIN_CORRELATION = 0.95  # aligned-pixel correlation that makes a candidate a near-duplicate
THUMB = 64
_HASH_SIZE, _LOW = 32, 8


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """The 64×64 uint8 grayscale image both stages work on."""
    return cv2.resize(gray, (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def phash(gray: np.ndarray) -> np.ndarray:
    """63 bits: low-frequency FFT log-magnitudes (DC excluded) above their median."""
    small = cv2.resize(
        gray.astype(np.float32), (_HASH_SIZE, _HASH_SIZE), interpolation=cv2.INTER_AREA
    )
    small = (small - small.mean()) * np.outer(np.hanning(_HASH_SIZE), np.hanning(_HASH_SIZE))
    magnitude = np.log1p(np.abs(np.fft.fft2(small)))
    low = np.concatenate([magnitude[:_LOW, :_LOW].ravel(), magnitude[-_LOW + 1 :, 1:_LOW].ravel()])
    low = low[1:64]
    return low > np.median(low)


def aligned_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two thumbnails after undoing their relative shift."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    window = cv2.createHanningWindow((THUMB, THUMB), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(a, b, window)
    moved = cv2.warpAffine(
        b, np.float32([[1, 0, -dx], [0, 1, -dy]]), (THUMB, THUMB), borderMode=cv2.BORDER_REFLECT
    )
    margin = THUMB // 8
    x, y = a[margin:-margin, margin:-margin].ravel(), moved[margin:-margin, margin:-margin].ravel()
    if x.std() == 0 or y.std() == 0:
        return 1.0 if np.allclose(x, y) else 0.0
    return float(np.corrcoef(x, y)[0, 1])


def hashes_of_arrays(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hashes (N, 63) bool, thumbnails (N, 64, 64) uint8) of (N, H, W[, C]) uint8 images."""
    hashes = np.zeros((len(images), 63), bool)
    thumbs = np.zeros((len(images), THUMB, THUMB), np.uint8)
    for i, image in enumerate(images):
        gray = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        if gray.ndim == 3:
            gray = cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_RGB2GRAY)
        thumbs[i] = thumbnail(gray)
        hashes[i] = phash(thumbs[i])
    return hashes, thumbs


def hashes_of_files(paths, workers: int = 8):
    """(hashes, thumbnails, SHA-256 of the bytes, usable flags) of image files."""

    def one(path):
        data = Path(path).read_bytes()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        if image is None:
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        thumb = thumbnail(image) if image is not None else None
        return thumb, hashlib.sha256(data).hexdigest()

    with ThreadPoolExecutor(workers) as pool:  # OpenCV releases the GIL while decoding
        results = list(pool.map(one, paths))
    usable = [t is not None for t, _ in results]
    thumbs = np.array(
        [t if t is not None else np.zeros((THUMB, THUMB), np.uint8) for t, _ in results]
    )
    hashes = np.array([phash(t) for t in thumbs]).reshape(len(results), 63)
    return hashes, thumbs.reshape(len(results), THUMB, THUMB), [d for _, d in results], usable


def _packed(hashes: np.ndarray) -> np.ndarray:
    return np.packbits(hashes, axis=1)  # (N, 8) uint8


def near_pairs(
    features_a, features_b=None, threshold: int = NEAR_THRESHOLD, chunk: int = 512
) -> list[tuple[int, int, int]]:
    """(i, j, hash distance) of near-duplicates — within one set when features_b is None
    (i < j), else across the two. features: (hashes, thumbnails) from hashes_of_*."""
    hashes_a, thumbs_a = features_a
    hashes_b, thumbs_b = features_a if features_b is None else features_b
    a, b = _packed(np.asarray(hashes_a)), _packed(np.asarray(hashes_b))
    found = []
    for start in range(0, len(a), chunk):
        block = a[start : start + chunk]
        distance = np.bitwise_count(block[:, None, :] ^ b[None, :, :]).sum(axis=2)
        for r, c in zip(*np.nonzero(distance <= threshold), strict=True):
            i, j = start + int(r), int(c)
            if features_b is None and j <= i:
                continue
            if aligned_correlation(thumbs_a[i], thumbs_b[j]) >= MIN_CORRELATION:
                found.append((i, j, int(distance[r, c])))
    return found


def duplicate_groups(features, threshold: int = NEAR_THRESHOLD) -> np.ndarray:
    """A group id per image: connected components of near-duplicate pairs (union-find)."""
    parent = list(range(len(features[0])))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in near_pairs(features, threshold=threshold):
        parent[root(i)] = root(j)
    roots = [root(i) for i in range(len(parent))]
    _, ids = np.unique(roots, return_inverse=True)
    return ids


def leaked_test_mask(train_features, test_features, threshold: int = NEAR_THRESHOLD):
    """True for each test image with a near-duplicate in training."""
    mask = np.zeros(len(test_features[0]), bool)
    for i, _, _ in near_pairs(test_features, train_features, threshold):
        mask[i] = True
    return mask


def audit(dataset, root, out_csv=None, threshold: int = NEAR_THRESHOLD) -> dict:
    """Every exact and near-duplicate pair of a dataset, within and across its splits."""
    from data_setup.files import write_atomic
    from data_setup.layouts import discover

    listing = discover(dataset, root)
    entries = [(split, path) for split, items in listing.splits.items() for path, _ in items]
    hashes, thumbs, digests, usable = hashes_of_files([p for _, p in entries])
    keep = [i for i, ok in enumerate(usable) if ok]
    features = (hashes[keep], thumbs[keep])
    pairs = []
    for i, j, distance in near_pairs(features, threshold=threshold):
        a, b = keep[i], keep[j]
        kind = "exact" if digests[a] == digests[b] else "near"
        pairs.append((a, b, distance, kind))
    rows = [
        (
            str(entries[a][1].relative_to(listing.root)),
            entries[a][0],
            str(entries[b][1].relative_to(listing.root)),
            entries[b][0],
            distance,
            kind,
        )
        for a, b, distance, kind in pairs
    ]
    if out_csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["file_a", "split_a", "file_b", "split_b", "distance", "kind"])
        writer.writerows(rows)
        write_atomic(Path(out_csv), buffer.getvalue())
    where = Counter("/".join(sorted((r[1], r[3]))) for r in rows)
    groups = duplicate_groups(features, threshold)
    sizes = Counter(groups)
    in_groups = sum(n for n in sizes.values() if n > 1)
    return {
        "root": str(listing.root),
        "images": len(keep),
        "pairs": len(rows),
        "exact_pairs": sum(r[5] == "exact" for r in rows),
        "pairs_by_splits": dict(where),
        "duplicate_groups": sum(1 for n in sizes.values() if n > 1),
        "images_in_groups": in_groups,
        "threshold": threshold,
    }
