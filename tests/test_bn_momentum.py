"""BatchNorm momentum for the length of a run (issue 19.2): your own small dataset gets a faster
momentum and is told so; a paper experiment keeps 0.99 and is warned; the collapse warning
names the cause and the parameter."""

import cv2
import numpy as np
import pytest

from s3f_kit import experiments as s3f_experiments
from s3f_kit.experiments import bn_momentum_for, bn_steps_needed

TINY = dict(img_size=[16, 16], batch_size=8, verbose=0)


def test_the_ladder_runs_from_the_papers_momentum_to_the_demos():
    import keras

    ladder = s3f_experiments.BN_MOMENTUM_LADDER  # the paper's: Keras' default
    assert ladder[0] == keras.layers.BatchNormalization().momentum
    assert ladder[-1] == s3f_experiments.DEMO_BN_MOMENTUM
    assert list(ladder) == sorted(ladder, reverse=True)


@pytest.mark.parametrize(
    "steps, momentum",
    [(1, 0.9), (100, 0.9), (199, 0.9), (200, 0.95), (999, 0.95), (1000, 0.99), (10**6, 0.99)],
)
def test_the_slowest_momentum_that_settles_in_the_runs_steps(steps, momentum):
    assert bn_momentum_for(steps) == momentum


def test_settling_takes_ten_time_constants():
    assert [bn_steps_needed(m) for m in (0.99, 0.95, 0.9)] == [1000, 200, 100]


def test_the_papers_full_runs_keep_the_papers_momentum():
    # The smallest real training set: BUSI's 80 % of 780 images, batch 16, 200 epochs.
    recipe = s3f_experiments.RECIPES["BUSI"]
    assert bn_momentum_for(recipe.epochs * -(-624 // 16)) == 0.99


def _class_folders(root, per_class=12):
    from data_setup.synth import synth_image

    rng = np.random.default_rng(0)
    for label, name in enumerate(("a", "b", "c")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image, _ = synth_image(rng, label, 24, 24, 1, 3)
            cv2.imwrite(str(root / name / f"{i}.png"), image)
    return root


def _momenta(model, keras):
    return {
        layer.momentum
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }


def test_custom_run_chooses_a_faster_momentum_and_says_so(keras, kernel_env, tmp_path, capsys):
    from s3f_kit.run import training as s3f_training

    data_dir = _class_folders(tmp_path / "images")
    run = s3f_training.Run(
        "S3F_Custom", data_dir=str(data_dir), epochs=20, output_dir=str(tmp_path), **TINY
    )
    model = run.build_model(run.load_data())  # 29 training images: 4 steps × 20 epochs = 80
    assert _momenta(model, keras) == {0.9}
    out = capsys.readouterr().out
    assert "bn_momentum = 0.9 (paper: 0.99): 80 optimizer steps" in out
    assert run.settings()["bn_momentum"] is None  # the setting stays "auto": same run folder
    explicit = s3f_training.Run(
        "S3F_Custom", data_dir=str(data_dir), epochs=20, bn_momentum=0.99,
        output_dir=str(tmp_path), **TINY,
    )  # fmt: skip
    assert _momenta(explicit.build_model(explicit.load_data()), keras) == {0.99}
    assert "bn_momentum =" not in capsys.readouterr().out


def test_paper_experiment_keeps_099_and_warns(keras, kernel_env, tmp_path, capsys):
    from data_setup import synth_dataset
    from s3f_kit.run import training as s3f_training

    busi = synth_dataset("BUSI", tmp_path / "busi", count=4, size=48, seed=2)
    run = s3f_training.Run(
        "Spatial_BUSI", data_dir=str(busi), epochs=3, output_dir=str(tmp_path), **TINY
    )
    model = run.build_model(run.load_data())
    assert _momenta(model, keras) == {0.99}
    out = capsys.readouterr().out
    assert "WARNING:" in out and "-p bn_momentum 0.9 suits a run this short" in out


def test_collapse_warning_names_the_momentum_and_the_parameter(keras, kernel_env):
    import s3f_common
    from s3f_kit.run import evaluation as s3f_evaluation

    slow = s3f_common.build_model("spatial", (16, 16, 1), 3, bn_momentum=0.99)
    text = s3f_evaluation.collapse_warning("X", {"a": 6, "b": 0}, slow)
    assert "BatchNorm momentum 0.99" in text and "-p bn_momentum 0.9" in text
    fast = s3f_common.build_model("spatial", (16, 16, 1), 3, bn_momentum=0.9)
    assert "bn_momentum" not in s3f_evaluation.collapse_warning("X", {"a": 6}, fast)
