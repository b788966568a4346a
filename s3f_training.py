"""One experiment run with the paper's recipe: data → model → train → evaluate → files.

Every notebook calls this module with its parameters, so the twelve notebooks run identical code:

    run = Run(experiment="S3F_Concat_BUSI", data_dir="", epochs=50, ...)
    data = run.load_data()
    model = run.build_model(data)
    run.train(model, data)
    metrics = run.evaluate(data)

A run writes into `output_dir/<experiment>[/<variant>][/<protocol>]/seed<N>/` (see
s3f_experiments.run_subdir): predictions.csv (every test image), split.csv (which file went to
which split; feed it back as `split_file`), preprocessing.json (what s3f-predict needs),
confusion_matrix.png, roc.png, history.csv/.png, model.keras and, last, metrics.json (its
presence means the run finished). While training, resume/ holds the state a rerun continues
from after an interruption, and progress.json the current epoch.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path

# isort: off
import s3f_env  # first: S3F_DETERMINISTIC must be applied before TensorFlow starts

# isort: on
import keras
import numpy as np
import tensorflow as tf

import s3f_callbacks
import s3f_common
import s3f_config
import s3f_experiments
import s3f_locks
import s3f_metrics
from data_setup import load_dataset
from data_setup.files import (
    DiskFullError,
    atomic_path,
    disk_full_error,
    is_disk_full,
    remove_stale_temps,
    write_atomic,
    write_json_atomic,
)
from data_setup.synth import SYNTH_VERSION, synth_dataset
from s3f_config import RunConfig


def demo_data_dir(dataset: str, count: int = 24, seed: int = 0) -> Path:
    """The synthetic stand-in for `dataset`, generated once into the kit's cache folder."""
    from data_setup.loading import default_cache_dir

    target = default_cache_dir() / "synthetic" / f"v{SYNTH_VERSION}_n{count}_seed{seed}" / dataset
    if not target.is_dir():
        tmp = target.with_name(f".{dataset}.{os.getpid()}.tmp")
        synth_dataset(dataset, tmp, count=count, size=96, seed=seed)
        try:
            os.replace(tmp, target)  # atomic; a parallel run may have won the race
        except OSError:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return target


def evaluate_model(
    model, data, out_dir: Path, experiment: str, batch_size: int = 16, demo: bool = False
) -> dict:
    """Every docs/paper.md §4 metric of `model` on the test split, plus predictions.csv and the
    confusion-matrix and ROC figures in `out_dir`. Returns the metrics; the caller adds its own
    fields and calls write_metrics."""
    import s3f_plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = s3f_common.is_binary(len(data.class_names))
    probs, loss = s3f_metrics.predict_with_loss(model, data.tf_dataset("test", batch_size))
    test = data.splits["test"]
    labels = test.labels
    if not np.all(np.isfinite(probs)):
        raise FloatingPointError(
            f"{experiment}: the model's test outputs are not finite (NaN/inf weights); "
            "training diverged before any usable checkpoint"
        )
    result = test_metrics_for(labels, probs, loss, data.class_names, binary)
    result.update(
        experiment=experiment,
        dataset=data.info.id,
        class_names=list(data.class_names),
        params=int(model.count_params()),
        protocol=data.protocol,
        image_size=list(data.image_size),
        dataset_fingerprint=data.fingerprint,
        grouping=_grouping_record(data),
        skipped_files=len(data.skipped),
        skipped=[list(s) for s in data.skipped],
        damaged_files=[list(d) for d in getattr(data, "damaged", [])],
        counts=data.counts(),
        data_dir=str(data.root),
        tensorflow_version=tf.__version__,
        keras_version=keras.__version__,
        environment=s3f_env.environment_record(),
    )
    result.update(clean_test_metrics(data, labels, probs, binary))
    print(leakage_summary(result))
    val = None
    if data.protocol != "paper":  # a validation split apart from the test images exists
        val_probs, _ = s3f_metrics.predict_with_loss(model, data.tf_dataset("val", batch_size))
        val = (data.splits["val"].labels, val_probs)
    result.update(
        s3f_metrics.reviewer_metrics(
            labels, probs, list(data.class_names), binary, data.protocol, val
        )
    )
    write_predictions(out_dir / "predictions.csv", test.files, labels, probs, data.class_names)
    if result["collapsed"]:
        print(collapse_warning(experiment, result["predicted_class_counts"], model))
    context = s3f_plots.run_context(data.protocol, demo)
    s3f_plots.confusion_figure(result, out_dir / "confusion_matrix.png", context)
    s3f_plots.roc_figure(labels, probs, data.class_names, out_dir / "roc.png", experiment, context)
    s3f_plots.reliability_figure(
        result["calibration"], out_dir / "reliability.png", experiment, context
    )
    return result


