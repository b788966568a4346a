"""Small builders shared by tests: run folders, planted images, a web server on 127.0.0.1, and
finding a test's leftover processes."""

import contextlib
import graphlib
import http.server
import json
import signal
import struct
import subprocess
import threading
import zlib

from data_setup.datasets import DATASETS
from tests import paper_format


def run_folder(root, model, dataset, size_hw, channels, paper_format_file=False):
    """A run folder as training writes it: model.keras + preprocessing.json (the model saved by
    the kit, or in the paper's own format with `paper_format_file`)."""
    root.mkdir(parents=True)
    if paper_format_file:  # the paper's classes (SpectralFilterLayer, module __main__)
        paper_format.save_in_paper_format(model, root / "model.keras")
    else:
        model.save(root / "model.keras")
    record = {
        "dataset": dataset,
        "class_names": list(DATASETS[dataset].class_names),
        "image_size": list(size_hw),
        "channels": channels,
        "interpolation": "area",
        "scale": 1 / 255,
        "color": "gray" if channels == 1 else "rgb",
    }
    (root / "preprocessing.json").write_text(json.dumps(record))
    return root


def sigint_as_in_a_terminal():
    """preexec_fn for a child a test interrupts as Ctrl-C would. A shell starts background jobs
    (`cmd &`, nohup, some CI runners) with SIGINT ignored, the child inherits that, and Python
    then installs no KeyboardInterrupt handler: the test's SIGINT would be lost and the test
    would measure how pytest was launched instead of how the kit stops."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def processes_with_env(key, value):
    """PIDs of live processes whose environment has key=value (a test marks its own with it)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(key) == value:
                found.append(proc.pid)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return found


@contextlib.contextmanager
def small_disk(folder, size: str):
    """A real file system of `size` (tmpfs) mounted at `folder`, to fill for full-disk tests;
    the test is skipped where mounting is not allowed (not root, a container without the
    capability)."""
    import pytest

    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def minimal_record(class_names=("a", "b", "c"), **fields) -> dict:
    """The smallest metrics.json that s3f_records accepts (three classes, paper protocol)."""
    return {
        "experiment": "S3F_Concat_BUSI",
        "accuracy": 0.5,
        "weighted_f1": 0.5,
        "macro_f1": 0.5,
        "confusion_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        "class_names": list(class_names),
        "protocol": "paper",
        "params": 10,
        **fields,
    }


def assert_acyclic(graph: dict[str, set[str]]) -> None:
    """An import graph {module: the modules it imports} has no circle; the error names one."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        cycle = reversed(error.args[1])  # graphlib lists dependencies first
        raise AssertionError(f"import cycle: {' imports '.join(cycle)}") from None


def png_claiming(width: int, height: int) -> bytes:
    """A small, well-formed PNG (a few KB) whose header claims width × height gray pixels: only
    its first rows are there, as in a planted file that claims far more than it holds."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


@contextlib.contextmanager
def loopback_http(respond):
    """A web server on 127.0.0.1 for the duration of the block; yields its base URL.
    `respond(path)` gives the body, or (body, the Content-Length to announce), or None (404)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            answer = respond(self.path)
            if answer is None:
                self.send_error(404)
                return
            body, length = answer if isinstance(answer, tuple) else (answer, len(answer))
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass  # no request lines in the test output

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
