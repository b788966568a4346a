"""Disk footprint of a run's model file for each of the twelve models at the paper's input size
(not a test: prints a Markdown table for docs/sweep.md).

Each model is built (not trained), its optimizer built as after the first step, and saved as
training leaves checkpoint.keras (with Adam's state), then as a finished run's model.keras
(s3f_training.save_finished_model). One model at a time: the BUSI S³F-Net needs ~3 GB.

    python benchmarks/measure_footprint.py [--only S3F_Concat_BUSI ...]
"""

import argparse
import gc
import tempfile
from pathlib import Path

import keras

import s3f_common
from s3f_kit import experiments as s3f_experiments
from s3f_kit import recipe as s3f_recipe
from s3f_kit.run import training as s3f_training


def measure(name: str, folder: Path) -> tuple[int, int, int, int]:
    exp = s3f_experiments.EXPERIMENTS[name]
    model = s3f_common.build_model(
        exp.architecture,
        exp.input_shape,
        exp.num_classes,
        exp.fusion,
        exp.spectranet,
        bn_momentum=0.99,
    )
    s3f_recipe.compile_model(model)  # the builder leaves compiling to the recipe
    model.optimizer.build(model.trainable_variables)
    checkpoint, final = folder / "checkpoint.keras", folder / "model.keras"
    model.save(checkpoint)
    full = checkpoint.stat().st_size
    s3f_training.save_finished_model(model, checkpoint, final)
    lean = final.stat().st_size
    params = model.count_params()
    final.unlink()
    del model
    keras.backend.clear_session()
    gc.collect()
    return params, s3f_experiments.estimated_parameters(name, {}), full, lean


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=list(s3f_experiments.EXPERIMENTS))
    args = parser.parse_args()
    print("| experiment | input | parameters | with optimizer state | model.keras (finished) |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            params, estimate, full, lean = measure(name, Path(tmp))
            shape = "×".join(str(d) for d in s3f_experiments.EXPERIMENTS[name].input_shape)
            assert abs(estimate - params) <= 0.01 * params, (name, estimate, params)
            print(
                f"| {name} | {shape} | {params / 1e6:.2f} M | {full / 1e6:.1f} MB | "
                f"{lean / 1e6:.1f} MB |",
                flush=True,
            )


if __name__ == "__main__":
    main()
