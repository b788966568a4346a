"""One process per folder: a second sweep on a busy --output stops naming the first, a hand-run
notebook into a run folder that is training stops, a killed holder's lock is taken over."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from s3f_kit import locks as s3f_locks
from s3f_kit.sweep import jobs as s3f_jobs
from s3f_kit.sweep import sweep as s3f_sweep
from tests.helpers import processes_with_env, sigint_as_in_a_terminal
from tests.test_sweep import BUSI, REPO, fake_execute

HOLD = """\
import sys, time
from s3f_kit import locks as s3f_locks
s3f_locks.FolderLock(sys.argv[1], sys.argv[2]).acquire()
print("held", flush=True)
time.sleep(120)
"""


def _holder(folder, what="a test holder"):
    """A real second process that takes the lock on `folder` and keeps it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), what],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_held_folder_names_its_holder_and_a_killed_holders_lock_is_taken_over(tmp_path, capsys):
    holder = _holder(tmp_path, "a test holder")
    try:
        with pytest.raises(s3f_locks.FolderBusy) as busy:
            s3f_locks.FolderLock(tmp_path, "me", hint="try later").acquire()
        message = str(busy.value)
        assert message.startswith(
            f"{tmp_path} is in use: a test holder — pid {holder.pid} on {socket.gethostname()} "
            "since 20"
        )
        assert message.endswith(f"(-c {tmp_path} a test holder); try later")
    finally:
        holder.send_signal(signal.SIGKILL)  # killed: it never releases the lock itself
        holder.wait()
    lock = s3f_locks.FolderLock(tmp_path, "me").acquire()
    try:
        assert lock.took_over["pid"] == holder.pid
        assert (
            f"took over the lock of pid {holder.pid} on {socket.gethostname()}"
            in capsys.readouterr().err
        )
        again = s3f_locks.FolderLock(tmp_path, "me").acquire()  # the same process: re-entrant
        assert again is lock and lock.depth == 2
        again.release()
        record = json.loads((tmp_path / s3f_locks.LOCK_FILE).read_text())
        assert record["pid"] == os.getpid() and record["what"] == "me"
    finally:
        lock.release()
    assert (tmp_path / s3f_locks.LOCK_FILE).read_text() == ""  # released cleanly: no identity
    s3f_locks.FolderLock(tmp_path, "me").acquire().release()
    assert "took over" not in capsys.readouterr().err


def test_a_second_sweep_on_a_busy_output_stops_and_a_stale_lock_is_taken_over(
    tmp_path, monkeypatch, capsys
):
    ran = []
    monkeypatch.setattr(s3f_jobs, "execute_job", fake_execute(ran))
    tiny = {"epochs": 1, "demo_count": 6}
    holder = _holder(tmp_path, "a sweep on this output folder")
    try:
        code = s3f_sweep.main(
            ["--demo", "--only", "Spatial_BUSI", "--output", str(tmp_path), "--no-explain"]
        )
        assert code == 2 and ran == []
        error = capsys.readouterr().err.strip()
        assert error.startswith(
            f"s3f-sweep: {tmp_path} is in use: a sweep on this output folder — pid {holder.pid} "
            f"on {socket.gethostname()} since "
        )
        assert error.endswith(
            "a second sweep stops rather than wait: let that one finish, stop it, or choose "
            "another --output"
        )
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    s3f_sweep.run_sweep(BUSI[:1], True, None, tiny, tmp_path)
    assert ran == ["Spatial_BUSI/seed42"]
    assert f"took over the lock of pid {holder.pid}" in capsys.readouterr().err


def test_sweep_help_says_a_second_sweep_stops():
    text = " ".join(s3f_sweep.build_parser().format_help().split())
    assert "a second sweep on a busy output folder stops at once (exit status 2)" in text
    assert "a lock left by a killed sweep is taken over" in text


