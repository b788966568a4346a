"""The numerical forms behind SpectralFilter: its FFTs and its channel mixing.

The layer (s3f_common.SpectralFilter) says *what* is computed, in the paper's terms:
y = irfft2d(Σ_c rfft2d(x_c) ⊙ K_cf) + b. This module says *how*, in the fastest form found on
each device, each one equal to the plain form in outputs and gradients (tests/test_model.py) and
timed against it in one process (benchmarks/bench_spectral_filter.py):

- FFTs in concurrent pieces on a CPU. TensorFlow's CPU FFT kernel runs each op on one thread
  (measured: 0.9 CPU-seconds per second of an irfft2d over a (16, 64, 256, 256) batch), so the
  batch is cut into as many pieces as the inter-op pool has threads and their FFTs run side by
  side. Every image's transform is computed on its own, so the pieces change no number. On a
  GPU one op is fastest and the batch stays whole.
- A lighter rfft2d gradient. TensorFlow's own tiles an (H, H) complex matrix to the batch's
  size (268 MB for the BUSI SpectraNet-2's second filter) to repair the two unduplicated
  columns; the same gradient is H·W·irfft2d(G ⊙ m), with m halving the columns the half
  spectrum stands for twice.
- Dense mixing as real batched matmuls over the frequencies (frequency-major), with Gauss's
  three products, instead of an einsum over a complex kernel.

`einsum_call` is 0.2.2's whole layer (one FFT op each way, TensorFlow's gradients, the einsum):
the reference the tests and the benchmark compare against.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow as tf

MAX_FFT_PIECES = 8  # beyond this the pieces are too small to be worth their copies


def fft_dtype(compute_dtype: str) -> str:
    """TensorFlow's FFTs exist only for float32/float64: float16/bfloat16 compute in float32."""
    return "float64" if compute_dtype == "float64" else "float32"


@functools.lru_cache(maxsize=1)
def fft_pieces() -> int:
    """How many concurrent pieces a batch's FFTs are cut into: 1 where a GPU is visible, else
    the inter-op threads TensorFlow runs (S3F_DETERMINISTIC fixes them at 2, so the pieces, like
    every other number, do not depend on the machine's core count)."""
    if tf.config.list_logical_devices("GPU"):
        return 1
    threads = tf.config.threading.get_inter_op_parallelism_threads()
    if not threads:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return max(1, min(int(threads), MAX_FFT_PIECES))


