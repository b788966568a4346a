"""Shortcut audit: does how an image was stored predict its class (issue 35, item 1)?

    s3f-data shortcuts BRISC2025 ~/data/brisc --json brisc_shortcuts.json

A Fourier branch is exactly what would learn an acquisition shortcut — one class saved as RGB
JPEG, another as grayscale PNG, one class non-square and squashed to the input size. Two probes,
each a small random forest scored on images it did not see (the official test split, or grouped
cross-validation where a dataset has none, as data_setup.splitting folds it):

1. metadata: per image, what the file says about its acquisition and storage (format, stored
   mode — gray, RGB, or RGB whose channels are equal —, bit depth, width, height, aspect ratio,
   bytes per pixel, JPEG quality estimated from the quantization tables, chroma subsampling,
   progressive, ICC profile, dpi, constant borders). Header-only but for the equal-channel and
   border checks, which use a 64-px thumbnail (a JPEG decodes it at 1/8 scale), so the cost
   stays linear and small. Nothing of it should predict a diagnosis: the dataset is `flagged`
   when it does, by effect size — Cohen's κ ≥ FLAG_KAPPA ("fair" agreement, Landis & Koch 1977),
   not a p-value, which any large dataset makes small. docs/shortcuts.md gives the reasoning.
2. tensor: what the Fourier branch sees — the kit's own decode and resize (data_setup.decode, as
   a run does it) — reduced to a radial power spectrum (RADIAL_BANDS), border statistics and
   8×8 blockiness, classified the same way. Its κ is reported, and flagged by the same rule,
   but it does not set the dataset's verdict: content (the lesion itself) changes the spectrum
   too, so a high tensor κ with a clean metadata κ is no evidence of a shortcut.

Intervals: percentile bootstrap over the scored images (BOOTSTRAP resamples).

Every run records the header-only half in metrics.json (`shortcuts`, recorded_summary): small,
cached beside the decode cache and keyed by the dataset's file fingerprints, so a second run on
the same files reads a small JSON instead of auditing again.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, JpegImagePlugin

from data_setup.cache import files_fingerprint
from data_setup.datasets import DatasetInfo
from data_setup.decode import (
    MAX_IMAGE_PIXELS,
    PAPER_RESIZE,
    BadImage,
    decode_image,
    decode_workers,
)
from data_setup.files import write_json_atomic
from data_setup.groups import combine_groups, grouped_folds, listing_groups
from data_setup.layouts import DatasetError, Listing, discover

FLAG_KAPPA = 0.2  # Cohen's κ from which metadata "fairly" predicts the class: flagged
FOLDS = 5  # grouped cross-validation folds where a dataset has no official test split
BOOTSTRAP = 1000  # percentile-bootstrap resamples for the intervals
TOP_FEATURES = 3  # the features the classifier leaned on most, shown to say what to look at
THUMB = 64  # side of the thumbnail the equal-channel and border checks look at
EQUAL_CHANNELS = 3  # grey levels RGB channels may differ by and still count as equal (JPEG chroma)
CONSTANT_LINE = 4  # grey-level range below which a thumbnail row/column counts as constant
BORDER_PX = 8  # tensor border: the outer frame the probe summarises, in pixels
RADIAL_BANDS = (0.0, 0.03, 0.06, 0.12, 0.25, 0.5, 0.72)  # cycles/pixel (0.72 ≥ the corner)
MODE_BITS = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I": 32, "F": 32}  # else 8/channel
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
# What a file says about how it was acquired and stored: the metadata classifier's features.
STORAGE = ("format", "stored", "subsampling", "bits", "width", "height", "aspect", "jpeg_quality",
           "progressive", "icc", "dpi", "border")  # fmt: skip
# Shown per class and written to the CSV, but not classified: they follow the content too (a
# textured lesion compresses to more bytes per pixel at the same JPEG quality; the edge's
# brightness is the image's own), so on files stored alike they would flag the disease itself.
# The JPEG quality carries the storage part of bytes per pixel.
CONTENT_LINKED = ("bytes_per_pixel", "border_level")


class ShortcutError(DatasetError):
    """The audit cannot run on this dataset; the message says why in one sentence."""


@functools.cache
def _quality_tables() -> np.ndarray:
    """Pillow's (libjpeg's) luminance table at every quality 1..100 (row q - 1), read back from
    tiny encodes, so that the estimate follows the encoder the world uses rather than a table
    typed here."""
    tables, tiny = [], Image.new("L", (8, 8))
    for quality in range(1, 101):
        buffer = io.BytesIO()
        tiny.save(buffer, "JPEG", quality=quality)
        tables.append(Image.open(buffer).quantization[0])
    return np.asarray(tables, dtype=float)


def jpeg_quality(quantization: dict) -> int:
    """The libjpeg quality (1..100) whose luminance table is nearest this file's (0: none)."""
    table = np.asarray((quantization or {}).get(0, ()), dtype=float)
    if table.shape != (64,):
        return 0
    return int(np.abs(_quality_tables() - table).sum(axis=1).argmin()) + 1


