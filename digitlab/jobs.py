"""The server's jobs: a first-come queue under a server-wide limit, a plain progress object, stop.

A job runs `work(on_event, stop)` (digitlab.work: training, k-fold, teaching, each sending its
heavy part to the engine, Ray) from a thread that waits on it. The work only writes to the job's
`Progress`, a plain object; pages read it from `@st.fragment(run_every=...)`. Nothing here
imports streamlit or Ray.

Heavy jobs share a server-wide limit, DIGITLAB_MAX_JOBS. Its default is half the engine's CPUs
(the cluster's once Ray is up, else this machine's), at least 1: one Keras fit already spreads
over every core of its node through TensorFlow's intra-op threads, so on a 2-core workshop laptop
one run goes at a time and the others wait in a visible queue (Progress.queue_position).

A page touches `job.heartbeat()` while its session is alive. A job whose owner stopped
touching it for DIGITLAB_JOB_HEARTBEAT_S seconds (default 300: browsers slow the timers of
hidden tabs to one a minute, so a short limit would kill runs in tabs that are merely hidden)
is stopped by a reaper thread, which frees the CPU for people who are still there.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from digitlab.training import StopEvent

log = logging.getLogger(__name__)

Work = Callable[[Callable[[dict], None], threading.Event], Any]
Status = Literal["queued", "running", "done", "stopped", "failed"]
FINAL: tuple[Status, ...] = ("done", "stopped", "failed")
# Finished jobs leave the server-wide list after this long (a session may keep its handle).
KEEP_FINISHED_S = 3600


def default_max_jobs(cpus: int | None = None) -> int:
    """DIGITLAB_MAX_JOBS, else half of `cpus` (the engine's; default this machine's), at least 1."""
    env = os.environ.get("DIGITLAB_MAX_JOBS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            log.warning("DIGITLAB_MAX_JOBS=%r is not a whole number; using the default", env)
    return max(1, (cpus or os.cpu_count() or 1) // 2)


def default_heartbeat_timeout() -> float:
    try:
        return float(os.environ.get("DIGITLAB_JOB_HEARTBEAT_S", "300"))
    except ValueError:
        return 300.0


def error_sentence(exc: BaseException, what: str = "The job") -> str:
    """One sentence for people. DigitLab's own errors (ValueError subclasses) already are one."""
    text = " ".join(str(exc).split())
    if isinstance(exc, MemoryError):
        return f"{what} ran out of memory; try fewer digits, a smaller batch or a smaller model."
    if isinstance(exc, ValueError) and type(exc) is not ValueError and text:
        return text
    text = text[:240] + ("..." if len(text) > 240 else "")
    sentence = f"{what} failed: {type(exc).__name__}" + (f": {text}" if text else "")
    return sentence if sentence.endswith(".") else sentence + "."


def time_left(seconds: float | None) -> str:
    """'about 9 s left', 'about 3 min left', or 'estimating time left' before there is a pace."""
    if seconds is None:
        return "estimating time left"
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    return f"about {seconds / 60:.0f} min left"


