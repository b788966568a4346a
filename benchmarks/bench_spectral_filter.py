"""Speed of the SpectralFilter layer and of whole-model training (not a test: prints figures).

Every comparison runs the kit's form and a reference in the same process, interleaved, so that
machine noise hits both alike; it prints the best of three rounds' medians and their ratio.

1. Forward+backward of SpectralFilter(32) on a (16, 256, 256, 1) batch (every SpectraNet's
   first filter, weight gradients): the kit's broadcast product against a plain
   einsum("bchw,cfhw->bfhw").
2. Forward+backward of SpectralFilter(64) on a (16, 256, 256, 32) batch (the BUSI
   SpectraNet-2's second filter, 135 M weights), weight and input gradients: the kit's
   frequency-major real matmuls against the einsum form of 0.2.2 (s3f_common._einsum_mix).
3. One training step (forward, backward, Adam update) of the full BUSI S³F-Net (concat, SN2,
   138.7 M parameters) at 256×256, batch 16, with the kit's mixing and with 0.2.2's.
4. Training throughput (images/s) of the S³F-Net bilinear SN1 at 256×256, batch 16, with
   `model.fit` on NumPy arrays (--fit-batches 0 skips it).

    python benchmarks/bench_spectral_filter.py [--repeats 5] [--fit-batches 12]

Mind the memory: part 3 needs about 6 GB.
"""

import argparse
import statistics
import time
from unittest import mock

import numpy as np
import tensorflow as tf

import s3f_common


def einsum_mix_complex(self, spectrum, real, imag):
    """0.2.2's mixing: the complex kernel built, then an einsum over the channels (one input
    channel already used the broadcast product)."""
    kernel = tf.complex(real, imag)
    if self.channel_mixing == "dense" and self.channels > 1:
        return s3f_common._einsum_mix(spectrum, kernel)
    return self._mix(spectrum, kernel)


def plain_einsum_mix_complex(self, spectrum, real, imag):
    return s3f_common._einsum_mix(spectrum, tf.complex(real, imag))


def reference_form(mix=einsum_mix_complex):
    """Within this context, SpectralFilter layers trace the reference form (0.2.2's)."""
    return mock.patch.object(s3f_common.SpectralFilter, "_mix_complex", mix)


def timed(step, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = step()
        tf.nest.map_structure(lambda t: t.numpy(), tf.nest.flatten(result)[:1])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare(name, make_step, repeats, reference_mix=einsum_mix_complex, label="0.2.2 einsum"):
    """make_step() returns a tf.function; traced once under each form, timed interleaved."""
    kit = make_step()
    kit()  # trace + warm-up
    with reference_form(reference_mix):
        reference = make_step()
        reference()
    kit_times, ref_times = [], []
    for _ in range(3):
        kit_times.append(timed(kit, repeats))
        ref_times.append(timed(reference, repeats))
    t_kit, t_ref = min(kit_times), min(ref_times)
    print(
        f"{name}: kit {t_kit * 1e3:.0f} ms, {label} {t_ref * 1e3:.0f} ms, "
        f"ratio {t_kit / t_ref:.2f} (speed-up {t_ref / t_kit:.2f}x)",
        flush=True,
    )


def layer_step(layer, x, input_gradient=True):
    x = tf.constant(x)

    def make():
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
                loss = tf.reduce_sum(y * y)
            # a first layer never needs its input's gradient; a second one does
            sources = [*layer.trainable_weights, *([x] if input_gradient else [])]
            return tape.gradient(loss, sources)

        return step

    return make


def model_step(model, images, labels):
    model.optimizer.build(model.trainable_variables)  # no variables created inside tf.function
    data = (tf.constant(images), tf.constant(labels))

    def make():
        return tf.function(lambda: model.train_step(data))

    return make


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fit-batches", type=int, default=12)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    x = rng.random((16, 256, 256, 1), dtype=np.float32)
    layer = s3f_common.SpectralFilter(32)
    layer.build(x.shape)
    compare(
        "SpectralFilter(32) fwd+bwd, (16,256,256,1)",
        layer_step(layer, x, input_gradient=False),
        args.repeats,
        plain_einsum_mix_complex,
        "plain einsum",
    )

    x = rng.random((16, 256, 256, 32), dtype=np.float32)
    layer = s3f_common.SpectralFilter(64)
    layer.build(x.shape)
    with reference_form():
        expected = layer(x[:2]).numpy()
    np.testing.assert_allclose(layer(x[:2]).numpy(), expected, rtol=1e-4, atol=1e-4)
    compare("SpectralFilter(64) fwd+bwd, (16,256,256,32)", layer_step(layer, x), args.repeats)
    del layer, x

    model = s3f_common.build_model("s3f", (256, 256, 1), 3, fusion="concat", spectranet=2)
    images = rng.random((16, 256, 256, 1), dtype=np.float32)
    labels = rng.integers(0, 3, 16)
    compare(
        f"BUSI S3F-Net concat SN2 ({model.count_params() / 1e6:.1f} M) train step, batch 16 "
        "at 256x256",
        model_step(model, images, labels),
        args.repeats,
    )
    del model

    if args.fit_batches:
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
