"""data_setup.files: atomic writes leave the old file or the new one, never a temp or half a
file; a full disk is one sentence naming the folder; a killed writer's temp is collected."""

import errno
import os
import subprocess
import sys

import pytest

from data_setup import files
from tests.helpers import small_disk

FULL_DISK_END = "bytes free); free space there (or choose a folder on another disk) and run again"


def _fills_up_after(monkeypatch, calls: int):
    """os.write lets `calls` writes through, then writes 3 bytes and reports a full disk."""
    real, done = os.write, []

    def write(fd, data):
        if len(done) < calls:
            done.append(fd)
            return real(fd, data)
        real(fd, bytes(data[:3]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write)


def test_a_full_disk_keeps_the_old_file_and_names_folder_and_need(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    _fills_up_after(monkeypatch, 0)
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


def _planted(tmp_path, target):
    """A link at the temp name `target` is written under, to a file someone cares about."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    files.temp_name(target).symlink_to(victim)
    return victim


@pytest.mark.parametrize("writer", ["write_atomic", "a writer that takes a name"])
def test_a_link_planted_at_a_temp_name_redirects_nothing(tmp_path, writer):
    target = tmp_path / "predictions.csv"
    victim = _planted(tmp_path, target)
    if writer == "write_atomic":
        files.write_atomic(target, "file,label\n")
    else:  # Keras' model.save, matplotlib's savefig: they open the name they are given
        with files.atomic_path(target) as tmp:
            tmp.write_text("file,label\n")
    assert victim.read_text() == "keep me"
    assert target.read_text() == "file,label\n" and not target.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv", "victim.txt"]


def test_a_dangling_link_at_a_temp_name_creates_nothing_and_a_probe_link_is_not_written(
    tmp_path,
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = tmp_path / "out" / "split.csv"
    target.parent.mkdir()
    files.temp_name(target).symlink_to(elsewhere / "created")
    files.write_atomic(target, "file,split\n")
    assert list(elsewhere.iterdir()) == []
    cache, victim = tmp_path / "cache", tmp_path / "victim.txt"
    cache.mkdir()
    victim.write_text("keep me")
    (cache / f".write-probe.{os.getpid()}.tmp").symlink_to(victim)
    files.ensure_writable_dir(cache)
    assert victim.read_text() == "keep me" and list(cache.iterdir()) == []


def test_a_link_that_appears_at_the_temp_name_is_refused_in_one_sentence(tmp_path, monkeypatch):
    """Between atomic_path's clearing of the temp name and write_atomic's open (a race): the
    open (O_EXCL, O_NOFOLLOW) refuses it rather than write through it."""
    target = tmp_path / "runs.csv"
    victim = _planted(tmp_path, target)
    monkeypatch.setattr(files, "remove_path", lambda path: None)  # the link survives the clearing
    with pytest.raises(files.UnsafeFileError) as refused:
        files.write_atomic(target, "x")
    assert str(refused.value) == (
        f"{files.temp_name(target)}: the temporary file of runs.csv is a symbolic link, so the "
        "kit refuses to open it (it could point at another file and empty it); remove it and "
        "run again"
    )
    assert victim.read_text() == "keep me" and not target.exists()


def test_a_stale_temp_that_is_a_link_is_removed_not_followed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "model.keras").write_text("weights")
    stale = tmp_path / f".model.keras.{dead.stdout.strip()}.tmp.keras"
    stale.symlink_to(kept)
    assert files.remove_stale_temps(tmp_path) == [stale]
    assert not stale.is_symlink() and (kept / "model.keras").read_text() == "weights"


def test_s3f_results_on_a_full_disk_says_one_sentence_and_keeps_the_previous_results(
    tmp_path, monkeypatch, capsys
):
    from s3f_kit.reports import results as s3f_results
    from tests.test_sweep import _fake_run

    runs, results = tmp_path / "runs", tmp_path / "results"
    _fake_run(runs, "Spatial_BUSI", 42, 0.75)
    assert s3f_results.main([str(runs), str(results)]) == 0
    before = {p.relative_to(results): p.read_bytes() for p in results.rglob("*")
              if p.is_file()}  # fmt: skip
    _fake_run(runs, "S3F_Concat_BUSI", 42, 0.85)
    capsys.readouterr()
    _fills_up_after(monkeypatch, 2)  # summary.csv and runs.csv written, then the disk is full
    code = s3f_results.main([str(runs), str(results)])
    monkeypatch.undo()
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "Traceback" not in error
    assert error.startswith(
        f"s3f-results: {results}: the disk is full — the new results (README.md, the tables, "
        "the figures and metrics/; the previous ones are left as they were) could not be "
        "written ("
    )
    assert error.endswith(FULL_DISK_END + "\n")
    after = {p.relative_to(results): p.read_bytes() for p in results.rglob("*") if p.is_file()}
    assert after == before  # not a mix of the old set and half of the new one
    assert [p.name for p in results.iterdir() if p.name.startswith(".")] == []


def test_a_link_planted_at_the_decode_caches_temp_name_is_not_written_through(tmp_path):
    """The decode cache writes gigabytes through numpy's open_memmap, which follows links: in a
    shared cache folder a planted `.<entry>.<pid>.tmp.npy` link would be filled instead."""
    from data_setup import load_dataset, synth_dataset

    root = synth_dataset("BUSI", tmp_path / "data", count=4, size=40, seed=3)
    cache, victim = tmp_path / "cache", tmp_path / "victim.bin"
    victim.write_bytes(b"keep me")
    load_dataset("BUSI", root, img_size=(16, 16), cache_dir=cache)
    stems = [p.stem for p in cache.glob("*.npy")]
    assert stems  # the entries whose temp names are planted below
    for stem in stems:
        for kind in ("tmp", "compact.tmp"):
            (cache / f".{stem}.{os.getpid()}.{kind}.npy").symlink_to(victim)
    load_dataset("BUSI", root, img_size=(16, 16), cache_dir=cache, refresh=True)
    assert victim.read_bytes() == b"keep me"
    assert [p.name for p in cache.iterdir() if ".tmp" in p.name] == []


def test_a_sweep_whose_tables_meet_a_full_disk_keeps_its_runs_and_says_one_sentence(
    tmp_path, monkeypatch
):
    """The runs of a sweep are finished when its tables are written: a full disk there is one
    sentence that says the runs are kept and the command that writes the tables later."""
    from s3f_kit.reports import results as s3f_results
    from s3f_kit.sweep import jobs as s3f_jobs
    from s3f_kit.sweep import sweep as s3f_sweep
    from tests.test_sweep import fake_execute

    ran = []
    monkeypatch.setattr(s3f_jobs, "execute_job", fake_execute(ran))

    def full(output, results_dir):
        raise files.disk_full_error(results_dir, "the new results")

    monkeypatch.setattr(s3f_results, "build_results", full)
    out, results = tmp_path / "runs", tmp_path / "results"
    with pytest.raises(s3f_sweep.SweepError) as stopped:
        s3f_sweep.run_sweep(["Spatial_BUSI"], True, None, {"epochs": 1}, out, results_dir=results)
    assert ran == ["Spatial_BUSI/seed42"]
    message = str(stopped.value)
    assert "\n" not in message
    assert message.startswith(f"the runs are kept in {out}, but the tables were not written: ")
    assert message.endswith(f"then run: s3f-results {out} {results}")
