"""The sweep runner: run identity (seeds, grid), resume, the changed-parameter check, the CLI,
Ctrl-C, failure lines, live progress and the results tables."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from s3f_kit import config as s3f_config
from s3f_kit import experiments as s3f_experiments
from s3f_kit.reports import results as s3f_results
from s3f_kit.sweep import cluster as s3f_cluster
from s3f_kit.sweep import jobs as s3f_jobs
from s3f_kit.sweep import sweep as s3f_sweep
from tests.helpers import processes_with_env, sigint_as_in_a_terminal

REPO = Path(__file__).resolve().parents[1]
BUSI = ["Spatial_BUSI", "SpectraNet_BUSI", "S3F_Concat_BUSI"]


def _commands(text: str, programs=("-m s3f_kit.sweep", "s3f-sweep")) -> list[list[str]]:
    """Every `program --option ...` command in a text (continuation lines joined, comments
    dropped); a program's bare name in prose is not a command."""
    text = text.replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        starts = [line.index(f"{p} -") + len(p) for p in programs if f"{p} -" in line]
        if starts:
            command = line[min(starts) :].split(" #")[0].strip("` ")
            argv = shlex.split(command)
            ends = [i for i, a in enumerate(argv) if a in {"||", "&&", ";", "|", "&"}]
            found.append(argv[: ends[0]] if ends else argv)  # the shell's operators end it
    return found


def fake_execute(ran, fail=()):
    """Stands in for the notebook process: records the job, writes its marker like a notebook."""

    def execute(job, worker=None):
        ran.append(job.label)
        if job.label in fail:
            return "DatasetError: BUSI: folder does not exist"
        marker = job.run_dir / job.marker
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"run_settings": job.expected or {}}))
        return None

    return execute


# --------------------------------------------------------------------------- CLI


def test_p_takes_key_value_and_papermills_two_tokens():
    args = s3f_sweep.build_parser().parse_args(
        ["--demo", "-p", "epochs", "50", "-p", "protocol=holdout", "-p", "img_size", "[64, 64]"]
    )
    assert s3f_sweep.parse_overrides(args.param) == {
        "epochs": 50,
        "protocol": "holdout",
        "img_size": [64, 64],
    }
    with pytest.raises(s3f_sweep.SweepError, match="-p epochs: no value"):
        s3f_sweep.parse_overrides([["epochs"]])
    with pytest.raises(s3f_sweep.SweepError, match="key=value or key value"):
        s3f_sweep.parse_overrides([["no such=1"]])


@pytest.mark.parametrize(
    "source",
    [s3f_sweep.__doc__, s3f_cluster.__doc__],
    ids=["s3f_kit.sweep", "s3f_kit.sweep.cluster"],
)
def test_docstring_examples_parse(source):
    commands = _commands(source)
    assert len(commands) >= 2
    for argv in commands:
        args = s3f_sweep.build_parser().parse_args(argv)
        s3f_sweep.parse_overrides(args.param)
        s3f_sweep.parse_grid(args.grid)
        s3f_sweep.parse_seeds(args.seeds)


def test_docs_cluster_commands_and_slurm_script_parse():
    script = REPO / "docs" / "slurm" / "s3f_sweep.sbatch"
    subprocess.run(["bash", "-n", str(script)], check=True)
    docs = (REPO / "docs" / "cluster.md").read_text() + (REPO / "docs" / "sweep.md").read_text()
    commands = _commands(script.read_text()) + _commands(docs)
    assert any("--cluster" in argv for argv in _commands(script.read_text()))
    assert len(commands) >= 10
    for argv in commands:
        argv = [a.replace("$", "") for a in argv]  # shell variables stand for paths
        args = s3f_sweep.build_parser().parse_args(argv)
        s3f_sweep.parse_overrides(args.param)
        s3f_sweep.parse_grid(args.grid)


def test_cluster_without_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(s3f_sweep.SweepError, match=r'pip install "s3f-kit\[cluster\]"'):
        s3f_cluster.import_ray()


# --------------------------------------------------------------------------- run identity


