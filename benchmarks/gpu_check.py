"""The kit's first GPU table in under 8 minutes on one GPU: does a seed reproduce there, how fast
do the paper's models train, and how much memory does the largest one take.

    python benchmarks/gpu_check.py                        # → results/gpu_check.md and .json
    python benchmarks/gpu_check.py --budget-seconds 300   # only what fits in 5 minutes
    python benchmarks/gpu_check.py --smoke                # tiny settings: a CPU check that it runs

(a) determinism: the same short training run (the BUSI S³F-Net at a reduced input size, on
    synthetic demo data) twice, each in a fresh process under S3F_DETERMINISTIC=1, which on a
    GPU turns TensorFlow's op determinism on: identical metrics, predictions and weights? An op
    without a deterministic GPU kernel ends the run; its message is recorded.
(b) throughput: images/s of a training step of each paper model at its input size and the
    paper's batch, float32 and mixed precision (benchmarks/bench_gpu.py's measure: the kit's
    SpectralFilter, its kit-f32 and kit-mixed configurations), at TensorFlow's defaults.
(c) peak GPU memory of the BUSI S³F-Net (concat SN2, 138.7 M parameters) while training at the
    paper's size and batch: tf.config.experimental.get_memory_info('GPU:0')['peak'].

bench_gpu.py's 12 models × 5 configurations do not fit 8 minutes; this measures (a), then (c),
then (b) model by model, the paper's S³F-Nets first. Every step's time is measured; a step whose
estimate (the longest like it so far, else a first guess) does not fit in what is left of
--budget-seconds is skipped and listed as skipped. The files are rewritten (temporary name, then
rename) after every step, so a run cut short still leaves what it measured. Without a GPU every
figure is a CPU figure, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_gpu, beside this file

from data_setup.files import write_atomic, write_json_atomic  # noqa: E402
from s3f_kit import experiments as s3f_experiments  # noqa: E402
from s3f_kit.run import env as s3f_env  # noqa: E402

DEFAULT_BUDGET_S = 480  # 8 minutes of one GPU
RESULTS = REPO / "results"
PEAK_MODEL = "S3F_Concat_BUSI"  # the BUSI S³F-Net, concat SN2: the largest paper model
CONFIGS = ("kit-f32", "kit-mixed")  # bench_gpu.CONFIGS: float32, mixed precision
# (a)'s training run: on a GPU big enough to mean something, in the smoke test as small as it goes
DETERMINISM_RUN = {
    "gpu": {"img_size": [64, 64], "demo_count": 32, "batch_size": 16, "epochs": 3},
    "smoke": {"img_size": [16, 16], "demo_count": 6, "batch_size": 8, "epochs": 1},
}
# First guesses (s) where nothing alike was measured yet: one run of (a) including its
# TensorFlow import, TensorFlow's import here, one model's build, trace and timed steps.
GUESS_S = {"run": 90.0, "import": 20.0, "measure": 60.0}
SMOKE_SIZE, SMOKE_STEPS, STEPS = (32, 32), 1, 10
# Keys of metrics.json that two runs of one seed must share (wall time and paths may differ).
COMPARED = ("accuracy", "weighted_f1", "macro_f1", "cohen_kappa", "mcc", "loss",
            "confusion_matrix", "epochs_run", "best_epoch")  # fmt: skip
RESULT_TAG = "GPU_CHECK_RESULT "

# One training run of (a) in a process of its own: S3F_DETERMINISTIC must be set before
# TensorFlow starts, and the throughput below is measured at TensorFlow's defaults.
CHILD = """
import hashlib, json, sys
from s3f_kit.run import training as s3f_training
import numpy as np
import s3f_common
from s3f_kit.run.evaluation import device_description
run = s3f_training.Run(sys.argv[1], output_dir=sys.argv[2], verbose=0, seed=42,
                       **json.loads(sys.argv[3]))
data = run.load_data()
try:
    run.train(run.build_model(data), data)
    metrics = run.evaluate(data)
except Exception as error:  # recorded, not hidden: e.g. an op without a deterministic kernel
    print(sys.argv[4] + json.dumps({"error": f"{type(error).__name__}: {error}",
                                    "device": device_description()}))
    raise
digest = hashlib.sha256()
for weight in s3f_common.load_model(run.run_dir / "model.keras").weights:
    digest.update(np.asarray(weight).tobytes())