@dataclass
class Progress:
    """What a page may read while the worker writes. Plain attributes; events only grow."""

    status: Status = "queued"
    events: list[dict] = field(default_factory=list)  # every event but batch progress
    batch: dict | None = None  # the latest {"type": "batch", batch, batches[, fold]}
    queue_position: int | None = None  # 1: next to run; None when not waiting
    fraction: float = 0.0  # of all epochs (of all folds), 0..1
    eta_s: float | None = None  # seconds left, from the pace so far
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    result: Any = None
    error: str | None = None  # one sentence when failed
    note: str | None = None  # why it stopped, when not by the user's Stop
    # how far: set by the "start" event
    epochs: int = 0
    folds: int = 1
    epochs_done: int = 0
    workers: list[dict] = field(default_factory=list)  # {"pid", "node"} of each process it ran in
    _partial: dict = field(default_factory=dict)  # fold -> fraction of the current epoch

    def record(self, event: dict) -> None:
        kind = event.get("type")
        fold = event.get("fold", 0)
        if kind == "worker":
            self.workers.append({"pid": event.get("pid"), "node": event.get("node")})
            return
        if kind == "batch":
            self.batch = event
            self._partial[fold] = event["batch"] / max(1, event.get("batches") or 1)
        else:
            if kind == "start":
                self.epochs = int(event.get("epochs") or 0)
                self.folds = int(event.get("folds") or 1)
            elif kind == "epoch":
                self.epochs_done += 1
                self._partial[fold] = 0.0
            elif kind in ("fold_start", "fold_end"):
                self._partial[fold] = 0.0
            self.events.append(event)
        self._update_eta()

    def _update_eta(self) -> None:
        total = self.epochs * self.folds
        if not total:
            return
        done = self.epochs_done + sum(self._partial.values())
        self.fraction = min(1.0, done / total)
        if self.started_at and 0 < self.fraction < 1:
            elapsed = time.time() - self.started_at
            self.eta_s = elapsed * (1 - self.fraction) / self.fraction
        elif self.fraction >= 1:
            self.eta_s = 0.0

    def text(self) -> str:
        """One line for people: where the run is, and the time left.

        "Epoch 2 of 5 · batch 120 of 422 · about 9 s left"; for k-fold "Fold 3 (reused model),
        epoch 2 of 5 · 4 of 10 fold runs done · ..."."""
        epochs = self.of_type("epoch")
        if self.folds > 1 or self.of_type("fold_start"):
            starts = self.of_type("fold_start")
            fold = starts[-1] if starts else {}
            variant = " (reused model)" if fold.get("variant") == "reused" else ""
            in_fold = sum(
                1
                for e in epochs
                if e.get("fold") == fold.get("fold") and e.get("variant") == fold.get("variant")
            )
            head = (
                f"Fold {fold.get('fold', 1)}{variant}, epoch {min(in_fold + 1, self.epochs or 1)} "
                f"of {self.epochs or '?'} · {len(self.of_type('fold_end'))} of {self.folds} fold "
                "runs done"
            )
        else:
            head = f"Epoch {min(len(epochs) + 1, self.epochs or 1)} of {self.epochs or '?'}"
        if self.batch:
            head += f" · batch {self.batch['batch']} of {self.batch['batches']}"
        return f"{head} · {time_left(self.eta_s)}"

    def of_type(self, kind: str) -> list[dict]:
        return [e for e in list(self.events) if e.get("type") == kind]

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    @property
    def elapsed_s(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.time()) - self.started_at


class Job:
    """A handle on one background run; keep it in session state, read job.progress."""

    _ids = itertools.count(1)

    def __init__(
        self,
        work: Work,
        *,
        kind: str,
        label: str,
        owner: str | None,
        heavy: bool,
        heartbeat_s,
        learner: str | None = None,
    ):
        self.id = next(self._ids)
        self.kind = kind  # "train", "cv", "teach", ...
        self.label = label  # for people: "training MLP 5 epochs"
        self.owner = owner  # session id, or None for headless use
        self.learner = learner  # who started it (the room's view), or None
        self.heavy = heavy
        self.heartbeat_timeout = heartbeat_s  # None: never reaped
        self.last_heartbeat = time.monotonic()
        self.progress = Progress()
        self.stop_event = StopEvent()  # its set() reaches a running fit at once
        self._work = work
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.kind} {self.progress.status}>"

    def stop(self, note: str | None = None) -> None:
        """Ask the work to end (training stops within one batch); a queued job never starts."""
        if note and not self.progress.note:
            self.progress.note = note
        self.stop_event.set()

    def heartbeat(self) -> None:
        self.last_heartbeat = time.monotonic()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished; True if it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.progress.finished

    @property
    def status(self) -> str:
        return self.progress.status


