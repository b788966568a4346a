"""Generate the experiment notebooks from one template and the registry.

    python -m s3f_kit.notebooks  # (re)write notebooks/*.ipynb
    python -m s3f_kit.notebooks --check  # exit 1 if a committed notebook differs from the template
    python -m s3f_kit.notebooks --repository OWNER/NAME  # your fork: badges and Colab installs

Notebooks are thin: a parameters cell (papermill), the training recipe in a cell of its own
(s3f_kit.recipe's calls, where a reader changes it) and a few calls into s3f_training, so the
twelve never drift apart; a test keeps the committed files equal to what this writes, and each
notebook's first cell says it is generated and how to regenerate it. The
twelve Baseline_<Model>_<DATASET> notebooks (standard deep CNNs, kit) come from the same
template with their own model cell. The kit's address is one setting, `Repository` under
[project.urls] in pyproject.toml: the Colab badges (here, in README.md and docs/parameters.md) and the setup cell's
install are generated from it.

Why ~490 lines: the notebooks' text (intros, the Colab note, the setup cell that installs the
kit on Colab, the explainability and pretrained notebooks) is the bulk; it stays beside the code
that assembles it so that a notebook is read in one file.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from data_setup.files import write_atomic
from s3f_kit import config as s3f_config
from s3f_kit import experiments as s3f_experiments
from s3f_kit.experiments import BASELINE_EXPERIMENTS, CONTROL_EXPERIMENTS, EXPERIMENTS, Experiment

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"


PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
GITHUB = "https://github.com/"
REPOSITORY_PATTERN = r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+"  # OWNER/NAME


def repository_url() -> str:
    """The kit's repository, `Repository` under [project.urls] in pyproject.toml: the one place
    the notebooks' Colab badges, their install cell and the README's badges are generated from."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the installed kit's metadata carries the same URL
        from importlib.metadata import metadata

        urls = dict(u.split(", ", 1) for u in metadata("s3f-kit").get_all("Project-URL") or [])
        url = urls.get("Repository", "")
    else:
        url = tomllib.loads(PYPROJECT.read_text())["project"].get("urls", {}).get("Repository", "")
    if not re.fullmatch(re.escape(GITHUB) + REPOSITORY_PATTERN, url):
        raise SystemExit(
            f"{PYPROJECT}: [project.urls] Repository must be {GITHUB}OWNER/NAME (Colab opens "
            f"notebooks from GitHub), got {url!r}"
        )
    return url


def colab_url(name: str) -> str:
    repository = repository_url().removeprefix(GITHUB)
    return f"https://colab.research.google.com/github/{repository}/blob/main/notebooks/{name}.ipynb"


ZIP_COMMAND = "git archive --format=zip -o s3f-kit.zip HEAD"
# A papermill parameter (the last line of every parameters cell), so `-p KIT_ZIP …` reaches the
# setup cell, which comes after the parameters for that reason.
KIT_ZIP_LINE = (
    'KIT_ZIP = "/content/s3f-kit.zip"  # Colab: the kit\'s zip, installed when the kit is missing'
)

COLAB_NOTE = f"""\
**On Colab** the setup cell below the parameters installs the kit when it is missing: from
`s3f-kit.zip` uploaded to `/content` (the Files panel), which a checkout of the kit makes with
`{ZIP_COMMAND}`
(`KIT_ZIP` names another path, e.g. on Drive with `mount_drive = True`), else from
{{repository}}.
pip keeps Colab's TensorFlow, Keras and OpenCV when they satisfy the kit's bounds; the cell
prints every package of Colab's that pip changed, and a changed package that was already
imported needs *Runtime → Restart session* before the notebook runs again.

**Set `mount_drive = True` to keep the results**: it mounts Google Drive (one permission prompt)
and writes them to `MyDrive/s3f-kit/`. Without it they stay in `/content`, which Colab deletes
when the runtime disconnects, and an interrupted run cannot resume."""

