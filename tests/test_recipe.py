"""The training recipe's one home (issue 33): uncompiled model builders, s3f_kit.recipe compiling
and calling back, a learning-rate schedule registered as docs/extending.md shows reaching the
run's record, folder name and training, and the notebooks' recipe cell."""

import json

import pytest

from s3f_kit import config as s3f_config
from s3f_kit import notebooks as s3f_notebooks
from s3f_kit import recipe as s3f_recipe

TINY = dict(img_size=[16, 16], demo_count=6, batch_size=8, verbose=0, epochs=2)


@pytest.fixture
def schedules(monkeypatch):
    """A registry of the test's own: what it registers is gone afterwards."""
    monkeypatch.setattr(s3f_recipe, "SCHEDULES", dict(s3f_recipe.SCHEDULES))
    return s3f_recipe.SCHEDULES


def register_cosine():
    # docs/extending.md, "A new learning-rate schedule": the same lines
    import keras

    from s3f_kit import recipe as s3f_recipe

    s3f_recipe.register_schedule(
        "cosine",
        lambda learning_rate, total_steps: keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=total_steps
        ),
        doc="cosine decay from learning_rate to 0 over the run's optimizer steps",
    )


# --------------------------------------------------------------------------- no TensorFlow


def test_a_registered_schedule_names_the_run_folder_and_is_recorded(schedules):
    s3f_recipe.register_schedule("cosine", lambda learning_rate, total_steps: learning_rate)
    settings = s3f_config.expected_settings("S3F_Concat_BUSI", {"lr_schedule": "cosine"})
    assert settings["lr_schedule"] == "cosine"  # run_settings in metrics.json
    assert s3f_config.run_subdir("S3F_Concat_BUSI", settings) == "S3F_Concat_BUSI/cosine/seed42"
    assert "lr_schedule" in s3f_config.RunConfig(experiment="S3F_Concat_BUSI").compared_settings()


def test_the_papers_schedule_keeps_todays_folder_names():
    for settings in ({}, {"lr_schedule": s3f_recipe.PAPER_SCHEDULE}):
        assert s3f_config.run_subdir("S3F_Concat_BUSI", settings) == "S3F_Concat_BUSI/seed42"
    # a record written before lr_schedule existed resolves to the paper's schedule
    recorded = {"seed": 43, "protocol": "holdout", "fusion": "concat", "spectranet": 2}
    assert s3f_config.run_subdir("S3F_Concat_BUSI", recorded) == "S3F_Concat_BUSI/holdout/seed43"


def test_an_unknown_schedule_is_one_clear_sentence():
    with pytest.raises(ValueError, match=r"^lr_schedule must be one of 'plateau', got 'warp'$"):
        s3f_config.RunConfig(experiment="Spatial_BUSI", lr_schedule="warp").checked()
    with pytest.raises(ValueError, match="lowercase letters"):
        s3f_recipe.register_schedule("Cosine/2", lambda lr, steps: lr)
    with pytest.raises(ValueError, match="registered already"):
        s3f_recipe.register_schedule(s3f_recipe.PAPER_SCHEDULE, lambda lr, steps: lr)


def test_every_notebook_says_it_is_generated_and_shows_the_recipe():
    for name, text in s3f_notebooks.all_notebooks().items():
        cells = json.loads(text)["cells"]
        first = "".join(cells[0]["source"])
        assert cells[0]["cell_type"] == "markdown"
        assert "python -m s3f_kit.notebooks" in first and "Generated" in first, name
        if not name.startswith(("S3F_", "Spatial_", "SpectraNet_", "Baseline_")) or name in (
            "S3F_Explainability",
        ):
            continue
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        recipe = [c for c in code if "s3f_recipe.optimizer(run.learning_rate" in c]
        assert len(recipe) == 1, name  # a cell of its own
        calls = ("s3f_recipe.loss(model)", "s3f_recipe.compile_model(", "s3f_recipe.callbacks(")
        for call in calls:
            assert call in recipe[0], (name, call)
        assert "run.train(model, data, callbacks)" in code[code.index(recipe[0]) + 1], name


def test_resume_state_from_before_a_new_parameter_still_resumes(tmp_path, keras):
    from s3f_kit.run import callbacks as s3f_callbacks

    settings = s3f_config.RunConfig(experiment="Spatial_BUSI").compared_settings()
    older = {k: v for k, v in settings.items() if k != "lr_schedule"}
    (tmp_path / "state.json").write_text(json.dumps({"settings": older, "epoch": 1}))
    (tmp_path / "model.keras").write_bytes(b"")
    defaults = {"lr_schedule": s3f_recipe.PAPER_SCHEDULE}
    assert s3f_callbacks.ResumeState.load(tmp_path, settings, defaults)["epoch"] == 1
    # another schedule than the saved run's (the paper's, then) does not resume it
    other = {**settings, "lr_schedule": "cosine"}
    assert s3f_callbacks.ResumeState.load(tmp_path, other, defaults) is None


