"""Leakage audit: planted near-duplicates are found, distinct images mostly not; the CLI, the
holdout protocol's grouping and the clean-test metrics (issue: claims, leakage audit)."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from data_setup import audit, load_dataset, synth_dataset
from data_setup.__main__ import main as cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import audit_accuracy  # noqa: E402


def test_planted_copies_are_found_and_distinct_pairs_rarely_reported():
    result = audit_accuracy.measure(audit_accuracy.synthetic_images(8, seed=0))
    assert result["recall"] >= 0.95
    assert result["false_pair_rate"] <= 0.01


def test_distinct_chest_films_are_not_paired_but_their_copies_are():
    films = audit_accuracy.xray_images(24, seed=3, width=(300, 420))
    result = audit_accuracy.measure(films, seed=3)
    assert result["recall"] == 1.0
    assert result["false_pairs"] == 0


def test_batched_verification_decides_as_the_per_pair_definition():
    rng = np.random.default_rng(7)
    films = audit_accuracy.xray_images(12, seed=1, width=(200, 260))
    copies = [audit_accuracy.planted_copy(f, rng) for f in films]
    thumbs = np.array([audit.thumbnail(im) for im in films + copies])
    prepared = audit._Prepared(audit.Features(thumbs))
    n = len(films)
    pairs = [(i, i + n) for i in range(n)]  # copies
    pairs += [tuple(rng.choice(2 * n, 2, replace=False)) for _ in range(300)]  # mostly distinct
    i, j = np.array(pairs).T
    batched = np.concatenate([
        audit.batch_similarity(prepared.spectra[i[s : s + 64]], prepared.spectra[j[s : s + 64]])
        for s in range(0, len(i), 64)
    ])  # fmt: skip
    reference = np.array([audit.pair_similarity(thumbs[a], thumbs[b]) for a, b in pairs])
    np.testing.assert_allclose(batched, reference, rtol=1e-4, atol=1e-4)
    decided = batched >= audit.MIN_SIMILARITY
    assert decided.tolist() == (reference >= audit.MIN_SIMILARITY).tolist()
    assert decided[:n].all() and 0 < decided.sum() < len(pairs)  # both outcomes occur
    # the search's form: the layout view only where the phase view can still reach the floor
    floored = audit._verify(prepared.spectra, prepared.spectra, i, j, floor=audit.MIN_SIMILARITY)
    assert (floored >= audit.MIN_SIMILARITY).tolist() == decided.tolist()
    np.testing.assert_allclose(floored[decided], reference[decided], rtol=1e-4, atol=1e-4)
    assert np.all(floored >= reference - 1e-4)  # below the floor: an upper bound


def test_feature_cache_is_reused_and_invalidated_when_the_data_change(tmp_path, monkeypatch):
    from data_setup import audit_cache

    root = tmp_path / "brisc"
    synth_dataset("BRISC2025", root, count=4, size=64, seed=2)
    calls = []
    real = audit_cache.features_of_files

    def counted(paths, *args, **kwargs):
        calls.append(len(list(paths)))
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(audit_cache, "features_of_files", counted)
    cache = tmp_path / "cache"
    first = audit.audit("BRISC2025", root, cache_dir=cache)
    assert len(calls) == 2  # train and test computed once
    data = load_dataset("BRISC2025", root, img_size=(32, 32), cache_dir=cache)
    train = data.audit_features("train")
    assert len(calls) == 2 and len(train) == len(data.splits["train"])  # reused, also here
    assert audit.audit("BRISC2025", root, cache_dir=cache) == first and len(calls) == 2
    image = sorted((root / "classification_task" / "test" / "glioma").iterdir())[0]
    cv2.imwrite(str(image), np.full((64, 64), 128, np.uint8))  # the data change
    audit.audit("BRISC2025", root, cache_dir=cache)
    assert len(calls) == 3  # only the changed split is recomputed


def test_a_copy_in_both_splits_is_reported_and_grouped(tmp_path, capsys):
    root = tmp_path / "busi"
    synth_dataset("BUSI", root, count=6, size=64, seed=4)
    folder = root / "Dataset_BUSI_with_GT" / "benign"
    original = sorted(p for p in folder.iterdir() if "_mask" not in p.name)[0]
    image = cv2.imread(str(original), cv2.IMREAD_GRAYSCALE)
    copy = cv2.resize(image, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(folder / "copy_of_first.jpg"), copy, [cv2.IMWRITE_JPEG_QUALITY, 60])
    out = tmp_path / "pairs.csv"
    assert cli(["audit", "BUSI", str(root), "--out", str(out)]) == 0
    pairs = pd.read_csv(out)
    names = set(pairs["file_a"]) | set(pairs["file_b"])
    assert any("copy_of_first" in n for n in names) and any(original.name in n for n in names)
    printed = capsys.readouterr().out
    assert "duplicate pair(s)" in printed
    share = printed.split("largest near-duplicate group per class (its share of the class): ")[1]
    benign = int(share.split("benign ")[1].split("%")[0])  # at least the copy and its original
    assert benign >= round(100 * 2 / sum("_mask" not in p.name for p in folder.iterdir()))
    verified = int(printed.split(" candidate pair(s) verified")[0].split()[-1])
    n = 6 * 3 + 1  # three classes of six, and the copy
    assert len(pairs) - (pairs["kind"] == "exact").sum() <= verified <= n * (n - 1) // 2


def test_duplicate_groups_and_leaked_mask():
    base = np.zeros((3, 64, 64), np.uint8)
    cv2.circle(base[0], (20, 30), 12, 255, -1)
    cv2.rectangle(base[1], (30, 10), (55, 40), 200, -1)
    cv2.line(base[2], (5, 60), (60, 5), 255, 4)
    base[2, :, :20] = 90
    shifted = np.roll(base[0], 2, axis=1)
    features = audit.features_of_arrays(np.array([*base, shifted]))
    groups = audit.duplicate_groups(features)
    assert groups[0] == groups[3] and len(set(groups[:3])) == 3
    train = audit.features_of_arrays(base[:2])
    test = audit.features_of_arrays(np.array([shifted, base[2]]))
    assert audit.leaked_test_mask(train, test).tolist() == [True, False]


def test_holdout_keeps_duplicate_groups_on_one_side(tmp_path):
    root = tmp_path / "brisc"
    synth_dataset("BRISC2025", root, count=10, size=64, seed=5)
    train_folder = root / "classification_task" / "train"
    for name in ("glioma", "meningioma"):
        first = sorted((train_folder / name).iterdir())[0]
        for k in range(3):
            image = cv2.imread(str(first), cv2.IMREAD_GRAYSCALE)
            cv2.imwrite(
                str(train_folder / name / f"dup{k}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 70 + k]
            )
    data = load_dataset("BRISC2025", root, img_size=(32, 32), protocol="holdout",
                        cache_dir=tmp_path / "cache")  # fmt: skip
    train, val = set(data.splits["train"].files), set(data.splits["val"].files)
    for name in ("glioma", "meningioma"):
        family = {f for f in train | val if f.split("/")[-2] == name and "/dup" in f}
        assert family <= train or family <= val


def test_clean_test_metrics_leave_out_test_copies_of_training_images(tmp_path):
    from s3f_kit.run import evaluation as s3f_evaluation

    root = tmp_path / "brisc"
    synth_dataset("BRISC2025", root, count=6, size=64, seed=6)
    base = root / "classification_task"
    first = sorted((base / "train" / "glioma").iterdir())[0]
    image = cv2.imread(str(first), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(base / "test" / "glioma" / "leak.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 60])
    data = load_dataset("BRISC2025", root, img_size=(32, 32), cache_dir=tmp_path / "cache")
    labels = data.splits["test"].labels
    probs = np.eye(len(data.class_names))[labels]  # a perfect model
    result = s3f_evaluation.clean_test_metrics(data, labels, probs, binary=False)
    assert result["leaked_test_images"] >= 1
    assert result["clean_test"]["images"] == len(labels) - result["leaked_test_images"]
    assert result["clean_test"]["accuracy"] == 1.0
    leaked = audit.leaked_test_mask(data.audit_features("train"), data.audit_features("test"))
    assert [f for f, m in zip(data.splits["test"].files, leaked, strict=True) if m] == [
        "test/glioma/leak.jpg"
    ]


def _planted_vectors(n=3000, copies=300, cosine=0.8, dims=400, seed=0):
    """Unit vectors of n distinct images (random directions) and `copies` near-copies of the
    first ones at about `cosine`."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, dims)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    noise = rng.standard_normal((copies, dims)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    near = cosine * base[:copies] + np.sqrt(1 - cosine**2) * noise
    return np.concatenate([base, near / np.linalg.norm(near, axis=1, keepdims=True)])