print(sys.argv[4] + json.dumps({
    "metrics": {k: metrics.get(k) for k in json.loads(sys.argv[5])},
    "losses": [float(x) for x in run.history["loss"]],
    "predictions_sha256": hashlib.sha256((run.run_dir / "predictions.csv").read_bytes())
    .hexdigest(),
    "weights_sha256": digest.hexdigest(),
    "op_determinism": metrics["environment"]["op_determinism"],
    "device": metrics["device"],
}))
"""


class Budget:
    """Seconds left of --budget-seconds, and the longest time each kind of step took so far."""

    def __init__(self, seconds: float, clock=time.monotonic):
        self.clock, self.end = clock, clock() + seconds
        self.longest: dict[str, float] = {}

    def left(self) -> float:
        return self.end - self.clock()

    def estimate(self, kind: str) -> float:
        return self.longest.get(kind, GUESS_S[kind])

    def fits(self, kind: str) -> bool:
        return self.estimate(kind) <= self.left()

    def took(self, kind: str, seconds: float) -> None:
        self.longest[kind] = max(seconds, self.longest.get(kind, 0.0))


class Report:
    """What was measured so far; rewritten to OUT/gpu_check.{json,md} after every step."""

    def __init__(self, out: Path, smoke: bool, budget_s: float):
        self.out, self.started = out, time.monotonic()
        self.data = {
            "gpu": None,
            "device": None,
            "smoke": smoke,
            "budget_s": budget_s,
            "elapsed_s": 0.0,
            "versions": {},
            "determinism": None,
            "peak_memory": None,
            "throughput": [],
            "stage_s": {},
            "skipped": [],
        }

    def skip(self, what: str, budget: Budget, kind: str) -> None:
        self.data["skipped"].append(
            f"{what}: needs ~{budget.estimate(kind):.0f} s, {max(budget.left(), 0):.0f} s left"
        )
        print(f"  skipped {self.data['skipped'][-1]}", flush=True)

    def save(self) -> None:
        self.data["elapsed_s"] = round(time.monotonic() - self.started, 1)
        self.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.out / "gpu_check.json", self.data)
        write_atomic(self.out / "gpu_check.md", markdown(self.data))


def not_gpu_note(data: dict) -> str | None:
    """What the figures are not: GPU figures (no GPU), or the paper's sizes (--smoke)."""
    if data["gpu"] is False:
        return (
            "NO GPU: TensorFlow saw none, so every figure below was measured on the CPU"
            + (" at the tiny --smoke settings" if data["smoke"] else "")
            + ". They are not GPU figures; they only show that the check runs."
        )
    if data["smoke"]:
        return "--smoke: tiny sizes and steps; these figures only show that the check runs."
    return None


