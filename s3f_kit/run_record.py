"""The run record: every key a finished run's metrics.json holds, declared once with its type.

    record = RunRecord.build(result)      # a writer's dict → checked record (ValueError if a key
    write_json_atomic(path, record.as_json())  # is not declared or has the wrong type)
    record = RunRecord.from_json(parsed)  # a reader: older records get the defaults they lack

metrics.json is the contract between a run (s3f_training, s3f_evaluation) and everything that
reads it later (tables, claims, calibration, the sweep's reuse check). Declaring its keys here
means a writer cannot add an undeclared or misspelt key, and a reader finds every declared key
present (None or empty where an older record, or another kind of run, has no value). The
semantic checks a table needs before it trusts a record (a confusion matrix that fits the
classes, fractions within 0–1) stay in s3f_records.problem; this module checks kinds.

Keys a newer version of the kit wrote and this one does not know are kept in `extra`, so a
record read and written again loses nothing.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from dataclasses import dataclass, field


def _doc(text: str, default=None, factory=None):
    if factory is not None:
        return field(default_factory=factory, metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class RunRecord:
    """One finished run (or one evaluation of a released model), as metrics.json stores it."""

    # ------------------------------------------------------------------ what ran, on what
    experiment: str = _doc("the registry's experiment, or a release name")
    dataset: str = _doc("the dataset id (BRISC2025, ChestXRay, BUSI, HAM10000, Custom…)")
    class_names: list | None = _doc("the classes, in label order")
    protocol: str = _doc('"paper" (validation = test) or "holdout"')
    params: int = _doc("the model's parameter count")
    flops: int | None = _doc("FLOPs of one image's forward pass (s3f_flops.count_flops)")
    weights_used: str | None = _doc('the starting weights: "imagenet" or "random" (baselines)')
    architecture: str | None = _doc('"s3f", "spatial" or "spectranet"')
    fusion: str | None = _doc("S³F-Net's fusion")
    spectranet: int | None = _doc("the SpectraNet variant (1 or 2)")
    variant: str | None = _doc(
        "'' for the paper's model, else what differs "
        "(s3f_config.variant_name; None in records older than it)"
    )
    run_subdir: str | None = _doc("the run's folder under the output folder")
    seed: int | None = _doc("the run's seed")
    run_settings: dict = _doc("every RunConfig parameter as resolved for this run", factory=dict)
    image_size: list | None = _doc("[H, W] the model saw")
    demo_data: bool = _doc("trained and tested on synthetic demo data", False)
    data_dir: str | None = _doc("where the data was read from")
    dataset_fingerprint: str | None = _doc("hash of the cached splits' contents")
    counts: dict | None = _doc("{split: {class: images}} of train, val and test")
    data_manifest: dict | None = _doc(
        "the copy's identity: SHA-256 of its sorted (content SHA-256, split, label), counts per "
        "official split and class (data_setup.manifest)"
    )
    shortcuts: dict | None = _doc(
        "the header-only shortcut audit: does how the files were stored predict the class? "
        "(κ with interval, flagged, top features, per-class profiles; data_setup.shortcuts)"
    )
    acquisition_swap: dict | None = _doc(
        "how many test predictions flip when each image is given another class's storage "
        "(data_setup.swap), and with the lesion masked out where the dataset ships masks"
    )
    grouping: dict | None = _doc("patients/lesions per split and what each split kept apart")
    skipped_files: int = _doc("images that could not be used", 0)
    skipped: list = _doc("[file, why] of each skipped image", factory=list)
    damaged_files: list = _doc("[file, why] of images that decode but look damaged", factory=list)

    # ------------------------------------------------------------------ test metrics
    accuracy: float | None = _doc("test accuracy, 0–1")
    weighted_f1: float | None = _doc("support-weighted F1")
    macro_f1: float | None = _doc("unweighted mean F1 over classes")
    cohen_kappa: float | None = _doc("Cohen's κ")
    mcc: float | None = _doc("Matthews correlation coefficient")
    loss: float | None = _doc("test cross-entropy")
    roc_auc: float | None = _doc("binary: ROC AUC")
    roc_auc_macro: float | None = _doc("multi-class: one-vs-rest ROC AUC, macro")
    roc_auc_weighted: float | None = _doc("multi-class: one-vs-rest ROC AUC, weighted")
    positive_f1: float | None = _doc("binary: F1 of the positive class")
    selection_f1: float | None = _doc("the F1 the checkpoint was selected on")
    confusion_matrix: list | None = _doc("rows: true class, columns: predicted")
    classification_report: dict | None = _doc("scikit-learn's per-class report")
    per_class: dict | None = _doc("per-class metrics with intervals")
    predicted_class_counts: dict | None = _doc("test predictions per class")
    collapsed: bool = _doc("every test image predicted as one class", False)
    operating_point: dict | None = _doc("binary: thresholds (0.5, Youden on validation)")
    intervals: dict | None = _doc("{metric: {value, ci_low, ci_high}}: 95 % test bootstrap")
    calibration: dict | None = _doc("NLL, Brier, ECE, reliability bins, temperature scaling")
    test_images: int | None = _doc("images in the test split")
    leaked_test_images: int | None = _doc("test images with a near-duplicate in training")
    shared_group_test_images: int | None = _doc("test images of a patient/lesion training has")
    clean_test: dict | None = _doc("metrics without leaked and shared-group test images")
    ablation: dict | None = _doc(
        "S³F-Nets: test metrics with each branch's vectors permuted across the test images, and "
        "a linear probe of each branch (its shape: s3f_kit.run.ablation)"
    )

    # ------------------------------------------------------------------ training
    epochs_run: int | None = _doc("epochs trained")
    best_epoch: int | None = _doc("the epoch of the evaluated checkpoint")
    diverged: bool = _doc("the loss became non-finite", False)
    diverged_epoch: int | None = _doc("the epoch it did")
    wall_time_s: float | None = _doc("the run's wall time, seconds")
    bn_momentum: float | None = _doc("BatchNorm momentum used")
    bn_momentum_reason: str | None = _doc("why that momentum")
    recipe: dict | None = _doc(
        "what it was compiled and trained with: optimizer, learning rate or schedule, "
        "lr_schedule, loss, metrics, callbacks (s3f_kit.recipe.describe)"
    )

    # ------------------------------------------------------------------ where it ran
    device: str | None = _doc("the device it trained on ('CPU', a GPU's name)")
    tensorflow_version: str | None = _doc("TensorFlow's version")
    keras_version: str | None = _doc("Keras' version")
    environment: dict | None = _doc("threads, instruction set, determinism settings")

    # ------------------------------------------------------------------ released models
    release: str | None = _doc("Evaluate_Pretrained: the release evaluated")
    release_file: str | None = _doc("Evaluate_Pretrained: its file name")

    extra: dict = _doc("keys this version does not declare (kept as read)", factory=dict)

    # ------------------------------------------------------------------ building and reading

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")

    @classmethod
    def build(cls, result: dict) -> RunRecord:
        """A writer's dict as a record; ValueError naming every undeclared key or wrong kind."""
        unknown = sorted(set(result) - set(cls.keys()))
        if unknown:
            raise ValueError(
                "metrics.json keys not declared in RunRecord (s3f_kit/run_record.py): "
                + ", ".join(unknown)
            )
        return cls._checked(dict(result), {})

    @classmethod
    def from_json(cls, parsed: dict) -> RunRecord:
        """A parsed metrics.json as a record (undeclared keys go to `extra`); ValueError naming
        the first key whose value is of the wrong kind."""
        if not isinstance(parsed, dict):
            raise ValueError(f"a JSON {type(parsed).__name__}, not an object of metrics")
        known = {k: v for k, v in parsed.items() if k in cls.keys()}
        return cls._checked(known, {k: v for k, v in parsed.items() if k not in cls.keys()})

    @classmethod
    def _checked(cls, values: dict, extra: dict) -> RunRecord:
        hints = typing.get_type_hints(cls)
        for name, value in values.items():
            if value is not None and not _conforms(value, hints[name]):
                raise ValueError(
                    f"{name} is {value!r} ({type(value).__name__}), expected {_kind(hints[name])}"
                )
            if isinstance(value, numbers.Number) and not isinstance(value, bool | int | float):
                values[name] = value.item()  # a NumPy scalar: the number JSON stores
        # JSON null where a container or flag belongs: the declared default
        defaults = {f.name for f in dataclasses.fields(cls) if _has_default_value(f)}
        values = {k: v for k, v in values.items() if v is not None or k not in defaults}
        return cls(**values, extra=extra)

    def as_json(self) -> dict:
        """The object metrics.json stores: declared keys, then the kept `extra` keys."""
        data = {name: getattr(self, name) for name in self.keys()}
        return {**data, **self.extra}


def _has_default_value(f) -> bool:
    """A container or flag default (JSON null there means "the default"), not a None one."""
    if f.default_factory is not dataclasses.MISSING:
        return True
    return f.default not in (None, dataclasses.MISSING)


# numbers.Real / Integral: a writer's NumPy scalars count as the numbers JSON will store
_JSON_KINDS = {float: (numbers.Real,), int: (numbers.Integral,), str: (str,), bool: (bool,),
               list: (list, tuple), dict: (dict,)}  # fmt: skip


def _conforms(value, hint) -> bool:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None):
            continue
        if option is not bool and isinstance(value, bool):
            continue  # JSON true is not a number
        if isinstance(value, _JSON_KINDS[option]):
            return True
    return False


def _kind(hint) -> str:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    names = {float: "a number", int: "a whole number", str: "text", bool: "true/false",
             list: "a list", dict: "an object"}  # fmt: skip
    return " or ".join(names[o] for o in options if o is not type(None)) + (
        " or null" if type(None) in options else ""
    )
