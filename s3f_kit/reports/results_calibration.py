"""The results README's calibration section: do the models' probabilities mean anything?

    lines = write_calibration(runs, results_dir)   # calibration.csv, reliability_<dataset>.png

One row per model (the groups of the results tables: experiment × variant × protocol × settings):
NLL, the multi-class Brier score and ECE of the test split, mean ± sd over seeds, and the same
after temperature scaling where it was fitted (on the validation split: holdout runs only; the
paper protocol has none apart from the test split). Each dataset's figure has one reliability
panel per model; a model's seeds are pooled bin by bin (count-weighted), which is the reliability
diagram of all its seeds' test predictions together.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from data_setup.files import write_csv_atomic
from s3f_kit.reports import results_tables as s3f_results_tables
from s3f_kit.reports import stats as s3f_stats

SCORES = ("nll", "brier", "ece")
GROUP_KEYS = s3f_results_tables.SETTINGS_GROUP


def _groups(runs: list[dict]):
    return s3f_results_tables.groups_with(runs, "calibration")


def _scaled(m: dict) -> dict | None:
    """The run's temperature-scaling record where a temperature was fitted, else None."""
    scaling = m["calibration"].get("temperature_scaling") or {}
    return scaling if "after" in scaling else None


def _mean_sd(values) -> tuple[float, float]:
    described = s3f_stats.describe(values)
    return described["mean"], described["sd"]


def calibration_frame(runs: list[dict], groups=None) -> pd.DataFrame:
    """One row per model: scores before and after temperature scaling, mean and sd over the
    seeds whose records have them."""
    rows = []
    for keys, label, members in _groups(runs) if groups is None else groups:
        first = members[0]
        row = {**{k: keys[k] for k in s3f_results_tables.GROUP}, "settings": label,
               "model": s3f_results_tables._model_title(first), "n_runs": len(members)}  # fmt: skip
        row["seeds"] = " ".join(str(m["seed"]) for m in members if m.get("seed") is not None)
        for score in SCORES:
            row[score], row[f"{score}_sd"] = _mean_sd([m["calibration"][score] for m in members])
        fitted = [_scaled(m) for m in members if _scaled(m)]
        row["n_scaled"] = len(fitted)
        row["temperature"], row["temperature_sd"] = _mean_sd([f["temperature"] for f in fitted])
        for score in SCORES:
            row[f"{score}_after"], row[f"{score}_after_sd"] = _mean_sd(
                [f["after"][score] for f in fitted]
            )
        status = (first["calibration"].get("temperature_scaling") or {}).get("status", "")
        row["scaling"] = "fitted on the validation split" if fitted else status
        rows.append(row)
    return pd.DataFrame(rows)


def pooled_bins(reliabilities: list[dict]) -> list[dict] | None:
    """Several runs' reliability bins as one: counts summed, confidence and accuracy weighted by
    count. None when the runs were binned differently."""
    edges = {tuple((b["low"], b["high"]) for b in r["bins"]) for r in reliabilities}
    if len(edges) != 1:
        return None
    pooled = []
    for column in zip(*(r["bins"] for r in reliabilities), strict=True):
        row = {"low": column[0]["low"], "high": column[0]["high"]}
        row["count"] = sum(b["count"] for b in column)
        if row["count"]:
            for key in ("confidence", "accuracy"):
                row[key] = sum(b["count"] * b[key] for b in column if b["count"]) / row["count"]
        pooled.append(row)
    return pooled


def _pooled_calibration(members: list[dict], row: dict) -> dict | None:
    """A run-shaped calibration record of a whole group: pooled bins, mean scores."""
    bins = pooled_bins([m["calibration"]["reliability"] for m in members])
    if not bins:
        return None
    binning = members[0]["calibration"]["reliability"].get("binning", "")
    calibration = {"nll": row["nll"], "ece": row["ece"],
                   "reliability": {"bins": bins, "binning": binning}}  # fmt: skip
    fitted = [_scaled(m) for m in members if _scaled(m)]
    after = pooled_bins([f["after"]["reliability"] for f in fitted]) if fitted else None
    if after:
        calibration["temperature_scaling"] = {
            "temperature": row["temperature"],
            "after": {"nll": row["nll_after"], "ece": row["ece_after"],
                      "reliability": {"bins": after, "binning": binning}},
        }  # fmt: skip
    return calibration


def _title(row) -> str:
    variant = row["variant"] or "paper's"
    if row["settings"]:
        variant += f", {row['settings']}"
    return f"{row['model']}\n{row['experiment']} ({variant}; {row['protocol']})"


