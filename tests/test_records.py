"""Results and claims never trust a record blindly, and never pool runs that differ (no TF)."""

import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from s3f_kit.reports import claims as s3f_claims
from s3f_kit.reports import records as s3f_records
from s3f_kit.reports import results as s3f_results
from tests.test_claims import _runs, _write_run
from tests.test_sweep import REPO, _fake_run


def _quiet_build(runs, results):
    with warnings.catch_warnings():  # the README and the summary list what was left out
        warnings.simplefilter("ignore", UserWarning)
        return s3f_results.build_results(runs, results)


def test_one_experiment_at_two_epoch_settings_gives_two_groups(tmp_path):
    runs = tmp_path / "runs"
    for seed in (42, 43, 44):  # the demo: 15 epochs
        _fake_run(runs / "demo", "S3F_Concat_BUSI", seed, 0.98, {"epochs": 15})
    _fake_run(runs / "hand", "S3F_Concat_BUSI", 42, 0.90, {"epochs": 50})  # a hand run
    frame = _quiet_build(runs, tmp_path / "results")
    assert len(frame) == 2
    by_label = frame.set_index("settings")
    assert by_label.loc["epochs=15", "n_runs"] == 3
    assert by_label.loc["epochs=15", "seeds"] == "42 43 44"
    assert by_label.loc["epochs=15", "accuracy_%"] == pytest.approx(98.0)
    assert by_label.loc["epochs=50", "n_runs"] == 1
    assert by_label.loc["epochs=50", "accuracy_%"] == pytest.approx(90.0)
    readme = (tmp_path / "results" / "README.md").read_text()
    assert "| paper's (epochs=50) | paper | 1 |" in readme
    assert "| paper's (epochs=15) | paper | 3 |" in readme


def test_the_same_seed_with_the_same_settings_counts_once(tmp_path):
    runs = tmp_path / "runs"
    _fake_run(runs / "a", "S3F_Concat_BUSI", 42, 0.80)
    _fake_run(runs / "b", "S3F_Concat_BUSI", 42, 0.80)
    _fake_run(runs / "b", "S3F_Concat_BUSI", 43, 0.90)
    with pytest.warns(UserWarning, match="counted once"):
        found = s3f_results.collect_runs(runs)
    assert sorted(r["run_subdir"] for r in found) == [
        "a/S3F_Concat_BUSI/seed42",
        "b/S3F_Concat_BUSI/seed43",
    ]
    frame = _quiet_build(runs, tmp_path / "results")
    assert frame.iloc[0]["n_runs"] == 2 and frame.iloc[0]["seeds"] == "42 43"
    readme = (tmp_path / "results" / "README.md").read_text()
    assert (
        "- b/S3F_Concat_BUSI/seed42: the same settings and seed 42 as a/S3F_Concat_BUSI/seed42; "
        "counted once (that run)" in readme
    )


def _bad_records(runs):
    """Three good BUSI runs' worth of folders, of which only two are usable."""
    _fake_run(runs, "S3F_Concat_BUSI", 42, 0.80)
    _fake_run(runs, "S3F_Concat_BUSI", 43, 0.90, cohen_kappa=float("nan"))
    _fake_run(runs, "S3F_Concat_BUSI", 44, float("nan"))
    _fake_run(runs, "S3F_Concat_BUSI", 45, "0.99")
    listed = runs / "listed"
    listed.mkdir()
    (listed / "metrics.json").write_text(json.dumps([{"experiment": "S3F_Concat_BUSI"}]))


def test_unusable_records_are_named_with_their_reason_and_counts_agree(tmp_path):
    runs = tmp_path / "runs"
    _bad_records(runs)
    found, unusable, notes = s3f_results.collect(runs)
    assert [r["seed"] for r in found] == [42, 43] and notes == []
    assert {item.path.parent.name: item.reason for item in unusable} == {
        "seed44": "accuracy is nan (not a finite number)",
        "seed45": "accuracy is '0.99' (str), not a number",
        "listed": "is a JSON list, not an object of metrics",
    }
    frame = _quiet_build(runs, tmp_path / "results")
    row = frame.iloc[0]
    assert row["n_runs"] == 2 and row["accuracy_%"] == pytest.approx(85.0)
    assert row["flags"] == "cohen_kappa from 1/2 runs"
    readme = (tmp_path / "results" / "README.md").read_text()
    assert "**Left out: 3 unusable record(s), 0 repeated run(s).**" in readme
    bad = runs / "S3F_Concat_BUSI" / "seed45" / "metrics.json"
    assert f"- `{bad}`: accuracy is '0.99'" in readme


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"confusion_matrix": [[1, 2], [3, 4]]}, "confusion_matrix is not a 3×3 table of counts"),
        ({"seed": "42"}, "seed is '42', not a whole number"),
        ({"accuracy": 1.5}, "accuracy is 1.5, outside 0–1"),
        ({"accuracy": True}, "accuracy is True (bool), not a number"),
        ({"params": 1.5}, "params is 1.5, not a whole number"),
        ({"variant": None}, "variant is None, not a name"),
    ],
)
def test_each_kind_of_bad_value_is_refused(change, reason):
    from tests.helpers import minimal_record

    good = minimal_record()
    assert s3f_records.problem(good) is None
    assert s3f_records.problem({**good, **change}).startswith(reason)


