"""Learners in the app (AppTest): the name in the URL, each learner's own lists, names shown as text,
the room password, the Room page's leaderboard and the instructor's controls; digitlab.room headless."""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from digitlab import jobs, room, store

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
TIMEOUT = 120
HOSTILE = "**bold**[link](javascript:alert(1))"


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("DIGITLAB_OFFLINE", "1")
    monkeypatch.setenv("DIGITLAB_LIMIT", "200")
    monkeypatch.delenv("DIGITLAB_MNIST", raising=False)
    monkeypatch.delenv("DIGITLAB_ROOM_PASSWORD", raising=False)
    monkeypatch.delenv("DIGITLAB_INSTRUCTOR_PASSWORD", raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def tiny_model():
    from digitlab.models import ModelConfig, build_model

    return build_model(ModelConfig(hidden_units=8, jit_compile=False), seed=0)


def start(learner: str | None = None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if learner is not None:
        at.query_params["learner"] = learner
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def markdown_of(at) -> str:
    return "\n".join(str(m.value) for m in at.markdown)


def digit(label: int) -> np.ndarray:
    img = np.zeros((28, 28), "float32")
    img[6:22, 10 + label : 13 + label] = 1.0
    return img


def seed_room(model) -> dict:
    """ana and bob each publish a model; bob and carol label drawings; the room has none."""
    ana = store.save_model(
        model, name="ana-net", meta={"arch": "mlp", "test_accuracy": 0.9}, learner="ana"
    )
    bob = store.save_model(
        model, name="bob-net", meta={"arch": "cnn", "test_accuracy": 0.8}, learner="bob"
    )
    store.save_model(model, name="draft", meta={"arch": "mlp"}, learner="ana")  # not published
    store.publish_model(ana.id, learner="ana")
    store.publish_model(bob.id, learner="bob")
    for i in range(3):
        store.save_drawing(digit(i), i, learner="bob")
    for i in range(5):
        store.save_drawing(digit(i), i, learner="carol")
    return {"ana": ana, "bob": bob}


# ---------------------------------------------------------------------------------------------
# digitlab.room, headless


def test_leaderboard_scores_each_model_on_other_learners_drawings(tiny_model):
    seed_room(tiny_model)
    board = room.leaderboard()
    assert {r["learner"]: r["others_n"] for r in board} == {"ana": 8, "bob": 5}  # never their own
    assert {r["name"] for r in board} == {"ana-net", "bob-net"}  # the unpublished draft is not
    ana = next(r for r in board if r["learner"] == "ana")
    images, labels = store.load_drawings(exclude_learner="ana")
    pred = tiny_model.predict(images, verbose=0).argmax(axis=1)
    assert ana["others_accuracy"] == pytest.approx(float((pred == labels).mean()))
    assert room.drawings_by_digit() == {"bob": [1, 1, 1] + [0] * 7, "carol": [1] * 5 + [0] * 5}
    entry = next(e for e in store.list_all_models(published_only=True) if e.id == ana["id"])
    unusable = object()  # a model that cannot predict: only a kept score can be answered with it
    assert room.others_accuracy(entry, model=unusable) == (ana["others_accuracy"], 8)
    store.save_drawing(digit(3), 3, learner="carol")  # the basis changes: scored again
    assert room.others_accuracy(entry, model=tiny_model)[1] == 9


def test_export_zip_holds_models_drawings_and_leaderboard(tiny_model):
    seeded = seed_room(tiny_model)
    store.save_drawing(digit(7), 7, learner="=cmd|' /C calc'!A0", canvas_png=b"\x89PNG raw")
    data = room.export_zip()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = set(z.namelist())
        assert {"models.csv", "drawings.csv", "drawings.npz", "leaderboard.csv"} <= names
        assert f"models/{seeded['ana'].id}.keras" in names
        assert sum(n.startswith("drawings/") and n.endswith(".png") for n in names) == 1
        with np.load(io.BytesIO(z.read("drawings.npz"))) as f:
            assert f["images"].shape == (9, 28, 28) and sorted(f["labels"].tolist())[-1] == 7
        assert "'=cmd" in z.read("drawings.csv").decode()  # a formula stays text in a spreadsheet
        assert z.read("leaderboard.csv").decode().count("\n") == 3  # header and two models


# ---------------------------------------------------------------------------------------------
# The app


def test_learner_from_the_url_sees_only_their_own(env, tiny_model):
    seed_room(tiny_model)
    at = start("ana", "app_pages/train.py")
    assert at.text_input(key="learner_box").value == "ana"
    assert at.query_params["learner"] == ["ana"] or at.query_params["learner"] == "ana"
    options = at.selectbox(key="load_pick").options
    assert len(options) == 2 and all("net" in o or "draft" in o for o in options)
    at = start("bob", "app_pages/train.py")
    assert at.selectbox(key="load_pick").options == [store.list_models(learner="bob")[0].label]


def test_typing_a_name_keeps_it_in_the_url_and_refuses_bad_ones(env):
    at = start()
    at.text_input(key="learner_box").input("room").run()
    assert "reserved" in " ".join(e.value for e in at.error)
    at.text_input(key="learner_box").input("Dana").run()
    assert not at.error and at.session_state["learner"] == "Dana"
    assert "Dana" in str(at.query_params["learner"])


def test_names_show_as_exactly_their_characters(env, tiny_model):
    entry = store.save_model(tiny_model, name=HOSTILE, meta={"arch": "mlp"}, learner=HOSTILE)
    at = start(HOSTILE, "app_pages/draw.py")  # autoloads the learner's own latest model
    assert at.session_state["current_model"].name == HOSTILE
    md = markdown_of(at)
    assert "\\*\\*bold\\*\\*\\[link\\]\\(javascript\\:alert\\(1\\)\\)" in md
    assert "**bold**" not in md and "](javascript" not in md
    assert store.model_entry(entry.id, learner=HOSTILE).path.parent == store.folder("models")


def test_draw_page_falls_back_to_the_room_model(env, tiny_model):
    seeded = seed_room(tiny_model)
    room_entry = store.set_room_model(seeded["bob"].id)
    at = start("erin", "app_pages/draw.py")  # erin has no model of her own
    assert at.session_state["current_model"].saved_as == room_entry.name
    at = start("ana", "app_pages/draw.py")  # ana's own latest comes first
    assert at.session_state["current_model"].name == "draft"


def test_room_password_gates_every_page(env):
    env.setenv("DIGITLAB_ROOM_PASSWORD", "s3cret")
    at = start()
    assert not at.sidebar.text_input and len(at.text_input) == 1  # only the password box
    at.text_input(key="room_password").input("wrong").run()
    assert "not the room's password" in at.error[0].value
    at.text_input(key="room_password").input("s3cret").run()
    assert not at.exception and at.title[0].value == "DigitLab" and not at.error
    at.switch_page("app_pages/room.py").run()
    assert not at.exception and at.title[0].value == "The room"


def test_room_page_leaderboard_and_publishing(env, tiny_model):
    seeded = seed_room(tiny_model)
    at = start("ana", "app_pages/room.py")
    board = at.dataframe[0].value
    assert board["learner"].tolist() in (["ana", "bob"], ["bob", "ana"])
    assert dict(zip(board["learner"], board["drawings scored"], strict=True)) == {
        "ana": 8,
        "bob": 5,
    }
    assert len(at.get("plotly_chart")) == 2  # the board and the drawings by digit
    assert not [b for b in at.button if b.key == "room_model_set"]  # no instructor here
    # ana takes her model off the board, then publishes her draft
    at.selectbox(key="room_my_pick").set_value(seeded["ana"].id).run()
    at.button(key="room_publish").click().run()
    assert store.model_entry(seeded["ana"].id, learner="ana").published is False
    assert at.dataframe[0].value["learner"].tolist() == ["bob"]


def test_instructor_controls(env, tiny_model):
    env.setenv("DIGITLAB_INSTRUCTOR_PASSWORD", "teach")
    seeded = seed_room(tiny_model)
    at = start(None, "app_pages/room.py")
    at.text_input(key="instructor_password").input("nope").run()
    assert "not the instructor's password" in " ".join(e.value for e in at.error)
    at.text_input(key="instructor_password").input("teach").run()
    assert not at.exception
    assert "Server memory" in [m.label for m in at.metric]  # the server's load, for the instructor
    # the room model: the Room page then shows its confusion on the room's drawings
    at.selectbox(key="room_model_pick").set_value(seeded["ana"].id).run()
    at.button(key="room_model_set").click().run()
    assert store.room_model().meta["from_id"] == seeded["ana"].id
    at.run()
    assert "of the room's 8 drawings right" in "\n".join(c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 3
    # hide bob's model: off the board
    at.radio(key="hide_kind").set_value("model").run()
    at.selectbox(key="hide_pick").set_value(seeded["bob"].id).run()
    at.button(key="hide_item").click().run()
    assert [r["learner"] for r in room.leaderboard()] == ["ana"]
    # every learner's running jobs, with a Stop for each
    release = threading.Event()

    def waits(on_event, stop):
        on_event({"type": "start", "epochs": 1})
        while not stop.is_set() and not release.is_set():
            stop.wait(0.05)
        return None

    job = jobs.manager().submit(waits, kind="train", label="held run", learner="bob", watched=False)
    try:
        at.run()
        assert any(t.value == "bob" for t in at.text)
        at.button(key=f"room_stop_{job.id}").click().run()
        assert job.wait(30) and job.stop_event.is_set()
    finally:
        release.set()
    # export, then clear: every learner's items go, the room model stays
    assert at.get("download_button")[0].proto.label == "Export the room (.zip)"
    at.checkbox(key="clear_sure").check().run()
    at.button(key="clear_room").click().run()
    assert "Removed 3 models" in at.success[-1].value
    assert store.list_all_models() == [store.room_model()] and store.count_drawings() == 0


def test_room_charts_show_names_as_text():
    from digitlab import charts

    hostile = "<b>bold</b><a href='javascript:alert(1)'>x</a>"
    board = [{"learner": hostile, "name": "m", "test_accuracy": 0.9, "others_accuracy": 0.5}]
    fig = charts.leaderboard_figure(board)
    assert (
        fig.data[0].y[0]
        == "&lt;b&gt;bold&lt;/b&gt;&lt;a href='javascript:alert(1)'&gt;x&lt;/a&gt;: m"
    )
    drawn = charts.room_drawings_figure({hostile: [1] * 10, "room": [0] * 10})
    assert [t.name for t in drawn.data][0].startswith("&lt;b&gt;") and drawn.data[1].name == "room"