# --------------------------------------------------------------------------- TensorFlow


def test_the_model_builders_return_uncompiled_models_the_recipe_compiles(keras, kernel_env):
    import s3f_common

    binary = s3f_common.build_model("spatial", (16, 16, 1), 2, bn_momentum=0.99)
    multi = s3f_common.build_model("spectranet", (16, 16, 1), 3, bn_momentum=0.99)
    assert not binary.compiled and not multi.compiled
    s3f_recipe.compile_model(binary)
    s3f_recipe.compile_model(multi)
    assert binary.loss == "binary_crossentropy"
    assert multi.loss == "sparse_categorical_crossentropy"
    assert float(multi.optimizer.learning_rate) == pytest.approx(3e-4)  # the paper's Adam


def test_a_new_schedule_trains_resumes_and_reaches_the_record(
    schedules, keras, kernel_env, tmp_path, monkeypatch
):
    from s3f_kit.run import training as s3f_training

    register_cosine()
    settings = dict(TINY, output_dir=str(tmp_path), lr_schedule="cosine", epochs=3)
    run = s3f_training.Run("Spatial_BUSI", **settings)
    assert run.run_dir.relative_to(tmp_path).as_posix() == "Spatial_BUSI/cosine/seed42"
    data = run.load_data()
    model = run.build_model(data)  # uncompiled: train compiles it with the run's recipe
    with pytest.raises(s3f_training.SimulatedDisconnect):
        run.train(model, data, interrupt_after=1)
    assert (run.run_dir / "resume" / "state.json").is_file()

    rerun = s3f_training.Run("Spatial_BUSI", **settings)
    data = rerun.load_data()
    rerun.train(rerun.build_model(data), data)  # resumes: the saved cosine optimizer loads
    metrics = rerun.evaluate(data)
    assert metrics["run_settings"]["lr_schedule"] == "cosine"
    assert metrics["run_subdir"] == "Spatial_BUSI/cosine/seed42" and metrics["epochs_run"] == 3
    recipe = metrics["recipe"]
    assert recipe["lr_schedule"] == "cosine" and recipe["optimizer"] == "Adam"
    assert recipe["learning_rate"]["class"] == "CosineDecay"
    total = 3 * rerun.steps_per_epoch(data)
    assert recipe["learning_rate"]["decay_steps"] == total
    assert "ReduceLROnPlateau" not in {c["class"] for c in recipe["callbacks"]}
    assert json.loads((rerun.run_dir / "metrics.json").read_text())["recipe"] == recipe


# --------------------------------------------------------------------------- defaults, once


def test_run_config_decides_the_batchnorm_momentum_for_the_runs_steps():
    custom = s3f_config.RunConfig(experiment="S3F_Custom", data_dir="/data", epochs=20)
    momentum, reason, note = custom.resolved().bn_momentum_for(80)
    assert (momentum, reason) == (0.9, "chosen for 80 steps") and "80 optimizer steps" in note
    paper = s3f_config.RunConfig(experiment="S3F_Concat_BUSI", data_dir="/data", epochs=20)
    momentum, reason, note = paper.resolved().bn_momentum_for(80)
    assert (momentum, reason) == (0.99, "paper") and note.startswith("WARNING:")
    assert paper.resolved().bn_momentum_for(10**6) == (0.99, "paper", None)
    demo = s3f_config.RunConfig(experiment="S3F_Concat_BUSI").resolved()  # synthetic data
    assert demo.bn_momentum_for(80) == (0.9, "set", None)


def test_the_custom_input_size_is_set_once():
    from data_setup import custom as s3f_custom
    from s3f_kit import experiments as s3f_experiments

    size = s3f_custom.CUSTOM_IMAGE_SIZE
    assert s3f_experiments.CUSTOM_INFO.image_size == size
    resolved = s3f_config.RunConfig(experiment="S3F_Custom", data_dir="/data").resolved()
    assert resolved.img_size == list(size)
    intro = "".join(json.loads(s3f_notebooks.all_notebooks()["S3F_Custom"])["cells"][0]["source"])
    assert f"default {size[0]}×{size[1]}" in intro


def test_the_model_builder_has_no_hidden_batchnorm_momentum(keras, kernel_env):
    import inspect

    import s3f_common

    parameter = inspect.signature(s3f_common.build_model).parameters["bn_momentum"]
    assert parameter.default is inspect.Parameter.empty  # the run's value, given explicitly
    model = s3f_common.build_model("spatial", (16, 16, 1), 3, bn_momentum=0.9)
    norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert norms and {l.momentum for l in norms} == {0.9}
