"""Explainability (branch contributions, filters, Grad-CAM) and the paper's release weights."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import s3f_common
from s3f_kit import releases as s3f_releases
from s3f_kit.apply import explain as s3f_explain
from s3f_kit.releases import Release
from tests import paper_format
from tests.helpers import loopback_http

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- contribution maths
def test_contribution_scores_follow_the_spec_formulas():
    a, b = 0.5, 2.0
    spatial = np.full((1, 512), a)
    spectral = np.full((1, 4), b)
    scores = s3f_explain.contribution_scores(spatial, spectral).iloc[0]
    norm_s, norm_p = a * np.sqrt(512), b * 2
    assert scores["l2_spatial_%"] == pytest.approx(100 * norm_s / (norm_s + norm_p))
    assert scores["l2_spectral_%"] == pytest.approx(100 * norm_p / (norm_s + norm_p))
    # balanced score sqrt(‖v‖·‖v‖/d) = ‖v‖/√d = a and b here
    assert scores["balanced_spatial_%"] == pytest.approx(100 * a / (a + b))
    assert scores["balanced_spectral_%"] == pytest.approx(100 * b / (a + b))


def test_contribution_summary_has_overall_and_per_class_means():
    scores = s3f_explain.contribution_scores(
        np.array([[1.0, 0.0], [3.0, 0.0], [1.0, 1.0]]), np.array([[1.0], [1.0], [0.0]])
    )
    summary = s3f_explain.contribution_summary(scores, [0, 0, 1], ["a", "b", "c"])
    assert summary["images"] == 3 and set(summary["per_class"]) == {"a", "b"}
    assert summary["per_class"]["b"]["l2_spectral_%"] == 0.0
    assert summary["per_class"]["a"]["l2_spectral_%"] == pytest.approx((50 + 25) / 2, abs=1e-3)


# ---------------------------------------------------------------- finding branches in a model
@pytest.mark.parametrize("fusion,spectranet", [("concat", 1), ("bilinear", 2)])
def test_fusion_inputs_are_found_in_kit_and_paper_format_models(
    fusion, spectranet, tmp_path, keras
):
    model = s3f_common.build_model("s3f", (24, 24, 1), 3, fusion, spectranet, bn_momentum=0.99)
    path = tmp_path / "paper.keras"
    paper_format.save_in_paper_format(model, path)
    for candidate in (model, s3f_common.load_model(path)):
        layer, spatial, spectral = s3f_explain.fusion_branches(candidate)
        assert spatial.shape[-1] == 512 and spectral.shape[-1] == 4
        assert layer.name == "fusion"
        assert s3f_explain.spatial_gradcam_layer(candidate).name == "spatial4_conv2"
    with pytest.raises(ValueError, match="not an S³F-Net model"):
        s3f_explain.fusion_branches(
            s3f_common.build_model("spatial", (24, 24, 1), 3, bn_momentum=0.99)
        )


def test_filter_pictures_of_a_delta_kernel_are_flat(keras):
    layer = s3f_common.SpectralFilter(2)
    layer.build((None, 8, 6, 1))
    real = np.ones((1, 2, 8, 4), np.float32)  # the spectrum of a unit impulse
    layer.set_weights([real, np.zeros_like(real), np.zeros(2, np.float32)])
    response, kernels = s3f_explain.spectral_filter_pictures(layer)
    assert response.shape == kernels.shape == (2, 8, 6)
    np.testing.assert_allclose(response, np.log1p(1.0), atol=1e-9)
    centre = kernels[0][4, 3]  # fftshift moves the impulse at (0, 0) to the centre
    assert centre == pytest.approx(1.0) and np.abs(kernels[0]).sum() == pytest.approx(1.0)


def test_grad_cam_maps_have_image_size_and_unit_peak(keras):
    model = s3f_common.build_model("s3f", (32, 32, 1), 2, "concat", 1, bn_momentum=0.99)
    images = np.random.default_rng(0).random((3, 32, 32, 1)).astype(np.float32)
    cams = s3f_explain.grad_cam(model, images, np.array([0, 1, 1]))
    assert cams.shape == (3, 32, 32)
    assert cams.min() >= 0 and np.all((cams.max(axis=(1, 2)) == 1) | (cams.max(axis=(1, 2)) == 0))


# ---------------------------------------------------------------- pretrained (local server only)
@pytest.fixture
def release_server(tmp_path):
    """Serve files from a folder on 127.0.0.1; `cut` maps a name to an announced larger size."""
    folder, cut = tmp_path / "served", {}
    folder.mkdir()

    def respond(path):
        served = folder / path.lstrip("/")
        if not served.is_file():
            return None
        body = served.read_bytes()
        return body, cut.get(served.name, len(body))

    with loopback_http(respond) as base:
        yield base, folder, cut


@pytest.fixture
def tiny_release(tmp_path, monkeypatch, keras):
    """A small model registered as a release, saved as the paper saved its files."""
    model = s3f_common.build_model("s3f", (24, 24, 1), 4, "bilinear", 1, bn_momentum=0.99)
    path = tmp_path / "Tiny_S3F-Net.keras"
    paper_format.save_in_paper_format(model, path)
    release = Release(
        "Tiny_S3F-Net.keras",
        "s3f",
        "bilinear",
        1,
        "BRISC2025",
        (24, 24, 1),
        4,
        model.count_params(),
    )
    monkeypatch.setitem(s3f_releases.RELEASES, "tiny", release)
    return path, model


def _cache_files(cache):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_pretrained_downloads_once_verifies_and_records_sha(tiny_release, release_server, tmp_path):
    path, model = tiny_release
    base, served, _ = release_server
    (served / path.name).write_bytes(path.read_bytes())
    cache = tmp_path / "cache"
    loaded = s3f_releases.pretrained("tiny", cache_dir=cache, base_url=base)
    x = np.random.default_rng(1).random((2, 24, 24, 1)).astype(np.float32)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    record = (cache / f"{path.name}.sha256").read_text().strip()
    assert record == hashlib.sha256(path.read_bytes()).hexdigest()
    (served / path.name).unlink()  # a second call must not download again
    s3f_releases.pretrained("tiny", cache_dir=cache, base_url=base)
    assert _cache_files(cache) == sorted([path.name, f"{path.name}.sha256"])


def test_pretrained_refuses_a_truncated_file_and_leaves_nothing(
    tiny_release, release_server, tmp_path
):
    path, _ = tiny_release
    base, served, _ = release_server
    (served / path.name).write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="not the release file .truncated or replaced"):
        s3f_releases.pretrained("tiny", cache_dir=cache, base_url=base)
    assert _cache_files(cache) == []


def test_pretrained_refuses_an_interrupted_transfer(tiny_release, release_server, tmp_path):
    from data_setup.fetch import FetchError

    path, _ = tiny_release
    base, served, cut = release_server
    body = path.read_bytes()
    (served / path.name).write_bytes(body[:1000])
    cut[path.name] = len(body)  # the server announces the whole file, sends 1000 bytes
    cache = tmp_path / "cache"
    with pytest.raises(FetchError, match="interrupted"):
        s3f_releases.pretrained("tiny", cache_dir=cache, base_url=base)
    assert _cache_files(cache) == []


def test_pretrained_refuses_a_different_file(tiny_release, release_server, tmp_path, keras):
    path, _ = tiny_release
    base, served, _ = release_server
    cache = tmp_path / "cache"
    (served / path.name).write_bytes(path.read_bytes())
    s3f_releases.pretrained("tiny", cache_dir=cache, base_url=base)
    other = s3f_common.build_model(
        "s3f", (24, 24, 1), 4, "bilinear", 1, bn_momentum=0.99
    )  # new random weights
    paper_format.save_in_paper_format(other, served / path.name)
    with pytest.raises(ValueError, match="differs from the file first downloaded"):
        _redownload(cache, base)
    assert _cache_files(cache) == sorted([path.name, f"{path.name}.sha256"])  # the original stays
    accepted = s3f_releases.pretrained("tiny", cache_dir=cache, base_url=base, force=True)
    assert accepted.count_params() == other.count_params()


def _redownload(cache, base):
    """As after the cached file was deleted: a fresh download checked against the record."""
    kept = cache / "Tiny_S3F-Net.keras"
    saved = kept.read_bytes()
    kept.unlink()
    try:
        return s3f_releases.pretrained("tiny", cache_dir=cache, base_url=base)
    finally:
        kept.write_bytes(saved)


def test_pretrained_refuses_a_file_of_another_architecture(
    tiny_release, release_server, tmp_path, keras
):
    path, _ = tiny_release
    base, served, _ = release_server
    other = s3f_common.build_model("s3f", (24, 24, 1), 4, "concat", 1, bn_momentum=0.99)
    paper_format.save_in_paper_format(other, served / path.name)
    with pytest.raises(ValueError, match="not the registered release model.*fusion"):
        s3f_releases.pretrained("tiny", cache_dir=tmp_path / "cache", base_url=base)
    assert _cache_files(tmp_path / "cache") == []


def test_release_registry_matches_the_paper():
    brisc, chest = (
        s3f_releases.RELEASES["bilinear_brisc2025"],
        s3f_releases.RELEASES["concat_chestxray"],
    )
    assert brisc.url() == (
        "https://github.com/Saiful185/S3F-Net/releases/download/v1.0.0-sn1/"
        "Bilinear_S3F-Net_SN1_BRISC2025.keras"
    )
    assert (brisc.params, brisc.input_shape, brisc.num_classes) == (3_443_592, (256, 256, 1), 4)
    assert (chest.params, chest.input_shape, chest.num_classes) == (7_638_409, (384, 512, 1), 2)
    assert chest.filename == "Concatenation_S3F-Net_SN1_Chest.XRAY.keras"


# ---------------------------------------------------------------- notebooks through papermill
def _papermill(notebook, out, **params):
    args = [sys.executable, "-m", "papermill", f"notebooks/{notebook}.ipynb", str(out)]
    for key, value in params.items():
        args += ["-p", key, str(value)]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.e2e
def test_explainability_notebook_on_bilinear_sn2_and_paper_format_files(
    kernel_env, tmp_path, keras
):
    from s3f_kit.run import training as s3f_training

    run = s3f_training.Run(
        "S3F_Concat_BUSI",
        fusion="bilinear",
        spectranet=2,
        epochs=1,
        img_size=[16, 16],
        demo_count=6,
        batch_size=8,
        verbose=0,
        output_dir=str(tmp_path / "runs"),
    )
    data = run.load_data()
    run.train(run.build_model(data), data)
    run.evaluate(data)
    kit_file = run.run_dir / "model.keras"
    paper_file = tmp_path / "Bilinear_S3F-Net_SN2_BUSI.keras"
    paper_format.save_in_paper_format(s3f_common.load_model(kit_file), paper_file)
    for model_path in (kit_file, paper_file):
        _papermill(
            "S3F_Explainability",
            tmp_path / "out.ipynb",
            model_path=model_path,
            dataset="BUSI",
            demo_count=6,
            output_dir=tmp_path / "explain",
        )
    # a kit run folder's explanation goes to its seed folder's name; a file to its stem
    for name in ("seed42", "Bilinear_S3F-Net_SN2_BUSI"):
        folder = tmp_path / "explain" / name
        summary = json.loads((folder / "contributions.json").read_text())
        assert summary["images"] == len(data.splits["test"]) and summary["spectral_dim"] == 4
        assert (folder / "spectral_filters_spectral_filter2.png").is_file()  # SN2: two filters
        assert (folder / "gradcam.png").is_file()
    kit = json.loads((tmp_path / "explain/seed42/contributions.json").read_text())
    assert kit["model"] == "S3F_Concat_BUSI/bilinear-sn2/seed42 (synthetic demo data)"
    paper = json.loads(
        (tmp_path / "explain/Bilinear_S3F-Net_SN2_BUSI/contributions.json").read_text()
    )
    assert kit["overall"] == pytest.approx(paper["overall"], abs=1e-3)  # same weights


@pytest.mark.e2e
def test_evaluate_pretrained_notebook_against_a_local_release(
    kernel_env, release_server, tmp_path, keras
):
    from data_setup import synth_dataset

    base, served, _ = release_server
    release = s3f_releases.RELEASES["bilinear_brisc2025"]
    model = s3f_common.build_model("s3f", release.input_shape, 4, "bilinear", 1, bn_momentum=0.99)
    paper_format.save_in_paper_format(model, served / release.filename)
    brisc = synth_dataset("BRISC2025", tmp_path / "brisc", count=3, size=64, seed=4)
    _papermill(
        "Evaluate_Pretrained",
        tmp_path / "out.ipynb",
        release="bilinear_brisc2025",
        data_dir=brisc,
        base_url=base,
        output_dir=tmp_path / "pretrained",
    )
    metrics = json.loads((tmp_path / "pretrained/bilinear_brisc2025/metrics.json").read_text())
    assert metrics["params"] == 3_443_592 and metrics["image_size"] == [256, 256]
    assert np.array(metrics["confusion_matrix"]).sum() == 12
    assert (tmp_path / "pretrained/bilinear_brisc2025/roc.png").is_file()
    assert metrics["shortcuts"]["assessed"] is True  # issue 35: the audit, and the swap
    assert metrics["acquisition_swap"]["models"]["bilinear_brisc2025"]["flips"]["of"] == 12 * 3
    cached = kernel_env / "pretrained"
    assert sorted(p.name for p in cached.iterdir()) == sorted(
        [release.filename, f"{release.filename}.sha256"]
    )
