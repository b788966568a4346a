"""Explainability for any S³F-Net model: branch contributions, learned filters, Grad-CAM.

Works on the loaded model itself — kit-trained or released with the paper, any registered
fusion (s3f_fusions), SN1 or SN2 — by finding the fusion layer and its two inputs inside it;
nothing is rebuilt.

    analysis = explain(model, data, out_dir)   # writes JSON, CSV and PNGs into out_dir
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

import s3f_common
from data_setup.files import write_csv_atomic, write_json_atomic
from s3f_kit import experiments as s3f_experiments
from s3f_kit import releases as s3f_releases
from s3f_kit.run import metrics as s3f_metrics

# The branches are found where the test evaluation's ablation finds them (one definition), and
# stay importable from here.
from s3f_kit.run.ablation import ancestor_layers, branch_vectors, fusion_branches  # noqa: F401


# --------------------------------------------------------------------------- contributions
def contribution_scores(spatial: np.ndarray, spectral: np.ndarray) -> pd.DataFrame:
    """docs/paper.md §5 per image: L2 shares and balanced contribution shares, in percent."""
    norm_s, norm_p = np.linalg.norm(spatial, axis=1), np.linalg.norm(spectral, axis=1)
    total = norm_s + norm_p
    total = np.where(total == 0, 1.0, total)
    # balanced score sqrt(‖v‖ · ‖v‖/d) keeps a 512-d and a 4-d vector comparable
    score_s = np.sqrt(norm_s * norm_s / spatial.shape[1])
    score_p = np.sqrt(norm_p * norm_p / spectral.shape[1])
    balanced = np.where(score_s + score_p == 0, 1.0, score_s + score_p)
    return pd.DataFrame(
        {
            "l2_spatial_%": 100 * norm_s / total,
            "l2_spectral_%": 100 * norm_p / total,
            "balanced_spatial_%": 100 * score_s / balanced,
            "balanced_spectral_%": 100 * score_p / balanced,
        }
    )


def contribution_summary(scores: pd.DataFrame, labels, class_names) -> dict:
    per_class = {
        name: scores[np.asarray(labels) == i].mean().round(3).to_dict()
        for i, name in enumerate(class_names)
        if (np.asarray(labels) == i).any()
    }
    return {
        "overall": scores.mean().round(3).to_dict(),
        "per_class": per_class,
        "images": int(len(scores)),
    }


# --------------------------------------------------------------------------- filters and Grad-CAM
def spectral_filter_pictures(layer) -> tuple[np.ndarray, np.ndarray]:
    """Centred log-magnitude frequency response (F, H, W) and spatial kernels (F, H, W),
    averaged over input channels."""
    real, imag = (np.asarray(w, np.float64) for w in layer.get_weights()[:2])
    half = real + 1j * imag  # (C, m, rows, cols); with `modes`, place it on the full grid
    if layer.modes is not None:
        mh, mw = layer.modes
        full = np.zeros(half.shape[:2] + (layer.height, layer.width // 2 + 1), complex)
        full[:, :, :mh, :mw] = half[:, :, :mh]
        full[:, :, layer.height - mh + 1 :, :mw] = half[:, :, mh:]
        half = full
    kernels = np.fft.irfft2(half, s=(layer.height, layer.width))  # (C, m, H, W)
    response = np.abs(np.fft.fft2(kernels))
    if layer.channel_mixing == "depthwise":
        kernels = kernels.reshape(-1, 1, layer.height, layer.width).transpose(1, 0, 2, 3)
        response = response.reshape(-1, 1, layer.height, layer.width).transpose(1, 0, 2, 3)
    log_response = np.log1p(np.fft.fftshift(response.mean(axis=0), axes=(-2, -1)))
    spatial = np.fft.fftshift(kernels.mean(axis=0), axes=(-2, -1))
    return log_response, spatial


def spatial_gradcam_layer(model):
    """The last Conv2D of the spatial tower (no SpectralFilter on its path)."""
    _, spatial, _ = fusion_branches(model)
    tower = ancestor_layers(spatial)
    convs = [
        l
        for l in model.layers
        if l in tower and type(l) is keras.layers.Conv2D and len(l.output.shape) == 4
    ]
    if not convs:
        raise ValueError(f"{model.name}: no Conv2D in the spatial tower")
    return convs[-1]


def grad_cam(model, images: np.ndarray, class_indices) -> np.ndarray:
    """Grad-CAM heatmaps (N, H, W) in [0, 1] of the spatial tower for the given classes."""
    conv = spatial_gradcam_layer(model)
    probe = keras.Model(model.inputs[0], [conv.output, model.outputs[0]])
    images = tf.convert_to_tensor(images, tf.float32)
    with tf.GradientTape() as tape:
        features, probs = probe(images, training=False)
        if probs.shape[-1] == 1:  # sigmoid head: class 1 = p, class 0 = 1 - p
            p = probs[:, 0]
            score = tf.where(tf.constant(np.asarray(class_indices) == 1), p, 1 - p)
        else:
            score = tf.gather(probs, class_indices, axis=1, batch_dims=1)
    grads = tape.gradient(score, features)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[..., None]
    cams = tf.image.resize(cams, images.shape[1:3])[..., 0].numpy()
    peak = cams.max(axis=(1, 2), keepdims=True)
    return cams / np.where(peak == 0, 1, peak)


def fusion_kind(model) -> str:
    """How the loaded S³F-Net fuses its branches: the registered fusion's name (s3f_fusions)."""
    return s3f_common.fusion_of(fusion_branches(model)[0])


