"""The corrected resampled t-test against a hand-computed case (no TensorFlow)."""

import math

import pytest
from scipy import stats

from s3f_kit.reports import stats as s3f_stats


def test_corrected_resampled_t_by_hand():
    # 3 folds × 2 repetitions; test fraction 1/3 → n_test/n_train = 1/2
    d = [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    mean, var = 2.0, 0.8  # Σ(d − 2)² = 4, / 5
    t = mean / math.sqrt((1 / 6 + 1 / 2) * var)  # = 2 / sqrt(0.5333) = 2.7386
    result = s3f_stats.corrected_resampled_t(d, 1 / 3)
    assert result["t"] == pytest.approx(t) and result["t"] == pytest.approx(2.738613, rel=1e-6)
    assert result["p"] == pytest.approx(2 * stats.t.sf(t, 5))
    assert 0.04 < result["p"] < 0.05
    # the uncorrected paired t-test would claim far more
    naive = stats.ttest_1samp(d, 0).pvalue
    assert naive < result["p"] / 10
    half = stats.t.ppf(0.975, 5) * math.sqrt((1 / 6 + 1 / 2) * var)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((2 - half, 2 + half))


def test_corrected_resampled_t_edge_cases():
    assert math.isnan(s3f_stats.corrected_resampled_t([1.0], 0.2)["p"])
    assert s3f_stats.corrected_resampled_t([0.5, 0.5, 0.5], 0.2)["p"] == 0.0
    assert s3f_stats.corrected_resampled_t([0.0, 0.0], 0.2)["p"] == 1.0
    with pytest.raises(ValueError, match="test_fraction must be in"):
        s3f_stats.corrected_resampled_t([1, 2], 1.0)
