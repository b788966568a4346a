"""SavedModel and TFLite export (s3f_export): numerically checked, nothing left on failure."""

import json
import warnings

import numpy as np
import pytest

import s3f_common
import s3f_export
import s3f_predict
from data_setup.datasets import DATASETS
from tests import paper_format


def _run_folder(root, model, dataset, size_hw, channels, paper_format_file=False):
    root.mkdir(parents=True)
    if paper_format_file:  # the paper's classes (SpectralFilterLayer, module __main__)
        paper_format.save_in_paper_format(model, root / "model.keras")
    else:
        model.save(root / "model.keras")
    record = {
        "dataset": dataset,
        "class_names": list(DATASETS[dataset].class_names),
        "image_size": list(size_hw),
        "channels": channels,
        "interpolation": "area",
        "scale": 1 / 255,
        "color": "gray" if channels == 1 else "rgb",
    }
    (root / "preprocessing.json").write_text(json.dumps(record))
    return root


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
    model = s3f_common.build_model("s3f", (24, 20, 1), 4, "bilinear", 1)
    run = _run_folder(tmp_path / "run", model, "BRISC2025", (24, 20), 1, paper_format_file=True)
    out = tmp_path / "exported"
    assert s3f_export.main([str(run), str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("max |Δ probability| = ") == 2 and "FAILED" not in printed
    assert "Flex delegate" in printed

    record = json.loads((out / "export.json").read_text())
    assert record["class_names"] == list(DATASETS["BRISC2025"].class_names)
    assert record["input"]["shape"] == [None, 24, 20, 1]
    for fmt in ("saved_model", "tflite"):
        assert 0 <= record["checks"][fmt]["max_abs_diff"] <= 1e-4
    assert "FlexIRFFT2D" in record["checks"]["tflite"]["flex_ops"]
    assert "FlexRFFT2D" not in record["checks"]["tflite"]["flex_ops"]
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
    model = s3f_common.build_model("s3f", (16, 16, 1), 2, "concat", 2)
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
    model = s3f_common.build_model("spatial", (16, 16, 3), 7)
    run = _run_folder(tmp_path / "run", model, "HAM10000", (16, 16), 3)
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
