"""Download (or copy) a dataset archive and unpack it into place, all or nothing.

The archive goes to a temporary file beside the destination and is unpacked into a temporary
folder there; only a complete, cleanly extracted archive that holds the expected dataset layout
is moved into place. An interrupted or failed transfer, an archive over the size limits, a full
disk or an archive of the wrong dataset leaves nothing behind.

`download_url` is the kit's one downloader: dataset archives (URLs and Google Drive files), the
paper's release models and the baselines' ImageNet weights all come through it. Each download
has a size limit, a connect and a read timeout (a server that accepts the connection and never
answers) and an overall deadline (one that trickles bytes forever): both end in one sentence.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from data_setup.files import CacheError, check_free_space, open_regular, remove_stale_temps

GB = 1 << 30
MAX_DOWNLOAD_GB = 16  # the paper's largest archive (HAM10000) is a few GB
MAX_UNPACKED_GB = 64
# Images barely compress; an archive that unpacks to 100× its size is a zip bomb. Checked only
# above RATIO_FLOOR unpacked bytes, where it could matter.
MAX_RATIO = 100
RATIO_FLOOR = 64 << 20
CHUNK = 1 << 20
# Seconds to connect, and seconds without a byte before a download counts as stalled.
TIMEOUT_ENV, TIMEOUT_S = "S3F_DOWNLOAD_TIMEOUT", 30.0
# Seconds a whole download may take: a multi-GB dataset archive on a slow line fits; a server
# that trickles a byte now and then (never stalled long enough to time out) does not.
DEADLINE_ENV, DEADLINE_S = "S3F_DOWNLOAD_DEADLINE", 2 * 3600.0
PAGE_BYTES = 1 << 20  # a web page before the file (Google Drive's confirmation page)
MAX_PAGES = 3


class FetchError(RuntimeError):
    """A download or extraction failed; nothing was left at the destination."""


def _no_space(error: OSError, folder: Path, what: str, needed: str) -> FetchError | None:
    """One message for a full disk (None for other errors): the place, the file, the bytes."""
    if error.errno != errno.ENOSPC:
        return None
    return FetchError(
        f"disk full in {folder} while writing {what} ({needed}); free space there or choose "
        "another destination (nothing was kept)"
    )


def _check_room(folder: Path, needed: int, what: str, hint: str) -> None:
    try:
        check_free_space(folder, needed, what, label="folder", hint=hint)
    except CacheError as error:
        raise FetchError(str(error)) from None


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise FetchError(f"{name}={text!r}: expected a number of seconds above 0")
    return value


def download_limits() -> tuple[float, float]:
    """(timeout, deadline) in seconds: the connect and read timeout and the overall deadline of
    every download, from S3F_DOWNLOAD_TIMEOUT and S3F_DOWNLOAD_DEADLINE where set."""
    return _seconds(TIMEOUT_ENV, TIMEOUT_S), _seconds(DEADLINE_ENV, DEADLINE_S)


def download_url(
    url: str,
    target: Path,
    *,
    max_bytes: int,
    limit_note: str = "",
    hint: str = "",
    where: Path | None = None,
    next_url=None,
) -> None:
    """Stream `url` to `target`, never more than `max_bytes`, within download_limits(). Fails
    (and deletes `target`) when the transfer breaks, stalls or outlasts the deadline, the body
    is larger, the disk fills or the server cannot be reached; `limit_note` says where the limit
    comes from, `hint` what to do without a connection, `where` which folder to name for disk
    space (default: `target`'s). `next_url`: for a host that answers with a web page before the
    file (Google Drive), turns that page's text into the address to ask next."""
    import requests  # here, not at the top: `s3f-data --help` stays fast
    import urllib3

    target = Path(target)
    timeout, deadline = download_limits()
    host = urlsplit(url).netloc or url
    try:
        try:
            started = time.monotonic()  # the deadline counts from before connecting
            with requests.Session() as session:
                response = _open(session, url, timeout, deadline, started, next_url)
                with response:
                    where = where or target.parent
                    _save(response, url, target, max_bytes, limit_note, where, deadline, started)
        except requests.exceptions.ConnectTimeout:  # before the ConnectionError it also is
            raise FetchError(_unreachable(url, host, hint)) from None
        except (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError):
            raise FetchError(_stalled(url, host, timeout, hint)) from None
        except (
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.ProtocolError,
        ) as error:  # connection cut mid-body
            raise FetchError(f"{url}: transfer interrupted ({error})") from None
        except requests.ConnectionError as error:  # no network, DNS failure, refused
            # iter_content reports a stall mid-body as a ConnectionError around urllib3's
            # ReadTimeoutError
            cause = error.args[0] if error.args else None
            if isinstance(cause, urllib3.exceptions.ReadTimeoutError):
                raise FetchError(_stalled(url, host, timeout, hint)) from None
            raise FetchError(_unreachable(url, host, hint)) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
            raise FetchError(f"{url}: download failed ({error})") from None
    except BaseException:
        target.unlink(missing_ok=True)  # nothing partial stays behind
        raise


def _unreachable(url: str, host: str, hint: str) -> str:
    return f"{url}: cannot reach {host} (no internet connection?); connect and retry{hint}"


def _stalled(url: str, host: str, timeout: float, hint: str) -> str:
    return (
        f"{url}: {host} stopped answering (nothing for {timeout:g} s, {TIMEOUT_ENV}); "
        f"retry later{hint}"
    )


def _check_deadline(url: str, deadline: float, started: float, received: int) -> None:
    if time.monotonic() - started > deadline:
        raise FetchError(
            f"{url}: not complete after {deadline:g} s ({received:,} bytes received; "
            f"{DEADLINE_ENV} sets this deadline); stopped"
        )


def _chunks(response, url: str, deadline: float, started: float):
    """The body as it arrives, the deadline checked at each piece. urllib3's read1 returns what
    one read brought (at most one read timeout's wait), so a server that sends a byte now and
    then is stopped at the deadline; iter_content would wait for a whole CHUNK first."""
    read1 = getattr(response.raw, "read1", None)  # urllib3 ≥ 2.3
    pieces = (
        iter(lambda: read1(CHUNK, decode_content=True), b"")
        if read1
        else response.iter_content(chunk_size=CHUNK)
    )
    received = 0
    for piece in pieces:
        received += len(piece)
        _check_deadline(url, deadline, started, received)
        yield piece


def _open(session, url: str, timeout: float, deadline: float, started: float, next_url):
    """The response that carries the file: redirects followed, and with `next_url` the web
    pages before it (each at most PAGE_BYTES, at most MAX_PAGES of them)."""
    for _ in range(MAX_PAGES + 1):
        response = session.get(url, stream=True, timeout=timeout)
        _check_deadline(url, deadline, started, 0)
        try:
            response.raise_for_status()
        except BaseException:
            response.close()
            raise
        page = next_url and response.headers.get("Content-Type", "").startswith("text/html")
        if not page or "Content-Disposition" in response.headers:
            return response
        with response:
            text = bytearray()
            for piece in _chunks(response, url, deadline, started):
                text += piece
                if len(text) > PAGE_BYTES:
                    raise FetchError(f"{url}: a web page over {PAGE_BYTES:,} bytes, not a file")
        url = next_url(bytes(text).decode(response.encoding or "utf-8", "replace"))
    raise FetchError(f"{url}: still a web page after {MAX_PAGES} pages, not a file")


def _new_file(target: Path, what: str):
    """`target` opened for writing (binary) without following a link planted there
    (data_setup.files.open_regular)."""
    return os.fdopen(open_regular(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, what), "wb")


def _save(response, url, target: Path, max_bytes, limit_note, where: Path, deadline, started):
    from tqdm.auto import tqdm

    expected = int(response.headers.get("Content-Length") or 0)
    limit = f"{max_bytes:,} bytes{limit_note}"
    if expected > max_bytes:
        raise FetchError(f"{url}: the server announces {expected:,} bytes, more than {limit}")
    if expected:
        _check_room(where, expected, f"downloading {url}", "choose another destination")
    received = 0
    try:
        name = Path(urlsplit(url).path).name or url
        with (
            _new_file(target, "the download") as handle,
            tqdm(total=expected or None, unit="B", unit_scale=True, desc=name) as bar,
        ):
            for chunk in _chunks(response, url, deadline, started):
                received += len(chunk)
                if received > max_bytes:
                    raise FetchError(f"{url}: sent more than {limit}; stopped")
                handle.write(chunk)
                bar.update(len(chunk))
    except OSError as error:
        needed = f"{expected:,} bytes needed" if expected else f"{received:,} bytes so far"
        full = _no_space(error, where, f"the download of {url}", needed)
        if full:
            raise full from None
        raise
    if expected and received != expected:
        raise FetchError(f"{url}: transfer interrupted ({received} of {expected} bytes)")


GDRIVE_URL = "https://drive.google.com/uc?export=download&id={id}"


def download_gdrive(file_id: str, target: Path, max_bytes: int, *, limit_note="", where=None):
    """A publicly shared Google Drive file through download_url (its limits and timeouts): gdown
    reads Drive's confirmation page (large files) into the address of the file itself."""
    from gdown.download import get_url_from_gdrive_confirmation
    from gdown.exceptions import FileURLRetrievalError

    def next_url(page: str) -> str:
        try:
            return get_url_from_gdrive_confirmation(page)
        except FileURLRetrievalError as error:
            reason = " ".join(str(error).split())
            raise FetchError(
                f"Google Drive file {file_id}: download failed ({reason}; is it shared publicly?)"
            ) from None

    download_url(
        GDRIVE_URL.format(id=file_id),
        target,
        max_bytes=max_bytes,
        limit_note=limit_note,
        where=where,
        next_url=next_url,
    )


# --------------------------------------------------------------------------- unpacking


def _checked_members(archive: zipfile.ZipFile, source, archive_bytes: int, max_unpacked: int):
    """The archive's members, refused before extracting when they would unpack too large."""
    members = archive.infolist()
    total = sum(info.file_size for info in members)
    if total > max_unpacked:
        raise FetchError(
            f"{source}: unpacks to {total:,} bytes, more than the {max_unpacked:,} allowed "
            "(raise --max-unpacked-gb if the archive is genuine)"
        )
    if total > RATIO_FLOOR and total > MAX_RATIO * max(archive_bytes, 1):
        raise FetchError(
            f"{source}: unpacks to {total:,} bytes from {archive_bytes:,} "
            f"({total // max(archive_bytes, 1)}× its size; image archives barely compress): "
            "refused as a zip bomb"
        )
    return members, total


def _extract(archive: zipfile.ZipFile, members, total, folder: Path, source, max_unpacked, where):
    """Extract into `folder` counting the bytes actually written (a member may inflate past
    its declared size) and keeping every path inside `folder`."""
    written, root = 0, folder.resolve()
    for info in members:
        target = (folder / info.filename).resolve()
        if target != root and root not in target.parents:
            raise FetchError(f"{source}: member {info.filename!r} points outside the archive")
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with archive.open(info) as src, _new_file(target, "a member") as dst:
                while block := src.read(CHUNK):
                    written += len(block)
                    if written > max_unpacked:
                        raise FetchError(
                            f"{source}: unpacks to more than the {max_unpacked:,} bytes allowed"
                        )
                    dst.write(block)
        except OSError as error:
            what = f"{info.filename} of {source}"
            full = _no_space(error, where, what, f"{written:,} of {total:,} bytes unpacked")
            if full:
                raise full from None
            raise


def _unpack(archive_path: Path, folder: Path, source, max_unpacked: int, where: Path) -> None:
    try:
        with zipfile.ZipFile(archive_path) as handle:
            members, total = _checked_members(
                handle, source, archive_path.stat().st_size, max_unpacked
            )
            _check_room(where, total, f"unpacking {source}", "choose another --dest")
            bad = handle.testzip()
            if bad:
                raise FetchError(f"{archive_path}: corrupt member {bad}")
            _extract(handle, members, total, folder, source, max_unpacked, where)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise FetchError(f"{source}: cannot extract ({error})") from error


def _check_layout(dataset: str, folder: Path, source) -> None:
    """Refuse an archive that does not hold `dataset` before anything reaches --dest."""
    from data_setup.layouts import DatasetError, discover

    try:
        listing = discover(dataset, folder)
    except DatasetError as error:
        raise FetchError(f"{source}: not the {dataset} dataset: {error}") from None
    if not any(listing.splits.values()):
        raise FetchError(f"{source}: not the {dataset} dataset: it holds no images")


def _prepare_dest(dest: Path) -> None:
    """`dest` must be a new or empty folder: refused in one sentence otherwise (a file there or
    above it, a folder that holds files, one that cannot be created). Creates its parent."""
    wanted = "--dest must be a new or empty folder"
    for place in (dest, *dest.parents):
        if place.exists() and not place.is_dir():
            what = "it is a file" if place == dest else f"{place} is a file"
            raise FetchError(f"{dest}: {what}, not a folder; {wanted}")
    try:
        if dest.is_dir() and any(dest.iterdir()):
            raise FetchError(f"{dest}: already exists and is not empty; choose a new --dest")
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FetchError(f"{dest}: cannot be used ({error.strerror or error}); {wanted}") from None


def fetch(
    dest,
    *,
    zip_path=None,
    url=None,
    gdrive_id=None,
    dataset=None,
    max_download_gb=MAX_DOWNLOAD_GB,
    max_unpacked_gb=MAX_UNPACKED_GB,
) -> Path:
    """Get an archive from exactly one source and unpack it into `dest` (created; must not
    already hold files). With `dataset`, the archive must hold that dataset's layout. Returns
    `dest`; on any failure `dest` is left as it was."""
    sources = [s for s in (zip_path, url, gdrive_id) if s]
    if len(sources) != 1:
        raise ValueError("give exactly one of a zip path, a URL or a Google Drive id")
    source = sources[0]
    max_download, max_unpacked = int(max_download_gb * GB), int(max_unpacked_gb * GB)
    dest = Path(dest).expanduser().resolve()
    _prepare_dest(dest)
    remove_stale_temps(dest.parent)  # partial folders of fetches that were killed
    with tempfile.TemporaryDirectory(prefix=f".s3f-fetch-{os.getpid()}-", dir=dest.parent) as work:
        work = Path(work)
        archive = work / "download.zip"
        note = " (raise --max-download-gb if the archive is genuine)"
        if zip_path:
            if not Path(zip_path).is_file():
                raise FetchError(f"{zip_path}: no such file")
            archive = Path(zip_path)
        elif url:
            download_url(url, archive, max_bytes=max_download, limit_note=note, where=dest.parent)
        else:
            download_gdrive(gdrive_id, archive, max_download, limit_note=note, where=dest.parent)
        if not zipfile.is_zipfile(archive):
            raise FetchError(f"{source}: not a zip archive")
        unpacked = work / "unpacked"
        unpacked.mkdir()
        _unpack(archive, unpacked, source, max_unpacked, dest.parent)
        if dataset:
            _check_layout(dataset, unpacked, source)
        if dest.exists():
            dest.rmdir()
        shutil.move(str(unpacked), str(dest))  # same filesystem: a rename
    return dest
