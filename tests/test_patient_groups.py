"""Patient- and lesion-level grouping: check's report, split.csv, holdout splits that keep each
patient or lesion on one side (read back from split.csv), custom group columns."""

import csv
import shutil
from pathlib import Path

import pytest

from data_setup import groups
from data_setup.__main__ import check
from data_setup.loading import load_dataset

SIZE = (16, 16)


def _kermany_names(root, per_patient=3):
    """Rename a synthetic Chest X-Ray tree to Kermany's file names, `per_patient` films each;
    the first test patient of each class also has films in train (the leak check should name)."""
    for split, offset in (("train", 0), ("val", 500), ("test", 900)):
        for cls in ("NORMAL", "PNEUMONIA"):
            folder = root / split / cls
            if not folder.is_dir():
                continue
            for i, path in enumerate(sorted(folder.glob("*.jpeg"))):
                patient = offset + i // per_patient
                if split == "test" and i < per_patient:
                    patient = 0  # shares patient 0 with train
                name = (
                    f"person{patient}_bacteria_{offset + i}.jpeg"
                    if cls == "PNEUMONIA"
                    else f"IM-{patient:04d}-{i + 1:04d}.jpeg"
                )
                path.rename(folder / name)


@pytest.fixture
def kermany(tmp_path):
    from data_setup import synth_dataset

    root = synth_dataset("ChestXRay", tmp_path / "data", count=24, size=40, seed=3)
    _kermany_names(root)
    return root


def _split_csv(data, path):
    data.write_split_csv(path)
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_check_reports_patients_and_the_ones_train_and_test_share(kermany, capsys):
    assert check("ChestXRay", str(kermany)) == 0
    out = capsys.readouterr().out
    assert "  patients (patient ids from Kermany file names): train " in out
    assert "patients have images in both test and train (e.g. IM-0000, person0)" in out
    normal = len(list(kermany.glob("*/NORMAL/*.jpeg"))) - len(list(kermany.glob("test/NORMAL/*")))
    shares = "  largest patient per class (its share of the class): train NORMAL "
    assert f"{shares}{3 / normal:.0%}" in out


def test_holdout_keeps_every_patient_on_one_side(kermany, tmp_path):
    for seed in (1, 2, 3):
        data = load_dataset(
            "ChestXRay", kermany, img_size=SIZE, protocol="holdout", seed=seed,
            cache_dir=tmp_path / "cache",
        )  # fmt: skip
        rows = _split_csv(data, tmp_path / "split.csv")
        side = {}
        for row in rows:
            assert row["group"], row  # every Kermany name carries its patient
            side.setdefault(row["group"], set()).add(row["split"])
        fit_val = [g for g, sides in side.items() if {"train", "val"} <= sides]
        assert fit_val == [], f"seed {seed}: patients on both sides of the holdout split"
        assert {"train", "val", "test"} <= {r["split"] for r in rows}
    assert data.grouping == "patient ids from Kermany file names"


def test_holdout_keeps_every_lesion_on_one_side(synth_root, tmp_path):
    root = tmp_path / "HAM10000"
    shutil.copytree(synth_root / "HAM10000", root)
    images = sorted((root / "images").glob("*.jpg"))
    lines = ["lesion_id,image_id,dx"] + [
        f"HAM_{i // 2:07d},{p.stem},nv"
        for i, p in enumerate(images)  # two photos per lesion
    ]
    (root / "HAM10000_metadata.csv").write_text("\n".join(lines) + "\n")
    data = load_dataset(
        "HAM10000", root, img_size=SIZE, protocol="holdout", seed=4, cache_dir=tmp_path / "c"
    )
    rows = _split_csv(data, tmp_path / "split.csv")
    train = {r["group"] for r in rows if r["split"] == "train"}
    val = {r["group"] for r in rows if r["split"] == "val"}
    assert val and not train & val
    assert data.grouping == "lesion ids from HAM10000_metadata.csv"


