"""Synthetic stand-ins for the datasets, written in their real folder layouts.

What to write comes from each dataset's record (data_setup.datasets: its layout kind, classes,
channels and SynthRecipe), never from its name, so a registered fifth dataset gets a stand-in too.

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

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from data_setup.datasets import DATASETS, ONEHOT_CSV_FILES, PAPER_COUNTS, RecordView
from data_setup.files import write_csv_atomic

# The layout kinds synth writes (data_setup.datasets.LAYOUT_KINDS less the custom label CSV).
SYNTH_KINDS = ("split_folders", "class_folders", "onehot_csv")
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
    return max(16, int(width * DATASETS[dataset].synth.aspect)), width


def _synth_info(dataset: str):
    """The record of `dataset`, refused in one sentence where synth cannot write its layout."""
    try:
        info = DATASETS[dataset]
    except KeyError:
        raise ValueError(
            f"synthetic data: unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}"
        ) from None
    if info.layout_kind not in SYNTH_KINDS:
        raise ValueError(
            f"synthetic data: dataset {dataset} declares layout kind {info.layout_kind!r}; "
            f"synth writes {', '.join(SYNTH_KINDS)}"
        )
    return info


@dataclass(frozen=True)
class SynthFile:
    """One image of a synthetic dataset: where it goes, its split and class, its masks."""

    path: str  # relative to the dataset root
    split: str  # "train", "val", "test" (split folders, one-hot CSVs) or "all" (class folders)
    label: int
    index: int  # position within its split and class
    masks: tuple[str, ...] = ()  # class folders with ignore_stem (BUSI): masks beside the image
    gray_as_rgb: bool = False  # real folders mix 1- and 3-channel JPEGs
    image_id: str = ""  # onehot_csv: the CSV's image column


def layout_plan(dataset: str, counts: dict[str, Sequence[int]]) -> list[SynthFile]:
    """Every file of a synthetic `dataset` in its real layout, in writing order.

    counts: images per class for each split ("train", "test", extra training folders such as
    Chest X-Ray's "val"; class folders have no split of their own: "all"). Paths are relative to
    the folder synth_dataset returns. The layout follows the record's layout kind."""
    info = _synth_info(dataset)
    suffix, files = info.synth.suffix, []
    if info.layout_kind == "split_folders":
        for split, per_class in counts.items():
            for label, name in enumerate(info.class_names):
                for i in range(per_class[label]):
                    path = f"{split}/{name}/{split}_{name.lower()}_{i:04d}{suffix}"
                    # grayscale stored as RGB, as in real folders (an RGB dataset is RGB already)
                    mixed = info.channels == 1 and i % 5 == 4
                    files.append(SynthFile(path, split, label, i, gray_as_rgb=mixed))
    elif info.layout_kind == "class_folders":
        for label, name in enumerate(info.class_names):
            for i in range(1, counts["all"][label] + 1):
                masks = []
                if info.ignore_stem:  # files the loaders skip: BUSI's segmentation masks
                    masks.append(f"{name}/{name} ({i}){info.ignore_stem}{suffix}")
                    if i % 7 == 0:  # some real lesions have a second mask
                        masks.append(f"{name}/{name} ({i}){info.ignore_stem}_1{suffix}")
                files.append(
                    SynthFile(f"{name}/{name} ({i}){suffix}", "all", label, i - 1, tuple(masks))
                )
    else:  # onehot_csv: a CSV of one-hot labels + a folder of images, per split
        number = info.synth.first_id
        for split in counts:
            for label in range(len(info.class_names)):
                for i in range(counts[split][label]):
                    image_id = info.synth.id_format.format(number)
                    number += 1
                    folder = ONEHOT_CSV_FILES[split][1]
                    path = f"{folder}/{image_id}{suffix}"
                    files.append(SynthFile(path, split, label, i, image_id=image_id))
    return files


def dataset_base(dataset: str, root) -> Path:
    """The folder synth_dataset returns for `dataset` written under `root`."""
    base = DATASETS[dataset].synth.base
    return Path(root) / base if base else Path(root)


def write_index(dataset: str, base, files: Sequence[SynthFile]) -> None:
    """A one-hot CSV layout's label CSVs for `files` (sorted by image id, as the real ones);
    other layouts: none."""
    info = _synth_info(dataset)
    if info.layout_kind != "onehot_csv":
        return
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    for split, (csv_name, _) in ONEHOT_CSV_FILES.items():
        rows = []
        for file in files:
            if file.split == split:
                onehot = ["0.0"] * len(info.class_names)
                onehot[file.label] = "1.0"
                rows.append([file.image_id, *onehot])
        rows.sort()
        write_csv_atomic(base / csv_name, [["image", *info.class_names], *rows])


def synth_dataset(dataset: str, root, count: int = 24, size: int = 96, seed: int = 0) -> Path:
    """Write one synthetic dataset under `root` in its real layout; returns the dataset folder.

    count: training images per class (test gets half, at least 3); size: source image width.
    """
    info = _synth_info(dataset)
    rng = np.random.default_rng([seed, list(DATASETS).index(dataset)])
    n_test, classes = max(3, count // 2), len(info.class_names)
    if info.layout_kind == "class_folders":  # one folder, split by the loaders
        counts = {"all": [count + n_test] * classes}
    else:
        counts = {"train": [count] * classes, "test": [n_test] * classes}
        for extra in info.extra_train:  # Chest X-Ray's real 16-image val/, unused by the paper
            counts[extra] = [2] * classes
    base = dataset_base(dataset, root)
    files = layout_plan(dataset, counts)
    for file in files:  # one random stream, in plan order: the same images for a seed
        height, width = _source_size(rng, dataset, size)
        img, mask = synth_image(rng, file.label, height, width, info.channels, classes)
        if file.gray_as_rgb:
            img = np.repeat(img[..., None], 3, axis=2)
        _write(base / file.path, img)
        for mask_path in file.masks:
            _write(base / mask_path, mask * 255)
    write_index(dataset, base, files)
    return base


def synth_all(root, count: int = 24, size: int = 96, seed: int = 0) -> dict[str, Path]:
    """All the datasets, each in its own subfolder of `root` named by dataset id."""
    root = Path(root)
    return {d: synth_dataset(d, root / d, count, size, seed) for d in DATASETS}


# --------------------------------------------------------------------------- full size
# The real datasets' images per split and class (class order of data_setup.datasets), for the
# full-size rehearsal (benchmarks/bench_scale.py): the records' paper_counts (Chest X-Ray, BUSI
# and HAM10000: the Kaggle / ISIC releases' folders and CSVs), where a split's count is only a
# total (BRISC2025's official 5,000 training images) its classes in the proportions of the test
# support.


def _real_counts(counts: dict) -> dict:
    support = counts.get("test", ())
    return {
        split: tuple(round(c * per_class / sum(support)) for per_class in support)
        if isinstance(c, int)
        else c
        for split, c in counts.items()
    }


REAL_COUNTS = RecordView(lambda: {name: _real_counts(c) for name, c in PAPER_COUNTS.items()})
_BASE_SIDE = 160  # drawn at this size, then enlarged: drawing at 2,000 px costs ~0.5 s an image


def scaled_counts(dataset: str, total: int) -> dict[str, list[int]]:
    """REAL_COUNTS scaled to about `total` images in all, keeping every split's class mix;
    at least 2 images per split and class (a stratified split needs two)."""
    real = REAL_COUNTS[dataset]
    full = sum(sum(c) for c in real.values())
    fraction = min(1.0, total / full)
    return {split: [max(2, round(c * fraction)) for c in cls] for split, cls in real.items()}


def _noise_tile(seed: int) -> np.ndarray:
    """Sensor-like noise to add to an enlarged drawing: a JPEG then costs what a real one does."""
    return np.random.default_rng(seed).normal(0, 10, (2048, 2048)).astype(np.int16)


def _own_structure(rng, image: np.ndarray) -> np.ndarray:
    """A smooth random field and a few soft blobs of this image's own, added to a drawing.

    Without them two drawings of one class are the same grating and shape, shifted: the
    near-duplicate audit rightly pairs them (125,239 "duplicate" pairs among 11,527 HAM10000
    stand-ins, one duplicate group swallowing the holdout split), and the rehearsal then times a
    dataset unlike any real one, whose near-duplicates are rare."""
    height, width = image.shape[:2]
    coarse = rng.normal(0, 1, (6, 6)).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC) * 45
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(int(rng.integers(3, 7))):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.05, 0.2) * height, rng.uniform(0.05, 0.2) * width
        field += rng.uniform(-100, 100) * np.exp(-(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2))
    field = field[..., None] if image.ndim == 3 else field
    return np.clip(image.astype(np.float32) + field, 0, 255).astype(np.uint8)