def test_seeds_and_grid_give_one_folder_per_distinct_run(tmp_path):
    grid = s3f_sweep.parse_grid(["fusion=concat,bilinear", "spectranet=1,2"])
    seeds = s3f_sweep.parse_seeds([3])
    assert seeds == [42, 43, 44] and s3f_sweep.parse_seeds([7, 13, 7]) == [7, 13]
    jobs = s3f_sweep.plan_training(BUSI, True, None, {}, tmp_path, seeds, grid)
    labels = [j.label for j in jobs]
    assert len(labels) == len(set(labels)) == 3 * (4 + 2 + 1)  # s3f 2×2, spectranet 2, spatial 1
    assert {
        "S3F_Concat_BUSI/seed42",
        "S3F_Concat_BUSI/bilinear-sn1/seed43",
        "SpectraNet_BUSI/sn1/seed44",
        "Spatial_BUSI/seed43",
    } <= set(labels)
    for job in jobs:
        assert job.run_dir == tmp_path / job.label
        assert s3f_config.run_subdir(job.notebook, job.params) == job.label
    assert s3f_sweep.parse_grid(["modes=[8,8],[16,16]"]) == {"modes": [[8, 8], [16, 16]]}
    with pytest.raises(s3f_sweep.SweepError, match="AXIS=V1,V2"):
        s3f_sweep.parse_grid(["epochs=1,2"])
    with pytest.raises(s3f_sweep.SweepError, match="seed"):
        s3f_sweep.plan_training(BUSI, True, None, {"seed": 1}, tmp_path, seeds)


