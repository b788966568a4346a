"""Reproduction reports (issue 34): one page per run and one per sweep that a user can share.

    lines = write_reports(runs, results_dir, environment=…, settings=…)   # s3f_results

Into results/reports/: <run folder>/report.md and .html (environment and device, versions,
determinism, settings, the data's manifest, licence and counts against the paper's, the primary
metrics with their intervals beside the paper's, every test metric, flags, ablation, shortcuts),
the run's model card (s3f_model_card) and a copy of its executed notebook's HTML where the sweep
wrote one; index.md and .html, the sweep's page, which links every run's. Everything is read
from the runs' records and the tables' helpers; nothing is recomputed.

The HTML is rendered with mistune (nbconvert's Markdown renderer) with raw HTML escaped and
harmful link schemes dropped, and every value from a record passes s3f_model_card.text: a class
name or a path from a user's CSV cannot bring a tag, a script or a link into the page.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path
from urllib.parse import quote

import numpy as np

from data_setup.files import atomic_path, write_atomic
from s3f_kit import experiments as s3f_experiments
from s3f_kit.reports import data_identity as s3f_data_identity
from s3f_kit.reports import model_card as s3f_model_card
from s3f_kit.reports.model_card import text
from s3f_kit.reports.results_tables import DEMO_BANNER, METRICS, paper_numbers, runs_frame

REPORTS = "reports"  # the folder of the results that holds them
NOTEBOOK_HTML_LIMIT = 32 << 20  # bytes of an executed notebook's HTML copied beside its report
SETTINGS_SHOWN = 40  # run settings listed on a run's page, at most
# Where the files were on the user's machine: not for a shared page (the data manifest, which
# identifies the copy, is path-free too).
LOCAL_SETTINGS = frozenset({"data_dir", "data_zip", "output_dir", "split_file"})
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.45}table{border-collapse:collapse}td,th{border:1px solid #bbb;"
    "padding:.2rem .5rem}code{background:#f3f3f3}blockquote{border-left:4px solid #c33;"
    "margin-left:0;padding-left:1rem}"
)


def to_html(markdown: str, title: str) -> str:
    """A standalone HTML page of `markdown`: raw HTML in it is shown as text, never run."""
    import mistune

    body = mistune.create_markdown(escape=True, plugins=["table"])(markdown)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>\n{body}</body></html>\n"
    )


def _primary(dataset: str) -> tuple[str, ...]:
    return s3f_experiments.DATASETS.get(dataset, s3f_experiments.CUSTOM_INFO).primary_metrics


def _cell(value, low, high, digits) -> str:
    if value is None or np.isnan(value):
        return "–"
    cell = f"{value:.{digits}f}"
    if np.isnan(low) or np.isnan(high):
        return cell
    return f"{cell} [{low:.{digits}f}, {high:.{digits}f}]"


def primary_rows(m: dict) -> list[tuple[str, str, str, str]]:
    """(metric, this run [interval], paper, Δ) of the dataset's primary metrics, in the
    tables' units (accuracy in percent): runs_frame's cells, paper_numbers' targets."""
    row = runs_frame([m]).iloc[0]
    known = m["experiment"] in s3f_experiments.EXPERIMENTS  # your own data, a baseline: none
    paper = paper_numbers(m["experiment"]) if known else {}
    rows = []
    for key in _primary(m.get("dataset") or ""):
        column, digits = METRICS[key], 2 if key == "accuracy" else 3
        value = float(row[column])
        low, high = float(row[f"{column}_ci_low"]), float(row[f"{column}_ci_high"])
        target = paper.get(key)
        target = None if target is None else float(target) * (100 if key == "accuracy" else 1)
        rows.append(
            (
                "accuracy %" if key == "accuracy" else key,
                _cell(value, low, high, digits),
                "–" if target is None else f"{target:.{digits}f}",
                "–" if target is None or np.isnan(value) else f"{value - target:+.{digits}f}",
            )
        )
    return rows


