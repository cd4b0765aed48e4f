"""The engine for heavy work: Ray, embedded on this machine or joined at DIGITLAB_RAY_ADDRESS.

    engine.start_in_background()          # the app, at server start: never delays a page
    result = engine.run(fn, *args, on_event=..., stop=..., **kwargs)
    results = engine.run_many([(fn, args, kwargs), ...], on_event=..., stop=...)

`run` calls `fn(*args, on_event=, stop=, **kwargs)` as a Ray task on whichever node has a free
CPU. `fn` must be importable (a module-level function) and its arguments and result picklable;
large arrays go in as `engine.put(array)` references, so each is sent to the object store once
and read there by every task (zero-copy on the same node).

One channel, both ways: every job has an event buffer and a stop flag in this driver's `Hub`
actor. A task sends its events there (epoch and fold events at once, batch progress at most every
FLUSH_S, the latest only) and `run` fetches them every POLL_S for `on_event`; a stop set here is
put on the Hub, where the task's watcher thread is waiting for it and sets the task's own
`training.StopEvent`, which ends the fit within one batch (training.stop_variable).

A task whose worker process or node dies: a training run (retries=0) ends with WorkerDied, one
sentence; k-fold folds (retries=1) are run again by Ray on another worker, once.

Security: the embedded Ray listens on 127.0.0.1 only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps
every Ray service there) and, as any cluster DigitLab joins, requires Ray's token
(RAY_AUTH_MODE=token; the token is in ~/.ray/auth_token or RAY_AUTH_TOKEN).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from digitlab.crossval import FoldResult, FoldTask, run_fold
from digitlab.training import StopEvent, StopFlag

log = logging.getLogger(__name__)

ADDRESS_ENV = "DIGITLAB_RAY_ADDRESS"  # host:port of a running cluster's head; unset: embedded
NICE = 19  # workers' scheduling priority on a shared machine: pages answering drawings come first
POLL_S = 0.25  # how often a running job's events are fetched (pages show them every second)
FLUSH_S = 0.25  # how often a task sends its latest batch progress
OWNER_NICE = 10  # the thread that starts Ray, and so Ray's own services (Linux: per thread)
CONNECT_TIMEOUT_S = 3.0  # a cluster address that does not answer by then is reported, not waited on


class EngineError(ValueError):
    """The engine cannot run work (no cluster at that address, ...); one sentence for people."""


class WorkerDied(EngineError):
    """The process (or the node) running a piece of work ended without a result."""


# ---------------------------------------------------------------------------------------------
# Connecting


_lock = threading.RLock()
_connected = threading.Event()
_error: str | None = None
_hub = None  # this driver's Hub actor handle
_started: threading.Thread | None = None
_failed_at: float | None = None  # when the last try to start or join failed
RETRY_S = 30.0  # a failed start is tried again on the next page run after this long


def address() -> str | None:
    """The cluster to join (DIGITLAB_RAY_ADDRESS), or None for an embedded Ray on this machine."""
    return os.environ.get(ADDRESS_ENV, "").strip() or None


def _ray_environment() -> None:
    """Ray's own settings that DigitLab relies on, unless the environment says otherwise."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")  # a cluster is never an open port
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every service on loopback
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline; nothing phones home
    # Workers stay in the raylet's process group (Ray makes each one a group leader otherwise),
    # so that a task can start a session of its own and lower it as a whole (_lower_priority).
    os.environ.setdefault("RAY_process_group_cleanup_enabled", "0")
    if address():
        # A driver joining a cluster asks its GCS up to this many times, a second apart (Ray's
        # default: 20). The address answered the TCP probe already, so a refusal (a wrong token)
        # is said after 5 s, not 20. Ray reads it when imported: this runs before `import ray`.
        os.environ.setdefault("RAY_NUM_REDIS_GET_RETRIES", "5")


def _probe(addr: str) -> None:
    """EngineError unless something accepts connections at addr (ray.init retries for minutes)."""
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise EngineError(f"{ADDRESS_ENV}={addr!r} is not an address of the form host:port.")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError:
        raise EngineError(
            f"No Ray cluster answers at {addr} ({ADDRESS_ENV}); is `ray start --head` running there?"
        ) from None


def connect() -> None:
    """Start the embedded Ray, or join DIGITLAB_RAY_ADDRESS, now (once per process).

    Raises EngineError, one sentence, when the cluster cannot be reached. Ray is started by one
    thread that lives as long as this process (the "owner"): Ray's services are started with
    PR_SET_PDEATHSIG and would be killed when the thread that started them ends, such as a
    Streamlit script thread or a job thread."""
    if _connected.is_set():
        return
    start_in_background(warm_up=False)
    wait_ready()
    if not _connected.is_set():
        raise EngineError(_error or "The engine did not start.")


