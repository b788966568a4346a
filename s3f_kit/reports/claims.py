"""Do the paper's claims hold? One row per claim, tested on the kit's seeded runs.

    lines = write_claims(runs, results_dir)   # results/claims.csv, claims_forest.png,
                                              # seed_accuracy.png; Markdown for the README

Each claim compares two models of one dataset on the *same test images* (same protocol and
seed → same split; cross-validation: same fold and seed). Its Δ accuracy, interval and p come
from one procedure: a paired two-level bootstrap (the seeds drawn with replacement, each with
its folds, × one stratified resample of the test images applied to both models of every drawn
seed), whose percentile interval at the Bonferroni level 1 − α/m and two-sided bootstrap p
(times m) are read from the same resamples (s3f_stats.bootstrap_verdict): the interval excludes
0 exactly when the Bonferroni p is below α. A claim needs MIN_SEEDS_FOR_VERDICT paired seeds
(s3f_stats.MIN_RUNS_FOR_INTERVAL) for an interval and a verdict. Per seed, McNemar's exact test
is shown beside it, not used for the verdict.

"S³F-Net beats standard deep CNNs" (one row per dataset; the abstract's "much deeper models",
which the paper never trained) compares the dataset's S³F-Net with the *strongest* of the
kit's Baseline_* runs present — the highest mean accuracy over the seeds it shares with the
S³F-Net — and is then tested like every other claim. Picking the strongest on the same test
images favours the baselines: the row can only be harder to support.

"S³F-Net beats the parameter-matched spatial–spatial model" (kit, issue 35; one row per dataset)
compares the S³F-Net with its Control_<DATASET> (SpectraNet replaced by a spatial CNN of the same
size), on the runs of the paper's preprocessing; "… with the shortcut-neutral arm" on the runs
that neither squash the images (RunConfig `resize`) nor keep their original encoding
(`reencode`), both models alike. docs/shortcuts.md says how to read the two next to a flagged
dataset.

Each row also says what its runs could detect (docs/analysis-plan.md): the minimum detectable
effect at its family's Bonferroni level, the seeds needed to detect the paper's Δ and, from a
measured GPU figure only, their GPU-hours.

Why ~760 lines: the claims, their pairing of runs, the statistics per claim, what they could
detect, and the table and forest figure of the verdicts are read together (a verdict is only as
good as its pairing); the statistics themselves live in s3f_stats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from data_setup.arms import PAPER_RESIZE
from data_setup.datasets import DATASETS, dataset_info
from data_setup.files import write_csv_atomic
from s3f_kit import config as s3f_config
from s3f_kit import experiments as s3f_experiments
from s3f_kit import fusions as s3f_fusions
from s3f_kit.reports import stats as s3f_stats

ALPHA = 0.05
DATASET_ORDER = DATASETS  # the records' order (a registered dataset joins it); iterate for ids


@dataclass(frozen=True)
class Claim:
    text: str
    dataset: str
    better: tuple[str, str]  # (experiment, variant) claimed to be more accurate
    worse: tuple[str, str]
    # worse is the strongest run model among these experiments (any variant); until resolved
    # (_against_strongest) it names them all, e.g. ("Baseline_*_BUSI", "")
    candidates: tuple[str, ...] = ()
    arm: str = ""  # the runs it is tested on: every run (""), or one preprocessing arm (ARMS)


BASELINE_CLAIM = "S³F-Net beats standard deep CNNs"
CONTROL_CLAIM = "S³F-Net beats the parameter-matched spatial–spatial model"
NEUTRAL_CONTROL_CLAIM = f"{CONTROL_CLAIM} with the shortcut-neutral arm"
# The preprocessing arms a run belongs to (docs/shortcuts.md), from its recorded RunConfig
# settings `resize` and `reencode`; a record without them (made before they existed) resized by
# squashing and kept the encoding, the paper's way: the standard arm.
STANDARD_ARM, NEUTRAL_ARM = "standard", "shortcut-neutral"
ARMS = (STANDARD_ARM, NEUTRAL_ARM)


def run_arm(record: dict) -> str:
    """NEUTRAL_ARM for a run that does not squash its images to the input size or re-encodes
    them, else STANDARD_ARM."""
    settings = record.get("run_settings") or {}
    resize = settings.get("resize") or PAPER_RESIZE
    neutral = resize != PAPER_RESIZE or settings.get("reencode") is True
    return NEUTRAL_ARM if neutral else STANDARD_ARM


# The declared analysis plan (docs/analysis-plan.md): the primary family is this claim, one row
# per dataset, tested on the dataset's first primary metric; every other row is exploratory.
PRIMARY_CLAIM = "S³F-Net beats its spatial baseline"
PRIMARY, EXPLORATORY = "primary", "exploratory"
POWER = s3f_stats.POWER  # of the minimum detectable effect (docs/analysis-plan.md)
# The per-step GPU times the GPU-hours come from: benchmarks/bench_gpu.py --json writes it
# (device, small, rows of experiment/config/epoch_s); absent, or measured at --small sizes, the
# claims say there is no GPU figure yet rather than guess one.
GPU_FIGURE = Path(__file__).resolve().parents[2] / "results" / "gpu.json"
NO_GPU_FIGURE = "GPU-hours: no GPU figure yet"
GPU_FIGURE_MAX_BYTES = 1 << 20  # a few dozen rows of timings; anything larger is not one


def claim_metric(claim: Claim) -> str:
    """The metric a claim is tested on: a primary claim its dataset's first declared primary
    metric (data_setup.datasets DatasetInfo.primary_metrics), every other claim accuracy."""
    if claim.text == PRIMARY_CLAIM:
        return dataset_info(claim.dataset).primary_metrics[0]
    return "accuracy"


def _best_s3f(dataset: str) -> str:
    return next(
        e.name
        for e in s3f_experiments.EXPERIMENTS.values()
        if e.dataset == dataset and e.architecture == "s3f"
    )


def paper_claims() -> list[Claim]:
    claims = []
    for dataset in DATASET_ORDER:
        s3f = (_best_s3f(dataset), "")
        claims.append(Claim(PRIMARY_CLAIM, dataset, s3f,
                            (f"Spatial_{dataset}", "")))  # fmt: skip
    for dataset in DATASET_ORDER:
        s3f = (_best_s3f(dataset), "")
        claims.append(Claim("S³F-Net beats SpectraNet alone", dataset, s3f,
                            (f"SpectraNet_{dataset}", "")))  # fmt: skip
    for dataset in DATASET_ORDER:  # the paper's fusion against every other registered one
        exp = s3f_experiments.EXPERIMENTS[_best_s3f(dataset)]
        paper = s3f_fusions.get(exp.fusion).description
        for other in (f for f in s3f_experiments.FUSIONS if f != exp.fusion):
            worse = (exp.name, s3f_config.variant_name(exp.name, {"fusion": other}))
            text = f"{paper} beats {s3f_fusions.get(other).description}"
            claims.append(Claim(text, dataset, (exp.name, ""), worse))
    for dataset in DATASET_ORDER:  # where the paper chose a deeper SpectraNet (BUSI: SN2)
        exp = s3f_experiments.EXPERIMENTS[_best_s3f(dataset)]
        if exp.spectranet == 1:
            continue
        sn1 = s3f_config.variant_name(exp.name, {"fusion": exp.fusion, "spectranet": 1})
        text = f"SpectraNet-{exp.spectranet} beats SpectraNet-1 (S³F-Net, {exp.fusion})"
        claims.append(Claim(text, dataset, (exp.name, ""), (exp.name, sn1)))
    for dataset in DATASET_ORDER:  # the abstract's "much deeper models" (kit baselines)
        baselines = tuple(
            name for name, e in s3f_experiments.BASELINE_EXPERIMENTS.items() if e.dataset == dataset
        )
        placeholder = (s3f_experiments.baseline_name("*", dataset), "")
        claims.append(Claim(BASELINE_CLAIM, dataset, (_best_s3f(dataset), ""), placeholder,
                            candidates=baselines))  # fmt: skip
    for text, arm in ((CONTROL_CLAIM, STANDARD_ARM), (NEUTRAL_CONTROL_CLAIM, NEUTRAL_ARM)):
        for dataset in DATASET_ORDER:  # kit: the control the paper lacks (issue 35)
            control = (s3f_experiments.control_name(dataset), "")
            claims.append(Claim(text, dataset, (_best_s3f(dataset), ""), control, arm=arm))
    return claims


def _against_strongest(claim: Claim, models: dict, left_out: dict) -> tuple[Claim, dict]:
    """A claim against the strongest of its candidates that has runs: the highest mean accuracy
    over the seeds it shares with the better model (all its seeds where it shares none). The
    runs of every candidate that could not be used are reported with it."""
    if not claim.candidates:
        return claim, left_out
    better = models.get(claim.better, {})

    def mean_accuracy(key) -> float:
        runs = models[key]
        seeds = [seed for seed in runs if seed in better] or list(runs)
        return float(np.mean([runs[seed]["accuracy"] for seed in seeds]))

    present = sorted(key for key in models if key[0] in claim.candidates and models[key])
    worse = max(present, key=mean_accuracy) if present else claim.worse
    unused = [item for key in sorted(left_out) if key[0] in claim.candidates
              for item in left_out[key]]  # fmt: skip
    return replace(claim, worse=worse), {**left_out, worse: unused}


def _paper_delta(claim: Claim):
    """The paper's single-run Δ of the claim's metric (display units: points for accuracy),
    where it printed that metric for both models."""
    if claim.better[1] or claim.worse[1] or claim.candidates:
        return math.nan
    from s3f_kit.reports.results_tables import paper_numbers

    metric = claim_metric(claim)
    a, b = (paper_numbers(model[0]).get(metric) for model in (claim.better, claim.worse))
    if a is None or b is None:
        return math.nan
    scale = s3f_stats.display_scale(metric)
    return round(scale * (a - b), 2 if scale == 100 else 4)  # points, or a fraction's digits


def _by_model(runs, protocol):
    """(experiment, variant) → {(seed, fold): run record} for one protocol (fold None outside
    cross-validation; s3f_records.repeat_key), and (experiment, variant) →
    [(run folder, reason)] for the runs that could not be used. A model run with several sets
    of settings is compared in the one with most seeds (the others are listed, not pooled)."""
    from s3f_kit.reports import records as s3f_records

    grouped: dict[tuple, dict] = {}
    left_out: dict[tuple, list] = {}
    for m in runs:
        if m.get("protocol", "paper") != protocol:
            continue
        key = (m["experiment"], m.get("variant", ""))
        found, reason = s3f_records.read_predictions(m)
        if reason:
            left_out.setdefault(key, []).append((m.get("run_subdir", m["run_dir"]), reason))
            continue
        m = {**m, "predictions": found}  # read once, resampled by every claim of the model
        by_settings = grouped.setdefault(key, {})
        by_settings.setdefault(s3f_records.settings_key(m), {})[s3f_records.repeat_key(m)] = m
    table = {}
    for key, by_settings in grouped.items():
        ranked = sorted(by_settings.items(), key=lambda item: -len(item[1]))
        table[key] = ranked[0][1]
        differing = s3f_records.differing_settings([k for k, _ in ranked])
        for index, (_, seeds) in enumerate(ranked[1:], start=1):
            shown = s3f_records.describe_settings({n: v[index] for n, v in differing.items()})
            for m in seeds.values():
                left_out.setdefault(key, []).append(
                    (m.get("run_subdir", m["run_dir"]), f"other settings ({shown})")
                )
    return table, left_out


def evaluate_claim(claim: Claim, models: dict, left_out: dict | None = None) -> dict:
    unused = [f"{run}: {why}" for model in (claim.better, claim.worse)
              for run, why in (left_out or {}).get(model, [])]  # fmt: skip
    row = {
        "claim": claim.text,
        "dataset": claim.dataset,
        "better": "/".join(p for p in claim.better if p),
        "worse": "/".join(p for p in claim.worse if p),
        "family": PRIMARY if claim.text == PRIMARY_CLAIM else EXPLORATORY,
        "metric": claim_metric(claim),
        "paper_delta": _paper_delta(claim),
        "left_out": "; ".join(unused),
    }
    a, b = models.get(claim.better, {}), models.get(claim.worse, {})
    pairs = sorted(set(a) & set(b), key=lambda k: tuple((v is None, v) for v in k))
    folds = sorted({fold for _, fold in pairs if fold is not None})
    row["n_seeds"] = len({seed for seed, _ in pairs})
    row["n_folds"] = len(folds) or 1
    row["n_pairs"] = len(pairs)
    row.update(mean_delta=math.nan, delta_min=math.nan, delta_max=math.nan, ci_low=math.nan,
               ci_high=math.nan, p=math.nan, deltas=None, se=math.nan, mcnemar="",
               test="")  # fmt: skip
    if not pairs:
        row["verdict"] = "not run"
        return row
    units: dict = {}  # seed → its (A, B) pairs: one, or one per fold
    significant = 0
    for key in pairs:
        pa, pb = a[key]["predictions"], b[key]["predictions"]
        order = {name: index for index, name in enumerate(pb.files)}
        if len(pa.files) != len(pb.files) or set(order) != set(pa.files):
            raise ValueError(
                f"{claim.dataset} {_pair_name(key)}: the two runs tested different images "
                f"({a[key]['run_dir']} vs {b[key]['run_dir']}); compare runs of one split"
            )
        pb = _aligned(pb, [order[name] for name in pa.files])
        test = s3f_stats.mcnemar_exact(pa.predicted == pa.labels, pb.predicted == pb.labels)
        significant += test["p"] < ALPHA
        units.setdefault(key[0], []).append((pa, pb))
    per_seed = [np.mean([_delta(x, y, row["metric"]) for x, y in unit]) for unit in units.values()]
    row.update(
        mean_delta=float(np.mean(per_seed)),
        delta_min=float(np.min(per_seed)),
        delta_max=float(np.max(per_seed)),
        mcnemar=f"{significant}/{len(pairs)} {'runs' if folds else 'seeds'} p<{ALPHA}",
        demo_data=any(a[k].get("demo_data") for k in pairs),
    )
    if len(units) >= MIN_SEEDS_FOR_VERDICT:
        found = s3f_stats.paired_bootstrap(list(units.values()), row["metric"])
        row.update(mean_delta=found["mean_delta"], deltas=found["deltas"], test=BOOTSTRAP_TEST)
    elif len(units) >= 2:  # no verdict yet, but a standard error for the MDE
        found = s3f_stats.paired_bootstrap(list(units.values()), row["metric"],
                                           resamples=s3f_stats.ACROSS_RUNS_RESAMPLES)  # fmt: skip
    if len(units) >= 2:
        row["se"] = s3f_stats.standard_error(found["deltas"], per_seed)
    return row


def _delta(a, b, metric: str) -> float:
    """One seed's (or fold's) Δ of `metric` between two runs on the same images (display
    units), by the definition every interval uses (s3f_stats.metrics_of)."""
    ones = np.ones((1, len(a.labels)))
    values = [s3f_stats.metrics_of(x.labels, x.predicted, x.probs, ones, (metric,))[metric][0]
              for x in (a, b)]  # fmt: skip
    return float(s3f_stats.display_scale(metric) * (values[0] - values[1]))


def gpu_epoch_seconds(figure: Path = GPU_FIGURE) -> tuple[dict[str, float], str]:
    """({experiment: GPU seconds per epoch at float32}, device) from `figure`; ({}, '') where
    it is absent, unreadable or measured at the --small sizes (not a real estimate)."""
    import json

    try:
        if figure.stat().st_size > GPU_FIGURE_MAX_BYTES:
            return {}, ""
        found = json.loads(figure.read_text())
        if found.get("small"):
            return {}, ""
        times = {r["experiment"]: float(r["epoch_s"]) for r in found["rows"]
                 if r.get("config") in ("paper-f32", "kit-f32")}  # fmt: skip
        return times, str(found.get("device", "GPU"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}, ""


def gpu_hours(row: dict, figure: Path = GPU_FIGURE) -> str:
    """The GPU time of the runs `row` needs to detect the paper's Δ (both models, each seed ×
    its folds, at most the recipe's epochs), from the per-epoch GPU times of `figure`; the
    words NO_GPU_FIGURE where it has none for these models."""
    times, device = gpu_epoch_seconds(figure)
    models = [row[side].split("/")[0] for side in ("better", "worse")]
    if not all(name in times for name in models):
        return NO_GPU_FIGURE
    if not math.isfinite(row["seeds_needed"]):
        return "–"
    epochs = sum(s3f_experiments.get_experiment(name).recipe.epochs * times[name]
                 for name in models)  # fmt: skip
    hours = row["seeds_needed"] * row["n_folds"] * epochs / 3600
    return f"{hours:.3g} GPU-h ({device})"


def _aligned(predictions, order):
    """The same run's predictions in another order of its images."""
    probs = None if predictions.probs is None else predictions.probs[order]
    return s3f_stats.Predictions(predictions.files[order], predictions.labels[order],
                                 predictions.predicted[order], probs)  # fmt: skip


