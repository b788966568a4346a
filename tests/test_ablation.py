"""Which branch an S³F-Net's decisions depend on (issue 34): permutation ablation of each
branch's vectors and a linear probe of each, on hand-built heads, on models whose one branch is
made constant (kit and paper-format files, both fusions), on a demo-trained run and on a
release evaluated as Evaluate_Pretrained does."""

import json

import numpy as np
import pytest

import s3f_common
from s3f_kit.experiments import PAPER_BN_MOMENTUM as BN
from s3f_kit.run import ablation as s3f_ablation
from tests import paper_format
from tests.helpers import loopback_http


# ---------------------------------------------------------------- the ablation on given vectors
def _sign_head(spatial, spectral):
    """A sigmoid head that reads the spatial vector's first entry only."""
    return 1 / (1 + np.exp(-10 * spatial[:, :1]))


def test_only_the_branch_the_head_reads_loses_accuracy_when_permuted(keras):
    rng = np.random.default_rng(0)
    spatial, spectral = rng.standard_normal((200, 8)), rng.standard_normal((200, 4))
    labels = (spatial[:, 0] > 0).astype(int)  # the spatial vector carries the label
    found = s3f_ablation.permutation_ablation(
        _sign_head, {"spatial": spatial, "spectral": spectral}, labels, binary=True,
        resamples=500,
    )  # fmt: skip
    assert found["intact"]["accuracy"] == 1.0 and found["permutations"] >= 20
    spatial, spectral = found["spatial"], found["spectral"]
    # a shuffled sign is right half the time: the drop is about 0.5, and its interval says so
    assert 0.35 < spatial["accuracy_drop"] < 0.65
    assert spatial["accuracy_drop_ci"][0] > 0.3
    assert spatial["roc_auc_drop"] > 0.3 and spatial["macro_f1_drop"] > 0.3
    for metric in ("accuracy", "macro_f1"):  # the ignored branch costs nothing
        assert spectral[f"{metric}_drop"] == 0.0 and spectral[f"{metric}_drop_ci"] == [0.0, 0.0]
    assert spectral["roc_auc_drop"] == 0.0 and "roc_auc_drop_ci" not in spectral
    low, high = spatial["permuted_accuracy_range"]
    assert low <= 1 - spatial["accuracy_drop"] <= high < 0.7
    assert spatial["dim"] == 8


def test_the_record_is_json_safe_and_its_size_does_not_grow_with_images_or_permutations(keras):
    sizes = []
    for images, permutations in ((20, 20), (400, 40)):
        rng = np.random.default_rng(1)
        vectors = {"spatial": rng.standard_normal((images, 3)), "spectral": np.ones((images, 2))}
        labels = np.arange(images) % 2
        labels[0] = 1  # AUC stays defined; the record holds nulls, never NaN, where it is not
        found = s3f_ablation.permutation_ablation(
            _sign_head, vectors, labels, True, permutations=permutations, resamples=250
        )
        text = json.dumps(found, allow_nan=False)
        sizes.append(len(text))
    assert abs(sizes[0] - sizes[1]) < 100  # the same keys; only the digits differ


def test_the_ablation_refuses_vectors_that_do_not_match_the_labels(keras):
    with pytest.raises(ValueError, match="need ≥ 2 test images with one vector of each branch"):
        s3f_ablation.permutation_ablation(
            _sign_head, {"spatial": np.ones((3, 2)), "spectral": np.ones((2, 2))}, [0, 1, 0], True
        )


def test_a_probe_of_a_constant_branch_scores_the_majority_and_one_of_the_label_near_one():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 300)
    informative = np.eye(3)[labels] + 0.1 * rng.standard_normal((300, 3))
    constant = np.ones((300, 4))
    train, test = slice(0, 200), slice(200, 300)
    good = s3f_ablation.linear_probe(
        informative[train], labels[train], informative[test], labels[test], 3
    )
    flat = s3f_ablation.linear_probe(
        constant[train], labels[train], constant[test], labels[test], 3
    )
    assert good["probe_accuracy"] > 0.95 and good["probe_roc_auc"] > 0.95
    majority = np.bincount(labels[train]).argmax()
    assert flat["probe_accuracy"] == pytest.approx(np.mean(labels[test] == majority))
    low, high = flat["probe_accuracy_ci"]
    assert low < flat["probe_accuracy"] < high
    one_class = s3f_ablation.linear_probe(constant, np.zeros(300, int), constant, labels, 3)
    assert "one class" in one_class["probe_status"]


def test_probes_fit_on_every_training_image_or_a_stratified_sample(monkeypatch):
    monkeypatch.setattr(s3f_ablation, "PROBE_TRAIN_IMAGES", 100)
    labels = np.repeat([0, 1, 2], [300, 60, 40])
    assert len(s3f_ablation.probe_rows(labels[:90])) == 90  # fewer than the limit: all
    rows = s3f_ablation.probe_rows(labels)
    assert len(rows) == 100 == len(set(rows)) and np.all(np.diff(rows) > 0)
    assert np.bincount(labels[rows]).tolist() == [75, 15, 10]  # the split's class shares
    single = np.r_[labels, 3]  # a class of one image cannot be stratified: still 100 rows
    assert len(s3f_ablation.probe_rows(single)) == 100


