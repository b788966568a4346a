"""The registry of the paper's twelve experiments: the one place their settings live.

Notebooks are generated from it, the sweep runner and the results tables read it, the tests check
the models against it. Facts come from the paper (its notebooks); "kit" marks our additions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from data_setup.datasets import DATASETS, DatasetInfo  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Recipe:
    """The paper's training schedule for one dataset."""

    epochs: int
    f1_patience: int  # early stopping on validation F1
    lr_patience: int  # ReduceLROnPlateau on val_loss (factor 0.2, min_lr 1e-6)
    fusion: str  # the paper's best fusion for S³F-Net on this dataset
    spectranet: int  # SpectraNet variant for the S³F-Net and SpectraNet-only models


RECIPES = {
    "BRISC2025": Recipe(
        epochs=200, f1_patience=40, lr_patience=20, fusion="bilinear", spectranet=1
    ),
    "ChestXRay": Recipe(epochs=100, f1_patience=20, lr_patience=10, fusion="concat", spectranet=1),
    "BUSI": Recipe(epochs=200, f1_patience=60, lr_patience=40, fusion="concat", spectranet=2),
    "HAM10000": Recipe(epochs=200, f1_patience=40, lr_patience=20, fusion="bilinear", spectranet=1),
}

# GitHub owner/name of this kit: Colab badges and the notebooks' Colab install use it.
KIT_REPOSITORY = "s3f-kit/s3f-kit"

# Demo settings (synthetic data). A run on the built-in demo data (data_dir "") takes these for
# the parameters it leaves None (demo_defaults; the notebook prints demo_note), so
# `papermill notebooks/<any>.ipynb out.ipynb -p epochs 50` trains a useful model on a 2-core CPU
# in about a minute. Measured in docs/demo.md. Aspect ratios follow the paper's input sizes.
DEMO_IMAGE_SIZES = {
    "BRISC2025": [32, 32],
    "ChestXRay": [24, 32],
    "BUSI": [32, 32],
    "HAM10000": [24, 32],
}
# Synthetic training images per class: 86–224 training images per dataset, i.e. 6–14 steps per
# epoch at batch 16 (two-class Chest X-Ray gets twice as many per class), so the paper's patience,
# counted in epochs, leaves enough steps to learn.
DEMO_COUNTS = {"BRISC2025": 24, "ChestXRay": 48, "BUSI": 24, "HAM10000": 32}
DEMO_BN_MOMENTUM = 0.9
_DEMO_REASONS = {
    "img_size": "small images, so a CPU trains in about a minute",
    "bn_momentum": "only a few hundred training steps: BatchNorm's 0.99 moving averages would lag "
    "the weights and inference-mode predictions collapse to one class",
    "demo_count": "synthetic training images per class (at least 6 steps per epoch)",
}
# The sweep's demo (`make demo`): explicit notebook parameters on top of demo_defaults. About
# 20–30 s per run on 2 cores; Adam at 1e-3 instead of the paper's 3e-4 reaches in 20 epochs what
# 3e-4 reaches in 50 (docs/demo.md).
DEMO_PARAMETERS = {"epochs": 20, "learning_rate": 1e-3, "verbose": 2}


def demo_defaults(experiment: str) -> dict:
    """Run settings on synthetic demo data, for the parameters a run leaves None."""
    dataset = get_experiment(experiment).dataset
    return {
        "img_size": list(DEMO_IMAGE_SIZES[dataset]),
        "bn_momentum": DEMO_BN_MOMENTUM,
        "demo_count": DEMO_COUNTS[dataset],
    }


def demo_note(experiment: str, applied: dict) -> str:
    """The short block a demo run prints: each setting that differs from the paper's, and why."""
    paper = {"img_size": list(get_experiment(experiment).info.image_size), "bn_momentum": 0.99}
    lines = ["Demo settings on synthetic data (with data_dir set, the paper's apply):"]
    for key, value in applied.items():
        was = f" (paper: {paper[key]})" if key in paper else ""
        lines.append(f"  {key} = {value}{was} — {_DEMO_REASONS[key]}")
    return "\n".join(lines)


BATCH_SIZE = 16
LEARNING_RATE = 3e-4
LR_FACTOR = 0.2
MIN_LR = 1e-6


@dataclass(frozen=True)
class PaperResult:
    """Test-set numbers printed in the original notebooks ("paper" protocol)."""

    accuracy: float  # percent
    weighted_f1: float
    macro_f1: float


