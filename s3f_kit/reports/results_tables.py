"""The results' data: every finished run's record (checked by s3f_records) as one row of
runs.csv, and the groups of runs (experiment × variant × protocol × settings) as summary.csv
rows with mean ± sd and intervals beside the paper's numbers. s3f_results writes them, and the
README tables and figures, into results/.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from s3f_kit import config as s3f_config
from s3f_kit import experiments as s3f_experiments
from s3f_kit.reports import records as s3f_records
from s3f_kit.reports import stats as s3f_stats
from s3f_kit.run_record import RunRecord

DEMO_BANNER = (
    "SYNTHETIC DEMO DATA — these numbers test the pipeline end to end; they say nothing about "
    "the paper's datasets."
)
# metric key in metrics.json → column name; accuracy is shown in percent.
METRICS = {
    "accuracy": "accuracy_%",
    "weighted_f1": "weighted_f1",
    "macro_f1": "macro_f1",
    "cohen_kappa": "cohen_kappa",
    "mcc": "mcc",
    "roc_auc": "roc_auc",
    "loss": "loss",
    # the datasets' primary metrics beside the paper's (DatasetInfo.primary_metrics): derived
    # from the record's confusion matrix where it does not hold them
    "balanced_accuracy": "balanced_accuracy",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
}
# What a record's confusion matrix gives where the record has no value of its own.
FROM_CONFUSION = ("balanced_accuracy", "sensitivity", "specificity")
GROUP = ["dataset", "experiment", "variant", "protocol"]


def dataset_figure(kind: str, dataset: str) -> str:
    """The file name of a per-dataset results figure: 'confusion_BUSI.png' (one figure per
    dataset keeps every panel legible at page width, issue 36.3)."""
    return f"{kind}_{dataset}.png"


def collect(output) -> tuple[list[dict], list[s3f_records.Unusable], list[str]]:
    """Every usable finished run under `output` (recursive), each record plus run_subdir
    (relative POSIX path) and run_dir; every unusable metrics.json with its reason; and a note
    for each run left out because the same settings and seed were already counted."""
    output = Path(output)
    runs, unusable = [], []
    for path in sorted(output.rglob("metrics.json")):
        metrics, reason = s3f_records.read(path)
        name = metrics.get("experiment") if isinstance(metrics, dict) else None
        if isinstance(name, str) and not known_experiment(name):
            continue  # e.g. a pretrained-release evaluation: not a sweep run
        reason = reason or s3f_records.problem(metrics)
        if not reason:
            try:  # every declared key present from here on (older records: their defaults)
                metrics = RunRecord.from_json(metrics).as_json()
            except ValueError as error:
                reason = str(error)
        if reason:
            unusable.append(s3f_records.Unusable(path, reason))
            continue
        settings = metrics.get("run_settings") or {
            k: metrics.get(k) for k in ("fusion", "spectranet", "protocol", "seed")
        }
        if metrics["variant"] is None:  # a record older than variant names
            metrics["variant"] = s3f_config.variant_name(metrics["experiment"], settings)
        metrics["run_subdir"] = path.parent.relative_to(output).as_posix()
        metrics["run_dir"] = str(path.parent)
        runs.append(metrics)
    runs, notes = s3f_records.drop_repeated_seeds(runs)
    return runs, unusable, notes


def collect_runs(output) -> list[dict]:
    """The usable runs of `collect`; each unusable record and repeated seed is a warning."""
    runs, unusable, notes = collect(output)
    for item in unusable:
        warnings.warn(f"{item}; left out of the tables", stacklevel=2)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return runs


def known_experiment(name: str) -> bool:
    """In the registry now (read when asked: a dataset registered later has experiments too)."""
    return (
        name in s3f_experiments.EXPERIMENTS
        or name == s3f_experiments.CUSTOM_EXPERIMENT
        or name in s3f_experiments.BASELINE_EXPERIMENTS
        or name in s3f_experiments.CONTROL_EXPERIMENTS
    )


def _experiment(m: dict):
    """The registry entry of a run (your own data: built from its recorded architecture)."""
    if m["experiment"] == s3f_experiments.CUSTOM_EXPERIMENT:
        return s3f_experiments.custom_experiment(m.get("architecture") or "s3f")
    return s3f_experiments.get_experiment(m["experiment"])


def paper_numbers(experiment: str) -> dict:
    """The paper's test metrics keyed like metrics.json (accuracy as a fraction)."""
    if s3f_experiments.get_experiment(experiment).paper is None:
        return {}  # your own data, a baseline: nothing printed to compare with
    full = getattr(s3f_experiments, "paper_metrics", None)
    numbers = dict(full(experiment)) if full else {}
    paper = s3f_experiments.EXPERIMENTS[experiment].paper
    numbers.setdefault("accuracy", paper.accuracy / 100)
    numbers.setdefault("weighted_f1", paper.weighted_f1)
    numbers.setdefault("macro_f1", paper.macro_f1)
    if "roc_auc" not in numbers and "roc_auc_macro" in numbers:
        numbers["roc_auc"] = numbers["roc_auc_macro"]
    if numbers.get("accuracy", 0) > 1:  # a percentage
        numbers["accuracy"] /= 100
    return numbers