def full_size_image(rng, label, height, width, channels, num_classes, noise):
    """A synth_image drawn small with structure of its own, enlarged to (height, width), with
    per-pixel noise added."""
    scale = _BASE_SIDE / max(height, width)
    small_h, small_w = max(16, round(height * scale)), max(16, round(width * scale))
    img, mask = synth_image(rng, label, small_h, small_w, channels, num_classes)
    img = _own_structure(rng, img)
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    y = int(rng.integers(0, noise.shape[0] - height + 1)) if height < noise.shape[0] else 0
    x = int(rng.integers(0, noise.shape[1] - width + 1)) if width < noise.shape[1] else 0
    tile = np.resize(noise[y : y + height, x : x + width], (height, width))
    tile = tile[..., None] if img.ndim == 3 else tile
    return np.clip(img.astype(np.int16) + tile, 0, 255).astype(np.uint8), mask


def synth_full_size(dataset: str, root, counts=None, seed: int = 0, workers: int = 4):
    """Write `dataset` at the real counts (or `counts`, as scaled_counts gives) and the real
    source sizes, with a thread pool; returns (dataset folder, list of SynthFile). Each image
    has its own random stream, so any subset of the plan is the same images."""
    from concurrent.futures import ThreadPoolExecutor

    info = _synth_info(dataset)
    counts = counts or {split: list(c) for split, c in REAL_COUNTS[dataset].items()}
    base = dataset_base(dataset, root)
    files = layout_plan(dataset, counts)
    noise = _noise_tile(seed)
    order = list(DATASETS).index(dataset)
    splits = ("train", "val", "test", "all")

    def write(file: SynthFile):
        rng = np.random.default_rng([seed, order, splits.index(file.split), file.label, file.index])
        low, high = info.synth.real_width
        width = int(rng.integers(low, high + 1))
        height = int(width * rng.uniform(*info.synth.real_aspect))
        if info.synth.full_size_drawing == "chest_film":  # distinct patients, alike at 64×64
            from data_setup.xray import chest_film, random_patient

            diseased = file.label == 1  # the binary head's positive class (PNEUMONIA)
            img = chest_film(rng, random_patient(rng, diseased), height, width)
            mask = np.zeros(img.shape, np.uint8)
        else:
            img, mask = full_size_image(
                rng, file.label, height, width, info.channels, len(info.class_names), noise
            )
        if file.gray_as_rgb:
            img = np.repeat(img[..., None], 3, axis=2)
        _write(base / file.path, img)
        for mask_path in file.masks:
            _write(base / mask_path, mask * 255)

    with ThreadPoolExecutor(workers) as pool:  # OpenCV and NumPy release the GIL
        list(pool.map(write, files))
    write_index(dataset, base, files)
    return base, files


def demo_data_dir(dataset: str, count: int = 24, seed: int = 0) -> Path:
    """The synthetic stand-in for `dataset`, generated once into the kit's cache folder."""
    from data_setup.cache import default_cache_dir

    target = default_cache_dir() / "synthetic" / f"v{SYNTH_VERSION}_n{count}_seed{seed}" / dataset
    if not target.is_dir():
        tmp = target.with_name(f".{dataset}.{os.getpid()}.tmp")
        synth_dataset(dataset, tmp, count=count, size=96, seed=seed)
        try:
            os.replace(tmp, target)  # atomic; a parallel run may have won the race
        except OSError:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return target
