"""Statistics and the claims table on planted, known cases (no TensorFlow needed)."""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

from s3f_kit import experiments as s3f_experiments
from s3f_kit.reports import claims as s3f_claims
from s3f_kit.reports import stats as s3f_stats

CLASSES = ["a", "b", "c"]


def test_describe_gives_mean_sd_and_range_and_labels_a_single_run():
    values = [81.0, 84.5, 79.0, 83.0]
    summary = s3f_stats.describe(values)
    assert summary["mean"] == pytest.approx(np.mean(values))
    assert summary["sd"] == pytest.approx(np.std(values, ddof=1))
    assert (summary["min"], summary["max"]) == (79.0, 84.5)
    assert "ci_low" not in summary  # a t-interval over a few bounded values leaves their range
    single = s3f_stats.describe([80.0])
    assert single["label"] == "single run" and math.isnan(single["sd"])


def test_mcnemar_exact_equals_statsmodels():
    a = np.array([1] * 30 + [1] * 12 + [0] * 3 + [0] * 5, bool)
    b = np.array([1] * 30 + [0] * 12 + [1] * 3 + [0] * 5, bool)
    got = s3f_stats.mcnemar_exact(a, b)
    expected = mcnemar([[30, 12], [3, 5]], exact=True).pvalue
    assert (got["only_a"], got["only_b"]) == (12, 3) and got["p"] == pytest.approx(expected)


def test_fast_weighted_f1_equals_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    true, pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    pred[:5] = 0
    expected = f1_score(true, pred, average="weighted", zero_division=0)
    assert s3f_stats.weighted_f1(true, pred, 4) == pytest.approx(expected)


def test_primary_metrics_on_resamples_equal_sklearn():
    """Balanced accuracy, sensitivity and specificity (the datasets' primary metrics beside
    accuracy, macro-F1 and AUC) from weighted confusion matrices equal scikit-learn's on
    resampled images, a class never predicted included."""
    from sklearn.metrics import balanced_accuracy_score, recall_score

    rng = np.random.default_rng(32)
    for classes in (2, 3, 5):
        labels = np.arange(120) % classes
        predicted = np.where(rng.random(120) < 0.6, labels, rng.integers(0, classes, 120))
        predicted[predicted == classes - 1] = 0
        weights = s3f_stats.stratified_weights(labels, 20, rng)
        found = s3f_stats.metrics_of(labels, predicted, None, weights)
        for b, counts in enumerate(weights.astype(int)):
            drawn = np.repeat(np.arange(len(labels)), counts)
            t, p = labels[drawn], predicted[drawn]
            assert found["balanced_accuracy"][b] == pytest.approx(balanced_accuracy_score(t, p))
            if classes == 2:
                assert found["sensitivity"][b] == pytest.approx(recall_score(t, p, pos_label=1))
                assert found["specificity"][b] == pytest.approx(recall_score(t, p, pos_label=0))
            else:
                assert math.isnan(found["sensitivity"][b]) and math.isnan(found["specificity"][b])


def test_paired_seed_gives_delta_with_a_bootstrap_interval():
    true = np.array(CLASSES * 100)
    better = true.copy()
    worse = true.copy()
    worse[:60] = "a"
    result = s3f_stats.paired_seed(true, better, worse)
    low, high = result["delta_accuracy_ci"]
    assert result["delta_accuracy"] == pytest.approx(100 * 40 / 300)
    assert low <= result["delta_accuracy"] <= high and low > 0
    assert result["mcnemar"]["p"] < 0.001


def test_minimum_seeds_follow_scipy():
    found = s3f_stats.minimum_seeds_for_significance()
    n = found["wilcoxon_exact"]
    assert stats.wilcoxon(np.arange(1, n + 1), method="exact").pvalue < 0.05
    assert stats.wilcoxon(np.arange(1, n), method="exact").pvalue >= 0.05


