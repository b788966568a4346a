"""The record a model travels with: how its training images were prepared (a run folder's
preprocessing.json). One writer (a finished run, s3f_evaluation), one reader (s3f-predict,
s3f-export); the kit has one preprocessing (area resize, ×1/255, gray or RGB), and a record that
asks for another is refused rather than served silently. No TensorFlow here (fast --help):
so it sits beside the model library (s3f_common), not inside it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from data_setup.arms import PAPER_RESIZE, RESIZE_MODES
from data_setup.files import write_atomic

PREPROCESSING_FILE = "preprocessing.json"
SCALE = 1 / 255


@dataclass(frozen=True)
class Preprocessing:
    """How a model's training images were prepared (the run folder's preprocessing.json)."""

    dataset: str
    class_names: tuple[str, ...]
    image_size: tuple[int, int]  # (H, W)
    channels: int  # 1 = gray, 3 = RGB
    source: str = ""  # where this record came from, for messages
    resize: str = PAPER_RESIZE  # the shortcut-neutral arms (data_setup.decode): a model trained
    reencode: bool = False  # with one is served its images prepared the same way

    @property
    def color(self) -> str:
        return "gray" if self.channels == 1 else "rgb"

    def to_json(self) -> dict:
        record = asdict(self)
        record.pop("source")
        record.update(
            class_names=list(self.class_names),
            image_size=list(self.image_size),
            interpolation="area",
            scale=SCALE,
            color=self.color,
        )
        return record

    @classmethod
    def from_json(cls, record: dict, source: str) -> Preprocessing:
        def bad(what):
            return ValueError(f"{source}: {what}")

        if not isinstance(record, dict):
            raise bad("expected a JSON object")
        missing = sorted({"class_names", "image_size", "channels"} - set(record))
        if missing:
            raise bad(f"missing key(s) {', '.join(missing)}")
        names, size, channels = record["class_names"], record["image_size"], record["channels"]
        if not (
            isinstance(names, list) and len(names) >= 2 and all(isinstance(n, str) for n in names)
        ):
            raise bad(f"class_names must be a list of ≥ 2 names, got {names!r}")
        if not (
            isinstance(size, list)
            and len(size) == 2
            and all(isinstance(v, int) and v > 0 for v in size)
        ):
            raise bad(f"image_size must be [H, W] (positive ints), got {size!r}")
        if channels not in (1, 3):
            raise bad(f"channels must be 1 or 3, got {channels!r}")
        resize, reencode = record.get("resize", PAPER_RESIZE), record.get("reencode", False)
        if resize not in RESIZE_MODES:
            raise bad(f"resize {resize!r} is not supported (expected one of "
                      f"{', '.join(RESIZE_MODES)})")  # fmt: skip
        if not isinstance(reencode, bool):
            raise bad(f"reencode must be true or false, got {reencode!r}")
        # The kit has one preprocessing; a record asking for another must not be served silently.
        expected = {"interpolation": "area", "color": "gray" if channels == 1 else "rgb"}
        for key, value in expected.items():
            if key in record and record[key] != value:
                raise bad(f"{key} {record[key]!r} is not supported (expected {value!r})")
        scale = record.get("scale", SCALE)
        if scale != "1/255" and not (isinstance(scale, (int, float)) and abs(scale - SCALE) < 1e-9):
            raise bad(f"scale {scale!r} is not supported (expected 1/255)")
        return cls(str(record.get("dataset", "")), tuple(names), tuple(size), channels, source,
                   resize, reencode)  # fmt: skip

    @classmethod
    def load(cls, path) -> Preprocessing:
        path = Path(path)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a readable preprocessing record ({error})") from None
        return cls.from_json(record, str(path))

    def save(self, path) -> Path:
        return write_atomic(path, json.dumps(self.to_json(), indent=1))

    def describe(self) -> str:
        height, width = self.image_size
        arms = "" if self.resize == PAPER_RESIZE else f" ({self.resize})"
        arms += ", re-encoded as JPEG" if self.reencode else ""
        return (
            f"{self.color} {height}×{width}, area-resized{arms}, ×1/255; classes "
            f"{', '.join(self.class_names)} (from {self.source})"
        )
