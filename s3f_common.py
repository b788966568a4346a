"""S³F-Net model library: the SpectralFilter layer, the two towers, fusion, and model loading.

Every notebook, the sweep runner and the tests build models through `build_model` and load them
through `load_model`, so the architecture lives in exactly one place. Architecture follows the
paper (Siddiqui & Bhuiyan, 2025); options beyond the paper are marked "kit".

Why ~500 lines: the layers, towers, heads and the loading of saved models are the model a
reader checks against the paper, in one file as the paper's notebooks had it; the released
models and their download are s3f_releases; the record a model travels with (its
preprocessing) is s3f_preprocessing, beside this module, read without TensorFlow.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import keras
import tensorflow as tf
from keras import layers

from s3f_kit import experiments as s3f_experiments
from s3f_kit import fusions as s3f_fusions
from s3f_kit import modelfile as s3f_modelfile
from s3f_kit import recipe as s3f_recipe
from s3f_kit import spectral_kernels as s3f_spectral_kernels
from s3f_kit.experiments import ARCHITECTURES, CHANNEL_MIXINGS, FUSIONS, max_modes  # noqa: F401


@keras.saving.register_keras_serializable(package="s3f")
class SpectralFilter(layers.Layer):
    """Learnable filter in the 2-D Fourier domain (the paper's `SpectralFilterLayer`).

    y[..., f] = irfft2d( Σ_c rfft2d(x[..., c]) ⊙ (real_weights + i·imag_weights)[c, f] ) + bias[f]

    Args:
        filters: number of output channels F.
        channel_mixing: "dense" (paper: every output sums over all input channels) or
            "depthwise" (kit: output channel f filters input channel f // ⌈F / C⌉ only).
        modes: None (paper: learn every frequency) or (mh, mw) (kit, FNO-style): learn only
            row frequencies |k| < mh and column frequencies k < mw; the rest are zeroed.
    """

    def __init__(self, filters, channel_mixing="dense", modes=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(f"SpectralFilter: filters must be a positive int, got {filters!r}")
        if channel_mixing not in CHANNEL_MIXINGS:
            raise ValueError(
                f"SpectralFilter: channel_mixing must be one of {CHANNEL_MIXINGS}, "
                f"got {channel_mixing!r}"
            )
        if modes is not None:
            modes = tuple(int(m) for m in modes)
            if len(modes) != 2 or min(modes) < 1:
                raise ValueError(f"SpectralFilter: modes must be None or two ints ≥ 1, got {modes}")
        self.filters = filters
        self.channel_mixing = channel_mixing
        self.modes = modes

    def build(self, input_shape):
        if len(input_shape) != 4 or None in input_shape[1:]:
            raise ValueError(
                "SpectralFilter expects inputs of static shape (batch, H, W, C); "
                f"got {tuple(input_shape)}"
            )
        _, height, width, channels = input_shape
        self.height, self.width, self.channels = int(height), int(width), int(channels)
        if self.modes is not None:
            mh, mw = self.modes
            most = max_modes(self.height, self.width)
            if mh > most[0] or mw > most[1]:
                raise ValueError(
                    f"SpectralFilter: modes {self.modes} exceed the spectrum of a "
                    f"{self.height}×{self.width} input (at most {most})"
                )
        if self.channel_mixing == "depthwise" and self.filters < self.channels:
            raise ValueError(
                f"SpectralFilter(channel_mixing='depthwise'): filters ({self.filters}) must "
                f"be at least the input channels ({self.channels})"
            )
        # Depthwise: ceil(F / C) filters per input channel; when C does not divide F (RGB with
        # F=32: 11 per channel) the surplus last ones are dropped, so input c feeds outputs
        # c·⌈F/C⌉ … and every output still filters exactly one input channel.
        shape = s3f_experiments.spectral_kernel_shape(
            self.height, self.width, self.channels, self.filters, self.channel_mixing, self.modes
        )
        # Creation order real, imag, bias matches the paper's saved files.
        # autocast=False: under mixed precision the weights must reach the FFT in float32.
        self.real_weights = self.add_weight(
            name="real_weights", shape=shape, initializer="glorot_uniform", autocast=False
        )
        self.imag_weights = self.add_weight(
            name="imag_weights", shape=shape, initializer="glorot_uniform", autocast=False
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.filters,), initializer="zeros", autocast=False
        )

    def _crop(self, spectrum):
        """Keep the learned low-frequency band (kit `modes` option)."""
        if self.modes is None:
            return spectrum
        mh, mw = self.modes
        top = spectrum[:, :, :mh, :mw]
        bottom = spectrum[:, :, self.height - mh + 1 :, :mw]
        return tf.concat([top, bottom], axis=2)

    def _uncrop(self, spectrum):
        """Place the learned band back into a zero full half-spectrum."""
        if self.modes is None:
            return spectrum
        mh, mw = self.modes
        top, bottom = spectrum[:, :, :mh], spectrum[:, :, mh:]
        middle_rows = self.height - (2 * mh - 1)
        zeros_shape = tf.concat([tf.shape(top)[:2], [middle_rows, mw]], axis=0)
        full = tf.concat([top, tf.zeros(zeros_shape, spectrum.dtype), bottom], axis=2)
        return tf.pad(full, [[0, 0], [0, 0], [0, 0], [0, self.width // 2 + 1 - mw]])

    def _mix(self, spectrum, kernel):
        """Σ_c X[b, c] ⊙ K[c, f] for one kernel tensor, real or complex (the TFLite form mixes
        real and imaginary parts separately through this)."""
        if self.channel_mixing == "depthwise":
            mixed = spectrum[:, :, None] * kernel[None]  # (B, C, m, h, w)
            shape = tf.shape(mixed)
            per_input = kernel.shape[1]
            flat = tf.reshape(
                mixed, tf.concat([shape[:1], [self.channels * per_input], shape[3:]], 0)
            )
            return flat[:, : self.filters]
        if self.channels == 1:
            # One input channel: a broadcast product, no matmul and no transposes (2–3× faster
            # than the einsum in forward+backward; benchmarks/bench_spectral_filter.py).
            return spectrum * kernel[0][None]
        kernels = s3f_spectral_kernels
        return kernels.from_frequency_major(
            tf.matmul(kernels.to_frequency_major(spectrum), kernels.to_frequency_major(kernel)),
            kernel.shape,
        )

    def _mix_complex(self, spectrum, real, imag):
        """Σ_c X[b, c] ⊙ (real + i·imag)[c, f], the fastest equivalent form for each case."""
        if self.channel_mixing == "dense" and self.channels > 1:
            return s3f_spectral_kernels.gauss_frequency_major_mix(spectrum, real, imag)
        return self._mix(spectrum, tf.complex(real, imag))

    def call(self, inputs):
        kernels = s3f_spectral_kernels  # how each step is computed fastest: see that module
        fft_dtype = kernels.fft_dtype(self.compute_dtype)
        x = tf.cast(inputs, fft_dtype)

        def forward_fft(part):  # FFTs act on the two innermost axes
            return kernels.rfft2d(tf.transpose(part, [0, 3, 1, 2]))

        def inverse_fft(part):
            return tf.transpose(kernels.irfft2d(part, self.height, self.width), [0, 2, 3, 1])

        spectrum = self._crop(kernels.in_pieces(forward_fft, x))
        real = tf.cast(self.real_weights, fft_dtype)
        imag = tf.cast(self.imag_weights, fft_dtype)
        mixed = self._uncrop(self._mix_complex(spectrum, real, imag))
        y = kernels.in_pieces(inverse_fft, mixed) + tf.cast(self.bias, fft_dtype)
        return tf.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            channel_mixing=self.channel_mixing,
            modes=self.modes,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # the base Layer keys differ between Keras versions (3.9+ adds autocast, ...)
        known = {"filters", "channel_mixing", "modes", *layers.Layer().get_config()}
        unknown = sorted(set(config) - known)
        if unknown:
            warnings.warn(f"SpectralFilter: ignoring unknown config keys {unknown}", stacklevel=2)
            for key in unknown:
                config.pop(key)
        return cls(**config)


@keras.saving.register_keras_serializable(package="s3f")
class BilinearFusion(layers.Layer):
    """Outer product of two vectors, flattened, signed square root, then L2-normalised."""

    epsilon = 1e-5

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError(f"BilinearFusion expects two inputs, got {input_shape}")
        if any(len(shape) != 2 for shape in input_shape):
            raise ValueError(f"BilinearFusion expects two (batch, dim) inputs, got {input_shape}")

    def call(self, inputs):
        # float32 even under mixed precision: sqrt of tiny values and the norm need the range.
        a, b = (tf.cast(t, "float32") for t in inputs)
        outer = tf.einsum("bi,bj->bij", a, b)
        flat = tf.reshape(outer, [-1, a.shape[-1] * b.shape[-1]])
        signed_sqrt = tf.sign(flat) * tf.sqrt(tf.abs(flat) + self.epsilon)
        return tf.cast(tf.math.l2_normalize(signed_sqrt, axis=-1), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        (batch, dim_a), (_, dim_b) = input_shape
        return (batch, dim_a * dim_b)


# --------------------------------------------------------------------------- towers and heads

SPATIAL_STAGES = ((32, 0.2), (64, 0.3), (128, 0.4), (256, 0.4))


def spatial_encoder(inputs, bn_momentum):
    """The deep CNN tower: four conv stages, GAP, Dense(512) → the 512-d spatial vector."""
    x = inputs
    for stage, (width, dropout) in enumerate(SPATIAL_STAGES, start=1):
        x = layers.Conv2D(
            width, 3, padding="same", activation="relu", name=f"spatial{stage}_conv1"
        )(x)
        x = layers.Conv2D(width, 3, padding="same", name=f"spatial{stage}_conv2")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"spatial{stage}_bn")(x)
        x = layers.ReLU(name=f"spatial{stage}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"spatial{stage}_pool")(x)
        x = layers.Dropout(dropout, name=f"spatial{stage}_dropout")(x)
    x = layers.GlobalAveragePooling2D(name="spatial_gap")(x)
    x = layers.Dense(512, activation="relu", name="spatial_dense")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name="spatial_dense_bn")(x)
    return layers.Dropout(0.5, name="spatial_vector")(x)


def _depthwise_separable(x, width, name, bn_momentum):
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(width, 1, padding="same", use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_pw_bn")(x)
    return layers.ReLU(name=f"{name}_pw_relu")(x)


def _spectral_block(x, filters, index, bn_momentum, **filter_options):
    x = SpectralFilter(filters, name=f"spectral_filter{index}", **filter_options)(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"spectral_filter{index}_bn")(x)
    return layers.ReLU(name=f"spectral_filter{index}_relu")(x)


def spectranet_branch(inputs, variant, bn_momentum, **filter_options):
    """SpectraNet-1 or -2 followed by the funnel head → the 4-d spectral summary vector."""
    widths = s3f_experiments.SPECTRAL_FILTERS.get(variant)
    if variant == 1:
        x = _spectral_block(inputs, widths[0], 1, bn_momentum, **filter_options)
        x = _depthwise_separable(x, 64, "spectral_sep1", bn_momentum)
        x = layers.MaxPooling2D(2, name="spectral_pool1")(x)
        x = _depthwise_separable(x, 128, "spectral_sep2", bn_momentum)
        x = layers.MaxPooling2D(2, name="spectral_pool2")(x)
    elif variant == 2:
        x = _spectral_block(inputs, widths[0], 1, bn_momentum, **filter_options)
        x = _spectral_block(x, widths[1], 2, bn_momentum, **filter_options)
        x = _depthwise_separable(x, 128, "spectral_sep1", bn_momentum)
        x = layers.MaxPooling2D(2, name="spectral_pool1")(x)
    else:
        raise ValueError(f"spectranet must be 1 or 2, got {variant!r}")
    x = layers.GlobalAveragePooling2D(name="spectral_gap")(x)
    x = layers.Dense(16, activation="relu", name="funnel_dense16")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name="funnel_bn16")(x)
    x = layers.Dropout(0.1875, name="funnel_dropout16")(x)
    x = layers.Dense(4, activation="relu", name="funnel_dense4")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name="funnel_bn4")(x)
    return layers.Dropout(0.3125, name="spectral_vector")(x)


def control_branch(inputs, variant, bn_momentum):
    """The parameter-matched spatial stand-in for SpectraNet-1 or -2 (kit, issue 35; sizes in
    s3f_experiments "the matched control"): 3×3 convolutions where SpectraNet has its
    SpectralFilters, the same separable tail, a Flatten + Dense readout sized to SpectraNet's
    parameter count, and the same funnel → a 4-d vector, so fusion and head are unchanged."""
    widths = s3f_experiments.SPECTRAL_FILTERS.get(variant)
    if widths is None:
        raise ValueError(f"spectranet must be 1 or 2, got {variant!r}")
    x = inputs
    for index, filters in enumerate(widths, start=1):
        kernel = s3f_experiments.CONTROL_KERNEL
        x = layers.Conv2D(filters, kernel, padding="same", name=f"control_conv{index}")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"control_conv{index}_bn")(x)
        x = layers.ReLU(name=f"control_conv{index}_relu")(x)
    tail = (64, 128) if variant == 1 else (128,)  # SpectraNet's, stage for stage
    for stage, width in enumerate(tail, start=1):
        x = _depthwise_separable(x, width, f"control_sep{stage}", bn_momentum)
        x = layers.MaxPooling2D(2, name=f"control_pool{stage}")(x)
    units = s3f_experiments.control_units(inputs.shape[1:3], inputs.shape[3], variant)
    x = layers.Flatten(name="control_flatten")(x)
    x = layers.Dense(units, activation="relu", name="control_readout")(x)
    x = layers.Dense(s3f_experiments.FUNNEL_WIDTH, activation="relu", name="control_dense16")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name="control_bn16")(x)
    x = layers.Dropout(0.1875, name="control_dropout16")(x)
    x = layers.Dense(4, activation="relu", name="control_dense4")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name="control_bn4")(x)
    return layers.Dropout(0.3125, name="control_vector")(x)


def is_binary(num_classes: int) -> bool:
    """The paper's binary task (Chest X-Ray) uses one sigmoid unit instead of a 2-way softmax."""
    return num_classes == 2


def build_model(
    architecture,
    input_shape,
    num_classes,
    fusion="concat",
    spectranet=1,
    *,
    channel_mixing="dense",
    modes=None,
    bn_momentum,
    name=None,
):
    """Build one of the paper's models, uncompiled: the training recipe (optimizer, loss,
    schedule, callbacks) is s3f_kit.recipe's, which compiles it (`compile_model`).

    architecture: "spatial" (CNN baseline), "spectranet" (spectral branch alone), "s3f", or
        "control" (kit: S³F-Net with a parameter-matched spatial CNN in place of SpectraNet).
    input_shape: (H, W, C). num_classes: 2 → one sigmoid unit (paper's Chest X-Ray head).
    fusion / spectranet: S³F-Net fusion (a name of s3f_fusions: the paper's "concat" |
        "bilinear") and SpectraNet variant (1 | 2).
    channel_mixing / modes: kit options of every SpectralFilter (see its docstring).
    bn_momentum: every BatchNormalization's momentum, given explicitly: a run's comes from
        RunConfig.bn_momentum_for (the paper's 0.99, Keras' default; 0.9 on the demo's few
        hundred steps, where 0.99 moving statistics are still far from the data).
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    s3f_fusions.get(fusion)  # a registered fusion, or one clear error
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (H, W, C) with positive sizes, got {input_shape}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int ≥ 2, got {num_classes!r}")

    bn_momentum = float(bn_momentum)
    inputs = keras.Input(input_shape, name="image")
    filter_options = dict(channel_mixing=channel_mixing, modes=modes)
    if architecture == "spatial":
        features = spatial_encoder(inputs, bn_momentum)
    elif architecture == "spectranet":
        features = spectranet_branch(inputs, spectranet, bn_momentum, **filter_options)
    else:
        spatial = spatial_encoder(inputs, bn_momentum)
        if architecture == s3f_experiments.CONTROL_ARCHITECTURE:  # the same fusion and head
            spectral = control_branch(inputs, spectranet, bn_momentum)
        else:
            spectral = spectranet_branch(inputs, spectranet, bn_momentum, **filter_options)
        features = fuse(fusion, spatial, spectral)
    # float32 head: keeps softmax/sigmoid stable under a mixed_float16 policy.
    if is_binary(num_classes):
        outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="head")(features)
    else:
        outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="head")(
            features
        )
    return keras.Model(inputs, outputs, name=name or f"{architecture}_{fusion}_sn{spectranet}")


# --------------------------------------------------------------------------- loading


@keras.saving.register_keras_serializable(package="s3f")
class SpectralFilterLayer(SpectralFilter):
    """The paper's class name. Keras stores a layer's weights under its snake-cased *class*
    name (`layers/spectral_filter_layer/vars`), so the paper's files load only into a class
    called exactly this."""


# The kit's own layer classes by the names model files record, the paper's release files too
# (saved from a notebook, module "__main__"); s3f_fusions names BilinearFusion's class here.
CUSTOM_OBJECTS = {
    "SpectralFilterLayer": SpectralFilterLayer,
    "SpectralFilter": SpectralFilter,
    "BilinearFusion": BilinearFusion,
}


def fusion_layer_class(fusion: str) -> type:
    """The Keras layer class that joins the two branch vectors in a `fusion` S³F-Net."""
    layer = s3f_fusions.get(fusion).layer
    if isinstance(layer, type):
        return layer
    return CUSTOM_OBJECTS[layer] if layer in CUSTOM_OBJECTS else getattr(layers, layer)


def fuse(fusion: str, spatial, spectral):
    """The joint feature vector: the registered fusion's layer on the two branch vectors."""
    return fusion_layer_class(fusion)(name="fusion")([spatial, spectral])


def fusion_of(layer) -> str | None:
    """The registered fusion whose layer `layer` is, or None. The nearest class of its MRO
    decides: the paper-format BilinearFusion (a subclass, tests/paper_format.py) is bilinear."""
    classes = {fusion_layer_class(name): name for name in s3f_fusions.REGISTRY}
    return next((classes[kind] for kind in type(layer).__mro__ if kind in classes), None)


def fusion_layers(model) -> list:
    """The layers of `model` that fuse two branch vectors, in model order: a registered
    fusion's layer called on two (batch, width) tensors (a baseline's gray → RGB Concatenate of
    images is not one)."""
    return [
        layer
        for layer in model.layers
        if fusion_of(layer) is not None
        and isinstance(layer.input, (list, tuple))
        and len(layer.input) == 2
        and all(len(tensor.shape) == 2 for tensor in layer.input)
    ]


def custom_objects() -> dict:
    """What Keras may build beyond its own classes: the kit's, and every registered fusion's
    layer class (the model-file check allows exactly these names, s3f_modelfile)."""
    brought = (f.layer for f in s3f_fusions.REGISTRY.values() if isinstance(f.layer, type))
    return {**CUSTOM_OBJECTS, **{kind.__name__: kind for kind in brought}}


def num_classes_of(model) -> int:
    """Classes predicted by a model: a single sigmoid unit means the binary task (2)."""
    units = model.outputs[0].shape[-1]
    return 2 if units == 1 else int(units)


def _build_args(config: dict) -> dict | None:
    """build_model's arguments for a model the kit built, read from its saved config.json (the
    kit names every layer), or None when the file holds some other model."""
    layers_ = config.get("config", {}).get("layers", [])
    found = {layer.get("config", {}).get("name"): layer for layer in layers_}
    if "image" not in found or "head" not in found:
        return None
    branches = ("spatial_vector" in found, "spectral_vector" in found)
    architecture = {(True, True): "s3f", (True, False): "spatial", (False, True): "spectranet"}
    if "control_vector" in found:
        branches, architecture = (True, True), {(True, True): "control"}
    if branches not in architecture:
        return None
    joined_by = found.get("fusion", {}).get("class_name")
    fusions = [f.name for f in s3f_fusions.REGISTRY.values() if f.layer_name == joined_by]
    if branches == (True, True) and not fusions:
        return None  # a fusion this Keras process has not registered
    spectral = found.get("spectral_filter1", {}).get("config", {})
    momentum = [
        layer["config"]["momentum"]
        for layer in found.values()
        if layer["class_name"] == "BatchNormalization"
    ]
    if not momentum:  # every kit model normalizes its batches
        return None
    units = found["head"]["config"]["units"]
    return dict(
        architecture=architecture[branches],
        input_shape=found["image"]["config"]["batch_shape"][1:],
        num_classes=2 if units == 1 else units,
        spectranet=2 if {"spectral_filter2", "control_conv2"} & set(found) else 1,
        channel_mixing=spectral.get("channel_mixing", "dense"),
        modes=spectral.get("modes"),
        bn_momentum=momentum[0],
        name=config["config"].get("name"),
        **({"fusion": fusions[0]} if fusions else {}),  # one-branch models: build_model's default
    )


def _load_from_build_args(path: Path, error: Exception, compile: bool):
    """A kit model saved by another Keras version whose config this Keras cannot read (e.g. a
    newer Keras writes initializer keys an older one rejects): rebuild the architecture from the
    build arguments its config records and load the weights, which are stored the same way.
    None when the file is not such a model."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        if not {"config.json", "metadata.json", "model.weights.h5"} <= names:
            return None
        saved_by = json.loads(archive.read("metadata.json")).get("keras_version")
        args = _build_args(json.loads(archive.read("config.json")))
        if saved_by == keras.__version__ or args is None:
            return None  # same Keras: a genuine error, reported by the caller
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            weights = Path(archive.extract("model.weights.h5", folder))
            model = build_model(**args)
            with warnings.catch_warnings():  # the optimizer state is not restored, and need not be
                warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
                model.load_weights(weights)
    if compile:  # its optimizer is not restored: a fresh one of the recipe
        s3f_recipe.compile_model(model)
    warnings.warn(
        f"{path}: saved by Keras {saved_by}, whose config Keras {keras.__version__} cannot read "
        f"({type(error).__name__}); rebuilt the kit architecture and loaded its weights",
        stacklevel=4,
    )
    return model


def load_model(path, compile=True):
    """Load a `.keras` file written by the kit or released with the paper.

    The file is checked first (s3f_modelfile): Keras deserializes it only if its config holds
    nothing but Keras layers and the kit's classes, so no model file can run code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    s3f_modelfile.check_model_file(path)
    return _load_checked(path, compile)


def _load_checked(path: Path, compile: bool):
    try:
        return keras.saving.load_model(
            path, custom_objects=custom_objects(), compile=compile, safe_mode=True
        )
    except Exception as error:  # Keras raises many types; report them with the file's name
        rebuilt = _load_from_build_args(path, error, compile)
        if rebuilt is not None:
            return rebuilt
        if not compile:
            raise ValueError(f"{path}: not a loadable S³F-Net model ({error})") from error
        model = _load_checked(path, compile=False)
        # The weights loaded; only the saved training config did not (e.g. another Keras).
        warnings.warn(
            f"{path}: saved compile config unusable ({error}); recompiling like the paper",
            stacklevel=3,
        )
        return s3f_recipe.compile_model(model)
