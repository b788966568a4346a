"""Running sweep jobs: notebooks in worker processes, locally or as a cluster task.

A Job is one notebook execution (a training run, or the explainability notebook on one).
run_jobs runs many, N at a time with one GPU each, in N NotebookWorkers: child processes
(s3f_worker) that run papermill and keep their kernel from one notebook to the next, which
saves a process, a kernel and a TensorFlow import per notebook. A worker dies with the process
that started it, and the sweep can stop it (SIGTERM ends its kernel too): Ctrl-C stops the
running notebooks and the queue. It shows each running run's epoch from its progress.json.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue

from tqdm.auto import tqdm

from data_setup.files import write_atomic
from s3f_kit import config as s3f_config
from s3f_kit.notebooks import NOTEBOOK_DIR
from s3f_kit.sweep.worker import RESULT_TAG, die_with_parent

REPO = Path(__file__).resolve().parents[2]


class SweepError(Exception):
    """A problem with what the sweep was asked to do; main prints it as one message."""


class SweepInterrupted(Exception):  # noqa: N818  (not an error: the user pressed Ctrl-C)
    def __init__(self, finished, unfinished):
        super().__init__("interrupted")
        self.finished, self.unfinished = finished, unfinished


# CUDA_VISIBLE_DEVICES that hides every GPU from a child process and its kernels.
HIDE_GPUS = ""


def visible_gpus(environ=os.environ) -> list[str]:
    """The IDs of the GPUs this process may hand to its children, without importing TensorFlow:
    the entries of CUDA_VISIBLE_DEVICES where it is set (indexes, UUIDs or MIG names, in the
    terms its children understand: CUDA_VISIBLE_DEVICES=2,3 gives "2" and "3", not 0 and 1),
    else every GPU nvidia-smi lists."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = []
        for entry in (e.strip() for e in visible.split(",")):
            if not entry or entry.startswith("-"):  # CUDA stops at the first invalid entry
                break
            ids.append(entry)
        return ids
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    count = sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
    return [str(index) for index in range(count)]


def count_gpus() -> int:
    """GPUs visible to child processes, without importing TensorFlow here."""
    return len(visible_gpus())


def worker_environment(gpu: str | int | None = None, environ=os.environ) -> dict:
    """The environment of a NotebookWorker's process and its kernels: the kit importable, and
    gpu (an ID of visible_gpus) its only GPU; HIDE_GPUS hides every GPU; None keeps what this
    process sees. A cluster's CPU task must hide them itself: Ray no longer sets
    CUDA_VISIBLE_DEVICES="" for a task that asks for no GPU (ray-project/ray#54868; Ray 2.60
    here), and TensorFlow would then take every GPU of the node."""
    env = dict(environ)
    # Kernels import the kit this sweep runs from.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return env


# --------------------------------------------------------------------------- what to run


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _normal(value):
    value = _literal(value) if isinstance(value, str) else value
    return [_normal(v) for v in value] if isinstance(value, (list, tuple)) else value


def settings_differences(recorded: dict, expected: dict) -> dict:
    """{key: (recorded, expected)} for the compared keys whose values differ."""
    # not compared: where or how loudly a run reports (or what it keeps), not what it computes
    keys = (set(recorded) & set(expected)) - s3f_config.not_compared() - {"EXPERIMENT"}
    return {
        k: (recorded[k], expected[k])
        for k in sorted(keys)
        if _normal(recorded[k]) != _normal(expected[k])
    }


@dataclass
class Job:
    """One notebook execution: which notebook, with what, into which folder."""

    label: str  # the run's folder relative to the output (explainability: "... explain")
    notebook: str  # notebooks/<notebook>.ipynb
    params: dict
    run_dir: Path
    marker: str = "metrics.json"  # its presence (and matching settings) means "finished"
    expected: dict | None = field(default=None, repr=False)  # training jobs: settings to match
    html: bool = True  # also write an HTML copy of the executed notebook (~2 s)

    @property
    def executed(self) -> Path:
        return self.run_dir / f"{self.notebook}.ipynb"

    def recorded_settings(self) -> dict | None:
        try:
            return json.loads((self.run_dir / self.marker).read_text()).get("run_settings", {})
        except (OSError, ValueError):
            return None

    def differences(self) -> dict:
        recorded = self.recorded_settings() if self.expected is not None else None
        return {} if recorded is None else settings_differences(recorded, self.expected)

    @property
    def finished(self) -> bool:
        if self.expected is None:
            return (self.run_dir / self.marker).is_file()
        recorded = self.recorded_settings()
        return recorded is not None and not settings_differences(recorded, self.expected)