def test_signature_index_finds_what_every_pair_finds_without_comparing_every_pair():
    unit = _planted_vectors()
    n = 3000
    exact = audit._exact_candidates(unit, unit, True, audit.CANDIDATE_SIMILARITY, 1024, None)
    indexed = audit._lsh_candidates(unit, unit, True, audit.CANDIDATE_SIMILARITY, None)
    exact = set(zip(*map(list, exact), strict=True))
    indexed = set(zip(*map(list, indexed), strict=True))
    planted = {(k, n + k) for k in range(300)}
    assert planted <= exact  # the copies are what there is to find (random pairs: cos ≈ 0)
    assert indexed <= exact  # every proposal is checked by its exact cosine
    assert len(indexed & planted) >= 0.97 * len(planted)
    # across two sets (the clean-test check): the copies against the originals
    rows, cols = audit._lsh_candidates(unit[n:], unit[:n], False, 0.5, None)
    assert np.mean(rows == cols) >= 0.97 and len(rows) >= 0.97 * 300


def test_signature_index_plan_meets_its_miss_rate_and_grows_slowly():
    for count in (100, 4000, 30000, 300000):
        bits, bands = audit._lsh_plan(count)
        agree = 1 - np.arccos(audit.LSH_COSINE) / np.pi
        assert 1 - (1 - agree**bits) ** bands >= 1 - audit.LSH_MISS
    # bands (the index's work per image) grow far slower than the images
    assert audit._lsh_plan(300000)[1] < 10 * audit._lsh_plan(3000)[1]


