"""s3f_common: architectures, the SpectralFilter maths, fusion, mixed precision, loading."""

import numpy as np
import pytest
import tensorflow as tf

import s3f_common
from s3f_kit import recipe as s3f_recipe
from s3f_kit import spectral_kernels as s3f_kernels
from s3f_kit.experiments import EXPERIMENTS
from tests import paper_format


# ---------------------------------------------------------------- independent parameter formula
def _conv(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def _bn(c):
    return 4 * c  # gamma, beta, moving mean, moving variance


def _spatial_params(channels):
    total, cin = 0, channels
    for width in (32, 64, 128, 256):
        total += _conv(3, cin, width) + _conv(3, width, width) + _bn(width)
        cin = width
    return total + 256 * 512 + 512 + _bn(512)


def _spectral_filter_params(cin, filters, h, w):
    return 2 * cin * filters * h * (w // 2 + 1) + filters


def _dwsep(cin, cout):
    return 9 * cin + _bn(cin) + cin * cout + _bn(cout)


def _spectranet_params(variant, h, w, c):
    funnel = 128 * 16 + 16 + _bn(16) + 16 * 4 + 4 + _bn(4)
    first = _spectral_filter_params(c, 32, h, w) + _bn(32)
    if variant == 1:
        return first + _dwsep(32, 64) + _dwsep(64, 128) + funnel
    return first + _spectral_filter_params(32, 64, h, w) + _bn(64) + _dwsep(64, 128) + funnel


def _expected_params(exp):
    h, w, c = exp.input_shape
    units = 1 if exp.num_classes == 2 else exp.num_classes
    if exp.architecture == "spatial":
        body, width = _spatial_params(c), 512
    elif exp.architecture == "spectranet":
        body, width = _spectranet_params(exp.spectranet, h, w, c), 4
    else:
        body = _spatial_params(c) + _spectranet_params(exp.spectranet, h, w, c)
        width = 2048 if exp.fusion == "bilinear" else 516
    return body + width * units + units


def test_registry_params_follow_the_spec_formula():
    # paper.md §1.5 gives three counts exactly; the formula must reproduce them and the registry.
    assert EXPERIMENTS["S3F_Bilinear_BRISC2025"].params == 3_443_592
    assert EXPERIMENTS["S3F_Concat_ChestXRay"].params == 7_638_409
    assert EXPERIMENTS["S3F_Concat_BUSI"].params == 138_700_851
    for exp in EXPERIMENTS.values():
        assert exp.params == _expected_params(exp), exp.name


def _build(exp):
    return s3f_common.build_model(
        exp.architecture,
        exp.input_shape,
        exp.num_classes,
        exp.fusion,
        exp.spectranet,
        bn_momentum=0.99,
    )


SMALL = [e.name for e in EXPERIMENTS.values() if e.params < 20_000_000]
LARGE = [e.name for e in EXPERIMENTS.values() if e.params >= 20_000_000]


@pytest.mark.parametrize("name", SMALL)
def test_paper_models_have_the_papers_parameter_count(name, keras):
    exp = EXPERIMENTS[name]
    model = _build(exp)
    assert model.count_params() == exp.params
    keras.backend.clear_session()


@pytest.mark.e2e
@pytest.mark.parametrize("name", LARGE)
def test_large_busi_models_have_the_papers_parameter_count(name, keras):
    exp = EXPERIMENTS[name]
    model = _build(exp)
    assert model.count_params() == exp.params
    del model
    keras.backend.clear_session()


def test_binary_task_uses_one_sigmoid_unit(keras):
    # the builder leaves compiling to the recipe
    model = s3f_recipe.compile_model(
        s3f_common.build_model("s3f", (32, 32, 1), 2, "concat", 1, bn_momentum=0.99)
    )
    head = model.get_layer("head")
    assert head.units == 1 and head.activation.__name__ == "sigmoid"
    assert model.loss == "binary_crossentropy"
    model = s3f_recipe.compile_model(
        s3f_common.build_model("spatial", (32, 32, 1), 3, bn_momentum=0.99)
    )
    assert model.get_layer("head").units == 3
    assert model.loss == "sparse_categorical_crossentropy"
    assert float(model.optimizer.learning_rate) == pytest.approx(3e-4)


# ---------------------------------------------------------------- SpectralFilter maths
def _circular_reference(x, spatial_kernels, groups):
    """y[..., f] = Σ_{c in groups[f]} x[..., c] ⊛ k[c, f] by direct summation (float64)."""
    batch, h, w, _ = x.shape
    out = np.zeros((batch, h, w, len(groups)))
    for f, pairs in enumerate(groups):
        for c, kernel in pairs:
            k = spatial_kernels[c][kernel]
            for dh in range(h):
                for dw in range(w):
                    out[..., f] += k[dh, dw] * np.roll(x[..., c], (dh, dw), axis=(1, 2))
    return out


def _full_spectrum(layer, weights):
    """The learned half-spectrum placed on the full (H, W//2+1) grid (zeros outside modes)."""
    if layer.modes is None:
        return weights
    mh, mw = layer.modes
    full = np.zeros(weights.shape[:2] + (layer.height, layer.width // 2 + 1), weights.dtype)
    full[:, :, :mh, :mw] = weights[:, :, :mh]
    full[:, :, layer.height - mh + 1 :, :mw] = weights[:, :, mh:]
    return full


def _reference_output(layer, x):
    real, imag, bias = (w.astype(np.float64) for w in layer.get_weights())
    spectrum = _full_spectrum(layer, real + 1j * imag)
    kernels = np.fft.irfft2(spectrum, s=(layer.height, layer.width))  # (C, m, H, W)
    channels = x.shape[-1]
    if layer.channel_mixing == "dense":
        groups = [[(c, f) for c in range(channels)] for f in range(layer.filters)]
    else:
        per = -(-layer.filters // channels)  # ⌈F / C⌉ filters per input, surplus dropped
        groups = [[(f // per, f % per)] for f in range(layer.filters)]
    return _circular_reference(x.astype(np.float64), kernels, groups) + bias


@pytest.mark.parametrize("height,width", [(6, 8), (7, 9), (6, 9), (7, 8)])
@pytest.mark.parametrize("channels", [1, 3])
def test_spectral_filter_is_a_sum_of_circular_convolutions(height, width, channels, keras):
    rng = np.random.default_rng(height * 10 + width + channels)
    x = rng.standard_normal((2, height, width, channels)).astype(np.float32)
    layer = s3f_common.SpectralFilter(4)
    y = layer(x).numpy()
    real, imag, bias = layer.get_weights()
    shape = (channels, 4, height, width // 2 + 1)
    assert real.shape == imag.shape == shape and bias.shape == (4,)
    bias[:] = rng.standard_normal(4)  # a nonzero bias must be part of the check
    layer.set_weights([real, imag, bias])
    y = layer(x).numpy()
    ref = _reference_output(layer, x)
    assert y.shape == ref.shape
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 1e-5


@pytest.mark.parametrize(
    "options,channels,filters,kernel_shape",
    [
        (dict(channel_mixing="depthwise"), 2, 4, (2, 2, 7, 5)),
        (dict(modes=(3, 2)), 2, 3, (2, 3, 5, 2)),
        (dict(channel_mixing="depthwise", modes=(2, 3)), 3, 3, (3, 1, 3, 3)),
        # RGB with F=32 (HAM10000): 11 filters per input channel, the 33rd dropped
        (dict(channel_mixing="depthwise"), 3, 32, (3, 11, 7, 5)),
        (dict(channel_mixing="depthwise"), 3, 4, (3, 2, 7, 5)),
    ],
)
def test_kit_filter_options_match_the_reference(options, channels, filters, kernel_shape, keras):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 7, 9, channels)).astype(np.float32)
    layer = s3f_common.SpectralFilter(filters, **options)
    layer.build(x.shape)
    assert layer.get_weights()[0].shape == kernel_shape
    y = layer(x).numpy()
    ref = _reference_output(layer, x)
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 1e-5


def test_spectral_filter_gradients_match_finite_differences(keras):
    rng = np.random.default_rng(3)
    x = tf.constant(rng.standard_normal((2, 5, 6, 2)))
    layer = s3f_common.SpectralFilter(3, dtype="float64")
    layer.build(x.shape)
    probe = tf.constant(rng.standard_normal((2, 5, 6, 3)))

    def loss():
        return tf.reduce_sum(layer(x) * probe)

    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss()
    grads = tape.gradient(value, layer.trainable_weights)
    eps = 1e-6
    for variable, grad in zip(layer.trainable_weights, grads, strict=False):
        flat = variable.numpy().ravel()
        for index in rng.choice(flat.size, size=min(6, flat.size), replace=False):
            for sign, store in ((1, "plus"), (-1, "minus")):
                bumped = flat.copy()
                bumped[index] += sign * eps
                variable.assign(bumped.reshape(variable.shape))
                if store == "plus":
                    plus = float(loss())
                else:
                    minus = float(loss())
            variable.assign(flat.reshape(variable.shape))
            numeric = (plus - minus) / (2 * eps)
            assert grad.numpy().ravel()[index] == pytest.approx(numeric, rel=1e-5, abs=1e-7)


def test_spectral_filter_rejects_bad_settings(keras):
    with pytest.raises(ValueError, match="at least the input channels"):
        s3f_common.SpectralFilter(2, channel_mixing="depthwise").build((None, 8, 8, 3))
    with pytest.raises(ValueError, match="exceed the spectrum"):
        s3f_common.SpectralFilter(2, modes=(5, 2)).build((None, 8, 8, 1))
    with pytest.raises(ValueError, match="channel_mixing"):
        s3f_common.SpectralFilter(2, channel_mixing="sparse")
    with pytest.raises(ValueError, match="static shape"):
        s3f_common.SpectralFilter(2).build((None, None, 8, 1))
    with pytest.raises(ValueError, match="architecture"):
        s3f_common.build_model("resnet", (32, 32, 1), 3, bn_momentum=0.99)
    with pytest.raises(ValueError, match="spectranet"):
        s3f_common.build_model("spectranet", (32, 32, 1), 3, spectranet=3, bn_momentum=0.99)


def test_bilinear_fusion_matches_formula_and_has_unit_norm(keras):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 5)).astype(np.float32)
    b = rng.standard_normal((3, 2)).astype(np.float32)
    out = s3f_common.BilinearFusion()([a, b]).numpy()
    outer = (a[:, :, None] * b[:, None, :]).reshape(3, 10).astype(np.float64)
    expected = np.sign(outer) * np.sqrt(np.abs(outer) + 1e-5)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


# ---------------------------------------------------------------- mixed precision
@pytest.mark.parametrize(
    "architecture,fusion,spectranet",
    [
        ("spatial", "concat", 1),
        ("spectranet", "concat", 2),
        ("s3f", "concat", 1),
        ("s3f", "bilinear", 2),
    ],
)
def test_mixed_precision_builds_and_trains_one_step(architecture, fusion, spectranet, keras):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = s3f_common.build_model(
            architecture, (16, 16, 1), 3, fusion, spectranet, bn_momentum=0.99
        )
        s3f_recipe.compile_model(model)
        spectral = [l for l in model.layers if isinstance(l, s3f_common.SpectralFilter)]
        assert all(l.compute_dtype == "float16" for l in spectral)
        assert all(w.dtype == "float32" for l in spectral for w in l.weights)
        assert model.get_layer("head").compute_dtype == "float32"
        assert model.outputs[0].dtype == "float32"
        x = np.random.default_rng(0).random((4, 16, 16, 1)).astype(np.float32)
        before = [w.copy() for w in model.get_weights()]
        history = model.fit(x, np.array([0, 1, 2, 0]), batch_size=4, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        changed = [
            not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=False)
        ]
        assert any(changed)
    finally:
        keras.mixed_precision.set_global_policy("float32")
        keras.backend.clear_session()


# ---------------------------------------------------------------- saving and loading
def test_kit_model_round_trips_through_keras_file(tmp_path, keras):
    model = s3f_common.build_model(
        "s3f", (24, 20, 1), 3, "bilinear", 2, modes=(4, 3), bn_momentum=0.99
    )
    x = np.random.default_rng(2).random((3, 24, 20, 1)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    path = tmp_path / "kit.keras"
    model.save(path)
    loaded = s3f_common.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)
    assert loaded.get_layer("spectral_filter1").modes == (4, 3)


@pytest.mark.parametrize("module", ["__main__", None, "ipykernel_launcher_notebook"])
def test_paper_release_format_loads_and_predicts_identically(tmp_path, module, keras):
    inputs = keras.Input((20, 18, 1))
    spatial = keras.layers.Dense(6)(keras.layers.GlobalAveragePooling2D()(inputs))
    spectral = paper_format.SpectralFilterLayer(4)(inputs)
    spectral = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(spectral))
    fused = paper_format.BilinearFusion()([spatial, spectral])
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(fused))
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(4).random((3, 20, 18, 1)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    path = tmp_path / "Bilinear_S3F-Net_SN1_paper_style.keras"
    model.save(path)
    assert paper_format.set_module(path, module) == 2

    loaded = s3f_common.load_model(path)
    assert any(isinstance(layer, s3f_common.SpectralFilter) for layer in loaded.layers)
    assert any(isinstance(layer, s3f_common.BilinearFusion) for layer in loaded.layers)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)


def test_a_whole_s3f_net_in_paper_format_round_trips(tmp_path, keras):
    model = s3f_common.build_model("s3f", (32, 24, 1), 3, "bilinear", 2, bn_momentum=0.99)
    x = np.random.default_rng(5).random((2, 32, 24, 1)).astype(np.float32)
    path = tmp_path / "paper.keras"
    assert paper_format.save_in_paper_format(model, path) == 3  # two filters + the fusion
    loaded = s3f_common.load_model(path)
    assert loaded.count_params() == model.count_params()
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_load_model_names_the_file_on_garbage(tmp_path, keras):
    path = tmp_path / "broken.keras"
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.keras"):
        s3f_common.load_model(path)


# ---------------------------------------------------------------- fast forms vs 0.2.2's layer
def _reference_form():
    """SpectralFilter computed as 0.2.2 did: one FFT op each way, TensorFlow's gradients, the
    einsum over a complex kernel."""
    from unittest import mock

    return mock.patch.object(s3f_common.SpectralFilter, "call", s3f_kernels.einsum_call)


def _outputs_and_gradients(layer, x, probe):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * probe)
    return [y, *tape.gradient(loss, [*layer.trainable_weights, x])]


@pytest.mark.parametrize(
    "batch,channels,filters,rows,cols",
    [(2, 3, 5, 7, 5), (3, 32, 64, 8, 5), (1, 2, 2, 1, 1), (4, 6, 3, 9, 4)],
)
def test_frequency_major_mixing_equals_the_einsum(batch, channels, filters, rows, cols):
    rng = np.random.default_rng(channels * filters + rows)
    shape = (batch, channels, rows, cols)
    x = tf.Variable(tf.complex(*(rng.standard_normal(shape).astype(np.float32) for _ in "ri")))
    real, imag = (
        tf.Variable(rng.standard_normal((channels, filters, rows, cols)).astype(np.float32))
        for _ in "ri"
    )
    probe = rng.standard_normal((batch, filters, rows, cols)).astype(np.float32)
    results = []
    for mix in (
        lambda: s3f_kernels.gauss_frequency_major_mix(x, real, imag),
        lambda: s3f_kernels.einsum_mix(x, tf.complex(real, imag)),
    ):
        with tf.GradientTape() as tape:
            y = mix()
            loss = tf.reduce_sum(tf.math.real(y) * probe - 2 * tf.math.imag(y) * probe)
        results.append([y, *tape.gradient(loss, [x, real, imag])])
    for got, expected in zip(*results, strict=True):
        got, expected = got.numpy(), expected.numpy()
        assert got.shape == expected.shape
        assert np.linalg.norm(got - expected) <= 1e-5 * np.linalg.norm(expected)


@pytest.mark.parametrize(
    "shape,options,dtype,tolerance",
    [
        ((2, 12, 9, 3), {}, "float32", 1e-5),  # odd width
        ((2, 11, 10, 4), {"modes": (3, 4)}, "float32", 1e-5),  # cropped spectrum
        ((2, 8, 7, 3), {"channel_mixing": "depthwise"}, "float32", 1e-5),
        ((2, 8, 8, 1), {}, "float32", 1e-5),  # one input channel: the broadcast product
        ((2, 9, 8, 3), {}, "float64", 1e-12),
        ((2, 8, 10, 3), {}, "mixed_float16", 2e-3),  # float16 output, float32 FFT and mixing
    ],
)
def test_spectral_filter_equals_its_einsum_form(shape, options, dtype, tolerance, keras):
    rng = np.random.default_rng(sum(shape))
    layer = s3f_common.SpectralFilter(5, dtype=dtype, **options)
    layer.build(shape)
    x = rng.standard_normal(shape).astype(np.float32)
    probe = rng.standard_normal((*shape[:3], 5)).astype(np.float32)
    got = _outputs_and_gradients(layer, x, probe)
    with _reference_form():
        expected = _outputs_and_gradients(layer, x, probe)
    assert len(got) == 5  # output; real, imag and bias gradients; input gradient
    for a, b in zip(got, expected, strict=True):
        a, b = (np.asarray(t, dtype=np.float64) for t in (a, b))
        assert np.linalg.norm(a - b) <= tolerance * np.linalg.norm(b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows,cols", [(8, 10), (7, 9), (6, 1), (5, 2)])
def test_the_lighter_rfft2d_gradient_equals_tensorflows(rows, cols, dtype):
    rng = np.random.default_rng(rows * cols)
    x = tf.constant(rng.standard_normal((3, 2, rows, cols)).astype(dtype))
    probe = tf.complex(
        *(tf.constant(rng.standard_normal((3, 2, rows, cols // 2 + 1)).astype(dtype)) for _ in "ri")
    )
    gradients = []
    for rfft in (s3f_kernels.rfft2d, lambda t: tf.signal.rfft2d(t, fft_length=[rows, cols])):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = rfft(x)
            loss = tf.reduce_sum(tf.math.real(y * tf.math.conj(probe))) + tf.reduce_sum(tf.abs(y))
        gradients.append(tape.gradient(loss, x).numpy())
        outputs = y.numpy()
    np.testing.assert_array_equal(s3f_kernels.rfft2d(x).numpy(), outputs)
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    assert np.linalg.norm(gradients[0] - gradients[1]) <= tolerance * np.linalg.norm(gradients[1])


@pytest.mark.parametrize("batch,pieces", [(5, 2), (3, 4), (1, 2), (0, 3), (8, 8)])
def test_ffts_in_pieces_change_no_number(batch, pieces):
    """Cutting the batch into concurrent pieces: the same outputs and gradients as one op."""
    rng = np.random.default_rng(batch + pieces)
    x = tf.constant(rng.standard_normal((batch, 6, 10, 3)).astype(np.float32))

    def forward(part):
        return s3f_kernels.rfft2d(tf.transpose(part, [0, 3, 1, 2]))

    results = []
    for count in (1, pieces):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.function(lambda t, n=count: s3f_kernels.in_pieces(forward, t, n))(x)
            loss = tf.reduce_sum(tf.abs(y) ** 2)
        results.append((y.numpy(), tape.gradient(loss, x).numpy()))
    assert results[0][0].shape == (batch, 3, 6, 6)
    for one, cut in zip(*results, strict=True):
        np.testing.assert_allclose(cut, one, rtol=1e-6, atol=1e-6)


def test_fft_pieces_follow_the_device_and_the_thread_pool():
    from unittest import mock

    count = s3f_kernels.fft_pieces.__wrapped__
    with mock.patch.object(tf.config, "list_logical_devices", lambda kind: ["GPU:0"]):
        assert count() == 1  # a GPU: one op per FFT
    with mock.patch.object(tf.config, "list_logical_devices", lambda kind: []):
        with mock.patch.object(tf.config.threading, "get_inter_op_parallelism_threads", lambda: 2):
            assert count() == 2  # S3F_DETERMINISTIC's thread count
        with mock.patch.object(tf.config.threading, "get_inter_op_parallelism_threads", lambda: 64):
            assert count() == s3f_kernels.MAX_FFT_PIECES


def test_a_model_saved_with_the_einsum_form_predicts_identically(tmp_path, keras):
    """Same variables (names, shapes, order) as 0.2.2: its files load and predict the same."""
    with _reference_form():
        model = s3f_common.build_model("s3f", (32, 24, 3), 3, "concat", 2, bn_momentum=0.99)
        x = np.random.default_rng(9).random((3, 32, 24, 3)).astype(np.float32)
        expected = model(x, training=False).numpy()
        model.save(tmp_path / "einsum.keras")
    loaded = s3f_common.load_model(tmp_path / "einsum.keras")
    second = loaded.get_layer("spectral_filter2")
    names = [v.path.split("/")[-1] for v in second.weights]
    assert names == ["real_weights", "imag_weights", "bias"]
    assert second.get_weights()[0].shape == (32, 64, 32, 13)
    np.testing.assert_allclose(loaded(x, training=False).numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "experiment,settings",
    [
        ("S3F_Concat_BUSI", {"img_size": [32, 32]}),
        ("S3F_Bilinear_HAM10000", {"img_size": [24, 30], "spectranet": 2}),
        ("SpectraNet_ChestXRay", {"img_size": [32, 24], "channel_mixing": "depthwise"}),
        ("SpectraNet_BUSI", {"img_size": [32, 32], "modes": [4, 5]}),
        ("S3F_Custom", {"img_size": [20, 20], "channels": 3}),
    ],
)
def test_estimated_parameters_are_within_a_percent(experiment, settings, keras):
    from s3f_kit import experiments as s3f_experiments

    exp = s3f_experiments.get_experiment(experiment)
    channels = settings.get("channels") or exp.info.channels
    model = s3f_common.build_model(
        exp.architecture,
        (*settings["img_size"], channels),
        exp.num_classes if exp.paper else 4,
        exp.fusion,
        settings.get("spectranet", exp.spectranet),
        channel_mixing=settings.get("channel_mixing", "dense"),
        modes=settings.get("modes"),
        bn_momentum=0.99,
    )
    estimate = s3f_experiments.estimated_parameters(experiment, settings)
    assert abs(estimate - model.count_params()) <= 0.01 * model.count_params()
