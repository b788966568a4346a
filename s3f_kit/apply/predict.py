"""Predict classes of new images with a kit-trained or released S³F-Net model.

    s3f-predict runs/S3F_Concat_BUSI/seed42 scan1.png scans/ --out predictions.csv --gradcam cams/
    s3f-predict bilinear_brisc2025 mri/            # a paper release, downloaded once

Images get exactly the preprocessing the model was trained with (data_setup.decode.decode_image:
OpenCV grayscale or BGR→RGB, area-resize to the trained size, then ×1/255), read from the run
folder's `preprocessing.json` or, for the paper's releases, from the release registry.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from data_setup.datasets import DATASETS
from data_setup.fetch import FetchError
from data_setup.files import write_csv_atomic
from s3f_preprocessing import PREPROCESSING_FILE, SCALE, Preprocessing  # noqa: F401

# What OpenCV decodes; other files inside a searched folder are counted, not predicted.
IMAGE_SUFFIXES = frozenset(
    ".png .jpg .jpeg .jpe .bmp .dib .tif .tiff .webp .jp2 .pgm .ppm .pbm .pnm".split()
)


def release_preprocessing(name: str) -> Preprocessing:
    """The preprocessing of one of the paper's releases (s3f_releases.RELEASES)."""
    from s3f_kit import releases as s3f_releases

    release = s3f_releases.RELEASES[name]
    info = DATASETS[release.dataset]
    height, width, channels = release.input_shape
    return Preprocessing(
        info.id, info.class_names, (height, width), channels, f"release registry '{name}'"
    )


# --------------------------------------------------------------------------- resolving a model
def check_matches(model, prep: Preprocessing) -> None:
    """Raise ValueError unless `prep` fits the model's input shape and class count."""
    import s3f_common

    shape = tuple(model.inputs[0].shape[1:])
    expected = (*prep.image_size, prep.channels)
    if shape != expected:
        raise ValueError(f"{prep.source}: describes input {expected}, the model takes {shape}")
    classes = s3f_common.num_classes_of(model)
    if classes != len(prep.class_names):
        raise ValueError(
            f"{prep.source}: names {len(prep.class_names)} classes, the model predicts {classes}"
        )


