"""Export a trained or released S³F-Net model to a TensorFlow SavedModel and to TFLite.

    s3f-export runs/S3F_Concat_BUSI/seed42 exported/busi  # or: python -m s3f_kit.apply.export ...

Writes into the output folder:
    saved_model/        TF Serving: signature serving_default(images) → {"probabilities"}
    model.tflite        same signature, builtin ops only (the FFTs as DFT matrix products)
    preprocessing.json  how to prepare images (the model's own record)
    MODEL_CARD.md       the run's model card, where the model came from a run folder
    export.json         class names, input/output description, the measured check per format

Both exports take float32 images [N, H, W, C] scaled to [0, 1] and return per-class probabilities
[N, K] in class-name order (a binary model's sigmoid p becomes [1 - p, p]). Each is run on sample
images and compared with the Keras model; if any probability differs by more than the tolerance
(1e-4) the export fails and nothing is left behind.

Why ~440 lines: the TFLite form of SpectralFilter (DFT matrix products in place of the FFTs
TFLite lacks), each format's numerical check and the all-or-nothing write are one export; the
command line is a few lines of it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np

from data_setup.fetch import FetchError
from data_setup.files import (
    DiskFullError,
    UnsafeFileError,
    disk_full_error,
    is_disk_full,
    open_regular,
    write_atomic,
)
from s3f_kit.apply import predict as s3f_predict

FORMATS = ("saved_model", "tflite")
TOLERANCE = 1e-4


class ExportCheckError(RuntimeError):
    """An exported model does not reproduce the Keras model's probabilities."""


# --------------------------------------------------------------------------- sample images
def sample_images(prep, paths=()) -> np.ndarray:
    """Images for the numerical check: the given files (prepared as for prediction) or, without
    any, one synthetic image per class (up to 4) plus uniform noise, at the model's size."""
    if paths:
        files, _ = s3f_predict.collect_files(paths)
        images = []
        for path in files:
            try:
                images.append(s3f_predict.load_image(path, prep))
            except ValueError as error:
                raise ValueError(f"{path}: unusable sample image ({error})") from None
        if not images:
            raise ValueError(f"no sample images in {', '.join(map(str, paths))}")
        return np.stack(images)
    from data_setup.synth import synth_image

    rng = np.random.default_rng(0)
    height, width = prep.image_size
    images = [
        synth_image(rng, label, height, width, prep.channels)[0].reshape(height, width, -1)
        for label in range(min(4, len(prep.class_names)))
    ]
    images.append(rng.integers(0, 256, (height, width, prep.channels), dtype=np.uint8))
    return np.stack(images).astype(np.float32) / np.float32(255)


# --------------------------------------------------------------------------- the two exports
def _serving_archive(model, input_shape):
    """A Keras ExportArchive whose serving_default returns per-class probabilities."""
    import keras
    import tensorflow as tf

    binary = model.outputs[0].shape[-1] == 1

    def serve(images):
        probs = tf.cast(model(images, training=False), tf.float32)
        if binary:
            probs = tf.concat([1 - probs, probs], axis=1)
        return {"probabilities": probs}

    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([None, *input_shape], tf.float32, name="images")
    archive.add_endpoint("serving_default", serve, input_signature=[spec])
    return archive


def write_saved_model(model, path: Path) -> None:
    _serving_archive(model, model.inputs[0].shape[1:]).write_out(str(path), verbose=False)


