"""The sweep on a Ray cluster: each notebook run is one Ray task.

    python -m s3f_kit.sweep --data-root /shared/data --output /shared/runs --cluster auto
    python -m s3f_kit.sweep --demo --cluster local      # start a one-machine cluster here

Ray schedules the tasks: exactly one GPU per task when the cluster has GPUs, else one CPU and
no GPU. The task pins its notebook to the GPU Ray gave it, or hides every GPU from a CPU task:
Ray no longer does the latter itself (task_gpu). A task runs the same child process as the local
sweep (s3f_jobs.execute_job), so resume, failure isolation, the changed-parameter check and the
live progress line behave alike; --output must be a folder every node sees at the same path.
A task whose worker dies is retried (--retries, default 1), then reported failed; its run folder
has no metrics.json, so it never counts as finished. Needs `pip install "s3f-kit[cluster]"`.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from s3f_kit.sweep import jobs as s3f_jobs
from s3f_kit.sweep.jobs import REPO, Job, SweepError, SweepInterrupted

INSTALL_HINT = 'pip install "s3f-kit[cluster]"  (or: pip install ray)'
TASK_FILE = "sweep-task.json"  # host, pid and attempts of the task running a run folder


def import_ray():
    try:
        import ray
    except ImportError:
        raise SweepError(f"--cluster needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def task_options(gpus: int) -> dict:
    """What each task asks Ray for: exactly one GPU on a cluster with GPUs, else one CPU."""
    return {"num_gpus": 1} if gpus else {"num_cpus": 1, "num_gpus": 0}


def task_gpu() -> str:
    """Inside a Ray task: the CUDA_VISIBLE_DEVICES its notebook gets. The one GPU Ray assigned
    to it, or HIDE_GPUS for a task that asked for none: Ray no longer sets "" then (ray-project/
    ray#54868; RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=1 restores the old way), so the task would
    inherit its node's GPUs and TensorFlow would take the memory of all of them."""
    ray = import_ray()
    ids = [str(i) for i in ray.get_gpu_ids()]
    if len(ids) > 1:  # task_options asks for one; a second would sit idle
        raise SweepError(f"a sweep task was given {len(ids)} GPUs ({','.join(ids)}), not one")
    return ids[0] if ids else s3f_jobs.HIDE_GPUS


def run_on_worker(job: Job) -> str | None:
    """Body of the Ray task: note where it runs (attempts count up), then run the notebook on
    the task's GPU, or on no GPU."""
    task_file = job.run_dir / TASK_FILE
    job.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        attempts = json.loads(task_file.read_text())["attempts"]
    except (OSError, ValueError, KeyError):
        attempts = []
    attempts.append({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()})
    from data_setup.files import write_json_atomic

    write_json_atomic(task_file, {"attempts": attempts})
    return s3f_jobs.execute_job(job, gpu=task_gpu())


class ClusterRunner:
    """Connects to (or, for 'local', starts) a Ray cluster and runs sweep jobs on it."""

    def __init__(self, address: str, retries: int = 1, poll_s: float = 5.0):
        ray = import_ray()
        self.ray, self.retries, self.poll_s = ray, max(0, retries), poll_s
        self.started_here = not ray.is_initialized()
        if self.started_here:
            # Workers of a cluster started here inherit this environment: the kit must import.
            paths = [str(REPO), os.environ.get("PYTHONPATH", "")]
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
            options = {"include_dashboard": False, "logging_level": "warning"}
            host, _, port = address.rpartition(":")
            if host and port.isdigit():  # Ray retries an unreachable address for minutes
                try:
                    socket.create_connection((host, int(port)), timeout=10).close()
                except OSError as error:
                    raise SweepError(
                        f"--cluster {address}: no Ray head answers there ({error}); start one "
                        "with `ray start --head` or use --cluster local"
                    ) from None
            try:
                ray.init(**options) if address == "local" else ray.init(address=address, **options)
            except Exception as error:  # no cluster there, wrong port, version mismatch
                first = (str(error).strip().splitlines() or [""])[0]
                raise SweepError(
                    f"--cluster {address}: cannot start or reach a Ray cluster ({first})"
                ) from None
        self.gpus = int(ray.cluster_resources().get("GPU", 0))
        self.task = ray.remote(run_on_worker)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        per_task = "one GPU per notebook" if self.gpus else "one CPU per notebook"
        print(f"Ray cluster: {cpus} CPU(s), {self.gpus} GPU(s); {per_task}")

    def close(self):
        if self.started_here and self.ray.is_initialized():
            self.ray.shutdown()

    def run_jobs(self, todo: list[Job], desc: str) -> list[tuple[Job, str]]:
        """Submit every job, wait for all; returns (job, message) of the failed ones."""
        from tqdm.auto import tqdm

        ray = self.ray
        resources = task_options(self.gpus)
        refs = {
            self.task.options(max_retries=self.retries, **resources).remote(job): job
            for job in todo
        }
        failures, pending = [], list(refs)
        bar = tqdm(total=len(todo), desc=desc, unit="notebook")
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=self.poll_s)
                for ref in done:
                    job = refs[ref]
                    try:
                        error = ray.get(ref)
                    except Exception as exc:  # the task or its worker failed
                        lines = str(exc).strip().splitlines()
                        error = f"{type(exc).__name__}: {lines[0] if lines else ''}"
                    if error is None and not job.finished:  # never trust a lost task
                        error = "task ended but the run folder holds no matching metrics.json"
                    bar.write(f"  {job.label}: " + (f"FAILED — {error}" if error else "done"))
                    if error:
                        failures.append((job, error))
                    bar.update()
                started = [refs[r] for r in pending if (refs[r].run_dir / TASK_FILE).is_file()]
                bar.set_postfix_str(s3f_jobs.progress_status(started)[:200], refresh=True)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)  # kills the worker; its notebook process follows
            bar.close()
            raise SweepInterrupted(
                [j for j in todo if j.finished], [j for j in todo if not j.finished]
            ) from None
        bar.close()
        return failures


def task_attempts(run_dir) -> list[dict]:
    """The attempts recorded for a run folder by cluster tasks (host, pid, started)."""
    try:
        return json.loads((Path(run_dir) / TASK_FILE).read_text())["attempts"]
    except (OSError, ValueError, KeyError):
        return []
