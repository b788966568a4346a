"""Per-run intervals, clinical metrics and calibration against known cases (no TensorFlow)."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from statsmodels.stats.proportion import proportion_confint

from s3f_kit.run import calibration as cal
from s3f_kit.run import intervals as iv


def _random_run(rng, n=120, classes=3, skill=0.7):
    labels = rng.integers(0, classes, size=n)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), labels] += skill * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probs.argmax(axis=1), probs


@pytest.mark.parametrize("classes", [2, 3, 7])
def test_point_values_equal_sklearn(classes):
    rng = np.random.default_rng(classes)
    labels, predicted, probs = _random_run(rng, classes=classes)
    result = iv.bootstrap_intervals(labels, predicted, probs, resamples=200)
    assert result["accuracy"]["value"] == pytest.approx(skm.accuracy_score(labels, predicted))
    for average in ("weighted", "macro"):
        assert result[f"{average}_f1"]["value"] == pytest.approx(
            skm.f1_score(labels, predicted, average=average, zero_division=0)
        )
    assert result["cohen_kappa"]["value"] == pytest.approx(skm.cohen_kappa_score(labels, predicted))
    assert result["mcc"]["value"] == pytest.approx(skm.matthews_corrcoef(labels, predicted))
    expected_auc = (
        skm.roc_auc_score(labels, probs[:, 1])
        if classes == 2
        else skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro")
    )
    assert result["roc_auc"]["value"] == pytest.approx(expected_auc)
    for name in iv.INTERVAL_METRICS:
        assert result[name]["ci_low"] <= result[name]["value"] <= result[name]["ci_high"]


def test_batched_metrics_equal_sklearn_on_resamples():
    """The vectorized confusion-matrix metrics agree with sklearn on every resample, including
    ones where a class is never predicted."""
    rng = np.random.default_rng(3)
    labels, predicted, _ = _random_run(rng, n=40, classes=4, skill=0.3)
    predicted[predicted == 3] = 0  # class 3 is never predicted
    rows = iv._stratified_indices(labels, 25, rng)
    batch = iv._confusion_metrics(iv._confusions(labels[rows], predicted[rows], 4))
    for b, row in enumerate(rows):
        t, p = labels[row], predicted[row]
        assert batch["macro_f1"][b] == pytest.approx(skm.f1_score(t, p, average="macro"))
        assert batch["mcc"][b] == pytest.approx(skm.matthews_corrcoef(t, p))
        assert batch["cohen_kappa"][b] == pytest.approx(skm.cohen_kappa_score(t, p))
        assert np.array_equal(np.bincount(t, minlength=4), np.bincount(labels, minlength=4))


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(0)
    labels, predicted, probs = _random_run(rng)
    first = iv.bootstrap_intervals(labels, predicted, probs, resamples=300)
    assert first == iv.bootstrap_intervals(labels, predicted, probs, resamples=300)
    other = iv.bootstrap_intervals(labels, predicted, probs, resamples=300, seed=1)
    assert other["accuracy"]["ci_low"] != first["accuracy"]["ci_low"] or (
        other["accuracy"]["ci_high"] != first["accuracy"]["ci_high"]
    )


def test_bootstrap_interval_covers_planted_accuracy_at_nominal_rate():
    """A model that is right with probability 0.8 on each of 200 images: over 200 independent
    test sets the 95 % interval should cover 0.8 about 95 % of the time."""
    rng = np.random.default_rng(11)
    labels = np.repeat([0, 1], 100)
    covered = 0
    draws = 200
    for draw in range(draws):
        right = rng.random(200) < 0.8
        predicted = np.where(right, labels, 1 - labels)
        probs = np.column_stack([1 - predicted * 0.9 - 0.05, predicted * 0.9 + 0.05])
        ci = iv.bootstrap_intervals(labels, predicted, probs, resamples=1000, seed=draw)["accuracy"]
        covered += ci["ci_low"] <= 0.8 <= ci["ci_high"]
    assert 0.89 <= covered / draws <= 0.99, covered / draws


def test_too_few_images_is_one_clear_error():
    with pytest.raises(ValueError, match="need ≥ 2 test images"):
        iv.bootstrap_intervals([0], [0], [[0.9, 0.1]])


def test_wilson_equals_statsmodels_and_the_formula():
    for count, total in [(0, 10), (3, 10), (97, 100), (156, 156)]:
        result = iv.wilson(count, total)
        low, high = proportion_confint(count, total, alpha=0.05, method="wilson")
        assert (result["ci_low"], result["ci_high"]) == pytest.approx((low, high))
        z, p = 1.959963984540054, count / total
        centre = (p + z * z / (2 * total)) / (1 + z * z / total)
        half = z / (1 + z * z / total) * math.sqrt(p * (1 - p) / total + z * z / (4 * total**2))
        assert (result["ci_low"], result["ci_high"]) == pytest.approx(
            (centre - half, centre + half), abs=1e-9
        )
    assert math.isnan(iv.wilson(0, 0)["value"])


def test_clinical_metrics_of_a_known_confusion():
    # NORMAL = 0, PNEUMONIA = 1: 8 true positives, 2 missed, 3 false alarms, 7 true negatives
    labels = np.array([1] * 10 + [0] * 10)
    predicted = np.array([1] * 8 + [0] * 2 + [1] * 3 + [0] * 7)
    result = iv.clinical_metrics(labels, predicted, ["NORMAL", "PNEUMONIA"])
    pneumonia = result["PNEUMONIA"]
    assert pneumonia["sensitivity"]["value"] == pytest.approx(0.8)
    assert pneumonia["specificity"]["value"] == pytest.approx(0.7)
    assert pneumonia["ppv"]["value"] == pytest.approx(8 / 11)
    assert pneumonia["npv"]["value"] == pytest.approx(7 / 9)
    assert result["NORMAL"]["sensitivity"]["value"] == pytest.approx(0.7)
    assert pneumonia["ppv"]["n"] == 11


def test_youden_threshold_is_chosen_on_validation_only():
    labels = np.array([0] * 50 + [1] * 50)
    scores = np.concatenate([np.linspace(0.0, 0.3, 50), np.linspace(0.25, 0.6, 50)])
    threshold = iv.youden_threshold("holdout", labels, scores)
    j = lambda t: np.mean(scores[labels == 1] >= t) - np.mean(scores[labels == 0] >= t)  # noqa: E731
    assert j(threshold) == pytest.approx(max(j(t) for t in scores))
    assert 0.25 <= threshold <= 0.3
    with pytest.raises(iv.ProtocolError, match="under the paper protocol the validation data"):
        iv.youden_threshold("paper", labels, scores)


def test_brier_and_nll_of_hand_computed_examples():
    labels = [0, 1]
    probs = [[0.8, 0.2], [0.4, 0.6]]
    # (0.2² + 0.2²) and (0.4² + 0.4²), averaged
    assert cal.brier(labels, probs) == pytest.approx((0.08 + 0.32) / 2)
    assert cal.nll(labels, probs) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert cal.nll([0], [[0.0, 1.0]]) == pytest.approx(-math.log(cal.EPSILON))


def test_ece_of_a_hand_computed_example():
    # confidences 0.9, 0.9 (one right), 0.6 (right): bins (0.8667, 0.9333] and (0.5333, 0.6]
    labels = [0, 1, 0]
    probs = [[0.9, 0.1], [0.9, 0.1], [0.6, 0.4]]
    result = cal.reliability(labels, probs)
    assert result["ece"] == pytest.approx(2 / 3 * abs(0.5 - 0.9) + 1 / 3 * abs(1.0 - 0.6))
    filled = [b for b in result["bins"] if b["count"]]
    assert [b["count"] for b in filled] == [1, 2]
    assert sum(b["count"] for b in result["bins"]) == 3
    assert cal.reliability([0], [[1.0, 0.0]])["bins"][-1]["count"] == 1  # 1.0 in the top bin


def test_temperature_scaling_fixes_an_overconfident_model_and_is_refused_under_paper():
    rng = np.random.default_rng(5)
    labels, _, probs = _random_run(rng, n=600, classes=3, skill=0.25)
    sharpened = cal.apply_temperature(probs, 0.25)  # 4× over-confident logits
    val, test = slice(0, 300), slice(300, 600)
    temperature = cal.fit_temperature("holdout", labels[val], sharpened[val])
    assert 3.0 < temperature < 5.5
    before = cal.nll(labels[test], sharpened[test])
    after = cal.nll(labels[test], cal.apply_temperature(sharpened[test], temperature))
    assert after < before
    scaled = cal.apply_temperature(sharpened, temperature)
    assert np.array_equal(scaled.argmax(axis=1), sharpened.argmax(axis=1))  # predictions kept
    report = cal.calibration_report(
        "holdout", labels[test], sharpened[test], labels[val], sharpened[val]
    )
    assert report["temperature_scaling"]["after"]["nll"] == pytest.approx(after)
    assert report["temperature_scaling"]["after"]["ece"] < report["ece"]
    with pytest.raises(iv.ProtocolError, match="fitting a temperature"):
        cal.fit_temperature("paper", labels[val], sharpened[val])
    paper = cal.calibration_report("paper", labels[test], sharpened[test])
    assert "paper protocol" in paper["temperature_scaling"]["status"]
    assert "temperature" not in paper["temperature_scaling"]