class JobManager:
    """The server-wide registry: runs jobs, holds heavy ones to max_jobs at once, reaps."""

    def __init__(
        self,
        *,
        max_jobs: int | None = None,
        heartbeat_timeout: float | None = None,
        reap_interval: float = 5.0,
    ):
        self._max_jobs = max_jobs
        self.heartbeat_timeout = (
            default_heartbeat_timeout() if heartbeat_timeout is None else heartbeat_timeout
        )
        self.reap_interval = reap_interval
        self._cond = threading.Condition()
        self._waiting: list[Job] = []  # heavy jobs not yet started, first come first served
        self._running: set[Job] = set()
        self._jobs: list[Job] = []
        self._reaper: threading.Thread | None = None

    @property
    def max_jobs(self) -> int:
        """Heavy jobs at once: as given, else from the engine's CPUs once it is up."""
        if self._max_jobs:
            return self._max_jobs
        from digitlab import engine

        return default_max_jobs(engine.cluster_cpus())

    # -- public ---------------------------------------------------------------------------

    def submit(
        self,
        work: Work,
        *,
        kind: str = "job",
        label: str = "",
        owner: str | None = None,
        heavy: bool = True,
        watched: bool = True,
        learner: str | None = None,
    ) -> Job:
        """Start work in a thread now, or queue it behind max_jobs heavy jobs.

        watched=True: the job expects heartbeats and is stopped when they cease.
        """
        job = Job(
            work,
            kind=kind,
            label=label or kind,
            owner=owner,
            heavy=heavy,
            heartbeat_s=self.heartbeat_timeout if watched else None,
            learner=learner,
        )
        with self._cond:
            self._forget_old()
            self._jobs.append(job)
            if heavy:
                self._waiting.append(job)
                self._renumber()
        job._thread = threading.Thread(
            target=self._run, args=(job,), daemon=True, name=f"job-{job.id}"
        )
        job._thread.start()
        self._ensure_reaper()
        return job

    def jobs(self, *, owner: str | None = None, active: bool = False) -> list[Job]:
        with self._cond:
            out = list(self._jobs)
        if owner is not None:
            out = [j for j in out if j.owner == owner]
        if active:
            out = [j for j in out if not j.progress.finished]
        return out

    def counts(self) -> dict[str, int]:
        with self._cond:
            return {"running": len(self._running), "queued": len(self._waiting)}

    def reap(self, now: float | None = None) -> list[Job]:
        """Stop every unfinished job whose heartbeat is older than its timeout; return them."""
        now = time.monotonic() if now is None else now
        stale = [
            j
            for j in self.jobs(active=True)
            if j.heartbeat_timeout is not None
            and not j.stop_event.is_set()
            and now - j.last_heartbeat > j.heartbeat_timeout
        ]
        for j in stale:
            log.info("stopping %r: no heartbeat for %.0f s", j, now - j.last_heartbeat)
            j.stop(note=f"Stopped: no page watched this run for {j.heartbeat_timeout:.0f} s.")
        if stale:
            with self._cond:
                self._cond.notify_all()
        return stale

    # -- internals ------------------------------------------------------------------------

    def _renumber(self) -> None:
        for i, j in enumerate(self._waiting):
            j.progress.queue_position = i + 1

    def _forget_old(self) -> None:
        now = time.time()
        self._jobs = [
            j
            for j in self._jobs
            if not (j.progress.finished and now - (j.progress.finished_at or now) > KEEP_FINISHED_S)
        ]

    def _run(self, job: Job) -> None:
        p = job.progress
        if job.heavy:
            with self._cond:
                while not job.stop_event.is_set() and not (
                    self._waiting[0] is job and len(self._running) < self.max_jobs
                ):
                    self._cond.wait(0.25)
                self._waiting.remove(job)
                self._renumber()
                p.queue_position = None
                if job.stop_event.is_set():
                    p.status, p.finished_at = "stopped", time.time()
                    self._cond.notify_all()
                    return
                self._running.add(job)
        p.started_at = time.time()
        p.status = "running"
        try:
            result = job._work(p.record, job.stop_event)
            p.result = result
            p.status = "stopped" if job.stop_event.is_set() else "done"
        except BaseException as e:  # the thread must never die silently
            p.error = error_sentence(e, f"The {job.label}")
            p.status = "failed"
            if not threading.main_thread().is_alive():  # the server is exiting: Python tears
                # down the modules (Keras's among them) under a job that outlives it
                log.info("job %s ended with the server: %s", job.id, p.error)
            else:
                log.warning("job %s failed: %s\n%s", job.id, p.error, traceback.format_exc())
        finally:
            p.finished_at = time.time()
            if p.status == "done":
                p.fraction, p.eta_s = 1.0, 0.0
            with self._cond:
                self._running.discard(job)
                self._cond.notify_all()

    def _ensure_reaper(self) -> None:
        if self._reaper is not None and self._reaper.is_alive():
            return

        def loop():
            while True:
                time.sleep(self.reap_interval)
                try:
                    self.reap()
                except Exception:  # never let the reaper die
                    log.exception("reaper")

        self._reaper = threading.Thread(target=loop, daemon=True, name="job-reaper")
        self._reaper.start()


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def manager() -> JobManager:
    """The one JobManager of this process (the Streamlit server), from the environment."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = JobManager()
        return _manager
