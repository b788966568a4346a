"""Leakage audit: exact and near-duplicate images within and across a dataset's splits.

BUSI is reported to hold ~19 % duplicated images and HAM10000 several photos per lesion, so a
test image may have a (near-)copy in training and inflate every number.

    s3f-data audit BUSI ~/data/BUSI --out busi_pairs.csv

Every image is reduced once to a 64×64 grayscale thumbnail, kept beside the dataset cache and
keyed by the dataset fingerprint (data_setup.audit_cache), so the audit, the holdout grouping and
every run's clean-test check reuse it. Near-duplicates are then found in one pass of two
vectorized stages:

1. candidates: cosine similarity ≥ CANDIDATE_SIMILARITY of shift-invariant spectral signatures
   (log-magnitudes of the thumbnail's FFT, centred on the data's mean signature, so what all
   films of a kind share cancels), one matrix product per block of images; and cosine
   ≥ CANDIDATE_LAYOUT of their coarse layouts (8×8, heavily blurred: a copy shifted by up to
   MAX_SHIFT moves by half a cell), so that images which share a texture but not its place —
   one class of a drawn or dermoscopic dataset — are not all verified;
2. verification, batched: at some shift up to MAX_SHIFT pixels, the band-limited *phase*
   correlation ≥ MIN_PHASE_CORRELATION (whitened spectra: every frequency counts alike, so two
   chest films that share their layout — two dark lungs, a bright abdomen — still differ) and
   the aligned pixels' correlation ≥ MIN_LAYOUT_CORRELATION (demo images of one class share a
   grating's phase pattern but not their layout). `pair_similarity` is the per-pair definition
   the batched form must agree with; its score is ≥ 1 (MIN_SIMILARITY) for a near-duplicate.

Exact duplicates (identical bytes) are found by hash and always reported. Measured recall on
planted copies (resized, re-encoded, shifted) and false pairs on synthetic images, X-ray-like
films (data_setup.xray) and real radiographs where installed: benchmarks/audit_accuracy.py;
docs/audit.md gives the trade-off behind each threshold.
"""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import scipy.fft
from threadpoolctl import threadpool_limits
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
CANDIDATE_LAYOUT = 0.6  # and coarse-layout cosine (planted copies: ≥ 0.80; docs/audit.md)
MIN_PHASE_CORRELATION = 0.55  # band-limited phase correlation of an aligned near-duplicate
MIN_LAYOUT_CORRELATION = 0.95  # and its aligned, lightly blurred pixels' correlation
MIN_SIMILARITY = 1.0  # the score: both correlations over their thresholds at one shift
# The signature index (candidate_pairs, where it is cheaper than every pair): _lsh_candidates.
# One image hashed into one band costs what ≥ ~38 pairs' cosines do (measured, one set, index vs
# every pair: 5,856 chest films 0.34–0.6 s vs 0.19–0.26 s; 11,527 HAM10000 stand-ins, many
# look-alike proposals, 8.1–8.3 s vs 0.84–1.6 s): every pair up to ~18,000 images in one set.
LSH_PAIRS_PER_BAND = 50
LSH_COSINE = 0.75  # pairs at this signature cosine are found with probability ≥ 1 - LSH_MISS
LSH_MISS = 0.01  # (planted copies: ≥ 0.78 X-ray-like, mostly ≥ 0.78 synthetic)
LSH_SKETCH_BITS = 1024
LSH_MIN_BITS = 12
LSH_SEED = 20240518
MAX_SHIFT = 4  # pixels of the 64-px thumbnail (~6 %) a copy may be shifted or cropped by
_PHASE_BAND = (1, 20)  # cycles across the thumbnail: what survives resizing and JPEG
_SIGNATURE_BAND = (2, 16)
_BLUR = 0.8  # thumbnail pixels, for the layout view
_COARSE = 8  # cells across the coarse layout (candidate stage)
_COARSE_BLUR = 3.0  # thumbnail pixels: smooths a copy's shift of up to MAX_SHIFT px away
_KEPT_ROWS = np.flatnonzero(np.abs(np.fft.fftfreq(THUMB) * THUMB) <= _PHASE_BAND[1])
_KEPT_COLS = np.arange(_PHASE_BAND[1] + 1)
_WINDOW = np.outer(np.hanning(THUMB), np.hanning(THUMB)).astype(np.float32)

