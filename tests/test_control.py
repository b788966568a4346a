"""The parameter-matched spatial–spatial control (Control_<DATASET>, issue 35): its size, its
build, training, saving and loading, and its place in the config and the sweep."""

import json
import zipfile

import numpy as np
import pytest

from s3f_kit import config as s3f_config
from s3f_kit import experiments as s3f_experiments
from s3f_kit.experiments import PAPER_BN_MOMENTUM as BN
from s3f_kit.sweep import sweep as s3f_sweep

CONTROLS = s3f_experiments.CONTROL_EXPERIMENTS


# ---------------------------------------------------------------- the registry (no TensorFlow)
def test_there_is_one_control_per_dataset_beside_its_s3f_net():
    assert sorted(e.dataset for e in CONTROLS.values()) == sorted(s3f_experiments.DATASET_FACTS)
    for name, exp in CONTROLS.items():
        s3f = s3f_experiments.matched_s3f(name)
        assert s3f.architecture == "s3f" and s3f.dataset == exp.dataset
        assert (exp.fusion, exp.spectranet, exp.recipe) == (s3f.fusion, s3f.spectranet, s3f.recipe)
        assert s3f_experiments.get_experiment(name) is exp
        assert not set(CONTROLS) & set(s3f_experiments.EXPERIMENTS)  # the paper's twelve stay


