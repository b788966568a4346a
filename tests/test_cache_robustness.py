"""The cache folder under stress: a full disk, processes killed mid-write, concurrent release
records, a read-only cache or a cache path that is a file (issue: robustness); cache entries
damaged or planted: rebuilt, with one line naming the file and what did not match (issue 31)."""

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings
import zipfile
from collections import namedtuple

import numpy as np
import pytest

import data_setup.cache as cache_module
import data_setup.files as files
from data_setup import audit, load_dataset, synth_dataset
from data_setup.files import CacheError


@pytest.fixture(scope="module")
def busi(tmp_path_factory):
    root = tmp_path_factory.mktemp("busi")
    synth_dataset("BUSI", root, count=4, size=40, seed=3)
    return root


def test_a_full_disk_is_refused_before_any_memmap(busi, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    with pytest.raises(CacheError) as error:
        load_dataset("BUSI", busi, img_size=(16, 16), cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert str(tmp_path / "cache") in message and "S3F_CACHE_DIR" in message
    assert "bytes" in message
    assert not [p for p in (tmp_path / "cache").iterdir() if "tmp" in p.name]


def test_temp_files_of_killed_processes_are_removed_on_the_next_run(busi, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    stale = cache / f".BUSI_all_16x16x1_abc.{dead.pid}.tmp.npy"
    stale.write_bytes(b"\0" * 4096)
    stale_fetch = tmp_path / f".s3f-fetch-{dead.pid}-xyz"
    stale_fetch.mkdir()
    live = cache / f".BUSI_all_16x16x1_abc.{os.getppid()}.tmp.npy"  # a live writer's
    live.write_bytes(b"\0")
    load_dataset("BUSI", busi, img_size=(16, 16), cache_dir=cache)
    assert not stale.exists() and live.exists()
    files.remove_stale_temps(tmp_path)
    assert not stale_fetch.exists()


def test_a_decode_killed_mid_write_leaves_nothing_after_the_next_run(busi, tmp_path):
    cache = tmp_path / "cache"
    script = "\n".join(
        [
            "import os, signal",
            "import data_setup.cache as cache",
            "from data_setup import load_dataset",
            "cache.decode_bytes = lambda *a: os.kill(os.getpid(), signal.SIGKILL)",
            f"load_dataset('BUSI', {str(busi)!r}, img_size=(16, 16), cache_dir={str(cache)!r})",
        ]
    )
    killed = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd())
    assert killed.returncode == -signal.SIGKILL
    assert [p for p in cache.iterdir() if ".tmp" in p.name]  # the killed writer's leftover
    load_dataset("BUSI", busi, img_size=(16, 16), cache_dir=cache)
    assert not [p for p in cache.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize("kind", ["file", "readonly"])
def test_an_unusable_cache_folder_is_one_clear_error(kind, busi, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    if kind == "file":
        cache.write_text("not a folder")
    else:
        cache.mkdir()
        real_write = type(cache).write_bytes

        def refuse(self, data):  # root ignores chmod: simulate a read-only folder
            if self.parent == cache:
                raise PermissionError(13, "Permission denied", str(self))
            return real_write(self, data)

        monkeypatch.setattr(type(cache), "write_bytes", refuse)
    with pytest.raises(CacheError, match=f"cache folder {cache}.*S3F_CACHE_DIR"):
        load_dataset("BUSI", busi, img_size=(16, 16), cache_dir=cache)


def test_concurrent_release_records_all_survive(tmp_path):
    """Four processes record four releases' SHA-256 at once; every record must remain."""
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from data_setup.files import write_atomic
        folder, name = Path(sys.argv[1]), sys.argv[2]
        for i in range(200):
            write_atomic(folder / f"{name}.sha256", f"{name}-{i}\\n")
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), f"release{i}"])
        for i in range(4)
    ]
    assert all(p.wait() == 0 for p in procs)
    records = sorted(p.read_text().strip() for p in tmp_path.glob("*.sha256"))
    assert records == [f"release{i}-199" for i in range(4)]


# ------------------------------------------------ cache entries that are not what they claim (31)


