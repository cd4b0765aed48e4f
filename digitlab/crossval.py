"""k-fold cross-validation: scikit-learn's KFold, a fresh model per fold, folds run in parallel.

The tutorial builds one network and fits it fold after fold, so every fold after the first is
tested on digits the network has already trained on. `reuse_model=True` reproduces that, to show
the leak; the default builds a fresh model for every fold.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from digitlab.data import normalise, one_hot
from digitlab.models import ModelConfig, build_model, fresh_model
from digitlab.training import (
    Event,
    EventSink,
    StopFlag,
    even_batch_size,
    fit,
    make_events_callback,
)


class CrossValError(ValueError):
    """Cross-validation settings that cannot work; one sentence for people."""


@dataclass(frozen=True)
class FoldTask:
    """One fold's work: everything a worker needs besides the shared images and labels."""

    fold: int  # 1-based
    train_index: np.ndarray
    test_index: np.ndarray
    model_config: ModelConfig
    epochs: int
    batch_size: int
    seed: int | None


@dataclass
class FoldResult:
    fold: int
    accuracy: float  # on the fold's held-out part, in [0, 1]
    loss: float
    history: dict[str, list[float]]  # loss, accuracy, val_loss, val_accuracy per epoch
    seconds: float
    n_train: int
    n_test: int
    stopped: bool = False


@dataclass
class CVResult:
    """Plain data: per-fold scores and curves, and the settings that made them."""

    folds: list[FoldResult]
    n_splits: int
    epochs: int
    batch_size: int
    reuse_model: bool
    model_config: dict
    random_state: int
    seconds: float = 0.0
    workers: int = 1
    data_source: str = ""
    stopped: bool = False
    meta: dict = field(default_factory=dict)

    @property
    def accuracies(self) -> np.ndarray:
        return np.array([f.accuracy for f in self.folds])

    @property
    def mean(self) -> float:
        return float(self.accuracies.mean()) if self.folds else float("nan")

    @property
    def std(self) -> float:
        return (
            float(self.accuracies.std()) if self.folds else float("nan")
        )  # np.std, as the tutorial

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = self.mean, self.std
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CVResult:
        d = {k: v for k, v in d.items() if k not in ("mean", "std")}
        d["folds"] = [FoldResult(**f) for f in d["folds"]]
        return cls(**d)


def check_settings(n_samples: int, n_splits: int, epochs: int, batch_size: int) -> None:
    if n_splits < 2:
        raise CrossValError(f"Cross-validation needs at least 2 folds, not {n_splits}.")
    if n_splits > n_samples:
        raise CrossValError(
            f"{n_splits} folds need at least {n_splits} digits, but there are only {n_samples}."
        )
    if not 1 <= epochs <= 200:
        raise CrossValError(f"Epochs must be 1..200, not {epochs}.")
    if not 1 <= batch_size <= 8192:
        raise CrossValError(f"Batch size must be 1..8192, not {batch_size}.")


def make_tasks(n_samples, *, model_config, n_splits, epochs, batch_size, random_state, seed):
    from sklearn.model_selection import KFold

    kfold = KFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    return [
        FoldTask(
            fold=i + 1,
            train_index=train_ix,
            test_index=test_ix,
            model_config=model_config,
            epochs=epochs,
            batch_size=batch_size,
            seed=None if seed is None else seed + i,
        )
        for i, (train_ix, test_ix) in enumerate(kfold.split(np.zeros(n_samples)))
    ]