def markdown(data: dict) -> str:
    lines = ["# GPU check (benchmarks/gpu_check.py)", ""]
    note = not_gpu_note(data)
    if note:
        lines += [f"**{note}**", ""]
    versions = ", ".join(f"{k} {v}" for k, v in data["versions"].items())
    lines += [
        f"Device: {data['device'] or 'not yet known'}. Versions: {versions or 'not yet known'}.",
        f"Budget {data['budget_s']:.0f} s, used {data['elapsed_s']:.0f} s; per stage: "
        + (", ".join(f"{k} {v:.0f} s" for k, v in data["stage_s"].items()) or "none yet")
        + ".",
        "",
        "## (a) The same seed twice under S3F_DETERMINISTIC=1",
        "",
    ]
    det = data["determinism"]
    if not det:
        lines.append("Not run (see Skipped).")
    else:
        lines.append(f"{det['experiment']} {det['settings']}, seed 42, each run in a new process.")
        lines.append("")
        for index, run in enumerate(det["runs"], 1):
            if "error" in run:
                lines.append(f"- run {index}: FAILED — {run['error']}")
            else:
                lines.append(
                    f"- run {index}: losses {', '.join(f'{x:.6f}' for x in run['losses'])}; "
                    f"accuracy {run['metrics']['accuracy']}; op determinism "
                    f"{'on' if run['op_determinism'] else 'off'}; {run['device']}"
                )
        lines += ["", f"**Verdict: {det['verdict']}**"]
    lines += ["", "## (c) Peak GPU memory of the BUSI S³F-Net (concat SN2), training", ""]
    peak = data["peak_memory"]
    if not peak:
        lines.append("Not run (see Skipped).")
    elif peak.get("peak_mib") is None:
        lines.append(f"{peak['experiment']} at {peak['size']}: no GPU, no GPU memory to measure.")
    else:
        lines.append(
            f"{peak['experiment']} at {peak['size']}, batch {peak['batch']}, float32: "
            f"**{peak['peak_mib']:.0f} MiB** peak (get_memory_info('GPU:0')['peak'])."
        )
    lines += [
        "",
        "## (b) Training throughput",
        "",
        "| model | precision | input | images/s | step ms | s/epoch | mixed ÷ f32 |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    f32 = {r["experiment"]: r for r in data["throughput"] if r["config"] == "kit-f32"}
    for row in data["throughput"]:
        if "error" in row:
            lines.append(f"| {row['experiment']} | {row['config']} | | FAILED: {row['error']} |||")
            continue
        base = f32.get(row["experiment"])
        ratio = (
            f"{row['images_per_s'] / base['images_per_s']:.2f}"
            if base and row["config"] != "kit-f32" and "error" not in base
            else ""
        )
        lines.append(
            f"| {row['experiment']} | {row['precision']} | {row['size']} | "
            f"{row['images_per_s']:.1f} | {row['step_s'] * 1000:.0f} | {row['epoch_s']:.1f} | "
            f"{ratio} |"
        )
    lines += ["", "## Skipped", ""]
    lines += [f"- {s}" for s in data["skipped"]] or ["Nothing."]
    return "\n".join(lines) + "\n"


def _child_run(name: str, settings: dict, output: Path, cache: Path, timeout: float) -> dict:
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "S3F_CACHE_DIR": str(cache),
        "S3F_DETERMINISTIC": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    argv = [name, str(output), json.dumps(settings), RESULT_TAG, json.dumps(COMPARED)]
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, *argv],
            env=environ,
            capture_output=True,
            text=True,
            timeout=max(timeout, 1),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after {timeout:.0f} s: the budget ran out"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit code {done.returncode}: {tail}"}


def verdict(runs: list[dict]) -> str:
    if len(runs) < 2:
        return "not decided: the second run did not fit the budget"
    failed = [r["error"] for r in runs if "error" in r]
    if failed:
        return f"not decided: a run failed ({failed[0]})"
    first, second = runs
    differ = [
        what
        for what, key in (("metrics", "metrics"), ("training losses", "losses"),
                          ("predictions", "predictions_sha256"), ("weights", "weights_sha256"))
        if first[key] != second[key]
    ]  # fmt: skip
    if differ:
        return f"NOT identical: {', '.join(differ)} differ"
    return "identical metrics, training losses, predictions and weights"


def check_determinism(report: Report, budget: Budget, settings: dict) -> None:
    runs = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="s3f-gpu-check-") as tmp:
        for index in (1, 2):
            if not budget.fits("run"):
                report.skip(f"(a) determinism run {index}", budget, "run")
                break
            began = time.monotonic()
            run = _child_run(
                PEAK_MODEL, settings, Path(tmp) / f"run{index}", Path(tmp) / "cache", budget.left()
            )
            budget.took("run", time.monotonic() - began)
            runs.append(run)
            print(f"  (a) run {index}: {run.get('error') or 'done'}", flush=True)
            if "error" in run:
                break
    report.data["determinism"] = {
        "experiment": PEAK_MODEL,
        "settings": settings,
        "runs": runs,
        "verdict": verdict(runs) if runs else "not run: no run fitted the budget",
    }
    report.data["stage_s"]["determinism"] = round(time.monotonic() - started, 1)
    report.save()


def _measure(bench_gpu, name: str, config: str, size, batch: int, steps: int, gpu: bool) -> dict:
    exp = s3f_experiments.EXPERIMENTS[name]
    try:
        row = bench_gpu.measure(exp, config, size, batch, steps, gpu)
    except Exception as error:  # one model's failure (e.g. out of memory) is a result too
        lines = str(error).strip().splitlines()
        row = {"experiment": name, "config": config, "error": f"{type(error).__name__}: "
               + (lines[0] if lines else "")}  # fmt: skip
    row["size"] = f"{size[0]}×{size[1]}"
    return row


