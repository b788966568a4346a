"""The shortcut audit on real radiographs: the figures in docs/shortcuts.md ("Measured").

The 13 films that `pip install pydicom pydicom-data` bundles (benchmarks/audit_accuracy.py reads
them), 30 random square crops each, random NORMAL/PNEUMONIA labels (the crops of every fourth
film are the test split), written in the ChestXRay layout three ways: the classes stored
differently (gray PNG against RGB JPEG q75), stored alike (gray JPEG q90), and alike but with
37 % of one class stretched 1.3× wide (BRISC2025's non-square share).

    python benchmarks/shortcuts_real.py [--work DIR] [--seed 0]
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

CROPS = 30  # per film
STRETCHED = 0.37  # share of one class made non-square, as BRISC2025's no_tumor


def main() -> int:
    from audit_accuracy import real_images

    from data_setup.datasets import DATASETS
    from data_setup.shortcuts import report_lines, shortcut_audit

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", help="scratch folder (default: a new one, removed after)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    films = real_images()
    if films is None:
        print("skipped: pip install pydicom pydicom-data for its bundled radiographs")
        return 0
    rng = np.random.default_rng(args.seed)
    crops = []
    for source, film in enumerate(films):
        height, width = film.shape
        for _ in range(CROPS):
            side = int(min(height, width) * rng.uniform(0.5, 0.9))
            y, x = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
            crops.append((source, film[y : y + side, x : x + side]))

    def apart(image, label, path):
        if label == "NORMAL":
            image.save(path.with_suffix(".png"))
        else:
            image.convert("RGB").save(path.with_suffix(".jpeg"), quality=75)

    def alike(image, label, path):
        image.save(path.with_suffix(".jpeg"), quality=90)

    def stretched(image, label, path):
        if label == "PNEUMONIA" and rng.random() < STRETCHED:
            image = image.resize((int(image.width * 1.3), image.height))
        image.save(path.with_suffix(".jpeg"), quality=90)

    work = Path(args.work or tempfile.mkdtemp(prefix="s3f-shortcuts-"))
    try:
        for name, store in (("gray PNG vs RGB JPEG q75", apart), ("stored alike", alike),
                            ("37 % of one class stretched", stretched)):  # fmt: skip
            root = work / name.replace(" ", "_")
            shutil.rmtree(root, ignore_errors=True)
            for index, (source, pixels) in enumerate(crops):
                label = ("NORMAL", "PNEUMONIA")[int(rng.integers(2))]
                split = "test" if source % 4 == 0 else "train"
                folder = root / "chest_xray" / split / label
                folder.mkdir(parents=True, exist_ok=True)
                store(Image.fromarray(pixels), label, folder / f"crop{index}")
            start = time.perf_counter()
            found = shortcut_audit(DATASETS["ChestXRay"], root, seed=args.seed)
            print(f"\n== {name} ({time.perf_counter() - start:.1f} s)")
            print("\n".join(report_lines(found)))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
