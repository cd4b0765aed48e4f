"""Faults: a process killed in the middle of saving, then a restart, leaves a consistent store."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

SAVER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from digitlab import store
    from digitlab.models import ModelConfig, build_model

    model = build_model(ModelConfig(hidden_units=1024, hidden_layers=2, jit_compile=False), seed=0)
    store.save_model(model, name="keep", meta={"round": -1})
    store.save_cv({"folds": [{"accuracy": 0.9}], "reuse_model": False}, name="cv-keep")
    store.save_drawing(np.zeros((28, 28), "float32"), 3)
    print("READY", flush=True)
    i = 0
    while True:  # saving until killed: the kill lands somewhere inside one of these writes
        store.save_model(model, name="keep", meta={"round": i})
        store.save_model(model, name=f"model-{i}", meta={"round": i})
        store.save_cv({"folds": [{"accuracy": 0.5}] * 50, "reuse_model": False}, name="cv-keep")
        store.save_drawing(np.random.rand(28, 28).astype("float32"), i % 10)
        i += 1
    """
)


def read_back() -> dict:
    """What a restart finds: every listed item read from disk (this test's process never wrote
    to that store)."""
    from digitlab import store
    from digitlab.models import load_model_file

    models = store.list_models()
    for entry in models:
        load_model_file(entry.path)  # every listed model is whole
    images, labels = store.load_drawings()
    return {
        "models": [m.name for m in models],
        "cv": [c["name"] for c in store.list_cv()],
        "drawings": int(len(labels)),
        "drawing_count": store.count_drawings(),
    }


@pytest.mark.parametrize("delay", [0.4, 1.7])
def test_kill_during_saves_then_restart(tmp_path, delay, monkeypatch):
    env = dict(os.environ, DIGITLAB_HOME=str(tmp_path / "home"), TF_CPP_MIN_LOG_LEVEL="3")
    saver = subprocess.Popen(
        [sys.executable, "-c", SAVER],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert saver.stdout.readline().strip() == "READY"
        time.sleep(delay)
        os.killpg(saver.pid, signal.SIGKILL)  # no cleanup, no finally: like a power cut
    finally:
        if saver.poll() is None:
            os.killpg(saver.pid, signal.SIGKILL)
        saver.wait(10)

    # "Restart": this process reads the store the killed one left on disk.
    monkeypatch.setenv("DIGITLAB_HOME", str(tmp_path / "home"))
    state = read_back()
    assert "keep" in state["models"]  # saved before the kill: still listed, and it loads
    assert "cv-keep" in state["cv"]
    assert state["drawings"] == state["drawing_count"] >= 1  # every listed drawing reads whole
    leftovers = [p.name for p in (tmp_path / "home").rglob("*") if p.name.startswith(".")]
    assert all(".tmp" in name for name in leftovers)  # at most a hidden temporary, never listed
