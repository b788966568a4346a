"""Build results/README.md, summary.csv, runs.csv and figures from every finished run folder.

    s3f-results runs/demo results/  # or python -m s3f_kit.reports.results

Finds every `metrics.json` under the runs folder (any depth: one folder per experiment, model
variant, protocol and seed — s3f_experiments.run_subdir), groups the runs by experiment ×
variant × protocol, reports mean ± sd across seeds beside the paper's numbers (paper.md §6), and
flags collapsed or diverged runs. A single run's cell carries its interval over the test images
(from its metrics.json); several seeds show mean ± sd and min–max, and the two-level bootstrap
interval of the mean where there are enough seeds (s3f_stats.across_runs). Calibration (NLL,
Brier, ECE, reliability) is summarised by s3f_results_calibration. Demo-data runs are labelled
as such everywhere. Each run and the whole set get a page to share under reports/
(s3f_reproduction).

The page reads at a glance first (issue 36.3): per dataset a headline table of at most
HEADLINE_MAX_COLUMNS columns (model, protocol, runs, the primary metrics with their intervals,
the paper's number and Δ, flags) ending with the majority-class floor, then the claims; a
`## Details` section follows with the settings, the machine, every metric per dataset (the wide
tables, summary.csv's columns), one confusion-matrix figure per dataset, calibration, branch
contributions and the branch ablation (s3f_results_ablation). A new section of detail is a
list of Markdown lines appended to `details` in _write_results.

Why ~640 lines: collecting the run folders, the per-group summary, the README page that explains
it (headline and details) and the all-or-nothing write of the whole results folder are one
reader's story; the tables' data (results_tables), calibration (results_calibration) and
figures (plots) live beside it.
"""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from data_setup.files import (
    atomic_path,
    staged_folder,
    write_atomic,
    write_csv_atomic,
)
from s3f_kit import config as s3f_config
from s3f_kit import experiments as s3f_experiments
from s3f_kit.reports import data_identity as s3f_data_identity
from s3f_kit.reports import records as s3f_records
from s3f_kit.reports import stats as s3f_stats

# the records' schema, kept importable here
from s3f_kit.reports.records import REQUIRED_KEYS  # noqa: F401
from s3f_kit.reports.results_tables import (
    DEMO_BANNER,
    GROUP,
    MAJORITY_MODEL,
    METRICS,
    _model_title,
    _settings_labels,
    collect,
    collect_runs,  # noqa: F401  (the runs of a folder: s3f_results.collect_runs)
    dataset_figure,
    majority_frame,
    runs_frame,
    summary_frame,
)


def _cell(row, column, digits) -> str:
    mean, sd = row[column], row.get(f"{column}_sd", np.nan)
    if pd.isna(mean):
        return "–"
    return f"{mean:.{digits}f}" + ("" if pd.isna(sd) else f" ± {sd:.{digits}f}")


def _interval_cell(row, column, digits) -> str:
    """'87.82 [82.10, 92.31]' (one run: its interval over the test images), '85.00 ± 5.00
    (80.00–90.00)' (a few seeds: mean ± sd and min–max) or '85.00 ± 5.00 (80.00–90.00) [82.40,
    87.30]' (enough seeds for an interval of the mean); the bare number where the records hold
    no interval."""
    low, high = row.get(f"{column}_ci_low", np.nan), row.get(f"{column}_ci_high", np.nan)
    least, most = row.get(f"{column}_min", np.nan), row.get(f"{column}_max", np.nan)
    cell = _cell(row, column, digits)
    if cell != "–" and not (pd.isna(least) or pd.isna(most)):
        cell += f" ({least:.{digits}f}–{most:.{digits}f})"
    if cell == "–" or pd.isna(low) or pd.isna(high):
        return cell
    return f"{cell} [{low:.{digits}f}, {high:.{digits}f}]"