def _entry(cache, dataset="BUSI"):
    """The (.npy, .json) of the one decode-cache entry of `dataset` in `cache`."""
    (images,) = sorted(cache.glob(f"{dataset}_*.npy"))
    return images, images.with_suffix(".json")


def _fewer_images_than_labels(images, header, root, scratch):
    full = np.load(images)
    np.save(images, full[:-1])  # the header still lists every file and label


def _header_a_json_list(images, header, root, scratch):
    header.write_text(json.dumps([1, 2, 3]))


def _header_not_json(images, header, root, scratch):
    header.write_text('{"files": ["benign/1.png"')  # cut off mid-write


def _rotated_labels(images, header, root, scratch):
    meta = json.loads(header.read_text())
    meta["labels"] = meta["labels"][1:] + meta["labels"][:1]
    header.write_text(json.dumps(meta))


def _pixels_changed(images, header, root, scratch):
    array = np.load(images, mmap_mode="r+")
    array[0] = 255 - array[0]  # same shape and header: only the checksum tells
    array.flush()


def _smaller_entry_under_this_key(images, header, root, scratch):
    """An 8×8 entry of the same files written under the 16×16 entry's name."""
    load_dataset("BUSI", root, img_size=(8, 8), cache_dir=scratch / "8x8")
    small_images, small_header = _entry(scratch / "8x8")
    shutil.copy(small_images, images)
    shutil.copy(small_header, header)


def _header_too_large(images, header, root, scratch):
    header.write_bytes(b" " * (cache_module.HEADER_BYTES_PER_FILE * 200))


@pytest.mark.parametrize(
    ("plant", "said"),
    [
        (_fewer_images_than_labels, r"\.npy: holds uint8 images of shape \(\d+, 16, 16, 1\)"),
        (_header_a_json_list, r"\.json: the header is a JSON list, not an object"),
        (_header_not_json, r"\.json: the header is not JSON"),
        (_rotated_labels, r"\.json: the labels \(or files\) differ from their digest"),
        (_pixels_changed, r"\.npy: its checksum is not its header's"),
        (_smaller_entry_under_this_key, r"\.json: the header says shape \(\d+, 8, 8, 1\), "
                                        r"expected \(\d+, 16, 16, 1\)"),
        (_header_too_large, r"\.json: the header is [\d,]+ bytes, more than"),
    ],
)
def test_a_damaged_or_planted_decode_cache_entry_is_rebuilt_and_said(plant, said, tmp_path,
                                                                     monkeypatch):  # fmt: skip
    root = synth_dataset("BUSI", tmp_path / "data", count=4, size=40, seed=3)
    cache = tmp_path / "cache"
    first = load_dataset("BUSI", root, img_size=(16, 16), cache_dir=cache).splits["train"].source
    expected = first.files, first.labels, np.array(first.images)  # in memory: plants truncate
    del first
    images, header = _entry(cache)
    plant(images, header, root, tmp_path)
    monkeypatch.setattr(cache_module, "_VERIFIED", set())  # a new process: nothing verified yet
    with pytest.warns(cache_module.CacheRebuilt) as caught:
        again = load_dataset("BUSI", root, img_size=(16, 16), cache_dir=cache)
    said_lines = [str(w.message) for w in caught if w.category is cache_module.CacheRebuilt]
    assert len(said_lines) == 1 and "\n" not in said_lines[0]
    assert re.search(re.escape(str(images.with_suffix(""))) + said, said_lines[0]), said_lines
    assert said_lines[0].endswith("decoding the split again")
    rebuilt = again.splits["train"].source
    assert rebuilt.files == expected[0]
    np.testing.assert_array_equal(rebuilt.labels, expected[1])
    np.testing.assert_array_equal(np.asarray(rebuilt.images), expected[2])
    monkeypatch.setattr(cache_module, "_VERIFIED", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache_module.CacheRebuilt)  # rebuilt: sound again
        load_dataset("BUSI", root, img_size=(16, 16), cache_dir=cache)


