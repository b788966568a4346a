"""One process at a time per folder: a sweep's --output folder, a run folder while it trains.

    with FolderLock(output, "a sweep is running on this folder"):   # FolderBusy if taken
        ...

The lock is `fcntl.flock` on a hidden file `.s3f.lock` in the folder: the operating system
releases it when its holder ends, however it ends, so a killed sweep never blocks the next one;
the file keeps the holder's identity (pid, host, command, since when, what it does) for the
message a second process gets, and the next holder says it took the folder over. The same
process may take a lock it already holds (a kept notebook kernel training a run again).
Where the file system cannot lock (some network mounts) the work goes on unlocked, with a note.
The folder may be shared: a `.s3f.lock` that is a symbolic link, a hard link or not a regular
file is never opened (it could point at any file, which the holder's write would empty); the
lock is refused with UnsafeLockFile, one sentence naming it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from data_setup.files import UnsafeFileError, open_regular

LOCK_FILE = ".s3f.lock"
_held: dict[Path, FolderLock] = {}  # this process's locks, by folder


class FolderBusy(RuntimeError):
    """Another live process holds the folder; the message names it and what to do."""


class UnsafeLockFile(FolderBusy):
    """The folder's lock file is a link or not a regular file: the folder cannot be locked
    safely, so the work does not start (a FolderBusy: every caller reports it in one line)."""


def _open_lock(path: Path, flags: int) -> int:
    try:
        return open_regular(path, flags, "the folder's lock file")
    except UnsafeFileError as error:
        raise UnsafeLockFile(str(error)) from None


def describe(holder: dict) -> str:
    return (
        f"{holder.get('what') or 'another process'} — pid {holder.get('pid')} on "
        f"{holder.get('host')} since {holder.get('since')} ({holder.get('command')})"
    )


def _read(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 65536).decode("utf-8", "replace")
        holder = json.loads(text) if text.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


class FolderLock:
    """An exclusive lock on `folder` (created if needed); `what` says what the holder does."""

    def __init__(self, folder, what: str, hint: str = "wait for it to finish or stop it"):
        self.folder = Path(folder).expanduser().resolve()
        self.what, self.hint = what, hint
        self.fd: int | None = None
        self.depth = 0
        self.took_over: dict = {}  # the identity a killed holder left, if any

    def acquire(self) -> FolderLock:
        existing = _held.get(self.folder)
        if existing is not None:  # this process holds it already: take it again
            existing.depth += 1
            return existing
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = _open_lock(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise FolderBusy(f"{self.folder} is in use: {describe(holder)}; {self.hint}") from None
        except OSError as error:
            os.close(fd)
            if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            print(f"note: {self.folder}: this file system cannot lock; not locked", file=sys.stderr)
            return self
        self.took_over = _read(fd)  # written by a holder that never released: it was killed
        if self.took_over:
            print(
                f"note: {self.folder}: took over the lock of pid {self.took_over.get('pid')} "
                f"on {self.took_over.get('host')} (since {self.took_over.get('since')}), "
                "which is no longer running",
                file=sys.stderr,
            )
        identity = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(sys.argv)[:500],
            "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "what": self.what,
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(identity).encode())
        self.fd, self.depth = fd, 1
        _held[self.folder] = self
        return self

    def release(self) -> None:
        """Give the lock up (the outermost release of this process does)."""
        self.depth -= 1
        if self.depth > 0 or self.fd is None:
            return
        fd, self.fd = self.fd, None
        _held.pop(self.folder, None)
        try:
            os.ftruncate(fd, 0)  # a clean release leaves no identity to take over
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *_) -> None:
        lock = _held.get(self.folder, self)
        lock.release()


def ensure_free(folder, hint: str) -> None:
    """Raise FolderBusy when another process holds `folder` (e.g. before clearing it)."""
    folder = Path(folder).expanduser().resolve()
    if folder in _held or not os.path.lexists(folder / LOCK_FILE):
        return
    fd = _open_lock(folder / LOCK_FILE, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise FolderBusy(f"{folder} is in use: {describe(_read(fd))}; {hint}") from None
    except OSError:
        return
    finally:
        os.close(fd)


def release_all() -> None:
    """Give up every lock of this process (a kept kernel before its next notebook)."""
    for lock in list(_held.values()):
        lock.depth = 1
        lock.release()