@dataclass(frozen=True)
class Experiment:
    name: str  # notebook name, e.g. "S3F_Concat_BUSI"
    dataset: str
    architecture: str  # "spatial" | "spectranet" | "s3f"
    fusion: str
    spectranet: int
    params: int  # count_params() at the paper's input size
    paper: PaperResult
    recipe: Recipe = field(repr=False)

    @property
    def info(self) -> DatasetInfo:
        return DATASETS[self.dataset]

    @property
    def num_classes(self) -> int:
        return len(self.info.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (*self.info.image_size, self.info.channels)

    @property
    def model_title(self) -> str:
        if self.architecture == "spatial":
            return "Spatial baseline"
        if self.architecture == "spectranet":
            return f"SpectraNet-{self.spectranet}"
        return f"S³F-Net ({self.fusion}, SN{self.spectranet})"


# (dataset, architecture) → (params, paper accuracy %, weighted F1, macro F1)
_PAPER = {
    ("BRISC2025", "spatial"): (1_309_284, 98.22, 0.982, 0.983),
    ("BRISC2025", "spectranet"): (2_128_184, 94.46, 0.944, 0.948),
    ("BRISC2025", "s3f"): (3_443_592, 98.81, 0.988, 0.988),
    ("ChestXRay", "spatial"): (1_307_745, 86.54, 0.863, 0.851),
    ("ChestXRay", "spectranet"): (6_330_665, 91.03, 0.909, 0.901),
    ("ChestXRay", "s3f"): (7_638_409, 93.91, 0.939, 0.935),
    ("BUSI", "spatial"): (1_308_771, 84.62, 0.848, 0.821),
    ("BUSI", "spectranet"): (137_392_083, 82.05, 0.818, 0.800),
    ("BUSI", "s3f"): (138_700_851, 87.82, 0.877, 0.853),
    ("HAM10000", "spatial"): (1_311_399, 65.54, 0.678, 0.521),
    ("HAM10000", "spectranet"): (6_537_863, 63.10, 0.641, 0.438),
    ("HAM10000", "s3f"): (7_859_979, 69.31, 0.705, 0.515),
}


def _notebook_name(dataset: str, architecture: str, recipe: Recipe) -> str:
    if architecture == "spatial":
        return f"Spatial_{dataset}"
    if architecture == "spectranet":
        return f"SpectraNet_{dataset}"
    return f"S3F_{recipe.fusion.capitalize()}_{dataset}"


def _build_registry() -> dict[str, Experiment]:
    registry = {}
    for (dataset, architecture), (params, acc, wf1, mf1) in _PAPER.items():
        recipe = RECIPES[dataset]
        name = _notebook_name(dataset, architecture, recipe)
        registry[name] = Experiment(
            name=name,
            dataset=dataset,
            architecture=architecture,
            fusion=recipe.fusion,
            spectranet=recipe.spectranet,
            params=params,
            paper=PaperResult(acc, wf1, mf1),
            recipe=recipe,
        )
    return registry


EXPERIMENTS: dict[str, Experiment] = _build_registry()


def get_experiment(name: str) -> Experiment:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ValueError(
            f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}"
        ) from None


# --------------------------------------------------------------------------- run identity
# A run is experiment + model variant + protocol + seed. Its folder name says only what differs
# from the paper's setting, so the paper's run of an experiment stays short:
#   S3F_Concat_BUSI/seed42/                      the paper's model, protocol and default seed
#   S3F_Concat_BUSI/bilinear-sn1/holdout/seed43/ another fusion and SpectraNet, honest split
# The notebook (s3f_training.Run) and the sweep both call run_subdir, so a notebook run by hand
# and the same run from the sweep land in the same folder.

PAPER_PROTOCOL = "paper"
DEFAULT_SEED = 42
# Model-variant parameters beyond fusion/spectranet, with the paper's values and short names.
VARIANT_DEFAULTS = {"channel_mixing": "dense", "modes": None, "precision": "float32",
                    "jit_compile": False}
_PRECISION_TAGS = {"mixed_float16": "fp16", "mixed_bfloat16": "bf16"}


def variant_name(experiment: str, settings: dict) -> str:
    """'' for the paper's model of `experiment`, else a short name of what differs, e.g.
    'bilinear-sn1', 'sn1', 'depthwise-modes32x32', 'fp16-xla'."""
    exp = get_experiment(experiment)
    parts = []
    fusion = settings.get("fusion") or exp.fusion
    spectranet = settings.get("spectranet") or exp.spectranet
    if exp.architecture == "s3f" and (fusion, int(spectranet)) != (exp.fusion, exp.spectranet):
        parts.append(f"{fusion}-sn{spectranet}")
    elif exp.architecture == "spectranet" and int(spectranet) != exp.spectranet:
        parts.append(f"sn{spectranet}")
    if exp.architecture != "spatial":  # the spatial tower has no SpectralFilter
        if (settings.get("channel_mixing") or "dense") != "dense":
            parts.append(str(settings["channel_mixing"]))
        modes = settings.get("modes")
        if modes:
            if isinstance(modes, str):
                import ast

                modes = ast.literal_eval(modes)
            parts.append(f"modes{int(modes[0])}x{int(modes[1])}")
    precision = settings.get("precision") or "float32"
    if precision != "float32":
        parts.append(_PRECISION_TAGS.get(precision, precision))
    if settings.get("jit_compile"):
        parts.append("xla")
    return "-".join(parts)


def run_subdir(experiment: str, settings: dict) -> str:
    """The run folder of one run, relative to the output folder (POSIX separators)."""
    parts = [experiment]
    variant = variant_name(experiment, settings)
    if variant:
        parts.append(variant)
    protocol = settings.get("protocol") or PAPER_PROTOCOL
    if protocol != PAPER_PROTOCOL:
        parts.append(protocol)
    seed = settings.get("seed")
    parts.append(f"seed{DEFAULT_SEED if seed is None else int(seed)}")
    return "/".join(parts)