# --------------------------------------------------------------------------- the whole analysis
def explain(
    model,
    data,
    out_dir,
    images_per_class: int = 2,
    batch_size: int = s3f_experiments.BATCH_SIZE,
    title: str = "",
) -> dict:
    """Run the full analysis on the test split of `data`; writes into `out_dir`:
    contributions.json / .csv, contributions_bar.png, contributions_kde.png,
    spectral_filters_<layer>.png, gradcam.png. Returns the contribution summary."""
    from s3f_kit.reports import plots as s3f_plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = title or model.name
    test = data.splits["test"]
    spatial, spectral = branch_vectors(
        model, data.tf_dataset("test", batch_size).map(lambda x, y: x)
    )
    scores = contribution_scores(spatial, spectral)
    scores.insert(0, "class", [data.class_names[i] for i in test.labels])
    scores.insert(0, "file", test.files)
    summary = contribution_summary(
        scores.drop(columns=["file", "class"]), test.labels, data.class_names
    )
    summary.update(
        model=title,
        dataset=data.info.id,
        protocol=data.protocol,
        spatial_dim=int(spatial.shape[1]),
        spectral_dim=int(spectral.shape[1]),
        fusion=fusion_kind(model),
        # The paper explained concat models (paper.md §6.2): its shares for the dataset beside ours.
        paper=s3f_experiments.paper_contributions(data.info.id),
    )
    write_csv_atomic(out_dir / "contributions.csv", scores, index=False)
    s3f_plots.contribution_bars(summary, out_dir / "contributions_bar.png", title)
    s3f_plots.contribution_kde(scores, out_dir / "contributions_kde.png", title)

    for layer in model.layers:
        if isinstance(layer, s3f_common.SpectralFilter):
            response, kernels = spectral_filter_pictures(layer)
            s3f_plots.filter_grid(
                response,
                kernels,
                out_dir / f"spectral_filters_{layer.name}.png",
                f"{title}: {layer.name}",
            )

    chosen = [
        np.flatnonzero(test.labels == i)[:images_per_class] for i in range(len(data.class_names))
    ]
    rows = np.concatenate(chosen).astype(int)
    if rows.size:
        images = test.images()[rows]
        cams = grad_cam(model, images, test.labels[rows])
        probs = model.predict(images, verbose=0)
        predicted = s3f_metrics.predicted_labels(probs, binary=probs.shape[1] == 1)
        s3f_plots.gradcam_grid(
            images,
            cams,
            [
                f"true {data.class_names[t]}\npred {data.class_names[p]}"
                for t, p in zip(test.labels[rows], predicted, strict=True)
            ],
            out_dir / "gradcam.png",
            f"{title}: Grad-CAM of the spatial tower (maps for the true class)",
        )
    write_json_atomic(out_dir / "contributions.json", summary)
    return summary


def load_for_explanation(
    model_path="", release="", dataset="", data_dir="", protocol="paper", demo_count=24, base_url=""
):
    """(model, data, title) for the explainability notebook: a .keras file or a release name,
    and the test split of its dataset at the model's own input size."""
    from data_setup import load_dataset
    from data_setup.synth import demo_data_dir

    if bool(model_path) == bool(release):
        raise ValueError("give exactly one of model_path (a .keras file) or release (a name)")
    if release:
        model = s3f_releases.pretrained(release, base_url=base_url or None)
        dataset = s3f_releases.RELEASES[release].dataset
        title = release
    else:
        model = s3f_common.load_model(model_path)
        title = (
            Path(model_path).parent.name
            if Path(model_path).stem == "model"
            else Path(model_path).stem
        )
        record = Path(model_path).parent / "metrics.json"
        if Path(model_path).stem == "model" and record.is_file():  # a kit run folder
            import json

            metrics = json.loads(record.read_text())
            title = metrics.get("run_subdir") or title  # e.g. S3F_Concat_BUSI/seed42
            if metrics.get("demo_data"):
                title += " (synthetic demo data)"
    if not dataset:
        raise ValueError(
            "dataset is required with model_path (BRISC2025, ChestXRay, BUSI, HAM10000)"
        )
    root = data_dir or demo_data_dir(dataset, demo_count)
    height, width, _ = model.inputs[0].shape[1:]
    data = load_dataset(dataset, root, img_size=(height, width), protocol=protocol)
    if data.channels != model.inputs[0].shape[-1]:
        raise ValueError(
            f"{title}: model takes {model.inputs[0].shape[-1]} channel(s), "
            f"{dataset} images have {data.channels}"
        )
    return model, data, title
