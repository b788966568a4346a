"""One definition of a usable image file (issue 31.4): a header claiming more pixels than the kit
decodes, a symbolic link that loops, a labels-CSV row outside the dataset folder. `check`,
loading (the decode cache and its fingerprint) and the audit each skip the file with the same
sentence naming it, keep every other image, and raise no traceback."""

import os
from pathlib import Path

import numpy as np
import pytest

from data_setup import DatasetError, discover, load_dataset
from data_setup.__main__ import main as cli
from data_setup.cache import files_fingerprint
from data_setup.decode import MAX_IMAGE_PIXELS, BadImage, decode_bytes, pixels_problem
from data_setup.layouts import file_problem
from tests.helpers import png_claiming

SIZE = (16, 16)


def _bytes(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, np.uint8)


def _why(width: int, height: int) -> str:
    why = pixels_problem(_bytes(png_claiming(width, height)))
    assert why is not None
    return why


def test_the_pixel_bound_is_the_constant_and_names_the_claim():
    side = int(MAX_IMAGE_PIXELS**0.5)
    assert pixels_problem(_bytes(png_claiming(side, MAX_IMAGE_PIXELS // side))) is None
    assert f"{side + 1}×{side} pixels" in _why(side + 1, side)
    assert "3,600,000,000 pixels" in _why(60000, 60000)  # over Pillow's own limit as well
    assert f"{MAX_IMAGE_PIXELS:,}" in _why(60000, 60000)
    with pytest.raises(BadImage) as error:
        decode_bytes(_bytes(png_claiming(60000, 60000)), SIZE, 1, "big.png")
    assert str(error.value) == _why(60000, 60000)


def test_the_docs_state_the_bound_the_code_applies():
    scale = (Path(__file__).resolve().parents[1] / "docs" / "scale.md").read_text()
    side = int(MAX_IMAGE_PIXELS**0.5)
    assert f"at most {MAX_IMAGE_PIXELS:,} pixels ({side} × {side}" in scale


def test_opencvs_own_refusal_of_a_format_pillow_does_not_read_is_a_bad_image():
    # Radiance HDR: OpenCV reads it, Pillow does not, so only OpenCV's limit applies
    raw = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 60000 +X 60000\n" + bytes(4000)
    assert pixels_problem(_bytes(raw)) is None
    with pytest.raises(BadImage, match=r"^OpenCV refused to decode it \(its check .* failed\)$"):
        decode_bytes(_bytes(raw), SIZE, 1, "planted.hdr")


def test_an_oversized_header_is_skipped_by_name_by_check_loading_and_audit(
    copy_of, tmp_path, capsys
):
    root = copy_of("BRISC2025")
    planted = root / "classification_task/train/glioma/planted.png"
    planted.write_bytes(png_claiming(60000, 60000))
    why = _why(60000, 60000)

    assert cli(["check", "BRISC2025", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"  {planted}: {why} (skipped)" in out
    assert "train     24  glioma=6" in out  # every other image kept

    with pytest.warns(UserWarning, match="skipped 1 unusable image") as record:
        data = load_dataset("BRISC2025", root, img_size=SIZE, cache_dir=tmp_path / "cache")
    assert f"{planted}: {why}" in "\n".join(str(w.message) for w in record)
    assert data.skipped == [(str(planted), why)]
    assert len(data.splits["train"]) == 24

    assert cli(["audit", "BRISC2025", str(root), "--out", str(tmp_path / "pairs.csv")]) == 0
    out = capsys.readouterr().out
    assert f"    {planted}: {why}" in out
    assert f": {len(data.splits['train']) + len(data.splits['test'])} images" in out


def test_a_looping_link_in_a_class_folder_is_skipped_alike_everywhere(copy_of, tmp_path, capsys):
    root = copy_of("BRISC2025")
    loop = root / "classification_task/train/glioma/loop.jpg"
    os.symlink(loop.name, loop)  # points at itself
    why = "a symbolic link that loops (it never reaches a file) (skipped)"

    assert cli(["check", "BRISC2025", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"  {loop}: {why}" in out and "train     24  glioma=6" in out

    with pytest.warns(UserWarning, match="1 problem file") as record:
        data = load_dataset("BRISC2025", root, img_size=SIZE, cache_dir=tmp_path / "cache")
    assert f"  {loop}: {why}" in "\n".join(str(w.message) for w in record)
    assert len(data.splits["train"]) == 24 and not data.skipped

    assert cli(["audit", "BRISC2025", str(root), "--out", str(tmp_path / "pairs.csv")]) == 0
    out = capsys.readouterr().out
    assert f"    {loop}: {why}" in out
    assert f": {len(data.splits['train']) + len(data.splits['test'])} images" in out


def _custom_with_rows(tmp_path, extra_rows):
    root = tmp_path / "mine"
    rng = np.random.default_rng(0)
    import cv2

    rows = ["file,label"]
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(6):
            cv2.imwrite(str(root / label / f"{i}.png"), rng.integers(0, 255, (12, 12), np.uint8))
            rows.append(f"{label}/{i}.png,{label}")
    (root / "labels.csv").write_text("\n".join(rows + extra_rows) + "\n")
    return root


def test_csv_rows_outside_the_dataset_folder_are_skipped_alike_everywhere(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere.png"
    root = _custom_with_rows(tmp_path, [f"{elsewhere},cat", "../elsewhere.png,dog"])
    elsewhere.write_bytes((root / "cat/0.png").read_bytes())  # a real image, just not inside
    outside = f"outside the dataset folder {root}; only files inside it are used (skipped)"
    expected = [
        f"  {elsewhere}: listed in labels.csv line 14: {outside}",
        f"  {root / '../elsewhere.png'}: listed in labels.csv line 15: {outside}",
    ]

    assert cli(["check", "Custom", str(root)]) == 0
    out = capsys.readouterr().out
    assert all(line in out for line in expected) and "all       12  cat=6  dog=6" in out

    with pytest.warns(UserWarning, match="2 problem file") as record:
        data = load_dataset("Custom", root, img_size=SIZE, cache_dir=tmp_path / "cache")
    text = "\n".join(str(w.message) for w in record)
    assert all(line in text for line in expected)
    assert len(data.splits["train"]) + len(data.splits["test"]) == 12

    assert cli(["audit", "Custom", str(root), "--out", str(tmp_path / "pairs.csv")]) == 0
    out = capsys.readouterr().out
    assert all(f"  {line}" in out for line in expected) and ": 12 images" in out


def test_rows_inside_the_folder_however_spelled_are_used_once(tmp_path, monkeypatch, capsys):
    """An absolute row inside a folder given as a relative path (the fingerprint's relative_to
    crashed on it), a row with '..' that stays inside, and a second spelling of a listed file."""
    import cv2

    monkeypatch.chdir(tmp_path)
    absolute = tmp_path / "mine" / "cat" / "6.png"
    extra = [f"{absolute},cat", "dog/../dog/6.png,dog", "./cat/0.png,cat"]
    root = _custom_with_rows(tmp_path, extra)
    for path in (absolute, root / "dog" / "6.png"):
        cv2.imwrite(str(path), np.full((12, 12), 7 * len(path.parent.name), np.uint8))
    assert cli(["check", "Custom", "mine"]) == 0
    out = capsys.readouterr().out
    assert "all       14  cat=7  dog=7" in out
    assert "labels.csv: line 16 (./cat/0.png): listed again, counted once" in out
    with pytest.warns(UserWarning, match="listed again"):
        data = load_dataset("Custom", "mine", img_size=SIZE, cache_dir=tmp_path / "cache")
    files = data.splits["train"].files + data.splits["test"].files
    assert len(files) == 14 and {"cat/6.png", "dog/6.png"} <= set(files)


def test_the_fingerprint_names_a_file_that_stopped_being_usable(copy_of):
    root = copy_of("BRISC2025")
    listing = discover("BRISC2025", root)
    items = listing.splits["train"]
    first = items[0][0]
    first.unlink()
    os.symlink(first.name, first)  # replaced by a looping link after listing
    with pytest.raises(DatasetError) as error:
        files_fingerprint(items, listing.root)
    assert str(error.value) == (
        f"{first}: {file_problem(first, listing.root)}; it changed since the dataset was "
        "listed: run again"
    )