def _write_run(root, experiment, variant, seed, correct_rate, rng, n=300, dataset="BUSI",
               settings=None):  # fmt: skip
    arm = "-".join(f"{k}{v}" for k, v in (settings or {}).items())  # its own folder
    folder = root / experiment / (variant or ".") / (arm or ".") / f"seed{seed}"
    folder.mkdir(parents=True)
    true = np.array(CLASSES)[np.arange(n) % 3]
    right = rng.random(n) < correct_rate
    predicted = np.where(right, true, np.array(CLASSES)[(np.arange(n) + 1) % 3])
    frame = pd.DataFrame({"file": [f"img{i}.png" for i in range(n)], "true_label": true,
                          "predicted_label": predicted})  # fmt: skip
    for c in CLASSES:
        frame[f"prob_{c}"] = (predicted == c).astype(float)
    frame.to_csv(folder / "predictions.csv", index=False)
    metrics = {"experiment": experiment, "variant": variant, "seed": seed, "protocol": "paper",
               "dataset": dataset, "accuracy": float(np.mean(right)), "demo_data": True,
               "run_dir": str(folder), "run_settings": settings or {}}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def _runs(tmp_path, better_rate, worse_rate, seeds=5):
    rng = np.random.default_rng(7)
    runs = []
    for seed in range(42, 42 + seeds):
        runs.append(_write_run(tmp_path, "S3F_Concat_BUSI", "", seed, better_rate, rng))
        runs.append(_write_run(tmp_path, "Spatial_BUSI", "", seed, worse_rate, rng))
    return runs


def _busi_spatial_row(frame):
    return frame[(frame["dataset"] == "BUSI") & frame["claim"].str.contains("spatial")].iloc[0]


def test_a_planted_ten_point_gain_is_supported(tmp_path):
    row = _busi_spatial_row(s3f_claims.claims_table(_runs(tmp_path, 0.85, 0.75)))
    assert row["verdict"] == "supported" and row["n_seeds"] == 5
    assert 5 < row["mean_delta"] < 15 and row["ci_low"] > 0
    assert row["paper_delta"] == pytest.approx(87.82 - 84.62)


def test_a_planted_loss_is_contradicted(tmp_path):
    row = _busi_spatial_row(s3f_claims.claims_table(_runs(tmp_path, 0.70, 0.82)))
    assert row["verdict"] == "contradicted" and row["ci_high"] < 0


def test_identical_models_are_inconclusive_and_missing_ones_not_run(tmp_path):
    frame = s3f_claims.claims_table(_runs(tmp_path, 0.8, 0.8))
    assert _busi_spatial_row(frame)["verdict"] == "inconclusive"
    brisc = frame[frame["dataset"] == "BRISC2025"]
    assert set(brisc["verdict"]) == {"not run"}
    assert len(frame) == len(s3f_claims.paper_claims()) == 25


def test_the_primary_family_counts_only_primary_rows(tmp_path):
    """Two primary rows (S³F-Net vs its spatial baseline on BUSI and BRISC2025) and one
    exploratory row (vs SpectraNet alone): the primary Bonferroni m is 2, the exploratory row is
    corrected in its own family of 1; each p and its interval come from the same level."""
    runs = _runs(tmp_path, 0.85, 0.75)
    rng = np.random.default_rng(9)
    runs += [_write_run(tmp_path, "SpectraNet_BUSI", "", seed, 0.80, rng) for seed in range(42, 47)]
    brisc = s3f_claims._best_s3f("BRISC2025")
    for seed in range(42, 47):
        for name, rate in ((brisc, 0.85), ("Spatial_BRISC2025", 0.8)):
            runs.append(_write_run(tmp_path, name, "", seed, rate, rng, dataset="BRISC2025"))
    frame = s3f_claims.claims_table(runs)
    assert set(frame["family"]) == {"primary", "exploratory"}
    primary = frame[frame["claim"] == s3f_claims.PRIMARY_CLAIM]
    assert set(primary["family"]) == {"primary"} and len(primary) == 4  # one row per dataset
    assert set(frame.loc[frame["claim"] != s3f_claims.PRIMARY_CLAIM, "family"]) == {"exploratory"}
    tested = frame[frame["p"].notna()]
    assert len(tested) == 3
    sizes = dict(zip(tested["family"] + tested["dataset"], tested["family_size"], strict=True))
    assert sizes == {"primaryBUSI": 2, "primaryBRISC2025": 2, "exploratoryBUSI": 1}
    levels = [1 - 0.05 / m for m in tested["family_size"]]
    assert tested["ci_level"].tolist() == pytest.approx(levels)
    assert (tested["p_bonferroni"] == np.minimum(1, tested["family_size"] * tested["p"])).all()
    assert set(tested["test"]) == {s3f_claims.BOOTSTRAP_TEST}
    for row in tested.to_dict("records"):
        excludes_zero = row["ci_low"] > 0 or row["ci_high"] < 0
        assert excludes_zero == (row["p_bonferroni"] < 0.05)


