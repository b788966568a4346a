"""Standard deep baselines (keras.applications) built without downloading anything, and FLOPs."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def baselines(keras):
    import s3f_baselines

    return s3f_baselines


@pytest.mark.parametrize("name", ["ResNet50V2", "DenseNet121", "EfficientNetV2B0"])
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
    path = tmp_path / "baseline.keras"
    model.save(path)
    again = s3f_common.load_model(path)
    assert np.allclose(again.predict(images, verbose=0), probs, atol=1e-6)


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
