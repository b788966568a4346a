"""SavedModel and TFLite export (s3f_export): numerically checked, nothing left on failure."""

import json
import warnings

import numpy as np
import pytest

import s3f_common
from data_setup.datasets import DATASETS
from s3f_kit.apply import export as s3f_export
from s3f_kit.apply import predict as s3f_predict
from tests.helpers import run_folder, small_disk


def _serve_saved_model(path, images):
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return serve(images=tf.constant(images))["probabilities"].numpy()


def _serve_tflite(path, images):
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(path))
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_s3f_net_with_spectral_filter_exports_both_formats(tmp_path, capsys, keras):
    """A paper-format bilinear S³F-Net at 24×20: not a power of two, which TFLite's builtin
    RFFT2D would reject at run time."""
    model = s3f_common.build_model("s3f", (24, 20, 1), 4, "bilinear", 1, bn_momentum=0.99)
    run = run_folder(tmp_path / "run", model, "BRISC2025", (24, 20), 1, paper_format_file=True)
    out = tmp_path / "exported"
    assert s3f_export.main([str(run), str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("max |Δ probability| = ") == 2 and "FAILED" not in printed
    assert "Flex delegate" not in printed

    record = json.loads((out / "export.json").read_text())
    assert record["class_names"] == list(DATASETS["BRISC2025"].class_names)
    assert record["input"]["shape"] == [None, 24, 20, 1]
    for fmt in ("saved_model", "tflite"):
        assert 0 <= record["checks"][fmt]["max_abs_diff"] <= 1e-4
    assert record["checks"]["tflite"]["flex_ops"] == []  # builtins only: any TFLite runtime
    copied = s3f_predict.Preprocessing.load(out / "preprocessing.json")
    assert copied.to_json() == s3f_predict.Preprocessing.load(run / "preprocessing.json").to_json()

    # independent of the export's own check: fresh images, both runtimes, batch sizes 1 and 3
    images = np.random.default_rng(7).random((3, 24, 20, 1), dtype=np.float32)
    expected = model.predict(images, verbose=0)
    for serve in (_serve_saved_model, _serve_tflite):
        for batch in (images[:1], images):
            got = serve(
                out / ("saved_model" if serve is _serve_saved_model else "model.tflite"), batch
            )
            np.testing.assert_allclose(got, expected[: len(batch)], atol=1e-4)
    assert not list(tmp_path.glob(".exported*"))  # no temporary folder left


def test_binary_model_exports_one_column_per_class(tmp_path, keras):
    model = s3f_common.build_model("s3f", (16, 16, 1), 2, "concat", 2, bn_momentum=0.99)
    prep = s3f_predict.Preprocessing("ChestXRay", ("NORMAL", "PNEUMONIA"), (16, 16), 1, "test")
    record = s3f_export.export(model, tmp_path / "out", preprocessing=prep)
    assert record["output"]["shape"] == [None, 2] and "1 - p" in record["output"]["meaning"]
    images = np.random.default_rng(8).random((4, 16, 16, 1), dtype=np.float32)
    p = model.predict(images, verbose=0)[:, 0]
    for got in (
        _serve_saved_model(tmp_path / "out" / "saved_model", images),
        _serve_tflite(tmp_path / "out" / "model.tflite", images),
    ):
        np.testing.assert_allclose(got[:, 1], p, atol=1e-4)
        np.testing.assert_allclose(got[:, 0], 1 - p, atol=1e-4)
    assert all(c["max_abs_diff"] <= 1e-4 for c in record["checks"].values())


def test_failed_check_leaves_nothing_and_keeps_the_old_export(tmp_path, monkeypatch, capsys, keras):
    model = s3f_common.build_model("spatial", (16, 16, 3), 7, bn_momentum=0.99)
    run = run_folder(tmp_path / "run", model, "HAM10000", (16, 16), 3)
    out = tmp_path / "exported"
    samples = tmp_path / "samples"
    samples.mkdir()
    import cv2

    for index in range(2):
        cv2.imwrite(str(samples / f"s{index}.png"), np.full((30, 40, 3), 60 * index, np.uint8))
    assert s3f_export.main([str(run), str(out), "--samples", str(samples)]) == 0
    record = json.loads((out / "export.json").read_text())
    assert record["checks"]["tflite"]["flex_ops"] == []  # a plain CNN needs no TF ops
    assert record["checks"]["tflite"]["sample_images"] == 2
    capsys.readouterr()

    assert s3f_export.main([str(run), str(out)]) == 2  # exists, no --force
    assert "already exists" in capsys.readouterr().err

    def off_by_a_little(path, images):
        return s3f_export.saved_model_probabilities(path, images) + 2e-4

    monkeypatch.setitem(s3f_export.PROBES, "saved_model", off_by_a_little)
    before = sorted(p.name for p in out.iterdir())
    code = s3f_export.main([str(run), str(out), "--force", "--format", "saved_model"])
    assert code == 1
    error = capsys.readouterr().err
    assert "CHECK FAILED" in error and "max |Δ probability| 2.00e-04 > 1e-04" in error
    assert sorted(p.name for p in out.iterdir()) == before  # the previous export is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported", "run", "samples"]
    with pytest.raises(s3f_export.ExportCheckError):
        s3f_export.export(str(run), tmp_path / "fresh", formats=["saved_model"])
    assert not (tmp_path / "fresh").exists()


@pytest.mark.parametrize(
    "shape, options",
    [
        ((24, 20, 1), {}),
        ((15, 21, 3), {}),  # odd sizes, dense mixing over 3 channels (einsum)
        ((16, 22, 3), {"channel_mixing": "depthwise"}),
        ((20, 18, 1), {"modes": (4, 5)}),
        ((17, 16, 2), {"channel_mixing": "depthwise", "modes": (3, 4)}),
    ],
)
def test_dft_matrix_filter_equals_the_fft_filter(shape, options, keras):
    """The TFLite form of SpectralFilter (DFT matrix products) against the FFT layer itself, for
    every channel-mixing and modes case, odd and even sizes."""
    import tensorflow as tf

    inputs = keras.Input(shape)
    layer = s3f_common.SpectralFilter(6, **options)
    model = keras.Model(inputs, layer(inputs))
    portable = s3f_export._tflite_friendly_filter_class().from_config(layer.get_config())
    portable.build((None, *shape))
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()]
    layer.set_weights(weights)
    portable.set_weights(weights)
    images = rng.random((2, *shape), dtype=np.float32)
    expected = model.predict(images, verbose=0)
    got = portable(tf.constant(images)).numpy()
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() <= 1e-5 * scale


def test_tflite_file_has_only_builtin_ops(tmp_path, keras):
    """A SpectraNet-2 (dense mixing in its second filter, the einsum case) converts to TFLite
    builtins only, so an interpreter without the Flex delegate runs it."""
    model = s3f_common.build_model("spectranet", (20, 20, 1), 3, spectranet=2, bn_momentum=0.99)
    ops = s3f_export.write_tflite(model, tmp_path / "m.tflite", tmp_path)
    assert ops == []
    interpreter = s3f_export._interpreter(tmp_path / "m.tflite")
    names = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any(name.startswith("Flex") for name in names)
    assert "FULLY_CONNECTED" in names or "BATCH_MATMUL" in names  # the DFT products
    images = np.random.default_rng(5).random((2, 20, 20, 1), dtype=np.float32)
    np.testing.assert_allclose(
        s3f_export.tflite_probabilities(tmp_path / "m.tflite", images),
        model.predict(images, verbose=0),
        atol=1e-5,
    )


def test_an_op_without_a_tflite_builtin_is_one_clear_error(tmp_path, monkeypatch, capsys, keras):
    import tensorflow as tf

    model = s3f_common.build_model("spatial", (16, 16, 1), 4, bn_momentum=0.99)
    run = run_folder(tmp_path / "run", model, "BRISC2025", (16, 16), 1)

    class Refusing:  # a converter that meets an op TFLite has no builtin for
        def __init__(self, *args):
            self.target_spec = type("Spec", (), {})()

        def convert(self):
            raise RuntimeError("'tf.Complex' op is neither a custom op nor a flex op\nmore lines")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", Refusing)
    assert s3f_export.main([str(run), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "no builtin" in error and "tf.Complex" in error and "more lines" not in error
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


FULL_DISK_END = "bytes free); free space there (or choose a folder on another disk) and run again"


def test_a_full_disk_is_one_message_naming_the_folder(tmp_path, monkeypatch, capsys, keras):
    import tensorflow as tf

    model = s3f_common.build_model("spatial", (16, 16, 3), 7, bn_momentum=0.99)
    run = run_folder(tmp_path / "run", model, "HAM10000", (16, 16), 3)

    def disk_fills(model, target):  # as TensorFlow's writer fails half-way
        target.mkdir()
        (target / "saved_model.pb").write_bytes(b"half")
        raise tf.errors.ResourceExhaustedError(None, None, f"{target}; No space left on device")

    monkeypatch.setattr(s3f_export, "write_saved_model", disk_fills)
    assert s3f_export.main([str(run), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(
        f"s3f-export: error: {tmp_path}: the disk is full — the export out/ could not be written ("
    )
    assert error.endswith(FULL_DISK_END) and "\n" not in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no half-written export


def test_export_onto_a_really_full_disk_leaves_nothing(tmp_path, capsys, keras):
    model = s3f_common.build_model("spatial", (16, 16, 3), 7, bn_momentum=0.99)
    run = run_folder(tmp_path / "run", model, "HAM10000", (16, 16), 3)
    with small_disk(tmp_path / "disk", "64k") as disk:
        assert s3f_export.main([str(run), str(disk / "out")]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith(
            f"s3f-export: error: {disk}: the disk is full — the export out/ could not be written ("
        ), error
        assert error.endswith(FULL_DISK_END)
        assert list(disk.iterdir()) == []


def test_the_model_card_travels_with_the_export_and_a_planted_link_is_not_followed(
    tmp_path, capsys, keras
):
    model = s3f_common.build_model("spatial", (16, 16, 1), 3, bn_momentum=0.99)
    run = run_folder(tmp_path / "run", model, "BUSI", (16, 16), 1)
    (run / "MODEL_CARD.md").write_text("# Model card\n\nResearch use only.\n")
    record = s3f_export.export(str(run), tmp_path / "out", formats=("saved_model",))
    assert record["model_card"] == "MODEL_CARD.md"
    assert "Research use only" in (tmp_path / "out" / "MODEL_CARD.md").read_text()
    assert json.loads((tmp_path / "out" / "export.json").read_text())["model_card"]

    secret = tmp_path / "secret.txt"
    secret.write_text("not for the export")
    (run / "MODEL_CARD.md").unlink()
    (run / "MODEL_CARD.md").symlink_to(secret)
    record = s3f_export.export(str(run), tmp_path / "linked", formats=("saved_model",))
    assert record["model_card"] is None and not (tmp_path / "linked" / "MODEL_CARD.md").exists()
    assert "symbolic link" in capsys.readouterr().out