def in_pieces(fn, x, pieces=None):
    """fn(x) computed on `pieces` consecutive slices of the batch (axis 0), concatenated; fn
    must treat every batch element on its own (FFTs, transposes)."""
    pieces = fft_pieces() if pieces is None else pieces
    if x.shape[0] is not None:
        pieces = min(pieces, x.shape[0])
    if pieces <= 1:
        return fn(x)
    n = tf.shape(x)[0]
    sizes = tf.stack([(n + i) // pieces for i in range(pieces)])  # sums to n, any n ≥ 0
    return tf.concat([fn(part) for part in tf.split(x, sizes, num=pieces, axis=0)], axis=0)


def half_spectrum_weights(width: int, dtype) -> np.ndarray:
    """m over the rfft's W//2 + 1 columns: 1 for the DC column (and the Nyquist column of an
    even width), ½ for the columns that stand for themselves and their mirror image."""
    weights = np.full(width // 2 + 1, 0.5)
    weights[0] = 1.0
    if width % 2 == 0:
        weights[-1] = 1.0
    return weights.astype(dtype)


def rfft2d(x):
    """tf.signal.rfft2d over the two innermost axes at their own size, with a lighter gradient.

    For a real loss L, TensorFlow's gradient of a complex tensor Y is ∂L/∂Re Y + i·∂L/∂Im Y, so
    ∂L/∂x[n] = Re Σ_k G[k]·e^{+2πi k·n/N} over the full spectrum, which is N·irfft2d(G ⊙ m)."""
    height, width = int(x.shape[-2]), int(x.shape[-1])

    @tf.custom_gradient
    def forward(x):
        def gradient(upstream):
            weights = tf.constant(half_spectrum_weights(width, upstream.dtype.as_numpy_dtype))
            full = tf.signal.irfft2d(upstream * weights, fft_length=[height, width])
            return full * tf.cast(height * width, full.dtype)

        return tf.signal.rfft2d(x, fft_length=[height, width]), gradient

    return forward(x)


def irfft2d(spectrum, height: int, width: int):
    """tf.signal.irfft2d to (height, width); fft_length is explicit: inferred from the half
    spectrum it is wrong for odd widths."""
    return tf.signal.irfft2d(spectrum, fft_length=[height, width])


# --------------------------------------------------------------------------- channel mixing


def to_frequency_major(t):
    """(A, N, h, w) → (h·w, A, N): one small matrix per frequency, for a batched matmul."""
    return tf.reshape(tf.transpose(t, [2, 3, 0, 1]), [-1, tf.shape(t)[0], t.shape[1]])


def from_frequency_major(t, kernel_shape):
    """(h·w, B, F) → (B, F, h, w), the inverse of to_frequency_major for the mixed output."""
    _, filters, rows, cols = kernel_shape
    return tf.transpose(tf.reshape(t, [rows, cols, -1, filters]), [2, 3, 0, 1])


def gauss_frequency_major_mix(spectrum, real, imag):
    """Dense channel mixing Σ_c X[b, c, h, w]·K[c, f, h, w] as real batched matmuls over the
    frequencies, with Gauss's three-multiplication complex product.

    The weights keep the paper's (C, F, h, w) layout; each step transposes the real and imaginary
    parts once into (h·w, C, F) and never builds the complex kernel (the einsum built it, then
    transposed it, and did the reverse for its gradient). Three real products instead of four:
    Re = Xr·Kr − Xi·Ki, Im = (Xr + Xi)·(Kr + Ki) − Xr·Kr − Xi·Ki."""
    x = to_frequency_major(spectrum)
    x_re, x_im = tf.math.real(x), tf.math.imag(x)
    k_re, k_im = to_frequency_major(real), to_frequency_major(imag)
    re_re = tf.matmul(x_re, k_re)
    im_im = tf.matmul(x_im, k_im)
    both = tf.matmul(x_re + x_im, k_re + k_im)
    mixed = tf.complex(re_re - im_im, both - re_re - im_im)
    return from_frequency_major(mixed, real.shape)


def einsum_mix(spectrum, kernel):
    """Reference: the einsum form of dense mixing used up to 0.2.2."""
    return tf.einsum("bchw,cfhw->bfhw", spectrum, kernel)


def einsum_call(layer, inputs, einsum_always=False):
    """Reference: SpectralFilter.call as 0.2.2 computed it (one FFT op each way with
    TensorFlow's own gradients; the complex kernel built, then the einsum for dense mixing of
    several channels, the layer's own product otherwise). Patch it in as `call` to compare.
    einsum_always: the einsum for one input channel too (the plain formulation)."""
    dtype = fft_dtype(layer.compute_dtype)
    x = tf.transpose(tf.cast(inputs, dtype), [0, 3, 1, 2])
    spectrum = layer._crop(tf.signal.rfft2d(x, fft_length=[layer.height, layer.width]))
    real, imag = (tf.cast(w, dtype) for w in (layer.real_weights, layer.imag_weights))
    kernel = tf.complex(real, imag)
    dense = layer.channel_mixing == "dense"
    if dense and (layer.channels > 1 or einsum_always):
        mixed = einsum_mix(spectrum, kernel)
    else:
        mixed = layer._mix(spectrum, kernel)
    y = tf.signal.irfft2d(layer._uncrop(mixed), fft_length=[layer.height, layer.width])
    y = tf.transpose(y, [0, 2, 3, 1]) + tf.cast(layer.bias, dtype)
    return tf.cast(y, layer.compute_dtype)
