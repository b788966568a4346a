"""Atomic file writes: a temporary name in the same folder, then a rename.

A reader (or a resumed sweep) never sees a half-written file, whatever interrupts the writer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path


def write_atomic(path, data: bytes | str) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(path, payload) -> Path:
    return write_atomic(path, json.dumps(payload, indent=1))


# --------------------------------------------------------------------------- cache folders


class CacheError(OSError):
    """The kit's cache folder cannot be used; the message names it and S3F_CACHE_DIR."""


MOVE_HINT = "set S3F_CACHE_DIR to a writable folder with enough space"


def ensure_writable_dir(folder) -> Path:
    """Create `folder` if needed and prove it writable, or raise one clear CacheError."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CacheError(f"cache folder {folder} is a file, not a folder; {MOVE_HINT}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe.{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise CacheError(
            f"cache folder {folder} is not writable ({error.strerror or error}); {MOVE_HINT}"
        ) from error
    return folder


def check_free_space(folder, needed: int, what: str, *, label="cache folder", hint=MOVE_HINT):
    """Refuse before writing `needed` bytes into `folder` when the disk cannot hold them: a
    memory-mapped file on a full disk kills the process with SIGBUS and no message."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise CacheError(
            f"{label} {folder}: {what} needs {needed:,} bytes but the disk has {free:,} "
            f"free; free space there or {hint}"
        )


_PID_IN_NAME = re.compile(r"\.(\d+)\.(?:compact\.)?tmp|^\.s3f-fetch-(\d+)-|\.(\d+)\.part$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(folder) -> list[Path]:
    """Delete the kit's temp files and folders in `folder` whose writer process is gone
    (killed mid-write: a decode cache can leave gigabytes). A live writer's are kept."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        if not path.name.startswith("."):
            continue
        match = _PID_IN_NAME.search(path.name)
        if not match:
            continue
        pid = int(next(g for g in match.groups() if g))
        if pid == os.getpid() or _alive(pid):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
