"""The fusion registry (s3f_fusions): a third fusion, registered in one place, reaches every
part of the kit that reads fusions — the builder, the model-file check and the loader, FLOP
counting, explainability, the run parameter and the claims — and unregistered it is gone."""

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import s3f_common
from s3f_kit import config as s3f_config
from s3f_kit import experiments as s3f_experiments
from s3f_kit import flops as s3f_flops
from s3f_kit import fusions as s3f_fusions
from s3f_kit import modelfile as s3f_modelfile
from s3f_kit.apply import explain as s3f_explain
from s3f_kit.reports import claims as s3f_claims
from tests.test_claims import _write_run


# ---------------------------------------------------------------- the worked example
# docs/extending.md ("A new fusion") shows this code: keep the two the same.
class GatedSum(keras.layers.Layer):
    """Both branch vectors projected to `units` by Dense layers, mixed by a learned sigmoid
    gate g (from both vectors): g · spatial + (1 − g) · spectral."""

    def __init__(self, units=64, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.project_spatial = keras.layers.Dense(units)
        self.project_spectral = keras.layers.Dense(units)
        self.gate = keras.layers.Dense(units, activation="sigmoid")

    def build(self, input_shape):
        (_, spatial), (_, spectral) = input_shape
        self.project_spatial.build((None, spatial))
        self.project_spectral.build((None, spectral))
        self.gate.build((None, spatial + spectral))

    def call(self, inputs):
        spatial, spectral = inputs
        gate = self.gate(keras.ops.concatenate([spatial, spectral], axis=-1))
        return gate * self.project_spatial(spatial) + (1 - gate) * self.project_spectral(spectral)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def gated_sum_flops(layer):
    """The three Dense layers' multiply-adds, two FLOPs each (the elementwise mixing is left
    out, as activations are)."""
    spatial, spectral = (int(tensor.shape[-1]) for tensor in layer.input)
    projections, gate = spatial + spectral, spatial + spectral  # inputs each Dense reads
    return 2.0 * layer.units * (projections + gate)


GATED_SUM = s3f_fusions.Fusion("gated", "gated sum", GatedSum, gated_sum_flops)
# ---------------------------------------------------------------- end of the worked example


def _registered_state():
    return (
        tuple(s3f_experiments.FUSIONS),
        s3f_modelfile.kit_classes(),
        set(s3f_common.custom_objects()),
        [claim.text for claim in s3f_claims.paper_claims()],
    )


@pytest.fixture
def gated_sum(keras):
    before = _registered_state()
    s3f_fusions.register(GATED_SUM)  # the one place the new fusion is registered
    try:
        yield GATED_SUM
    finally:
        s3f_fusions.unregister(GATED_SUM.name)
    assert _registered_state() == before  # nothing leaks into other tests


SHAPE, CLASSES, UNITS = (16, 16, 1), 3, 64
BN = s3f_experiments.PAPER_BN_MOMENTUM


def _images(count=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((count, *SHAPE), dtype=np.float32), rng.integers(0, CLASSES, count)


@pytest.fixture
def gated_model_file(gated_sum, tmp_path):
    """A gated-sum S³F-Net trained one step and saved: (model, path)."""
    model = s3f_common.build_model(
        "s3f", SHAPE, CLASSES, "gated", 1, bn_momentum=BN, name="gated_s3f"
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    gate = model.get_layer("fusion").gate.kernel
    before = np.array(gate)
    model.train_on_batch(*_images())
    assert not np.allclose(np.array(gate), before)  # the gate learns
    path = tmp_path / "gated.keras"
    model.save(path)
    return model, path


def test_a_registered_fusion_builds_trains_saves_and_loads_through_the_check(gated_model_file):
    model, path = gated_model_file
    fusion = model.get_layer("fusion")
    assert isinstance(fusion, GatedSum) and fusion.output.shape[-1] == UNITS
    assert model.get_layer("head").input.shape[-1] == UNITS
    config = s3f_modelfile.check_model_file(path)  # the kit's allow-list takes it
    assert s3f_common._build_args(config)["fusion"] == "gated"  # the other-Keras rebuild too
    loaded = s3f_common.load_model(path, compile=False)
    assert isinstance(loaded.get_layer("fusion"), GatedSum)
    images, _ = _images(seed=1)
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               model.predict(images, verbose=0), rtol=1e-5)  # fmt: skip


def test_the_model_file_check_still_refuses_unknown_and_unregistered_layers(
    gated_model_file, tmp_path
):
    _, path = gated_model_file
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    fusion = next(layer for layer in config["config"]["layers"] if layer["name"] == "fusion")
    for changed in ({"class_name": "GatedSumX", "registered_name": "GatedSumX"},
                    {"registered_name": "evil>GatedSum"}):  # fmt: skip
        hostile = tmp_path / "hostile.keras"
        with zipfile.ZipFile(hostile, "w") as archive:
            archive.writestr("config.json", json.dumps({**config, "config": {
                **config["config"], "layers": [{**fusion, **changed}]}}))  # fmt: skip
        with pytest.raises(s3f_modelfile.UnsafeModelFile, match="refused to load"):
            s3f_common.load_model(hostile)
    s3f_fusions.unregister("gated")
    try:
        with pytest.raises(s3f_modelfile.UnsafeModelFile, match="class_name 'GatedSum'"):
            s3f_common.load_model(path)
    finally:
        s3f_fusions.register(GATED_SUM)


def test_flops_count_the_new_fusion_layer_by_its_rule(gated_sum):
    gated = s3f_common.build_model("s3f", SHAPE, CLASSES, "gated", 1, bn_momentum=BN)
    concat = s3f_common.build_model("s3f", SHAPE, CLASSES, "concat", 1, bn_momentum=BN)
    joined = 512 + 4  # the spatial and spectral vectors' widths
    # counted by hand: two projections and a gate on both vectors, two FLOPs per multiply-add
    fusion = 2 * (512 * UNITS + 4 * UNITS + joined * UNITS)
    assert s3f_flops.layer_flops(gated.get_layer("fusion")) == fusion
    head = 2 * CLASSES * (UNITS - joined)  # the head reads 64 numbers instead of 516
    assert s3f_flops.count_flops(gated) - s3f_flops.count_flops(concat) == fusion + head > 0


def test_the_new_fusion_is_explained(gated_model_file):
    model, path = gated_model_file
    loaded = s3f_common.load_model(path, compile=False)
    assert s3f_explain.fusion_kind(loaded) == "gated"
    layer, spatial, spectral = s3f_explain.fusion_branches(loaded)
    assert layer.name == "fusion" and (spatial.shape[-1], spectral.shape[-1]) == (512, 4)
    images, _ = _images(seed=2)
    scores = s3f_explain.contribution_scores(*s3f_explain.branch_vectors(loaded, images))
    assert len(scores) == len(images)
    np.testing.assert_allclose(scores["l2_spatial_%"] + scores["l2_spectral_%"], 100)
    assert scores.notna().all().all()


def test_the_run_parameter_and_the_claims_take_the_new_fusion(gated_sum, tmp_path):
    run = s3f_config.RunConfig(experiment="S3F_Concat_BUSI", fusion="gated").resolved()
    assert run.fusion == "gated"
    exp = s3f_experiments.EXPERIMENTS["S3F_Concat_BUSI"]
    gated = s3f_config.variant_name(exp.name, {"fusion": "gated"})
    bilinear = s3f_config.variant_name(exp.name, {"fusion": "bilinear"})
    rng = np.random.default_rng(3)
    runs = []
    for seed in range(42, 47):
        runs.append(_write_run(tmp_path, exp.name, "", seed, 0.85, rng))
        runs.append(_write_run(tmp_path, exp.name, gated, seed, 0.70, rng))
    frame = s3f_claims.claims_table(runs)
    busi = frame[frame["dataset"] == "BUSI"].set_index("claim")
    # the paper's fusion against every other registered one, not the first other only
    row = busi.loc["concatenation beats gated sum"]
    assert row["worse"] == f"{exp.name}/{gated}" and row["n_seeds"] == 5
    assert row["verdict"] == "supported"
    assert busi.loc["concatenation beats bilinear fusion", "worse"] == f"{exp.name}/{bilinear}"
    assert busi.loc["concatenation beats bilinear fusion", "verdict"] == "not run"


def test_unregistering_restores_the_paper_fusions_only(gated_sum):
    claimed = [claim.text for claim in s3f_claims.paper_claims()]
    gated_rows = [text for text in claimed if text.endswith(" beats gated sum")]
    assert len(gated_rows) == len(s3f_claims.DATASET_ORDER)  # one per dataset
    s3f_fusions.unregister("gated")
    try:
        assert tuple(s3f_experiments.FUSIONS) == ("concat", "bilinear")
        with pytest.raises(ValueError, match="fusion must be one of 'concat', 'bilinear'"):
            s3f_common.build_model("s3f", SHAPE, CLASSES, "gated", 1, bn_momentum=BN)
        with pytest.raises(ValueError, match="fusion must be one of"):
            s3f_config.RunConfig(experiment="S3F_Concat_BUSI", fusion="gated").resolved()
        assert "GatedSum" not in s3f_modelfile.kit_classes() | set(s3f_common.custom_objects())
        left = [claim.text for claim in s3f_claims.paper_claims()]
        assert left == [text for text in claimed if text not in gated_rows]
    finally:
        s3f_fusions.register(GATED_SUM)


def test_registration_refuses_what_would_make_runs_or_files_ambiguous(gated_sum):
    with pytest.raises(ValueError, match="already registered"):
        s3f_fusions.register(GATED_SUM)
    with pytest.raises(ValueError, match="layer class GatedSum is already fusion 'gated'"):
        s3f_fusions.register(s3f_fusions.Fusion("other", "other", GatedSum, gated_sum_flops))
    with pytest.raises(ValueError, match="give the layer class itself"):
        s3f_fusions.register(s3f_fusions.Fusion("named", "named", "GatedSum", gated_sum_flops))
    with pytest.raises(ValueError, match="one of the paper's"):
        s3f_fusions.unregister("bilinear")


def test_the_paper_fusions_keep_their_layers_and_flop_rules(keras):
    """The registry builds the paper's models as before: a Concatenate of 516 numbers (no
    FLOPs) and a BilinearFusion of 2048 (one multiply-add per product)."""
    paper = (("concat", keras.layers.Concatenate, 516, 0),
             ("bilinear", s3f_common.BilinearFusion, 2048, 2 * 2048))  # fmt: skip
    for name, kind, width, flops in paper:
        model = s3f_common.build_model("s3f", SHAPE, CLASSES, name, 1, bn_momentum=BN)
        layer = model.get_layer("fusion")
        assert type(layer) is kind and layer.output.shape[-1] == width
        assert s3f_flops.layer_flops(layer) == flops


def test_the_worked_example_in_the_docs_is_this_files():
    page = (Path(__file__).resolve().parents[1] / "docs" / "extending.md").read_text("utf-8")
    section = page[page.index("\n## A new fusion\n") :]
    shown = section[section.index("```python\n") + len("```python\n") :]
    shown = shown[: shown.index("```")]
    source = Path(__file__).read_text("utf-8")
    example = source[source.index("class GatedSum(") : source.index("# " + "-" * 64 + " end")]
    assert example.strip() in shown and "s3f_fusions.register(GATED_SUM)" in section