def _paper(row, column, digits) -> tuple[str, str]:
    target = row[f"paper_{column}"]
    if pd.isna(target):
        return "–", "–"
    return f"{target:.{digits}f}", f"{row[f'diff_{column}']:+.{digits}f}"


def _runs_cell(row) -> str:
    """'3' or, cross-validated, '6 (3-fold × 2 seeds)'."""
    if not row.get("folds"):
        return str(row["n_runs"])
    return f"{row['n_runs']} ({row['folds']}-fold × {len(str(row['seeds']).split())} seeds)"


# Column labels of the README tables, in the paper's order; a dataset's primary metrics
# (DatasetInfo.primary_metrics) come first, the paper's others follow.
LABELS = {
    "accuracy": "acc %",
    "weighted_f1": "wF1",
    "macro_f1": "mF1",
    "cohen_kappa": "κ",
    "mcc": "MCC",
    "roc_auc": "AUC",
    "loss": "loss",
    "balanced_accuracy": "bal. acc",
    "sensitivity": "sens.",
    "specificity": "spec.",
}
PAPER_COLUMNS = ("accuracy", "weighted_f1", "macro_f1", "cohen_kappa", "mcc", "roc_auc", "loss")


def primary_metrics(dataset: str) -> tuple[str, ...]:
    """The dataset's declared primary metrics (docs/analysis-plan.md): from its record."""
    return s3f_experiments.DATASETS.get(dataset, s3f_experiments.CUSTOM_INFO).primary_metrics


def _declared() -> str:
    """'BRISC2025 acc %, mF1; …': each dataset's primary metrics, as the tables label them."""
    return "; ".join(
        f"{name} {', '.join(LABELS[key] for key in primary_metrics(name))}"
        for name in s3f_experiments.RECIPES
    )


def table_columns(dataset: str) -> list[str]:
    """The metric keys of a dataset's table: its primary metrics first, then the paper's."""
    primary = list(primary_metrics(dataset))
    return primary + [key for key in PAPER_COLUMNS if key not in primary]


# A headline table fits a page: model, protocol, runs, each primary metric with the paper's
# number (Δ) beside it, flags. The primary metrics it shows follow from this width; a dataset
# declaring more shows its first ones here and all of them in its details table.
HEADLINE_MAX_COLUMNS = 10
HEADLINE_METRICS = (HEADLINE_MAX_COLUMNS - 4) // 2


def _headline_cell(row, column, digits) -> str:
    """At a glance: the mean and its 95 % interval where the group has one ('89.17 [75.83,
    100.00]'), else mean ± sd; sd and min–max stay in the details table."""
    low, high = row.get(f"{column}_ci_low", np.nan), row.get(f"{column}_ci_high", np.nan)
    if pd.isna(row[column]) or pd.isna(low) or pd.isna(high):
        return _cell(row, column, digits)
    return f"{row[column]:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _model_cell(row) -> str:
    """'S³F-Net (bilinear, SN1), paper's' — the variant (and settings that set a row apart)
    folded into the model's name."""
    parts = (row["model"], row["variant"] or "paper's", row.get("settings") or "")
    return ", ".join(part for part in parts if part)


def headline_table(frame: pd.DataFrame, dataset: str, majority: pd.DataFrame) -> str:
    """A dataset's results at a glance: one row per model group and the majority-class floor,
    at most HEADLINE_MAX_COLUMNS columns."""
    keys = list(primary_metrics(dataset))[:HEADLINE_METRICS]
    header = ["model", "protocol", "runs"]
    for key in keys:
        header += [f"**{LABELS[key]}**", "paper (Δ)"]
    header.append("flags")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in frame.iterrows():
        cells = [_model_cell(row), row["protocol"], _runs_cell(row)]
        for key in keys:
            column, digits = METRICS[key], 2 if key == "accuracy" else 3
            paper, delta = _paper(row, column, digits)
            cells += [_headline_cell(row, column, digits),
                      "–" if paper == "–" else f"{paper} ({delta})"]  # fmt: skip
        cells.append(f"**{row['flags']}**" if row["flags"] else "")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    for _, row in majority.iterrows():  # the floor every model must clear
        cells = [f"*{MAJORITY_MODEL}* (always {row['majority']})", row["protocol"],
                 str(row["n_runs"])]  # fmt: skip
        for key in keys:
            value = row.get(METRICS[key], np.nan)
            digits = 2 if key == "accuracy" else 3
            cells += ["–" if pd.isna(value) else f"{value:.{digits}f}", "–"]
        lines.append("| " + " | ".join([*cells, ""]) + " |")
    return "\n".join(lines)


