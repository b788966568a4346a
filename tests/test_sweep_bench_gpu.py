"""Smoke test of benchmarks/bench_gpu.py at its smallest settings (not timed)."""

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_gpu_runs_small_and_reports_ratios_and_estimate(keras, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "benchmarks/bench_gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out_json = tmp_path / "bench.json"
    argv = ["--small", "--steps", "1", "--batch", "4", "--only", "SpectraNet_BUSI"]
    assert bench.main([*argv, "--configs", "kit-mixed", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out_json.read_text())["rows"]
    assert [r["config"] for r in rows] == ["paper-f32", "kit-mixed"]  # baseline always added
    assert all(r["images_per_s"] > 0 and r["epoch_s"] > 0 for r in rows)
    assert rows[1]["precision"].startswith("mixed_")
    assert "SMALL 32×32" in out and "× paper" in out
    assert "SpectraNet_BUSI          paper-f32" in out and "    1.00 " in out
    expected_hours = rows[0]["epoch_s"] * bench.epochs_run("SpectraNet_BUSI") / 3600
    assert f"{expected_hours:8.2f} GPU hours" in out
    assert bench.epochs_run("S3F_Concat_BUSI") == 119  # docs/paper.md §6.1
