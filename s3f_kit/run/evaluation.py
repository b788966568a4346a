"""A run's test evaluation and the files it writes: metrics (with intervals, the clean-test
subset, an S³F-Net's branch ablation and the collapse warning), predictions.csv, split.csv,
preprocessing.json, the figures, and metrics.json last (atomically: its presence marks a
finished run). s3f_training.Run calls it after training; `evaluate_pretrained` runs it on the
paper's released models."""

from __future__ import annotations

from pathlib import Path

# isort: off
# first: S3F_DETERMINISTIC must be applied before TensorFlow starts
from s3f_kit.run import env as s3f_env

# isort: on
import keras
import numpy as np
import tensorflow as tf

import s3f_common
from data_setup import load_dataset, swap
from data_setup.files import write_csv_atomic, write_json_atomic
from data_setup.synth import demo_data_dir
from s3f_kit import experiments as s3f_experiments
from s3f_kit import flops as s3f_flops
from s3f_kit import releases as s3f_releases
from s3f_kit.run import ablation as s3f_ablation
from s3f_kit.run import metrics as s3f_metrics
from s3f_kit.run_record import RunRecord
from s3f_preprocessing import Preprocessing


def evaluate_model(
    model,
    data,
    out_dir: Path,
    experiment: str,
    batch_size: int = s3f_experiments.BATCH_SIZE,
    demo: bool = False,
) -> dict:
    """Every docs/paper.md §4 metric of `model` on the test split, plus predictions.csv and the
    confusion-matrix and ROC figures in `out_dir`. Returns the metrics; the caller adds its own
    fields and calls write_metrics."""
    from s3f_kit.reports import plots as s3f_plots

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
        flops=s3f_flops.count_flops(model),  # one image's forward pass (s3f_flops)
        protocol=data.protocol,
        image_size=list(data.image_size),
        dataset_fingerprint=data.fingerprint,
        grouping=_grouping_record(data),
        skipped_files=len(data.skipped),
        skipped=[list(s) for s in data.skipped],
        damaged_files=[list(d) for d in getattr(data, "damaged", [])],
        counts=data.counts(),
        data_manifest=getattr(data, "manifest", None),
        shortcuts=getattr(data, "shortcuts", None),
        data_dir=str(data.root),
        tensorflow_version=tf.__version__,
        keras_version=keras.__version__,
        environment=s3f_env.environment_record(),
    )
    result.update(clean_test_metrics(data, labels, probs, binary))
    print(leakage_summary(result))
    # which branch the decisions depend on (S³F-Nets only): permutation ablation and probes
    ablated = s3f_ablation.ablation(model, data, batch_size)
    if ablated is not None:
        result["ablation"] = ablated
        print(s3f_ablation.ablation_summary(ablated))
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
    if "fold_grouping" in getattr(data, "extras", {}):
        record["folds_kept_together"] = data.extras["fold_grouping"]
        record["fold_test"] = data.extras["fold_test"]
    if "group_facts" in getattr(data, "extras", {}):  # largest group's share per class, chains
        record.update(data.extras["group_facts"])
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
    write_csv_atomic(path, frame, index=False, float_format="%.8g")


def write_split(path: Path, data) -> None:
    """split.csv: file,split for every image used — the format `split_file` accepts."""
    if hasattr(data, "write_split_csv"):
        data.write_split_csv(path)
        return
    splits = [s for s in data.splits if not (s == "val" and data.protocol == "paper")]
    rows = [("file", "split")] + [  # under "paper" the validation data is the test split
        (file, split) for split in splits for file in data.splits[split].files
    ]
    write_csv_atomic(path, rows)


def write_preprocessing(path: Path, data) -> None:
    """What prediction on new images needs to prepare them exactly as training did."""
    Preprocessing(
        dataset=data.info.id,
        class_names=tuple(data.class_names),
        image_size=tuple(data.image_size),
        channels=int(data.input_shape[-1]),
        resize=getattr(data, "resize", Preprocessing.resize),
        reencode=bool(getattr(data, "reencode", False)),
    ).save(path)


def write_metrics(out_dir: Path, result: dict) -> None:
    """metrics.json goes last and atomically: its presence marks a finished run. Every key is
    one RunRecord declares, of its declared kind (a ValueError names any other). Just before
    it, the model card (s3f_model_card) of the model beside it, from the same record."""
    from s3f_kit.reports import model_card as s3f_model_card

    record = RunRecord.build(result).as_json()
    s3f_model_card.write_model_card(out_dir, record)
    write_json_atomic(Path(out_dir) / "metrics.json", record)


def evaluate_pretrained(
    release: str,
    data_dir: str = "",
    output_dir: str = "runs/pretrained",
    batch_size: int = s3f_experiments.BATCH_SIZE,
    base_url: str = "",
    demo_count: int = 24,
) -> dict:
    """Evaluate one of the paper's released models on its dataset's test split, with the same
    metrics and figures as a training run, into output_dir/<release>/."""
    model = s3f_releases.pretrained(release, base_url=base_url or None)
    spec = s3f_releases.RELEASES[release]
    root = data_dir or demo_data_dir(spec.dataset, demo_count)
    data = load_dataset(spec.dataset, root, img_size=spec.input_shape[:2], shortcuts=True)
    print(
        ("SYNTHETIC DEMO DATA — says nothing about the paper's datasets\n" if not data_dir else "")
        + data.summary()
    )
    out_dir = Path(output_dir).expanduser() / release
    result = evaluate_model(model, data, out_dir, release, batch_size, demo=not data_dir)
    # does the released model read how the files were stored? (issue 35; docs/shortcuts.md)
    result["acquisition_swap"] = swap.dataset_swap({release: swap.keras_predictor(model)}, data)
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
