"""Saved models, cross-validation results and labelled drawings under DIGITLAB_HOME, written atomically.

Layout (DIGITLAB_HOME, default ~/.digitlab):

    models/<name>.keras      the model (Keras zip archive)
    models/<name>.json       its metadata: saved_at, architecture, test accuracy, ...
    cv/<name>.json           one cross-validation result (CVResult.to_dict plus saved_at)
    drawings/<name>.npz      one labelled drawing: image (28, 28) float32 in [0, 1], label

Every file is written to a temporary file in its own folder, fsynced, then renamed over the
target with os.replace, so a crash leaves the old file or the new one, never half of one. A model
is listed only when its metadata exists, and the metadata is written after the model: a crash
while saving a model leaves nothing listed. Names are reduced to letters, digits, '-', '_' and
'.', so no name can reach outside DIGITLAB_HOME.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NAME_MAX = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class StoreError(ValueError):
    """A name or stored file that cannot be used; one sentence for people."""


def home() -> Path:
    """DIGITLAB_HOME, or ~/.digitlab; created on first use."""
    root = Path(os.environ.get("DIGITLAB_HOME") or Path.home() / ".digitlab").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def folder(kind: str) -> Path:
    p = home() / kind
    p.mkdir(parents=True, exist_ok=True)
    return p


def safe_name(name: str) -> str:
    """A file stem that stays in its folder: '../../etc/passwd' -> 'etc-passwd'; '' is refused."""
    stem = _UNSAFE.sub("-", str(name).strip())
    stem = re.sub(r"\.{2,}", ".", stem)  # no '..' anywhere
    stem = re.sub(r"-{2,}", "-", stem).strip(".-_")[:NAME_MAX]
    if not stem:
        raise StoreError(f"{name!r} is not a usable name; use letters, digits, '-' or '_'.")
    return stem


def timestamp_name(prefix: str) -> str:
    return safe_name(f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")


# ---------------------------------------------------------------------------------------------
# Atomic writes


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


def _visible(paths) -> list[Path]:
    return [p for p in paths if not p.name.startswith(".")]  # temp files start with '.'


def _newest_first(items: list[dict]) -> list[dict]:
    return sorted(items, key=lambda d: (d.get("saved_at", 0), d.get("name", "")), reverse=True)


# ---------------------------------------------------------------------------------------------
# Models


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path  # the .keras file
    meta: dict

    @property
    def label(self) -> str:
        acc = self.meta.get("test_accuracy")
        score = f", test accuracy {acc:.4f}" if isinstance(acc, (int, float)) else ""
        return f"{self.name} ({self.meta.get('arch', '?')}{score})"


def save_model(model, *, name: str, meta: dict | None = None) -> ModelEntry:
    """Save model as models/<name>.keras with metadata; an existing name is replaced atomically."""
    stem = safe_name(name)
    d = folder("models")
    path = d / f"{stem}.keras"
    atomic_write(path, lambda tmp: model.save(tmp))
    info = {**(meta or {}), "name": stem, "saved_at": time.time(), "file": path.name}
    atomic_write_json(d / f"{stem}.json", info)
    return ModelEntry(stem, path, info)


def list_models() -> list[ModelEntry]:
    """Saved models, newest first; only those whose model file and metadata are both present."""
    d = folder("models")
    out = []
    for meta_path in _visible(d.glob("*.json")):
        meta = read_json(meta_path)
        keras_path = meta_path.with_suffix(".keras")
        if meta is None or not keras_path.is_file():
            continue
        meta.setdefault("name", meta_path.stem)
        out.append(meta)
    return [
        ModelEntry(m["name"], d / f"{m['name']}.keras", m)
        for m in _newest_first(out)
        if (d / f"{m['name']}.keras").is_file()
    ]


def model_entry(name: str) -> ModelEntry:
    stem = safe_name(name)
    for entry in list_models():
        if entry.name == stem:
            return entry
    raise StoreError(f"No saved model named {stem!r}.")


def load_model(name: str):
    """(model, entry) for a saved model, loaded with safe_mode=True and checked."""
    from digitlab.models import load_model_file

    entry = model_entry(name)
    return load_model_file(entry.path), entry


def delete_model(name: str) -> None:
    d = folder("models")
    stem = safe_name(name)
    (d / f"{stem}.json").unlink(missing_ok=True)  # unlisted first
    (d / f"{stem}.keras").unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Cross-validation results


def save_cv(result: dict, *, name: str | None = None, learner: str | None = None) -> str:
    """Save a CVResult.to_dict(); returns the stored name."""
    stem = (
        safe_name(name)
        if name
        else timestamp_name("cv-reused" if result.get("reuse_model") else "cv")
    )
    d = folder("cv")
    if name is None:  # two saves in one second get distinct names
        base, i = stem, 2
        while (d / f"{stem}.json").exists():
            stem, i = f"{base}-{i}", i + 1
    atomic_write_json(d / f"{stem}.json", {**result, "name": stem, "saved_at": time.time()})
    return stem


def list_cv() -> list[dict]:
    """Saved cross-validation results (plain dicts with name and saved_at), newest first."""
    out = []
    for p in _visible(folder("cv").glob("*.json")):
        obj = read_json(p)
        if obj is not None and "folds" in obj:
            obj.setdefault("name", p.stem)
            out.append(obj)
    return _newest_first(out)


def load_cv(name: str) -> dict:
    obj = read_json(folder("cv") / f"{safe_name(name)}.json")
    if obj is None:
        raise StoreError(f"No saved cross-validation named {safe_name(name)!r}.")
    return obj


def load_cv_run(name: str):
    """A saved cross-validation as a crossval.CVResult; StoreError if it cannot be read."""
    from digitlab.crossval import CVResult

    d = load_cv(name)
    try:
        return CVResult.from_dict({k: v for k, v in d.items() if k not in ("name", "saved_at")})
    except (TypeError, KeyError, ValueError) as e:
        raise StoreError(
            f"The saved cross-validation {safe_name(name)!r} is damaged or from another version ({e})."
        ) from None


# ---------------------------------------------------------------------------------------------
# Labelled drawings


def save_drawing(image: np.ndarray, label: int) -> str:
    """Keep a drawing as the network sees it: (28, 28) float32 in [0, 1] and its digit."""
    image = np.asarray(image, dtype="float32")
    if image.shape != (28, 28):
        raise StoreError(f"A drawing must be a 28x28 image, not {image.shape}.")
    label = int(label)
    if not 0 <= label <= 9:
        raise StoreError(f"A drawing's label must be a digit 0..9, not {label}.")
    stamp = time.time()
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{int(stamp * 1e6) % 1_000_000:06d}-{label}"
    buf = io.BytesIO()
    np.savez_compressed(buf, image=image, label=np.uint8(label), saved_at=np.float64(stamp))
    atomic_write_bytes(folder("drawings") / f"{stem}.npz", buf.getvalue())
    return stem


def load_drawings() -> tuple[np.ndarray, np.ndarray]:
    """All labelled drawings, newest first: images (n, 28, 28) float32, labels (n,) uint8."""
    rows = []
    for p in _visible(folder("drawings").glob("*.npz")):
        try:
            with np.load(p, allow_pickle=False) as f:
                img, label, t = f["image"], int(f["label"]), float(f["saved_at"])
        except Exception:
            continue  # a damaged file is skipped, not fatal
        if img.shape == (28, 28) and 0 <= label <= 9:
            rows.append((t, p.name, img.astype("float32"), label))
    rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
    images = np.stack([r[2] for r in rows]) if rows else np.zeros((0, 28, 28), "float32")
    labels = np.array([r[3] for r in rows], dtype="uint8")
    return images, labels


def count_drawings() -> int:
    return len(_visible(folder("drawings").glob("*.npz")))
