"""Notebook workers: a kept kernel is reused with a fresh session, replaced after a failure, and
gives the same numbers as a new kernel; a dead worker fails only its own notebook."""

import json
import time

import nbformat
import pytest

from s3f_kit.sweep import jobs as s3f_jobs
from s3f_kit.sweep import sweep as s3f_sweep
from tests.helpers import processes_with_env

PROBE = """\
import json, os, pathlib
seen = globals().get("leftover")  # what an earlier notebook left in the namespace
leftover = name
pathlib.Path(name, "probe.json").write_text(
    json.dumps({"pid": os.getpid(), "seen": seen, "cwd": os.getcwd()})
)
if mode == "fail":
    raise RuntimeError("planned failure")
if mode == "kill-worker":
    os.kill(os.getppid(), 9)
"""


@pytest.fixture
def probe_jobs(tmp_path, monkeypatch):
    """Jobs of a tiny notebook without TensorFlow: each records its kernel and namespace."""
    parameters = nbformat.v4.new_code_cell('name = ""\nmode = "ok"')
    parameters.metadata["tags"] = ["parameters"]
    notebook = nbformat.v4.new_notebook(cells=[parameters, nbformat.v4.new_code_cell(PROBE)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.metadata["language_info"] = {"name": "python"}
    nbformat.write(notebook, tmp_path / "probe.ipynb")
    monkeypatch.setattr(s3f_jobs, "NOTEBOOK_DIR", tmp_path)
    runs = tmp_path / "runs"

    def make(*modes):
        jobs = []
        for index, mode in enumerate(modes):
            name = f"{index}-{mode}"
            params = {"name": name, "mode": mode}
            jobs.append(s3f_jobs.Job(name, "probe", params, runs / name, marker="probe.json"))
        return jobs

    return make


def _probe(job):
    return json.loads((job.run_dir / "probe.json").read_text())


def test_kept_kernel_is_reused_fresh_and_replaced_after_a_failure(probe_jobs):
    jobs = probe_jobs("ok", "ok", "fail", "ok")
    failures = s3f_jobs.run_jobs(jobs, 1, "t", poll_s=0.05)
    assert [(job.label, error) for job, error in failures] == [
        ("2-fail", "RuntimeError: planned failure")
    ]
    first, second, failed, after = (_probe(job) for job in jobs)
    assert first["pid"] == second["pid"] == failed["pid"]  # one kernel for three notebooks
    assert after["pid"] != first["pid"]  # not reused after the failure
    assert [p["seen"] for p in (first, second, failed, after)] == [None] * 4  # fresh namespace
    assert second["cwd"] == str(jobs[1].run_dir.parent)
    executed = nbformat.read(jobs[1].executed, as_version=4)
    assert [c.execution_count for c in executed.cells] == [1, 2, 3]  # injected parameters: 2


def test_html_copies_are_written_unless_the_job_says_no(probe_jobs):
    with_html, without = probe_jobs("ok", "ok")
    without.html = False  # s3f-sweep --no-html
    assert s3f_jobs.run_jobs([with_html, without], 1, "t", poll_s=0.05) == []
    assert with_html.executed.with_suffix(".html").is_file()
    assert without.executed.is_file() and not without.executed.with_suffix(".html").exists()


def test_fresh_kernels_give_every_notebook_its_own(probe_jobs):
    jobs = probe_jobs("ok", "ok")
    assert s3f_jobs.run_jobs(jobs, 1, "t", poll_s=0.05, keep_kernels=False) == []
    assert _probe(jobs[0])["pid"] != _probe(jobs[1])["pid"]


def test_a_dead_worker_fails_only_its_notebook_and_leaves_no_process(
    probe_jobs, tmp_path, monkeypatch
):
    monkeypatch.setenv("S3F_TEST_MARK", str(tmp_path))  # workers and kernels inherit it
    jobs = probe_jobs("kill-worker", "ok")
    failures = s3f_jobs.run_jobs(jobs, 1, "t", poll_s=0.05)
    assert len(failures) == 1 and failures[0][0] is jobs[0]
    assert failures[0][1].startswith("notebook process ended with code -9")
    assert str(jobs[0].run_dir / "sweep.log") in failures[0][1]
    assert jobs[1].finished  # the next notebook got a new worker
    time.sleep(1)  # the killed worker's kernel got SIGTERM
    assert processes_with_env("S3F_TEST_MARK", str(tmp_path)) == []  # no worker, no kernel left
    assert s3f_jobs.LIVE_WORKERS == set()


@pytest.mark.e2e
def test_a_run_in_a_reused_kernel_equals_one_in_a_new_kernel(tmp_path, kernel_env):
    """The claim that makes kernel reuse safe: same numbers, to the last digit, either way."""
    tiny = {"epochs": 2, "demo_count": 6, "img_size": [16, 16], "verbose": 0}
    kept = s3f_sweep.plan_training(
        ["Spatial_BUSI", "SpectraNet_BUSI"], True, None, tiny, tmp_path / "kept"
    )
    assert s3f_jobs.run_jobs(kept, 1, "kept", poll_s=0.5) == []
    fresh = s3f_sweep.plan_training(["SpectraNet_BUSI"], True, None, tiny, tmp_path / "fresh")
    assert s3f_jobs.run_jobs(fresh, 1, "fresh", poll_s=0.5, keep_kernels=False) == []
    reused, new = kept[1].run_dir, fresh[0].run_dir
    for name in ("history.csv", "predictions.csv"):
        assert (reused / name).read_text() == (new / name).read_text(), name
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (reused, new))
    for key in ("accuracy", "weighted_f1", "loss", "confusion_matrix", "best_epoch"):
        assert a[key] == b[key], key
