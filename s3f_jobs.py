"""Running sweep jobs: one notebook per child process, locally or as a cluster task.

A Job is one notebook execution (a training run, or the explainability notebook on one). Each
runs in its own child process (`python -m s3f_jobs SPEC`), which runs papermill and prints one
result line; the sweep can stop it (SIGTERM ends its kernel too) and it dies with the process
that started it. run_jobs runs many, N at a time with one GPU each, and shows each running
run's epoch from its progress.json. Ctrl-C stops the running notebooks and the queue.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue

from tqdm.auto import tqdm

from s3f_notebooks import NOTEBOOK_DIR

REPO = Path(__file__).resolve().parent
RESULT_TAG = "S3F_SWEEP_RESULT "
# Parameters that change where or how loudly a run reports, not what it computes.
NOT_COMPARED = {"output_dir", "verbose", "gpu", "mount_drive", "EXPERIMENT"}


class SweepError(Exception):
    """A problem with what the sweep was asked to do; main prints it as one message."""


class SweepInterrupted(Exception):  # noqa: N818  (not an error: the user pressed Ctrl-C)
    def __init__(self, finished, unfinished):
        super().__init__("interrupted")
        self.finished, self.unfinished = finished, unfinished


def count_gpus() -> int:
    """GPUs visible to child processes, without importing TensorFlow here."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


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
    keys = (set(recorded) & set(expected)) - NOT_COMPARED
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


def _execute_in_this_process(spec: dict) -> int:
    """Child-process side of execute_job: run papermill, print one result line."""
    import papermill
    import psutil

    def stop(*_):  # the sweep asks us to stop: end the kernel too, now
        for child in psutil.Process().children(recursive=True):
            child.kill()
        os._exit(143)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the sweep decides what Ctrl-C means
    error = None
    try:
        papermill.execute_notebook(
            spec["notebook"],
            spec["output"],
            parameters=spec["params"],
            kernel_name="python3",
            progress_bar=False,
            cwd=spec["cwd"],
        )
    except papermill.PapermillExecutionError as exc:  # the kit's own message, one line
        evalue = (exc.evalue or "").strip().splitlines()
        error = f"{exc.ename}: {evalue[0] if evalue else ''}"
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        error = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
    # S3F_SWEEP_NO_HTML=1 (make demo): keep the executed notebook, skip its HTML copy (~2 s each)
    if Path(spec["output"]).is_file() and not os.environ.get("S3F_SWEEP_NO_HTML"):
        try:
            from nbconvert import HTMLExporter

            from data_setup.files import write_atomic

            body, _ = HTMLExporter().from_filename(spec["output"])
            write_atomic(Path(spec["output"]).with_suffix(".html"), body)
        except Exception as exc:
            print(f"HTML export failed: {exc}", file=sys.stderr)
    print(RESULT_TAG + json.dumps({"error": error}), flush=True)
    return 0


def _die_with_parent():
    """Linux: the child gets SIGTERM when the thread that started it dies (a killed worker)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


RUNNING: dict[str, subprocess.Popen] = {}  # label → child process, for Ctrl-C
_RUNNING_LOCK = threading.Lock()


def execute_job(job: Job, env: dict | None = None) -> str | None:
    """Run one notebook in a child process; returns an error line or None."""
    job.run_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "notebook": str(NOTEBOOK_DIR / f"{job.notebook}.ipynb"),
        "output": str(job.executed),
        "params": job.params,
        "cwd": str(job.run_dir.parent),
    }
    child_env = {**os.environ, **(env or {})}
    # Kernels import the kit this sweep runs from.
    child_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), child_env.get("PYTHONPATH")])
    )
    with open(job.run_dir / "sweep.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "s3f_jobs", json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=REPO,
            env=child_env,
            preexec_fn=_die_with_parent,
        )
        with _RUNNING_LOCK:
            RUNNING[job.label] = proc
        try:
            out, _ = proc.communicate()
        finally:
            with _RUNNING_LOCK:
                RUNNING.pop(job.label, None)
    lines = [ln for ln in out.splitlines() if ln.startswith(RESULT_TAG)]
    if not lines:
        return f"notebook process ended with code {proc.returncode} (log: {job.run_dir}/sweep.log)"
    error = json.loads(lines[-1][len(RESULT_TAG) :])["error"]
    if error is None and not job.finished:
        differ = job.differences()
        error = (
            f"notebook finished but its metrics.json records {sorted(differ)} unlike asked"
            if differ
            else f"notebook finished but wrote no {job.marker}"
        )
    return error


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
    """SIGTERM every running notebook process (each ends its kernel), then SIGKILL stragglers."""
    with _RUNNING_LOCK:
        procs = list(RUNNING.values())
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


def run_jobs(todo: list[Job], parallel: int, desc: str, poll_s: float = 5.0):
    """Run jobs `parallel` at a time (one GPU each when GPUs are visible); returns failures as
    (job, message). Ctrl-C stops the running notebooks and the queue: SweepInterrupted."""
    gpus = count_gpus()
    parallel = max(1, parallel)
    free_gpus: Queue = Queue()
    for index in range(gpus):
        free_gpus.put(index)
    if gpus and parallel > gpus:
        print(f"  {parallel} jobs but {gpus} GPUs: running {gpus} at a time, one GPU each")
        parallel = gpus
    stop, running, failures, done_jobs = threading.Event(), {}, [], []
    bar = tqdm(total=len(todo), desc=desc, unit="notebook")

    def task(job):
        if stop.is_set():
            return "not started"
        gpu = free_gpus.get() if gpus else None
        running[job.label] = job
        started = time.perf_counter()
        try:
            error = execute_job(job, None if gpu is None else {"CUDA_VISIBLE_DEVICES": str(gpu)})
        finally:
            running.pop(job.label, None)
            if gpu is not None:
                free_gpus.put(gpu)
        if not stop.is_set():
            on_gpu = f" (GPU {gpu})" if gpu is not None else ""
            status = f"FAILED — {error}" if error else "done"
            bar.write(f"  {job.label}: {status} in {time.perf_counter() - started:.0f} s{on_gpu}")
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
    pool.shutdown()
    bar.close()
    return failures


if __name__ == "__main__":  # the child process of execute_job
    sys.exit(_execute_in_this_process(json.loads(sys.argv[1])))