__all__ = [
    "CANDIDATE_LAYOUT", "CANDIDATE_SIMILARITY", "MAX_SHIFT", "MIN_LAYOUT_CORRELATION",
    "MIN_PHASE_CORRELATION", "MIN_SIMILARITY", "THUMB", "Features", "audit", "candidate_pairs",
    "coarse_layouts",
    "duplicate_groups", "features_of_arrays", "groups_from_pairs", "leaked_test_mask",
    "near_pairs", "pair_similarity", "views", "source_features", "split_features", "thumbnail",
]  # fmt: skip


def _frequencies() -> tuple[np.ndarray, np.ndarray]:
    """Radius (cycles across the thumbnail) of each bin of a (64, 33) half spectrum, and how
    often each bin counts in the full spectrum (the half spectrum's mirror)."""
    fy, fx = np.fft.fftfreq(THUMB) * THUMB, np.fft.rfftfreq(THUMB) * THUMB
    twice = np.where((fx == 0) | (fx == THUMB // 2), 1.0, 2.0)
    return np.hypot(fy[:, None], fx[None, :]), np.broadcast_to(twice, (THUMB, THUMB // 2 + 1))


def _kept_grid():
    """On the kept (41, 21) part of the half spectrum: the phase view's weights (the phase
    correlation of an image with itself is 1, the threshold folded in) and the signature's
    bins — the same bins, in the same order, as on the whole half spectrum."""
    radius, twice = _frequencies()
    band = (radius >= _PHASE_BAND[0]) & (radius <= _PHASE_BAND[1])
    weight = band / (band * twice).sum()
    kept = np.ix_(_KEPT_ROWS, _KEPT_COLS)
    scale = np.sqrt(weight[kept] / MIN_PHASE_CORRELATION).astype(np.float32)
    signature = ((radius >= _SIGNATURE_BAND[0]) & (radius <= _SIGNATURE_BAND[1]))[kept]
    return scale, signature


_PHASE_SCALE, _SIGNATURE_BINS = _kept_grid()


def _windowed(images: np.ndarray) -> np.ndarray:
    out = (images - images.mean(axis=(1, 2), keepdims=True)) * _WINDOW
    return out.astype(np.float32)


def _kept(spectrum: np.ndarray) -> np.ndarray:
    return spectrum[:, _KEPT_ROWS, : len(_KEPT_COLS)]


def views(thumbs: np.ndarray, chunk: int = 256, progress: str | None = None):
    """(spectra (N, 2, 41, 21), signatures (N, D)) of thumbnails (N, 64, 64) uint8.

    View 0, phase: the windowed thumbnail's spectrum whitened (phase only) in the band
    _PHASE_BAND; its cross-correlation with another image's is the phase correlation, ~1 at
    the shift that aligns a copy and low for different images, whatever they share in their
    coarse layout. View 1, layout: the lightly blurred thumbnail, windowed, unit norm; its
    cross-correlation is the Pearson-like correlation of the aligned pixels. Each view is
    scaled by its threshold, so a pair is a near-duplicate when, at one shift, both reach 1.
    A blank image has all-zero views and matches nothing but its exact copies.
    Computed `chunk` images at a time (the temporaries stay in cache); a progress bar named
    `progress` for more than 20,000 images (~2 s)."""
    thumbs = np.asarray(thumbs).reshape(-1, THUMB, THUMB)
    spectra = np.empty((len(thumbs), 2, len(_KEPT_ROWS), len(_KEPT_COLS)), np.complex64)
    signatures = np.empty((len(thumbs), int(_SIGNATURE_BINS.sum())), np.float32)
    show = progress is not None and len(thumbs) > 20_000
    starts = range(0, len(thumbs), chunk)
    for start in tqdm(starts, desc=f"{progress} views", disable=not show, unit="chunk"):
        part = thumbs[start : start + chunk].astype(np.float32)
        rows = slice(start, start + len(part))
        # Both views are kept to the frequencies up to _PHASE_BAND[1] (the layout's blur
        # leaves little above them): 2.5× less work per pair than the full spectrum.
        raw = _kept(scipy.fft.rfft2(_windowed(part)))  # complex64 (numpy's: several × slower)
        magnitude = np.abs(raw)
        phase = raw / np.maximum(magnitude, 1e-3)
        phase[magnitude <= 1e-3] = 0
        spectra[rows, 0] = phase * _PHASE_SCALE
        signatures[rows] = np.log1p(magnitude[:, _SIGNATURE_BINS])
        layout = _windowed(np.stack([cv2.GaussianBlur(t, (0, 0), _BLUR) for t in part]))
        norm = np.linalg.norm(layout.reshape(len(layout), -1), axis=1)[:, None, None]
        layout *= np.where(norm > 1e-3, 1 / np.maximum(norm, 1e-3), 0) / np.float32(
            THUMB * np.sqrt(MIN_LAYOUT_CORRELATION)
        )  # scaled so that both views' correlations come out of one inverse DFT times 64²
        spectra[rows, 1] = _kept(scipy.fft.rfft2(layout))
    return spectra, signatures


def coarse_layouts(thumbs: np.ndarray) -> np.ndarray:
    """(N, 64) unit vectors: each thumbnail blurred (σ = _COARSE_BLUR px), area-resized to
    8×8, its mean removed. Their cosine is the candidate stage's layout test. Not centred on
    the data's mean, unlike the signature: chest films share their layout, and what is left of
    a film after the mean layout is small enough that a copy's shift changes it (measured:
    cosine −0.38 for a planted X-ray-like copy centred, ≥ 0.80 not). A flat image is zero."""
    thumbs = np.asarray(thumbs).reshape(-1, THUMB, THUMB)
    out = np.empty((len(thumbs), _COARSE * _COARSE), np.float32)
    for row, thumb in enumerate(thumbs):
        blurred = cv2.GaussianBlur(thumb.astype(np.float32), (0, 0), _COARSE_BLUR)
        out[row] = cv2.resize(blurred, (_COARSE, _COARSE), interpolation=cv2.INTER_AREA).ravel()
    out -= out.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return np.where(norm > 1e-3, out / np.maximum(norm, 1e-3), 0).astype(np.float32)


def _paired_cosine(unit_a, unit_b, rows, cols, chunk: int = 1 << 14) -> np.ndarray:
    """The cosine of each pair (unit_a[rows[k]], unit_b[cols[k]]), in chunks (np.take:
    several times faster than fancy indexing for these large gathers)."""
    cosine = np.empty(len(rows), np.float32)
    for start in range(0, len(rows), chunk):
        part = slice(start, start + chunk)
        pair = np.take(unit_a, rows[part], axis=0), np.take(unit_b, cols[part], axis=0)
        cosine[part] = np.einsum("ij,ij->i", *pair)
    return cosine


def _centred_unit(signature: np.ndarray, mean: np.ndarray) -> np.ndarray:
    centred = signature - mean
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    return np.where(norm > 0, centred / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


def pair_similarity(a: np.ndarray, b: np.ndarray, max_shift: int = MAX_SHIFT) -> float:
    """The verification score of one pair of thumbnails (64, 64), by its definition, one pair
    at a time: at each circular shift of b up to max_shift pixels, the smaller of (phase
    correlation / MIN_PHASE_CORRELATION) and (layout correlation / MIN_LAYOUT_CORRELATION);
    the score is the largest of these (≥ 1: a near-duplicate)."""
    (kept, _) = views(np.stack([a, b]))
    spectra = np.zeros((2, 2, THUMB, THUMB // 2 + 1), np.complex64)
    spectra[:, :, _KEPT_ROWS[:, None], _KEPT_COLS[None, :]] = kept
    phase = np.fft.irfft2(spectra[0, 0] * np.conj(spectra[1, 0]), s=(THUMB, THUMB)) * THUMB**2
    layout = np.fft.irfft2(spectra[:, 1], s=(THUMB, THUMB)) * THUMB
    best = -np.inf
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            moved = np.roll(layout[1], (dy, dx), axis=(0, 1))
            best = max(best, min(phase[dy, dx], float(np.sum(layout[0] * moved))))
    return float(best)


@functools.lru_cache(maxsize=8)
def _inverse_dft(max_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Two real matrices that evaluate the inverse real 2-D DFT of a kept half spectrum,
    times 64², at the shifts -max_shift … max_shift (S of them) only, in real arithmetic:

    - columns (2·21, 2·S): a row of interleaved (re, im) over the 21 kept columns times it
      gives [re | im] of the sums over those columns at each column shift;
    - rows (S, 2·41): [Re | -Im] of the complex row factors, so that times the stacked
      [re; im] of those sums it gives the real part (all that is needed) at each row shift."""
    shifts = np.arange(-max_shift, max_shift + 1)
    ky, kx = np.fft.fftfreq(THUMB) * THUMB, np.arange(THUMB // 2 + 1)
    ky, kx = ky[_KEPT_ROWS], kx[_KEPT_COLS]
    rows = np.exp(2j * np.pi * np.outer(shifts, ky) / THUMB)
    twice = _frequencies()[1][0][_KEPT_COLS]
    cols = np.exp(2j * np.pi * np.outer(kx, shifts) / THUMB) * twice[:, None]
    count = len(shifts)
    real_cols = np.zeros((2 * len(kx), 2 * count))
    real_cols[0::2, :count], real_cols[1::2, :count] = cols.real, -cols.imag
    real_cols[0::2, count:], real_cols[1::2, count:] = cols.imag, cols.real
    rows = np.concatenate([rows.real, -rows.imag], axis=1)
    return real_cols.astype(np.float32), rows.astype(np.float32)


def _correlations(spectra_a, spectra_b, i, j, view: int, max_shift: int) -> np.ndarray:
    """(B, S·S) correlations of view `view` at every allowed shift (dy, dx) of the pairs
    (spectra_a[i[k]], spectra_b[j[k]]): the cross-spectra, then two real matrix products for
    the whole batch (not two per pair), in float32."""
    cols, rows = _inverse_dft(max_shift)
    shifts, height = rows.shape[0], len(_KEPT_ROWS)
    cross = spectra_a[i, view]  # gathered copies: changed in place
    other = spectra_b[j, view]
    np.multiply(cross, np.conjugate(other, out=other), out=cross)
    count = len(cross)
    partial = cross.view(np.float32).reshape(count * height, -1) @ cols  # [re | im] by dx
    partial = partial.reshape(count, height, 2, shifts).transpose(2, 1, 0, 3)
    correlation = rows @ partial.reshape(2 * height, count * shifts)  # (S dy, B·S dx)
    return correlation.reshape(shifts, count, shifts).transpose(1, 0, 2).reshape(count, -1)


def _verify(spectra_a, spectra_b, i, j, max_shift: int = MAX_SHIFT, floor=None) -> np.ndarray:
    """Scores of the pairs (spectra_a[i[k]], spectra_b[j[k]]); see batch_similarity."""
    phase = _correlations(spectra_a, spectra_b, i, j, 0, max_shift)
    if floor is None:
        layout = _correlations(spectra_a, spectra_b, i, j, 1, max_shift)
        return np.minimum(phase, layout).max(axis=1)
    score = phase.max(axis=1)
    left = np.flatnonzero(score >= floor)
    if len(left):
        layout = _correlations(spectra_a, spectra_b, i[left], j[left], 1, max_shift)
        score[left] = np.minimum(phase[left], layout).max(axis=1)
    return score


def batch_similarity(spectra_a, spectra_b, max_shift: int = MAX_SHIFT, floor=None):
    """pair_similarity for many pairs at once, from `views` spectra (B, 2, 41, 21): each
    view's cross-correlations at every allowed shift are two real matrix products over the
    whole batch (the inverse DFT evaluated at those shifts only).

    With `floor`, a pair whose phase correlation stays below `floor` at every shift cannot
    score `floor` (its score is at most that maximum), so its layout view is never computed
    and that maximum is returned instead: the decision `score >= floor` is pair_similarity's,
    at half the cost for the many distinct candidates."""
    rows = np.arange(len(spectra_a))
    return _verify(np.asarray(spectra_a), np.asarray(spectra_b), rows, rows, max_shift, floor)


class _Prepared:
    """What the search needs of one set of features: the views' spectra, the signatures and
    the coarse layouts."""

    def __init__(self, features: Features, progress: str | None = None):
        self.usable = np.asarray(features.usable, bool)
        self.spectra, self.signature = views(features.thumbs, progress=progress)
        self.signature[~self.usable] = 0
        self.layout = coarse_layouts(features.thumbs)
        self.layout[~self.usable] = 0


def _exact_candidates(unit_a, unit_b, same: bool, threshold: float, block: int, progress):
    """Every pair with signature cosine ≥ threshold: one matrix product per block of a's rows
    (for one set, only against the rows after the block: each pair once)."""
    rows, cols = [], []
    blocks = range(0, len(unit_a), block)
    show = progress is not None and len(unit_a) * len(unit_b) > 4_000_000
    for start in tqdm(blocks, desc=f"{progress} candidates", disable=not show, unit="block"):
        first = start if same else 0
        similarity = unit_a[start : start + block] @ unit_b[first:].T
        r, c = np.nonzero(similarity >= threshold)
        r, c = r + start, c + first
        keep = c > r if same else slice(None)
        rows.append(r[keep])
        cols.append(c[keep])
    return _joined(rows), _joined(cols)


def _joined(parts) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def _lsh_plan(count: int) -> tuple[int, int]:
    """(bits per band, bands) of the signature index for sets of `count` images: bands of
    about log2(count) bits (a distinct image shares a band's bucket with ~1 other), and enough
    of them that a pair at cosine LSH_COSINE shares at least one with probability 1 - LSH_MISS.
    A random hyperplane separates two vectors at angle θ with probability θ/π."""
    bits = int(np.clip(round(np.log2(max(count, 2))), LSH_MIN_BITS, 24))
    agree = 1 - np.arccos(LSH_COSINE) / np.pi
    return bits, int(np.ceil(np.log(1 / LSH_MISS) / agree**bits))


def _sketch(unit: np.ndarray, planes: np.ndarray) -> np.ndarray:
    return unit @ planes.T > 0  # (N, K) bools: which side of each hyperplane


def _band_keys(sketch: np.ndarray, weights: np.ndarray, chunk: int = 4096) -> np.ndarray:
    keys = np.empty((len(sketch), weights.shape[1]), np.int64)
    for start in range(0, len(sketch), chunk):
        keys[start : start + chunk] = sketch[start : start + chunk].astype(np.float32) @ weights
    return keys


def _bucket_pairs(keys: np.ndarray, split: int | None, width: int) -> np.ndarray:
    """Every pair of items with equal keys, as row·width + col: within one set (split None,
    row < col), or between items before `split` (rows) and after it (cols, less split). One
    sort; then, for k = 1, 2, …, the items whose key equals that of the item k places on
    (only those still in a bucket are looked at again: the work is the pairs, plus a sort)."""
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    active = np.flatnonzero(ranked[1:] == ranked[:-1])  # starts of a pair at distance 1
    found, k = [], 1
    while len(active):
        a, b = order[active], order[active + k]
        if split is None:
            found.append(np.minimum(a, b) * width + np.maximum(a, b))
        else:
            cross = (a < split) != (b < split)
            rows, cols = np.minimum(a, b)[cross], np.maximum(a, b)[cross] - split
            found.append(rows * width + cols)
        k += 1
        active = active[active + k < len(ranked)]
        active = active[ranked[active + k] == ranked[active]]
    return _joined(found)


def _lsh_candidates(unit_a, unit_b, same: bool, threshold: float, progress):
    """The pairs with signature cosine ≥ threshold that share a bucket of a random-hyperplane
    (SimHash) index: each of L bands hashes an image by r of K = LSH_SKETCH_BITS hyperplane
    signs, a pair that agrees on all r signs of some band is proposed, then kept when the
    Hamming distance of the whole K-bit sketches allows the cosine (a cheap filter with a
    wide margin) and the exact cosine is ≥ threshold. Work grows as L·N plus the proposals,
    not as N²; a pair at cosine ≥ LSH_COSINE is missed with probability ≤ ~LSH_MISS.
    Deterministic: the hyperplanes and bands come from a fixed seed."""
    rng = np.random.default_rng(LSH_SEED)
    dims = unit_a.shape[1]
    planes = rng.standard_normal((LSH_SKETCH_BITS, dims)).astype(np.float32)
    bits, bands = _lsh_plan(max(len(unit_a), len(unit_b)))
    chosen = np.array([rng.choice(LSH_SKETCH_BITS, bits, replace=False) for _ in range(bands)])
    weights = np.zeros((LSH_SKETCH_BITS, bands), np.float32)  # a band's key: its bits' number
    weights[chosen, np.arange(bands)[:, None]] = 2.0 ** np.arange(bits)  # exact in float32
    live_a, live_b = np.flatnonzero(unit_a.any(axis=1)), np.flatnonzero(unit_b.any(axis=1))
    if not len(live_a) or not len(live_b):  # blank or unusable images match nothing
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    sketch_a = _sketch(unit_a[live_a], planes)
    sketch_b = sketch_a if same else _sketch(unit_b[live_b], planes)
    keys_a = _band_keys(sketch_a, weights)  # (N, L)
    keys_b = keys_a if same else _band_keys(sketch_b, weights)
    proposed = []
    show = progress is not None and len(live_a) * len(live_b) > 4_000_000
    for band in tqdm(range(bands), desc=f"{progress} index", disable=not show, unit="band"):
        keys = keys_a[:, band] if same else np.concatenate([keys_a[:, band], keys_b[:, band]])
        proposed.append(_bucket_pairs(keys, None if same else len(live_a), len(live_b)))
    pairs = np.unique(_joined(proposed))
    rows, cols = pairs // len(live_b), pairs % len(live_b)
    packed_a = np.packbits(sketch_a, axis=1).view(np.uint64)
    packed_b = packed_a if same else np.packbits(sketch_b, axis=1).view(np.uint64)
    # Hamming filter: cosine ≥ threshold means an angle ≤ arccos(threshold), so about
    # K·angle/π differing signs; 0.1·K more allows > 6 standard deviations of the sketch.
    # (np.take: several times faster than fancy indexing for these large gathers.)
    most = LSH_SKETCH_BITS * (np.arccos(threshold) / np.pi + 0.1)
    keep = np.zeros(len(rows), bool)
    for start in range(0, len(rows), 1 << 16):
        part = slice(start, start + (1 << 16))
        differ = np.take(packed_a, rows[part], axis=0) ^ np.take(packed_b, cols[part], axis=0)
        differ = np.bitwise_count(differ).sum(axis=1, dtype=np.int32)
        keep[part] = differ <= most
    rows, cols = live_a[rows[keep]], live_b[cols[keep]]
    found = _paired_cosine(unit_a, unit_b, rows, cols) >= threshold
    return rows[found], cols[found]


def candidate_pairs(
    features_a: Features,
    features_b: Features | None = None,
    candidate_similarity: float = CANDIDATE_SIMILARITY,
    index: str = "auto",
    block: int = 1024,
    progress: str | None = None,
    prepared=None,
    candidate_layout: float = CANDIDATE_LAYOUT,
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pairs worth verifying: signature cosine ≥ candidate_similarity and
    coarse-layout cosine ≥ candidate_layout (None: no layout test).
    index: "exact" (every pair, blockwise matrix products: quadratic), "lsh" (the SimHash index,
    _lsh_candidates: sub-quadratic) or "auto": whichever costs less — the index once the
    pairs outnumber LSH_PAIRS_PER_BAND × images × bands (one set of more than ~18,000
    images; a small test split against a large training split stays exact)."""
    a, b = prepared or (_Prepared(features_a), None)
    if b is None:
        b = a if features_b is None else _Prepared(features_b)
    same = features_b is None
    both = [a.signature[a.usable]] + ([] if same else [b.signature[b.usable]])
    mean = np.concatenate(both).mean(axis=0) if sum(len(x) for x in both) else 0.0
    unit_a, unit_b = _centred_unit(a.signature, mean), _centred_unit(b.signature, mean)
    unit_a[~a.usable], unit_b[~b.usable] = 0, 0
    if index not in ("auto", "exact", "lsh"):
        raise ValueError(f"index must be 'auto', 'exact' or 'lsh', got {index!r}")
    pairs = len(unit_a) * len(unit_b) / (2 if same else 1)
    images = len(unit_a) if same else len(unit_a) + len(unit_b)
    hashing = LSH_PAIRS_PER_BAND * images * _lsh_plan(max(len(unit_a), len(unit_b)))[1]
    if index == "lsh" or (index == "auto" and pairs > hashing):
        rows, cols = _lsh_candidates(unit_a, unit_b, same, candidate_similarity, progress)
    else:
        rows, cols = _exact_candidates(unit_a, unit_b, same, candidate_similarity, block, progress)
    if candidate_layout is None:
        return rows, cols
    alike = _paired_cosine(a.layout, b.layout, rows, cols) >= candidate_layout
    return rows[alike], cols[alike]


def near_pairs(
    features_a: Features,
    features_b: Features | None = None,
    min_similarity: float = MIN_SIMILARITY,
    candidate_similarity: float = CANDIDATE_SIMILARITY,
    block: int = 1024,
    batch: int = 64,
    progress: str | None = None,
    index: str = "auto",
    counts: dict | None = None,
    candidate_layout: float | None = CANDIDATE_LAYOUT,
) -> list[tuple[int, int, float]]:
    """(i, j, similarity) of near-duplicates — within one set when features_b is None (i < j),
    else between a's image i and b's image j. One pass: candidates (candidate_pairs), then
    batched verification. `counts`, if given, receives "candidates": the pairs verified (the
    part of the work that grows with how alike the images are, not with how many)."""
    a = _Prepared(features_a, progress)
    b = a if features_b is None else _Prepared(features_b, progress)
    rows, cols = candidate_pairs(features_a, features_b, candidate_similarity, index, block,
                                 progress, (a, b), candidate_layout)  # fmt: skip
    if counts is not None:
        counts["candidates"] = len(rows)
    scores = np.empty(len(rows), np.float32)
    show = progress is not None and len(rows) > 200_000  # ~1 s and more
    starts = range(0, len(rows), batch)
    with threadpool_limits(1, "blas"):  # small products: threads only contend for the cores
        for start in tqdm(starts, desc=f"{progress} verify", disable=not show, unit="batch"):
            i, j = rows[start : start + batch], cols[start : start + batch]
            found = _verify(a.spectra, b.spectra, i, j, floor=min_similarity)
            scores[start : start + batch] = found
    found = scores >= min_similarity
    return [
        (int(i), int(j), float(s))
        for i, j, s in zip(rows[found], cols[found], scores[found], strict=True)
    ]


def groups_from_pairs(count: int, pairs, counts: dict | None = None) -> np.ndarray:
    """A group id per image from the pairs (i, j, …): connected components in which every
    member is paired with one centre member; a chain (A~B~C~D, A not like D) is re-split
    (data_setup.groups.centred_groups). `counts`, if given, receives "chains_split"."""
    from data_setup.groups import centred_groups

    ids, resplit = centred_groups(count, pairs)
    if counts is not None:
        counts["chains_split"] = resplit
    return ids


def _exact_pairs(digests) -> list[tuple[int, int]]:
    by_digest: dict[str, list[int]] = {}
    for index, digest in enumerate(digests):
        if digest:
            by_digest.setdefault(digest, []).append(index)
    return [(m[0], other) for m in by_digest.values() for other in m[1:]]


def duplicate_groups(features: Features, progress: str | None = None,
                     counts: dict | None = None) -> np.ndarray:  # fmt: skip
    """A group id per image from near-duplicate and exact pairs (groups_from_pairs; `counts`
    receives "chains_split")."""
    pairs = near_pairs(features, progress=progress)
    if features.digests is not None:
        pairs += _exact_pairs(features.digests)
    return groups_from_pairs(len(features), pairs, counts)


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
    from data_setup.files import write_csv_atomic
    from data_setup.layouts import discover

    listing = discover(dataset, root)
    entries, parts, labels = [], [], []
    for split, items in listing.splits.items():
        part = split_features(listing.dataset, split, listing.root, items,
                              cache_dir=cache_dir, workers=workers)  # fmt: skip
        entries += [(split, path) for path, _ in items]
        labels += [label for _, label in items]
        parts.append(part)
    features = Features.concatenate(parts)
    keep = np.flatnonzero(features.usable)
    # what the audit left out, in the sentences `check` prints: the listing's problems, then
    # each image that does not decode, with decoding's own reason (a few files: cheap)
    left_out = [(str(path), why) for path, why in listing.problems]
    left_out += [
        (str(entries[i][1]), _unusable_reason(entries[i][1]))
        for i in np.flatnonzero(~features.usable)
    ]
    kept = features.take(keep)
    counts: dict = {}
    scored = {(i, j): s for i, j, s in near_pairs(kept, progress="audit", counts=counts)}
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
        header = ("file_a", "split_a", "file_b", "split_b", "similarity", "kind")
        write_csv_atomic(Path(out_csv), [header, *rows])
    where = Counter("/".join(sorted((r[1], r[3]))) for r in rows)
    from data_setup.datasets import dataset_info
    from data_setup.groups import largest_group_share

    ids = groups_from_pairs(len(keep), pairs, counts)  # the same pass's pairs
    sizes = Counter(ids)
    return {
        "root": str(listing.root),
        "images": len(keep),
        "pairs": len(rows),
        "exact_pairs": sum(r[5] == "exact" for r in rows),
        "pairs_by_splits": dict(where),
        "duplicate_groups": sum(1 for n in sizes.values() if n > 1),
        "images_in_groups": sum(n for n in sizes.values() if n > 1),
        "chains_split": counts["chains_split"],
        "largest_group_share": largest_group_share(
            [labels[i] for i in keep], ids, dataset_info(dataset).class_names
        ),
        "min_similarity": MIN_SIMILARITY,
        "candidate_pairs": counts["candidates"],
        "distinct_pairs": len(keep) * (len(keep) - 1) // 2,
        "left_out": left_out,
    }


def _unusable_reason(path: Path) -> str:
    """Why decoding refuses `path` (data_setup.decode's sentence, as check and loading say)."""
    from data_setup.decode import BadImage, decode_image

    try:
        decode_image(path, (THUMB, THUMB), 1)
    except BadImage as error:
        return str(error)
    return "not decodable"
