"""The room, computed headless: the leaderboard of published models, the room's drawings by digit,
the room model's confusion on them, and the room as one zip.

A model is scored on the labelled drawings of *other* learners only (never its owner's), so
nobody gains by drawing for their own model. Scores are kept in the store's scores table and
computed again only when the drawings they rest on change.
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile

import numpy as np

from digitlab import store

OTHERS = "room_others"  # scores kind: accuracy on the drawings of learners other than the owner


def _basis(owner: str | None) -> str:
    """What a score on the drawings of everyone but owner rests on: their count and the newest."""
    rows = store.drawing_table(exclude_learner=owner)
    return f"{len(rows)}:{rows[0]['id'] if rows else ''}"


def others_accuracy(entry: store.ModelEntry, *, model=None) -> tuple[float | None, int]:
    """(accuracy, n) of a saved model on the room's drawings by learners other than its owner."""
    from digitlab.models import accuracy, load_model_file

    owner = entry.learner
    basis = _basis(owner)
    cached = store.cached_score(entry.id, OTHERS, basis)
    if cached is not None:
        return cached
    images, labels = store.load_drawings(exclude_learner=owner)  # (n, 28, 28) float32, (n,)
    value = None
    if len(labels):
        value = accuracy(
            model if model is not None else load_model_file(entry.path), images, labels
        )
    store.put_score(entry.id, OTHERS, basis, value, len(labels))
    return value, len(labels)


def leaderboard() -> list[dict]:
    """Published models, best on other learners' drawings first (then MNIST test accuracy).

    Each row: id, learner, name, version, arch, settings, test_accuracy, others_accuracy,
    others_n. A model that cannot be loaded is listed with others_accuracy None and its error."""
    from digitlab.models import ModelError

    rows = []
    for e in store.list_all_models(published_only=True):
        row = {
            "id": e.id,
            "learner": e.learner,
            "name": e.title,
            "arch": e.meta.get("arch", "?"),
            "settings": e.meta.get("description", ""),
            "test_accuracy": e.meta.get("test_accuracy"),
            "others_accuracy": None,
            "others_n": 0,
            "error": None,
        }
        try:
            row["others_accuracy"], row["others_n"] = others_accuracy(e)
        except (ModelError, OSError) as err:
            row["error"] = str(err)
        rows.append(row)

    def rank(r):
        return (
            -1 if r["others_accuracy"] is None else r["others_accuracy"],
            r["test_accuracy"] or 0,
        )

    return sorted(rows, key=rank, reverse=True)


def drawings_by_digit() -> dict[str, list[int]]:
    """How many drawings each learner (and the room itself, as 'room') kept of each digit."""
    out: dict[str, list[int]] = {}
    for d in store.drawing_table():
        counts = out.setdefault(d["learner"] or store.ROOM, [0] * 10)
        counts[d["label"]] += 1
    return out


def room_confusion(model=None) -> tuple[np.ndarray, float | None, int] | None:
    """The room model (or model) on all the room's drawings: (confusion (10, 10), accuracy, n);
    None without a room model."""
    from digitlab.explore import confusion
    from digitlab.models import load_model_file, predict_proba

    if model is None:
        entry = store.room_model()
        if entry is None:
            return None
        model = load_model_file(entry.path)
    images, labels = store.load_drawings()
    if not len(labels):
        return np.zeros((10, 10), int), None, 0
    pred = predict_proba(model, images).argmax(axis=1)
    return confusion(labels, pred), float((pred == labels).mean()), len(labels)


def export_zip(board: list[dict] | None = None) -> bytes:
    """The room as one zip: models (.keras by id, with models.csv), drawings (canvas PNGs by id,
    drawings.npz with every 28x28, drawings.csv) and the leaderboard (leaderboard.csv).

    Names are display text: inside the zip too, files are named by id and the CSVs carry names."""
    board = leaderboard() if board is None else board
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        models = store.list_all_models()
        z.writestr("models.csv", _csv(
            [{"id": e.id, "learner": e.learner or store.ROOM, "name": e.name, "version": e.version,
              "published": e.published, "saved_at": e.saved_at, "meta": json.dumps(e.meta)}
             for e in models]
        ))  # fmt: skip
        for e in models:
            if e.path.is_file():
                z.write(e.path, f"models/{e.id}.keras")
        rows = store.drawing_table(with_images=True)
        z.writestr("drawings.csv", _csv(
            [{"id": d["id"], "learner": d["learner"] or store.ROOM, "label": d["label"],
              "saved_at": d["saved_at"], "canvas_png": f"drawings/{d['id']}.png" if d["png"] else ""}
             for d in rows]
        ))  # fmt: skip
        for d in rows:
            if d["png"] is not None and d["png"].is_file():
                z.write(d["png"], f"drawings/{d['id']}.png")
        arrays = io.BytesIO()
        np.savez_compressed(
            arrays,
            ids=np.array([d["id"] for d in rows], dtype=str),
            images=np.stack([d["image"] for d in rows])
            if rows
            else np.zeros((0, 28, 28), "float32"),
            labels=np.array([d["label"] for d in rows], dtype="uint8"),
        )
        z.writestr("drawings.npz", arrays.getvalue())
        z.writestr("leaderboard.csv", _csv(board))
        z.writestr("README.txt", f"DigitLab room export, {time.strftime('%Y-%m-%d %H:%M:%S')}.\n")
    return buf.getvalue()


def _csv(rows: list[dict]) -> str:
    """CSV text; a cell a spreadsheet would run as a formula ('=...', '+...') starts with a quote."""
    out = io.StringIO()
    if rows:
        w = csv.DictWriter(out, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(v) for k, v in r.items()})
    return out.getvalue()


def _cell(v):
    return "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") else v