def _constant_lines(gray: np.ndarray) -> float:
    """Mean over the four sides of how many outer rows/columns of the thumbnail are constant
    (a black bar, a burned-in frame), as a share of its side."""
    widths = []
    for side in (gray, gray[::-1], gray.T, gray.T[::-1]):
        lines = np.ptp(side, axis=1) <= CONSTANT_LINE
        widths.append(len(lines) if lines.all() else int(np.argmin(lines)))
    return float(np.mean(widths)) / max(gray.shape)


def metadata_of(path: Path) -> dict:
    """The acquisition metadata of one file (STORAGE and CONTENT_LINKED); BadImage when Pillow
    cannot read it."""
    try:
        if path.stat().st_size == 0:
            raise BadImage("empty file (0 bytes)")
        with Image.open(path) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:  # header only: nothing decoded yet
                raise BadImage(f"its header claims {im.width}×{im.height} pixels, more than "
                               f"the {MAX_IMAGE_PIXELS:,} the kit decodes")  # fmt: skip
            row = {
                "format": im.format or "unknown",
                "bits": MODE_BITS.get(im.mode, 8 * len(im.getbands())),
                "width": im.width,
                "height": im.height,
                "aspect": round(im.width / im.height, 4),
                "bytes_per_pixel": round(path.stat().st_size / (im.width * im.height), 4),
                "jpeg_quality": jpeg_quality(getattr(im, "quantization", None) or {}),
                "subsampling": _subsampling(im),
                "progressive": int(bool(im.info.get("progressive"))),
                "icc": int("icc_profile" in im.info),
                "dpi": float(np.mean(im.info.get("dpi", (0, 0)))),
            }
            mode = im.mode
            # JPEG: decode at 1/8 scale (draft keeps at least the size asked for); the checks
            # look at broad bars and channel agreement, which survive the reduction
            im.draft("RGB" if mode not in GRAY_MODES else "L", (im.width // 8, im.height // 8))
            thumb = im.convert("RGB").resize((THUMB, THUMB), Image.Resampling.BOX)
    except BadImage:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise BadImage(f"Pillow cannot read it ({error})") from None
    pixels = np.asarray(thumb, dtype=np.int16)
    equal = int(np.abs(pixels - pixels[..., :1]).max()) <= EQUAL_CHANNELS
    row["stored"] = "gray" if mode in GRAY_MODES else ("rgb_equal" if equal else "rgb")
    gray = pixels.mean(axis=2)
    row["border"] = round(_constant_lines(gray), 4)
    row["border_level"] = round(float(np.concatenate([gray[0], gray[-1]]).mean()), 1)
    return row


def _subsampling(im) -> str:
    if im.format != "JPEG" or im.mode == "L":
        return "none"
    return {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}.get(JpegImagePlugin.get_sampling(im), "other")


def _radius(height: int, width: int) -> np.ndarray:
    fy, fx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
    return np.hypot(fy, fx)


def tensor_features(image: np.ndarray) -> dict:
    """What the Fourier branch sees, summarised: the share of power in each radial band (log10),
    the outer frame's mean and spread against the inside, and 8×8 blockiness (mean step across
    8-pixel boundaries over the mean step elsewhere: 1 for none)."""
    gray = image.astype(np.float64).mean(axis=2)
    power = np.abs(np.fft.fft2(gray - gray.mean())) ** 2
    radius, total = _radius(*gray.shape), power.sum() + 1e-12
    row = {}
    for low, high in zip(RADIAL_BANDS, RADIAL_BANDS[1:], strict=False):
        share = power[(radius >= low) & (radius < high)].sum() / total
        row[f"band_{low:g}_{high:g}"] = float(np.log10(share + 1e-12))
    frame = np.ones(gray.shape, bool)
    frame[BORDER_PX:-BORDER_PX, BORDER_PX:-BORDER_PX] = False
    row["border_mean"] = float(gray[frame].mean())
    row["border_std"] = float(gray[frame].std())
    row["border_minus_inside"] = float(gray[frame].mean() - gray[~frame].mean())
    steps = []
    for axis in (0, 1):
        diff = np.abs(np.diff(gray, axis=axis))
        at = (np.arange(diff.shape[axis]) % 8) == 7
        on, off = diff.take(np.where(at)[0], axis), diff.take(np.where(~at)[0], axis)
        steps.append((on.mean() + 1e-6) / (off.mean() + 1e-6))
    row["blockiness"] = float(np.mean(steps))
    return row


def _classify(rows: list[dict], labels, is_test, groups, seed: int):
    """(truth, prediction) of the scored images — fitted on the official train split and scored
    on its test split, or out-of-fold under grouped cross-validation where is_test is None —
    and the TOP_FEATURES features by mean impurity importance (a one-hot feature is named
    `key=value`)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.pipeline import make_pipeline

    def model():
        forest = RandomForestClassifier(
            n_estimators=200, min_samples_leaf=2, class_weight="balanced", random_state=seed
        )
        return make_pipeline(DictVectorizer(sparse=False), forest)  # one-hot text, numbers kept

    labels = np.asarray(labels)
    if is_test is not None:
        fit, held = np.where(~is_test)[0], np.where(is_test)[0]
        folds = [(fit, held)]
    else:
        folds = grouped_folds(labels, groups, FOLDS, seed)
    scored, predicted, weights = [], [], Counter()
    for fit, held in folds:
        fitted = model().fit([rows[i] for i in fit], labels[fit])
        names = fitted[0].get_feature_names_out()  # impurity importances: what the trees split on
        weights.update(dict(zip(names, fitted[1].feature_importances_ / len(folds), strict=True)))
        predicted.append(fitted.predict([rows[i] for i in held]))
        scored.append(held)
    order = np.concatenate(scored)
    top = {name: round(float(w), 3) for name, w in weights.most_common(TOP_FEATURES)}
    return labels[order], np.concatenate(predicted), top


def resampled_metrics(truth, predicted, draws) -> np.ndarray:
    """(balanced accuracy, Cohen's κ) of each resample (rows of `draws`: indices into the
    scored images), from one confusion matrix per resample: the definitions of scikit-learn's
    balanced_accuracy_score and cohen_kappa_score (a class absent from a resample's truth is
    left out of the balanced accuracy; κ is nan when chance agreement is 1), vectorized, as
    a thousand calls of those would take seconds per probe."""
    classes = np.union1d(truth, predicted)
    k = len(classes)
    cells = np.searchsorted(classes, truth) * k + np.searchsorted(classes, predicted)
    offsets = np.arange(len(draws))[:, None] * k * k
    confusion = np.bincount((cells[draws] + offsets).ravel(), minlength=len(draws) * k * k)
    confusion = confusion.reshape(len(draws), k, k).astype(float)
    rows, cols = confusion.sum(axis=2), confusion.sum(axis=1)
    diagonal = np.diagonal(confusion, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        bacc = np.nanmean(np.where(rows > 0, diagonal / rows, np.nan), axis=1)
        n = confusion.sum(axis=(1, 2))
        observed, chance = diagonal.sum(axis=1) / n, (rows * cols).sum(axis=1) / n**2
        kappa = np.where(chance < 1, (observed - chance) / (1 - chance), np.nan)
    return np.stack([bacc, kappa], axis=1)


def score(truth, predicted, top, seed: int) -> dict:
    """Balanced accuracy and Cohen's κ with 95 % percentile-bootstrap intervals over the scored
    images, and `flagged` by FLAG_KAPPA. Resamples that hold one class only have no κ and are
    left out of its percentiles (nanpercentile)."""
    from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score

    truth, predicted = np.asarray(truth), np.asarray(predicted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a class never predicted: a number, not noise
        bacc, kappa = balanced_accuracy_score(truth, predicted), cohen_kappa_score(truth, predicted)
    draws = np.random.default_rng(seed).integers(0, len(truth), (BOOTSTRAP, len(truth)))
    low, high = np.nanpercentile(resampled_metrics(truth, predicted, draws), [2.5, 97.5], axis=0)
    kappa = 0.0 if np.isnan(kappa) else float(kappa)  # one class predicted for one class shown
    return {
        "balanced_accuracy": round(float(bacc), 4),
        "balanced_accuracy_ci": [round(float(low[0]), 4), round(float(high[0]), 4)],
        "kappa": round(kappa, 4),
        "kappa_ci": [round(float(low[1]), 4), round(float(high[1]), 4)],
        "scored_images": int(len(truth)),
        "flagged": bool(kappa >= FLAG_KAPPA),
        "top_features": top,
    }


def _per_class(rows, labels, class_names) -> dict:
    """Each class's acquisition profile: shares of formats and stored modes, median size, the
    share of non-square images, median bytes per pixel and JPEG quality, constant borders."""
    table = {}
    for index, name in enumerate(class_names):
        mine = [r for r, label in zip(rows, labels, strict=True) if label == index]
        if not mine:
            continue

        def shares(key, mine=mine):
            counts = Counter(r[key] for r in mine)
            return {k: round(v / len(mine), 4) for k, v in counts.most_common()}

        def median(key, mine=mine):
            return float(np.median([r[key] for r in mine]))

        jpegs = [r["jpeg_quality"] for r in mine if r["format"] == "JPEG"]
        table[name] = {
            "images": len(mine),
            "format": shares("format"),
            "stored": shares("stored"),
            "bits": shares("bits"),
            "median_width": median("width"),
            "median_height": median("height"),
            "non_square": round(float(np.mean([r["aspect"] != 1 for r in mine])), 4),
            "median_aspect": median("aspect"),
            "median_bytes_per_pixel": median("bytes_per_pixel"),
            "median_jpeg_quality": float(np.median(jpegs)) if jpegs else None,
            "constant_border": round(float(np.mean([r["border"] > 0 for r in mine])), 4),
        }
    return table


def shortcut_audit(
    info: DatasetInfo,
    root,
    *,
    probe: bool = True,
    seed: int = 0,
    resize: str = PAPER_RESIZE,
    reencode: bool = False,
    listing: Listing | None = None,
) -> dict:
    """The audit's findings (see the module docstring); `probe=False` skips the tensor probe
    (what `check` summarises: header-only, fast). resize and reencode: the tensor probe looks
    at a shortcut-neutral arm's tensors (data_setup.decode) instead of the paper's. `listing`:
    the dataset's, when the caller has discovered it already. Files that cannot be read are
    listed in `left_out` with the reason, never silently dropped."""
    listing = listing or discover(info, root)

    def features(path):  # (metadata, tensor features) or the reason the file is left out
        try:
            row = metadata_of(path)
            image = (decode_image(path, info.image_size, info.channels, resize, reencode)
                     if probe else None)  # fmt: skip
        except BadImage as error:
            return str(error)
        return row, (tensor_features(image) if probe else None)

    items = [(path, label, split) for split, pairs in listing.splits.items()
             for path, label in pairs]  # fmt: skip
    workers = decode_workers()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(features, [path for path, _, _ in items]))
    files, labels, splits, rows, tensors, left_out = [], [], [], [], [], []
    for (path, label, split), result in zip(items, results, strict=True):
        if isinstance(result, str):
            left_out.append((path, result))
            continue
        files.append(path)
        labels.append(label)
        splits.append(split)
        rows.append(result[0])
        tensors.append(result[1])
    present = sorted(set(labels))
    if len(present) < 2:
        raise ShortcutError(
            f"{listing.root}: the shortcut audit needs readable images of at least two classes, "
            f"found {len(present)}"
        )
    official = "test" in splits and any(s != "test" for s in splits)
    is_test = np.array([s == "test" for s in splits]) if official else None
    groups = None
    if not official:
        table, _ = listing_groups(info, listing)  # patient/lesion ids, or a CSV's group column
        groups = combine_groups([table.get(str(p.relative_to(listing.root))) for p in files])
    found = {
        "dataset": info.id,
        "root": str(listing.root),
        "images": len(files),
        "evaluation": "official train → test" if official else f"grouped {FOLDS}-fold CV",
        "rule": f"flagged when the metadata-only classifier's Cohen's kappa >= {FLAG_KAPPA}",
        "per_class": _per_class(rows, labels, info.class_names),
        "left_out": [(str(p), why) for p, why in left_out],
    }
    try:
        storage = [{key: row[key] for key in STORAGE} for row in rows]
        found["metadata"] = score(*_classify(storage, labels, is_test, groups, seed), seed)
        if probe:
            found["tensor"] = score(*_classify(tensors, labels, is_test, groups, seed), seed)
    except ValueError as error:  # too few images or groups for the folds, one class in train
        raise ShortcutError(f"{listing.root}: cannot score the shortcut probes ({error})") from None
    found["kappa"], found["flagged"] = found["metadata"]["kappa"], found["metadata"]["flagged"]
    found["_rows"] = [
        {"file": str(p.relative_to(listing.root)), "split": s, "class": info.class_names[y], **r,
         **(tensors[i] if probe else {})}
        for i, (p, s, y, r) in enumerate(zip(files, splits, labels, rows, strict=True))
    ]  # fmt: skip
    return found


def _fmt(shares: dict) -> str:
    return " ".join(f"{k} {100 * v:.0f}%" for k, v in list(shares.items())[:2])


def report_lines(found: dict) -> list[str]:
    """The per-class table and the one-line verdict the command prints."""
    lines = [f"{'class':12s} {'n':>6s}  {'format':18s} {'stored':24s} {'median w×h':>11s} "
             f"{'non-sq':>6s} {'B/px':>5s} {'JPEG q':>6s} {'border':>6s}"]  # fmt: skip
    for name, c in found["per_class"].items():
        quality = "-" if c["median_jpeg_quality"] is None else f"{c['median_jpeg_quality']:.0f}"
        size = f"{c['median_width']:.0f}×{c['median_height']:.0f}"
        lines.append(
            f"{name[:12]:12s} {c['images']:6d}  {_fmt(c['format']):18s} {_fmt(c['stored']):24s} "
            f"{size:>11s} {100 * c['non_square']:5.0f}% {c['median_bytes_per_pixel']:5.2f} "
            f"{quality:>6s} {100 * c['constant_border']:5.0f}%"
        )
    for probe in ("metadata", "tensor"):
        if probe in found:
            lines.append(f"{probe:8s} classifier ({found['evaluation']}): {_metrics(found[probe])}")
            top = found[probe]["top_features"].items()
            leaning = ", ".join(f"{k} {v:.2f}" for k, v in top if v) or "nothing (all alike)"
            lines.append(f"         it leans on: {leaning}")
    lines.append(verdict(found))
    return lines


def _metrics(s: dict) -> str:
    return (f"κ {s['kappa']:.2f} [{s['kappa_ci'][0]:.2f}, {s['kappa_ci'][1]:.2f}], balanced "
            f"accuracy {s['balanced_accuracy']:.2f} [{s['balanced_accuracy_ci'][0]:.2f}, "
            f"{s['balanced_accuracy_ci'][1]:.2f}] on {s['scored_images']} images")  # fmt: skip


def verdict(found: dict) -> str:
    kappa = found["metadata"]["kappa"]
    if found["flagged"]:
        return (
            f"FLAGGED: how the files were stored predicts the class (metadata κ {kappa:.2f} "
            f"≥ {FLAG_KAPPA}); see docs/shortcuts.md before trusting a spectral win"
        )
    return (
        f"not flagged: storage does not predict the class (metadata κ {kappa:.2f} < {FLAG_KAPPA})"
    )


# --------------------------------------------------------------------------- recorded in a run
SUMMARY_VERSION = 1  # of the cached summary's format: another version is audited again
SUMMARY_CLASSES = 50  # classes whose acquisition profile a run records (bounds metrics.json)
SUMMARY_SHARES = 3  # values kept of each per-class share table (format, stored mode, bits)
SUMMARY_BYTES = 64 << 10  # a cached summary's bound (SUMMARY_CLASSES profiles take ~30 KB)


def summary(found: dict) -> dict:
    """What a run records of an audit (metrics.json `shortcuts`): the verdict, κ and balanced
    accuracy with their intervals, the top features, and each class's acquisition profile (the
    swap test's signatures); JSON-safe and bounded (SUMMARY_CLASSES, SUMMARY_SHARES)."""
    metadata = found["metadata"]
    per_class = {}
    for name, profile in list(found["per_class"].items())[:SUMMARY_CLASSES]:
        per_class[name] = {  # share tables' keys as text: JSON's (bits are numbers)
            key: {str(k): v for k, v in list(value.items())[:SUMMARY_SHARES]}
            if isinstance(value, dict) else value
            for key, value in profile.items()
        }  # fmt: skip
    def finite(values):  # a bootstrap without a κ (one class per resample): null, as JSON has
        return [v if np.isfinite(v) else None for v in values]  # no NaN

    return {
        "assessed": True,
        "kappa": metadata["kappa"],
        "kappa_ci": finite(metadata["kappa_ci"]),
        "balanced_accuracy": metadata["balanced_accuracy"],
        "balanced_accuracy_ci": finite(metadata["balanced_accuracy_ci"]),
        "flagged": found["flagged"],
        "top_features": metadata["top_features"],
        "scored_images": metadata["scored_images"],
        "evaluation": found["evaluation"],
        "rule": found["rule"],
        "header_only": "tensor" not in found,
        "left_out": len(found["left_out"]),
        "per_class": per_class,
    }


def _cached_summary(path: Path) -> dict | None:
    """The summary cached at `path`, or None when there is none or it is not one this version
    wrote (too large, not JSON, another version, the wrong kinds): then the audit runs again.
    It goes into metrics.json, so it is bounded (SUMMARY_BYTES) and its kinds are checked."""
    try:
        if not path.is_file() or path.stat().st_size > SUMMARY_BYTES:
            return None
        cached = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(cached, dict) or cached.pop("version", None) != SUMMARY_VERSION:
        return None
    if cached.get("assessed") is False and isinstance(cached.get("why"), str):
        return cached
    kinds = {"assessed": bool, "kappa": (int, float), "flagged": bool, "per_class": dict,
             "top_features": dict, "kappa_ci": list}  # fmt: skip
    if cached.get("assessed") is not True or not all(
        isinstance(cached.get(key), kind) for key, kind in kinds.items()
    ):
        return None
    return cached


def recorded_summary(info: DatasetInfo, listing: Listing, cache_dir, seed: int = 0) -> dict:
    """The header-only audit's summary for a run's metrics.json, from the cache when this file
    list (data_setup.cache.files_fingerprint of every official split) was audited before, else
    audited and cached. A dataset the audit cannot score is recorded as {"assessed": False,
    "why": ...}: a run on it is not refused for that."""
    fingerprints = [files_fingerprint(listing.splits[s], listing.root) for s in listing.splits]
    key = hashlib.sha256(
        json.dumps([SUMMARY_VERSION, info.id, sorted(listing.splits), fingerprints, seed]).encode()
    ).hexdigest()[:20]
    path = Path(cache_dir) / f"{info.id}_shortcuts_{key}.json"
    cached = _cached_summary(path)
    if cached is not None:
        return cached
    try:
        found = summary(shortcut_audit(info, listing.root, probe=False, seed=seed,
                                       listing=listing))  # fmt: skip
    except ShortcutError as error:
        found = {"assessed": False, "why": str(error)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"version": SUMMARY_VERSION, **found})
    except OSError:  # a read-only cache: the run still records it, the next one audits again
        pass
    return found