def _value(metrics: dict, key: str):
    value = metrics.get(key)
    if key == "roc_auc" and value is None:
        value = metrics.get("roc_auc_macro")
    if key in FROM_CONFUSION and value is None and metrics.get("confusion_matrix"):
        confusion = np.asarray(metrics["confusion_matrix"], dtype=float)[None]
        with np.errstate(invalid="ignore", divide="ignore"):
            value = float(s3f_stats.confusion_metrics(confusion)[key][0])
    if value is None:
        return np.nan
    return 100 * value if key == "accuracy" else float(value)


def _bootstrap(metrics: dict, key: str) -> tuple[float, float]:
    """The run's own 95 % bootstrap interval of one metric (table units), NaN where the record
    has none (older runs, the loss)."""
    entry = (metrics.get("intervals") or {}).get(key)
    if not entry or entry.get("ci_low") is None or entry.get("ci_high") is None:
        return np.nan, np.nan
    scale = 100 if key == "accuracy" else 1
    return scale * float(entry["ci_low"]), scale * float(entry["ci_high"])


def _model_title(m: dict) -> str:
    exp = _experiment(m)
    architecture = m.get("architecture") or exp.architecture
    if architecture in ("s3f", s3f_experiments.CONTROL_ARCHITECTURE):
        fusion, spectranet = m.get("fusion") or exp.fusion, m.get("spectranet") or exp.spectranet
        kind = "S³F-Net" if architecture == "s3f" else "Matched spatial control"
        return f"{kind} ({fusion}, SN{spectranet})"
    if exp.architecture == "spectranet":
        return f"SpectraNet-{m.get('spectranet') or exp.spectranet}"
    return exp.model_title


def runs_frame(runs: list[dict]) -> pd.DataFrame:
    """One row per run."""
    rows = []
    for m in runs:
        exp = _experiment(m)
        row = {
            "dataset": m.get("dataset") or exp.dataset,
            "experiment": exp.name,
            "variant": m["variant"],
            "protocol": m["protocol"],
            "seed": m.get("seed"),
            "fold": s3f_records.repeat_key(m)[1],
            "folds": (m.get("run_settings") or {}).get("folds") or 0,
            "test_fraction": s3f_records.test_fraction(m),
            "settings": s3f_records.settings_key(m),
            "run_subdir": m["run_subdir"],
            "model": _model_title(m),
            "data": "synthetic demo" if m.get("demo_data") else "real",
            "params": m["params"],
            "flops": m.get("flops"),  # older records: none
            "weights": m.get("weights_used") or "",
            "image_size": "×".join(map(str, m.get("image_size") or [])),
            "epochs_run": m.get("epochs_run"),
            "best_epoch": m.get("best_epoch"),
            "wall_time_s": m.get("wall_time_s"),
            "skipped_files": m.get("skipped_files", 0),
            "collapsed": bool(m.get("collapsed", False)),
            "diverged": bool(m.get("diverged", False)),
        }
        for key, column in METRICS.items():
            row[column] = _value(m, key)
            row[f"{column}_ci_low"], row[f"{column}_ci_high"] = _bootstrap(m, key)
        rows.append(row)
    return pd.DataFrame(rows)


def _weights(group: pd.DataFrame) -> str:
    """What a group's runs started from: 'imagenet', or 'imagenet 2/3, random 1/3' when some
    could not fetch ImageNet weights ('' for older records)."""
    counts = group["weights"][group["weights"] != ""].value_counts()
    if len(counts) <= 1:
        return counts.index[0] if len(counts) else ""
    return ", ".join(f"{name} {count}/{len(group)}" for name, count in counts.items())


