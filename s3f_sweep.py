"""Run experiment notebooks headlessly with papermill, then rebuild the results tables.

    python -m s3f_sweep --demo                          # all 12 on synthetic data, demo settings
    python -m s3f_sweep --data-root ~/data              # the real reproduction, paper settings
    python -m s3f_sweep --only S3F_Concat_BUSI -p epochs=50 -p protocol=holdout
    python -m s3f_sweep --data-root ~/data --jobs 4     # 4 at a time, one GPU each if present

`--data-root` holds one folder per dataset id (BRISC2025/, ChestXRay/, BUSI/, HAM10000/, each as
unzipped). A run whose metrics.json exists is skipped unless --force, so an interrupted sweep
resumes where it stopped. A failing notebook does not stop the others; failures are listed at
the end and the exit status is 1. Each run folder keeps the executed notebook and its HTML.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from queue import Queue

from tqdm.auto import tqdm

import s3f_experiments
from s3f_experiments import DEMO_PARAMETERS
from s3f_notebooks import NOTEBOOK_DIR

REPO = Path(__file__).resolve().parent


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


def parse_overrides(pairs) -> dict:
    """-p key=value pairs; values are Python literals when they parse as one, else strings."""
    result = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit(f"-p expects key=value, got {pair!r}")
        try:
            result[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            result[key] = value
    return result


def parameters_for(exp, demo: bool, data_root, overrides, output_dir) -> dict:
    params = {"output_dir": str(output_dir)}
    if demo:
        params.update(
            s3f_experiments.DEMO_PARAMETERS,
            data_dir="",
            img_size=s3f_experiments.DEMO_IMAGE_SIZES[exp.dataset],
        )
    else:
        params["data_dir"] = str(Path(data_root).expanduser().resolve() / exp.dataset)
    params.update(overrides)
    return params


def export_html(notebook: Path) -> None:
    from nbconvert import HTMLExporter

    from data_setup.files import write_atomic

    body, _ = HTMLExporter().from_filename(str(notebook))
    write_atomic(notebook.with_suffix(".html"), body)


@dataclass
class Job:
    """One notebook execution: which notebook, with what, into which folder."""

    label: str  # experiment name (explainability jobs: "<experiment> explainability")
    notebook: str  # notebooks/<notebook>.ipynb
    params: dict
    run_dir: Path
    marker: str = "metrics.json"  # the file whose presence means "finished"

    @property
    def finished(self) -> bool:
        return (self.run_dir / self.marker).is_file()


def run_one(job: Job, gpu, log) -> tuple[str, str | None]:
    """Execute one notebook; returns (label, error message or None)."""
    import papermill

    job.run_dir.mkdir(parents=True, exist_ok=True)
    executed = job.run_dir / f"{job.notebook}.ipynb"
    params = {**job.params, "gpu": gpu} if gpu is not None else job.params
    started = time.perf_counter()
    error = None
    try:
        papermill.execute_notebook(
            str(NOTEBOOK_DIR / f"{job.notebook}.ipynb"),
            str(executed),
            parameters=params,
            kernel_name="python3",
            progress_bar=False,
            cwd=str(job.run_dir.parent),
        )
    except Exception as exc:  # one failing notebook must not stop the sweep
        lines = str(exc).strip().splitlines()
        error = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
    if executed.is_file():
        try:
            export_html(executed)
        except Exception as exc:
            log(f"  {job.label}: HTML export failed ({exc})")
    if error is None and not job.finished:
        error = f"notebook finished but wrote no {job.marker}"
    status = f"FAILED — {error}" if error else "done"
    on_gpu = f" (GPU {gpu})" if gpu is not None else ""
    log(f"  {job.label}: {status} in {time.perf_counter() - started:.0f} s{on_gpu}")
    return job.label, error


def run_jobs(jobs_list: list[Job], parallel: int, force: bool, desc: str):
    """Run the unfinished jobs, `parallel` at a time (one GPU each when GPUs are visible)."""
    todo = []
    for job in jobs_list:
        if job.finished and not force:
            print(f"  {job.label}: already finished, skipped (use --force to rerun)")
            continue
        if force and job.run_dir.exists():
            shutil.rmtree(job.run_dir)
        todo.append(job)
    gpus = count_gpus()
    parallel = max(1, parallel)
    free_gpus: Queue = Queue()
    for index in range(gpus):
        free_gpus.put(index)
    if gpus and parallel > gpus:
        print(f"  {parallel} jobs but {gpus} GPUs: running {gpus} at a time, one GPU each")
        parallel = gpus
    failures = []
    bar = tqdm(total=len(todo), desc=desc, unit="notebook")

    def task(job):
        gpu = free_gpus.get() if gpus else None
        try:
            return run_one(job, gpu, bar.write)
        finally:
            if gpu is not None:
                free_gpus.put(gpu)

    with ThreadPoolExecutor(parallel) as pool:
        for future in as_completed([pool.submit(task, job) for job in todo]):
            label, error = future.result()
            if error:
                failures.append((label, error))
            bar.update()
    bar.close()
    return failures


def explain_job(name: str, output_dir: Path, demo: bool, data_root, overrides) -> Job:
    """The explainability notebook on the model a sweep trained for experiment `name`."""
    exp = s3f_experiments.get_experiment(name)
    params = {
        "model_path": str(output_dir / name / "model.keras"),
        "dataset": exp.dataset,
        "data_dir": "" if demo else str(Path(data_root).expanduser().resolve() / exp.dataset),
        "output_dir": str(output_dir / "explain"),
    }
    for key in ("demo_count", "protocol", "batch_size"):
        source = overrides if key in overrides else (DEMO_PARAMETERS if demo else {})
        if key in source:
            params[key] = source[key]
    return Job(
        f"{name} explainability",
        "S3F_Explainability",
        params,
        output_dir / "explain" / name,
        marker="contributions.json",
    )


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
) -> list[tuple[str, str]]:
    """Run the named experiments (then, with explain, the explainability notebook on each
    S³F-Net model); returns the failures as (label, message)."""
    output_dir = Path(output_dir).expanduser().resolve()
    training = [
        Job(
            name,
            name,
            parameters_for(
                s3f_experiments.get_experiment(name), demo, data_root, overrides, output_dir
            ),
            output_dir / name,
        )
        for name in names
    ]
    failures = run_jobs(training, jobs, force, "sweep")
    if explain:
        trained = [
            job.label
            for job in training
            if job.finished and s3f_experiments.EXPERIMENTS[job.label].architecture == "s3f"
        ]
        explaining = [explain_job(n, output_dir, demo, data_root, overrides) for n in trained]
        failures += run_jobs(explaining, jobs, force, "explain")
    if results_dir is not None:
        import s3f_results

        s3f_results.build_results(output_dir, results_dir)
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
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
        help="experiments to run (default: all twelve)",
    )
    parser.add_argument("--datasets", nargs="+", choices=list(s3f_experiments.RECIPES))
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="notebook parameter override, e.g. -p epochs=50 (repeatable)",
    )
    parser.add_argument(
        "--output", default=None, help="run folders (default runs/demo or runs/paper)"
    )
    parser.add_argument(
        "--results",
        default=str(REPO / "results"),
        help="where tables and figures go (default results/)",
    )
    parser.add_argument("--force", action="store_true", help="rerun finished experiments")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks at a time")
    parser.add_argument(
        "--no-explain",
        action="store_true",
        help="skip the explainability notebook on the S³F-Net models",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # kernels inherit it: quieter logs
    names = args.only or list(s3f_experiments.EXPERIMENTS)
    if args.datasets:
        names = [n for n in names if s3f_experiments.EXPERIMENTS[n].dataset in args.datasets]
    output = args.output or str(REPO / "runs" / ("demo" if args.demo else "paper"))
    print(
        f"running {len(names)} notebook(s) → {output}"
        + (" on SYNTHETIC DEMO DATA" if args.demo else f" on data under {args.data_root}")
    )
    started = time.perf_counter()
    failures = run_sweep(
        names,
        args.demo,
        args.data_root,
        parse_overrides(args.param),
        output,
        args.force,
        args.jobs,
        args.results,
        explain=not args.no_explain,
    )
    print(
        f"sweep finished in {(time.perf_counter() - started) / 60:.1f} min; "
        f"tables and figures in {args.results}"
    )
    if failures:
        print(f"{len(failures)} notebook(s) failed:")
        for name, error in failures:
            print(f"  {name}: {error}  (see {Path(output) / name / (name + '.html')})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
