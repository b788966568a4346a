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

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import s3f_callbacks
import s3f_common
import s3f_experiments
import s3f_metrics
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


def evaluate_model(
    model, data, out_dir: Path, experiment: str, batch_size: int = 16, demo: bool = False
) -> dict:
    """Every SPEC §4 metric of `model` on the test split, plus predictions.csv and the
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
        skipped_files=len(data.skipped),
        skipped=[list(s) for s in data.skipped],
        damaged_files=[list(d) for d in getattr(data, "damaged", [])],
        counts=data.counts(),
        data_dir=str(data.root),
        tensorflow_version=tf.__version__,
        keras_version=keras.__version__,
    )
    result.update(clean_test_metrics(data, labels, probs, binary))
    write_predictions(out_dir / "predictions.csv", test.files, labels, probs, data.class_names)
    if result["collapsed"]:
        print(
            f"WARNING: {experiment} predicts one class for every test image "
            f"({result['predicted_class_counts']}): the model learned nothing usable"
        )
    context = s3f_plots.run_context(data.protocol, demo)
    s3f_plots.confusion_figure(result, out_dir / "confusion_matrix.png", context)
    s3f_plots.roc_figure(labels, probs, data.class_names, out_dir / "roc.png", experiment, context)
    return result


def clean_test_metrics(data, labels, probs, binary) -> dict:
    """Metrics on the test images with no near-duplicate in training (data_setup.audit): what
    the numbers are worth once train/test leakage is taken out."""
    from sklearn import metrics as skm

    from data_setup import audit

    train, test = data.splits["train"], data.splits["test"]
    leaked = audit.leaked_test_mask(
        audit.hashes_of_arrays(train.source.images[train.indices]),
        audit.hashes_of_arrays(test.source.images[test.indices]),
    )
    clean = ~leaked
    result = {"leaked_test_images": int(leaked.sum())}
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


# --------------------------------------------------------------------------- parameters

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# Four MaxPool(2) stages ('valid' padding) in the spatial tower need 16 px; SN1 has two, SN2 one.
MIN_SIDE = {"spatial": 16, "s3f": 16, ("spectranet", 1): 4, ("spectranet", 2): 2}


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
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError(f"{name} must be None or two integers like [256, 256], got {value!r}")
    return [int(v) for v in value]


def _integer(value, name, minimum, default=None):
    """None → default; otherwise an int ≥ minimum (0 stays 0: only None means 'paper')."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def _choice(value, name, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


