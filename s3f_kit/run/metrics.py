"""Predictions, losses and the paper's evaluation metrics (docs/paper.md §3–§4).

The loss is computed exactly as Keras' own `model.evaluate` computes it: from the output layer's
logits (Keras keeps them on the softmax/sigmoid output inside a compiled function), not from
clipped probabilities — the two differ widely once predictions saturate, and the paper's
ReduceLROnPlateau watched Keras' value.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from sklearn import metrics as skm

import s3f_common
from s3f_kit import recipe as s3f_recipe
from s3f_kit.reports import stats as s3f_stats

BINARY_THRESHOLD = 0.5  # the paper predicts the positive class when p > 0.5


def predictor(model):
    """A function dataset → (probabilities (N, units), mean loss) for `model`, over (images,
    labels) batches, traced once: keep it to evaluate the same model again (tracing costs about
    half a second, more than a demo epoch's whole validation pass).

    The per-image loss is taken inside a tf.function on the model's symbolic output, where the
    TensorFlow backend finds the logits, so the mean equals `model.evaluate`'s loss."""
    binary = s3f_common.is_binary(s3f_common.num_classes_of(model))
    loss_fn = keras.losses.get(s3f_recipe.loss(model))  # the loss the recipe trains with

    @tf.function(reduce_retracing=True)
    def step(images, labels):
        probs = model(images, training=False)
        target = tf.cast(tf.reshape(labels, (-1, 1)), probs.dtype) if binary else labels
        return probs, loss_fn(target, probs)

    def predict(dataset) -> tuple[np.ndarray, float]:
        all_probs, losses = [], []
        for images, labels in dataset:
            probs, loss = step(images, labels)
            all_probs.append(np.asarray(probs, dtype=np.float64))
            losses.append(np.asarray(loss, dtype=np.float64).reshape(-1))
        if not all_probs:
            raise ValueError("predictor: the dataset is empty")
        return np.concatenate(all_probs), float(np.mean(np.concatenate(losses)))

    return predict


def predict_with_loss(model, dataset) -> tuple[np.ndarray, float]:
    """One pass over (images, labels) batches → (probabilities (N, units), mean loss), equal to
    `model.evaluate`'s loss (see predictor)."""
    return predictor(model)(dataset)


def predicted_labels(probs: np.ndarray, binary: bool) -> np.ndarray:
    """A model's outputs → class indices: the paper's sigmoid (one column) predicts the positive
    class when p > BINARY_THRESHOLD; a softmax, its argmax. The kit's one place for that rule."""
    return (probs[:, 0] > BINARY_THRESHOLD).astype(int) if binary else probs.argmax(axis=1)


def labels_of_class_probabilities(per_class: np.ndarray) -> np.ndarray:
    """The same rule for (N, classes) probabilities (class_probabilities' form): with two
    classes, the positive one when its probability is over BINARY_THRESHOLD."""
    binary = per_class.shape[1] == 2
    return predicted_labels(per_class[:, 1:] if binary else per_class, binary)


def selection_scores(labels, probs, binary) -> dict:
    """Accuracy and the paper's checkpoint-selection F1: weighted F1 (multi-class) or the F1 of
    the positive class (binary). NaN when the model's outputs are not finite."""
    labels = np.asarray(labels)
    if not np.all(np.isfinite(probs)):
        return {"accuracy": float("nan"), "selection_f1": float("nan")}
    predicted = predicted_labels(probs, binary)
    selection_f1 = (
        skm.f1_score(labels, predicted, pos_label=1, zero_division=0)
        if binary
        else skm.f1_score(labels, predicted, average="weighted", zero_division=0)
    )
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "selection_f1": float(selection_f1),
    }


def class_probabilities(probs: np.ndarray, binary: bool) -> np.ndarray:
    """(N, classes): a sigmoid model's single column p becomes (1 - p, p)."""
    return np.column_stack([1 - probs[:, 0], probs[:, 0]]) if binary else probs


