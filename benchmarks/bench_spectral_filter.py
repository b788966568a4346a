"""Speed of the SpectralFilter layer and of whole-model training (not a test: prints figures).

Every comparison runs the kit's form and a reference in the same process, interleaved, so that
machine noise hits both alike; it prints the best of three rounds' medians and their ratio.

The kit's form is s3f_kit.spectral_kernels (FFTs in concurrent pieces on a CPU, a lighter
rfft2d gradient, frequency-major real matmuls); the reference is 0.2.2's whole layer,
`spectral_kernels.einsum_call`, patched in as SpectralFilter.call.

1. first:  forward+backward of SpectralFilter(32) on a (16, 256, 256, 1) batch (every
   SpectraNet's first filter, weight gradients) against the plain einsum("bchw,cfhw->bfhw").
2. second: forward+backward of SpectralFilter(64) on a (16, 256, 256, 32) batch (the BUSI
   SpectraNet-2's second filter, 135 M weights), weight and input gradients, against 0.2.2,
   and the same two bounds as the step (below): how the layer's time splits into its FFTs
   (with their transposes) and its mixing.
3. step:   one training step (forward, backward, Adam update) of the full BUSI S³F-Net
   (concat, SN2, 138.7 M parameters) at 256×256, batch 16, against the same model with 0.2.2's
   layer, with filters that cost nothing (free_filter_call: the bound no form can beat), and
   with the kit's FFTs but free mixing (fft_only_call: the bound for any form of the mixing).
4. fit:    training of the S³F-Net bilinear SN1 at 256×256, batch 16, with `model.fit` on a
   tf.data pipeline as a run feeds it: the median step (bench_scale's StepTimes callback) and
   the whole fit's images/s (--fit-batches 0 skips it). Not on NumPy arrays: Keras converts
   them on every fit, which added ~2.7 s per batch here (0.6.0's README said 8.6 s per batch).

    python benchmarks/bench_spectral_filter.py [--repeats 5] [--fit-batches 12]
    python benchmarks/bench_spectral_filter.py --parts second,step

Mind the memory: part 3 needs about 6 GB.
"""

import argparse
import statistics
import time
from unittest import mock

import numpy as np
import tensorflow as tf

import s3f_common
from s3f_kit import recipe as s3f_recipe
from s3f_kit import spectral_kernels as kernels


def plain_einsum_call(self, inputs):
    """SpectralFilter(32) on one channel as the plain einsum, without the broadcast product."""
    return kernels.einsum_call(self, inputs, einsum_always=True)


def reference_form(call=kernels.einsum_call):
    """Within this context, SpectralFilter layers trace the reference form (0.2.2's call)."""
    return mock.patch.object(s3f_common.SpectralFilter, "call", call)


