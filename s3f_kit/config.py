"""Every run parameter, declared once.

`RunConfig` is the one declaration of what a run of an experiment notebook can be told: each
field's type, default, one-line doc, validation, and its roles — a sweep grid axis, compared when
a finished run is reused, shown in the results' settings line. Everything else derives from it:

- the notebooks' `parameters` cell (s3f_notebooks.parameters_cell),
- `s3f_training.Run` (a RunConfig that trains, so its fields are these),
- the sweep's plan and reuse check (`RunConfig.resolved().settings()`, never parsed from notebooks),
- run identity and folder names (s3f_experiments.run_subdir over resolved settings),
- the results' settings line (`shown()`) and the README's parameter table (`markdown_table`).

Adding a parameter is one `param(...)` field here plus the code that uses it.

Only None means "the paper's value": `resolved()` fills what a run left None, from the demo
defaults first on synthetic data (s3f_experiments.demo_defaults) and then from the registry
(the experiment's recipe, fusion, SpectraNet and input size). It has no side effects (no data is
unpacked, nothing printed), so the sweep can ask what a notebook will record before it runs.

No TensorFlow here: the sweep and every `--help` import this module.

Why ~550 lines: the declaration is the point — every parameter with its doc and check in one
class, the validators it names, and what derives from it (cells, expected settings, identity).
"""

from __future__ import annotations

import ast
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from data_setup.arms import PAPER_RESIZE, RESIZE_MODES
from data_setup.datasets import MAX_IMAGE_SIDE
from s3f_kit import experiments as s3f_experiments
from s3f_kit import recipe as s3f_recipe

# keras.utils.set_random_seed seeds NumPy's legacy generator, which takes 0 … 2**32 − 1.
MAX_SEED = 2**32 - 1
MAX_FOLDS = 20  # more folds than this leaves test folds too small to score
# Four MaxPool(2) stages ('valid' padding) in the spatial tower need 16 px; SN1 has two, SN2 one.
MIN_SIDE = {"spatial": 16, "s3f": 16, "control": 16, ("spectranet", 1): 4, ("spectranet", 2): 2}
BASELINE = s3f_experiments.BASELINE_ARCHITECTURE  # keras.applications CNNs (kit)
ALL_ARCHITECTURES = frozenset({*s3f_experiments.ARCHITECTURES, BASELINE})
SPECTRAL = frozenset({"s3f", "spectranet"})  # the models with a SpectralFilter
# The two-branch models: a fusion and a SpectraNet (the control: the SpectraNet it matches).
FUSED = frozenset({"s3f", s3f_experiments.CONTROL_ARCHITECTURE})


# --------------------------------------------------------------------------- validators
# Each takes (value, name) and returns the value normalized, or raises one ValueError that names
# the parameter and what was expected.


