"""How well the leakage audit finds planted near-duplicates, and how often it pairs distinct
images, on the kit's synthetic data (all four datasets' generators).

    python benchmarks/audit_accuracy.py [--per-class 24] [--threshold 6]

Planted copies of a third of the images: area-resized to 75 %, re-encoded as JPEG quality 40,
and shifted by 2–4 px (crop + edge padding). Prints recall on the planted pairs, the share of
distinct-image pairs reported as duplicates, and the share of distinct images with a false match.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_setup import audit  # noqa: E402
from data_setup.synth import synth_all  # noqa: E402


def planted_copy(image: np.ndarray, rng) -> np.ndarray:
    h, w = image.shape[:2]
    small = cv2.resize(image, (int(w * 0.75), int(h * 0.75)), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 40])
    image = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    dy, dx = rng.integers(2, 5, 2)
    shifted = image[dy:, dx:]
    return cv2.copyMakeBorder(shifted, 0, dy, 0, dx, cv2.BORDER_REPLICATE)


def measure(per_class: int, threshold: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as folder:
        synth_all(folder, count=per_class, size=96, seed=seed)
        paths = sorted(p for p in Path(folder).rglob("*") if p.suffix in (".jpg", ".jpeg", ".png"))
        paths = [p for p in paths if "_mask" not in p.stem]
        originals = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths]
    planted = rng.choice(len(originals), size=len(originals) // 3, replace=False)
    copies = [planted_copy(originals[i], rng) for i in planted]
    features = audit.hashes_of_arrays(np.array([audit.thumbnail(im) for im in originals]))
    copy_features = audit.hashes_of_arrays(np.array([audit.thumbnail(im) for im in copies]))
    found = {(i, j) for i, j, _ in audit.near_pairs(copy_features, features, threshold)}
    recall = np.mean([(k, int(i)) in found for k, i in enumerate(planted)])
    false = audit.near_pairs(features, threshold=threshold)  # distinct images only
    n = len(features[0])
    involved = {i for i, _, _ in false} | {j for _, j, _ in false}
    return {
        "images": n,
        "planted": len(planted),
        "threshold": threshold,
        "recall": float(recall),
        "false_pair_rate": len(false) / (n * (n - 1) / 2),
        "images_with_false_match": len(involved) / n,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=24)
    parser.add_argument("--threshold", type=int, default=audit.NEAR_THRESHOLD)
    args = parser.parse_args(argv)
    result = measure(args.per_class, args.threshold)
    print(
        f"{result['images']} distinct synthetic images, {result['planted']} planted copies, "
        f"threshold {result['threshold']} bits: recall {result['recall']:.1%}, "
        f"false pairs {result['false_pair_rate']:.3%} of distinct pairs, "
        f"{result['images_with_false_match']:.1%} of images with a false match"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
