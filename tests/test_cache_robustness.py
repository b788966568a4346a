"""The cache folder under stress: a full disk, processes killed mid-write, concurrent release
records, a read-only cache or a cache path that is a file (issue: robustness)."""

import os
import signal
import subprocess
import sys
import textwrap
from collections import namedtuple

import pytest

import data_setup.files as files
from data_setup import load_dataset, synth_dataset
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
