"""The store of record: learners, models, cross-validation runs and drawings in SQLite, files beside it.

Layout (DIGITLAB_HOME, default ~/.digitlab):

    digitlab.db              SQLite (WAL): what exists, who owns it, versions, metadata
    models/<id>.keras        a model file (Keras zip archive); <id> is generated, never a name
    drawings/<id>.png        the raw canvas of a labelled drawing (the 28x28 is in the database)

Every item has an owner: a learner's name, or the room (owner "room", learner=None in this API).
A learner reads their own items, the room's, and models someone published; a learner changes only
their own: every function that changes an item takes the learner and refuses another's with one
sentence (StoreError). Names of learners, models and runs are free text for display: they are kept
in the database and never reach a path.

Files are written atomically first (temporary file, fsync, os.replace), and their row is committed
after, so the database never lists half an item; a crash in between leaves at most an unlisted file.
Deleting removes the row first, then the file. One connection per thread; every change is one
transaction (BEGIN IMMEDIATE, then `with conn:`), with `?` parameters.

A DIGITLAB_HOME in the earlier layout (models/*.keras + .json, cv/*.json, drawings/*.npz) is
imported on first start, owned by the room; its files stay where they are.
"""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import threading
import time
import unicodedata
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.files import (
    _json_default,
    atomic_write,
    atomic_write_bytes,
    read_json,
)