def throughput_order(models: list[str]) -> list[str]:
    """The paper's S³F-Nets first (the models the kit is about), then the others in order."""
    return sorted(models, key=lambda n: s3f_experiments.EXPERIMENTS[n].architecture != "s3f")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-seconds", type=float, default=DEFAULT_BUDGET_S)
    parser.add_argument("--smoke", action="store_true", help="tiny settings: checks that it runs")
    parser.add_argument("--only", nargs="+", choices=list(s3f_experiments.EXPERIMENTS),
                        help="(b) for these models only (default: all twelve)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of gpu_check.md/.json")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    budget = Budget(args.budget_seconds)
    report = Report(args.out, args.smoke, args.budget_seconds)
    # (b) and (c) at TensorFlow's defaults; the children of (a) set S3F_DETERMINISTIC for
    # themselves. Before TensorFlow starts in this process.
    os.environ.pop(s3f_env.DETERMINISTIC_ENV, None)
    for key in s3f_env.DETERMINISTIC_SETTINGS:
        os.environ.pop(key, None)
    report.save()
    if not s3f_env.has_gpu_driver():
        print("no NVIDIA driver here: the figures will be CPU figures, not GPU figures", flush=True)

    # (a) first: its processes need the GPU's memory, which TensorFlow here would take.
    check_determinism(report, budget, DETERMINISM_RUN["smoke" if args.smoke else "gpu"])

    if not budget.fits("import"):
        report.skip("(b), (c): TensorFlow's import here", budget, "import")
        report.save()
        return 0
    began = time.monotonic()
    import bench_gpu
    import keras
    import numpy

    tf = s3f_env.import_tensorflow_quietly()

    budget.took("import", time.monotonic() - began)
    gpus = tf.config.list_physical_devices("GPU")
    device = "CPU"
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        device = f"GPU ({details.get('device_name', 'unknown')}"
        if details.get("compute_capability"):
            device += ", compute capability {}.{}".format(*details["compute_capability"])
        device += ")"
    build = tf.sysconfig.get_build_info()
    report.data.update(
        gpu=bool(gpus),
        device=device,
        versions={
            "Python": platform.python_version(),
            "TensorFlow": tf.__version__,
            "Keras": keras.__version__,
            "NumPy": numpy.__version__,
            **(
                {"CUDA": build.get("cuda_version"), "cuDNN": build.get("cudnn_version")}
                if gpus
                else {}
            ),  # fmt: skip
        },
    )
    note = not_gpu_note(report.data)
    print(note or f"{device}: GPU figures", flush=True)
    small = args.smoke or not gpus
    steps, batch = (SMOKE_STEPS if small else STEPS), s3f_experiments.BATCH_SIZE

    def size_of(name):
        return SMOKE_SIZE if small else s3f_experiments.EXPERIMENTS[name].info.image_size

    # (c): the float32 line of the largest model, measured first while the GPU is fresh
    began = time.monotonic()
    measured = {}
    if budget.fits("measure"):
        row = _measure(
            bench_gpu, PEAK_MODEL, "kit-f32", size_of(PEAK_MODEL), batch, steps, bool(gpus)
        )
        budget.took("measure", time.monotonic() - began)
        measured[(PEAK_MODEL, "kit-f32")] = row
        report.data["peak_memory"] = {
            "experiment": PEAK_MODEL,
            "size": row["size"],
            "batch": batch,
            "peak_mib": row.get("peak_mib"),
            **({"error": row["error"]} if "error" in row else {}),
        }
        peak = row.get("peak_mib")
        print(f"  (c) {PEAK_MODEL}: " + (f"peak {peak:.0f} MiB" if peak else "no GPU"), flush=True)
    else:
        report.skip(f"(c) {PEAK_MODEL} peak memory", budget, "measure")
    report.data["stage_s"]["peak_memory"] = round(time.monotonic() - began, 1)
    report.save()

    # (b): model by model, both precisions
    began = time.monotonic()
    for name in throughput_order(args.only or list(s3f_experiments.EXPERIMENTS)):
        for config in CONFIGS:
            row = measured.get((name, config))
            if row is None:
                if not budget.fits("measure"):
                    report.skip(f"(b) {name} {config}", budget, "measure")
                    continue
                step_began = time.monotonic()
                row = _measure(bench_gpu, name, config, size_of(name), batch, steps, bool(gpus))
                budget.took("measure", time.monotonic() - step_began)
                print(f"  (b) {name} {config}: {row.get('images_per_s', row.get('error'))}")
            report.data["throughput"].append(row)
            report.data["stage_s"]["throughput"] = round(time.monotonic() - began, 1)
            report.save()
    print(f"wrote {args.out / 'gpu_check.md'} and .json" + (f" — {note}" if note else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
