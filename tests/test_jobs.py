"""digitlab.jobs: the limit on heavy jobs, queue positions, stop, reaping, failures as sentences."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from digitlab.jobs import JobManager, Progress, error_sentence


def numpy_epochs(
    epochs: int = 3, batches: int = 20, size: int = 120, gate: threading.Event | None = None
):
    """Real work shaped like training: matrix products per batch, events per batch and epoch."""

    def work(on_event, stop):
        rng = np.random.default_rng(0)
        a = rng.random((size, size))
        on_event({"type": "start", "epochs": epochs, "batches": batches})
        for epoch in range(1, epochs + 1):
            for b in range(1, batches + 1):
                if gate is not None:
                    gate.wait()
                a = np.tanh(a @ a / size)
                on_event({"type": "batch", "batch": b, "batches": batches})
                if stop.is_set():
                    on_event(
                        {"type": "epoch", "epoch": epoch, "loss": float(a.mean()), "partial": True}
                    )
                    return {"epochs": epoch, "checksum": float(a.sum())}
            on_event({"type": "epoch", "epoch": epoch, "loss": float(a.mean())})
        return {"epochs": epochs, "checksum": float(a.sum())}

    return work


def wait_for(cond, timeout=20.0):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_job_runs_and_reports_progress():
    jm = JobManager(max_jobs=1, heartbeat_timeout=60)
    job = jm.submit(numpy_epochs(), kind="train", label="test run")
    assert job.wait(30)
    p = job.progress
    assert p.status == "done" and p.error is None
    assert p.result["epochs"] == 3 and np.isfinite(p.result["checksum"])
    assert [e["epoch"] for e in p.of_type("epoch")] == [1, 2, 3]
    assert p.batch == {"type": "batch", "batch": 20, "batches": 20}  # batches not kept as events
    assert p.fraction == 1.0 and p.eta_s == 0.0 and p.elapsed_s > 0


def test_limit_respected_and_queue_positions():
    gate = threading.Event()  # holds the running job mid-epoch so the queue can be inspected
    jm = JobManager(max_jobs=2, heartbeat_timeout=60)
    jobs = [jm.submit(numpy_epochs(gate=gate), kind="train") for _ in range(5)]
    wait_for(lambda: sum(j.status == "running" for j in jobs) == 2)
    # the gate holds both running jobs, so nothing else can start: the queue is settled
    wait_for(lambda: all(j.progress.started_at is not None for j in jobs[:2]))
    assert [j.status for j in jobs] == ["running", "running", "queued", "queued", "queued"]
    assert [j.progress.queue_position for j in jobs] == [None, None, 1, 2, 3]
    assert jm.counts() == {"running": 2, "queued": 3}
    jobs[3].stop()  # a queued job that is stopped never starts and leaves the queue
    wait_for(lambda: jobs[3].status == "stopped")
    assert jobs[3].progress.started_at is None
    assert jobs[4].progress.queue_position == 2

    peak = 0
    gate.set()
    while not all(j.progress.finished for j in jobs):
        peak = max(peak, jm.counts()["running"])
        time.sleep(0.002)
    assert peak <= 2
    assert [j.status for j in jobs] == ["done", "done", "done", "stopped", "done"]
    # first come, first served
    assert jobs[2].progress.started_at <= jobs[4].progress.started_at


def test_light_jobs_skip_the_queue():
    gate = threading.Event()
    jm = JobManager(max_jobs=1, heartbeat_timeout=60)
    heavy = jm.submit(numpy_epochs(gate=gate))
    wait_for(lambda: heavy.status == "running")
    light = jm.submit(numpy_epochs(epochs=1, batches=2), heavy=False)
    assert light.wait(10) and light.status == "done"
    gate.set()
    assert heavy.wait(30)


def test_stop_ends_within_a_batch_and_keeps_the_result():
    gate = threading.Event()
    gate.set()
    jm = JobManager(max_jobs=1, heartbeat_timeout=60)
    job = jm.submit(numpy_epochs(epochs=50, batches=50, size=200))
    wait_for(lambda: job.progress.batch is not None)
    job.stop()
    assert job.wait(10)
    assert job.status == "stopped"
    assert job.progress.result["epochs"] < 50  # partial result kept
    assert job.progress.of_type("epoch")[-1].get("partial")


def test_heartbeat_reaping_stops_abandoned_jobs():
    jm = JobManager(max_jobs=2, heartbeat_timeout=0.3, reap_interval=0.05)
    watched = jm.submit(numpy_epochs(epochs=400, batches=20), owner="alive")
    abandoned = jm.submit(numpy_epochs(epochs=400, batches=20), owner="gone")
    headless = jm.submit(numpy_epochs(epochs=2, batches=5), watched=False)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5 and abandoned.status != "stopped":
        watched.heartbeat()  # the page's fragment does this
        time.sleep(0.05)
    assert abandoned.wait(5) and abandoned.status == "stopped"
    assert "no page watched" in abandoned.progress.note
    assert watched.status == "running"
    assert headless.wait(10) and headless.status == "done"  # never reaped
    assert jm.jobs(owner="alive") == [watched]
    watched.stop()
    assert watched.wait(10)


def test_failure_becomes_one_sentence():
    from digitlab.training import TrainingError

    def bad_settings(on_event, stop):
        raise TrainingError("Only 3 training digits: too few to train on.")

    def crash(on_event, stop):
        np.zeros((2, 2)) @ np.zeros((3, 3))

    jm = JobManager(max_jobs=1, heartbeat_timeout=60)
    a = jm.submit(bad_settings, label="training")
    b = jm.submit(crash, label="training")
    assert a.wait(10) and b.wait(10)
    assert (
        a.status == "failed" and a.progress.error == "Only 3 training digits: too few to train on."
    )
    assert b.status == "failed"
    err = b.progress.error
    assert err.startswith("The training failed: ValueError: matmul") and err.endswith(".")
    assert "\n" not in err
    assert "ran out of memory" in error_sentence(MemoryError())
    # the manager carries on after failures
    c = jm.submit(numpy_epochs(epochs=1, batches=2))
    assert c.wait(10) and c.status == "done"


def test_progress_fraction_and_eta_over_folds():
    p = Progress(started_at=time.time() - 10)
    p.record({"type": "start", "folds": 2, "epochs": 2})
    p.record({"type": "batch", "batch": 5, "batches": 10, "fold": 1})
    assert p.fraction == pytest.approx(0.125)
    assert p.eta_s == pytest.approx(70, rel=0.05)
    p.record({"type": "epoch", "epoch": 1, "fold": 1})
    p.record({"type": "epoch", "epoch": 2, "fold": 1})
    p.record({"type": "fold_end", "fold": 1, "accuracy": 0.9})
    assert p.fraction == pytest.approx(0.5)
    assert [e["type"] for e in p.events] == ["start", "epoch", "epoch", "fold_end"]


@pytest.mark.timeout(300)
def test_real_training_job_stops_and_keeps_partial_model(tiny_digits):
    from digitlab.models import ModelConfig
    from digitlab.training import TrainConfig, train

    jm = JobManager(max_jobs=1, heartbeat_timeout=60)
    cfg = TrainConfig(epochs=50, batch_size=16)

    def work(on_event, stop):
        return train(
            tiny_digits,
            model_config=ModelConfig(hidden_units=32, jit_compile=False),
            train_config=cfg,
            on_event=on_event,
            stop=stop,
        )

    job = jm.submit(work, kind="train")
    wait_for(lambda: len(job.progress.of_type("epoch")) >= 1, timeout=120)
    job.stop()
    assert job.wait(60)
    result = job.progress.result
    assert job.status == "stopped" and result.stopped
    assert 1 <= len(result.history) < 50
    assert result.test_accuracy is not None and result.test_accuracy > 0.3  # it learned something


def test_progress_text_for_a_training_run_and_a_kfold_run():
    p = Progress()
    assert p.text() == "Epoch 1 of ? · estimating time left"
    p.started_at = time.time() - 10
    for event in [
        {"type": "start", "epochs": 5, "batches": 100},
        {"type": "epoch", "epoch": 1},
        {"type": "batch", "batch": 50, "batches": 100},
    ]:
        p.record(event)
    # 1.5 of 5 epochs in 10 s: 23 s to go at that pace
    assert p.text() == "Epoch 2 of 5 · batch 50 of 100 · about 23 s left"

    cv = Progress()
    cv.record({"type": "start", "folds": 4, "epochs": 2})
    cv.record({"type": "fold_start", "fold": 1, "variant": "fresh"})
    cv.record({"type": "epoch", "epoch": 1, "fold": 1, "variant": "fresh"})
    cv.record({"type": "epoch", "epoch": 2, "fold": 1, "variant": "fresh"})
    cv.record({"type": "fold_end", "fold": 1, "variant": "fresh"})
    cv.record({"type": "fold_start", "fold": 1, "variant": "reused"})
    assert cv.text().startswith("Fold 1 (reused model), epoch 1 of 2 · 1 of 4 fold runs done")


EXIT_SCRIPT = """
import atexit, logging, sys, threading
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
from digitlab.jobs import JobManager

def work(on_event, stop):
    if sys.argv[1] == "exiting":
        threading.main_thread().join()  # returns once the main thread has ended: Python exits
    raise RuntimeError("the modules under this job are gone")

job = JobManager(max_jobs=1).submit(work, heavy=False, watched=False)
if sys.argv[1] == "exiting":
    atexit.register(job.wait, 20)  # Python is exiting: the job fails now
else:
    job.wait(20)
print("status", job.progress.status)
"""


@pytest.mark.parametrize("when", ["running", "exiting"])
def test_a_job_failing_as_the_server_exits_is_noted_without_a_traceback(tmp_path, when):
    """A job that fails while the server process exits (Keras torn down under it, seen in the load
    test) is one line in the log; a failure while the server runs keeps its traceback."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "exit_job.py"
    script.write_text(EXIT_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), when],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONPATH": "."},
    )
    assert out.returncode == 0, out.stderr
    if when == "running":
        assert "status failed" in out.stdout
        assert "Traceback" in out.stderr and "WARNING job 1 failed" in out.stderr
    else:
        assert "Traceback" not in out.stderr, out.stderr
        assert "INFO job 1 ended with the server: The job failed: RuntimeError" in out.stderr