SETUP_TEMPLATE = """\
# Setup — locally the kit is installed (`make setup` or `pip install -e .`). On Colab it is
# installed when missing, from KIT_ZIP (with mount_drive also MyDrive/s3f-kit.zip), else from
# {repository}; see the note above the parameters.
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

IN_COLAB = "google.colab" in sys.modules
if mount_drive and IN_COLAB:  # only when asked: a permission prompt; results go to Drive too
    from google.colab import drive

    drive.mount("/content/drive")
if importlib.util.find_spec("s3f_common") is None:
    if not IN_COLAB:
        raise ModuleNotFoundError(
            "s3f_common is not importable: run `make setup` (or `pip install -e .`) in the kit"
        )
    from IPython.core.error import UsageError  # IPython shows its message alone, no traceback

    def _name(name):
        return re.sub(r"[-_.]+", "-", name).lower()

    def _installed():
        found = {}
        for dist in importlib.metadata.distributions():
            found.setdefault(_name(dist.metadata["Name"]), dist.version)  # the first on sys.path
        return found

    zips = [Path(KIT_ZIP), *[Path("/content/drive/MyDrive/s3f-kit.zip")] * bool(mount_drive)]
    found = [z for z in zips if str(z) != "." and z.is_file()]
    source = str(found[0]) if found else "git+{repository}"
    print(f"installing the kit from {source}")
    before = _installed()
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--progress-bar", "off", source],
        capture_output=True, text=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    if pip.returncode != 0:
        lines = [line.strip() for line in pip.stderr.splitlines() if line.strip()]
        # git's own words first (e.g. no such repository), else pip's last error
        reason = next((line for line in lines if line.startswith("fatal:")), None) or next(
            (line for line in reversed(lines) if line.startswith("ERROR:")), "pip failed")
        if found:
            raise UsageError(f"pip could not install the kit from {source} ({reason}): make the "
                             "zip again in a checkout of the kit with `{zip_command}`.")
        raise UsageError(
            f"No kit to install: upload s3f-kit.zip, made in a checkout of the kit with "
            f"`{zip_command}`, to /content (Files panel) or set KIT_ZIP to its path, and run "
            f"the notebook again ({repository} could not be installed: {reason})."
        )
    after = _installed()
    changed = sorted(name for name in before if after.get(name) != before[name])
    print("installed the kit; pip changed " + (", ".join(
        f"{name} {before[name]} → {after.get(name, 'removed')}" for name in changed
    ) or "none of Colab's packages"))
    # a module of a changed package already imported (namespace packages such as google.*
    # have no file of their own) keeps its old code until the runtime restarts
    imported = sorted(
        module for module, names in importlib.metadata.packages_distributions().items()
        if getattr(sys.modules.get(module), "__file__", None) and {*map(_name, names)} & {*changed}
    )
    if imported:
        raise UsageError(f"{', '.join(imported)} was imported before pip changed it: restart the "
                         "runtime (Runtime → Restart session) and run the notebook again.")
if IN_COLAB and not mount_drive:
    print("Results stay in /content, which Colab deletes when the runtime disconnects (a run "
          "then cannot resume): set mount_drive = True in the parameters to keep them on Drive.")
from s3f_kit.run import env as s3f_env

s3f_env.prepare_notebook()  # kit errors in one line, no widget warnings"""


def setup_cell() -> str:
    return SETUP_TEMPLATE.replace("{repository}", repository_url()).replace(
        "{zip_command}", ZIP_COMMAND
    )


def colab_note() -> str:
    url = repository_url()
    return COLAB_NOTE.replace("{repository}", f"[{url.removeprefix(GITHUB)}]({url})")


def parameters_cell(parameters: str) -> nbformat.NotebookNode:
    """The papermill parameters cell: the notebook's parameters, then KIT_ZIP."""
    return nbformat.v4.new_code_cell(
        f"{parameters}\n{KIT_ZIP_LINE}", metadata={"tags": ["parameters"]}
    )


GENERATED = """\
*Generated from the template in `s3f_kit/notebooks.py`: edit the template, not this file, and
regenerate every notebook with `python -m s3f_kit.notebooks` (`--check` says which differ).*"""


def head_cells(intro: str, parameters: str) -> list:
    """What every notebook starts with: its intro (saying that it is generated), the Colab
    note, the parameters (papermill injects overrides after them), then the setup cell that
    reads KIT_ZIP and mount_drive."""
    return [
        nbformat.v4.new_markdown_cell(f"{intro}\n\n{GENERATED}"),
        nbformat.v4.new_markdown_cell(colab_note()),
        parameters_cell(parameters),
        nbformat.v4.new_code_cell(setup_cell()),
    ]


