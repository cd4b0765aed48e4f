"""digitlab.engine on a real embedded Ray: jobs' events, stop, the limit, faults, loopback only."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from proctools import descendants

from digitlab import engine, work
from digitlab.crossval import cross_validate
from digitlab.jobs import JobManager
from digitlab.models import ModelConfig
from digitlab.training import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SMALL = ModelConfig(hidden_units=64)
OWN_GROUP = Path("/proc/self/autogroup")  # this process's scheduling group (Linux, autogroups)
OWN_GROUP_BEFORE = OWN_GROUP.read_text() if OWN_GROUP.exists() else None


@pytest.fixture(scope="module", autouse=True)
def ray_up():
    engine.connect()  # the embedded Ray this test process shares (about 4 s)
    assert engine.status()["connected"]


def submit(jm, work_fn, **kwargs):
    """A job with no page watching it: long test runs must not be reaped for missed heartbeats."""
    return jm.submit(work_fn, watched=False, **kwargs)


def start_training(jm, digits, train_config, label: str):
    """A training job of the small network, as a page submits it (work.training_work)."""
    return submit(
        jm,
        work.training_work(digits, model_config=SMALL, train_config=train_config),
        kind="train",
        label=label,
    )


def wait_for(cond, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout:.0f} s"
        time.sleep(0.02)


def listening_sockets() -> dict[int, ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """inode -> local address of every listening TCP socket on this machine (IPv4 and IPv6)."""
    out = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            lines = f.read().splitlines()[1:]
        for line in lines:
            fields = line.split()
            host, state, inode = fields[1].split(":")[0], fields[3], int(fields[9])
            if state != "0A":  # LISTEN
                continue
            # the kernel prints the address as 32-bit words in this machine's byte order
            raw = b"".join(
                struct.pack("=I", int(host[i : i + 8], 16)) for i in range(0, len(host), 8)
            )
            out[inode] = ipaddress.ip_address(raw)
    return out


def is_loopback(addr) -> bool:
    mapped = getattr(addr, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return addr.is_loopback or (mapped is not None and mapped.is_loopback)


def test_embedded_ray_listens_on_loopback_only():
    listening = listening_sockets()
    found = []
    for pid in descendants(os.getpid()):  # the embedded Ray's services and workers
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in listening:
                    found.append(listening[inode])
    assert len(found) >= 3, f"expected Ray's services listening, found {found}"  # gcs, raylet, ...
    outside = [str(a) for a in found if not is_loopback(a)]
    assert not outside, f"Ray listens beyond loopback: {outside}"


AFTER_SCRIPT = textwrap.dedent(
    """
    import json
    from digitlab import engine

    seen = []  # the engine's status while `after` runs, then once the start has ended
    engine.start_in_background(warm_up=False, after=lambda: seen.append(engine.status()))
    engine.wait_ready(60)
    seen.append(engine.status())
    print(json.dumps(seen))
    """
)


def test_the_engine_starts_after_the_work_it_is_asked_to_wait_for(tmp_path):
    """The app lets the default model's first pass finish before Ray's start takes the cores:
    while `after` runs nothing has been tried (no error, not connected); then the start goes on
    (here to a cluster address where nothing answers: its one sentence). A fresh process: the
    engine is one per process."""
    env = dict(os.environ, DIGITLAB_RAY_ADDRESS="127.0.0.1:9", DIGITLAB_HOME=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-c", AFTER_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    during, after = json.loads(proc.stdout.strip().splitlines()[-1])
    assert during == {"address": "127.0.0.1:9", "connected": False}
    assert not after["connected"] and after["error"].startswith("No Ray cluster answers")


def test_data_goes_to_the_object_store_once(tiny_digits):
    x = tiny_digits.x_train
    assert engine.put(x) is engine.put(x)  # the same reference: one copy for every task


def test_training_job_events_and_model(tiny_digits):
    jm = JobManager(max_jobs=1)
    tcfg = TrainConfig(epochs=2, batch_size=64)
    job = start_training(jm, tiny_digits, tcfg, "engine run")
    assert job.wait(300)
    p = job.progress
    assert p.status == "done", p.error
    assert [e["epoch"] for e in p.of_type("epoch")] == [1, 2]
    assert p.batch is not None and p.batch["batch"] == p.batch["batches"]
    assert p.workers and p.workers[0]["pid"] != os.getpid()  # it ran in a Ray worker
    result = p.result
    assert result.model is not None and result.weights is not None
    # the model built here from the weights scores what the worker measured
    from digitlab.training import evaluate

    _, acc = evaluate(result.model, tiny_digits.x_test, tiny_digits.y_test)
    assert acc == pytest.approx(result.test_accuracy, abs=1e-6)


def test_stop_reaches_the_worker_and_keeps_the_partial_model(tiny_digits):
    jm = JobManager(max_jobs=1)
    job = start_training(jm, tiny_digits, TrainConfig(epochs=200, batch_size=16), "long run")
    wait_for(lambda: job.progress.of_type("epoch"), what="a first epoch")
    job.stop()
    assert job.wait(120)
    p = job.progress
    assert p.status == "stopped"
    assert p.result.stopped and p.result.model is not None
    assert len(p.result.history) < 200


@pytest.mark.parametrize("kind", ["train", "teach"])
def test_a_stop_before_the_task_begins_ends_the_job_stopped(tiny_digits, kind):
    """The learner presses Stop at once (seen in CI: the task had not begun, and the job failed
    on the missing result): the job is stopped, with nothing trained and no error."""
    from digitlab.teach import TeachConfig

    cfg = TrainConfig(epochs=1, batch_size=64)
    if kind == "train":
        work_fn = work.training_work(tiny_digits, model_config=SMALL, train_config=cfg)
    else:
        images, labels = tiny_digits.x_test[:20], tiny_digits.y_test[:20]
        work_fn = work.teach_work(
            tiny_digits, images, labels, model_config=SMALL, train_config=cfg,
            teach_config=TeachConfig(),
        )  # fmt: skip
    jm = JobManager(max_jobs=1)
    gate = threading.Event()

    def stopped_first(on_event, stop):
        gate.wait(60)  # the stop below is set before the engine is asked
        return work_fn(on_event, stop)

    job = submit(jm, stopped_first, kind=kind, label="stopped at once")
    wait_for(lambda: job.progress.status == "running", what="the job's start")
    job.stop()
    gate.set()
    assert job.wait(120)
    assert job.progress.status == "stopped", job.progress.error
    assert job.progress.result is None and job.progress.error is None


def assert_below_the_server(pid: int) -> None:
    """A worker at nice 19 in a session of its own, that session's scheduling group lowered too
    (Linux shares the CPU fairly between sessions' groups, whatever a process's nice), and this
    process's own group left as it was."""
    assert os.getpriority(os.PRIO_PROCESS, pid) == engine.NICE
    assert os.getsid(pid) == pid != os.getsid(0)
    autogroup = Path(f"/proc/{pid}/autogroup")
    if autogroup.exists():  # a kernel with autogroups (Linux's default)
        assert autogroup.read_text().split()[-1] == str(engine.NICE)
        assert OWN_GROUP.read_text() == OWN_GROUP_BEFORE


