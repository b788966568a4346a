"""Per-run and across-seed intervals, clinical metrics and calibration against known cases, and
the bounds of every interval over many random and extreme inputs (no TensorFlow)."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from statsmodels.stats.proportion import proportion_confint

from s3f_kit.reports import stats as st
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
    """The weighted confusion-matrix metrics and AUC agree with sklearn on every resample
    (image weights = how often each image was drawn), including ones where a class is never
    predicted and scores are tied."""
    rng = np.random.default_rng(3)
    for classes in (2, 4):
        labels, predicted, probs = _random_run(rng, n=40, classes=classes, skill=0.3)
        predicted[predicted == classes - 1] = 0  # the last class is never predicted
        probs = np.round(probs, 1)  # ties
        weights = st.stratified_weights(labels, 25, rng)
        batch = st.metrics_of(labels, predicted, probs, weights)
        for b, counts in enumerate(weights.astype(int)):
            drawn = np.repeat(np.arange(len(labels)), counts)
            t, p, q = labels[drawn], predicted[drawn], probs[drawn]
            assert np.array_equal(np.bincount(t), np.bincount(labels))  # stratified
            assert batch["macro_f1"][b] == pytest.approx(skm.f1_score(t, p, average="macro"))
            assert batch["mcc"][b] == pytest.approx(skm.matthews_corrcoef(t, p))
            assert batch["cohen_kappa"][b] == pytest.approx(skm.cohen_kappa_score(t, p))
            expected = (  # sklearn's one-vs-rest macro AUC, of rounded (tied) scores
                skm.roc_auc_score(t, q[:, 1])
                if classes == 2
                else np.mean([skm.roc_auc_score(t == k, q[:, k]) for k in range(classes)])
            )
            assert batch["roc_auc"][b] == pytest.approx(expected)


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(0)
    labels, predicted, probs = _random_run(rng)
    first = iv.bootstrap_intervals(labels, predicted, probs, resamples=300)
    assert first == iv.bootstrap_intervals(labels, predicted, probs, resamples=300)
    other = iv.bootstrap_intervals(labels, predicted, probs, resamples=300, seed=1)
    assert other["mcc"]["ci_low"] != first["mcc"]["ci_low"] or (
        other["mcc"]["ci_high"] != first["mcc"]["ci_high"]
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


# --------------------------------------------------------------------------- bounds


def _extreme_cases(rng):
    """(labels, predicted, probs) of random runs and of the extremes: all right, all wrong,
    one class in the test split, one class predicted, two images."""
    cases = []
    for _ in range(40):
        classes = int(rng.choice([2, 3, 4, 7]))
        n = int(rng.integers(2, 160))
        labels, predicted, probs = _random_run(rng, n, classes, float(rng.uniform(-0.5, 2)))
        cases.append((labels, predicted, probs))
    labels = np.arange(60) % 3
    right = np.eye(3)[labels]
    cases += [
        (labels, labels, right),  # all correct
        (labels, (labels + 1) % 3, np.roll(right, 1, axis=1)),  # all wrong
        (np.zeros(30, int), np.zeros(30, int), np.tile([0.9, 0.1], (30, 1))),  # one class
        (labels, np.zeros(60, int), np.tile([0.5, 0.3, 0.2], (60, 1))),  # one class predicted
        (np.array([0, 1]), np.array([1, 1]), np.array([[0.4, 0.6], [0.2, 0.8]])),  # two images
    ]
    return cases


def _assert_in_range(intervals, where):
    for name, (least, most) in st.METRIC_RANGES.items():
        if name in st.BINARY_METRICS and name not in intervals:
            continue  # a run of more than two classes has none
        entry = intervals[name]
        for key in ("value", "ci_low", "ci_high"):
            value = entry[key]
            assert np.isnan(value) or least - 1e-12 <= value <= most + 1e-12, (where, name, entry)
        if np.isfinite(entry["ci_low"]):
            assert entry["ci_low"] <= entry["ci_high"], (where, name, entry)


def test_every_per_run_interval_lies_in_its_metrics_range():
    rng = np.random.default_rng(32)
    for index, (labels, predicted, probs) in enumerate(_extreme_cases(rng)):
        result = iv.bootstrap_intervals(labels, predicted, probs, resamples=200, seed=index)
        _assert_in_range(result, index)
        for per_class in iv.clinical_metrics(labels, predicted, list("abcdefg")).values():
            for entry in per_class.values():
                assert entry["n"] == 0 or 0 <= entry["ci_low"] <= entry["ci_high"] <= 1


def test_every_interval_of_the_mean_over_seeds_lies_in_its_metrics_range():
    rng = np.random.default_rng(33)
    cases = _extreme_cases(rng)
    for index in range(20):
        labels, _, probs = cases[index]
        files = np.array([f"{i}.png" for i in range(len(labels))])
        units = []
        for _ in range(int(rng.choice([5, 6, 9]))):  # seeds: one model, other predictions
            skill = rng.uniform(-1, 3)
            _, predicted, seed_probs = _random_run(rng, len(labels), probs.shape[1], skill)
            units.append([st.Predictions(files, labels, predicted, seed_probs)])
        if index % 4 == 0:  # the extremes across seeds: every seed all right
            units = [[st.Predictions(files, labels, labels, np.eye(probs.shape[1])[labels])]] * 5
        result = st.across_runs(units, resamples=200, seed=index)
        _assert_in_range(result, index)
        assert np.isfinite(result["accuracy"]["ci_low"])


def test_an_all_correct_run_keeps_an_accuracy_interval_below_100_percent():
    """Every bootstrap resample of 100 % correct is 100 %: the Wilson interval still says how
    little 60 images can show."""
    labels = np.arange(60) % 3
    result = iv.bootstrap_intervals(labels, labels, np.eye(3)[labels], resamples=200)
    low, high = proportion_confint(60, 60, alpha=0.05, method="wilson")
    assert (result["accuracy"]["ci_low"], result["accuracy"]["ci_high"]) == pytest.approx(
        (low, high)
    )
    assert result["accuracy"]["ci_low"] < 0.95 and result["accuracy"]["method"] == "Wilson score"


def test_the_interval_of_the_mean_needs_five_seeds_and_covers_more_than_one_seed():
    rng = np.random.default_rng(4)
    labels = np.arange(90) % 3
    files = np.array([f"{i}.png" for i in range(90)])

    def seed_run():
        _, predicted, probs = _random_run(rng, 90, 3, float(rng.uniform(0.2, 1.2)))
        return [st.Predictions(files, labels, predicted, probs)]

    few = st.across_runs([seed_run() for _ in range(st.MIN_RUNS_FOR_INTERVAL - 1)])
    assert all(np.isnan(entry["ci_low"]) for entry in few.values())
    units = [seed_run() for _ in range(st.MIN_RUNS_FOR_INTERVAL)]
    enough = st.across_runs(units, resamples=500)
    accuracies = [np.mean(u[0].predicted == labels) for u in units]
    assert enough["accuracy"]["value"] == pytest.approx(np.mean(accuracies))
    assert enough["accuracy"]["ci_low"] < np.mean(accuracies) < enough["accuracy"]["ci_high"]
    # the runs of one unit (one seed's folds) are not seeds: no interval of their mean
    one_seed = st.across_runs([[u[0] for u in units]], resamples=500)
    assert np.isnan(one_seed["accuracy"]["ci_low"])


def test_reviewer_report_prints_kappa_and_mcc_on_their_own_scale():
    from s3f_kit.run import metrics as s3f_metrics  # imports TensorFlow

    labels = np.arange(60) % 2
    probs = np.column_stack([1 - labels * 0.8 - 0.1, labels * 0.8 + 0.1])
    record = s3f_metrics.reviewer_metrics(labels, probs[:, 1:], ["a", "b"], True, "paper")
    report = s3f_metrics.reviewer_report(record)
    kappa = next(line for line in report.splitlines() if "cohen_kappa" in line)
    accuracy = next(line for line in report.splitlines() if line.strip().startswith("accuracy"))
    assert kappa.split()[1] == "1.000" and "100" not in kappa  # not cohen_kappa 100.0
    assert "mcc          1.000" in report
    assert accuracy.split()[1] == "100.0"  # accuracy stays in percent
