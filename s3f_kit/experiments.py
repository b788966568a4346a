"""The registry of the paper's twelve experiments: the one place their settings live.

Notebooks are generated from it, the sweep runner and the results tables read it, the tests check
the models against it. Facts come from the paper (its notebooks); "kit" marks our additions.

It also registers the kit's standard deep baselines (BASELINES × the datasets: twelve
Baseline_<Model>_<DATASET> experiments, BASELINE_EXPERIMENTS), which the paper did not train,
and the parameter-matched spatial–spatial control of each dataset's S³F-Net (Control_<DATASET>,
CONTROL_EXPERIMENTS; issue 35).

Every per-dataset fact (the paper's schedule, printed numbers, test support, the demo's sizes)
lives in the dataset's record (data_setup.datasets.DatasetInfo); the tables here are views of the
records (RecordView), so a dataset registered later (register_dataset) has its experiments too.

Why one module of ~600 lines: the registry's experiments, the paper's results and recipes they
carry, the demo settings, the controls' sizing and the run-size estimates are read together by
every caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from data_setup.custom import CUSTOM_IMAGE_SIZE, CUSTOM_LAYOUT
from data_setup.datasets import (  # noqa: F401  (re-exported)
    CUSTOM_LICENCE,
    DATASETS,
    DatasetInfo,
    RecordView,
)
from s3f_kit import fusions as s3f_fusions


@dataclass(frozen=True)
class Recipe:
    """The paper's training schedule for one dataset."""

    epochs: int
    f1_patience: int  # early stopping on validation F1
    lr_patience: int  # ReduceLROnPlateau on val_loss (factor 0.2, min_lr 1e-6)
    fusion: str  # the paper's best fusion for S³F-Net on this dataset
    spectranet: int  # SpectraNet variant for the S³F-Net and SpectraNet-only models


# Demo settings (synthetic data). A run on the built-in demo data (data_dir "") takes these for
# the parameters it leaves None (demo_defaults; the notebook prints demo_note), so
# `papermill notebooks/<any>.ipynb out.ipynb -p epochs 50` trains a useful model on a 2-core CPU
# in about a minute. Measured in docs/demo.md. Sizes and counts per dataset: its record.
DEMO_BN_MOMENTUM = 0.9
_DEMO_REASONS = {
    "img_size": "small images, so a CPU trains in about a minute",
    "bn_momentum": "only a few hundred training steps: BatchNorm's 0.99 moving averages would lag "
    "the weights and inference-mode predictions collapse to one class",
    "demo_count": "synthetic training images per class (at least 6 steps per epoch)",
}
# BatchNorm momentum for the length of a run (data_dir runs that leave bn_momentum None). A
# moving average with momentum m keeps m^n ≈ exp(−n (1 − m)) of its start after n steps: its
# time constant is 1 / (1 − m) steps (0.99: 100). The checkpoint that is evaluated can come from
# the middle of a run, so half the planned steps should already be 5 time constants (the start's
# weight e^−5 < 1 %): n ≥ BN_SETTLE_TIME_CONSTANTS / (1 − m). Measured on 90 images of 3 classes
# (S3F_Custom at 32×32, 20 epochs = 100 steps): 0.9 reaches κ 0.58, while 0.95 and 0.99 predict
# one class. The first rung is the paper's (Keras' default), the last the demo's.
BN_MOMENTUM_LADDER = (0.99, 0.95, DEMO_BN_MOMENTUM)
PAPER_BN_MOMENTUM = BN_MOMENTUM_LADDER[0]  # Keras' default, as the paper's notebooks left it
BN_SETTLE_TIME_CONSTANTS = 10


def bn_steps_needed(momentum: float) -> int:
    """Optimizer steps a BatchNorm momentum needs before its moving averages can be trusted."""
    return round(BN_SETTLE_TIME_CONSTANTS / (1 - momentum))


def bn_momentum_for(steps: int) -> float:
    """The slowest momentum of the ladder that settles within `steps` optimizer steps (the
    fastest when none does)."""
    for momentum in BN_MOMENTUM_LADDER:
        if steps >= bn_steps_needed(momentum):
            return momentum
    return BN_MOMENTUM_LADDER[-1]


# The sweep's demo (`make demo`): explicit notebook parameters on top of demo_defaults. About
# 15–25 s per run on 2 cores; Adam at 1e-3 instead of the paper's 3e-4 reaches in ~20 epochs
# what 3e-4 reaches in 50 (docs/demo.md).
DEMO_PARAMETERS = {"epochs": 15, "learning_rate": 1e-3, "verbose": 2}