def test_a_killed_worker_ends_the_job_in_one_sentence_and_the_next_runs(tiny_digits):
    jm = JobManager(max_jobs=1)
    long = TrainConfig(epochs=200, batch_size=16)
    job = start_training(jm, tiny_digits, long, "doomed run")
    wait_for(lambda: job.progress.of_type("epoch"), what="a first epoch")
    pid = job.progress.workers[0]["pid"]
    assert_below_the_server(pid)
    os.kill(pid, signal.SIGKILL)
    assert job.wait(120)
    assert job.progress.status == "failed"
    assert job.progress.error == "The worker running this job died."
    after = start_training(jm, tiny_digits, TrainConfig(epochs=1), "next run")
    assert after.wait(300) and after.progress.status == "done", after.progress.error


def test_a_fold_lost_with_its_worker_is_run_again(tiny_digits):
    x, y = tiny_digits.x_train, tiny_digits.y_train
    jm = JobManager(max_jobs=1)
    job = submit(
        jm,
        work.crossval_work(
            x, y, model_config=SMALL, n_splits=2, epochs=8, batch_size=16, save=False
        ),
        kind="cv",
        label="k-fold",
    )
    wait_for(lambda: job.progress.of_type("epoch"), what="a first epoch")
    victim = job.progress.workers[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    assert job.wait(600)
    p = job.progress
    assert p.status == "done", p.error
    folds = p.result["fresh"].folds
    assert [f.fold for f in folds] == [1, 2]  # both folds, the lost one run again
    assert len(p.workers) >= 3  # two folds, and the rerun in a new worker
    assert victim in {w["pid"] for w in p.workers}


def test_folds_on_the_engine_are_the_folds_run_here(tiny_digits):
    """The same seeds and splits give the same networks on Ray as in this process."""
    x, y = tiny_digits.x_train, tiny_digits.y_train
    kwargs = dict(model_config=SMALL, n_splits=3, epochs=2, batch_size=64)
    here = cross_validate(x, y, **kwargs)
    events: list[dict] = []
    there = cross_validate(x, y, executor=engine.RayExecutor(), on_event=events.append, **kwargs)
    assert [f.fold for f in there.folds] == [1, 2, 3]
    # one digit of a fold's 200 held-out ones is 0.005: the runs agree to well under that
    np.testing.assert_allclose(there.accuracies, here.accuracies, atol=1e-6)
    assert {f.node for f in there.folds} == {engine.node_id()}
    assert {e["fold"] for e in events if e["type"] == "fold_end"} == {1, 2, 3}


def test_queue_positions_with_engine_jobs(tiny_digits):
    jm = JobManager(max_jobs=1)
    cfg = TrainConfig(epochs=1, batch_size=64)
    first = submit(jm, work.training_work(tiny_digits, model_config=SMALL, train_config=cfg))
    second = submit(jm, work.training_work(tiny_digits, model_config=SMALL, train_config=cfg))
    wait_for(lambda: first.progress.status != "queued", what="the first job starting")
    if not first.progress.finished:
        assert second.progress.status == "queued" and second.progress.queue_position == 1
    assert first.wait(300) and second.wait(300)
    assert first.progress.status == second.progress.status == "done"
    assert first.progress.finished_at <= second.progress.started_at
