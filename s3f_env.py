"""The notebooks' first moments: quiet TensorFlow on CPU machines and short kit errors.

    import s3f_env
    s3f_env.prepare_notebook()         # the setup cell of every notebook
    s3f_env.import_tensorflow_quietly()  # after the GPU pin, before the kit imports TensorFlow

Kept free of TensorFlow at import time (it is what decides how TensorFlow gets imported).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import warnings

# The kit's own, expected failures: bad input, missing files, a diverged run. A notebook shows
# these as one line; anything else (a bug) keeps its full traceback.
EXPECTED_ERRORS = (ValueError, OSError, RuntimeError, FloatingPointError)


def has_gpu_driver() -> bool:
    return shutil.which("nvidia-smi") is not None or os.path.exists("/proc/driver/nvidia")


@contextlib.contextmanager
def stderr_silenced():
    """Redirect the process's file descriptor 2 (C++ logging bypasses sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly():
    """Import TensorFlow. On a machine without an NVIDIA driver its CUDA plugins print
    registration errors at import that no setting silences; they say nothing there."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or has_gpu_driver():
        import tensorflow

        return tensorflow
    with stderr_silenced():
        import tensorflow

        tensorflow.config.list_physical_devices("GPU")  # the cuInit probe logs here
    return tensorflow


def short_error_lines(etype, value) -> list[str]:
    return [f"{etype.__name__}: {value}"]


def _short_traceback(shell, etype, value, tb, tb_offset=None):
    # The cell still fails (papermill and the sweep see the error); the output is one line.
    lines = short_error_lines(etype, value)
    shell._showtraceback(etype, value, lines)
    return lines


def install_short_errors() -> bool:
    """In IPython: the kit's expected errors print one line instead of a traceback."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc(EXPECTED_ERRORS, _short_traceback)
    return True


def prepare_notebook(import_tensorflow: bool = False) -> None:
    """Short kit errors and no tqdm widget warnings; TensorFlow imported quietly when asked
    (the notebooks ask only after pinning a GPU, which must precede the import)."""
    # tqdm.auto without ipywidgets warns on every progress bar in a notebook.
    warnings.filterwarnings("ignore", message="IProgress not found")
    with contextlib.suppress(ImportError):
        from tqdm import TqdmExperimentalWarning

        warnings.filterwarnings("ignore", category=TqdmExperimentalWarning)
    install_short_errors()
    if import_tensorflow:
        import_tensorflow_quietly()
