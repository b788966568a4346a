"""Do a run's probabilities mean anything? Proper scores, ECE, reliability, temperature.

Accuracy and F1 only look at the predicted class. A clinician reading "p = 0.93" needs the
probability itself to be right, which is calibration, a separate axis of evaluation. Proper
scoring rules come first, because no miscalibrated model can score better on them than the
calibrated one:

- `nll`: the mean negative log-likelihood of the true class. Probabilities are clipped to
  [1e-7, 1], Keras' epsilon, so a single confident mistake counts large but finite.
- `brier`: the multi-class Brier score, the mean over images of Σ_k (p_k − y_k)². A sigmoid
  model counts as two columns (1 − p, p), so its value is twice the one-column binary Brier score.
- `reliability`: the top-label confidence in `BINS` equal-width bins over [0, 1] (the lowest bin
  includes 0, each bin includes its upper edge). Each bin gets its mean confidence, its accuracy
  and its count. The expected calibration error (ECE) is Σ_b (n_b / N)·|acc_b − conf_b|. ECE
  depends on the binning and is not a proper score, so it is reported beside NLL and Brier, never
  instead of them.
- `fit_temperature`: one scalar T > 0, with probabilities softmax(log p / T), fitted by minimising
  NLL on the *validation* split (Guo et al., 2017). It changes no prediction, only confidence. Under
  the paper protocol the validation data is the test split, so fitting there is refused.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

from s3f_kit.run.intervals import refuse_on_test_split

EPSILON = 1e-7  # Keras' clipping epsilon for cross-entropy
BINS = 15  # equal-width confidence bins for ECE and the reliability diagram
TEMPERATURE_BOUNDS = (0.05, 20.0)


def _checked(labels, class_probs) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64)
    class_probs = np.asarray(class_probs, dtype=float)
    if class_probs.ndim != 2 or len(class_probs) != len(labels) or len(labels) == 0:
        raise ValueError(
            f"calibration: need an (N, classes) probability array for N labels "
            f"(got {class_probs.shape} for {len(labels)} labels)"
        )
    return labels, class_probs


def nll(labels, class_probs) -> float:
    labels, class_probs = _checked(labels, class_probs)
    true = class_probs[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(true, EPSILON, 1.0))))


def brier(labels, class_probs) -> float:
    labels, class_probs = _checked(labels, class_probs)
    onehot = np.eye(class_probs.shape[1])[labels]
    return float(np.mean(np.sum((class_probs - onehot) ** 2, axis=1)))


def reliability(labels, class_probs, bins: int = BINS) -> dict:
    """Top-label reliability bins and the ECE computed from them."""
    labels, class_probs = _checked(labels, class_probs)
    confidence = class_probs.max(axis=1)
    correct = class_probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        row = {"low": float(edges[b]), "high": float(edges[b + 1]), "count": count}
        if count:
            row["confidence"] = float(confidence[members].mean())
            row["accuracy"] = float(correct[members].mean())
            ece += count / len(labels) * abs(row["accuracy"] - row["confidence"])
        rows.append(row)
    return {"bins": rows, "ece": float(ece), "binning": f"{bins} equal-width bins"}


def scores(labels, class_probs) -> dict:
    """NLL, Brier and ECE of one set of probabilities."""
    return {
        "nll": nll(labels, class_probs),
        "brier": brier(labels, class_probs),
        "ece": reliability(labels, class_probs)["ece"],
    }


def apply_temperature(class_probs, temperature: float) -> np.ndarray:
    logits = np.log(np.clip(np.asarray(class_probs, dtype=float), EPSILON, 1.0))
    return special.softmax(logits / temperature, axis=1)


def fit_temperature(protocol: str, val_labels, val_probs) -> float:
    """The temperature that minimises validation NLL (refused under the paper protocol)."""
    refuse_on_test_split(protocol, "fitting a temperature")
    val_labels, val_probs = _checked(val_labels, val_probs)
    low, high = (math.log(t) for t in TEMPERATURE_BOUNDS)
    result = optimize.minimize_scalar(
        lambda log_t: nll(val_labels, apply_temperature(val_probs, math.exp(log_t))),
        bounds=(low, high),
        method="bounded",
    )
    return float(math.exp(result.x))


def calibration_report(protocol, test_labels, test_probs, val_labels=None, val_probs=None):
    """The run's calibration record: scores and reliability bins on the test split; under
    holdout also the validation-fitted temperature and the test scores after scaling."""
    report = {**scores(test_labels, test_probs), "reliability": reliability(test_labels,
              test_probs)}  # fmt: skip
    if protocol == "paper" or val_labels is None:
        report["temperature_scaling"] = {
            "status": "not done: the paper protocol has no validation split apart from the test "
            "split"
            if protocol == "paper"
            else "not done: no validation predictions"
        }
        return report
    temperature = fit_temperature(protocol, val_labels, val_probs)
    scaled = apply_temperature(test_probs, temperature)
    report["temperature_scaling"] = {
        "status": "fitted on the validation split",
        "temperature": temperature,
        "after": {**scores(test_labels, scaled), "reliability": reliability(test_labels, scaled)},
    }
    return report
