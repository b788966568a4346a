"""The sweep on a real Ray cluster (127.0.0.1, two worker processes, CPU): a worker killed
mid-task loses its run — reported failed, never counted as finished — and a rerun completes
only what is missing."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason='the cluster extra: pip install "s3f-kit[cluster]"')

from s3f_kit.sweep import cluster as s3f_cluster  # noqa: E402
from s3f_kit.sweep import sweep as s3f_sweep  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = {"epochs": 1, "img_size": [16, 16], "demo_count": 6, "batch_size": 8, "verbose": 2}


def test_unreachable_cluster_is_one_clear_error():
    assert not ray.is_initialized()
    with pytest.raises(s3f_sweep.SweepError, match="--cluster 127.0.0.1:1: no Ray head answers"):
        s3f_cluster.ClusterRunner("127.0.0.1:1")


@pytest.fixture(scope="module")
def local_ray(kernel_env):
    """A real Ray cluster on this machine: GCS, raylet and two CPU worker slots."""
    paths = [str(REPO), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)  # workers inherit it
    ray.init(
        num_cpus=2,
        num_gpus=0,
        include_dashboard=False,
        logging_level="warning",
        _node_ip_address="127.0.0.1",
    )
    yield
    ray.shutdown()


def _sweep(output, result):
    result["failures"] = s3f_sweep.run_sweep(
        ["Spatial_BUSI"], True, None, TINY, output, seeds=[42, 43, 44], cluster="auto", retries=0
    )


@pytest.mark.e2e
def test_killed_worker_loses_only_its_run_and_a_rerun_completes_it(local_ray, tmp_path):
    output = tmp_path / "runs"
    result = {}
    sweep = threading.Thread(target=_sweep, args=(output, result))
    sweep.start()
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline:  # the first task that starts
        for task_file in output.glob(f"*/*/{s3f_cluster.TASK_FILE}"):
            victim = task_file.parent
            break
        time.sleep(0.2)
    assert victim is not None, "no task started on the cluster"
    worker_pid = s3f_cluster.task_attempts(victim)[0]["pid"]
    assert worker_pid != os.getpid()  # a Ray worker process, not this one
    os.kill(worker_pid, signal.SIGKILL)
    sweep.join(timeout=600)
    assert not sweep.is_alive()

    failures = result["failures"]
    assert [job.run_dir for job, _ in failures] == [victim]
    assert "Worker" in failures[0][1] or "died" in failures[0][1], failures[0][1]
    assert not (victim / "metrics.json").exists()  # its notebook process died with the worker
    survivors = sorted(p.parent for p in output.glob("*/*/metrics.json"))
    assert len(survivors) == 2 and victim not in survivors
    for run in survivors:
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["epochs_run"] == 1 and metrics["seed"] == int(run.name[4:])
    before = {run: (run / "metrics.json").stat().st_mtime_ns for run in survivors}

    rerun = {}
    _sweep(output, rerun)
    assert rerun["failures"] == []
    assert (victim / "metrics.json").is_file()
    assert len(s3f_cluster.task_attempts(victim)) == 1  # a fresh folder, one clean attempt
    for run, mtime in before.items():  # finished runs were not run again
        assert (run / "metrics.json").stat().st_mtime_ns == mtime
        assert len(s3f_cluster.task_attempts(run)) == 1
