"""Data loading: the kit's cached loader against the paper's way, in one run (not a test).

Generates N JPEGs with HAM10000 geometry (600×450 RGB → 225×300) in the HAM10000 layout, then
measures, each in its own process so peak RSS is that method's alone:
  paper  – read files one by one, append float32 arrays to a list, np.array at the end;
  first  – data_setup.load_dataset with an empty cache (parallel decode into a uint8 memmap);
  reload – load_dataset again from the cache (memmap opened, pages read on demand);
  reload+pass – the same plus one full pass over the pixels, as a training epoch does.
Prints time and peak RSS of each and the three ratios against the paper's way.

    python benchmarks/bench_data_loading.py [--images 2000] [--workdir /tmp/s3f-bench]
"""

import argparse
import csv
import json
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

CLASSES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")


def make_images(root: Path, count: int) -> None:
    import cv2

    from data_setup.synth import synth_image

    root.mkdir(parents=True, exist_ok=True)
    splits = {"images": ("GroundTruth.csv", count), "Test_images": ("Test_GroundTruth.csv", 14)}
    for folder, (csv_name, n) in splits.items():
        (root / folder).mkdir(exist_ok=True)

        def write(i, folder=folder):
            rng = np.random.default_rng([i, len(folder)])
            label = i % len(CLASSES)
            rgb, _ = synth_image(rng, label, 450, 600, 3)
            cv2.imwrite(str(root / folder / f"ISIC_{i:07d}.jpg"), rgb[..., ::-1])
            return [f"ISIC_{i:07d}", *("1.0" if k == label else "0.0" for k in range(7))]

        with ThreadPoolExecutor(4) as pool:
            rows = list(pool.map(write, range(n)))
        with open(root / csv_name, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", *CLASSES])
            writer.writerows(rows)


def paper_way(root: Path):
    """As the original notebooks: one by one into a list of float32 arrays."""
    import cv2

    arrays = {}
    for csv_name, folder in (
        ("GroundTruth.csv", "images"),
        ("Test_GroundTruth.csv", "Test_images"),
    ):
        with open(root / csv_name) as handle:
            ids = [row[0] for row in list(csv.reader(handle))[1:]]
        images = []
        for image_id in ids:
            image = cv2.imread(str(root / folder / f"{image_id}.jpg"), cv2.IMREAD_COLOR)
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            image = cv2.resize(image, (300, 225), interpolation=cv2.INTER_AREA)
            images.append(image.astype(np.float32) / 255.0)
        arrays[folder] = np.array(images)
    return arrays


def kit_way(root: Path, cache: Path, full_pass: bool):
    from data_setup import load_dataset

    data = load_dataset("HAM10000", root, cache_dir=cache)
    if full_pass:  # touch every pixel once, as an epoch would
        images = data.splits["train"].source.images
        total = sum(
            int(images[i : i + 256].sum(dtype=np.uint64)) for i in range(0, len(images), 256)
        )
        assert total > 0
    return data


def child(mode: str, root: Path, cache: Path) -> None:
    import cv2  # noqa: F401  (imports are not loading: keep them out of the timing)

    import data_setup  # noqa: F401

    start = time.perf_counter()
    if mode == "paper":
        paper_way(root)
    else:
        kit_way(root, cache, full_pass=(mode == "reload+pass"))
    elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "seconds": elapsed, "peak_rss_mb": peak_mb}))


def run_child(mode: str, root: Path, cache: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--workdir", str(root.parent)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workdir", default="/tmp/s3f-bench-data")
    parser.add_argument("--child", choices=["paper", "first", "reload", "reload+pass"])
    args = parser.parse_args()
    workdir = Path(args.workdir)
    root, cache = workdir / "HAM10000", workdir / "cache"
    if args.child:
        child(args.child, root, cache)
        return
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"generating {args.images} JPEGs of 600×450 RGB in {root} ...", flush=True)
    make_images(root, args.images)
    run_child("paper", root, cache)  # warm the OS file cache so both ways read from memory
    modes = ("paper", "first", "reload", "reload+pass")
    results = {mode: run_child(mode, root, cache) for mode in modes}
    for mode, r in results.items():
        print(f"{mode:11s} {r['seconds']:7.2f} s   peak RSS {r['peak_rss_mb']:8.0f} MB")
    paper = results["paper"]
    ratios = [
        ("peak RSS, first load / paper", "first", "peak_rss_mb", "≤ 0.3"),
        ("time, first load / paper", "first", "seconds", "≤ 0.7"),
        ("time, cached reload / paper", "reload", "seconds", "≤ 0.05"),
        ("time, reload + full pass / paper", "reload+pass", "seconds", "-"),
    ]
    for label, mode, key, target in ratios:
        print(f"{label:34s} {results[mode][key] / paper[key]:.3f}  (target {target})")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
