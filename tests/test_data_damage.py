"""Damage that OpenCV decodes silently (issue 17.8): a JPEG damaged mid-scan is listed as
damaged (libjpeg's warning, seen through simplejpeg), its pixels stay cv2.imread's; bytes after
the end marker (motion photos) are not damage. Tested on a real photo (matplotlib's sample)."""

from concurrent.futures import ThreadPoolExecutor

import cv2
import matplotlib.cbook
import numpy as np
import pytest

import data_setup.loading as loading
from data_setup import load_dataset
from data_setup.__main__ import main as cli

SIZE = (24, 32)
WARNING = "JPEG decoder warning: Corrupt JPEG data: "


@pytest.fixture(scope="module")
def photo():
    """A real photo (BGR), 512×512 as BRISC2025's MRIs are."""
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return cv2.resize(cv2.imread(str(path)), (512, 512), interpolation=cv2.INTER_AREA)


def _jpeg(image, *params) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, list(params))
    assert ok
    return encoded.tobytes()


def _zeroed_mid_scan(raw: bytes, count: int = 3000) -> bytes:
    damaged = bytearray(raw)
    middle = len(raw) // 2
    damaged[middle : middle + count] = bytes(count)
    assert damaged.endswith(b"\xff\xd9")  # end marker intact
    return bytes(damaged)


def _damage(raw: bytes):
    return loading.damage_of(np.frombuffer(raw, np.uint8))


def _glioma_files(root):
    return sorted((root / "classification_task/train/glioma").iterdir())


def test_a_jpeg_damaged_mid_scan_is_listed_and_dropped_by_strict(photo, copy_of, tmp_path, capsys):
    root = copy_of("BRISC2025")
    path = _glioma_files(root)[0]
    path.write_bytes(_zeroed_mid_scan(_jpeg(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))))
    paper_pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert paper_pixels is not None  # OpenCV decodes it: only stderr said anything

    with pytest.warns(UserWarning, match="decode but look damaged"):
        data = load_dataset("BRISC2025", root, img_size=SIZE, cache_dir=tmp_path / "cache")
    file = str(path.relative_to(data.root))
    [(damaged, why)] = data.damaged
    assert damaged == file and why.startswith(WARNING)
    row = data.splits["train"].files.index(file)  # used, with the paper's pixels
    expected = cv2.resize(paper_pixels, SIZE[::-1], interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(data.splits["train"].source.images[row, ..., 0], expected)
    with pytest.warns(UserWarning, match=r"\(skipped: skip_damaged=True\)"):
        strict = load_dataset(
            "BRISC2025", root, img_size=SIZE, cache_dir=tmp_path / "cache", skip_damaged=True
        )
    assert file not in strict.splits["train"].files and len(strict.splits["train"]) == 23

    assert cli(["check", "BRISC2025", str(root)]) == 0
    out = capsys.readouterr().out
    assert "train     24  glioma=6" in out
    assert f"  {path}: {why} (used)" in out
    assert cli(["check", "BRISC2025", str(root), "--strict"]) == 0
    out = capsys.readouterr().out
    assert "train     23  glioma=5" in out
    assert f"  {path}: {why} (skipped: --strict)" in out


@pytest.mark.parametrize(
    "params",
    [
        (),
        (cv2.IMWRITE_JPEG_QUALITY, 30),
        (cv2.IMWRITE_JPEG_QUALITY, 100),
        (cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        (cv2.IMWRITE_JPEG_RST_INTERVAL, 4),
        (cv2.IMWRITE_JPEG_OPTIMIZE, 1),
        (cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444),
    ],
)
def test_intact_photos_are_not_damage_and_damaged_ones_are(photo, params):
    for image in (photo, cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)):
        raw = _jpeg(image, *params)
        assert _damage(raw) is None
        assert _damage(_zeroed_mid_scan(raw)).startswith("JPEG decoder warning: ")


def test_a_motion_photo_is_not_cut_off_even_with_strict(photo, copy_of, tmp_path, capsys):
    root = copy_of("BRISC2025")
    path = _glioma_files(root)[0]
    still = _jpeg(photo)
    video = b"\x00\x00\x00\x18ftypmp42" + _jpeg(photo[::2, ::2])[:20000]  # a second scan, cut
    path.write_bytes(still + video)
    assert _damage(still + video) is None
    assert cli(["check", "BRISC2025", str(root), "--strict"]) == 0
    out = capsys.readouterr().out
    assert "train     24  glioma=6" in out and "warning" not in out
    data = load_dataset("BRISC2025", root, img_size=SIZE, cache_dir=tmp_path / "cache")
    assert not data.damaged and not data.skipped


def test_an_exif_thumbnail_end_marker_does_not_hide_a_cut_off_image(photo):
    raw = _jpeg(photo)
    thumbnail = _jpeg(photo[::16, ::16])  # holds its own FFD9
    payload = b"Exif\x00\x00" + thumbnail
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    with_thumbnail = raw[:2] + app1 + raw[2:]
    assert loading.jpeg_end(with_thumbnail) == len(with_thumbnail)
    assert _damage(with_thumbnail) is None
    cut = with_thumbnail[: len(with_thumbnail) * 2 // 3]
    assert _damage(cut) == "JPEG cut off (no end-of-image marker after its last scan)"


def test_damage_is_judged_per_file_by_parallel_workers(photo, copy_of, tmp_path):
    """Decoder warnings come from each call's own decoder: threads never mix verdicts."""
    sizes = [(512, 512), (300, 420), (640, 480), (256, 384)]
    files = []
    for i in range(32):
        width, height = sizes[i % 4]
        raw = _jpeg(cv2.resize(photo, (width, height)), cv2.IMWRITE_JPEG_QUALITY, 60 + i)
        files.append(_zeroed_mid_scan(raw, 1000 + 50 * i) if i % 3 == 0 else raw)
    serial = [_damage(raw) for raw in files]
    assert [why is not None for why in serial] == [i % 3 == 0 for i in range(32)]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(_damage, files * 4)) == serial * 4

    root = copy_of("BRISC2025")
    targets = sorted((root / "classification_task/train").rglob("*.jpg"))
    for path, raw in zip(targets, files, strict=False):
        path.write_bytes(raw)
    with pytest.warns(UserWarning):
        data = load_dataset(
            "BRISC2025", root, img_size=SIZE, cache_dir=tmp_path / "cache", workers=4
        )
    expected = {
        str(p.relative_to(data.root)) for p, why in zip(targets, serial, strict=False) if why
    }
    assert {file for file, _ in data.damaged} == expected