def saved_model_probabilities(path: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return serve(images=tf.constant(images))["probabilities"].numpy()


def _dft_matrices(height: int, width: int) -> dict[str, np.ndarray]:
    """Real float32 matrices of the 2-D real DFT and its inverse (computed in float64).

    Forward, for x of shape (..., H, W): Z = x·(cw + i·sw) along W (half spectrum, W//2 + 1
    columns), then X = (ch + i·sh)·Z along H. Inverse: Z = (ch − i·sh)·X / H along H, then
    y = Re(Z)·icw + Im(Z)·isw along W, where icw/isw weight the half spectrum like irfft2d
    (interior columns twice; the imaginary parts of the DC and Nyquist columns drop out, as
    irfft2d ignores them)."""
    cols = width // 2 + 1
    along_w = 2 * np.pi * np.outer(np.arange(width), np.arange(cols)) / width  # (W, L)
    along_h = 2 * np.pi * np.outer(np.arange(height), np.arange(height)) / height  # (H, H)
    weight = np.full(cols, 2.0)
    weight[0] = 1.0
    if width % 2 == 0:
        weight[-1] = 1.0
    matrices = {
        "cw": np.cos(along_w),
        "sw": -np.sin(along_w),
        "ch": np.cos(along_h),
        "sh": -np.sin(along_h),
        "icw": weight[:, None] * np.cos(along_w.T) / width,  # (L, W)
        "isw": -weight[:, None] * np.sin(along_w.T) / width,
    }
    return {name: m.astype(np.float32) for name, m in matrices.items()}


def _tflite_friendly_filter_class():
    """SpectralFilter with every FFT written as products with constant DFT matrices.

    TFLite has no builtin IRFFT2D and no complex arithmetic beyond a few ops, its builtin RFFT2D
    takes only power-of-two sizes (ChestXRay's 384 rows are not), and an interpreter without the
    Flex delegate (TensorFlow 2.21's tf.lite, LiteRT, most phone builds) cannot run TF ops. Real
    matrix products are builtin everywhere. Same maths as SpectralFilter.call, in real and
    imaginary parts; the numerical check of the export compares the two."""
    import tensorflow as tf

    import s3f_common

    def along_last(x, matrix):
        """x (..., n) · matrix (n, m) → (..., m)."""
        shape = tf.shape(x)
        flat = tf.matmul(tf.reshape(x, [-1, matrix.shape[0]]), matrix)
        return tf.reshape(flat, tf.concat([shape[:-1], [matrix.shape[1]]], axis=0))

    def along_rows(matrix, x):
        """matrix (m, n) applied to axis −2 of x (..., n, w) → (..., m, w)."""
        swapped = tf.transpose(x, [0, 1, 3, 2])
        return tf.transpose(along_last(swapped, tf.transpose(matrix)), [0, 1, 3, 2])

    class TFLiteSpectralFilter(s3f_common.SpectralFilter):
        def call(self, inputs):
            m = {
                name: tf.constant(value)
                for name, value in _dft_matrices(self.height, self.width).items()
            }
            x = tf.transpose(tf.cast(inputs, tf.float32), [0, 3, 1, 2])  # (B, C, H, W)
            z_re, z_im = along_last(x, m["cw"]), along_last(x, m["sw"])
            x_re = along_rows(m["ch"], z_re) - along_rows(m["sh"], z_im)
            x_im = along_rows(m["ch"], z_im) + along_rows(m["sh"], z_re)
            x_re, x_im = self._crop(x_re), self._crop(x_im)
            k_re = tf.cast(self.real_weights, tf.float32)
            k_im = tf.cast(self.imag_weights, tf.float32)
            # (a + ib)(c + id) summed over input channels; _mix is linear in each factor
            y_re = self._mix(x_re, k_re) - self._mix(x_im, k_im)
            y_im = self._mix(x_re, k_im) + self._mix(x_im, k_re)
            y_re, y_im = self._uncrop(y_re), self._uncrop(y_im)
            z_re = (along_rows(m["ch"], y_re) + along_rows(m["sh"], y_im)) / self.height
            z_im = (along_rows(m["ch"], y_im) - along_rows(m["sh"], y_re)) / self.height
            y = along_last(z_re, m["icw"]) + along_last(z_im, m["isw"])
            y = tf.transpose(y, [0, 2, 3, 1]) + tf.cast(self.bias, tf.float32)
            return tf.cast(y, self.compute_dtype)

    return TFLiteSpectralFilter


def write_tflite(model, path: Path, work_dir: Path) -> list[str]:
    """Convert to TFLite with builtin ops only; returns the ops of the file that are not TFLite
    builtins (none: the list is recorded in export.json as proof)."""
    import keras
    import tensorflow as tf

    import s3f_common

    portable = _tflite_friendly_filter_class()

    def clone_layer(layer):
        config = layer.get_config()
        if isinstance(layer, s3f_common.SpectralFilter):
            return portable.from_config(config)
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_layer)
    clone.set_weights(model.get_weights())
    source = work_dir / "tflite_source"
    write_saved_model(clone, source)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(source))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        flatbuffer = converter.convert()
    except Exception as error:  # the converter's own error types differ between TF versions
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"TFLite: the model needs an op that TFLite has no builtin for ({first}); "
            "export the SavedModel only (--format saved_model)"
        ) from None
    write_atomic(path, flatbuffer)
    shutil.rmtree(source)
    interpreter = _interpreter(path)
    return sorted({op["op_name"] for op in interpreter._get_ops_details()} - _builtin_names())