def _flags(group: pd.DataFrame) -> str:
    flags = []
    for flag in ("collapsed", "diverged"):
        count = int(group[flag].sum())
        if count:
            flags.append(f"⚠ {flag} {count}/{len(group)}")
    for column in METRICS.values():  # a metric missing or NaN in some runs: mean of the others
        count = int(group[column].notna().sum())
        if 0 < count < len(group):
            flags.append(f"{column} from {count}/{len(group)} runs")
    return "; ".join(flags)


def _settings_labels(per_run: pd.DataFrame) -> dict:
    """settings key → what sets it apart from the other settings of its experiment × variant ×
    protocol ('epochs=50'), or '' where that model has one set of settings only."""
    labels = {}
    for _, family in per_run.groupby(GROUP, sort=False):
        keys = list(dict.fromkeys(family["settings"]))
        differing = s3f_records.differing_settings(keys)
        for index, key in enumerate(keys):
            values = {name: column[index] for name, column in differing.items()}
            labels[(*family.iloc[0][GROUP], key)] = s3f_records.describe_settings(values)
    return labels


SETTINGS_GROUP = [*GROUP, "settings"]  # a model group: GROUP, split by differing settings


def groups_with(runs: list[dict], key: str) -> list:
    """(key columns, settings label, member records) per model group, over the runs whose
    record holds a `key` section (calibration, ablation): the sections' tables group alike."""
    runs = [m for m in runs if isinstance(m.get(key), dict)]
    if not runs:
        return []
    per_run = runs_frame(runs)
    labels = _settings_labels(per_run)
    return [
        (dict(zip(SETTINGS_GROUP, keys, strict=True)), labels[keys],
         [runs[i] for i in group.index])
        for keys, group in per_run.groupby(SETTINGS_GROUP, sort=False)
    ]  # fmt: skip


# What the [low, high] of a table cell is: one run's sampling uncertainty over its test images,
# or the uncertainty of the mean over seeds (training randomness and test images together),
# given only where there are enough seeds to support it (s3f_stats.MIN_RUNS_FOR_INTERVAL).
INTERVAL_KINDS = {
    "one run": "95 % interval over the test images (one run): Wilson for accuracy, stratified "
    "bootstrap for the others",
    "seeds": "95 % two-level bootstrap of the mean (seeds × test images)",
    "folds": "95 % two-level bootstrap of the mean (repetitions, each with its folds × test "
    "images)",
    "too few": f"no interval of the mean: fewer than {s3f_stats.MIN_RUNS_FOR_INTERVAL} seeds "
    "(mean, sd and min–max)",
    "no predictions": "no interval of the mean: a run's predictions.csv cannot be used",
}
# The metrics an interval is computed for (the loss has no range and gets none).
INTERVAL_COLUMNS = {key: METRICS[key] for key in s3f_stats.INTERVAL_METRICS}


def _units(members: list[dict]) -> list[list[dict]]:
    """A group's runs by seed: one run each, or a cross-validation repetition's folds."""
    by_seed: dict = {}
    for m in members:
        by_seed.setdefault(m.get("seed"), []).append(m)
    return list(by_seed.values())


def _group_intervals(group: pd.DataFrame, members: list[dict]) -> tuple[str, dict]:
    """(kind, {column: (low, high)}): a single run's own interval; with enough seeds the
    two-level bootstrap of the mean (s3f_stats.across_runs) over the runs' predictions.csv;
    else none."""
    if len(group) == 1:
        first = group.iloc[0]
        return "one run", {
            c: (first[f"{c}_ci_low"], first[f"{c}_ci_high"]) for c in METRICS.values()
        }
    units = _units(members)
    if len(units) < s3f_stats.MIN_RUNS_FOR_INTERVAL:
        return "too few", {}
    predictions = []
    for unit in units:
        read = [s3f_records.read_predictions(m) for m in unit]
        if any(found is None for found, _ in read):
            return "no predictions", {}
        predictions.append([found for found, _ in read])
    try:
        across = s3f_stats.across_runs(predictions, tuple(INTERVAL_COLUMNS))
    except ValueError:  # the runs' files disagree on an image's class: not one data set
        return "no predictions", {}
    bounds = {}
    for key, column in INTERVAL_COLUMNS.items():
        scale = s3f_stats.display_scale(key)
        bounds[column] = (scale * across[key]["ci_low"], scale * across[key]["ci_high"])
    return ("folds" if group["folds"].max() > 1 else "seeds"), bounds


