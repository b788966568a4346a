"""Atomic file writes: a temporary name in the same folder, then a rename.

A reader (or a resumed sweep) never sees a half-written file, whatever interrupts the writer.
Output folders may be shared, so a fixed name there (a temp name, a lock file) is never
followed when it is a symbolic link (open_regular), and every CSV the kit writes goes through
write_csv_atomic, which keeps a spreadsheet from running a class name as a formula.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import re
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path


class DiskFullError(OSError):
    """A write ran out of disk space; the message names the folder (and the space needed)."""


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC/EDQUOT from Python, or TensorFlow's file-system error for it (a
    ResourceExhaustedError that says "No space left on device")."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "No space left on device" in str(error)


def disk_full_error(folder, what: str, needed: int | None = None) -> DiskFullError:
    """One sentence for a full disk: the folder, what could not be written, free space, need."""
    folder = Path(folder)
    try:
        free = f"{shutil.disk_usage(folder).free:,} bytes free"
    except OSError:
        free = "free space unknown"
    need = f", about {needed:,} bytes needed" if needed else ""
    error = DiskFullError(
        f"{folder}: the disk is full — {what} could not be written ({free}{need}); "
        "free space there (or choose a folder on another disk) and run again"
    )
    error.errno = errno.ENOSPC
    return error


class UnsafeFileError(OSError):
    """A fixed name the kit opens in a folder others may write to is a symbolic link, a folder
    or some other non-regular file, or a hard link: opening it could empty another file."""


def open_regular(path, flags: int, what: str, mode: int = 0o644) -> int:
    """os.open for a fixed name in a shared folder (a lock file, a temp file): a symbolic link
    is never followed (O_NOFOLLOW), a FIFO never blocks the open (O_NONBLOCK), and anything but
    a regular file with a single link is refused with one UnsafeFileError naming it. Without
    this a planted `.s3f.lock -> ~/thesis.tex` makes the next lock holder truncate the thesis."""
    path = Path(path)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EEXIST) and path.is_symlink():
            problem = "a symbolic link"
        elif error.errno == errno.EISDIR:
            problem = "a folder"
        elif error.errno == errno.EEXIST:
            problem = "already there (something else created it)"
        else:
            raise
        raise unsafe_file_error(path, what, problem) from None
    info = os.fstat(fd)
    problem = (
        "a folder"
        if stat.S_ISDIR(info.st_mode)
        else "not a regular file"
        if not stat.S_ISREG(info.st_mode)
        else f"a hard link ({info.st_nlink} names for one file)"
        if info.st_nlink > 1
        else ""
    )
    if problem:
        os.close(fd)
        raise unsafe_file_error(path, what, problem)
    return fd


def unsafe_file_error(path, what: str, problem: str) -> UnsafeFileError:
    error = UnsafeFileError(
        f"{path}: {what} is {problem}, so the kit refuses to open it (it could point at another "
        "file and empty it); remove it and run again"
    )
    error.errno = errno.EPERM
    return error


def remove_path(path) -> None:
    """Delete `path` whatever it is, never following a symbolic link (the link goes, not what
    it points to): clear a fixed temp name before a writer that takes a name opens it."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def temp_name(path) -> Path:
    """The temporary name `path` is written under: hidden, in the same folder, with this
    process id (remove_stale_temps collects it once the writer is gone) and the same suffix
    (Keras insists on .keras)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")


@contextmanager
def atomic_path(path, what: str = "", needed: int | None = None):
    """For writers that take a file name (Keras' model.save, TensorFlow's exports):

        with atomic_path(folder / "model.keras", "the resume state") as tmp:
            model.save(tmp)

    The writer writes `tmp`; on success it replaces `path` in one rename, on any failure it is
    removed (a file or a folder). A full disk becomes one DiskFullError naming the folder and,
    where known, the space needed (by default the size of the file being replaced)."""
    path = Path(path)
    tmp = temp_name(path)
    if needed is None and path.is_file():
        needed = path.stat().st_size
    # Whatever is at the temp name already (a killed writer that had our pid, or a link planted
    # there to redirect the write) goes first: it is unlinked, never followed.
    remove_path(tmp)
    try:
        yield tmp
        if tmp.is_symlink():  # swapped in while a writer that takes a name was writing
            raise unsafe_file_error(tmp, f"the temporary file of {path.name}", "a symbolic link")
        os.replace(tmp, path)
    except Exception as error:
        if is_disk_full(error) and not isinstance(error, DiskFullError):
            raise disk_full_error(path.parent, what or path.name, needed) from error
        raise
    finally:
        remove_path(tmp)


@contextmanager
def staged_folder(folder, what: str):
    """For files that belong together (s3f-results' README, tables, figures and metrics/):

        with staged_folder(results_dir, "the results (README.md, the tables, …)") as work:
            write_atomic(work / "README.md", ...)

    They are written into a hidden folder inside `folder` and moved into place only once all
    are written, so a failure (a full disk) leaves the previous set whole, never half old and
    half new. A full disk becomes one DiskFullError naming `folder` and `what`."""
    folder = Path(folder)
    work = folder / f".staged.{os.getpid()}.tmp"  # remove_stale_temps collects a killed one's
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_path(work)
        work.mkdir()
        yield work
        staged = sorted(p for p in work.rglob("*") if not p.is_dir())
        for path in staged:  # the folders first: they may need space, a rename does not
            (folder / path.relative_to(work)).parent.mkdir(parents=True, exist_ok=True)
        for path in staged:
            os.replace(path, folder / path.relative_to(work))
    except Exception as error:
        if is_disk_full(error):
            raise disk_full_error(folder, what) from error
        raise
    finally:
        remove_path(work)


def sha256_of(path) -> str:
    """A file's content SHA-256 (hex), read in 16 MiB blocks (data manifests, release models)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(16 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path, data: bytes | str) -> Path:
    path = Path(path)
    data = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path, needed=len(data)) as tmp:
        # O_EXCL: a file (or link) that appeared at the temp name since atomic_path cleared it
        # is refused rather than written through
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        fd = open_regular(tmp, flags, f"the temporary file of {path.name}", 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    return path


def write_json_atomic(path, payload) -> Path:
    return write_atomic(path, json.dumps(payload, indent=1))


# --------------------------------------------------------------------------- CSV cells
# A class name comes from a labels CSV or a preprocessing.json someone else wrote; in a CSV
# cell, `=cmd|' /C calc'!A0` or `+HYPERLINK(...)` would be a live formula once the file is
# opened in a spreadsheet. The kit writes such a text cell with one leading single quote (the
# usual convention: spreadsheets show the text, and users know it), and its own readers take
# the quote off again (csv_text), so every name round-trips exactly. Numbers are not text:
# -9.72 stays a number, in a numeric column or written as text.

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _formula_like(text: str) -> bool:
    """Whether `text`, past any leading quotes, starts as a formula would. Counting the quotes
    makes quoting reversible: a name that itself starts with `'=` is written `''=`."""
    rest = text.lstrip("'")
    return rest[:1] in FORMULA_STARTS and not _NUMBER.fullmatch(rest)


def csv_cell(value):
    """`value` as the kit writes it into a CSV cell (non-text values unchanged)."""
    return "'" + value if isinstance(value, str) and _formula_like(value) else value


def csv_text(value):
    """The original text of a cell the kit wrote with csv_cell (the inverse; anything else
    unchanged)."""
    if isinstance(value, str) and value.startswith("'") and _formula_like(value):
        return value[1:]
    return value


def _text_columns(frame, convert):
    """A copy of a pandas DataFrame with `convert` applied to its text: every object, string or
    category column, the header and a text index (numeric columns keep their dtype)."""
    frame = frame.copy()
    for index in range(frame.shape[1]):
        column = frame.iloc[:, index]
        if column.dtype.kind == "O":  # object, pandas' str and category dtypes alike
            frame.isetitem(index, column.map(convert))
    frame.columns = [convert(name) for name in frame.columns]
    if frame.index.dtype.kind == "O":
        frame.index = frame.index.map(convert)
    return frame


def _has_cr(cells) -> bool:
    return any(isinstance(cell, str) and "\r" in cell for cell in cells)


def write_csv_atomic(path, table, **to_csv) -> Path:
    """Write a CSV as every CSV of the kit is written: formula-like text neutralised (csv_cell),
    atomically. `table` is a pandas DataFrame (written by DataFrame.to_csv(**to_csv)) or an
    iterable of rows, the header first (written by the csv module).

    Python's csv writer (pandas' too) leaves a CR inside a cell unquoted when lines end in LF:
    a reader, or a spreadsheet, would start a new row there, and `a\r=cmd` would put a live
    `=cmd` at the start of one. A table with a CR in any text is written with every cell
    quoted instead."""
    if hasattr(table, "to_csv"):
        frame = _text_columns(table, csv_cell)
        text_cells = [frame.columns, frame.index]
        text_cells += [frame.iloc[:, i] for i in range(frame.shape[1])]
        if any(_has_cr(cells) for cells in text_cells if cells.dtype.kind == "O"):
            to_csv.setdefault("quoting", csv.QUOTE_ALL)
        text = frame.to_csv(**to_csv)
    else:
        rows = [[csv_cell(cell) for cell in row] for row in table]
        buffer = io.StringIO()
        quoting = csv.QUOTE_ALL if any(_has_cr(row) for row in rows) else csv.QUOTE_MINIMAL
        csv.writer(buffer, lineterminator="\n", quoting=quoting).writerows(rows)
        text = buffer.getvalue()
    return write_atomic(path, text)


def restore_csv_frame(frame):
    """A DataFrame read back from a CSV of the kit (pandas.read_csv) with its original text."""
    return _text_columns(frame, csv_text)


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
        remove_path(probe)  # a link planted at the probe's name is not written through
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
        remove_path(path)
        removed.append(path)
    return removed