def _environment_lines(m: dict) -> list[str]:
    env = m.get("environment") if isinstance(m.get("environment"), dict) else {}
    if not env:
        return ["Not recorded in this run's metrics.json.", ""]
    lines = [f"- Device: {text(m.get('device') or env.get('device') or 'unknown')}."]
    lines += [
        f"- {text(key, 40)}: {text(value, 120)}"
        for key, value in list(env.items())[: s3f_model_card.SUMMARY_ITEMS]
        if not isinstance(value, dict | list) and key not in ("deterministic", "device")
    ]
    lines.append(
        "- Determinism: S3F_DETERMINISTIC=1, so the same seed at these versions gives the same "
        "numbers on this CPU model (README: 'What is reproducible')."
        if env.get("deterministic")
        else "- Determinism: S3F_DETERMINISTIC was not set: this run reproduces only on a "
        "machine with the same CPU, core count and versions, and even then not bit for bit."
    )
    return [*lines, ""]


def _settings_lines(m: dict) -> list[str]:
    settings = m.get("run_settings") if isinstance(m.get("run_settings"), dict) else {}
    shown = [
        f"{text(k, 40)}={text(v, 80)}"
        for k, v in list(settings.items())[:SETTINGS_SHOWN]
        if k not in LOCAL_SETTINGS
    ]
    training = ", ".join(
        f"{what} {m[key]}"
        for key, what in (
            ("epochs_run", "epochs run"),
            ("best_epoch", "best epoch"),
            ("wall_time_s", "wall time (s)"),
        )  # fmt: skip
        if m.get(key) is not None
    )
    return [
        f"- Settings: {'; '.join(shown) or 'not recorded'}.",
        f"- Training: {training or 'not recorded'}.",
        "",
    ]


def run_report(m: dict, notebook: str, suffix: str = ".md") -> str:
    """One run's page as Markdown; `notebook` is the line on its executed notebook, `suffix`
    that of the pages it links (the model card)."""
    names = (m["experiment"], m.get("variant"), m.get("run_subdir"))
    title = " / ".join(text(name) for name in names if name)
    paper_table = [
        "| metric | this run [95 % interval] | paper | Δ |",
        "|---|---|---|---|",
        *(f"| {' | '.join(cells)} |" for cells in primary_rows(m)),
        "",
    ]
    flags = s3f_model_card.flags(m)
    parts = [f"# Reproduction report: {title}", ""]
    if m.get("demo_data"):
        parts += [f"> **{DEMO_BANNER}**", ""]
    parts += [
        "One finished run, from its metrics.json; nothing here is recomputed. "
        f"[Model card](MODEL_CARD{suffix}). {notebook}",
        "",
        "## Environment, device and versions",
        "",
        *_environment_lines(m),
        *_settings_lines(m),
        "## Data",
        "",
        *s3f_model_card.data_lines(m),
        "## Primary metrics beside the paper's",
        "",
        "The dataset's declared primary metrics (docs/analysis-plan.md); accuracy in percent. "
        "A single run's interval covers its test images only.",
        "",
        *paper_table,
        "## Every test metric",
        "",
        *s3f_model_card.metric_lines(m),
        "## Flags",
        "",
        *([f"- {flag}" for flag in flags] or ["None."]),
        "",
        "## Ablation",
        "",
        *s3f_model_card.analysis_lines(m, "ablation"),
        "## Shortcuts",
        "",
        *s3f_model_card.analysis_lines(m, "shortcuts"),
    ]
    return "\n".join(parts)


def _notebook(m: dict, folder: Path) -> str:
    """Copy the run's executed-notebook HTML (the sweep's, bounded) into `folder`; the line
    that links it, or says where the notebook is."""
    run_dir = Path(m["run_dir"])
    executed = sorted(run_dir.glob("*.ipynb"))
    pages = [  # a link could point anywhere on the machine: only the sweep's own file is shared
        p.with_suffix(".html")
        for p in executed
        if p.with_suffix(".html").is_file() and not p.with_suffix(".html").is_symlink()
    ]
    if pages and pages[0].stat().st_size <= NOTEBOOK_HTML_LIMIT:
        with atomic_path(folder / "notebook.html", "the executed notebook's HTML") as tmp:
            shutil.copyfile(pages[0], tmp)
        return "[Executed notebook](notebook.html)."
    if pages:
        size = pages[0].stat().st_size
        return f"Executed notebook: too large to copy here ({size:,} bytes), beside the run."
    if executed:
        return (
            f"Executed notebook: {text(executed[0].name)} beside the run, without an HTML copy "
            "(the sweep ran with --no-html)."
        )
    return "No executed notebook beside the run (trained outside a sweep)."


