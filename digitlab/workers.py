"""Heavy work in its own lower-priority process, with live events, a stop, and a warm spare.

A training job run in the server's own process shares its CPU time slices and its GIL with every
page that answers a drawing: in a room of learners, predictions then wait behind training. Here
the work runs in a child process (multiprocessing, spawn) at a lower scheduling priority
(`os.nice`), with TensorFlow of its own: the server's threads win the cores whenever a page needs
them, and training takes what is left.

    result = run(fn, *args, on_event=..., stop=..., **kwargs)

calls `fn(*args, on_event=..., stop=..., **kwargs)` in a worker; `fn` must be importable (a
module-level function) and its arguments and result picklable. Events reach `on_event` in the
caller as the worker sends them (a multiprocessing queue); the result comes last on the same
queue, so every event has arrived when `run` returns. An exception in `fn` is raised again here.
The caller's stop flag is passed on through a multiprocessing Event (training reads it within
one batch); a worker that has not ended KILL_AFTER_S seconds after a stop is killed.

Starting Python and importing TensorFlow takes seconds, so one spare worker is kept started
(`prewarm`): a job takes it, and a new spare is started when the job ends. Each worker runs one
job and exits, so a job's memory goes back to the system with it.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import multiprocessing as mp
import multiprocessing.util  # noqa: F401 - its exit hook is registered before ours
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# How much lower the workers' priority is than the server's (0..19). The lowest: a worker's
# TensorFlow threads each count for the scheduler, and at +10 (weight 110 each against a page's
# 1024) three of them still took a quarter of a contended core. Load test at N = 10 while one
# session trains, p95: 1,027 / 952 / 783 / 1,059 ms at +19, 1,489 / 1,268 / 1,541 / 1,186 / 899
# ms at +10 (BENCHMARKS.md, Load round 5); on an idle machine training runs as fast either way.
NICE = 19
KILL_AFTER_S = 30.0  # a stopped worker that has not ended by then is killed
_ctx = mp.get_context("spawn")  # fork after TensorFlow has started threads is unsafe


@dataclasses.dataclass(frozen=True)
class SharedArrays:
    """Arrays in shared memory, as a worker receives them (see share): a few names, not the data."""

    specs: tuple[tuple[str, str, tuple[int, ...], str], ...]  # key, block, shape, dtype

    def open(self) -> dict[str, Any]:
        """Map the arrays here, read-only; they stay mapped as long as this process lives."""
        from multiprocessing import shared_memory

        import numpy as np

        out = {}
        for key, name, shape, dtype in self.specs:
            block = shared_memory.SharedMemory(name=name)
            _mapped.append(block)  # its buffer must outlive every array made on it
            array = np.ndarray(shape, dtype, buffer=block.buf)
            array.flags.writeable = False
            out[key] = array
        return out


_mapped: list = []  # the shared-memory blocks this process has mapped (SharedArrays.open)


@contextlib.contextmanager
def share(**arrays):
    """The arrays copied into shared-memory blocks while the block runs: workers open() them
    instead of receiving pickled copies through a pipe (MNIST's 55 MB of digits took 0.1-0.2 s
    per worker, before its work could start). The blocks are removed when the block ends."""
    from multiprocessing import shared_memory

    import numpy as np

    blocks, specs = [], []
    try:
        for key, array in arrays.items():
            array = np.ascontiguousarray(array)
            block = shared_memory.SharedMemory(create=True, size=max(1, array.nbytes))
            blocks.append(block)
            np.ndarray(array.shape, array.dtype, buffer=block.buf)[...] = array
            specs.append((key, block.name, array.shape, array.dtype.str))
        yield SharedArrays(tuple(specs))
    finally:
        for block in blocks:
            block.close()
            block.unlink()


class WorkerError(RuntimeError):
    """The worker process ended without a result (killed, crashed, out of memory)."""


class ServerClosing(WorkerError):
    """The worker was ended because this process is exiting: expected, not a fault."""

    quiet = True  # digitlab.jobs logs it without a traceback


_closing = False


_live: set = set()  # started workers not yet retired


@atexit.register
def _on_exit() -> None:
    # Registered after multiprocessing's own exit hook, so it runs first: a job thread that
    # sees its worker gone knows why, and the workers (which ignore SIGTERM) are killed here
    # rather than waited for by multiprocessing's join.
    global _closing
    _closing = True
    for w in list(_live):
        with contextlib.suppress(Exception):
            w.proc.kill()


def _serve(conn, events, stop, nice: int, prepare: bool = False) -> None:
    """A worker's life: lower its priority, import TensorFlow, run one task, send the result.

    prepare (a spare, which has time before its job comes): also compile a network for the
    default training run (training.prepare), which a job with those settings then borrows.
    """
    with contextlib.suppress(OSError):
        os.nice(nice)
    # Ctrl-C in a terminal, or a stop sent to the whole process group, is for the server to act
    # on: it ends its workers when it exits (_on_exit), and an orphaned worker ends itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parent = os.getppid()

    def orphaned():  # the server is gone (killed): nobody will read the result
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    import keras  # noqa: F401  (the slow imports, paid while waiting for work)
    import tensorflow  # noqa: F401

    if prepare:
        try:
            from digitlab.training import prepare as compile_default

            compile_default()
        except Exception:  # an optimisation: the job compiles its own network instead
            log.exception("could not prepare the default network")

    events.put(("ready", os.getpid()))
    try:
        fn, args, kwargs = conn.recv()
    except (EOFError, OSError):
        return  # a spare that was never used
    try:
        result = fn(*args, on_event=lambda e: events.put(("event", e)), stop=stop, **kwargs)
        events.put(("result", result))
    except BaseException as e:  # sent back and raised in the caller
        try:
            events.put(("error", e))
        except Exception:
            events.put(("error", RuntimeError(f"{type(e).__name__}: {e}")))
    events.close()
    events.join_thread()  # everything is in the pipe before the process ends


class _Worker:
    def __init__(self, *, prepare: bool = False):
        self.events = _ctx.Queue()
        self.stop = _ctx.Event()
        self.conn, child = _ctx.Pipe()
        self.proc = _ctx.Process(
            target=_serve,
            args=(child, self.events, self.stop, NICE, prepare),
            daemon=True,
            name="digitlab-worker",
        )
        self.proc.start()
        _live.add(self)
        child.close()
        self.ready = False  # its imports (and preparation) are done: its first word on the queue

    def wait_ready(self, timeout: float) -> bool:
        if not self.ready:
            try:
                kind, _ = self.events.get(timeout=timeout)
            except queue.Empty:
                return False
            self.ready = kind == "ready"
        return self.ready

    def discard(self) -> None:
        self.conn.close()  # a waiting spare sees EOF and exits
        self.proc.join(1.0)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(1.0)
        _live.discard(self)


_spare: _Worker | None = None
_keep_warm = False  # set by prewarm: after each job, start the next spare
_lock = threading.Lock()


def prewarm() -> None:
    """Start a spare worker now if there is none, and keep one ready after every job from now on,
    so that jobs start without waiting for Python and TensorFlow."""
    global _spare, _keep_warm
    if _closing:  # a process started now would lose its parent while it starts
        return
    with _lock:
        _keep_warm = True
        if _spare is None or not _spare.proc.is_alive():
            _spare = _Worker(prepare=True)


def _take() -> _Worker:
    global _spare
    with _lock:
        w, _spare = _spare, None
    if w is not None and w.proc.is_alive():
        return w
    return _Worker()


def wait_spare(timeout: float = 60.0) -> bool:
    """Block until a spare worker is started and has imported TensorFlow (benchmarks use this
    so that a spare's start-up does not overlap what they time next)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _lock:
            w = _spare
        if w is not None:
            return w.wait_ready(max(0.0, deadline - time.monotonic()))
        time.sleep(0.05)
    return False


def shutdown() -> None:
    """End the spare and stop keeping one (tests, and a server that stops)."""
    global _spare, _keep_warm
    with _lock:
        w, _spare, _keep_warm = _spare, None, False
    if w is not None:
        w.discard()


def run(
    fn: Callable[..., Any],
    *args,
    on_event: Callable[[dict], None] | None = None,
    stop=None,
    **kwargs,
) -> Any:
    """fn(*args, on_event=, stop=, **kwargs) in a worker process; see the module's doc."""
    from digitlab.training import StopEvent

    w = _take()
    stopped_at: float | None = None
    hooked = isinstance(stop, StopEvent)
    if hooked:  # the worker hears of a stop in set() itself, not at our next poll
        stop._hooks.append(w.stop.set)
        if stop.is_set():
            w.stop.set()
    try:
        try:
            w.conn.send((fn, args, kwargs))
        except OSError:
            raise WorkerError(
                f"The worker process could not start (exit code {w.proc.exitcode})."
            ) from None
        while True:
            if stop is not None and stop.is_set() and stopped_at is None:
                w.stop.set()
                stopped_at = time.monotonic()
            try:
                kind, payload = w.events.get(timeout=0.05)
            except queue.Empty:
                if not w.proc.is_alive():
                    if _closing:
                        raise ServerClosing("The server stopped during the run.") from None
                    raise WorkerError(
                        f"The worker process ended without a result (exit code {w.proc.exitcode})."
                    ) from None
                if stopped_at is not None and time.monotonic() - stopped_at > KILL_AFTER_S:
                    w.proc.kill()
                    raise WorkerError(
                        f"The worker did not stop within {KILL_AFTER_S:.0f} s and was ended."
                    ) from None
                continue
            if kind == "ready":
                w.ready = True
            elif kind == "event":
                if on_event is not None:
                    on_event(payload)
            elif kind == "result":
                return payload
            else:
                raise payload
    finally:
        if hooked:
            stop._hooks.remove(w.stop.set)
        # The worker's own exit (TensorFlow's teardown) takes a while: not on the caller's time.
        threading.Thread(target=_retire, args=(w,), daemon=True).start()


def _retire(w: _Worker) -> None:
    """Let a finished worker exit (kill it if it hangs), then start the next spare."""
    w.proc.join(10.0)
    if w.proc.is_alive():
        w.proc.kill()
        w.proc.join(1.0)
    w.conn.close()
    _live.discard(w)
    if _keep_warm:
        try:
            prewarm()
        except Exception:  # a spare is an optimisation; the next job starts its own
            log.exception("could not start a spare worker")