def figure_entries(groups, frame: pd.DataFrame) -> dict[str, list[tuple]]:
    """{dataset: [(panel title, pooled calibration, seeds note)]} per model of
    `calibration_frame`: one figure per dataset keeps its panels legible (issue 36.3)."""
    entries: dict[str, list[tuple]] = {}
    for (_, _, members), (_, row) in zip(groups, frame.iterrows(), strict=True):
        calibration = _pooled_calibration(members, row)
        if calibration:
            seeds = f", mean of {len(members)} seeds" if len(members) > 1 else ""
            entries.setdefault(row["dataset"], []).append((_title(row), calibration, seeds))
    return entries


def _cell(row, key: str) -> str:
    mean, sd = row[key], row.get(f"{key}_sd", math.nan)
    if pd.isna(mean):
        return "–"
    return f"{mean:.3f}" + ("" if pd.isna(sd) else f" ± {sd:.3f}")


def markdown_table(frame: pd.DataFrame) -> list[str]:
    header = ("| dataset | model | variant | protocol | runs | NLL | Brier | ECE | temperature | "
              "NLL after | Brier after | ECE after |")  # fmt: skip
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for _, row in frame.iterrows():
        variant = row["variant"] or "paper's"
        variant += f" ({row['settings']})" if row["settings"] else ""
        if row["n_scaled"]:
            scaled = [_cell(row, "temperature"), *(_cell(row, f"{s}_after") for s in SCORES)]
            if row["n_scaled"] < row["n_runs"]:
                scaled[0] += f" ({row['n_scaled']}/{row['n_runs']} runs)"
        else:
            why = " (paper protocol)" if row["protocol"] == "paper" else ""
            scaled = [f"not fitted{why}", "–", "–", "–"]
        cells = [row["dataset"], row["model"], variant, row["protocol"], str(row["n_runs"]),
                 *(_cell(row, s) for s in SCORES), *scaled]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_calibration(runs: list[dict], results_dir, banner: str = "") -> list[str]:
    """calibration.csv and reliability_<dataset>.png in results_dir; the README's Markdown
    section (empty when no run recorded its calibration)."""
    from s3f_kit.reports import plots as s3f_plots

    results_dir = Path(results_dir)
    groups = _groups(runs)
    frame = calibration_frame(runs, groups)
    if frame.empty:
        return []
    write_csv_atomic(results_dir / "calibration.csv", frame, index=False, float_format="%.6g")
    entries = figure_entries(groups, frame)
    order = [*s3f_results_tables.s3f_experiments.RECIPES]  # the tables' order of datasets
    figures = {}
    for dataset, panels in sorted(entries.items(), key=lambda item: (
            order.index(item[0]) if item[0] in order else len(order))):  # fmt: skip
        figures[dataset] = s3f_results_tables.dataset_figure("reliability", dataset)
        s3f_plots.reliability_grid(panels, results_dir / figures[dataset], banner=banner,
                                   title=f"{dataset}: reliability")  # fmt: skip
    without = sum(1 for m in runs if not isinstance(m.get("calibration"), dict))
    binning = sorted({m["calibration"]["reliability"].get("binning", "") for m in runs
                      if isinstance(m.get("calibration"), dict)})  # fmt: skip
    lines = [
        "## Calibration (test split)",
        "",
        "Do the predicted probabilities mean what they say? NLL (negative log-likelihood of the "
        "true class) and the multi-class Brier score are proper scoring rules (lower is better); "
        f"ECE is the top-label expected calibration error ({', '.join(binning)}). Mean ± sd "
        "over the seeds of a model. *After*: with a temperature fitted on the validation split "
        "(holdout runs only: under the paper protocol the validation data is the test split, so "
        "nothing is fitted).",
        "",
        *markdown_table(frame),
        "",
    ]
    if without:
        lines += [f"{without} run(s) recorded no calibration (older records); not in this table.",
                  ""]  # fmt: skip
    if figures:
        lines += [
            *(f"![reliability diagrams, {dataset}]({name})" for dataset, name in figures.items()),
            "",
            "One figure per dataset, one panel per model: accuracy against the confidence of the "
            "predicted class per bin, a model's seeds pooled; grey bars, the share of test "
            "images in each bin; the dotted diagonal is perfect calibration. Each run's own "
            "diagram: `reliability.png` in its run folder.",
            "",
        ]
    return lines
