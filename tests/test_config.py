"""RunConfig: every run parameter declared once (issue 20), and everything derived from it."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from s3f_kit import config as s3f_config
from s3f_kit import experiments as s3f_experiments
from s3f_kit.sweep import sweep as s3f_sweep

REPO = Path(__file__).resolve().parents[1]

# A throw-away parameter declared through RunConfig in a fresh interpreter (the derived facts
# read RunConfig when asked, so a subclass put in its place is what every module sees).
PROBE = textwrap.dedent(
    """
    import dataclasses, json, sys
    from s3f_kit import config as s3f_config

    @dataclasses.dataclass
    class ProbeConfig(s3f_config.RunConfig):
        probe_level: int = s3f_config.param(
            3, "a throw-away parameter", s3f_config.integer(0), shown=True
        )

    s3f_config.RunConfig = ProbeConfig
    from s3f_kit import experiments as s3f_experiments
    from s3f_kit import notebooks as s3f_notebooks
    from s3f_kit.sweep import sweep as s3f_sweep
    from s3f_kit.run import training as s3f_training

    exp = s3f_experiments.get_experiment("Spatial_BUSI")
    cell = s3f_notebooks.make_notebook(exp).cells[2]
    run = s3f_training.Run.from_parameters({"EXPERIMENT": "Spatial_BUSI", "probe_level": 7})
    jobs = s3f_sweep.plan_training(["Spatial_BUSI"], True, None, {"probe_level": 5}, "out")
    try:
        s3f_training.Run("Spatial_BUSI", probe_level=-1)
        refused = ""
    except ValueError as error:
        refused = str(error)
    print(json.dumps({
        "cell_tags": cell.metadata.get("tags"),
        "cell": cell.source,
        "run_record": run.settings(),
        "expected_default": s3f_config.expected_settings("Spatial_BUSI", {}),
        "expected_sweep": jobs[0].expected,
        "shown": s3f_config.shown(),
        "table": s3f_config.markdown_table(),
        "refused": refused,
    }))
    """
)


def test_a_parameter_declared_once_reaches_notebook_sweep_record_and_docs():
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=REPO,
        timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["cell_tags"] == ["parameters"]
    assert "probe_level = 3  # a throw-away parameter" in probe["cell"].splitlines()
    assert probe["run_record"]["probe_level"] == 7
    assert probe["expected_default"]["probe_level"] == 3
    assert probe["expected_sweep"]["probe_level"] == 5
    assert "probe_level" in probe["shown"]
    assert "| `probe_level` | `3` | a throw-away parameter |" in probe["table"]
    assert "probe_level must be an integer ≥ 0" in probe["refused"]


def test_expected_settings_are_what_a_run_records():
    """The sweep's expectation and Run.settings() agree for every experiment, on demo data and
    with a data folder, without a notebook being read."""
    from s3f_kit.run import training as s3f_training

    for name in s3f_experiments.EXPERIMENTS:
        for params in ({}, {"data_dir": "/data/x", "epochs": 3, "fusion": None}):
            expected = s3f_config.expected_settings(name, params)
            recorded = s3f_training.Run(name, **params).settings()
            assert expected == recorded, name


def test_custom_demo_sweep_plans_and_counts_as_finished(tmp_path):
    """`s3f-sweep --demo --only S3F_Custom` used to stop with KeyError: 'Custom'."""
    jobs = s3f_sweep.plan_training(["S3F_Custom"], True, None, {}, tmp_path)
    (job,) = jobs
    assert job.label == "S3F_Custom/seed42"
    assert job.expected["img_size"] == s3f_experiments.DEMO_IMAGE_SIZES["BRISC2025"]
    assert job.expected["architecture"] == "s3f" and job.expected["channels"] == 1
    job.run_dir.mkdir(parents=True)
    (job.run_dir / "metrics.json").write_text(json.dumps({"run_settings": job.expected}))
    assert job.finished


def test_data_zip_runs_are_recorded_as_asked(tmp_path, monkeypatch):
    """A run given data_zip records data_dir as given, so the sweep that asked for the zip
    finds it finished; the unpacked folder is only where the data is read from."""
    from s3f_kit.run import training as s3f_training

    unpacked = tmp_path / "unpacked"
    monkeypatch.setattr(s3f_training, "unpack_data_zip", lambda *args: unpacked)
    params = {"data_zip": "/drive/BUSI.zip"}
    (job,) = s3f_sweep.plan_training(["S3F_Concat_BUSI"], True, None, params, tmp_path / "out")
    run = s3f_training.Run(job.notebook, **job.params)  # what the notebook does
    assert run.dataset_root == str(unpacked) and run.data_dir == ""
    assert not run.demo and run.img_size == [256, 256]  # real data: the paper's size
    assert run.run_dir == job.run_dir
    job.run_dir.mkdir(parents=True)
    (job.run_dir / "metrics.json").write_text(json.dumps({"run_settings": run.settings()}))
    assert job.finished, job.differences()


def test_roles_derive_from_the_declaration():
    assert {"output_dir", "verbose", "gpu", "mount_drive", "keep_optimizer"} == (
        s3f_config.not_compared()
    )
    assert set(s3f_config.grid_axes()) == {
        "fusion", "spectranet", "channel_mixing", "modes", "precision", "jit_compile", "protocol",
        "weights", "resize", "reencode",
    }  # fmt: skip
    assert s3f_config.grid_axes()["weights"] == {"baseline"}
    assert s3f_config.grid_axes()["fusion"] == {"s3f", "control"}
    assert s3f_config.shown()[0] == "epochs"
    with pytest.raises(ValueError, match="not a notebook parameter"):
        s3f_config.expected_settings("Spatial_BUSI", {"epoch": 3})


def test_the_parameters_page_holds_the_generated_table():
    page = (REPO / "docs" / "parameters.md").read_text()
    assert s3f_config.markdown_table() in page, "run python -m s3f_kit.notebooks"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"epochs": 0}, "epochs must be an integer ≥ 1"),
        ({"seed": -1}, "seed must be an integer from 0"),
        ({"img_size": [8, 8]}, "too small"),
        ({"fusion": "sum"}, "fusion must be one of"),
        ({"architecture": "s3f"}, "parameter of S3F_Custom only"),
        ({"weights": "random"}, "parameter of the Baseline_\\* experiments only"),
        ({"jit_compile": "maybe"}, "jit_compile must be True or False"),
        ({"modes": [200, 8]}, "exceed the frequencies"),
    ],
)
def test_bad_values_are_one_sentence_naming_the_parameter(params, message):
    with pytest.raises(ValueError, match=message):
        s3f_config.RunConfig(experiment="S3F_Concat_BUSI", **params).resolved()
