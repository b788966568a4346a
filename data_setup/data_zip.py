"""A run's `data_zip`: a dataset archive (on Google Drive, a local path or a URL) unpacked once to
local disk and reused by later runs of the same archive — the paper's Colab workflow, where
reading images straight from a mounted Drive is slow. The run parameter is declared in
s3f_kit.config; s3f_kit.run.training calls `unpack_data_zip`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import requests

from data_setup.datasets import DATASETS
from data_setup.fetch import FetchError, download_limits, fetch
from data_setup.loading import default_cache_dir

SAMPLE_BYTES = 4 << 20


def archive_key(source: str) -> str:
    """What identifies an archive's content, cheaply: for a file its size, modification time
    and a SHA-256 of its first, middle and last 4 MiB (reading all of a multi-GB archive on
    Drive at every run would take minutes); for a URL the address and the server's ETag,
    Last-Modified and Content-Length. Never the name alone."""
    digest = hashlib.sha256()
    if source.startswith(("http://", "https://")):
        digest.update(source.encode())
        try:  # the downloads' timeout: a host that never answers is given up as they give up
            headers = requests.head(
                source, allow_redirects=True, timeout=download_limits()[0]
            ).headers
        except requests.RequestException:
            headers = {}  # unreachable now: the download reports it
        for field in ("ETag", "Last-Modified", "Content-Length"):
            digest.update(f"|{headers.get(field, '')}".encode())
        return digest.hexdigest()[:16]
    path = Path(source).expanduser()
    stat = path.stat()
    digest.update(f"{stat.st_size}|{stat.st_mtime_ns}".encode())
    middle, last = stat.st_size // 2 - SAMPLE_BYTES // 2, stat.st_size - SAMPLE_BYTES
    with open(path, "rb") as handle:
        for offset in sorted({0, max(middle, 0), max(last, 0)}):
            handle.seek(offset)
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()[:16]


def unpack_data_zip(data_zip: str, dataset: str, on_drive: bool = False) -> Path:
    """A dataset archive (a local path, e.g. on Google Drive, or an http(s) URL) unpacked once
    to local disk — the paper's Colab workflow — and reused by later runs of the same archive
    (keyed by its content, see archive_key: a different archive of the same name is unpacked
    afresh)."""
    source = str(data_zip)
    is_url = source.startswith(("http://", "https://"))
    if not is_url and not Path(source).expanduser().is_file():
        raise FetchError(f"data_zip {source}: no such file")
    stem = (Path(source.split("?")[0]).name or "archive").removesuffix(".zip")
    folder = default_cache_dir() / "unpacked" / dataset
    dest = folder / f"{stem}-{archive_key(source)}"
    if dest.is_dir() and any(dest.iterdir()):
        print(f"data_zip: using {dest} (unpacked earlier from this same archive)")
        return dest
    print(f"data_zip: unpacking {source} → {dest}")
    others = sorted(p for p in folder.glob(f"{stem}-*") if p.is_dir()) if folder.is_dir() else []
    if others:
        more = " …" if len(others) > 1 else ""
        print(f"  (earlier unpacks of other archives named {stem}.zip stay: {others[0]}{more})")
    layout = dataset if dataset in DATASETS else None  # refuse the wrong dataset's archive
    if is_url:
        return fetch(dest, url=source, dataset=layout)
    return fetch(dest, zip_path=str(Path(source).expanduser()), dataset=layout)
