"""Grouped k-fold cross-validation: the folds' splits (BUSI pooled, Chest X-Ray's training pool),
the run parameters and folders, the sweep's plan and resume, and the tables and claims that pool
folds × seeds (no TensorFlow needed)."""

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from data_setup.loading import load_dataset
from s3f_kit import config as s3f_config
from s3f_kit.reports import claims as s3f_claims
from s3f_kit.reports import records as s3f_records
from s3f_kit.reports import results_tables as s3f_results_tables
from s3f_kit.sweep import jobs as s3f_jobs
from s3f_kit.sweep import sweep as s3f_sweep
from tests.test_patient_groups import _kermany_names, large_groups_tree

SIZE = (16, 16)


def _files(data, split):
    part = data.splits[split]
    return {part.source.files[i] for i in part.indices}


def _folds(dataset, root, cache, folds=3, seed=42):
    return [
        load_dataset(
            dataset,
            root,
            img_size=SIZE,
            protocol="holdout",
            seed=seed,
            cache_dir=cache,
            folds=folds,
            fold=k,
        )  # fmt: skip
        for k in range(1, folds + 1)
    ]


@pytest.fixture(scope="module")
def busi_with_a_copy(tmp_path_factory):
    """Synthetic BUSI (12 images per class) plus an exact copy of one benign image."""
    from data_setup import synth_dataset

    root = synth_dataset("BUSI", tmp_path_factory.mktemp("busi"), count=12, size=40, seed=7)
    original = sorted((root / "benign").glob("*.png"))[0]
    shutil.copy(original, root / "benign" / "zz_copy_of_first.png")
    return root, original.relative_to(root).as_posix(), "benign/zz_copy_of_first.png"


def test_busi_folds_test_every_image_once_and_keep_copies_in_one_fold(busi_with_a_copy, tmp_path):
    root, original, copy = busi_with_a_copy
    for seed in (42, 43):
        runs = _folds("BUSI", root, tmp_path / "cache", seed=seed)
        tests = [_files(d, "test") for d in runs]
        every = set().union(*(_files(runs[0], s) for s in ("train", "val", "test")))
        images = [p for p in root.rglob("*.png") if "_mask" not in p.name]
        assert sum(map(len, tests)) == len(set().union(*tests)) == len(every) == len(images)
        for data in runs:
            train, val, test = (_files(data, s) for s in ("train", "val", "test"))
            assert val and not (train & val or train & test or val & test)
            for part in (train, val, test):  # the copy is never apart from its original
                assert (original in part) == (copy in part)
            assert "fold" in data.summary() and data.extras["fold_test"] == "the held fold"
    # another seed is another repetition: another partition
    assert [_files(d, "test") for d in _folds("BUSI", root, tmp_path / "c2", seed=43)] != [
        _files(d, "test") for d in _folds("BUSI", root, tmp_path / "c2", seed=42)
    ]


def test_chest_folds_split_the_training_pool_by_patient_and_score_the_official_test(tmp_path):
    from data_setup import synth_dataset

    root = synth_dataset("ChestXRay", tmp_path / "data", count=24, size=40, seed=3)
    _kermany_names(root)
    runs = _folds("ChestXRay", root, tmp_path / "cache")
    tests = [_files(d, "test") for d in runs]
    assert tests[0] == tests[1] == tests[2]  # the official test set, scored in every fold
    vals = [_files(d, "val") for d in runs]
    pool = _files(runs[0], "train") | vals[0]
    assert sum(map(len, vals)) == len(set().union(*vals)) and set().union(*vals) == pool
    patient_of = runs[0].groups
    for data in runs:
        train_patients = {patient_of[f] for f in _files(data, "train")}
        val_patients = {patient_of[f] for f in _files(data, "val")}
        assert val_patients and not train_patients & val_patients
        assert data.extras["fold_test"] == "the official test set"


def test_every_fold_holds_every_class_with_a_few_large_groups(tmp_path):
    """Issue 32: a stratified group k-fold with a few large groups per class left a class out
    of some folds; every held fold now has every class, each group whole in one fold."""
    root, planted = large_groups_tree(tmp_path / "data")
    for seed in (1, 2):
        runs = _folds("ChestXRay", root, tmp_path / "cache", folds=3, seed=seed)
        for data in runs:
            assert all(data.counts()["val"].values()), (seed, data.counts()["val"])
            val = _files(data, "val")
            assert all(group <= val or not group & val for group in planted)
    pool = _files(runs[0], "train") | _files(runs[0], "val")
    pneumonia = [f for f in pool if "PNEUMONIA" in f]
    shares = runs[0].extras["group_facts"]["largest_group_share"]
    assert shares["PNEUMONIA"] == pytest.approx(12 / len(pneumonia), abs=1e-4)
    assert "largest group per class" in runs[0].summary()


