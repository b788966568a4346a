"""The model card a finished model carries (issue 34): MODEL_CARD.md beside model.keras.

    write_model_card(run_dir, record)   # s3f_evaluation.write_metrics, just before metrics.json

What the model is for (research only, not a medical device), the copy of the data it learnt from
(the data manifest's digest and counts, s3f_data_identity) and that data's licence
(DatasetInfo.licence: weights trained on non-commercial data carry its terms), its test metrics
with their intervals, the run's flags, and what later analyses found (the `shortcuts` and
`ablation` keys of metrics.json, where a run recorded them; otherwise a sentence says they were
not computed). Everything comes from the run record; nothing is recomputed.

The record's text (class names, a custom dataset's labels, a release name) is the user's data:
`text` escapes it, so neither Markdown nor HTML in it changes the page it is shown on.
"""

from __future__ import annotations

import re
from pathlib import Path

from data_setup.datasets import CUSTOM, CUSTOM_LICENCE, DATASETS
from data_setup.files import write_atomic
from s3f_kit.reports import data_identity as s3f_data_identity

MODEL_CARD = "MODEL_CARD.md"
TEXT_LIMIT = 200  # characters of one untrusted value shown; a class name is a few words
SUMMARY_ITEMS = 24  # entries of an optional analysis (shortcuts, ablation) shown, at most
NOT_COMPUTED = "not computed for this run"

# Markdown's punctuation and HTML's, backslash-escaped: no emphasis, link, table cell, code
# span, tag or entity can start inside a value (CommonMark: an escaped character is literal
# text, which a renderer writes HTML-escaped).
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+!|~<>&])")


def text(value, limit: int = TEXT_LIMIT) -> str:
    """`value` as inert Markdown on one line: its Markdown and HTML punctuation escaped,
    newlines folded, cut at `limit` characters."""
    flat = " ".join(str(value).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return _MARKDOWN.sub(r"\\\1", flat)


def licence_of(dataset) -> str:
    """The licence of a dataset's data: DatasetInfo.licence, your own data's, or unknown."""
    if dataset in DATASETS:
        return DATASETS[dataset].licence
    return CUSTOM_LICENCE if dataset == CUSTOM else f"unknown dataset {dataset!r}: state it"


def non_commercial(licence: str) -> bool:
    return "-NC" in licence.upper()  # CC BY-NC, BY-NC-SA, BY-NC-ND


def _number(value) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) and not isinstance(value, bool) else "–"