def test_metrics(labels, probs, loss, class_names, binary) -> dict:
    """Every metric of the paper's evaluation (paper.md §4) from test labels and probabilities."""
    labels = np.asarray(labels)
    predicted = predicted_labels(probs, binary)
    indices = list(range(len(class_names)))
    result = {"loss": float(loss), **selection_scores(labels, probs, binary)}
    counts = np.bincount(predicted, minlength=len(class_names))
    result.update(
        macro_f1=float(skm.f1_score(labels, predicted, average="macro", zero_division=0)),
        weighted_f1=float(skm.f1_score(labels, predicted, average="weighted", zero_division=0)),
        cohen_kappa=float(skm.cohen_kappa_score(labels, predicted)),
        mcc=float(skm.matthews_corrcoef(labels, predicted)),
        confusion_matrix=skm.confusion_matrix(labels, predicted, labels=indices).tolist(),
        classification_report=skm.classification_report(
            labels,
            predicted,
            labels=indices,
            target_names=class_names,
            output_dict=True,
            zero_division=0,
        ),
        predicted_class_counts=dict(zip(class_names, counts.tolist(), strict=True)),
        # One class for every test image: the model learned nothing usable (say so loudly).
        collapsed=bool(np.count_nonzero(counts) <= 1 and len(labels) > 1),
    )
    if binary:
        result["positive_f1"] = result["selection_f1"]
    try:  # undefined when the test split lacks a class
        if binary:
            result["roc_auc"] = float(skm.roc_auc_score(labels, probs[:, 0]))
        else:
            for average in ("macro", "weighted"):
                result[f"roc_auc_{average}"] = float(
                    skm.roc_auc_score(
                        labels, probs, multi_class="ovr", average=average, labels=indices
                    )
                )
    except ValueError as error:
        result["roc_auc_error"] = str(error)
    return result


def reviewer_metrics(labels, probs, class_names, binary, protocol, val=None) -> dict:
    """What a medical-imaging reviewer asks of one run beyond the paper's numbers: a bootstrap
    interval on every headline metric, per-class sensitivity/specificity/PPV/NPV with Wilson
    intervals, calibration (NLL, Brier, ECE, reliability bins; temperature scaling fitted on the
    validation split), and for a binary model the operating point chosen on validation by
    Youden's J beside the paper's p > 0.5. `val`: (labels, probs) of the validation split, used
    under holdout only (under the paper protocol the validation data is the test split)."""
    from s3f_kit.run import calibration as s3f_calibration
    from s3f_kit.run import intervals as s3f_intervals

    labels = np.asarray(labels)
    class_probs = class_probabilities(probs, binary)
    predicted = predicted_labels(probs, binary)
    use_val = protocol != "paper" and val is not None
    val_labels, val_probs = (np.asarray(val[0]), val[1]) if use_val else (None, None)
    record = {
        "intervals": s3f_intervals.bootstrap_intervals(labels, predicted, class_probs),
        "per_class": s3f_intervals.clinical_metrics(labels, predicted, class_names),
        "calibration": s3f_calibration.calibration_report(
            protocol,
            labels,
            class_probs,
            val_labels,
            class_probabilities(val_probs, binary) if use_val else None,
        ),
    }
    if binary:
        record["operating_point"] = _youden_operating_point(
            protocol, labels, probs, class_names, val_labels, val_probs
        )
    return record


def _youden_operating_point(protocol, labels, probs, class_names, val_labels, val_probs) -> dict:
    from s3f_kit.run import intervals as s3f_intervals

    if val_labels is None:
        why = (
            "the paper protocol's validation data is the test split"
            if protocol == "paper"
            else "no validation predictions"
        )
        return {"status": f"not chosen: {why}", "paper_threshold": BINARY_THRESHOLD}
    threshold = s3f_intervals.youden_threshold(protocol, val_labels, val_probs[:, 0])
    predicted = (probs[:, 0] >= threshold).astype(int)
    positive = class_names[1]
    clinical = s3f_intervals.clinical_metrics(labels, predicted, class_names)[positive]
    return {
        "status": "chosen on the validation split (Youden's J)",
        "paper_threshold": BINARY_THRESHOLD,
        "threshold": threshold,
        "positive_class": positive,
        "accuracy": float(np.mean(predicted == labels)),
        "sensitivity": clinical["sensitivity"],
        "specificity": clinical["specificity"],
    }


