"""Figures of a run and of a sweep (matplotlib + seaborn), saved atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files (also headless under papermill)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np
import seaborn as sns
from sklearn.metrics import auc, roc_curve

from data_setup.files import atomic_path


def _save(figure, path: Path) -> None:
    try:
        with atomic_path(Path(path), "a figure") as tmp:  # never a half-written PNG
            figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    finally:
        plt.close(figure)


def run_context(protocol: str | None = None, demo: bool = False) -> str:
    """The line under a run figure's title: how its numbers were made."""
    parts = [f"protocol '{protocol}'"] if protocol else []
    if demo:
        parts.append("SYNTHETIC DEMO DATA — says nothing about the paper")
    return " · ".join(parts)


def _titled(title: str, context: str) -> str:
    return f"{title}\n{context}" if context else title


def draw_confusion(ax, matrix, class_names, title):
    matrix = np.asarray(matrix)
    sns.heatmap(
        matrix,
        annot=True,
        fmt="d",
        cmap="Blues",
        cbar=False,
        ax=ax,
        xticklabels=class_names,
        yticklabels=class_names,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)


def confusion_figure(metrics: dict, path: Path, context: str = ""):
    size = max(4.5, 0.7 * len(metrics["class_names"]) + 2)
    figure, ax = plt.subplots(figsize=(size, size * 0.85))
    draw_confusion(
        ax,
        metrics["confusion_matrix"],
        metrics["class_names"],
        _titled(f"{metrics['experiment']} — accuracy {metrics['accuracy']:.3f}", context),
    )
    _save(figure, path)
    return figure


# Curves that lie on top of each other (a perfect classifier's, or two classes' alike) stay
# distinguishable: each class gets its own dash pattern and marker, wider lines underneath.
_ROC_STYLES = ("-", "--", "-.", ":")
_ROC_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def coinciding_curves(curves, tolerance: float = 1e-9) -> list[list[str]]:
    """Groups (2 or more names) of ROC curves that trace the same path; curves: (name, fpr,
    tpr). Compared on a common false-positive-rate grid, the upper envelope at each step."""
    grid = np.linspace(0, 1, 201)
    traced = [(name, np.interp(grid, fpr, tpr)) for name, fpr, tpr in curves]
    groups: list[list[str]] = []
    used = set()
    for index, (name, tpr) in enumerate(traced):
        if name in used:
            continue
        same = [
            other for other, other_tpr in traced[index + 1 :]
            if other not in used and np.max(np.abs(tpr - other_tpr)) <= tolerance
        ]  # fmt: skip
        if same:
            groups.append([name, *same])
            used.update(same)
    return groups


def roc_figure(labels, probs, class_names, path: Path, title: str = "", context: str = ""):
    figure, ax = plt.subplots(figsize=(5.2, 4.8))
    labels = np.asarray(labels)
    curves = (
        [(class_names[1], labels == 1, probs[:, 0])]
        if probs.shape[1] == 1
        else [(name, labels == i, probs[:, i]) for i, name in enumerate(class_names)]
    )
    drawn = []
    for name, positive, score in curves:
        if positive.all() or not positive.any():
            continue  # no ROC curve without both classes
        fpr, tpr, _ = roc_curve(positive, score)
        drawn.append((name, fpr, tpr))
    for index, (name, fpr, tpr) in enumerate(drawn):
        ax.plot(
            fpr,
            tpr,
            linestyle=_ROC_STYLES[index % len(_ROC_STYLES)],
            marker=_ROC_MARKERS[index % len(_ROC_MARKERS)],
            markevery=max(1, len(fpr) // 6),
            markersize=5,
            linewidth=1.2 + 1.6 * (len(drawn) - 1 - index) / max(1, len(drawn) - 1),
            alpha=0.85,
            label=f"{name} (AUC {auc(fpr, tpr):.3f})",
        )
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    notes = [" = ".join(group) for group in coinciding_curves(drawn)]
    if notes:
        ax.text(
            0.98, 0.3, "same curve: " + "; ".join(notes), transform=ax.transAxes, ha="right",
            fontsize=7, wrap=True, bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0},
        )  # fmt: skip
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(_titled(f"{title or 'test split'}: ROC (one-vs-rest)", context), fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    _save(figure, path)
    return figure


def best_epoch_of(frame) -> int | None:
    """The epoch whose checkpoint was kept: the highest finite validation F1 (the first one)."""
    if "val_f1" not in frame:
        return None
    f1 = np.asarray(frame["val_f1"], dtype=float)
    if not np.isfinite(f1).any():
        return None
    return int(frame.index[int(np.nanargmax(np.where(np.isfinite(f1), f1, np.nan)))])


def history_figure(frame, path: Path, title: str, context: str = ""):
    # constrained layout places the two-line title right above the panels (no empty band)
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.9), layout="constrained")
    best = best_epoch_of(frame)
    for ax, (train_key, val_key, name) in zip(
        axes,
        [
            ("loss", "val_loss", "loss"),
            ("accuracy", "val_accuracy", "accuracy"),
            (None, "val_f1", "validation F1 (selection metric)"),
        ],
        strict=True,
    ):
        for key in (train_key, val_key):
            if key and key in frame:
                ax.plot(frame.index, frame[key], label=key)
        if best is not None:
            ax.axvline(best, color="0.35", linestyle=":", linewidth=1, label=f"best epoch {best}")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=7)
    if best is not None:
        axes[2].plot(best, frame["val_f1"].loc[best], "o", color="0.2", markersize=5)
    figure.suptitle(_titled(title, context), fontsize=11)
    _save(figure, path)
    return figure