def _builtin_names() -> set[str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {name for name in vars(schema.BuiltinOperator) if not name.startswith("_")}


def _interpreter(path: Path):
    import tensorflow as tf

    with warnings.catch_warnings():  # tf.lite.Interpreter's "use ai_edge_litert" notice
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_path=str(path))


def tflite_probabilities(path: Path, images: np.ndarray) -> np.ndarray:
    runner = _interpreter(path).get_signature_runner("serving_default")
    return runner(images=images)["probabilities"]


PROBES = {"saved_model": saved_model_probabilities, "tflite": tflite_probabilities}


# --------------------------------------------------------------------------- the whole export
OBJECT = "Keras model object"  # export.json's source for a model given as an object
MAX_CARD_BYTES = 1 << 20  # a model card is a page of Markdown; more is not one


def _copy_model_card(source: str, work: Path) -> str | None:
    """The model card beside the exported model (a run folder's MODEL_CARD.md, written by the
    run: intended use, the data's licence, metrics) travels with the export; its name, or None
    where the source has none (a release name, a model object, an older run)."""
    from s3f_kit.reports.model_card import MODEL_CARD

    where = Path(source)
    if not where.exists():  # a model object or a release name: no folder to look in
        return None
    card = (where if where.is_dir() else where.parent) / MODEL_CARD
    if not card.exists() and not card.is_symlink():
        print(f"no {MODEL_CARD} beside {source}: the export carries none")
        return None
    try:  # a run folder may be shared: never follow a planted link, never read without bound
        fd = open_regular(card, os.O_RDONLY, "a model card")
    except UnsafeFileError as error:
        print(f"{error}: the export carries no model card")
        return None
    with os.fdopen(fd, "rb") as handle:
        text = handle.read(MAX_CARD_BYTES + 1)
    if len(text) > MAX_CARD_BYTES:
        print(f"{card}: over {MAX_CARD_BYTES >> 20} MiB, not a model card; the export carries none")
        return None
    write_atomic(work / MODEL_CARD, text)
    return MODEL_CARD