def _markdown_table(frame: pd.DataFrame, dataset: str, majority: pd.DataFrame) -> str:
    """A dataset's details table: every metric with the paper's number and Δ, cost and run
    length, one column each (summary.csv holds the same and more)."""
    keys = table_columns(dataset)
    primary = set(primary_metrics(dataset))
    header = ["model", "variant", "protocol", "runs"]
    for key in keys:
        header += [f"**{LABELS[key]}**" if key in primary else LABELS[key], "paper", "Δ"]
    header += ["params", "GFLOPs", "weights", "input", "epochs", "best", "flags"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in frame.iterrows():
        variant = row["variant"] or "paper's"
        if row.get("settings"):  # this model was also run with other settings: a row each
            variant += f" ({row['settings']})"
        cells = [row["model"], variant, row["protocol"], _runs_cell(row)]
        for key in keys:
            column, digits = METRICS[key], 2 if key == "accuracy" else 3
            cells += [_interval_cell(row, column, digits), *_paper(row, column, digits)]
        cells += [
            f"{row['params']:,}",
            "–" if pd.isna(row.get("flops")) else f"{row['flops'] / 1e9:.3g}",
            row.get("weights") or "–",
            row["image_size"],
            f"{row['epochs_run']:g}",
            f"{row['best_epoch']:g}",
            f"**{row['flags']}**" if row["flags"] else "",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    for _, row in majority.iterrows():  # the floor every model must clear
        cells = [f"*{MAJORITY_MODEL}*", f"always {row['majority']}", row["protocol"],
                 str(row["n_runs"])]  # fmt: skip
        for key in keys:
            value = row.get(METRICS[key], np.nan)
            digits = 2 if key == "accuracy" else 3
            cells += ["–" if pd.isna(value) else f"{value:.{digits}f}", "–", "–"]
        cells += ["–"] * 7
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


EXPLAIN_FILES = ("contributions.json", "contributions_bar.png", "contributions_kde.png")


def _explain_section(runs: list[dict], results_dir: Path) -> list[str]:
    """Copy each explained run's table and figures; a Markdown section with the mean ± sd of
    the shares over seeds per model, and the paper's numbers (docs/paper.md §6.2) beside them."""
    groups: dict[tuple, list] = {}
    for m in runs:
        found = sorted(Path(m["run_dir"]).glob("explain/*/contributions.json"))
        if not found:
            continue
        source, target = found[0].parent, results_dir / "explain" / m["run_subdir"]
        target.mkdir(parents=True, exist_ok=True)
        for file in EXPLAIN_FILES:
            if (source / file).is_file():
                with atomic_path(target / file) as tmp:
                    shutil.copyfile(source / file, tmp)
        overall = json.loads(found[0].read_text())["overall"]
        key = (m["dataset"], m["experiment"], m.get("variant", ""), m.get("protocol", "paper"),
               s3f_records.settings_key(m))  # fmt: skip
        groups.setdefault(key, []).append((m, overall))
    if not groups:
        return []
    columns = ("l2_spatial_%", "l2_spectral_%", "balanced_spatial_%", "balanced_spectral_%")
    rows, datasets = [], []
    for (dataset, _, _, protocol, _), members in sorted(groups.items()):
        m = members[0][0]
        cells = []
        for column in columns:
            values = np.array([overall[column] for _, overall in members], dtype=float)
            cells.append(
                f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"
                if len(values) > 1
                else f"{values[0]:.1f}"
            )
        link = f"explain/{members[0][0]['run_subdir']}"
        rows.append(
            f"| {dataset} | {_model_title(m)} | {protocol} | {len(members)} | "
            + " | ".join(cells)
            + f" | [bars]({link}/contributions_bar.png), [density]({link}/contributions_kde.png) |"
        )
        if dataset not in datasets:
            datasets.append(dataset)
    for dataset in datasets:
        paper = s3f_experiments.paper_contributions(dataset)
        if paper:
            rows.append(
                f"| {dataset} | **paper** (concat, SN{paper['spectranet']}) | paper | 1 | "
                f"{paper['l2_spatial']:.1f} | {paper['l2_spectral']:.1f} | "
                f"{paper['balanced_spatial']:.1f} | {paper['balanced_spectral']:.1f} | |"
            )
    return [
        "## Branch contributions of the S³F-Net runs (test split)",
        "",
        "Share of each branch in the fused vector (docs/paper.md §5): L2 = ‖v‖ / (‖s‖ + ‖p‖); "
        "balanced = ‖v‖/√d normalised, which compares a 512-d and a 4-d vector fairly. Mean ± sd "
        "over seeds. The paper's XAI notebook explained **concatenation** models "
        "(docs/paper.md §6.2; its rows are marked **paper**), so the sweep also trains and "
        "explains the concat variant where the paper's best model is bilinear. Per-class means, "
        "filter pictures and Grad-CAM maps are in each run's `explain/` folder.",
        "",
        "| dataset | model | protocol | runs | L2 spatial % | L2 spectral % | "
        "balanced spatial % | balanced spectral % | figures |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


# Run settings that name the run rather than set its recipe: the experiment, its data, the
# seed and fold (a row's runs differ in them), the protocol and model variant (a column of every
# table row), and where its files go.
NOT_RECIPE = frozenset({"experiment", "data_dir", "data_zip", "split_file", "seed", "fold",
                        "protocol", "fusion", "spectranet", "architecture"})  # fmt: skip


def paper_recipe(experiment: str) -> dict:
    """The settings of the paper's run of `experiment`: RunConfig with its Nones resolved as
    on real data (s3f_config, derived: the values live there and in the experiment registry)."""
    import dataclasses

    # any data_dir: a real-data run, not the demo's (resolving reads no file)
    config = dataclasses.replace(s3f_config.RunConfig(experiment=experiment), data_dir="data")
    return config.resolved().settings()


def _settings_line(runs: list[dict]) -> str:
    """The settings these runs were made with, each value once: the run-length and data
    settings a reader compares (s3f_config.shown()), and every other recipe value that differs
    from the paper's, with the paper's beside it: 'epochs=25 (paper: 200); …'."""
    differing: dict[str, set] = {}
    for m in runs:
        settings = m.get("run_settings") or {}
        if m["experiment"] not in s3f_experiments.EXPERIMENTS or not settings:
            continue  # your own data and the baselines: no paper recipe
        paper = paper_recipe(m["experiment"])
        for key, value in settings.items():
            if key in NOT_RECIPE or key in s3f_config.not_compared() or key not in paper:
                continue
            if value != paper[key]:
                differing.setdefault(key, set()).add(json.dumps(paper[key]))
    keys = [*s3f_config.shown(), *sorted(set(differing) - set(s3f_config.shown()))]
    parts = []
    for key in keys:
        values = {json.dumps((m.get("run_settings") or {}).get(key)) for m in runs}
        values.discard("null")
        if not values:
            continue
        part = f"{key}={' / '.join(sorted(values))}"
        if key in differing:
            paper = " / ".join(sorted(v if v != "null" else "the default" for v in differing[key]))
            part += f" (paper: {paper})"
        parts.append(part)
    return "; ".join(parts)


def _left_out_section(unusable, notes) -> list[str]:
    """The records the tables could not use, each with its reason, and repeated seeds."""
    if not unusable and not notes:
        return []
    lines = [f"**Left out: {len(unusable)} unusable record(s), {len(notes)} repeated run(s).**", ""]
    lines += [f"- `{item.path}`: {item.reason}" for item in unusable]
    lines += [f"- {note}" for note in notes]
    return [*lines, ""]


def _environment_line(runs: list[dict]) -> str:
    """Machine and versions of these runs (metrics.json 'environment'), each value once, and
    what another machine reproduces of them (README: 'What is reproducible')."""
    records = [m["environment"] for m in runs if isinstance(m.get("environment"), dict)]
    if not records:
        return "Machine and versions: not recorded in these runs' metrics.json."

    def values(key):
        return " / ".join(sorted({str(r.get(key)) for r in records}))

    deterministic = sum(bool(r.get("deterministic")) for r in records)
    line = (
        f"Machine and versions: {values('cpu')} ({values('cpu_isa')}, {values('cpu_cores')} "
        f"cores), {values('device')}; TensorFlow {values('tensorflow')}, Keras "
        f"{values('keras')}, NumPy {values('numpy')}, Python {values('python')}; oneDNN ISA "
        f"{values('onednn_max_cpu_isa')}, {values('intra_op_threads')} intra-op threads; "
    )
    if deterministic == len(records):
        return line + (
            "S3F_DETERMINISTIC=1: the same seeds at these versions give the same numbers on "
            "this CPU model, whatever its core count; another CPU model can give other numbers "
            "(measured: AMD EPYC vs Intel Xeon; README: 'What is reproducible')."
        )
    return line + (
        f"S3F_DETERMINISTIC set in {deterministic} of {len(records)} runs: the others "
        "reproduce only on a machine with the same CPU and core count."
    )


RESULT_FILES = (
    "the new results (README.md, the tables, the figures and metrics/; the previous ones are "
    "left as they were)"
)


def build_results(output, results_dir) -> pd.DataFrame:
    """Write summary.csv, runs.csv, README.md, confusion_<dataset>.png, metrics/…json and, where
    runs recorded them, calibration.csv and reliability_<dataset>.png from every finished run under
    `output`, all of them or none (a DiskFullError on a full disk); return the summary table."""
    results_dir = Path(results_dir)
    runs, unusable, notes = collect(output)
    for warning in [*(f"{item}; left out of the tables" for item in unusable), *notes]:
        warnings.warn(warning, stacklevel=2)
    frame = summary_frame(runs)
    frame.attrs.update(unusable=unusable, notes=notes, runs=len(runs))
    if frame.empty:
        print(f"no finished runs under {output}; results left as they were")
        return frame
    # all or nothing: a full disk midway leaves the previous results whole, not a mix
    with staged_folder(results_dir, RESULT_FILES) as staging:
        _write_results(output, staging, runs, frame)
    return frame


def _write_results(output, results_dir: Path, runs: list[dict], frame: pd.DataFrame) -> None:
    unusable, notes = frame.attrs["unusable"], frame.attrs["notes"]
    demo = any(m.get("demo_data") for m in runs)
    write_csv_atomic(results_dir / "summary.csv", frame, index=False)
    write_csv_atomic(results_dir / "runs.csv", runs_frame(runs), index=False)
    for m in runs:
        small = {k: v for k, v in m.items() if k not in ("skipped", "run_dir")}
        target = results_dir / "metrics" / f"{m['run_subdir']}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, json.dumps(small, indent=1))

    datasets = [d for d in [*s3f_experiments.RECIPES, "Custom"] if (frame["dataset"] == d).any()]
    titles = {dataset: _dataset_title(dataset, runs) for dataset in datasets}
    banner = DEMO_BANNER if demo else ""
    confusion = _confusion_figures(runs, results_dir, titles, banner)

    seeds = sorted({m.get("seed") for m in runs if m.get("seed") is not None})
    experiments = sorted({m["experiment"] for m in runs})
    minutes = sum(m.get("wall_time_s") or 0 for m in runs) / 60
    parts = ["# Results", ""]
    if demo:
        parts += [f"> **{DEMO_BANNER}**", ""]
    parts += [
        f"Test-set results of {len(runs)} finished run(s) found under `{Path(output).name}/`: "
        f"{len(experiments)} experiment(s), {len(frame)} experiment × variant × protocol "
        f"group(s), seed(s) {', '.join(map(str, seeds)) or '–'}; training took {minutes:.1f} min "
        "of wall time in all (notebook start-up and explainability runs come on top).",
        "",
        "At a glance, per dataset: each model's **primary metrics** (declared before the runs, "
        f"docs/analysis-plan.md: {_declared()}) as the mean over its runs with the 95 % "
        "interval `[low, high]` where there is one (else mean ± sd), the paper's number with "
        "Δ = ours − paper in brackets, and flags (runs that collapsed to one class or "
        "diverged); the last row, *majority class*, is the floor a model has to clear. Every "
        "metric, the settings, the machine and what each interval covers: "
        "[Details](#details); all columns: [`summary.csv`](summary.csv) (one row per group) "
        "and [`runs.csv`](runs.csv) (one per run).",
        "",
        *_left_out_section(unusable, notes),
    ]
    majority = majority_frame(runs)
    details = _details_intro(runs)
    for dataset in datasets:
        subset = frame[frame["dataset"] == dataset]
        floor = majority[majority["dataset"] == dataset] if len(majority) else majority
        parts += [f"## {titles[dataset]}", "", headline_table(subset, dataset, floor), ""]
        parts += s3f_data_identity.data_lines(runs, dataset)  # the copy read (issue 34)
        parts += [f"Every metric and the confusion matrices: [details](#{_anchor(dataset)}).", ""]
        details += [f"### {DETAILS_HEADING}{dataset}", "", f"{titles[dataset]}.", "",
                    _markdown_table(subset, dataset, floor), ""]  # fmt: skip
        if dataset in confusion:
            details += [f"![confusion matrices, {dataset}]({confusion[dataset]})", "",
                        "Each model's test predictions, its seeds summed.", ""]  # fmt: skip
    compared = {*s3f_experiments.EXPERIMENTS, *s3f_experiments.BASELINE_EXPERIMENTS,
                *s3f_experiments.CONTROL_EXPERIMENTS}  # fmt: skip
    paper_runs = [m for m in runs if m["experiment"] in compared]
    if paper_runs:  # the paper's claims, tested on these runs
        from s3f_kit.reports import claims as s3f_claims

        parts += s3f_claims.write_claims(paper_runs, results_dir)
    from s3f_kit.reports import results_calibration as s3f_results_calibration

    # Sections that add detail (calibration, branch contributions, and any later one) append to
    # `details`: the page opens with the headline tables and the claims, the rest follows.
    details += s3f_results_calibration.write_calibration(runs, results_dir, banner=banner)
    details += _explain_section(runs, results_dir)
    from s3f_kit.reports import results_ablation as s3f_results_ablation

    details += s3f_results_ablation.write_ablation(runs, results_dir)  # beside the shares
    from s3f_kit.reports import reproduction as s3f_reproduction

    # a page per run and one for the sweep to share (issue 34), linked from here
    details += s3f_reproduction.write_reports(
        runs, results_dir, environment=_environment_line(runs), settings=_settings_line(runs)
    )
    details += [
        "## Files",
        "",
        "Per-run metrics (every metric of docs/paper.md §4 and the per-class report): "
        "`metrics/<run folder>.json`; one row per run: [`runs.csv`](runs.csv); all columns of "
        "the groups: [`summary.csv`](summary.csv).",
        "",
    ]
    write_atomic(results_dir / "README.md", "\n".join([*parts, *details]))


def _dataset_title(dataset: str, runs: list[dict]) -> str:
    if dataset != "Custom":
        return s3f_experiments.DATASETS[dataset].title
    classes = ", ".join(next(m for m in runs if m["dataset"] == "Custom")["class_names"])
    return f"Your own data ({s3f_experiments.CUSTOM_EXPERIMENT}; classes {classes})"


# A dataset's details heading, '### Every metric: BUSI': its GitHub anchor is plain (the titles'
# ³, parentheses and semicolons slug differently from one renderer to the next).
DETAILS_HEADING = "Every metric: "


def _anchor(dataset: str) -> str:
    """The link target of a dataset's details heading."""
    return f"{DETAILS_HEADING}{dataset}".lower().replace(":", "").replace(" ", "-")


def _confusion_figures(runs: list[dict], results_dir: Path, titles: dict, banner: str) -> dict:
    """One confusion-matrix figure per dataset (a panel per model group, its seeds summed);
    {dataset: file name}."""
    from s3f_kit.reports import plots as s3f_plots

    entries: dict[str, list] = {}
    per_run = runs_frame(runs)
    labels = _settings_labels(per_run)
    for keys, group in per_run.groupby([*GROUP, "settings"], sort=False):
        members = [runs[i] for i in group.index]
        total = np.sum([np.array(m["confusion_matrix"]) for m in members], axis=0)
        dataset, name, variant, protocol, _ = keys
        title = "/".join(p for p in (name, variant, protocol if protocol != "paper" else "") if p)
        title += f" ({labels[keys]})" if labels[keys] else ""
        seeds = f", {len(group)} seeds summed" if len(group) > 1 else ""
        entries.setdefault(dataset, []).append(
            (
                f"{title}{seeds}\nacc {100 * np.trace(total) / total.sum():.1f}%",
                total.tolist(),
                members[0]["class_names"],
            )
        )
    written = {}
    for dataset, found in entries.items():
        written[dataset] = dataset_figure("confusion", dataset)
        title = f"{titles.get(dataset, dataset)}: confusion matrices"
        s3f_plots.confusion_grid(found, results_dir / written[dataset], banner, title)
    return written


def _details_intro(runs: list[dict]) -> list[str]:
    """The details section's opening: settings, machine and how every cell reads."""
    return [
        "## Details",
        "",
        f"Settings: {_settings_line(runs) or '–'}.",
        "",
        _environment_line(runs),
        "",
        "Cells are the mean ± sd over the seeds of a group. Paper numbers are those printed in "
        'the original notebooks for the paper\'s own model (variant "paper\'s"; "paper" '
        "protocol: the test set also served for checkpoint selection, early stopping and LR "
        'scheduling; "holdout" runs validate on a split of train instead, so they are honest '
        "estimates and expected to be lower). Δ = ours − paper. **Flags** mark runs whose "
        "predictions collapsed to one class or whose training diverged. Runs are pooled only "
        "when their recorded settings (seed aside) and data agree; a model run with other "
        "settings gets a row of its own that names the difference.",
        "",
        "Each dataset's table shows its **primary metrics** first (bold headers), then the "
        "paper's others. Its last row, *majority class*, always predicts the "
        "class most frequent in each run's training split, scored on that run's test split "
        "(from the class counts in metrics.json; mean over the runs): the floor a model has to "
        "clear.",
        "",
        "params and GFLOPs (one image's forward pass; s3f_flops.count_flops counts every "
        "model by the same rule) set the cost beside the accuracy; weights: what training "
        "started from (`weights_used` in metrics.json): random initialization for the paper's "
        "models, ImageNet or random (where ImageNet weights could not be fetched) for the "
        "standard deep baselines (Baseline_*, not in the paper).",
        "",
        "A cell of several seeds reads `mean ± sd (min–max)`; with at least "
        f"{s3f_stats.MIN_RUNS_FOR_INTERVAL} seeds (or cross-validation repetitions) it adds "
        "`[low, high]`, the 95 % interval of the mean from a two-level bootstrap (the seeds "
        "drawn with replacement × one stratified resample of the test images shared by every "
        "drawn seed, from the runs' predictions.csv), which covers training randomness and the "
        "test sample together; with fewer seeds no interval of the mean is given (its coverage "
        "falls short: docs/statistics.md). A single run (runs = 1) reads `value [low, high]`, "
        "its own 95 % interval over its test images (Wilson for accuracy, a stratified "
        "bootstrap for the others), which covers the test sample only, not training "
        "randomness. Every interval stays inside its metric's range; κ and MCC run from −1 to "
        "1, accuracy is in percent; the loss has no interval. Older records without intervals "
        "show the bare number. Bounds: the `*_ci_low` / `*_ci_high` columns of summary.csv and "
        "runs.csv; what each row's interval is: the `interval` column.",
        "",
    ]


def terminal_summary(frame: pd.DataFrame, results_dir) -> str:
    """A few lines for the terminal: one per group (accuracy, runs, seeds), what was left out,
    and where the full tables are."""
    unusable, notes = frame.attrs.get("unusable", []), frame.attrs.get("notes", [])
    lines = [f"{frame.attrs.get('runs', 0)} run(s) in {len(frame)} group(s):"] if len(frame) else []
    for _, row in frame.iterrows():
        name = "/".join(p for p in (row["experiment"], row["variant"]) if p)
        name += "" if row["protocol"] == "paper" else f" ({row['protocol']})"
        name += f" [{row['settings']}]" if row["settings"] else ""
        lines.append(
            f"  {name}: accuracy {_cell(row, 'accuracy_%', 2)} %, {row['n_runs']} run(s)"
            + (f", seeds {row['seeds']}" if row["seeds"] else "")
            + (f" × {row['folds']} folds" if row.get("folds") else "")
            + (f"  {row['flags']}" if row["flags"] else "")
        )
    if unusable:
        lines.append(f"{len(unusable)} record(s) left out:")
        lines += [f"  {item}" for item in unusable]
    if notes:
        lines.append(f"{len(notes)} repeated run(s) counted once:")
        lines += [f"  {note}" for note in notes]
    if len(frame):
        lines.append(f"tables and figures in {results_dir} (README.md, summary.csv, runs.csv)")
    return "\n".join(lines)


USAGE_NOTES = """\
    s3f-results runs/demo results/

Finds every metrics.json under RUNS_DIR (any depth: one folder per experiment, model variant,
protocol and seed), groups the runs by experiment × variant × protocol and writes, to
RESULTS_DIR: README.md (per dataset a headline table of the primary metrics with their
intervals beside the paper's numbers, then the claims, details, calibration and branch
ablation), summary.csv, runs.csv, claims.csv, the figures and a reproduction report per run.
A single run's cell carries its interval over the test images; several seeds show mean ± sd
and, from 5 seeds on, the two-level bootstrap interval of the mean (docs/statistics.md).
Collapsed or diverged runs are flagged; demo-data runs are labelled as such everywhere.
"""


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="s3f-results",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=USAGE_NOTES,  # the user's story; the module docstring is the maintainer's
    )
    parser.add_argument("runs_dir", help="folder of run folders (searched at any depth)")
    parser.add_argument("results_dir", help="where README.md, the tables and figures go")
    args = parser.parse_args(argv)
    if not Path(args.runs_dir).is_dir():
        print(f"s3f-results: {args.runs_dir}: no such folder", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():  # the summary lists them once, below
            warnings.simplefilter("ignore", UserWarning)
            frame = build_results(args.runs_dir, args.results_dir)
    except OSError as error:  # a full disk (DiskFullError), a read-only results folder
        print(f"s3f-results: {error}", file=sys.stderr)
        return 2
    print(terminal_summary(frame, args.results_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
