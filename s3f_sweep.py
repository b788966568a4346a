"""Run experiment notebooks headlessly with papermill, then rebuild the results tables.

    python -m s3f_sweep --demo                          # all 12 on synthetic data, demo settings
    python -m s3f_sweep --data-root ~/data              # the real reproduction, paper settings
    python -m s3f_sweep --only S3F_Concat_BUSI -p epochs 50 -p protocol=holdout --demo
    python -m s3f_sweep --data-root ~/data --jobs 4     # 4 at a time, one GPU each if present
    python -m s3f_sweep --demo --seeds 3 --grid fusion=concat,bilinear spectranet=1,2
    python -m s3f_sweep --data-root /shared/data --output /shared/runs --cluster auto

`--data-root` holds one folder per dataset id (BRISC2025/, ChestXRay/, BUSI/, HAM10000/, each as
unzipped). A run is experiment + model variant + protocol + seed, with its own folder
`<output>/<experiment>[/<variant>][/<protocol>]/seed<N>/`. A run counts as finished when its
metrics.json exists and records the parameters asked for now: finished runs are skipped (an
interrupted sweep resumes), and one made with other parameters stops the sweep with the
differences named (--force reruns it). A failing notebook does not stop the others; failures are
listed at the end and the exit status is 1. Ctrl-C stops the running notebooks and the queue.
Tables are rebuilt from every finished run under --output (default results/ for the default
output folders, else <output>/results). --cluster runs each notebook as a Ray task (s3f_cluster).
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from queue import Queue

from tqdm.auto import tqdm

import s3f_experiments
from s3f_experiments import DEMO_PARAMETERS
from s3f_notebooks import NOTEBOOK_DIR

REPO = Path(__file__).resolve().parent
RESULT_TAG = "S3F_SWEEP_RESULT "
# Parameters that change where or how loudly a run reports, not what it computes.
NOT_COMPARED = {"output_dir", "verbose", "gpu", "mount_drive", "EXPERIMENT"}
# Grid axes and the architectures they apply to (others ignore the axis; duplicates merge).
ALL_ARCHITECTURES = {"spatial", "spectranet", "s3f"}
GRID_AXES = {
    "fusion": {"s3f"},
    "spectranet": {"s3f", "spectranet"},
    "channel_mixing": {"s3f", "spectranet"},
    "modes": {"s3f", "spectranet"},
    "precision": ALL_ARCHITECTURES,
    "jit_compile": ALL_ARCHITECTURES,
    "protocol": ALL_ARCHITECTURES,
}


class SweepError(Exception):
    """A problem with what the sweep was asked to do; main prints it as one message."""


class SweepInterrupted(Exception):  # noqa: N818  (not an error: the user pressed Ctrl-C)
    def __init__(self, finished, unfinished):
        super().__init__("interrupted")
        self.finished, self.unfinished = finished, unfinished


def count_gpus() -> int:
    """GPUs visible to child processes, without importing TensorFlow here."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


# --------------------------------------------------------------------------- what to run


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_overrides(groups) -> dict:
    """-p values: `key=value` or papermill's two tokens `key value`; values are Python literals
    when they parse as one, else strings. Accepts a flat list or argparse's list of lists."""
    tokens = [t for g in groups or [] for t in ([g] if isinstance(g, str) else g)]
    result, key = {}, None
    for token in tokens:
        if key is not None:
            result[key], key = _literal(token), None
            continue
        name, sep, value = token.partition("=")
        if not name.isidentifier():
            raise SweepError(f"-p expects key=value or key value, got {token!r}")
        if sep:
            result[name] = _literal(value)
        else:
            key = name
    if key is not None:
        raise SweepError(f"-p {key}: no value given (use -p {key} VALUE or -p {key}=VALUE)")
    return result