DERIVED = """\
# Values derived from the parameters (papermill injects overrides after the parameters cell).
import os

if gpu is not None:  # the sweep pins each notebook to one GPU; must precede TensorFlow's import
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
s3f_env.import_tensorflow_quietly()  # CPU machines: without CUDA-registration noise

from s3f_kit.run.training import Run

run = Run.from_parameters(globals())  # the parameters above, checked; None → the paper's value
print(f"{EXPERIMENT}: {run.epochs} epochs at {run.img_size}, protocol '{protocol}' → {run.run_dir}")"""


def _baseline_intro(exp: Experiment) -> str:
    spec = s3f_experiments.BASELINES[exp.backbone]
    return f"""\
# {exp.name}: {exp.backbone} on {exp.info.title} (a standard deep baseline)

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(exp.name)})

Not in the paper: keras.applications' {exp.backbone} ({spec.note}; {exp.params:,} parameters
with this dataset's head) trained with the paper's recipe, seeds and protocols, so S³F-Net can be
compared with a standard deep CNN ("S³F-Net beats standard deep CNNs" in the claims table).
Grayscale images are repeated to three channels. `weights="imagenet"` starts from ImageNet
weights where they can be fetched (Colab) and from random initialization otherwise;
`metrics.json` records which one (`weights_used`), with the parameter count and FLOPs.

Run headless: `papermill notebooks/{exp.name}.ipynb out.ipynb -p data_dir /path/to/data -p epochs 50`.
With `data_dir` empty it trains on built-in synthetic data (images of at least
{spec.min_side}×{spec.min_side} pixels, which keras.applications needs). The paper protocol's
caveat holds here too: `protocol="holdout"` validates on a split of train."""


def _control_intro(exp: Experiment) -> str:
    s3f = s3f_experiments.matched_s3f(exp.name)
    return f"""\
# {exp.name}: the parameter-matched spatial–spatial control on {exp.info.title}

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(exp.name)})

Kit, not the paper: {s3f.name} ({s3f.model_title}) with its SpectraNet replaced by a small
spatial CNN of the same size — 3×3 convolutions where SpectraNet has its spectral filters and a
Flatten + Dense readout sized so the model has {exp.params:,} parameters against the S³F-Net's
{s3f.params:,} at {exp.input_shape[0]}×{exp.input_shape[1]}×{exp.input_shape[2]}. Same input,
spatial tower, fusion, head and recipe. "S³F-Net beats the parameter-matched spatial–spatial
model" in the claims table tests whether the spectral branch adds more than its parameters;
docs/shortcuts.md says how to read it.

Run headless: `papermill notebooks/{exp.name}.ipynb out.ipynb -p data_dir /path/to/data -p epochs 50`.
With `data_dir` empty it trains on built-in synthetic data. **Protocol caveat:** as the paper's
notebooks, `protocol="paper"` selects checkpoints on the test set; `protocol="holdout"` does not."""


def _intro(exp: Experiment) -> str:
    if exp.architecture == s3f_experiments.BASELINE_ARCHITECTURE:
        return _baseline_intro(exp)
    if exp.architecture == s3f_experiments.CONTROL_ARCHITECTURE:
        return _control_intro(exp)
    if exp.paper is None:
        return f"""\
# {exp.name}: the paper's models on your own images

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(exp.name)})

Point `data_dir` at a folder of class subfolders (`<class>/*.png|jpg`, split 80/20 with a fixed
seed), at `{{train,test}}/<class>/*`, or at a folder with a CSV `file,label[,split]`. Choose the
model (`architecture`, `fusion`, `spectranet`), the input size (`img_size`, default {"×".join(map(str, exp.info.image_size))})
and `channels`; the recipe defaults are the paper's. Check the data first:
`s3f-data check Custom /path/to/images`.

Run headless: `papermill notebooks/{exp.name}.ipynb out.ipynb -p data_dir /path/to/images -p channels 3`.
With `data_dir` empty it trains on built-in synthetic data (4 classes)."""
    p = exp.paper
    return f"""\
# {exp.name}: {exp.model_title} on {exp.info.title}

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(exp.name)})

Paper's test result ("paper" protocol): accuracy {p.accuracy:.2f} %, weighted F1 {p.weighted_f1:.3f},
macro F1 {p.macro_f1:.3f}; {exp.params:,} parameters at {exp.input_shape[0]}×{exp.input_shape[1]}×{exp.input_shape[2]}.

Run headless: `papermill notebooks/{exp.name}.ipynb out.ipynb -p data_dir /path/to/data -p epochs 50`.
With `data_dir` empty it trains on built-in synthetic data. **Protocol caveat:** the original
notebooks used the test set for checkpoint selection, early stopping and LR scheduling
(`protocol="paper"`); `protocol="holdout"` carves a validation split from train instead."""


