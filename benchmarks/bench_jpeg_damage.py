"""The cost of detecting decoder warnings (a JPEG damaged mid-scan), in one run (not a test).

Per image, on a real photo (matplotlib's sample grace_hopper.jpg) re-encoded by OpenCV at
512×512 and at 1500×1800, for a gray (256×256) and an RGB (225×300) target:
  today – read the bytes, decode with OpenCV and resize (loading.decode_bytes), the structural
          end-marker check;
  kit   – the same plus libjpeg's warnings (loading.damage_of → jpeg_decoder_warning).
Prints milliseconds per image (median of alternating rounds) and the ratio kit / today.

    python benchmarks/bench_jpeg_damage.py [--rounds 7] [--repeat 20]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import matplotlib.cbook

from data_setup import loading


def photo_jpeg(folder: Path, width: int, height: int) -> Path:
    source = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    resized = cv2.resize(source, (width, height), interpolation=cv2.INTER_CUBIC)
    path = folder / f"photo_{width}x{height}.jpg"
    cv2.imwrite(str(path), resized, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def per_image_ms(works, repeat: int, rounds: int) -> list[float]:
    """Median milliseconds per call of each work; rounds alternate between them, so a busy
    machine slows both alike."""
    times = [[] for _ in works]
    for work in works:
        work()  # warm up
    for _ in range(rounds):
        for work, spent in zip(works, times, strict=True):
            start = time.perf_counter()
            for _ in range(repeat):
                work()
            spent.append((time.perf_counter() - start) / repeat * 1e3)
    return [statistics.median(spent) for spent in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for width, height in ((512, 512), (1500, 1800)):
            path = photo_jpeg(Path(folder), width, height)
            for channels, size_hw in ((1, (256, 256)), (3, (225, 300))):

                def today(path=path, channels=channels, size_hw=size_hw):
                    data = loading.read_bytes(path)
                    loading.decode_bytes(data, size_hw, channels, path)
                    loading.jpeg_end(data.tobytes())

                def kit(path=path, channels=channels, size_hw=size_hw):
                    data = loading.read_bytes(path)
                    loading.decode_bytes(data, size_hw, channels, path)
                    assert loading.damage_of(data) is None

                base, new = per_image_ms((today, kit), args.repeat, args.rounds)
                print(
                    f"{width}×{height} JPEG → {size_hw[0]}×{size_hw[1]}×{channels}: "
                    f"today {base:6.2f} ms, with decoder warnings {new:6.2f} ms  "
                    f"ratio {new / base:.2f}×"
                )


if __name__ == "__main__":
    main()
