"""One experiment run with the paper's recipe: data → model → train → evaluate → files.

Every notebook calls this module with its parameters, so the twelve notebooks run identical code:

    run = Run(experiment="S3F_Concat_BUSI", data_dir="", epochs=50, ...)
    data = run.load_data()
    model = run.build_model(data)
    run.train(model, data)
    metrics = run.evaluate(data)

A run writes into `output_dir/<experiment>[/<variant>][/<protocol>]/seed<N>/` (see
s3f_experiments.run_subdir): metrics.json (written last: its presence means the
run finished), confusion_matrix.png, roc.png, history.csv, history.png and model.keras.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from sklearn import metrics as skm

import s3f_common
import s3f_experiments
from data_setup import load_dataset
from data_setup.files import write_atomic, write_json_atomic
from data_setup.synth import SYNTH_VERSION, synth_dataset


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


class ValidationMetrics(keras.callbacks.Callback):
    """Adds val_loss, val_accuracy and val_f1 to each epoch's logs from one validation pass.

    val_f1 is the paper's selection metric: weighted F1 (multi-class) or the F1 of the positive
    class (binary). Place it first so checkpointing, early stopping and the LR schedule see it.
    """

    def __init__(self, dataset, labels, binary):
        super().__init__()
        self.dataset, self.labels, self.binary = dataset, labels, binary

    def on_epoch_end(self, epoch, logs=None):
        probs = self.model.predict(self.dataset, verbose=0)
        scores = summarize_predictions(self.labels, probs, self.binary)
        logs.update(
            val_loss=scores["loss"], val_accuracy=scores["accuracy"], val_f1=scores["selection_f1"]
        )


def predicted_labels(probs: np.ndarray, binary: bool) -> np.ndarray:
    return (probs[:, 0] >= 0.5).astype(int) if binary else probs.argmax(axis=1)


def summarize_predictions(labels, probs, binary) -> dict:
    """Loss, accuracy and the F1 used for model selection."""
    labels = np.asarray(labels)
    eps = 1e-7
    if binary:
        p = np.clip(probs[:, 0], eps, 1 - eps)
        loss = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    else:
        loss = -np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], eps, 1)))
    predicted = predicted_labels(probs, binary)
    selection_f1 = (
        skm.f1_score(labels, predicted, pos_label=1, zero_division=0)
        if binary
        else skm.f1_score(labels, predicted, average="weighted", zero_division=0)
    )
    return {
        "loss": float(loss),
        "accuracy": float(np.mean(predicted == labels)),
        "selection_f1": float(selection_f1),
    }


def test_metrics(labels, probs, class_names, binary) -> dict:
    """Every metric of the paper's evaluation (SPEC §4) from test labels and probabilities."""
    labels = np.asarray(labels)
    predicted = predicted_labels(probs, binary)
    indices = list(range(len(class_names)))
    result = summarize_predictions(labels, probs, binary)
    result.update(
        macro_f1=float(skm.f1_score(labels, predicted, average="macro", zero_division=0)),
        weighted_f1=float(skm.f1_score(labels, predicted, average="weighted", zero_division=0)),
        cohen_kappa=float(skm.cohen_kappa_score(labels, predicted)),
        mcc=float(skm.matthews_corrcoef(labels, predicted)),
        confusion_matrix=skm.confusion_matrix(labels, predicted, labels=indices).tolist(),
        classification_report=skm.classification_report(
            labels,
            predicted,
            labels=indices,
            target_names=class_names,
            output_dict=True,
            zero_division=0,
        ),
    )
    if binary:
        result["positive_f1"] = result["selection_f1"]
    try:  # undefined when the test split lacks a class
        if binary:
            result["roc_auc"] = float(skm.roc_auc_score(labels, probs[:, 0]))
        else:
            for average in ("macro", "weighted"):
                result[f"roc_auc_{average}"] = float(
                    skm.roc_auc_score(
                        labels, probs, multi_class="ovr", average=average, labels=indices
                    )
                )
    except ValueError as error:
        result["roc_auc_error"] = str(error)
    return result


def evaluate_model(model, data, out_dir: Path, experiment: str, batch_size: int = 16) -> dict:
    """Every SPEC §4 metric of `model` on the test split, plus confusion-matrix and ROC figures
    in `out_dir`. Returns the metrics; the caller adds its own fields and calls write_metrics."""
    import s3f_plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = s3f_common.is_binary(len(data.class_names))
    probs = model.predict(data.tf_dataset("test", batch_size), verbose=0)
    labels = data.splits["test"].labels
    result = test_metrics(labels, probs, data.class_names, binary)
    result.update(
        experiment=experiment,
        dataset=data.info.id,
        class_names=data.class_names,
        params=int(model.count_params()),
        protocol=data.protocol,
        image_size=list(data.image_size),
        dataset_fingerprint=data.fingerprint,
        skipped_files=len(data.skipped),
        skipped=[list(s) for s in data.skipped],
        counts=data.counts(),
        data_dir=str(data.root),
        tensorflow_version=tf.__version__,
        keras_version=keras.__version__,
    )
    s3f_plots.confusion_figure(result, out_dir / "confusion_matrix.png")
    s3f_plots.roc_figure(labels, probs, data.class_names, out_dir / "roc.png")
    return result


def write_metrics(out_dir: Path, result: dict) -> None:
    """metrics.json goes last and atomically: its presence marks a finished run."""
    write_json_atomic(Path(out_dir) / "metrics.json", result)


