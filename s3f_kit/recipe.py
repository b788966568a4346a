"""The training recipe, in one place: optimizer, loss, metrics, learning-rate schedule, callbacks.

The paper's recipe: Adam at 3e-4, cross-entropy (binary for the one-sigmoid head), accuracy;
the best checkpoint and early stopping on validation F1, ReduceLROnPlateau on val_loss (×0.2,
down to 1e-6). The model builders (s3f_common.build_model, s3f_baselines.build_baseline) return
uncompiled models, keras-io style; whatever trains, resumes or recompiles a model compiles it
here. Every notebook shows these calls in a cell of its own, where a reader changes them:

    optimizer = s3f_recipe.optimizer(run.learning_rate, run.lr_schedule, run.total_steps(data))
    s3f_recipe.compile_model(model, optimizer, jit_compile=run.jit_compile)
    callbacks = s3f_recipe.callbacks(run.run_dir, run.lr_schedule, run.f1_patience,
                                     run.lr_patience)

Learning-rate schedules are registered by name (`register_schedule`); the run parameter
`lr_schedule` picks one. A schedule other than the paper's is part of the run's identity: it is
recorded in run_settings and names the run folder (s3f_config.variant_name). What a run trained
with is recorded in its metrics.json under "recipe" (`describe`).

No TensorFlow at import: s3f_config validates `lr_schedule` against the registry, and the sweep
and every --help import s3f_config.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from s3f_kit import experiments as s3f_experiments

PAPER_SCHEDULE = "plateau"
METRICS = ("accuracy",)
SELECTION = dict(monitor="val_f1", mode="max")  # what the checkpoint and early stopping follow
SCHEDULE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")  # it becomes part of a folder name


@dataclass(frozen=True)
class Schedule:
    """One learning-rate schedule.

    make(learning_rate, total_steps) → the optimizer's learning rate: a float, or one of
        keras.optimizers.schedules (only Keras' own classes pass the model-file check, so a
        resumed run can load the optimizer it saved).
    on_plateau: ReduceLROnPlateau also lowers the rate when val_loss stalls (a float rate only).
    """

    name: str
    make: Callable
    on_plateau: bool = False
    doc: str = ""


SCHEDULES: dict[str, Schedule] = {}


def register_schedule(name: str, make: Callable, *, on_plateau=False, doc="") -> Schedule:
    """Add a schedule that runs can pick with `lr_schedule=name` (docs/extending.md)."""
    if not SCHEDULE_NAME.fullmatch(name):
        raise ValueError(
            f"schedule name {name!r}: lowercase letters, digits and _ (it names run folders)"
        )
    if name in SCHEDULES:
        raise ValueError(f"a learning-rate schedule named {name!r} is registered already")
    SCHEDULES[name] = Schedule(name, make, on_plateau, doc)
    return SCHEDULES[name]


register_schedule(
    PAPER_SCHEDULE,
    lambda learning_rate, total_steps: learning_rate,
    on_plateau=True,
    doc="the paper's: a constant rate that ReduceLROnPlateau lowers when val_loss stalls",
)


def get_schedule(name: str) -> Schedule:
    if name not in SCHEDULES:
        raise ValueError(
            f"lr_schedule must be one of {', '.join(map(repr, SCHEDULES))}, got {name!r} "
            "(a new one: s3f_kit.recipe.register_schedule, docs/extending.md)"
        )
    return SCHEDULES[name]


# --------------------------------------------------------------------------- compiling


def optimizer(
    learning_rate=s3f_experiments.LEARNING_RATE, schedule=PAPER_SCHEDULE, total_steps=None
):
    """Adam (the paper's) at `learning_rate`, shaped by the schedule over `total_steps`
    optimizer steps (epochs × steps per epoch; the paper's schedule does not need them)."""
    import keras

    return keras.optimizers.Adam(get_schedule(schedule).make(learning_rate, total_steps))


def loss(model) -> str:
    """Cross-entropy for the model's head: one sigmoid unit (the paper's binary Chest X-Ray
    head) or a softmax over the classes with integer labels."""
    units = model.outputs[0].shape[-1]
    return "binary_crossentropy" if units == 1 else "sparse_categorical_crossentropy"


_paper_optimizer, _loss_of = optimizer, loss  # compile_model's arguments take their names


def compile_model(model, optimizer=None, loss=None, metrics=METRICS, jit_compile=False):
    """Compile `model` with the recipe: None takes the paper's optimizer and loss.

    jit_compile True: XLA-compiled steps (a kit option); False leaves Keras' own choice
    ("auto"), as the paper's notebooks did, so a run's numbers stay what they were."""
    options = {"jit_compile": True} if jit_compile else {}
    model.compile(
        optimizer=_paper_optimizer() if optimizer is None else optimizer,
        loss=_loss_of(model) if loss is None else loss,
        metrics=list(metrics),
        **options,
    )
    return model


# --------------------------------------------------------------------------- callbacks


@dataclass
class Callbacks:
    """The recipe's callbacks: the run saves and restores their state when it resumes."""

    checkpoint: object  # keras.callbacks.ModelCheckpoint: the best epoch by validation F1
    early_stopping: object  # keras.callbacks.EarlyStopping on validation F1
    plateau: object | None  # keras.callbacks.ReduceLROnPlateau, None if the schedule has none

    def __iter__(self):
        return iter(c for c in (self.checkpoint, self.early_stopping, self.plateau) if c)


def callbacks(run_dir, schedule=PAPER_SCHEDULE, f1_patience=0, lr_patience=0) -> Callbacks:
    """The recipe's checkpoint (run_dir/checkpoint.keras), early stopping and, for a schedule
    that has one, ReduceLROnPlateau."""
    import keras
    import numpy as np

    # initial_value_threshold -inf: Keras ≥ 3.9 otherwise takes any first epoch as a best,
    # NaN included, and would keep a diverged model as the checkpoint.
    checkpoint = keras.callbacks.ModelCheckpoint(
        Path(run_dir) / "checkpoint.keras",
        save_best_only=True,
        initial_value_threshold=-np.inf,
        **SELECTION,
    )
    early_stopping = keras.callbacks.EarlyStopping(patience=f1_patience, **SELECTION)
    plateau = None
    if get_schedule(schedule).on_plateau:
        plateau = keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=s3f_experiments.LR_FACTOR,
            patience=lr_patience,
            min_lr=s3f_experiments.MIN_LR,
        )
    return Callbacks(checkpoint, early_stopping, plateau)


# --------------------------------------------------------------------------- the record


def describe(model, schedule: str, recipe_callbacks: Callbacks | None = None) -> dict:
    """What a run trained with, for metrics.json: small and JSON-safe (names and numbers)."""
    optimizer_ = getattr(model, "optimizer", None)
    if optimizer_ is None:  # not compiled by Keras (a stand-in model in a test)
        return {"lr_schedule": schedule}
    rate = optimizer_.get_config().get("learning_rate")
    if isinstance(rate, dict):  # a Keras schedule: its class and its numeric settings
        config = rate.get("config", {})
        rate = {
            "class": str(rate.get("class_name")),
            **{k: v for k, v in config.items() if isinstance(v, (int, float, str, bool))},
        }
    compiled = model.get_compile_config() or {}
    if isinstance(rate, float):
        rate = float(f"{rate:.7g}")  # the float32 the optimizer holds, as it was asked for
    described = {
        "optimizer": type(optimizer_).__name__,
        "learning_rate": rate,
        "lr_schedule": schedule,
        "loss": _name(compiled.get("loss")),
        "metrics": [_name(m) for m in compiled.get("metrics") or []],
    }
    if recipe_callbacks is not None:
        described["callbacks"] = [_callback(c) for c in recipe_callbacks]
    return described


def _name(value) -> str:
    if isinstance(value, dict):  # a serialized Keras object
        return str(value.get("config", {}).get("name") or value.get("class_name"))
    return str(value)


def _callback(callback) -> dict:
    keys = ("monitor", "mode", "patience", "factor", "min_lr")
    found = {k: getattr(callback, k) for k in keys if hasattr(callback, k)}
    found = {k: v if isinstance(v, (int, str)) else float(v) for k, v in found.items()}
    return {"class": type(callback).__name__, **found}
