"""How well the leakage audit finds planted near-duplicates, how often it pairs distinct images,
and what one candidate pair's verification costs — on three sets:

- synthetic: the kit's demo images (all four datasets' generators, data_setup.synth);
- X-ray-like: distinct patients' chest films (data_setup.xray), alike at low resolution as real
  chest radiographs are, at realistic sizes (1000–2000 px wide);
- real: the medical images that `pip install pydicom pydicom-data` bundles (two computed
  radiographs — a chest and an extremity — CT, MR, ultrasound), when installed; skipped if not.

    python benchmarks/audit_accuracy.py [--per-class 24] [--films 150] [--index auto|exact|lsh]
        [--sets synthetic,xray,real,cost]

Planted copies of a third of the images: area-resized to 75 %, re-encoded as JPEG quality 40,
and shifted by 2–4 % of the width (crop + edge padding); they go through the real file path
(written, then read by the audit's feature extraction). Prints, per set, recall on the planted
pairs, the share of distinct-image pairs reported as duplicates, the share that became
candidates, and the similarity quantiles behind the thresholds; then the verification cost per
candidate pair, on the same candidate pairs in one process: the old per-pair check (phase
correlation + warp + Pearson, one pair at a time, kit ≤ 0.2.2) and the per-pair definition
(audit.pair_similarity) against the batched search, as ratios, and whether the batched
decisions equal the definition's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_setup import audit  # noqa: E402
from data_setup.audit_cache import features_of_files  # noqa: E402
from data_setup.synth import synth_all  # noqa: E402
from data_setup.xray import chest_film, film_size, random_patient  # noqa: E402


def planted_copy(image: np.ndarray, rng) -> np.ndarray:
    h, w = image.shape[:2]
    small = cv2.resize(image, (int(w * 0.75), int(h * 0.75)), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 40])
    image = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    dy, dx = (rng.uniform(0.02, 0.04, 2) * image.shape[:2]).astype(int) + 1
    shifted = image[dy:, dx:]
    return cv2.copyMakeBorder(shifted, 0, dy, 0, dx, cv2.BORDER_REPLICATE)


def synthetic_images(per_class: int, seed: int) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as folder:
        synth_all(folder, count=per_class, size=96, seed=seed)
        paths = sorted(p for p in Path(folder).rglob("*") if p.suffix in (".jpg", ".jpeg", ".png"))
        return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths if "_mask" not in p.stem]


def xray_images(films: int, seed: int, width=(1000, 2000)) -> list[np.ndarray]:
    """One film per patient: every pair is two different patients."""
    images = []
    for index in range(films):
        rng = np.random.default_rng([seed, index])
        patient = random_patient(rng, pneumonia=rng.random() < 0.73)
        images.append(chest_film(rng, patient, *film_size(rng, width)))
    return images


def real_images() -> list[np.ndarray] | None:
    """Distinct real medical images bundled by pydicom and pydicom-data, 8-bit windowed."""
    try:
        import pydicom
        from pydicom.data import get_testdata_file
    except ImportError:
        return None
    names = ["RG1_UNCR.dcm", "RG3_UNCR.dcm", "693_UNCR.dcm", "MR2_UNCR.dcm", "CT_small.dcm",
             "MR_small.dcm", "examples_overlay.dcm", "emri_small.dcm", "US1_UNCR.dcm",
             "OBXXXX1A.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "image_dfl.dcm",
             "JPEG2000_UNC.dcm"]  # fmt: skip
    images = []
    for name in names:
        try:
            dataset = pydicom.dcmread(get_testdata_file(name, download=False))
            pixels = dataset.pixel_array.astype(np.float32)
        except Exception:  # noqa: BLE001 - not bundled, or needs a codec: leave it out
            continue
        if int(dataset.get("NumberOfFrames", 1)) > 1:
            pixels = pixels[0]
        if pixels.ndim == 3:
            pixels = pixels.mean(axis=2)
        low, high = np.percentile(pixels, [0.5, 99.5])
        gray = np.clip((pixels - low) / max(high - low, 1e-6), 0, 1)
        if dataset.get("PhotometricInterpretation") == "MONOCHROME1":
            gray = 1 - gray
        images.append((gray * 255).astype(np.uint8))
    return images if len(images) >= 2 else None


def _features(images, folder: Path, name: str, quality: int = 92):
    paths = []
    for index, image in enumerate(images):
        path = folder / f"{name}{index:05d}.jpg"
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        paths.append(path)
    return features_of_files(paths)


def measure(images, seed: int = 0, index: str = "auto") -> dict:
    """Recall on planted copies of a third of `images` (at least 2), false pairs among them;
    `index`: the candidate search (audit.candidate_pairs)."""
    rng = np.random.default_rng(seed)
    planted = rng.choice(len(images), size=max(2, len(images) // 3), replace=False)
    with tempfile.TemporaryDirectory() as folder:
        features = _features(images, Path(folder), "original")
        copies = [planted_copy(images[i], rng) for i in planted]
        copies = _features(copies, Path(folder), "copy", 95)
    found = {(i, j): s for i, j, s in audit.near_pairs(copies, features, index=index)}
    recall = np.mean([(k, int(i)) in found for k, i in enumerate(planted)])
    false = audit.near_pairs(features, index=index)  # distinct images only
    n = len(features)
    distinct = n * (n - 1) / 2
    copy_scores = _scores(copies, features, np.arange(len(planted)), planted)
    rows, cols = np.triu_indices(n, 1)
    distinct_scores = _scores(features, features, rows, cols)
    candidates = audit.near_pairs(features, min_similarity=-1.0, index=index)
    by_signature = audit.near_pairs(features, min_similarity=-1.0, index=index,
                                    candidate_layout=None)  # fmt: skip
    layout_a, layout_b = audit.coarse_layouts(copies.thumbs), audit.coarse_layouts(features.thumbs)
    copy_layout = np.einsum("ij,ij->i", layout_a, layout_b[planted])
    involved = {i for i, _, _ in false} | {j for _, j, _ in false}
    return {
        "images": n,
        "planted": len(planted),
        "recall": float(recall),
        "false_pairs": len(false),
        "false_pair_rate": len(false) / distinct,
        "candidate_rate": len(candidates) / distinct,
        "signature_candidate_rate": len(by_signature) / distinct,
        "copy_layout_min": float(copy_layout.min()),
        "false_with_signature_only": sum(sc >= audit.MIN_SIMILARITY for *_, sc in by_signature),
        "images_with_false_match": len(involved) / n,
        "copy_similarity_min": float(copy_scores.min()),
        "copy_similarity_p5": float(np.percentile(copy_scores, 5)),
        "distinct_similarity_max": float(distinct_scores.max()),
        "distinct_similarity_p999": float(np.percentile(distinct_scores, 99.9)),
    }


def _Prep(features):  # noqa: N802 - the search's own preparation, reused
    return audit._Prepared(features)


def _scores(features_a, features_b, rows, cols, batch: int = 64) -> np.ndarray:
    """The verification score of every pair (rows[k] of a, cols[k] of b), in batches."""
    from threadpoolctl import threadpool_limits

    a, b = _Prep(features_a), _Prep(features_b)
    with threadpool_limits(1, "blas"):
        return np.concatenate([
            audit._verify(a.spectra, b.spectra, rows[s : s + batch], cols[s : s + batch])
            for s in range(0, len(rows), batch)
        ])  # fmt: skip


def aligned_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """The old (kit ≤ 0.2.2) per-pair verification, kept here as the timing reference:
    phase-correlation alignment, a warp and a Pearson correlation, one pair at a time."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    size = a.shape[0]
    window = cv2.createHanningWindow((size, size), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(a, b, window)
    moved = cv2.warpAffine(
        b, np.float32([[1, 0, -dx], [0, 1, -dy]]), (size, size), borderMode=cv2.BORDER_REFLECT
    )
    margin = size // 8
    x, y = a[margin:-margin, margin:-margin].ravel(), moved[margin:-margin, margin:-margin].ravel()
    return float(np.corrcoef(x, y)[0, 1])


def verification_cost(images, seed: int = 0, pairs: int = 20000, reference_pairs: int = 300):
    """Seconds per candidate pair on the same candidate pairs, in this one process: the old
    per-pair verification (aligned_correlation), the per-pair definition (pair_similarity)
    and the search's batched verification (what near_pairs runs); plus whether the batched
    decisions equal the definition's on the reference pairs. The pairs: the first stage's
    candidates among `images` and planted copies of a third of them (mostly distinct-but-alike
    pairs, as a real search verifies)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    copies = [planted_copy(images[i], rng) for i in range(0, len(images), 3)]
    features = audit.features_of_arrays(list(images) + copies)
    thumbs = features.thumbs
    rows, cols = audit.candidate_pairs(features, index="exact")
    pick = rng.permutation(len(rows))[:pairs]
    rows, cols = rows[pick], cols[pick]
    few = slice(0, min(reference_pairs, len(rows)))
    start = time.perf_counter()
    for a, b in zip(rows[few], cols[few], strict=True):
        aligned_correlation(thumbs[a], thumbs[b])
    old = (time.perf_counter() - start) / len(rows[few])
    start = time.perf_counter()
    reference = [audit.pair_similarity(thumbs[a], thumbs[b]) for a, b in zip(rows[few], cols[few],
                                                                        strict=True)]  # fmt: skip
    definition = (time.perf_counter() - start) / len(rows[few])
    start = time.perf_counter()
    prepared = _Prep(features)  # once per image, not per pair: reported apart
    per_image = (time.perf_counter() - start) / len(thumbs)
    start = time.perf_counter()
    scores = np.empty(len(rows), np.float32)
    with threadpool_limits(1, "blas"):  # as near_pairs verifies
        for s in range(0, len(rows), 64):
            part = slice(s, s + 64)
            scores[part] = audit._verify(prepared.spectra, prepared.spectra, rows[part],
                                         cols[part], floor=audit.MIN_SIMILARITY)  # fmt: skip
    batched = (time.perf_counter() - start) / len(rows)
    decided = scores[few] >= audit.MIN_SIMILARITY
    agree = np.mean(decided == (np.array(reference) >= audit.MIN_SIMILARITY))
    return {"pairs": len(rows), "reference_pairs": len(rows[few]), "old": old,
            "definition": definition, "batched": batched, "per_image": per_image,
            "agree": float(agree), "duplicates": int(decided.sum())}  # fmt: skip


def report(name: str, result: dict) -> None:
    print(
        f"{name}: {result['images']} distinct images, {result['planted']} planted copies: "
        f"recall {result['recall']:.1%}, false pairs {result['false_pairs']} = "
        f"{result['false_pair_rate']:.3%} of distinct pairs "
        f"({result['images_with_false_match']:.1%} of images with a false match), "
        f"candidates {result['candidate_rate']:.2%} of distinct pairs (by the signature "
        f"alone {result['signature_candidate_rate']:.2%}, with "
        f"{result['false_with_signature_only']} false pair(s); planted copies' coarse-layout "
        f"cosine ≥ {result['copy_layout_min']:.3f}, the test ≥ {audit.CANDIDATE_LAYOUT}); "
        f"similarity: planted "
        f"min {result['copy_similarity_min']:.3f} / 5th pct {result['copy_similarity_p5']:.3f}, "
        f"distinct max {result['distinct_similarity_max']:.3f} / 99.9th pct "
        f"{result['distinct_similarity_p999']:.3f} (≥ {audit.MIN_SIMILARITY} is a duplicate)"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=24, help="synthetic images per class")
    parser.add_argument("--films", type=int, default=150, help="X-ray-like patients")
    parser.add_argument("--sets", default="synthetic,xray,real,cost")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", default="auto", choices=("auto", "exact", "lsh"),
                        help="candidate search (auto: exact at these sizes)")  # fmt: skip
    args = parser.parse_args(argv)
    sets = args.sets.split(",")
    if "synthetic" in sets:
        images = synthetic_images(args.per_class, args.seed)
        report("synthetic", measure(images, args.seed, args.index))
    if "xray" in sets:
        report("X-ray-like", measure(xray_images(args.films, args.seed), args.seed, args.index))
    if "real" in sets:
        images = real_images()
        if images is None:
            print("real: skipped (pip install pydicom pydicom-data for its bundled images)")
        else:
            report("real (pydicom-data)", measure(images, args.seed, args.index))
    if "cost" not in sets:
        return 0
    cost = verification_cost(synthetic_images(args.per_class, args.seed + 1), args.seed)
    print(
        f"verification per candidate pair, on {cost['pairs']} candidate pairs (synthetic images "
        f"and planted copies; per-pair forms on {cost['reference_pairs']} of them): old per-pair "
        f"check (phase correlation + warp + Pearson) {cost['old'] * 1e6:.0f} µs, the per-pair "
        f"definition (pair_similarity) {cost['definition'] * 1e6:.0f} µs, batched "
        f"{cost['batched'] * 1e6:.1f} µs → {cost['old'] / cost['batched']:.0f}× faster than the "
        f"old check, {cost['definition'] / cost['batched']:.0f}× than the definition; decisions "
        f"equal to the definition's on {cost['agree']:.1%} of the reference pairs "
        f"({cost['duplicates']} duplicates among them); plus {cost['per_image'] * 1e6:.0f} µs per "
        "image once (its views' FFTs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