def _pair_name(key) -> str:
    seed, fold = key
    return f"seed {seed}" + (f" fold {fold}" if fold is not None else "")


# Which protocol's runs decide a claim, most trusted first: holdout runs select checkpoints on a
# split of train; the paper protocol selected them on the test set, so its result is shown only
# as what was published once an honest protocol has been run.
PAPER_PROTOCOL = "paper"
PROTOCOL_TRUST = ("holdout",)
AS_PUBLISHED = "as published"


def _protocol_rows(runs: list[dict], protocol: str) -> list[dict]:
    claims = paper_claims()
    by_arm = {
        arm: _by_model([m for m in runs if arm in ("", run_arm(m))], protocol)
        for arm in dict.fromkeys(c.arm for c in claims)
    }
    rows = []
    for claim in claims:
        models, left_out = by_arm[claim.arm]
        claim, unused = _against_strongest(claim, models, left_out)
        rows.append({"protocol": protocol, **evaluate_claim(claim, models, unused)})
    return rows


def _ranked(protocols) -> list[str]:
    """The protocols found, most trusted first; the paper protocol last."""

    def rank(name):
        if name in PROTOCOL_TRUST:
            return PROTOCOL_TRUST.index(name)
        return len(PROTOCOL_TRUST) + (name == PAPER_PROTOCOL)

    return sorted(protocols, key=lambda name: (rank(name), name))


