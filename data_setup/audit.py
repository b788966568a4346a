"""Leakage audit: exact and near-duplicate images within and across a dataset's splits.

BUSI is reported to hold ~19 % duplicated images and HAM10000 several photos per lesion, so a
test image may have a (near-)copy in training and inflate every number.

    python -m data_setup audit BUSI ~/data/BUSI --out busi_pairs.csv

Every image is reduced once to a 64×64 grayscale thumbnail, kept beside the dataset cache and
keyed by the dataset fingerprint (data_setup.audit_cache), so the audit, the holdout grouping and
every run's clean-test check reuse it. Near-duplicates are then found in one pass of two
vectorized stages:

1. candidates: cosine similarity ≥ CANDIDATE_SIMILARITY of shift-invariant spectral signatures
   (log-magnitudes of the thumbnail's FFT, centred on the data's mean signature, so what all
   films of a kind share cancels), one matrix product per block of images;
2. verification, batched: at some shift up to MAX_SHIFT pixels, the band-limited *phase*
   correlation ≥ MIN_PHASE_CORRELATION (whitened spectra: every frequency counts alike, so two
   chest films that share their layout — two dark lungs, a bright abdomen — still differ) and
   the aligned pixels' correlation ≥ MIN_LAYOUT_CORRELATION (demo images of one class share a
   grating's phase pattern but not their layout). `pair_similarity` is the per-pair definition
   the batched form must agree with; its score is ≥ 1 (MIN_SIMILARITY) for a near-duplicate.

Exact duplicates (identical bytes) are found by hash and always reported. Measured recall on
planted copies (resized, re-encoded, shifted) and false pairs on synthetic images, X-ray-like
films (data_setup.xray) and real radiographs where installed: benchmarks/audit_accuracy.py;
the README's audit paragraph gives the trade-off behind each threshold.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from data_setup.audit_cache import (
    THUMB,
    Features,
    features_of_arrays,
    source_features,
    split_features,
    thumbnail,
)

# Thresholds (measured trade-off: README, benchmarks/audit_accuracy.py).
CANDIDATE_SIMILARITY = 0.5  # signature cosine that makes a pair worth verifying
MIN_PHASE_CORRELATION = 0.55  # band-limited phase correlation of an aligned near-duplicate
MIN_LAYOUT_CORRELATION = 0.95  # and its aligned, lightly blurred pixels' correlation
MIN_SIMILARITY = 1.0  # the score: both correlations over their thresholds at one shift
MAX_SHIFT = 4  # pixels of the 64-px thumbnail (~6 %) a copy may be shifted or cropped by
_PHASE_BAND = (1, 20)  # cycles across the thumbnail: what survives resizing and JPEG
_SIGNATURE_BAND = (2, 16)
_BLUR = 0.8  # thumbnail pixels, for the layout view
_WINDOW = np.outer(np.hanning(THUMB), np.hanning(THUMB)).astype(np.float32)

__all__ = [
    "CANDIDATE_SIMILARITY", "MAX_SHIFT", "MIN_LAYOUT_CORRELATION", "MIN_PHASE_CORRELATION",
    "MIN_SIMILARITY", "THUMB", "Features", "audit",
    "duplicate_groups", "features_of_arrays", "groups_from_pairs", "leaked_test_mask",
    "near_pairs", "pair_similarity", "views", "source_features", "split_features", "thumbnail",
]  # fmt: skip


def _frequencies() -> tuple[np.ndarray, np.ndarray]:
    """Radius (cycles across the thumbnail) of each bin of a (64, 33) half spectrum, and how
    often each bin counts in the full spectrum (the half spectrum's mirror)."""
    fy, fx = np.fft.fftfreq(THUMB) * THUMB, np.fft.rfftfreq(THUMB) * THUMB
    twice = np.where((fx == 0) | (fx == THUMB // 2), 1.0, 2.0)
    return np.hypot(fy[:, None], fx[None, :]), np.broadcast_to(twice, (THUMB, THUMB // 2 + 1))


def _windowed(images: np.ndarray) -> np.ndarray:
    out = (images - images.mean(axis=(1, 2), keepdims=True)) * _WINDOW
    return out.astype(np.float32)


def views(thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(spectra (N, 2, 64, 33), signatures (N, D)) of thumbnails (N, 64, 64) uint8.

    View 0, phase: the windowed thumbnail's spectrum whitened (phase only) in the band
    _PHASE_BAND; its cross-correlation with another image's is the phase correlation, ~1 at
    the shift that aligns a copy and low for different images, whatever they share in their
    coarse layout. View 1, layout: the lightly blurred thumbnail, windowed, unit norm; its
    cross-correlation is the Pearson-like correlation of the aligned pixels. Each view is
    scaled by its threshold, so a pair is a near-duplicate when, at one shift, both reach 1.
    A blank image has all-zero views and matches nothing but its exact copies."""
    thumbs = np.asarray(thumbs, np.float32).reshape(-1, THUMB, THUMB)
    raw = np.fft.rfft2(_windowed(thumbs))
    radius, twice = _frequencies()
    band = (radius >= _PHASE_BAND[0]) & (radius <= _PHASE_BAND[1])
    weight = band / (band * twice).sum()  # the phase correlation of an image with itself: 1
    magnitude = np.abs(raw)
    phase = np.where(magnitude > 1e-3, raw / np.maximum(magnitude, 1e-3), 0)
    phase *= np.sqrt(weight / MIN_PHASE_CORRELATION)
    blurred = np.stack([cv2.GaussianBlur(t, (0, 0), _BLUR) for t in thumbs]) if len(thumbs) \
        else thumbs  # fmt: skip
    layout = _windowed(blurred)
    norm = np.linalg.norm(layout.reshape(len(layout), -1), axis=1)[:, None, None]
    layout = np.where(norm > 1e-3, layout / np.maximum(norm, 1e-3), 0) / np.sqrt(
        MIN_LAYOUT_CORRELATION
    )
    # Scaled so that both views' cross-correlations come out of one inverse DFT times 64².
    spectra = np.stack([phase, np.fft.rfft2(layout) / THUMB], axis=1).astype(np.complex64)
    signature_band = (radius >= _SIGNATURE_BAND[0]) & (radius <= _SIGNATURE_BAND[1])
    signatures = np.log1p(magnitude[:, signature_band]).astype(np.float32)
    return spectra, signatures


def _centred_unit(signature: np.ndarray, mean: np.ndarray) -> np.ndarray:
    centred = signature - mean
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    return np.where(norm > 0, centred / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


def pair_similarity(a: np.ndarray, b: np.ndarray, max_shift: int = MAX_SHIFT) -> float:
    """The verification score of one pair of thumbnails (64, 64), by its definition, one pair
    at a time: at each circular shift of b up to max_shift pixels, the smaller of (phase
    correlation / MIN_PHASE_CORRELATION) and (layout correlation / MIN_LAYOUT_CORRELATION);
    the score is the largest of these (≥ 1: a near-duplicate)."""
    (spectra, _) = views(np.stack([a, b]))
    phase = np.fft.irfft2(spectra[0, 0] * np.conj(spectra[1, 0]), s=(THUMB, THUMB)) * THUMB**2
    layout = np.fft.irfft2(spectra[:, 1], s=(THUMB, THUMB)) * THUMB
    best = -np.inf
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            moved = np.roll(layout[1], (dy, dx), axis=(0, 1))
            best = max(best, min(phase[dy, dx], float(np.sum(layout[0] * moved))))
    return float(best)


def _inverse_dft(max_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Matrices that evaluate the inverse real 2-D DFT of a (64, 33) half spectrum, times
    64², at the shifts -max_shift … max_shift only: rows (S, 64) and columns (33, S)."""
    shifts = np.arange(-max_shift, max_shift + 1)
    ky, kx = np.fft.fftfreq(THUMB) * THUMB, np.arange(THUMB // 2 + 1)
    rows = np.exp(2j * np.pi * np.outer(shifts, ky) / THUMB)
    cols = np.exp(2j * np.pi * np.outer(kx, shifts) / THUMB) * _frequencies()[1][0][:, None]
    return rows.astype(np.complex64), cols.astype(np.complex64)


def batch_similarity(spectra_a, spectra_b, max_shift: int = MAX_SHIFT) -> np.ndarray:
    """pair_similarity for many pairs at once, from `views` spectra (B, 2, 64, 33): both
    views' cross-correlations at every allowed shift are two small matrix products of the
    cross-spectra (the inverse DFT evaluated at those shifts only)."""
    rows, cols = _inverse_dft(max_shift)
    cross = spectra_a * np.conj(spectra_b)
    correlation = np.matmul(np.matmul(rows, cross), cols).real  # (B, 2, S, S)
    return correlation.min(axis=1).reshape(len(cross), -1).max(axis=1)


class _Prepared:
    """What the search needs of one set of features: the views' spectra and signatures."""

    def __init__(self, features: Features):
        self.usable = np.asarray(features.usable, bool)
        self.spectra, self.signature = views(features.thumbs)
        self.signature[~self.usable] = 0


def near_pairs(
    features_a: Features,
    features_b: Features | None = None,
    min_similarity: float = MIN_SIMILARITY,
    candidate_similarity: float = CANDIDATE_SIMILARITY,
    block: int = 1024,
    batch: int = 128,
    progress: str | None = None,
) -> list[tuple[int, int, float]]:
    """(i, j, similarity) of near-duplicates — within one set when features_b is None (i < j),
    else between a's image i and b's image j. One pass: candidates, then batched verification."""
    a = _Prepared(features_a)
    b = a if features_b is None else _Prepared(features_b)
    both = [a.signature[a.usable]] + ([] if features_b is None else [b.signature[b.usable]])
    mean = np.concatenate(both).mean(axis=0) if sum(len(x) for x in both) else 0.0
    unit_a, unit_b = _centred_unit(a.signature, mean), _centred_unit(b.signature, mean)
    unit_a[~a.usable], unit_b[~b.usable] = 0, 0
    rows, cols = [], []
    blocks = range(0, len(unit_a), block)
    show = progress is not None and len(unit_a) * len(unit_b) > 4_000_000
    for start in tqdm(blocks, desc=f"{progress} candidates", disable=not show, unit="block"):
        similarity = unit_a[start : start + block] @ unit_b.T
        r, c = np.nonzero(similarity >= candidate_similarity)
        r += start
        keep = c > r if features_b is None else slice(None)
        rows.append(r[keep])
        cols.append(c[keep])
    rows = np.concatenate(rows) if rows else np.zeros(0, int)
    cols = np.concatenate(cols) if cols else np.zeros(0, int)
    scores = np.empty(len(rows), np.float32)
    show = progress is not None and len(rows) > 20 * batch
    starts = range(0, len(rows), batch)
    for start in tqdm(starts, desc=f"{progress} verify", disable=not show, unit="batch"):
        i, j = rows[start : start + batch], cols[start : start + batch]
        scores[start : start + batch] = batch_similarity(a.spectra[i], b.spectra[j])
    found = scores >= min_similarity
    return [
        (int(i), int(j), float(s))
        for i, j, s in zip(rows[found], cols[found], scores[found], strict=True)
    ]


def groups_from_pairs(count: int, pairs) -> np.ndarray:
    """A group id per image: connected components of the pairs (i, j, …)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = np.array([(p[0], p[1]) for p in pairs], int).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(count, count))
    return connected_components(graph, directed=False)[1]


def _exact_pairs(digests) -> list[tuple[int, int]]:
    by_digest: dict[str, list[int]] = {}
    for index, digest in enumerate(digests):
        if digest:
            by_digest.setdefault(digest, []).append(index)
    return [(m[0], other) for m in by_digest.values() for other in m[1:]]


def duplicate_groups(features: Features, progress: str | None = None) -> np.ndarray:
    """A group id per image: connected components of near-duplicate and exact pairs."""
    pairs = near_pairs(features, progress=progress)
    if features.digests is not None:
        pairs += _exact_pairs(features.digests)
    return groups_from_pairs(len(features), pairs)


def leaked_test_mask(train: Features, test: Features, progress: str | None = None):
    """True for each test image with a near-duplicate (or exact copy) in training."""
    mask = np.zeros(len(test), bool)
    for i, _, _ in near_pairs(test, train, progress=progress):
        mask[i] = True
    if train.digests is not None and test.digests is not None:
        seen = {d for d in train.digests if d}
        mask |= np.array([bool(d) and d in seen for d in test.digests], bool)
    return mask


def audit(dataset, root, out_csv=None, cache_dir=None, workers: int | None = None) -> dict:
    """Every exact and near-duplicate pair of a dataset, within and across its splits; the
    thumbnails come from (or go into) the feature cache beside the dataset cache."""
    from data_setup.files import write_atomic
    from data_setup.layouts import discover

    listing = discover(dataset, root)
    entries, parts = [], []
    for split, items in listing.splits.items():
        part = split_features(listing.dataset, split, listing.root, items,
                              cache_dir=cache_dir, workers=workers)  # fmt: skip
        entries += [(split, path) for path, _ in items]
        parts.append(part)
    features = Features.concatenate(parts)
    keep = np.flatnonzero(features.usable)
    kept = features.take(keep)
    scored = {(i, j): s for i, j, s in near_pairs(kept, progress="audit")}
    exact = set(_exact_pairs(kept.digests))
    pairs = sorted(set(scored) | exact)
    rows = [
        (
            str(entries[keep[i]][1].relative_to(listing.root)),
            entries[keep[i]][0],
            str(entries[keep[j]][1].relative_to(listing.root)),
            entries[keep[j]][0],
            f"{scored.get((i, j), 1.0):.3f}",
            "exact" if (i, j) in exact else "near",
        )
        for i, j in pairs
    ]
    if out_csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["file_a", "split_a", "file_b", "split_b", "similarity", "kind"])
        writer.writerows(rows)
        write_atomic(Path(out_csv), buffer.getvalue())
    where = Counter("/".join(sorted((r[1], r[3]))) for r in rows)
    sizes = Counter(groups_from_pairs(len(keep), pairs))  # the same pass's pairs
    return {
        "root": str(listing.root),
        "images": len(keep),
        "pairs": len(rows),
        "exact_pairs": sum(r[5] == "exact" for r in rows),
        "pairs_by_splits": dict(where),
        "duplicate_groups": sum(1 for n in sizes.values() if n > 1),
        "images_in_groups": sum(n for n in sizes.values() if n > 1),
        "min_similarity": MIN_SIMILARITY,
    }
