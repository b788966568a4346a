"""S3F_DETERMINISTIC: the same seed gives bit-identical runs whatever the core count and the
instruction set oneDNN would pick; the environment that decides it is recorded in metrics.json."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from s3f_kit.run import env as s3f_env

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
from s3f_kit.run import env as s3f_env
from s3f_kit.run import training as s3f_training
run = s3f_training.Run("S3F_Concat_BUSI", output_dir=sys.argv[1], img_size=[16, 16],
                       demo_count=6, batch_size=8, verbose=0, epochs=2, seed=7)
data = run.load_data()
run.train(run.build_model(data), data)
metrics = run.evaluate(data)
print(json.dumps({"losses": [float(x) for x in run.history["loss"]],
                  "environment": metrics["environment"], "run_dir": str(run.run_dir)}))
"""


def test_settings_apply_only_when_asked(monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # as in a fresh process
    for off in ({}, {"S3F_DETERMINISTIC": "0"}, {"S3F_DETERMINISTIC": ""}):
        environ = dict(off)
        assert not s3f_env.apply_deterministic_settings(environ)
        assert environ == off
    environ = {"S3F_DETERMINISTIC": "1", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
    assert s3f_env.apply_deterministic_settings(environ)
    assert environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert environ["TF_NUM_INTRAOP_THREADS"] == str(s3f_env.DETERMINISTIC_THREADS)


def test_settings_after_tensorflow_warn_and_change_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    environ = {"S3F_DETERMINISTIC": "1"}
    with pytest.warns(UserWarning, match="new process"):
        assert not s3f_env.apply_deterministic_settings(environ)
    assert environ == {"S3F_DETERMINISTIC": "1"}


def _train(tmp_path, name, env, cores):
    environ = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "S3F_CACHE_DIR": str(tmp_path / "cache"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        "S3F_DETERMINISTIC": "1",
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / name)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=lambda: os.sched_setaffinity(0, cores),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["predictions"] = (Path(result["run_dir"]) / "predictions.csv").read_bytes()
    return result


@pytest.mark.e2e
@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or s3f_env._best_isa(s3f_env._cpu_info()[1]) is None,
    reason="needs Linux CPU affinity and an x86-64 CPU",
)
def test_deterministic_runs_are_identical_on_emulated_other_machines(tmp_path):
    cores = sorted(os.sched_getaffinity(0))
    here = _train(tmp_path, "here", {}, cores)
    # Another machine: one core (TensorFlow would size its pools by it), oneDNN asked for
    # AVX-512 kernels and switched off — the settings S3F_DETERMINISTIC fixes.
    other = _train(
        tmp_path,
        "other",
        {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "TF_ENABLE_ONEDNN_OPTS": "0"},
        cores[:1],
    )
    assert here["predictions"] == other["predictions"]
    assert here["losses"] == other["losses"]
    for result, count in ((here, len(cores)), (other, 1)):
        environment = result["environment"]
        assert environment["deterministic"] and environment["cpu_cores"] == count
        assert environment["onednn_max_cpu_isa"] == "AVX2"
        assert environment["intra_op_threads"] == s3f_env.DETERMINISTIC_THREADS
        assert environment["op_determinism"] is True


def test_results_readme_states_machine_versions_and_what_reproduces():
    from s3f_kit.reports import results as s3f_results

    record = {
        "cpu": "Some CPU",
        "cpu_isa": "avx2",
        "cpu_cores": 8,
        "device": "CPU",
        "tensorflow": "2.18.1",
        "keras": "3.8.0",
        "numpy": "2.0.2",
        "python": "3.11.7",
        "onednn_max_cpu_isa": "AVX2",
        "intra_op_threads": 2,
        "deterministic": True,
    }
    line = s3f_results._environment_line([{"environment": record}] * 2)
    assert "Some CPU (avx2, 8 cores)" in line and "TensorFlow 2.18.1" in line
    assert "whatever its core count" in line and "another CPU model" in line
    mixed = [{"environment": record}, {"environment": {**record, "deterministic": False}}]
    assert "set in 1 of 2 runs" in s3f_results._environment_line(mixed)
    assert "not recorded" in s3f_results._environment_line([{}])
