"""Generate the experiment notebooks from one template and the registry.

    python -m s3f_kit.run.notebooks  # (re)write notebooks/*.ipynb
    python -m s3f_kit.run.notebooks --check  # exit 1 if a committed notebook differs from the template
    python -m s3f_kit.run.notebooks --repository OWNER/NAME  # your fork: badges and Colab installs

Notebooks are thin: a parameters cell (papermill) and a few calls into s3f_training, so the
twelve never drift apart; a test keeps the committed files equal to what this writes. The
twelve Baseline_<Model>_<DATASET> notebooks (standard deep CNNs, kit) come from the same
template with their own model cell.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from s3f_kit import config as s3f_config
from s3f_kit import experiments as s3f_experiments
from s3f_kit.experiments import BASELINE_EXPERIMENTS, EXPERIMENTS, Experiment

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


def colab_url(name: str) -> str:
    repository = s3f_experiments.KIT_REPOSITORY
    return f"https://colab.research.google.com/github/{repository}/blob/main/notebooks/{name}.ipynb"


SETUP_TEMPLATE = """\
# Setup — locally the kit is installed (`make setup` or `pip install -e .`). In Colab it is
# installed from a zip of the kit (`git archive --format=zip -o s3f-kit.zip HEAD`) uploaded to
# the session's files (/content/s3f-kit.zip) or put on Drive at KIT_ZIP; without one, from
# GitHub. pip keeps Colab's own TensorFlow, Keras and OpenCV (lower bounds only).
import importlib.util
import subprocess
import sys
from pathlib import Path

KIT_ZIP = "/content/drive/MyDrive/s3f-kit.zip"  # "" → install from GitHub ({repository})
IN_COLAB = "google.colab" in sys.modules
if importlib.util.find_spec("s3f_common") is None:
    if not IN_COLAB:
        raise ModuleNotFoundError(
            "s3f_common is not importable: run `make setup` (or `pip install -e .`) in the kit"
        )
    uploaded = Path("/content/s3f-kit.zip")
    if not uploaded.is_file() and KIT_ZIP.startswith("/content/drive/"):
        from google.colab import drive

        drive.mount("/content/drive")
    found = [z for z in (uploaded, Path(KIT_ZIP or uploaded)) if z.is_file()]
    source = str(found[0]) if found else "git+https://github.com/{repository}"
    print(f"installing the kit from {source}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)
from s3f_kit.run import env as s3f_env

s3f_env.prepare_notebook()  # kit errors in one line, no widget warnings"""


def setup_cell() -> str:
    return SETUP_TEMPLATE.replace("{repository}", s3f_experiments.KIT_REPOSITORY)


DERIVED = """\
# Values derived from the parameters (papermill injects overrides just above this cell).
import os

if gpu is not None:  # the sweep pins each notebook to one GPU; must precede TensorFlow's import
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
s3f_env.import_tensorflow_quietly()  # CPU machines: without CUDA-registration noise
if mount_drive and IN_COLAB:
    from google.colab import drive

    drive.mount("/content/drive")

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


def _intro(exp: Experiment) -> str:
    if exp.architecture == s3f_experiments.BASELINE_ARCHITECTURE:
        return _baseline_intro(exp)
    if exp.paper is None:
        return f"""\
# {exp.name}: the paper's models on your own images

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(exp.name)})

Point `data_dir` at a folder of class subfolders (`<class>/*.png|jpg`, split 80/20 with a fixed
seed), at `{{train,test}}/<class>/*`, or at a folder with a CSV `file,label[,split]`. Choose the
model (`architecture`, `fusion`, `spectranet`), the input size (`img_size`, default 256×256)
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
        nbformat.v4.new_markdown_cell(_intro(exp)),
        nbformat.v4.new_code_cell(setup_cell()),
        nbformat.v4.new_code_cell(
            s3f_config.parameters_cell(exp),
            metadata={"tags": ["parameters"]},
        ),
        nbformat.v4.new_code_cell(DERIVED),
        nbformat.v4.new_markdown_cell("## Data"),
        nbformat.v4.new_code_cell("data = run.load_data()"),
        nbformat.v4.new_markdown_cell("## Model"),
        nbformat.v4.new_code_cell(_model_cell(exp)),
        nbformat.v4.new_markdown_cell("## Train (paper recipe: class weights, F1 checkpoint)"),
        nbformat.v4.new_code_cell("history = run.train(model, data)"),
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
    ]
    return _finish(exp.name, cells)


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
if mount_drive and IN_COLAB:
    from google.colab import drive

    drive.mount("/content/drive")