def test_folds_need_the_holdout_protocol_and_a_fold_in_range(busi_with_a_copy, tmp_path):
    root = busi_with_a_copy[0]
    with pytest.raises(ValueError, match="protocol 'holdout'"):
        load_dataset("BUSI", root, img_size=SIZE, folds=3, fold=1, cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"fold must be in 1\.\.3"):
        load_dataset("BUSI", root, img_size=SIZE, protocol="holdout", folds=3, fold=4,
                     cache_dir=tmp_path)  # fmt: skip
    config = s3f_config.RunConfig(experiment="Spatial_BUSI", folds=3, fold=2)
    with pytest.raises(ValueError, match="needs protocol 'holdout'"):
        config.resolved()
    for folds, fold in ((1, 1), (0, 2), (3, 4)):
        with pytest.raises(ValueError, match="fold in 1..K"):
            s3f_config.RunConfig(experiment="Spatial_BUSI", folds=folds, fold=fold,
                                 protocol="holdout").resolved()  # fmt: skip
    with pytest.raises(ValueError, match="folds must be"):
        s3f_config.RunConfig(experiment="Spatial_BUSI", folds=99).checked()
    settings = {"folds": 3, "fold": 2, "protocol": "holdout", "seed": 43}
    assert s3f_config.run_subdir("S3F_Concat_BUSI", settings) == (
        "S3F_Concat_BUSI/holdout/cv3/fold2/seed43"
    )
    assert s3f_config.run_subdir("S3F_Concat_BUSI", {"protocol": "holdout"}) == (
        "S3F_Concat_BUSI/holdout/seed42"
    )  # a run without folds keeps its folder


def test_more_folds_than_a_class_has_images_is_said_in_the_kits_words(tmp_path, monkeypatch):
    """`--folds 10` on a class of 6 images: the kit says which class, its count, the folds asked
    and what to do, before the features, the grouping and any training (issue 31)."""
    import warnings

    from data_setup import audit_cache, synth_dataset
    from data_setup.layouts import DatasetError

    root = synth_dataset("BUSI", tmp_path / "busi", count=12, size=40, seed=7)
    images = sorted(p for p in (root / "normal").glob("*.png") if "_mask" not in p.name)
    for image in images[6:]:  # a class of 6 images (with their masks)
        for file in (image, image.with_name(f"{image.stem}_mask.png")):
            file.unlink(missing_ok=True)
    monkeypatch.setattr(audit_cache, "source_features", lambda *a, **k: pytest.fail("too late"))
    with warnings.catch_warnings(record=True) as caught, pytest.raises(DatasetError) as error:
        warnings.simplefilter("always")
        load_dataset("BUSI", root, img_size=SIZE, protocol="holdout", folds=10, fold=1,
                     cache_dir=tmp_path / "cache")  # fmt: skip
    message = str(error.value)
    assert message == (
        "cannot make 10 cross-validation folds of the dataset: class normal (6 images) has "
        "fewer images than the 10 folds asked, so some folds would hold none of it; use at "
        "most 6 folds (--folds 6) or add images of that class"
    )
    assert not [w for w in caught if "n_splits" in str(w.message)]  # no scikit-learn wording


