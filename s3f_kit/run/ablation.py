"""Which branch an S³F-Net's decisions depend on: permutation ablation and linear probes.

The paper's contribution shares (s3f_kit.apply.explain) compare the norms of the 512-d spatial
and 4-d spectral vectors; a large norm does not mean the head uses it. Here each branch is
taken out of the decision by *permuting* its vectors across the test images — every image
keeps its own other-branch vector and gets another image's vector of this branch, drawn from
the same distribution. Unlike mean-filling, that means the same under every fusion: bilinear
fusion multiplies the branches, takes a signed square root and L2-normalises, so a constant
vector of one branch would rescale the other. The drop in the test metrics is the branch's
share of the decisions; a linear probe (logistic regression on each branch's frozen vectors,
fitted on the training images, scored on the test images) says what each branch *could* tell
apart on its own.

The branch vectors are computed once (a sub-model up to the fusion layer's two inputs, found in
the loaded model whatever its fusion); the permutations run only the fusion and the head on
them, stacked, so 20 permutations × 2 branches of 1,000 test images cost ~2 s with the paired
bootstrap (benchmarks/ablation_real.py, 2 CPU cores). The probes need one inference pass over
up to PROBE_TRAIN_IMAGES training images.

metrics.json["ablation"] (bounded: its size depends on neither the images nor the
permutations):

    {"permutations": 20, "seed": int, "test_images": N,
     "train_images": int,                      # the probes' (≤ PROBE_TRAIN_IMAGES)
     "intact": {"accuracy", "macro_f1", "roc_auc"},   # the head on the unpermuted vectors
     "bootstrap": {"resamples", "seed", "confidence", "method"},
     "majority_accuracy": float,               # the probes' chance level (training's most
                                               # common class, on the test images)
     "spatial" | "spectral": {                 # one flat entry per branch
         "dim": int,
         "<metric>_drop": float,               # intact − mean over the permutations
         "<metric>_drop_ci": [low, high],      # 95 %, stratified bootstrap over the test
                                               # images, paired; accuracy and macro_f1 only
         "permuted_<metric>_range": [min, max],   # over the permutations
         "probe_accuracy": float, "probe_accuracy_ci": [low, high],   # Wilson
         "probe_macro_f1": float, "probe_roc_auc": float | null,
         # or, where no probe could be fitted: "probe_status": why not
     },
     "seconds": float}

<metric> is accuracy, macro_f1 or roc_auc; a value that does not exist (AUC where a class has
no test image) is null.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np

import s3f_common
from s3f_kit.reports import stats as s3f_stats
from s3f_kit.run import intervals as s3f_intervals
from s3f_kit.run import metrics as s3f_metrics

BRANCHES = ("spatial", "spectral")
PERMUTATIONS = 20  # per branch: the minimum; the mean over them is what is recorded
PERMUTATION_SEED = 20250930  # fixed: a run's ablation is reproducible from its model and data
METRICS = ("accuracy", "macro_f1", "roc_auc")  # s3f_stats.metrics_of names
# The drops with an interval. AUC's bootstrap ranks every resample of 41 output sets (~15 s at
# 1,000 test images of 4 classes, against ~1 s for the confusion-matrix metrics): its drop is
# recorded with the spread over the permutations only (ci_low / ci_high null).
BOOTSTRAPPED = ("accuracy", "macro_f1")
HEAD_ROWS = 32_768  # permuted rows per head call: bounds the stacked vectors at ~70 MB
PROBE_MAX_ITER = 1000  # lbfgs iterations; standardised features converge well before
# Training images the probes fit on (a stratified sample beyond it): a logistic regression on
# 4 or 512 features is settled by then, and the pass over them is the ablation's largest cost
# (~3 images/s at 256×256 on 2 CPU cores).
PROBE_TRAIN_IMAGES = 2000
READ_IMAGES = 256  # images decoded into memory at a time (256×256×1 float32: 64 MiB)


# --------------------------------------------------------------------------- finding the branches
def ancestor_layers(tensor) -> set:
    """Every layer on the path from the model input to `tensor`."""
    seen, stack = set(), [tensor]
    while stack:
        operation, node_index, _ = stack.pop()._keras_history
        if operation in seen:
            continue
        seen.add(operation)
        stack.extend(operation._inbound_nodes[node_index].input_tensors)
    return seen


def fusion_branches(model):
    """(fusion layer, spatial tensor, spectral tensor) found inside `model`.

    The fusion is the last layer of a registered fusion (s3f_fusions) joining two vectors; the
    spectral input is the one whose ancestry holds a SpectralFilter layer.
    """
    candidates = s3f_common.fusion_layers(model)
    if not candidates:
        raise ValueError(f"{model.name}: no fusion of two vectors found — not an S³F-Net model")
    fusion = candidates[-1]
    spectral_flags = [
        any(isinstance(l, s3f_common.SpectralFilter) for l in ancestor_layers(t))
        for t in fusion.input
    ]
    if sorted(spectral_flags) != [False, True]:
        raise ValueError(f"{model.name}: cannot tell the spatial from the spectral branch")
    spectral = fusion.input[spectral_flags.index(True)]
    spatial = fusion.input[spectral_flags.index(False)]
    return fusion, spatial, spectral


def branch_encoder(model):
    """The sub-model image → [spatial vector, spectral vector] at the fusion's inputs."""
    _, spatial, spectral = fusion_branches(model)
    return keras.Model(model.inputs[0], [spatial, spectral])


