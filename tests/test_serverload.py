"""digitlab.serverload: the instructor's reading of jobs, CPU and sessions, and when it warns."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from digitlab import serverload
from digitlab.jobs import JobManager
from digitlab.serverload import CpuMeter, ServerLoad


def gated(gate: threading.Event):
    def work(on_event, stop):
        on_event({"type": "start", "epochs": 1, "batches": 1})
        while not gate.wait(0.01):
            if stop.is_set():
                return None
        return 1

    return work


def reading(**kw) -> ServerLoad:
    base = dict(
        sessions=10,
        jobs_running=0,
        jobs_queued=0,
        cores=2,
        process_cores=0.2,
        machine_busy=0.3,
        load_average=0.5,
        rss_mb=900.0,
    )
    return ServerLoad(**{**base, **kw})


def test_measure_counts_running_and_queued_jobs():
    gate = threading.Event()
    jm = JobManager(max_jobs=1, heartbeat_timeout=60)
    jobs = [jm.submit(gated(gate), kind="train", label=f"run {i}") for i in range(3)]
    t0 = time.monotonic()
    while jobs[0].progress.status != "running":
        assert time.monotonic() - t0 < 20, "the first job did not start"
        time.sleep(0.01)
    load = serverload.measure(sessions=7, manager=jm, meter=CpuMeter())
    gate.set()
    assert (load.sessions, load.jobs_running, load.jobs_queued) == (7, 1, 2)
    assert load.cores >= 1 and load.capacity == min(
        serverload.LEARNERS_PER_CORE * load.cores, serverload.ONE_PROCESS_MAX
    )
    assert load.rss_mb is None or load.rss_mb > 10
    for j in jobs:
        assert j.wait(20)
    assert serverload.measure(manager=jm).jobs_running == 0


def test_cpu_meter_sees_this_process_work():
    meter = CpuMeter()
    a = np.random.default_rng(0).random((300, 300))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.3:  # work on this process's threads
        a = np.tanh(a @ a / 300)
    cores, busy = meter.read()
    assert cores is not None and cores > 0.2
    assert busy is None or 0.0 < busy <= 1.0


@pytest.mark.parametrize(
    ("kw", "level"),
    [
        ({}, "ok"),
        ({"sessions": 55}, "busy"),  # over 80% of 2 x 30
        ({"sessions": 61}, "over"),
        ({"machine_busy": 0.9}, "busy"),
        ({"machine_busy": 0.99}, "over"),
        ({"sessions": None, "machine_busy": None}, "ok"),
    ],
)
def test_level_and_advice(kw, level):
    load = reading(**kw)
    assert load.level == level
    note = serverload.advice(load)
    if level == "ok":
        assert note is None
    else:
        assert note.count(".") >= 1 and "Traceback" not in note
    if level == "over":
        assert "DIGITLAB_RAY_ADDRESS" in note and "more cores" in note


def test_panel_renders_headless():
    from streamlit.testing.v1 import AppTest

    def page():
        from digitlab.ui import serverload_panel

        serverload_panel.render(refresh_s=None)

    at = AppTest.from_function(page, default_timeout=60).run()
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert labels == ["Learners connected", "Training jobs", "CPU busy", "Server memory"]
    assert at.metric[0].value == "?"  # no Streamlit server under AppTest: sessions unknown