def _connect_here() -> None:
    global _hub, _error
    _ray_environment()
    import ray

    addr = address()
    try:
        if addr:
            _probe(addr)
            # the cluster's workers import digitlab from here, wherever they run
            package = str(Path(__file__).resolve().parent)
            ray.init(
                address=addr,
                runtime_env={"py_modules": [package]},
                log_to_driver=False,
                configure_logging=False,
            )
        elif not ray.is_initialized():
            ray.init(
                address="local",  # a Ray of its own, even where `ray start` runs beside it
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        hub_class, _ = _remote()
        _hub = hub_class.options(num_cpus=0, max_concurrency=1000).remote()
        ray.get(_hub.ping.remote())
    except EngineError as e:
        _error = str(e)
        raise
    except Exception as e:  # Ray's own: authentication, version mismatch, ...
        text = " ".join(str(e).split())[:200]
        if addr:
            _error = (
                f"Could not join the Ray cluster at {addr} ({type(e).__name__}: {text}); does "
                "this machine hold the cluster's token (~/.ray/auth_token or RAY_AUTH_TOKEN)?"
            )
        else:
            _error = f"Could not start the embedded Ray: {type(e).__name__}: {text}"
        raise EngineError(_error) from None
    _error = None
    _connected.set()


def start_in_background(*, warm_up: bool = True, after: Callable[[], object] | None = None) -> None:
    """Start or join Ray in the owner thread, once: the first page does not wait for it (about
    4 s); then (warm_up) import TensorFlow in one worker per CPU. after: called first in that
    thread, to let a short piece of the server's own work finish before Ray's start takes the
    cores (the app: the default model's quick first pass)."""
    global _started
    with _lock:
        if _started is not None and (_started.is_alive() or _connected.is_set()):
            return
        if _failed_at is not None and time.monotonic() - _failed_at < RETRY_S:
            return  # the last try failed just now: its sentence stands until the next try

        def own():
            global _failed_at
            # This thread and the Ray services it starts run below the server's priority: a
            # page served while Ray starts (about 4 s of CPU) does not wait for it.
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), OWNER_NICE)
            if after is not None:
                try:
                    after()
                except Exception:  # it only decides when Ray starts, never whether
                    log.exception("before the engine's start")
            try:
                _connect_here()
                if warm_up:
                    warm()
            except EngineError as e:  # kept in _error: pages and the CLI say it
                _failed_at = time.monotonic()
                log.info("%s", e)
                return
            except Exception:  # warming is an optimisation: a job imports TensorFlow itself
                log.exception("warming the engine's workers")
            threading.Event().wait()  # Ray's services live as long as this thread

        _started = threading.Thread(target=own, daemon=True, name="digitlab-engine")
        _started.start()


def wait_ready(timeout: float | None = None) -> bool:
    """Block until connected (True), the start failed, or timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not _connected.is_set():
        if _started is None or not _started.is_alive():
            return _connected.is_set()
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        _connected.wait(0.05 if left is None else min(0.05, left))
    return True


_nodes: tuple[float, int, int] | None = None  # (when, nodes, cpus): asked of Ray every NODES_S
NODES_S = 10.0


def status() -> dict:
    """What the pages show: connected or not, where, nodes and CPUs, or the error sentence."""
    global _nodes
    out: dict[str, Any] = {
        "address": address() or "embedded (this machine)",
        "connected": _connected.is_set(),
    }
    if _error:
        out["error"] = _error
    if _connected.is_set():
        if _nodes is None or time.monotonic() - _nodes[0] > NODES_S:
            import ray

            alive = [n for n in ray.nodes() if n.get("Alive")]
            cpus = int(sum(n.get("Resources", {}).get("CPU", 0) for n in alive))
            _nodes = (time.monotonic(), len(alive), cpus)
        out["nodes"], out["cpus"] = _nodes[1], _nodes[2]
    return out


def cluster_cpus() -> int | None:
    """CPUs of the cluster once connected, else None."""
    return status().get("cpus") if _connected.is_set() else None


def node_id() -> str:
    """This driver's Ray node (on a cluster joined from the head machine: the head's)."""
    connect()
    import ray

    return ray.get_runtime_context().get_node_id()


def error() -> str | None:
    """The sentence that says why the engine is not available, or None."""
    return _error


def shutdown() -> None:
    """Leave Ray (tests and scripts that switch clusters)."""
    global _hub, _error, _started, _nodes, _failed_at
    with _lock:
        import ray

        _puts.clear()
        _hub, _error, _started, _nodes, _failed_at = None, None, None, None, None
        _connected.clear()
        if ray.is_initialized():
            ray.shutdown()


# ---------------------------------------------------------------------------------------------
# Data in the object store


_puts: dict[int, tuple[Any, Any]] = {}  # id(array) -> (array, ref); the array kept so ids stay
_PUTS_KEPT = 8


def put(array) -> Any:
    """An object-store reference to array, made once per array object and reused by every task."""
    connect()
    import ray

    with _lock:
        hit = _puts.get(id(array))
        if hit is not None and hit[0] is array:
            return hit[1]
        ref = ray.put(array)
        _puts[id(array)] = (array, ref)
        while len(_puts) > _PUTS_KEPT:
            _puts.pop(next(iter(_puts)))
        return ref


# ---------------------------------------------------------------------------------------------
# The channel: events one way, stop the other


def _remote_classes():
    import ray

    @ray.remote
    class Hub:
        """Every running job's events and stop flag, for this driver (one actor)."""

        def __init__(self):
            self._events: dict[str, list[dict]] = {}
            self._stopped: set[str] = set()
            self._cond = threading.Condition()

        def ping(self) -> bool:
            return True

        def emit(self, job: str, events: list[dict]) -> None:
            with self._cond:
                self._events.setdefault(job, []).extend(events)

        def take(self, job: str, since: int) -> list[dict]:
            with self._cond:
                return list(self._events.get(job, [])[since:])

        def stop(self, job: str) -> None:
            with self._cond:
                self._stopped.add(job)
                self._cond.notify_all()

        def wait_stop(self, job: str, timeout: float) -> bool:
            with self._cond:
                return self._cond.wait_for(lambda: job in self._stopped, timeout)

        def forget(self, job: str) -> None:
            with self._cond:
                self._events.pop(job, None)
                self._stopped.discard(job)

    @ray.remote
    def call(hub, job: str, fn, args, kwargs):
        return _call_here(hub, job, fn, args, kwargs)

    return Hub, call