def _draw_reliability(ax, bins, label, style):
    filled = [b for b in bins if b["count"]]
    ax.plot(
        [b["confidence"] for b in filled],
        [b["accuracy"] for b in filled],
        style,
        label=label,
        markersize=4,
    )


def _draw_calibration(ax, calibration, seeds: str = ""):
    """The diagonal, the test split's reliability curve and, where temperature scaling was
    fitted, the curve after it; the legend gives ECE and NLL (`seeds`: ' (mean of 3 seeds)')."""
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8, label="perfectly calibrated")
    before = f"test (ECE {calibration['ece']:.3f}, NLL {calibration['nll']:.3f}{seeds})"
    _draw_reliability(ax, calibration["reliability"]["bins"], before, "o-")
    scaling = calibration.get("temperature_scaling") or {}
    scaled = scaling.get("after")
    if scaled:
        _draw_reliability(
            ax, scaled["reliability"]["bins"],
            f"after temperature {scaling['temperature']:.2f} (ECE {scaled['ece']:.3f}, "
            f"NLL {scaled['nll']:.3f})", "s--",
        )  # fmt: skip
    # headroom above accuracy 1 for the legend, so it never hides the curves (often near 1)
    ax.set_ylim(0, 1.5)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8, loc="upper left")


def reliability_figure(calibration: dict, path: Path, title: str, context: str = ""):
    """Accuracy against top-label confidence per bin (the diagonal is perfect calibration),
    after temperature scaling too where it was fitted; image counts per bin underneath."""
    figure, (ax, counts) = plt.subplots(
        2, 1, figsize=(5, 5.6), sharex=True, gridspec_kw={"height_ratios": (3, 1)}
    )
    _draw_calibration(ax, calibration)
    reliability = calibration["reliability"]
    ax.set_ylabel("accuracy in bin")
    ax.set_title(_titled(f"{title}: reliability", context), fontsize=9)
    centres = [(b["low"] + b["high"]) / 2 for b in reliability["bins"]]
    width = reliability["bins"][0]["high"] - reliability["bins"][0]["low"]
    counts.bar(centres, [b["count"] for b in reliability["bins"]], width=width * 0.9)
    counts.set_xlabel(f"confidence of the predicted class ({reliability['binning']})")
    counts.set_ylabel("images")
    counts.set_xlim(0, 1)
    figure.tight_layout()
    _save(figure, path)
    return figure


