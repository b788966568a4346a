"""What the decode cache's content checksum costs: seconds per GB of a memory-mapped uint8 `.npy`
the size of HAM10000's (2.1 GB at 225×300), for the checksums the standard library offers
(and xxhash where installed), read the way data_setup.cache verifies it (16 MiB blocks).

    python benchmarks/bench_cache_checksum.py [--gb 2.1] [--folder /tmp] [--repeat 2]

The file is written once (random bytes: a checksum's speed does not depend on them), read once
to warm the page cache, then timed `--repeat` times per checksum (the best is reported); the
last lines time data_setup.cache's own verification of it, from the page cache and with the
file's pages dropped from it first (read from disk, as on a fresh runtime).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_setup import cache as s3f_cache  # noqa: E402

BLOCK = 16 << 20


def _timed(path: Path, update, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        with open(path, "rb") as handle:
            state = 0
            for block in iter(lambda: handle.read(BLOCK), b""):
                state = update(block, state)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=2.1)
    parser.add_argument("--folder", default=tempfile.gettempdir())
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    size = int(args.gb * 1e9)
    rows = size // (225 * 300 * 3)
    folder = Path(tempfile.mkdtemp(dir=args.folder, prefix="s3f-checksum-"))
    path = folder / "cache.npy"
    try:
        array = np.lib.format.open_memmap(path, "w+", np.uint8, (rows, 225, 300, 3))
        rng = np.random.default_rng(0)
        for start in range(0, rows, 256):
            chunk = array[start : start + 256]
            chunk[...] = rng.integers(0, 256, chunk.shape, dtype=np.uint8)
        array.flush()
        del array
        gb = path.stat().st_size / 1e9
        _timed(path, lambda block, state: state, 1)  # warm the page cache

        def hashed(factory):
            def update(block, state):
                state = state or factory()
                state.update(block)
                return state

            return update

        candidates = {
            "read only": lambda block, state: state,
            "zlib.crc32": zlib.crc32,
            "zlib.adler32": lambda block, state: zlib.adler32(block, state or 1),
            "hashlib.blake2b": hashed(hashlib.blake2b),
            "hashlib.sha256": hashed(hashlib.sha256),
            "hashlib.md5": hashed(hashlib.md5),
        }
        try:
            import xxhash

            candidates["xxhash.xxh3_64"] = hashed(xxhash.xxh3_64)
        except ImportError:
            print("(xxhash not installed: not measured)")
        print(f"{gb:.2f} GB memmap ({rows:,} images of 225×300×3), page cache warm, best of "
              f"{args.repeat}:")  # fmt: skip
        for name, update in candidates.items():
            seconds = _timed(path, update, args.repeat)
            rate = f"{seconds / gb:5.2f} s/GB  {gb / seconds:5.2f} GB/s"
            print(f"  {name:16s} {seconds:6.2f} s  {rate}")
        for state in ("warm", "cold"):
            if state == "cold":  # this file's pages only, out of the page cache: read from disk
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
                    os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            start = time.perf_counter()
            s3f_cache.content_checksum(path)
            seconds = time.perf_counter() - start
            print(f"  data_setup.cache.content_checksum, page cache {state}: {seconds:.2f} s "
                  f"({seconds / gb:.2f} s/GB)")  # fmt: skip
    finally:
        path.unlink(missing_ok=True)
        folder.rmdir()


if __name__ == "__main__":
    main()