from pathlib import Path

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
if mount_drive and IN_COLAB:
    from google.colab import drive

    drive.mount("/content/drive")
from pathlib import Path

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
                nbformat.v4.new_markdown_cell(explain_intro),
                nbformat.v4.new_code_cell(setup_cell()),
                nbformat.v4.new_code_cell(EXPLAIN_PARAMETERS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(EXPLAIN_RUN),
                nbformat.v4.new_code_cell(EXPLAIN_SHOW),
            ],
        ),
        "Evaluate_Pretrained": _finish(
            "Evaluate_Pretrained",
            [
                nbformat.v4.new_markdown_cell(pretrained_intro),
                nbformat.v4.new_code_cell(setup_cell()),
                nbformat.v4.new_code_cell(PRETRAINED_PARAMETERS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(PRETRAINED_RUN),
            ],
        ),
    }


def all_notebooks() -> dict[str, str]:
    """Every generated notebook: name → file text."""
    registered = {**EXPERIMENTS, **BASELINE_EXPERIMENTS}
    texts = {name: nbformat.writes(make_notebook(exp)) for name, exp in registered.items()}
    custom = s3f_experiments.custom_experiment()
    texts[custom.name] = nbformat.writes(make_notebook(custom))
    texts.update({name: nbformat.writes(nb) for name, nb in extra_notebooks().items()})
    return texts


def set_repository(repository: str) -> None:
    """Make OWNER/NAME the kit's GitHub repository: the one line in s3f_kit/experiments.py that
    badges and Colab install cells read (then the notebooks are regenerated from it)."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
        raise SystemExit(f"--repository expects OWNER/NAME, got {repository!r}")
    path = Path(s3f_experiments.__file__)
    text = path.read_text()
    updated, count = re.subn(
        r'^KIT_REPOSITORY = "[^"]*"', f'KIT_REPOSITORY = "{repository}"', text, flags=re.M
    )
    if count != 1:
        raise SystemExit(f"{path}: no KIT_REPOSITORY line to update")
    from data_setup.files import write_atomic

    write_atomic(path, updated)
    s3f_experiments.KIT_REPOSITORY = repository


README = Path(__file__).resolve().parents[2] / "README.md"
TABLE_START = (
    "<!-- parameter table: written by python -m s3f_kit.run.notebooks from s3f_kit.config -->"
)
TABLE_END = "<!-- end of parameter table -->"


def readme_with_parameter_table(text: str) -> str:
    """README.md's text with its parameter table regenerated from RunConfig."""
    before, start, rest = text.partition(TABLE_START)
    _, end, after = rest.partition(TABLE_END)
    if not start or not end:
        raise ValueError(f"{README}: the markers {TABLE_START!r} … {TABLE_END!r} are missing")
    return f"{before}{TABLE_START}\n{s3f_config.markdown_table()}\n{TABLE_END}{after}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    parser.add_argument(
        "--repository",
        metavar="OWNER/NAME",
        help="your GitHub fork: set it in s3f_kit/experiments.py, then regenerate badges and installs",
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
            path.write_text(text)
    readme = README.read_text()
    if readme_with_parameter_table(readme) != readme:
        stale.append(README.name)
        if not args.check:
            README.write_text(readme_with_parameter_table(readme))
    if args.check and stale:
        print("out of date (run python -m s3f_kit.run.notebooks): " + ", ".join(stale))
        return 1
    print(
        ("checked " if args.check else "wrote ")
        + f"{len(texts)} notebooks and the README's parameter table"
        + (f" ({len(stale)} changed)" if stale and not args.check else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
