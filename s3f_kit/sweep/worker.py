"""The notebook worker: a child process that executes sweep notebooks with papermill.

    python -m s3f_kit.sweep.worker  # serve: one JSON job spec per stdin line, one result line each
    python -m s3f_kit.sweep.worker --fresh  # the same, with a new kernel for every notebook

A sweep starts one worker per parallel slot (s3f_jobs.NotebookWorker) and hands it notebooks one
after another. The worker keeps its Jupyter kernel between notebooks: a new process, kernel and
TensorFlow import cost about 10 s per notebook, as much as a whole demo training run. Between
notebooks the kernel is made fresh where it matters — a new IPython session (empty namespace,
execution counts from 1), Keras' global state cleared, figures closed, the next run's working
folder — while imported modules stay. Every run sets its own seeds and dtype policy, and a test
checks that a run gives exactly the same numbers in a reused kernel as in a new one. After a
failed notebook, a dead kernel or MAX_NOTEBOOKS_PER_KERNEL notebooks the kernel is replaced.

SIGTERM (the sweep stopping) kills the kernel and the worker at once; SIGINT is ignored (the
sweep decides what Ctrl-C means). Everything the worker and its kernel write on stderr is the
sweep's to file: it copies each notebook's share into that run's sweep.log.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from functools import cache
from pathlib import Path

RESULT_TAG = "S3F_SWEEP_RESULT "
# A kernel is replaced after this many notebooks, so memory that Python or TensorFlow does not
# hand back cannot grow without bound over a long sweep.
MAX_NOTEBOOKS_PER_KERNEL = 25
# Run in a kept kernel before its next notebook (silently: the notebook's counts start at 1).
FRESH_SESSION = """\
get_ipython().reset(new_session=True)
import gc as _gc, os as _os, sys as _sys
if "keras" in _sys.modules:
    _sys.modules["keras"].backend.clear_session()
if "s3f_kit.locks" in _sys.modules:  # a run the last notebook left unfinished is not ours now
    _sys.modules["s3f_kit.locks"].release_all()
if "matplotlib.pyplot" in _sys.modules:
    _sys.modules["matplotlib.pyplot"].close("all")
_os.chdir({cwd!r})
del _os, _sys
_gc.collect()
del _gc
"""


def die_with_parent():
    """Linux: the child gets SIGTERM when the thread that started it dies (a killed worker)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@cache
def _kernel_manager_class():
    from jupyter_client.manager import AsyncKernelManager

    class KeptKernelManager(AsyncKernelManager):
        """Remembers the clients papermill opens on the kernel, so they can be closed: papermill
        leaves them open on a kernel it did not start (each holds sockets and a thread)."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.opened_clients = []

        def client(self, **kwargs):
            client = super().client(**kwargs)
            self.opened_clients.append(client)
            return client

        def close_clients(self):
            while self.opened_clients:
                self.opened_clients.pop().stop_channels()

    return KeptKernelManager


class KeptKernel:
    """The worker's kernel: started on first use, reset between notebooks, replaced when needed."""

    def __init__(self, keep: bool = True):
        from jupyter_core.utils import run_sync

        self.keep, self.manager, self.notebooks = keep, None, 0
        self._sync = run_sync  # one event loop per thread: papermill's, shared with ours

    def ready(self, cwd: str):
        """A kernel for the next notebook: fresh if new, else reset and moved to cwd."""
        if self.manager is not None and (
            self.notebooks >= MAX_NOTEBOOKS_PER_KERNEL
            or not self._sync(self.manager.is_alive)()
            or not self._sync(self._run_silently)(FRESH_SESSION.format(cwd=cwd))
        ):
            self.discard()
        if self.manager is None:
            self.manager = _kernel_manager_class()(kernel_name="python3")
            # The kernel's own stdout (native libraries' prints) goes to stderr: stdout carries
            # this worker's result lines. The history in memory: parallel kernels would lock
            # one shared history file.
            self._sync(self.manager.start_kernel)(
                cwd=cwd,
                stdout=sys.stderr,
                preexec_fn=die_with_parent,  # a killed worker leaves no kernel behind
                extra_arguments=["--HistoryManager.hist_file=:memory:"],
            )
            self.notebooks = 0
        self.notebooks += 1
        return self.manager

    async def _run_silently(self, code: str, timeout: float = 120) -> bool:
        client = self.manager.client()
        try:
            client.start_channels(hb=False)
            await client.wait_for_ready(timeout=timeout)
            reply = await client.execute(
                code, silent=True, store_history=False, reply=True, timeout=timeout
            )
            return reply["content"]["status"] == "ok"
        except Exception as exc:  # a kernel that cannot reset is replaced, not trusted
            print(
                f"kernel reset failed ({type(exc).__name__}: {exc}); starting a new one",
                file=sys.stderr,
            )
            return False
        finally:
            self.manager.close_clients()

    def finished(self, succeeded: bool) -> None:
        """After a notebook: close papermill's clients; a failed run's kernel is not reused."""
        if self.manager is not None:
            self.manager.close_clients()
            if not (succeeded and self.keep):
                self.discard()

    def discard(self) -> None:
        if self.manager is None:
            return
        manager, self.manager = self.manager, None
        try:
            manager.close_clients()
            self._sync(manager.shutdown_kernel)(now=True)  # kill: nothing of a run is left in it
        except Exception as exc:
            print(f"kernel shutdown: {type(exc).__name__}: {exc}", file=sys.stderr)


def execute_notebook(spec: dict, kernel: KeptKernel) -> str | None:
    """Run one notebook (spec: notebook, output, params, cwd); returns an error line or None."""
    import papermill

    error = None
    try:
        papermill.execute_notebook(
            spec["notebook"],
            spec["output"],
            parameters=spec["params"],
            kernel_name="python3",
            progress_bar=False,
            cwd=spec["cwd"],
            km=kernel.ready(spec["cwd"]),
        )
    except papermill.PapermillExecutionError as exc:  # the kit's own message, one line
        evalue = (exc.evalue or "").strip().splitlines()
        error = f"{exc.ename}: {evalue[0] if evalue else ''}"
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        error = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
    kernel.finished(succeeded=error is None)
    # html False (s3f-sweep --no-html, make demo): keep the executed notebook, skip its HTML copy
    if Path(spec["output"]).is_file() and spec.get("html", True):
        try:
            from nbconvert import HTMLExporter

            from data_setup.files import write_atomic

            body, _ = HTMLExporter().from_filename(spec["output"])
            write_atomic(Path(spec["output"]).with_suffix(".html"), body)
        except Exception as exc:
            print(f"HTML export failed: {exc}", file=sys.stderr)
    return error


def serve(keep_kernel: bool = True) -> int:
    import psutil

    def stop(*_):  # the sweep asks us to stop: end the kernel too, now
        for child in psutil.Process().children(recursive=True):
            child.kill()
        os._exit(143)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kernel = KeptKernel(keep=keep_kernel)
    try:
        for line in sys.stdin:
            if line.strip():
                error = execute_notebook(json.loads(line), kernel)
                sys.stderr.flush()  # before the result line: the sweep then copies this job's log
                print(RESULT_TAG + json.dumps({"error": error}), flush=True)
    finally:
        kernel.discard()
    return 0


if __name__ == "__main__":
    sys.exit(serve(keep_kernel="--fresh" not in sys.argv[1:]))
