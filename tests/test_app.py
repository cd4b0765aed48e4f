"""The Streamlit app through AppTest: every page renders, and Train, Evaluate, Draw really work.

Data comes from the library's loader: the offline subset cut to DIGITLAB_LIMIT digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
PAGES = [
    "app_pages/data.py",
    "app_pages/train.py",
    "app_pages/evaluate.py",
    "app_pages/room.py",
    "app_pages/draw.py",  # last: the check after the loop reads its empty canvas
]
TIMEOUT = 180


def texts(at) -> str:
    parts = [
        e.value
        for kind in ("markdown", "caption", "info", "warning", "error", "success")
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


def charts_of(at) -> list:
    return list(at.get("plotly_chart"))


def finish(at, key: str, timeout: float = TIMEOUT):
    job = at.session_state[key]
    assert job.wait(timeout), f"{key} did not finish in {timeout} s"
    assert job.status == "done", job.progress.error
    return at.run()


def test_every_page_renders_empty(app):
    at = app
    assert not at.exception
    assert "DigitLab" in at.title[0].value
    assert "400 train · 400 test" in texts(at) and "none yet" in texts(at)
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert "none yet" in texts(at)  # the sidebar on every page
    assert "Nothing drawn yet." in texts(at)  # the Draw page's empty canvas


def test_data_page_filters_and_reshuffles(app):
    at = app.switch_page("app_pages/data.py").run()
    assert len(charts_of(at)) == 3  # samples, counts, mean images
    assert "label 3" in str(charts_of(at)[0].proto.spec)  # the sample grid shows every digit
    at.selectbox(key="data_digit").set_value(7).run()
    assert not at.exception
    assert "label 7" in str(charts_of(at)[0].proto.spec) and "label 3" not in str(
        charts_of(at)[0].proto.spec
    )
    before = charts_of(at)[0].proto.spec
    at.button[0].click().run()  # Reshuffle
    assert at.session_state["sample_seed"] == 1 and charts_of(at)[0].proto.spec != before
    assert at.dataframe[0].value.shape[0] == 2  # facts: train and test


def test_train_page_runs_and_shows_results(app):
    at = app.switch_page("app_pages/train.py").run()
    at.number_input(key="t_epochs").set_value(2)
    at.select_slider(key="t_units").set_value(64)
    at.button(key="t_start").click().run()
    assert not at.exception
    at = finish(at, "train_job")
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert labels[:4] == ["Test accuracy", "Test loss", "Epochs run", "Time"]
    assert float(at.metric[0].value) > 0.5  # 2 epochs on 360 digits learn something
    assert at.metric[2].value == "2 of 2"
    assert len(charts_of(at)) >= 4  # loss, accuracy, confusion matrix, misclassified gallery
    assert "Misclassified test digits" in texts(at)
    model_now = at.session_state["current_model"]
    assert model_now is not None and model_now.origin == "trained here"
    assert f"Current model: **{model_now.name}**" in texts(at)
    # Save it; it is listed for loading, and a fresh session on the Draw page loads it.
    at.text_input[0].set_value("my first")
    at.button(key="save_model").click().run()
    assert not at.exception and "Saved as my first, the room's." in texts(at)  # no server path
    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    fresh.switch_page("app_pages/draw.py").run()
    assert not fresh.exception
    assert fresh.session_state["current_model"].name == "my first"  # a name, never a file name


def test_train_page_stop_keeps_partial_model(app):
    import time

    at = app.switch_page("app_pages/train.py").run()
    at.number_input(key="t_epochs").set_value(50)
    at.select_slider(key="t_batch").set_value(16)
    at.select_slider(key="t_units").set_value(32)
    at.button(key="t_start").click().run()
    job = at.session_state["train_job"]
    t0 = time.monotonic()
    while not job.progress.of_type("epoch") and time.monotonic() - t0 < TIMEOUT:
        time.sleep(0.05)
    at.run()  # the live panel, as the fragment shows it
    bars = [bar.text for bar in at.get("progress")]
    assert len(bars) == 1 and bars[0].startswith("Epoch ") and " of 50 · " in bars[0], bars
    at.button(key="train_stop").click().run()
    assert job.wait(60) and job.status == "stopped"
    at.run()
    assert not at.exception
    assert "what it learned so far is kept" in texts(at)
    run, planned = at.metric[2].value.split(" of ")
    assert planned == "50" and 1 <= int(run) < 50
    assert at.session_state["current_model"] is not None  # the partial model is usable


def test_train_page_refuses_an_upload_that_is_no_model_in_one_sentence(app):
    at = app.switch_page("app_pages/train.py").run()
    assert at.expander[0].label == "Load a saved or uploaded model"
    upload = at.file_uploader(key="upload_model")
    upload.set_value(("bad.keras", b"not a zip at all", "application/zip")).run()
    assert not at.exception
    errors = [e.value.replace("\\", "") for e in at.error]  # markup escaped: the file's name
    assert errors == ["bad.keras is not a .keras model file (a .keras file is a zip archive)."]
    assert at.session_state["current_model"] is None  # nothing replaced the (absent) model


def test_evaluate_page_runs_exactly_the_digits_it_shows(app):
    """Five digits typed (below any sensible size): the page says the folds mean little, and
    the run uses exactly those five, not all the digits behind them."""
    at = app.switch_page("app_pages/evaluate.py").run()
    at.number_input(key="cv_folds").set_value(5)
    at.number_input(key="cv_epochs").set_value(1)
    at.number_input(key="cv_n").set_value(5).run()
    assert "Each fold tests only 1 digit" in texts(at) and "mean little" in texts(at)
    at.button(key="cv_start").click().run()
    assert not at.exception
    job = at.session_state["cv_job"]
    assert job.wait(TIMEOUT) and job.status == "done", job.progress.error
    folds = job.progress.result["fresh"].folds
    assert [(f.n_train, f.n_test) for f in folds] == [(4, 1)] * 5  # 5 digits in all, no more


def test_evaluate_page_refuses_more_folds_than_digits_in_one_sentence(app):
    at = app.switch_page("app_pages/evaluate.py").run()
    at.number_input(key="cv_folds").set_value(6)
    at.number_input(key="cv_n").set_value(5)
    at.button(key="cv_start").click().run()
    assert [e.value for e in at.error] == ["6 folds need at least 6 digits, but there are only 5."]
    assert at.session_state["cv_job"] is None  # nothing started


def test_evaluate_page_two_folds_with_reused_variant(app):
    at = app.switch_page("app_pages/evaluate.py").run()
    at.number_input(key="cv_folds").set_value(2)
    at.number_input(key="cv_epochs").set_value(1)
    at.number_input(key="cv_n").set_value(200)
    at.checkbox(key="cv_reused").check()
    at.button(key="cv_start").click().run()
    assert not at.exception
    at = finish(at, "cv_job")
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert "Mean accuracy, fresh model per fold" in labels
    assert "Mean accuracy, reused model (leaks)" in labels
    assert "already trained on the digits it is tested on" in texts(at)
    assert "2 folds, 1 epoch each, batch 128, " in texts(at)  # the run's settings, in words
    assert len(at.dataframe) >= 2  # one table per variant
    assert at.dataframe[0].value.shape[0] == 2  # two folds
    box = [c for c in charts_of(at) if '"type":"box"' in c.proto.spec.replace(" ", "")]
    assert (
        len(box) == 1
        and box[0].proto.spec.count('"type":"box"') + box[0].proto.spec.count('"type": "box"') == 2
    )
    # Both runs were kept; a fresh session lists them and shows the pair again.
    from digitlab import store

    assert len(store.list_cv()) == 2
    again = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    again.switch_page("app_pages/evaluate.py").run()
    again.button(key="cv_load").click().run()
    assert not again.exception
    assert "Mean accuracy, reused model (leaks)" in [m.label for m in again.metric]


def canvas_digit(digit_image: np.ndarray) -> np.ndarray:
    """A real MNIST digit as a 280x280 RGBA canvas: white ink on opaque black."""
    big = Image.fromarray(digit_image).resize((280, 280), Image.Resampling.BILINEAR)
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., 0] = rgba[..., 1] = rgba[..., 2] = np.asarray(big)
    rgba[..., 3] = 255
    return rgba


def test_draw_logic_canvas_to_prediction(tiny_digits):
    """What the Draw page does with a canvas image, through the library it calls."""
    from digitlab import explore
    from digitlab.models import ModelConfig
    from digitlab.training import TrainConfig, train

    result = train(
        tiny_digits,
        model_config=ModelConfig(hidden_units=128, jit_compile=False),
        train_config=TrainConfig(epochs=5, batch_size=32),
    )
    blank = np.zeros((280, 280, 4), np.uint8)
    blank[..., 3] = 255
    assert explore.read_drawing(result.model, blank).problem == "Nothing drawn yet."
    assert explore.read_drawing(result.model, None).problem == "Nothing drawn yet."
    dot = blank.copy()
    ImageDraw.Draw(img := Image.fromarray(dot)).ellipse((140, 140, 146, 146), fill="white")
    assert "dot" in explore.read_drawing(result.model, np.asarray(img)).problem
    # Real test digits drawn onto the canvas are read as their labels, most of the time.
    x, y = tiny_digits.x_test[:40], tiny_digits.y_test[:40]
    readings = [explore.read_drawing(result.model, canvas_digit(im)) for im in x]
    assert all(r.problem is None and r.image.shape == (28, 28) for r in readings)
    assert all(abs(r.probs.sum() - 1) < 1e-4 and r.confidence == r.probs.max() for r in readings)
    hits = np.mean([r.digit == label for r, label in zip(readings, y, strict=True)])
    assert hits >= 0.6, hits


def test_draw_page_quick_training(app):
    at = app.switch_page("app_pages/draw.py").run()
    at.button(key="quick_start").click().run()
    assert not at.exception
    at = finish(at, "quick_job")
    assert not at.exception
    model_now = at.session_state["current_model"]
    assert model_now is not None and model_now.saved_as == "quick-mlp"
    assert "There is no model yet" not in texts(at)
    assert at.slider(key="draw_width").value == 18


def test_first_page_does_not_import_tensorflow(app, tmp_path):
    """The home page and Data page come up without TensorFlow (it costs seconds to import)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({APP!r}, default_timeout={TIMEOUT}).run()\n"
        "assert not at.exception, at.exception\n"
        "at.switch_page('app_pages/data.py').run()\n"
        "assert not at.exception, at.exception\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("content", [None, b"not numbers at all"], ids=["missing", "not-npz"])
