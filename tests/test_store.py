"""digitlab.store: atomic writes, safe names, newest-first listings that survive a restart."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from digitlab import store


def test_home_follows_env(digitlab_home):
    assert store.home() == digitlab_home
    assert digitlab_home.is_dir()


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/abs/path", "..\\..\\win", "a/../../b", "~root", "x\x00y"]
)
def test_names_cannot_escape_home(name, digitlab_home):
    stem = store.safe_name(name)
    assert "/" not in stem and "\\" not in stem and ".." not in stem and "\x00" not in stem
    path = store.atomic_write_json(store.folder("cv") / f"{stem}.json", {"folds": []})
    assert path is None
    written = [p for p in digitlab_home.rglob("*") if p.is_file()]
    assert all(digitlab_home in p.parents for p in written)
    assert (store.folder("cv") / f"{stem}.json").is_file()


@pytest.mark.parametrize("name", ["", "..", "///", "...", "  "])
def test_unusable_names_are_refused(name):
    with pytest.raises(store.StoreError, match="not a usable name"):
        store.safe_name(name)


def test_crash_mid_write_keeps_old_file(digitlab_home):
    target = store.folder("cv") / "run.json"
    store.atomic_write_json(target, {"folds": [1], "v": "old"})

    def half_then_crash(tmp):
        tmp.write_text('{"folds": [2], "v": "ne')  # half a file ...
        raise OSError("disk full")  # ... then the crash

    with pytest.raises(OSError, match="disk full"):
        store.atomic_write(target, half_then_crash)
    assert store.read_json(target) == {"folds": [1], "v": "old"}
    assert [p.name for p in target.parent.iterdir()] == ["run.json"]  # no temp file left
    assert [r["v"] for r in store.list_cv()] == ["old"]


def test_crash_while_saving_model_lists_nothing(digitlab_home):
    class Exploding:
        def save(self, path):
            Path(path).write_bytes(b"PK half a zip")
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.save_model(Exploding(), name="half")
    assert store.list_models() == []
    assert not any(p.suffix == ".keras" for p in store.folder("models").iterdir())


def test_cv_results_newest_first_and_survive_restart(digitlab_home):
    a = store.save_cv({"folds": [{"accuracy": 0.9}], "reuse_model": False})
    time.sleep(0.01)
    b = store.save_cv({"folds": [{"accuracy": 0.8}], "reuse_model": True})
    assert a != b and b.startswith("cv-reused")
    assert [r["name"] for r in store.list_cv()] == [b, a]
    # A new process (a restarted server) sees the same list.
    code = "from digitlab import store; print(','.join(r['name'] for r in store.list_cv()))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == f"{b},{a}"
    assert store.load_cv(a)["folds"][0]["accuracy"] == 0.9
    with pytest.raises(store.StoreError, match="No saved cross-validation"):
        store.load_cv("nope")


def test_damaged_json_is_skipped(digitlab_home):
    store.save_cv({"folds": []}, name="good")
    (store.folder("cv") / "bad.json").write_text("{not json")
    assert [r["name"] for r in store.list_cv()] == ["good"]


def test_drawings_round_trip_newest_first(digitlab_home):
    img = np.zeros((28, 28), "float32")
    img[10:18, 12:16] = 1.0
    store.save_drawing(img, 1)
    time.sleep(0.01)
    store.save_drawing(img * 0.5, 7)
    images, labels = store.load_drawings()
    assert images.shape == (2, 28, 28) and images.dtype == np.float32
    assert labels.tolist() == [7, 1]
    np.testing.assert_allclose(images[1], img)
    assert store.count_drawings() == 2
    with pytest.raises(store.StoreError, match="28x28"):
        store.save_drawing(np.zeros((10, 10)), 3)
    with pytest.raises(store.StoreError, match="0..9"):
        store.save_drawing(img, 12)


def test_model_save_list_load(digitlab_home):
    from digitlab.models import ModelConfig, build_model

    model = build_model(ModelConfig(hidden_units=8, jit_compile=False), seed=0)
    first = store.save_model(
        model, name="../first model", meta={"arch": "mlp", "test_accuracy": 0.5}
    )
    assert first.name == "first-model" and first.path.parent == store.folder("models")
    time.sleep(0.01)
    store.save_model(model, name="second", meta={"arch": "mlp"})
    assert [e.name for e in store.list_models()] == ["second", "first-model"]
    loaded, entry = store.load_model("first-model")
    assert entry.meta["test_accuracy"] == 0.5 and "0.5000" in entry.label
    x = np.random.default_rng(0).random((3, 28, 28), dtype="float32")
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5)
    # Saving again under the same name replaces it, still one entry.
    store.save_model(model, name="second", meta={"arch": "mlp", "test_accuracy": 0.7})
    assert [e.meta.get("test_accuracy") for e in store.list_models()] == [0.7, 0.5]
    store.delete_model("second")
    assert [e.name for e in store.list_models()] == ["first-model"]
    with pytest.raises(store.StoreError, match="No saved model"):
        store.load_model("second")


def test_cv_run_round_trip_and_damage(digitlab_home):
    from digitlab.crossval import CVResult, FoldResult

    fold = FoldResult(
        fold=1,
        accuracy=0.9,
        loss=0.3,
        history={"loss": [0.5, 0.3]},
        seconds=1.0,
        n_train=80,
        n_test=20,
    )
    run = CVResult(
        folds=[fold],
        n_splits=2,
        epochs=2,
        batch_size=16,
        reuse_model=False,
        model_config={"arch": "mlp"},
        random_state=1,
        meta={"pair": "x"},
    )
    name = store.save_cv(run.to_dict())
    back = store.load_cv_run(name)
    assert back.folds[0].history == {"loss": [0.5, 0.3]} and back.meta == {"pair": "x"}
    assert back.mean == pytest.approx(0.9)
    store.atomic_write_json(store.folder("cv") / "odd.json", {"folds": [{"nope": 1}]})
    with pytest.raises(store.StoreError, match="damaged or from another version"):
        store.load_cv_run("odd")
