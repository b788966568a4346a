"""Standard deep baselines (keras.applications) built without downloading anything, and FLOPs;
their registry entries, notebooks, run records, tables and claims row."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from s3f_kit import config as s3f_config
from s3f_kit import experiments as s3f_experiments
from s3f_kit import notebooks as s3f_notebooks
from s3f_kit.reports import claims as s3f_claims
from s3f_kit.sweep import sweep as s3f_sweep

REPO = Path(__file__).resolve().parents[1]
BACKBONES = ["ResNet50V2", "DenseNet121", "EfficientNetV2B0"]


@pytest.fixture(scope="module")
def baselines(keras):
    from s3f_kit.run import baselines as s3f_baselines

    return s3f_baselines


@pytest.mark.parametrize("name", BACKBONES)
def test_each_baseline_builds_offline_on_grayscale_and_saves(baselines, keras, name, tmp_path):
    import s3f_common

    model, used = baselines.build_baseline(name, (32, 40, 1), 2, weights="random")
    assert used == "random"
    images = np.random.default_rng(0).random((3, 32, 40, 1)).astype("float32")
    probs = model.predict(images, verbose=0)
    assert probs.shape == (3, 1) and np.all((probs >= 0) & (probs <= 1))  # the paper's sigmoid
    backbone = model.get_layer(name.lower()) if name != "EfficientNetV2B0" else None
    assert model.get_layer("gray_to_rgb").output.shape[-1] == 3
    if backbone is not None:
        assert model.count_params() == backbone.count_params() + backbone.output.shape[-1] + 1
    # the registry's TensorFlow-free count (the sweep's disk estimate) is the built model's
    assert (
        model.count_params() == s3f_experiments.get_experiment(f"Baseline_{name}_ChestXRay").params
    )
    flops = baselines.count_flops(model)
    assert flops > 0
    path = tmp_path / "baseline.keras"
    model.save(path)
    again = s3f_common.load_model(path)
    assert np.allclose(again.predict(images, verbose=0), probs, atol=1e-6)
    assert baselines.count_flops(again) == flops  # evaluate counts the loaded checkpoint


def test_a_multiclass_baseline_is_a_softmax_and_takes_the_runs_bn_momentum(baselines, keras):
    model, _ = baselines.build_baseline(
        "EfficientNetV2B0", (32, 32, 3), 4, weights="random", bn_momentum=0.9
    )
    probs = model.predict(np.random.default_rng(1).random((2, 32, 32, 3)), verbose=0)
    assert probs.shape == (2, 4) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    momenta = {
        layer.momentum
        for layer in model.get_layer("efficientnetv2-b0").layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }
    assert momenta == {0.9}


def test_imagenet_download_failure_falls_back_and_is_recorded(keras, monkeypatch, tmp_path):
    """keras' own download fails (as offline): the run builds from random weights and says so."""
    from keras.src.utils import file_utils

    from s3f_kit.run import training as s3f_training

    def no_network(*args, **kwargs):
        raise OSError("URL fetch failure: no network in this test")

    monkeypatch.setattr(file_utils, "get_file", no_network)  # what keras.applications calls
    monkeypatch.setattr(keras.utils, "get_file", no_network)
    monkeypatch.setenv("S3F_CACHE_DIR", str(tmp_path / "cache"))
    run = s3f_training.Run("Baseline_ResNet50V2_ChestXRay", output_dir=str(tmp_path), demo_count=4)
    assert run.weights == "imagenet" and run.img_size == [32, 43]  # demo 24×32, raised to 32
    data = run.load_data()
    model = run.build_model(data)
    assert run.weights_used == "random"
    assert model.output.shape[-1] == 1 and model.input.shape[1:] == (32, 43, 1)
    options = run.model_options(data)
    assert options["name"] == "ResNet50V2" and options["weights"] == "imagenet"