def demo_defaults(experiment: str) -> dict:
    """Run settings on synthetic demo data, for the parameters a run leaves None."""
    dataset = get_experiment(experiment).dataset
    dataset = CUSTOM_DEMO_DATASET if dataset == "Custom" else dataset
    return {
        "img_size": demo_image_size(experiment),
        "bn_momentum": DEMO_BN_MOMENTUM,
        "demo_count": DEMO_COUNTS[dataset],
    }


def demo_note(experiment: str, applied: dict) -> str:
    """The short block a demo run prints: each setting that differs from the paper's, and why."""
    paper = {
        "img_size": list(get_experiment(experiment).info.image_size),
        "bn_momentum": PAPER_BN_MOMENTUM,
    }
    lines = ["Demo settings on synthetic data (with data_dir set, the paper's apply):"]
    for key, value in applied.items():
        was = f" (paper: {paper[key]})" if key in paper else ""
        lines.append(f"  {key} = {value}{was} — {_DEMO_REASONS[key]}")
    return "\n".join(lines)


BATCH_SIZE = 16
# The model's variant choices (s3f_common builds them; s3f_config validates run parameters).
# "control" (kit): S³F-Net with a parameter-matched spatial CNN in place of SpectraNet.
ARCHITECTURES = ("spatial", "spectranet", "s3f", "control")
PAPER_ARCHITECTURES = ARCHITECTURES[:3]  # the paper's three models of every dataset
FUSIONS = s3f_fusions.NAMES  # the registered fusions' names, live (s3f_fusions): the paper's two
CHANNEL_MIXINGS = ("dense", "depthwise")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def max_modes(height: int, width: int) -> tuple[int, int]:
    """The largest `modes` a SpectralFilter takes on a height×width input: row frequencies
    |k| < mh need 2·mh − 1 ≤ height rows; rfft2d keeps width // 2 + 1 columns."""
    return (height + 1) // 2, width // 2 + 1


LEARNING_RATE = 3e-4
LR_FACTOR = 0.2
MIN_LR = 1e-6


@dataclass(frozen=True)
class PaperResult:
    """Everything the original notebook printed on the test set ("paper" protocol, one unseeded
    run, best checkpoint selected on the test set; docs/paper.md §6.1)."""

    accuracy: float  # percent
    weighted_f1: float
    macro_f1: float
    cohen_kappa: float
    mcc: float
    auc: tuple[float, ...]  # (macro, weighted) one-vs-rest; binary: (AUC,)
    loss: float
    epochs_run: int
    best_epoch: int
    positive_f1: float | None = None  # Chest X-Ray: F1 of PNEUMONIA

    def metrics(self) -> dict:
        """Keyed like the kit's metrics.json (accuracy as a fraction)."""
        result = {
            "accuracy": round(self.accuracy / 100, 6),
            "weighted_f1": self.weighted_f1,
            "macro_f1": self.macro_f1,
            "cohen_kappa": self.cohen_kappa,
            "mcc": self.mcc,
            "loss": self.loss,
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
        }
        if len(self.auc) == 1:
            result["roc_auc"] = self.auc[0]
            result["positive_f1"] = self.positive_f1
        else:
            result["roc_auc_macro"], result["roc_auc_weighted"] = self.auc
        return result


@dataclass(frozen=True)
class PaperContributions:
    """The paper's branch-contribution means on the test set (its XAI notebook, docs/paper.md §6.2).
    It explained *concatenation* S³F-Nets (SN1; BUSI SN2) with bilinear-resizing loaders."""

    fusion: str
    spectranet: int
    l2_spatial: float  # percent; spectral = 100 - spatial
    balanced_spatial: float
    balanced_spatial_per_class: dict

    def as_dict(self) -> dict:
        return {
            "fusion": self.fusion,
            "spectranet": self.spectranet,
            "l2_spatial": self.l2_spatial,
            "l2_spectral": round(100 - self.l2_spatial, 2),
            "balanced_spatial": self.balanced_spatial,
            "balanced_spectral": round(100 - self.balanced_spatial, 2),
            "balanced_spatial_per_class": dict(self.balanced_spatial_per_class),
        }


def paper_contributions(dataset: str) -> dict | None:
    """The paper's §6.2 shares for `dataset` (its concat model), or None."""
    found = DATASET_FACTS.get(dataset)
    return found.contributions.as_dict() if found and found.contributions else None