def make_notebook(exp: Experiment) -> nbformat.NotebookNode:
    cells = [
        *head_cells(_intro(exp), s3f_config.parameters_cell(exp)),
        nbformat.v4.new_code_cell(DERIVED),
        nbformat.v4.new_markdown_cell("## Data"),
        nbformat.v4.new_code_cell("data = run.load_data()"),
        nbformat.v4.new_markdown_cell("## Model"),
        nbformat.v4.new_code_cell(_model_cell(exp)),
        nbformat.v4.new_markdown_cell(RECIPE_TITLE),
        nbformat.v4.new_code_cell(RECIPE),
        nbformat.v4.new_markdown_cell(
            "## Train (class weights; a rerun resumes after a disconnect)"
        ),
        nbformat.v4.new_code_cell("history = run.train(model, data, callbacks)"),
        nbformat.v4.new_markdown_cell("## Evaluate the best checkpoint on the test split"),
        nbformat.v4.new_code_cell(
            "from IPython.display import Image, display\n\n"
            "from s3f_kit.run.metrics import reviewer_report\n\n"
            "metrics = run.evaluate(data)\n"
            "print({k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})\n"
            "print(reviewer_report(metrics))\n"
            "for figure in ('confusion_matrix', 'roc', 'reliability', 'history'):\n"
            "    display(Image(filename=str(run.run_dir / f'{figure}.png')))"
        ),
        nbformat.v4.new_markdown_cell("## Summary"),
        nbformat.v4.new_code_cell(SUMMARY),
    ]
    return _finish(exp.name, cells)


RECIPE_TITLE = """\
## Training recipe

The paper's: Adam at `learning_rate`, cross-entropy, ReduceLROnPlateau on the validation loss,
the best checkpoint and early stopping on validation F1. Change it here; `lr_schedule` picks a
registered learning-rate schedule (a new one: `docs/extending.md`). What the model is compiled
and trained with is recorded in `metrics.json` (`recipe`), and a schedule other than the
paper's names the run folder."""

RECIPE = """\
from s3f_kit import recipe as s3f_recipe

optimizer = s3f_recipe.optimizer(run.learning_rate, run.lr_schedule, run.total_steps(data))
loss = s3f_recipe.loss(model)  # one sigmoid unit: binary cross-entropy; else sparse categorical
s3f_recipe.compile_model(model, optimizer, loss, s3f_recipe.METRICS, jit_compile=run.jit_compile)
callbacks = s3f_recipe.callbacks(run.run_dir, run.lr_schedule, run.f1_patience, run.lr_patience)
print(s3f_recipe.describe(model, run.lr_schedule, callbacks))"""


# The last cell: the summary here, and in the terminal that ran papermill (which shows cell
# output only with --log-output) through the kernel's inherited stderr (s3f_env.to_terminal).
SUMMARY = """from s3f_kit.run.env import to_terminal
from s3f_kit.run.metrics import run_summary

summary = run_summary(metrics, run.run_dir)
print(summary)
to_terminal(summary)"""


def _model_cell(exp: Experiment) -> str:
    if exp.architecture == s3f_experiments.BASELINE_ARCHITECTURE:
        return (
            "from s3f_kit.run import baselines as s3f_baselines  # standard deep CNNs from keras.applications\n\n"
            "# weights: ImageNet where they can be fetched, else random (recorded in metrics.json)\n"
            "model, run.weights_used = s3f_baselines.build_baseline(**run.model_options(data))\n"
            "print(f'{model.count_params():,} parameters, '\n"
            "      f'{s3f_baselines.count_flops(model) / 1e9:.2f} GFLOPs per image, '\n"
            "      f'weights: {run.weights_used}')"
        )
    return (
        "import s3f_common  # the paper's models: spatial CNN, SpectraNet, S³F-Net fusion\n\n"
        "model = s3f_common.build_model(**run.model_options(data))\n"
        "print(f'{model.count_params():,} parameters')"
    )