def test_flops_put_the_deep_baselines_above_the_papers_spatial_cnn(baselines, keras):
    import s3f_common

    spatial = s3f_common.build_model("spatial", (64, 64, 1), 3, bn_momentum=0.99)
    resnet, _ = baselines.build_baseline("ResNet50V2", (64, 64, 1), 3, weights="random")
    effnet, _ = baselines.build_baseline("EfficientNetV2B0", (64, 64, 1), 3, weights="random")
    assert baselines.count_flops(resnet) > baselines.count_flops(effnet) > 0
    assert baselines.count_flops(resnet) > baselines.count_flops(spatial) > 0
    assert resnet.count_params() > 15 * spatial.count_params()


def test_imagenet_weights_fall_back_to_random_and_say_so(baselines, monkeypatch):
    import keras

    real = keras.applications.DenseNet121

    def offline(weights=None, **options):
        if weights == "imagenet":
            raise Exception("URL fetch failure on https://storage.googleapis.com/…: no network")
        return real(weights=weights, **options)

    monkeypatch.setattr(keras.applications, "DenseNet121", offline)
    said = []
    model, used = baselines.build_baseline("DenseNet121", (32, 32, 3), 4, log=said.append)
    assert used == "random"
    assert "ImageNet weights could not be fetched (URL fetch failure" in said[0]
    assert model.output.shape[-1] == 4


def test_bad_arguments_are_clear_errors(baselines):
    with pytest.raises(ValueError, match="unknown baseline 'VGG16'; expected one of ResNet50V2"):
        baselines.build_baseline("VGG16", (64, 64, 1), 2)
    with pytest.raises(ValueError, match="at least 32×32 pixels"):
        baselines.build_baseline("ResNet50V2", (24, 32, 1), 2, weights="random")
    with pytest.raises(ValueError, match="weights must be one of"):
        baselines.build_baseline("ResNet50V2", (32, 32, 1), 2, weights="none")


def test_flops_of_a_hand_counted_model(baselines, keras):
    import s3f_common

    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 2·64·4·9·2 = 9,216
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)  # 2·64·4·9 = 4,608
    spectral = s3f_common.SpectralFilter(3)(inputs)  # 8·2·3·8·5 + FFTs of 5 channels
    x = keras.layers.Concatenate()([x, spectral])
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5)(x)  # 2·7·5 = 70
    model = keras.Model(inputs, outputs)
    fft = 5 * 2.5 * 64 * 6  # log2(64) = 6
    assert baselines.count_flops(model) == round(9216 + 4608 + 8 * 2 * 3 * 8 * 5 + fft + 70)


def test_flops_match_the_published_multiply_adds(baselines):
    # Published at 224×224: DenseNet-121 2.87 G multiply-adds, EfficientNetV2-B0 0.72 G
    for name, gmacs in (("DenseNet121", 2.87), ("EfficientNetV2B0", 0.72)):
        model, _ = baselines.build_baseline(name, (224, 224, 3), 1000, weights="random")
        assert baselines.count_flops(model) / 2e9 == pytest.approx(gmacs, rel=0.03), name


# --------------------------------------------------------------------------- registry, notebooks


def test_registry_has_twelve_baselines_beside_the_papers_twelve():
    found = s3f_experiments.BASELINE_EXPERIMENTS
    expected = {f"Baseline_{m}_{d}" for m in BACKBONES for d in s3f_experiments.DATASET_FACTS}
    assert set(found) == expected and len(found) == 12
    assert not set(found) & set(s3f_experiments.EXPERIMENTS)  # the paper's twelve stay twelve
    exp = s3f_experiments.get_experiment("Baseline_ResNet50V2_BUSI")
    assert (exp.architecture, exp.backbone, exp.dataset, exp.paper) == (
        "baseline",
        "ResNet50V2",
        "BUSI",
        None,
    )
    assert exp.params == 23_564_800 + 2048 * 3 + 3  # three classes: a softmax head
    assert s3f_experiments.paper_metrics("Baseline_ResNet50V2_BUSI") == {}
    with pytest.raises(ValueError, match="Baseline_<ResNet50V2|DenseNet121"):
        s3f_experiments.get_experiment("Baseline_VGG16_BUSI")


