"""Prediction on new images (s3f_predict): same preprocessing as training, per-file errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import s3f_common
from data_setup import load_dataset
from data_setup.datasets import DATASETS
from data_setup.loading import decode_image
from data_setup.synth import synth_dataset, synth_image
from s3f_kit import releases as s3f_releases
from s3f_kit.apply import predict as s3f_predict
from s3f_kit.releases import Release
from tests import paper_format
from tests.helpers import png_claiming, run_folder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, keras):
    """Tiny models in run folders: gray 4-class S³F, RGB 7-class spatial, gray binary S³F."""
    base = tmp_path_factory.mktemp("runs")
    gray = s3f_common.build_model("s3f", (16, 16, 1), 4, "concat", 1, bn_momentum=0.99)
    rgb = s3f_common.build_model("spatial", (16, 20, 3), 7, bn_momentum=0.99)
    binary = s3f_common.build_model("s3f", (16, 24, 1), 2, "bilinear", 2, bn_momentum=0.99)
    return {
        "gray": (run_folder(base / "gray", gray, "BRISC2025", (16, 16), 1), gray),
        "rgb": (run_folder(base / "rgb", rgb, "HAM10000", (16, 20), 3), rgb),
        "binary": (run_folder(base / "binary", binary, "ChestXRay", (16, 24), 1), binary),
    }


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Images of other sizes than the models', gray and colour, PNG and JPEG, in subfolders."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(3)
    specs = [
        ("a/gray_40x30.png", 40, 30, 1),
        ("a/rgb_25x33.jpg", 25, 33, 3),
        ("b/rgb_50x64.png", 50, 64, 3),
        ("b/gray_17x9.jpeg", 17, 9, 1),
    ]
    for index, (name, height, width, channels) in enumerate(specs):
        image = synth_image(rng, index % 4, height, width, channels)[0]
        if channels == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        (folder / name).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(folder / name), image)
    (folder / "b" / "notes.txt").write_text("not an image")  # skipped by the folder search
    return folder


def _expected(model, files, size_hw, channels):
    batch = np.stack([decode_image(f, size_hw, channels) for f in files]) / np.float32(255)
    return s3f_predict.per_class(model.predict(batch.astype(np.float32), verbose=0))


def test_cli_predicts_like_model_predict_with_gradcam(runs, images, tmp_path, capsys):
    run_dir, model = runs["gray"]
    out, cams = tmp_path / "out" / "predictions.csv", tmp_path / "cams"
    code = s3f_predict.main([str(run_dir), str(images), "--out", str(out), "--gradcam", str(cams)])
    assert code == 0
    frame = pd.read_csv(out, keep_default_na=False)
    files = sorted(p for p in images.rglob("*.*") if p.suffix != ".txt")
    assert frame["file"].tolist() == [str(f) for f in files]  # sorted, recursive, .txt skipped
    names = DATASETS["BRISC2025"].class_names
    probs = frame[[f"prob_{n}" for n in names]].to_numpy(float)
    expected = _expected(model, files, (16, 16), 1)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    assert frame["predicted_label"].tolist() == [names[i] for i in expected.argmax(1)]
    assert (frame["error"] == "").all()
    for png in frame["gradcam"]:
        picture = cv2.imread(png)
        assert picture is not None and picture.shape[0] > 50
    assert Path(frame["gradcam"][0]).name == "a__gray_40x30_gradcam.png"  # relative to images/
    assert len(set(frame["gradcam"])) == len(files)
    printed = capsys.readouterr().out
    assert "skipped 1 file(s) without an image suffix" in printed
    assert f"predicted {len(files)} of {len(files)} file(s)" in printed


def test_binary_model_gives_both_probabilities_and_thresholds_at_half(runs, images):
    run_dir, model = runs["binary"]
    files = sorted(images.rglob("*.png"))
    frame = s3f_predict.predict(str(run_dir), files)
    p = model.predict(
        np.stack([decode_image(f, (16, 24), 1) for f in files]) / np.float32(255), verbose=0
    )[:, 0]
    np.testing.assert_allclose(frame["prob_PNEUMONIA"], p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(frame["prob_NORMAL"] + frame["prob_PNEUMONIA"], 1.0, atol=1e-6)
    expected = np.where(p > 0.5, "PNEUMONIA", "NORMAL")
    assert frame["predicted_label"].tolist() == expected.tolist()


@pytest.mark.parametrize("dataset", ["BRISC2025", "HAM10000"])
def test_images_are_prepared_exactly_as_the_training_pipeline(dataset, tmp_path, keras):
    """Gray model on RGB files (BRISC holds some 3-channel JPEGs), RGB model on RGB files,
    both resized from other sizes: identical arrays to what load_dataset trains on."""
    root = synth_dataset(dataset, tmp_path / "data", count=5, size=40)
    info = DATASETS[dataset]
    data = load_dataset(dataset, root, img_size=(12, 20), cache_dir=tmp_path / "cache")
    train = data.splits["train"]
    record = {
        "class_names": list(info.class_names),
        "image_size": [12, 20],
        "channels": info.channels,
    }
    prep = s3f_predict.Preprocessing.from_json(record, "test record")
    prepared = np.stack([s3f_predict.load_image(data.root / f, prep) for f in train.files])
    assert prepared.dtype == np.float32 and prepared.shape[1:] == (12, 20, info.channels)
    np.testing.assert_array_equal(prepared, train.images())


def test_rgb_model_on_gray_and_gray_model_on_rgb_use_decode_image(runs, images):
    prep_rgb = s3f_predict.Preprocessing.load(runs["rgb"][0] / "preprocessing.json")
    prep_gray = s3f_predict.Preprocessing.load(runs["gray"][0] / "preprocessing.json")
    gray_file, rgb_file = images / "a" / "gray_40x30.png", images / "b" / "rgb_50x64.png"
    as_rgb = s3f_predict.load_image(gray_file, prep_rgb)
    assert as_rgb.shape == (16, 20, 3)
    np.testing.assert_array_equal(as_rgb * 255, decode_image(gray_file, (16, 20), 3))
    assert np.array_equal(as_rgb[..., 0], as_rgb[..., 2])  # gray replicated into RGB
    as_gray = s3f_predict.load_image(rgb_file, prep_gray)
    np.testing.assert_array_equal(as_gray * 255, decode_image(rgb_file, (16, 16), 1))
    # OpenCV's gray conversion of the colour file, resized by area: not a channel pick
    bgr = cv2.imread(str(rgb_file))
    manual = cv2.resize(
        cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (16, 16), interpolation=cv2.INTER_AREA
    )
    assert np.abs(as_gray[..., 0] * 255 - manual).max() <= 1


def test_bad_files_are_reported_and_the_rest_predicted(runs, images, tmp_path, capsys):
    run_dir, model = runs["rgb"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "text.png").write_text("hello, not an image")
    (bad / "empty.jpg").write_bytes(b"")
    good = images / "b" / "rgb_50x64.png"
    (bad / "cut.png").write_bytes(good.read_bytes()[:-40])
    inputs = [good, bad / "text.png", bad / "empty.jpg", bad / "cut.png", bad / "missing.png"]
    inputs += [images / "b" / "notes.txt", images / "a" / "gray_40x30.png"]
    out = tmp_path / "p.csv"
    code = s3f_predict.main([str(run_dir), *map(str, inputs), "--out", str(out)])
    assert code == 1
    frame = pd.read_csv(out, keep_default_na=False).set_index("file")
    errors = frame["error"]
    assert errors[str(bad / "text.png")] == "not a decodable image"
    assert errors[str(bad / "empty.jpg")] == "empty file (0 bytes)"
    assert "not a decodable image" in errors[str(bad / "cut.png")]
    assert errors[str(bad / "missing.png")] == "no such file"
    assert errors[str(images / "b" / "notes.txt")] == "not a decodable image"
    ok = [str(good), str(images / "a" / "gray_40x30.png")]
    assert (errors[ok] == "").all() and (frame.loc[errors != "", "predicted_label"] == "").all()
    names = DATASETS["HAM10000"].class_names
    probs = frame.loc[ok, [f"prob_{n}" for n in names]].to_numpy(float)
    expected = _expected(model, ok, (16, 20), 3)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    printed = capsys.readouterr().out
    assert f"{bad / 'empty.jpg'}: not predicted: empty file (0 bytes)" in printed
    assert "predicted 2 of 7 file(s)" in printed and "5 failed" in printed


def test_an_oversized_header_and_a_looping_link_get_error_rows_and_the_csv(
    runs, images, tmp_path, capsys
):
    """Issue 31.4: a header claiming 60000×60000 crashed predict (no CSV for the good images);
    a looping link in a searched folder was dropped without a word."""
    from data_setup.decode import pixels_problem

    run_dir, model = runs["gray"]
    folder = tmp_path / "scans"
    shutil.copytree(images, folder)
    big, loop = folder / "a" / "big.png", folder / "a" / "loop.png"
    big.write_bytes(png_claiming(60000, 60000))
    os.symlink(loop.name, loop)
    out = tmp_path / "p.csv"
    assert s3f_predict.main([str(run_dir), str(folder), "--out", str(out)]) == 1
    frame = pd.read_csv(out, keep_default_na=False).set_index("file")
    why = pixels_problem(np.fromfile(big, np.uint8))
    assert frame.loc[str(big), "error"] == why
    assert frame.loc[str(loop), "error"] == "a symbolic link that loops (it never reaches a file)"
    good = sorted(p for p in folder.rglob("*.*") if p.suffix != ".txt" and p not in (big, loop))
    assert len(good) == 4 and (frame.loc[list(map(str, good)), "error"] == "").all()
    names = DATASETS["BRISC2025"].class_names
    probs = frame.loc[list(map(str, good)), [f"prob_{n}" for n in names]].to_numpy(float)
    np.testing.assert_allclose(probs, _expected(model, good, (16, 16), 1), rtol=1e-5, atol=1e-6)
    printed = capsys.readouterr().out
    assert f"{big}: not predicted: {why}" in printed
    assert "predicted 4 of 6 file(s)" in printed


def test_release_name_uses_the_registry_preprocessing(tmp_path, monkeypatch, images, keras):
    model = s3f_common.build_model("s3f", (16, 16, 1), 4, "bilinear", 1, bn_momentum=0.99)
    cache = tmp_path / "cache"
    (cache / "pretrained").mkdir(parents=True)
    paper_format.save_in_paper_format(model, cache / "pretrained" / "Tiny.keras")
    release = Release(
        "Tiny.keras", "s3f", "bilinear", 1, "BRISC2025", (16, 16, 1), 4, model.count_params()
    )
    monkeypatch.setitem(s3f_releases.RELEASES, "tiny_brisc", release)
    monkeypatch.setenv("S3F_CACHE_DIR", str(cache))
    files = sorted(images.rglob("*.jp*g"))
    frame = s3f_predict.predict("tiny_brisc", files)
    expected = _expected(model, files, (16, 16), 1)
    columns = [f"prob_{n}" for n in DATASETS["BRISC2025"].class_names]
    np.testing.assert_allclose(frame[columns].to_numpy(float), expected, rtol=1e-5, atol=1e-6)
    # the same file without a record: recognised as the release by shape and size, with a note
    model_file = cache / "pretrained" / "Tiny.keras"
    loaded, prep, notes = s3f_predict.resolve_model(model_file)
    assert prep.class_names == DATASETS["BRISC2025"].class_names and prep.channels == 1
    assert "release 'tiny_brisc'" in notes[0]


def test_missing_or_wrong_records_are_clear_errors(runs, tmp_path, capsys, keras):
    run_dir, model = runs["binary"]
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "model.keras").write_bytes((run_dir / "model.keras").read_bytes())
    with pytest.raises(ValueError, match="no preprocessing.json beside it"):
        s3f_predict.resolve_model(lone)
    # metrics.json naming the classes is enough, with a printed note
    (lone / "metrics.json").write_text(json.dumps({"class_names": ["NORMAL", "PNEUMONIA"]}))
    _, prep, notes = s3f_predict.resolve_model(lone)
    assert prep.image_size == (16, 24) and "no preprocessing.json" in notes[0]
    record = json.loads((run_dir / "preprocessing.json").read_text())
    (lone / "preprocessing.json").write_text(json.dumps({**record, "image_size": [16, 16]}))
    with pytest.raises(ValueError, match=r"describes input \(16, 16, 1\), the model takes"):
        s3f_predict.resolve_model(lone)
    (lone / "preprocessing.json").write_text(json.dumps({**record, "interpolation": "bilinear"}))
    code = s3f_predict.main([str(lone), str(tmp_path)])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("s3f-predict: error:") and "interpolation 'bilinear'" in error
    assert "\n" not in error
    with pytest.raises(ValueError, match="give preprocessing= for a model object"):
        s3f_predict.predict(model, [])
    for broken, complaint in [
        ({**record, "channels": 2}, "channels must be 1 or 3"),
        ({**record, "scale": 1.0}, "scale 1.0 is not supported"),
        ({k: v for k, v in record.items() if k != "class_names"}, "missing key"),
    ]:
        with pytest.raises(ValueError, match=f"^record.json: {complaint}"):
            s3f_predict.Preprocessing.from_json(broken, "record.json")
    with pytest.raises(ValueError, match="Grad-CAM maps an S³F-Net's spatial tower"):
        s3f_predict.predict(str(runs["rgb"][0]), [], gradcam_dir=tmp_path / "cams")


def test_module_runs_as_a_command(runs, images, tmp_path):
    out = tmp_path / "cli.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "s3f_kit.apply.predict",
            str(runs["gray"][0]),
            str(images / "a"),
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "preprocessing: gray 16×16" in result.stdout
    assert len(pd.read_csv(out)) == 2


def test_predictions_that_meet_a_full_disk_are_one_sentence(
    runs, images, tmp_path, monkeypatch, capsys
):
    """The predictions are made when the CSV is written: a full disk there is one line."""
    from data_setup import files

    def full(path, frame, **_):
        raise files.disk_full_error(Path(path).parent, Path(path).name)

    monkeypatch.setattr(s3f_predict, "write_csv_atomic", full)
    out = tmp_path / "p.csv"
    assert s3f_predict.main([str(runs["gray"][0]), str(images), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert error.startswith(f"s3f-predict: error: {out}: the predictions could not be written: ")
    assert "the disk is full" in error and not out.exists()
