"""The leakage audit at a real dataset's size: `s3f-data audit` of a chest X-ray-like tree
(data_setup.xray, Kermany's layout, 1000–2000 px JPEGs), cold (features decoded into the
cache) and warm (cached), and a run's holdout grouping + clean-test check on n and 10·n images
from the cached features, as a ratio.

    python benchmarks/bench_audit_scale.py [--films 3000] [--root /tmp/cxr3000]

With --run N, instead: a whole 1-epoch run at 32×32 (s3f_training.Run, Spatial_ChestXRay,
holdout protocol, so the duplicate grouping and the clean-test check both happen) on an
X-ray-like tree of N films and one of 10·N (256–320 px wide, written once under --root), in
one process, each stage timed, and the ratios of the 10·N run to the N run:

    python benchmarks/bench_audit_scale.py --run 1120 [--root /tmp/cxr_runs]

The trees are written once and reused by later runs.
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


def _timing(module, name: str, key: str, seconds: dict) -> None:
    """Wrap module.name so that its wall time adds up in seconds[key]."""
    real = getattr(module, name)

    def timed_call(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start

    setattr(module, name, timed_call)


def one_run(root: Path, out: Path, seconds: dict) -> dict:
    """One 1-epoch Spatial_ChestXRay run at 32×32 under the holdout protocol; wall seconds of
    each stage into `seconds` (the audit's parts by the wrappers of run_benchmark)."""
    from s3f_kit.run import training as s3f_training

    start = time.perf_counter()
    run = s3f_training.Run("Spatial_ChestXRay", data_dir=str(root), epochs=1, img_size=[32, 32],
                           protocol="holdout", output_dir=str(out), verbose=0)  # fmt: skip
    data = run.load_data()
    seconds["load"] = time.perf_counter() - start
    model = run.build_model(data)
    start = time.perf_counter()
    run.train(model, data)
    seconds["train"] = time.perf_counter() - start
    start = time.perf_counter()
    result = run.evaluate(data)
    seconds["evaluate"] = time.perf_counter() - start
    seconds["run"] = seconds["load"] + seconds["train"] + seconds["evaluate"]
    return result


def run_benchmark(films: int, root: Path) -> int:
    """Runs on trees of `films` and 10·films X-ray-like films, in one process, with fresh
    caches; prints each stage's seconds and the 10×/1× ratios."""
    import os

    from data_setup import audit_cache
    from data_setup.xray import write_chest_xray

    seconds = {}
    _timing(audit, "duplicate_groups", "grouping", seconds)
    _timing(audit, "leaked_test_mask", "clean_test", seconds)
    _timing(audit_cache, "features_of_files", "audit_features", seconds)
    rows = []
    for count in (films, 10 * films):
        tree = root / f"cxr{count}"
        if not (tree / "chest_xray").is_dir():
            took, _ = timed(write_chest_xray, tree, count, (256, 320), seed=7, workers=2)
            print(f"wrote {count} films under {tree} in {took:.0f} s", flush=True)
        with tempfile.TemporaryDirectory() as scratch:
            os.environ["S3F_CACHE_DIR"] = str(Path(scratch) / "cache")
            seconds.clear()
            result = one_run(tree, Path(scratch) / "runs", seconds)
        seconds["audit"] = seconds.get("grouping", 0) + seconds.get("clean_test", 0)
        rows.append((count, result["test_images"] if "test_images" in result else None,
                     dict(seconds)))  # fmt: skip
        print(f"{count} films: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()),
              flush=True)  # fmt: skip
    (small, _, a), (large, _, b) = rows
    print(f"10× the films ({small} → {large}), 1-epoch Spatial_ChestXRay run at 32×32, holdout:")
    for key in ("run", "train", "load", "evaluate", "audit", "grouping", "clean_test",
                "audit_features"):  # fmt: skip
        if a.get(key):
            print(f"  {key:15s} {a[key]:7.2f} s → {b[key]:7.2f} s = {b[key] / a[key]:5.1f}×")
    print(f"  holdout grouping + clean-test check at {large} films: {b['audit']:.2f} s = "
          f"{b['audit'] / b['train']:.2f}× the 1-epoch training")  # fmt: skip
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--films", type=int, default=3000)
    parser.add_argument("--root", default=None, help="where the tree is (or is written)")
    parser.add_argument("--run", type=int, default=0, metavar="N",
                        help="time whole 1-epoch runs on N and 10·N films instead")  # fmt: skip
    args = parser.parse_args(argv)
    if args.run:
        return run_benchmark(args.run, Path(args.root or Path(tempfile.gettempdir()) / "s3f_cxr"))
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