def test_demo_size_is_the_datasets_raised_to_the_backbones_minimum():
    for dataset, facts in s3f_experiments.DATASET_FACTS.items():
        paper_model = next(
            e.name for e in s3f_experiments.EXPERIMENTS.values() if e.dataset == dataset
        )
        demo = s3f_experiments.demo_image_size(paper_model)
        assert demo == list(facts.demo_image_size)
        raised = s3f_experiments.demo_image_size(f"Baseline_DenseNet121_{dataset}")
        assert min(raised) == max(32, min(demo))
        assert raised[0] / raised[1] == pytest.approx(demo[0] / demo[1], rel=0.02)
    with pytest.raises(ValueError, match="too small for DenseNet121"):
        s3f_config.RunConfig("Baseline_DenseNet121_BUSI", img_size=[24, 32]).resolved()


def test_weights_is_a_baseline_parameter_and_names_the_run_folder():
    config = s3f_config.RunConfig("Baseline_DenseNet121_HAM10000").resolved()
    assert config.weights == "imagenet"
    assert s3f_config.RunConfig("S3F_Bilinear_HAM10000").resolved().weights is None
    with pytest.raises(ValueError, match="weights must be one of 'imagenet', 'random'"):
        s3f_config.RunConfig("Baseline_DenseNet121_HAM10000", weights="none").resolved()
    assert s3f_config.run_subdir("Baseline_DenseNet121_HAM10000", {}) == (
        "Baseline_DenseNet121_HAM10000/seed42"
    )
    assert s3f_config.run_subdir("Baseline_DenseNet121_HAM10000", {"weights": "random"}) == (
        "Baseline_DenseNet121_HAM10000/random-init/seed42"
    )


def _parameters(name):
    notebook = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    return cell.source, notebook


def test_baseline_notebooks_come_from_the_template_with_weights():
    generated = s3f_notebooks.all_notebooks()
    assert set(s3f_experiments.BASELINE_EXPERIMENTS) <= set(generated)
    source, notebook = _parameters("Baseline_EfficientNetV2B0_BUSI")
    assert 'weights = "imagenet"' in source and "epochs = 200" in source
    for s3f_only in ("fusion =", "spectranet =", "channel_mixing =", "modes =", "architecture ="):
        assert s3f_only not in source
    model_cell = "\n".join(c.source for c in notebook.cells if "build_baseline" in c.source)
    assert "model, run.weights_used = s3f_baselines.build_baseline(**run.model_options(data))" in (
        model_cell
    )
    assert "weights =" not in _parameters("S3F_Concat_BUSI")[0]
    assert "weights =" not in _parameters("S3F_Custom")[0]


def test_sweep_lists_baselines_but_plans_them_only_when_asked(tmp_path):
    parser = s3f_sweep.build_parser()
    assert "--baselines" in parser.format_help()
    args = parser.parse_args(["--demo", "--only", "Baseline_ResNet50V2_BUSI"])
    assert args.only == ["Baseline_ResNet50V2_BUSI"] and not args.baselines
    jobs = s3f_sweep.plan_training(
        ["Baseline_ResNet50V2_BUSI", "S3F_Concat_BUSI"], True, None, {}, tmp_path,
        grid={"weights": ["imagenet", "random"], "fusion": ["concat"]},
    )  # fmt: skip
    assert sorted(j.label for j in jobs) == [
        "Baseline_ResNet50V2_BUSI/random-init/seed42",
        "Baseline_ResNet50V2_BUSI/seed42",
        "S3F_Concat_BUSI/seed42",
    ]
    baseline = next(j for j in jobs if j.label == "Baseline_ResNet50V2_BUSI/seed42")
    assert baseline.expected["weights"] == "imagenet" and baseline.expected["img_size"] == [32, 32]
    with pytest.raises(s3f_sweep.SweepError, match="weights is a parameter of the Baseline_"):
        s3f_sweep.plan_training(["S3F_Concat_BUSI"], True, None, {"weights": "random"}, tmp_path)


# --------------------------------------------------------------------------- records and claims

CLASSES = ["benign", "malignant", "normal"]


