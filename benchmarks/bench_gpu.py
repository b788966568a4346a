"""Training speed of the twelve paper models on an accelerator, and what a full reproduction costs.

For each registry model at the paper's input size, in one run: training throughput (images/s),
time per epoch (the dataset's training-set size / throughput) and peak accelerator memory, for

    paper-f32   the paper's SpectralFilter (plain einsum over channels), float32  ← baseline
    kit-f32     the kit's SpectralFilter, float32
    kit-mixed   the kit's, mixed precision (mixed_float16 on a GPU, mixed_bfloat16 on a CPU)
    kit-xla     the kit's, float32, XLA (jit_compile=True)
    kit-mixed-xla

with each model's ratio against its own paper-f32 line, and a full-reproduction estimate: the
measured step times × the epochs the paper actually ran (docs/paper.md §6.1), in GPU hours.

    python benchmarks/bench_gpu.py                       # all twelve, paper sizes
    python benchmarks/bench_gpu.py --only S3F_Concat_BUSI --steps 20
    python benchmarks/bench_gpu.py --small               # 32×32, 2 steps: a CPU check only

Without a GPU it runs --small and says so: CPU figures say nothing of GPU speed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from s3f_kit import experiments as s3f_experiments  # noqa: E402

# Training-set sizes of the paper's runs (paper.md §2; BUSI: 80 % of 780; Chest X-Ray: train + val).
TRAIN_IMAGES = {"BRISC2025": 5000, "ChestXRay": 5232, "BUSI": 624, "HAM10000": 10015}
# Epochs the original notebooks ran before early stopping (paper.md §6.1 "epochs run"). Used unless
# the registry provides them (s3f_experiments.paper_metrics(name)["epochs_run"]).
EPOCHS_RUN = {
    "Spatial_BRISC2025": 109, "SpectraNet_BRISC2025": 129, "S3F_Bilinear_BRISC2025": 136,
    "Spatial_ChestXRay": 27, "SpectraNet_ChestXRay": 30, "S3F_Concat_ChestXRay": 43,
    "Spatial_BUSI": 200, "SpectraNet_BUSI": 168, "S3F_Concat_BUSI": 119,
    "Spatial_HAM10000": 138, "SpectraNet_HAM10000": 121, "S3F_Bilinear_HAM10000": 169,
}  # fmt: skip
CONFIGS = {  # name → (paper's einsum filter?, mixed precision?, XLA?)
    "paper-f32": (True, False, False),
    "kit-f32": (False, False, False),
    "kit-mixed": (False, True, False),
    "kit-xla": (False, False, True),
    "kit-mixed-xla": (False, True, True),
}


def epochs_run(name: str) -> int:
    full = getattr(s3f_experiments, "paper_metrics", None)
    value = (full(name) or {}).get("epochs_run") if full else None
    return int(value) if value else EPOCHS_RUN[name]


@contextlib.contextmanager
def paper_filter(enabled: bool):
    """Build models with the paper's formulation: SpectralFilter mixing channels by einsum."""
    import tensorflow as tf

    import s3f_common

    if not enabled:
        yield
        return

    class EinsumSpectralFilter(s3f_common.SpectralFilter):
        def _mix(self, spectrum, kernel):
            return tf.einsum("bchw,cfhw->bfhw", spectrum, kernel)

    kit = s3f_common.SpectralFilter
    s3f_common.SpectralFilter = EinsumSpectralFilter
    try:
        yield
    finally:
        s3f_common.SpectralFilter = kit


