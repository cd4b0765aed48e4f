"""The server's load for the instructor's view: sessions, the job queue, CPU and memory, headless.

`measure()` reads what a workshop needs to see trouble coming: how many browser sessions are
connected (the UI layer passes the count in: only Streamlit knows it), how many heavy jobs run
and wait, how busy this process and the machine's cores have been since the last reading, and
this process's memory. `advice()` turns a reading into one sentence when the room is near what
one server holds (LEARNERS_PER_CORE drawing learners per core, up to ONE_PROCESS_MAX, measured
with bench/room_load.py) and says what to do past it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Drawing learners one core serves with p95 <= 1 s, measured (bench/room_load.py, BENCHMARKS.md
# "Room load": 60 on 2 cores, a digit every 4-5 s each, training beside them). One Streamlit
# process runs its pages' Python under one interpreter lock, full near 0.9 of a core: past
# ONE_PROCESS_MAX more cores do not help it (at 100 learners p95 was 1.7-2.5 s).
LEARNERS_PER_CORE = 30
ONE_PROCESS_MAX = 60
BUSY = 0.85  # the machine's cores this busy: answers start to queue behind each other


@dataclass(frozen=True)
class ServerLoad:
    """One reading. CPU figures are averages since the previous reading of the same meter."""

    sessions: int | None  # connected browser sessions; None when not known
    jobs_running: int
    jobs_queued: int
    cores: int  # the machine's CPU cores
    process_cores: float | None  # cores this server process used (all its threads)
    machine_busy: float | None  # fraction of all the machine's cores busy (every process)
    load_average: float | None  # 1-minute load average
    rss_mb: float | None  # this process's resident memory

    @property
    def capacity(self) -> int:
        """Drawing learners this server holds at p95 <= 1 s (measured per core, and the most
        one process's interpreter lock serves)."""
        return min(LEARNERS_PER_CORE * self.cores, ONE_PROCESS_MAX)

    @property
    def room_fill(self) -> float | None:
        """Connected sessions as a fraction of the capacity (1.0: full)."""
        return None if self.sessions is None else self.sessions / self.capacity

    @property
    def level(self) -> str:
        """ "ok", "busy" (near the limit) or "over" (past it: answers slow down)."""
        fill = self.room_fill or 0.0
        busy = self.machine_busy or 0.0
        if fill > 1.0 or busy >= 0.97:
            return "over"
        if fill > 0.8 or busy >= BUSY:
            return "busy"
        return "ok"


class CpuMeter:
    """CPU use between readings: this process (time.process_time, all threads) and the machine
    (/proc/stat where there is one). The first reading covers the time since the meter began."""

    def __init__(self):
        self._lock = threading.Lock()
        self._last = self._now()

    @staticmethod
    def _now() -> tuple[float, float, tuple[int, int] | None]:
        return time.monotonic(), time.process_time(), _machine_jiffies()

    def read(self) -> tuple[float | None, float | None]:
        """(cores this process used, fraction of the machine busy) since the last read."""
        with self._lock:
            then, now = self._last, self._now()
            self._last = now
        wall = now[0] - then[0]
        if wall <= 0:
            return None, None
        process = (now[1] - then[1]) / wall
        busy = None
        if now[2] is not None and then[2] is not None and now[2][1] > then[2][1]:
            busy = (now[2][0] - then[2][0]) / (now[2][1] - then[2][1])
        return process, busy


def _machine_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat; None where there is none."""
    try:
        v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return sum(v) - idle, sum(v)


def _rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


_METER: CpuMeter | None = None
_METER_LOCK = threading.Lock()


def default_meter() -> CpuMeter:
    """One meter per server process, shared by every view of it."""
    global _METER
    with _METER_LOCK:
        if _METER is None:
            _METER = CpuMeter()
        return _METER


def measure(
    *, sessions: int | None = None, meter: CpuMeter | None = None, manager=None
) -> ServerLoad:
    """The server's load now. `sessions`: connected sessions, as the UI layer counts them;
    `manager`: the job manager (default: the server's, `jobs.manager()`)."""
    if manager is None:
        from digitlab import jobs

        manager = jobs.manager()
    active = manager.jobs(active=True)
    running = sum(j.progress.status == "running" for j in active)
    queued = sum(j.progress.status == "queued" for j in active)
    process, busy = (meter or default_meter()).read()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return ServerLoad(
        sessions=sessions,
        jobs_running=running,
        jobs_queued=queued,
        cores=os.cpu_count() or 1,
        process_cores=process,
        machine_busy=busy,
        load_average=load,
        rss_mb=_rss_mb(),
    )


def advice(load: ServerLoad) -> str | None:
    """One sentence for the instructor when the room is near or past what the server holds."""
    if load.level == "ok":
        return None
    room = (
        f"{load.sessions} sessions for about {load.capacity} drawing learners"
        if load.sessions is not None
        else f"about {load.capacity} drawing learners at most"
    )
    busy = f"the cores are {load.machine_busy:.0%} busy" if load.machine_busy is not None else ""
    what = "; ".join(x for x in (room, busy) if x)
    if load.level == "over":
        return (
            f"The server is past what it holds ({what}): answers slow down. Keep training off "
            "its cores (a Ray cluster, DIGITLAB_RAY_ADDRESS), give it more cores, and past "
            f"{ONE_PROCESS_MAX} learners open a second server."
        )
    return f"The server is near what it holds ({what}); more learners will slow the answers."