@dataclass(frozen=True)
class Experiment:
    name: str  # notebook name, e.g. "S3F_Concat_BUSI"
    dataset: str
    # "spatial" | "spectranet" | "s3f" | "baseline" (kit: keras.applications) | "control" (kit)
    architecture: str
    fusion: str
    spectranet: int
    params: int  # count_params() at the paper's input size
    paper: PaperResult | None
    recipe: Recipe = field(repr=False)
    backbone: str = ""  # a baseline's BASELINES name, e.g. "ResNet50V2"

    @property
    def info(self) -> DatasetInfo:
        return DATASETS.get(self.dataset, CUSTOM_INFO)

    @property
    def num_classes(self) -> int:
        return len(self.info.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (*self.info.image_size, self.info.channels)

    @property
    def model_title(self) -> str:
        if self.architecture == BASELINE_ARCHITECTURE:
            return f"{self.backbone} (keras.applications)"
        if self.architecture == "spatial":
            return "Spatial baseline"
        if self.architecture == "spectranet":
            return f"SpectraNet-{self.spectranet}"
        if self.architecture == CONTROL_ARCHITECTURE:
            return f"Parameter-matched spatial–spatial control ({self.fusion}, SN{self.spectranet})"
        return f"S³F-Net ({self.fusion}, SN{self.spectranet})"


@dataclass(frozen=True)
class DatasetFacts:
    """A view of one dataset's record (data_setup.datasets.DatasetInfo) in the registry's types:
    the paper's recipe and printed results, and the demo's size."""

    recipe: Recipe
    # architecture → (params at the paper's input size, §6.1 row): DatasetInfo.paper_results
    paper: dict
    test_support: tuple[int, ...]  # test images per class (§6.1), in the class order
    contributions: PaperContributions | None  # the XAI notebook's branch shares (§6.2)
    demo_image_size: tuple[int, int]
    demo_count: int


def recipe_of(info: DatasetInfo) -> Recipe:
    """The paper's training schedule of a dataset, from its record."""
    return Recipe(**info.paper_recipe)


def _facts(info: DatasetInfo) -> DatasetFacts:
    return DatasetFacts(
        recipe=recipe_of(info),
        paper=dict(info.paper_results),
        test_support=info.test_support,
        contributions=PaperContributions(*info.paper_contributions)
        if info.paper_contributions
        else None,
        demo_image_size=info.demo_image_size,
        demo_count=info.demo_count,
    )


DATASET_FACTS = RecordView(lambda: {name: _facts(info) for name, info in DATASETS.items()})
# Views of the records, for the code that wants one fact of every dataset.
RECIPES = RecordView(lambda: {name: f.recipe for name, f in DATASET_FACTS.items()})
DEMO_IMAGE_SIZES = RecordView(
    lambda: {name: list(f.demo_image_size) for name, f in DATASET_FACTS.items()}
)
DEMO_COUNTS = RecordView(lambda: {name: f.demo_count for name, f in DATASET_FACTS.items()})
PAPER_TEST_SUPPORT = RecordView(
    lambda: {name: f.test_support for name, f in DATASET_FACTS.items() if f.test_support}
)


def _notebook_name(dataset: str, architecture: str, recipe: Recipe) -> str:
    if architecture == "spatial":
        return f"Spatial_{dataset}"
    if architecture == "spectranet":
        return f"SpectraNet_{dataset}"
    return f"S3F_{recipe.fusion.capitalize()}_{dataset}"


def _build_registry() -> dict[str, Experiment]:
    registry = {}
    for dataset, facts in DATASET_FACTS.items():
        for architecture in PAPER_ARCHITECTURES:  # a dataset the paper did not use: no numbers
            params, row = facts.paper.get(architecture, (0, None))
            recipe = facts.recipe
            name = _notebook_name(dataset, architecture, recipe)
            registry[name] = Experiment(
                name=name,
                dataset=dataset,
                architecture=architecture,
                fusion=recipe.fusion,
                spectranet=recipe.spectranet,
                params=params,
                paper=PaperResult(*row) if row else None,
                recipe=recipe,
            )
    return registry


EXPERIMENTS: RecordView = RecordView(_build_registry)


# --------------------------------------------------------------------------- standard deep CNNs
# Kit, not the paper: the usual ImageNet architectures from keras.applications, trained with the
# paper's recipe, seeds and protocols on each dataset (s3f_baselines builds them; these facts
# stay TensorFlow-free so the sweep can plan them). Baseline_<Model>_<DATASET> notebooks, e.g.
# Baseline_ResNet50V2_BUSI; no paper numbers.
BASELINE_ARCHITECTURE = "baseline"


@dataclass(frozen=True)
class Baseline:
    name: str
    constructor: str  # keras.applications.<constructor>
    scaling: str  # how [0, 1] images become the backbone's ImageNet input
    params: int  # the backbone's count_params() without its top (tests/test_baselines.py)
    features: int  # width of its globally pooled features (the head's input)
    min_side: int = 32  # keras.applications refuses smaller inputs
    note: str = ""


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("ResNet50V2", "ResNet50V2", "minus_one_to_one", 23_564_800, 2048,
                 note="He et al. 2016"),
        Baseline("DenseNet121", "DenseNet121", "imagenet_mean_std", 7_037_504, 1024,
                 note="Huang et al. 2017"),
        # EfficientNetV2 scales its own input (include_preprocessing): it takes 0–255 pixels.
        Baseline("EfficientNetV2B0", "EfficientNetV2B0", "zero_to_255", 5_919_312, 1280,
                 note="Tan & Le 2021"),
    )
}  # fmt: skip
BASELINE_WEIGHTS = ("imagenet", "random")  # ImageNet where it can be fetched, else random