def test_a_primary_claim_is_tested_on_the_datasets_first_primary_metric(tmp_path, monkeypatch):
    """The metric comes from the dataset record: declare BUSI's primary metric macro-F1 and its
    primary row is tested (and its Δ computed) on macro-F1, the exploratory rows on accuracy."""
    from sklearn.metrics import f1_score

    from data_setup import datasets

    runs = _runs(tmp_path, 0.85, 0.75)
    frame = s3f_claims.claims_table(runs)
    assert _busi_spatial_row(frame)["metric"] == datasets.DATASETS["BUSI"].primary_metrics[0]
    changed = dataclasses.replace(datasets.DATASETS["BUSI"], primary_metrics=("macro_f1",))
    monkeypatch.setitem(datasets.DATASETS, "BUSI", changed)
    row = _busi_spatial_row(s3f_claims.claims_table(runs))
    assert row["metric"] == "macro_f1"
    expected = []
    for seed in range(42, 47):
        scores = []
        for name in ("S3F_Concat_BUSI", "Spatial_BUSI"):
            found = pd.read_csv(tmp_path / name / "." / f"seed{seed}" / "predictions.csv")
            scores.append(f1_score(found["true_label"], found["predicted_label"], average="macro"))
        expected.append(scores[0] - scores[1])
    assert row["mean_delta"] == pytest.approx(np.mean(expected))
    assert math.isnan(row["paper_delta"]) or abs(row["paper_delta"]) < 1  # macro-F1, not points


def test_the_minimum_detectable_effect_shrinks_as_seeds_are_added(tmp_path):
    """Every tested row shows its MDE, (z_{1−α/2m} + z_0.8) × SE; ten seeds detect a smaller
    effect than five, and the seeds needed to detect the paper's Δ follow √(k / k_needed)."""
    from scipy.stats import norm

    found = {}
    for seeds in (3, 5, 10):
        row = _busi_spatial_row(s3f_claims.claims_table(
            _runs(tmp_path / str(seeds), 0.80, 0.78, seeds=seeds)))  # fmt: skip
        found[seeds] = row
        assert row["mde"] > 0 and row["se"] > 0
        m = max(1, row["family_size"])
        z = norm.ppf(1 - 0.05 / (2 * m)) + norm.ppf(0.8)
        assert row["mde"] == pytest.approx(z * row["se"])
        needed = max(5, math.ceil(seeds * (row["mde"] / abs(row["paper_delta"])) ** 2 - 1e-9))
        assert row["seeds_needed"] == needed
        assert row["gpu_hours"] == s3f_claims.NO_GPU_FIGURE  # none committed: never invented
    assert found[10]["mde"] < found[5]["mde"] < found[3]["mde"]
    one = _busi_spatial_row(s3f_claims.claims_table(_runs(tmp_path / "1", 0.8, 0.78, seeds=1)))
    assert math.isnan(one["mde"])  # one seed: no spread to estimate


def test_gpu_hours_come_from_a_measured_gpu_figure_only(tmp_path):
    row = {"better": "S3F_Concat_BUSI", "worse": "Spatial_BUSI", "seeds_needed": 10.0,
           "n_folds": 5}  # fmt: skip
    figure = tmp_path / "gpu.json"
    assert s3f_claims.gpu_hours(row, figure) == s3f_claims.NO_GPU_FIGURE  # absent
    rows = [{"experiment": "S3F_Concat_BUSI", "config": "paper-f32", "epoch_s": 36.0},
            {"experiment": "Spatial_BUSI", "config": "paper-f32", "epoch_s": 18.0}]  # fmt: skip
    figure.write_text(json.dumps({"device": "H100", "small": True, "rows": rows}))
    assert s3f_claims.gpu_hours(row, figure) == s3f_claims.NO_GPU_FIGURE  # --small: not real
    figure.write_text(json.dumps({"device": "H100", "small": False, "rows": rows}))
    epochs = {name: s3f_experiments.get_experiment(name).recipe.epochs
              for name in ("S3F_Concat_BUSI", "Spatial_BUSI")}  # fmt: skip
    hours = 10 * 5 * (epochs["S3F_Concat_BUSI"] * 36 + epochs["Spatial_BUSI"] * 18) / 3600
    assert s3f_claims.gpu_hours(row, figure) == f"{hours:.3g} GPU-h (H100)"
    for damaged in ("{", '{"rows": 3}', " " * (s3f_claims.GPU_FIGURE_MAX_BYTES + 1)):
        figure.write_text(damaged)
        assert s3f_claims.gpu_hours(row, figure) == s3f_claims.NO_GPU_FIGURE


