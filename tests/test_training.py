"""One training run: Keras' val_loss, the paper's threshold, parameter checks, divergence and
collapse, the files of a run folder, resume after an interruption, precision and XLA options."""

import json
import os

import numpy as np
import pandas as pd
import pytest

TINY = dict(img_size=[16, 16], demo_count=6, batch_size=8, verbose=0)


@pytest.fixture(scope="module")
def tf_modules(keras, kernel_env):
    from s3f_kit.run import metrics as s3f_metrics
    from s3f_kit.run import training as s3f_training

    return s3f_training, s3f_metrics


def _softmax_model(keras, saturate: float, units: int):
    """A tiny model whose outputs saturate (probabilities 0/1) when `saturate` is large."""
    inputs = keras.Input((4,))
    activation = "sigmoid" if units == 1 else "softmax"
    outputs = keras.layers.Dense(units, activation=activation, name="head")(inputs)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((4, units)).astype("float32") * saturate
    model.get_layer("head").set_weights([kernel, np.zeros(units, "float32")])
    loss = "binary_crossentropy" if units == 1 else "sparse_categorical_crossentropy"
    model.compile(optimizer="adam", loss=loss)
    return model


@pytest.mark.parametrize("units", [1, 3])
@pytest.mark.parametrize("saturate", [0.5, 200.0])
def test_validation_loss_equals_model_evaluate(units, saturate, keras, tf_modules):
    import tensorflow as tf

    _, s3f_metrics = tf_modules
    model = _softmax_model(keras, saturate, units)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((37, 4)).astype("float32")
    y = rng.integers(0, max(units, 2), 37).astype("int32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    probs, loss = s3f_metrics.predict_with_loss(model, data)
    expected = model.evaluate(data, verbose=0)
    assert probs.shape == (37, units)
    assert loss == pytest.approx(expected, rel=1e-5)
    if saturate > 100:  # clipped probabilities would give a very different number here
        clipped = np.clip(probs, 1e-7, 1 - 1e-7)
        if units == 1:
            p = clipped[:, 0]
            naive = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        else:
            naive = -np.mean(np.log(clipped[np.arange(37), y]))
        assert abs(naive - expected) / expected > 0.05


def test_binary_threshold_is_strictly_above_one_half(tf_modules):
    _, s3f_metrics = tf_modules
    probs = np.array([[0.5], [0.5000001], [0.2]])
    assert s3f_metrics.predicted_labels(probs, binary=True).tolist() == [0, 1, 0]


def test_collapsed_predictions_are_flagged(tf_modules):
    _, s3f_metrics = tf_modules
    labels = np.array([0, 1, 2, 0, 1, 2])
    one_class = np.tile([0.1, 0.8, 0.1], (6, 1))
    result = s3f_metrics.test_metrics(labels, one_class, 1.0, ["a", "b", "c"], False)
    assert result["collapsed"] and result["predicted_class_counts"] == {"a": 0, "b": 6, "c": 0}
    varied = np.eye(3)[labels] * 0.8 + 0.05
    assert not s3f_metrics.test_metrics(labels, varied, 1.0, ["a", "b", "c"], False)["collapsed"]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(epochs=0), "epochs must be an integer ≥ 1"),
        (dict(spectranet=0), "spectranet"),
        (dict(img_size=[12, 12]), "at least 16×16"),
        (dict(img_size="[8, 40]"), "at least 16×16"),
        (dict(learning_rate=0), "learning_rate must be a positive number"),
        (dict(learning_rate="fast"), "learning_rate"),
        (dict(protocol="test"), "protocol must be one of"),
        (dict(precision="float16"), "precision must be one of"),
        (dict(f1_patience=-1), "f1_patience"),
        (dict(batch_size=2.5), "batch_size"),
    ],
)
def test_invalid_parameters_are_clear_errors_before_any_data(
    overrides, message, tf_modules, tmp_path
):
    s3f_training, _ = tf_modules
    with pytest.raises(ValueError, match=message):
        s3f_training.Run("S3F_Concat_BUSI", output_dir=str(tmp_path), **overrides)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(img_size="abc"), "img_size must be None or two integers like [256, 256], got 'abc'"),
        (dict(seed=4294967296), "seed must be an integer from 0 to 4294967295, got 4294967296"),
        (
            dict(img_size=[100000, 100000]),
            "img_size must be two integers from 1 to 4096, got [100000, 100000]",
        ),
        (dict(modes=[0, 4]), "modes must be two integers ≥ 1, got [0, 4]"),
        (dict(modes="[0, 4]"), "modes must be two integers ≥ 1, got '[0, 4]'"),
        (
            dict(modes=[33, 4], img_size=[64, 64]),
            "modes [33, 4] exceed the frequencies of a 64×64 image: at most [32, 33] "
            "(rows, columns)",
        ),
    ],
)
def test_out_of_range_parameters_name_the_given_value_and_the_range(
    overrides, message, tf_modules, tmp_path
):
    s3f_training, _ = tf_modules
    with pytest.raises(ValueError) as error:
        s3f_training.Run("S3F_Concat_BUSI", output_dir=str(tmp_path), **overrides)
    assert str(error.value) == message
    assert not any(tmp_path.iterdir())