def _split_values(text: str) -> list[str]:
    """'1,2' → ['1', '2']; commas inside brackets stay: '[8,8],[16,16]' → two values."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p.strip() for p in [*parts, current] if p.strip()]


def parse_grid(items) -> dict[str, list]:
    """--grid axis=v1,v2 ... → {axis: [v1, v2]}."""
    grid = {}
    for item in items or []:
        axis, sep, values = item.partition("=")
        if not sep or axis not in GRID_AXES or not _split_values(values):
            raise SweepError(
                f"--grid expects AXIS=V1,V2 with AXIS one of {', '.join(GRID_AXES)}; got {item!r}"
            )
        grid[axis] = [_literal(v) for v in _split_values(values)]
    return grid


def parse_seeds(values) -> list[int] | None:
    """--seeds N → N seeds from 42 up; --seeds A B C → exactly those."""
    if not values:
        return None
    if len(values) == 1:
        if values[0] < 1:
            raise SweepError(f"--seeds N needs N ≥ 1, got {values[0]}")
        return [s3f_experiments.DEFAULT_SEED + i for i in range(values[0])]
    return list(dict.fromkeys(values))


def parameters_for(exp, demo: bool, data_root, overrides, output_dir) -> dict:
    params = {"output_dir": str(output_dir)}
    if demo:
        params.update(
            DEMO_PARAMETERS, data_dir="", img_size=s3f_experiments.DEMO_IMAGE_SIZES[exp.dataset]
        )
    else:
        params["data_dir"] = str(Path(data_root).expanduser().resolve() / exp.dataset)
    params.update(overrides)
    return params


@cache
def notebook_defaults(notebook: str) -> dict:
    """The values of a generated notebook's parameters cell."""
    import nbformat

    cells = nbformat.read(NOTEBOOK_DIR / f"{notebook}.ipynb", as_version=4).cells
    source = next(c.source for c in cells if "parameters" in c.metadata.get("tags", []))
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
    }


def expected_settings(experiment: str, params: dict) -> dict:
    """What Run.settings() will record for these notebook parameters (None resolved as Run does)."""
    exp = s3f_experiments.get_experiment(experiment)
    expected = {**notebook_defaults(experiment), **params}
    demo = not expected.get("data_dir")
    resolved = {
        "epochs": exp.recipe.epochs,
        "f1_patience": exp.recipe.f1_patience,
        "lr_patience": exp.recipe.lr_patience,
        "fusion": exp.fusion,
        "spectranet": exp.spectranet,
        "img_size": s3f_experiments.DEMO_IMAGE_SIZES[exp.dataset]
        if demo
        else list(exp.info.image_size),
    }
    for key, value in resolved.items():
        if expected.get(key) is None:
            expected[key] = value
    return expected


def _normal(value):
    value = _literal(value) if isinstance(value, str) else value
    return [_normal(v) for v in value] if isinstance(value, (list, tuple)) else value


def settings_differences(recorded: dict, expected: dict) -> dict:
    """{key: (recorded, expected)} for the compared keys whose values differ."""
    keys = (set(recorded) & set(expected)) - NOT_COMPARED
    return {
        k: (recorded[k], expected[k])
        for k in sorted(keys)
        if _normal(recorded[k]) != _normal(expected[k])
    }


@dataclass
class Job:
    """One notebook execution: which notebook, with what, into which folder."""

    label: str  # the run's folder relative to the output (explainability: "... explain")
    notebook: str  # notebooks/<notebook>.ipynb
    params: dict
    run_dir: Path
    marker: str = "metrics.json"  # its presence (and matching settings) means "finished"
    expected: dict | None = field(default=None, repr=False)  # training jobs: settings to match

    @property
    def executed(self) -> Path:
        return self.run_dir / f"{self.notebook}.ipynb"

    def recorded_settings(self) -> dict | None:
        try:
            return json.loads((self.run_dir / self.marker).read_text()).get("run_settings", {})
        except (OSError, ValueError):
            return None

    def differences(self) -> dict:
        recorded = self.recorded_settings() if self.expected is not None else None
        return {} if recorded is None else settings_differences(recorded, self.expected)

    @property
    def finished(self) -> bool:
        if self.expected is None:
            return (self.run_dir / self.marker).is_file()
        recorded = self.recorded_settings()
        return recorded is not None and not settings_differences(recorded, self.expected)


def plan_training(
    names, demo, data_root, overrides, output_dir, seeds=None, grid=None, extra_variants=()
) -> list[Job]:
    """One Job per distinct run: experiments × applicable grid values × seeds, plus
    `extra_variants` ((experiment, settings) pairs); runs landing in the same folder merge."""
    grid = grid or {}
    clash = ({"seed"} if seeds else set()) | set(grid)
    if clash & set(overrides):
        raise SweepError(f"{sorted(clash & set(overrides))} given both with -p and --seeds/--grid")
    wanted = []
    for name in names:
        arch = s3f_experiments.get_experiment(name).architecture
        axes = {a: v for a, v in grid.items() if arch in GRID_AXES[a]}
        for values in itertools.product(*axes.values()):
            wanted.append((name, dict(zip(axes, values, strict=True))))
    wanted += list(extra_variants)
    jobs = {}
    for name, variant in wanted:
        for seed in seeds or [None]:
            settings = {**variant, **({} if seed is None else {"seed": seed})}
            exp = s3f_experiments.get_experiment(name)
            params = {**parameters_for(exp, demo, data_root, overrides, output_dir), **settings}
            subdir = s3f_experiments.run_subdir(name, params)
            if subdir not in jobs:
                jobs[subdir] = Job(
                    subdir,
                    name,
                    params,
                    Path(output_dir) / subdir,
                    expected=expected_settings(name, params),
                )
    return list(jobs.values())