def _link(subdir: str, page: str) -> str:
    return quote(f"{subdir}/{page}")


def sweep_report(runs: list[dict], environment: str, settings: str, suffix: str) -> str:
    """The sweep's page as Markdown: each run's line links its page (`report<suffix>`)."""
    demo = any(m.get("demo_data") for m in runs)
    datasets = sorted({m.get("dataset") or "unknown" for m in runs})
    parts = ["# Reproduction report: the sweep", ""]
    if demo:
        parts += [f"> **{DEMO_BANNER}**", ""]
    parts += [
        f"{len(runs)} finished run(s) of {len(datasets)} dataset(s); each run's page below "
        "has its environment, data, metrics with intervals beside the paper's, flags, ablation "
        "and shortcuts. The results tables are in [the results README](../README.md).",
        "",
        f"- Settings: {text(settings, 2000) or '–'}.",
        f"- {text(environment, 2000)}",
        "",
        "## Data",
        "",
    ]
    for dataset in datasets:
        licence = s3f_model_card.licence_of(dataset)
        parts.append(f"- {text(dataset)}: licence {text(licence)}.")
        parts += [line for line in s3f_data_identity.data_lines(runs, dataset) if line]
    parts += [
        "",
        "## Runs",
        "",
        "| run | dataset | primary metric [95 % interval] | paper | flags | ablation | shortcuts |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in runs:
        first = primary_rows(m)[:1] or [("–", "–", "–", "–")]
        name, cell, paper, _ = first[0]
        flags = len(s3f_model_card.flags(m))
        parts.append(
            f"| [{text(m['run_subdir'])}]({_link(m['run_subdir'], 'report' + suffix)}) | "
            f"{text(m.get('dataset'))} | {name} {cell} | {paper} | {flags or ''} | "
            + " | ".join(
                "yes" if isinstance(m.get(key), dict) and m[key] else "not computed"
                for key in ("ablation", "shortcuts")
            )
            + " |"
        )
    return "\n".join([*parts, ""])


def write_reports(runs: list[dict], results_dir, *, environment: str, settings: str) -> list[str]:
    """Every run's page and the sweep's under results_dir/reports/ (in s3f_results' staged
    folder: all written or none); the results README's lines that link them."""
    root = Path(results_dir) / REPORTS
    for m in runs:
        folder = root / m["run_subdir"]
        folder.mkdir(parents=True, exist_ok=True)
        notebook = _notebook(m, folder)
        card = s3f_model_card.model_card(m)
        title = f"{m['experiment']} {m['run_subdir']}"
        write_atomic(folder / "report.md", run_report(m, notebook))
        write_atomic(folder / "report.html", to_html(run_report(m, notebook, ".html"), title))
        write_atomic(folder / s3f_model_card.MODEL_CARD, card)
        write_atomic(folder / "MODEL_CARD.html", to_html(card, f"Model card: {title}"))
    write_atomic(root / "index.md", sweep_report(runs, environment, settings, ".md"))
    write_atomic(
        root / "index.html",
        to_html(sweep_report(runs, environment, settings, ".html"), "Reproduction report"),
    )
    return [
        "## Reproduction reports",
        "",
        # the Markdown is the link: HTML pages are written beside it but not committed (git
        # ignores *.html), so a link to them would be dead in a fresh clone
        f"A page to share per run and for the sweep: [{REPORTS}/index.md]({REPORTS}/index.md) "
        f"(`index.html` beside it to send) links each run's report (environment, data manifest "
        "and licence, metrics with intervals beside the paper's, flags, ablation, shortcuts), "
        "its model card and its executed notebook.",
        "",
    ]
