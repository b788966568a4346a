"""data_setup.files: atomic writes leave the old file or the new one, never a temp or half a
file; a full disk is one sentence naming the folder; a killed writer's temp is collected."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_setup import files
from tests.helpers import small_disk

FULL_DISK_END = "bytes free); free space there (or choose a folder on another disk) and run again"


def test_a_full_disk_keeps_the_old_file_and_names_folder_and_need(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    real = Path.write_bytes

    def fills_up(self, data):
        real(self, data[:3])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", fills_up)
    with pytest.raises(files.DiskFullError) as raised:
        files.write_atomic(target, "x" * 5000)
    message = str(raised.value)
    assert message.startswith(f"{tmp_path}: the disk is full — metrics.json could not be written (")
    assert message.endswith(f", about 5,000 bytes needed); {FULL_DISK_END.split('); ')[1]}")
    assert raised.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_real_full_disk_leaves_no_temp(tmp_path):
    with small_disk(tmp_path / "disk", "64k") as disk:
        with pytest.raises(files.DiskFullError) as raised:
            files.write_atomic(disk / "big.bin", b"\0" * 200_000)
        assert str(raised.value).startswith(f"{disk}: the disk is full — big.bin could not be")
        assert list(disk.iterdir()) == []


def test_a_killed_writers_temp_is_collected_a_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    mine = files.temp_name(tmp_path / "model.keras")
    assert mine.name == f".model.keras.{os.getpid()}.tmp.keras"  # Keras needs the suffix
    stale = tmp_path / mine.name.replace(str(os.getpid()), dead.stdout.strip())
    stale.write_bytes(b"half")
    live = tmp_path / mine.name.replace(str(os.getpid()), str(os.getppid()))
    live.write_bytes(b"busy")
    assert files.remove_stale_temps(tmp_path) == [stale]
    assert live.is_file() and not stale.exists()
