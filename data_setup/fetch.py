"""Download (or copy) a dataset archive and unpack it into place, all or nothing.

The archive goes to a temporary file beside the destination and is unpacked into a temporary
folder there; only a complete, cleanly extracted archive that holds the expected dataset layout
is moved into place. An interrupted or failed transfer, an archive over the size limits, a full
disk or an archive of the wrong dataset leaves nothing behind.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from data_setup.files import CacheError, check_free_space, remove_stale_temps

GB = 1 << 30
MAX_DOWNLOAD_GB = 16  # the paper's largest archive (HAM10000) is a few GB
MAX_UNPACKED_GB = 64
# Images barely compress; an archive that unpacks to 100× its size is a zip bomb. Checked only
# above RATIO_FLOOR unpacked bytes, where it could matter.
MAX_RATIO = 100
RATIO_FLOOR = 64 << 20
CHUNK = 1 << 20


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


def download_url(
    url: str,
    target: Path,
    *,
    max_bytes: int,
    limit_note: str = "",
    hint: str = "",
    where: Path | None = None,
    timeout: float = 60.0,
) -> None:
    """Stream `url` to `target`, never more than `max_bytes`. Fails (and deletes `target`) when
    the transfer breaks, the body is larger, the disk fills or the server cannot be reached;
    `limit_note` says where the limit comes from, `hint` what to do without a connection,
    `where` which folder to name for disk space (default: `target`'s)."""
    import requests  # here, not at the top: `s3f-data --help` stays fast

    target = Path(target)
    try:
        try:
            _stream(url, target, max_bytes, limit_note, where or target.parent, timeout)
        except requests.exceptions.ChunkedEncodingError as error:  # connection cut mid-body
            raise FetchError(f"{url}: transfer interrupted ({error})") from None
        except requests.ConnectionError:  # no network, DNS failure, refused, connect timeout
            host = urlsplit(url).netloc or url
            raise FetchError(
                f"{url}: cannot reach {host} (no internet connection?); connect and retry{hint}"
            ) from None
        except requests.RequestException as error:
            raise FetchError(f"{url}: download failed ({error})") from None
    except BaseException:
        target.unlink(missing_ok=True)  # nothing partial stays behind
        raise


def _stream(url, target: Path, max_bytes: int, limit_note: str, where: Path, timeout) -> None:
    import requests
    from tqdm.auto import tqdm

    with requests.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
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
                open(target, "wb") as handle,
                tqdm(total=expected or None, unit="B", unit_scale=True, desc=name) as bar,
            ):
                for chunk in response.iter_content(chunk_size=CHUNK):
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


def download_gdrive(file_id: str, target: Path, max_bytes: int) -> None:
    import gdown

    result = gdown.download(id=file_id, output=str(target), quiet=False)
    if result is None or not target.is_file() or target.stat().st_size == 0:
        raise FetchError(f"Google Drive file {file_id}: download failed (is it shared publicly?)")
    if target.stat().st_size > max_bytes:  # gdown has no limit of its own: checked after
        raise FetchError(
            f"Google Drive file {file_id}: {target.stat().st_size:,} bytes, more than the "
            f"{max_bytes:,} allowed (raise --max-download-gb)"
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
            with archive.open(info) as src, open(target, "wb") as dst:
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
    if dest.exists() and any(dest.iterdir()):
        raise FetchError(f"{dest}: already exists and is not empty; choose a new --dest")
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(dest.parent)  # partial folders of fetches that were killed
    with tempfile.TemporaryDirectory(prefix=f".s3f-fetch-{os.getpid()}-", dir=dest.parent) as work:
        work = Path(work)
        archive = work / "download.zip"
        if zip_path:
            if not Path(zip_path).is_file():
                raise FetchError(f"{zip_path}: no such file")
            archive = Path(zip_path)
        elif url:
            note = " (raise --max-download-gb if the archive is genuine)"
            download_url(url, archive, max_bytes=max_download, limit_note=note, where=dest.parent)
        else:
            download_gdrive(gdrive_id, archive, max_download)
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