def test_the_bounds_themselves_are_accepted(tf_modules, tmp_path):
    s3f_training, _ = tf_modules
    run = s3f_training.Run(
        "S3F_Concat_BUSI",
        output_dir=str(tmp_path),
        seed=2**32 - 1,
        modes=[32, 33],
        img_size=[64, 64],
    )
    assert run.seed == 4294967295 and run.modes == [32, 33]
    run = s3f_training.Run("Spatial_BUSI", output_dir=str(tmp_path), img_size=[4096, 16])
    assert run.img_size == [4096, 16]


def test_zero_means_zero_and_integers_become_floats(tf_modules, tmp_path):
    s3f_training, _ = tf_modules
    run = s3f_training.Run(
        "Spatial_BUSI", output_dir=str(tmp_path), f1_patience=0, lr_patience=0, learning_rate=1
    )
    assert (run.f1_patience, run.lr_patience) == (0, 0)
    assert isinstance(run.learning_rate, float) and run.learning_rate == 1.0
    # the smallest input each architecture's pooling allows is accepted
    s3f_training.Run("SpectraNet_BRISC2025", img_size=[4, 4], output_dir=str(tmp_path))
    s3f_training.Run("S3F_Concat_BUSI", img_size=[16, 16], output_dir=str(tmp_path))


def _train(s3f_training, tmp_path, experiment="S3F_Concat_BUSI", **overrides):
    run = s3f_training.Run(
        experiment, output_dir=str(tmp_path), **{**TINY, "epochs": 2, **overrides}
    )
    data = run.load_data()
    model = run.build_model(data)
    return run, data, model


