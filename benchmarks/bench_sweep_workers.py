"""Sweep overhead: a new kernel per notebook against kept-kernel workers, in one run (not a test).

Runs the same N short demo notebooks through s3f_jobs.run_jobs twice, into fresh folders:
  fresh – a new kernel for every notebook (`--fresh-kernels`: the baseline, as before 0.2.2);
  kept  – each worker keeps its kernel between notebooks (the default).
The notebooks train for real (Spatial_BUSI, `--epochs`, 16×16 demo images), so the difference is
what each notebook costs beyond its training: process, kernel, TensorFlow import, shutdown.
Prints seconds per notebook for each, the saving per notebook and the ratio kept / fresh, and
checks that both gave the same test accuracy for every seed.

    python benchmarks/bench_sweep_workers.py [--notebooks 6] [--jobs 1] [--epochs 1]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s3f_kit.sweep import jobs as s3f_jobs  # noqa: E402
from s3f_kit.sweep import sweep as s3f_sweep  # noqa: E402


def sweep_seconds(output: Path, notebooks: int, jobs: int, epochs: int, keep: bool):
    params = {"epochs": epochs, "demo_count": 6, "img_size": [16, 16], "verbose": 0}
    seeds = list(range(42, 42 + notebooks))
    todo = s3f_sweep.plan_training(["Spatial_BUSI"], True, None, params, output, seeds)
    started = time.perf_counter()
    label = "kept" if keep else "fresh"
    failures = s3f_jobs.run_jobs(todo, jobs, label, poll_s=0.5, keep_kernels=keep)
    seconds = time.perf_counter() - started
    if failures:
        sys.exit(f"{len(failures)} notebook(s) failed, e.g. {failures[0][1]}")
    accuracy = [json.loads((j.run_dir / "metrics.json").read_text())["accuracy"] for j in todo]
    return seconds, accuracy


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="s3f-bench-sweep-") as tmp:
        fresh, fresh_acc = sweep_seconds(
            Path(tmp, "fresh"), args.notebooks, args.jobs, args.epochs, keep=False
        )
        kept, kept_acc = sweep_seconds(
            Path(tmp, "kept"), args.notebooks, args.jobs, args.epochs, keep=True
        )
    n = args.notebooks
    print(f"\n{n} notebooks, {args.jobs} at a time, {args.epochs} epoch(s) each:")
    print(f"  fresh kernel per notebook : {fresh:6.1f} s  ({fresh / n:.1f} s per notebook)")
    print(f"  kept kernels (default)    : {kept:6.1f} s  ({kept / n:.1f} s per notebook)")
    saved = (fresh - kept) / n * args.jobs
    print(f"  saved per notebook        : {saved:.1f} s of a worker's time")
    print(f"  ratio kept / fresh        : {kept / fresh:.2f}")
    same = fresh_acc == kept_acc
    print(f"  same test accuracy for every seed: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
