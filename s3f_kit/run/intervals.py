"""An interval on every number of one run: a stratified bootstrap over the test images, Wilson
intervals on accuracy and per-class clinical metrics, and a validation-chosen operating point.

The paper prints each metric as a bare number from one test split of 156–1,512 images. One run's
numbers get their sampling uncertainty here, over the test images (across seeds:
`s3f_stats.across_runs`; docs/statistics.md):

- `bootstrap_intervals`: accuracy with its Wilson score interval (a proportion of independent
  images: it keeps its width at 0 % or 100 % correct), and weighted and macro F1, Cohen's κ, MCC
  and ROC AUC, each with a 95 % percentile interval from a seeded bootstrap that resamples the
  test images *within each true class* (stratified: every resample keeps the split's class
  counts, so AUC and the per-class F1s are always defined). Every interval lies inside the
  metric's range. The metrics of all resamples come from one batch of weighted confusion
  matrices and ranks (s3f_stats.metrics_of), so 2,000 resamples of a 1,512-image split take
  about a second.
- `clinical_metrics`: sensitivity, specificity, PPV and NPV of each class (one-vs-rest), with
  Wilson score intervals (statsmodels), which stay inside [0, 1] and keep their coverage at the
  small counts of the minority classes.
- `youden_threshold`: the binary operating point that maximises Youden's J (sensitivity +
  specificity − 1) on the *validation* split. Under the paper protocol the validation data is the
  test split, so choosing anything on it is refused.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as skm
from statsmodels.stats.proportion import proportion_confint

from s3f_kit.reports import stats as s3f_stats

CONFIDENCE = s3f_stats.CONFIDENCE
RESAMPLES = 2000  # the minimum; percentiles at 2.5 % / 97.5 % rest on 50 resamples each
BOOTSTRAP_SEED = 20250929  # fixed: a run's intervals are reproducible from its predictions
_CHUNK = 250  # resamples per batch: bounds memory at 250 × N × 8 bytes per array

# The metrics every run records an interval of (two-class runs also sensitivity and
# specificity: s3f_stats.run_metrics).
INTERVAL_METRICS = s3f_stats.run_metrics(classes=0)


class ProtocolError(ValueError):
    """A choice that needs validation data was asked for where none exists apart from the test
    split (the paper protocol)."""


def refuse_on_test_split(protocol: str, what: str) -> None:
    if protocol == "paper":
        raise ProtocolError(
            f"{what} needs a validation split apart from the test images; under the paper "
            "protocol the validation data is the test split, so it is not done "
            "(run with protocol='holdout')"
        )


# --------------------------------------------------------------------------- bootstrap


def bootstrap_intervals(
    labels, predicted, class_probs, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> dict[str, dict]:
    """{metric: {"value", "ci_low", "ci_high", "method"}} over the test images: accuracy (a
    proportion of independent images) with its Wilson interval, every other metric with the
    percentile interval of a stratified bootstrap. Both stay inside the metric's range
    (s3f_stats.METRIC_RANGES), and the Wilson interval keeps its width at 0 % or 100 % correct,
    where every bootstrap resample is the same.

    `class_probs` is (N, K) (a sigmoid model's p as (1 − p, p)); `predicted` the model's labels
    (the paper's rule: argmax, or p > 0.5). AUC is NaN where a class has no test image."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    class_probs = np.asarray(class_probs, dtype=float)
    if not (len(labels) == len(predicted) == len(class_probs)) or len(labels) < 2:
        raise ValueError(
            f"bootstrap_intervals: need ≥ 2 test images with one label, prediction and "
            f"probability row each (got {len(labels)}, {len(predicted)}, {len(class_probs)})"
        )
    names = s3f_stats.run_metrics(class_probs.shape[1])
    ones = np.ones((1, len(labels)))
    point = s3f_stats.metrics_of(labels, predicted, class_probs, ones, names)
    rng = np.random.default_rng(seed)
    drawn: dict[str, list] = {name: [] for name in names}
    for start in range(0, resamples, _CHUNK):
        weights = s3f_stats.stratified_weights(labels, min(_CHUNK, resamples - start), rng)
        found = s3f_stats.metrics_of(labels, predicted, class_probs, weights, names)
        for name, values in found.items():
            drawn[name].append(values)
    result = {}
    for name in names:
        low, high = s3f_stats.percentile_interval(np.concatenate(drawn[name]))
        result[name] = {"value": float(point[name][0]), "ci_low": low, "ci_high": high,
                        "method": "stratified percentile bootstrap"}  # fmt: skip
    correct = int(np.sum(labels == predicted))
    result["accuracy"] = {**wilson(correct, len(labels)), "method": "Wilson score"}
    result["bootstrap"] = {
        "resamples": int(resamples),
        "seed": int(seed),
        "confidence": CONFIDENCE,
        "method": "stratified percentile bootstrap over test images (accuracy: Wilson)",
    }
    return result


# --------------------------------------------------------------------------- clinical metrics


def wilson(count: int, total: int) -> dict:
    """A proportion with its 95 % Wilson score interval (NaN when the denominator is 0)."""
    if total == 0:
        return {"value": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0}
    low, high = proportion_confint(count, total, alpha=1 - CONFIDENCE, method="wilson")
    return {"value": count / total, "ci_low": float(low), "ci_high": float(high), "n": int(total)}


def clinical_metrics(labels, predicted, class_names) -> dict[str, dict]:
    """Per class (one-vs-rest): sensitivity, specificity, PPV and NPV with Wilson intervals."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    result = {}
    for k, name in enumerate(class_names):
        truth, called = labels == k, predicted == k
        tp = int(np.sum(truth & called))
        fn = int(np.sum(truth & ~called))
        fp = int(np.sum(~truth & called))
        tn = int(np.sum(~truth & ~called))
        result[name] = {
            "sensitivity": wilson(tp, tp + fn),
            "specificity": wilson(tn, tn + fp),
            "ppv": wilson(tp, tp + fp),
            "npv": wilson(tn, tn + fn),
        }
    return result


def youden_threshold(protocol: str, val_labels, val_scores) -> float:
    """The score threshold t (predict positive when p ≥ t) that maximises Youden's J on the
    validation split. Refused under the paper protocol (its validation data is the test split)."""
    refuse_on_test_split(protocol, "choosing a decision threshold")
    val_labels = np.asarray(val_labels)
    if len(np.unique(val_labels)) < 2:
        raise ValueError("youden_threshold: the validation split needs images of both classes")
    fpr, tpr, thresholds = skm.roc_curve(val_labels, np.asarray(val_scores, dtype=float))
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))  # roc_curve's first threshold is +inf
