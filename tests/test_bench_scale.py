"""benchmarks/bench_scale.py: the growth-exponent fit, the full-size plan, and a tiny rehearsal."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_setup.datasets import DATASETS
from data_setup.synth import REAL_COUNTS, layout_plan, scaled_counts
from s3f_kit.experiments import PAPER_TEST_SUPPORT

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scale.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_scale", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_growth_exponent_recovers_a_planted_power_law(power):
    ns = np.array([1000, 2000, 4000, 6010])
    assert _bench().growth_exponent(ns, 3e-4 * ns**power) == pytest.approx(power, abs=1e-9)


def test_growth_exponent_needs_two_sizes():
    assert _bench().growth_exponent([500, 500], [1.0, 2.0]) is None


def test_real_counts_match_the_paper_splits():
    for dataset, support in PAPER_TEST_SUPPORT.items():
        if "test" in REAL_COUNTS[dataset]:
            assert tuple(REAL_COUNTS[dataset]["test"]) == support
    totals = {d: sum(map(sum, c.values())) for d, c in REAL_COUNTS.items()}
    assert totals == {"BRISC2025": 6010, "ChestXRay": 5856, "BUSI": 780, "HAM10000": 11527}


def test_scaled_counts_keep_every_class_and_shrink():
    for dataset in DATASETS:
        small = scaled_counts(dataset, 1000)
        real = REAL_COUNTS[dataset]
        for split, per_class in small.items():
            assert all(2 <= s <= r for s, r in zip(per_class, real[split], strict=True))
        files = layout_plan(dataset, small)
        assert len(files) == sum(map(sum, small.values()))
        assert len({f.path for f in files}) == len(files)


def test_sizes_for_ends_at_full_and_has_three_points():
    sizes_for = _bench().sizes_for
    assert sizes_for(6010, ["1000", "2000", "4000", "full"]) == [1000, 2000, 4000, 6010]
    assert sizes_for(780, ["1000", "2000", "full"]) == [195, 390, 780]


@pytest.mark.e2e
def test_quick_rehearsal_reports_every_stage(tmp_path):
    out = tmp_path / "scale"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--datasets", "BUSI", "--total", "90",
         "--sizes", "30,60,full", "--seeds", "1,2", "--work", str(tmp_path / "work"),
         "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    stages = {row["stage"].split()[0] for row in report["rows"]}
    assert stages == {"check", "decode", "reload", "audit", "shortcuts", "holdout", "train",
                      "evaluate", "results"}  # fmt: skip
    busi = [r for r in report["rows"] if r["stage"] == "check"]
    assert [r["n"] for r in busi] == sorted(r["n"] for r in busi) and len(busi) == 3
    assert all(r["peak_rss_mb"] > 0 and r["seconds"] >= 0 for r in report["rows"])
    assert report["exponents"]["BUSI/check"] is not None
    assert any("peak RSS" not in t["target"] for t in report["targets"])
    table = out.with_suffix(".md").read_text()
    assert "| BUSI | train Spatial_BUSI |" in table and "| all | results |" in table
    assert not list((tmp_path / "work").iterdir())  # scratch removed without --keep


def test_included_rows_keep_only_stages_not_measured_and_are_marked(tmp_path):
    bench = _bench()
    earlier = {"command": "python benchmarks/bench_scale.py --stages train",
               "rows": [{"dataset": "BUSI", "stage": "train Spatial_BUSI", "n": 624,
                         "seconds": 2.5, "peak_rss_mb": 900.0, "disk_mb": 15.0},
                        {"dataset": "BUSI", "stage": "check", "n": 780, "seconds": 1.0,
                         "peak_rss_mb": 200.0}]}  # fmt: skip
    rows = bench.included_rows(earlier, ["BUSI"], ["check", "decode"])
    assert [r["stage"] for r in rows] == ["train Spatial_BUSI"]
    table = bench.markdown(rows, {}, [])
    assert "train Spatial_BUSI †" in table and "2.50 s/step" in table
    assert earlier["command"] in table
    again = {"command": "python benchmarks/bench_scale.py --stages decode", "rows": rows}
    assert bench.included_rows(again, ["BUSI"], ["decode"])[0]["from"] == earlier["command"]


def test_including_the_own_output_keeps_the_earlier_report(tmp_path):
    """`--include results/scale.json` with the default --out re-measures some stages: the rows
    it keeps come from the report as it was before this run wrote its first row."""
    bench = _bench()
    out = tmp_path / "scale"
    earlier = {"command": "python benchmarks/bench_scale.py", "rows": []}
    out.with_suffix(".json").write_text(json.dumps(earlier))
    other = tmp_path / "other.json"
    args = bench.parse_args(["--out", str(out), "--include", str(out.with_suffix(".json")),
                             "--include", str(other)])  # fmt: skip
    includes = bench.read_includes(args)
    out.with_suffix(".json").write_text(json.dumps({"command": "this run", "rows": []}))
    assert includes == {out.with_suffix(".json"): earlier, other: None}  # other: re-read later


@pytest.mark.parametrize(
    "dataset,total", [("HAM10000", 200), ("BRISC2025", 200), ("ChestXRay", 40)]
)
def test_full_size_stand_ins_are_distinct_images(dataset, total, tmp_path):
    """The rehearsal's images have structure of their own (Chest X-Ray: films of distinct
    patients), so the audit pairs at most the issue's false-pair budget of them (0.1 % of
    distinct pairs) and the audit and holdout rows time a realistic dataset. The drawings
    without it were shifted copies of each other: 0.38 % of pairs at n = 1,000, and at full
    size one duplicate group that left the holdout split a single validation image."""
    from data_setup.audit import audit
    from data_setup.synth import synth_full_size

    _, files = synth_full_size(dataset, tmp_path / "data", scaled_counts(dataset, total), workers=2)
    found = audit(dataset, tmp_path / "data", tmp_path / "pairs.csv", cache_dir=tmp_path / "cache")
    n = len(files)
    assert n >= 28
    assert found["pairs"] <= 0.001 * n * (n - 1) / 2, (tmp_path / "pairs.csv").read_text()[:2000]
    assert found["distinct_pairs"] == n * (n - 1) // 2
    assert found["pairs"] - found["exact_pairs"] <= found["candidate_pairs"] <= n * (n - 1) // 2