def baseline_name(backbone: str, dataset: str) -> str:
    return f"Baseline_{backbone}_{dataset}"


def _build_baselines() -> dict[str, Experiment]:
    registry = {}
    for dataset, facts in DATASET_FACTS.items():
        classes = len(DATASETS[dataset].class_names)
        units = 1 if classes == 2 else classes  # the paper's head: one sigmoid unit for two
        for backbone in BASELINES.values():
            name = baseline_name(backbone.name, dataset)
            registry[name] = Experiment(
                name=name,
                dataset=dataset,
                architecture=BASELINE_ARCHITECTURE,
                fusion=facts.recipe.fusion,  # unused: recorded like every run's
                spectranet=facts.recipe.spectranet,
                params=backbone.params + backbone.features * units + units,
                paper=None,
                recipe=facts.recipe,
                backbone=backbone.name,
            )
    return registry


BASELINE_EXPERIMENTS: RecordView = RecordView(_build_baselines)


def demo_image_size(experiment: str) -> list[int]:
    """The demo's image size of `experiment`: its dataset's, scaled up in the same aspect ratio
    where a baseline's backbone needs larger sides (keras.applications: at least 32 px)."""
    exp = get_experiment(experiment)
    dataset = CUSTOM_DEMO_DATASET if exp.dataset == "Custom" else exp.dataset
    size = DEMO_IMAGE_SIZES[dataset]
    if exp.architecture != BASELINE_ARCHITECTURE:
        return list(size)
    factor = max(1.0, BASELINES[exp.backbone].min_side / min(size))
    return [round(side * factor) for side in size]


def paper_metrics(experiment: str) -> dict:
    """The paper's printed test metrics of `experiment`, keyed like metrics.json ({} for your
    own data and the baselines)."""
    paper = get_experiment(experiment).paper
    return paper.metrics() if paper else {}


# --------------------------------------------------------------------------- your own data
# One more notebook, S3F_Custom, runs any of the paper's models on your images (data_setup's
# "Custom" layouts). It is not one of the twelve: no paper numbers, the class names come from
# the data. Its recipe defaults are the paper's (a record's default: data_setup.datasets
# DEFAULT_RECIPE, the BRISC2025/HAM10000 schedule with concat SN1).
CUSTOM_EXPERIMENT = "S3F_Custom"
CUSTOM_INFO = DatasetInfo(
    id="Custom",
    title="your own images",
    class_names=(),
    channels=1,
    image_size=CUSTOM_IMAGE_SIZE,
    layout=CUSTOM_LAYOUT,
    source="",
    licence=CUSTOM_LICENCE,
    paper_split="your split, or a seeded stratified 80/20 split",
)
CUSTOM_RECIPE = recipe_of(CUSTOM_INFO)
CUSTOM_DEMO_DATASET = "BRISC2025"  # without data_dir, S3F_Custom trains on this synthetic set