def _with_interval(entry: dict, scale: float = 100.0, digits: int = 1) -> str:
    value, low, high = (entry[k] * scale for k in ("value", "ci_low", "ci_high"))
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def reviewer_report(metrics: dict) -> str:
    """The run's intervals, per-class metrics and calibration as a few lines of text (what the
    notebook prints under its metrics)."""
    intervals = metrics["intervals"]
    boot = intervals["bootstrap"]
    lines = [
        f"Test metrics with 95 % intervals ({boot['method']}, {boot['resamples']} resamples; "
        "one run: these intervals cover the test sample, not seeds; accuracy in %, the others "
        "on their own scale — κ and MCC run from −1 to 1):"
    ]
    for name in s3f_stats.INTERVAL_METRICS:
        entry = intervals.get(name)  # sensitivity, specificity: two-class runs only
        if entry and np.isfinite(entry["value"]):
            scale = s3f_stats.display_scale(name)
            cell = _with_interval(entry, scale, 1 if scale == 100 else 3)
            lines.append(f"  {name:<12} {cell}")
    lines.append("Per class (%, Wilson 95 % intervals):")
    for name, values in metrics["per_class"].items():
        cells = ", ".join(
            f"{key} {_with_interval(values[key])}"
            for key in ("sensitivity", "specificity", "ppv", "npv")
            if values[key]["n"]
        )
        lines.append(f"  {name}: {cells}")
    cal = metrics["calibration"]
    lines.append(
        f"Calibration: NLL {cal['nll']:.3f}, Brier {cal['brier']:.3f}, ECE {cal['ece']:.3f}"
    )
    scaling = cal["temperature_scaling"]
    if "after" in scaling:
        after = scaling["after"]
        lines.append(
            f"  temperature {scaling['temperature']:.2f} ({scaling['status']}): NLL "
            f"{after['nll']:.3f}, Brier {after['brier']:.3f}, ECE {after['ece']:.3f}"
        )
    else:
        lines.append(f"  temperature scaling {scaling['status']}")
    point = metrics.get("operating_point")
    if point and "threshold" in point:
        lines.append(
            f"Operating point p ≥ {point['threshold']:.3f} ({point['status']}): accuracy "
            f"{point['accuracy'] * 100:.1f} %, {point['positive_class']} sensitivity "
            f"{_with_interval(point['sensitivity'])}, specificity "
            f"{_with_interval(point['specificity'])}"
        )
    elif point:
        lines.append(f"Operating point: p > {point['paper_threshold']} only ({point['status']})")
    return "\n".join(lines)


def run_summary(metrics: dict, run_dir) -> str:
    """The few lines a notebook ends with, in the terminal of a plain papermill call too
    (s3f_env.to_terminal): the dataset's primary metrics with their intervals over the test
    images (DatasetInfo.primary_metrics), the clean-test accuracy, flags and the run folder."""
    from data_setup.datasets import DATASETS

    dataset = metrics.get("dataset", "")
    info = DATASETS.get(dataset)
    primary = info.primary_metrics if info else ("accuracy", "macro_f1")
    intervals = metrics.get("intervals") or {}
    cells = []
    for name in primary:
        entry = intervals.get(name)
        if entry and np.isfinite(entry.get("value", np.nan)):
            scale = s3f_stats.display_scale(name)
            unit = " %" if scale == 100 else ""
            cells.append(f"{name} {_with_interval(entry, scale, 1 if scale == 100 else 3)}{unit}")
    demo = " (SYNTHETIC DEMO DATA: says nothing about the paper)"
    demo = demo if metrics.get("demo_data") else ""
    lines = [
        f"{metrics.get('experiment', '')} on {dataset or 'your data'}, seed "
        f"{metrics.get('seed')}, protocol {metrics.get('protocol')}{demo}",
        "  " + ("; ".join(cells) or "no primary metric recorded") + " (95 % over test images)",
    ]
    clean = metrics.get("clean_test") or {}
    if clean.get("images"):
        lines.append(
            f"  clean test: accuracy {100 * clean['accuracy']:.1f} % on {clean['images']} of "
            f"{metrics.get('test_images', '?')} images (no near-duplicate or patient in training)"
        )
    elif "clean_test" in metrics:
        lines.append("  clean test: no test image without a near-duplicate or patient in training")
    flags = [flag for flag in ("collapsed", "diverged") if metrics.get(flag)]
    lines.append(f"  flags: {', '.join(flags) if flags else 'none'}")
    lines.append(f"  run folder: {run_dir}")
    return "\n".join(lines)