def infer_preprocessing(model, model_path: Path) -> tuple[Preprocessing, str]:
    """Preprocessing of a model file without a record, when its metadata leaves no doubt:
    a metrics.json beside it naming the classes, or the shape and size of a registered release.
    Returns (preprocessing, note); raises ValueError when it would be a guess."""
    import s3f_common
    from s3f_kit import releases as s3f_releases

    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or None in shape or shape[-1] not in (1, 3):
        raise ValueError(f"{model_path}: input shape {shape} is not (H, W, 1|3)")
    height, width, channels = (int(v) for v in shape)
    metrics_path = model_path.with_name("metrics.json")
    if metrics_path.is_file():
        try:
            metrics = json.loads(metrics_path.read_text())
            names = tuple(metrics["class_names"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{metrics_path}: no usable class_names ({error})") from None
        source = f"{model_path.name}'s input shape + {metrics_path}"
        prep = Preprocessing(
            str(metrics.get("dataset", "")), names, (height, width), channels, source
        )
        check_matches(model, prep)
        return prep, f"note: no {PREPROCESSING_FILE} beside {model_path}; using {source}"
    matches = [
        name
        for name, release in s3f_releases.RELEASES.items()
        if release.input_shape == shape
        and release.num_classes == s3f_common.num_classes_of(model)
        and release.params == model.count_params()
    ]
    if len(matches) == 1:
        prep = release_preprocessing(matches[0])
        return prep, (
            f"note: no {PREPROCESSING_FILE} beside {model_path}; its shape and parameter count "
            f"are those of release '{matches[0]}', so using that release's preprocessing"
        )
    raise ValueError(
        f"{model_path}: no {PREPROCESSING_FILE} beside it and nothing else names its classes; "
        f"write one (format in docs/predict.md) or predict through its run folder"
    )


def resolve_model(spec, *, cache_dir=None, base_url=None):
    """(model, Preprocessing, notes) for a release name, a run folder or a .keras file."""
    import s3f_common
    from s3f_kit import releases as s3f_releases

    spec = str(spec)
    if spec in s3f_releases.RELEASES:
        model = s3f_releases.pretrained(spec, cache_dir=cache_dir, base_url=base_url, compile=False)
        return model, release_preprocessing(spec), []
    path = Path(spec)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise ValueError(
            f"{spec}: neither a model file, a run folder holding model.keras, nor a release "
            f"name ({', '.join(s3f_releases.RELEASES)})"
        )
    model = s3f_common.load_model(path, compile=False)
    record = path.with_name(PREPROCESSING_FILE)
    if record.is_file():
        prep = Preprocessing.load(record)
        check_matches(model, prep)
        return model, prep, []
    prep, note = infer_preprocessing(model, path)
    return model, prep, [note]


# --------------------------------------------------------------------------- inputs and images
def collect_files(inputs) -> tuple[list[Path], list[str]]:
    """Files to predict: each given file as is (a non-image gets an error row later), each
    folder searched recursively for image suffixes, sorted.
    Returns (files, notes on what was passed over)."""
    files, notes = [], []
    for item in inputs:
        path = Path(item)
        if not path.is_dir():
            files.append(path)
            continue
        # every entry but folders: a link that loops or points nowhere gets its error row
        found = sorted(p for p in path.rglob("*") if not p.is_dir())
        images = [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES]
        if len(images) < len(found):
            notes.append(
                f"{path}: skipped {len(found) - len(images)} file(s) without an image suffix"
            )
        if not images:
            notes.append(f"{path}: no image files in this folder")
        files.extend(images)
    return files, notes


def load_image(path, prep: Preprocessing) -> np.ndarray:
    """(H, W, C) float32 in [0, 1], exactly as training prepared its images.

    Raises ValueError naming the problem for a missing, unreadable or undecodable file, or one
    whose header claims more than data_setup.decode.MAX_IMAGE_PIXELS."""
    from data_setup.layouts import file_problem
    from data_setup.loading import BadImage, decode_image

    path = Path(path)
    if why := file_problem(path):  # the definition of a usable file that training applies
        raise ValueError(why)
    try:
        image = decode_image(path, prep.image_size, prep.channels, prep.resize, prep.reencode)
    except BadImage as error:
        raise ValueError(str(error)) from None
    except OSError as error:
        raise ValueError(f"unreadable ({error.strerror or error})") from None
    return image.astype(np.float32) / np.float32(255)  # float32 division, as the training pipeline


def probability_columns(prep: Preprocessing) -> list[str]:
    return [f"prob_{name}" for name in prep.class_names]


def per_class(probs: np.ndarray) -> np.ndarray:
    """(N, K) class probabilities; a sigmoid head's (N, 1) becomes [1 - p, p]."""
    probs = np.asarray(probs, np.float64)
    return np.concatenate([1 - probs, probs], axis=1) if probs.shape[1] == 1 else probs


def predict(
    model,
    paths,
    preprocessing: Preprocessing | None = None,
    *,
    batch_size=32,
    gradcam_dir=None,
) -> pd.DataFrame:
    """Predict every file in `paths`; one row per file, in order.

    model: a Keras model (then `preprocessing` is required), a run folder, a .keras file or a
        release name (then its recorded preprocessing is used).
    Columns: file, predicted_label, prob_<class>... (binary: 1 - p and p), error ('' when
    predicted), and gradcam (the overlay PNG) when gradcam_dir is given.
    """
    if not hasattr(model, "inputs"):
        model, recorded, notes = resolve_model(model)
        for note in notes:
            print(note)
        preprocessing = preprocessing or recorded
    if preprocessing is None:
        raise ValueError("predict: give preprocessing= for a model object (Preprocessing.load)")
    check_matches(model, preprocessing)
    if gradcam_dir is not None:
        from s3f_kit.apply import explain as s3f_explain

        try:  # fail before any work if there is no spatial tower to explain
            s3f_explain.spatial_gradcam_layer(model)
        except ValueError as error:
            raise ValueError(f"Grad-CAM maps an S³F-Net's spatial tower: {error}") from None
        gradcam_dir = Path(gradcam_dir)
        gradcam_dir.mkdir(parents=True, exist_ok=True)
    from s3f_kit.run.metrics import labels_of_class_probabilities  # TensorFlow is loaded by now

    paths = [Path(p) for p in paths]
    columns = probability_columns(preprocessing)
    rows = [{"file": str(path), "predicted_label": "", "error": ""} for path in paths]
    png_stems = _png_stems(paths)
    used_pngs: set[str] = set()
    for start in range(0, len(paths), batch_size):
        batch, indices = [], []
        for index in range(start, min(start + batch_size, len(paths))):
            try:
                batch.append(load_image(paths[index], preprocessing))
                indices.append(index)
            except ValueError as error:
                rows[index]["error"] = str(error)
        if not batch:
            continue
        images = np.stack(batch)
        probs = per_class(model.predict_on_batch(images))
        predicted = labels_of_class_probabilities(probs)  # the paper's rule (s3f_metrics)
        for row, index in enumerate(indices):
            rows[index]["predicted_label"] = preprocessing.class_names[predicted[row]]
            rows[index].update(zip(columns, probs[row].tolist(), strict=True))
        if gradcam_dir is not None:
            pngs = _write_gradcams(
                model,
                images,
                predicted,
                probs,
                preprocessing,
                [png_stems[i] for i in indices],
                gradcam_dir,
                used_pngs,
            )
            for index, png in zip(indices, pngs, strict=True):
                rows[index]["gradcam"] = str(png)
    frame = pd.DataFrame(
        rows,
        columns=["file", "predicted_label", *columns, "error"]
        + (["gradcam"] if gradcam_dir is not None else []),
    )
    return frame.fillna({"gradcam": ""}) if gradcam_dir is not None else frame


def _png_stems(paths: list[Path]) -> list[str]:
    """Overlay names: each path relative to the folder all inputs share, '/' → '__'."""
    absolute = [p.absolute() for p in paths]
    common = Path(os.path.commonpath([p.parent for p in absolute])) if paths else Path()
    return ["__".join(p.relative_to(common).with_suffix("").parts) for p in absolute]


def _png_name(stem: str, used: set[str]) -> str:
    candidate, count = f"{stem}_gradcam.png", 1
    while candidate in used:  # same relative name from two places
        count += 1
        candidate = f"{stem}_gradcam-{count}.png"
    used.add(candidate)
    return candidate


def _write_gradcams(model, images, predicted, probs, prep, stems, out_dir, used) -> list[Path]:
    from s3f_kit.apply import explain as s3f_explain
    from s3f_kit.reports import plots as s3f_plots

    cams = s3f_explain.grad_cam(model, images, predicted)
    written = []
    for image, cam, label, prob, stem in zip(images, cams, predicted, probs, stems, strict=True):
        path = out_dir / _png_name(stem, used)
        caption = f"predicted {prep.class_names[label]} (p = {prob[label]:.3f})"
        title = f"{stem.split('__')[-1]}: Grad-CAM of the spatial tower"
        s3f_plots.gradcam_grid([image], [cam], [caption], path, title)
        written.append(path)
    return written


# --------------------------------------------------------------------------- command line
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="s3f-predict",
        description="Predict the class of new images with a trained or released S³F-Net model.",
    )
    parser.add_argument(
        "model",
        help="run folder, .keras file, or release name (bilinear_brisc2025, concat_chestxray)",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="IMAGE_OR_FOLDER",
        help="image files and/or folders (searched recursively)",
    )
    parser.add_argument(
        "--out", default="predictions.csv", help="CSV to write (default %(default)s)"
    )
    parser.add_argument(
        "--gradcam", metavar="DIR", help="also write a Grad-CAM overlay PNG per image"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)  # --help answers before TensorFlow is imported
    from s3f_kit.run import env as s3f_env

    s3f_env.import_tensorflow_quietly()  # a CPU machine: no CUDA-registration noise
    try:
        model, prep, notes = resolve_model(args.model)
        files, found_notes = collect_files(args.inputs)
        for note in notes + found_notes:
            print(note)
        if not files:
            raise ValueError("no image files to predict")
        print(f"preprocessing: {prep.describe()}")
        frame = predict(model, files, prep, batch_size=args.batch_size, gradcam_dir=args.gradcam)
    except (ValueError, OSError, FetchError) as error:  # a release download failure included
        print(f"s3f-predict: error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_csv_atomic(out, frame, index=False)
    except OSError as error:  # a full disk (DiskFullError names the folder), a read-only one
        print(
            f"s3f-predict: error: {out}: the predictions could not be written: {error}",
            file=sys.stderr,
        )
        return 2
    failed = frame[frame["error"] != ""]
    for _, row in failed.iterrows():
        print(f"{row['file']}: not predicted: {row['error']}")
    counts = frame.loc[frame["error"] == "", "predicted_label"].value_counts()
    summary = ", ".join(f"{name} {counts[name]}" for name in prep.class_names if name in counts)
    print(
        f"predicted {len(frame) - len(failed)} of {len(frame)} file(s)"
        + (f" ({summary})" if summary else "")
        + f"; {len(failed)} failed → {out}"
        + (f"; Grad-CAM overlays in {args.gradcam}" if args.gradcam else "")
    )
    return 1 if len(failed) else 0


if __name__ == "__main__":
    sys.exit(main())