ROOM = "room"  # the owner of the room's items (learner=None)
LEARNER_MAX = 40  # characters in a learner's name
NAME_MAX = 80  # characters in a model's or run's name
DB_NAME = "digitlab.db"
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS learners (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,              -- a learner's name or 'room'
    name TEXT NOT NULL,               -- display text, never a path
    version INTEGER NOT NULL,         -- 1, 2, ... per (owner, name): saving again keeps both
    file TEXT NOT NULL,               -- relative to DIGITLAB_HOME
    meta TEXT NOT NULL,               -- JSON: arch, description, test_accuracy, ...
    saved_at REAL NOT NULL,
    published INTEGER NOT NULL DEFAULT 0,
    hidden INTEGER NOT NULL DEFAULT 0,
    UNIQUE (owner, name, version)
);
CREATE TABLE IF NOT EXISTS cv_runs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,               -- JSON: CVResult.to_dict()
    saved_at REAL NOT NULL,
    hidden INTEGER NOT NULL DEFAULT 0,
    UNIQUE (owner, name, version)
);
CREATE TABLE IF NOT EXISTS drawings (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    label INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),
    image BLOB NOT NULL,              -- (28, 28) float32 in [0, 1], C order
    png TEXT,                         -- the raw canvas, relative to DIGITLAB_HOME, or NULL
    saved_at REAL NOT NULL,
    hidden INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS scores (
    model_id TEXT NOT NULL,
    kind TEXT NOT NULL,               -- e.g. 'room_others': accuracy on other learners' drawings
    basis TEXT NOT NULL,              -- what it was computed on; a new basis means compute again
    value REAL,
    n INTEGER NOT NULL,
    PRIMARY KEY (model_id, kind)
);
CREATE TABLE IF NOT EXISTS room (
    key TEXT PRIMARY KEY,             -- 'room_model': a model id; 'legacy_imported': a time
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS models_owner ON models (owner, saved_at);
CREATE INDEX IF NOT EXISTS cv_owner ON cv_runs (owner, saved_at);
CREATE INDEX IF NOT EXISTS drawings_owner ON drawings (owner, saved_at);
"""


class StoreError(ValueError):
    """A name, an item or a change that cannot be used; one sentence for people."""


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
    """A file stem made of letters, digits, '-', '_', '.' (for a download's file name)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name).strip())
    stem = re.sub(r"\.{2,}", ".", stem)
    stem = re.sub(r"-{2,}", "-", stem).strip(".-_")[:NAME_MAX]
    if not stem:
        raise StoreError(f"{name!r} is not a usable name; use letters, digits, '-' or '_'.")
    return stem


# ---------------------------------------------------------------------------------------------
# Names: free text, checked, never a path


def _text(value: Any, *, what: str, limit: int) -> str:
    text = unicodedata.normalize("NFC", str(value if value is not None else "")).strip()
    if not 1 <= len(text) <= limit or not text.isprintable():
        raise StoreError(
            f"{str(value)[:60]!r} is not a usable {what}: use 1 to {limit} printable characters."
        )
    return text


def check_learner(name: str) -> str:
    """A learner's name as kept (trimmed, NFC); StoreError in one sentence if it is unusable."""
    text = _text(name, what="learner name", limit=LEARNER_MAX)
    if text.casefold() == ROOM:
        raise StoreError(f"{text!r} is reserved for the room's own items; choose another name.")
    return text


def check_name(name: str, *, what: str = "name") -> str:
    return _text(name, what=what, limit=NAME_MAX)


def _owner(learner: str | None) -> str:
    return ROOM if learner is None else check_learner(learner)


# ---------------------------------------------------------------------------------------------
# Atomic writes: digitlab.files (models save their files through it too)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default)


# ---------------------------------------------------------------------------------------------
# The database: one connection per thread, schema once per process and file

_local = threading.local()
BUSY_TIMEOUT_S = 60.0
_ready: set[str] = set()
_ready_lock = threading.Lock()


def db_path() -> Path:
    return home() / DB_NAME


def _conn() -> sqlite3.Connection:
    """This thread's connection to this DIGITLAB_HOME's database (opened, and set up, on first use)."""
    path = str(db_path())
    held = getattr(_local, "conn", None)
    if held is not None and held[0] == path:
        return held[1]
    if held is not None:  # DIGITLAB_HOME changed (tests): this thread moves to the new file
        held[1].close()
    # transactions are explicit; a writer waits up to BUSY_TIMEOUT_S for another's to end
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    _local.conn = (path, conn)
    with _ready_lock:
        if path not in _ready:
            _setup(conn)
            _ready.add(path)
    return conn


@contextmanager
def _write():
    """One write transaction: BEGIN IMMEDIATE takes the write lock at once (no upgrade deadlock)."""
    conn = _conn()
    conn.execute("BEGIN IMMEDIATE")
    with conn:  # commits, or rolls back on an exception
        yield conn


def _wal(conn: sqlite3.Connection) -> None:
    """Write-ahead logging (kept in the file): readers never wait for a writer. Switching to it
    answers "database is locked" at once, not after the busy timeout, when another connection
    opens the file at that moment (1 round in 40 of twenty threads saving at once on a new
    home; processes starting together alike): asked again until the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            busy = e.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # extended codes included
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _setup(conn: sqlite3.Connection) -> None:
    _wal(conn)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{db_path()} was written by a newer DigitLab (schema {version}, this one knows "
            f"{SCHEMA_VERSION})."
        )
    conn.executescript(SCHEMA)  # idempotent (IF NOT EXISTS)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    _import_legacy(conn)


def _import_legacy(conn: sqlite3.Connection) -> None:
    """Rows, owned by the room, for an earlier layout's files (once per DIGITLAB_HOME)."""
    root = home()
    conn.execute("BEGIN IMMEDIATE")
    with conn:
        if conn.execute("SELECT 1 FROM room WHERE key = 'legacy_imported'").fetchone():
            return
        for meta_path in sorted((root / "models").glob("*.json")):
            keras_path = meta_path.with_suffix(".keras")
            meta = read_json(meta_path)
            if meta_path.name.startswith(".") or meta is None or not keras_path.is_file():
                continue
            name = str(meta.get("name") or meta_path.stem)
            _insert_versioned(
                conn,
                "models",
                owner=ROOM,
                name=name,
                values={
                    "id": _new_id("m"),
                    "file": keras_path.relative_to(root).as_posix(),
                    "meta": _dumps({k: v for k, v in meta.items() if k not in ("name", "file")}),
                    "saved_at": float(meta.get("saved_at") or keras_path.stat().st_mtime),
                },
            )
        for p in sorted((root / "cv").glob("*.json")):
            obj = read_json(p)
            if p.name.startswith(".") or obj is None or "folds" not in obj:
                continue
            _insert_versioned(
                conn,
                "cv_runs",
                owner=ROOM,
                name=str(obj.get("name") or p.stem),
                values={
                    "id": _new_id("cv"),
                    "data": _dumps({k: v for k, v in obj.items() if k not in ("name", "saved_at")}),
                    "saved_at": float(obj.get("saved_at") or p.stat().st_mtime),
                },
            )
        for p in sorted((root / "drawings").glob("*.npz")):
            try:
                with np.load(p, allow_pickle=False) as f:
                    img, label = np.asarray(f["image"], "float32"), int(f["label"])
                    t = float(f["saved_at"]) if "saved_at" in f else p.stat().st_mtime
            except Exception:
                continue  # a damaged file is left out, not fatal (and stays on disk)
            if p.name.startswith(".") or img.shape != (28, 28) or not 0 <= label <= 9:
                continue
            conn.execute(
                "INSERT INTO drawings (id, owner, label, image, png, saved_at) VALUES (?, ?, ?, ?, NULL, ?)",
                (_new_id("d"), ROOM, label, img.tobytes(), t),
            )
        conn.execute(
            "INSERT INTO room (key, value) VALUES ('legacy_imported', ?)", (str(time.time()),)
        )


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def _insert_versioned(conn, table: str, *, owner: str, name: str, values: dict) -> int:
    """Insert a row as the next version of (owner, name); inside the caller's transaction."""
    version = conn.execute(
        f"SELECT COALESCE(MAX(version), 0) + 1 FROM {table} WHERE owner = ? AND name = ?",
        (owner, name),
    ).fetchone()[0]
    row = {**values, "owner": owner, "name": name, "version": version}
    cols = ", ".join(row)
    conn.execute(
        f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
    )
    return version


def _ensure_learner(conn, owner: str) -> None:
    if owner != ROOM:
        conn.execute(
            "INSERT OR IGNORE INTO learners (name, created_at) VALUES (?, ?)", (owner, time.time())
        )


def _refuse_unless_owner(row, learner: str | None, what: str) -> None:
    if row["owner"] != _owner(learner):
        whose = "the room" if row["owner"] == ROOM else "another learner"
        raise StoreError(f"That {what} belongs to {whose}; you can only change your own.")


def add_learner(name: str) -> str:
    """Register a learner (idempotent); returns the name as kept."""
    owner = check_learner(name)
    with _write() as conn:
        _ensure_learner(conn, owner)
    return owner


def list_learners() -> list[str]:
    rows = _conn().execute("SELECT name FROM learners ORDER BY created_at, name").fetchall()
    return [r["name"] for r in rows]


# ---------------------------------------------------------------------------------------------
# Models


@dataclass(frozen=True)
class ModelEntry:
    id: str
    name: str
    owner: str  # a learner's name or ROOM
    version: int
    path: Path  # the .keras file
    meta: dict
    saved_at: float
    published: bool = False
    hidden: bool = False

    @property
    def learner(self) -> str | None:
        return None if self.owner == ROOM else self.owner

    @property
    def title(self) -> str:
        return self.name if self.version == 1 else f"{self.name} (v{self.version})"

    @property
    def label(self) -> str:
        acc = self.meta.get("test_accuracy")
        score = f", test accuracy {acc:.4f}" if isinstance(acc, (int, float)) else ""
        return f"{self.title} ({self.meta.get('arch', '?')}{score})"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "learner": self.learner,
            "test_accuracy": self.meta.get("test_accuracy"),
            "arch": self.meta.get("arch"),
            "description": self.meta.get("description"),
            "saved_at": self.saved_at,
            "published": self.published,
        }


def _entry(row) -> ModelEntry:
    return ModelEntry(
        id=row["id"],
        name=row["name"],
        owner=row["owner"],
        version=row["version"],
        path=home() / row["file"],
        meta=json.loads(row["meta"]),
        saved_at=row["saved_at"],
        published=bool(row["published"]),
        hidden=bool(row["hidden"]),
    )


def save_model(
    model, *, name: str, meta: dict | None = None, learner: str | None = None
) -> ModelEntry:
    """Keep model as the learner's (None: the room's); the same name again is a new version."""
    owner, name = _owner(learner), check_name(name, what="model name")
    model_id = _new_id("m")
    path = folder("models") / f"{model_id}.keras"
    atomic_write(path, lambda tmp: model.save(tmp))  # the file first ...
    with _write() as conn:  # ... then the row that lists it
        _ensure_learner(conn, owner)
        _insert_versioned(
            conn,
            "models",
            owner=owner,
            name=name,
            values={
                "id": model_id,
                "file": path.relative_to(home()).as_posix(),
                "meta": _dumps(meta or {}),
                "saved_at": time.time(),
            },
        )
    return model_entry(model_id, learner=learner)


QUICK_MODEL = "quick-mlp"  # the Draw page's one-click model: each learner's own, kept as versions


def model_meta(
    *,
    arch: str,
    description: str,
    test_accuracy: float | None,
    origin: str,
    test_loss: float | None = None,
    data_source: str | None = None,
) -> dict:
    """What the store keeps beside a model's file, the same for every saver."""
    return {
        "arch": arch,
        "description": description,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "data_source": data_source,
        "origin": origin,
    }


def save_trained(
    result, *, name: str = QUICK_MODEL, learner: str | None = None, origin: str = "trained here"
) -> ModelEntry:
    """Keep a finished run's model (a TrainResult or TeachResult) with its settings and scores."""
    cfg = result.model_config
    return save_model(
        result.model,
        name=name,
        learner=learner,
        meta=model_meta(
            arch=cfg.arch,
            description=cfg.describe(),
            test_accuracy=result.test_accuracy,
            test_loss=result.test_loss,
            data_source=result.data_source,
            origin=origin,
        ),
    )


def list_models(learner: str | None = None) -> list[ModelEntry]:
    """The learner's models (None: the room's), every version, newest first."""
    rows = _conn().execute(
        "SELECT * FROM models WHERE owner = ? AND hidden = 0 ORDER BY saved_at DESC, rowid DESC",
        (_owner(learner),),
    )
    return [_entry(r) for r in rows]


def list_all_models(
    *, published_only: bool = False, include_hidden: bool = False
) -> list[ModelEntry]:
    """Every learner's models (the room page, the instructor), newest first."""
    where = ["1"]
    if published_only:
        where.append("published = 1")
    if not include_hidden:
        where.append("hidden = 0")
    rows = _conn().execute(
        f"SELECT * FROM models WHERE {' AND '.join(where)} ORDER BY saved_at DESC, rowid DESC"
    )
    return [_entry(r) for r in rows]


def _model_row(id_or_name: str, learner: str | None):
    """The row a learner means: an id they may read, else their own latest of that name."""
    owner = _owner(learner)
    conn = _conn()
    row = conn.execute("SELECT * FROM models WHERE id = ?", (str(id_or_name),)).fetchone()
    if row is not None:
        readable = row["owner"] in (owner, ROOM) or (row["published"] and not row["hidden"])
        if not readable and row["id"] != room_model_id():
            raise StoreError("That model belongs to another learner and is not published.")
        return row
    row = conn.execute(
        "SELECT * FROM models WHERE owner = ? AND name = ? AND hidden = 0 ORDER BY version DESC",
        (owner, str(id_or_name)),
    ).fetchone()
    if row is None:
        raise StoreError(f"No saved model named {str(id_or_name)!r}.")
    return row


def model_entry(id_or_name: str, learner: str | None = None) -> ModelEntry:
    return _entry(_model_row(id_or_name, learner))


def load_model(id_or_name: str, learner: str | None = None):
    """(model, entry) for a saved model the learner may read, loaded with safe_mode=True, checked."""
    from digitlab.models import load_model_file

    entry = model_entry(id_or_name, learner)
    return load_model_file(entry.path), entry


def delete_model(id_or_name: str, *, learner: str | None = None) -> None:
    """Remove one of the learner's models (the row first, then the file)."""
    row = _model_row(id_or_name, learner)
    _refuse_unless_owner(row, learner, "model")
    with _write() as conn:
        conn.execute("DELETE FROM models WHERE id = ?", (row["id"],))
        conn.execute("DELETE FROM scores WHERE model_id = ?", (row["id"],))
        conn.execute("DELETE FROM room WHERE key = 'room_model' AND value = ?", (row["id"],))
    _unlink_unshared(row["file"])


def publish_model(id_or_name: str, *, learner: str | None = None, published: bool = True) -> None:
    """Show one of the learner's models on the room's leaderboard (or take it off)."""
    row = _model_row(id_or_name, learner)
    _refuse_unless_owner(row, learner, "model")
    with _write() as conn:
        conn.execute("UPDATE models SET published = ? WHERE id = ?", (int(published), row["id"]))


def _unlink_unshared(rel: str) -> None:
    still = _conn().execute("SELECT 1 FROM models WHERE file = ?", (rel,)).fetchone()
    if still is None:
        (home() / rel).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# The room: its model, hiding, clearing (the instructor's controls call these)


def room_model_id() -> str | None:
    row = _conn().execute("SELECT value FROM room WHERE key = 'room_model'").fetchone()
    return row["value"] if row else None


def room_model() -> ModelEntry | None:
    """The model the Draw page falls back to, or None."""
    mid = room_model_id()
    row = _conn().execute("SELECT * FROM models WHERE id = ?", (mid,)).fetchone() if mid else None
    return _entry(row) if row is not None else None


def set_room_model(model_id: str) -> ModelEntry:
    """Make a copy of any model the room's own and the room model (a learner deleting theirs later
    does not take it away)."""
    row = _conn().execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
    if row is None:
        raise StoreError("That model no longer exists.")
    new_id = _new_id("m")
    src, dst = home() / row["file"], folder("models") / f"{new_id}.keras"
    atomic_write_bytes(dst, src.read_bytes())
    meta = {**json.loads(row["meta"]), "from_learner": row["owner"], "from_id": row["id"]}
    with _write() as conn:
        _insert_versioned(
            conn,
            "models",
            owner=ROOM,
            name=row["name"],
            values={
                "id": new_id,
                "file": dst.relative_to(home()).as_posix(),
                "meta": _dumps(meta),
                "saved_at": time.time(),
            },
        )
        conn.execute(
            "INSERT INTO room (key, value) VALUES ('room_model', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (new_id,),
        )
    return room_model()


_TABLES = {"model": "models", "cv": "cv_runs", "drawing": "drawings"}


def set_hidden(kind: str, item_id: str, hidden: bool = True) -> None:
    """Hide an item from every list and the leaderboard (kind: 'model', 'cv' or 'drawing')."""
    table = _TABLES.get(kind)
    if table is None:
        raise StoreError(f"{kind!r} is not a kind of item; use model, cv or drawing.")
    with _write() as conn:
        cur = conn.execute(f"UPDATE {table} SET hidden = ? WHERE id = ?", (int(hidden), item_id))
    if cur.rowcount == 0:
        raise StoreError(f"There is no {kind} with id {item_id!r}.")


def clear_room() -> dict:
    """Remove every learner and their items (the room's own items, the room model among them, stay).

    Returns how many of each were removed."""
    with _write() as conn:
        files = [
            r["file"] for r in conn.execute("SELECT file FROM models WHERE owner != ?", (ROOM,))
        ]
        pngs = [
            r["png"]
            for r in conn.execute(
                "SELECT png FROM drawings WHERE owner != ? AND png IS NOT NULL", (ROOM,)
            )
        ]
        counts = {}
        for kind, table in _TABLES.items():
            counts[kind] = conn.execute(f"DELETE FROM {table} WHERE owner != ?", (ROOM,)).rowcount
        conn.execute("DELETE FROM scores WHERE model_id NOT IN (SELECT id FROM models)")
        counts["learner"] = conn.execute("DELETE FROM learners").rowcount
    for rel in files:
        _unlink_unshared(rel)
    for rel in pngs:
        (home() / rel).unlink(missing_ok=True)
    return counts


def cached_score(model_id: str, kind: str, basis: str) -> tuple[float | None, int] | None:
    """(value, n) computed earlier on the same basis, or None."""
    row = (
        _conn()
        .execute(
            "SELECT value, n FROM scores WHERE model_id = ? AND kind = ? AND basis = ?",
            (model_id, kind, basis),
        )
        .fetchone()
    )
    return (row["value"], row["n"]) if row else None


def put_score(model_id: str, kind: str, basis: str, value: float | None, n: int) -> None:
    with _write() as conn:
        conn.execute(
            "INSERT INTO scores (model_id, kind, basis, value, n) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (model_id, kind) DO UPDATE SET basis = excluded.basis, "
            "value = excluded.value, n = excluded.n",
            (model_id, kind, basis, value, n),
        )


# ---------------------------------------------------------------------------------------------
# Cross-validation results


def save_cv(result: dict, *, learner: str | None = None, name: str | None = None) -> str:
    """Keep a CVResult.to_dict() as the learner's; returns its id."""
    owner = _owner(learner)
    if name is None:
        name = f"{'cv-reused' if result.get('reuse_model') else 'cv'} {time.strftime('%Y-%m-%d %H:%M:%S')}"
    name = check_name(name, what="run name")
    run_id = _new_id("cv")
    data = _dumps({k: v for k, v in result.items() if k not in ("name", "saved_at", "id")})
    with _write() as conn:
        _ensure_learner(conn, owner)
        _insert_versioned(
            conn,
            "cv_runs",
            owner=owner,
            name=name,
            values={"id": run_id, "data": data, "saved_at": time.time()},
        )
    return run_id


def _cv_dict(row) -> dict:
    owner = row["owner"]
    return {
        **json.loads(row["data"]),
        "id": row["id"],
        "name": row["name"],
        "version": row["version"],
        "learner": None if owner == ROOM else owner,
        "saved_at": row["saved_at"],
    }


def list_cv(learner: str | None = None) -> list[dict]:
    """The learner's cross-validation runs (plain dicts with id, name, saved_at), newest first."""
    rows = _conn().execute(
        "SELECT * FROM cv_runs WHERE owner = ? AND hidden = 0 ORDER BY saved_at DESC, rowid DESC",
        (_owner(learner),),
    )
    return [_cv_dict(r) for r in rows]


def _cv_row(id_or_name: str, learner: str | None):
    owner = _owner(learner)
    conn = _conn()
    row = conn.execute("SELECT * FROM cv_runs WHERE id = ?", (str(id_or_name),)).fetchone()
    if row is not None:
        if row["owner"] not in (owner, ROOM):
            raise StoreError("That cross-validation belongs to another learner.")
        return row
    row = conn.execute(
        "SELECT * FROM cv_runs WHERE owner = ? AND name = ? ORDER BY version DESC",
        (owner, str(id_or_name)),
    ).fetchone()
    if row is None:
        raise StoreError(f"No saved cross-validation named {str(id_or_name)!r}.")
    return row


def load_cv(id_or_name: str, learner: str | None = None) -> dict:
    return _cv_dict(_cv_row(id_or_name, learner))


def delete_cv(id_or_name: str, *, learner: str | None = None) -> None:
    row = _cv_row(id_or_name, learner)
    _refuse_unless_owner(row, learner, "cross-validation")
    with _write() as conn:
        conn.execute("DELETE FROM cv_runs WHERE id = ?", (row["id"],))


# ---------------------------------------------------------------------------------------------
# Labelled drawings


def _png_bytes(canvas) -> bytes:
    if isinstance(canvas, (bytes, bytearray)):
        return bytes(canvas)
    from PIL import Image

    arr = np.asarray(canvas)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def save_drawing(
    image: np.ndarray, label: int, *, learner: str | None = None, canvas_png=None
) -> str:
    """Keep a drawing as the network sees it, (28, 28) float32 in [0, 1], with its digit and the raw
    canvas (PNG bytes, or the canvas's (H, W, 4) uint8 RGBA), so a better preprocessing can read it
    again. Returns its id."""
    owner = _owner(learner)
    image = np.asarray(image, dtype="float32")
    if image.shape != (28, 28):
        raise StoreError(f"A drawing must be a 28x28 image, not {image.shape}.")
    label = int(label)
    if not 0 <= label <= 9:
        raise StoreError(f"A drawing's label must be a digit 0..9, not {label}.")
    drawing_id = _new_id("d")
    png = None
    if canvas_png is not None:
        path = folder("drawings") / f"{drawing_id}.png"
        atomic_write_bytes(path, _png_bytes(canvas_png))
        png = path.relative_to(home()).as_posix()
    with _write() as conn:
        _ensure_learner(conn, owner)
        conn.execute(
            "INSERT INTO drawings (id, owner, label, image, png, saved_at) VALUES (?, ?, ?, ?, ?, ?)",
            (drawing_id, owner, label, np.ascontiguousarray(image).tobytes(), png, time.time()),
        )
    return drawing_id


def _drawing_rows(learner, exclude_learner, everyone: bool):
    where, args = ["hidden = 0"], []
    if not everyone:
        where.append("owner = ?")
        args.append(_owner(learner))
    if exclude_learner is not None:
        where.append("owner != ?")
        args.append(_owner(exclude_learner))
    return _conn().execute(
        f"SELECT * FROM drawings WHERE {' AND '.join(where)} ORDER BY saved_at DESC, rowid DESC",
        args,
    )


def load_drawings(
    learner: str | None = None, exclude_learner: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Labelled drawings, newest first: images (n, 28, 28) float32, labels (n,) uint8.

    learner="ana": ana's; learner=None: the whole room's (every learner's and the room's own),
    less exclude_learner's (a model is never scored on its owner's drawings)."""
    rows = drawing_table(learner=learner, exclude_learner=exclude_learner, with_images=True)
    images = np.stack([r["image"] for r in rows]) if rows else np.zeros((0, 28, 28), "float32")
    labels = np.array([r["label"] for r in rows], dtype="uint8")
    return images, labels


def drawing_table(
    *, learner: str | None = None, exclude_learner: str | None = None, with_images: bool = False
) -> list[dict]:
    """Drawings as dicts (id, learner, label, saved_at, png path or None[, image]), newest first;
    learner=None means the whole room, as in load_drawings."""
    out = []
    for r in _drawing_rows(learner, exclude_learner, everyone=learner is None):
        d = {
            "id": r["id"],
            "learner": None if r["owner"] == ROOM else r["owner"],
            "label": int(r["label"]),
            "saved_at": r["saved_at"],
            "png": home() / r["png"] if r["png"] else None,
        }
        if with_images:
            d["image"] = np.frombuffer(r["image"], dtype="float32").reshape(28, 28).copy()
        out.append(d)
    return out


def count_drawings(learner: str | None = None, exclude_learner: str | None = None) -> int:
    """How many drawings load_drawings(learner, exclude_learner) would return."""
    where, args = ["hidden = 0"], []
    if learner is not None:
        where.append("owner = ?")
        args.append(_owner(learner))
    if exclude_learner is not None:
        where.append("owner != ?")
        args.append(_owner(exclude_learner))
    row = _conn().execute(f"SELECT COUNT(*) FROM drawings WHERE {' AND '.join(where)}", args)
    return int(row.fetchone()[0])


def delete_drawing(drawing_id: str, *, learner: str | None = None) -> None:
    row = _conn().execute("SELECT * FROM drawings WHERE id = ?", (drawing_id,)).fetchone()
    if row is None:
        raise StoreError(f"There is no drawing with id {drawing_id!r}.")
    _refuse_unless_owner(row, learner, "drawing")
    with _write() as conn:
        conn.execute("DELETE FROM drawings WHERE id = ?", (drawing_id,))
    if row["png"]:
        (home() / row["png"]).unlink(missing_ok=True)