def _families(frame: pd.DataFrame) -> pd.Series:
    """The multiplicity family of each row (docs/analysis-plan.md): the primary verdict rows
    together, the exploratory verdict rows together (corrected in their own family), each other
    role (as published, not deciding) apart per protocol."""
    apart = frame["role"] + "/" + frame["protocol"]
    return frame["family"].where(frame["role"] == "verdict", apart)


def _decide(frame: pd.DataFrame) -> pd.DataFrame:
    """Each tested row's interval and p at the Bonferroni level of its family (m = the rows of
    the family with an interval), both read from its bootstrap resamples, and its verdict; each
    row's minimum detectable effect at that level (m: the family's rows with runs where none
    has an interval yet), the seeds needed to detect the paper's Δ and their GPU-hours."""
    family = _families(frame)
    tested = frame["deltas"].map(lambda d: d is not None)
    sizes = tested.groupby(family).transform("sum")
    with_runs = (frame["n_pairs"] > 0).groupby(family).transform("sum")
    columns = {"ci_low": [], "ci_high": [], "p": [], "p_bonferroni": [], "ci_level": [],
               "family_size": [], "mde": [], "seeds_needed": []}  # fmt: skip
    for index, row in frame.iterrows():
        if not tested[index]:
            found = {"ci_low": math.nan, "ci_high": math.nan, "p": math.nan,
                     "p_adjusted": math.nan, "confidence": math.nan}  # fmt: skip
        else:
            found = s3f_stats.bootstrap_verdict(row["deltas"], int(sizes[index]), ALPHA)
        columns["ci_low"].append(found["ci_low"])
        columns["ci_high"].append(found["ci_high"])
        columns["p"].append(found["p"])
        columns["p_bonferroni"].append(found["p_adjusted"])
        columns["ci_level"].append(found["confidence"])
        columns["family_size"].append(int(sizes[index]) if tested[index] else 0)
        mde = s3f_stats.detectable(row["se"], int(sizes[index] or with_runs[index]), ALPHA, POWER)
        columns["mde"].append(mde)
        columns["seeds_needed"].append(
            s3f_stats.seeds_needed(mde, row["n_seeds"], row["paper_delta"])
        )
    frame = frame.drop(columns=["deltas"]).assign(**columns)
    frame["verdict"] = [_verdict(r) for r in frame.to_dict("records")]
    frame["gpu_hours"] = [gpu_hours(r) for r in frame.to_dict("records")]
    return frame


