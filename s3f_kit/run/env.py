"""The notebooks' first moments: quiet TensorFlow on CPU machines and short kit errors.

    from s3f_kit.run import env as s3f_env
    s3f_env.prepare_notebook()         # the setup cell of every notebook
    s3f_env.import_tensorflow_quietly()  # after the GPU pin, before the kit imports TensorFlow

Kept free of TensorFlow at import time (it is what decides how TensorFlow gets imported).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import sys
import warnings

# S3F_DETERMINISTIC=1: the same seed gives bit-identical runs on every x86-64 CPU with AVX2 at
# the same library versions, whatever its core count (measured: benchmarks/bench_reproducibility
# .py). By default TensorFlow sizes its thread pools by the cores and oneDNN (which also does
# the Eigen matrix products) picks kernels by the CPU's instruction set; both change the
# rounding, and training amplifies it into different metrics. Environment variables, not a
# notebook parameter: they must be in place before TensorFlow starts, which a reused kernel
# (the sweep's workers) has done already.
DETERMINISTIC_ENV = "S3F_DETERMINISTIC"
DETERMINISTIC_THREADS = 2
DETERMINISTIC_SETTINGS = {
    "TF_ENABLE_ONEDNN_OPTS": "1",  # TensorFlow's Linux default, stated (not every build's)
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # the newest ISA nearly every x86-64 CPU since 2013 has
    "TF_NUM_INTRAOP_THREADS": str(DETERMINISTIC_THREADS),
    "TF_NUM_INTEROP_THREADS": str(DETERMINISTIC_THREADS),
}


def deterministic_requested(environ=os.environ) -> bool:
    return environ.get(DETERMINISTIC_ENV, "").strip().lower() not in ("", "0", "false", "no")


def apply_deterministic_settings(environ=os.environ) -> bool:
    """Fix oneDNN's instruction set and TensorFlow's thread counts when S3F_DETERMINISTIC is
    set. Must run before TensorFlow is imported; afterwards it says so and changes nothing."""
    if not deterministic_requested(environ):
        return False
    if "tensorflow" in sys.modules and any(
        environ.get(k) != v for k, v in DETERMINISTIC_SETTINGS.items()
    ):
        warnings.warn(
            f"{DETERMINISTIC_ENV} is set but TensorFlow was imported first: its settings take "
            "effect only in a new process (set the variable before starting Python)",
            stacklevel=2,
        )
        return False
    environ.update(DETERMINISTIC_SETTINGS)
    return True


# On a GPU, S3F_DETERMINISTIC=1 also turns on TensorFlow's op determinism (on a CPU the kit
# always does, for the same metrics from the same seed). TensorFlow then refuses, at run time, an op
# that has no deterministic GPU kernel; DeterminismError says why and how to turn it off.
DETERMINISM_OFF_HINT = (
    f"{DETERMINISTIC_ENV}=1 turned on TensorFlow's op determinism, which has no deterministic GPU "
    f"kernel for this op; run with {DETERMINISTIC_ENV}=0 (set before Python starts) to train "
    "on this GPU without bit-identical results"
)


class DeterminismError(RuntimeError):
    """An op without a deterministic GPU kernel under S3F_DETERMINISTIC=1 (TensorFlow's error
    is its __cause__)."""


def apply_op_determinism() -> bool:
    """Turn TensorFlow's op determinism on: always on a CPU (the same seed gives the same
    metrics), on a GPU only under S3F_DETERMINISTIC (deterministic GPU kernels are slower, and
    TensorFlow refuses the ops that have none). Returns whether it is on now."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU") and not deterministic_requested():
        return bool(_op_determinism_enabled())
    tf.config.experimental.enable_op_determinism()
    return True


def determinism_error(error: BaseException) -> DeterminismError | None:
    """TensorFlow's refusal of an op without a deterministic kernel, explained (raise it from
    error); None for any other error, or where S3F_DETERMINISTIC did not ask for determinism."""
    tf = sys.modules.get("tensorflow")
    if tf is None or not isinstance(error, tf.errors.OpError) or not deterministic_requested():
        return None
    message = (error.message or str(error)).strip()
    if "determinis" not in message.lower() or not _op_determinism_enabled():
        return None
    first = message.splitlines()[0] if message else type(error).__name__
    return DeterminismError(f"{first} — {DETERMINISM_OFF_HINT}")


def _cpu_info() -> tuple[str, list[str]]:
    """CPU model name and its flags (Linux /proc/cpuinfo; elsewhere platform's name only)."""
    model, flags = platform.processor() or platform.machine(), []
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = value.split()
                    break
    return model, flags


def _best_isa(flags) -> str | None:
    for isa in ("avx512f", "avx2", "avx", "sse4_1"):
        if isa in flags:
            return isa
    return None


def _op_determinism_enabled() -> bool | None:
    """TensorFlow has a public setter only; its getter lives in tensorflow.python."""
    try:
        from tensorflow.python.framework import config
    except ImportError:
        return None
    getter = getattr(config, "is_op_determinism_enabled", None)
    return bool(getter()) if getter else None


def _gpu_libraries(gpu: bool) -> dict:
    if not gpu:
        return {}
    import tensorflow as tf

    info = tf.sysconfig.get_build_info()
    return {"cuda": info.get("cuda_version"), "cudnn": info.get("cudnn_version")}


def environment_record() -> dict:
    """What decides whether another machine reproduces a run bit for bit (metrics.json)."""
    import keras
    import numpy
    import tensorflow as tf

    model, flags = _cpu_info()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpus = tf.config.list_logical_devices("GPU")
    return {
        "deterministic": deterministic_requested(),
        "device": "GPU" if gpus else "CPU",
        "cpu": model,
        "cpu_isa": _best_isa(flags),
        "cpu_cores": cores,
        "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default"),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()
        or int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0)
        or cores,
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()
        or int(os.environ.get("TF_NUM_INTEROP_THREADS") or 0)
        or cores,
        "op_determinism": _op_determinism_enabled(),
        # on a GPU the CUDA and cuDNN builds pick the kernels, so they decide reproducibility too
        **_gpu_libraries(bool(gpus)),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "platform": f"{platform.system()} {platform.machine()}",
    }


apply_deterministic_settings()  # at import: the notebooks import this module before TensorFlow

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


def to_terminal(text: str) -> None:
    """Write `text` to the terminal that started this process, whatever the notebook shows:
    papermill prints a cell's output only with --log-output, but the kernel inherits papermill's
    stderr. ipykernel (≥ 6) points file descriptor 2 at a pipe into the notebook and keeps the
    terminal's as `sys.stderr.fileno()`, so writing there reaches the terminal only; elsewhere
    (an older kernel, plain Python) descriptor 2 is the terminal itself. The sweep's workers
    file their kernels' stderr into each run's sweep.log. A terminal that is gone is no error."""
    try:
        descriptor = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        descriptor = 2
    try:
        os.write(descriptor, ("\n" + text.rstrip("\n") + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


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