def _finish(name: str, cells) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    # Colab opens these on a GPU runtime (T4 is the free tier's GPU)
    notebook.metadata["accelerator"] = "GPU"
    notebook.metadata["colab"] = {"gpuType": "T4", "provenance": []}
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"{name.lower()}-{index}"  # stable ids: regenerated files don't churn
    return notebook


EXPLAIN_PARAMETERS = """\
model_path = ""  # a .keras model: kit-trained (runs/<experiment>/model.keras) or paper format
release = ""  # or a paper release name: bilinear_brisc2025 | concat_chestxray
dataset = "BUSI"  # the model's dataset (a release knows its own)
data_dir = ""  # dataset folder as unzipped; empty → synthetic demo data
output_dir = "runs/explain"  # figures and tables go to output_dir/<model name>/
protocol = "paper"
images_per_class = 2  # Grad-CAM examples per class
batch_size = 16
demo_count = 24
base_url = ""  # a mirror of the release files (empty: the paper's GitHub release)
mount_drive = False"""

EXPLAIN_RUN = """\
s3f_env.import_tensorflow_quietly()
from pathlib import Path

from s3f_kit.run.training import DRIVE_RUNS

if mount_drive and IN_COLAB and not Path(output_dir).is_absolute():
    output_dir = str(Path(DRIVE_RUNS).parent / output_dir)  # Colab wipes /content on disconnect

from s3f_kit.apply.explain import explain, load_for_explanation

model, data, title = load_for_explanation(model_path, release, dataset, data_dir, protocol,
                                          demo_count, base_url)
out_dir = Path(output_dir).expanduser() / Path(title.split(" (")[0]).name  # a run: its seed folder
print(data.summary())"""

EXPLAIN_SHOW = """\
from IPython.display import Image, display

summary = explain(model, data, out_dir, images_per_class, batch_size, title)
print(summary["overall"])
for png in sorted(out_dir.glob("*.png")):
    display(Image(filename=str(png)))"""

PRETRAINED_PARAMETERS = """\
release = "bilinear_brisc2025"  # bilinear_brisc2025 (BRISC2025) | concat_chestxray (Chest X-Ray)
data_dir = ""  # the release's dataset as unzipped; empty → synthetic demo data
output_dir = "runs/pretrained"  # results go to output_dir/<release>/
batch_size = 16
base_url = ""  # a mirror of the release files (empty: the paper's GitHub release)
demo_count = 24
mount_drive = False"""

PRETRAINED_RUN = """\
s3f_env.import_tensorflow_quietly()
from pathlib import Path

from s3f_kit.run.training import DRIVE_RUNS

if mount_drive and IN_COLAB and not Path(output_dir).is_absolute():
    output_dir = str(Path(DRIVE_RUNS).parent / output_dir)  # Colab wipes /content on disconnect

from IPython.display import Image, display

from s3f_kit.run.evaluation import evaluate_pretrained

metrics = evaluate_pretrained(release, data_dir, output_dir, batch_size, base_url, demo_count)
print({k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
for figure in ("confusion_matrix", "roc"):
    display(Image(filename=str(Path(output_dir).expanduser() / release / f"{figure}.png")))"""


def extra_notebooks() -> dict[str, nbformat.NotebookNode]:
    """The explainability and pretrained-evaluation notebooks (same setup cell)."""
    explain_intro = f"""\
# S³F-Net explainability: branch contributions, learned filters, Grad-CAM

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url("S3F_Explainability")})

For any S³F-Net `.keras` model (concat or bilinear, SN1 or SN2, trained by the kit or released
with the paper) this finds the spatial and spectral vectors at the fusion input inside the loaded
model and reports each branch's share (L2 and balanced contribution scores, overall and per
class), the learned SpectralFilter responses and kernels, and Grad-CAM maps of the spatial tower."""
    pretrained_intro = f"""\
# Evaluate the paper's released weights

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url("Evaluate_Pretrained")})

Downloads a release model once (verified: it must load, match the registered architecture and
parameter count, and keep the SHA-256 recorded at first download), then evaluates it on its
dataset's test split with the same metrics and figures as a training run."""
    return {
        "S3F_Explainability": _finish(
            "S3F_Explainability",
            [
                *head_cells(explain_intro, EXPLAIN_PARAMETERS),
                nbformat.v4.new_code_cell(EXPLAIN_RUN),
                nbformat.v4.new_code_cell(EXPLAIN_SHOW),
            ],
        ),
        "Evaluate_Pretrained": _finish(
            "Evaluate_Pretrained",
            [
                *head_cells(pretrained_intro, PRETRAINED_PARAMETERS),
                nbformat.v4.new_code_cell(PRETRAINED_RUN),
            ],
        ),
    }