def claims_table(runs: list[dict], protocol: str | None = None) -> pd.DataFrame:
    """Every claim's row; intervals and p at the Bonferroni level of the verdict rows that
    have one (the other roles are families of their own).

    Without `protocol`: a claim is decided by the most trusted protocol whose runs pair at least
    one seed of both models (holdout before paper). Its row has role 'verdict'; the
    paper-protocol result, where it exists too, follows with role 'as published'.
    `decided_by` names the deciding protocol on both."""
    found = {m.get("protocol", PAPER_PROTOCOL) for m in runs} or {PAPER_PROTOCOL}
    ranked = [protocol] if protocol else _ranked(found)
    tables = {name: _protocol_rows(runs, name) for name in ranked}
    rows = []
    for index in range(len(paper_claims())):
        candidates = [tables[name][index] for name in ranked]
        # Nothing paired anywhere: say so for the most trusted protocol whose runs were
        # unusable, else for the most trusted one (the protocol the claim awaits).
        decided = next((r for r in candidates if r["n_pairs"] > 0), None) or next(
            (r for r in candidates if r["left_out"]), candidates[0]
        )
        rows.append({**decided, "role": "verdict", "decided_by": decided["protocol"]})
        for other in candidates:
            if other is not decided and other["n_pairs"] > 0:
                role = AS_PUBLISHED if other["protocol"] == PAPER_PROTOCOL else "not deciding"
                rows.append({**other, "role": role, "decided_by": decided["protocol"]})
    frame = pd.DataFrame(rows)
    columns = ["protocol", "role", "family", "decided_by"]
    frame = frame[columns + [c for c in frame.columns if c not in columns]]
    return _decide(frame)


