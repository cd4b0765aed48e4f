"""digitlab.workers: work in a lower-priority process, events in order, stop, errors, the spare."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from digitlab import workers
from digitlab.training import StopEvent, TrainingError

pytestmark = pytest.mark.timeout(120)


# Module-level, so that a spawned worker can import them.
def count(n, *, on_event, stop):
    for i in range(n):
        on_event({"type": "tick", "i": i})
    return {"pid": os.getpid(), "nice": os.nice(0)}


def until_stopped(*, on_event, stop):
    on_event({"type": "started", "pid": os.getpid()})
    t0 = time.monotonic()
    while not stop.is_set():
        if time.monotonic() - t0 > 60:
            return "never stopped"
        time.sleep(0.001)
    return "stopped"


def bad_settings(*, on_event, stop):
    raise TrainingError("Epochs must be 1..200, not 0.")


def die(*, on_event, stop):
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture(autouse=True)
def no_spare_left():
    yield
    workers.shutdown()


def test_result_and_every_event_in_order_from_a_lower_priority_process():
    events = []
    out = workers.run(count, 500, on_event=events.append)
    assert [e["i"] for e in events] == list(range(500))  # all arrived before the result
    assert out["pid"] != os.getpid()
    assert out["nice"] == min(19, os.nice(0) + workers.NICE)


def test_stop_reaches_the_worker_at_once():
    stop = StopEvent()
    started = threading.Event()
    result = []
    t = threading.Thread(
        target=lambda: result.append(
            workers.run(until_stopped, on_event=lambda e: started.set(), stop=stop)
        )
    )
    t.start()
    assert started.wait(60)
    t0 = time.monotonic()
    stop.set()
    t.join(30)
    assert result == ["stopped"] and time.monotonic() - t0 < 2.0


def test_an_error_in_the_work_is_raised_here_with_its_type():
    with pytest.raises(TrainingError, match="Epochs must be 1..200"):
        workers.run(bad_settings)


def test_a_worker_that_dies_is_an_error_not_a_hang():
    with pytest.raises(workers.WorkerError, match="ended without a result"):
        workers.run(die)


def test_prewarm_keeps_a_spare_that_the_next_job_uses():
    workers.prewarm()
    spare = workers._spare
    assert spare is not None and spare.proc.is_alive()
    out = workers.run(count, 1)
    assert out["pid"] == spare.proc.pid  # the job ran in the warm spare
    deadline = time.monotonic() + 30
    while workers._spare is None or workers._spare is spare:  # and a new spare takes its place
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert workers._spare.proc.is_alive()


def test_a_worker_ended_by_the_server_exiting_is_not_a_fault(monkeypatch):
    monkeypatch.setattr(workers, "_closing", True)  # what the exit hook sets
    with pytest.raises(workers.ServerClosing) as caught:
        workers.run(die)
    assert caught.value.quiet  # digitlab.jobs logs it without a traceback


def test_a_worker_leaves_terminal_and_group_signals_to_the_server():
    """Ctrl-C or a SIGTERM to the process group must not kill a run: the server decides."""
    stop = StopEvent()
    started = []
    result = []
    t = threading.Thread(
        target=lambda: result.append(workers.run(until_stopped, on_event=started.append, stop=stop))
    )
    t.start()
    deadline = time.monotonic() + 60
    while not started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    pid = started[0]["pid"]
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.5)
    stop.set()
    t.join(30)
    assert result == ["stopped"]


def loaded(names, *, on_event, stop):
    return {name: name in sys.modules for name in names}


@pytest.mark.parametrize("entry", ["streamlit_app.py", "digitlab/__main__.py"])
def test_a_worker_does_not_start_the_app_or_the_cli(entry, monkeypatch):
    """A spawned worker runs its parent's main script again, as __mp_main__, before its work:
    under `streamlit run` that is streamlit_app.py (Streamlit sets it as __main__ on every
    script run, from its own threads: it cannot be hidden while a job's thread starts a
    worker), under `python -m digitlab` the CLI. Their guards make that a no-op."""
    import types

    script = Path(__file__).resolve().parents[1] / entry
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(script)
    fake_main.__spec__ = None
    workers.shutdown()  # no spare started before: this worker starts under the app as __main__
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    out = workers.run(loaded, ["streamlit", "digitlab.cli"])
    assert out == {"streamlit": False, "digitlab.cli": False}