def test_bad_dataset_path_is_one_sentence(monkeypatch, digitlab_home, tmp_path, content):
    path = tmp_path / "mnist.npz"
    if content is not None:
        path.write_bytes(content)
    monkeypatch.setenv("DIGITLAB_MNIST", str(path))
    for page in [None, *PAGES]:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
        if page:
            at = at.switch_page(page).run()
        assert not at.exception
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and "mnist.npz" in errors[0], errors


def test_home_is_drawn_before_the_sidebar_loads_the_dataset(monkeypatch, digitlab_home):
    """A fresh server's first page: Home needs no dataset, so it is drawn before the sidebar
    asks for one (its load is the largest part of that first run; BENCHMARKS.md)."""
    from digitlab.ui import app, state

    order = []
    home, load = app.home, state.load_digits
    monkeypatch.setattr(app, "home", lambda: (order.append("home"), home())[1])
    monkeypatch.setattr(state, "load_digits", lambda: (order.append("dataset"), load())[1])
    monkeypatch.setenv("DIGITLAB_OFFLINE", "1")
    monkeypatch.setenv("DIGITLAB_LIMIT", "400")
    monkeypatch.delenv("DIGITLAB_MNIST", raising=False)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert order[:2] == ["home", "dataset"], order
    assert "400 train · 400 test" in texts(at)  # the sidebar is there all the same