# A verdict other than inconclusive needs this many paired seeds (cross-validation: repetitions):
# the interval of a mean over seeds needs them (s3f_stats.MIN_RUNS_FOR_INTERVAL, one constant).
MIN_SEEDS_FOR_VERDICT = s3f_stats.MIN_RUNS_FOR_INTERVAL
BOOTSTRAP_TEST = "paired two-level bootstrap (seeds × test images)"


def _verdict(row) -> str:
    """From the interval alone: it excludes 0 exactly when the Bonferroni p is below α
    (s3f_stats.bootstrap_verdict), so the two cannot disagree."""
    if row["n_pairs"] == 0:
        return "runs unusable" if row.get("left_out") else "not run"
    low, high = row["ci_low"], row["ci_high"]
    if low > 0:
        return "supported"
    if high < 0:
        return "contradicted"
    return "inconclusive"  # no interval (too few seeds) or one that holds 0


def _cell(value, digits=2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if not isinstance(value, float):
        return str(value)
    # rounded first, + 0.0: a Δ of -2e-17 (floating noise) reads +0.000, not -0.000
    return f"{round(value, digits) + 0.0:+.{digits}f}"


def write_claims(runs: list[dict], results_dir, protocol: str | None = None) -> list[str]:
    """claims.csv and the two figures in results_dir; returns the README's Markdown section."""
    results_dir = Path(results_dir)
    frame = claims_table(runs, protocol)
    write_csv_atomic(results_dir / "claims.csv", frame, index=False, float_format="%.6g")
    demo = any(m.get("demo_data") for m in runs)
    forest_figure(frame, results_dir / "claims_forest.png", demo)
    seed_strip_figure(runs, results_dir / "seed_accuracy.png", demo)
    rows = [_markdown_row(r) for r in frame.to_dict("records")]
    lines = ["## Do the paper's claims hold?", ""]
    if demo:
        lines += [
            "> **Claims tested on SYNTHETIC DEMO DATA: they say nothing about the paper.**",
            "",
        ]
    lines += [
        "Declared before the runs (docs/analysis-plan.md): the **primary** family is "
        f"*{PRIMARY_CLAIM}*, one row per dataset, each tested on its dataset's first primary "
        f"metric ({_primary_metrics_sentence()}); every other row is **exploratory**. "
        "Δ in the row's metric (better − worse; accuracy in points, the others on their own "
        f"scale). {_decided_by_sentence(frame)} Paper Δ: its "
        "single unseeded run. Ours: the mean Δ over seeds (min–max of the seeds' Δ beside it). "
        "CI and p come from one procedure, a paired two-level bootstrap "
        f"({s3f_stats.CLAIM_RESAMPLES:,} resamples: the seeds drawn with replacement, each "
        "with its cross-validation folds, × one stratified resample of the test images "
        "applied to both models of every drawn seed), at one multiplicity level: "
        f"{_family_sentence(frame)} {_mde_sentence()} The CI excludes 0 exactly when the "
        "Bonferroni p is below "
        f"{ALPHA}; the verdict is *supported* / *contradicted* when it does, else "
        f"*inconclusive*. A claim gets a CI and a verdict from {MIN_SEEDS_FOR_VERDICT} paired "
        "seeds (or cross-validation repetitions) on: with fewer, the bootstrap cannot see the "
        "spread between seeds and its coverage falls short (docs/statistics.md), so such rows "
        "are always *inconclusive*. McNemar: runs whose per-image exact test has p < 0.05 "
        "(shown, not used for the verdict). "
        f"*{BASELINE_CLAIM}* (not in the paper's tables: its abstract's \"much deeper "
        'models") compares with the strongest Baseline_* model run on that dataset (highest '
        "mean accuracy over the paired seeds; named in the row), in the same family. "
        f"*{CONTROL_CLAIM}* (kit: the control the paper lacks) compares with Control_<dataset>, "
        "the S³F-Net with a spatial CNN of SpectraNet's parameter count in its place, on runs "
        "of the paper's preprocessing; *…with the shortcut-neutral arm* on runs that do not "
        "squash or that re-encode the images (docs/shortcuts.md: how to read them beside a "
        "flagged dataset).",
        "",
        *_left_out_lines(frame),
        "| claim | family | dataset | metric | protocol | paper Δ | our mean Δ (min–max) | "
        "CI (Bonferroni) | runs | p (Bonferroni) | MDE | seeds to detect paper Δ | McNemar | "
        "verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "![effects with CIs](claims_forest.png)",
        "",
        "![accuracy per seed](seed_accuracy.png)",
        "",
        "All columns: [`claims.csv`](claims.csv).",
        "",
    ]
    return lines


def _runs_cell(r: dict) -> str:
    """'3' (seeds) or '3 folds × 2 seeds'."""
    if r.get("n_folds", 1) > 1:
        return f"{r['n_folds']} folds × {r['n_seeds']} seeds"
    return str(r["n_seeds"])


def _markdown_row(r: dict) -> str:
    d = 2 if s3f_stats.display_scale(r["metric"]) == 100 else 3  # points, or a fraction's
    ci = "–" if math.isnan(r["ci_low"]) else f"[{r['ci_low']:+.{d}f}, {r['ci_high']:+.{d}f}]"
    p = "–" if math.isnan(r["p_bonferroni"]) else f"{r['p_bonferroni']:.3g}"
    if r["p_bonferroni"] == 0:  # no resample on the far side of 0
        p = f"< {2 * r['family_size'] / s3f_stats.CLAIM_RESAMPLES:.2g}"
    delta = _cell(r["mean_delta"], d)
    if r["n_seeds"] > 1:
        delta += f" ({_cell(r['delta_min'], d)}–{_cell(r['delta_max'], d)})"
    if r["role"] == "verdict":
        claim, verdict = r["claim"], f"**{r['verdict']}**"
        if r["claim"] == BASELINE_CLAIM and r["n_seeds"]:
            claim += f" (strongest: {r['worse']})"
    else:  # shown beside the verdict, not a verdict of its own
        claim, verdict = f"↳ {r['role']}", f"({r['verdict']} under {r['protocol']})"
    mde = "–" if math.isnan(r["mde"]) else f"{r['mde']:.{d}f}"
    needed = "–" if math.isnan(r["seeds_needed"]) else f"{r['seeds_needed']:g}"
    if not math.isnan(r["seeds_needed"]):
        needed += f" ({r['gpu_hours']})"
    return (
        f"| {claim} | {r['family']} | {r['dataset']} | {r['metric']} | {r['protocol']} | "
        f"{_cell(r['paper_delta'], d)} | {delta} | {ci} | {_runs_cell(r)} | {p} | {mde} | "
        f"{needed} | {r['mcnemar'] or '–'} | {verdict} |"
    )


def _family_sentence(frame: pd.DataFrame) -> str:
    """The Bonferroni level of each family of verdict rows, in words."""
    verdicts = frame[frame["role"] == "verdict"]
    parts = []
    for family in (PRIMARY, EXPLORATORY):
        sizes = verdicts.loc[verdicts["family"] == family, "family_size"]
        m = int(sizes.max()) if len(sizes) else 0
        if m:
            parts.append(
                f"the {m} {family} verdict row(s) with a CI form one family, so each CI is a "
                f"{100 * (1 - ALPHA / m):.2f} % interval (1 − {ALPHA}/{m}) and each p is the "
                f"bootstrap p times {m} (at most 1)"
            )
    if not parts:
        return "no claim has enough paired seeds for a CI yet."
    return (
        "; ".join(parts) + " — the primary family is corrected within itself only, the "
        "exploratory rows in their own family, and the *as published* rows are a family of "
        "their own."
    )


def _mde_sentence() -> str:
    return (
        "MDE: the minimum detectable effect of the runs a row has, (z(1 − α/2m) + "
        f"z({POWER:g})) × SE of the mean Δ at its family's m ({100 * POWER:.0f} % power; SE: "
        "the paired two-level bootstrap's sd, or the per-seed Δs' sd/√k where larger; from 2 "
        "paired seeds). Seeds to detect paper Δ: the seeds (cross-validation: repetitions) "
        "whose MDE reaches the paper's Δ, k · (MDE / paper Δ)² (the SE shrinks as √k), at "
        f"least {MIN_SEEDS_FOR_VERDICT}, with the GPU-hours of those runs where a GPU figure "
        "was measured (benchmarks/bench_gpu.py --json results/gpu.json)."
    )


def _primary_metrics_sentence() -> str:
    return "; ".join(
        f"{name}: {', '.join(dataset_info(name).primary_metrics)}" for name in DATASET_ORDER
    )


def _decided_by_sentence(frame: pd.DataFrame) -> str:
    deciding = frame.loc[(frame["role"] == "verdict") & (frame["n_pairs"] > 0), "decided_by"]
    if set(deciding) <= {PAPER_PROTOCOL}:
        return (
            "Every verdict comes from paper-protocol runs (no holdout runs paired yet): the test "
            "set also chose their checkpoints, so they favour whatever was selected on it."
        )
    counted = deciding.value_counts()
    counts = ", ".join(f"{counted[name]} by {name}" for name in _ranked(counted.index))
    return (
        f"Verdicts ({counts}) come from the holdout runs wherever a claim has them: they select "
        "checkpoints on a split of train, so their test numbers are honest. The paper-protocol "
        "result, which chose its checkpoints on the test set, then stands beneath as "
        "*as published* — a comparison with what was printed, not evidence."
    )


def _left_out_lines(frame: pd.DataFrame) -> list[str]:
    """The runs the claims could not use, once each, with the reason."""
    unused = dict.fromkeys(item for text in frame["left_out"] if text for item in text.split("; "))
    if not unused:
        return []
    return [
        f"**{len(unused)} run(s) could not be used for the claims:**",
        "",
        *(f"- {item}" for item in unused),
        "",
    ]


VERDICT_COLOURS = {"supported": "#2a9d4b", "contradicted": "#c0392b", "inconclusive": "#7f7f7f"}
# Marker of a row by its role: the verdict filled, the paper protocol's "as published" hollow.
ROLE_MARKERS = {"verdict": "o", AS_PUBLISHED: "D", "not deciding": "s"}


def _forest_legend(ax, frame: pd.DataFrame) -> None:
    from matplotlib.lines import Line2D

    handles = []
    for verdict, colour in VERDICT_COLOURS.items():
        if verdict in set(frame["verdict"]):
            handles.append(Line2D([], [], color=colour, linewidth=2, label=verdict))
    for role in ROLE_MARKERS:
        rows = frame[frame["role"] == role]
        if len(rows):
            protocols = "/".join(sorted(set(rows["protocol"])))
            label = (f"decides the verdict ({protocols} runs)" if role == "verdict"
                     else f"{role} ({protocols} protocol, not the verdict)")  # fmt: skip
            filled = "black" if role == "verdict" else "white"
            handles.append(Line2D([], [], color="black", marker=ROLE_MARKERS[role],
                                  markerfacecolor=filled, linestyle="", label=label))  # fmt: skip
    if frame["paper_delta"].notna().any():
        handles.append(Line2D([], [], color="black", marker="x", linestyle="",
                              label="paper's printed Δ (one run)"))  # fmt: skip
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="lower right")