def _as_pair(value, name):
    """None, [a, b], or the text "[a, b]" (papermill's -p passes lists as text) → list or None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        import ast

        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            value = None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{name} must be None or two integers like [256, 256], got {value!r}")
    return [int(v) for v in value]


@dataclass
class Run:
    """The parameters of one notebook; values left None take the registry's paper settings."""

    experiment: str
    data_dir: str = ""
    epochs: int | None = None
    batch_size: int = s3f_experiments.BATCH_SIZE
    img_size: list | None = None
    learning_rate: float = s3f_experiments.LEARNING_RATE
    protocol: str = "paper"
    seed: int = 42
    fusion: str | None = None
    spectranet: int | None = None
    output_dir: str = "runs"
    f1_patience: int | None = None
    lr_patience: int | None = None
    verbose: int = 1
    demo_count: int | None = None  # None on demo data: s3f_experiments.DEMO_COUNTS
    bn_momentum: float | None = None
    channel_mixing: str = "dense"
    modes: list | None = None

    def __post_init__(self):
        self.img_size = _as_pair(self.img_size, "img_size")
        self.modes = _as_pair(self.modes, "modes")
        exp = s3f_experiments.get_experiment(self.experiment)
        self.spec = exp
        self.demo = not self.data_dir
        if self.demo:  # synthetic data: demo settings for what was left None, said out loud
            defaults = s3f_experiments.demo_defaults(self.experiment).items()
            applied = {key: value for key, value in defaults if getattr(self, key) is None}
            for key, value in applied.items():
                setattr(self, key, value)
            if applied:
                print(s3f_experiments.demo_note(self.experiment, applied))
        self.epochs = self.epochs or exp.recipe.epochs
        self.f1_patience = self.f1_patience or exp.recipe.f1_patience
        self.lr_patience = self.lr_patience or exp.recipe.lr_patience
        self.fusion = self.fusion or exp.fusion
        self.spectranet = self.spectranet or exp.spectranet
        if self.img_size is None:
            self.img_size = list(exp.info.image_size)
        self.run_dir = Path(self.output_dir).expanduser() / s3f_experiments.run_subdir(
            self.experiment, self.settings()
        )
        self.started = time.perf_counter()
        self.history = None

    def load_data(self):
        # Deterministic runs on CPU: same seed → same metrics.
        keras.utils.set_random_seed(self.seed)
        if not tf.config.list_physical_devices("GPU"):
            tf.config.experimental.enable_op_determinism()
        root = demo_data_dir(self.spec.dataset, self.demo_count) if self.demo else self.data_dir
        data = load_dataset(
            self.spec.dataset, root, img_size=self.img_size, protocol=self.protocol, seed=self.seed
        )
        print(
            ("SYNTHETIC DEMO DATA — says nothing about the paper's datasets\n" if self.demo else "")
            + data.summary()
        )
        return data

    def build_model(self, data):
        return s3f_common.build_model(
            self.spec.architecture,
            data.input_shape,
            len(data.class_names),
            self.fusion,
            self.spectranet,
            learning_rate=self.learning_rate,
            bn_momentum=self.bn_momentum,
            channel_mixing=self.channel_mixing,
            modes=self.modes,
            name=self.experiment,
        )

    def train(self, model, data):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        binary = s3f_common.is_binary(len(data.class_names))
        val = data.tf_dataset("val", self.batch_size)
        callbacks = [
            ValidationMetrics(val, data.splits["val"].labels, binary),
            keras.callbacks.ModelCheckpoint(
                self.run_dir / "checkpoint.keras", monitor="val_f1", mode="max", save_best_only=True
            ),
            keras.callbacks.EarlyStopping(monitor="val_f1", mode="max", patience=self.f1_patience),
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss",
                factor=s3f_experiments.LR_FACTOR,
                patience=self.lr_patience,
                min_lr=s3f_experiments.MIN_LR,
            ),
        ]
        train = data.tf_dataset("train", self.batch_size, shuffle=True, seed=self.seed)
        self.history = model.fit(
            train,
            epochs=self.epochs,
            class_weight=data.class_weights(),
            callbacks=callbacks,
            verbose=self.verbose,
        )
        return self.history

    def evaluate(self, data) -> dict:
        """Test the best checkpoint; write figures, history and (last) metrics.json."""
        import pandas as pd

        import s3f_plots

        checkpoint = self.run_dir / "checkpoint.keras"
        model = s3f_common.load_model(checkpoint)
        result = evaluate_model(model, data, self.run_dir, self.experiment, self.batch_size)
        history = self.history.history if self.history else {}
        f1_curve = history.get("val_f1", [])
        result.update(
            architecture=self.spec.architecture,
            fusion=self.fusion,
            spectranet=self.spectranet,
            epochs_run=len(f1_curve),
            best_epoch=int(np.argmax(f1_curve)) + 1 if f1_curve else None,
            wall_time_s=round(time.perf_counter() - self.started, 1),
            protocol=self.protocol,
            seed=self.seed,
            demo_data=self.demo,
            run_settings=self.settings(),
        )
        frame = pd.DataFrame(history)
        frame.index = np.arange(1, len(frame) + 1)
        write_atomic(self.run_dir / "history.csv", frame.to_csv(index_label="epoch"))
        s3f_plots.history_figure(frame, self.run_dir / "history.png", self.experiment)
        os.replace(checkpoint, self.run_dir / "model.keras")
        write_metrics(self.run_dir, result)
        return result

    def settings(self) -> dict:
        fields = asdict(self)
        return {k: v for k, v in fields.items() if not isinstance(v, Path)}


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
    result = evaluate_model(model, data, out_dir, release, batch_size)
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