def test_leaving_the_train_page_mid_run_and_coming_back(app):
    """Navigating away neither kills nor loses a run: back on Train, it is still there."""
    at = app.switch_page("app_pages/train.py").run()
    at.number_input(key="t_epochs").set_value(40)
    at.select_slider(key="t_units").set_value(32)
    at.button(key="t_start").click().run()
    job = at.session_state["train_job"]
    at = at.switch_page("app_pages/data.py").run()  # away, while it trains
    assert not at.exception and not job.progress.finished
    assert job.stop_event.is_set() is False
    at = at.switch_page("app_pages/train.py").run()  # and back
    assert not at.exception
    assert at.session_state["train_job"] is job
    assert any(h.value.startswith("Run:") for h in at.subheader)
    at = finish(at, "train_job")
    assert at.metric[2].value == "40 of 40"  # it ran to the end while we were away


def test_probability_bars_set_the_answer_apart():
    from digitlab import charts, explore

    p = np.full(10, 0.02)
    p[7] = 0.82
    rows = explore.probability_bars(p)
    assert [r["digit"] for r in rows] == [str(d) for d in range(10)]
    np.testing.assert_allclose([r["probability"] for r in rows], p)  # each bar is its probability
    assert [r["answer"] for r in rows] == [d == 7 for d in range(10)]  # the answer, and only it
    # Before a reading: ten empty bars and no answer (the chart stays on the page).
    empty = explore.probability_bars(None)
    assert [r["probability"] for r in empty] == [0.0] * 10 and not any(r["answer"] for r in empty)
    # The chart's spec reads exactly these fields, and colours the answer apart.
    enc = charts.PROBABILITY_SPEC["encoding"]
    assert {enc["x"]["field"], enc["y"]["field"]} | {"answer"} == set(rows[0])
    assert enc["color"]["condition"] == {"test": "datum.answer", "value": charts.TEST}
    assert enc["y"]["scale"]["domain"] == [0, 1]
