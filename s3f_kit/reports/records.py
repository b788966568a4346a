"""Run records (metrics.json) checked before any table or claim uses them.

    runs, unusable = collect(runs_dir)   # usable records; (path, reason) for every other one

A record is a finished run's metrics.json. Tables and claims never trust one blindly: a file
that is not a JSON object, lacks a field, or holds a value of the wrong kind (a string where a
number belongs, a NaN accuracy, a confusion matrix that does not fit the class names) is left
out and named with its reason, so the counts of the tables always agree with the runs used.
The optional `intervals` and `calibration` objects, where present, must have the shape the
tables read (numbers, or null/NaN for an undefined metric).

Runs are pooled only when everything that decides their numbers was the same
(`settings_key`: the recorded run settings except where the run was written, and the data's
fingerprint); the same settings and seed found twice count once (`drop_repeated_seeds`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_setup.files import restore_csv_frame
from s3f_kit import config as s3f_config
from s3f_kit.reports import stats as s3f_stats

REQUIRED_KEYS = {
    "experiment",
    "accuracy",
    "weighted_f1",
    "macro_f1",
    "confusion_matrix",
    "class_names",
    "protocol",
    "params",
}
# Metrics every table needs: a run without a finite value of each cannot be used.
REQUIRED_METRICS = ("accuracy", "weighted_f1", "macro_f1")
# Metrics that may be missing or NaN (e.g. κ when one class is all there is): a mean leaves
# such a run out of that metric only, and the table says so.
OPTIONAL_METRICS = ("cohen_kappa", "mcc", "roc_auc", "roc_auc_macro", "loss")
FRACTIONS = {"accuracy", "weighted_f1", "macro_f1", "roc_auc", "roc_auc_macro"}
# Run settings that do not decide a run's numbers: where it was written or how it printed
# (s3f_config's not-compared parameters), the seed (pooled over), and where the data was read
# from (its fingerprint, recorded beside, decides instead).
NOT_DECIDING = s3f_config.not_compared() | {"seed", "fold", "data_dir", "data_zip"}


def repeat_key(record: dict) -> tuple:
    """(seed, cross-validation fold or None): what tells apart the runs of one model and
    settings that tables pool and claims pair (two models' runs with one key tested the same
    images)."""
    settings = record.get("run_settings") or {}
    fold = settings.get("fold") if settings.get("folds") else None
    return record.get("seed"), fold


def test_fraction(record: dict) -> float | None:
    """The run's test images over its training and test images (validation aside), from its
    recorded split counts; None when it recorded none. The corrected resampled t-test's
    n_test / (n_train + n_test)."""
    counts = record.get("counts") or {}
    try:
        train, test = (sum(counts[split].values()) for split in ("train", "test"))
    except (KeyError, AttributeError, TypeError):
        return None
    return test / (train + test) if train > 0 and test > 0 else None


@dataclass(frozen=True)
class Unusable:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number_problem(key: str, value, required: bool) -> str | None:
    if value is None:
        return f"{key} is null" if required else None
    if not _is_number(value):
        return f"{key} is {value!r} ({type(value).__name__}), not a number"
    if not math.isfinite(value):
        return f"{key} is {value} (not a finite number)" if required else None
    if key in FRACTIONS and not 0 <= value <= 1:
        return f"{key} is {value}, outside 0–1"
    return None


def _matrix_problem(matrix, classes) -> str | None:
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        return "class_names is not a list of names"
    size = len(classes)
    if not (
        isinstance(matrix, list)
        and len(matrix) == size
        and all(isinstance(row, list) and len(row) == size for row in matrix)
        and all(_is_count(v) for row in matrix for v in row)
    ):
        return f"confusion_matrix is not a {size}×{size} table of counts (one row per class)"
    return None


def _optional_number(value) -> bool:
    """null, NaN or a number (an interval of an undefined metric is NaN or null)."""
    return value is None or _is_number(value)


def _intervals_problem(intervals) -> str | None:
    """Optional `intervals`: {metric: {value, ci_low, ci_high}} (plus the bootstrap's settings)."""
    if intervals is None:
        return None
    if not isinstance(intervals, dict):
        return "intervals is not an object"
    for name, entry in intervals.items():
        if name == "bootstrap":
            continue
        if not isinstance(entry, dict) or not all(
            _optional_number(entry.get(k)) for k in ("value", "ci_low", "ci_high")
        ):
            return f"intervals.{name} is not {{value, ci_low, ci_high}} numbers"
    return None


CALIBRATION_SCORES = ("nll", "brier", "ece")


def _scores_problem(scores, where: str) -> str | None:
    if not isinstance(scores, dict):
        return f"{where} is not an object"
    for key in CALIBRATION_SCORES:
        if not _optional_number(scores.get(key)):
            return f"{where}.{key} is {scores.get(key)!r}, not a number"
    bins = (scores.get("reliability") or {}).get("bins", [])
    if not isinstance(bins, list) or not all(
        isinstance(b, dict)
        and all(_is_number(b.get(k)) for k in ("low", "high"))
        and _is_count(b.get("count"))
        and all(_optional_number(b.get(k)) for k in ("confidence", "accuracy"))
        for b in bins
    ):
        return f"{where}.reliability.bins is not a list of {{low, high, count, …}} bins"
    return None


def _calibration_problem(calibration) -> str | None:
    """Optional `calibration`: scores, reliability bins, and after temperature scaling."""
    if calibration is None:
        return None
    found = _scores_problem(calibration, "calibration")
    if found:
        return found
    scaling = calibration.get("temperature_scaling") or {}
    if not isinstance(scaling, dict):
        return "calibration.temperature_scaling is not an object"
    if "after" in scaling:
        if not _is_number(scaling.get("temperature")):
            return "calibration.temperature_scaling.temperature is not a number"
        return _scores_problem(scaling["after"], "calibration.temperature_scaling.after")
    return None


def problem(record) -> str | None:
    """Why this parsed metrics.json cannot be used, or None when it can."""
    if not isinstance(record, dict):
        return f"is a JSON {type(record).__name__}, not an object of metrics"
    missing = REQUIRED_KEYS - set(record)
    if missing:
        return f"lacks {', '.join(sorted(missing))}"
    for key in REQUIRED_METRICS:
        found = _number_problem(key, record[key], required=True)
        if found:
            return found
    for key in OPTIONAL_METRICS:
        found = _number_problem(key, record.get(key), required=False)
        if found:
            return found
    found = _matrix_problem(record["confusion_matrix"], record["class_names"])
    if found:
        return found
    if not isinstance(record["params"], int) or isinstance(record["params"], bool):
        return f"params is {record['params']!r}, not a whole number"
    seed = record.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        return f"seed is {seed!r}, not a whole number"
    for key in ("experiment", "protocol", "variant", "dataset"):
        if key in record and not isinstance(record[key], str):
            return f"{key} is {record[key]!r}, not a name"
    if not isinstance(record.get("run_settings") or {}, dict):
        return "run_settings is not an object"
    return _intervals_problem(record.get("intervals")) or _calibration_problem(
        record.get("calibration")
    )


def read(path: Path):
    """(parsed JSON, None) or (None, why it cannot be parsed) for one metrics.json."""
    try:
        return json.loads(Path(path).read_text()), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"not valid JSON ({error})"


def settings_key(record: dict) -> str:
    """What decides a run's numbers, seed aside, as one comparable string."""
    settings = {
        k: v for k, v in (record.get("run_settings") or {}).items() if k not in NOT_DECIDING
    }
    settings["demo_data"] = bool(record.get("demo_data"))
    settings["data"] = record.get("dataset_fingerprint")
    return json.dumps(settings, sort_keys=True, default=str)


def differing_settings(keys: list[str]) -> dict[str, list]:
    """Of several settings_key strings: the settings whose values differ, with each key's
    values in the order given."""
    decoded = [json.loads(k) for k in keys]
    names = sorted({n for d in decoded for n in d})
    return {
        n: [d.get(n) for d in decoded]
        for n in names
        if len({json.dumps(d.get(n), sort_keys=True) for d in decoded}) > 1
    }


def describe_settings(values: dict) -> str:
    """{'epochs': 50, 'data': 'ab…'} → 'epochs=50, other data'."""
    parts = []
    for name, value in values.items():
        parts.append("other data" if name == "data" else f"{name}={json.dumps(value)}")
    return ", ".join(parts)


def drop_repeated_seeds(runs: list[dict]) -> tuple[list[dict], list[str]]:
    """Keep one run per (experiment, variant, protocol, settings, seed, fold): the first by
    folder.
    Returns the kept runs and one note per repeat left out."""
    kept, seen, notes = [], {}, []
    for m in sorted(runs, key=lambda r: r["run_subdir"]):
        seed, fold = repeat_key(m)
        key = (m["experiment"], m.get("variant", ""), m["protocol"], settings_key(m), seed, fold)
        if seed is not None and key in seen:
            which = f"seed {seed}" + (f" and fold {fold}" if fold is not None else "")
            notes.append(
                f"{m['run_subdir']}: the same settings and {which} as "
                f"{seen[key]['run_subdir']}; counted once (that run)"
            )
            continue
        seen[key] = m
        kept.append(m)
    return kept, notes


# --------------------------------------------------------------------------- predictions.csv

PREDICTION_COLUMNS = {"file", "true_label", "predicted_label"}
# A run's predictions.csv is read whole (the across-seed intervals and the claims resample its
# rows): bounded so that an oversized or foreign file is refused before it is parsed. 64 MiB is
# ~300 times HAM10000's 1,512-row file.
PREDICTIONS_MAX_BYTES = 64 * 2**20


def read_predictions(record: dict, class_names=None):
    """(s3f_stats.Predictions, None) of a run's predictions.csv, or (None, why it cannot be used).

    Class names become indices in `class_names` (default: the record's, else the sorted names
    the file uses); probabilities come along where the file has a prob_<class> column for each
    class. The file must agree with its record: as many rows as the confusion matrix counts,
    and the same accuracy."""
    import pandas as pd

    path = Path(record["run_dir"]) / "predictions.csv"
    if not path.is_file():
        return None, "predictions.csv missing (needed to pair the test images)"
    if path.stat().st_size > PREDICTIONS_MAX_BYTES:
        return None, f"predictions.csv is over {PREDICTIONS_MAX_BYTES // 2**20} MiB"
    try:
        frame = pd.read_csv(
            path,
            dtype={"file": str, "true_label": str, "predicted_label": str},
            keep_default_na=False,  # an empty cell stays "" (named below), not NaN
        )
    except (OSError, UnicodeDecodeError, ValueError) as error:  # pandas' errors are ValueErrors
        return None, f"predictions.csv unreadable ({type(error).__name__})"
    # the names as they were before csv_cell neutralised them: runs pair by file and label
    frame = restore_csv_frame(frame)
    if not PREDICTION_COLUMNS <= set(frame.columns):
        return None, f"predictions.csv lacks {', '.join(sorted(PREDICTION_COLUMNS - set(frame)))}"
    matrix = record.get("confusion_matrix")
    expected = sum(map(sum, matrix)) if isinstance(matrix, list) else None
    if (expected is not None and len(frame) != expected) or frame["file"].duplicated().any():
        return None, (
            f"predictions.csv has {len(frame)} rows (duplicates or other images than the "
            f"{expected} its metrics.json counts)"
        )
    names = list(class_names or record.get("class_names") or [])
    names = names or sorted({*frame["true_label"], *frame["predicted_label"]})
    code = {name: index for index, name in enumerate(names)}
    unknown = {*frame["true_label"], *frame["predicted_label"]} - set(code)
    if unknown:
        return None, f"predictions.csv names classes {sorted(unknown)[:3]} not among {names}"
    labels = frame["true_label"].map(code).to_numpy(np.int64)
    predicted = frame["predicted_label"].map(code).to_numpy(np.int64)
    accuracy = record.get("accuracy")
    if _is_number(accuracy) and abs(float(np.mean(labels == predicted)) - accuracy) > 1e-6:
        return None, (
            f"predictions.csv disagrees with metrics.json (accuracy "
            f"{np.mean(labels == predicted):.4f} vs {accuracy:.4f})"
        )
    columns = [f"prob_{name}" for name in names]
    probs = None
    if set(columns) <= set(frame.columns):
        probs = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        probs = probs if np.all(np.isfinite(probs)) else None
    files = frame["file"].to_numpy(str)
    return s3f_stats.Predictions(files, labels, predicted, probs), None
