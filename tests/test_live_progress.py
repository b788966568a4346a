"""Epoch lines reach the terminal of a plain papermill call as they happen, once in the notebook,
and once in a sweep run's sweep.log (not on the sweep's own terminal) (issue 19.1)."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from s3f_kit.run import callbacks as s3f_callbacks
from s3f_kit.sweep import jobs as s3f_jobs
from s3f_kit.sweep import sweep as s3f_sweep

REPO = Path(__file__).resolve().parents[1]
TINY = ["-p", "epochs", "3", "-p", "img_size", "[16, 16]", "-p", "demo_count", "6"]
EPOCH_LINE = re.compile(r"Spatial_BUSI epoch (\d+)/(\d+)  loss")


def test_a_plain_python_process_prints_only():
    assert s3f_callbacks.terminal_fd() is None  # not a kernel: print() reaches the terminal


def _notebook_text(path):
    cells = nbformat.read(path, as_version=4).cells
    return "".join(
        output.get("text", "")
        for cell in cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


@pytest.mark.e2e
def test_plain_papermill_shows_each_epoch_on_stderr_while_it_runs(kernel_env, tmp_path):
    command = [
        sys.executable, "-m", "papermill", "notebooks/Spatial_BUSI.ipynb",
        str(tmp_path / "out.ipynb"), *TINY, "-p", "output_dir", str(tmp_path / "runs"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    seen, alive_at_first_epoch = [], None
    try:
        for line in process.stderr:  # as papermill writes it, not after the end
            for match in EPOCH_LINE.finditer(line):
                if alive_at_first_epoch is None:
                    alive_at_first_epoch = process.poll() is None
                seen.append(int(match.group(1)))
    finally:
        process.stderr.close()
        code = process.wait(timeout=300)
    assert code == 0
    assert alive_at_first_epoch is True  # the first epoch line came while training went on
    assert seen == [1, 2, 3]  # each epoch once on the terminal
    text = _notebook_text(tmp_path / "out.ipynb")
    assert [int(m.group(1)) for m in EPOCH_LINE.finditer(text)] == [1, 2, 3]  # once in it
    assert "Leakage audit: " in text and "test images have a near-duplicate" in text


@pytest.mark.e2e
def test_a_sweep_files_each_epoch_line_once_in_sweep_log_not_on_its_terminal(
    kernel_env, tmp_path, capfd
):
    params = {"epochs": 2, "demo_count": 6, "img_size": [16, 16], "verbose": 1}
    jobs = s3f_sweep.plan_training(["Spatial_BUSI"], True, None, params, tmp_path / "runs")
    started = time.perf_counter()
    assert s3f_jobs.run_jobs(jobs, 1, "t", poll_s=0.5) == []
    assert time.perf_counter() - started < 300
    log = (jobs[0].run_dir / "sweep.log").read_text()
    assert [int(m.group(1)) for m in EPOCH_LINE.finditer(log)] == [1, 2]
    text = _notebook_text(jobs[0].executed)
    assert [int(m.group(1)) for m in EPOCH_LINE.finditer(text)] == [1, 2]
    out, err = capfd.readouterr()
    assert not EPOCH_LINE.search(out + err)  # the sweep's terminal shows its bar and summaries
    metrics = json.loads((jobs[0].run_dir / "metrics.json").read_text())
    assert metrics["device"] == "CPU"  # the tests hide GPUs (conftest)
    assert "Spatial_BUSI/seed42: done in" in out + err and " s on CPU" in out + err


def test_the_sweep_names_each_runs_device(tmp_path):
    job = s3f_jobs.Job("A/seed42", "A", {}, tmp_path)
    assert s3f_jobs.run_device(job, None) == ""  # nothing recorded (e.g. the run failed)
    assert s3f_jobs.run_device(job, 1) == " (GPU 1)"
    (tmp_path / "metrics.json").write_text(json.dumps({"device": "GPU (NVIDIA T4)"}))
    assert s3f_jobs.run_device(job, 1) == " on GPU (NVIDIA T4), CUDA_VISIBLE_DEVICES=1"
    assert s3f_jobs.run_device(job, None) == " on GPU (NVIDIA T4)"
