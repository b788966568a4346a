"""Acquisition-swap test: does a trained model use how the files were stored (issue 35, item 2)?

The shortcut audit (data_setup.shortcuts) says whether storage *could* predict the class; this
says whether a model *does* use it. Each test image is stored again with another class's
acquisition signature — the audit's per-class profile: most common stored mode, format, median
JPEG quality and median size (so its aspect ratio, which the paper's squash distorts) — and
decoded exactly as the model's training decoded its images (data_setup.decode). A model that
reads the disease keeps its prediction; a model that reads the storage follows the signature, so
its prediction flips. As a control each image is also stored again with its *own* class's
signature: the flips that re-encoding alone causes. Compression cannot be undone: a file given a
lossless class's storage keeps the blocks of its own JPEG, so flips towards a lossy class's
storage are the clearer half.

Where the dataset ships lesion masks beside its images (BUSI: `<name>_mask*.png`), the test
images are also scored with the lesion painted out (OpenCV inpainting from its surroundings, so
no hole marks it): a model that still classifies them reads the context, not the lesion.

A model here is a function from a float32 batch (N, H, W, C) in [0, 1] to class probabilities
(N, K), so this module needs no TensorFlow; s3f_kit.apply.swap gives it trained models (and is
the `s3f-swap` command). Intervals: Wilson score intervals (scipy) over the swapped pairs.
"""

from __future__ import annotations

import functools
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from data_setup.decode import (
    MAX_IMAGE_PIXELS,
    PAPER_RESIZE,
    BadImage,
    decode_bytes,
    decode_workers,
    read_bytes,
)
from data_setup.shortcuts import GRAY_MODES

LOSSLESS = "PNG"  # what a class stored in any lossless format (PNG, BMP, TIFF) is swapped to
DEFAULT_QUALITY = 75  # a JPEG class whose quality the audit could not estimate: libjpeg's default
MAX_IMAGES = 1000  # test images swapped at most (a seeded sample beyond): bounds the time
BATCH = 32  # images per model call
CHUNK = 64  # test images prepared at once: bounds the memory the swapped tensors take
LEFT_OUT_SHOWN = 20  # unreadable files named in the result (all are counted)
INPAINT_RADIUS = 5  # pixels OpenCV's inpainting looks around a masked pixel
MASK_DILATE = 5  # pixels the lesion mask grows by first: the lesion's rim goes too


@dataclass(frozen=True)
class Signature:
    """How one class's files were stored, as a file can be stored again."""

    mode: str  # Pillow mode: "L" or "RGB"
    format: str  # "JPEG" or LOSSLESS
    quality: int | None  # JPEG quality
    width: int  # the stored size: its aspect ratio is what the squash distorts, and its scale
    height: int  # sets where the resize puts a JPEG's 8×8 grid in the tensor

    def as_json(self) -> dict:
        return {"mode": self.mode, "format": self.format, "quality": self.quality,
                "width": self.width, "height": self.height}  # fmt: skip


def signature_of(profile: dict) -> Signature:
    """A class's Signature from its audit profile (data_setup.shortcuts per_class, as recorded
    in a run's `shortcuts`): its most common stored mode and format (shares come most common
    first), median JPEG quality and median size."""
    stored = next(iter(profile["stored"]), "rgb")
    form = next(iter(profile["format"]), LOSSLESS)
    jpeg = form == "JPEG"
    quality = profile.get("median_jpeg_quality") if jpeg else None
    return Signature(
        mode="L" if stored == "gray" else "RGB",
        format="JPEG" if jpeg else LOSSLESS,
        quality=int(round(quality)) if jpeg and quality else (DEFAULT_QUALITY if jpeg else None),
        width=max(1, round(profile["median_width"])),
        height=max(1, round(profile["median_height"])),
    )


def source_pixels(path: Path) -> np.ndarray:
    """A file's pixels at its stored size, gray (H, W) or RGB (H, W, 3) uint8, as Pillow reads
    them; BadImage (its reason) when it cannot be used, a header over MAX_IMAGE_PIXELS
    included."""
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise BadImage(f"its header claims {im.width}×{im.height} pixels, more than "
                               f"the {MAX_IMAGE_PIXELS:,} the kit decodes")  # fmt: skip
            return np.asarray(im.convert("L" if im.mode in GRAY_MODES else "RGB"))
    except BadImage:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise BadImage(f"Pillow cannot read it ({error})") from None


