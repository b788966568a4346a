"""Run figures say what they show: experiment, protocol and, when so, synthetic demo data."""

import numpy as np
import pandas as pd

from s3f_kit.reports import plots as s3f_plots


def _texts(figure):
    texts = [figure._suptitle.get_text()] if figure._suptitle else []
    return texts + [ax.get_title() for ax in figure.axes]


def test_run_figures_name_experiment_protocol_and_demo_data(tmp_path):
    context = s3f_plots.run_context("holdout", demo=True)
    metrics = {
        "experiment": "S3F_Concat_BUSI",
        "accuracy": 0.8,
        "confusion_matrix": [[2, 1], [0, 3]],
        "class_names": ["a", "b"],
    }
    confusion = s3f_plots.confusion_figure(metrics, tmp_path / "c.png", context)
    labels = np.array([0, 1, 0, 1])
    roc = s3f_plots.roc_figure(
        labels,
        np.array([[0.2], [0.7], [0.4], [0.9]]),
        ["a", "b"],
        tmp_path / "r.png",
        "S3F_Concat_BUSI",
        context,
    )
    frame = pd.DataFrame({"loss": [1.0, 0.5], "val_loss": [1.1, 0.9], "val_f1": [0.4, 0.6]})
    history = s3f_plots.history_figure(frame, tmp_path / "h.png", "S3F_Concat_BUSI", context)
    for figure in (confusion, roc, history):
        text = " ".join(_texts(figure))
        assert "S3F_Concat_BUSI" in text and "holdout" in text and "SYNTHETIC DEMO DATA" in text
    assert "demo" not in s3f_plots.run_context("paper", demo=False).lower()
    assert all((tmp_path / f"{n}.png").stat().st_size > 1000 for n in "crh")


def test_filter_pictures_have_colorbars_and_gradcam_shows_labels(tmp_path):
    rng = np.random.default_rng(0)
    grid = s3f_plots.filter_grid(
        rng.random((3, 8, 8)), rng.random((3, 8, 8)), tmp_path / "f.png", "t"
    )
    assert len([ax for ax in grid.axes if ax.get_label() == "<colorbar>"]) == 6
    cam = s3f_plots.gradcam_grid(
        rng.random((2, 8, 8, 1)),
        rng.random((2, 8, 8)),
        ["true a\npred b", "true b\npred b"],
        tmp_path / "g.png",
        "Grad-CAM",
    )
    assert "true a\npred b" in _texts(cam)


def test_coinciding_roc_curves_are_named_and_drawn_in_different_styles(tmp_path):
    labels = np.repeat(np.arange(3), 4)
    probs = np.full((12, 3), 0.05)
    probs[np.arange(12), labels] = 0.9  # perfect: every class's curve is the same corner
    probs[labels == 2, 2] = np.array([0.9, 0.04, 0.9, 0.9])  # one c image scored low
    figure = s3f_plots.roc_figure(labels, probs, ["a", "b", "c"], tmp_path / "r.png")
    lines = [line for line in figure.axes[0].get_lines() if "AUC" in line.get_label()]
    assert len({(line.get_linestyle(), line.get_marker()) for line in lines}) == 3
    notes = [text.get_text() for text in figure.axes[0].texts]
    assert notes == ["same curve: a = b"]  # c differs, so it is not named


def test_history_marks_the_best_epoch_right_under_its_title(tmp_path):
    frame = pd.DataFrame(
        {"loss": [1.0, 0.6, 0.5], "val_loss": [1.1, 0.8, 0.9], "val_f1": [0.4, 0.7, 0.6]},
        index=[1, 2, 3],
    )
    assert s3f_plots.best_epoch_of(frame) == 2
    assert s3f_plots.best_epoch_of(frame.assign(val_f1=np.nan)) is None
    context = s3f_plots.run_context("paper", demo=True)
    figure = s3f_plots.history_figure(frame, tmp_path / "h.png", "X: training history", context)
    for ax in figure.axes:
        assert "best epoch 2" in ax.get_legend_handles_labels()[1]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)  # the saved figure is closed: newer matplotlib detaches it
    canvas.draw()
    renderer = canvas.get_renderer()
    title_bottom = figure._suptitle.get_window_extent(renderer).y0
    panels_top = max(ax.title.get_window_extent(renderer).y1 for ax in figure.axes)
    assert 0 <= title_bottom - panels_top < 0.05 * figure.bbox.height  # no empty band