def all_notebooks() -> dict[str, str]:
    """Every generated notebook: name → file text."""
    registered = {**EXPERIMENTS, **BASELINE_EXPERIMENTS, **CONTROL_EXPERIMENTS}
    texts = {name: nbformat.writes(make_notebook(exp)) for name, exp in registered.items()}
    custom = s3f_experiments.custom_experiment()
    texts[custom.name] = nbformat.writes(make_notebook(custom))
    texts.update({name: nbformat.writes(nb) for name, nb in extra_notebooks().items()})
    return texts


def set_repository(repository: str) -> None:
    """Make OWNER/NAME the kit's GitHub repository: the one line of pyproject.toml
    ([project.urls] Repository) that badges and Colab install cells are generated from."""
    if not re.fullmatch(REPOSITORY_PATTERN, repository):
        raise SystemExit(f"--repository expects OWNER/NAME, got {repository!r}")
    text = PYPROJECT.read_text()
    urls = re.search(r"^\[project\.urls\]\n(?:(?!\[).*\n)*", text, flags=re.M)
    line = re.compile(r'^Repository = "[^"]*"$', flags=re.M)
    if not urls or len(line.findall(urls.group())) != 1:
        raise SystemExit(f'{PYPROJECT}: no `Repository = "…"` line under [project.urls]')
    section = line.sub(f'Repository = "{GITHUB}{repository}"', urls.group())
    write_atomic(PYPROJECT, text[: urls.start()] + section + text[urls.end() :])


ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"  # its Colab badges
PARAMETERS_PAGE = ROOT / "docs" / "parameters.md"  # the parameter table, and any badges
GENERATED_PAGES = (README, PARAMETERS_PAGE)
TABLE_START = "<!-- parameter table: written by python -m s3f_kit.notebooks from s3f_kit.config -->"
TABLE_END = "<!-- end of parameter table -->"


def with_generated_parts(text: str, page: Path = README) -> str:
    """A page's text with its Colab badges pointed at the configured repository and, on the
    parameters page, its parameter table regenerated from RunConfig."""
    if page == PARAMETERS_PAGE:
        before, start, rest = text.partition(TABLE_START)
        _, end, after = rest.partition(TABLE_END)
        if not start or not end:
            raise ValueError(f"{page}: the markers {TABLE_START!r} … {TABLE_END!r} are missing")
        text = f"{before}{TABLE_START}\n{s3f_config.markdown_table()}\n{TABLE_END}{after}"
    badge = re.compile(
        r"https://colab\.research\.google\.com/github/[^)\s]+/notebooks/([\w-]+)\.ipynb"
    )
    return badge.sub(lambda m: colab_url(m.group(1)), text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    parser.add_argument(
        "--repository",
        metavar="OWNER/NAME",
        help="your GitHub fork: set it in pyproject.toml, then regenerate badges and installs",
    )
    args = parser.parse_args(argv)
    if args.repository and not args.check:
        set_repository(args.repository)
    stale = []
    NOTEBOOK_DIR.mkdir(exist_ok=True)
    texts = all_notebooks()
    for name, text in texts.items():
        path = NOTEBOOK_DIR / f"{name}.ipynb"
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(path.name)
        if not args.check:
            write_atomic(path, text)
    for page in GENERATED_PAGES:
        text = page.read_text()
        if with_generated_parts(text, page) != text:
            stale.append(page.relative_to(ROOT).as_posix())
            if not args.check:
                write_atomic(page, with_generated_parts(text, page))
    if args.check and stale:
        print("out of date (run python -m s3f_kit.notebooks): " + ", ".join(stale))
        return 1
    print(
        ("checked " if args.check else "wrote ")
        + f"{len(texts)} notebooks, the README's badges and docs/parameters.md"
        + (f" ({len(stale)} changed)" if stale and not args.check else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