def stored_as(pixels: np.ndarray, signature: Signature) -> bytes:
    """`pixels` stored again with `signature`: centre-cropped to its aspect ratio, resized to its
    size (area interpolation, as the kit's decode), converted to its mode and encoded in its
    format and quality. Cropped, not stretched: another class's file shows undistorted anatomy
    in its own frame, and it is the run's resize that distorts it (or not, by the arm)."""
    height, width = pixels.shape[:2]
    aspect = signature.width / signature.height
    if width / height > aspect:  # too wide for the signature's frame: trim the sides
        keep = max(1, round(height * aspect))
        pixels = pixels[:, (width - keep) // 2 : (width - keep) // 2 + keep]
    else:
        keep = max(1, round(width / aspect))
        pixels = pixels[(height - keep) // 2 : (height - keep) // 2 + keep]
    if pixels.shape[:2] != (signature.height, signature.width):
        size = (signature.width, signature.height)
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    image = Image.fromarray(np.ascontiguousarray(pixels))
    buffer = io.BytesIO()
    options = {"quality": signature.quality} if signature.format == "JPEG" else {}
    image.convert(signature.mode).save(buffer, signature.format, **options)
    return buffer.getvalue()


def _decoded(raw: bytes, path, size_hw, channels, resize, reencode) -> np.ndarray:
    return decode_bytes(np.frombuffer(raw, np.uint8), size_hw, channels, Path(path), resize,
                        reencode)  # fmt: skip


def _predicted(model, images: list[np.ndarray]) -> np.ndarray:
    """The model's class for each uint8 image, BATCH at a time, scaled as training scales."""
    out = []
    for start in range(0, len(images), BATCH):
        batch = np.stack(images[start : start + BATCH]).astype(np.float32) / np.float32(255)
        probs = np.asarray(model(batch))
        # the paper's two-class head is one sigmoid unit: class 1 where p > 0.5 (its threshold);
        # argmax over that one column would call every image class 0
        out.append((probs[:, 0] > 0.5).astype(int) if probs.shape[1] == 1 else probs.argmax(axis=1))
    return np.concatenate(out) if out else np.zeros(0, int)


def wilson(count: int, total: int) -> list[float]:
    """95 % Wilson score interval of count/total (scipy), [None, None] when total is 0 (JSON
    has no NaN)."""
    if not total:
        return [None, None]
    from scipy.stats import binomtest

    interval = binomtest(count, total).proportion_ci(0.95, method="wilson")
    return [round(float(interval.low), 4), round(float(interval.high), 4)]


def _rate(count: int, total: int) -> dict:
    rate = round(count / total, 4) if total else None
    return {"count": int(count), "of": int(total), "rate": rate, "ci": wilson(count, total)}


def lesion_masks(path: Path) -> list[Path]:
    """BUSI's masks of one image: `<name>_mask.png`, `<name>_mask_1.png`, … beside it."""
    return sorted(path.parent.glob(f"{glob_escape(path.stem)}_mask*.png"))


def glob_escape(text: str) -> str:
    """A name with glob's special characters taken literally (BUSI's names hold brackets)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def masked_out(pixels: np.ndarray, masks: list[Path]) -> np.ndarray:
    """`pixels` with the union of `masks` (grown by MASK_DILATE) inpainted from around it."""
    height, width = pixels.shape[:2]
    lesion = np.zeros((height, width), np.uint8)
    for mask in masks:
        found = source_pixels(mask)
        found = found if found.ndim == 2 else found.max(axis=2)
        if found.shape != (height, width):  # a mask saved at another size: nearest, no blur
            found = cv2.resize(found, (width, height), interpolation=cv2.INTER_NEAREST)
        lesion |= (found > 0).astype(np.uint8)
    grow = 2 * MASK_DILATE + 1
    lesion = cv2.dilate(lesion, np.ones((grow, grow), np.uint8))
    return cv2.inpaint(pixels, lesion * 255, INPAINT_RADIUS, cv2.INPAINT_TELEA)


def acquisition_swap(
    models: dict,
    items: list[tuple[Path, int]],
    per_class: dict,
    class_names: list[str],
    size_hw: tuple[int, int],
    channels: int,
    *,
    resize: str = PAPER_RESIZE,
    reencode: bool = False,
    masks: bool = False,
    seed: int = 0,
) -> dict:
    """The swap test of each model in `models` ({name: batch → probabilities}) on the test
    images `items` ((path, label); at most MAX_IMAGES, a seeded sample beyond), with the
    per-class acquisition profiles `per_class` (the audit's). size_hw, channels, resize,
    reencode: how the models' training decoded its images. masks: also score each image with
    its lesion inpainted (where lesion_masks finds masks). JSON-safe; files that cannot be
    read are listed with the reason."""
    signatures = {name: signature_of(per_class[name]) for name in class_names if name in per_class}
    if len(signatures) < 2:
        raise ValueError("the swap test needs the acquisition profiles of at least two classes")
    items = list(items)
    sampled = len(items) > MAX_IMAGES
    if sampled:
        keep = np.random.default_rng(seed).choice(len(items), MAX_IMAGES, replace=False)
        items = [items[i] for i in sorted(keep)]

    def prepare(item):  # the tensors of one test image, or why it is left out
        path, label = item
        decode = functools.partial(_decoded, path=path, size_hw=size_hw, channels=channels,
                                   resize=resize, reencode=reencode)  # fmt: skip
        try:
            pixels = source_pixels(path)
            mine = signatures.get(class_names[label])
            others = [(class_names.index(t), decode(stored_as(pixels, sig)))
                      for t, sig in signatures.items() if t != class_names[label]]  # fmt: skip
            found = lesion_masks(path) if masks else []
            return {
                "label": label,
                "first": decode(read_bytes(path).tobytes()),
                "own": decode(stored_as(pixels, mine)) if mine else None,
                "others": others,
                "masked": decode(_png(masked_out(pixels, found))) if found else None,
            }
        except BadImage as error:
            return str(error)

    # CHUNK images at a time: prepared in parallel (Pillow and OpenCV release the GIL), then
    # predicted, so memory holds one chunk's tensors whatever the test set's size
    labels, left_out = [], []
    outcome = {name: {"before": [], "own": [], "swapped": [], "masked": []} for name in models}
    rows = {"own": [], "swapped": [], "targets": [], "masked": []}
    with ThreadPoolExecutor(decode_workers()) as pool:
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            ready = []
            for (path, _), prepared in zip(chunk, pool.map(prepare, chunk), strict=True):
                if isinstance(prepared, str):
                    left_out.append([str(path), prepared])
                else:
                    ready.append((len(labels) + len(ready), prepared))
            labels.extend(p["label"] for _, p in ready)
            own = [(row, p["own"]) for row, p in ready if p["own"] is not None]
            swapped = [(row, t, image) for row, p in ready for t, image in p["others"]]
            masked = [(row, p["masked"]) for row, p in ready if p["masked"] is not None]
            rows["own"] += [row for row, _ in own]
            rows["swapped"] += [row for row, _, _ in swapped]
            rows["targets"] += [t for _, t, _ in swapped]
            rows["masked"] += [row for row, _ in masked]
            for name, model in models.items():
                found = outcome[name]
                found["before"] += _predicted(model, [p["first"] for _, p in ready]).tolist()
                found["own"] += _predicted(model, [image for _, image in own]).tolist()
                found["swapped"] += _predicted(model, [image for _, _, image in swapped]).tolist()
                found["masked"] += _predicted(model, [image for _, image in masked]).tolist()
    result = {
        "images": len(labels),
        "sampled": sampled,
        "signatures": {name: sig.as_json() for name, sig in signatures.items()},
        "decode": {
            "image_size": list(size_hw),
            "channels": channels,
            "resize": resize,
            "reencode": bool(reencode),
        },  # fmt: skip
        "left_out": left_out[:LEFT_OUT_SHOWN],
        "left_out_count": len(left_out),
        "models": {},
    }
    arrays = {key: np.asarray(value, dtype=int) for key, value in rows.items()}
    for name, found in outcome.items():
        predicted = {key: np.asarray(value, dtype=int) for key, value in found.items()}
        result["models"][name] = _scored(np.asarray(labels, dtype=int), predicted, arrays,
                                         class_names)  # fmt: skip
    return result


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _scored(labels, predicted, rows, class_names) -> dict:
    """One model's rates from its predictions (`predicted`: before, own, swapped, masked) and
    the test image each prediction belongs to (`rows`; targets: the class whose storage a
    swapped image was given)."""
    before = predicted["before"]
    scored = {"accuracy": _rate(int((before == labels).sum()), len(labels))}
    if len(rows["own"]):
        flipped = predicted["own"] != before[rows["own"]]
        scored["control_flips"] = _rate(int(flipped.sum()), len(flipped))
    if len(rows["swapped"]):
        after, targets = predicted["swapped"], rows["targets"]
        flipped = after != before[rows["swapped"]]
        scored["flips"] = _rate(int(flipped.sum()), len(flipped))
        # a flip *to* the class whose storage the image was given is the shortcut's signature
        scored["to_signature_class"] = _rate(int((after == targets).sum()), len(flipped))
        scored["per_class"] = {
            class_names[t]: _rate(int(flipped[targets == t].sum()), int((targets == t).sum()))
            for t in sorted(set(targets.tolist()))
        }  # the images given class t's storage, and how many of them flipped
    if len(rows["masked"]):
        after, at = predicted["masked"], rows["masked"]
        scored["lesion_masked"] = {
            "accuracy": _rate(int((after == labels[at]).sum()), len(at)),
            "accuracy_unmasked": _rate(int((before[at] == labels[at]).sum()), len(at)),
            "kept_prediction": _rate(int((after == before[at]).sum()), len(at)),
            "chance": round(1 / len(class_names), 4),
        }
    return scored


def run_lines(audit: dict | None, swapped: dict) -> list[str]:
    """What a run prints of its dataset's shortcut audit and its model's swap test."""
    lines = []
    if isinstance(audit, dict) and audit.get("assessed"):
        low, high = audit.get("kappa_ci") or (None, None)
        interval = f" [{low:+.2f}, {high:+.2f}]" if low is not None and high is not None else ""
        lines.append(
            f"Shortcut audit (does how a file is stored predict its class?): κ "
            f"{audit['kappa']:+.2f}{interval}, "
            + ("FLAGGED — read the claims with docs/shortcuts.md" if audit.get("flagged")
               else "not flagged")
        )  # fmt: skip
    if swapped.get("assessed"):
        lines += ["Acquisition swap (docs/shortcuts.md): " + report_lines(swapped)[0],
                  *report_lines(swapped)[1:]]  # fmt: skip
    else:
        lines.append(f"Acquisition swap: not run ({swapped.get('why', 'no audit')})")
    return lines


def report_lines(result: dict) -> list[str]:
    """What the command prints: per model, the flips with intervals beside the control."""

    def pct(rate):
        if rate["rate"] is None or rate["ci"][0] is None:
            return "-"
        low, high = rate["ci"]
        return f"{100 * rate['rate']:.1f}% [{100 * low:.1f}, {100 * high:.1f}] of {rate['of']}"

    lines = [f"{result['images']} test images" + (" (a sample)" if result["sampled"] else "")]
    for name, sig in result["signatures"].items():
        quality = f" q{sig['quality']}" if sig["quality"] else ""
        lines.append(f"  {name}: stored {sig['mode']} {sig['format']}{quality}, "
                     f"{sig['width']}×{sig['height']}")  # fmt: skip
    for name, scored in result["models"].items():
        lines.append(f"{name}: accuracy {pct(scored['accuracy'])}")
        if "flips" in scored:
            control = pct(scored["control_flips"]) if "control_flips" in scored else "-"
            lines.append(f"  given another class's storage: {pct(scored['flips'])} flip "
                         f"(control, own class's storage: {control})")  # fmt: skip
        if "lesion_masked" in scored:
            masked = scored["lesion_masked"]
            lines.append(f"  lesion masked out: accuracy {pct(masked['accuracy'])} (unmasked "
                         f"{pct(masked['accuracy_unmasked'])}; chance "
                         f"{masked['chance']:.2f})")  # fmt: skip
    return lines


def dataset_swap(models: dict, data, seed: int = 0) -> dict:
    """The swap test on a loaded Dataset's test split (data_setup.loading.load_dataset with
    shortcuts=True), decoded as the Dataset was (its size, channels and arms), with the lesion
    masked out where masks lie beside the images: what a run records as `acquisition_swap`.
    {"assessed": False, "why": ...} where the audit could not profile the classes."""
    found = getattr(data, "shortcuts", None) or {}
    if not found.get("assessed"):
        why = found.get("why", "the run's data has no shortcut audit (load_dataset shortcuts=)")
        return {"assessed": False, "why": why}
    test = data.splits["test"]
    items = [(Path(data.root) / f, int(y)) for f, y in zip(test.files, test.labels, strict=True)]
    try:
        result = acquisition_swap(
            models, items, found["per_class"], list(data.class_names), tuple(data.image_size),
            data.channels, resize=data.resize, reencode=data.reencode, masks=True, seed=seed,
        )  # fmt: skip
    except ValueError as error:
        return {"assessed": False, "why": str(error)}
    return {"assessed": True, **result}


def keras_predictor(model):
    """A Keras model as the batch → probabilities function this module calls (inference
    mode: BatchNorm's moving averages, no dropout)."""
    return lambda batch: np.asarray(model(batch, training=False), dtype=np.float64)
