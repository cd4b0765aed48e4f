"""Processes seen from /proc, for tests that look at what a server or an engine started."""

from __future__ import annotations

import os
from pathlib import Path


def _stat(pid: int | str) -> tuple[str, int] | None:
    """(name, parent pid) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, rest = text.rpartition(")")
    return head.partition("(")[2], int(rest.split()[1])


def descendants(pid: int) -> list[int]:
    """Every process below pid: its children, theirs, and so on."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(entry)) is not None:
            children.setdefault(stat[1], []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def names(pids: list[int]) -> list[str]:
    """The processes' names (as in /proc/PID/stat), leaving out those gone meanwhile."""
    return [stat[0] for pid in pids if (stat := _stat(pid)) is not None]