def test_command_line_has_help_and_prints_a_short_summary(tmp_path):
    help_text = subprocess.run(
        [sys.executable, "-m", "s3f_kit.reports.results", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert help_text.returncode == 0 and "runs_dir" in help_text.stdout
    runs = tmp_path / "runs"
    _bad_records(runs)
    _fake_run(runs / "hand", "S3F_Concat_BUSI", 42, 0.70, {"epochs": 50})
    done = subprocess.run(
        [sys.executable, "-m", "s3f_kit.reports.results", str(runs), str(tmp_path / "results")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "3 run(s) in 2 group(s):"
    assert lines[1] == (
        "  S3F_Concat_BUSI [epochs=3]: accuracy 85.00 ± 7.07 %, 2 run(s), seeds 42 43"
        "  cohen_kappa from 1/2 runs"
    )
    assert lines[2] == "  S3F_Concat_BUSI [epochs=50]: accuracy 70.00 %, 1 run(s), seeds 42"
    assert lines[3] == "3 record(s) left out:"
    assert len(lines) == 8 and max(map(len, lines)) < 160  # a summary, not a 40-column table
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "s3f_kit.reports.results",
            str(tmp_path / "nowhere"),
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"s3f-results: {tmp_path / 'nowhere'}: no such folder"


def _busi_spatial(frame):
    return frame[(frame["dataset"] == "BUSI") & frame["claim"].str.contains("spatial")].iloc[0]


@pytest.mark.parametrize("seeds", [1, 2, 4])
def test_fewer_than_five_seeds_are_always_inconclusive(tmp_path, seeds):
    row = _busi_spatial(s3f_claims.claims_table(_runs(tmp_path, 0.95, 0.55, seeds=seeds)))
    assert row["n_seeds"] == seeds and row["mean_delta"] > 30  # a huge planted effect …
    assert row["verdict"] == "inconclusive"  # … but too few seeds to call it


def test_a_missing_predictions_file_is_named_not_silently_not_run(tmp_path):
    runs = _runs(tmp_path, 0.85, 0.75, seeds=1)
    spatial = next(m for m in runs if m["experiment"] == "Spatial_BUSI")
    spatial["run_subdir"] = "Spatial_BUSI/seed42"
    (tmp_path / "Spatial_BUSI" / "." / "seed42" / "predictions.csv").unlink()
    frame = s3f_claims.claims_table(runs)
    row = _busi_spatial(frame)
    assert row["n_seeds"] == 0 and row["verdict"] == "runs unusable"
    expected = "Spatial_BUSI/seed42: predictions.csv missing (needed to pair the test images)"
    assert row["left_out"] == expected
    lines = s3f_claims.write_claims(runs, tmp_path)
    assert "**1 run(s) could not be used for the claims:**" in lines
    assert f"- {expected}" in lines


def test_claims_compare_one_set_of_settings_and_list_the_others(tmp_path):
    runs = _runs(tmp_path / "a", 0.85, 0.75, seeds=5)
    for m in runs:
        m["run_settings"] = {"epochs": 15}
    rng = np.random.default_rng(1)
    other = _write_run(tmp_path / "b", "Spatial_BUSI", "", 42, 0.20, rng)
    other.update(run_settings={"epochs": 50}, run_subdir="b/Spatial_BUSI/seed42")
    row = _busi_spatial(s3f_claims.claims_table([*runs, other]))
    assert row["n_seeds"] == 5 and row["verdict"] == "supported"
    assert row["left_out"] == "b/Spatial_BUSI/seed42: other settings (epochs=50)"


def test_seed_strip_panels_share_one_accuracy_range(tmp_path):
    rng = np.random.default_rng(2)
    runs = [
        _write_run(tmp_path, "S3F_Concat_BUSI", "", 42, 0.9, rng),
        _write_run(tmp_path, "Spatial_BUSI", "", 42, 0.8, rng),
        {**_write_run(tmp_path, "S3F_Bilinear_BRISC2025", "", 42, 0.3, rng),
         "dataset": "BRISC2025"},
    ]  # fmt: skip
    figure = s3f_claims.seed_strip_figure(runs, tmp_path / "strip.png")
    limits = {ax.get_xlim() for ax in figure.axes}  # accuracy runs along x (issue 36.3)
    assert len(limits) == 1
    low, high = limits.pop()
    assert math.isclose(high, 101) and low <= 100 * runs[2]["accuracy"]
    assert not pd.isna(low)


def test_explained_runs_are_copied_whole_and_left_without_temp_files(tmp_path):
    runs = tmp_path / "runs"
    folder = _fake_run(runs, "S3F_Concat_BUSI", 42, 0.8)
    explained = folder / "explain" / "seed42"
    explained.mkdir(parents=True)
    shares = {"l2_spatial_%": 60.0, "l2_spectral_%": 40.0}
    shares.update({"balanced_spatial_%": 55.0, "balanced_spectral_%": 45.0})
    (explained / "contributions.json").write_text(json.dumps({"overall": shares}))
    (explained / "contributions_bar.png").write_bytes(b"png")
    _quiet_build(runs, tmp_path / "results")
    copied = tmp_path / "results" / "explain" / "S3F_Concat_BUSI" / "seed42"
    assert sorted(p.name for p in copied.iterdir()) == [
        "contributions.json",
        "contributions_bar.png",
    ]
    assert (
        "| BUSI | S³F-Net (concat, SN2) | paper | 1 | 60.0 | 40.0 | 55.0 | 45.0 |"
        in (tmp_path / "results" / "README.md").read_text()
    )
