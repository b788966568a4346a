"""One experiment run with the paper's recipe: data → model → train → evaluate → files.

Every notebook calls this module with its parameters, so the twelve notebooks run identical code:

    run = Run.from_parameters(globals())      # or Run("S3F_Concat_BUSI", epochs=50, ...)
    data = run.load_data()
    model = s3f_common.build_model(**run.model_options(data))  # uncompiled
    # a Baseline_* notebook instead: model, run.weights_used = s3f_baselines.build_baseline(…)
    optimizer = s3f_recipe.optimizer(run.learning_rate, run.lr_schedule, run.total_steps(data))
    s3f_recipe.compile_model(model, optimizer, jit_compile=run.jit_compile)  # the recipe cell
    callbacks = s3f_recipe.callbacks(run.run_dir, run.lr_schedule, run.f1_patience, run.lr_patience)
    run.train(model, data, callbacks)         # (uncompiled, no callbacks: the run's recipe)
    metrics = run.evaluate(data)              # s3f_evaluation: metrics and files

A run writes into `output_dir/<experiment>[/<variant>][/<protocol>]/seed<N>/` (see
s3f_config.run_subdir): predictions.csv (every test image), split.csv (which file went to
which split; feed it back as `split_file`), preprocessing.json (what s3f-predict needs),
confusion_matrix.png, roc.png, history.csv/.png, model.keras, MODEL_CARD.md (s3f_model_card)
and, last, metrics.json (its presence means the run finished). While training, resume/ holds
the state a rerun continues from after an interruption, and progress.json the current epoch.

Why ~460 lines: Run is the notebook's whole story (data → model → recipe → train → evaluate)
and its resume and locking, which share its state; the parameters are s3f_config's, the
recipe s3f_recipe's, the evaluation and its files s3f_evaluation's, a data_zip's unpacking
data_setup.data_zip's.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path

# isort: off
# first: S3F_DETERMINISTIC applies before TensorFlow starts
from s3f_kit.run import env as s3f_env

# isort: on
import keras
import numpy as np

import s3f_common
from data_setup import load_dataset, swap
from data_setup.data_zip import unpack_data_zip
from data_setup.decode import PAPER_RESIZE
from data_setup.files import (
    DiskFullError,
    atomic_path,
    disk_full_error,
    is_disk_full,
    remove_stale_temps,
    write_csv_atomic,
)
from data_setup.synth import demo_data_dir
from s3f_kit import config as s3f_config
from s3f_kit import experiments as s3f_experiments
from s3f_kit import locks as s3f_locks
from s3f_kit import recipe as s3f_recipe
from s3f_kit.config import RunConfig
from s3f_kit.run import callbacks as s3f_callbacks
from s3f_kit.run.evaluation import (
    device_description,
    evaluate_model,
    write_metrics,
    write_preprocessing,
    write_split,
)

# --------------------------------------------------------------------------- one run

INTERRUPT_ENV = "S3F_INTERRUPT_AFTER_EPOCH"  # Run.train's interrupt_after, for notebooks
RUN_BUSY_HINT = "wait for it to finish or stop it, or write this run elsewhere (another output_dir)"


def _run_lock(run) -> s3f_locks.FolderLock:
    what = f"training {run.experiment} seed {run.seed} into this folder"
    return s3f_locks.FolderLock(run.run_dir, what, hint=RUN_BUSY_HINT)


def _takes_run_lock(train):
    """Run.train holds the run folder's lock (s3f_locks) until evaluate is done: two processes
    never train one run folder at once. A failed training gives it up at once."""

    @functools.wraps(train)
    def locked(self, *args, **kwargs):
        lock = _run_lock(self).acquire()
        try:
            return train(self, *args, **kwargs)
        except BaseException:
            lock.release()
            raise

    return locked


def _gives_up_run_lock(evaluate):
    @functools.wraps(evaluate)
    def locked(self, *args, **kwargs):
        lock = _run_lock(self).acquire()  # held since train (or taken now)
        try:
            return evaluate(self, *args, **kwargs)
        finally:
            lock.depth = 1  # the run is over: however often train ran, the lock goes
            lock.release()

    return locked


@dataclass
class Run(RunConfig):
    """One run of an experiment notebook: its parameters are a RunConfig's (s3f_config declares
    every one), and it loads the data, builds, trains and evaluates. Parameters left None take
    the registry's paper settings (on synthetic demo data, the demo's first), said out loud."""

    def __post_init__(self):
        demo_values = self.checked().demo_values()  # a ValueError names a bad parameter
        resolved = self.resolved()
        for f in fields(RunConfig):
            setattr(self, f.name, getattr(resolved, f.name))
        if demo_values:
            print(s3f_experiments.demo_note(self.experiment, demo_values))
        self.spec = self.experiment_spec()
        # data_zip: unpacked once to local disk; data_dir stays as given (the run's identity)
        self.dataset_root = (
            str(unpack_data_zip(self.data_zip, self.spec.dataset, self.mount_drive))
            if self.data_zip
            else self.data_dir
        )
        if self.mount_drive and self.output_dir == "runs" and _in_colab():
            self.output_dir = DRIVE_RUNS  # /content is wiped when Colab disconnects
        self.run_dir = Path(self.output_dir).expanduser() / s3f_config.run_subdir(
            self.experiment, self.settings()
        )
        self.started = time.perf_counter()
        self.history = None
        self.diverged_epoch = None
        self.bn_momentum_used = None  # set by model_options (None: a model built elsewhere)
        self.bn_momentum_reason = None
        # what the model started from (metrics.json): a baseline's build_baseline says which;
        # the paper's models always start from random initialization
        self.weights_used = None
        self.recipe_used = None  # what train compiled and called back with (metrics.json)

    def load_data(self):
        # Deterministic runs on CPU, and on a GPU under S3F_DETERMINISTIC: same seed → same metrics.
        keras.utils.set_random_seed(self.seed)
        s3f_env.apply_op_determinism()
        dataset = self.spec.dataset
        if self.demo:
            demo_set = s3f_experiments.CUSTOM_DEMO_DATASET if self.custom else dataset
            root = demo_data_dir(demo_set, self.demo_count)
        else:
            root = self.dataset_root
        options = {"channels": self.channels} if self.custom else {}
        if self.split_file:
            options["split_file"] = str(Path(self.split_file).expanduser())
        if self.skip_damaged:
            options["skip_damaged"] = True
        if self.folds:
            options.update(folds=self.folds, fold=self.fold)
        if self.resize != PAPER_RESIZE or self.reencode:  # the shortcut-neutral arms
            options.update(resize=self.resize, reencode=self.reencode)
        data = load_dataset(
            dataset,
            root,
            img_size=self.img_size,
            protocol=self.protocol,
            seed=self.seed,
            shortcuts=True,  # the header-only shortcut audit, recorded in metrics.json
            **options,
        )
        print(
            ("SYNTHETIC DEMO DATA — says nothing about the paper's datasets\n" if self.demo else "")
            + data.summary()
        )
        return data

    def steps_per_epoch(self, data) -> int:
        return -(-len(data.splits["train"].labels) // self.batch_size)

    def total_steps(self, data) -> int:
        """Optimizer steps of the whole run (what a learning-rate schedule spans)."""
        return self.epochs * self.steps_per_epoch(data)

    def compile(self, model, data):
        """Compile `model` with the recipe at this run's values (what the notebook's recipe
        cell spells out)."""
        optimizer = s3f_recipe.optimizer(self.learning_rate, self.lr_schedule,
                                         self.total_steps(data))  # fmt: skip
        return s3f_recipe.compile_model(model, optimizer, jit_compile=self.jit_compile)

    def callbacks(self):
        """The recipe's checkpoint, early stopping and schedule callbacks at this run's values."""
        return s3f_recipe.callbacks(self.run_dir, self.lr_schedule, self.f1_patience,
                                    self.lr_patience)  # fmt: skip

    def choose_bn_momentum(self, data) -> float:
        """The BatchNorm momentum this run trains with (RunConfig.bn_momentum_for decides it
        for the run's optimizer steps), said out loud when it is not the paper's."""
        momentum, self.bn_momentum_reason, note = self.bn_momentum_for(self.total_steps(data))
        if note:
            print(note)
        return momentum

    def model_options(self, data) -> dict:
        """The arguments of s3f_common.build_model for this run and data — of
        s3f_baselines.build_baseline for a Baseline_* experiment (it also sets the precision
        policy, which Keras reads when layers are created)."""
        keras.mixed_precision.set_global_policy(self.precision)
        self.bn_momentum_used = self.choose_bn_momentum(data)
        shared = dict(
            input_shape=data.input_shape,
            num_classes=len(data.class_names),
            bn_momentum=self.bn_momentum_used,
        )
        if self.spec.architecture == s3f_config.BASELINE:
            return dict(
                shared, name=self.spec.backbone, weights=self.weights, model_name=self.experiment
            )
        return dict(
            shared,
            architecture=self.spec.architecture,
            fusion=self.fusion,
            spectranet=self.spectranet,
            channel_mixing=self.channel_mixing,
            modes=self.modes,
            name=self.experiment,
        )

    def build_model(self, data):
        """The notebook's model cell in one call: s3f_common.build_model(**model_options), or
        for a baseline s3f_baselines.build_baseline (recording the weights it started from);
        uncompiled (train compiles it with the recipe)."""
        if self.spec.architecture == s3f_config.BASELINE:
            from s3f_kit.run import baselines as s3f_baselines

            model, self.weights_used = s3f_baselines.build_baseline(**self.model_options(data))
            return model
        return s3f_common.build_model(**self.model_options(data))

    @_takes_run_lock
    def train(self, model, data, callbacks=None, extra_callbacks=(), interrupt_after=None):
        """Fit with the recipe (s3f_kit.recipe). An interrupted run (same settings) resumes from
        its last finished epoch; a NaN loss stops training and is recorded.

        model: compiled by the notebook's recipe cell, or uncompiled (then compiled here with
        the recipe at the run's values). callbacks: the recipe's (s3f_recipe.callbacks; None:
        at the run's values). extra_callbacks: Keras callbacks run after the kit's own.
        interrupt_after: stop as if Colab disconnected after that epoch (default: the
        S3F_INTERRUPT_AFTER_EPOCH environment variable, so a notebook under papermill can
        rehearse a disconnect; rerun to resume)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        binary = s3f_common.is_binary(len(data.class_names))
        resume_dir = self.run_dir / "resume"
        remove_stale_temps(resume_dir)  # a killed run's half-written state
        defaults = {f.name: f.default for f in fields(RunConfig)}  # of parameters added since
        restored = s3f_callbacks.ResumeState.load(resume_dir, self.compared_settings(), defaults)
        if restored:
            model = _resumed_model(resume_dir, restored)  # compiled as it was saved
            print(f"resuming {self.experiment} after epoch {restored['epoch']} from {resume_dir}")
        elif not getattr(model, "compiled", True):
            self.compile(model, data)
        initial_epoch = restored["epoch"] if restored else 0
        recipe = callbacks or self.callbacks()
        self.recipe_used = s3f_recipe.describe(model, self.lr_schedule, recipe)
        resume = s3f_callbacks.ResumeState(
            resume_dir, recipe.checkpoint, recipe.early_stopping, recipe.plateau, restored=restored
        )
        resume.settings = self.compared_settings()
        log = s3f_callbacks.EpochLog(self.run_dir, self.epochs, self.experiment, self.verbose)
        if restored:
            log.best = max([-np.inf, *restored["history"].get("val_f1", [])])
        val = data.tf_dataset("val", self.batch_size)
        callbacks = [
            s3f_callbacks.ValidationMetrics(val, data.splits["val"].labels, binary),
            keras.callbacks.TerminateOnNaN(),
            *recipe,  # checkpoint, early stopping, ReduceLROnPlateau (the paper's schedule)
            log,
            resume,
            *extra_callbacks,
        ]
        if interrupt_after is None:
            interrupt_after = os.environ.get(INTERRUPT_ENV)
        if interrupt_after:
            callbacks.append(_DisconnectAfter(int(interrupt_after)))
        # One order per epoch, fixed by (seed, epoch): a resumed run sees the same batches.
        train = data.tf_dataset(
            "train", self.batch_size, seed=self.seed, epochs=self.epochs, first_epoch=initial_epoch
        )
        steps = self.steps_per_epoch(data)
        if restored and restored.get("stopped"):  # interrupted after early stopping decided
            self.history = resume.history
            return None
        try:
            fit = model.fit(
                train,
                epochs=self.epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps,
                class_weight=data.class_weights(),
                callbacks=callbacks,
                verbose=0,
            )
        except Exception as error:
            if is_disk_full(error) and not isinstance(error, DiskFullError):
                _drop_damaged(self.run_dir / "checkpoint.keras")  # Keras writes it in place
                raise disk_full_error(self.run_dir, "the training checkpoint") from error
            explained = s3f_env.determinism_error(error)  # an op S3F_DETERMINISTIC cannot run
            if explained is not None:
                raise explained from error
            raise
        self.history = resume.history or fit.history
        losses = np.asarray(self.history.get("loss", []), dtype=float)
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            self.diverged_epoch = int(bad[0]) + 1
            print(
                f"WARNING: {self.experiment} diverged (loss not finite) in epoch "
                f"{self.diverged_epoch}; training stopped, the best earlier checkpoint is evaluated"
            )
        return fit

    @_gives_up_run_lock
    def evaluate(self, data) -> dict:
        """Test the best checkpoint; write predictions, split, figures, history and (last)
        metrics.json."""
        import pandas as pd

        from s3f_kit.reports import plots as s3f_plots

        checkpoint = self.run_dir / "checkpoint.keras"
        if not checkpoint.is_file():
            raise RuntimeError(
                f"{self.run_dir}: no checkpoint to evaluate — training diverged in epoch "
                f"{self.diverged_epoch} before any epoch gave a finite validation F1"
                if self.diverged_epoch
                else f"{checkpoint}: missing — run train() before evaluate()"
            )
        model = s3f_common.load_model(checkpoint)
        result = evaluate_model(
            model, data, self.run_dir, self.experiment, self.batch_size, self.demo
        )
        # does the model read how the files were stored? (issue 35; docs/shortcuts.md)
        predictor = {self.experiment: swap.keras_predictor(model)}
        result["acquisition_swap"] = swap.dataset_swap(predictor, data, self.seed)
        print("\n".join(swap.run_lines(getattr(data, "shortcuts", None),
                                       result["acquisition_swap"])))  # fmt: skip
        history = self.history.history if hasattr(self.history, "history") else self.history or {}
        f1_curve = history.get("val_f1", [])
        finite = [f if np.isfinite(f) else -np.inf for f in f1_curve]
        result.update(
            architecture=self.spec.architecture,
            fusion=self.fusion,
            spectranet=self.spectranet,
            variant=s3f_config.variant_name(self.experiment, self.settings()),
            run_subdir=s3f_config.run_subdir(self.experiment, self.settings()),
            epochs_run=len(f1_curve),
            best_epoch=int(np.argmax(finite)) + 1 if f1_curve else None,
            diverged=self.diverged_epoch is not None,
            diverged_epoch=self.diverged_epoch,
            wall_time_s=round(time.perf_counter() - self.started, 1),
            protocol=self.protocol,
            seed=self.seed,
            demo_data=self.demo,
            device=device_description(),
            bn_momentum=self.bn_momentum_used,
            bn_momentum_reason=self.bn_momentum_reason,
            recipe=self.recipe_used,  # optimizer, schedule, loss, callbacks it trained with
            # a baseline notebook's model cell sets it; the paper's models start from random
            weights_used=self.weights_used
            or ("unknown" if self.spec.architecture == s3f_config.BASELINE else "random"),
            run_settings=self.settings(),
        )
        frame = pd.DataFrame(history)
        frame.index = np.arange(1, len(frame) + 1)
        write_csv_atomic(self.run_dir / "history.csv", frame, index_label="epoch")
        s3f_plots.history_figure(
            frame,
            self.run_dir / "history.png",
            f"{self.experiment}: training history",
            s3f_plots.run_context(self.protocol, self.demo),
        )
        write_split(self.run_dir / "split.csv", data)
        write_preprocessing(self.run_dir / "preprocessing.json", data)
        save_finished_model(model, checkpoint, self.run_dir / "model.keras", self.keep_optimizer)
        write_metrics(self.run_dir, result)
        import shutil

        shutil.rmtree(self.run_dir / "resume", ignore_errors=True)  # finished: nothing to resume
        return result


def save_finished_model(model, checkpoint: Path, target: Path, keep_optimizer=False) -> None:
    """A finished run's model.keras: the best checkpoint (`model`, loaded from `checkpoint`).

    A finished run is never resumed (while training, resume/ holds the full state), so by
    default the file keeps the compile settings but not the optimizer's state: Adam's two moments
    per weight are two thirds of the file (1.1 of 1.7 GB for the BUSI S³F-Net). Loading it
    compiles a fresh optimizer, so predict, evaluate, export and explain work as before (Keras
    notes that it skipped the optimizer's variables)."""
    if keep_optimizer:
        os.replace(checkpoint, target)
        return
    compile_args = keras.saving.deserialize_keras_object(model.get_compile_config())
    model.compile(**compile_args)  # a fresh optimizer of the same settings, not yet built
    with atomic_path(target, "the finished model") as tmp:
        model.save(tmp)
    checkpoint.unlink()


class ResumeError(RuntimeError):
    """The saved state of an interrupted run cannot be continued; the message says what to do."""


def _resumed_model(resume_dir: Path, restored: dict):
    """The model of an interrupted run, with its random-generator states, or one ResumeError
    that names the folder and how to start afresh."""
    try:
        model = s3f_common.load_model(resume_dir / s3f_callbacks.ResumeState.MODEL)
        s3f_callbacks.restore_seed_states(model, restored["seed_states"])
        for key in ("epoch", "history", "callbacks"):
            restored[key]  # noqa: B018  (a state without these cannot be continued)
    except Exception as error:
        raise ResumeError(
            f"{resume_dir}: the saved state of an interrupted run cannot be continued "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
            "delete that folder to train this run again from epoch 1"
        ) from error
    return model


def _drop_damaged(path: Path) -> None:
    """Remove a .keras file that a failed write left incomplete (a zip without its end)."""
    import zipfile

    if path.is_file() and not zipfile.is_zipfile(path):
        path.unlink()


class SimulatedDisconnect(RuntimeError):
    """Raised by S3F_INTERRUPT_AFTER_EPOCH=k after epoch k, as if Colab had disconnected."""


class _DisconnectAfter(keras.callbacks.Callback):
    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise SimulatedDisconnect(
                f"simulated disconnect after epoch {self.epoch} (S3F_INTERRUPT_AFTER_EPOCH); "
                "run again to resume"
            )


DRIVE_RUNS = "/content/drive/MyDrive/s3f-kit/runs"


def _in_colab() -> bool:
    import sys

    return "google.colab" in sys.modules
