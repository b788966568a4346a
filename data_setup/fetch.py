"""Download (or copy) a dataset archive and unpack it into place, all or nothing.

The archive goes to a temporary file beside the destination and is unpacked into a temporary
folder there; only a complete, cleanly extracted download is moved into place. An interrupted
or failed transfer leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import requests
from tqdm.auto import tqdm

from data_setup.files import remove_stale_temps


class FetchError(RuntimeError):
    """A download or extraction failed; nothing was left at the destination."""


def download_url(url: str, target: Path, timeout: float = 60.0) -> None:
    """Stream `url` to `target`; fails if fewer bytes arrive than the server announced."""
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            response.raise_for_status()
            expected = int(response.headers.get("Content-Length") or 0)
            received = 0
            with (
                open(target, "wb") as handle,
                tqdm(
                    total=expected or None, unit="B", unit_scale=True, desc=Path(url).name or url
                ) as bar,
            ):
                for chunk in response.iter_content(chunk_size=1 << 20):
                    handle.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except requests.exceptions.ChunkedEncodingError as error:  # connection cut mid-body
        raise FetchError(f"{url}: transfer interrupted ({error})") from error
    except requests.RequestException as error:
        raise FetchError(f"{url}: download failed ({error})") from error
    if expected and received != expected:
        raise FetchError(f"{url}: transfer interrupted ({received} of {expected} bytes)")


def download_gdrive(file_id: str, target: Path) -> None:
    import gdown

    result = gdown.download(id=file_id, output=str(target), quiet=False)
    if result is None or not target.is_file() or target.stat().st_size == 0:
        raise FetchError(f"Google Drive file {file_id}: download failed (is it shared publicly?)")


def fetch(dest, *, zip_path=None, url=None, gdrive_id=None) -> Path:
    """Get an archive from exactly one source and unpack it into `dest` (created; must not
    already hold files). Returns `dest`."""
    sources = [s for s in (zip_path, url, gdrive_id) if s]
    if len(sources) != 1:
        raise ValueError("give exactly one of a zip path, a URL or a Google Drive id")
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
            download_url(url, archive)
        else:
            download_gdrive(gdrive_id, archive)
        if not zipfile.is_zipfile(archive):
            raise FetchError(f"{zip_path or url or gdrive_id}: not a zip archive")
        unpacked = work / "unpacked"
        try:
            with zipfile.ZipFile(archive) as handle:
                bad = handle.testzip()
                if bad:
                    raise FetchError(f"{archive}: corrupt member {bad}")
                handle.extractall(unpacked)
        except (zipfile.BadZipFile, OSError) as error:
            raise FetchError(f"{zip_path or url or gdrive_id}: cannot extract ({error})") from error
        if dest.exists():
            dest.rmdir()
        shutil.move(str(unpacked), str(dest))  # same filesystem: a rename
    return dest
