"""Uncertainty for the kit's numbers: seeds, confidence intervals, paired tests (scipy/statsmodels).

Every published S³F-Net number is one unseeded run on a test set of 156–1,512 images. Here:
- `describe(values)`: mean ± sd and a 95 % t-interval across seeds (one run: "single run");
- `paired_seed(a, b)`: two models on the same test images of one seed — McNemar's exact test
  on the discordant images and a paired bootstrap CI of Δaccuracy and Δweighted-F1;
- `paired_across_seeds(a, b)`: seed-level metrics of two models — a paired t-test and a
  bootstrap CI of the mean difference.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 1000


def describe(values) -> dict:
    """Mean, sd and a 95 % t confidence interval of seed-level values."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": math.nan, "sd": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    mean = float(values.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "sd": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                "label": "single run"}  # fmt: skip
    sd = float(values.std(ddof=1))
    if sd == 0:
        low = high = mean
    else:
        low, high = stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return {"n": n, "mean": mean, "sd": sd, "ci_low": float(low), "ci_high": float(high)}


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


def paired_across_seeds(values_a, values_b, seed: int = 0) -> dict:
    """Seed-level values of A and B (same seeds, same order): mean Δ, its 95 % bootstrap CI,
    the paired t-test p (two-sided) — NaN with fewer than two seeds."""
    a, b = np.asarray(values_a, float), np.asarray(values_b, float)
    differences = a - b
    n = len(differences)
    result = {"n": n, "mean_delta": float(differences.mean()) if n else math.nan}
    if n < 2:
        result.update(ci_low=math.nan, ci_high=math.nan, p=math.nan, t_ci=(math.nan, math.nan))
        return result
    if np.all(differences == differences[0]):  # no spread: every seed gives the same Δ
        p = 1.0 if differences[0] == 0 else 0.0
        low = high = float(differences[0])
        t_ci = (low, high)
    else:
        test = stats.ttest_rel(a, b)
        p = float(test.pvalue)
        interval = test.confidence_interval(CONFIDENCE)
        t_ci = (float(interval.low), float(interval.high))
        low, high = _bootstrap_ci(np.mean, (differences,), seed)
    result.update(ci_low=low, ci_high=high, p=p, t_ci=t_ci)
    return result


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


def corrected_resampled_t(differences, test_fraction: float) -> dict:
    """Nadeau & Bengio's (2003) corrected resampled t-test over the k·r differences of a
    repeated k-fold cross-validation (one per fold and repetition; seeds of one fold count as
    repetitions).

    The folds share most of their training data, so their differences are positively
    correlated and the plain paired t-test is far too confident. The correction inflates the
    variance of the mean from σ²/n to (1/n + n_test/n_train)·σ², with n_test/n_train =
    test_fraction / (1 − test_fraction). That is 1/(k − 1) for k folds, and the test has n − 1
    degrees of freedom. It assumes the differences are exchangeable, and it is conservative
    when the training sets overlap less than k-fold ones do."""
    d = np.asarray([v for v in differences if v is not None and np.isfinite(v)], dtype=float)
    n = len(d)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    result = {"n": n, "mean_delta": float(d.mean()) if n else math.nan}
    if n < 2:
        return {**result, "t": math.nan, "p": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    variance = float(d.var(ddof=1))
    scale = math.sqrt((1 / n + test_fraction / (1 - test_fraction)) * variance)
    if scale == 0:
        p = 1.0 if d[0] == 0 else 0.0
        return {**result, "t": math.nan, "p": p, "ci_low": float(d[0]), "ci_high": float(d[0])}
    t = float(d.mean() / scale)
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * scale)
    return {
        **result,
        "t": t,
        "p": float(2 * stats.t.sf(abs(t), n - 1)),
        "ci_low": float(d.mean() - half),
        "ci_high": float(d.mean() + half),
    }