def test_a_sweep_never_clears_a_run_folder_that_is_training(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(s3f_jobs, "execute_job", fake_execute(ran))
    run_dir = tmp_path / "Spatial_BUSI" / "seed42"
    holder = _holder(run_dir, "training Spatial_BUSI seed 42 into this folder")
    try:
        with pytest.raises(s3f_sweep.SweepError) as refused:
            s3f_sweep.run_sweep(["Spatial_BUSI"], True, None, {"epochs": 1}, tmp_path)
        assert str(refused.value).startswith(
            f"{run_dir} is in use: training Spatial_BUSI seed 42 into this folder — pid "
            f"{holder.pid} on "
        )
        assert str(refused.value).endswith(
            "; wait for that notebook to finish or stop it, then run the sweep again"
        )
        assert ran == [] and (run_dir / s3f_locks.LOCK_FILE).is_file()
    finally:
        holder.kill()
        holder.wait()


def _plant(kind, lock, victim):
    """A `.s3f.lock` that is not the kit's own file: each would let the lock's open and
    truncate reach `victim` (or create a file through a dangling link)."""
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "dangling symlink":
        lock.symlink_to(victim.with_name("created-through-the-link"))
    elif kind == "hard link":
        os.link(victim, lock)
    elif kind == "fifo":
        os.mkfifo(lock)
    else:
        lock.mkdir()


PLANTED = ["symlink", "dangling symlink", "hard link", "fifo", "folder"]
PROBLEM = {"symlink": "a symbolic link", "dangling symlink": "a symbolic link",
           "hard link": "a hard link (2 names for one file)", "fifo": "not a regular file",
           "folder": "a folder"}  # fmt: skip


@pytest.mark.parametrize("kind", PLANTED)
def test_a_planted_lock_file_is_refused_and_what_it_points_to_is_kept(tmp_path, kind):
    folder, victim = tmp_path / "shared", tmp_path / "thesis.tex"
    folder.mkdir()
    victim.write_text("two years of work")
    lock = folder / s3f_locks.LOCK_FILE
    _plant(kind, lock, victim)
    expected = (
        f"{lock}: the folder's lock file is {PROBLEM[kind]}, so the kit refuses to open it (it "
        "could point at another file and empty it); remove it and run again"
    )
    with pytest.raises(s3f_locks.UnsafeLockFile) as refused:
        s3f_locks.FolderLock(folder, "a sweep").acquire()
    assert str(refused.value) == expected
    assert isinstance(refused.value, s3f_locks.FolderBusy)  # callers report it in one line
    with pytest.raises(s3f_locks.UnsafeLockFile) as refused:
        s3f_locks.ensure_free(folder, "wait")  # a FIFO: refused, not a hang on its open
    assert str(refused.value) == expected
    assert victim.read_text() == "two years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared", "thesis.tex"]
    assert folder not in s3f_locks._held


def test_a_sweep_on_an_output_with_a_planted_lock_link_stops_in_one_line(
    tmp_path, monkeypatch, capsys
):
    ran = []
    monkeypatch.setattr(s3f_jobs, "execute_job", fake_execute(ran))
    output, victim = tmp_path / "shared", tmp_path / "results.db"
    output.mkdir()
    victim.write_bytes(b"precious")
    (output / s3f_locks.LOCK_FILE).symlink_to(victim)
    code = s3f_sweep.main(
        ["--demo", "--only", "Spatial_BUSI", "--output", str(output), "--no-explain"]
    )
    error = capsys.readouterr().err.strip()
    assert code == 2 and ran == [] and victim.read_bytes() == b"precious"
    assert error == (
        f"s3f-sweep: {output / s3f_locks.LOCK_FILE}: the folder's lock file is a symbolic link, "
        "so the kit refuses to open it (it could point at another file and empty it); remove it "
        "and run again"
    )


@pytest.mark.e2e
def test_a_hand_run_notebook_into_a_folder_the_sweep_is_training_stops(tmp_path):
    """Real processes: a sweep trains a run; papermill by hand into the same folder stops with
    a message naming the sweep's notebook; a second sweep on the output stops too."""
    cache = tmp_path / "cache"  # marks every process of this test (kernels inherit it)
    env = {
        **os.environ,
        "S3F_CACHE_DIR": str(cache),
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": str(REPO),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    params = ["-p", "epochs", "100000", "-p", "f1_patience", "100000", "-p", "demo_count", "4"]
    params += ["-p", "img_size", "[16,16]", "-p", "verbose", "0"]
    runs = tmp_path / "runs"
    sweep = subprocess.Popen(
        [sys.executable, "-m", "s3f_kit.sweep", "--demo", "--only", "Spatial_BUSI"]
        + ["--output", str(runs), "--no-explain", "--no-tables", *params],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=sigint_as_in_a_terminal,
    )
    run_dir = runs / "Spatial_BUSI" / "seed42"
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / "checkpoint.keras").is_file() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert (run_dir / "checkpoint.keras").is_file(), "the sweep's notebook never trained"
        second = subprocess.run(
            [sys.executable, "-m", "s3f_kit.sweep", "--demo", "--only", "Spatial_BUSI"]
            + ["--output", str(runs), "--no-explain", *params],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2
        assert f"is in use: a sweep on this output folder — pid {sweep.pid} " in second.stderr
        hand = subprocess.run(
            [sys.executable, "-m", "papermill", "notebooks/Spatial_BUSI.ipynb"]
            + [str(tmp_path / "hand.ipynb"), "-p", "output_dir", str(runs), *params],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert hand.returncode != 0
        kernel = json.loads((run_dir / s3f_locks.LOCK_FILE).read_text())["pid"]
        assert "FolderBusy" in hand.stdout + hand.stderr
        assert (
            f"{run_dir} is in use: training Spatial_BUSI seed 42 into this folder — pid {kernel} "
            in hand.stdout + hand.stderr
        )
        assert not (run_dir / "metrics.json").exists()
    finally:
        sweep.send_signal(signal.SIGINT)
        try:
            sweep.communicate(timeout=60)
        finally:
            sweep.kill()
    time.sleep(1)
    assert processes_with_env("S3F_CACHE_DIR", str(cache)) == []
