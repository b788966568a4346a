"""Which settings make a seed reproduce across machines, and what S3F_DETERMINISTIC costs.

    python benchmarks/bench_reproducibility.py           # S3F_Bilinear_BRISC2025, 4 epochs
    python benchmarks/bench_reproducibility.py --experiment Spatial_BUSI --epochs 3 --repeats 2

Each configuration trains the same demo run (seed 42, the demo settings) in a fresh process,
because thread counts and oneDNN's instruction set are fixed when TensorFlow starts. "Another
machine" is emulated by what differs between machines: the cores the process may use (CPU
affinity: TensorFlow sizes its thread pools by them) and the instruction set oneDNN dispatches
to (ONEDNN_MAX_CPU_ISA, as on a CPU without AVX-512). The table says whether each run's test
predictions and loss curve are bit-identical to the first run of its group; the last lines print
the epoch-time ratio of S3F_DETERMINISTIC=1 against today's default, in this same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(experiment: str, epochs: int) -> dict:
    """One training run; prints a JSON line: prediction and loss-curve digests, epoch times."""
    # before TensorFlow: applies S3F_DETERMINISTIC
    from s3f_kit.run import env as s3f_env  # noqa: F401
    from s3f_kit.run import training as s3f_training

    class EpochTimes(s3f_training.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    with tempfile.TemporaryDirectory() as out:
        run = s3f_training.Run(
            experiment, output_dir=out, epochs=epochs, learning_rate=1e-3, verbose=0, seed=42
        )
        timer = EpochTimes()
        run.extra_callbacks = [timer]
        data = run.load_data()
        run.train(run.build_model(data), data)
        metrics = run.evaluate(data)
        predictions = (run.run_dir / "predictions.csv").read_bytes()
    losses = json.dumps([float(x) for x in run.history["loss"]])
    return {
        "predictions": hashlib.sha256(predictions).hexdigest()[:12],
        "losses": hashlib.sha256(losses.encode()).hexdigest()[:12],
        "accuracy": metrics["accuracy"],
        "epoch_s": timer.times[1:] or timer.times,  # the first epoch also traces the graphs
        "environment": metrics["environment"],
    }


def run_config(experiment, epochs, env: dict, cores: list[int] | None) -> dict:
    environ = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    environ = {k: v for k, v in environ.items() if v is not None}
    command = [sys.executable, __file__, "--child", experiment, str(epochs)]
    done = subprocess.run(
        command,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
    )
    if done.returncode:
        sys.exit(f"child run failed ({env}, cores {cores}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def configurations(cores: list[int]) -> dict:
    """Group → name → (environment, cores). Group "default" is today's behaviour."""
    one = cores[:1]
    machines = {
        f"this machine ({len(cores)} cores)": ({}, cores),
        "1 core": ({}, one),
        "CPU without AVX-512": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, cores),
        "oneDNN ops off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, cores),
    }
    default = {name: ({"S3F_DETERMINISTIC": None, **env}, c) for name, (env, c) in machines.items()}
    deterministic = {
        name: ({"S3F_DETERMINISTIC": "1", **env}, c) for name, (env, c) in machines.items()
    }
    deterministic["AVX-512 machine asking for AVX512_CORE"] = (
        {"S3F_DETERMINISTIC": "1", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
        cores,
    )
    return {"default": default, "S3F_DETERMINISTIC=1": deterministic}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="S3F_Bilinear_BRISC2025")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1, help="timing runs of each mode")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return 0
    cores = sorted(os.sched_getaffinity(0))
    print(f"{args.experiment}, {args.epochs} epochs, seed 42, demo data; {len(cores)} cores here")
    identical = True
    for group, configs in configurations(cores).items():
        print(f"\n{group}:")
        reference = None
        for name, (env, use) in configs.items():
            result = run_config(args.experiment, args.epochs, env, use)
            digest = (result["predictions"], result["losses"])
            reference = reference or digest
            same = digest == reference
            identical &= same or group == "default"
            print(
                f"  {name:40s} acc {result['accuracy']:.4f}  predictions {digest[0]}  "
                f"losses {digest[1]}  {'identical' if same else 'DIFFERENT'}"
            )
    # Cost: the two modes alternate on this machine's cores, so load changes hit both alike.
    times = {"default": [], "deterministic": []}
    for _ in range(args.repeats):
        for mode, flag in (("default", None), ("deterministic", "1")):
            result = run_config(args.experiment, args.epochs, {"S3F_DETERMINISTIC": flag}, cores)
            times[mode] += result["epoch_s"]
    median = {mode: statistics.median(t) for mode, t in times.items()}
    print(
        f"\nepoch time (median of {len(times['default'])} epochs each, first epoch left out): "
        f"default {median['default']:.2f} s, S3F_DETERMINISTIC=1 {median['deterministic']:.2f} s"
    )
    print(f"ratio deterministic / default: {median['deterministic'] / median['default']:.2f}")
    print(
        "deterministic runs identical across the emulated machines: "
        + ("yes" if identical else "NO")
    )
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