# --------------------------------------------------------------------------- one job


LIVE_WORKERS: set[subprocess.Popen] = set()  # every running worker process, for Ctrl-C
_LIVE_LOCK = threading.Lock()


class NotebookWorker:
    """A `python -m s3f_kit.sweep.worker` child process that runs jobs one after another in one kept
    kernel (keep_kernel=False: a new kernel per notebook); gpu pins it and its kernels to one
    GPU, or hides them all (HIDE_GPUS; see worker_environment). The process starts on first use
    and again after it died."""

    def __init__(self, gpu: str | int | None = None, keep_kernel: bool = True):
        self.gpu, self.keep_kernel = gpu, keep_kernel
        self.process: subprocess.Popen | None = None
        self._log = None  # the worker's and its kernels' stderr; each job's share → sweep.log

    def _start(self) -> None:
        env = worker_environment(self.gpu)
        # Written through the child's descriptors only; read here with os.pread (no seeking).
        self._log = tempfile.TemporaryFile(prefix="s3f-worker-")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "s3f_kit.sweep.worker",
                *([] if self.keep_kernel else ["--fresh"]),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=REPO,
            env=env,
            preexec_fn=die_with_parent,
        )
        with _LIVE_LOCK:
            LIVE_WORKERS.add(self.process)

    def run(self, job: Job) -> str | None:
        """Run one job's notebook; returns an error line or None."""
        job.run_dir.mkdir(parents=True, exist_ok=True)
        if self.process is None or self.process.poll() is not None:
            self._forget()
            self._start()
        spec = {
            "notebook": str(NOTEBOOK_DIR / f"{job.notebook}.ipynb"),
            "output": str(job.executed),
            "params": job.params,
            "cwd": str(job.run_dir.parent),
            "html": job.html,
        }
        log_start = os.fstat(self._log.fileno()).st_size
        result = None
        try:
            self.process.stdin.write(json.dumps(spec) + "\n")
            self.process.stdin.flush()
            for line in self.process.stdout:  # anything else on stdout is not ours to parse
                if line.startswith(RESULT_TAG):
                    result = json.loads(line[len(RESULT_TAG) :])
                    break
        except OSError:  # the worker is gone: told below
            pass
        finally:
            self._copy_log(log_start, job.run_dir / "sweep.log")
        if result is None:  # killed, out of memory, crashed: the next job gets a new worker
            code = self.process.wait()
            self._forget()
            return f"notebook process ended with code {code} (log: {job.run_dir}/sweep.log)"
        error = result["error"]
        if error is None and not job.finished:
            differ = job.differences()
            error = (
                f"notebook finished but its metrics.json records {sorted(differ)} unlike asked"
                if differ
                else f"notebook finished but wrote no {job.marker}"
            )
        return error

    def _copy_log(self, start: int, path: Path) -> None:
        end = os.fstat(self._log.fileno()).st_size
        # atomic: never written through a link planted in a shared output folder
        write_atomic(path, os.pread(self._log.fileno(), end - start, start))

    def _forget(self) -> None:
        if self.process is not None:
            with _LIVE_LOCK:
                LIVE_WORKERS.discard(self.process)
            for stream in (self.process.stdin, self.process.stdout):
                with contextlib.suppress(OSError):
                    stream.close()
        if self._log is not None:
            self._log.close()
        self.process, self._log = None, None

    def close(self) -> None:
        """End the worker: its kernel is shut down once its stdin closes."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._forget()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


def execute_job(
    job: Job, worker: NotebookWorker | None = None, gpu: str | int | None = None
) -> str | None:
    """Run one notebook in worker, or without one in a worker of its own with a new kernel (a
    cluster task; gpu as NotebookWorker's); returns an error line or None."""
    if worker is not None:
        return worker.run(job)
    with NotebookWorker(gpu=gpu, keep_kernel=False) as one_off:
        return one_off.run(job)


def run_device(job: Job, gpu: str | int | None) -> str:
    """' on GPU (NVIDIA T4)' / ' on CPU': the device the run's metrics.json records (the
    notebook's own view), else the GPU index the worker was pinned to."""
    try:
        device = json.loads((job.run_dir / job.marker).read_text()).get("device")
    except (OSError, ValueError, AttributeError):
        device = None
    if device:
        pinned = f", CUDA_VISIBLE_DEVICES={gpu}" if gpu is not None else ""
        return f" on {device}{pinned}"
    return f" (GPU {gpu})" if gpu is not None else ""


def progress_status(jobs) -> str:
    """'S3F_Concat_BUSI/seed42 3/25 (F1 0.61)' for each running job that reported an epoch."""
    parts = []
    for job in jobs:
        try:
            p = json.loads((job.run_dir / "progress.json").read_text())
            best = p.get("best_val_f1")
            parts.append(
                f"{job.label} {p['epoch']}/{p['epochs']}"
                + (f" (F1 {best:.2f})" if isinstance(best, (int, float)) else "")
            )
        except (OSError, ValueError, KeyError, TypeError):
            parts.append(f"{job.label} starting")
    return "; ".join(parts)


def stop_running(grace_s: float = 10.0) -> None:
    """SIGTERM every worker process (each ends its kernel), then SIGKILL stragglers."""
    with _LIVE_LOCK:
        procs = list(LIVE_WORKERS)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


# --------------------------------------------------------------------------- many jobs


def run_jobs(
    todo: list[Job], parallel: int, desc: str, poll_s: float = 5.0, keep_kernels: bool = True
):
    """Run jobs `parallel` at a time, each slot a NotebookWorker (one GPU each when GPUs are
    visible; keep_kernels=False: a new kernel per notebook); returns failures as (job, message).
    Ctrl-C stops the running notebooks and the queue: SweepInterrupted."""
    gpus = visible_gpus()
    parallel = max(1, parallel)
    if gpus and parallel > len(gpus):
        count = len(gpus)
        print(f"  {parallel} jobs but {count} GPUs: running {count} at a time, one GPU each")
        parallel = count
    slots = [
        NotebookWorker(gpu=gpus[index] if gpus else None, keep_kernel=keep_kernels)
        for index in range(parallel)
    ]
    free_workers: Queue = Queue()
    for worker in slots:
        free_workers.put(worker)
    stop, running, failures, done_jobs = threading.Event(), {}, [], []
    bar = tqdm(total=len(todo), desc=desc, unit="notebook")

    def task(job):
        if stop.is_set():
            return "not started"
        worker = free_workers.get()
        running[job.label] = job
        started = time.perf_counter()
        try:
            error = execute_job(job, worker)
        finally:
            running.pop(job.label, None)
            free_workers.put(worker)
        if not stop.is_set():
            status = f"FAILED — {error}" if error else "done"
            where = run_device(job, worker.gpu)
            bar.write(f"  {job.label}: {status} in {time.perf_counter() - started:.0f} s{where}")
        return error

    pool = ThreadPoolExecutor(parallel)
    futures = {pool.submit(task, job): job for job in todo}
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, timeout=poll_s, return_when=FIRST_COMPLETED)
            for future in done:
                error = future.result()
                (
                    failures.append((futures[future], error))
                    if error
                    else done_jobs.append(futures[future])
                )
                bar.update()
            bar.set_postfix_str(progress_status(list(running.values()))[:200], refresh=True)
    except KeyboardInterrupt:
        stop.set()
        for future in pending:
            future.cancel()
        stop_running()
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        finished = [j for j in todo if j.finished]
        raise SweepInterrupted(finished, [j for j in todo if not j.finished]) from None
    finally:
        for worker in slots:  # after an interrupt they are already stopped
            worker.close()
    pool.shutdown()
    bar.close()
    return failures
