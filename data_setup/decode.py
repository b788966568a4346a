"""Read one image file as the paper did, and judge whether it looks damaged.

The paper's preprocessing up to the float scale (OpenCV: gray or RGB, area-resized, uint8) for
the decode cache (data_setup.cache), `check` and predict; every file OpenCV decodes is used, as
in the paper, and damage_of only says why one may still be damaged. A header claiming more than
MAX_IMAGE_PIXELS is refused by name before decoding (pixels_problem).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from data_setup.arms import PAPER_RESIZE, REENCODE_QUALITY, RESIZE_MODES

# The most pixels (width × height) a file's header may claim; a larger image is refused by name
# before OpenCV sees it. Real medical images stay far below it (chest films up to ~3,000 px a
# side, digitised mammograms up to ~5,000 × 7,000), while OpenCV's own limit (2^30 pixels)
# would let one hostile 117 KB PNG claiming 60000×60000 take gigabytes per decode worker, and
# stops a larger one with an assertion that names no file. 8192² also stays below Pillow's
# warning level (89.5 megapixels): no image the kit uses makes Pillow warn (one claiming 89.5 to
# 179 megapixels is refused here, after Pillow's one-line warning; more, Pillow refuses too).
MAX_IMAGE_PIXELS = 8192 * 8192

# the shortcut-neutral arms' names, defaults and quality: data_setup.arms (no OpenCV there)


class BadImage(Exception):
    """One image that cannot be used; the reason is the message."""


# A marker inside entropy-coded data: 0xFF followed by neither a stuffed 0x00, a restart code
# (0xD0-0xD7) nor another fill 0xFF.
_SCAN_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_STANDALONE_MARKERS = {0x01, 0xD8, *range(0xD0, 0xD8)}  # no length field follows them
_MAX_SEGMENTS = 100_000


def jpeg_end(raw: bytes) -> int | None:
    """Offset just past the first image's end-of-image marker (FFD9), or None when the data
    stops before it. Walks the segments by their lengths (an EXIF thumbnail's own FFD9 is
    skipped) and each scan's entropy-coded data to its next marker, so bytes appended after the
    image (a motion photo's video, a second JPEG) are never mistaken for part of it."""
    pos, size = 2, len(raw)
    for _ in range(_MAX_SEGMENTS):  # real files have a few dozen; bounds a hostile one's cost
        if pos + 1 >= size:
            return None
        if raw[pos] != 0xFF or raw[pos + 1] in (0x00, 0xFF):  # garbage or fill bytes: skip them
            found = _SCAN_MARKER.search(raw, pos)  # to the next marker, as libjpeg does
            if found is None:
                return None
            pos = found.start()
        code = raw[pos + 1]
        if code == 0xD9:
            return pos + 2
        elif code in _STANDALONE_MARKERS:
            pos += 2
        else:
            pos += 2 + int.from_bytes(raw[pos + 2 : pos + 4], "big")
            if code == 0xDA:  # start of scan: entropy-coded data up to the next marker
                found = _SCAN_MARKER.search(raw, pos)
                if found is None:
                    return None
                pos = found.start()
    return None


def jpeg_decoder_warning(raw: bytes) -> str | None:
    """libjpeg's first warning while decoding this JPEG (e.g. "Corrupt JPEG data: premature end
    of data segment" for a damaged scan), or None. OpenCV prints these on stderr only, where
    Python cannot see them; simplejpeg (libjpeg-turbo) raises them in strict mode. Decoded at
    1/8 scale in gray: every scan's entropy data is still read (where damage shows) while the
    inverse DCT and colour work are skipped. Releases the GIL and keeps no shared state, so the
    decode workers can call it in parallel. Judgement only: the pixels stay OpenCV's."""
    try:
        import simplejpeg
    except ImportError as error:  # a kit installed without its requirements
        raise ModuleNotFoundError(
            "simplejpeg is missing: install it (pip install simplejpeg, or the kit's "
            "requirements.txt); the kit reads libjpeg's warnings about damaged JPEGs with it"
        ) from error
    try:
        simplejpeg.decode_jpeg(raw, colorspace="GRAY", min_factor=8, strict=True)
    except ValueError as warning:
        try:  # a failure without strict is simplejpeg's limit, not a warning: no judgement
            simplejpeg.decode_jpeg(raw, colorspace="GRAY", min_factor=8, strict=False)
        except ValueError:
            return None
        return str(warning).strip()
    return None


def damage_of(data: np.ndarray) -> str | None:
    """Why a file that OpenCV decodes may still be damaged, or None. The paper used every file
    OpenCV decodes, so this only warns (skip_damaged=True drops them). Judged by content, not
    suffix: real folders hold PNGs named .jpg and the reverse. Bytes *after* a proper end
    marker (phone "motion photos", some exporters) are not damage."""
    raw = data.tobytes()
    if raw.startswith(b"\xff\xd8"):
        if jpeg_end(raw) is None:
            return "JPEG cut off (no end-of-image marker after its last scan)"
        if warning := jpeg_decoder_warning(raw):
            return f"JPEG decoder warning: {warning}"
    elif raw.startswith(b"\x89PNG") and b"IEND" not in raw:
        return "PNG cut off (no IEND chunk)"
    return None


def _claimed_pixels(message: str) -> str:
    """The pixel count in Pillow's DecompressionBombError message, as the kit writes numbers."""
    found = re.search(r"\((\d+) pixels\)", message)
    return f"{int(found.group(1)):,} pixels" if found else "more pixels than Pillow opens"


def pixels_problem(data: np.ndarray) -> str | None:
    """Why these bytes are refused before decoding (their header claims more than
    MAX_IMAGE_PIXELS), or None. Pillow reads the header only (every format the kit lists and
    more); bytes Pillow does not know are left to OpenCV, whose own refusal decode_bytes turns
    into a BadImage. Decode workers call this in parallel: it keeps no shared state."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Image.DecompressionBombError as error:  # far over Pillow's own limit, and ours
        claimed = _claimed_pixels(str(error))
    except Exception:  # not an image Pillow reads (or a damaged header): OpenCV judges it
        return None
    else:
        if width * height <= MAX_IMAGE_PIXELS:
            return None
        claimed = f"{width}×{height} pixels"
    return (
        f"its header claims {claimed}, more than the {MAX_IMAGE_PIXELS:,} the kit decodes "
        "(data_setup.decode.MAX_IMAGE_PIXELS)"
    )


def decode_workers() -> int:
    """Threads that decode images at once: OpenCV's and Pillow's decoders release the GIL, so
    threads scale with the cores; past 8 the disk, not the CPU, is what waits."""
    return min(8, os.cpu_count() or 1)


def read_bytes(path: Path) -> np.ndarray:
    try:
        data = np.fromfile(path, dtype=np.uint8)  # bytes first: works for any path encoding
    except OSError as error:  # permissions, I/O errors, a vanished file
        raise BadImage(f"unreadable ({error.strerror or error})") from error
    if data.size == 0:
        raise BadImage("empty file (0 bytes)")
    return data


def resized(image: np.ndarray, size_hw: tuple[int, int], resize: str = PAPER_RESIZE):
    """An (h, w[, c]) image brought to size_hw = (H, W) by the RESIZE_MODES arm `resize`, with
    OpenCV's area interpolation as the paper's squash."""
    height, width = size_hw
    if resize == PAPER_RESIZE:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    h, w = image.shape[:2]
    fit = max if resize == "crop" else min  # crop: cover the target; reflect: fit inside it
    scale = fit(height / h, width / w)
    bound = min if resize == "reflect" else max  # rounding never leaves a gap or a short side
    new_h, new_w = max(1, bound(height, round(h * scale))), max(1, bound(width, round(w * scale)))
    image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    if resize == "crop":
        top, left = (new_h - height) // 2, (new_w - width) // 2
        return image[top : top + height, left : left + width]
    top, left = (height - new_h) // 2, (width - new_w) // 2
    # BORDER_REFLECT_101 mirrors without repeating the edge row; OpenCV reflects again where the
    # padding is wider than the image
    return cv2.copyMakeBorder(image, top, height - new_h - top, left, width - new_w - left,
                              cv2.BORDER_REFLECT_101)  # fmt: skip


def reencoded(image: np.ndarray) -> np.ndarray:
    """`image` (uint8, gray or RGB) through one JPEG encode and decode at REENCODE_QUALITY, in
    its own mode (the `reencode` arm)."""
    gray = image.ndim == 2 or image.shape[-1] == 1
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, REENCODE_QUALITY])
    if not ok:  # OpenCV encodes any uint8 gray or 3-channel image; kept as a named failure
        raise BadImage("OpenCV could not re-encode it as JPEG")
    return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)


def decode_bytes(
    data: np.ndarray,
    size_hw: tuple[int, int],
    channels: int,
    path: Path,
    resize: str = PAPER_RESIZE,
    reencode: bool = False,
):
    """decode_image of a file's bytes already read (read_bytes), so that damage_of can judge the
    same bytes; `path` is the file they came from. resize and reencode: the shortcut-neutral
    arms (RESIZE_MODES, REENCODE_QUALITY); their defaults are the paper's preprocessing."""
    if why := pixels_problem(data):
        raise BadImage(why)
    flags = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(data, flags)
        if image is None:
            # The paper read files with cv2.imread, whose file decoder still returns a cut-off
            # JPEG (imdecode on the same bytes refuses it): use what the paper used.
            image = cv2.imread(str(path), flags)
    except cv2.error as error:  # OpenCV's own limits, for a format Pillow does not read
        what = f"its check {error.err} failed" if error.code == cv2.Error.StsAssert else error.err
        raise BadImage(f"OpenCV refused to decode it ({what})") from None
    if image is None:
        raise BadImage("not a decodable image")
    height, width = size_hw
    image = resized(image, size_hw, resize)
    if reencode:  # in OpenCV's BGR order, as it was decoded: the encoder expects it
        image = reencoded(image)
    if channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image.reshape(height, width, channels)


def decode_image(
    path: Path,
    size_hw: tuple[int, int],
    channels: int,
    resize: str = PAPER_RESIZE,
    reencode: bool = False,
) -> np.ndarray:
    """The paper's preprocessing up to the float scale: gray or RGB, area-resized, uint8 (resize
    and reencode: the shortcut-neutral arms, see decode_bytes). Every file OpenCV decodes is
    used, as in the paper (see damage_of for warnings)."""
    return decode_bytes(read_bytes(path), size_hw, channels, path, resize, reencode)