def _lower_priority() -> None:
    """This worker below everything else on its machine, pages and browsers included.

    A nice value counts only within one scheduling group: Linux puts each session in an
    "autogroup" (sched_autogroup_enabled), and shares the CPU fairly between groups, so a worker
    at nice 19 in the server's session still took the server's whole share from the browsers
    beside it (BENCHMARKS.md, the load test). A worker that can start a session of its own
    lowers that group too."""
    with contextlib.suppress(OSError):
        if os.getpriority(os.PRIO_PROCESS, 0) < NICE:
            os.nice(NICE - os.getpriority(os.PRIO_PROCESS, 0))
    with contextlib.suppress(OSError):
        os.setsid()  # refused for a process-group leader (a cluster started without our setting)
    if os.getsid(0) == os.getpid():  # never lower the group of the session we were started in
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(str(NICE))


class _Sender:
    """A task's on_event: events to the Hub in order, batch progress thinned to every FLUSH_S."""

    def __init__(self, hub, job: str):
        self.hub, self.job = hub, job
        self.pending: list[dict] = []
        self.batch: dict | None = None
        self.last = 0.0
        self.lock = threading.Lock()

    def __call__(self, event: dict) -> None:
        with self.lock:
            if event.get("type") == "batch":
                self.batch = event
                if time.monotonic() - self.last < FLUSH_S:
                    return
            else:
                if self.batch is not None:
                    self.pending.append(self.batch)
                    self.batch = None
                self.pending.append(event)
        self.flush()

    def flush(self) -> None:
        import ray

        with self.lock:
            events, self.pending = self.pending, []
            if self.batch is not None:
                events.append(self.batch)
                self.batch = None
            self.last = time.monotonic()
            if events:  # one at a time, in order: the Hub's threads could reorder unawaited calls
                ray.get(self.hub.emit.remote(self.job, events))


def _call_here(hub, job: str, fn, args, kwargs):
    """In a Ray worker: run fn with a sender and a stop that the Hub's flag sets."""
    import ray

    _lower_priority()
    # references given inside args (engine.put) are read here, from this node's object store
    args = tuple(ray.get(a) if isinstance(a, ray.ObjectRef) else a for a in args)
    if ray.get(hub.wait_stop.remote(job, 0.0)):
        return None  # stopped before it started (a fold that was still waiting for a CPU)
    stop = StopEvent()
    done = threading.Event()

    def watch():
        while not done.is_set():
            try:
                if ray.get(hub.wait_stop.remote(job, 2.0)):
                    stop.set()
                    return
            except Exception:  # the driver is gone: nobody will read the result
                stop.set()
                return

    threading.Thread(target=watch, daemon=True, name="digitlab-stop-watch").start()
    send = _Sender(hub, job)
    ctx = ray.get_runtime_context()
    send({"type": "worker", "pid": os.getpid(), "node": ctx.get_node_id()})
    try:
        return fn(*args, on_event=send, stop=stop, **kwargs)
    finally:
        done.set()
        send.flush()


_classes = None


def _remote():
    global _classes
    if _classes is None:
        _classes = _remote_classes()
    return _classes