def test_resume_refuses_changed_parameters_and_force_reruns(tmp_path, monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(s3f_jobs, "execute_job", fake_execute(ran))
    tiny = {"epochs": 1, "demo_count": 6}
    s3f_sweep.run_sweep(BUSI, True, None, tiny, tmp_path, seeds=[42, 43])
    assert len(ran) == 6
    ran.clear()
    (tmp_path / "SpectraNet_BUSI/seed43/metrics.json").unlink()  # as if killed in this run
    s3f_sweep.run_sweep(BUSI, True, None, tiny, tmp_path, seeds=[42, 43])
    assert ran == ["SpectraNet_BUSI/seed43"]  # only the unfinished one

    with pytest.raises(s3f_sweep.SweepError) as refused:
        s3f_sweep.run_sweep(BUSI[:1], True, None, {**tiny, "epochs": 2}, tmp_path, seeds=[42])
    message = str(refused.value)
    assert str(tmp_path / "Spatial_BUSI/seed42") in message and "epochs 1 → 2" in message
    assert "--force" in message
    code = s3f_sweep.main(
        [
            "--demo",
            "--only",
            "Spatial_BUSI",
            "-p",
            "epochs",
            "2",
            "-p",
            "demo_count=6",
            "--output",
            str(tmp_path),
            "--no-explain",
        ]
    )
    assert code == 2 and "epochs 1 → 2" in capsys.readouterr().err
    ran.clear()
    s3f_sweep.run_sweep(
        BUSI[:1], True, None, {**tiny, "epochs": 2}, tmp_path, force=True, seeds=[42]
    )
    assert ran == ["Spatial_BUSI/seed42"]


def test_explain_covers_every_s3f_run_and_the_papers_concat_models(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(s3f_jobs, "execute_job", fake_execute(ran, fail={"S3F_Concat_BUSI/seed42"}))
    names = ["S3F_Bilinear_BRISC2025", "S3F_Concat_BUSI", "Spatial_BRISC2025"]
    grid = {"spectranet": [1, 2]}
    failures = s3f_sweep.run_sweep(names, True, None, {}, tmp_path, explain=True, grid=grid)
    explained = sorted(label for label in ran if label.endswith(" explain"))
    assert explained == [  # the failed run is not explained; the XAI concat variant is
        "S3F_Bilinear_BRISC2025/bilinear-sn2/seed42 explain",
        "S3F_Bilinear_BRISC2025/concat-sn1/seed42 explain",
        "S3F_Bilinear_BRISC2025/seed42 explain",
        "S3F_Concat_BUSI/concat-sn1/seed42 explain",
    ]
    assert [job.label for job, _ in failures] == ["S3F_Concat_BUSI/seed42"]
    marker = tmp_path / "S3F_Bilinear_BRISC2025/concat-sn1/seed42/explain/seed42"
    assert (marker / "contributions.json").is_file()  # explain output inside its run folder


def test_failure_lines_name_the_kits_message_and_the_notebook(tmp_path, monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(s3f_jobs, "execute_job", fake_execute(ran, fail={"Spatial_BUSI/seed42"}))
    code = s3f_sweep.main(["--demo", "--only", *BUSI, "--output", str(tmp_path), "--no-explain"])
    out = capsys.readouterr().out
    assert code == 1 and len(ran) == 3  # the failure did not stop the others
    summary = out[out.index("1 notebook(s) failed:") :].splitlines()[1:]
    assert len(summary) == 1  # one line per failed run
    line = summary[0]
    assert line.startswith("  Spatial_BUSI/seed42:")
    assert "DatasetError: BUSI: folder does not exist" in line
    assert str(tmp_path / "Spatial_BUSI/seed42/Spatial_BUSI.ipynb") in line
    assert f"tables and figures in {tmp_path / 'results'}" in out  # inside a non-default output


def test_gpus_are_handed_out_one_per_running_notebook(tmp_path, monkeypatch):
    import threading

    seen, lock = [], threading.Lock()

    def execute(job, worker):
        with lock:
            seen.append(worker.gpu)
        time.sleep(0.05)
        return None

    monkeypatch.setattr(s3f_jobs, "execute_job", execute)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # the GPUs this sweep may use
    jobs = s3f_sweep.plan_training(BUSI[:1], True, None, {}, tmp_path, [1, 2, 3, 4])
    assert s3f_sweep.run_jobs(jobs, 4, "t", poll_s=0.05) == []
    assert sorted(seen) == ["2", "2", "3", "3"]  # those, not the machine's first two


def test_progress_status_reads_each_runs_progress_file(tmp_path):
    jobs = s3f_sweep.plan_training(BUSI[:2], True, None, {}, tmp_path)
    jobs[0].run_dir.mkdir(parents=True)
    (jobs[0].run_dir / "progress.json").write_text(
        json.dumps({"epoch": 3, "epochs": 25, "best_val_f1": 0.614})
    )
    assert s3f_sweep.progress_status(jobs) == (
        "Spatial_BUSI/seed42 3/25 (F1 0.61); SpectraNet_BUSI/seed42 starting"
    )


# --------------------------------------------------------------------------- Ctrl-C


@pytest.mark.e2e
def test_ctrl_c_stops_kernels_and_queue_and_lists_runs(tmp_path):
    """A real sweep process: one SIGINT while the first notebook trains stops everything."""
    pytest.importorskip("psutil")
    cache = tmp_path / "cache"  # marks every process of this sweep (kernels inherit it)
    env = {
        **os.environ,
        "S3F_CACHE_DIR": str(cache),
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": str(REPO),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    command = [
        sys.executable,
        "-m",
        "s3f_kit.sweep",
        "--demo",
        "--only",
        "Spatial_BUSI",
        "SpectraNet_BUSI",
        "--output",
        str(tmp_path / "runs"),
        "--no-explain",
        "-p",
        "epochs",
        "100000",
        "-p",
        "f1_patience",
        "100000",
        "-p",
        "demo_count",
        "4",
        "-p",
        "img_size",
        "[16,16]",
        "-p",
        "verbose",
        "0",
    ]
    sweep = subprocess.Popen(
        command,
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=sigint_as_in_a_terminal,
    )
    first = tmp_path / "runs/Spatial_BUSI/seed42"
    deadline = time.monotonic() + 300
    while not (first / "checkpoint.keras").is_file() and time.monotonic() < deadline:
        time.sleep(0.5)  # wait until the first notebook is really training
    assert (first / "checkpoint.keras").is_file(), "the first notebook never started training"
    sweep.send_signal(signal.SIGINT)
    try:
        out, _ = sweep.communicate(timeout=60)  # without the fix: 100000 epochs, then the next
    finally:
        sweep.kill()
    assert sweep.returncode == 130, out
    assert "Traceback" not in out
    assert (
        "not finished Spatial_BUSI/seed42" in out and "not finished SpectraNet_BUSI/seed42" in out
    )
    assert not list((tmp_path / "runs").rglob("metrics.json"))  # nothing counts as finished
    time.sleep(1)
    leftovers = processes_with_env("S3F_CACHE_DIR", str(cache))
    assert leftovers == [], "kernels or notebook processes survived Ctrl-C"


# --------------------------------------------------------------------------- results


def _fake_run(output, experiment, seed, accuracy, variant_settings=None, **extra):
    exp = s3f_experiments.EXPERIMENTS[experiment]
    settings = {
        "seed": seed,
        "protocol": "paper",
        "epochs": 3,
        "demo_count": 6,
        "img_size": [16, 16],
        **(variant_settings or {}),
    }
    n = exp.num_classes
    metrics = {
        "experiment": experiment,
        "dataset": exp.dataset,
        "architecture": exp.architecture,
        "fusion": settings.get("fusion", exp.fusion),
        "spectranet": settings.get("spectranet", exp.spectranet),
        "accuracy": accuracy,
        "weighted_f1": accuracy,
        "macro_f1": accuracy,
        "cohen_kappa": 0.5,
        "mcc": 0.5,
        "roc_auc_macro": 0.9,
        "loss": 0.4,
        "confusion_matrix": [[1] * n] * n,
        "class_names": list(exp.info.class_names),
        "protocol": "paper",
        "seed": seed,
        "params": 10,
        "image_size": [16, 16],
        "epochs_run": 3,
        "best_epoch": 2,
        "wall_time_s": 60.0,
        "demo_data": True,
        "run_settings": settings,
        **extra,
    }
    folder = output / s3f_config.run_subdir(experiment, settings)
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_results_cover_every_run_with_mean_sd_paper_and_flags(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    for seed, acc in ((42, 0.80), (43, 0.90), (44, 0.85)):
        _fake_run(runs, "S3F_Concat_BUSI", seed, acc, collapsed=seed == 43)
    _fake_run(runs, "S3F_Concat_BUSI", 42, 0.70, {"fusion": "bilinear", "spectranet": 1})
    _fake_run(runs, "Spatial_BUSI", 42, 0.75)
    (runs / "broken").mkdir()
    (runs / "broken" / "metrics.json").write_text("{")
    paper = {
        "accuracy": 0.8782,
        "weighted_f1": 0.8773,
        "macro_f1": 0.8532,
        "cohen_kappa": 0.7904,
        "mcc": 0.7925,
        "roc_auc_macro": 0.9643,
        "loss": 0.3729,
    }
    monkeypatch.setattr(s3f_experiments, "paper_metrics", lambda name: paper, raising=False)
    with pytest.warns(UserWarning, match="not valid JSON"):
        found = s3f_results.collect_runs(runs)
    assert sorted(r["run_subdir"] for r in found) == [
        "S3F_Concat_BUSI/bilinear-sn1/seed42",
        "S3F_Concat_BUSI/seed42",
        "S3F_Concat_BUSI/seed43",
        "S3F_Concat_BUSI/seed44",
        "Spatial_BUSI/seed42",
    ]
    with pytest.warns(UserWarning):
        frame = s3f_results.build_results(runs, tmp_path / "results")
    assert len(frame) == 3
    main = frame.set_index(["experiment", "variant"]).loc[("S3F_Concat_BUSI", "")]
    assert main["n_runs"] == 3 and main["seeds"] == "42 43 44"
    assert main["accuracy_%"] == pytest.approx(85.0)
    assert main["accuracy_%_sd"] == pytest.approx(5.0)
    assert main["diff_cohen_kappa"] == pytest.approx(0.5 - 0.7904, abs=1e-4)
    assert main["paper_roc_auc"] == pytest.approx(0.9643)
    assert main["diff_loss"] == pytest.approx(0.4 - 0.3729, abs=1e-4)
    assert main["flags"] == "⚠ collapsed 1/3"
    variant = frame.set_index(["experiment", "variant"]).loc[("S3F_Concat_BUSI", "bilinear-sn1")]
    assert variant["n_runs"] == 1 and s3f_results.pd.isna(variant["paper_accuracy_%"])
    readme = (tmp_path / "results" / "README.md").read_text()
    assert "85.00 ± 5.00" in readme and "**⚠ collapsed 1/3**" in readme
    assert "5 finished run(s)" in readme and "seed(s) 42, 43, 44" in readme
    assert "epochs=3" in readme and "twelve" not in readme
    assert (tmp_path / "results/metrics/S3F_Concat_BUSI/seed44.json").is_file()
    assert len(s3f_results.pd.read_csv(tmp_path / "results" / "runs.csv")) == 5


def test_a_plan_that_does_not_fit_the_disk_is_warned_about(tmp_path, monkeypatch):
    """Five seeds of the paper's BUSI S³F-Net: ~0.55 GB each when finished, 3.3 GB more while
    one trains; 5 GB free is not enough, 10 GB is."""
    jobs = s3f_sweep.plan_training(
        ["S3F_Concat_BUSI"], False, tmp_path, {}, tmp_path / "out", seeds=[1, 2, 3, 4, 5]
    )
    kept, training = s3f_sweep.run_footprint(jobs[0])
    assert 0.55e9 < kept < 0.56e9 + s3f_sweep.RUN_FILES_BYTES and training == 6 * 4 * 138_700_851
    usage = type("Usage", (), {})
    monkeypatch.setattr(s3f_sweep.shutil, "disk_usage", lambda path: usage)
    usage.free = 5e9
    warning = s3f_sweep.disk_warning(jobs, tmp_path / "out" / "not-yet", parallel=1)
    assert warning.startswith("WARNING: this plan needs about 6.1 GB on ")
    assert str(tmp_path) in warning and "5 run(s)" in warning
    usage.free = 10e9
    assert s3f_sweep.disk_warning(jobs, tmp_path / "out", parallel=1) is None
    # keeping the optimizer state triples what each finished run keeps
    keeping = s3f_sweep.plan_training(
        ["S3F_Concat_BUSI"], False, tmp_path, {"keep_optimizer": True}, tmp_path / "out"
    )
    assert s3f_sweep.run_footprint(keeping[0])[0] > 3 * kept - 3 * s3f_sweep.RUN_FILES_BYTES
