"""Speed of the SpectralFilter layer and of whole-model training (not a test: prints figures).

1. Forward+backward of SpectralFilter(32) on a (16, 256, 256, 1) batch: the kit's layer against
   the same layer mixing channels with a plain einsum("bchw,cfhw->bfhw"), timed in one run.
2. Training throughput (images/s) of the S³F-Net bilinear SN1 at 256×256, batch 16, with
   `model.fit` on NumPy arrays.

    python benchmarks/bench_spectral_filter.py [--repeats 10] [--fit-batches 12]
"""

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

import s3f_common


class EinsumSpectralFilter(s3f_common.SpectralFilter):
    """Baseline: the plain formulation, einsum over channels whatever their number."""

    def _mix(self, spectrum, kernel):
        return tf.einsum("bchw,cfhw->bfhw", spectrum, kernel)


def time_forward_backward(layer, x, repeats):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(y * y)
        # Weight gradients only: a first layer never needs the gradient of its input.
        return tape.gradient(loss, layer.trainable_weights)

    x = tf.constant(x)
    step()  # trace + warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        grads = step()
        _ = [g.numpy() for g in grads[:1]]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--fit-batches", type=int, default=12)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.random((16, 256, 256, 1), dtype=np.float32)
    fast, baseline = s3f_common.SpectralFilter(32), EinsumSpectralFilter(32)
    fast.build(x.shape)
    baseline.build(x.shape)
    baseline.set_weights(fast.get_weights())
    np.testing.assert_allclose(fast(x[:2]), baseline(x[:2]), rtol=1e-4, atol=1e-4)

    # Interleave the two so machine noise hits both alike.
    fast_times, base_times = [], []
    for _ in range(3):
        fast_times.append(time_forward_backward(fast, x, args.repeats))
        base_times.append(time_forward_backward(baseline, x, args.repeats))
    t_fast, t_base = min(fast_times), min(base_times)
    print(
        f"SpectralFilter(32) fwd+bwd, batch (16,256,256,1): kit {t_fast * 1e3:.0f} ms, "
        f"einsum {t_base * 1e3:.0f} ms, speed-up {t_base / t_fast:.2f}x"
    )

    model = s3f_common.build_model("s3f", (256, 256, 1), 4, fusion="bilinear", spectranet=1)
    n = 16 * args.fit_batches
    images = rng.random((n, 256, 256, 1), dtype=np.float32)
    labels = rng.integers(0, 4, n)
    model.fit(images[:32], labels[:32], batch_size=16, epochs=1, verbose=0)  # warm-up/trace
    start = time.perf_counter()
    model.fit(images, labels, batch_size=16, epochs=1, verbose=0)
    elapsed = time.perf_counter() - start
    print(
        f"S3F-Net bilinear SN1 256x256 model.fit: {n / elapsed:.1f} images/s "
        f"({elapsed / args.fit_batches * 1e3:.0f} ms per batch of 16)"
    )


if __name__ == "__main__":
    main()