def test_auto_uses_the_index_above_its_size_and_finds_the_same_copies(monkeypatch):
    films = audit_accuracy.xray_images(40, seed=5, width=(200, 260))
    rng = np.random.default_rng(2)
    copies = [audit_accuracy.planted_copy(f, rng) for f in films[:12]]
    features = audit.features_of_arrays(films + copies)
    exact = audit.near_pairs(features, index="exact")
    used, default_cost = [], audit.LSH_PAIRS_PER_BAND
    real = audit._lsh_candidates
    monkeypatch.setattr(audit, "_lsh_candidates", lambda *a: used.append(1) or real(*a))
    monkeypatch.setattr(audit, "LSH_PAIRS_PER_BAND", 0.01)
    indexed = audit.near_pairs(features)
    assert used
    used.clear()
    monkeypatch.setattr(audit, "LSH_PAIRS_PER_BAND", default_cost)
    audit.near_pairs(features)
    assert not used  # 52 images: every pair is cheaper
    assert {(k, 40 + k) for k in range(12)} <= {(i, j) for i, j, _ in exact}
    assert {(i, j) for i, j, _ in indexed} == {(i, j) for i, j, _ in exact}


def test_coarse_layout_test_drops_texture_alike_pairs_but_no_copy_and_no_duplicate():
    """Drawings of one class share a texture's spectrum (most of their pairs pass the
    signature test); the coarse-layout test keeps every planted copy, drops most of those
    pairs, and changes no decision of the verification."""
    from data_setup.synth import _noise_tile, full_size_image

    noise = _noise_tile(0)
    drawings = [full_size_image(np.random.default_rng([5, k]), k % 3, 150, 200, 3, 7, noise)[0]
                for k in range(90)]  # fmt: skip
    rng = np.random.default_rng(5)
    copies = [audit_accuracy.planted_copy(im, rng) for im in drawings[:30]]
    features = audit.features_of_arrays(drawings + copies)
    gated = audit.candidate_pairs(features)
    signature_only = audit.candidate_pairs(features, candidate_layout=None)
    as_pairs = lambda rows_cols: set(zip(*map(np.ndarray.tolist, rows_cols), strict=True))  # noqa: E731
    gated, signature_only = as_pairs(gated), as_pairs(signature_only)
    assert gated <= signature_only
    assert all((k, k + 90) in gated for k in range(30))  # every planted copy stays a candidate
    distinct = lambda pairs: {p for p in pairs if p[1] < 90}  # noqa: E731
    assert len(distinct(signature_only)) >= 5 * max(len(distinct(gated)), 1)
    with_test = audit.near_pairs(features)
    without = audit.near_pairs(features, candidate_layout=None)
    assert [(i, j) for i, j, _ in with_test] == [(i, j) for i, j, _ in without]
    assert audit.coarse_layouts(np.full((1, 64, 64), 128, np.uint8)).any() == np.False_  # flat
