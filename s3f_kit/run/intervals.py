"""An interval on every number of one run: a stratified bootstrap over the test images, Wilson
intervals on per-class clinical metrics, and a validation-chosen operating point.

The paper prints each metric as a bare number from one test split of 156–1,512 images. One run's
numbers get their sampling uncertainty here, over the test images (the across-seed uncertainty is
`s3f_stats.describe`):

- `bootstrap_intervals`: accuracy, weighted and macro F1, Cohen's κ, MCC and ROC AUC, each with a
  95 % percentile interval from a seeded bootstrap that resamples the test images *within each
  true class* (stratified: every resample keeps the split's class counts, so AUC and the per-class
  F1s are always defined). The metrics of all resamples come from one batch of confusion matrices
  and ranks, so 2,000 resamples of a 1,512-image split take about a second.
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
from scipy import stats
from sklearn import metrics as skm
from statsmodels.stats.proportion import proportion_confint

CONFIDENCE = 0.95
RESAMPLES = 2000  # the minimum; percentiles at 2.5 % / 97.5 % rest on 50 resamples each
BOOTSTRAP_SEED = 20250929  # fixed: a run's intervals are reproducible from its predictions
_CHUNK = 250  # resamples per batch: bounds memory at 250 × N × 8 bytes per array

INTERVAL_METRICS = ("accuracy", "weighted_f1", "macro_f1", "cohen_kappa", "mcc", "roc_auc")


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


def _stratified_indices(labels: np.ndarray, resamples: int, rng) -> np.ndarray:
    """(resamples, N) indices: each row redraws every class's images with replacement."""
    columns = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        columns.append(members[rng.integers(0, len(members), size=(resamples, len(members)))])
    return np.concatenate(columns, axis=1)


def _confusions(true: np.ndarray, pred: np.ndarray, classes: int) -> np.ndarray:
    """(B, K, K) confusion matrices (rows true, columns predicted) of B rows of labels."""
    batch = true.shape[0]
    codes = true * classes + pred + (np.arange(batch) * classes * classes)[:, None]
    counts = np.bincount(codes.ravel(), minlength=batch * classes * classes)
    return counts.reshape(batch, classes, classes).astype(float)


def _confusion_metrics(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """sklearn's accuracy, weighted/macro F1 (zero_division=0, macro over the classes that occur
    in truth or prediction), κ and MCC, from a batch of confusion matrices."""
    n = confusion.sum(axis=(1, 2))
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    support = confusion.sum(axis=2)
    predicted = confusion.sum(axis=1)
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    present = denominator > 0
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
    }


def _auc_rows(positive: np.ndarray, score: np.ndarray) -> np.ndarray:
    """ROC AUC of each row (Mann–Whitney U from average ranks, ties counted half)."""
    ranks = stats.rankdata(score, axis=1)
    n_pos = positive.sum(axis=1)
    n_neg = positive.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        u = (ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2
        return u / (n_pos * n_neg)


def _auc(labels: np.ndarray, class_probs: np.ndarray) -> np.ndarray:
    """Binary: AUC of the positive class; multi-class: one-vs-rest macro AUC (sklearn's
    `roc_auc_score(..., multi_class='ovr', average='macro')`), for each row of a batch."""
    if class_probs.shape[-1] == 2:
        return _auc_rows(labels == 1, class_probs[..., 1])
    per_class = [_auc_rows(labels == k, class_probs[..., k]) for k in range(class_probs.shape[-1])]
    return np.mean(per_class, axis=0)


def _metrics_of(labels, predicted, class_probs, classes) -> dict[str, np.ndarray]:
    values = _confusion_metrics(_confusions(labels, predicted, classes))
    values["roc_auc"] = _auc(labels, class_probs)
    return values


def bootstrap_intervals(
    labels, predicted, class_probs, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> dict[str, dict]:
    """{metric: {"value", "ci_low", "ci_high"}} over a stratified bootstrap of the test images.

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
    classes = class_probs.shape[1]
    point = _metrics_of(labels[None], predicted[None], class_probs[None], classes)
    rng = np.random.default_rng(seed)
    drawn: dict[str, list] = {name: [] for name in INTERVAL_METRICS}
    for start in range(0, resamples, _CHUNK):
        rows = _stratified_indices(labels, min(_CHUNK, resamples - start), rng)
        for name, values in _metrics_of(
            labels[rows], predicted[rows], class_probs[rows], classes
        ).items():
            drawn[name].append(values)
    tail = (1 - CONFIDENCE) / 2 * 100
    result = {}
    for name in INTERVAL_METRICS:
        values = np.concatenate(drawn[name])
        values = values[np.isfinite(values)]
        low, high = np.percentile(values, [tail, 100 - tail]) if len(values) else (math.nan,) * 2
        result[name] = {
            "value": float(point[name][0]),
            "ci_low": float(low),
            "ci_high": float(high),
        }
    result["bootstrap"] = {
        "resamples": int(resamples),
        "seed": int(seed),
        "confidence": CONFIDENCE,
        "method": "stratified percentile bootstrap over test images",
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