# ---------------------------------------------------------------- models with one silent branch
CONSTANT_LAYER = {"spectral": "funnel_bn4", "spatial": "spatial_dense_bn"}  # the branch's last BN


def _one_branch_model(keras, fusion, silent, images):
    """A random S³F-Net whose `silent` branch gives every image the same vector (its last
    BatchNorm: γ = 0, β = 1), with a head spread so that it predicts every class; the labels
    are its own predictions, so the other branch carries all of them."""
    model = s3f_common.build_model("s3f", images.shape[1:], 3, fusion, 1, bn_momentum=BN)
    bn = model.get_layer(CONSTANT_LAYER[silent])
    gamma, beta, mean, variance = bn.get_weights()
    bn.set_weights([np.zeros_like(gamma), np.ones_like(beta), mean, variance])
    head = model.get_layer("head")
    fused = keras.Model(model.inputs[0], head.input).predict(images, verbose=0)
    kernel = np.random.default_rng(3).standard_normal(head.get_weights()[0].shape) * 20
    logits = fused @ kernel
    head.set_weights([kernel.astype("float32"), -np.median(logits, axis=0).astype("float32")])
    return model


@pytest.mark.parametrize("fusion", ["concat", "bilinear"])
@pytest.mark.parametrize("silent", ["spectral", "spatial"])
def test_a_model_whose_one_branch_is_constant_drops_only_with_the_other(
    fusion, silent, keras, tmp_path
):
    rng = np.random.default_rng(4)
    # images of different brightness, texture and stripes: both towers see them differ
    images = (
        rng.random((60, 24, 24, 1)) * rng.random((60, 1, 1, 1))
        + np.sin(np.arange(24)[None, None, :, None] * rng.random((60, 1, 1, 1)) * 3) * 0.5
    ).astype("float32")
    model = _one_branch_model(keras, fusion, silent, images)
    path = tmp_path / "paper.keras"
    paper_format.save_in_paper_format(model, path)  # as the paper's own code saved its models
    loaded = s3f_common.load_model(path)
    labels = loaded.predict(images, verbose=0).argmax(axis=1)
    assert len(np.unique(labels)) >= 2, "the test needs a model that tells images apart"
    spatial, spectral = s3f_ablation.branch_vectors(loaded, images)
    head = s3f_ablation.fusion_head(loaded)
    np.testing.assert_allclose(  # the head on the branch vectors is the whole model
        head(spatial, spectral), loaded.predict(images, verbose=0), atol=1e-5
    )
    found = s3f_ablation.permutation_ablation(
        head, {"spatial": spatial, "spectral": spectral}, labels, False, resamples=250
    )
    speaking = "spatial" if silent == "spectral" else "spectral"
    assert found["intact"]["accuracy"] == 1.0
    assert found[silent]["accuracy_drop"] == 0.0 and found[silent]["accuracy_drop_ci"][1] == 0.0
    assert found[speaking]["accuracy_drop"] > 0.2 and found[speaking]["accuracy_drop_ci"][0] > 0
    assert found["spatial"]["dim"] == 512 and found["spectral"]["dim"] == 4


def test_a_model_without_two_fused_branches_gets_no_ablation(keras):
    model = s3f_common.build_model("spatial", (24, 24, 1), 3, bn_momentum=BN)
    assert s3f_ablation.ablation(model, data=None, batch_size=8) is None


# ---------------------------------------------------------------- a run and a release
@pytest.mark.e2e
def test_a_demo_run_records_and_prints_its_ablation(
    keras, kernel_env, tmp_path, capsys, monkeypatch
):
    from s3f_kit.run import training as s3f_training

    run = s3f_training.Run(
        "S3F_Concat_BUSI", output_dir=str(tmp_path), img_size=[16, 16], demo_count=6,
        batch_size=8, verbose=0, epochs=2,
    )  # fmt: skip
    data = run.load_data()
    run.train(run.build_model(data), data)
    fewer = len(data.splits["train"]) - 3  # the probes fit on a sample of the training images
    monkeypatch.setattr(s3f_ablation, "PROBE_TRAIN_IMAGES", fewer)
    monkeypatch.setattr(s3f_ablation, "READ_IMAGES", 4)  # read in several pieces
    run.evaluate(data)
    saved = json.loads((run.run_dir / "metrics.json").read_text())
    found = saved["ablation"]
    assert found["intact"]["accuracy"] == pytest.approx(saved["accuracy"])  # the same model
    assert found["test_images"] == len(data.splits["test"].files)
    assert found["train_images"] == fewer
    for branch in ("spatial", "spectral"):
        assert {"dim", "accuracy_drop", "accuracy_drop_ci", "probe_accuracy"} <= set(found[branch])
        assert 0 <= found[branch]["probe_accuracy"] <= 1
    printed = capsys.readouterr().out
    assert "Branch ablation (20 permutations" in printed and "linear probe accuracy" in printed


