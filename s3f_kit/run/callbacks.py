"""Keras callbacks of a training run: validation metrics, one progress line per epoch, resume.

Order matters: ValidationMetrics first (checkpointing, early stopping and the LR schedule read
its val_f1/val_loss), EpochLog and ResumeState last (they record what the others decided).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np

from data_setup.files import atomic_path, write_json_atomic
from s3f_kit.run import metrics as s3f_metrics


class ValidationMetrics(keras.callbacks.Callback):
    """Adds val_loss, val_accuracy and val_f1 to each epoch's logs from one validation pass.

    val_loss is Keras' own (from logits, as `model.evaluate`); val_f1 is the paper's selection
    metric. NaN outputs give NaN scores, which no checkpoint or early stop counts as a best."""

    def __init__(self, dataset, labels, binary):
        super().__init__()
        self.dataset, self.labels, self.binary = dataset, labels, binary
        self._predict, self._predict_model = None, None

    def on_epoch_end(self, epoch, logs=None):
        if self._predict_model is not self.model:  # traced once per model, not every epoch
            self._predict, self._predict_model = s3f_metrics.predictor(self.model), self.model
        probs, loss = self._predict(self.dataset)
        scores = s3f_metrics.selection_scores(self.labels, probs, self.binary)
        logs.update(val_loss=loss, val_accuracy=scores["accuracy"], val_f1=scores["selection_f1"])


def terminal_fd() -> int | None:
    """The file descriptor of the terminal that started this process, where it is not stdout.

    In a Jupyter kernel print() goes to the notebook, and ipykernel (≥ 6) also routes fd 2 into
    the notebook, keeping a copy of the original descriptor that it echoes to. Writing to that
    copy reaches the terminal of a plain `papermill` call (and a sweep worker's log) without a
    second line in the notebook. A kernel without fd capture: fd 2 itself. A plain Python
    process: None (print() already reaches the terminal)."""
    original = getattr(sys.stderr, "_original_stdstream_copy", None)  # ipykernel's echo target
    if isinstance(original, int):
        return original
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    in_kernel = type(shell).__name__ == "ZMQInteractiveShell"  # a Jupyter kernel, not a console
    return 2 if in_kernel else None


class EpochLog(keras.callbacks.Callback):
    """One flushed line per epoch and a small progress.json the sweep polls to show which runs
    are at which epoch. The line goes to the notebook (print) and, in a kernel, to the terminal
    that started it as it happens (terminal_fd): a plain `papermill` call shows each epoch live,
    and the notebook has it once."""

    def __init__(self, run_dir: Path, epochs: int, label: str, verbose: int = 1):
        super().__init__()
        self.run_dir, self.epochs, self.label, self.verbose = Path(run_dir), epochs, label, verbose
        self.best = -math.inf
        self.started = time.perf_counter()
        self.terminal = terminal_fd()

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        f1 = logs.get("val_f1", float("nan"))
        if f1 == f1 and f1 > self.best:  # NaN never counts as a best
            self.best = f1
        seconds = time.perf_counter() - self.started
        if self.verbose:
            loss, val_loss = logs.get("loss", float("nan")), logs.get("val_loss", float("nan"))
            line = (
                f"{self.label} epoch {epoch + 1}/{self.epochs}  loss {loss:.4f}"
                f"  val_loss {val_loss:.4f}  val_f1 {f1:.4f}"
                f"  best {self.best:.4f}  {seconds:.1f} s/epoch"
            )
            print(line, flush=True)
            self._to_terminal(line)
        write_json_atomic(
            self.run_dir / "progress.json",
            {"epoch": epoch + 1, "epochs": self.epochs, "best_val_f1": _finite(self.best)},
        )

    def _to_terminal(self, line: str) -> None:
        if self.terminal is None:
            return
        try:
            # On a terminal, start a clean line: papermill's cell bar may be on this one.
            clear = "\r\x1b[2K" if os.isatty(self.terminal) else ""
            os.write(self.terminal, f"{clear}{line}\n".encode(errors="replace"))
        except OSError:  # the terminal went away (closed pipe): the notebook still has the line
            self.terminal = None


def _finite(value):
    return None if value is None or not np.isfinite(value) else float(value)


class ResumeState(keras.callbacks.Callback):
    """At epoch ends: the model with its optimizer state (learning rate included), the history
    so far and the state of the selection callbacks, so a rerun after a disconnect continues
    from the last saved epoch and ends exactly where an uninterrupted run would.

    Saving the model takes ~0.3 s even for a small one, which on demo data is half an epoch. So
    the state is saved after the first epoch, after the last (or when early stopping decided),
    and otherwise once the training time since the last save is at least 1 / MAX_OVERHEAD times
    what that save took: checkpointing costs at most ~10 % of the training time, and a
    disconnect loses no more work than that. Epochs of real data take far longer than a save,
    so there every epoch is saved.

    Files live in <run>/resume/ and are replaced atomically; Run.evaluate removes them."""

    STATE = "state.json"
    MODEL = "model.keras"
    MAX_OVERHEAD = 0.1

    def __init__(self, folder: Path, checkpoint, early_stopping, plateau=None, restored=None):
        super().__init__()
        self.folder = Path(folder)
        self.checkpoint, self.early_stopping, self.plateau = checkpoint, early_stopping, plateau
        self.restored = restored  # the state.json dict of an interrupted run, or None
        self.history: dict[str, list] = dict(restored["history"]) if restored else {}
        self.save_cost: float | None = None  # seconds the last save took
        self.saved_at = time.perf_counter()

    @classmethod
    def load(cls, folder: Path, settings: dict, defaults: dict | None = None):
        """The saved state if it was made with the same settings, else None. defaults: the
        value of each parameter a state saved before it existed ran with (RunConfig's
        defaults), so adding a parameter leaves the interrupted runs that kept it resumable."""
        path = Path(folder) / cls.STATE
        if not path.is_file() or not (Path(folder) / cls.MODEL).is_file():
            return None
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if not isinstance(state, dict):
            return None  # not a state this kit wrote: train afresh (it is overwritten)
        saved = state.get("settings")
        if isinstance(saved, dict) and defaults:
            saved = {**{k: v for k, v in defaults.items() if k in settings}, **saved}
        return state if saved == json.loads(json.dumps(settings)) else None

    def on_train_begin(self, logs=None):
        # The other callbacks reset themselves in on_train_begin; put their state back after.
        if not self.restored:
            return
        callbacks = self.restored["callbacks"]
        self.checkpoint.best = _from_json(callbacks["checkpoint_best"])
        for key in ("wait", "best", "best_epoch"):
            setattr(self.early_stopping, key, _from_json(callbacks[f"early_stopping_{key}"]))
        for key in ("wait", "best", "cooldown_counter"):
            if self.plateau is not None:  # a schedule without ReduceLROnPlateau saved none
                setattr(self.plateau, key, _from_json(callbacks[f"plateau_{key}"]))

    @classmethod
    def save_due(cls, since_last_save: float, save_cost: float | None, last_epoch: bool) -> bool:
        """Save now? Always for the first save and the last epoch; else when the training time
        since the last save pays for the save at MAX_OVERHEAD."""
        if save_cost is None or last_epoch:
            return True
        return since_last_save * cls.MAX_OVERHEAD >= save_cost

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        last = self.model.stop_training or epoch + 1 >= self.params.get("epochs", epoch + 1)
        started = time.perf_counter()
        if not self.save_due(started - self.saved_at, self.save_cost, last):
            return
        self._save(epoch)
        self.saved_at = time.perf_counter()
        self.save_cost = self.saved_at - started

    def _save(self, epoch):
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / self.MODEL, "the resume state (model and optimizer)") as tmp:
            self.model.save(tmp)
        state = {
            "settings": self.restored["settings"] if self.restored else self.settings,
            "epoch": epoch + 1,
            "stopped": bool(self.model.stop_training),  # early stopping already decided
            "seed_states": seed_states(self.model),
            "history": self.history,
            "callbacks": {
                "checkpoint_best": _to_json(self.checkpoint.best),
                **{
                    f"early_stopping_{key}": _to_json(getattr(self.early_stopping, key))
                    for key in ("wait", "best", "best_epoch")
                },
                **{
                    f"plateau_{key}": _to_json(getattr(self.plateau, key))
                    for key in ("wait", "best", "cooldown_counter")
                    if self.plateau is not None
                },
            },
        }
        write_json_atomic(self.folder / self.STATE, state)

    settings: dict = {}


def _seed_variables(model):
    # Dropout's random stream lives in SeedGenerator state variables, which model files do
    # not keep; without them a resumed run would draw other dropout masks.
    return [v for v in model.variables if "seed_generator_state" in v.path]


def seed_states(model) -> list:
    return [np.asarray(v.numpy()).tolist() for v in _seed_variables(model)]


def restore_seed_states(model, states: list) -> None:
    variables = _seed_variables(model)
    if len(variables) != len(states):
        raise ValueError(
            f"resume state has {len(states)} random-generator states, the model {len(variables)}"
        )
    for variable, state in zip(variables, states, strict=True):
        variable.assign(np.asarray(state, dtype=variable.dtype))


def _to_json(value):
    if value is None:
        return None
    value = float(value)
    return {"float": repr(value)} if not np.isfinite(value) else value


def _from_json(value):
    if isinstance(value, dict):
        return float(value["float"])
    return value