def forest_figure(frame: pd.DataFrame, path: Path, demo: bool = False):
    """One line per claim: the deciding result (filled circle) and, where a more trusted
    protocol decided, the paper protocol's result as published (hollow diamond) just below."""
    import matplotlib.pyplot as plt

    from s3f_kit.reports.plots import _save

    verdicts = frame[frame["role"] == "verdict"].reset_index(drop=True)
    height = max(2.5, 0.45 * len(verdicts) + 1.5)
    figure, ax = plt.subplots(figsize=(8.5, height))
    y = dict(zip(verdicts["claim"] + verdicts["dataset"], np.arange(len(verdicts))[::-1],
                 strict=True))  # fmt: skip
    labels = [
        f"{r.claim} — {r.dataset}"
        + ("" if r.metric == "accuracy" else f", {r.metric.replace('_', ' ')}")
        + (f" ({r.decided_by})" if r.n_pairs else "")
        for r in verdicts.itertuples()
    ]
    # one axis in points: a fraction's Δ (AUROC, balanced accuracy) ×100, like accuracy's
    to_points = {m: 100 / s3f_stats.display_scale(m) for m in set(frame["metric"])}
    frame = frame.assign(
        **{c: frame[c] * frame["metric"].map(to_points)
           for c in ("ci_low", "ci_high", "mean_delta", "paper_delta")}
    )  # fmt: skip
    for r in frame.itertuples():
        yi = y[r.claim + r.dataset] - (0 if r.role == "verdict" else 0.28)
        if r.n_pairs == 0:
            ax.text(0, yi, r.verdict, va="center", ha="center", fontsize=7, color="#999999",
                    bbox={"facecolor": "white", "linewidth": 0, "pad": 1})  # fmt: skip
            continue
        colour = VERDICT_COLOURS.get(r.verdict, "#7f7f7f")
        width = 2 if r.role == "verdict" else 1
        if not math.isnan(r.ci_low):
            ax.plot([r.ci_low, r.ci_high], [yi, yi], color=colour, linewidth=width)
        ax.plot(r.mean_delta, yi, ROLE_MARKERS.get(r.role, "s"), color=colour,
                markerfacecolor=colour if r.role == "verdict" else "white")  # fmt: skip
        if r.role == "verdict" and not math.isnan(r.paper_delta):
            ax.plot(r.paper_delta, yi, "x", color="black")
    ax.axvline(0, color="black", linewidth=0.8, linestyle="--")
    ax.set_yticks(list(y.values()), labels, fontsize=8)
    ax.set_ylim(-0.6, len(verdicts) - 0.4)  # room for the as-published line under the last row
    ax.set_xlabel(
        "Δ of the claim's metric in points (better − worse; fractions ×100),\n"
        "mean over seeds with its Bonferroni CI"
    )
    _forest_legend(ax, frame[frame["n_pairs"] > 0])
    tested = verdicts[verdicts["n_pairs"] > 0]
    decided = "/".join(_ranked(set(tested["decided_by"]))) or "no"
    title = f"The paper's claims (verdicts from {decided} runs, {len(tested)} tested)"
    if demo:
        title += "\nsynthetic demo data — says nothing about the paper"
    ax.set_title(title, fontsize=10, color="darkred" if demo else "black")
    _save(figure, path)
    return figure