def test_a_sound_decode_cache_is_read_back_verified_once_per_process(busi, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    load_dataset("BUSI", busi, img_size=(16, 16), cache_dir=cache)
    sums = []
    real = cache_module.content_checksum
    monkeypatch.setattr(cache_module, "content_checksum", lambda p: sums.append(p) or real(p))
    monkeypatch.setattr(cache_module, "_VERIFIED", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache_module.CacheRebuilt)
        for _ in range(3):
            load_dataset("BUSI", busi, img_size=(16, 16), cache_dir=cache)
    assert sums == [_entry(cache)[0]]  # read once, not per load


def _audit_files(cache, split):
    (path,) = sorted(cache.glob(f"*_{split}_audit*.npz"))
    return path


def _rewrite_npz(path, **changes):
    """The archive at `path` saved again with some arrays replaced (any checksum kept as is)."""
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    arrays.update(changes)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def test_rewritten_audit_features_cannot_hide_a_train_test_copy(tmp_path):
    root = tmp_path / "brisc"
    synth_dataset("BRISC2025", root, count=4, size=48, seed=5)
    test_image = sorted((root / "classification_task" / "test" / "glioma").iterdir())[0]
    shutil.copy(test_image, root / "classification_task" / "train" / "glioma" / "zz_copy.jpg")
    cache = tmp_path / "cache"

    def leaked():
        data = load_dataset("BRISC2025", root, img_size=(16, 16), cache_dir=cache)
        mask = audit.leaked_test_mask(data.audit_features("train"), data.audit_features("test"))
        return {data.splits["test"].files[i] for i in np.flatnonzero(mask)}

    copy = test_image.relative_to(root / "classification_task").as_posix()  # the listing's root
    assert copy in leaked()
    path = _audit_files(cache, "train")
    with np.load(path) as data:
        row = [str(f) for f in data["files"]].index("train/glioma/zz_copy.jpg")
        thumbs, digests = data["thumbs"].copy(), data["digests"].copy()
    thumbs[row] = np.random.default_rng(0).integers(0, 256, thumbs[row].shape, np.uint8)
    digests[row] = b"0" * 64
    _rewrite_npz(path, thumbs=thumbs, digests=digests)
    with pytest.warns(cache_module.CacheRebuilt, match=re.escape(str(path)) + ": its checksum"):
        assert copy in leaked()  # computed again: the copy is found


def _huge_claim(path):
    """thumbs.npy's header claims a trillion rows; its data is the real few."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    old = members["thumbs.npy"]
    header_end = old.index(b"\n") + 1
    declared = old[:header_end].decode("latin1")
    rows = int(re.search(r"'shape': \((\d+),", declared).group(1))
    claimed = declared.replace(f"({rows},", f"({10**12},").encode("latin1")
    members["thumbs.npy"] = claimed + old[header_end:]
    with zipfile.ZipFile(path, "w") as archive:  # stored, as np.savez
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize(
    ("plant", "said"),
    [
        (lambda path: _rewrite_npz(path, thumbs=np.load(path)["thumbs"][:-1]),
         r"'thumbs' is uint8 of shape \(\d+, 64, 64\), expected uint8 of shape"),
        (lambda path: _rewrite_npz(path, usable=np.load(path)["usable"][:2]),
         r"'usable' is bool of shape \(2,\)"),
        (lambda path: path.write_bytes(b"not an archive"), "not a readable feature archive"),
        (_huge_claim, "thumbs.npy claims more data than it holds"),
        (lambda path: _rewrite_npz(path, extra=np.zeros(1)), "not the feature arrays"),
    ],
    ids=["short thumbs", "short usable", "not an archive", "a huge claim", "an extra array"],
)
def test_a_damaged_audit_cache_is_computed_again_and_said(plant, said, busi, tmp_path):
    cache = tmp_path / "cache"
    data = load_dataset("BUSI", busi, img_size=(16, 16), cache_dir=cache)
    before = data.audit_features("train")
    path = _audit_files(cache, "all")
    plant(path)
    with pytest.warns(cache_module.CacheRebuilt) as caught:
        again = load_dataset("BUSI", busi, img_size=(16, 16), cache_dir=cache)
        after = again.audit_features("train")
    (line,) = [str(w.message) for w in caught if w.category is cache_module.CacheRebuilt]
    assert line.startswith(f"{path}: ") and re.search(said, line) and "\n" not in line
    np.testing.assert_array_equal(after.thumbs, before.thumbs)
    assert after.digests == before.digests
