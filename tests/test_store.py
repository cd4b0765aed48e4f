"""digitlab.store: SQLite rows beside atomically written files; owners, versions, hostile names,
concurrent learners, a killed writer, and the import of the earlier layout."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitlab import crossval, files, store

HOSTILE = ["<script>alert(1)</script>", "../../x", "**bold**[link](javascript:alert(1))", "/etc"]


class FakeModel:
    """Anything with .save(path) is a model to the store; the real Keras round trip is tested below."""

    def __init__(self, payload: bytes = b"PK model"):
        self.payload = payload

    def save(self, path):
        Path(path).write_bytes(self.payload)


def digit_image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((28, 28), dtype="float32")


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_the_store_is_sqlite_in_wal_mode(digitlab_home):
    store.save_cv({"folds": []}, learner="ana")
    db = digitlab_home / "digitlab.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"learners", "models", "cv_runs", "drawings", "scores", "room"} <= tables


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_kept_as_text_and_never_reach_a_path(name, digitlab_home):
    entry = store.save_model(FakeModel(), name=name, meta={"arch": "mlp"}, learner=name)
    run = store.save_cv({"folds": []}, learner=name, name=name)
    store.save_drawing(digit_image(0), 3, learner=name, canvas_png=b"\x89PNG fake")
    assert entry.name == name and entry.owner == name  # exactly those characters
    assert [e.name for e in store.list_models(learner=name)] == [name]
    assert store.load_cv(run, learner=name)["name"] == name
    assert name in store.list_learners()
    for p in files_under(digitlab_home):  # every file inside home, none named after the text
        assert digitlab_home in p.parents
        assert "alert" not in p.name and "bold" not in p.name
    assert entry.path.parent == digitlab_home / "models"


@pytest.mark.parametrize(
    "name, words",
    [("", "1 to 40"), ("   ", "1 to 40"), ("x" * 41, "1 to 40"), ("a\nb", "printable"),
     ("tab\there", "printable"), ("nul\x00", "printable"), ("room", "reserved"), ("ROOM", "reserved")],
)  # fmt: skip
def test_unusable_learner_names_are_refused_in_one_sentence(name, words):
    with pytest.raises(store.StoreError, match=words) as e:
        store.check_learner(name)
    assert str(e.value).count(".") >= 1 and "\n" not in str(e.value)
    with pytest.raises(store.StoreError):
        store.save_drawing(digit_image(0), 1, learner=name)


def test_same_name_twice_keeps_both_as_versions(digitlab_home):
    a1 = store.save_model(FakeModel(b"one"), name="my-model", meta={"n": 1}, learner="ana")
    a2 = store.save_model(FakeModel(b"two"), name="my-model", meta={"n": 2}, learner="ana")
    b1 = store.save_model(FakeModel(b"bob"), name="my-model", meta={"n": 3}, learner="bob")
    assert (a1.version, a2.version, b1.version) == (1, 2, 1)
    assert [e.version for e in store.list_models(learner="ana")] == [2, 1]
    assert a1.path.read_bytes() == b"one" and a2.path.read_bytes() == b"two"
    assert store.model_entry("my-model", learner="ana").id == a2.id  # a name means the latest
    assert store.model_entry("my-model", learner="bob").id == b1.id
    assert "v2" in a2.label and "v" not in a1.title.replace("my-model", "")


def test_lists_show_only_the_learners_own(digitlab_home):
    store.save_model(FakeModel(), name="m", learner="ana")
    store.save_cv({"folds": []}, learner="ana")
    for i in range(3):
        store.save_drawing(digit_image(i), i, learner="ana")
    store.save_drawing(digit_image(9), 9, learner="bob")
    assert store.list_models(learner="bob") == [] and store.list_cv(learner="bob") == []
    assert store.load_drawings(learner="ana")[1].tolist() == [2, 1, 0]  # newest first
    assert store.load_drawings(learner="bob")[1].tolist() == [9]
    assert store.count_drawings("bob") == 1 and store.count_drawings() == 4  # None: the room
    assert store.load_drawings(exclude_learner="ana")[1].tolist() == [9]
    assert store.list_models() == []  # the room's own (learner=None) holds nothing yet


def test_changing_another_learners_items_is_refused(digitlab_home):
    mine = store.save_model(FakeModel(), name="mine", learner="ana")
    run = store.save_cv({"folds": []}, learner="ana")
    drawing = store.save_drawing(digit_image(0), 4, learner="ana")
    refusals = [
        lambda: store.delete_model(mine.id, learner="bob"),
        lambda: store.publish_model(mine.id, learner="bob"),
        lambda: store.delete_cv(run, learner="bob"),
        lambda: store.delete_drawing(drawing, learner="bob"),
        lambda: store.delete_model(mine.id),  # the room (learner=None) is not ana either
        lambda: store.load_model(mine.id, learner="bob"),  # not published: not even readable
        lambda: store.load_cv(run, learner="bob"),
    ]
    for refuse in refusals:
        with pytest.raises(store.StoreError, match="another learner|belongs to"):
            refuse()
    assert [e.id for e in store.list_models(learner="ana")] == [mine.id]
    assert store.count_drawings("ana") == 1 and len(store.list_cv(learner="ana")) == 1
    # bob's "mine" is his own name space: it does not reach ana's model
    with pytest.raises(store.StoreError, match="No saved model"):
        store.delete_model("mine", learner="bob")
    # published: others may read it, still not change it
    store.publish_model(mine.id, learner="ana")
    assert store.model_entry(mine.id, learner="bob").owner == "ana"
    with pytest.raises(store.StoreError, match="another learner"):
        store.delete_model(mine.id, learner="bob")
    store.delete_model(mine.id, learner="ana")
    assert store.list_models(learner="ana") == [] and not mine.path.exists()


def test_room_model_hide_and_clear(digitlab_home):
    ana = store.save_model(FakeModel(b"ana's"), name="ana-net", learner="ana")
    store.publish_model(ana.id, learner="ana")
    d = store.save_drawing(digit_image(1), 1, learner="bob", canvas_png=b"png")
    room = store.set_room_model(ana.id)
    assert store.room_model().id == room.id and room.owner == store.ROOM
    assert room.path.read_bytes() == b"ana's" and room.path != ana.path  # a copy the room owns
    store.set_hidden("drawing", d)
    assert store.count_drawings() == 0
    store.set_hidden("drawing", d, hidden=False)
    assert store.count_drawings() == 1
    counts = store.clear_room()
    assert counts == {"model": 1, "cv": 0, "drawing": 1, "learner": 2}
    assert store.list_all_models() == [store.room_model()]  # the room model stays
    assert not ana.path.exists() and not (digitlab_home / "drawings" / f"{d}.png").exists()
    assert store.list_learners() == []


def test_drawings_keep_the_raw_canvas_png(digitlab_home):
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[100:180, 130:150] = 255
    img = np.zeros((28, 28), "float32")
    img[10:18, 12:16] = 1.0
    store.save_drawing(img, 1, learner="ana", canvas_png=rgba)
    (row,) = store.drawing_table(learner="ana", with_images=True)
    np.testing.assert_array_equal(np.asarray(Image.open(row["png"])), rgba)
    np.testing.assert_allclose(row["image"], img)
    with pytest.raises(store.StoreError, match="28x28"):
        store.save_drawing(np.zeros((10, 10)), 3)
    with pytest.raises(store.StoreError, match="0..9"):
        store.save_drawing(img, 12)


def test_cv_results_newest_first_and_survive_restart(digitlab_home):
    a = store.save_cv({"folds": [{"accuracy": 0.9}], "reuse_model": False}, learner="ana")
    b = store.save_cv({"folds": [{"accuracy": 0.8}], "reuse_model": True}, learner="ana")
    assert a != b and store.load_cv(b, learner="ana")["name"].startswith("cv-reused")
    assert [r["id"] for r in store.list_cv(learner="ana")] == [b, a]
    # A new process (a restarted server) sees the same list.
    code = (
        "from digitlab import store; print(','.join(r['id'] for r in store.list_cv(learner='ana')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == f"{b},{a}"
    assert store.load_cv(a, learner="ana")["folds"][0]["accuracy"] == 0.9
    with pytest.raises(store.StoreError, match="No saved cross-validation"):
        store.load_cv("nope", learner="ana")


def test_crash_mid_write_keeps_old_file(digitlab_home):
    target = store.folder("x") / "run.json"
    files.atomic_write_json(target, {"v": "old"})

    def half_then_crash(tmp):
        tmp.write_text('{"v": "ne')  # half a file ...
        raise OSError("disk full")  # ... then the crash

    with pytest.raises(OSError, match="disk full"):
        files.atomic_write(target, half_then_crash)
    assert files.read_json(target) == {"v": "old"}
    assert [p.name for p in target.parent.iterdir()] == ["run.json"]  # no temp file left


def test_crash_while_saving_model_lists_nothing(digitlab_home):
    class Exploding:
        def save(self, path):
            Path(path).write_bytes(b"PK half a zip")
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.save_model(Exploding(), name="half", learner="ana")
    assert store.list_models(learner="ana") == []
    assert not any(p.suffix == ".keras" for p in store.folder("models").iterdir())


def test_model_save_list_load_keras(digitlab_home):
    from digitlab.models import ModelConfig, build_model

    model = build_model(ModelConfig(hidden_units=8, jit_compile=False), seed=0)
    first = store.save_model(
        model, name="../first model", meta={"arch": "mlp", "test_accuracy": 0.5}, learner="ana"
    )
    assert first.name == "../first model" and first.path.parent == store.folder("models")
    loaded, entry = store.load_model("../first model", learner="ana")
    assert entry.meta["test_accuracy"] == 0.5 and "0.5000" in entry.label
    x = np.random.default_rng(0).random((3, 28, 28), dtype="float32")
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5)


def test_cv_run_round_trip_and_damage(digitlab_home):
    from digitlab.crossval import CVResult, FoldResult

    fold = FoldResult(
        fold=1, accuracy=0.9, loss=0.3, history={"loss": [0.5, 0.3]}, seconds=1.0, n_train=80, n_test=20
    )  # fmt: skip
    run = CVResult(
        folds=[fold], n_splits=2, epochs=2, batch_size=16, reuse_model=False,
        model_config={"arch": "mlp"}, random_state=1, meta={"pair": "x"},
    )  # fmt: skip
    run_id = store.save_cv(run.to_dict(), learner="ana")
    back = crossval.load_cv_run(run_id, learner="ana")
    assert back.folds[0].history == {"loss": [0.5, 0.3]} and back.meta == {"pair": "x"}
    assert back.mean == pytest.approx(0.9)
    odd = store.save_cv({"folds": [{"nope": 1}]}, learner="ana", name="odd")
    with pytest.raises(store.StoreError, match="damaged or from another version"):
        crossval.load_cv_run(odd, learner="ana")


def test_a_cv_pair_is_saved_and_shown_together(digitlab_home):
    from digitlab.crossval import CVResult, FoldResult

    def run(accuracy, reuse):
        fold = FoldResult(
            fold=1, accuracy=accuracy, loss=0.3, history={"loss": [0.3]}, seconds=1.0, n_train=80, n_test=20
        )  # fmt: skip
        return CVResult(
            folds=[fold], n_splits=2, epochs=1, batch_size=16, reuse_model=reuse,
            model_config={"arch": "mlp"}, random_state=1,
        )  # fmt: skip

    ids = crossval.save_cv_pair(run(0.8, False), run(0.95, True), learner="ana")
    view = crossval.load_cv_pair(ids["fresh"], learner="ana")
    assert {k: r.folds[0].accuracy for k, r in view.items()} == {"fresh": 0.8, "reused": 0.95}
    assert set(crossval.load_cv_pair(ids["reused"], learner="ana")) == {"reused"}
    with pytest.raises(store.StoreError, match="another learner"):
        crossval.load_cv_pair(ids["fresh"], learner="bob")
    store.delete_cv(ids["reused"], learner="ana")  # the partner gone: the fresh run alone
    assert set(crossval.load_cv_pair(ids["fresh"], learner="ana")) == {"fresh"}
    alone = crossval.save_cv_pair(run(0.7, False), None, learner="ana")  # no reused variant run
    assert set(alone) == {"fresh"}
    assert set(crossval.load_cv_pair(alone["fresh"], "ana")) == {"fresh"}


# ---------------------------------------------------------------------------------------------
# The earlier layout, imported on first start


def test_old_layout_is_imported_owned_by_the_room(digitlab_home):
    from digitlab.models import ModelConfig, build_model

    models, cv, drawings = (digitlab_home / d for d in ("models", "cv", "drawings"))
    for d in (models, cv, drawings):
        d.mkdir(parents=True)
    model = build_model(ModelConfig(hidden_units=8, jit_compile=False), seed=0)
    model.save(models / "quick-mlp.keras")
    (models / "quick-mlp.json").write_text(
        json.dumps({"name": "quick-mlp", "arch": "mlp", "test_accuracy": 0.91, "saved_at": 100.0})
    )
    (models / "orphan.json").write_text("{}")  # metadata without a model: not a model
    (cv / "cv-20250101-000000.json").write_text(
        json.dumps({"folds": [{"accuracy": 0.97}], "n_splits": 5, "saved_at": 50.0})
    )
    (cv / "broken.json").write_text("{not json")
    for i, label in enumerate([3, 7]):
        buf = io.BytesIO()
        np.savez_compressed(
            buf, image=digit_image(i), label=np.uint8(label), saved_at=np.float64(10 + i)
        )
        (drawings / f"2025-{i}-{label}.npz").write_bytes(buf.getvalue())
    before = {p: p.read_bytes() for p in files_under(digitlab_home)}

    (entry,) = store.list_models()  # first start: the import
    assert (entry.name, entry.owner, entry.meta["test_accuracy"]) == ("quick-mlp", "room", 0.91)
    assert store.load_model("quick-mlp")[0] is not None
    (run,) = store.list_cv()
    assert run["name"] == "cv-20250101-000000" and run["folds"][0]["accuracy"] == 0.97
    images, labels = store.load_drawings()
    assert labels.tolist() == [7, 3]
    np.testing.assert_allclose(images[1], digit_image(0))
    for p, data in before.items():  # nothing lost: every old file still there, unchanged
        assert p.read_bytes() == data
    # a second start (another process) imports nothing again
    code = "from digitlab import store; print(len(store.list_models()), store.count_drawings())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "2"]


# ---------------------------------------------------------------------------------------------
# Under load: 20 learners at once; a writer killed mid-save


def test_twenty_learners_saving_at_once(digitlab_home):
    learners = [f"learner {i:02d} <{i}>" for i in range(20)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(learners))

    def work(name: str) -> None:
        try:
            start.wait()
            for k in range(3):
                store.save_model(FakeModel(f"{name}/{k}".encode()), name="my-model", learner=name)
                store.save_cv({"folds": [{"accuracy": k / 10}]}, learner=name, name="run")
                store.save_drawing(np.full((28, 28), k / 10, "float32"), k, learner=name)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in learners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for name in learners:
        models = store.list_models(learner=name)
        assert [m.version for m in models] == [3, 2, 1]
        assert all(m.owner == name for m in models)
        assert sorted(m.path.read_bytes() for m in models) == [
            f"{name}/{k}".encode() for k in range(3)
        ]
        assert [r["version"] for r in store.list_cv(learner=name)] == [3, 2, 1]
        images, labels = store.load_drawings(learner=name)
        assert sorted(labels.tolist()) == [0, 1, 2]
        assert sorted(float(im[0, 0]) for im in images) == pytest.approx([0, 0.1, 0.2])
    assert store.count_drawings() == 60 and len(store.list_all_models()) == 60


SAVER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from digitlab import store

    class Big:
        def save(self, path):
            with open(path, "wb") as f:
                f.write(b"PK" + bytes(4_000_000))

    store.save_model(Big(), name="keep", learner="ana")
    print("READY", flush=True)
    i = 0
    while True:  # saving until killed: the kill lands somewhere inside one of these writes
        store.save_model(Big(), name="keep", meta={"round": i}, learner="ana")
        store.save_cv({"folds": [{"accuracy": 0.5}] * 50}, name="cv", learner="ana")
        store.save_drawing(np.random.rand(28, 28).astype("float32"), i % 10, learner="ana",
                           canvas_png=bytes(200_000))
        i += 1
    """
)


