"""The data manifest (issue 34 item 1): a path-free identity of a copy of the data, its per-file
hashes cached beside the decode cache, `check`'s byte copies and publisher's manifest, and the
results' "consistent with the paper's counts"."""

import csv
import os
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from data_setup import cache as cache_module
from data_setup import manifest as manifest_module
from data_setup.__main__ import main as data_main
from data_setup.custom import custom_dataset
from data_setup.datasets import DATASETS, PAPER_COUNTS
from data_setup.layouts import discover
from data_setup.manifest import (
    ManifestError,
    data_manifest,
    manifest_entries,
    read_manifest,
)
from data_setup.synth import synth_dataset
from s3f_kit.reports.data_identity import consistency, data_lines
from s3f_kit.run_record import RunRecord


def _png_tree(root, per_class=3, seed=0):
    """A Custom dataset of lossless PNGs, <root>/{train,test}/{a,b}/*.png (random pixels)."""
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for name in ("a", "b"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (20, 24), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{name}{i}.png")
    return root


def _manifest(root, cache_dir):
    info = custom_dataset(root)
    return data_manifest(info, discover(info, root), cache_dir)


def test_the_manifest_changes_with_one_pixel_and_not_with_a_copy_move_or_unzip(tmp_path):
    root = _png_tree(tmp_path / "data")
    cache = tmp_path / "cache"
    first = _manifest(root, cache)
    assert first["counts"] == {"train": {"a": 3, "b": 3}, "test": {"a": 3, "b": 3}}
    assert _manifest(root, cache)["sha256"] == first["sha256"]  # nothing changed

    copied = tmp_path / "elsewhere" / "copy"
    shutil.copytree(root, copied)
    for path in copied.rglob("*.png"):  # other times: another fingerprint, the same images
        os.utime(path, (1_000_000_000, 1_000_000_000))
    assert _manifest(copied, cache)["sha256"] == first["sha256"]

    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(root.rglob("*.png")):
            # another archive of the same images: other folders above, other file names
            handle.write(path, f"release/v1/{path.parent.relative_to(root)}/x_{path.name}")
    with zipfile.ZipFile(archive) as handle:
        handle.extractall(tmp_path / "unzipped")
    assert _manifest(tmp_path / "unzipped" / "release" / "v1", cache)["sha256"] == first["sha256"]

    victim = root / "test" / "b" / "b1.png"
    pixels = np.array(Image.open(victim))
    pixels[5, 7] ^= 1  # one pixel, one bit
    Image.fromarray(pixels).save(victim)
    changed = _manifest(root, cache)
    assert changed["sha256"] != first["sha256"]
    assert changed["counts"] == first["counts"]


def test_the_manifest_changes_when_a_file_changes_split(tmp_path):
    root = _png_tree(tmp_path / "data")
    before = _manifest(root, tmp_path / "cache")["sha256"]
    (root / "train" / "a" / "a0.png").rename(root / "test" / "a" / "moved.png")
    assert _manifest(root, tmp_path / "cache")["sha256"] != before


def test_file_hashes_are_cached_beside_the_decode_cache_and_checked(tmp_path, monkeypatch):
    root = _png_tree(tmp_path / "data")
    cache = tmp_path / "cache"
    first = _manifest(root, cache)
    entries = sorted(cache.glob("*_sha256_*.json"))
    assert len(entries) == 2  # one per official split

    read = []
    real = cache_module.sha256_of
    monkeypatch.setattr(cache_module, "sha256_of", lambda p: read.append(p) or real(p))
    assert _manifest(root, cache) == first
    assert read == []  # hashed once: later loads read the entry, not the files

    entries[0].write_text(entries[0].read_text()[:40])  # cut short
    with pytest.warns(cache_module.CacheRebuilt, match=str(entries[0]) + ": it is not JSON"):
        assert _manifest(root, cache) == first
    assert len(read) == 6  # that split's files only, read again
    assert not list(cache.glob(".*tmp*"))  # written atomically


def test_load_dataset_records_the_manifest_for_metrics_json(tmp_path):
    from data_setup.loading import load_dataset

    root = synth_dataset("BRISC2025", tmp_path / "brisc", count=4, size=32)
    data = load_dataset("BRISC2025", root, img_size=(16, 16), cache_dir=tmp_path / "cache")
    info = DATASETS["BRISC2025"]
    assert data.manifest == data_manifest(info, discover(info, root), tmp_path / "cache")
    assert data.manifest["counts"]["test"] == dict.fromkeys(info.class_names, 3)
    record = RunRecord.build({"experiment": "x", "data_manifest": data.manifest}).as_json()
    assert record["data_manifest"]["sha256"] == data.manifest["sha256"]


def _rows(entries):
    return [["path", "sha256", "split", "label"]] + [
        [e.path, e.sha256, e.split, e.label] for e in entries
    ]


def _write(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_check_reports_missing_extra_and_different_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("S3F_CACHE_DIR", str(tmp_path / "cache"))
    root = synth_dataset("BRISC2025", tmp_path / "brisc", count=4, size=32)
    info = DATASETS["BRISC2025"]
    entries, _ = manifest_entries(info, discover(info, root))
    rows = _rows(entries)
    published = tmp_path / "published.csv"

    _write(published, rows)
    assert data_main(["check", "BRISC2025", str(root), "--manifest", str(published)]) == 0
    assert f"matches {published}: every file, byte for byte" in capsys.readouterr().out

    dropped = rows.pop(1)[0]  # a file the publisher does not have: extra here
    rows.append(["train/glioma/not_here.jpg", "0" * 64, "train", "glioma"])  # missing here
    rows[3][1] = "f" * 64  # a different content
    rows[4][3] = "pituitary" if rows[4][3] != "pituitary" else "glioma"  # another label
    # the publisher names paths from the folder above: still compared file by file
    rows[1:] = [[f"classification_task/{r[0]}", *r[1:]] for r in rows[1:]]
    _write(published, rows)
    assert data_main(["check", "BRISC2025", str(root), "--manifest", str(published)]) == 0
    out = capsys.readouterr().out
    assert f"differs from {published}: 1 missing, 1 extra, 2 different" in out
    assert "missing: train/glioma/not_here.jpg" in out
    assert f"extra: {dropped}" in out
    assert f"different: {rows[3][0].split('/', 1)[1]} (content)" in out
    assert f"different: {rows[4][0].split('/', 1)[1]} (label)" in out


def test_check_lists_byte_identical_files_across_splits(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("S3F_CACHE_DIR", str(tmp_path / "cache"))
    root = synth_dataset("ChestXRay", tmp_path / "cxr", count=4, size=32)
    assert data_main(["check", "ChestXRay", str(root)]) == 0
    out = capsys.readouterr().out
    assert "0 across splits" in out and "byte copies" not in out

    train = sorted((root / "train" / "NORMAL").iterdir())
    shutil.copy(train[0], root / "test" / "NORMAL" / "copy.jpeg")
    shutil.copy(train[1], root / "val" / "NORMAL" / "copy.jpeg")
    assert data_main(["check", "ChestXRay", str(root)]) == 0
    out = capsys.readouterr().out
    assert "2 group(s) of byte-identical files, 2 across splits:" in out
    assert f"test/NORMAL/copy.jpeg (test) = train/NORMAL/{train[0].name} (train)" in out
    val_files = len(list((root / "val").rglob("*.jpeg")))
    assert f"val/: 1 of its {val_files} files are byte copies of training files" in out


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (['=HYPERLINK("x")', "a" * 64], "its path starts with '=', as a spreadsheet formula"),
        (["train/a.jpg", "abc"], "its sha256 'abc' is not 64 hexadecimal digits"),
        (["train/a.jpg", "a" * 64, "holdout"], "its split 'holdout' is not one of"),
        (["train/a.jpg", "a" * 64, "train", "cat"], "its label 'cat' is not one of"),
        (["x" * 5000, "a" * 64], "its path is longer than 4,096 characters"),
    ],
)
def test_a_bad_manifest_row_is_one_sentence_naming_file_and_line(tmp_path, row, problem, capsys):
    path = _write(
        tmp_path / "m.csv", [["path", "sha256", "split", "label"], ["ok.jpg", "b" * 64], row]
    )
    with pytest.raises(ManifestError) as caught:
        read_manifest(path, DATASETS["BRISC2025"])
    (sentence,) = caught.value.problems  # the good row passes, the bad one is named
    assert sentence.startswith(f"{path}: line 3: {problem}")
    root = synth_dataset("BRISC2025", tmp_path / "brisc", count=2, size=32)
    assert data_main(["check", "BRISC2025", str(root), "--manifest", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: line 3: {problem}") and "Traceback" not in err


def test_a_manifest_is_bounded_and_needs_its_columns(tmp_path, monkeypatch):
    header = ["path", "sha256"]
    rows = [header] + [[f"f{i}.jpg", "c" * 64] for i in range(5)]
    path = _write(tmp_path / "m.csv", rows)
    assert len(read_manifest(path)) == 5
    monkeypatch.setattr(manifest_module, "MAX_MANIFEST_ROWS", 3)
    with pytest.raises(ManifestError, match=f"{path}: more than 3 rows"):
        read_manifest(path)
    with pytest.raises(ManifestError, match="line 1 has no sha256 column"):
        read_manifest(_write(tmp_path / "n.csv", [["path", "hash"], ["a", "c" * 64]]))
    twice = _write(tmp_path / "t.csv", [header, ["a.jpg", "c" * 64], ["a.jpg", "d" * 64]])
    with pytest.raises(ManifestError, match="line 3: it lists a.jpg again \\(first on line 2\\)"):
        read_manifest(twice)
    monkeypatch.setattr(manifest_module, "MAX_MANIFEST_BYTES", 100)
    with pytest.raises(ManifestError, match="more than the 100 a manifest may be"):
        read_manifest(path)


def _paper_counts(dataset):
    names = DATASETS[dataset].class_names
    return {
        split: dict(zip(names, per_class, strict=True))
        for split, per_class in PAPER_COUNTS[dataset].items()
        if not isinstance(per_class, int)
    }


def test_counts_are_consistent_or_inconsistent_never_identical():
    counts = _paper_counts("HAM10000")
    assert consistency("HAM10000", counts) == "consistent"
    counts = _paper_counts("BRISC2025")
    counts["train"] = {"glioma": PAPER_COUNTS["BRISC2025"]["train"]}  # the paper: a total only
    assert consistency("BRISC2025", counts) == "consistent"
    expected_test = sum(PAPER_COUNTS["BRISC2025"]["test"])
    counts["test"]["pituitary"] -= 10  # today's Kaggle copy
    assert consistency("BRISC2025", counts) == (
        f"inconsistent (test {expected_test - 10:,} vs {expected_test:,}: pituitary "
        f"{counts['test']['pituitary']:,} vs {counts['test']['pituitary'] + 10:,})"
    )
    counts["test"]["pituitary"] += 10
    counts["test"]["glioma"] -= 1  # the same total, another mix
    counts["test"]["pituitary"] += 1
    assert consistency("BRISC2025", counts).startswith(
        f"inconsistent (test {expected_test:,} vs {expected_test:,}: glioma"
    )
    assert consistency("Custom", counts) == "no paper counts to compare with"


def test_the_results_say_which_copy_each_dataset_read():
    counts = _paper_counts("ChestXRay")
    manifest = {"sha256": "a" * 64, "counts": counts}
    other = {"sha256": "b" * 64, "counts": {**counts, "val": {"NORMAL": 0, "PNEUMONIA": 0}}}
    runs = [
        {"dataset": "ChestXRay", "data_manifest": manifest},
        {"dataset": "ChestXRay", "data_manifest": manifest},
        {"dataset": "ChestXRay", "data_manifest": other},
        {"dataset": "ChestXRay"},
        {"dataset": "BUSI", "data_manifest": {"sha256": "c" * 64, "counts": "garbage"}},
    ]
    lines = "\n".join(data_lines(runs, "ChestXRay"))
    total = sum(map(sum, PAPER_COUNTS["ChestXRay"].values()))
    assert f"copy `{'a' * 16}` ({total:,} files, 2 run(s)): counts consistent" in lines
    assert "counts inconsistent (val 0 vs 16: NORMAL 0 vs 8, PNEUMONIA 0 vs 8)" in lines
    assert "2 different copies" in lines and "1 run(s) recorded no data manifest" in lines
    assert "identical" not in lines
    assert "holds no counts" in "\n".join(data_lines(runs, "BUSI"))


def test_the_results_say_under_each_dataset_whether_its_shortcut_audit_flagged_it():
    audit = {"assessed": True, "kappa": 0.58, "kappa_ci": [0.5, 0.66], "flagged": True}
    runs = [{"dataset": "BRISC2025", "shortcuts": audit} for _ in range(3)]
    runs.append({"dataset": "BRISC2025", "shortcuts": {"assessed": False, "why": "one class"}})
    lines = data_lines(runs, "BRISC2025")
    (line,) = [text for text in lines if "Shortcut audit" in text]
    assert "+0.58 [+0.50, +0.66]" in line and "**flagged**" in line and "(3 run(s))" in line
    calm = [{"dataset": "BUSI", "shortcuts": {**audit, "kappa": 0.05, "flagged": False}}]
    assert any("not flagged" in text for text in data_lines(calm, "BUSI"))
    assert not any("Shortcut" in text for text in data_lines([{"dataset": "BUSI"}], "BUSI"))
