"""Notebooks, the papermill sweep and the results tables (issue: notebooks, sweep, results)."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from s3f_kit import config as s3f_config
from s3f_kit import experiments as s3f_experiments
from s3f_kit import notebooks as s3f_notebooks
from s3f_kit.reports import results as s3f_results
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
        assert committed == text, f"{name}: run python -m s3f_kit.notebooks"


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
    assert set(values) == REQUIRED | {"EXPERIMENT", "KIT_ZIP"}  # KIT_ZIP: the Colab setup cell's
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
    # 4 paper's + 2 concat, each in its dataset's headline table and its details table
    assert "SYNTHETIC DEMO DATA" in readme and len(table_rows) == 2 * 6
    assert "14 finished run(s)" in readme and "epochs=1" in readme
    for dataset in s3f_experiments.RECIPES:  # one confusion figure per dataset
        assert (results / f"confusion_{dataset}.png").stat().st_size > 10_000
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


@pytest.mark.e2e
def test_a_plain_papermill_call_ends_with_the_runs_summary_in_its_terminal(kernel_env, tmp_path):
    """papermill shows cell output only with --log-output; the last cell's summary reaches the
    terminal through the kernel's inherited stderr, and stands in the notebook once."""
    command = [sys.executable, "-m", "papermill", "notebooks/Spatial_BUSI.ipynb",
               str(tmp_path / "out.ipynb"), "-p", "output_dir", str(tmp_path / "runs")]  # fmt: skip
    for name, value in TINY.items():
        command += ["-p", name, json.dumps(value)]
    done = subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True)
    run = tmp_path / "runs" / "Spatial_BUSI" / "seed42"
    metrics = json.loads((run / "metrics.json").read_text())
    tail = done.stderr.split("Spatial_BUSI on BUSI, seed 42, protocol paper")[-1]
    lines = [line.strip() for line in tail.splitlines()]
    primary = s3f_experiments.DATASETS["BUSI"].primary_metrics
    assert lines[1].startswith(f"{primary[0]} ") and f"; {primary[1]} " in lines[1]
    accuracy = metrics["intervals"]["accuracy"]
    assert f"{100 * accuracy['ci_low']:.1f}, {100 * accuracy['ci_high']:.1f}]" in lines[1]
    assert lines[2].startswith("clean test: ")
    assert lines[3].startswith("flags: ") and lines[4] == f"run folder: {run}"
    after = [line for line in lines[5:] if line]  # papermill's closing bar, nothing else
    assert after and all(line.startswith("Executing:") for line in after), after
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    shown = json.dumps([cell.get("outputs", []) for cell in executed.cells])
    assert shown.count("run folder: ") == 1  # the notebook's own copy, not a second via fd 2