@pytest.mark.parametrize("delay", [0.3, 1.1])
def test_a_writer_killed_mid_save_leaves_whole_items(tmp_path, delay, monkeypatch):
    home = tmp_path / "home"
    env = dict(os.environ, DIGITLAB_HOME=str(home))
    saver = subprocess.Popen(
        [sys.executable, "-c", SAVER], env=env, stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert saver.stdout.readline().strip() == "READY"
        threading.Event().wait(delay)  # let it write for a while (not synchronisation)
        os.killpg(saver.pid, signal.SIGKILL)  # no cleanup, no finally: like a power cut
    finally:
        if saver.poll() is None:
            os.killpg(saver.pid, signal.SIGKILL)
        saver.wait(10)
    monkeypatch.setenv("DIGITLAB_HOME", str(home))  # this process opens the database after the kill
    with sqlite3.connect(home / "digitlab.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    models = store.list_models(learner="ana")
    assert models and models[-1].version == 1
    for m in models:  # every listed model is whole
        assert m.path.read_bytes() == b"PK" + bytes(4_000_000)
    for d in store.drawing_table(learner="ana"):
        assert d["png"].stat().st_size == 200_000
    assert all(len(r["folds"]) == 50 for r in store.list_cv(learner="ana"))
    leftovers = [p.name for p in files_under(home) if p.name.startswith(".")]
    assert all(".tmp" in n for n in leftovers)  # at most an unlisted temporary


def test_a_finished_run_is_kept_with_its_settings_and_scores(tiny_digits):
    """store.save_trained: the one way the quick model and `train --save-as` are kept."""
    from digitlab.models import ModelConfig
    from digitlab.training import TrainConfig, train

    result = train(
        tiny_digits, model_config=ModelConfig(hidden_units=16), train_config=TrainConfig(epochs=1)
    )
    first = store.save_trained(result, learner="ana")
    again = store.save_trained(result, learner="ana")
    assert (first.name, again.name) == (store.QUICK_MODEL, store.QUICK_MODEL)
    assert first.id != again.id  # the same name twice: two versions
    meta = again.meta
    assert meta["arch"] == "mlp" and meta["description"] == result.model_config.describe()
    assert meta["test_accuracy"] == result.test_accuracy and meta["origin"] == "trained here"
    assert meta["data_source"] == tiny_digits.source
