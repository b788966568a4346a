"""Atomic file writes: a temporary name in the same folder, then a rename.

A reader (or a resumed sweep) never sees a half-written file, whatever interrupts the writer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_atomic(path, data: bytes | str) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(path, payload) -> Path:
    return write_atomic(path, json.dumps(payload, indent=1))