def seed_strip_figure(runs: list[dict], path: Path, demo: bool = False):
    import matplotlib.pyplot as plt
    import seaborn as sns

    from s3f_kit.reports.plots import _save

    rows = [
        {
            "dataset": m["dataset"],
            "model": "/".join(p for p in (m["experiment"], m.get("variant", "")) if p)
            + ("" if m.get("protocol", "paper") == "paper" else f" ({m['protocol']})")
            + (f" cv{folds}" if (folds := (m.get("run_settings") or {}).get("folds")) else ""),
            "accuracy": 100 * m["accuracy"],
        }
        for m in runs
    ]
    frame = pd.DataFrame(rows)
    datasets = [d for d in (*DATASET_ORDER, "Custom") if d in set(frame.get("dataset", []))]
    # One horizontal panel per dataset, stacked: model names read left to right at full size
    # (issue 36.3: 60°-rotated names were unreadable); a panel's height follows its models.
    models = [max(1, frame.loc[frame["dataset"] == d, "model"].nunique()) for d in datasets]
    figure, axes = plt.subplots(
        max(1, len(datasets)), 1, figsize=(8.5, 1.0 + sum(0.45 * n + 0.8 for n in models)),
        squeeze=False, sharex=True, gridspec_kw={"height_ratios": models or [1]},
    )  # fmt: skip
    # One x-range for every panel: the same length means the same accuracy gap everywhere.
    low = max(0, frame["accuracy"].min() - 2) if len(frame) else 0
    for ax, dataset in zip(axes.flat, datasets, strict=False):
        subset = frame[frame["dataset"] == dataset]
        sns.stripplot(data=subset, x="accuracy", y="model", orient="h", ax=ax, size=6,
                      jitter=0.15)  # fmt: skip
        means = subset.groupby("model", sort=False)["accuracy"].mean()
        ax.scatter(means.values, range(len(means)), marker="|", s=300, color="black", zorder=3)
        ax.set_title(dataset, fontsize=10, loc="left")
        ax.set_ylabel("")
        ax.set_xlabel("test accuracy (%)")
        ax.set_xlim(low, 101)  # accuracy stops at 100 %: no empty band beyond it
        ax.tick_params(axis="y", labelsize=9)
        ax.grid(axis="x", color="0.9")
    title = "Test accuracy per run (dots: seeds, or folds × seeds) and mean (bar)"
    if demo:
        title += "\nsynthetic demo data — says nothing about the paper"
    figure.suptitle(title, fontsize=11, color="darkred" if demo else "black")
    figure.tight_layout()
    _save(figure, path)
    return figure
