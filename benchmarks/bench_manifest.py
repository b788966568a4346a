"""What the data manifest costs (data_setup.manifest): hashing every file of a dataset the first
time (no hash entry yet) and reading the cached hashes later, at a real size.

    python benchmarks/bench_manifest.py [--files 6000] [--kb 50] [--folder /tmp] [--workers 4]

Writes `--files` files of `--kb` KB (random bytes: SHA-256's speed does not depend on them) in a
two-class train/test layout, then times data_setup.manifest.data_manifest three ways: cold (no
hash entry; each file's pages dropped from the page cache first, so they are read from disk, as
on a fresh runtime), warm (no hash entry, files in the page cache) and cached (the hash entries
beside the decode cache). Google Drive reads are slower than any local disk: there the cold
figure is a floor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_setup.custom import custom_dataset  # noqa: E402
from data_setup.layouts import discover  # noqa: E402
from data_setup.manifest import data_manifest  # noqa: E402


def _drop_pages(root: Path) -> None:
    for path in root.rglob("*.jpg"):
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())  # dirty (just written) pages cannot be dropped
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=6000)
    parser.add_argument("--kb", type=int, default=50)
    parser.add_argument("--folder", default=tempfile.gettempdir())
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-manifest-", dir=args.folder))
    try:
        root, per = work / "data", args.files // 4
        for split in ("train", "test"):
            for name in ("a", "b"):
                folder = root / split / name
                folder.mkdir(parents=True)
                for i in range(per):
                    (folder / f"{i:05d}.jpg").write_bytes(os.urandom(args.kb << 10))
        info = custom_dataset(root)
        listing = discover(info, root)
        total = sum(p.stat().st_size for p in root.rglob("*.jpg"))
        print(f"{4 * per:,} files, {total / 1e6:,.0f} MB, {args.workers} threads")
        for what in ("cold (read from disk)", "warm (page cache)", "cached (hash entries)"):
            cache = work / ("cache" if what.startswith("cached") else f"cache-{time.time_ns()}")
            if what.startswith("cold"):
                _drop_pages(root)
            start = time.perf_counter()
            manifest = data_manifest(info, listing, cache, args.workers)
            seconds = time.perf_counter() - start
            if not what.startswith("cached"):
                shutil.copytree(cache, work / "cache", dirs_exist_ok=True)
            rate = f"{total / 1e6 / seconds:,.0f} MB/s" if seconds else ""
            print(f"{what:24s} {seconds:7.2f} s  {rate}  ({manifest['files']:,} files)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
