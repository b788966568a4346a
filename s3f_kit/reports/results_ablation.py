"""The results README's branch-ablation section: which branch do the S³F-Nets' decisions use?

    lines = write_ablation(runs, results_dir)   # ablation.csv; Markdown

One row per S³F-Net model (the groups of the results tables: experiment × variant × protocol ×
settings) whose runs recorded `ablation` (s3f_kit.run.ablation has its shape): the test
accuracy lost when one branch's vectors are permuted across the test images, for each branch,
and each branch's linear-probe accuracy, mean ± sd over seeds (a single run: its own 95 %
interval over the test images). It stands beside the paper's norm-based contribution shares,
which say how large each branch's vector is, not whether the head uses it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from data_setup.files import write_csv_atomic
from s3f_kit.reports import results_tables as s3f_results_tables
from s3f_kit.reports import stats as s3f_stats

BRANCHES = ("spatial", "spectral")  # s3f_kit.run.ablation.BRANCHES (run imports reports)
DROPS = ("accuracy", "macro_f1", "roc_auc")
GROUP_KEYS = s3f_results_tables.SETTINGS_GROUP


def _groups(runs: list[dict]):
    return s3f_results_tables.groups_with(runs, "ablation")


def _mean_sd(values) -> tuple[float, float]:
    described = s3f_stats.describe(values)  # a null (e.g. no AUC) is left out
    return described["mean"], described["sd"]


def ablation_frame(runs: list[dict]) -> pd.DataFrame:
    """One row per model: the intact accuracy, each branch's drops when permuted and its probe
    accuracy (mean and sd over seeds; a single run's interval as *_ci_low / *_ci_high)."""
    rows = []
    for keys, label, members in _groups(runs):
        records = [m["ablation"] for m in members]
        row = {**{k: keys[k] for k in s3f_results_tables.GROUP}, "settings": label,
               "model": s3f_results_tables._model_title(members[0]), "n_runs": len(members),
               "permutations": records[0]["permutations"],
               "test_images": records[0]["test_images"]}  # fmt: skip
        row["intact_accuracy"], row["intact_accuracy_sd"] = _mean_sd(
            [r["intact"]["accuracy"] for r in records]
        )
        for branch in BRANCHES:
            entries = [r[branch] for r in records]
            for metric in DROPS:
                key, column = f"{metric}_drop", f"{branch}_{metric}_drop"
                row[column], row[f"{column}_sd"] = _mean_sd([e[key] for e in entries])
                low, high = entries[0].get(f"{key}_ci", [None, None])
                single = len(entries) == 1 and None not in (low, high)
                row[f"{column}_ci_low"] = low if single else math.nan
                row[f"{column}_ci_high"] = high if single else math.nan
            row[f"{branch}_probe_accuracy"], row[f"{branch}_probe_accuracy_sd"] = _mean_sd(
                [e.get("probe_accuracy") for e in entries]
            )
        row["majority_accuracy"] = _mean_sd([r["majority_accuracy"] for r in records])[0]
        rows.append(row)
    return pd.DataFrame(rows)


def _percent(row, key: str, signed: bool = False) -> str:
    """A row's value in percent: `v [low, high]` for one run, `mean ± sd` for several."""
    value, sd = row[key], row.get(f"{key}_sd", math.nan)
    if pd.isna(value):
        return "–"
    form = "+.1f" if signed else ".1f"
    text = f"{100 * value:{form}}"
    low, high = row.get(f"{key}_ci_low", math.nan), row.get(f"{key}_ci_high", math.nan)
    if row["n_runs"] == 1 and not (pd.isna(low) or pd.isna(high)):
        return text + f" [{100 * low:{form}}, {100 * high:{form}}]"
    return text + ("" if pd.isna(sd) else f" ± {100 * sd:.1f}")


def markdown_table(frame: pd.DataFrame) -> list[str]:
    header = ("| dataset | model | variant | protocol | runs | accuracy % | drop, spatial "
              "permuted (pp) | drop, spectral permuted (pp) | probe spatial % | probe spectral "
              "% | majority % |")  # fmt: skip
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for _, row in frame.iterrows():
        variant = row["variant"] or "paper's"
        variant += f" ({row['settings']})" if row["settings"] else ""
        cells = [row["dataset"], row["model"], variant, row["protocol"], str(row["n_runs"]),
                 _percent(row, "intact_accuracy"),
                 *(_percent(row, f"{b}_accuracy_drop", signed=True) for b in BRANCHES),
                 *(_percent(row, f"{b}_probe_accuracy") for b in BRANCHES),
                 f"{100 * row['majority_accuracy']:.1f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_ablation(runs: list[dict], results_dir) -> list[str]:
    """ablation.csv in results_dir; the README's Markdown section (empty when no run recorded
    an ablation: baselines, single branches, records older than it)."""
    frame = ablation_frame(runs)
    if frame.empty:
        return []
    write_csv_atomic(Path(results_dir) / "ablation.csv", frame, index=False, float_format="%.6g")
    first = next(m["ablation"] for m in runs if isinstance(m.get("ablation"), dict))
    return [
        "## Which branch the decisions depend on (permutation ablation, test split)",
        "",
        "The contribution shares above compare the sizes of the branch vectors; they do not say "
        "whether the head uses them. Here each branch's vectors are permuted across the test "
        f"images ({first['permutations']} permutations; every image keeps its own vector of the "
        "other branch) and the fusion and head are run again: the *drop* is the intact "
        "accuracy minus the mean over the permutations, in percentage points (a single run: "
        "its 95 % interval, a stratified bootstrap over the test images, paired; several "
        "seeds: mean ± sd). A branch the decisions do not use loses nothing. Permuting means "
        "the same under both fusions, where filling in a mean would not (bilinear fusion "
        "multiplies the branches and L2-normalises). *Probe*: the test accuracy of a logistic "
        "regression fitted on the training images' frozen vectors of that branch alone; "
        "*majority*: always the training split's most common class. Macro-F1 and AUC drops "
        "and every bound: [`ablation.csv`](ablation.csv).",
        "",
        *markdown_table(frame),
        "",
    ]