def test_sweep_plans_one_run_per_fold_and_seed_and_resumes_per_fold(tmp_path, monkeypatch):
    from tests.test_sweep import fake_execute

    names = ["Spatial_BUSI", "S3F_Concat_BUSI"]
    jobs = s3f_sweep.plan_training(names, True, None, {}, tmp_path, [42, 43], folds=3)
    labels = {j.label for j in jobs}
    assert len(jobs) == len(labels) == 2 * 3 * 2
    assert "Spatial_BUSI/holdout/cv3/fold3/seed43" in labels
    assert all(j.expected["protocol"] == "holdout" and j.expected["folds"] == 3 for j in jobs)
    for bad in ({"protocol": "paper"}, {"fold": 1}):
        with pytest.raises(s3f_sweep.SweepError):
            s3f_sweep.plan_training(names, True, None, bad, tmp_path, [42], folds=3)
    with pytest.raises(s3f_sweep.SweepError, match="2 ≤ K"):
        s3f_sweep.plan_training(names, True, None, {}, tmp_path, [42], folds=1)

    ran = []
    monkeypatch.setattr(s3f_jobs, "execute_job", fake_execute(ran))
    s3f_sweep.run_sweep(names[:1], True, None, {"epochs": 1}, tmp_path, seeds=[42, 43], folds=3)
    assert len(ran) == 6
    ran.clear()
    (tmp_path / "Spatial_BUSI/holdout/cv3/fold2/seed43/metrics.json").unlink()  # killed there
    s3f_sweep.run_sweep(names[:1], True, None, {"epochs": 1}, tmp_path, seeds=[42, 43], folds=3)
    assert ran == ["Spatial_BUSI/holdout/cv3/fold2/seed43"]
    assert s3f_sweep.build_parser().parse_args(["--demo", "--folds", "5"]).folds == 5

    ran.clear()  # the explainability notebook runs on single-split runs, not once per fold
    s3f_sweep.run_sweep(names[1:], True, None, {"epochs": 1}, tmp_path, explain=True, folds=2)
    assert ran == [
        "S3F_Concat_BUSI/holdout/cv2/fold1/seed42",
        "S3F_Concat_BUSI/holdout/cv2/fold2/seed42",
    ]


# --------------------------------------------------------------------------- tables and claims

CLASSES = ["benign", "malignant", "normal"]
N_TEST, N_TRAIN = 30, 60  # per fold: test fraction 1/3