def test_the_verdict_from_the_interval_and_from_p_always_agree():
    """A seeded loop over random bootstrap distributions (ties at 0, all on one side, tiny and
    odd resample counts) and family sizes: "the CI excludes 0" ⇔ "Bonferroni p < 0.05"."""
    rng = np.random.default_rng(32)
    seen = set()
    for case in range(3000):
        total = int(rng.choice([1, 2, 7, 40, 199, 1000, 2000, 10_000]))
        centre = rng.normal(0, 3) if case % 3 else 0.0
        deltas = rng.normal(centre, rng.uniform(0.01, 3), size=total)
        if case % 5 == 0:  # many exact zeros and ties, as accuracy differences of few images
            deltas = np.round(deltas * rng.integers(1, 4)) / 2
        family = int(rng.integers(1, 25))
        found = s3f_stats.bootstrap_verdict(deltas, family)
        excludes_zero = found["ci_low"] > 0 or found["ci_high"] < 0
        assert excludes_zero == (found["p_adjusted"] < 0.05) == found["significant"], found
        assert found["ci_low"] <= found["ci_high"]
        assert found["p_adjusted"] == pytest.approx(min(1.0, family * found["p"]))
        seen.add(excludes_zero)
    assert seen == {True, False}  # both verdicts were tested


def test_fewer_than_five_paired_seeds_get_no_interval_and_no_verdict(tmp_path):
    row = _busi_spatial_row(s3f_claims.claims_table(_runs(tmp_path, 0.95, 0.55, seeds=4)))
    assert row["n_seeds"] == 4 and row["mean_delta"] > 30  # a huge planted effect …
    assert math.isnan(row["ci_low"]) and math.isnan(row["p"])  # … but no interval of the mean
    assert row["verdict"] == "inconclusive" and row["delta_min"] > 0


def test_write_claims_writes_csv_figures_and_labels_demo_data(tmp_path):
    runs = _runs(tmp_path / "runs", 0.85, 0.75, seeds=3)
    lines = s3f_claims.write_claims(runs, tmp_path)
    assert "SYNTHETIC DEMO DATA" in "\n".join(lines)
    assert len(pd.read_csv(tmp_path / "claims.csv")) == len(s3f_claims.paper_claims())
    for name in ("claims_forest.png", "seed_accuracy.png"):
        assert (tmp_path / name).stat().st_size > 5000


def test_the_seed_figure_reads_model_names_horizontally_one_panel_per_dataset(tmp_path):
    """Issue 36.3: seed_accuracy.png had its model names at 60°, in 7-point type."""
    runs = [{"dataset": "HAM10000", "experiment": "Spatial_HAM10000", "accuracy": 0.7, "seed": 1}]
    runs += _runs(tmp_path / "runs", 0.85, 0.75, seeds=2)
    figure = s3f_claims.seed_strip_figure(runs, tmp_path / "seeds.png")
    panels = {ax.get_title(loc="left"): ax for ax in figure.axes}
    assert list(panels) == ["BUSI", "HAM10000"]  # stacked, in the datasets' order
    assert panels["BUSI"].get_position().y0 > panels["HAM10000"].get_position().y0
    names = [label.get_text() for label in panels["BUSI"].get_yticklabels()]
    assert sorted(names) == ["S3F_Concat_BUSI", "Spatial_BUSI"]
    for label in panels["BUSI"].get_yticklabels():
        assert label.get_rotation() == 0 and label.get_fontsize() >= 9
    assert panels["BUSI"].get_xlabel() == "test accuracy (%)"