def test_a_run_folder_holds_predictions_split_and_preprocessing(tf_modules, tmp_path):
    s3f_training, _ = tf_modules
    run, data, model = _train(s3f_training, tmp_path)
    run.train(model, data)
    metrics = run.evaluate(data)
    folder = run.run_dir
    assert folder == tmp_path / "S3F_Concat_BUSI" / "seed42"
    predictions = pd.read_csv(folder / "predictions.csv")
    test = data.splits["test"]
    assert predictions["file"].tolist() == [str(f) for f in test.files]
    assert set(predictions["true_label"]) <= set(data.class_names)
    probs = predictions[[f"prob_{c}" for c in data.class_names]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (predictions["predicted_label"] == np.asarray(data.class_names)[probs.argmax(1)]).all()
    accuracy = (predictions["predicted_label"] == predictions["true_label"]).mean()
    assert accuracy == pytest.approx(metrics["accuracy"])
    split = pd.read_csv(folder / "split.csv")
    assert set(split["split"]) == {"train", "test"} | (
        {"val"} if run.protocol != "paper" else set()
    )
    assert len(split[split["split"] == "test"]) == len(test.files)
    prep = json.loads((folder / "preprocessing.json").read_text())
    assert prep["image_size"] == [16, 16] and prep["channels"] == 1
    assert prep["class_names"] == list(data.class_names)
    progress = json.loads((folder / "progress.json").read_text())
    assert progress["epoch"] == metrics["epochs_run"] and progress["epochs"] == 2
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["variant"] == "" and saved["run_subdir"] == "S3F_Concat_BUSI/seed42"
    assert saved["diverged"] is False and "collapsed" in saved
    assert saved["data_manifest"] == data.manifest and data.manifest["files"] > 0  # issue 34
    # issue 35: the header-only shortcut audit and the acquisition-swap test, recorded
    assert saved["shortcuts"]["assessed"] and 0 <= saved["shortcuts"]["kappa_ci"][1] <= 1
    swapped = saved["acquisition_swap"]
    assert swapped["assessed"] and swapped["images"] == len(test.files)
    scored = swapped["models"]["S3F_Concat_BUSI"]
    assert scored["flips"]["of"] == len(test.files) * (len(data.class_names) - 1)
    assert scored["lesion_masked"]["kept_prediction"]["of"] == len(test.files)  # BUSI's masks
    assert prep["resize"] == "squash" and prep["reencode"] is False  # the paper's decode
    assert not (folder / "resume").exists()
    # metrics.json's loss is what model.evaluate says for the saved model
    import s3f_common

    best = s3f_common.load_model(folder / "model.keras")
    assert saved["loss"] == pytest.approx(
        best.evaluate(data.tf_dataset("test", 8), verbose=0)[0], rel=1e-5
    )
    # the finished model has no optimizer state yet predicts what evaluate wrote
    assert _optimizer_arrays(folder / "model.keras") == [()] * 2  # iterations, learning rate
    assert not (folder / "checkpoint.keras").exists()
    probabilities = best.predict(data.tf_dataset("test", 8), verbose=0)
    np.testing.assert_allclose(probabilities, probs, atol=1e-6)


def _optimizer_arrays(path):
    """Shapes of the optimizer variables a .keras file stores."""
    import io
    import zipfile

    import h5py

    with (
        zipfile.ZipFile(path) as archive,
        h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as weights,
    ):
        group = weights.get("optimizer/vars", {})
        return [group[key].shape for key in sorted(group, key=int)]


@pytest.mark.parametrize("keep", [False, True])
def test_finished_model_keeps_the_optimizer_state_only_when_asked(
    keep, keras, tf_modules, tmp_path
):
    import s3f_common

    s3f_training, _ = tf_modules
    from s3f_kit import recipe as s3f_recipe

    model = s3f_recipe.compile_model(
        s3f_common.build_model("spectranet", (16, 16, 1), 3, bn_momentum=0.99)
    )
    x = np.random.default_rng(2).random((8, 16, 16, 1)).astype(np.float32)
    model.fit(x, np.arange(8) % 3, epochs=1, verbose=0)
    model.save(tmp_path / "checkpoint.keras")
    s3f_training.save_finished_model(
        model, tmp_path / "checkpoint.keras", tmp_path / "model.keras", keep_optimizer=keep
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]  # no temporary left
    arrays = _optimizer_arrays(tmp_path / "model.keras")
    moments = 2 * len(model.trainable_weights)  # Adam: m and v per trainable weight
    assert len(arrays) == (2 + moments if keep else 2)
    loaded = s3f_common.load_model(tmp_path / "model.keras")
    assert loaded.optimizer.get_config()["learning_rate"] == pytest.approx(3e-4)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    loaded.fit(x, np.arange(8) % 3, epochs=1, verbose=0)  # still compiled: trains on


def test_nan_loss_stops_training_and_is_recorded(keras, tf_modules, tmp_path):
    s3f_training, _ = tf_modules
    run, data, model = _train(s3f_training, tmp_path, "Spatial_BUSI", epochs=5)

    class PoisonAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                weights = self.model.get_layer("head").get_weights()
                weights[0][:] = np.nan
                self.model.get_layer("head").set_weights(weights)

    run.train(model, data, extra_callbacks=[PoisonAfterFirstEpoch()])
    metrics = run.evaluate(data)  # the epoch-1 checkpoint, not the NaN weights
    assert metrics["diverged"] is True and metrics["diverged_epoch"] == 2
    assert metrics["epochs_run"] == 2 and metrics["best_epoch"] == 1
    assert np.isfinite(metrics["loss"])


def test_divergence_before_any_checkpoint_is_a_clear_error(keras, tf_modules, tmp_path):
    s3f_training, _ = tf_modules
    run, data, model = _train(s3f_training, tmp_path, "Spatial_BUSI")
    weights = model.get_layer("head").get_weights()
    weights[0][:] = np.nan
    model.get_layer("head").set_weights(weights)
    run.train(model, data)
    with pytest.raises(RuntimeError, match="diverged in epoch 1 before any"):
        run.evaluate(data)


def test_validation_pass_is_traced_once_per_run(tf_modules, tmp_path, monkeypatch):
    """The per-epoch validation pass reuses one traced function (retracing it every epoch cost
    about half a second per epoch, a third of a demo epoch)."""
    from s3f_kit.run import callbacks as s3f_callbacks

    s3f_training, s3f_metrics = tf_modules
    built = []
    original = s3f_metrics.predictor

    def counting(model):
        built.append(model)
        return original(model)

    monkeypatch.setattr(s3f_callbacks.s3f_metrics, "predictor", counting)
    run, data, model = _train(s3f_training, tmp_path, "Spatial_BUSI", epochs=3, f1_patience=10)
    run.train(model, data)
    assert len(run.history["val_f1"]) == 3
    assert len(built) == 1


def test_resume_saves_pay_for_themselves():
    """A save is due first, at the last epoch, and once training since the last save took ten
    times what that save did (at most ~10 % of the time goes to checkpoints)."""
    from s3f_kit.run import callbacks as s3f_callbacks

    due = s3f_callbacks.ResumeState.save_due
    assert due(0.0, None, False) and due(0.0, 5.0, True)
    assert not due(2.9, 0.3, False) and due(3.0, 0.3, False)
    assert due(120.0, 0.3, False)  # a real-data epoch: saved every time


# patience long enough to train past the interruption; lr_patience 1 exercises LR drops
RESUME_SETTINGS = dict(epochs=4, f1_patience=10, lr_patience=1)


@pytest.fixture(scope="module")
def straight_run(tf_modules, tmp_path_factory):
    """The uninterrupted run that both resume tests must reproduce (trained once: how often the
    resume state is saved does not change training)."""
    s3f_training, _ = tf_modules
    folder = tmp_path_factory.mktemp("straight")
    straight, data, model = _train(s3f_training, folder, "Spatial_BUSI", **RESUME_SETTINGS)
    straight.train(model, data)
    return straight.evaluate(data), pd.read_csv(straight.run_dir / "history.csv")


@pytest.mark.parametrize(
    "max_overhead, saved_epoch",
    # every epoch saved (real data: epochs outlast a save), and only the first and the last
    # (demo data: a save costs half an epoch), so the rerun repeats epoch 2 — same result
    [(1e9, 2), (1e-9, 1)],
)
def test_interrupted_training_resumes_to_the_same_result(
    max_overhead, saved_epoch, straight_run, tf_modules, tmp_path, monkeypatch
):
    from s3f_kit.run import callbacks as s3f_callbacks

    s3f_training, _ = tf_modules
    expected, straight_history = straight_run
    monkeypatch.setattr(s3f_callbacks.ResumeState, "MAX_OVERHEAD", max_overhead)
    monkeypatch.setenv("S3F_INTERRUPT_AFTER_EPOCH", "2")
    first, data, model = _train(s3f_training, tmp_path, "Spatial_BUSI", **RESUME_SETTINGS)
    with pytest.raises(s3f_training.SimulatedDisconnect):
        first.train(model, data)
    state = json.loads((first.run_dir / "resume" / "state.json").read_text())
    assert state["epoch"] == saved_epoch
    monkeypatch.delenv("S3F_INTERRUPT_AFTER_EPOCH")
    second, data, model = _train(s3f_training, tmp_path, "Spatial_BUSI", **RESUME_SETTINGS)
    second.train(model, data)
    result = second.evaluate(data)
    for key in ("loss", "accuracy", "weighted_f1", "epochs_run", "best_epoch"):
        assert result[key] == expected[key], key
    assert result["confusion_matrix"] == expected["confusion_matrix"]
    history = pd.read_csv(second.run_dir / "history.csv")
    assert len(history) == expected["epochs_run"] == 4
    pd.testing.assert_frame_equal(history, straight_history)


@pytest.fixture(scope="module")
def float32_reference(tf_modules, tmp_path_factory):
    """Demo data, an untrained float32 S³F-Net and its test outputs, shared by the precision
    tests (each only reads them)."""
    s3f_training, s3f_metrics = tf_modules
    _, data, reference = _train(s3f_training, tmp_path_factory.mktemp("ref"), epochs=1)
    expected, _ = s3f_metrics.predict_with_loss(reference, data.tf_dataset("test", 8))
    return data, reference, expected


@pytest.mark.parametrize(
    "precision,jit,tolerance",
    # float16 keeps ~3 significant digits, bfloat16 ~2: untrained softmax outputs agree to these
    [("mixed_float16", False, 2e-2), ("mixed_bfloat16", False, 5e-2), ("float32", True, 1e-5)],
)
def test_precision_and_xla_train_and_agree_with_float32(
    precision, jit, tolerance, keras, tf_modules, float32_reference, tmp_path
):
    s3f_training, s3f_metrics = tf_modules
    data, reference, expected = float32_reference
    run = s3f_training.Run(
        "S3F_Concat_BUSI",
        output_dir=str(tmp_path / precision),
        precision=precision,
        jit_compile=jit,
        **{**TINY, "epochs": 1},
    )
    try:
        model = run.compile(run.build_model(data), data)
        model.set_weights(reference.get_weights())
        got, _ = s3f_metrics.predict_with_loss(model, data.tf_dataset("test", 8))
        assert np.max(np.abs(got - expected)) < tolerance
        history = model.fit(data.tf_dataset("train", 8), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert "fp16" in str(run.run_dir) or "bf16" in str(run.run_dir) or "xla" in str(run.run_dir)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_data_zip_is_unpacked_once_and_used(tf_modules, tmp_path, monkeypatch):
    import zipfile

    from data_setup.synth import synth_dataset

    s3f_training, _ = tf_modules
    monkeypatch.setenv("S3F_CACHE_DIR", str(tmp_path / "cache"))
    synth_dataset("BUSI", tmp_path / "src", count=4, size=24, seed=1)
    archive = tmp_path / "busi.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in (tmp_path / "src").rglob("*"):
            handle.write(path, path.relative_to(tmp_path / "src"))
    run = s3f_training.Run("Spatial_BUSI", data_zip=str(archive), output_dir=str(tmp_path), **TINY)
    assert not run.demo and os.path.isdir(run.dataset_root)
    assert run.data_dir == ""  # recorded as asked: the sweep that passed data_zip matches it
    again = s3f_training.Run(
        "Spatial_BUSI", data_zip=str(archive), output_dir=str(tmp_path), **TINY
    )
    assert again.dataset_root == run.dataset_root


FULL_DISK_END = "bytes free); free space there (or choose a folder on another disk) and run again"


def test_a_full_disk_at_a_resume_save_is_one_message_and_leaves_no_temp(
    keras, tf_modules, tmp_path, monkeypatch
):
    import errno
    from pathlib import Path

    s3f_training, _ = tf_modules
    run, data, model = _train(s3f_training, tmp_path)
    real_save = keras.Model.save

    def save(self, filepath, *args, **kwargs):
        if ".tmp" in Path(filepath).name:  # the resume state's temporary file: disk full
            Path(filepath).write_bytes(b"PK\x03\x04 half a zip")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", save)
    with pytest.raises(OSError) as raised:
        run.train(model, data)
    resume = run.run_dir / "resume"
    message = str(raised.value)
    assert isinstance(raised.value, s3f_training.DiskFullError)
    assert message.startswith(
        f"{resume}: the disk is full — the resume state (model and optimizer) could not be "
        "written ("
    )
    assert message.endswith(FULL_DISK_END)
    assert [p.name for p in resume.iterdir() if ".tmp" in p.name] == []


def test_training_onto_a_really_full_disk_leaves_no_temp_or_broken_model(tf_modules, tmp_path):
    import zipfile

    from tests.helpers import small_disk

    s3f_training, _ = tf_modules
    with small_disk(tmp_path / "disk", "2m") as disk:
        run, data, model = _train(s3f_training, disk)
        with pytest.raises(s3f_training.DiskFullError) as raised:
            run.train(model, data)
        message = str(raised.value)
        assert message.startswith(f"{run.run_dir}") and "the disk is full — " in message
        assert message.endswith(FULL_DISK_END)
        files = [p for p in disk.rglob("*") if p.is_file()]
        assert [p for p in files if ".tmp" in p.name] == []
        assert all(zipfile.is_zipfile(p) for p in files if p.suffix == ".keras")


def test_a_damaged_resume_state_says_to_delete_it(tf_modules, tmp_path, monkeypatch):
    s3f_training, _ = tf_modules
    monkeypatch.setenv("S3F_INTERRUPT_AFTER_EPOCH", "1")
    run, data, model = _train(s3f_training, tmp_path)
    with pytest.raises(s3f_training.SimulatedDisconnect):
        run.train(model, data)
    monkeypatch.delenv("S3F_INTERRUPT_AFTER_EPOCH")
    resume = run.run_dir / "resume"
    (resume / "model.keras").write_bytes(b"not a zip")
    rerun, data, model = _train(s3f_training, tmp_path)
    with pytest.raises(s3f_training.ResumeError) as raised:
        rerun.train(model, data)
    message = str(raised.value)
    assert message.startswith(
        f"{resume}: the saved state of an interrupted run cannot be continued ("
    )
    assert message.endswith("); delete that folder to train this run again from epoch 1")


def test_leakage_summary_counts_duplicates_and_gives_the_clean_accuracy(tf_modules):
    from s3f_kit.run import evaluation as s3f_evaluation

    result = {
        "accuracy": 0.9,
        "leaked_test_images": 3,
        "clean_test": {"images": 7, "accuracy": 6 / 7},
    }
    line = s3f_evaluation.leakage_summary(result)
    assert "3 of 10 test images have a near-duplicate in training" in line
    assert "clean-test accuracy 0.8571 on the other 7 (all: 0.9000)" in line
    empty = {"accuracy": 1.0, "leaked_test_images": 4, "clean_test": {"images": 0}}
    assert "no clean test image" in s3f_evaluation.leakage_summary(empty)
    shared = {**result, "test_images": 12, "shared_group_test_images": 2}
    assert "3 of 12 test images have a near-duplicate in training, 2 a patient or lesion" in (
        s3f_evaluation.leakage_summary(shared)
    )


@pytest.mark.parametrize("protocol", ["holdout", "paper"])
def test_a_run_reports_intervals_per_class_metrics_and_calibration(tf_modules, tmp_path, protocol):
    s3f_training, s3f_metrics = tf_modules
    run = s3f_training.Run(
        "Spatial_ChestXRay", epochs=1, protocol=protocol, output_dir=str(tmp_path), **TINY
    )
    data = run.load_data()
    run.train(run.build_model(data), data)
    metrics = json.loads(json.dumps(run.evaluate(data)))  # what metrics.json holds
    accuracy = metrics["intervals"]["accuracy"]
    assert accuracy["value"] == pytest.approx(metrics["accuracy"])
    assert accuracy["ci_low"] <= accuracy["value"] <= accuracy["ci_high"]
    assert metrics["intervals"]["bootstrap"]["resamples"] >= 2000
    assert set(metrics["per_class"]) == set(data.class_names)
    pneumonia = metrics["per_class"]["PNEUMONIA"]["sensitivity"]
    assert pneumonia["n"] == int(np.sum(data.splits["test"].labels == 1))
    calibration = metrics["calibration"]
    assert {"nll", "brier", "ece", "reliability"} <= set(calibration)
    scaling = calibration["temperature_scaling"]
    point = metrics["operating_point"]
    if protocol == "holdout":
        assert scaling["temperature"] > 0 and "after" in scaling
        assert 0 <= point["threshold"] <= 1 and "Youden" in point["status"]
    else:  # the paper's validation data is its test split: nothing is fitted or chosen on it
        assert "temperature" not in scaling and "paper protocol" in scaling["status"]
        assert "threshold" not in point and "test split" in point["status"]
    assert (run.run_dir / "reliability.png").stat().st_size > 0
    report = s3f_metrics.reviewer_report(metrics)
    assert "accuracy" in report and "[" in report and "PNEUMONIA" in report
