"""Files written atomically: a temporary file beside the target, fsynced, then renamed over it,
so a crash leaves the old file or the new one, never half of one (the store and model files)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path) on a temporary file next to path, fsync it, then os.replace it in.

    If write raises, the temporary file is removed and path is untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=".tmp" + path.suffix, dir=path.parent
    )
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=1, default=_json_default)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def read_json(path: Path) -> dict | None:
    """The JSON object in path, or None if it is missing or damaged (damage is not fatal)."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None