def export(
    model,
    out_dir,
    *,
    preprocessing=None,
    formats=FORMATS,
    samples=(),
    tolerance=TOLERANCE,
    force=False,
) -> dict:
    """Export `model` (a Keras model with `preprocessing`, a run folder, a .keras file or a
    release name) into `out_dir`; returns the export record (also written as export.json).

    Raises ExportCheckError (and leaves no output) if an export's probabilities differ from the
    Keras model's by more than `tolerance` on the sample images."""
    import keras
    import tensorflow as tf

    formats = tuple(formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"formats must be among {FORMATS}, got {formats}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise ValueError(f"{out_dir}: already exists (use --force to replace it)")
    source = OBJECT
    if not hasattr(model, "inputs"):
        source = str(model)
        model, recorded, notes = s3f_predict.resolve_model(model)
        for note in notes:
            print(note)
        preprocessing = preprocessing or recorded
    if preprocessing is None:
        raise ValueError("export: give preprocessing= for a model object (Preprocessing.load)")
    s3f_predict.check_matches(model, preprocessing)
    images = sample_images(preprocessing, samples)
    reference = s3f_predict.per_class(model.predict(images, verbose=0))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    record = {
        "source": source,
        "class_names": list(preprocessing.class_names),
        "input": {
            "name": "images",
            "shape": [None, *preprocessing.image_size, preprocessing.channels],
            "dtype": "float32",
            "range": [0.0, 1.0],
            "preprocessing": "preprocessing.json",
        },
        "output": {
            "name": "probabilities",
            "shape": [None, len(preprocessing.class_names)],
            "meaning": "per-class probabilities in class_names order"
            + (
                " (binary sigmoid p → [1 - p, p]; positive when p > 0.5)"
                if model.outputs[0].shape[-1] == 1
                else ""
            ),
        },
        "signature": "serving_default",
        "tolerance": tolerance,
        "checks": {},
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    try:
        for fmt in formats:
            target = work / ("saved_model" if fmt == "saved_model" else "model.tflite")
            check = {"file": target.name, "sample_images": len(images)}
            if fmt == "saved_model":
                write_saved_model(model, target)
            else:
                check["flex_ops"] = write_tflite(model, target, work)
            got = PROBES[fmt](target, images)
            if got.shape != reference.shape:
                raise ExportCheckError(f"{fmt}: output shape {got.shape} ≠ {reference.shape}")
            check["max_abs_diff"] = float(np.abs(got.astype(np.float64) - reference).max())
            passed = check["max_abs_diff"] <= tolerance
            print(
                f"{fmt}: max |Δ probability| = {check['max_abs_diff']:.2e} on {len(images)} "
                f"image(s) (tolerance {tolerance:.0e}) — {'ok' if passed else 'FAILED'}"
            )
            if not passed:
                raise ExportCheckError(
                    f"{fmt} export does not reproduce the Keras model: max |Δ probability| "
                    f"{check['max_abs_diff']:.2e} > {tolerance:.0e}; nothing written to {out_dir}"
                )
            record["checks"][fmt] = check
        preprocessing.save(work / s3f_predict.PREPROCESSING_FILE)
        record["model_card"] = _copy_model_card(source, work) if source != OBJECT else None
        write_atomic(work / "export.json", json.dumps(record, indent=1))
        if out_dir.exists():  # --force: the old export goes only once the new one is complete
            old = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.old")
            os.replace(out_dir, old)
            os.replace(work, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(work, out_dir)
    except Exception as error:  # TensorFlow reports a full disk as ResourceExhaustedError
        if is_disk_full(error) and not isinstance(error, DiskFullError):
            raise disk_full_error(out_dir.parent, f"the export {out_dir.name}/") from error
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="s3f-export",
        description="Export an S³F-Net model to a TensorFlow SavedModel and TFLite, each checked "
        "against the Keras model.",
    )
    parser.add_argument("model", help="run folder, .keras file, or release name")
    parser.add_argument("out_dir", help="folder to create for the exported files")
    parser.add_argument(
        "--format",
        nargs="+",
        choices=FORMATS,
        default=list(FORMATS),
        dest="formats",
        help="what to export (default: both)",
    )
    parser.add_argument(
        "--samples",
        nargs="+",
        default=[],
        metavar="IMAGE_OR_FOLDER",
        help="images for the numerical check (default: synthetic ones)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=TOLERANCE,
        help="largest allowed |Δ probability| (default %(default)s)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing out_dir")
    args = parser.parse_args(argv)  # --help answers before TensorFlow is imported
    from s3f_kit.run import env as s3f_env

    s3f_env.import_tensorflow_quietly()  # a CPU machine: no CUDA-registration noise
    try:
        record = export(
            args.model,
            args.out_dir,
            formats=args.formats,
            samples=args.samples,
            tolerance=args.tolerance,
            force=args.force,
        )
    except ExportCheckError as error:
        print(f"s3f-export: CHECK FAILED: {error}", file=sys.stderr)
        return 1
    except (ValueError, OSError, FetchError) as error:
        print(f"s3f-export: error: {error}", file=sys.stderr)
        return 2
    print(f"exported {', '.join(record['checks'])} → {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