def paper_xai_variants(names) -> list[tuple[str, dict]]:
    """The paper's XAI notebook explains concatenation S³F-Nets on all four datasets (SPEC §6.2):
    the concat variant of every selected S³F-Net experiment whose paper model is bilinear."""
    return [
        (name, {"fusion": "concat"})
        for name in names
        if s3f_experiments.EXPERIMENTS[name].architecture == "s3f"
        and s3f_experiments.EXPERIMENTS[name].fusion != "concat"
    ]


def explain_job(training: Job) -> Job:
    """The explainability notebook on one finished S³F-Net run; output in <run>/explain/."""
    exp = s3f_experiments.get_experiment(training.notebook)
    params = {
        "model_path": str(training.run_dir / "model.keras"),
        "dataset": exp.dataset,
        "data_dir": training.params.get("data_dir", ""),
        "output_dir": str(training.run_dir / "explain"),
    }
    for key in ("demo_count", "protocol", "batch_size"):
        if key in training.params:
            params[key] = training.params[key]
    # The notebook writes into output_dir/<title>; a run's model title is its folder name.
    return Job(
        f"{training.label} explain",
        "S3F_Explainability",
        params,
        training.run_dir / "explain",
        marker=f"{training.run_dir.name}/contributions.json",
    )


# --------------------------------------------------------------------------- executing one job


def _execute_in_this_process(spec: dict) -> int:
    """Child-process side of execute_job: run papermill, print one result line."""
    import papermill
    import psutil

    def stop(*_):  # the sweep asks us to stop: end the kernel too, now
        for child in psutil.Process().children(recursive=True):
            child.kill()
        os._exit(143)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the sweep decides what Ctrl-C means
    error = None
    try:
        papermill.execute_notebook(
            spec["notebook"],
            spec["output"],
            parameters=spec["params"],
            kernel_name="python3",
            progress_bar=False,
            cwd=spec["cwd"],
        )
    except papermill.PapermillExecutionError as exc:  # the kit's own message, one line
        evalue = (exc.evalue or "").strip().splitlines()
        error = f"{exc.ename}: {evalue[0] if evalue else ''}"
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        error = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
    if Path(spec["output"]).is_file():
        try:
            from nbconvert import HTMLExporter

            from data_setup.files import write_atomic

            body, _ = HTMLExporter().from_filename(spec["output"])
            write_atomic(Path(spec["output"]).with_suffix(".html"), body)
        except Exception as exc:
            print(f"HTML export failed: {exc}", file=sys.stderr)
    print(RESULT_TAG + json.dumps({"error": error}), flush=True)
    return 0