@pytest.mark.e2e
def test_a_paper_format_release_gets_its_ablation_and_clean_test_accuracy(
    keras, kernel_env, tmp_path, monkeypatch
):
    from s3f_kit import releases as s3f_releases
    from s3f_kit.releases import Release
    from s3f_kit.run import evaluation as s3f_evaluation

    model = s3f_common.build_model("s3f", (24, 24, 1), 4, "bilinear", 1, bn_momentum=BN)
    served = tmp_path / "served"
    served.mkdir()
    paper_format.save_in_paper_format(model, served / "Tiny_S3F-Net.keras")
    release = Release("Tiny_S3F-Net.keras", "s3f", "bilinear", 1, "BRISC2025", (24, 24, 1), 4,
                      model.count_params())  # fmt: skip
    monkeypatch.setitem(s3f_releases.RELEASES, "tiny", release)

    def respond(path):
        file = served / path.lstrip("/")
        return file.read_bytes() if file.is_file() else None

    with loopback_http(respond) as base:
        result = s3f_evaluation.evaluate_pretrained(
            "tiny", output_dir=str(tmp_path / "out"), batch_size=8, base_url=base, demo_count=4
        )
    saved = json.loads((tmp_path / "out/tiny/metrics.json").read_text())
    assert saved["ablation"] == json.loads(json.dumps(result["ablation"]))
    assert saved["ablation"]["intact"]["accuracy"] == pytest.approx(saved["accuracy"])
    assert saved["clean_test"]["images"] + saved["leaked_test_images"] >= 1


# ---------------------------------------------------------------- s3f-results
def _record(seed: int, flip: float) -> dict:
    """An `ablation` record made by the kit's own functions: a head that reads the spatial
    vector, on labels of which a share `flip` disagrees with it."""
    rng = np.random.default_rng(seed)
    vectors = {"spatial": rng.standard_normal((80, 6)), "spectral": rng.standard_normal((80, 4))}
    labels = (vectors["spatial"][:, 0] > 0).astype(int)
    labels[: int(flip * 80)] ^= 1
    found = s3f_ablation.permutation_ablation(_sign_head, vectors, labels, True, resamples=250)
    for branch in ("spatial", "spectral"):
        found[branch] |= s3f_ablation.linear_probe(
            vectors[branch], labels, vectors[branch], labels, 2
        )
    found.update(majority_accuracy=0.5, train_images=80, seconds=0.1)
    return found


def test_results_write_the_ablation_table_beside_the_contribution_shares(tmp_path):
    import pandas as pd

    from s3f_kit.reports import results as s3f_results
    from tests.test_sweep import _fake_run

    runs = tmp_path / "runs"
    records = {seed: _record(seed, flip) for seed, flip in ((42, 0.1), (43, 0.2))}
    for seed, record in records.items():
        _fake_run(runs, "S3F_Concat_BUSI", seed, record["intact"]["accuracy"], ablation=record)
    single = _record(7, 0.0)
    _fake_run(runs, "S3F_Concat_ChestXRay", 42, single["intact"]["accuracy"], ablation=single)
    _fake_run(runs, "Spatial_BUSI", 42, 0.7)  # no two branches: no ablation, no row
    s3f_results.build_results(runs, tmp_path / "results")
    table = pd.read_csv(tmp_path / "results" / "ablation.csv").set_index("experiment")
    assert sorted(table.index) == ["S3F_Concat_BUSI", "S3F_Concat_ChestXRay"]
    busi = table.loc["S3F_Concat_BUSI"]
    drops = [r["spatial"]["accuracy_drop"] for r in records.values()]
    assert busi["n_runs"] == 2
    assert busi["spatial_accuracy_drop"] == pytest.approx(np.mean(drops), abs=1e-6)
    assert busi["spatial_accuracy_drop_sd"] == pytest.approx(np.std(drops, ddof=1), abs=1e-6)
    assert busi["spectral_accuracy_drop"] == 0
    chest = table.loc["S3F_Concat_ChestXRay"]
    own = dict(zip(("ci_low", "ci_high"), single["spatial"]["accuracy_drop_ci"], strict=True))
    own["value"] = single["spatial"]["accuracy_drop"]
    assert (chest["spatial_accuracy_drop_ci_low"], chest["spatial_accuracy_drop_ci_high"]) == (
        pytest.approx(own["ci_low"], abs=1e-6),
        pytest.approx(own["ci_high"], abs=1e-6),
    )
    readme = (tmp_path / "results" / "README.md").read_text()
    section = readme[readme.index("## Which branch the decisions depend on") :]
    row = next(line for line in section.splitlines() if "| ChestXRay |" in line)
    assert f"{100 * own['value']:+.1f} [{100 * own['ci_low']:+.1f}, " in row
    assert readme.index("## Details") < readme.index("## Which branch") < readme.index("## Files")