def as_pair(value, name, minimum=1, maximum=None):
    """None, [a, b], or the text "[a, b]" (papermill's -p passes lists as text) → list or None;
    both integers from minimum to maximum."""
    if value is None or value == "":
        return None
    given, pair = value, value
    if isinstance(value, str):
        try:
            pair = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pair = None
    if (
        not isinstance(pair, (list, tuple))
        or len(pair) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
    ):
        raise ValueError(f"{name} must be None or two integers like [256, 256], got {given!r}")
    if min(pair) < minimum or (maximum is not None and max(pair) > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"≥ {minimum}"
        raise ValueError(f"{name} must be two integers {bounds}, got {given!r}")
    return [int(v) for v in pair]


def as_integer(value, name, minimum, maximum=None):
    """None stays None; otherwise an int from minimum (to maximum); 0 stays 0."""
    if value is None:
        return None
    bounds = f"from {minimum} to {maximum}" if maximum is not None else f"≥ {minimum}"
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif type(value).__module__ == "numpy" and float(value).is_integer():
            value = int(value)  # a NumPy integer from a grid or a table
        else:
            raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")
    return int(value)


def as_choice(value, name, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def integer(minimum, maximum=None) -> Callable:
    return lambda value, name: as_integer(value, name, minimum, maximum)


def choice(*allowed, optional=False) -> Callable:
    def check(value, name):
        return None if optional and value is None else as_choice(value, name, allowed)

    return check


def pair(minimum=1, maximum=None) -> Callable:
    return lambda value, name: as_pair(value, name, minimum, maximum)


def flag(value, name):
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"  # -p skip_damaged true from a shell
    if not isinstance(value, (bool, int)) or value not in (0, 1):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def text(value, name):
    if value is None:
        return ""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text (a path, a URL or empty), got {value!r}")
    return value


def positive_number(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)  # Keras rejects an int learning rate


def momentum(value, name):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be None or in [0, 1), got {value!r}")
    return float(value)


def schedule_name(value, name):
    """A learning-rate schedule of s3f_kit.recipe's registry, looked up when checked (a schedule
    registered after this module was imported counts)."""
    if value not in s3f_recipe.SCHEDULES:
        as_choice(value, name, tuple(s3f_recipe.SCHEDULES))
    return value


def optional_gpu(value, name):
    return None if value is None else as_integer(value, name, 0)


# --------------------------------------------------------------------------- declaring one


def param(
    default,
    doc: str,
    check: Callable | None = None,
    *,
    grid: frozenset = frozenset(),
    compared: bool = True,
    shown: bool = False,
    custom_only: bool = False,
    baseline_only: bool = False,
    in_notebook: Callable | None = None,
) -> Any:
    """One run parameter (a RunConfig field).

    grid: the architectures for which the sweep's --grid may vary it (empty: not an axis).
    compared: part of what a run *is* — a finished run is reused, and an interrupted one resumed,
        only when every compared parameter agrees (False: where or how loudly it reports).
    shown: in the results' settings line (the run-length and data settings a reader compares).
    custom_only: a parameter of S3F_Custom only (its notebook alone declares it).
    baseline_only: a parameter of the Baseline_* notebooks only (the standard deep CNNs). Those
        notebooks in turn leave out the --grid axes that apply to none but the paper's models
        (fusion, SpectraNet, channel mixing, modes).
    in_notebook: the value the experiment's parameters cell shows, given the Experiment, when
        that is clearer than the default (e.g. the recipe's 200 epochs instead of None).
    """
    return field(
        default=default,
        metadata={
            "doc": doc,
            "check": check,
            "grid": frozenset(grid),
            "compared": compared,
            "shown": shown,
            "custom_only": custom_only,
            "baseline_only": baseline_only,
            "in_notebook": in_notebook,
        },
    )


@dataclass
class RunConfig:
    """The parameters of one experiment notebook (papermill's `parameters` cell)."""

    experiment: str = param("", "the registry's experiment (the notebook's EXPERIMENT)")
    data_dir: str = param(
        "",
        "dataset folder as unzipped; empty → synthetic demo data (says nothing of the paper)",
        text,
    )
    epochs: int | None = param(
        None,
        "training epochs; None → the paper's recipe",
        integer(1),
        shown=True,
        in_notebook=lambda exp: exp.recipe.epochs,
    )
    batch_size: int = param(s3f_experiments.BATCH_SIZE, "images per optimizer step", integer(1),
                            shown=True)  # fmt: skip
    img_size: list | None = param(
        None,
        "[H, W]; None → the paper's input size (demo data: small)",
        pair(1, MAX_IMAGE_SIDE),
        shown=True,
    )
    learning_rate: float = param(s3f_experiments.LEARNING_RATE, "Adam's learning rate",
                                 positive_number)  # fmt: skip
    protocol: str = param(
        s3f_experiments.PAPER_PROTOCOL,
        '"paper": validate on the test set as the original; "holdout": an honest split',
        choice(*s3f_experiments.PROTOCOLS),
        grid=ALL_ARCHITECTURES,
    )
    seed: int = param(s3f_experiments.DEFAULT_SEED, "weights, batch order and the holdout split",
                      integer(0, MAX_SEED))  # fmt: skip
    folds: int = param(
        0, "0: the dataset's one split; K ≥ 2: K-fold grouped cross-validation (protocol "
        '"holdout"; the sweep\'s --folds K)', integer(0, MAX_FOLDS), shown=True,
    )  # fmt: skip
    fold: int = param(1, "the cross-validation fold this run tests (1..folds)", integer(1))
    fusion: str | None = param(
        None, "S³F-Net and its control: " + " | ".join(f'"{f}"' for f in s3f_experiments.FUSIONS)
        + "; None → the experiment's",
        # checked against the fusions registered then (s3f_fusions): a new one is accepted too
        lambda value, name: None if value is None else as_choice(
            value, name, s3f_experiments.FUSIONS),
        grid=FUSED, in_notebook=lambda exp: exp.fusion,
    )  # fmt: skip
    spectranet: int | None = param(
        None, "SpectraNet variant 1 | 2 (S³F-Net and SpectraNet models); None → the experiment's",
        lambda value, name: None if value is None else as_choice(
            as_integer(value, name, 1), name, (1, 2)),
        grid=SPECTRAL | FUSED, in_notebook=lambda exp: exp.spectranet,
    )  # fmt: skip
    f1_patience: int | None = param(None, "early stopping on validation F1 (epochs)", integer(0),
                                    in_notebook=lambda exp: exp.recipe.f1_patience)  # fmt: skip
    lr_patience: int | None = param(None, "ReduceLROnPlateau on val_loss (epochs)", integer(0),
                                    in_notebook=lambda exp: exp.recipe.lr_patience)  # fmt: skip
    lr_schedule: str = param(
        s3f_recipe.PAPER_SCHEDULE,
        f'"{s3f_recipe.PAPER_SCHEDULE}" (paper: ReduceLROnPlateau) or a schedule registered in '
        "s3f_kit.recipe (names the run folder)",
        schedule_name,
    )
    output_dir: str = param("runs", "results go to output_dir/<experiment>/…", text,
                            compared=False)  # fmt: skip
    mount_drive: bool = param(
        False,
        "Colab: mount Google Drive (for data_dir/output_dir under /content/drive)",
        flag,
        compared=False,
    )
    gpu: int | None = param(None, "pin to one GPU index (set by the sweep runner)", optional_gpu,
                            compared=False)  # fmt: skip
    verbose: int = param(1, "1: one line per epoch; 0: quiet", integer(0), compared=False)
    demo_count: int | None = param(
        None,
        "synthetic training images per class when data_dir is empty (None: demo default)",
        integer(2),
        shown=True,
    )
    bn_momentum: float | None = param(
        None,
        "None: 0.99 (paper; warns if too few steps); demo data 0.9; S3F_Custom: fits the steps",
        momentum,
        shown=True,
    )
    channel_mixing: str = param(
        "dense",
        'SpectralFilter: "dense" (paper) or "depthwise" (kit, far fewer params)',
        choice(*s3f_experiments.CHANNEL_MIXINGS),
        grid=SPECTRAL,
    )
    modes: list | None = param(
        None,
        "SpectralFilter: None (paper: all frequencies) or [mh, mw] lowest frequencies (kit)",
        pair(1),
        grid=SPECTRAL,
    )
    precision: str = param(
        "float32",
        '"float32" (paper) | "mixed_float16" | "mixed_bfloat16" (GPU speed; FFTs stay float32)',
        choice(*s3f_experiments.PRECISIONS),
        grid=ALL_ARCHITECTURES,
        shown=True,
    )
    jit_compile: bool = param(False, "XLA-compile the training step (GPU speed)", flag,
                              grid=ALL_ARCHITECTURES)  # fmt: skip
    split_file: str = param(
        "", "CSV file,split pinning the split exactly (e.g. another run's split.csv)", text
    )
    skip_damaged: bool = param(False, "drop images that decode but look damaged (the paper used "
                               "them)", flag)  # fmt: skip
    resize: str = param(
        PAPER_RESIZE,
        '"squash" (paper) | "crop" | "reflect": aspect-preserving arms (docs/shortcuts.md)',
        choice(*RESIZE_MODES),
        grid=ALL_ARCHITECTURES,
    )
    reencode: bool = param(
        False,
        "True: one JPEG re-encode rule for every file (docs/shortcuts.md); False: the paper's",
        flag,
        grid=ALL_ARCHITECTURES,
    )
    data_zip: str = param(
        "",
        "a dataset .zip (e.g. on Drive) or URL, unpacked once to local disk; sets data_dir",
        text,
    )
    keep_optimizer: bool = param(
        False,
        "model.keras with the optimizer's state (3x the size; never needed to predict)",
        flag,
        compared=False,
    )
    architecture: str | None = param(
        None,
        '"s3f" (S³F-Net) | "spatial" (CNN baseline) | "spectranet" (spectral branch) | '
        '"control" (S³F-Net with a spatial second branch of the same size)',
        choice(*s3f_experiments.ARCHITECTURES, optional=True),
        custom_only=True,
        in_notebook=lambda exp: "s3f",
    )
    channels: int | None = param(
        None, "1: read images as grayscale (like the paper's MRI/X-ray/ultrasound); 3: RGB",
        lambda value, name: None if value is None else as_choice(
            as_integer(value, name, 1), name, (1, 3)),
        custom_only=True, in_notebook=lambda exp: 1,
    )  # fmt: skip
    weights: str | None = param(
        None,
        'baselines: "imagenet" (fetched where possible, else random; recorded) | "random"; '
        'None → "imagenet"',
        choice(*s3f_experiments.BASELINE_WEIGHTS, optional=True),
        grid=frozenset({BASELINE}),
        baseline_only=True,
        in_notebook=lambda exp: s3f_experiments.BASELINE_WEIGHTS[0],
    )

    # ---------------------------------------------------------------- checking and resolving

    @property
    def custom(self) -> bool:
        return self.experiment == s3f_experiments.CUSTOM_EXPERIMENT

    @property
    def baseline(self) -> bool:
        return self.experiment in s3f_experiments.BASELINE_EXPERIMENTS

    @property
    def demo(self) -> bool:
        """Synthetic demo data: neither a dataset folder nor a dataset zip was given."""
        return not self.data_dir and not self.data_zip

    def experiment_spec(self):
        """The registry's Experiment (for S3F_Custom: of the chosen architecture)."""
        if self.custom:
            return s3f_experiments.custom_experiment(self.architecture or "s3f")
        return s3f_experiments.get_experiment(self.experiment)

    def checked(self) -> RunConfig:
        """A copy with every parameter validated and normalized; one ValueError naming the
        parameter otherwise. Checks that need the resolved values are in resolved()."""
        s3f_experiments.get_experiment(self.experiment)  # a KeyError that lists the experiments
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            check = f.metadata["check"]
            values[f.name] = check(value, f.name) if check else value
            if f.metadata["custom_only"] and not self.custom and value is not None:
                raise ValueError(
                    f"{f.name} is a parameter of {s3f_experiments.CUSTOM_EXPERIMENT} only"
                )
            if f.metadata["baseline_only"] and not self.baseline and value is not None:
                raise ValueError(
                    f"{f.name} is a parameter of the Baseline_* experiments only, not of "
                    f"{self.experiment} (a sweep: --grid {f.name}=… sets it for those alone)"
                )
        # a plain config, also from a Run (whose __post_init__ would run again): the module's
        # RunConfig, looked up now, so a class declared in its place is the one built
        return RunConfig(**values)

    def demo_values(self) -> dict:
        """What the demo fills in on synthetic data, for the parameters this run left None."""
        if not self.demo:
            return {}
        defaults = s3f_experiments.demo_defaults(self.experiment)
        return {key: value for key, value in defaults.items() if getattr(self, key) is None}

    def resolved(self) -> RunConfig:
        """Checked, with every None that means "the paper's" (or the demo's) filled in."""
        config = self.checked()
        exp = config.experiment_spec()
        values = config.demo_values()
        registry = {
            "epochs": exp.recipe.epochs,
            "f1_patience": exp.recipe.f1_patience,
            "lr_patience": exp.recipe.lr_patience,
            "fusion": exp.fusion,
            "spectranet": exp.spectranet,
            "img_size": list(exp.info.image_size),
        }
        if config.custom:
            registry.update(architecture=exp.architecture, channels=1)
        if config.baseline:
            registry["weights"] = s3f_experiments.BASELINE_WEIGHTS[0]
        for key, value in registry.items():
            if values.get(key, getattr(config, key)) is None:
                values[key] = value
        config = dataclasses.replace(config, **values)
        config._check_together(exp)
        return config

    def _check_together(self, exp) -> None:
        if self.folds == 1 or (not self.folds and self.fold != 1) or self.fold > max(self.folds, 1):
            raise ValueError(
                f"folds={self.folds}, fold={self.fold}: folds is 0 (no cross-validation) or "
                "K ≥ 2 with fold in 1..K"
            )
        if self.folds and (self.protocol != "holdout" or self.split_file):
            raise ValueError(
                f"cross-validation (folds={self.folds}) needs protocol 'holdout' and no "
                f"split_file (a fold validates on training data; the folds are the split); got "
                f"protocol={self.protocol!r}" + (f", split_file={self.split_file!r}"
                                                 if self.split_file else "")
            )  # fmt: skip
        spectranet = self.spectranet
        if exp.architecture == BASELINE:  # keras.applications' own limit
            minimum = s3f_experiments.BASELINES[exp.backbone].min_side
        else:
            minimum = MIN_SIDE.get(exp.architecture) or MIN_SIDE[(exp.architecture, spectranet)]
        if min(self.img_size) < minimum:
            raise ValueError(
                f"img_size {self.img_size} is too small for {exp.model_title}: its pooling "
                f"stages need at least {minimum}×{minimum} pixels"
            )
        if self.modes and exp.architecture in SPECTRAL:
            most = list(s3f_experiments.max_modes(*self.img_size))
            if self.modes[0] > most[0] or self.modes[1] > most[1]:
                raise ValueError(
                    f"modes {self.modes} exceed the frequencies of a {self.img_size[0]}×"
                    f"{self.img_size[1]} image: at most {most} (rows, columns)"
                )

    def bn_momentum_for(self, steps: int) -> tuple[float, str, str | None]:
        """The BatchNorm momentum a run of `steps` optimizer steps trains with, why ("set",
        "paper" or "chosen for N steps", recorded as bn_momentum_reason), and what to print
        (None: nothing). The one place it is decided: a value set (the demo's is set by
        resolved()) is used as it is; left None with a data_dir, S3F_Custom takes the slowest
        momentum whose moving averages settle within the steps (s3f_experiments.
        bn_momentum_for), and a paper experiment keeps the paper's, warning when too short."""
        paper = s3f_experiments.PAPER_BN_MOMENTUM
        if self.bn_momentum is not None:
            return float(self.bn_momentum), "set", None
        suited = s3f_experiments.bn_momentum_for(steps)
        if suited == paper:
            return paper, "paper", None
        short = (
            f"{steps} optimizer steps ({self.epochs} epochs × {steps // self.epochs}) are too "
            f"few for BatchNorm momentum {paper}'s moving averages (they need "
            f"≥ {s3f_experiments.bn_steps_needed(paper)})"
        )
        if self.custom:
            note = f"bn_momentum = {suited} (paper: {paper}): {short}; set bn_momentum to "
            return suited, f"chosen for {steps} steps", note + "choose another"
        warning = (
            f"WARNING: {short}: predictions may collapse to one class. The paper's {paper} is "
            f"kept for this paper experiment; -p bn_momentum {suited} suits a run this short"
        )
        return paper, "paper", warning

    def settings(self) -> dict:
        """The run's parameters as recorded in metrics.json (run_settings)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def compared_settings(self) -> dict:
        """What must agree for a finished run to be reused or an interrupted one resumed."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["compared"]}

    @classmethod
    def from_parameters(cls, namespace: dict, **overrides):
        """The config of a notebook's parameters (its globals: papermill injects overrides
        there), EXPERIMENT included; parameters a notebook does not declare keep their
        defaults."""
        values = {name: namespace[name] for name in names() if name in namespace}
        values["experiment"] = namespace["EXPERIMENT"]
        return cls(**{**values, **overrides})


# --------------------------------------------------------------------------- derived facts
# Functions, not constants: they read RunConfig's fields when asked, so nothing here can go
# stale (and a test can declare a throw-away parameter and find it everywhere).


def parameters() -> tuple:
    """The notebook parameters (RunConfig's fields but the experiment, which is EXPERIMENT)."""
    return tuple(f for f in fields(RunConfig) if f.name != "experiment")


def names() -> tuple[str, ...]:
    return tuple(f.name for f in parameters())


def not_compared() -> frozenset:
    """Parameters that change where or how loudly a run reports, or what it keeps."""
    return frozenset(f.name for f in parameters() if not f.metadata["compared"])


def shown() -> tuple[str, ...]:
    """The parameters of the results' settings line."""
    return tuple(f.name for f in parameters() if f.metadata["shown"])


def grid_axes() -> dict[str, frozenset]:
    """{parameter: the architectures it applies to} for the sweep's --grid."""
    return {f.name: f.metadata["grid"] for f in parameters() if f.metadata["grid"]}


def notebook_values(exp) -> dict:
    """{name: value} as experiment `exp`'s parameters cell declares them."""
    custom = exp.name == s3f_experiments.CUSTOM_EXPERIMENT
    baseline = exp.architecture == BASELINE
    values = {}
    for f in parameters():
        if f.metadata["custom_only"] and not custom:
            continue
        if f.metadata["baseline_only"] and not baseline:
            continue
        if baseline and f.metadata["grid"] and BASELINE not in f.metadata["grid"]:
            continue  # the paper's models' own choices (fusion, SpectraNet, …)
        shown = f.metadata["in_notebook"]
        values[f.name] = shown(exp) if shown else f.default
    return values


def parameters_cell(exp) -> str:
    """The papermill `parameters` cell of experiment `exp`'s notebook."""
    lines = [f'EXPERIMENT = "{exp.name}"']
    docs = {f.name: f.metadata["doc"] for f in parameters()}
    for name, value in notebook_values(exp).items():
        lines.append(f"{name} = {_literal(value)}  # {docs[name]}")
    return "\n".join(lines)


def _literal(value) -> str:
    text_value = repr(value)
    return f'"{value}"' if isinstance(value, str) and '"' not in value else text_value


def expected_settings(experiment: str, params: dict) -> dict:
    """What a notebook of `experiment` run with these parameters records as its run_settings:
    the sweep's plan and reuse check, composed from RunConfig (nothing parsed from notebooks)."""
    unknown = set(params) - set(names())
    if unknown:
        raise ValueError(
            f"{', '.join(sorted(unknown))}: not a notebook parameter (they are: "
            f"{', '.join(names())})"
        )
    exp = s3f_experiments.get_experiment(experiment)
    base = notebook_values(exp) if exp.name != s3f_experiments.CUSTOM_EXPERIMENT else {}
    return RunConfig(experiment=experiment, **{**base, **params}).resolved().settings()


def resolved_settings(experiment: str, settings: dict) -> dict:
    """Recorded or partial settings (e.g. an older record, or a sweep's few -p values) with
    the Nones that mean "the paper's" resolved; keys RunConfig does not know are kept."""
    known = {k: v for k, v in settings.items() if k in names()}
    try:
        config = RunConfig(experiment=experiment, **known).resolved()
    except ValueError:  # e.g. a record from another version: the defaults for what it lacks
        defaults = RunConfig(experiment=experiment).resolved().settings()
        return {**defaults, **{k: v for k, v in settings.items() if v is not None}}
    return {**settings, **config.settings()}


def markdown_table() -> str:
    """The README's parameter table."""
    rows = ["| parameter | default | what it sets |", "|---|---|---|"]
    for f in parameters():
        roles = []
        if f.metadata["grid"]:
            roles.append("a `--grid` axis")
        if not f.metadata["compared"]:
            roles.append("not part of the run's identity")
        if f.metadata["custom_only"]:
            roles.append("`S3F_Custom` only")
        if f.metadata["baseline_only"]:
            roles.append("`Baseline_*` only")
        note = f" ({'; '.join(roles)})" if roles else ""
        doc = f.metadata["doc"].replace("|", "\\|")
        rows.append(f"| `{f.name}` | `{f.default!r}` | {doc}{note} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- run identity
# A run is experiment + model variant + protocol + seed. Its folder name says only what differs
# from the paper's setting, so the paper's run of an experiment stays short:
#   S3F_Concat_BUSI/seed42/                      the paper's model, protocol and default seed
#   S3F_Concat_BUSI/bilinear-sn1/holdout/seed43/ another fusion and SpectraNet, honest split
#   S3F_Concat_BUSI/holdout/cv3/fold2/seed42/    fold 2 of a 3-fold cross-validation, seed 42
# The notebook (s3f_training.Run) and the sweep both call run_subdir, so a notebook run by hand
# and the same run from the sweep land in the same folder.

_PRECISION_TAGS = {"mixed_float16": "fp16", "mixed_bfloat16": "bf16"}


def variant_name(experiment: str, settings: dict) -> str:
    """'' for the paper's model of `experiment`, else a short name of what differs, e.g.
    'bilinear-sn1', 'sn1', 'depthwise-modes32x32', 'fp16-xla'. `settings` may be partial (a
    sweep's -p values) or recorded: what it leaves out or None is the paper's."""
    config = resolved_settings(experiment, settings)
    exp = RunConfig(
        experiment=experiment, architecture=config.get("architecture")
    ).experiment_spec()
    parts = []
    if exp.name == s3f_experiments.CUSTOM_EXPERIMENT and exp.architecture != "s3f":
        parts.append(exp.architecture)  # your data: the architecture is a parameter
    fusion, spectranet = config["fusion"], int(config["spectranet"])
    if exp.architecture in FUSED and (fusion, spectranet) != (exp.fusion, exp.spectranet):
        parts.append(f"{fusion}-sn{spectranet}")
    elif exp.architecture == "spectranet" and spectranet != exp.spectranet:
        parts.append(f"sn{spectranet}")
    elif exp.architecture == BASELINE and config.get("weights") == "random":
        parts.append("random-init")  # asked for; an ImageNet run that fell back stays ''

    if exp.architecture in SPECTRAL:  # the spatial tower has no SpectralFilter
        if config["channel_mixing"] != "dense":
            parts.append(str(config["channel_mixing"]))
        modes = as_pair(config["modes"], "modes")
        if modes:
            parts.append(f"modes{modes[0]}x{modes[1]}")
    if config.get("lr_schedule", s3f_recipe.PAPER_SCHEDULE) != s3f_recipe.PAPER_SCHEDULE:
        parts.append(str(config["lr_schedule"]))  # the training recipe's schedule
    if config["precision"] != "float32":
        parts.append(_PRECISION_TAGS.get(config["precision"], config["precision"]))
    if config["jit_compile"]:
        parts.append("xla")
    # the shortcut-neutral arms: named only when not the paper's, so its folders keep their names
    if config.get("resize", PAPER_RESIZE) != PAPER_RESIZE:
        parts.append(str(config["resize"]))
    if config.get("reencode"):
        parts.append("reencode")
    return "-".join(parts)


def run_subdir(experiment: str, settings: dict) -> str:
    """The run folder of one run, relative to the output folder (POSIX separators)."""
    config = resolved_settings(experiment, settings)
    parts = [experiment]
    variant = variant_name(experiment, config)
    if variant:
        parts.append(variant)
    if config["protocol"] != s3f_experiments.PAPER_PROTOCOL:
        parts.append(config["protocol"])
    if config.get("folds"):  # cross-validation: e.g. holdout/cv3/fold2/seed42
        parts += [f"cv{int(config['folds'])}", f"fold{int(config['fold'])}"]
    parts.append(f"seed{int(config['seed'])}")
    return "/".join(parts)