def _die_with_parent():
    """Linux: the child gets SIGTERM when the thread that started it dies (a killed worker)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


RUNNING: dict[str, subprocess.Popen] = {}  # label → child process, for Ctrl-C
_RUNNING_LOCK = threading.Lock()


def execute_job(job: Job, env: dict | None = None) -> str | None:
    """Run one notebook in a child process; returns an error line or None."""
    job.run_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "notebook": str(NOTEBOOK_DIR / f"{job.notebook}.ipynb"),
        "output": str(job.executed),
        "params": job.params,
        "cwd": str(job.run_dir.parent),
    }
    child_env = {**os.environ, **(env or {})}
    # Kernels import the kit this sweep runs from.
    child_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), child_env.get("PYTHONPATH")])
    )
    with open(job.run_dir / "sweep.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "s3f_sweep", "--execute", json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=REPO,
            env=child_env,
            preexec_fn=_die_with_parent,
        )
        with _RUNNING_LOCK:
            RUNNING[job.label] = proc
        try:
            out, _ = proc.communicate()
        finally:
            with _RUNNING_LOCK:
                RUNNING.pop(job.label, None)
    lines = [ln for ln in out.splitlines() if ln.startswith(RESULT_TAG)]
    if not lines:
        return f"notebook process ended with code {proc.returncode} (log: {job.run_dir}/sweep.log)"
    error = json.loads(lines[-1][len(RESULT_TAG) :])["error"]
    if error is None and not job.finished:
        differ = job.differences()
        error = (
            f"notebook finished but its metrics.json records {sorted(differ)} unlike asked"
            if differ
            else f"notebook finished but wrote no {job.marker}"
        )
    return error


def progress_status(jobs) -> str:
    """'S3F_Concat_BUSI/seed42 3/25 (F1 0.61)' for each running job that reported an epoch."""
    parts = []
    for job in jobs:
        try:
            p = json.loads((job.run_dir / "progress.json").read_text())
            best = p.get("best_val_f1")
            parts.append(
                f"{job.label} {p['epoch']}/{p['epochs']}"
                + (f" (F1 {best:.2f})" if isinstance(best, (int, float)) else "")
            )
        except (OSError, ValueError, KeyError, TypeError):
            parts.append(f"{job.label} starting")
    return "; ".join(parts)


def stop_running(grace_s: float = 10.0) -> None:
    """SIGTERM every running notebook process (each ends its kernel), then SIGKILL stragglers."""
    with _RUNNING_LOCK:
        procs = list(RUNNING.values())
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


# --------------------------------------------------------------------------- many jobs


def prepare(jobs_list: list[Job], force: bool, log=print) -> list[Job]:
    """The jobs to run. Finished ones are skipped; one finished with other parameters stops the
    sweep unless force; leftovers of unfinished runs are cleared so nothing stale remains."""
    conflicts = [(j, j.differences()) for j in jobs_list if not force and j.differences()]
    if conflicts:
        lines = [
            f"  {job.run_dir}: " + ", ".join(f"{k} {a!r} → {b!r}" for k, (a, b) in d.items())
            for job, d in conflicts
        ]
        raise SweepError(
            f"{len(conflicts)} finished run folder(s) were made with other parameters than asked "
            "now (recorded → asked):\n"
            + "\n".join(lines)
            + "\nrerun them with --force, or choose another --output"
        )
    todo = []
    for job in jobs_list:
        if job.finished and not force:
            log(f"  {job.label}: already finished, skipped (use --force to rerun)")
            continue
        if job.run_dir.exists():
            shutil.rmtree(job.run_dir)
        todo.append(job)
    return todo


def run_jobs(todo: list[Job], parallel: int, desc: str, poll_s: float = 5.0):
    """Run jobs `parallel` at a time (one GPU each when GPUs are visible); returns failures as
    (job, message). Ctrl-C stops the running notebooks and the queue: SweepInterrupted."""
    gpus = count_gpus()
    parallel = max(1, parallel)
    free_gpus: Queue = Queue()
    for index in range(gpus):
        free_gpus.put(index)
    if gpus and parallel > gpus:
        print(f"  {parallel} jobs but {gpus} GPUs: running {gpus} at a time, one GPU each")
        parallel = gpus
    stop, running, failures, done_jobs = threading.Event(), {}, [], []
    bar = tqdm(total=len(todo), desc=desc, unit="notebook")

    def task(job):
        if stop.is_set():
            return "not started"
        gpu = free_gpus.get() if gpus else None
        running[job.label] = job
        started = time.perf_counter()
        try:
            error = execute_job(job, None if gpu is None else {"CUDA_VISIBLE_DEVICES": str(gpu)})
        finally:
            running.pop(job.label, None)
            if gpu is not None:
                free_gpus.put(gpu)
        if not stop.is_set():
            on_gpu = f" (GPU {gpu})" if gpu is not None else ""
            status = f"FAILED — {error}" if error else "done"
            bar.write(f"  {job.label}: {status} in {time.perf_counter() - started:.0f} s{on_gpu}")
        return error

    pool = ThreadPoolExecutor(parallel)
    futures = {pool.submit(task, job): job for job in todo}
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, timeout=poll_s, return_when=FIRST_COMPLETED)
            for future in done:
                error = future.result()
                (
                    failures.append((futures[future], error))
                    if error
                    else done_jobs.append(futures[future])
                )
                bar.update()
            bar.set_postfix_str(progress_status(list(running.values()))[:200], refresh=True)
    except KeyboardInterrupt:
        stop.set()
        for future in pending:
            future.cancel()
        stop_running()
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        finished = [j for j in todo if j.finished]
        raise SweepInterrupted(finished, [j for j in todo if not j.finished]) from None
    pool.shutdown()
    bar.close()
    return failures


def run_sweep(
    names,
    demo,
    data_root,
    overrides,
    output_dir,
    force=False,
    jobs=1,
    results_dir=None,
    explain=False,
    seeds=None,
    grid=None,
    cluster=None,
    retries=1,
) -> list[tuple[Job, str]]:
    """Train the planned runs (then, with explain, the explainability notebook on every
    finished S³F-Net run, including the paper's concat XAI variants); returns the failures."""
    output_dir = Path(output_dir).expanduser().resolve()
    extra = paper_xai_variants(names) if explain else []
    training = plan_training(names, demo, data_root, overrides, output_dir, seeds, grid, extra)
    runner = None
    if cluster:
        import s3f_cluster

        runner = s3f_cluster.ClusterRunner(cluster, retries=retries)

    def execute(todo, desc):
        return runner.run_jobs(todo, desc) if runner else run_jobs(todo, jobs, desc)

    print(f"{len(training)} training run(s) planned")
    try:
        failures = execute(prepare(training, force), "sweep")
        if explain:
            explaining = [
                explain_job(job)
                for job in training
                if job.finished and s3f_experiments.EXPERIMENTS[job.notebook].architecture == "s3f"
            ]
            failures += execute(prepare(explaining, force), "explain")
    finally:
        if runner:
            runner.close()
    if results_dir is not None:
        import s3f_results

        s3f_results.build_results(output_dir, results_dir)
    return failures


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m s3f_sweep",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--demo", action="store_true", help="synthetic data, demo settings")
    source.add_argument("--data-root", help="folder with BRISC2025/ ChestXRay/ BUSI/ HAM10000/")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=list(s3f_experiments.EXPERIMENTS),
        help="experiments to run (default: all of the registry)",
    )
    parser.add_argument("--datasets", nargs="+", choices=list(s3f_experiments.RECIPES))
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        nargs="+",
        metavar="KEY=VALUE",
        help="notebook parameter: -p epochs=50 or -p epochs 50 (repeatable)",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        metavar="N",
        help="one number N: seeds 42..42+N-1; several: exactly those seeds",
    )
    parser.add_argument(
        "--grid",
        nargs="+",
        metavar="AXIS=V1,V2",
        help=f"model variants to cross; axes: {', '.join(GRID_AXES)}",
    )
    parser.add_argument(
        "--output", default=None, help="run folders (default runs/demo or runs/paper)"
    )
    parser.add_argument(
        "--results",
        default=None,
        help="tables and figures (default results/ for the default output, else <output>/results)",
    )
    parser.add_argument("--force", action="store_true", help="rerun finished runs")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks at a time (local)")
    parser.add_argument(
        "--no-explain",
        action="store_true",
        help="skip the explainability notebook on the S³F-Net runs",
    )
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run each notebook as a Ray task: a cluster address "
        "(host:port, 'auto') or 'local' to start one here",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help="--cluster: times a task lost with its worker is retried",
    )
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--execute"]:  # internal: one notebook in a child process
        return _execute_in_this_process(json.loads(argv[1]))
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # kernels inherit it: quieter logs
    names = args.only or list(s3f_experiments.EXPERIMENTS)
    if args.datasets:
        names = [n for n in names if s3f_experiments.EXPERIMENTS[n].dataset in args.datasets]
    default_output = REPO / "runs" / ("demo" if args.demo else "paper")
    output = Path(args.output or default_output).expanduser().resolve()
    results = args.results or (REPO / "results" if output == default_output else output / "results")
    print(
        f"running {len(names)} experiment(s) → {output}"
        + (" on SYNTHETIC DEMO DATA" if args.demo else f" on data under {args.data_root}")
    )
    started = time.perf_counter()
    try:
        failures = run_sweep(
            names,
            args.demo,
            args.data_root,
            parse_overrides(args.param),
            output,
            args.force,
            args.jobs,
            results,
            explain=not args.no_explain,
            seeds=parse_seeds(args.seeds),
            grid=parse_grid(args.grid),
            cluster=args.cluster,
            retries=args.retries,
        )
    except SweepError as error:
        print(f"s3f_sweep: {error}", file=sys.stderr)
        return 2
    except SweepInterrupted as stopped:
        print(
            f"\ninterrupted: {len(stopped.finished)} run(s) of this pass finished, "
            f"{len(stopped.unfinished)} did not (rerun the same command to resume):"
        )
        for job in stopped.finished:
            print(f"  finished     {job.label}")
        for job in stopped.unfinished:
            print(f"  not finished {job.label}")
        return 130
    print(
        f"sweep finished in {(time.perf_counter() - started) / 60:.1f} min; "
        f"tables and figures in {results}"
    )
    if failures:
        print(f"{len(failures)} notebook(s) failed:")
        for job, error in failures:
            print(f"  {job.label}: {error}  (notebook: {job.executed})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
