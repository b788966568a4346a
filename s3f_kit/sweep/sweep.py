"""Run experiment notebooks headlessly with papermill, then rebuild the results tables.

    s3f-sweep --demo                      # all 12 on synthetic data, demo settings
    s3f-sweep --data-root ~/data          # the real reproduction, paper settings
    s3f-sweep --only S3F_Concat_BUSI -p epochs 50 -p protocol=holdout --demo
    s3f-sweep --data-root ~/data --jobs 4  # 4 at a time, one GPU each if present
    s3f-sweep --demo --seeds 3 --grid fusion=concat,bilinear spectranet=1,2
    s3f-sweep --demo --only S3F_Concat_BUSI Spatial_BUSI --folds 3 --seeds 2
    s3f-sweep --data-root /shared/data --output /shared/runs --cluster auto
    s3f-sweep --demo --baselines --seeds 3  # + the 12 standard deep CNN baselines
    s3f-sweep --demo --controls --seeds 5   # + the 4 parameter-matched spatial controls

`--data-root` holds one folder per dataset id (BRISC2025/, ChestXRay/, BUSI/, HAM10000/, each as
unzipped). A run is experiment + model variant + protocol (+ cross-validation fold) + seed, with its
own folder `<output>/<experiment>[/<variant>][/<protocol>][/cv<K>/fold<k>]/seed<N>/`. A run counts
as finished when its metrics.json exists and records the parameters asked for now: finished runs are
skipped (an interrupted sweep resumes), and one made with other parameters stops the sweep with the
differences named (--force reruns it). A failing notebook does not stop the others; failures are
listed at the end and the exit status is 1. Ctrl-C stops the running notebooks and the queue. Tables
are rebuilt from every finished run under --output (default results/ for the default output folders,
else <output>/results). --cluster runs each notebook as a Ray task. One sweep per
--output at a time: a second sweep on a busy output folder stops at once (exit status 2) with a
message naming the other process (pid, host, command, since when); a lock left by a killed sweep is
taken over. A notebook run by hand into a run folder that is training stops the same way.
The standard deep baselines (Baseline_<Model>_<DATASET>, 5.9–23.6 M parameters each) are
opt-in: --baselines adds all of them (of --datasets), --only names some. So are the
parameter-matched spatial–spatial controls (Control_<DATASET>, docs/shortcuts.md): --controls.

Why ~500 lines: planning (experiments × grid × seeds × folds, reuse, the disk check) and the command
line are one story a reader follows top to bottom; execution lives in s3f_kit/sweep/jobs.py,
worker.py and cluster.py.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import time
from pathlib import Path

from s3f_kit import config as s3f_config
from s3f_kit import experiments as s3f_experiments
from s3f_kit import locks as s3f_locks
from s3f_kit.experiments import DEFAULT_SEED as SEED
from s3f_kit.experiments import DEMO_PARAMETERS
from s3f_kit.sweep.jobs import (  # noqa: F401  (re-exported: the sweep's API)
    REPO,
    Job,
    SweepError,
    SweepInterrupted,
    _literal,
    count_gpus,
    execute_job,
    progress_status,
    run_jobs,
    settings_differences,
)


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
        axes = s3f_config.grid_axes()
        if not sep or axis not in axes or not _split_values(values):
            raise SweepError(
                f"--grid expects AXIS=V1,V2 with AXIS one of {', '.join(axes)}; got {item!r}"
            )
        grid[axis] = [_literal(v) for v in _split_values(values)]
    return grid


def parse_seeds(values) -> list[int] | None:
    """--seeds N → N seeds from DEFAULT_SEED (42) up; --seeds A B C → exactly those."""
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
        params.update(DEMO_PARAMETERS, data_dir="")
    elif exp.name == s3f_experiments.CUSTOM_EXPERIMENT:  # your data: --data-root is its folder
        params["data_dir"] = str(Path(data_root).expanduser().resolve())
    else:
        params["data_dir"] = str(Path(data_root).expanduser().resolve() / exp.dataset)
    params.update(overrides)
    return params


def fold_settings(folds: int | None, overrides: dict, grid: dict) -> list[dict]:
    """The per-run settings of --folds K: each fold 1..K under the holdout protocol (a fold
    validates on training data); [{}] without cross-validation."""
    if not folds:
        return [{}]
    if folds < 2 or folds > s3f_config.MAX_FOLDS:
        raise SweepError(f"--folds K needs 2 ≤ K ≤ {s3f_config.MAX_FOLDS}, got {folds}")
    if overrides.get("protocol", "holdout") != "holdout" or "protocol" in grid:
        raise SweepError("--folds runs the 'holdout' protocol: drop -p protocol / --grid protocol")
    if {"fold", "folds", "split_file"} & set(overrides):
        raise SweepError("--folds sets fold and folds, and makes its own splits (no split_file)")
    return [{"folds": folds, "fold": k, "protocol": "holdout"} for k in range(1, folds + 1)]


def plan_training(
    names,
    demo,
    data_root,
    overrides,
    output_dir,
    seeds=None,
    grid=None,
    extra_variants=(),
    folds=None,
) -> list[Job]:
    """One Job per distinct run: experiments × applicable grid values × seeds × folds, plus
    `extra_variants` ((experiment, settings) pairs); runs landing in the same folder merge."""
    grid = grid or {}
    clash = ({"seed"} if seeds else set()) | set(grid)
    if clash & set(overrides):
        raise SweepError(f"{sorted(clash & set(overrides))} given both with -p and --seeds/--grid")
    per_fold = fold_settings(folds, overrides, grid)
    wanted = []
    for name in names:
        arch = s3f_experiments.get_experiment(name).architecture
        # an axis applies to some architectures (others ignore it; duplicates merge)
        axes = {a: v for a, v in grid.items() if arch in s3f_config.grid_axes()[a]}
        for values in itertools.product(*axes.values()):
            wanted.append((name, dict(zip(axes, values, strict=True))))
    wanted += list(extra_variants)
    jobs = {}
    for name, variant in wanted:
        for seed, fold in itertools.product(seeds or [None], per_fold):
            settings = {**variant, **fold, **({} if seed is None else {"seed": seed})}
            exp = s3f_experiments.get_experiment(name)
            params = {**parameters_for(exp, demo, data_root, overrides, output_dir), **settings}
            try:
                expected = s3f_config.expected_settings(name, params)
            except ValueError as error:  # a bad -p value, said before anything runs
                raise SweepError(f"{name}: {error}") from None
            subdir = s3f_config.run_subdir(name, expected)
            if subdir not in jobs:
                jobs[subdir] = Job(
                    subdir, name, params, Path(output_dir) / subdir, expected=expected
                )
    return list(jobs.values())


def paper_xai_variants(names) -> list[tuple[str, dict]]:
    """The paper's XAI notebook explains concatenation S³F-Nets on all four datasets (paper.md
    §6.2): the concat variant of every selected S³F-Net experiment whose paper model is bilinear."""
    return [
        (name, {"fusion": "concat"})
        for name in names
        if s3f_experiments.get_experiment(name).architecture == "s3f"
        and s3f_experiments.get_experiment(name).fusion != "concat"
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


# One sweep per output folder: a second one stops (it does not wait) with this advice.
OUTPUT_BUSY = (
    "a second sweep stops rather than wait: let that one finish, stop it, or choose another "
    "--output"
)
RUN_FOLDER_BUSY = "wait for that notebook to finish or stop it, then run the sweep again"


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
            s3f_locks.ensure_free(job.run_dir, RUN_FOLDER_BUSY)  # never clear a run in training
            shutil.rmtree(job.run_dir)
        todo.append(job)
    return todo


# Files of one finished run besides model.keras (executed notebook, figures, CSVs), measured at
# the paper's sizes (docs/sweep.md), rounded up.
RUN_FILES_BYTES = 2 * 2**20


def run_footprint(job: Job) -> tuple[int, int]:
    """(bytes a finished run keeps, bytes more while it trains), from its parameter count: float32
    weights, three times that with Adam's two moments, which resume/model.keras and
    checkpoint.keras both hold while the run trains."""
    settings = job.expected or job.params
    weights = 4 * s3f_experiments.estimated_parameters(job.notebook, settings)
    kept = weights * (3 if settings.get("keep_optimizer") else 1) + RUN_FILES_BYTES
    return kept, 2 * 3 * weights


def disk_warning(todo: list[Job], output_dir: Path, parallel: int) -> str | None:
    """A warning when the planned runs will not fit the free space of output_dir's disk."""
    if not todo:
        return None
    footprints = [run_footprint(job) for job in todo]
    in_flight = sorted((training for _, training in footprints), reverse=True)[: max(parallel, 1)]
    needed = sum(kept for kept, _ in footprints) + sum(in_flight)
    folder = Path(output_dir)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if needed <= free:
        return None
    gb = 1e9
    return (
        f"WARNING: this plan needs about {needed / gb:.1f} GB on {folder} and {free / gb:.1f} GB "
        f"are free: {len(todo)} run(s) keep {sum(k for k, _ in footprints) / gb:.1f} GB (largest "
        f"{max(k for k, _ in footprints) / gb:.2f} GB each), and a run holds "
        f"{max(in_flight) / gb:.1f} GB more while it trains. Free space, choose another --output, "
        "or plan fewer runs; the sweep starts anyway and a full disk stops it."
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
    seeds=None,
    grid=None,
    cluster=None,
    retries=1,
    keep_kernels=True,
    html=True,
    folds=None,
) -> list[tuple[Job, str]]:
    """Train the planned runs (then, with explain, the explainability notebook on every
    finished S³F-Net run, including the paper's concat XAI variants); returns the failures."""
    output_dir = Path(output_dir).expanduser().resolve()
    extra = paper_xai_variants(names) if explain else []
    training = plan_training(
        names, demo, data_root, overrides, output_dir, seeds, grid, extra, folds=folds
    )
    runner = None
    if cluster:
        from s3f_kit.sweep import cluster as s3f_cluster

        runner = s3f_cluster.ClusterRunner(cluster, retries=retries)

    def execute(todo, desc):
        for job in todo:
            job.html = html
        if runner:
            return runner.run_jobs(todo, desc)
        return run_jobs(todo, jobs, desc, keep_kernels=keep_kernels)

    print(f"{len(training)} training run(s) planned")
    lock = s3f_locks.FolderLock(output_dir, "a sweep on this output folder", OUTPUT_BUSY)
    try:
        lock.acquire()
        todo = prepare(training, force)
        warning = disk_warning(todo, output_dir, jobs)
        if warning:
            print(warning)
        failures = execute(todo, "sweep")
        if explain:
            explaining = [
                explain_job(job)
                for job in training
                if job.finished
                and s3f_experiments.get_experiment(job.notebook).architecture == "s3f"
                # a cross-validation fold's test images are its own split: explained by the
                # single-split runs, not once per fold
                and not (job.expected or {}).get("folds")
            ]
            failures += execute(prepare(explaining, force), "explain")
    except s3f_locks.FolderBusy as busy:
        raise SweepError(str(busy)) from None
    finally:
        lock.release()
        if runner:
            runner.close()
    if results_dir is not None:
        from s3f_kit.reports import results as s3f_results

        try:
            s3f_results.build_results(output_dir, results_dir)
        except OSError as error:  # a full disk (DiskFullError), a read-only results folder
            # the runs are finished and kept: only the tables wait for another try
            raise SweepError(
                f"the runs are kept in {output_dir}, but the tables were not written: {error}; "
                f"then run: s3f-results {output_dir} {results_dir}"
            ) from None
    return failures


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3f-sweep",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # the module's story for users; its "Why ~N lines" note is for maintainers
        epilog=__doc__.split("\nWhy ~")[0].split("\n", 1)[1],
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--demo", action="store_true", help="synthetic data, demo settings")
    source.add_argument("--data-root", help="folder with BRISC2025/ ChestXRay/ BUSI/ HAM10000/")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=[
            *s3f_experiments.EXPERIMENTS,
            s3f_experiments.CUSTOM_EXPERIMENT,
            *s3f_experiments.BASELINE_EXPERIMENTS,
            *s3f_experiments.CONTROL_EXPERIMENTS,
        ],
        help="experiments to run (default: the paper's twelve), e.g. Baseline_ResNet50V2_BUSI",
    )
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="also the standard deep CNNs (Baseline_<ResNet50V2|DenseNet121|EfficientNetV2B0>_"
        "<dataset>, keras.applications; ImageNet weights where they can be fetched, else random: "
        "--grid weights=random asks for random): heavy, so not in the default plan",
    )
    parser.add_argument(
        "--controls",
        action="store_true",
        help="also the parameter-matched spatial–spatial controls (Control_<dataset>: the "
        "S³F-Net with a spatial CNN of SpectraNet's size in its place; docs/shortcuts.md)",
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
        help=f"one number N: seeds {SEED}..{SEED}+N-1; several: exactly those seeds",
    )
    parser.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="K-fold grouped cross-validation (holdout protocol): every run once per fold, "
        "folders …/cv<K>/fold<k>/seed<S>; tables and claims pool folds × seeds",
    )
    parser.add_argument(
        "--grid",
        nargs="+",
        metavar="AXIS=V1,V2",
        help=f"model variants to cross; axes: {', '.join(s3f_config.grid_axes())}",
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
        "--fresh-kernels",
        action="store_true",
        help="a new kernel for every notebook (default: each of the --jobs workers keeps its "
        "kernel, reset between notebooks: 3–4 s less start-up per notebook, measured)",
    )
    parser.add_argument(
        "--no-html",
        action="store_true",
        help="keep each executed notebook but skip its HTML copy (about 2 s per notebook)",
    )
    parser.add_argument(
        "--no-tables",
        action="store_true",
        help="do not rebuild the tables and figures (a later sweep over this --output will)",
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
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # kernels inherit it: quieter logs
    names = args.only or list(s3f_experiments.EXPERIMENTS)
    if args.baselines:
        names = list(dict.fromkeys([*names, *s3f_experiments.BASELINE_EXPERIMENTS]))
    if args.controls:
        names = list(dict.fromkeys([*names, *s3f_experiments.CONTROL_EXPERIMENTS]))
    if args.datasets:
        names = [n for n in names if s3f_experiments.get_experiment(n).dataset in args.datasets]
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
            None if args.no_tables else results,
            explain=not args.no_explain,
            seeds=parse_seeds(args.seeds),
            grid=parse_grid(args.grid),
            cluster=args.cluster,
            retries=args.retries,
            keep_kernels=not args.fresh_kernels,
            html=not args.no_html,
            folds=args.folds,
        )
    except SweepError as error:
        print(f"s3f-sweep: {error}", file=sys.stderr)
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
    tables = (
        "tables not rebuilt (--no-tables)" if args.no_tables else f"tables and figures in {results}"
    )
    print(f"sweep finished in {(time.perf_counter() - started) / 60:.1f} min; {tables}")
    if failures:
        print(f"{len(failures)} notebook(s) failed:")
        for job, error in failures:
            print(f"  {job.label}: {error}  (notebook: {job.executed})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