def _encoded(encoder, images: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Both branches' vectors of in-memory images, batch by batch in inference mode. A direct
    call, not `predict`: Keras' NumPy adapter builds a tf.data map whose graph TensorFlow 2.18
    logs as an error line in the notebook ("use_unbounded_threadpool")."""
    outputs = [encoder(images[start : start + batch_size], training=False)
               for start in range(0, len(images), batch_size)]  # fmt: skip
    return [np.concatenate([np.asarray(out[i]) for out in outputs]) for i in range(2)]


def branch_vectors(model, images_dataset):
    """Spatial (B, 512) and spectral (B, 4) vectors at the fusion input, in inference mode."""
    s, p = branch_encoder(model).predict(images_dataset, verbose=0)
    return np.asarray(s, np.float64), np.asarray(p, np.float64)


def fusion_head(model):
    """head(spatial, spectral) → the model's outputs: the fusion layer and everything after it,
    run on given branch vectors (the sub-model from the fusion's two inputs to the output)."""
    fusion, spatial, _ = fusion_branches(model)
    sub = keras.Model(list(fusion.input), model.outputs[0])
    spatial_first = fusion.input[0] is spatial

    def head(spatial, spectral):
        pair = [spatial, spectral]
        inputs = [np.asarray(v, np.float32) for v in (pair if spatial_first else pair[::-1])]
        outputs = [sub([v[start : start + 1024] for v in inputs], training=False)
                   for start in range(0, len(inputs[0]), 1024)]  # not predict: see _encoded
        return np.concatenate([np.asarray(out, np.float64) for out in outputs])

    return head


# --------------------------------------------------------------------------- the ablation
def _scored(probs, binary) -> tuple[np.ndarray, np.ndarray]:
    """A head's outputs as (predicted labels, (N, K) class probabilities), the kit's rule."""
    return (
        s3f_metrics.predicted_labels(probs, binary),
        s3f_metrics.class_probabilities(probs, binary),
    )


def _metrics_of(labels, scored, weights, names=METRICS) -> dict[str, np.ndarray]:
    """`names` of one set of scored outputs under rows of image weights."""
    return s3f_stats.metrics_of(labels, *scored, weights, names)


def permutation_ablation(
    head,
    vectors: dict[str, np.ndarray],
    labels,
    binary: bool,
    permutations: int = PERMUTATIONS,
    seed: int = PERMUTATION_SEED,
    resamples: int = s3f_intervals.RESAMPLES,
) -> dict:
    """{"intact", "spatial", "spectral", "bootstrap", …} (the module docstring's shape, less the
    probes): the test metrics of head(**vectors) with one branch's rows permuted across the
    images.

    Every permutation and the intact outputs are scored under the same stratified bootstrap
    resamples of the images (paired), so the drop's interval holds the sampling noise of the
    images and, through the mean over permutations, that of the permutations."""
    labels = np.asarray(labels, np.int64)
    # float32 as the head computes: the intact and the stacked permuted rows go in alike
    vectors = {branch: np.asarray(vectors[branch], np.float32) for branch in BRANCHES}
    n = len(labels)
    if n < 2 or any(len(v) != n for v in vectors.values()):
        raise ValueError(
            f"permutation ablation: need ≥ 2 test images with one vector of each branch "
            f"(got {n} labels, {[len(v) for v in vectors.values()]} vectors)"
        )
    rng = np.random.default_rng(seed)
    orders = {branch: [rng.permutation(n) for _ in range(permutations)] for branch in BRANCHES}
    intact = _scored(head(vectors["spatial"], vectors["spectral"]), binary)
    permuted = {
        branch: [
            _scored(p, binary) for p in _permuted_outputs(head, vectors, branch, orders[branch])
        ]
        for branch in BRANCHES
    }
    ones = np.ones((1, n))
    point = {name: float(v[0]) for name, v in _metrics_of(labels, intact, ones).items()}
    scores = {branch: [_metrics_of(labels, p, ones) for p in outputs]
              for branch, outputs in permuted.items()}  # fmt: skip
    per_permutation = {  # branch → metric → (permutations,)
        branch: {name: np.array([f[name][0] for f in values]) for name in METRICS}
        for branch, values in scores.items()
    }
    # paired bootstrap: intact − mean over permutations, per resample of the images
    boot_rng = np.random.default_rng(s3f_intervals.BOOTSTRAP_SEED)
    drops: dict[str, dict[str, list]] = {b: {m: [] for m in BOOTSTRAPPED} for b in BRANCHES}
    chunk = s3f_stats._CHUNK  # the stats module's memory bound per batch of resamples
    for start in range(0, resamples, chunk):
        weights = s3f_stats.stratified_weights(labels, min(chunk, resamples - start), boot_rng)
        base = _metrics_of(labels, intact, weights, BOOTSTRAPPED)
        for branch, outputs in permuted.items():
            found = [_metrics_of(labels, p, weights, BOOTSTRAPPED) for p in outputs]
            for name in BOOTSTRAPPED:
                # the mean of the differences: exactly 0 where no permutation changes anything
                drops[branch][name].append(np.mean([base[name] - f[name] for f in found], axis=0))
    branches = {}
    for branch in BRANCHES:
        entry = {"dim": int(vectors[branch].shape[1])}
        for name in METRICS:
            values = per_permutation[branch][name]
            entry[f"{name}_drop"] = _number(np.mean(point[name] - values))
            if name in drops[branch]:
                low, high = s3f_stats.percentile_interval(np.concatenate(drops[branch][name]))
                entry[f"{name}_drop_ci"] = [_number(low), _number(high)]
        for name in METRICS:
            values = per_permutation[branch][name]
            entry[f"permuted_{name}_range"] = [_number(np.min(values)), _number(np.max(values))]
        branches[branch] = entry
    return {
        "permutations": int(permutations),
        "seed": int(seed),
        "test_images": int(n),
        "intact": {name: _number(v) for name, v in point.items()},
        "bootstrap": {
            "resamples": int(resamples),
            "seed": s3f_intervals.BOOTSTRAP_SEED,
            "confidence": s3f_intervals.CONFIDENCE,
            "method": "stratified percentile bootstrap over test images, paired: intact and "
            "every permutation scored on the same resample (accuracy and macro F1)",
        },
        **branches,
    }


def _permuted_outputs(head, vectors: dict, branch: str, orders: list) -> list[np.ndarray]:
    """head's outputs with `branch` permuted by each order: the permutations go through the
    head stacked, as few calls as HEAD_ROWS allows (one call costs far more than its rows)."""
    n = len(orders[0])
    group = max(1, HEAD_ROWS // n)
    outputs = []
    for start in range(0, len(orders), group):
        chosen = orders[start : start + group]
        stacked = {
            name: np.concatenate(
                [vectors[name][order] if name == branch else vectors[name] for order in chosen],
                dtype=np.float32,
            )
            for name in BRANCHES
        }
        outputs.extend(np.split(head(stacked["spatial"], stacked["spectral"]), len(chosen)))
    return outputs


def _number(value) -> float | None:
    """JSON-safe: NaN (e.g. AUC where a class has no test image) is recorded as null."""
    value = float(value)
    return value if np.isfinite(value) else None


# --------------------------------------------------------------------------- linear probes
def linear_probe(train_vectors, train_labels, test_vectors, test_labels, classes: int) -> dict:
    """Logistic regression on one branch's frozen vectors: fitted on the training images
    (standardised, scikit-learn's defaults otherwise), scored on the test images."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    if len(np.unique(train_labels)) < 2:
        return {"probe_status": "the training split has one class: nothing to fit"}
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=PROBE_MAX_ITER))
    probe.fit(train_vectors, train_labels)
    predicted = probe.predict(test_vectors)
    scores = np.zeros((len(test_labels), classes))
    scores[:, probe.classes_] = probe.predict_proba(test_vectors)
    auc = None
    if len(np.unique(test_labels)) == classes:  # AUC is defined only with every class present
        auc = _number(
            roc_auc_score(test_labels, scores[:, 1])
            if classes == 2
            else roc_auc_score(test_labels, scores, multi_class="ovr", labels=range(classes))
        )
    accuracy = s3f_intervals.wilson(int(np.sum(predicted == test_labels)), len(test_labels))
    return {
        "probe_accuracy": accuracy["value"],
        "probe_accuracy_ci": [accuracy["ci_low"], accuracy["ci_high"]],
        "probe_macro_f1": float(f1_score(test_labels, predicted, average="macro", zero_division=0)),
        "probe_roc_auc": auc,
    }


# --------------------------------------------------------------------------- one run
def probe_rows(labels) -> np.ndarray:
    """The training rows the probes fit on: all of them up to PROBE_TRAIN_IMAGES, else a
    stratified sample of that many (fixed seed), in row order."""
    rows = np.arange(len(labels))
    if len(rows) <= PROBE_TRAIN_IMAGES:
        return rows
    from sklearn.model_selection import train_test_split

    try:
        chosen, _ = train_test_split(
            rows, train_size=PROBE_TRAIN_IMAGES, stratify=labels, random_state=PERMUTATION_SEED
        )
    except ValueError:  # a class with a single image cannot be stratified: a plain sample
        chosen = np.random.default_rng(PERMUTATION_SEED).choice(rows, PROBE_TRAIN_IMAGES, False)
    return np.sort(chosen)


def ablation(model, data, batch_size: int, permutations: int = PERMUTATIONS) -> dict | None:
    """metrics.json's `ablation` for an S³F-Net on the test split of `data` (None for a model
    without two fused branches: the baselines, the spatial CNN, SpectraNet alone)."""
    try:
        encoder = branch_encoder(model)
    except ValueError:
        return None
    started = time.perf_counter()
    binary = s3f_common.is_binary(len(data.class_names))

    def vectors_of(view):
        """Both branches' vectors of a split's images, READ_IMAGES at a time (bounded memory)."""
        parts = [
            _encoded(
                encoder,
                dataclasses.replace(
                    view, indices=view.indices[start : start + READ_IMAGES]
                ).images(),
                batch_size,
            )
            for start in range(0, len(view), READ_IMAGES)
        ]
        return {branch: np.concatenate([p[i] for p in parts]).astype(np.float64)
                for i, branch in enumerate(BRANCHES)}  # fmt: skip

    train_view = data.splits["train"]
    train_view = dataclasses.replace(
        train_view, indices=train_view.indices[probe_rows(train_view.labels)]
    )
    test, train = vectors_of(data.splits["test"]), vectors_of(train_view)
    test_labels, train_labels = data.splits["test"].labels, train_view.labels
    result = permutation_ablation(fusion_head(model), test, test_labels, binary, permutations)
    for branch in BRANCHES:
        result[branch] |= linear_probe(
            train[branch], train_labels, test[branch], test_labels, len(data.class_names)
        )
    majority = np.bincount(train_labels, minlength=len(data.class_names)).argmax()
    result["majority_accuracy"] = float(np.mean(np.asarray(test_labels) == majority))
    result["train_images"] = int(len(train_labels))
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def ablation_summary(result: dict) -> str:
    """A few lines for the notebook: each branch's accuracy drop when permuted, and its probe."""
    intact = result["intact"]["accuracy"]
    lines = [
        f"Branch ablation ({result['permutations']} permutations of each branch's vectors "
        f"across {result['test_images']} test images; intact accuracy {intact:.4f}):"
    ]
    for branch in BRANCHES:
        found = result[branch]
        low, high = found["accuracy_drop_ci"]
        probe_text = (
            f"linear probe accuracy {found['probe_accuracy']:.4f}"
            if "probe_accuracy" in found
            else f"linear probe: {found['probe_status']}"
        )
        lines.append(
            f"  {branch:8s} ({found['dim']}-d) permuted: accuracy drop "
            f"{found['accuracy_drop']:+.4f} [{low:+.4f}, {high:+.4f}]; {probe_text}"
        )
    lines.append(f"  (probes' chance level: {result['majority_accuracy']:.4f})")
    return "\n".join(lines)
