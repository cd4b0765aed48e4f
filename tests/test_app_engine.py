"""The app when its engine is out of reach: the sidebar says so in one sentence, a run that needs
the engine fails with that sentence, and Data and Draw keep working (a fresh process: the
engine is one per process, and the other tests' is up). Also, in that fresh process: no Keras is
imported for a job the engine never took."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, threading, time
    from streamlit.testing.v1 import AppTest
    from digitlab import engine

    at = AppTest.from_file("streamlit_app.py", default_timeout=120).run()
    engine.wait_ready(30)  # the background start gives up at once: nothing answers there
    at.run()
    sidebar = [w.value for w in at.sidebar.warning]
    pages = {}
    for page in ["app_pages/data.py", "app_pages/draw.py"]:
        at.switch_page(page).run()
        pages[page] = [str(e.value) for e in at.exception]
    at.switch_page("app_pages/train.py").run()
    keras_before = "keras" in sys.modules  # Data, Draw and Train's form import no TensorFlow
    at.button(key="t_start").click().run()
    job = at.session_state["train_job"]
    job.wait(120)
    # the import a training job starts once the engine has it, for the model it builds at its end
    importing = any(t.name == "digitlab-keras-import" for t in threading.enumerate())
    print(json.dumps({"sidebar": sidebar, "pages": pages,
                      "job": [job.progress.status, job.progress.error],
                      "keras": [keras_before, importing or "keras" in sys.modules]}), flush=True)
    os._exit(0)  # not waiting for that import (seconds) to end the test
    """
)


def test_a_cluster_out_of_reach_is_one_sentence_and_data_and_draw_work(tmp_path):
    env = dict(
        os.environ,
        DIGITLAB_RAY_ADDRESS="127.0.0.1:9",  # nothing listens on the discard port
        DIGITLAB_OFFLINE="1",
        DIGITLAB_LIMIT="300",
        DIGITLAB_HOME=str(tmp_path / "home"),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    env.pop("DIGITLAB_MNIST", None)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=400,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    sentence = "No Ray cluster answers at 127.0.0.1:9"
    assert len(out["sidebar"]) == 1 and out["sidebar"][0].startswith(sentence)
    assert "Data and Draw work" in out["sidebar"][0]
    assert out["pages"] == {"app_pages/data.py": [], "app_pages/draw.py": []}
    status, error = out["job"]
    assert status == "failed" and error.startswith(sentence) and "\n" not in error
    # Keras is imported only once the engine has taken a training job (in the background, for
    # the model it builds at the end): a job that cannot reach the engine imports none
    assert out["keras"] == [False, False]
