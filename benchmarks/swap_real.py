"""The acquisition-swap test and the shortcut-neutral arms on real radiographs: the figures in
docs/shortcuts.md ("The swap test, measured" and "The arms, measured").

The 13 films that `pip install pydicom pydicom-data` bundles (benchmarks/audit_accuracy.py reads
them), 30 random crops each; the label is the film's half (films 0–6 NORMAL, 7–12 PNEUMONIA), so
content carries it; crops 0–19 of a film train, 20–29 test. The planted shortcut stores NORMAL
as gray JPEG q30 cropped 4:3 and PNEUMONIA as RGB PNG cropped square (so the paper's squash
distorts NORMAL only). Two stand-in models, each the audit's tensor-probe classifier (tensor
features of the kit's decode, a random forest) — a network is costlier to train, not different
in what it may read:

- "shortcut": trained on crops stored that way with random labels (content carries none);
- "content": trained on crops stored alike (gray PNG, square) with the film labels.

Both get the swap test on the test crops stored with the planted shortcut. Then the arms, on the
random-label set (only storage tells its classes apart): decode time per image, whether a border
statistic of the tensor tells the 4:3 files from the square ones, and the tensor probe's κ under
each arm (ChestXRay's 384×512 input).

    PYTHONPATH=/work/realimg python benchmarks/swap_real.py [--seed 0]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

CROPS, TRAIN = 30, 20  # per film; the first TRAIN crops of each film train
SIZE = (256, 256)  # BUSI's and BRISC2025's input size


def _crop(rng, film, aspect):
    height, width = film.shape
    side = int(min(height, width) * rng.uniform(0.5, 0.8))
    h, w = (side * 3 // 4, side) if aspect == "4:3" else (side, side)
    y, x = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
    return film[y : y + h, x : x + w]


def _write(root, rows, store):
    """rows: (split, label, pixels); store(pixels, label) → (PIL image, suffix, options)."""
    for index, (split, label, pixels) in enumerate(rows):
        folder = root / "chest_xray" / split / label
        folder.mkdir(parents=True, exist_ok=True)
        image, suffix, options = store(pixels, label)
        image.save(folder / f"crop{index}{suffix}", **options)
    return root


def planted(pixels, label):
    if label == "NORMAL":
        return Image.fromarray(pixels), ".jpeg", {"quality": 30}
    return Image.fromarray(pixels).convert("RGB"), ".png", {}


def alike(pixels, label):
    return Image.fromarray(pixels), ".png", {}


def main() -> int:
    from audit_accuracy import real_images
    from sklearn.ensemble import RandomForestClassifier

    from data_setup.datasets import DATASETS
    from data_setup.decode import decode_image
    from data_setup.layouts import discover
    from data_setup.shortcuts import (
        _classify,
        recorded_summary,
        score,
        shortcut_audit,
        tensor_features,
    )
    from data_setup.swap import acquisition_swap, report_lines

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    films = real_images()
    if films is None:
        print("skipped: pip install pydicom pydicom-data for its bundled radiographs")
        return 0
    info, rng = DATASETS["ChestXRay"], np.random.default_rng(args.seed)
    names = info.class_names
    work = Path(tempfile.mkdtemp(prefix="s3f-swap-"))
    try:
        rows = {"random": [], "content": [], "test": []}  # (split, label, pixels)
        for index, film in enumerate(films):
            label = names[int(index >= 7)]
            for crop in range(CROPS):
                split = "train" if crop < TRAIN else "test"
                random_label = names[int(rng.integers(2))]
                shortcut_aspect = "4:3" if random_label == "NORMAL" else "1:1"
                if split == "train":
                    rows["random"].append(("train", random_label,
                                           _crop(rng, film, shortcut_aspect)))  # fmt: skip
                    rows["content"].append(("train", label, _crop(rng, film, "1:1")))
                else:
                    aspect = "4:3" if label == "NORMAL" else "1:1"
                    rows["test"].append(("test", label, _crop(rng, film, aspect)))
        # every layout needs a test split: the swap test's own test crops serve
        shortcut_root = _write(work / "shortcut", rows["random"] + rows["test"], planted)
        content_root = _write(work / "content", rows["content"] + rows["test"], alike)
        test_root = _write(work / "test", rows["test"] + rows["content"][::6], planted)

        def model(root):
            listing = discover(info, root)
            features, labels = [], []
            for path, label in listing.splits["train"]:
                features.append(list(tensor_features(decode_image(path, SIZE, 1)).values()))
                labels.append(label)
            forest = RandomForestClassifier(300, random_state=args.seed).fit(features, labels)
            return lambda batch: forest.predict_proba(
                [list(tensor_features(np.round(x * 255)).values()) for x in batch]
            )

        start = time.perf_counter()
        models = {"shortcut (random labels)": model(shortcut_root),
                  "content (stored alike)": model(content_root)}  # fmt: skip
        print(f"trained two stand-in models in {time.perf_counter() - start:.0f} s")
        start = time.perf_counter()
        audit = recorded_summary(info, discover(info, test_root), work / "cache")
        first = time.perf_counter() - start
        start = time.perf_counter()
        recorded_summary(info, discover(info, test_root), work / "cache")
        print(f"header-only audit of {sum(audit['per_class'][c]['images'] for c in names)} "
              f"files: {first:.2f} s, cached: {time.perf_counter() - start:.3f} s; "
              f"κ {audit['kappa']} {audit['kappa_ci']}, flagged {audit['flagged']}")  # fmt: skip
        start = time.perf_counter()
        result = acquisition_swap(models, discover(info, test_root).splits["test"],
                                  audit["per_class"], list(names), SIZE, 1)  # fmt: skip
        print(f"swap test: {time.perf_counter() - start:.0f} s")
        print("\n".join(report_lines(result)))
        for name, scored in result["models"].items():
            print(f"  {name}: per class given {scored['per_class']}")

        # the arms: time per decode, and the border statistic of 4:3 against square files
        listing = discover(info, test_root)
        paths = [p for p, _ in listing.splits["test"]]
        for resize, reencode in (("squash", False), ("crop", False), ("reflect", False),
                                 ("squash", True), ("reflect", True)):  # fmt: skip
            start = time.perf_counter()
            for path in paths:
                decode_image(path, SIZE, 1, resize, reencode)
            per = 1000 * (time.perf_counter() - start) / len(paths)
            print(f"decode {resize}{' + reencode' if reencode else ''}: {per:.1f} ms/image")
        # on the shortcut set: labels random, so only the storage (4:3 q30 against square PNG)
        # can tell the classes apart; which decodes still show it to a classifier?
        listing = discover(info, shortcut_root)
        border = ("border_mean", "border_std", "border_minus_inside")
        items = listing.splits["train"] + listing.splits["test"]
        is_test = np.array([i >= len(listing.splits["train"]) for i in range(len(items))])
        labels = [label for _, label in items]

        def letterbox(path):  # fit the long side, pad black: what the reflect arm avoids
            import cv2

            image = np.asarray(Image.open(path).convert("L"))
            h, w = image.shape
            scale = min(SIZE[0] / h, SIZE[1] / w)
            inside = cv2.resize(image, (round(w * scale), round(h * scale)),
                                interpolation=cv2.INTER_AREA)  # fmt: skip
            out = np.zeros(SIZE, np.uint8)
            out[: inside.shape[0], : inside.shape[1]] = inside
            return out[..., None]

        for name, decode in (("squash", lambda p: decode_image(p, SIZE, 1)),
                             ("reflect", lambda p: decode_image(p, SIZE, 1, "reflect")),
                             ("black bars", letterbox)):  # fmt: skip
            feats = [{k: tensor_features(decode(p))[k] for k in border} for p, _ in items]
            found = score(*_classify(feats, labels, is_test, None, args.seed), args.seed)
            print(f"border statistic, {name}: κ {found['kappa']:.2f} {found['kappa_ci']}")
        for resize, reencode in (("squash", False), ("crop", False), ("reflect", False),
                                 ("squash", True), ("reflect", True)):  # fmt: skip
            probe = shortcut_audit(info, shortcut_root, resize=resize, reencode=reencode,
                                   seed=args.seed)["tensor"]  # fmt: skip
            print(f"tensor probe, {resize}{' + reencode' if reencode else ''}: "
                  f"κ {probe['kappa']:.2f} {probe['kappa_ci']}")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
