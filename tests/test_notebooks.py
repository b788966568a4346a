"""Notebooks, the papermill sweep and the results tables (issue: notebooks, sweep, results)."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from s3f_kit import config as s3f_config
from s3f_kit import experiments as s3f_experiments
from s3f_kit.reports import results as s3f_results
from s3f_kit.run import notebooks as s3f_notebooks
from s3f_kit.sweep import sweep as s3f_sweep

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TINY = {"epochs": 1, "img_size": [16, 16], "demo_count": 6, "batch_size": 8, "verbose": 2}
# Every notebook parameter of a paper experiment, as RunConfig declares them (S3F_Custom adds two,
# the Baseline_* notebooks weights).
REQUIRED = {
    f.name
    for f in s3f_config.parameters()
    if not f.metadata["custom_only"] and not f.metadata["baseline_only"]
}


def _parameters_cells(path):
    cells = nbformat.read(path, as_version=4).cells
    return [c for c in cells if "parameters" in c.metadata.get("tags", [])]


def test_notebooks_are_exactly_what_the_generator_writes():
    generated = s3f_notebooks.all_notebooks()
    assert set(generated) >= set(s3f_experiments.EXPERIMENTS)
    assert {p.stem for p in NOTEBOOKS} == set(generated)
    for name, text in generated.items():
        committed = (REPO / "notebooks" / f"{name}.ipynb").read_text()
        assert committed == text, f"{name}: run python -m s3f_kit.run.notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_of_plain_assignments_and_no_outputs(path):
    cells = nbformat.read(path, as_version=4).cells
    assert all(
        not c.get("outputs") and not c.get("execution_count")
        for c in cells
        if c.cell_type == "code"
    ), "commit notebooks without outputs"
    tagged = _parameters_cells(path)
    assert len(tagged) == 1
    for node in ast.parse(tagged[0].source).body:
        assert isinstance(node, ast.Assign), "the parameters cell only assigns values"
        ast.literal_eval(node.value)


def _parameter_values(name):
    cell = _parameters_cells(REPO / "notebooks" / f"{name}.ipynb")[0]
    return {
        node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(cell.source).body
    }


@pytest.mark.parametrize("name", list(s3f_experiments.EXPERIMENTS))
def test_experiment_notebooks_default_to_the_papers_settings(name):
    values = _parameter_values(name)
    assert set(values) == REQUIRED | {"EXPERIMENT"}
    exp = s3f_experiments.EXPERIMENTS[name]
    assert values["epochs"] == exp.recipe.epochs
    assert values["f1_patience"] == exp.recipe.f1_patience
    assert values["lr_patience"] == exp.recipe.lr_patience
    assert (values["fusion"], values["spectranet"]) == (exp.fusion, exp.spectranet)
    assert values["batch_size"] == 16 and values["learning_rate"] == 3e-4
    assert values["img_size"] is None and values["protocol"] == "paper"
    assert values["bn_momentum"] is None  # Keras' default, the paper's


@pytest.fixture(scope="session")
def tiny_sweep(kernel_env, tmp_path_factory):
    """All twelve notebooks through papermill (via the runner) on synthetic data, tiny settings."""
    root = tmp_path_factory.mktemp("sweep")
    failures = s3f_sweep.run_sweep(
        list(s3f_experiments.EXPERIMENTS),
        True,
        None,
        TINY,
        root / "runs",
        jobs=2,
        results_dir=root / "results",
        explain=True,
    )
    return root, failures


@pytest.mark.e2e
def test_every_notebook_runs_and_writes_its_run_folder(tiny_sweep):
    root, failures = tiny_sweep
    assert failures == []
    for name, exp in s3f_experiments.EXPERIMENTS.items():
        run = root / "runs" / name / "seed42"
        for file in (
            "metrics.json",
            "confusion_matrix.png",
            "roc.png",
            "history.csv",
            "history.png",
            "model.keras",
            f"{name}.ipynb",
            f"{name}.html",
        ):
            assert (run / file).is_file(), f"{name}: {file} missing"
        metrics = json.loads((run / "metrics.json").read_text())
        n = exp.num_classes
        assert metrics["class_names"] == list(exp.info.class_names)
        matrix = np.array(metrics["confusion_matrix"])
        assert matrix.shape == (n, n) and matrix.sum() == sum(metrics["counts"]["test"].values())
        for key in (
            "loss",
            "accuracy",
            "macro_f1",
            "weighted_f1",
            "cohen_kappa",
            "mcc",
            "classification_report",
            "params",
            "epochs_run",
            "best_epoch",
            "wall_time_s",
            "protocol",
            "seed",
            "image_size",
            "dataset_fingerprint",
            "skipped_files",
            "tensorflow_version",
            "environment",
        ):
            assert key in metrics, f"{name}: {key}"
        assert ("roc_auc" in metrics) if n == 2 else ("roc_auc_macro" in metrics)
        assert metrics["image_size"] == [16, 16] and metrics["demo_data"] is True
        assert metrics["epochs_run"] == 1
        executed = nbformat.read(run / f"{name}.ipynb", as_version=4)
        injected = [
            c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])
        ]
        assert len(injected) == 1 and "epochs = 1" in injected[0].source


@pytest.mark.e2e
def test_sweep_builds_tables_beside_the_papers_numbers(tiny_sweep):
    root, _ = tiny_sweep
    results = root / "results"
    frame = s3f_results.pd.read_csv(results / "summary.csv")
    papers = frame[frame["variant"].isna()]  # + the concat variants the sweep trains to explain
    assert len(papers) == 12 and set(papers["experiment"]) == set(s3f_experiments.EXPERIMENTS)
    assert sorted(frame[frame["variant"].notna()]["experiment"]) == [
        "S3F_Bilinear_BRISC2025",
        "S3F_Bilinear_HAM10000",
    ]
    busi = papers.set_index("experiment").loc["S3F_Concat_BUSI"]
    assert busi["paper_accuracy_%"] == 87.82
    assert busi["diff_accuracy_%"] == pytest.approx(busi["accuracy_%"] - 87.82, abs=0.01)
    assert busi["data"] == "synthetic demo"
    readme = (results / "README.md").read_text()
    table_rows = [line for line in readme.splitlines() if line.startswith("| S³F-Net (")]
    assert "SYNTHETIC DEMO DATA" in readme and len(table_rows) == 6  # 4 paper's + 2 concat
    assert "14 finished run(s)" in readme and "epochs=1" in readme
    assert (results / "confusion_matrices.png").stat().st_size > 10_000
    assert len(list((results / "metrics").rglob("*.json"))) == 14


@pytest.mark.e2e
def test_sweep_explains_every_s3f_model_and_links_it(tiny_sweep):
    root, _ = tiny_sweep
    s3f = [n for n, e in s3f_experiments.EXPERIMENTS.items() if e.architecture == "s3f"]
    runs = [f"{n}/seed42" for n in s3f]
    runs += [f"{n}/concat-sn1/seed42" for n in s3f if "Bilinear" in n]  # the paper's XAI models
    readme = (root / "results" / "README.md").read_text()
    assert "## Branch contributions" in readme
    for name in runs:  # concat SN1 and SN2, bilinear SN1: each explained through papermill
        explained = root / "runs" / name / "explain" / "seed42"
        summary = json.loads((explained / "contributions.json").read_text())
        overall = summary["overall"]
        assert overall["l2_spatial_%"] + overall["l2_spectral_%"] == pytest.approx(100, abs=0.01)
        assert (summary["spatial_dim"], summary["spectral_dim"]) == (512, 4)
        for png in (
            "contributions_bar.png",
            "contributions_kde.png",
            "gradcam.png",
            "spectral_filters_spectral_filter1.png",
        ):
            assert (explained / png).is_file(), f"{name}: {png}"
        assert (root / "results" / "explain" / name / "contributions_bar.png").is_file()
        assert f"explain/{name}/contributions_bar.png" in readme


@pytest.mark.e2e
def test_bad_data_dir_fails_with_the_data_setup_error(kernel_env, tmp_path):
    failures = s3f_sweep.run_sweep(
        ["Spatial_ChestXRay"], False, tmp_path / "nowhere", TINY, tmp_path / "runs"
    )
    assert len(failures) == 1
    job, error = failures[0]
    assert error.startswith("DatasetError: ") and "folder does not exist" in error
    assert "\n" not in error  # the kit's one-line message, not papermill's cell dump
    assert job.executed.with_suffix(".html").is_file()  # the failed notebook is kept


@pytest.mark.e2e
def test_readme_papermill_command_works_as_written(kernel_env, tmp_path):
    from data_setup import synth_dataset

    busi = synth_dataset("BUSI", tmp_path / "busi", count=4, size=64, seed=2)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            "notebooks/S3F_Concat_BUSI.ipynb",
            str(tmp_path / "out.ipynb"),
            "-p",
            "epochs",
            "1",
            "-p",
            "data_dir",
            str(busi),
            "-p",
            "output_dir",
            str(tmp_path / "runs"),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    metrics = json.loads((tmp_path / "runs/S3F_Concat_BUSI/seed42/metrics.json").read_text())
    assert metrics["params"] == 138_700_851 and metrics["image_size"] == [256, 256]
    assert metrics["demo_data"] is False


def test_same_seed_gives_the_same_metrics(kernel_env, tmp_path, keras):
    from s3f_kit.run import training as s3f_training

    def once(folder):
        run = s3f_training.Run(
            "SpectraNet_BRISC2025", output_dir=str(tmp_path / folder), **{**TINY, "verbose": 0}
        )
        data = run.load_data()
        model = run.build_model(data)
        run.train(model, data)
        return run.evaluate(data)

    a, b = once("a"), once("b")
    for key in ("loss", "accuracy", "weighted_f1", "confusion_matrix"):
        assert a[key] == b[key]
    history_a = (tmp_path / "a/SpectraNet_BRISC2025/seed42/history.csv").read_text()
    assert history_a == (tmp_path / "b/SpectraNet_BRISC2025/seed42/history.csv").read_text()


def test_run_passes_kit_filter_options_and_parses_list_text(kernel_env, tmp_path, keras):
    import s3f_common
    from s3f_kit.run import training as s3f_training

    run = s3f_training.Run(
        "SpectraNet_BUSI",
        img_size="[16, 16]",
        modes="[3, 4]",
        channel_mixing="depthwise",
        demo_count=6,
        output_dir=str(tmp_path),
    )
    model = run.build_model(run.load_data())
    filters = [l for l in model.layers if isinstance(l, s3f_common.SpectralFilter)]
    assert [(f.channel_mixing, f.modes) for f in filters] == [("depthwise", (3, 4))] * 2
    assert model.inputs[0].shape[1:3] == (16, 16)
    with pytest.raises(ValueError, match="img_size must be None or two integers"):
        s3f_training.Run("SpectraNet_BUSI", img_size="256")