@dataclass
class Run:
    """The parameters of one notebook; values left None take the registry's paper settings
    (on synthetic demo data, s3f_experiments.demo_defaults first)."""

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
    precision: str = "float32"
    jit_compile: bool = False
    split_file: str = ""
    skip_damaged: bool = False
    data_zip: str = ""
    mount_drive: bool = False
    architecture: str | None = None  # S3F_Custom only: "s3f" | "spatial" | "spectranet"
    channels: int | None = None  # S3F_Custom only: 1 (grayscale) or 3 (RGB)
    keep_optimizer: bool = False  # model.keras keeps Adam's moments (2/3 of the file)

    def __post_init__(self):
        self.custom = self.experiment == s3f_experiments.CUSTOM_EXPERIMENT
        if self.custom:
            exp = s3f_experiments.custom_experiment(self.architecture or "s3f")
            self.architecture = exp.architecture
            self.channels = 1 if self.channels is None else self.channels
            _choice(self.channels, "channels", (1, 3))
        else:
            exp = s3f_experiments.get_experiment(self.experiment)
            for key in ("architecture", "channels"):
                if getattr(self, key) is not None:
                    raise ValueError(
                        f"{key} is a parameter of {s3f_experiments.CUSTOM_EXPERIMENT} only"
                    )
        self.spec = exp
        self._validate()
        if self.data_zip:
            self.data_dir = str(unpack_data_zip(self.data_zip, exp.dataset, self.mount_drive))
        self.demo = not self.data_dir
        if self.demo:  # synthetic data: demo settings for what was left None, said out loud
            defaults = s3f_experiments.demo_defaults(self.experiment).items()
            applied = {key: value for key, value in defaults if getattr(self, key) is None}
            for key, value in applied.items():
                setattr(self, key, value)
            if applied:
                print(s3f_experiments.demo_note(self.experiment, applied))
        self.epochs = exp.recipe.epochs if self.epochs is None else self.epochs
        self.f1_patience = exp.recipe.f1_patience if self.f1_patience is None else self.f1_patience
        self.lr_patience = exp.recipe.lr_patience if self.lr_patience is None else self.lr_patience
        self.fusion = self.fusion or exp.fusion
        self.spectranet = exp.spectranet if self.spectranet is None else self.spectranet
        if self.img_size is None:
            self.img_size = list(exp.info.image_size)
        minimum = MIN_SIDE.get(exp.architecture) or MIN_SIDE[(exp.architecture, self.spectranet)]
        if min(self.img_size) < minimum:
            raise ValueError(
                f"img_size {self.img_size} is too small for {exp.model_title}: its pooling "
                f"stages need at least {minimum}×{minimum} pixels"
            )
        if self.mount_drive and self.output_dir == "runs" and _in_colab():
            self.output_dir = DRIVE_RUNS  # /content is wiped when Colab disconnects
        self.run_dir = Path(self.output_dir).expanduser() / s3f_experiments.run_subdir(
            self.experiment, self.settings()
        )
        self.started = time.perf_counter()
        self.history = None
        self.diverged_epoch = None

    def _validate(self):
        """Every parameter checked before any data is loaded; only None means 'paper'."""
        self.img_size = _as_pair(self.img_size, "img_size")
        self.modes = _as_pair(self.modes, "modes")
        self.epochs = _integer(self.epochs, "epochs", 1)
        self.f1_patience = _integer(self.f1_patience, "f1_patience", 0)
        self.lr_patience = _integer(self.lr_patience, "lr_patience", 0)
        self.batch_size = _integer(self.batch_size, "batch_size", 1)
        self.seed = _integer(self.seed, "seed", 0)
        self.verbose = _integer(self.verbose, "verbose", 0)
        self.demo_count = _integer(self.demo_count, "demo_count", 2)
        if self.spectranet is not None:
            self.spectranet = _choice(
                _integer(self.spectranet, "spectranet", 1), "spectranet", (1, 2)
            )
        if self.fusion is not None:
            _choice(self.fusion, "fusion", s3f_common.FUSIONS)
        _choice(self.protocol, "protocol", ("paper", "holdout"))
        _choice(self.channel_mixing, "channel_mixing", s3f_common.CHANNEL_MIXINGS)
        _choice(self.precision, "precision", PRECISIONS)
        if (
            isinstance(self.learning_rate, bool)
            or not isinstance(self.learning_rate, (int, float))
            or not self.learning_rate > 0
        ):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        self.learning_rate = float(self.learning_rate)  # Keras rejects an int learning rate
        if self.bn_momentum is not None and not 0 <= float(self.bn_momentum) < 1:
            raise ValueError(f"bn_momentum must be None or in [0, 1), got {self.bn_momentum!r}")
        self.jit_compile = bool(self.jit_compile)
        self.skip_damaged = bool(self.skip_damaged)
        if self.split_file and not Path(self.split_file).expanduser().is_file():
            raise ValueError(
                f"split_file {self.split_file}: no such file (expected CSV file,split)"
            )

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
            root = self.data_dir
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

    def build_model(self, data):
        keras.mixed_precision.set_global_policy(self.precision)
        model = s3f_common.build_model(
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
        if self.jit_compile:  # same loss and optimizer, XLA-compiled steps
            model.compile(
                optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], jit_compile=True
            )
        return model

    def train(self, model, data):
        """Fit with the paper's recipe. An interrupted run (same settings) resumes from its last
        finished epoch; a NaN loss stops training and is recorded."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        binary = s3f_common.is_binary(len(data.class_names))
        resume_dir = self.run_dir / "resume"
        restored = s3f_callbacks.ResumeState.load(resume_dir, self.resume_settings())
        initial_epoch = restored["epoch"] if restored else 0
        if restored:
            model = s3f_common.load_model(resume_dir / s3f_callbacks.ResumeState.MODEL)
            s3f_callbacks.restore_seed_states(model, restored["seed_states"])
            print(f"resuming {self.experiment} after epoch {initial_epoch} from {resume_dir}")
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
        resume.settings = self.resume_settings()
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
        steps = -(-len(data.splits["train"].labels) // self.batch_size)
        if restored and restored.get("stopped"):  # interrupted after early stopping decided
            self.history = resume.history
            return None
        fit = model.fit(
            train,
            epochs=self.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            class_weight=data.class_weights(),
            callbacks=callbacks,
            verbose=0,
        )
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
            variant=s3f_experiments.variant_name(self.experiment, self.settings()),
            run_subdir=s3f_experiments.run_subdir(self.experiment, self.settings()),
            epochs_run=len(f1_curve),
            best_epoch=int(np.argmax(finite)) + 1 if f1_curve else None,
            diverged=self.diverged_epoch is not None,
            diverged_epoch=self.diverged_epoch,
            wall_time_s=round(time.perf_counter() - self.started, 1),
            protocol=self.protocol,
            seed=self.seed,
            demo_data=self.demo,
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

    def settings(self) -> dict:
        fields = asdict(self)
        return {k: v for k, v in fields.items() if not isinstance(v, Path)}

    def resume_settings(self) -> dict:
        """What must match for a saved state to be continued (not how it is shown)."""
        ignored = ("verbose", "output_dir", "keep_optimizer")
        return {k: v for k, v in self.settings().items() if k not in ignored}


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
    tmp = target.with_name(f".{os.getpid()}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, target)
    checkpoint.unlink()


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


def unpack_data_zip(data_zip: str, dataset: str, on_drive: bool = False) -> Path:
    """A dataset archive (a local path, e.g. on Google Drive, or an http(s) URL) unpacked once
    to local disk — the paper's Colab workflow — and reused by later runs."""
    from data_setup.fetch import fetch
    from data_setup.loading import default_cache_dir

    source = str(data_zip)
    name = Path(source.split("?")[0]).name or "archive"
    dest = default_cache_dir() / "unpacked" / dataset / name.removesuffix(".zip")
    if dest.is_dir() and any(dest.iterdir()):
        print(f"data_zip: using {dest} (unpacked earlier)")
        return dest
    print(f"data_zip: unpacking {source} → {dest}")
    if source.startswith(("http://", "https://")):
        return fetch(dest, url=source)
    return fetch(dest, zip_path=str(Path(source).expanduser()))


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