def custom_experiment(architecture: str = "s3f") -> Experiment:
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {', '.join(map(repr, ARCHITECTURES))}, "
            f"got {architecture!r}"
        )
    return Experiment(
        name=CUSTOM_EXPERIMENT,
        dataset="Custom",
        architecture=architecture,
        fusion=CUSTOM_RECIPE.fusion,
        spectranet=CUSTOM_RECIPE.spectranet,
        params=0,
        paper=None,
        recipe=CUSTOM_RECIPE,
    )


def get_experiment(name: str) -> Experiment:
    if name == CUSTOM_EXPERIMENT:
        return custom_experiment()
    try:
        return EXPERIMENTS.get(name) or CONTROL_EXPERIMENTS.get(name) or BASELINE_EXPERIMENTS[name]
    except KeyError:
        raise ValueError(
            f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}, "
            f"{CUSTOM_EXPERIMENT}, a control Control_<dataset> or a baseline "
            f"Baseline_<{'|'.join(BASELINES)}>_<dataset>"
        ) from None


# --------------------------------------------------------------------------- run identity
PAPER_PROTOCOL = "paper"
PROTOCOLS = (PAPER_PROTOCOL, "holdout")  # holdout: validate on a split of train (docs/paper.md)
DEFAULT_SEED = 42


# --------------------------------------------------------------------------- disk footprint
# SpectraNet filter widths; the SpectralFilter layers of SpectraNet-1 and -2 (s3f_common).
SPECTRAL_FILTERS = {1: (32,), 2: (32, 64)}