def run_fold(task: FoldTask, images, labels, *, model=None, on_event=None, stop=None) -> FoldResult:
    """Fit on the fold's train part, validating on its test part each epoch (as the tutorial).

    model: the network to go on training (the tutorial's reused network); by default a fresh
    one (fresh_model).
    """
    if model is None:
        with fresh_model(task.model_config, task.seed) as model:
            return run_fold(task, images, labels, model=model, on_event=on_event, stop=stop)
    t0 = time.perf_counter()
    x_train, y_train = images[task.train_index], one_hot(labels[task.train_index])  # uint8 in
    x_test, y_test = normalise(images[task.test_index]), one_hot(labels[task.test_index])

    def tagged(event: Event) -> None:
        if on_event is not None:
            on_event({**event, "fold": task.fold})

    batches = -(-len(x_train) // task.batch_size)
    tagged({"type": "fold_start", "epochs": task.epochs, "batches": batches})
    events = make_events_callback(tagged, stop, epochs=task.epochs, batches=batches)
    fit(
        model,
        x_train,
        y_train,
        epochs=task.epochs,
        batch_size=task.batch_size,
        seed=task.seed,
        events=events,
        stop=stop,
        validation_data=(x_test, y_test),
    )
    # The last epoch's validation scored these weights on these digits (Keras validates an epoch
    # cut short by a stop too): evaluating them again, as the tutorial does, repeats that pass.
    last = events.rows[-1] if events.rows else {}
    if "val_accuracy" in last:
        loss, acc = last["val_loss"], last["val_accuracy"]
    else:  # no epoch ended (a stop before the first one)
        loss, acc = model.evaluate(
            x_test, y_test, batch_size=even_batch_size(len(x_test)), verbose=0
        )
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    history = {k: [row[k] for row in events.rows if k in row] for k in keys}
    result = FoldResult(
        fold=task.fold,
        accuracy=float(acc),
        loss=float(loss),
        history=history,
        seconds=time.perf_counter() - t0,
        n_train=len(x_train),
        n_test=len(x_test),
        stopped=bool(stop is not None and stop.is_set()),
    )
    tagged(
        {
            "type": "fold_end",
            "accuracy": result.accuracy,
            "loss": result.loss,
            "seconds": result.seconds,
        }
    )
    return result


# ---------------------------------------------------------------------------------------------
# Executors: how fold tasks get run. A distributed engine would be one more class with .run.


class FoldExecutor(Protocol):
    workers: int

    def run(
        self, tasks: Sequence[FoldTask], images, labels, *, on_event, stop
    ) -> list[FoldResult]: ...


class SerialExecutor:
    """Folds one after another in this process."""

    workers = 1

    def run(self, tasks, images, labels, *, on_event=None, stop=None):
        results = []
        for task in tasks:
            if stop is not None and stop.is_set():
                break
            results.append(run_fold(task, images, labels, on_event=on_event, stop=stop))
        return results


# Worker-process globals, set once per worker by _init_worker (the data travels once, not per fold).
_W: dict[str, Any] = {}
_CLOSED = "_fold_closed"  # a worker's last word on a fold: every event of that fold has been sent


def _init_worker(images, labels, threads, events, stop):
    from digitlab.workers import NICE

    os.nice(NICE)  # pages answering drawings keep the server's priority (digitlab.workers)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    _W.update(images=images.open()["images"], labels=labels, events=events, stop=stop)


def _run_fold_in_worker(task: FoldTask) -> FoldResult:
    events = _W["events"]
    try:
        return run_fold(task, _W["images"], _W["labels"], on_event=events.put, stop=_W["stop"])
    finally:
        events.put({"type": _CLOSED, "fold": task.fold})


class ProcessExecutor:
    """Folds in parallel worker processes (concurrent.futures; forks of a server that imported
    TensorFlow, see _context), each with its own TensorFlow.

    Events from the workers come back through a multiprocessing queue and reach on_event in this
    process, so a page's live progress works the same as with SerialExecutor; a stop request
    reaches every worker through a multiprocessing Event (shared memory: a batch's check costs
    no round trip) and cancels the folds not yet started.

    workers: processes at once (default: one per core). threads_per_worker: TensorFlow intra-op
    threads in each (default: cores // workers, so the processes do not fight over the cores).
    """

    def __init__(self, workers: int | None = None, *, threads_per_worker: int | None = None):
        cores = os.cpu_count() or 1
        self.workers = max(1, workers or cores)
        self.threads = threads_per_worker or max(1, cores // self.workers)

    def run(self, tasks, images, labels, *, on_event=None, stop=None):
        from concurrent.futures import ProcessPoolExecutor, wait

        from digitlab.workers import share

        if not tasks:
            return []
        ctx = _context()
        events, remote_stop = ctx.Queue(), ctx.Event()
        with (
            share(images=images) as shared_images,  # mapped by each worker, not sent to it
            ProcessPoolExecutor(
                max_workers=min(self.workers, len(tasks)),
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(shared_images, labels, self.threads, events, remote_stop),
            ) as pool,
        ):
            futures = {pool.submit(_run_fold_in_worker, t): t.fold for t in tasks}
            pending = set(futures)
            open_folds = set(futures.values())  # folds whose closing word has not come yet
            deadline = None
            while open_folds:
                if stop is not None and stop.is_set() and not remote_stop.is_set():
                    remote_stop.set()
                    for f in pending:
                        f.cancel()
                open_folds -= _drain(events, on_event, timeout=0.1)
                _, pending = wait(pending, timeout=0)
                if not pending:  # cancelled folds say nothing; a crashed worker neither
                    open_folds -= {fold for f, fold in futures.items() if f.cancelled()}
                    deadline = deadline or time.monotonic() + 10.0
                    if time.monotonic() > deadline:
                        break
            results = [f.result() for f in futures if not f.cancelled()]
        events.close()
        return sorted(results, key=lambda r: r.fold)


# What the fold workers' fork server imports once, before any worker is forked from it.
_PRELOAD = ["digitlab.crossval", "tensorflow", "keras"]


def _context():
    """Fold workers start as forks of a server process that has imported TensorFlow (about
    0.1 s each), not as fresh Pythons that each import it (3-4 s; three at once on 2 cores took
    6 s, a third of a 5-fold run). The server forks only after imports, before TensorFlow runs
    anything (no thread pools yet: what makes forking a working TensorFlow unsafe)."""
    import multiprocessing as mp

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def prewarm(n_samples: int | None = None, *, wait: bool = False) -> None:
    """Start the fold workers' fork server now, so that its imports are done before the first
    k-fold run (the Evaluate page calls this; a server runs one for its lifetime). n_samples:
    only if folds on that many digits would run in workers (parallel_folds); the server holds
    its own TensorFlow (about 0.7 GB), not worth it for folds that run in the job's thread.
    wait: block until it can fork (a worker started and ended)."""
    from multiprocessing import forkserver

    if n_samples is not None and not parallel_folds(n_samples):
        return
    ctx = _context()
    forkserver.ensure_running()
    if wait:
        proc = ctx.Process(target=int)
        proc.start()
        proc.join()


def _drain(events, on_event, *, timeout: float) -> set[int]:
    """Pass queued events to on_event; return the folds whose closing word arrived."""
    closed = set()
    try:
        event = events.get(timeout=timeout)
        while True:
            if event.get("type") == _CLOSED:
                closed.add(event["fold"])
            elif on_event is not None:
                on_event(event)
            event = events.get_nowait()
    except queue.Empty:
        pass
    return closed


def balanced_workers(n_splits: int, cores: int) -> int:
    """Worker processes (one TensorFlow thread each) that keep every core busy to the last fold.

    One worker per core leaves a core idle at the end whenever the folds do not divide evenly:
    5 folds on 2 cores run 2 + 2 + 1, the last fold alone, 3 fold-times. ceil(k / floor(k / c))
    workers share the cores instead (the system divides time between them): 5 folds on 2 cores
    become 3 workers, 3 folds at once then 2, 2.5 fold-times, all the machine can give.
    """
    if n_splits <= cores:
        return n_splits
    return -(-n_splits // (n_splits // cores))


def parallel_folds(n_samples: int) -> bool:
    """Whether folds on n_samples digits run in worker processes: when there are cores to share
    and enough data to pay for the start-up, unless DIGITLAB_SERIAL_FOLDS=1."""
    return (
        (os.cpu_count() or 1) >= 2
        and n_samples >= 20000
        and os.environ.get("DIGITLAB_SERIAL_FOLDS") != "1"
    )


def default_executor(n_samples: int, n_splits: int) -> FoldExecutor:
    """ProcessExecutor where parallel_folds says so, else SerialExecutor."""
    if parallel_folds(n_samples):
        return ProcessExecutor(
            balanced_workers(n_splits, os.cpu_count() or 1), threads_per_worker=1
        )
    return SerialExecutor()


def cross_validate(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    model_config: ModelConfig = ModelConfig(),
    n_splits: int = 5,
    epochs: int = 5,
    batch_size: int = 128,
    reuse_model: bool = False,
    random_state: int = 1,
    seed: int | None = 0,
    executor: FoldExecutor | None = None,
    on_event: EventSink | None = None,
    stop: StopFlag | None = None,
    data_source: str = "",
) -> CVResult:
    """k-fold cross-validation on (n, 28, 28) uint8 images, as the tutorial's evaluate_model.

    KFold(n_splits, shuffle=True, random_state=1); each fold trains `epochs` epochs and is scored
    on its held-out part. reuse_model=True: one network across all folds (the tutorial's leak).
    """
    images, labels = np.asarray(images), np.asarray(labels)
    check_settings(len(images), n_splits, epochs, batch_size)
    t0 = time.perf_counter()
    tasks = make_tasks(
        len(images),
        model_config=model_config,
        n_splits=n_splits,
        epochs=epochs,
        batch_size=batch_size,
        random_state=random_state,
        seed=seed,
    )
    if on_event:
        on_event({"type": "start", "folds": n_splits, "epochs": epochs})
    if reuse_model:  # inherently sequential: each fold continues the previous fold's network
        executor = SerialExecutor()
        shared = build_model(model_config, seed=seed)
        folds = []
        for task in tasks:
            if stop is not None and stop.is_set():
                break
            folds.append(run_fold(task, images, labels, model=shared, on_event=on_event, stop=stop))
    else:
        executor = executor or default_executor(len(images), n_splits)
        folds = executor.run(tasks, images, labels, on_event=on_event, stop=stop)
    return CVResult(
        folds=folds,
        n_splits=n_splits,
        epochs=epochs,
        batch_size=batch_size,
        reuse_model=reuse_model,
        model_config=model_config.to_dict(),
        random_state=random_state,
        seconds=time.perf_counter() - t0,
        workers=executor.workers,
        data_source=data_source,
        stopped=bool(stop is not None and stop.is_set()),
    )