def summary_frame(runs: list[dict]) -> pd.DataFrame:
    """One row per experiment × variant × protocol × recorded settings (runs that differ in
    anything but their seed and cross-validation fold are never pooled): mean and sd over
    seeds (or folds × seeds), paper, Δ."""
    per_run = runs_frame(runs)
    if per_run.empty:
        return per_run
    labels = _settings_labels(per_run)
    rows = []
    for keys, group in per_run.groupby([*GROUP, "settings"], sort=False):
        first = group.iloc[0]
        row = dict(zip(GROUP, keys[:-1], strict=True))
        row.update(
            settings=labels[keys],
            model=first["model"],
            data=first["data"],
            n_runs=len(group),
            seeds=" ".join(str(s) for s in sorted(set(group["seed"].dropna().astype(int)))),
            folds=int(group["folds"].max()) or "",
        )
        # The paper reports one run of its own model; other variants have no paper number.
        paper = paper_numbers(first["experiment"]) if row["variant"] == "" else {}
        kind, intervals = _group_intervals(group, [runs[i] for i in group.index])
        for key, column in METRICS.items():
            described = s3f_stats.describe(group[column].tolist())
            mean = described["mean"]
            row[column] = round(mean, 4)
            for name in ("sd", "min", "max"):
                row[f"{column}_{name}"] = round(described[name], 4) if len(group) > 1 else np.nan
            target = _value(paper, key) if paper else np.nan
            row[f"paper_{column}"] = target
            row[f"diff_{column}"] = round(mean - target, 4)
            low, high = intervals.get(column, (np.nan, np.nan))
            row[f"{column}_ci_low"], row[f"{column}_ci_high"] = round(low, 4), round(high, 4)
        row["interval"] = INTERVAL_KINDS[kind]
        row.update(
            params=int(first["params"]),
            paper_params=_experiment(first).params or None,
            flops=first["flops"],
            weights=_weights(group),
            image_size=first["image_size"],
            epochs_run=round(group["epochs_run"].mean(), 1),
            best_epoch=round(group["best_epoch"].mean(), 1),
            wall_time_s=round(group["wall_time_s"].sum(), 1),
            skipped_files=int(group["skipped_files"].max()),
            flags=_flags(group),
        )
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- majority class

MAJORITY_MODEL = "majority class"


def majority_metrics(record: dict) -> dict | None:
    """{metric key: value} of always predicting the training split's majority class on the
    run's test split, from the class counts metrics.json records ('counts'); None where the
    record has none. The same definitions as every run's metrics (s3f_stats.metrics_of): a
    constant score ranks no pair, so its AUC is 0.5."""
    counts = record.get("counts") or {}
    train, test = counts.get("train"), counts.get("test")
    names = record.get("class_names") or []
    if not isinstance(train, dict) or not isinstance(test, dict) or not names:
        return None
    sizes = np.array([int(test.get(name, 0)) for name in names])
    if sizes.sum() == 0:
        return None
    majority = int(np.argmax([int(train.get(name, 0)) for name in names]))  # ties: first class
    labels = np.repeat(np.arange(len(names)), sizes)
    predicted = np.full(len(labels), majority)
    probs = np.eye(len(names))[predicted]
    with np.errstate(invalid="ignore", divide="ignore"):
        values = s3f_stats.metrics_of(labels, predicted, probs, np.ones((1, len(labels))))
    found = {key: float(value[0]) for key, value in values.items()}
    found["majority"] = names[majority]
    return found


def majority_frame(runs: list[dict]) -> pd.DataFrame:
    """One row per dataset × protocol × cross-validation setting: the mean over its runs of
    the majority-class metrics (table units), the class(es) predicted and how many runs."""
    rows = []
    for m in runs:
        found = majority_metrics(m)
        if found is None:
            continue
        row = {
            "dataset": m.get("dataset") or _experiment(m).dataset,
            "protocol": m["protocol"],
            "folds": (m.get("run_settings") or {}).get("folds") or 0,
            "majority": found.pop("majority"),
        }
        for key, value in found.items():
            row[METRICS[key]] = value * s3f_stats.display_scale(key)
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    keys = ["dataset", "protocol", "folds"]
    columns = [METRICS[key] for key in s3f_stats.INTERVAL_METRICS]
    summary = frame.groupby(keys, sort=False)[columns].mean().reset_index()
    summary["majority"] = list(frame.groupby(keys, sort=False)["majority"]
                               .agg(lambda names: " / ".join(sorted(set(names)))))  # fmt: skip
    summary["n_runs"] = list(frame.groupby(keys, sort=False).size())
    return summary