def spectral_kernel_shape(height, width, channels, filters, channel_mixing="dense", modes=None):
    """(C, per-input filters, rows, cols) of one SpectralFilter's real and imaginary weights
    (shared with SpectralFilter.build; TensorFlow-free so the sweep can size a plan)."""
    rows, cols = (height, width // 2 + 1) if modes is None else (2 * modes[0] - 1, modes[1])
    per_input = filters if channel_mixing == "dense" else -(-filters // channels)
    return (channels, per_input, rows, cols)


def _spectral_weights(image_size, channels, spectranet, channel_mixing, modes) -> int:
    count, inputs = 0, channels
    for filters in SPECTRAL_FILTERS[spectranet]:
        c, per, rows, cols = spectral_kernel_shape(
            *image_size, inputs, filters, channel_mixing, modes
        )
        count += 2 * c * per * rows * cols + filters
        inputs = filters
    return count


def estimated_parameters(experiment: str, settings: dict) -> int:
    """The parameter count of a planned run, without building it: the registry's count at the
    paper's configuration with the SpectralFilter weights (nearly all of a SpectraNet's) resized
    to the run's image size, SpectraNet, channel mixing and modes. Within ~1 %: the small layers
    around them change a little with fusion and SpectraNet."""
    exp = get_experiment(experiment)
    if experiment == CUSTOM_EXPERIMENT:
        exp = custom_experiment(settings.get("architecture") or "s3f")
        channels = settings.get("channels") or 1
    else:
        channels = exp.info.channels
    like = exp
    if not exp.params:  # your own data, or a dataset the paper did not use: like one it did
        like = next(e for e in (*EXPERIMENTS.values(), *CONTROL_EXPERIMENTS.values())
                    if e.architecture == exp.architecture and e.params)  # fmt: skip
    if exp.architecture == CONTROL_ARCHITECTURE:  # its readout is sized by the image
        spectranet = int(settings.get("spectranet") or exp.spectranet)
        size = tuple(settings.get("img_size") or exp.info.image_size)
        return (
            like.params
            - _control_change(like.info.image_size, like.info.channels, like.spectranet)
            - _spectral_weights(like.info.image_size, like.info.channels, like.spectranet,
                                "dense", None)
            + _spectral_weights(size, channels, spectranet, "dense", None)
            + _control_change(size, channels, spectranet)
        )  # fmt: skip
    if exp.architecture in ("spatial", BASELINE_ARCHITECTURE):  # no size-dependent weights
        return like.params
    paper = _spectral_weights(
        like.info.image_size, like.info.channels, like.spectranet, "dense", None
    )
    modes = settings.get("modes")
    if isinstance(modes, str):
        import ast

        modes = ast.literal_eval(modes)
    planned = _spectral_weights(
        settings.get("img_size") or exp.info.image_size,
        channels,
        int(settings.get("spectranet") or exp.spectranet),
        settings.get("channel_mixing") or "dense",
        None if not modes else tuple(int(m) for m in modes),
    )
    return like.params - paper + planned


# --------------------------------------------------------------------------- the matched control
# Kit, not the paper (issue 35): "the spectral branch adds information" needs a two-branch model
# of the same size whose second branch is spatial. Control_<DATASET> is the dataset's S³F-Net
# (same input, spatial tower, fusion and head) with SpectraNet replaced by a small spatial CNN:
# each SpectralFilter block becomes a 3×3 Conv2D block of the same width, the depthwise-separable
# tail and the funnel to a 4-d vector stay, and the global average pooling becomes a Flatten and
# a Dense readout of CONTROL_UNITS units. SpectraNet's weights sit in its image-sized spectral
# kernels (2·C·F·H·(W/2+1) per filter); the readout's sit in its image-sized input
# ((H/s)·(W/s)·128 per unit), so choosing the units matches the two counts at any input size
# (within CONTROL_TOLERANCE; docs/shortcuts.md lists them). Matched: the parameter count. Not
# matched: FLOPs and inductive bias (a position-specific readout instead of a global filter).
CONTROL_ARCHITECTURE = "control"
CONTROL_KERNEL = 3  # the stem convolutions that stand in for the SpectralFilters
# The SpectraNet tail the control keeps: (width of its last map, its MaxPooling2D(2) stages).
SPECTRANET_TAIL = {1: (128, 2), 2: (128, 1)}
FUNNEL_WIDTH = 16  # the funnel's first Dense, fed by the readout instead of the pooled 128
CONTROL_TOLERANCE = 0.02  # |control − S³F-Net| / S³F-Net at the paper's sizes (tests check it)


def _stem_weights(channels: int, spectranet: int) -> int:
    count, inputs = 0, channels
    for filters in SPECTRAL_FILTERS[spectranet]:
        count += CONTROL_KERNEL * CONTROL_KERNEL * inputs * filters + filters
        inputs = filters
    return count


def _readout_inputs(image_size, spectranet: int) -> int:
    width, pools = SPECTRANET_TAIL[spectranet]
    height, cols = image_size
    for _ in range(pools):  # 'valid' pooling floors odd sides
        height, cols = height // 2, cols // 2
    return height * cols * width


def control_units(image_size, channels: int, spectranet: int) -> int:
    """The readout units that make the control's second branch as large as SpectraNet's at
    this input: what the control removes (the spectral filters, the 128 → 16 funnel weights)
    less what it adds (the stem convolutions), per readout unit (its inputs, bias and its 16
    funnel weights). At least one."""
    removed = _spectral_weights(tuple(image_size), channels, spectranet, "dense", None)
    removed += SPECTRANET_TAIL[spectranet][0] * FUNNEL_WIDTH - _stem_weights(channels, spectranet)
    per_unit = _readout_inputs(image_size, spectranet) + 1 + FUNNEL_WIDTH
    return max(1, round(removed / per_unit))


def _control_change(image_size, channels: int, spectranet: int) -> int:
    """Parameters of the control minus those of the S³F-Net it stands beside (same input)."""
    units = control_units(image_size, channels, spectranet)
    added = _stem_weights(channels, spectranet)
    added += units * (_readout_inputs(image_size, spectranet) + 1 + FUNNEL_WIDTH)
    removed = _spectral_weights(tuple(image_size), channels, spectranet, "dense", None)
    return added - removed - SPECTRANET_TAIL[spectranet][0] * FUNNEL_WIDTH


def control_name(dataset: str) -> str:
    return f"Control_{dataset}"


def _build_controls() -> dict[str, Experiment]:
    registry = {}
    for dataset in DATASET_FACTS:
        s3f = next(
            e for e in EXPERIMENTS.values() if e.dataset == dataset and e.architecture == "s3f"
        )
        name = control_name(dataset)
        change = _control_change(s3f.info.image_size, s3f.info.channels, s3f.spectranet)
        registry[name] = Experiment(
            name=name,
            dataset=dataset,
            architecture=CONTROL_ARCHITECTURE,
            fusion=s3f.fusion,
            spectranet=s3f.spectranet,
            # exact: tests/test_control.py builds them (no paper numbers: 0, as its S³F-Net)
            params=s3f.params + change if s3f.params else 0,
            paper=None,
            recipe=s3f.recipe,
        )
    return registry


CONTROL_EXPERIMENTS: RecordView = RecordView(_build_controls)


def matched_s3f(control: str) -> Experiment:
    """The S³F-Net experiment a Control_<DATASET> is matched to."""
    exp = get_experiment(control)
    return next(
        e for e in EXPERIMENTS.values() if e.dataset == exp.dataset and e.architecture == "s3f"
    )
