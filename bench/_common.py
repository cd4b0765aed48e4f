"""Shared helpers for the bench scripts: data, machine facts, interleaved timing, tables."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: bench/xxx.py


def full_mnist():
    """Full MNIST from $DIGITLAB_MNIST; exits with one clear sentence when it is not set."""
    from digitlab.data import load_mnist

    path = os.environ.get("DIGITLAB_MNIST")
    if not path:
        sys.exit("Set DIGITLAB_MNIST to the full mnist.npz (e.g. ../shared/data/mnist.npz).")
    digits = load_mnist(path)
    if digits.kind != "full":
        sys.exit(f"{path} is not the full 60,000/10,000 MNIST; the targets are stated for it.")
    return digits


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def machine(*, tensorflow: bool = True) -> str:
    """One line: CPU model, cores, load, Python, numpy and (optionally) TensorFlow/Keras versions."""
    parts = [f"{cpu_model()}, {os.cpu_count()} cores", f"load {os.getloadavg()[0]:.1f}"]
    parts.append(f"Python {platform.python_version()}, numpy {np.__version__}")
    if tensorflow:
        import keras
        import tensorflow as tf

        parts.append(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    return "; ".join(parts)


def gemm_gflops(n: int = 2048, repeats: int = 7) -> float:
    """The machine's float32 matrix-multiply rate (numpy/OpenBLAS, all cores), median GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype="float32")
    b = rng.random((n, n), dtype="float32")
    a @ b  # warm-up: threads and caches
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / float(np.median(times)) / 1e9


def interleaved(
    variants: dict[str, Callable[[], dict]], *, rounds: int, log=print
) -> dict[str, list[dict]]:
    """Run every variant once per round, in turn (A, B, A, B, ...), so load noise hits all alike.

    Each variant returns a dict of measurements; the result maps name -> one dict per round.
    """
    out: dict[str, list[dict]] = {name: [] for name in variants}
    for r in range(rounds):
        for name, fn in variants.items():
            row = fn()
            out[name].append(row)
            shown = ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float))
            log(f"  round {r + 1}/{rounds} {name}: {shown}", flush=True)
    return out


def median(rows: list[dict], key: str) -> float:
    return float(np.median([row[key] for row in rows]))


def ratios(a: list[dict], b: list[dict], key: str) -> float:
    """Median of per-round ratios a[key] / b[key]: each ratio from runs side by side."""
    return float(np.median([x[key] / y[key] for x, y in zip(a, b, strict=True)]))


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table, ready to paste into BENCHMARKS.md."""

    def cell(v) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line() -> str:
    """The command that reproduces this run, as BENCHMARKS.md quotes it."""
    args = " ".join(sys.argv[1:])
    script = os.path.relpath(sys.argv[0], Path(__file__).resolve().parents[1])
    return f"DIGITLAB_MNIST={os.environ.get('DIGITLAB_MNIST', '...')} .venv/bin/python {script} {args}".strip()


def tree_pids(pid: int) -> list[int]:
    """A process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB (from /proc)."""
    total_kb = 0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return total_kb / 1024


def tree_cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) used so far by a process and its live descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in tree_pids(os.getpid() if pid is None else pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def chromium_pids() -> list[int]:
    """Every running Chromium process (all browsers on the machine), from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if "chrom" in (entry / "comm").read_text():
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


# ---------------------------------------------------------------------------------------------
# Pen-stroke writers drawn on the canvas (bench/default_model.py, bench/room_curve.py)

ROOT_DIR = Path(__file__).resolve().parents[1]
ROOM_WRITERS = range(1, 16)  # pendigits writers 1-15: "the room"; 16-30: "newcomers"


def pen_drawings(width: int = 18):
    """Every pendigits training digit (7,494) drawn on the 280x280 canvas as bench/drawn_digits.py
    draws them (its plan, seed 0: height, place, canvas convention) at one stroke width, read
    through canvas_to_mnist: (x (n, 28, 28) float32, labels (n,), writers (n,)). Cached under
    artifacts/ (a minute of rendering on 2 cores)."""
    cache = ROOT_DIR / "artifacts" / f"pen_drawings_w{width}.npz"
    if cache.is_file():
        with np.load(cache) as f:
            return f["x"], f["y"], f["writer"]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from drawn_digits import _work, drawing_plan

    from digitlab.pendigits import load_strokes

    strokes = load_strokes()
    plan = drawing_plan(len(strokes), 0, 0)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=spawn) as pool:
        both = np.stack(list(pool.map(_work, [(p, width, True) for p in plan], chunksize=64)))
    x = both[:, 1]  # (n, 28, 28) float32: canvas_to_mnist's
    y = np.array([strokes[p["i"]]["label"] for p in plan], dtype="int64")
    writer = np.array([strokes[p["i"]]["writer"] for p in plan], dtype="int64")
    cache.parent.mkdir(exist_ok=True)
    np.savez_compressed(cache, x=x, y=y, writer=writer)
    return x, y, writer


def newcomer_drawings(width: int = 18):
    """(x, labels) of the writers outside ROOM_WRITERS (pendigits writers 16-30: 3,745)."""
    x, y, writer = pen_drawings(width)
    new = ~np.isin(writer, list(ROOM_WRITERS))
    return x[new], y[new]


def room_drawings(width: int = 18):
    """(x, labels) of the ROOM_WRITERS' drawings (pendigits writers 1-15: 3,749), in plan order."""
    x, y, writer = pen_drawings(width)
    room = np.isin(writer, list(ROOM_WRITERS))
    return x[room], y[room]


def start_streamlit(root, port: int, env: dict):
    """`streamlit run streamlit_app.py` on 127.0.0.1:port in the repository at root, headless,
    its output discarded (the start-up benchmarks time it from this call)."""
    cmd = [
        str(Path(root) / ".venv/bin/streamlit"),
        "run",
        "streamlit_app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    return subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop_streamlit(server) -> None:
    """End a server from start_streamlit: terminate, and kill it if it has not ended in 10 s."""
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
