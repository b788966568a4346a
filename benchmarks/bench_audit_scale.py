"""The leakage audit at a real dataset's size: `s3f-data audit` of a chest X-ray-like tree
(data_setup.xray, Kermany's layout, 1000–2000 px JPEGs), cold (features decoded into the
cache) and warm (cached), and a run's holdout grouping + clean-test check on n and 10·n images
from the cached features, as a ratio.

    python benchmarks/bench_audit_scale.py [--films 3000] [--root /tmp/cxr3000]

The tree is written once under --root and reused by later runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_setup import audit  # noqa: E402
from data_setup.__main__ import main as cli  # noqa: E402
from data_setup.layouts import discover  # noqa: E402
from data_setup.xray import write_chest_xray  # noqa: E402


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def run_checks(features: audit.Features, n: int) -> float:
    """Seconds for a holdout grouping of n training images plus the clean-test check of
    n/9 test images against them (Kermany's ~9:1), from cached features."""
    train, test = features.take(np.arange(n)), features.take(np.arange(n, n + n // 9))
    start = time.perf_counter()
    audit.duplicate_groups(train)
    audit.leaked_test_mask(train, test)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--films", type=int, default=3000)
    parser.add_argument("--root", default=None, help="where the tree is (or is written)")
    args = parser.parse_args(argv)
    root = Path(args.root or Path(tempfile.gettempdir()) / f"s3f_cxr{args.films}")
    if not (root / "chest_xray").is_dir():
        seconds, _ = timed(write_chest_xray, root, args.films, seed=0)
        print(f"wrote {args.films} films under {root} in {seconds:.0f} s")
    with tempfile.TemporaryDirectory() as cache:
        out = Path(cache) / "pairs.csv"
        import os

        os.environ["S3F_CACHE_DIR"] = cache
        cold, _ = timed(cli, ["audit", "ChestXRay", str(root), "--out", str(out)])
        warm, _ = timed(cli, ["audit", "ChestXRay", str(root), "--out", str(out)])
        listing = discover("ChestXRay", root)
        items = [item for split in listing.splits.values() for item in split]
        features = audit.Features.concatenate([
            audit.split_features("ChestXRay", s, listing.root, listing.splits[s], cache_dir=cache)
            for s in listing.splits
        ])  # fmt: skip
    big = int(len(items) * 0.9)
    small_n = big // 10
    small, large = run_checks(features, small_n), run_checks(features, big)
    print(
        f"s3f-data audit of {len(items)} X-ray-like films: {cold:.1f} s cold (decoding into the "
        f"feature cache), {warm:.1f} s warm (cached)"
    )
    print(
        f"holdout grouping + clean-test check: {small_n} images {small:.2f} s, {big} images "
        f"{large:.2f} s → {large / small:.1f}× the time for 10× the images"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
