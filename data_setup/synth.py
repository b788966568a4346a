"""Synthetic stand-ins for the four datasets, written in their real folder layouts.

Each class differs in a local shape (a spatial cue: disk, square, triangle, cross, ...) and in
the spatial frequency of a global grating (a spectral cue), so both towers have something to
learn. The cues are sized for the demo's small inputs (24×32 and 32×32): the grating stays well
below the Nyquist frequency there (3 to 10 cycles across the image's longer side, evenly spaced
over the classes: HAM10000's seven are 1.2 cycles apart), and its orientation varies only a
little (30°–60°), so a class's spectral energy sits in a few Fourier bins that a learnable
spectral filter can pick out from a few dozen images. The files go
through the very same loaders as the real data. Deterministic for a given seed.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from data_setup.datasets import DATASETS

# Height/width ratio of each dataset's real images, so resizing behaves as on the real data.
_ASPECT = {"BRISC2025": 1.0, "ChestXRay": 0.75, "BUSI": 0.8, "HAM10000": 0.75}
_SHAPES = ("disk", "square", "triangle", "cross", "ring", "bar", "diamond")
# Grating frequencies, cycles across the longer side: at the demo's 32 px the top one is 0.31
# cycles/px, below Nyquist (0.5) with margin for the area resize. (4–11 was tried: the
# S³F-Net concat BUSI demo then stalled at κ 0.5.) Bump SYNTH_VERSION whenever the images change,
# so cached demo datasets are regenerated.
_CYCLES = (3.0, 10.0)
SYNTH_VERSION = 5


def grating_cycles(class_index: int, num_classes: int) -> float:
    """The class's grating frequency in cycles across the image's longer side."""
    low, high = _CYCLES
    return low + (high - low) * class_index / max(1, num_classes - 1)


def synth_image(rng, class_index, height, width, channels, num_classes=7):
    """One uint8 image of the given class (RGB order when channels == 3)."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    angle = rng.uniform(np.pi / 6, np.pi / 3)
    cycles = grating_cycles(class_index, num_classes)  # the spectral cue
    grating = np.sin(
        2 * np.pi * cycles * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 6.3)
    )
    image = 0.35 + 0.18 * grating + rng.normal(0, 0.05, (height, width))
    mask = np.zeros((height, width), np.uint8)
    size = int(min(height, width) * rng.uniform(0.22, 0.3))
    cy = int(rng.uniform(0.3, 0.7) * height)
    cx = int(rng.uniform(0.3, 0.7) * width)
    shape = _SHAPES[class_index % len(_SHAPES)]
    if shape == "disk":
        cv2.circle(mask, (cx, cy), size, 1, -1)
    elif shape == "square":
        cv2.rectangle(mask, (cx - size, cy - size), (cx + size, cy + size), 1, -1)
    elif shape == "triangle":
        points = np.array([[cx, cy - size], [cx - size, cy + size], [cx + size, cy + size]])
        cv2.fillPoly(mask, [points.astype(np.int32)], 1)
    elif shape == "cross":
        thick = max(2, size // 2)
        cv2.rectangle(mask, (cx - size, cy - thick), (cx + size, cy + thick), 1, -1)
        cv2.rectangle(mask, (cx - thick, cy - size), (cx + thick, cy + size), 1, -1)
    elif shape == "ring":
        cv2.circle(mask, (cx, cy), size, 1, max(2, size // 2))
    elif shape == "bar":
        cv2.rectangle(mask, (cx - size, cy - size // 2), (cx + size, cy + size // 2), 1, -1)
    else:
        points = np.array([[cx, cy - size], [cx - size, cy], [cx, cy + size], [cx + size, cy]])
        cv2.fillPoly(mask, [points.astype(np.int32)], 1)
    image = np.where(mask > 0, 0.9, image)
    gray = np.clip(image * 255, 0, 255).astype(np.uint8)
    if channels == 1:
        return gray, mask
    # dermoscopy-like colours, a little greener per class
    tint = np.array([1.0, 0.75 + 0.25 * class_index / max(1, num_classes - 1), 0.6])
    rgb = np.clip(gray[..., None] * tint, 0, 255).astype(np.uint8)
    return rgb, mask


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if path.suffix in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise OSError(f"{path}: could not encode image")
    path.write_bytes(encoded.tobytes())


def _source_size(rng, dataset, size):
    width = int(size * rng.uniform(0.9, 1.25))  # real sources vary in size
    return max(16, int(width * _ASPECT[dataset])), width


def synth_dataset(dataset: str, root, count: int = 24, size: int = 96, seed: int = 0) -> Path:
    """Write one synthetic dataset under `root` in its real layout; returns the dataset folder.

    count: training images per class (test gets half, at least 3); size: source image width.
    """
    info = DATASETS[dataset]
    rng = np.random.default_rng([seed, list(DATASETS).index(dataset)])
    root = Path(root)
    n_test = max(3, count // 2)

    def image(label, gray_as_rgb=False):
        height, width = _source_size(rng, dataset, size)
        img, mask = synth_image(
            rng, label, height, width, info.channels, len(info.class_names)
        )
        if gray_as_rgb:  # real folders mix 1- and 3-channel JPEGs
            img = np.repeat(img[..., None], 3, axis=2)
        return img, mask

    if dataset in ("BRISC2025", "ChestXRay"):
        base = root / ("classification_task" if dataset == "BRISC2025" else "chest_xray")
        suffix = ".jpg" if dataset == "BRISC2025" else ".jpeg"
        splits = {"train": count, "test": n_test}
        if dataset == "ChestXRay":
            splits["val"] = 2  # the real 16-image val folder, unused by the paper
        for split, n in splits.items():
            for label, name in enumerate(info.class_names):
                for i in range(n):
                    img, _ = image(label, gray_as_rgb=(i % 5 == 4))
                    _write(base / split / name / f"{split}_{name.lower()}_{i:04d}{suffix}", img)
        return base
    if dataset == "BUSI":
        base = root / "Dataset_BUSI_with_GT"
        for label, name in enumerate(info.class_names):
            for i in range(1, count + n_test + 1):
                img, mask = image(label)
                _write(base / name / f"{name} ({i}).png", img)
                _write(base / name / f"{name} ({i})_mask.png", mask * 255)
                if i % 7 == 0:  # some real lesions have a second mask
                    _write(base / name / f"{name} ({i})_mask_1.png", mask * 255)
        return base
    # HAM10000: CSV of one-hot labels + a folder of RGB JPEGs, per split
    base, number = root, 24306
    for csv_name, folder, n in (
        ("GroundTruth.csv", "images", count),
        ("Test_GroundTruth.csv", "Test_images", n_test),
    ):
        rows = []
        for label in range(len(info.class_names)):
            for _ in range(n):
                image_id = f"ISIC_{number:07d}"
                number += 1
                img, _ = image(label)
                _write(base / folder / f"{image_id}.jpg", img)
                onehot = ["0.0"] * len(info.class_names)
                onehot[label] = "1.0"
                rows.append([image_id, *onehot])
        rows.sort()
        base.mkdir(parents=True, exist_ok=True)
        with open(base / csv_name, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", *info.class_names])
            writer.writerows(rows)
    return base


def synth_all(root, count: int = 24, size: int = 96, seed: int = 0) -> dict[str, Path]:
    """All four datasets, each in its own subfolder of `root` named by dataset id."""
    root = Path(root)
    return {d: synth_dataset(d, root / d, count, size, seed) for d in DATASETS}
