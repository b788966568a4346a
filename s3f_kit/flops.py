"""FLOPs of one image's forward pass through any kit model (S³F-Net, its branches, baselines).

    count_flops(model)   # recorded as `flops` in every run's metrics.json

It counts the multiply-adds of the convolution, dense and spectral-filter layers, two FLOPs
each, plus the FFTs of the spectral filters (5·N·log₂N for an N-point complex transform, halved
for a real one), and each fusion layer by its registered rule (s3f_fusions: bilinear fusion's
outer product, nothing for a concatenation). It leaves out normalization, activation and pooling
layers, so every model is counted by the same rule. A nested Keras model (a keras.applications
backbone) is counted layer by layer.
"""

from __future__ import annotations

import math

import keras
from keras import layers

import s3f_common
from s3f_kit import fusions as s3f_fusions


def _spatial(shape) -> int:
    return math.prod(int(d) for d in shape[1:-1])


def _fft_flops(height: int, width: int, channels: int) -> float:
    n = height * width
    return channels * 2.5 * n * math.log2(max(n, 2))  # a real transform: half a complex one


def layer_flops(layer) -> float:
    """FLOPs of one image through `layer` (a built layer of a model)."""
    if isinstance(layer, keras.Model):
        return sum(layer_flops(inner) for inner in layer.layers)
    fusion = s3f_common.fusion_of(layer)
    if fusion is not None:  # by its registered rule (a Concatenate of images counts 0 as well)
        return float(s3f_fusions.get(fusion).flops(layer))
    if isinstance(layer, layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        out = layer.output.shape
        return 2.0 * _spatial(out) * int(out[-1]) * kh * kw
    if isinstance(layer, layers.Conv2D):
        kh, kw = layer.kernel_size
        cin = int(layer.input.shape[-1])
        out = layer.output.shape
        return 2.0 * _spatial(out) * int(out[-1]) * kh * kw * cin / layer.groups
    if isinstance(layer, layers.Dense):
        shape = layer.input.shape
        return 2.0 * math.prod(int(d) for d in shape[1:]) * layer.units
    if isinstance(layer, s3f_common.SpectralFilter):
        channels, per_input, rows, cols = layer.real_weights.shape
        mixing = 8.0 * channels * per_input * rows * cols  # complex multiply-add: 8 real FLOPs
        return mixing + _fft_flops(layer.height, layer.width, layer.channels + layer.filters)
    return 0.0


def count_flops(model) -> int:
    """FLOPs of one image's forward pass (see the module docstring for what is counted)."""
    return int(round(sum(layer_flops(layer) for layer in model.layers)))