def test_a_custom_csv_group_column_is_used(tmp_path):
    from data_setup import synth_dataset

    source = synth_dataset("BUSI", tmp_path / "busi", count=12, size=32, seed=5)
    root = tmp_path / "mine"
    root.mkdir()
    rows = ["file,label,group"]
    for cls in ("benign", "malignant"):
        for i, path in enumerate(sorted((source / cls).glob("*.png"))):
            if "_mask" in path.stem:
                continue
            shutil.copy(path, root / f"{cls}_{i}.png")
            rows.append(f"{cls}_{i}.png,{cls},subject{i // 3}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    data = load_dataset("Custom", root, img_size=SIZE, protocol="holdout", cache_dir=tmp_path / "c")
    assert data.grouping == "the CSV's group column"
    split = _split_csv(data, tmp_path / "split.csv")
    train = {r["group"] for r in split if r["split"] == "train"}
    val = {r["group"] for r in split if r["split"] == "val"}
    assert not train & val


def test_group_report_counts_what_check_prints():
    report = groups.group_report({"train": ["a", "a", "b"], "test": ["c"]})
    assert report["shared"] == {} and report["groups"] == {"train": 2, "test": 1}


def test_clean_test_leaves_out_test_images_of_patients_training_has(kernel_env, kermany, tmp_path):
    import numpy as np

    from s3f_kit.run import evaluation as s3f_evaluation

    data = load_dataset("ChestXRay", kermany, img_size=SIZE, cache_dir=tmp_path / "cache")
    test = data.splits["test"]
    in_train = set(data.groups_of("train"))
    shared = [g in in_train for g in data.groups_of("test")]
    assert sum(shared) == 6  # patient 0's three normal and three pneumonia test films
    probs = np.full((len(test.labels), 1), 0.9)
    result = s3f_evaluation.clean_test_metrics(data, test.labels, probs, binary=True)
    assert result["shared_group_test_images"] == 6
    assert result["clean_test"]["images"] <= len(test.labels) - 6
    assert result["test_images"] == len(test.labels)


def plant_duplicate_groups(folder, sizes):
    """Overwrite the images of `folder` with groups of near-duplicates: each group of `sizes` is
    one image re-encoded at different JPEG qualities (what the audit pairs); the rest stay
    distinct. Returns the groups' files (relative to the folder's parent's parent)."""
    import cv2

    files = sorted(p for p in folder.iterdir() if p.suffix in (".jpeg", ".jpg", ".png"))
    planted, at = [], 0
    for size in sizes:
        first = cv2.imread(str(files[at]), cv2.IMREAD_GRAYSCALE)
        for k in range(1, size):
            cv2.imwrite(str(files[at + k]), first, [cv2.IMWRITE_JPEG_QUALITY, 60 + 3 * k])
        planted.append({p.relative_to(folder.parents[1]).as_posix() for p in files[at : at + size]})
        at += size
    return planted


def large_groups_tree(folder):
    """(root, planted groups) of a synthetic Chest X-Ray whose training pneumonia films are
    mostly two large groups of near-duplicates (the issue's 'val NORMAL=168 PNEUMONIA=0' tree,
    small), its normal films two smaller ones."""
    from data_setup import synth_dataset

    root = synth_dataset("ChestXRay", folder, count=24, size=40, seed=3)
    planted = plant_duplicate_groups(root / "train" / "PNEUMONIA", [12, 12])
    planted += plant_duplicate_groups(root / "train" / "NORMAL", [6, 6])
    return root, planted


@pytest.fixture
def chest_with_large_groups(tmp_path):
    return large_groups_tree(tmp_path / "data")


def test_holdout_validation_keeps_every_class_with_a_few_large_groups(chest_with_large_groups,
                                                                      tmp_path):  # fmt: skip
    """Regression (issue 32): the grouped holdout's validation split held no pneumonia film,
    training selected checkpoints on val_f1 0 and evaluation failed after training."""
    root, planted = chest_with_large_groups
    for seed in (1, 2, 3):
        data = load_dataset("ChestXRay", root, img_size=SIZE, protocol="holdout", seed=seed,
                            cache_dir=tmp_path / "cache")  # fmt: skip
        counts = data.counts()
        for split in ("train", "val"):
            assert all(counts[split].values()), f"seed {seed}: {split} {counts[split]}"
        train, val = set(data.splits["train"].files), set(data.splits["val"].files)
        for group in planted:  # each group whole, on one side
            assert group <= train or group <= val, f"seed {seed}: a group split"
    pool = data.splits["train"].labels.tolist() + data.splits["val"].labels.tolist()
    shares = data.extras["group_facts"]["largest_group_share"]
    pneumonia = data.class_names.index("PNEUMONIA")
    assert shares["PNEUMONIA"] == pytest.approx(12 / pool.count(pneumonia), abs=1e-4)
    assert f"largest group per class: NORMAL {shares['NORMAL']:.0%}" in data.summary()


def test_a_class_the_groups_cannot_split_is_refused_before_training(tmp_path):
    """Every training pneumonia film a copy of one: no validation split can hold pneumonia and
    leave training some; one sentence naming the class, its group and what to do."""
    from data_setup import synth_dataset
    from data_setup.layouts import DatasetError

    root = synth_dataset("ChestXRay", tmp_path / "data", count=24, size=40, seed=3)
    for extra in (root / "val" / "PNEUMONIA").iterdir():  # the official val folder trains too
        shutil.move(extra, root / "train" / "PNEUMONIA" / f"zz_{extra.name}")
    plant_duplicate_groups(root / "train" / "PNEUMONIA", [26])
    with pytest.raises(DatasetError) as error:
        load_dataset("ChestXRay", root, img_size=SIZE, protocol="holdout",
                     cache_dir=tmp_path / "cache")  # fmt: skip
    message = str(error.value)
    assert "\n" not in message
    assert "class PNEUMONIA has all 26 images in one group (e.g. train/PNEUMONIA/" in message
    assert "s3f-data audit" in message and "protocol='paper'" in message


def test_the_run_record_keeps_the_largest_group_share(kernel_env, chest_with_large_groups,
                                                      tmp_path):  # fmt: skip
    from s3f_kit.run import evaluation as s3f_evaluation

    root, _ = chest_with_large_groups
    data = load_dataset("ChestXRay", root, img_size=SIZE, protocol="holdout",
                        cache_dir=tmp_path / "cache")  # fmt: skip
    record = s3f_evaluation._grouping_record(data)  # metrics.json's "grouping"
    assert record["largest_group_share"] == data.extras["group_facts"]["largest_group_share"]
    assert record["chains_split"] == data.extras["group_facts"]["chains_split"]
    assert record["validation_kept_together"] == "patients/lesions and near-duplicates"


def test_real_films_with_large_groups_keep_every_class_on_both_sides(tmp_path):
    """Real medical images (pydicom-data's, as benchmarks/audit_accuracy.py reads them), two
    classes each with a few large groups of planted copies (resized, re-encoded, shifted: what
    the audit must pair): every seed's validation split holds both classes, no group split."""
    import importlib.util

    import cv2
    import numpy as np

    pytest.importorskip("pydicom")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "audit_accuracy.py"
    spec = importlib.util.spec_from_file_location("audit_accuracy", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    films = bench.real_images()
    if films is None or len(films) < 10:
        pytest.skip("pip install pydicom pydicom-data for its bundled real images")
    root = tmp_path / "films"
    rng = np.random.default_rng(0)
    rows, planted = ["file,label"], []
    sizes = {"a": [7, 5, 1, 1, 1], "b": [6, 4, 1, 1, 1]}  # a few large groups per class
    for label, originals in (("a", films[:5]), ("b", films[5:10])):
        for index, film in enumerate(originals):
            made = [film] + [bench.planted_copy(film, rng) for _ in range(sizes[label][index] - 1)]
            names = [f"{label}{index}_{k}.png" for k in range(len(made))]
            for name, image in zip(names, made, strict=True):
                root.mkdir(exist_ok=True)
                cv2.imwrite(str(root / name), image)
                rows.append(f"{name},{label}")
            if len(made) > 1:
                planted.append(set(names))
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    for seed in (1, 2, 3):
        data = load_dataset("Custom", root, img_size=(64, 64), protocol="holdout", seed=seed,
                            cache_dir=tmp_path / "cache", test_fraction=0.2)  # fmt: skip
        counts = data.counts()
        assert all(counts["train"].values()) and all(counts["val"].values()), (seed, counts)
        val = set(data.splits["val"].files)
        assert all(group <= val or not group & val for group in planted)
