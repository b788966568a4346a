"""Permutation ablation and linear probes on real radiographs, and what the ablation costs.

1. Real images: the films that `pip install pydicom pydicom-data` bundles (benchmarks/
   audit_accuracy.py reads them), CROPS random square crops each, in the ChestXRay layout. The
   label is the film's group (the first half of the films NORMAL, the rest PNEUMONIA); every
   fourth crop of a film is a test image. A tiny S³F-Net (concat) is trained through the kit's
   own Run, whose evaluation records and prints the ablation (metrics.json `ablation`).
2. Cost: the permutation ablation alone (head on permuted vectors + the paired bootstrap) at
   --images test images, for both fusions, from random branch vectors.

    python benchmarks/ablation_real.py [--work DIR] [--epochs 8] [--images 1000]
"""

from __future__ import annotations

import argparse
import json
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

CROPS = 40  # per film
SIZE = 64  # the model's input (crops are resized by the kit's loader)


def write_films(root: Path, seed: int) -> bool:
    from audit_accuracy import real_images

    films = real_images()
    if films is None:
        return False
    rng = np.random.default_rng(seed)
    for source, film in enumerate(films):
        label = "NORMAL" if source < len(films) // 2 else "PNEUMONIA"
        height, width = film.shape
        for index in range(CROPS):
            side = int(min(height, width) * rng.uniform(0.5, 0.9))
            y, x = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
            split = "test" if index % 4 == 0 else "train"
            folder = root / "chest_xray" / split / label
            folder.mkdir(parents=True, exist_ok=True)
            crop = Image.fromarray(film[y : y + side, x : x + side])
            crop.save(folder / f"film{source}_crop{index}.png")
    return True


def train_and_ablate(root: Path, output: Path, epochs: int) -> dict:
    from s3f_kit.run import training as s3f_training

    run = s3f_training.Run(
        "S3F_Concat_ChestXRay", data_dir=str(root), output_dir=str(output),
        img_size=[SIZE, SIZE], epochs=epochs, batch_size=16, verbose=0,
        bn_momentum=0.9,  # a short run: the paper's 0.99 averages would lag (docs/demo.md)
    )  # fmt: skip
    data = run.load_data()
    run.train(run.build_model(data), data)
    return run.evaluate(data)


def cost(images: int) -> None:
    import s3f_common
    from s3f_kit.run import ablation as s3f_ablation

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, images)
    for fusion in ("concat", "bilinear"):
        model = s3f_common.build_model("s3f", (SIZE, SIZE, 1), 4, fusion, 1)
        head = s3f_ablation.fusion_head(model)
        vectors = {"spatial": rng.random((images, 512)), "spectral": rng.random((images, 4))}
        head(vectors["spatial"][:8], vectors["spectral"][:8])  # the first call traces
        start = time.perf_counter()
        for branch in s3f_ablation.BRANCHES:  # the head alone, on permuted vectors
            orders = [rng.permutation(images) for _ in range(s3f_ablation.PERMUTATIONS)]
            s3f_ablation._permuted_outputs(head, vectors, branch, orders)
        heads = time.perf_counter() - start
        start = time.perf_counter()
        s3f_ablation.permutation_ablation(head, vectors, labels, False)
        total = time.perf_counter() - start
        print(
            f"{fusion}: {images} test images × {s3f_ablation.PERMUTATIONS} permutations × 2 "
            f"branches: head on permuted vectors {heads:.1f} s; with the paired bootstrap "
            f"({s3f_ablation.s3f_intervals.RESAMPLES} resamples) {total:.1f} s"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", help="scratch folder (default: a new one, removed after)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="s3f-ablation-"))
    try:
        if write_films(work / "films", args.seed):
            start = time.perf_counter()
            result = train_and_ablate(work / "films", work / "runs", args.epochs)
            print(f"trained and evaluated in {time.perf_counter() - start:.0f} s; "
                  f"test accuracy {result['accuracy']:.4f}")  # fmt: skip
            print(json.dumps(result["ablation"], indent=1))
        else:
            print("skipped the real images: pip install pydicom pydicom-data")
        cost(args.images)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
