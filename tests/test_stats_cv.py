"""The two-level bootstrap (seeds × test images) against hand-computed cases, and with
cross-validation folds that test different images (no TensorFlow)."""

import numpy as np
import pytest

from s3f_kit.reports import stats as s3f_stats


def _run(files, labels, right):
    labels = np.asarray(labels)
    predicted = np.where(right, labels, 1 - labels)
    return s3f_stats.Predictions(np.asarray(files), labels, predicted)


def _accuracy(item, weights):
    return s3f_stats.metrics_of(item.labels, item.predicted, None, weights, ("accuracy",))[
        "accuracy"
    ][:, None]


def test_the_seed_level_draws_seeds_with_replacement():
    """Seed A always right, seed B always wrong: a resample's mean is the share of A among its
    two draws — 0, ½ or 1 with chances ¼, ½, ¼, whatever the images drawn."""
    files = [f"{i}.png" for i in range(20)]
    labels = np.arange(20) % 2
    units = [[_run(files, labels, True)], [_run(files, labels, False)]]
    drawn = s3f_stats.two_level_bootstrap(units, _accuracy, lambda item: item, 4000, seed=1)[:, 0]
    shares = [np.mean(drawn == v) for v in (0.0, 0.5, 1.0)]
    assert shares == pytest.approx([0.25, 0.5, 0.25], abs=0.03)


def test_the_image_level_resamples_within_each_class():
    """One seed, half of 400 images right in each class: each resample's accuracy has the
    stratified bootstrap's spread, sd = √(p(1 − p)/n) per class pooled = 0.025."""
    files = [f"{i}.png" for i in range(400)]
    labels = np.arange(400) % 2
    right = (np.arange(400) // 2) % 2 == 0
    drawn = s3f_stats.two_level_bootstrap(
        [[_run(files, labels, right)]], _accuracy, lambda item: item, 4000, seed=2
    )[:, 0]
    assert drawn.mean() == pytest.approx(0.5, abs=0.003)
    assert drawn.std() == pytest.approx(0.025, rel=0.08)


def test_folds_with_their_own_images_share_one_resample_of_the_whole_set():
    """A repetition of a 2-fold cross-validation: fold 1 tests images 0–49 (all right), fold 2
    images 50–99 (all wrong). The unit's value is the mean of its folds: ½ on every resample
    where each fold keeps its images' weight — and the point value equals the folds' mean."""
    files = np.array([f"{i}.png" for i in range(100)])
    labels = np.arange(100) % 2
    units = [
        [_run(files[:50], labels[:50], True), _run(files[50:], labels[50:], False)]
        for _ in range(5)
    ]
    result = s3f_stats.across_runs(units, ("accuracy",), resamples=300)
    assert result["accuracy"]["value"] == pytest.approx(0.5)
    assert result["accuracy"]["ci_low"] == result["accuracy"]["ci_high"] == pytest.approx(0.5)


def test_runs_that_disagree_on_an_images_class_are_refused_in_one_sentence():
    first = _run(["a.png", "b.png"], [0, 1], True)
    other = _run(["a.png", "b.png"], [1, 1], True)
    with pytest.raises(ValueError, match=r"^test image a.png has two different true classes"):
        s3f_stats.across_runs([[first], [other]] * 3, ("accuracy",), resamples=10)


def _simulation():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "coverage_simulation.py"
    spec = importlib.util.spec_from_file_location("coverage_simulation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_coverage_simulation_is_seeded_and_writes_its_table_between_the_markers(
    tmp_path, monkeypatch
):
    simulation = _simulation()
    monkeypatch.setattr(simulation, "IMAGES", (156,))
    monkeypatch.setattr(simulation, "SEEDS", (5,))
    first = simulation.simulate(studies=3, resamples=50, seed=1)
    assert first == simulation.simulate(studies=3, resamples=50, seed=1)  # one command, one table
    assert len(first) == len(simulation.SCENARIOS)
    assert 0.8 < first[0]["theta"] < 0.9  # the scenarios' accuracy, from the integral
    page = tmp_path / "statistics.md"
    page.write_text(f"before\n{simulation.START}\nold table\n{simulation.END}\nafter\n")
    simulation.write_into_docs(simulation.table(first, 3, 50, 1, 1.0), page)
    text = page.read_text()
    assert text.startswith("before\n") and text.endswith("\nafter\n") and "old table" not in text
    assert "`python benchmarks/coverage_simulation.py --studies 3 --resamples 50 --seed 1`" in text
    # the docs page holds the table the default command made, next to that command
    docs = simulation.DOCS.read_text()
    assert docs.count(simulation.START) == 1 and "| stable seeds (" in docs
