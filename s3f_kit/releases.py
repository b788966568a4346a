"""The paper's released models (release v1.0.0-sn1 of the original repository): the registry of
the twelve files with their sizes, checksums and shapes, and `pretrained`, which downloads one
(bounded, verified: size, SHA-256, the model-file check of s3f_modelfile) and loads it through
s3f_common.load_model. Separate from the model library, which never touches the network.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from s3f_common import SpectralFilter, fusion_layers, fusion_of, load_model, num_classes_of
from s3f_kit import modelfile as s3f_modelfile

RELEASE_BASE_URL = "https://github.com/Saiful185/S3F-Net/releases/download/v1.0.0-sn1"
RELEASE_OVERHEAD_BYTES = 8 << 20  # config, metadata and HDF5 bookkeeping: ~1 MB for our models


@dataclass(frozen=True)
class Release:
    """One of the paper's released `.keras` models (release v1.0.0-sn1)."""

    filename: str
    architecture: str
    fusion: str
    spectranet: int
    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    params: int  # what the file's model must count: the check that it is the registered one

    def url(self, base_url: str | None = None) -> str:
        return f"{(base_url or RELEASE_BASE_URL).rstrip('/')}/{self.filename}"

    def size_range(self) -> tuple[int, int]:
        """Bytes the file can take, from the parameter count (no size is published): float32
        weights, 4 bytes each, at least (3 leaves room for a re-compressed copy); with an Adam
        state (two more copies) and the archive's overhead at most. Downloads stop there."""
        return 3 * self.params, 12 * self.params + RELEASE_OVERHEAD_BYTES


RELEASES = {
    "bilinear_brisc2025": Release(
        "Bilinear_S3F-Net_SN1_BRISC2025.keras",
        "s3f",
        "bilinear",
        1,
        "BRISC2025",
        (256, 256, 1),
        4,
        3_443_592,
    ),
    "concat_chestxray": Release(
        "Concatenation_S3F-Net_SN1_Chest.XRAY.keras",
        "s3f",
        "concat",
        1,
        "ChestXRay",
        (384, 512, 1),
        2,
        7_638_409,
    ),
}


def pretrained_cache_dir() -> Path:
    base = os.environ.get("S3F_CACHE_DIR", Path.home() / ".cache" / "s3f-kit")
    return Path(base) / "pretrained"


def verify_release_model(model, release: Release, source) -> None:
    """Raise ValueError unless `model` is the architecture `release` registers."""
    problems = []
    shape = tuple(model.inputs[0].shape[1:])
    if shape != release.input_shape:
        problems.append(f"input {shape} ≠ {release.input_shape}")
    if num_classes_of(model) != release.num_classes:
        problems.append(f"{num_classes_of(model)} classes ≠ {release.num_classes}")
    if model.count_params() != release.params:
        problems.append(f"{model.count_params():,} parameters ≠ {release.params:,}")
    kinds = {type(layer) for layer in model.layers}
    if not any(issubclass(kind, SpectralFilter) for kind in kinds):
        problems.append("no SpectralFilter layer")
    if [fusion_of(layer) for layer in fusion_layers(model)][-1:] != [release.fusion]:
        problems.append(f"fusion is not {release.fusion}")
    if problems:
        raise ValueError(f"{source}: not the registered release model ({'; '.join(problems)})")


def _check_release_file(path: Path, release: Release, source, recorded, force=False) -> str:
    """Everything verifiable before Keras reads the file: its size, its SHA-256 against the
    record, and its config (s3f_modelfile). Returns the SHA-256. `source` is `path` itself for
    the cached file, the URL for a download."""
    low, high = release.size_range()
    size = path.stat().st_size
    if not low <= size <= high:
        raise ValueError(
            f"{source}: {size:,} bytes, but a model of {release.params:,} parameters takes "
            f"{low:,}–{high:,}: not the release file (truncated or replaced?)"
        )
    from data_setup.files import sha256_of

    digest = sha256_of(path)
    if recorded and digest != recorded and not force and source == path:
        raise ValueError(
            f"{path}: changed since it was downloaded (SHA-256 differs from the record); "
            "delete it or call with force=True"
        )
    if recorded and digest != recorded and not force:
        raise ValueError(
            f"{source}: differs from the file first downloaded (SHA-256 {digest[:12]}… ≠ "
            f"recorded {recorded[:12]}…); refusing it (force=True accepts it)"
        )
    try:
        s3f_modelfile.check_model_file(path)
    except s3f_modelfile.UnsafeModelFile as error:
        raise s3f_modelfile.UnsafeModelFile(source, error.reason) from None
    return digest


def pretrained(name: str, *, cache_dir=None, base_url=None, force=False, compile=True):
    """Download (once) and load one of the paper's released models, verified.

    No checksum is published. Before Keras reads the file it must have a plausible size for the
    registered parameter count, pass the model-file check (s3f_modelfile: nothing in it can run
    code) and, after the first download, have the SHA-256 recorded then; a later download that
    differs is refused unless force=True. After loading, it must match the registered
    architecture and parameter count. Nothing unverified stays in the cache. A download that
    cannot start, stalls or outlasts its deadline (data_setup.fetch.download_limits) raises one
    FetchError whose one-line message names the URL and where to put a copy of the file.
    """
    if name not in RELEASES:
        raise ValueError(f"unknown release {name!r}; expected one of {', '.join(RELEASES)}")
    release = RELEASES[name]
    from data_setup.files import ensure_writable_dir, remove_stale_temps, write_atomic

    folder = ensure_writable_dir(Path(cache_dir) if cache_dir else pretrained_cache_dir())
    remove_stale_temps(folder)
    target = folder / release.filename
    # One record file per release, written atomically: concurrent downloads of different
    # releases never overwrite each other's record (one shared JSON lost records).
    record_path = folder / f"{release.filename}.sha256"
    legacy = folder / "sha256.json"
    if record_path.is_file():
        recorded = record_path.read_text().strip() or None
    elif legacy.is_file():  # records of kit versions before one-file-per-release
        recorded = json.loads(legacy.read_text()).get(release.filename)
    else:
        recorded = None
    if target.is_file() and not force:
        _check_release_file(target, release, target, recorded)
        model = load_model(target, compile=compile)
        verify_release_model(model, release, target)
        return model

    from data_setup.fetch import FetchError, download_url

    url = release.url(base_url)
    tmp = folder / f".{release.filename}.{os.getpid()}.part"
    try:
        try:
            download_url(
                url,
                tmp,
                max_bytes=release.size_range()[1],
                limit_note=f" (the most a file of {release.params:,} parameters takes)",
                hint=f", or download it elsewhere and save it as {target}",
            )
        except FetchError as error:
            # Offline, stalled or past the deadline: one line whose traceback ends here (the
            # downloader's frames tell a user nothing); the notebooks, s3f-predict and
            # s3f-export print the line alone.
            raise error.with_traceback(None) from None
        digest = _check_release_file(tmp, release, url, recorded, force)
        verified = tmp.with_suffix(".keras")  # Keras insists on the .keras suffix
        os.replace(tmp, verified)
        tmp = verified
        try:
            model = load_model(tmp, compile=compile)
        except (ValueError, OSError) as error:
            raise ValueError(f"{url}: downloaded file is not a loadable model ({error})") from error
        verify_release_model(model, release, url)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    if not recorded or force:
        write_atomic(record_path, digest + "\n")
    return model
