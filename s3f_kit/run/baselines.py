"""Standard deep CNNs beside S³F-Net: keras.applications backbones under the paper's recipe.

The paper's abstract compares S³F-Net with "many top-performing, much deeper models", yet its
only trained baseline is its own 1.3 M-parameter spatial CNN. Here the usual ImageNet
architectures are trained on the same data, split, recipe and seeds:

- `BASELINES` (s3f_experiments: TensorFlow-free, the sweep plans with it) names each backbone
  with what it needs: its keras.applications constructor, the input scaling its ImageNet
  weights expect, its smallest input side and its parameter count.
- `build_baseline` puts the kit's conventions around the backbone. Images arrive scaled to
  [0, 1], as for every kit model. A grayscale image is repeated to three channels. The model
  rescales inside itself to what the backbone was trained on, so a saved `.keras` file is
  complete. Global average pooling and the paper's head follow: one sigmoid unit for two
  classes, a softmax otherwise, float32. It returns the model uncompiled, like the paper's
  models (s3f_kit.recipe compiles both), and takes the run's BatchNorm momentum like them
  (bn_momentum: the demo's short runs).
- Weights: ImageNet where they can be fetched (Colab). Keras fetches them itself, with no
  timeout (a connection that never answered waited over 240 s); here its download goes through
  the kit's one downloader (data_setup.fetch.download_url: connect and read timeouts, an overall
  deadline, a size limit) while Keras keeps its cache and its hash check. Without internet, or
  when the download stalls, the backbone starts from random weights and says so in one line.
  Either way the run records which one it used (`weights_used`), and the tables show it.
- `count_flops` (s3f_flops, re-exported: the baseline notebooks print it): the FLOPs of one
  forward pass, every model by the same rule.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import keras
from keras import layers

import s3f_common
from s3f_kit.experiments import BASELINE_WEIGHTS as WEIGHTS
from s3f_kit.experiments import BASELINES, Baseline  # noqa: F401  (the registry's, re-exported)
from s3f_kit.flops import count_flops  # noqa: F401  (re-exported: the baseline notebooks call it)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def get_baseline(name: str) -> Baseline:
    try:
        return BASELINES[name]
    except KeyError:
        raise ValueError(
            f"unknown baseline {name!r}; expected one of {', '.join(BASELINES)}"
        ) from None


def _scaled(x, scaling: str):
    if scaling == "minus_one_to_one":
        return layers.Rescaling(2.0, offset=-1.0, name="to_minus_one_one")(x)
    if scaling == "imagenet_mean_std":
        return layers.Normalization(
            mean=list(_IMAGENET_MEAN), variance=[s * s for s in _IMAGENET_STD], name="imagenet_norm"
        )(x)
    return layers.Rescaling(255.0, name="to_0_255")(x)


# The largest no-top ImageNet file of the registry (ResNet50V2) is ~95 MB: ample room, and a
# bound on what a redirected or hostile server can make us write into Keras' cache.
MAX_WEIGHTS_BYTES = 1 << 30


@contextlib.contextmanager
def bounded_keras_downloads():
    """While it is open, Keras' get_file (which keras.applications call for their ImageNet
    weights) downloads through the kit's download_url into a temp name, then renames: Keras'
    cache folder, file name and hash check are its own. A Keras whose get_file no longer calls
    urlretrieve gets a socket timeout instead (a stall ends; the deadline is not enforced)."""
    from keras.src.utils import file_utils

    from data_setup.fetch import download_limits, download_url
    from data_setup.files import atomic_path, remove_stale_temps

    def retrieve(url, filename, reporthook=None):
        remove_stale_temps(Path(filename).parent)  # downloads of killed runs
        with atomic_path(filename, "ImageNet weights") as tmp:
            download_url(
                url,
                tmp,
                max_bytes=MAX_WEIGHTS_BYTES,
                limit_note=" (MAX_WEIGHTS_BYTES of s3f_kit.run.baselines)",
                hint=", or copy Keras' cache (~/.keras/models) from a machine that has them",
            )
        return str(filename), None

    if not hasattr(file_utils, "urlretrieve"):
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(download_limits()[0])
        try:
            yield
        finally:
            socket.setdefaulttimeout(previous)
        return
    keras_own = file_utils.urlretrieve
    file_utils.urlretrieve = retrieve
    try:
        yield
    finally:
        file_utils.urlretrieve = keras_own


def _backbone(spec: Baseline, input_shape, weights: str, log=print):
    """(backbone, weights used): ImageNet weights if they can be fetched, else random."""
    constructor = getattr(keras.applications, spec.constructor)
    options = dict(include_top=False, input_shape=input_shape, pooling="avg")
    if spec.scaling == "zero_to_255":
        options["include_preprocessing"] = True
    if weights == "imagenet":
        try:
            with bounded_keras_downloads():
                return constructor(weights="imagenet", **options), "imagenet"
        except Exception as error:  # noqa: BLE001  (no internet, blocked host, bad cache…)
            # The first line whole: the kit's download errors are one line that ends in what
            # to do; a foreign error's first line is usually its gist.
            reason = str(error).splitlines()[0][:500] if str(error) else type(error).__name__
            log(
                f"{spec.name}: ImageNet weights could not be fetched ({reason}); "
                "training from random initialization (recorded as weights_used='random')"
            )
    return constructor(weights=None, **options), "random"


def build_baseline(
    name: str,
    input_shape,
    num_classes: int,
    *,
    weights: str = "imagenet",
    bn_momentum: float | None = None,
    model_name: str | None = None,
    log=print,
):
    """An uncompiled baseline model (s3f_kit.recipe compiles it) and the weights it starts from
    ("imagenet" or "random").

    bn_momentum: None keeps the backbone's own (Keras' 0.99, the paper's); else every
    BatchNormalization layer of the backbone takes it."""
    spec = get_baseline(name)
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    height, width, channels = (int(d) for d in input_shape)
    if min(height, width) < spec.min_side:
        raise ValueError(
            f"{name} needs images of at least {spec.min_side}×{spec.min_side} pixels "
            f"(keras.applications), got {height}×{width}"
        )
    if channels not in (1, 3):
        raise ValueError(f"{name}: images must have 1 or 3 channels, got {channels}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int ≥ 2, got {num_classes!r}")
    inputs = keras.Input((height, width, channels), name="image")
    # Grayscale films: the same channel three times, as ImageNet backbones expect RGB.
    rgb = layers.Concatenate(name="gray_to_rgb")([inputs] * 3) if channels == 1 else inputs
    backbone, used = _backbone(spec, (height, width, 3), weights, log)
    if bn_momentum is not None:
        for layer in backbone.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = float(bn_momentum)
    features = backbone(_scaled(rgb, spec.scaling))
    binary = s3f_common.is_binary(num_classes)
    units, activation = (1, "sigmoid") if binary else (num_classes, "softmax")
    outputs = layers.Dense(units, activation=activation, dtype="float32", name="head")(features)
    return keras.Model(inputs, outputs, name=model_name or f"Baseline_{name}"), used