def device_description() -> str:
    """Where this process trains: 'GPU (NVIDIA A100-SXM4-40GB)' for each visible GPU, else
    'CPU' (recorded in metrics.json; the sweep prints it per finished run)."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    described = []
    for gpu in gpus:
        try:
            name = tf.config.experimental.get_device_details(gpu).get("device_name")
        except (RuntimeError, ValueError):
            name = None
        described.append(f"GPU ({name})" if name else "GPU")
    return ", ".join(described)


def collapse_warning(experiment: str, counts, model) -> str:
    """What a one-class model means and the likeliest fix: BatchNorm's moving averages."""
    momenta = [
        layer.momentum
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    fastest = s3f_experiments.BN_MOMENTUM_LADDER[-1]
    text = (
        f"WARNING: {experiment} predicts one class for every test image ({counts}): "
        "the model learned nothing usable. "
    )
    if momenta and max(momenta) > fastest:
        return text + (
            f"Likely cause: BatchNorm momentum {max(momenta)} — with few optimizer steps its "
            "moving averages lag the weights, so inference differs from training. Rerun with "
            f"bn_momentum={fastest} (-p bn_momentum {fastest}), or more epochs or images."
        )
    return text + (
        "Try more epochs or images, a higher learning_rate, or check the labels (s3f-data check)."
    )


def leakage_summary(result: dict) -> str:
    """One line: how many test images have a near-duplicate in training, and the accuracy on
    the others (the clean test)."""
    clean = result["clean_test"]
    total = result.get("test_images", result["leaked_test_images"] + clean["images"])
    line = (
        f"Leakage audit: {result['leaked_test_images']} of {total} test images have a "
        "near-duplicate in training"
    )
    if result.get("shared_group_test_images"):
        line += f", {result['shared_group_test_images']} a patient or lesion that training has"
    if not clean["images"]:
        return line + "; no clean test image is left to score"
    return line + (
        f"; clean-test accuracy {clean['accuracy']:.4f} on the other {clean['images']} "
        f"(all: {result['accuracy']:.4f})"
    )


def _grouping_record(data) -> dict:
    """Which patient/lesion ids the run's splits were kept apart by, and how many per split."""
    if not hasattr(data, "groups_of"):
        return {"source": "no patient or lesion ids"}
    counts = {split: len(set(data.groups_of(split)) - {None}) for split in ("train", "val", "test")}
    record = {"source": data.grouping, "groups": counts}
    if "holdout_grouping" in getattr(data, "extras", {}):
        record["validation_kept_together"] = data.extras["holdout_grouping"]
    return record


def clean_test_metrics(data, labels, probs, binary) -> dict:
    """Metrics on the test images with no near-duplicate in training (data_setup.audit) and no
    patient or lesion in training (data_setup.groups): what the numbers are worth once
    train/test leakage is taken out."""
    from sklearn import metrics as skm

    from data_setup import audit

    leaked = audit.leaked_test_mask(
        data.audit_features("train"), data.audit_features("test"), progress="clean test"
    )
    # A test image of a patient or lesion that training also saw is leaked too (its other films)
    training = set(data.groups_of("train")) if hasattr(data, "groups_of") else set()
    if training and data.protocol != "paper":
        training |= set(data.groups_of("val"))
    shared = np.asarray(
        [g is not None and g in training for g in data.groups_of("test")]
        if training
        else np.zeros(len(leaked), bool)
    )
    clean = ~(leaked | shared)
    result = {
        "test_images": len(leaked),
        "leaked_test_images": int(leaked.sum()),
        "shared_group_test_images": int(shared.sum()),
    }
    if clean.sum() == 0:
        result["clean_test"] = {"images": 0}
        return result
    predicted = s3f_metrics.predicted_labels(probs[clean], binary)
    truth = np.asarray(labels)[clean]
    result["clean_test"] = {
        "images": int(clean.sum()),
        "accuracy": float(np.mean(predicted == truth)),
        "weighted_f1": float(skm.f1_score(truth, predicted, average="weighted", zero_division=0)),
        "macro_f1": float(skm.f1_score(truth, predicted, average="macro", zero_division=0)),
    }
    return result


def test_metrics_for(labels, probs, loss, class_names, binary) -> dict:
    return s3f_metrics.test_metrics(labels, probs, loss, list(class_names), binary)


def write_predictions(path: Path, files, labels, probs, class_names) -> None:
    """predictions.csv: file (relative to the dataset root), true and predicted class name, one
    probability column per class (a sigmoid model's p gives both 1 - p and p)."""
    import pandas as pd

    binary = s3f_common.is_binary(len(class_names))
    names = np.asarray(class_names, dtype=object)
    frame = pd.DataFrame(
        {
            "file": [str(f) for f in files],
            "true_label": names[np.asarray(labels)],
            "predicted_label": names[s3f_metrics.predicted_labels(probs, binary)],
        }
    )
    for index, name in enumerate(class_names):
        frame[f"prob_{name}"] = s3f_metrics.class_probabilities(probs, binary)[:, index]
    write_atomic(path, frame.to_csv(index=False, float_format="%.8g"))


def write_split(path: Path, data) -> None:
    """split.csv: file,split for every image used — the format `split_file` accepts."""
    if hasattr(data, "write_split_csv"):
        data.write_split_csv(path)
        return
    splits = [s for s in data.splits if not (s == "val" and data.protocol == "paper")]
    rows = ["file,split"] + [  # under "paper" the validation data is the test split
        f"{file},{split}" for split in splits for file in data.splits[split].files
    ]
    write_atomic(path, "\n".join(rows) + "\n")


def write_preprocessing(path: Path, data) -> None:
    """What prediction on new images needs to prepare them exactly as training did."""
    write_json_atomic(
        path,
        {
            "dataset": data.info.id,
            "class_names": list(data.class_names),
            "image_size": list(data.image_size),
            "channels": int(data.input_shape[-1]),
            "color": "gray" if data.input_shape[-1] == 1 else "rgb",
            "interpolation": "area",
            "scale": "1/255",
        },
    )


def write_metrics(out_dir: Path, result: dict) -> None:
    """metrics.json goes last and atomically: its presence marks a finished run."""
    write_json_atomic(Path(out_dir) / "metrics.json", result)


# --------------------------------------------------------------------------- one run

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

    def load_data(self):
        # Deterministic runs on CPU: same seed → same metrics.
        keras.utils.set_random_seed(self.seed)
        if not tf.config.list_physical_devices("GPU"):
            tf.config.experimental.enable_op_determinism()
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
        data = load_dataset(
            dataset,
            root,
            img_size=self.img_size,
            protocol=self.protocol,
            seed=self.seed,
            **options,
        )
        print(
            ("SYNTHETIC DEMO DATA — says nothing about the paper's datasets\n" if self.demo else "")
            + data.summary()
        )
        return data

    def steps_per_epoch(self, data) -> int:
        return -(-len(data.splits["train"].labels) // self.batch_size)

    def choose_bn_momentum(self, data) -> float:
        """The BatchNorm momentum this run trains with, said out loud when it is not the
        paper's. bn_momentum None with a data_dir: S3F_Custom takes the slowest momentum whose
        moving averages settle within the run's optimizer steps (s3f_experiments.
        bn_momentum_for); a paper experiment keeps 0.99 and warns when the run is too short."""
        paper = s3f_experiments.BN_MOMENTUM_LADDER[0]
        self.bn_momentum_reason = "set" if self.bn_momentum is not None else "paper"
        if self.bn_momentum is not None:
            return float(self.bn_momentum)
        steps = self.epochs * self.steps_per_epoch(data)
        suited = s3f_experiments.bn_momentum_for(steps)
        if suited == paper:
            return paper
        short = (
            f"{steps} optimizer steps ({self.epochs} epochs × {self.steps_per_epoch(data)}) are "
            f"too few for BatchNorm momentum {paper}'s moving averages (they need "
            f"≥ {s3f_experiments.bn_steps_needed(paper)})"
        )
        if self.custom:
            self.bn_momentum_reason = f"chosen for {steps} steps"
            print(
                f"bn_momentum = {suited} (paper: {paper}): {short}; "
                f"set bn_momentum to choose another"
            )
            return suited
        print(
            f"WARNING: {short}: predictions may collapse to one class. The paper's {paper} is "
            f"kept for this paper experiment; -p bn_momentum {suited} suits a run this short"
        )
        return paper

    def model_options(self, data) -> dict:
        """The arguments of s3f_common.build_model for this run and data (it also sets the
        precision policy, which Keras reads when layers are created)."""
        keras.mixed_precision.set_global_policy(self.precision)
        self.bn_momentum_used = self.choose_bn_momentum(data)
        return dict(
            architecture=self.spec.architecture,
            input_shape=data.input_shape,
            num_classes=len(data.class_names),
            fusion=self.fusion,
            spectranet=self.spectranet,
            learning_rate=self.learning_rate,
            bn_momentum=self.bn_momentum_used,
            channel_mixing=self.channel_mixing,
            modes=self.modes,
            jit_compile=self.jit_compile,
            name=self.experiment,
        )

    def build_model(self, data):
        """The notebook's model cell in one call: s3f_common.build_model(**model_options)."""
        return s3f_common.build_model(**self.model_options(data))

    @_takes_run_lock
    def train(self, model, data):
        """Fit with the paper's recipe. An interrupted run (same settings) resumes from its last
        finished epoch; a NaN loss stops training and is recorded."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        binary = s3f_common.is_binary(len(data.class_names))
        resume_dir = self.run_dir / "resume"
        remove_stale_temps(resume_dir)  # a killed run's half-written state
        restored = s3f_callbacks.ResumeState.load(resume_dir, self.compared_settings())
        if restored:
            model = _resumed_model(resume_dir, restored)
            print(f"resuming {self.experiment} after epoch {restored['epoch']} from {resume_dir}")
        initial_epoch = restored["epoch"] if restored else 0
        # initial_value_threshold -inf: Keras ≥ 3.9 otherwise takes any first epoch as a best,
        # NaN included, and would keep a diverged model as the checkpoint.
        checkpoint = keras.callbacks.ModelCheckpoint(
            self.run_dir / "checkpoint.keras",
            monitor="val_f1",
            mode="max",
            save_best_only=True,
            initial_value_threshold=-np.inf,
        )
        early_stopping = keras.callbacks.EarlyStopping(
            monitor="val_f1", mode="max", patience=self.f1_patience
        )
        plateau = keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=s3f_experiments.LR_FACTOR,
            patience=self.lr_patience,
            min_lr=s3f_experiments.MIN_LR,
        )
        resume = s3f_callbacks.ResumeState(
            resume_dir, checkpoint, early_stopping, plateau, restored=restored
        )
        resume.settings = self.compared_settings()
        log = s3f_callbacks.EpochLog(self.run_dir, self.epochs, self.experiment, self.verbose)
        if restored:
            log.best = max([-np.inf, *restored["history"].get("val_f1", [])])
        val = data.tf_dataset("val", self.batch_size)
        callbacks = [
            s3f_callbacks.ValidationMetrics(val, data.splits["val"].labels, binary),
            keras.callbacks.TerminateOnNaN(),
            checkpoint,
            early_stopping,
            plateau,
            log,
            resume,
            *getattr(self, "extra_callbacks", []),
        ]
        interrupt_after = os.environ.get("S3F_INTERRUPT_AFTER_EPOCH")
        if interrupt_after:  # tests and users can rehearse a disconnect (then rerun to resume)
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

        import s3f_plots

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
            bn_momentum=getattr(self, "bn_momentum_used", None),  # None: built outside build_model
            bn_momentum_reason=getattr(self, "bn_momentum_reason", None),
            run_settings=self.settings(),
        )
        frame = pd.DataFrame(history)
        frame.index = np.arange(1, len(frame) + 1)
        write_atomic(self.run_dir / "history.csv", frame.to_csv(index_label="epoch"))
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


SAMPLE_BYTES = 4 << 20


def archive_key(source: str) -> str:
    """What identifies an archive's content, cheaply: for a file its size, modification time
    and a SHA-256 of its first, middle and last 4 MiB (reading all of a multi-GB archive on
    Drive at every run would take minutes); for a URL the address and the server's ETag,
    Last-Modified and Content-Length. Never the name alone."""
    import hashlib

    digest = hashlib.sha256()
    if source.startswith(("http://", "https://")):
        import requests

        digest.update(source.encode())
        try:
            headers = requests.head(source, allow_redirects=True, timeout=30).headers
        except requests.RequestException:
            headers = {}  # unreachable now: the download reports it
        for field in ("ETag", "Last-Modified", "Content-Length"):
            digest.update(f"|{headers.get(field, '')}".encode())
        return digest.hexdigest()[:16]
    path = Path(source).expanduser()
    stat = path.stat()
    digest.update(f"{stat.st_size}|{stat.st_mtime_ns}".encode())
    middle, last = stat.st_size // 2 - SAMPLE_BYTES // 2, stat.st_size - SAMPLE_BYTES
    with open(path, "rb") as handle:
        for offset in sorted({0, max(middle, 0), max(last, 0)}):
            handle.seek(offset)
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()[:16]


def unpack_data_zip(data_zip: str, dataset: str, on_drive: bool = False) -> Path:
    """A dataset archive (a local path, e.g. on Google Drive, or an http(s) URL) unpacked once
    to local disk — the paper's Colab workflow — and reused by later runs of the same archive
    (keyed by its content, see archive_key: a different archive of the same name is unpacked
    afresh)."""
    from data_setup.datasets import DATASETS
    from data_setup.fetch import FetchError, fetch
    from data_setup.loading import default_cache_dir

    source = str(data_zip)
    is_url = source.startswith(("http://", "https://"))
    if not is_url and not Path(source).expanduser().is_file():
        raise FetchError(f"data_zip {source}: no such file")
    stem = (Path(source.split("?")[0]).name or "archive").removesuffix(".zip")
    folder = default_cache_dir() / "unpacked" / dataset
    dest = folder / f"{stem}-{archive_key(source)}"
    if dest.is_dir() and any(dest.iterdir()):
        print(f"data_zip: using {dest} (unpacked earlier from this same archive)")
        return dest
    print(f"data_zip: unpacking {source} → {dest}")
    others = sorted(p for p in folder.glob(f"{stem}-*") if p.is_dir()) if folder.is_dir() else []
    if others:
        more = " …" if len(others) > 1 else ""
        print(f"  (earlier unpacks of other archives named {stem}.zip stay: {others[0]}{more})")
    layout = dataset if dataset in DATASETS else None  # refuse the wrong dataset's archive
    if is_url:
        return fetch(dest, url=source, dataset=layout)
    return fetch(dest, zip_path=str(Path(source).expanduser()), dataset=layout)


def evaluate_pretrained(
    release: str,
    data_dir: str = "",
    output_dir: str = "runs/pretrained",
    batch_size: int = 16,
    base_url: str = "",
    demo_count: int = 24,
) -> dict:
    """Evaluate one of the paper's released models on its dataset's test split, with the same
    metrics and figures as a training run, into output_dir/<release>/."""
    model = s3f_common.pretrained(release, base_url=base_url or None)
    spec = s3f_common.RELEASES[release]
    root = data_dir or demo_data_dir(spec.dataset, demo_count)
    data = load_dataset(spec.dataset, root, img_size=spec.input_shape[:2])
    print(
        ("SYNTHETIC DEMO DATA — says nothing about the paper's datasets\n" if not data_dir else "")
        + data.summary()
    )
    out_dir = Path(output_dir).expanduser() / release
    result = evaluate_model(model, data, out_dir, release, batch_size, demo=not data_dir)
    result.update(
        architecture=spec.architecture,
        fusion=spec.fusion,
        spectranet=spec.spectranet,
        release=release,
        release_file=spec.filename,
        demo_data=not data_dir,
    )
    write_metrics(out_dir, result)
    return result
