"""Uncertainty for the kit's numbers: one run, several seeds, and two models compared.

Every published S³F-Net number is one unseeded run on a test set of 156–1,512 images. Here
(docs/statistics.md has the reasons and the measured coverage):

- the metrics themselves, batched over resamples: accuracy, weighted and macro F1, Cohen's κ
  and MCC from weighted confusion matrices, ROC AUC from weighted ranks (`metrics_of`). A
  resample of the test images is a vector of counts (how often each image was drawn), so one
  definition serves one run, several seeds and folds whose test images differ;
- `describe(values)`: mean, sd, min and max of seed-level values (no interval: see below);
- `across_runs(units)`: the interval of the mean over seeds, from a two-level bootstrap (seeds
  with replacement × one stratified resample of the test images shared by every drawn seed),
  given only where there are at least MIN_RUNS_FOR_INTERVAL seeds (or repetitions of a
  cross-validation). Every resample's value is a mean of values the metric can take, so the
  percentile interval never leaves the metric's range;
- `paired_bootstrap(units)`: the same two-level bootstrap of Δ between two models tested on the
  same images; `bootstrap_verdict` reads its interval and its p from the same resamples at the
  same (Bonferroni) level, so "the interval excludes 0" and "p < α" cannot disagree;
- `standard_error`, `detectable`, `seeds_needed`: the minimum detectable effect of a claim's
  runs and the seeds needed to detect a given Δ (docs/analysis-plan.md);
- `mcnemar_exact` / `paired_seed`: two models on the test images of one seed.

Why ~460 lines: one definition of every metric and every resampling scheme (one run, seeds,
two models, what a claim's runs can detect) in one place, so that no interval, p or MDE the
kit prints can use a definition the others do not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 1000  # paired_seed's per-seed interval
# An interval of the mean over seeds needs this many seeds (or cross-validation repetitions):
# with fewer, the bootstrap cannot see the spread between seeds (3 seeds have 10 distinct
# resamples) and its coverage falls short (docs/statistics.md, measured); tables then show
# mean, sd and min–max only, and a claim cannot be decided.
MIN_RUNS_FOR_INTERVAL = 5
ACROSS_RUNS_RESAMPLES = 2000
_CHUNK = 250  # resamples per batch: bounds memory at 250 × N × 8 bytes per array

# What each metric can take: no interval the kit prints leaves it (tests check this). The loss
# has no range and gets no interval.
METRIC_RANGES = {
    "accuracy": (0.0, 1.0),
    "weighted_f1": (0.0, 1.0),
    "macro_f1": (0.0, 1.0),
    "cohen_kappa": (-1.0, 1.0),
    "mcc": (-1.0, 1.0),
    "roc_auc": (0.0, 1.0),
    # The datasets' primary metrics (data_setup.datasets DatasetInfo.primary_metrics) beside
    # the paper's: balanced accuracy (the mean recall over the classes in truth: HAM10000's
    # challenge metric), and for two classes sensitivity and specificity of class 1 (Chest
    # X-Ray: PNEUMONIA); NaN with more classes.
    "balanced_accuracy": (0.0, 1.0),
    "sensitivity": (0.0, 1.0),
    "specificity": (0.0, 1.0),
}
INTERVAL_METRICS = tuple(METRIC_RANGES)
# Defined for two classes only: a run of more classes records no value of them (not a NaN that
# no two records could compare equal on).
BINARY_METRICS = frozenset({"sensitivity", "specificity"})


def run_metrics(classes: int) -> tuple[str, ...]:
    """The interval metrics one run of `classes` classes records."""
    return tuple(n for n in INTERVAL_METRICS if classes == 2 or n not in BINARY_METRICS)


# Shown in percent; every other metric (κ and MCC above all: they are not proportions) is shown
# on its own scale.
PERCENT_METRICS = frozenset({"accuracy"})


def display_scale(metric: str) -> float:
    """100 for the metrics the kit shows in percent (accuracy), else 1."""
    return 100.0 if metric in PERCENT_METRICS else 1.0


# --------------------------------------------------------------------------- batched metrics


def stratified_weights(labels: np.ndarray, resamples: int, rng) -> np.ndarray:
    """(resamples, N) counts: each row redraws every class's images with replacement (a
    stratified bootstrap: every resample keeps the class counts, so AUC and the per-class F1s
    stay defined)."""
    columns = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        columns.append(members[rng.integers(0, len(members), size=(resamples, len(members)))])
    drawn = np.concatenate(columns, axis=1) + (np.arange(resamples) * len(labels))[:, None]
    counts = np.bincount(drawn.ravel(), minlength=resamples * len(labels))
    return counts.reshape(resamples, len(labels)).astype(float)


def confusions(true: np.ndarray, pred: np.ndarray, classes: int, weights: np.ndarray):
    """(B, K, K) confusion matrices (rows true, columns predicted) of N images under B rows of
    image weights (B, N)."""
    batch = weights.shape[0]
    codes = (true * classes + pred)[None, :] + (np.arange(batch) * classes * classes)[:, None]
    counts = np.bincount(codes.ravel(), weights=weights.ravel(), minlength=batch * classes**2)
    return counts.reshape(batch, classes, classes)


def confusion_metrics(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """sklearn's accuracy, weighted/macro F1 (zero_division=0, macro over the classes that occur
    in truth or prediction), κ, MCC and balanced accuracy (the mean recall over the classes
    that occur in truth), and for two classes the recall of class 1 (sensitivity) and of class
    0 (specificity), from a batch of confusion matrices."""
    n = confusion.sum(axis=(1, 2))
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    support = confusion.sum(axis=2)
    predicted = confusion.sum(axis=1)
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    present = denominator > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    binary = confusion.shape[1] == 2
    with np.errstate(invalid="ignore", divide="ignore"):
        correct = tp.sum(axis=1)
        chance = (support * predicted).sum(axis=1)
        kappa = (correct * n - chance) / (n * n - chance)
        mcc_den = np.sqrt((n * n - (predicted**2).sum(axis=1)) * (n * n - (support**2).sum(axis=1)))
        mcc = np.where(mcc_den > 0, (correct * n - chance) / np.where(mcc_den > 0, mcc_den, 1), 0.0)
        return {
            "accuracy": correct / n,
            "weighted_f1": (f1 * support).sum(axis=1) / support.sum(axis=1),
            "macro_f1": f1.sum(axis=1) / present.sum(axis=1),
            "cohen_kappa": kappa,
            "mcc": mcc,
            "balanced_accuracy": recall.sum(axis=1) / (support > 0).sum(axis=1),
            "sensitivity": tp[:, 1] / support[:, 1] if binary else np.full(len(n), np.nan),
            "specificity": tp[:, 0] / support[:, 0] if binary else np.full(len(n), np.nan),
        }


def _auc_rows(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC (Mann–Whitney U, ties counted half) of one score under B rows of image weights:
    each positive's weight times the weight of the negatives scored below it, plus half of
    those scored the same (one sort, then cumulative sums)."""
    order = np.argsort(score, kind="stable")
    ranked, positive = score[order], positive[order]
    weights = weights[:, order]
    negatives = np.cumsum(weights * ~positive, axis=1)  # weight of negatives up to each image
    first = np.r_[True, ranked[1:] != ranked[:-1]]  # where each run of tied scores starts
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(ranked)] - 1
    below = np.where(starts > 0, negatives[:, np.maximum(starts - 1, 0)], 0.0)
    tied = negatives[:, ends] - below
    tie_run = (np.cumsum(first) - 1)[positive]
    hits = weights[:, positive] * (below[:, tie_run] + tied[:, tie_run] / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits.sum(axis=1) / (weights[:, positive].sum(axis=1) * negatives[:, -1])


def auc(labels: np.ndarray, class_probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Binary: AUC of the positive class; multi-class: one-vs-rest macro AUC (sklearn's
    `roc_auc_score(..., multi_class='ovr', average='macro')`), for each row of weights."""
    if class_probs.shape[1] == 2:
        return _auc_rows(labels == 1, class_probs[:, 1], weights)
    per_class = [_auc_rows(labels == k, class_probs[:, k], weights)
                 for k in range(class_probs.shape[1])]  # fmt: skip
    return np.mean(per_class, axis=0)


def metrics_of(labels, predicted, class_probs, weights, names=INTERVAL_METRICS):
    """{metric: (B,) values} of one run's N test images under B rows of image weights (B, N);
    AUC is NaN without probabilities. Accuracy alone takes a faster path (one product)."""
    if tuple(names) == ("accuracy",):
        with np.errstate(invalid="ignore", divide="ignore"):
            return {"accuracy": weights @ (labels == predicted) / weights.sum(axis=1)}
    classes = int(max(labels.max(), predicted.max()) + 1)
    if class_probs is not None:
        classes = max(classes, class_probs.shape[1])
    values = confusion_metrics(confusions(labels, predicted, classes, weights))
    if "roc_auc" in names:
        values["roc_auc"] = (
            auc(labels, class_probs, weights)
            if class_probs is not None
            else np.full(weights.shape[0], math.nan)
        )
    return {name: values[name] for name in names}


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """The 95 % percentile interval of bootstrap values (their non-finite ones left out)."""
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


# --------------------------------------------------------------------------- across seeds


@dataclass(frozen=True)
class Predictions:
    """One run's test predictions (predictions.csv): image names, true and predicted class
    indices, and (N, K) class probabilities where the file has them."""

    files: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    probs: np.ndarray | None = None


def describe(values) -> dict:
    """Mean, sd, min and max of seed-level values (NaN and None left out). No interval: a
    t-interval over a few bounded values leaves their range (issue 32); `across_runs` gives
    the interval of the mean where there are enough seeds."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": math.nan, "sd": math.nan, "min": math.nan, "max": math.nan}
    return {
        "n": n,
        "mean": float(values.mean()),
        "sd": float(values.std(ddof=1)) if n > 1 else math.nan,
        "min": float(values.min()),
        "max": float(values.max()),
        **({"label": "single run"} if n == 1 else {}),
    }


def _image_universe(items: list[Predictions]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The labels of every distinct test image of these runs, and each run's positions in it
    (folds of a cross-validation test different images; seeds of one split the same)."""
    position: dict[str, int] = {}
    labels: list[int] = []
    places = []
    for item in items:
        place = np.empty(len(item.files), dtype=np.int64)
        for j, (name, label) in enumerate(zip(item.files, item.labels, strict=True)):
            found = position.setdefault(name, len(labels))
            if found == len(labels):
                labels.append(int(label))
            elif labels[found] != label:
                raise ValueError(
                    f"test image {name} has two different true classes in these runs' "
                    "predictions.csv: they were not made on the same data"
                )
            place[j] = found
        places.append(place)
    return np.asarray(labels), places


def two_level_bootstrap(units, statistic, files_of, resamples: int, seed: int) -> np.ndarray:
    """(resamples, M) values of the mean over units (seeds) of `statistic`, each resample
    drawing the units with replacement and one stratified resample of the test images that every
    drawn unit's runs share (a run sees the weights of its own images).

    `units`: a list of lists of items (one seed's runs: one, or its cross-validation folds);
    `files_of(item)` → its Predictions (for its images and labels); `statistic(item, weights)`
    → (B, M) values of the item under (B, its N) image weights. A unit's value is the mean of
    its items'."""
    items = [item for unit in units for item in unit]
    labels, places = _image_universe([files_of(item) for item in items])
    rng = np.random.default_rng(seed)
    k, out = len(units), []
    for start in range(0, resamples, _CHUNK):
        batch = min(_CHUNK, resamples - start)
        weights = stratified_weights(labels, batch, rng)
        drawn = rng.multinomial(k, np.full(k, 1 / k), size=batch)  # (batch, k) multiplicities
        total, index = 0.0, 0
        for u, unit in enumerate(units):
            values = [statistic(item, weights[:, places[index + j]]) for j, item in enumerate(unit)]
            index += len(unit)
            times = drawn[:, u, None]
            total = total + np.where(times > 0, times * np.mean(values, axis=0), 0.0)
        out.append(total / k)
    return np.concatenate(out)


def _run_statistic(metrics):
    def statistic(item: Predictions, weights):
        values = metrics_of(item.labels, item.predicted, item.probs, weights, metrics)
        return np.column_stack([values[name] for name in metrics])

    return statistic


def _point(units, statistic, files_of) -> np.ndarray:
    """The statistic with every unit and image counted once (the resamples' centre)."""
    means = []
    for unit in units:
        values = [statistic(item, np.ones((1, len(files_of(item).files))))[0] for item in unit]
        means.append(np.mean(values, axis=0))
    return np.mean(means, axis=0)


def across_runs(units: list[list[Predictions]], metrics=INTERVAL_METRICS,
                resamples: int = ACROSS_RUNS_RESAMPLES, seed: int = 0) -> dict:  # fmt: skip
    """{metric: {"value", "ci_low", "ci_high"}}: the mean over seeds of each metric and its 95 %
    two-level bootstrap interval — NaN bounds with fewer than MIN_RUNS_FOR_INTERVAL seeds."""
    metrics = tuple(metrics)
    statistic = _run_statistic(metrics)
    values = _point(units, statistic, lambda item: item)
    bounds = np.full((len(metrics), 2), math.nan)
    if len(units) >= MIN_RUNS_FOR_INTERVAL:
        drawn = two_level_bootstrap(units, statistic, lambda item: item, resamples, seed)
        bounds = np.array([percentile_interval(drawn[:, m]) for m in range(len(metrics))])
    return {
        name: {"value": float(values[m]), "ci_low": bounds[m, 0], "ci_high": bounds[m, 1]}
        for m, name in enumerate(metrics)
    }


# --------------------------------------------------------------------------- two models

CLAIM_RESAMPLES = 10_000  # a Bonferroni tail of 0.05/17 holds ~15 resamples, not ~3


def paired_bootstrap(units, metric: str = "accuracy", resamples: int = CLAIM_RESAMPLES,
                     seed: int = 0) -> dict:  # fmt: skip
    """Δ = A − B of `metric` (display units: points for accuracy) between two models tested on
    the same images: `units` is a list (seeds) of lists of (A, B) Predictions pairs. Returns the
    mean Δ and the (resamples,) two-level bootstrap Δs (`bootstrap_verdict` reads them)."""
    scale = display_scale(metric)
    one = _run_statistic((metric,))

    def statistic(pair, weights):
        return scale * (one(pair[0], weights) - one(pair[1], weights))

    deltas = two_level_bootstrap(units, statistic, lambda pair: pair[0], resamples, seed)[:, 0]
    return {
        "mean_delta": float(_point(units, statistic, lambda pair: pair[0])[0]),
        "deltas": deltas,
    }


def bootstrap_verdict(deltas, family_size: int = 1, alpha: float = 0.05) -> dict:
    """The two-sided bootstrap p of Δ = 0 and the percentile interval at the Bonferroni level
    1 − α/m, both from the same sorted resamples, so that the interval excludes 0 exactly when
    the Bonferroni p (m · p, at most 1) is below α.

    With B resamples, c≤ of them ≤ 0 and c≥ of them ≥ 0: p = min(1, 2·min(c≤, c≥)/B); the
    bounds are the r-th smallest and r-th largest resample, r = ⌈α·B / (2m)⌉ (at least 1).
    The lower bound is above 0 ⇔ c≤ < r ⇔ c≤ < α·B/(2m) ⇔ that side's m·p < α; the same for the
    upper bound. Computed in exact fractions: no rounding can split the two."""
    deltas = np.sort(np.asarray(deltas, dtype=float))
    deltas = deltas[np.isfinite(deltas)]
    total = len(deltas)
    if total == 0:
        return {"p": math.nan, "p_adjusted": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                "confidence": math.nan, "family_size": family_size}  # fmt: skip
    tail = min(int(np.sum(deltas <= 0)), int(np.sum(deltas >= 0)))
    exact_alpha = Fraction(alpha).limit_denominator(10**6)
    rank = max(1, math.ceil(exact_alpha * total / (2 * family_size)))
    rank = min(rank, total)
    p = min(Fraction(1), Fraction(2 * tail, total))
    adjusted = min(Fraction(1), family_size * p)
    return {
        "p": float(p),
        "p_adjusted": float(adjusted),
        "significant": adjusted < exact_alpha,
        "ci_low": float(deltas[rank - 1]),
        "ci_high": float(deltas[total - rank]),
        "confidence": 1 - alpha / family_size,
        "family_size": family_size,
    }


# --------------------------------------------------------------------------- what runs detect

POWER = 0.8  # the power a minimum detectable effect is stated at (docs/analysis-plan.md)


def standard_error(deltas, per_seed) -> float:
    """The standard error of the mean Δ: the sd of the two-level bootstrap's mean Δs (seeds and
    test images), or, where larger, the per-seed Δs' sd / √k — a percentile bootstrap over k
    seeds sees only (k − 1)/k of the seeds' variance (docs/statistics.md), so the larger of
    the two is the conservative one."""
    deltas = np.asarray(deltas, dtype=float)
    deltas = deltas[np.isfinite(deltas)]
    boot = float(np.std(deltas, ddof=1)) if len(deltas) > 1 else math.nan
    seeds = float(np.std(per_seed, ddof=1) / math.sqrt(len(per_seed)))
    finite = [value for value in (boot, seeds) if math.isfinite(value)]
    # no spread at all (both models at a ceiling on every resample and seed): the runs say
    # nothing about the effect they could detect, so no SE rather than an MDE of 0
    return max(finite) if finite and max(finite) > 0 else math.nan


def detectable(se: float, family_size: int, alpha: float = 0.05, power: float = POWER) -> float:
    """The minimum detectable effect: MDE = (z_{1−α/2m} + z_power) × SE of the mean Δ — the
    true Δ that a Bonferroni test at level α over a family of m rows finds with this power."""
    m = max(1, int(family_size))
    return float((stats.norm.ppf(1 - alpha / (2 * m)) + stats.norm.ppf(power)) * se)


def seeds_needed(mde: float, k: int, target: float) -> float:
    """The seeds (cross-validation: repetitions) whose MDE reaches |target|: the SE shrinks as
    √(k / k_needed), so k_needed = ⌈k · (MDE / |target|)²⌉, and never below the
    MIN_RUNS_FOR_INTERVAL a verdict needs. NaN without an MDE or a non-zero target."""
    if not (math.isfinite(mde) and math.isfinite(target)) or target == 0 or k < 1:
        return math.nan
    return float(max(MIN_RUNS_FOR_INTERVAL, math.ceil(k * (mde / abs(target)) ** 2 - 1e-9)))


# --------------------------------------------------------------------------- one seed


def mcnemar_exact(correct_a, correct_b) -> dict:
    """McNemar's exact test on paired correctness (same test images, same order)."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    result = mcnemar(table, exact=True)
    return {"only_a": table[0][1], "only_b": table[1][0], "p": float(result.pvalue)}


def _bootstrap_ci(statistic, samples, seed: int) -> tuple[float, float]:
    try:
        result = stats.bootstrap(
            samples,
            statistic,
            paired=True,
            vectorized=False,
            n_resamples=BOOTSTRAP_RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
    except ValueError:  # e.g. fewer than two observations
        return math.nan, math.nan
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def weighted_f1(true: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Weighted F1 of integer labels (sklearn's definition, zero_division=0), fast enough to
    run inside a bootstrap; tests check it against sklearn.metrics.f1_score."""
    tp = np.bincount(true[pred == true], minlength=n_classes).astype(float)
    support = np.bincount(true, minlength=n_classes).astype(float)
    predicted = np.bincount(pred, minlength=n_classes).astype(float)
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros(n_classes), where=denominator > 0)
    return float(np.sum(f1 * support) / support.sum()) if support.sum() else 0.0


def paired_seed(true, pred_a, pred_b, seed: int = 0) -> dict:
    """Model A vs B on the same test images of one seed: Δ (A − B, points) with paired
    bootstrap CIs of accuracy and weighted F1, and McNemar's exact p."""
    true, pred_a, pred_b = (np.asarray(x) for x in (true, pred_a, pred_b))
    names, codes = np.unique(np.concatenate([true, pred_a, pred_b]), return_inverse=True)
    t, a, b = np.split(codes, 3)
    k = len(names)

    def delta_accuracy(t, a, b):
        return 100 * (np.mean(a == t) - np.mean(b == t))

    def delta_f1(t, a, b):
        return 100 * (weighted_f1(t, a, k) - weighted_f1(t, b, k))

    samples = (t, a, b)
    return {
        "delta_accuracy": float(delta_accuracy(*samples)),
        "delta_accuracy_ci": _bootstrap_ci(delta_accuracy, samples, seed),
        "delta_weighted_f1": float(delta_f1(*samples)),
        "delta_weighted_f1_ci": _bootstrap_ci(delta_f1, samples, seed + 1),
        "mcnemar": mcnemar_exact(pred_a == true, pred_b == true),
        "n_images": int(len(true)),
    }


def minimum_seeds_for_significance(alpha: float = 0.05) -> dict:
    """The fewest seeds with which each across-seed test can reach p < alpha at all (two-sided):
    exact Wilcoxon signed-rank needs every difference on one side, p = 2 / 2^n; the paired t-test
    can in principle reach any p from n = 2 but needs a huge, consistent effect with few seeds
    (at n = 3 a Δ of ~2.5 sd of the differences; at n = 5, ~1.2 sd)."""
    wilcoxon_n = next(
        n
        for n in range(2, 30)
        if stats.wilcoxon(np.arange(1, n + 1), alternative="two-sided", method="exact").pvalue
        < alpha
    )
    effect = {n: float(stats.t.ppf(1 - alpha / 2, n - 1) / math.sqrt(n)) for n in (2, 3, 5, 10)}
    return {"wilcoxon_exact": wilcoxon_n, "paired_t": 2, "paired_t_effect_in_sd": effect}