def test_runs_without_any_spread_have_no_minimum_detectable_effect():
    """Two models at a ceiling on every seed and resample (demo Chest X-Ray's AUROC 1.0) give
    Δ 0 with no spread: an MDE of 0 would claim any effect detectable."""
    import math

    from s3f_kit.reports import stats as s3f_stats

    se = s3f_stats.standard_error(np.zeros(200), [0.0] * 5)
    assert math.isnan(se)
    mde = s3f_stats.detectable(se, 4)
    assert math.isnan(mde) and math.isnan(s3f_stats.seeds_needed(mde, 5, 0.048))
    assert s3f_stats.standard_error(np.r_[np.zeros(199), 1.0], [0.0] * 5) > 0


def _control_rows(frame, dataset="BUSI"):
    rows = frame[(frame["dataset"] == dataset) & (frame["role"] == "verdict")]
    return (rows[rows["claim"] == s3f_claims.CONTROL_CLAIM].iloc[0],
            rows[rows["claim"] == s3f_claims.NEUTRAL_CONTROL_CLAIM].iloc[0])  # fmt: skip


def test_the_control_rows_compare_the_s3f_with_its_matched_control(tmp_path):
    """Two rows per dataset, S³F-Net against Control_<dataset>, in the exploratory family; a
    control without runs is 'not run', as is the neutral arm while no run is neutral."""
    rng = np.random.default_rng(35)
    runs = []
    for seed in range(42, 47):
        runs.append(_write_run(tmp_path, "S3F_Concat_BUSI", "", seed, 0.85, rng))
        runs.append(_write_run(tmp_path, "Control_BUSI", "", seed, 0.75, rng))
    frame = s3f_claims.claims_table(runs)
    standard, neutral = _control_rows(frame)
    assert standard["better"] == "S3F_Concat_BUSI" and standard["worse"] == "Control_BUSI"
    assert standard["verdict"] == "supported" and standard["n_seeds"] == 5
    assert standard["family"] == s3f_claims.EXPLORATORY and standard["ci_low"] > 0
    assert neutral["verdict"] == "not run" and neutral["n_pairs"] == 0
    for dataset in ("BRISC2025", "ChestXRay", "HAM10000"):
        assert {row["verdict"] for row in _control_rows(frame, dataset)} == {"not run"}
        assert _control_rows(frame, dataset)[0]["worse"] == f"Control_{dataset}"


def test_the_neutral_arm_row_reads_only_the_neutral_runs(tmp_path):
    """The paper's preprocessing favours S³F-Net by 10 points, the shortcut-neutral arm (no
    squashing) not at all: each row sees its own arm's runs only."""
    rng = np.random.default_rng(36)
    runs = []
    squash, pad = {"resize": "squash", "reencode": False}, {"resize": "pad"}
    for seed in range(42, 48):
        runs.append(_write_run(tmp_path, "S3F_Concat_BUSI", "", seed, 0.85, rng, settings=squash))
        runs.append(_write_run(tmp_path, "Control_BUSI", "", seed, 0.75, rng))  # an older record
        runs.append(_write_run(tmp_path, "S3F_Concat_BUSI", "", seed, 0.80, rng, settings=pad))
        if seed < 47:  # the control's neutral arm has one seed fewer
            runs.append(_write_run(tmp_path, "Control_BUSI", "", seed, 0.80, rng, settings=pad))
    standard, neutral = _control_rows(s3f_claims.claims_table(runs))
    assert standard["verdict"] == "supported" and 5 < standard["mean_delta"] < 15
    assert standard["n_seeds"] == 6 and not standard["left_out"]
    assert neutral["verdict"] == "inconclusive" and abs(neutral["mean_delta"]) < 5
    assert neutral["n_seeds"] == 5 and not neutral["left_out"]


def test_a_run_s_arm_comes_from_its_resize_and_reencode_settings():
    arm = s3f_claims.run_arm
    assert arm({}) == arm({"run_settings": {"resize": None}}) == s3f_claims.STANDARD_ARM
    assert arm({"run_settings": {"resize": "squash", "reencode": False}}) == "standard"
    assert arm({"run_settings": {"resize": "pad"}}) == s3f_claims.NEUTRAL_ARM
    assert arm({"run_settings": {"reencode": True}}) == s3f_claims.NEUTRAL_ARM