# ---------------------------------------------------------------------------------------------
# Running work


Call = tuple[Callable[..., Any], tuple, dict]


def run(
    fn: Callable[..., Any],
    *args,
    on_event: Callable[[dict], None] | None = None,
    stop: StopFlag | None = None,
    num_cpus: float = 1,
    retries: int = 0,
    **kwargs,
) -> Any:
    """fn(*args, on_event=, stop=, **kwargs) as a Ray task; None if a stop kept it from starting
    (see the module's doc)."""
    return run_many(
        [(fn, args, kwargs)], on_event=on_event, stop=stop, num_cpus=num_cpus, retries=retries
    )[0]


def run_many(
    calls: Sequence[Call],
    *,
    on_event: Callable[[dict], None] | None = None,
    stop: StopFlag | None = None,
    num_cpus: float = 1,
    retries: int = 1,
) -> list[Any]:
    """Each call as a Ray task (Ray's scheduler runs as many at once as there are CPUs); their
    results in the calls' order, None for a call that a stop kept from starting. Events of all
    reach on_event here, in order per call."""
    if stop is not None and stop.is_set():  # stopped before it was asked: nothing starts
        return [None] * len(calls)
    connect()
    import ray

    _, call = _remote()
    hub, job = _hub, uuid.uuid4().hex
    refs = [
        call.options(num_cpus=num_cpus, max_retries=retries).remote(hub, job, fn, args, kw)
        for fn, args, kw in calls
    ]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(refs)
    pending, seen, stop_sent = list(refs), 0, False

    def send_stop() -> None:
        hub.stop.remote(job)

    hooked = isinstance(stop, StopEvent)
    if hooked:  # a stop goes to the Hub from set() itself, not at this loop's next turn
        stop._hooks.append(send_stop)

    def drain() -> None:
        nonlocal seen
        events = ray.get(hub.take.remote(job, seen))
        seen += len(events)
        if on_event is not None:
            for event in events:
                on_event(event)

    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S)
            if stop is not None and stop.is_set() and not stop_sent:
                hub.stop.remote(job)
                stop_sent = True
            drain()
            for ref in ready:
                results[index[ref]] = _result(ref)
        drain()
    finally:
        if hooked:
            stop._hooks.remove(send_stop)
        if pending:  # an error above: the others' work is not wanted any more
            hub.stop.remote(job)
            for ref in pending:
                ray.cancel(ref)
        hub.forget.remote(job)
    return results


def _result(ref):
    """ray.get(ref), with Ray's failures as one sentence and the work's own errors as they were."""
    import ray
    from ray import exceptions as rx

    try:
        return ray.get(ref)
    except rx.RayTaskError as e:
        cause = e.cause if isinstance(getattr(e, "cause", None), BaseException) else None
        raise (cause or e) from None
    except (
        rx.WorkerCrashedError,
        rx.NodeDiedError,
        rx.OwnerDiedError,
        rx.ObjectLostError,
        rx.TaskCancelledError,
        rx.RayActorError,
    ):
        raise WorkerDied("The worker running this job died.") from None


def warm(n: int | None = None) -> None:
    """Start n workers (default: one per CPU) and import TensorFlow in each, so a job does not
    wait for it; Ray keeps idle workers for the next tasks."""
    import ray

    _, call = _remote()
    n = n or max(1, cluster_cpus() or 1)
    ray.get([call.options(num_cpus=1).remote(_hub, "warm", _warm_worker, (), {}) for _ in range(n)])


def _warm_worker(*, on_event, stop) -> int:
    import keras  # noqa: F401  (the slow import, paid before any job comes)

    from digitlab.training import prepare

    prepare()  # the default run's network compiled; a job with those settings borrows it
    return os.getpid()


# ---------------------------------------------------------------------------------------------
# k-fold folds on the engine


def _run_fold_task(task: FoldTask, images, labels, *, on_event, stop) -> FoldResult:
    import ray

    result = run_fold(task, images, labels, on_event=on_event, stop=stop)
    result.node = ray.get_runtime_context().get_node_id()
    return result


class RayExecutor:
    """crossval's FoldExecutor on the engine: each fold a task with one CPU, the digits sent to
    the object store once; folds lost with their worker or node are run again, once."""

    def __init__(self):
        self.workers = max(1, cluster_cpus() or os.cpu_count() or 1)

    def run(self, tasks, images, labels, *, on_event=None, stop=None):
        images_ref, labels_ref = put(images), put(labels)
        self.workers = max(1, min(len(tasks), cluster_cpus() or 1))
        results = run_many(
            [(_run_fold_task, (t, images_ref, labels_ref), {}) for t in tasks],
            on_event=on_event,
            stop=stop,
            retries=1,
        )
        return sorted((r for r in results if r is not None), key=lambda r: r.fold)