@pytest.mark.parametrize("name", list(CONTROLS))
def test_the_control_is_matched_to_its_s3f_net_at_the_papers_size(name):
    """Within CONTROL_TOLERANCE of the S³F-Net's count at the paper's input, counted without
    building (the BUSI models hold ~138 M parameters); the builds below check the counts."""
    control, s3f = CONTROLS[name], s3f_experiments.matched_s3f(name)
    assert abs(control.params - s3f.params) <= s3f_experiments.CONTROL_TOLERANCE * s3f.params
    assert s3f_experiments.estimated_parameters(name, {}) == control.params
    # the readout holds nearly all the matched weights, as the spectral filters do
    h, w, c = control.input_shape
    spectral = 2 * c * 32 * h * (w // 2 + 1) * (1 if control.spectranet == 1 else 65)
    units = s3f_experiments.control_units((h, w), c, control.spectranet)
    assert units >= 1 and abs(control.params - s3f.params) < 0.01 * spectral + 20_000


def test_an_unknown_experiment_names_the_controls():
    with pytest.raises(ValueError, match="Control_<dataset>"):
        s3f_experiments.get_experiment("Control_MNIST")


# ---------------------------------------------------------------- the model (TensorFlow)
def _build(name, size=None, **options):
    import s3f_common

    exp = CONTROLS[name]
    shape = exp.input_shape if size is None else (*size, exp.info.channels)
    fusion = options.pop("fusion", exp.fusion)
    options.setdefault("bn_momentum", BN)
    return s3f_common.build_model("control", shape, exp.num_classes, fusion, exp.spectranet,
                                  **options)  # fmt: skip


SMALL = [n for n, e in CONTROLS.items() if e.params < 20_000_000]
LARGE = [n for n, e in CONTROLS.items() if e.params >= 20_000_000]


@pytest.mark.parametrize("name", SMALL)
def test_the_control_builds_with_the_registrys_count(name, keras):
    model = _build(name)
    assert model.count_params() == CONTROLS[name].params
    keras.backend.clear_session()


@pytest.mark.e2e
@pytest.mark.parametrize("name", LARGE)
def test_the_large_busi_control_builds_with_the_registrys_count(name, keras):
    model = _build(name)
    assert model.count_params() == CONTROLS[name].params
    del model
    keras.backend.clear_session()


@pytest.mark.parametrize("size", [(32, 32), (33, 47)])  # odd sides: floor pooling
def test_the_estimate_counts_the_control_exactly_at_any_size(size, keras):
    for name in CONTROLS:
        model = _build(name, size)
        estimate = s3f_experiments.estimated_parameters(name, {"img_size": list(size)})
        assert model.count_params() == estimate, name
    keras.backend.clear_session()


@pytest.mark.parametrize("fusion", ["concat", "bilinear"])
def test_the_control_has_the_s3f_nets_input_spatial_tower_fusion_and_head(fusion, keras):
    import s3f_common

    control = _build("Control_BUSI", (32, 32), fusion=fusion)
    s3f = s3f_common.build_model("s3f", (32, 32, 1), 3, fusion, 2, bn_momentum=BN)
    assert control.input_shape == s3f.input_shape
    assert type(control.get_layer("fusion")) is type(s3f.get_layer("fusion"))
    assert control.get_layer("head").kernel.shape == s3f.get_layer("head").kernel.shape
    spatial = {layer.name: layer.count_params() for layer in s3f.layers if "spatial" in layer.name}
    assert {n: control.get_layer(n).count_params() for n in spatial} == spatial
    # the second branch is spatial: no SpectralFilter anywhere
    assert not any(isinstance(layer, s3f_common.SpectralFilter) for layer in control.layers)
    keras.backend.clear_session()


def test_the_control_trains_a_step_and_round_trips_through_the_model_file_check(tmp_path, keras):
    import s3f_common
    from s3f_kit import modelfile as s3f_modelfile

    model = _build("Control_HAM10000", (24, 32))
    x = np.random.default_rng(35).random((4, 24, 32, 3)).astype(np.float32)
    before = [w.copy() for w in model.get_layer("control_readout").get_weights()]
    from s3f_kit import recipe as s3f_recipe

    s3f_recipe.compile_model(model)  # the builder returns it uncompiled
    history = model.fit(x, np.array([0, 1, 2, 3]), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = model.get_layer("control_readout").get_weights()
    assert not np.allclose(before[0], after[0])  # the readout learns
    path = tmp_path / "control.keras"
    model.save(path)
    s3f_modelfile.check_model_file(path)  # only Keras layers: accepted
    loaded = s3f_common.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    keras.backend.clear_session()


@pytest.mark.parametrize("name", ["Control_BRISC2025", "Control_BUSI"])
def test_a_saved_control_is_rebuilt_from_its_config(name, tmp_path, keras):
    """Another Keras version's file is rebuilt from the build arguments its config records:
    the control must be recognised as the control, with its SpectraNet variant."""
    import s3f_common

    model = _build(name, (32, 32), bn_momentum=0.9)
    model.save(tmp_path / "control.keras")
    with zipfile.ZipFile(tmp_path / "control.keras") as archive:
        args = s3f_common._build_args(json.loads(archive.read("config.json")))
    exp = CONTROLS[name]
    found = (args["architecture"], args["fusion"], args["spectranet"])
    assert found == ("control", exp.fusion, exp.spectranet)
    rebuilt = s3f_common.build_model(**args)
    with zipfile.ZipFile(tmp_path / "control.keras") as archive:
        rebuilt.load_weights(archive.extract("model.weights.h5", tmp_path))  # the same layout
    x = np.random.default_rng(36).random((2, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(
        rebuilt.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    keras.backend.clear_session()


# ---------------------------------------------------------------- config and sweep
def test_the_control_takes_the_fusion_and_spectranet_axes_and_names_its_variants():
    axes = s3f_config.grid_axes()
    assert "control" in axes["fusion"] and "control" in axes["spectranet"]
    assert "control" not in axes["modes"]  # no SpectralFilter to restrict
    assert s3f_config.run_subdir("Control_BUSI", {}) == "Control_BUSI/seed42"
    assert (
        s3f_config.run_subdir("Control_BUSI", {"fusion": "bilinear"})
        == "Control_BUSI/bilinear-sn2/seed42"
    )


def test_an_image_too_small_for_the_control_is_one_clear_sentence():
    with pytest.raises(ValueError, match=r"too small for Parameter-matched .* 16×16"):
        s3f_config.RunConfig(experiment="Control_BUSI", img_size=[12, 12]).resolved()


def test_the_sweep_plans_the_controls(tmp_path):
    jobs = s3f_sweep.plan_training(
        list(CONTROLS), True, None, {}, tmp_path, grid={"fusion": ["concat", "bilinear"]}
    )
    labels = {job.label for job in jobs}
    assert len(jobs) == 2 * len(CONTROLS)
    assert {"Control_BUSI/seed42", "Control_BUSI/bilinear-sn2/seed42"} <= labels
    assert {"Control_HAM10000/seed42", "Control_HAM10000/concat-sn1/seed42"} <= labels
    args = s3f_sweep.build_parser().parse_args(["--demo", "--controls"])
    assert args.controls


def test_each_control_has_a_generated_notebook_that_states_both_counts():
    from s3f_kit import notebooks as s3f_notebooks

    generated = s3f_notebooks.all_notebooks()
    for name, exp in CONTROLS.items():
        s3f = s3f_experiments.matched_s3f(name)
        assert f"{exp.params:,}" in generated[name] and f"{s3f.params:,}" in generated[name]
        assert f'EXPERIMENT = \\"{name}\\"' in generated[name]
        assert (s3f_notebooks.NOTEBOOK_DIR / f"{name}.ipynb").read_text() == generated[name]


def test_the_docs_table_of_counts_is_the_registrys():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "shortcuts.md").read_text()
    for name, exp in CONTROLS.items():
        s3f = s3f_experiments.matched_s3f(name)
        units = s3f_experiments.control_units(exp.info.image_size, exp.info.channels,
                                              exp.spectranet)  # fmt: skip
        change = 100 * (exp.params - s3f.params) / s3f.params
        row = (f"| {exp.dataset} | {s3f.fusion}, SN{s3f.spectranet} | {s3f.params:,} | "
               f"{exp.params:,} | {units} | {change:+.2f} % |").replace("-", "−")  # fmt: skip
        assert row in text, row


@pytest.mark.e2e
def test_the_sweep_runs_a_control_and_the_claims_pair_it(kernel_env, tmp_path):
    """A control notebook through papermill on synthetic data (the binary task: one sigmoid
    unit), beside its S³F-Net: both finish, and the claims table pairs them."""
    import pandas as pd

    tiny = {"epochs": 1, "img_size": [16, 16], "demo_count": 6, "batch_size": 8, "verbose": 2}
    names = ["S3F_Concat_ChestXRay", "Control_ChestXRay"]
    failures = s3f_sweep.run_sweep(names, True, None, tiny, tmp_path / "runs",
                                   results_dir=tmp_path / "results", html=False)  # fmt: skip
    assert failures == []
    metrics = json.loads((tmp_path / "runs/Control_ChestXRay/seed42/metrics.json").read_text())
    assert metrics["experiment"] == "Control_ChestXRay" and 0 <= metrics["accuracy"] <= 1
    claims = pd.read_csv(tmp_path / "results" / "claims.csv")
    row = claims[(claims["claim"] == "S³F-Net beats the parameter-matched spatial–spatial model")
                 & (claims["dataset"] == "ChestXRay")].iloc[0]  # fmt: skip
    assert row["n_pairs"] == 1 and row["worse"] == "Control_ChestXRay"
