"""GPU readiness (issue 31, items 8 and 9): which GPUs a sweep's notebooks see (locally and as
Ray tasks), TensorFlow's op determinism under S3F_DETERMINISTIC on a GPU and its record, and
benchmarks/gpu_check.py. This machine has no GPU: Ray is given pretend GPUs, TensorFlow a
pretend GPU list, and the check script runs at its --smoke settings on the CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from s3f_kit.run import env as s3f_env
from s3f_kit.sweep import cluster as s3f_cluster
from s3f_kit.sweep import jobs as s3f_jobs

REPO = Path(__file__).resolve().parents[1]
GPU_CHECK = REPO / "benchmarks" / "gpu_check.py"

# --------------------------------------------------------------------------- which GPUs


def test_visible_gpus_are_the_ids_a_child_understands():
    assert s3f_jobs.visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert s3f_jobs.visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-8f3a, 1"}) == ["GPU-8f3a", "1"]
    assert s3f_jobs.visible_gpus({"CUDA_VISIBLE_DEVICES": "0,-1,1"}) == ["0"]  # as CUDA reads it
    assert s3f_jobs.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_a_workers_environment_pins_one_gpu_hides_them_or_keeps_what_it_inherits():
    environ = {"CUDA_VISIBLE_DEVICES": "0,1", "PYTHONPATH": "/elsewhere"}
    before = dict(environ)
    assert s3f_jobs.worker_environment("1", environ)["CUDA_VISIBLE_DEVICES"] == "1"
    assert s3f_jobs.worker_environment(s3f_jobs.HIDE_GPUS, environ)["CUDA_VISIBLE_DEVICES"] == ""
    kept = s3f_jobs.worker_environment(None, environ)
    assert kept["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert kept["PYTHONPATH"].split(os.pathsep) == [str(REPO), "/elsewhere"]
    assert environ == before


def test_a_cluster_task_runs_its_notebook_on_its_one_gpu_or_on_none(tmp_path, monkeypatch):
    import types

    given, ran = [], []
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(get_gpu_ids=lambda: given))
    monkeypatch.setattr(s3f_jobs, "execute_job", lambda job, gpu=None: ran.append(gpu))
    job = s3f_jobs.Job("Spatial_BUSI/seed42", "Spatial_BUSI", {}, tmp_path / "run")
    for ids, expected in (([], s3f_jobs.HIDE_GPUS), ([5], "5")):
        given[:] = ids
        s3f_cluster.run_on_worker(job)
        assert ran.pop() == expected
    given[:] = [5, 6]
    with pytest.raises(s3f_jobs.SweepError, match="given 2 GPUs"):
        s3f_cluster.run_on_worker(job)


PROBE = """
import json, os
with open({path!r}, "w") as out:
    json.dump({{"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}}, out)
"""


def _probe_job(tmp_path, name):
    """A Job whose notebook writes the CUDA_VISIBLE_DEVICES its kernel sees into its marker."""
    import nbformat

    run_dir = tmp_path / "runs" / name
    notebook = tmp_path / "notebooks" / name  # absolute: NOTEBOOK_DIR / it is itself
    notebook.parent.mkdir(parents=True, exist_ok=True)
    cell = nbformat.v4.new_code_cell(PROBE.format(path=str(run_dir / "seen.json")))
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), f"{notebook}.ipynb")
    return s3f_jobs.Job(name, str(notebook), {}, run_dir, marker="seen.json", html=False)


@pytest.mark.e2e
def test_ray_cpu_tasks_hide_the_gpus_and_gpu_tasks_get_exactly_one(tmp_path, monkeypatch):
    """A real Ray cluster on 127.0.0.1 (one CPU, two pretend GPUs "5" and "6" that its workers
    inherit, as on a GPU node): each task runs the kit's task body, whose worker process starts
    a kernel that reports what it sees. Ray no longer hides the GPUs from a task that asks for
    none (RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO unset): the kit must."""
    ray = pytest.importorskip("ray", reason='the cluster extra: pip install "s3f-kit[cluster]"')
    assert not ray.is_initialized()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,6")  # what the raylet and its workers inherit
    monkeypatch.delenv("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", raising=False)  # Ray's default
    paths = [str(REPO), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    ray.init(
        num_cpus=1,
        num_gpus=2,
        include_dashboard=False,
        logging_level="warning",
        _node_ip_address="127.0.0.1",
    )
    try:
        task = ray.remote(s3f_cluster.run_on_worker)
        cpu_job, gpu_job = _probe_job(tmp_path, "cpu"), _probe_job(tmp_path, "gpu")
        assert s3f_cluster.task_options(0)["num_gpus"] == 0
        assert s3f_cluster.task_options(2)["num_gpus"] == 1  # one each, however many there are
        refs = [
            task.options(**s3f_cluster.task_options(0)).remote(cpu_job),
            task.options(**s3f_cluster.task_options(2)).remote(gpu_job),
        ]
        assert ray.get(refs, timeout=300) == [None, None]
    finally:
        ray.shutdown()
    seen = {
        job.label: json.loads((job.run_dir / "seen.json").read_text())["CUDA_VISIBLE_DEVICES"]
        for job in (cpu_job, gpu_job)
    }
    assert seen["cpu"] == ""  # hidden: its TensorFlow takes no GPU
    assert seen["gpu"] in ("5", "6")  # one of the node's, in the node's own terms


# --------------------------------------------------------------------------- op determinism


@pytest.fixture
def pretend_gpu(keras, monkeypatch):
    """TensorFlow lists one GPU; op determinism is off to begin with and restored after."""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    gpu = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")
    logical = tf.config.LogicalDevice("/device:GPU:0", "GPU")
    physical, logical_devices = tf.config.list_physical_devices, tf.config.list_logical_devices
    monkeypatch.setattr(
        tf.config,
        "list_physical_devices",
        lambda kind=None: [gpu] if kind == "GPU" else physical(kind),
    )
    monkeypatch.setattr(
        tf.config,
        "list_logical_devices",
        lambda kind=None: [logical] if kind == "GPU" else logical_devices(kind),
    )
    was = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    yield tf_config
    (tf_config.enable_op_determinism if was else tf_config.disable_op_determinism)()


def test_a_gpu_run_turns_op_determinism_on_only_under_s3f_deterministic(pretend_gpu, monkeypatch):
    import tensorflow as tf

    monkeypatch.delenv(s3f_env.DETERMINISTIC_ENV, raising=False)
    assert s3f_env.apply_op_determinism() is False  # a GPU's fast kernels by default
    assert not pretend_gpu.is_op_determinism_enabled()
    record = s3f_env.environment_record()
    assert record["op_determinism"] is False and record["deterministic"] is False

    monkeypatch.setenv(s3f_env.DETERMINISTIC_ENV, "1")
    assert s3f_env.apply_op_determinism() is True
    assert pretend_gpu.is_op_determinism_enabled()
    record = s3f_env.environment_record()
    assert record["op_determinism"] is True and record["deterministic"] is True
    assert record["device"] == "GPU"
    assert record["cuda"] == tf.sysconfig.get_build_info().get("cuda_version")


def test_a_cpu_run_keeps_op_determinism_on_as_before(keras, monkeypatch):
    from tensorflow.python.framework import config as tf_config

    monkeypatch.delenv(s3f_env.DETERMINISTIC_ENV, raising=False)
    was = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    try:
        assert s3f_env.apply_op_determinism() is True
        assert tf_config.is_op_determinism_enabled()
        assert s3f_env.environment_record()["op_determinism"] is True
        assert "cuda" not in s3f_env.environment_record()  # CPU: no GPU libraries to record
    finally:
        (tf_config.enable_op_determinism if was else tf_config.disable_op_determinism)()


class _Refusing:
    """A model whose training step meets an op without a deterministic GPU kernel."""

    def __init__(self, error):
        self.error = error

    def fit(self, *args, **kwargs):
        raise self.error


def test_an_op_without_a_deterministic_gpu_kernel_stops_training_and_says_why(
    keras, kernel_env, tmp_path, monkeypatch
):
    import tensorflow as tf

    from s3f_kit.run import training as s3f_training

    run = s3f_training.Run(
        "Spatial_BUSI", output_dir=str(tmp_path), img_size=[16, 16], demo_count=6,
        batch_size=8, verbose=0, epochs=1,
    )  # fmt: skip
    data = run.load_data()  # turns op determinism on (a CPU)
    # TensorFlow's own words (libtensorflow_cc), as a GPU training step raises them
    refusal = tf.errors.UnimplementedError(
        None, None, "Deterministic GPU implementation of unsorted segment reduction op not "
        "available.\n\t [[{{node UnsortedSegmentSum}}]]",
    )  # fmt: skip
    monkeypatch.setenv(s3f_env.DETERMINISTIC_ENV, "1")
    with pytest.raises(s3f_env.DeterminismError) as caught:
        run.train(_Refusing(refusal), data)
    message = str(caught.value)
    assert message.startswith("Deterministic GPU implementation of unsorted segment reduction")
    assert "S3F_DETERMINISTIC=1 turned on" in message and "S3F_DETERMINISTIC=0" in message
    assert "\n" not in message  # one line
    assert caught.value.__cause__ is refusal  # TensorFlow's error kept, not swallowed
    assert isinstance(caught.value, s3f_env.EXPECTED_ERRORS)  # a notebook shows one line

    monkeypatch.delenv(s3f_env.DETERMINISTIC_ENV)  # not the variable's doing: left as it is
    with pytest.raises(tf.errors.UnimplementedError) as plain:
        run.train(_Refusing(refusal), data)  # the first call gave the run's lock back
    assert plain.value is refusal


# --------------------------------------------------------------------------- gpu_check.py


def _load_gpu_check():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", GPU_CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_budget_starts_only_what_its_estimate_says_fits():
    gpu_check = _load_gpu_check()
    now = [0.0]
    budget = gpu_check.Budget(100, clock=lambda: now[0])
    guess = gpu_check.GUESS_S["measure"]
    now[0] = 100 - guess  # exactly the first guess left
    assert budget.fits("measure")
    budget.took("measure", guess + 1)  # slower than guessed: the longest so far counts
    assert budget.estimate("measure") == guess + 1 and not budget.fits("measure")
    budget.took("measure", 1)
    assert budget.estimate("measure") == guess + 1


def test_the_documented_gpu_check_commands_parse():
    import shlex

    parser = _load_gpu_check().build_parser()
    program = "python benchmarks/gpu_check.py"
    found = 0
    for doc in ("sweep.md", "install.md"):
        for line in (REPO / "docs" / doc).read_text().splitlines():
            if line.startswith(program):
                parser.parse_args(shlex.split(line[len(program) :].split(" #")[0]))
                found += 1
    assert found >= 3


def _gpu_check(tmp_path, *argv, timeout=600):
    env = {**os.environ, "S3F_CACHE_DIR": str(tmp_path / "cache"), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(GPU_CHECK), "--out", str(tmp_path / "out"), *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.md"]  # no temps
    return (
        done.stdout,
        json.loads((out / "gpu_check.json").read_text()),
        (out / "gpu_check.md").read_text(),
    )


def test_gpu_check_skips_what_does_not_fit_its_budget_and_lists_it(tmp_path):
    stdout, data, text = _gpu_check(tmp_path, "--smoke", "--budget-seconds", "5", timeout=120)
    assert data["budget_s"] == 5 and data["elapsed_s"] < 5
    skipped = data["skipped"]
    assert skipped[0].startswith("(a) determinism run 1: needs ~")
    assert skipped[1].startswith("(b), (c): TensorFlow's import here")
    assert data["determinism"]["runs"] == [] and data["throughput"] == []
    for line in skipped:
        assert f"- {line}" in text and f"skipped {line}" in stdout


@pytest.mark.e2e
def test_gpu_check_smoke_runs_every_stage_and_says_its_figures_are_not_gpu_figures(tmp_path):
    stdout, data, text = _gpu_check(tmp_path, "--smoke", "--only", "Spatial_BUSI")
    assert data["gpu"] is False and data["device"] == "CPU" and data["smoke"] is True
    assert "not GPU figures" in stdout and "**NO GPU:" in text and "not GPU figures" in text
    runs = data["determinism"]["runs"]
    assert len(runs) == 2 and all(run["op_determinism"] is True for run in runs)
    assert runs[0]["weights_sha256"] == runs[1]["weights_sha256"]  # a CPU: bit-identical
    assert data["determinism"]["verdict"].startswith("identical")
    assert data["peak_memory"]["experiment"] == "S3F_Concat_BUSI"
    assert data["peak_memory"]["peak_mib"] is None  # no GPU memory on a CPU
    rows = data["throughput"]
    assert [(r["experiment"], r["config"]) for r in rows] == [
        ("Spatial_BUSI", "kit-f32"),
        ("Spatial_BUSI", "kit-mixed"),
    ]
    assert all(r["images_per_s"] > 0 for r in rows)
    assert f"| Spatial_BUSI | {rows[1]['precision']} | 32×32 |" in text
    assert set(data["stage_s"]) == {"determinism", "peak_memory", "throughput"}
    assert data["skipped"] == [] and data["elapsed_s"] <= data["budget_s"]