def metric_lines(record: dict) -> list[str]:
    """A table of the test metrics the record holds intervals for: value [95 % interval] and
    how the interval was made; the bare headline numbers where it holds none."""
    intervals = record.get("intervals")
    rows = []
    if isinstance(intervals, dict) and intervals:
        for name, entry in list(intervals.items())[:SUMMARY_ITEMS]:
            if not isinstance(entry, dict) or not _is_number(entry.get("value")):
                continue  # a note on the method, not a metric
            low, high = entry.get("ci_low"), entry.get("ci_high")
            interval = f"[{_number(low)}, {_number(high)}]" if low is not None else "–"
            rows.append(
                f"| {text(name)} | {_number(entry.get('value'))} | {interval} | "
                f"{text(entry.get('method') or '–')} |"
            )
    else:
        for name in ("accuracy", "macro_f1", "weighted_f1", "roc_auc", "roc_auc_macro"):
            if record.get(name) is not None:
                rows.append(f"| {name} | {_number(record[name])} | – | no interval recorded |")
    if not rows:
        return ["No test metrics recorded.", ""]
    images = record.get("test_images")
    return [
        f"Test split{f' ({images:,} images)' if isinstance(images, int) else ''}; accuracy and "
        "F1 as fractions. The intervals cover the test sample only, not training randomness.",
        "",
        "| metric | value | 95 % interval | interval |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def flags(record: dict) -> list[str]:
    """What a reader must know before trusting the numbers, one sentence each."""
    found = []
    if record.get("demo_data"):
        found.append("Trained and tested on synthetic demo data: says nothing about real images.")
    if record.get("collapsed"):
        found.append("Collapsed: every test image was predicted as one class.")
    if record.get("diverged"):
        epoch = record.get("diverged_epoch")
        found.append(f"Diverged: the loss became non-finite in epoch {epoch}.")
    if record.get("protocol") == "paper":
        found.append(
            'Protocol "paper": the test split also chose the checkpoint, so the test metrics '
            "are optimistic."
        )
    for key, what in (
        ("leaked_test_images", "test images with a near-duplicate in training"),
        ("shared_group_test_images", "test images of a patient or lesion training also has"),
        ("skipped_files", "images that could not be used"),
    ):
        if isinstance(record.get(key), int) and record[key]:
            found.append(f"{record[key]:,} {what}.")
    if isinstance(record.get("damaged_files"), list) and record["damaged_files"]:
        found.append(f"{len(record['damaged_files']):,} images decode but look damaged.")
    return found


def analysis_lines(record: dict, key: str) -> list[str]:
    """An optional analysis of metrics.json (`shortcuts`, `ablation`): its scalar findings,
    and one line per part (a branch, a probe), bounded; a sentence where it is absent."""
    found = record.get(key)
    if not isinstance(found, dict) or not found:
        return [f"{key.capitalize()}: {NOT_COMPUTED}.", ""]
    lines, shown = [], 0
    for name, value in found.items():
        if shown == SUMMARY_ITEMS:
            lines.append(f"- … {len(found) - shown} more in metrics.json `{key}`")
            break
        shown += 1
        if isinstance(value, dict):
            parts = [
                f"{text(k, 40)} {_scalar(v)}"
                for k, v in list(value.items())[:SUMMARY_ITEMS]
                if not isinstance(v, dict | list) or _is_pair(v)
            ]
            lines.append(f"- {text(name, 60)}: {', '.join(parts) or '(nested: see metrics.json)'}")
        elif not isinstance(value, list) or _is_pair(value):
            lines.append(f"- {text(name, 60)}: {_scalar(value)}")
    return [*lines, ""]


def _is_pair(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(map(_is_number, value))


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar(value) -> str:
    if _is_pair(value):
        return f"[{_short(value[0])}, {_short(value[1])}]"
    return _short(value) if _is_number(value) else text(value, 80)


def _short(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def data_lines(record: dict) -> list[str]:
    """The copy of the data: licence, manifest digest and counts, consistency with the paper's."""
    dataset = record.get("dataset") or "unknown"
    licence = licence_of(dataset)
    lines = [f"- Dataset: {text(dataset)}; licence: {text(licence)}."]
    if non_commercial(licence):
        lines.append(
            f"- **Non-commercial terms**: the data is {text(licence)}, so these weights, trained "
            "on it, may be used for non-commercial purposes only, with attribution."
        )
    manifest = record.get("data_manifest")
    sha = manifest.get("sha256") if isinstance(manifest, dict) else None
    if isinstance(sha, str):
        lines.append(f"- Data manifest SHA-256: `{text(sha, 64)}`.")
        counts = s3f_data_identity.counts_of(manifest)
        if counts is not None:
            per_split = "; ".join(
                f"{text(split, 40)} {sum(c.values()):,}" for split, c in counts.items()
            )
            lines.append(
                f"- Images per official split: {per_split}; "
                f"{text(s3f_data_identity.consistency(dataset, counts), 400)} with the paper's."
            )
    else:
        lines.append("- No data manifest recorded: which copy of the data it read is unknown.")
    classes = record.get("class_names")
    if isinstance(classes, list):
        lines.append(f"- Classes, in label order: {', '.join(text(c, 60) for c in classes[:64])}.")
    return [*lines, ""]


def model_card(record: dict) -> str:
    """The model card of one finished run (or evaluated release) as Markdown."""
    name = record.get("release") or record.get("experiment") or "model"
    model = ", ".join(
        f"{key} {text(record[key], 40)}"
        for key in ("architecture", "fusion", "spectranet", "variant", "seed", "protocol")
        if record.get(key) not in (None, "")
    )
    params = record.get("params")
    found = flags(record)
    parts = [
        f"# Model card: {text(name)}",
        "",
        "## Intended use",
        "",
        "Research only: reproducing and studying S³F-Net (spatial-spectral summarizer fusion). "
        "**Not a medical device**: not for diagnosis, screening or any decision about a patient; "
        "it has no regulatory clearance and was not validated on a clinical population.",
        "",
        "## Model",
        "",
        f"- {model or 'no architecture recorded'}"
        + (f"; {params:,} parameters" if isinstance(params, int) else "")
        + (f"; release file {text(record['release_file'])}" if record.get("release_file") else ""),
        "",
        "## Data and licence",
        "",
        *data_lines(record),
        "## Test metrics",
        "",
        *metric_lines(record),
        "## Flags",
        "",
        *([f"- {flag}" for flag in found] or ["None."]),
        "",
        "## Known shortcuts",
        "",
        *analysis_lines(record, "shortcuts"),
        "## Ablation",
        "",
        *analysis_lines(record, "ablation"),
        "## Known limits",
        "",
        "- Trained on one dataset, from its sources; other scanners, sites, populations or "
        "image pipelines can give other results (docs/shortcuts.md).",
        "- One test split; its intervals cover the test sample, not training randomness.",
        "- The paper's own limits apply (docs/paper.md, reproducibility issues).",
        "",
    ]
    return "\n".join(parts)


def write_model_card(folder, record: dict) -> Path:
    """MODEL_CARD.md in `folder`, written atomically."""
    return write_atomic(Path(folder) / MODEL_CARD, model_card(record))