def measure(exp, config, size, batch, steps, gpu) -> dict:
    """Throughput and peak memory of model.fit on random images for one model and config."""
    import keras
    import tensorflow as tf

    import s3f_common

    einsum, mixed, xla = CONFIGS[config]
    keras.backend.clear_session()
    policy = ("mixed_float16" if gpu else "mixed_bfloat16") if mixed else "float32"
    keras.mixed_precision.set_global_policy(policy)
    try:
        shape = (*size, exp.info.channels)
        with paper_filter(einsum):
            model = s3f_common.build_model(
                exp.architecture,
                shape,
                exp.num_classes,
                exp.fusion,
                exp.spectranet,
                bn_momentum=0.99,
            )
        loss = "binary_crossentropy" if exp.num_classes == 2 else "sparse_categorical_crossentropy"
        model.compile(optimizer=keras.optimizers.Adam(3e-4), loss=loss, jit_compile=xla)
        rng = np.random.default_rng(0)
        images = rng.random((batch, *shape), dtype=np.float32)
        labels = rng.integers(0, 2 if exp.num_classes == 2 else exp.num_classes, batch)
        data = tf.data.Dataset.from_tensors((images, labels)).repeat()
        model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # trace, compile, warm up
        if gpu:
            tf.config.experimental.reset_memory_stats("GPU:0")
        start = time.perf_counter()
        model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
        elapsed = time.perf_counter() - start
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] if gpu else None
    finally:
        keras.mixed_precision.set_global_policy("float32")
    step_s = elapsed / steps
    return {
        "experiment": exp.name,
        "config": config,
        "precision": policy,
        "images_per_s": batch / step_s,
        "step_s": step_s,
        "epoch_s": TRAIN_IMAGES[exp.dataset] / batch * step_s,
        "peak_mib": None if peak is None else peak / 2**20,
    }


def report(rows: list[dict], small: bool) -> list[str]:
    baseline = {r["experiment"]: r for r in rows if r["config"] == "paper-f32"}
    lines = [
        f"{'model':24} {'config':14} {'img/s':>9} {'× paper':>8} {'s/epoch':>9} {'peak MiB':>9}"
    ]
    for r in rows:
        base = baseline.get(r["experiment"])
        ratio = f"{r['images_per_s'] / base['images_per_s']:.2f}" if base else "–"
        peak = "–" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        lines.append(
            f"{r['experiment']:24} {r['config']:14} {r['images_per_s']:9.1f} {ratio:>8} "
            f"{r['epoch_s']:9.1f} {peak:>9}"
        )
    lines.append("")
    lines.append(
        f"Full reproduction ({len(baseline)} model(s) × the epochs the paper ran, paper.md §6.1; "
        "training steps only, the per-epoch validation pass comes on top):"
    )
    for config in CONFIGS:
        chosen = [r for r in rows if r["config"] == config]
        if len(chosen) == len(baseline) and chosen:
            hours = sum(r["epoch_s"] * epochs_run(r["experiment"]) for r in chosen) / 3600
            note = " (at the --small size: not a real estimate)" if small else ""
            lines.append(f"  {config:14} {hours:8.2f} GPU hours for {len(chosen)} model(s){note}")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(s3f_experiments.EXPERIMENTS))
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10; small 2)")
    parser.add_argument("--batch", type=int, default=s3f_experiments.BATCH_SIZE)
    parser.add_argument("--small", action="store_true", help="32×32 images, 2 steps (CPU check)")
    parser.add_argument("--json", help="also write the measurements to this file")
    args = parser.parse_args(argv)

    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    small = args.small or not gpu
    if not gpu:
        print(
            "no GPU visible: running the --small settings on the CPU (figures are not GPU "
            "speeds; they only show the benchmark works)"
        )
    steps = args.steps or (2 if small else 10)
    if "paper-f32" not in args.configs:
        args.configs = ["paper-f32", *args.configs]  # every ratio needs its baseline
    rows = []
    for name in args.only or list(s3f_experiments.EXPERIMENTS):
        exp = s3f_experiments.EXPERIMENTS[name]
        size = (32, 32) if small else exp.info.image_size
        for config in args.configs:
            rows.append(measure(exp, config, size, args.batch, steps, gpu))
            print(
                f"  measured {name} {config}: {rows[-1]['images_per_s']:.1f} images/s", flush=True
            )
    device = "CPU"
    if gpu:
        details = tf.config.experimental.get_device_details(
            tf.config.list_physical_devices("GPU")[0]
        )
        device = details.get("device_name", "GPU")
    print(
        f"\n{device}; batch {args.batch}; {steps} timed steps per line"
        + ("; SMALL 32×32 inputs" if small else "; the paper's input sizes")
    )
    print("\n".join(report(rows, small)))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"device": device, "small": small, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
