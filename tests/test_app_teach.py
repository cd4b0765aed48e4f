"""The Draw and Train pages through AppTest: the server's default model reads drawings with no
model of one's own, and "Teach it your handwriting" runs as a job and shows before and after."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
TIMEOUT = 180


def texts(at) -> str:
    kinds = ("markdown", "caption", "info", "warning", "error", "success", "subheader")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def save_mirrored_drawings(n: int) -> None:
    """n real digits written by a hand MNIST never saw (mirrored), saved as the Save button
    does (the canvas itself needs a browser: tests/e2e)."""
    from digitlab import store
    from digitlab.data import offline_subset

    d = offline_subset()
    for image, label in zip(d.x_train[2000 : 2000 + n], d.y_train[2000 : 2000 + n], strict=True):
        store.save_drawing(image[:, ::-1].astype("float32") / 255.0, int(label))


def test_draw_page_reads_with_the_server_default_then_teaches(app):
    from digitlab.ui import state

    at = app.switch_page("app_pages/draw.py").run()
    assert not at.exception
    assert at.session_state["current_model"] is None
    server = state.server_default()  # the one the page started (one per server and dataset)
    assert server.wait(TIMEOUT) and server.error is None, server.error
    assert server.stage == "default" and set(server.ready_s) == {"first", "default"}
    at.run()
    assert "Reading with the server's default model" in texts(at)
    # the sidebar says what reads while this learner has no model of their own
    assert "Until then the Draw page reads with the server's default model" in texts(at)
    assert "Teach it your handwriting" in texts(at)
    assert "Fine-tunes a copy of the server's default model" in texts(at)
    at.button(key="draw_teach_start").click().run()  # nothing saved yet
    assert "Save at least two labelled drawings first." in texts(at)
    assert at.session_state["teach_job"] is None

    save_mirrored_drawings(30)
    at.run()
    assert "Every 5th drawing" in texts(at)
    at.button(key="draw_teach_start").click().run()
    assert not at.exception
    job = at.session_state["teach_job"]
    assert job.kind == "teach" and job.owner == at.session_state["session_id"]
    assert job.wait(TIMEOUT) and job.status == "done", job.progress.error
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["score"]) == [
        "MNIST test accuracy (%)",
        "accuracy on your 6 held-out drawings (%)",
    ]
    result = job.progress.result
    assert table["before"][0] == pytest.approx(100 * result.before.mnist, abs=0.05)
    assert table["after"][1] == pytest.approx(100 * result.after.held_out, abs=0.05)
    assert result.before.mnist is not None  # the default model was taught, not a new one
    assert "Last run: fine-tuned on 24 of 30 drawings" in texts(at)
    model_now = at.session_state["current_model"]
    assert model_now is not None and "taught" in model_now.name and model_now.model is result.model
    assert f"**{model_now.name}** (trained here)" in texts(at)  # the sidebar


def test_train_page_teach_panel_and_stop(app):
    save_mirrored_drawings(20)
    at = app.switch_page("app_pages/train.py").run()
    assert not at.exception and "Teach it your handwriting" in texts(at)
    at.button(key="train_teach_start").click().run()
    job = at.session_state["teach_job"]
    job.stop()
    assert job.wait(TIMEOUT) and job.status in ("stopped", "done")
    at.run()
    assert not at.exception
    assert np.isfinite(job.progress.result.after.mnist) if job.progress.result else True