def _write_run(root, experiment, seed, correct_rate, rng, weights="random", n=240, **extra):
    folder = root / experiment / f"seed{seed}"
    folder.mkdir(parents=True)
    true = np.array(CLASSES)[np.arange(n) % 3]
    right = rng.random(n) < correct_rate
    predicted = np.where(right, true, np.array(CLASSES)[(np.arange(n) + 1) % 3])
    frame = pd.DataFrame({"file": [f"img{i}.png" for i in range(n)], "true_label": true,
                          "predicted_label": predicted})  # fmt: skip
    frame.to_csv(folder / "predictions.csv", index=False)
    matrix = pd.crosstab(pd.Categorical(true, CLASSES), pd.Categorical(predicted, CLASSES))
    record = {
        "experiment": experiment, "variant": "", "seed": seed, "protocol": "paper",
        "dataset": "BUSI", "accuracy": float(np.mean(right)), "weighted_f1": 0.5,
        "macro_f1": 0.5, "confusion_matrix": matrix.values.tolist(), "class_names": CLASSES,
        "params": s3f_experiments.get_experiment(experiment).params, "flops": 123_000_000,
        "weights_used": weights, "demo_data": True, "image_size": [32, 32],
        "architecture": s3f_experiments.get_experiment(experiment).architecture, **extra,
    }  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(record))
    return {**record, "run_dir": str(folder), "run_subdir": f"{experiment}/seed{seed}"}


def _busi_runs(root, s3f_rate, baseline_rates, seeds=3):
    rng = np.random.default_rng(11)
    runs = []
    for seed in range(42, 42 + seeds):
        runs.append(_write_run(root, "S3F_Concat_BUSI", seed, s3f_rate, rng))
        for backbone, rate in baseline_rates.items():
            runs.append(_write_run(root, f"Baseline_{backbone}_BUSI", seed, rate, rng))
    return runs


