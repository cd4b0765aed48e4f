"""Background jobs: work in threads, a plain progress object, stop, a limit on heavy jobs, reaping.

A job runs `work(on_event, stop)` (the signature of training.train and crossval.cross_validate
once their data and settings are bound) in a thread. The worker only writes to the job's
`Progress`, a plain object; pages read it from `@st.fragment(run_every=...)`. Nothing here
imports streamlit.

Heavy jobs (training, cross-validation) share a server-wide limit, DIGITLAB_MAX_JOBS. Its
default is max(1, cores // 2): one Keras fit already spreads over every core through
TensorFlow's intra-op threads, so more fits at once than about half the cores only make each
one slower without finishing any sooner; on a 2-core workshop laptop it means one run at a time,
and the others wait in a visible queue (Progress.queue_position).

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
from dataclasses import dataclass, field, replace
from typing import Any

from digitlab.training import StopEvent

log = logging.getLogger(__name__)

Work = Callable[[Callable[[dict], None], threading.Event], Any]
FINAL = ("done", "stopped", "failed")
KEEP_FINISHED_S = (
    3600  # finished jobs leave the server-wide list after this (a session may keep its handle)
)


def default_max_jobs() -> int:
    env = os.environ.get("DIGITLAB_MAX_JOBS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            log.warning("DIGITLAB_MAX_JOBS=%r is not a whole number; using the default", env)
    return max(1, (os.cpu_count() or 1) // 2)


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


@dataclass
class Progress:
    """What a page may read while the worker writes. Plain attributes; events only grow."""

    status: str = "queued"  # queued, running, done, stopped, failed
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
    _partial: dict = field(default_factory=dict)  # fold -> fraction of the current epoch

    def record(self, event: dict) -> None:
        kind = event.get("type")
        fold = event.get("fold", 0)
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
        self.kind = kind  # "train", "cv", ...
        self.label = label  # for people: "training MLP 5 epochs"
        self.owner = owner  # session id, or None for headless use
        self.learner = learner  # the learner's name (digitlab.store), or None for the room
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
        self.max_jobs = max_jobs or default_max_jobs()
        self.heartbeat_timeout = (
            default_heartbeat_timeout() if heartbeat_timeout is None else heartbeat_timeout
        )
        self.reap_interval = reap_interval
        self._cond = threading.Condition()
        self._waiting: list[Job] = []  # heavy jobs not yet started, first come first served
        self._running: set[Job] = set()
        self._jobs: list[Job] = []
        self._reaper: threading.Thread | None = None

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
            if getattr(e, "quiet", False):  # e.g. the server is shutting down
                log.info("job %s ended: %s", job.id, p.error)
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


# ---------------------------------------------------------------------------------------------
# The work the app runs as jobs: data and settings bound, ready for JobManager.submit.


def training_work(digits, *, model_config, train_config, in_worker: bool = True) -> Work:
    """One training run (digitlab.training.train); the job's result is the TrainResult.

    in_worker: train in a lower-priority worker process (digitlab.workers), so that pages
    answering drawings keep the server's CPU; the trained weights come back into a model built
    here. False: train in the job's own thread.
    """

    def work(on_event, stop):
        from digitlab.training import train

        if not in_worker:
            return train(
                digits,
                model_config=model_config,
                train_config=train_config,
                on_event=on_event,
                stop=stop,
            )
        from digitlab import workers
        from digitlab.models import build_model

        arrays = {k: getattr(digits, k) for k in ("x_train", "y_train", "x_test", "y_test")}
        with workers.share(**arrays) as shared:  # mapped by the worker, not sent to it
            result, weights = workers.run(
                train_in_worker,
                shared,
                replace(digits, **{k: v[:0] for k, v in arrays.items()}),
                model_config,
                train_config,
                on_event=on_event,
                stop=stop,
            )
        result.model = build_model(model_config)
        result.model.set_weights(weights)
        return result

    return work


def train_in_worker(shared, digits, model_config, train_config, *, on_event, stop):
    """train() as a worker runs it: the TrainResult without its model, and the model's weights.

    shared: the digits' arrays (workers.share); digits: the rest of them (source, kind), with
    empty arrays."""
    from digitlab.models import fresh_model
    from digitlab.training import train

    digits = replace(digits, **shared.open())
    # the network a spare compiled for these settings (training.prepare), or a new one; the
    # worker ends after this run, so nobody holds the model the next borrower would reset
    with fresh_model(model_config, train_config.seed) as model:
        result = train(
            digits,
            model_config=model_config,
            train_config=train_config,
            on_event=on_event,
            stop=stop,
            model=model,
        )
        weights = model.get_weights()
    result.model = None
    return result, weights


def crossval_work(
    images,
    labels,
    *,
    model_config,
    n_splits: int = 5,
    epochs: int = 5,
    batch_size: int = 128,
    with_reused: bool = False,
    data_source: str = "",
    save: bool = True,
    learner: str | None = None,
) -> Work:
    """k-fold with a fresh model per fold, then (with_reused) the tutorial's reused model.

    Events carry "variant" ("fresh" or "reused") besides "fold"; one "start" event covers both
    runs, so progress and ETA span the whole job. The result: {"fresh": CVResult, "reused":
    CVResult | None, "names": stored ids}; with save, both are kept in digitlab.store as the
    learner's (None: the room's) and the fresh one names its reused partner in meta["pair"].
    """

    def work(on_event, stop):
        from digitlab import store
        from digitlab.crossval import cross_validate

        variants = ["fresh", "reused"] if with_reused else ["fresh"]
        on_event({"type": "start", "folds": n_splits * len(variants), "epochs": epochs})
        out = {"fresh": None, "reused": None, "names": {}}
        for variant in variants:
            if stop.is_set():
                break

            def tagged(event, variant=variant):
                if event.get("type") != "start":
                    on_event({**event, "variant": variant})

            out[variant] = cross_validate(
                images,
                labels,
                model_config=model_config,
                n_splits=n_splits,
                epochs=epochs,
                batch_size=batch_size,
                reuse_model=variant == "reused",
                on_event=tagged,
                stop=stop,
                data_source=data_source,
            )
        if save:
            if out["reused"] is not None and out["reused"].folds:
                out["names"]["reused"] = store.save_cv(out["reused"].to_dict(), learner=learner)
            if out["fresh"] is not None and out["fresh"].folds:
                if "reused" in out["names"]:
                    out["fresh"].meta["pair"] = out["names"]["reused"]
                out["names"]["fresh"] = store.save_cv(out["fresh"].to_dict(), learner=learner)
        return out

    return work