def test_to_terminal_writes_past_a_captured_stderr(tmp_path):
    """Where sys.stderr has no file descriptor (a notebook's stream without fd capture), the
    summary goes to descriptor 2, the terminal the process inherited; a closed one is no
    error."""
    code = (
        "import io, os, sys\n"
        "from s3f_kit.run.env import to_terminal\n"
        "sys.stderr = io.StringIO()\n"
        "to_terminal('summary line')\n"
        "assert sys.stderr.getvalue() == ''\n"
        "os.close(2)\n"
        "to_terminal('nowhere')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "\nsummary line\n"


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


# ----------------------------------------------------------------------------- Colab setup cell
# A simulated Colab runtime in a subprocess: a fake google.colab (its drive.mount logs the path)
# and one preinstalled package older than the kit allows, ahead of the venv on sys.path; /content
# is a temporary folder. The kit counts as missing until "pip" ran. pip itself is either the
# venv's real one (a source that fails offline) or a stand-in that upgrades the old package.
COLAB_DRIVER = r"""
import importlib.util, json, os, sys
site, cell_file, namespace = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path.insert(0, site)
import google.colab  # Colab's kernel has it imported: the cell's sign of Colab
for module in namespace.pop("_imported"):
    __import__(module)
real_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: (
    None if name == "s3f_common" and not os.path.exists(os.path.join(site, "installed"))
    else real_find_spec(name, *a)
)
if namespace.pop("_fake_pip"):
    sys.executable = os.path.join(site, "python")
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance(colors="NoColor")
shell.user_ns.update(namespace)  # the parameters cell's values
result = shell.run_cell(open(cell_file).read())
sys.exit(0 if result.success else 3)
"""

FAKE_PIP = """#!{python}
import pathlib, sys
site = pathlib.Path(__file__).parent
(site / "pip.log").write_text(" ".join(sys.argv[1:]))
old = site / "keras-3.10.0.dist-info"  # pip upgrades Colab's Keras, as it would for the kit
(old / "METADATA").write_text("Metadata-Version: 2.1\\nName: keras\\nVersion: 3.15.1\\n")
old.rename(site / "keras-3.15.1.dist-info")
(site / "installed").touch()
"""


def _colab(tmp_path, files=(), fake_pip=True, imported=(), **parameters):
    """Run the setup cell in the simulated Colab: (exit code, output, pip's arguments, mounts)."""
    site, content = tmp_path / "site", tmp_path / "content"
    (site / "google" / "colab").mkdir(parents=True)
    (site / "google" / "colab" / "__init__.py").write_text("")
    (site / "google" / "colab" / "drive.py").write_text(
        "import pathlib\n"
        "def mount(path):\n"
        "    with open(pathlib.Path(__file__).parents[2] / 'mounts.log', 'a') as log:\n"
        "        log.write(path + '\\n')\n"
    )
    (site / "keras").mkdir()
    (site / "keras" / "__init__.py").write_text("")
    (site / "keras-3.10.0.dist-info").mkdir()
    (site / "keras-3.10.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: keras\nVersion: 3.10.0\n"
    )
    (site / "keras-3.10.0.dist-info" / "top_level.txt").write_text("keras\n")
    (site / "python").write_text(FAKE_PIP.replace("{python}", sys.executable))
    (site / "python").chmod(0o755)
    for name in files:
        (content / name).parent.mkdir(parents=True, exist_ok=True)
        (content / name).write_bytes(b"PK")
    url = s3f_notebooks.repository_url()
    cell = s3f_notebooks.setup_cell().replace("/content/", f"{content}/")
    # offline, a source that git cannot clone stands in for the repository
    cell = cell.replace(f"git+{url}", f"git+file://{tmp_path}/no-such-repository")
    (tmp_path / "cell.py").write_text(cell)
    namespace = {
        "KIT_ZIP": "/content/s3f-kit.zip",
        "mount_drive": False,
        **parameters,
        "_imported": list(imported),
        "_fake_pip": fake_pip,
    }
    namespace["KIT_ZIP"] = namespace["KIT_ZIP"].replace("/content/", f"{content}/")
    out = subprocess.run(
        [sys.executable, "-c", COLAB_DRIVER, str(site), str(tmp_path / "cell.py"),
         json.dumps(namespace)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    pip_log, mounts = site / "pip.log", site / "mounts.log"
    return (
        out.returncode,
        out.stdout + out.stderr,
        pip_log.read_text() if pip_log.is_file() else None,
        mounts.read_text().split() if mounts.is_file() else [],
    )


def test_colab_without_a_zip_says_what_to_upload_in_one_sentence(tmp_path):
    code, output, _, mounts = _colab(tmp_path, fake_pip=False)
    assert code == 3, output
    assert "Traceback" not in output and "CalledProcessError" not in output
    (sentence,) = [line for line in output.splitlines() if "UsageError" in line]
    assert sentence.startswith("UsageError: No kit to install: upload s3f-kit.zip")
    assert f"`{s3f_notebooks.ZIP_COMMAND}`" in sentence and "KIT_ZIP" in sentence
    assert "does not appear to be a git repository" in sentence  # git's reason, from real pip
    assert mounts == []  # Drive is mounted only when asked


def test_colab_installs_an_uploaded_zip_and_names_the_packages_pip_changed(tmp_path):
    code, output, pip, mounts = _colab(tmp_path, files=["s3f-kit.zip"])
    assert code == 0, output
    assert pip.endswith(f"-m pip install --progress-bar off {tmp_path}/content/s3f-kit.zip")
    assert "pip changed keras 3.10.0 → 3.15.1" in output and mounts == []
    assert "Results stay in /content" in output and "mount_drive = True" in output


def test_colab_asks_for_a_restart_when_a_changed_package_was_imported(tmp_path):
    code, output, _, _ = _colab(tmp_path, files=["s3f-kit.zip"], imported=["keras"])
    assert code == 3 and "Traceback" not in output
    assert "UsageError: keras was imported before pip changed it: restart the runtime" in output


def test_colab_kit_zip_parameter_and_drive_only_when_asked(tmp_path):
    code, output, pip, mounts = _colab(tmp_path / "a", files=["elsewhere/kit.zip"],
                                       KIT_ZIP="/content/elsewhere/kit.zip")  # fmt: skip
    assert code == 0, output
    assert pip.endswith(f"{tmp_path}/a/content/elsewhere/kit.zip") and mounts == []
    drive_zip = "drive/MyDrive/s3f-kit.zip"
    code, output, pip, mounts = _colab(tmp_path / "b", files=[drive_zip], mount_drive=True)
    assert code == 0, output
    assert pip.endswith(f"{tmp_path}/b/content/{drive_zip}")
    assert mounts == [f"{tmp_path}/b/content/drive"]
    assert "Results stay in /content" not in output


def test_papermill_passes_kit_zip_to_the_setup_cell(tmp_path):
    import warnings

    import papermill

    for path in NOTEBOOKS:
        assert "KIT_ZIP" in papermill.inspect_notebook(str(path)), path.stem
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Passed unknown parameter" would be a warning
        executed = papermill.execute_notebook(
            str(REPO / "notebooks" / "S3F_Concat_BUSI.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters={"KIT_ZIP": "/content/mine.zip"},
            prepare_only=True,
        )
    sources = [c.source for c in executed.cells]
    injected = next(i for i, c in enumerate(executed.cells)
                    if "injected-parameters" in c.metadata.get("tags", []))  # fmt: skip
    assert 'KIT_ZIP = "/content/mine.zip"' in sources[injected]
    assert s3f_notebooks.setup_cell() in sources[injected + 1 :]


def test_badges_and_install_cell_derive_from_the_one_repository_setting(tmp_path, monkeypatch):
    configured = s3f_notebooks.repository_url().removeprefix("https://github.com/")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text((REPO / "pyproject.toml").read_text())
    monkeypatch.setattr(s3f_notebooks, "PYPROJECT", pyproject)
    s3f_notebooks.set_repository("my-lab/s3f-fork")
    assert 'Repository = "https://github.com/my-lab/s3f-fork"' in pyproject.read_text()
    assert "git+https://github.com/my-lab/s3f-fork" in s3f_notebooks.setup_cell()
    assert "github/my-lab/s3f-fork/blob/main" in s3f_notebooks.colab_url("Spatial_BUSI")
    assert "(https://github.com/my-lab/s3f-fork)" in s3f_notebooks.colab_note()
    readme = s3f_notebooks.with_generated_parts((REPO / "README.md").read_text())
    badges = re.findall(r"colab\.research\.google\.com/github/([^/]+/[^/]+)/", readme)
    assert len(badges) >= 12 and set(badges) == {"my-lab/s3f-fork"}
    # nothing else in the repository spells the address: the rest is generated from it
    holders = subprocess.run(
        ["git", "grep", "-l", "-F", configured], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    generated = {"pyproject.toml", "README.md"} | {f"notebooks/{p.name}" for p in NOTEBOOKS}
    assert holders and set(holders) <= generated, set(holders) - generated