def timed(step, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = step()
        tf.nest.map_structure(lambda t: t.numpy(), tf.nest.flatten(result)[:1])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def free_filter_call(self, inputs):
    """Not a filter: a lower bound. The output's shape and a gradient for every weight (so Adam
    still updates all of them) at almost no cost: no form of the layer can be faster."""
    corner = self.real_weights[:1, :1, :1, :1] + self.imag_weights[:1, :1, :1, :1]
    y = tf.tile(inputs[..., :1], [1, 1, 1, self.filters]) * (1 + tf.reduce_sum(corner))
    return y + self.bias


def fft_only_call(self, inputs):
    """Not a filter: a bound. The kit's FFTs both ways with mixing that costs nothing (the
    spectrum tiled to the output channels): what any form of the mixing pays for the FFTs."""
    x = tf.cast(inputs, "float32")
    spectrum = kernels.in_pieces(lambda t: kernels.rfft2d(tf.transpose(t, [0, 3, 1, 2])), x)
    corner = self.real_weights[:1, :1, :1, :1] + self.imag_weights[:1, :1, :1, :1]
    reps = -(-self.filters // self.channels)
    mixed = tf.tile(spectrum, [1, reps, 1, 1])[:, : self.filters]
    mixed = mixed * tf.cast(1 + tf.reduce_sum(corner), mixed.dtype)

    def inverse(t):
        return tf.transpose(kernels.irfft2d(t, self.height, self.width), [0, 2, 3, 1])

    return kernels.in_pieces(inverse, mixed) + self.bias


def compare(name, make_step, repeats, reference_call=kernels.einsum_call, label="0.2.2 form",
            bounds=()):  # fmt: skip
    """make_step() returns a tf.function; traced once under each form (the kit's, the
    reference's, and any `bounds`: (label, call) forms), timed interleaved."""
    forms = {"kit": make_step()}
    forms["kit"]()  # trace + warm-up
    for form, call in ((label, reference_call), *bounds):
        with reference_form(call):  # a tf.function traces at its first call: inside the patch
            forms[form] = make_step()
            forms[form]()
    times = {form: [] for form in forms}
    for _ in range(3):
        for form, step in forms.items():
            times[form].append(timed(step, repeats))
    best = {form: min(t) for form, t in times.items()}
    t_kit, t_ref = best["kit"], best[label]
    print(
        f"{name}: kit {t_kit * 1e3:.0f} ms, {label} {t_ref * 1e3:.0f} ms, "
        f"ratio {t_kit / t_ref:.2f} (speed-up {t_ref / t_kit:.2f}x)",
        flush=True,
    )
    for form, _ in bounds:
        print(f"    {form}: {best[form] * 1e3:.0f} ms, ratio {best[form] / t_ref:.2f}", flush=True)


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


PARTS = ("first", "second", "step", "fit")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fit-batches", type=int, default=12)
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated, of {', '.join(PARTS)} (default all)")  # fmt: skip
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        parser.error(f"--parts: unknown {sorted(parts - set(PARTS))}; choose from {PARTS}")
    rng = np.random.default_rng(0)
    print(f"FFTs in {kernels.fft_pieces()} concurrent pieces on this machine", flush=True)

    if "first" in parts:
        x = rng.random((16, 256, 256, 1), dtype=np.float32)
        layer = s3f_common.SpectralFilter(32)
        layer.build(x.shape)
        compare(
            "SpectralFilter(32) fwd+bwd, (16,256,256,1)",
            layer_step(layer, x, input_gradient=False),
            args.repeats,
            plain_einsum_call,
            "plain einsum",
        )

    if "second" in parts:
        x = rng.random((16, 256, 256, 32), dtype=np.float32)
        layer = s3f_common.SpectralFilter(64)
        layer.build(x.shape)
        with reference_form():
            expected = layer(x[:2]).numpy()
        np.testing.assert_allclose(layer(x[:2]).numpy(), expected, rtol=1e-4, atol=1e-4)
        compare(
            "SpectralFilter(64) fwd+bwd, (16,256,256,32)",
            layer_step(layer, x),
            args.repeats,
            bounds=[
                ("free SpectralFilter (what is not the layer's own work)", free_filter_call),
                ("the kit's FFTs with free mixing", fft_only_call),
            ],
        )
        del layer, x

    if "step" in parts:
        model = s3f_common.build_model(
            "s3f", (256, 256, 1), 3, fusion="concat", spectranet=2, bn_momentum=0.99
        )
        s3f_recipe.compile_model(model)  # the builder leaves compiling to the recipe
        images = rng.random((16, 256, 256, 1), dtype=np.float32)
        labels = rng.integers(0, 3, 16)
        compare(
            f"BUSI S3F-Net concat SN2 ({model.count_params() / 1e6:.1f} M) train step, batch 16 "
            "at 256x256",
            model_step(model, images, labels),
            args.repeats,
            bounds=[
                ("free SpectralFilters (lower bound for any form)", free_filter_call),
                ("the kit's FFTs with free mixing (bound for any mixing)", fft_only_call),
            ],
        )
        del model

    if "fit" in parts and args.fit_batches:
        from bench_scale import StepTimes  # the same per-step timing as the rehearsal's rows

        model = s3f_common.build_model(
            "s3f", (256, 256, 1), 4, fusion="bilinear", spectranet=1, bn_momentum=0.99
        )
        s3f_recipe.compile_model(model)
        n = 16 * args.fit_batches
        images = rng.random((n, 256, 256, 1), dtype=np.float32)
        labels = rng.integers(0, 4, n)
        batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16).repeat()
        model.fit(batches, steps_per_epoch=1, epochs=1, verbose=0)  # warm-up/trace
        steps = StepTimes()
        model.fit(batches, steps_per_epoch=args.fit_batches, epochs=1, verbose=0,
                  callbacks=[steps])  # fmt: skip
        print(
            f"S3F-Net bilinear SN1 256x256 training: {statistics.median(steps.seconds):.2f} s "
            f"per step of 16 (median of {len(steps.seconds)}); the whole fit "
            f"{n / steps.fit_seconds:.1f} images/s"
        )


if __name__ == "__main__":
    main()