def _panel_grid(panels: int) -> tuple[int, int]:
    """(rows, columns) of a results figure: at most three panels a row (legible at page width),
    the rows filled evenly (four panels: 2 × 2, not 3 + 1)."""
    rows = max(1, -(-panels // 3))
    return rows, max(1, -(-panels // rows))


def reliability_grid(entries, path: Path, banner: str = "", title: str = ""):
    """One reliability panel per model (of one dataset: at most three a row, legible at page
    width); entries: (title, calibration, seeds note) with calibration shaped like a run's
    record (its bins may pool several seeds). Grey bars: the share of the test images in each
    confidence bin (same axis, 0–1)."""
    rows, columns = _panel_grid(len(entries))
    figure, axes = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 4.0 * rows), squeeze=False, sharey=True
    )
    for ax in axes.flat[len(entries) :]:
        ax.axis("off")
    for ax, (panel, calibration, seeds) in zip(axes.flat, entries, strict=False):
        bins = calibration["reliability"]["bins"]
        total = sum(b["count"] for b in bins) or 1
        ax.bar(
            [(b["low"] + b["high"]) / 2 for b in bins],
            [b["count"] / total for b in bins],
            width=(bins[0]["high"] - bins[0]["low"]) * 0.9,
            color="0.85",
            label="share of images",
        )
        _draw_calibration(ax, calibration, seeds)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("confidence of the predicted class", fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy in bin")
    heading = "\n".join(part for part in (title, banner) if part)
    if heading:
        figure.suptitle(heading, fontsize=12, color="darkred" if banner else "black")
    figure.tight_layout()
    _save(figure, path)
    return figure


def confusion_grid(entries, path: Path, banner: str = "", title: str = ""):
    """One figure of a few confusion matrices (one dataset's models); entries: (title, matrix,
    class_names). At most three panels a row and class names horizontal where they are short:
    the figure stays legible at the width of a page (issue 36.3)."""
    rows, columns = _panel_grid(len(entries))
    classes = max((len(names) for _, _, names in entries), default=2)
    side = max(3.6, 0.55 * classes + 1.6)
    figure, axes = plt.subplots(
        rows, columns, figsize=(side * columns, (side - 0.3) * rows + 0.6), squeeze=False
    )
    for ax in axes.flat[len(entries) :]:
        ax.axis("off")
    for ax, (panel, matrix, names) in zip(axes.flat, entries, strict=False):
        draw_confusion(ax, matrix, names, panel)
        ax.title.set_fontsize(10)
        long_names = max(map(len, names)) > 6
        ax.tick_params(axis="x", labelrotation=30 if long_names else 0, labelsize=9)
        ax.tick_params(axis="y", labelrotation=0, labelsize=9)
    heading = "\n".join(part for part in (title, banner) if part)
    if heading:
        figure.suptitle(heading, fontsize=12, color="darkred" if banner else "black")
    figure.tight_layout()
    _save(figure, path)
    return figure


def contribution_bars(summary: dict, path: Path, title: str) -> None:
    """Overall and per-class branch shares (L2 and balanced), spectral share as bars."""
    groups = {"overall": summary["overall"], **summary["per_class"]}
    names = list(groups)
    x = np.arange(len(names))
    figure, axes = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(names) + 4), 3.8))
    for ax, kind in zip(axes, ("l2", "balanced"), strict=True):
        spatial = [groups[n][f"{kind}_spatial_%"] for n in names]
        spectral = [groups[n][f"{kind}_spectral_%"] for n in names]
        ax.bar(x, spatial, label="spatial", color="#4c72b0")
        ax.bar(x, spectral, bottom=spatial, label="spectral", color="#dd8452")
        for xi, value in zip(x, spectral, strict=True):
            ax.text(xi, 101, f"{value:.1f}%", ha="center", fontsize=7)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 110)
        ax.set_ylabel("share of the fused representation (%)")
        ax.set_title(f"{'L2-norm' if kind == 'l2' else 'balanced'} contribution")
        ax.legend(fontsize=7, loc="lower right")
    figure.suptitle(title)
    _save(figure, path)


def contribution_kde(scores, path: Path, title: str) -> None:
    """Per-class density of the spectral share (L2 and balanced)."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, column in zip(axes, ("l2_spectral_%", "balanced_spectral_%"), strict=True):
        for name, group in scores.groupby("class"):
            values = group[column]
            if len(values) > 1 and values.std() > 0:
                sns.kdeplot(values, ax=ax, label=name, fill=True, alpha=0.25, warn_singular=False)
            else:
                ax.axvline(values.iloc[0], label=f"{name} (single value)", linestyle=":")
        ax.set_xlabel(column.replace("_", " "))
        ax.legend(fontsize=7)
    figure.suptitle(f"{title}: per-class density of the spectral branch's share")
    _save(figure, path)


def filter_grid(response, kernels, path: Path, title: str, max_filters: int = 32) -> None:
    """Two rows per filter block: centred log-magnitude response, then the spatial kernel."""
    count = min(len(response), max_filters)
    columns = min(8, count)
    blocks = -(-count // columns)
    figure, axes = plt.subplots(
        2 * blocks, columns, figsize=(2.1 * columns, 3.5 * blocks), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for index in range(count):
        row, column = divmod(index, columns)
        shown = axes[2 * row, column].imshow(response[index], cmap="magma")
        axes[2 * row, column].set_title(f"f{index} log|K|", fontsize=7)
        figure.colorbar(shown, ax=axes[2 * row, column], fraction=0.046, pad=0.02).ax.tick_params(
            labelsize=5
        )
        limit = float(np.abs(kernels[index]).max()) or 1.0
        shown = axes[2 * row + 1, column].imshow(
            kernels[index], cmap="coolwarm", vmin=-limit, vmax=limit
        )
        axes[2 * row + 1, column].set_title(f"f{index} kernel", fontsize=7)
        figure.colorbar(
            shown, ax=axes[2 * row + 1, column], fraction=0.046, pad=0.02
        ).ax.tick_params(labelsize=5)
    suffix = f" (first {count} of {len(response)})" if len(response) > count else ""
    figure.suptitle(f"{title}{suffix}: log-magnitude response (centred) and spatial kernel")
    _save(figure, path)
    return figure


def gradcam_grid(images, cams, labels, path: Path, title: str) -> None:
    count = len(images)
    columns = min(6, count)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.7 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, cam, label in zip(axes.flat, images, cams, labels, strict=False):
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray")
        ax.imshow(cam, cmap="jet", alpha=0.4)
        ax.set_title(label, fontsize=8)
    figure.suptitle(title, fontsize=9)
    _save(figure, path)
    return figure