def _cv_run(root, experiment, seed, fold, correct, rng):
    """A finished cross-validation run of BUSI: `correct` of its N_TEST test images right."""
    settings = {"protocol": "holdout", "folds": 3, "fold": fold, "seed": seed, "epochs": 3}
    folder = root / s3f_config.run_subdir(experiment, settings)
    folder.mkdir(parents=True)
    true = np.array(CLASSES)[np.arange(N_TEST) % 3]
    right = np.zeros(N_TEST, bool)
    right[rng.permutation(N_TEST)[:correct]] = True
    predicted = np.where(right, true, np.array(CLASSES)[(np.arange(N_TEST) + 1) % 3])
    files = [f"fold{fold}_seed{seed}_{i}.png" for i in range(N_TEST)]  # a fold's own images
    pd.DataFrame({"file": files, "true_label": true, "predicted_label": predicted}).to_csv(
        folder / "predictions.csv", index=False
    )
    per_class = {c: N_TRAIN // 3 for c in CLASSES}
    metrics = {
        "experiment": experiment, "variant": "", "seed": seed, "protocol": "holdout",
        "dataset": "BUSI", "accuracy": correct / N_TEST, "demo_data": True,
        "run_dir": str(folder), "run_subdir": folder.relative_to(root).as_posix(),
        "run_settings": settings,
        "counts": {"train": per_class, "val": {c: 2 for c in CLASSES},
                   "test": {c: N_TEST // 3 for c in CLASSES}},
    }  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def _cv_claim_runs(root, seeds):
    rng = np.random.default_rng(0)
    runs, deltas = [], []
    for seed in seeds:
        for fold in (1, 2, 3):
            better, worse = 24 + fold, 20 + (seed - 42) % 3
            runs.append(_cv_run(root, "S3F_Concat_BUSI", seed, fold, better, rng))
            runs.append(_cv_run(root, "Spatial_BUSI", seed, fold, worse, rng))
            deltas.append(100 * (better - worse) / N_TEST)
    return runs, deltas


def _spatial_claim(frame):
    return frame[(frame["claim"] == "S³F-Net beats its spatial baseline")
                 & (frame["dataset"] == "BUSI")].iloc[0]  # fmt: skip


def test_claims_pair_folds_and_seeds_in_one_two_level_bootstrap(tmp_path):
    """Repetitions (seeds) are resampled with all their folds, the images of every fold once per
    resample: the interval and p come from those resamples; 2 repetitions give none."""
    runs, deltas = _cv_claim_runs(tmp_path / "five", range(42, 47))
    row = _spatial_claim(s3f_claims.claims_table(runs))
    assert (row["n_pairs"], row["n_folds"], row["n_seeds"]) == (15, 3, 5)
    assert row["test"] == s3f_claims.BOOTSTRAP_TEST
    assert row["mean_delta"] == pytest.approx(np.mean(deltas))
    assert row["ci_low"] < row["mean_delta"] < row["ci_high"]
    assert (row["ci_low"] > 0) == (row["p_bonferroni"] < 0.05) and row["verdict"] == "supported"
    (tmp_path / "res").mkdir()
    assert "3 folds × 5 seeds" in "\n".join(s3f_claims.write_claims(runs, tmp_path / "res"))
    two, _ = _cv_claim_runs(tmp_path / "two", (42, 43))  # 6 runs, but 2 repetitions
    row = _spatial_claim(s3f_claims.claims_table(two))
    assert row["n_pairs"] == 6 and math.isnan(row["ci_low"]) and row["verdict"] == "inconclusive"


def test_tables_pool_folds_and_seeds_with_a_two_level_interval(tmp_path):
    runs = []
    rng = np.random.default_rng(1)
    for seed in range(42, 47):
        for fold in (1, 2, 3):
            record = _cv_run(tmp_path, "Spatial_BUSI", seed, fold, 20 + fold + seed - 42, rng)
            record.update(params=10, image_size=[16, 16], epochs_run=3, best_epoch=2,
                          wall_time_s=1.0)  # fmt: skip
            runs.append(record)
    assert s3f_records.repeat_key(runs[1]) == (42, 2)
    kept, notes = s3f_records.drop_repeated_seeds(runs)
    assert len(kept) == 15 and not notes  # 3 folds × 5 seeds, none a repeat of another
    accuracies = [100 * r["accuracy"] for r in runs]
    row = s3f_results_tables.summary_frame(runs).iloc[0]
    assert row["n_runs"] == 15 and row["folds"] == 3 and row["seeds"] == "42 43 44 45 46"
    assert "repetitions, each with its folds" in row["interval"]
    assert 0 <= row["accuracy_%_ci_low"] < row["accuracy_%"] < row["accuracy_%_ci_high"] <= 100
    assert math.isclose(row["accuracy_%"], np.mean(accuracies), abs_tol=1e-4)
    assert (row["accuracy_%_min"], row["accuracy_%_max"]) == pytest.approx(
        (min(accuracies), max(accuracies)), abs=1e-4
    )
    two = s3f_results_tables.summary_frame(runs[:6]).iloc[0]  # 2 repetitions: no interval
    assert two["n_runs"] == 6 and pd.isna(two["accuracy_%_ci_low"])


@pytest.mark.e2e
def test_a_demo_sweep_over_folds_resumes_after_a_kill_and_tables_pool_the_folds(tmp_path):
    """The acceptance run: `s3f-sweep --demo --folds 3 --seeds 2`, interrupted once."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import sigint_as_in_a_terminal
    from tests.test_sweep import REPO

    output = tmp_path / "runs"
    command = [
        sys.executable, "-m", "s3f_kit.sweep", "--demo", "--only", "Spatial_BUSI", "--folds", "3",
        "--seeds", "2", "--output", str(output), "--no-explain", "--no-html",
        "-p", "epochs", "1", "-p", "demo_count", "12", "-p", "img_size", "[16,16]",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "S3F_CACHE_DIR": str(tmp_path / "cache"),
           "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}  # fmt: skip
    sweep = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True,
                             preexec_fn=sigint_as_in_a_terminal)  # fmt: skip
    deadline = time.monotonic() + 300
    while len(list(output.rglob("metrics.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    sweep.send_signal(signal.SIGINT)  # killed partway: some folds finished, the rest not
    try:
        out, _ = sweep.communicate(timeout=120)
    finally:
        sweep.kill()
    finished = {p.parent.relative_to(output).as_posix() for p in output.rglob("metrics.json")}
    assert sweep.returncode == 130 and 2 <= len(finished) < 6, out

    resumed = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    for label in finished:
        assert f"{label}: already finished, skipped" in resumed.stdout
    folders = {p.parent.relative_to(output).as_posix() for p in output.rglob("metrics.json")}
    assert folders == {
        f"Spatial_BUSI/holdout/cv3/fold{k}/seed{s}" for k in (1, 2, 3) for s in (42, 43)
    }
    summary = pd.read_csv(output / "results" / "summary.csv")
    assert len(summary) == 1 and summary.loc[0, "n_runs"] == 6 and summary.loc[0, "folds"] == 3
    assert "fewer than 5 seeds" in summary.loc[0, "interval"]  # 2 repetitions
    readme = (output / "results" / "README.md").read_text()
    assert "6 (3-fold × 2 seeds)" in readme