def _baseline_row(frame, dataset="BUSI"):
    rows = frame[(frame["claim"] == s3f_claims.BASELINE_CLAIM) & (frame["dataset"] == dataset)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_claims_compare_s3f_with_the_strongest_baseline_run(tmp_path):
    runs = _busi_runs(tmp_path, 0.9, {"ResNet50V2": 0.62, "DenseNet121": 0.72}, seeds=5)
    frame = s3f_claims.claims_table(runs)
    row = _baseline_row(frame)
    assert row["worse"] == "Baseline_DenseNet121_BUSI"  # the stronger of the two
    assert row["better"] == "S3F_Concat_BUSI" and row["n_seeds"] == 5
    assert 10 < row["mean_delta"] < 26 and row["verdict"] == "supported"
    assert np.isnan(row["paper_delta"])  # the paper printed no baseline
    # one Bonferroni family with the other exploratory verdict rows (docs/analysis-plan.md):
    # none is run, so the family here is the baseline row alone; add a tested exploratory
    # claim (S³F-Net vs SpectraNet alone) and m becomes 2
    assert row["family"] == "exploratory"
    assert row["family_size"] == 1 and row["p_bonferroni"] == pytest.approx(row["p"])
    rng = np.random.default_rng(3)
    other = [_write_run(tmp_path, "SpectraNet_BUSI", seed, 0.89, rng) for seed in range(42, 47)]
    both = s3f_claims.claims_table([*runs, *other])
    tested = both[(both["role"] == "verdict") & both["p"].notna()]
    assert len(tested) == 2 and set(tested["family_size"]) == {2}
    assert tested["p_bonferroni"].tolist() == pytest.approx(list(np.minimum(1, 2 * tested["p"])))
    wider = _baseline_row(both)  # the same resamples read at 1 − 0.05/2
    assert wider["ci_level"] > row["ci_level"]
    assert wider["ci_low"] <= row["ci_low"] and wider["ci_high"] >= row["ci_high"]
    (tmp_path / "results").mkdir()
    lines = "\n".join(s3f_claims.write_claims(runs, tmp_path / "results"))
    assert "S³F-Net beats standard deep CNNs (strongest: Baseline_DenseNet121_BUSI)" in lines


def test_claims_without_baseline_runs_are_not_run_and_unusable_ones_listed(tmp_path):
    runs = _busi_runs(tmp_path, 0.9, {})
    frame = s3f_claims.claims_table(runs)
    for dataset in s3f_claims.DATASET_ORDER:
        row = _baseline_row(frame, dataset)
        assert row["verdict"] == "not run" and row["worse"] == f"Baseline_*_{dataset}"
    broken = _write_run(tmp_path, "Baseline_ResNet50V2_BUSI", 42, 0.7, np.random.default_rng(5))
    (Path(broken["run_dir"]) / "predictions.csv").unlink()
    row = _baseline_row(s3f_claims.claims_table([*runs, broken]))
    assert row["verdict"] == "runs unusable"
    assert "Baseline_ResNet50V2_BUSI/seed42: predictions.csv missing" in row["left_out"]


def test_tables_show_params_flops_and_weights_of_baseline_rows(tmp_path):
    from s3f_kit.reports import results_tables as s3f_results_tables

    rng = np.random.default_rng(2)
    runs = [
        _write_run(tmp_path, "Baseline_EfficientNetV2B0_BUSI", 42, 0.7, rng, weights="imagenet"),
        _write_run(tmp_path, "Baseline_EfficientNetV2B0_BUSI", 43, 0.7, rng, weights="random"),
        _write_run(tmp_path, "S3F_Concat_BUSI", 42, 0.8, rng),
    ]
    summary = s3f_results_tables.summary_frame(runs).set_index("experiment")
    baseline = summary.loc["Baseline_EfficientNetV2B0_BUSI"]
    assert baseline["weights"] == "imagenet 1/2, random 1/2"
    assert baseline["flops"] == 123_000_000 and baseline["params"] == 5_919_312 + 1280 * 3 + 3
    assert baseline["model"] == "EfficientNetV2B0 (keras.applications)"
    assert np.isnan(baseline["paper_accuracy_%"])
    assert summary.loc["S3F_Concat_BUSI", "weights"] == "random"


# --------------------------------------------------------------------------- end to end


@pytest.mark.e2e
def test_baseline_notebook_runs_through_papermill_and_reaches_tables_and_claims(
    kernel_env, tmp_path
):
    """The mission command's form on demo data: one epoch, ImageNet asked for, no network here
    (the fallback), then the tables and the claims row pick the run up."""
    from s3f_kit.reports import results as s3f_results

    runs = tmp_path / "runs"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "papermill", "notebooks/Baseline_EfficientNetV2B0_BUSI.ipynb",
         str(tmp_path / "out.ipynb"), "-p", "epochs", "1", "-p", "output_dir", str(runs)],
        cwd=REPO, check=True, capture_output=True, text=True,
    )  # fmt: skip
    print(f"papermill: {time.perf_counter() - started:.0f} s")
    run_dir = runs / "Baseline_EfficientNetV2B0_BUSI" / "seed42"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["weights_used"] == "random"  # no internet: the fallback, recorded
    assert metrics["architecture"] == "baseline" and metrics["image_size"] == [32, 32]
    assert metrics["params"] == s3f_experiments.get_experiment(metrics["experiment"]).params
    assert metrics["flops"] > 1e7 and metrics["epochs_run"] == 1
    # an S³F-Net run on the same test images (its predictions made up) to pair with
    fake = runs / "S3F_Concat_BUSI" / "seed42"
    fake.mkdir(parents=True)
    shutil.copy(run_dir / "predictions.csv", fake / "predictions.csv")
    record = {**metrics, "experiment": "S3F_Concat_BUSI", "architecture": "s3f",
              "weights_used": "random", "run_settings": {}}  # fmt: skip
    (fake / "metrics.json").write_text(json.dumps(record))
    frame = s3f_results.build_results(runs, tmp_path / "results")
    assert frame.set_index("experiment").loc["Baseline_EfficientNetV2B0_BUSI", "weights"] == (
        "random"
    )
    readme = (tmp_path / "results" / "README.md").read_text()
    assert "EfficientNetV2B0 (keras.applications)" in readme and "GFLOPs" in readme
    claims = pd.read_csv(tmp_path / "results" / "claims.csv")
    row = _baseline_row(claims)
    assert row["worse"] == "Baseline_EfficientNetV2B0_BUSI" and row["n_seeds"] == 1
