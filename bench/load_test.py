"""Load test: N learners drawing digits in real browsers at once while one more session trains.

For each N (default 1, 5, 10) a fresh `streamlit run streamlit_app.py` (the e2e suite's Server,
its own temporary DIGITLAB_HOME holding one saved model that every Draw page loads) serves one
Chromium with N + 1 contexts, each its own Streamlit session:

- the trainer opens the Train page and starts a long run (the tutorial MLP, --train-epochs
  epochs), which goes on through the whole measurement;
- each drawer is its own learner (?learner=learner-K in its URL) and opens the Draw page, which
  loads the room model; it draws one warm-up digit and saves it as its own labelled drawing (the
  page must then say "of your 1 saved drawings": a learner sees only their own), then, once all
  are ready, draws
  --digits digits (a 1, a 0, a 7, ...) with the mouse, a short random pause between them. For
  each: mouse release -> the predicted digit appears on the page (timed inside the page:
  performance.now() at the mouseup, a MutationObserver for the big digit), then Clear and wait
  for the digit to go.

A prediction not shown within --lost-after seconds is lost. Errors: an exception shown in a page,
a traceback in the server log, a step of a session that failed (Clear, page load). Memory: the
server process and its children (/proc VmRSS), the peak of 1-second samples. CPU: how busy the
machine was, and the cores used over the measurement by the server (with its workers), by the
browser and this harness (Playwright's driver and this script), and by Chromium alone.

    DIGITLAB_MNIST=../shared/data/mnist.npz .venv/bin/python bench/load_test.py [--write]

Without DIGITLAB_MNIST the offline 5,000-digit subset is used (training then may end early).
--write puts the table into BENCHMARKS.md under "## Load (issue 7)".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _common import chromium_pids, command_line, machine, met, table, tree_pids, tree_rss_mb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import CHROMIUM, CHROMIUM_ARGS, Server  # noqa: E402 - the e2e suite's harness

LATE_S = 60.0  # how long a lost prediction is still waited for, to time it
TARGET_N = 10
TARGET_P95_MS = 1000.0
MODEL_NAME = "load-test-mlp"
SECTION = "## Load (issue 7)"
DIGIT = "div[style*='7rem']"  # the Draw page's predicted digit (the DOM writes "font-size: 7rem")
EXCEPTION = '[data-testid="stException"]'
PROGRESS = '[data-testid="stProgress"]'

# In every page: the time of the last mouse release, and when the predicted digit first shows
# after it. Measured by the page's own clock, so the harness's load does not enter the numbers.
PROBE = """
window.__dl = {up: null, seen: null};
document.addEventListener('mouseup', () => { window.__dl.up = performance.now();
                                             window.__dl.seen = null; }, true);
new MutationObserver(() => {
  const d = window.__dl;
  if (d.up !== null && d.seen === null && document.querySelector(SELECTOR)) {
    d.seen = performance.now();
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
""".replace("SELECTOR", json.dumps(DIGIT))

# Strokes in canvas fractions (x, y): a person's 1, 0 and 7.
ONE = [(0.52, 0.15 + 0.7 * t / 20) for t in range(21)]
ZERO = [
    (0.5 + 0.22 * math.sin(2 * math.pi * t / 40), 0.5 - 0.32 * math.cos(2 * math.pi * t / 40))
    for t in range(43)
]
SEVEN = [(0.28 + 0.44 * t / 10, 0.18) for t in range(11)] + [
    (0.72 - 0.25 * t / 14, 0.18 + 0.67 * t / 14) for t in range(1, 15)
]
STROKES = [("1", ONE), ("0", ZERO), ("7", SEVEN)]


T0 = time.perf_counter()
VERBOSE = False


def say(msg: str) -> None:
    if VERBOSE:
        print(f"    [{time.perf_counter() - T0:7.1f} s] {msg}", flush=True)


@dataclass
class SessionLog:
    latencies_ms: list[float] = field(default_factory=list)
    shown: list[tuple[str, str]] = field(default_factory=list)  # (drawn, read)
    lost: int = 0  # not shown within --lost-after seconds
    never: int = 0  # not shown within LATE_S more either
    errors: list[str] = field(default_factory=list)
    own_drawings: int | None = None  # "of your N saved drawings" near the end: 1 if only its own


# ---------------------------------------------------------------------------------------------
# Setup: a saved model for the Draw pages


def save_start_model(home: Path, *, epochs: int) -> str:
    """Train the tutorial MLP (augmented, as the Draw page's quick training) and save it in home."""
    os.environ["DIGITLAB_HOME"] = str(home)
    from digitlab import store
    from digitlab.data import load_mnist
    from digitlab.models import ModelConfig
    from digitlab.training import TrainConfig, train

    digits = load_mnist()
    result = train(
        digits, model_config=ModelConfig(), train_config=TrainConfig(epochs=epochs, augment=True)
    )
    entry = store.save_model(
        result.model,
        name=MODEL_NAME,
        meta={"arch": "mlp", "test_accuracy": result.test_accuracy, "origin": "load test"},
    )
    store.set_room_model(entry.id)  # every learner's Draw page falls back to it
    return f"{digits.summary}; start model: {epochs} augmented epoch(s), test accuracy {result.test_accuracy:.4f}"


# ---------------------------------------------------------------------------------------------
# /proc: memory and CPU


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of live processes (their exited children not counted)."""
    return sum(cpu_by_process(pids).values())


def cpu_by_process(pids: list[int]) -> dict[tuple[int, str], float]:
    """utime + stime of each live process, keyed by (pid, name)."""
    tick, out = os.sysconf("SC_CLK_TCK"), {}
    for p in pids:
        try:
            head, tail = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = tail.split()
        out[(p, head.split("(", 1)[1])] = (int(fields[11]) + int(fields[12])) / tick
    return out


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


# ---------------------------------------------------------------------------------------------
# Browser sessions


async def open_page(browser, url: str, title: str, heading: str, *, learner: str | None = None):
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    await context.add_init_script(PROBE)
    page = await context.new_page()
    page.set_default_timeout(120_000)  # N sessions and a training run on a busy machine
    await page.goto(url + (f"/?learner={learner}" if learner else ""))
    await page.get_by_role("heading", name="DigitLab").wait_for()
    await page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    await page.get_by_role("heading", name=heading).wait_for()
    return page


async def draw(page, points) -> None:
    """Press, move along the path, release: a person's stroke on the canvas."""
    canvas = page.locator("canvas.upper-canvas").first
    await canvas.wait_for()
    box = await canvas.bounding_box()
    xy = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    await page.mouse.move(*xy[0])
    await page.mouse.down()
    for x, y in xy[1:]:
        await page.mouse.move(x, y, steps=2)
    await page.mouse.up()


async def clear(page) -> None:
    await page.get_by_role("button", name="Reset canvas & history").click()  # the bin icon
    await page.locator(DIGIT).first.wait_for(state="detached", timeout=30_000)


async def training_state(page) -> tuple[bool, int | None]:
    """(still running, epochs finished) as the trainer's page shows them."""
    bar = page.locator(PROGRESS)
    if await page.get_by_text("Test accuracy", exact=True).count() or not await bar.count():
        return False, None
    text = await bar.first.inner_text()
    m = re.search(r"Epoch (\d+) of", text)
    return True, (int(m.group(1)) - 1 if m else None)


async def start_training(browser, url: str, *, epochs: int):
    page = await open_page(browser, url, "Train", "Train a network", learner="trainer")
    box = page.get_by_label("Epochs", exact=True)
    await box.fill(str(epochs))
    await box.press("Enter")
    await page.wait_for_timeout(800)
    await page.get_by_role("button", name="Start training").click()
    running = page.locator(PROGRESS).get_by_text(re.compile(r"Epoch \d+ of"))
    await running.or_(page.get_by_text("Test accuracy", exact=True)).first.wait_for(timeout=300_000)
    say("trainer: training started")
    return page


async def drawer(browser, url: str, *, digits: int, lost_after: float, ready, go, seed: int):
    log, rng, page = SessionLog(), random.Random(seed), None
    try:
        page = await open_page(browser, url, "Draw", "Draw a digit", learner=f"learner-{seed}")
        say(f"drawer {seed}: on the Draw page")
        await draw(page, ONE)  # warm-up: the saved model is loaded and has read once
        await page.locator(DIGIT).first.wait_for(timeout=180_000)
        say(f"drawer {seed}: warm-up digit read")
        await page.get_by_role("button", name=re.compile(r"^Save this drawing as")).click()
        # Only this learner's drawing counts: everyone saves one, each page must say 1.
        await page.get_by_text(re.compile(r"of your \d+ saved drawings")).first.wait_for()
        await clear(page)
        say(f"drawer {seed}: ready")
    except Exception as e:  # noqa: BLE001 - a session that cannot start is an error to report
        if page is not None:
            await page.screenshot(path=ROOT / "artifacts" / f"load-FAILED-{seed}.png")
        log.errors.append(f"setup: {type(e).__name__}: {str(e).splitlines()[0]}")
        if not ready.done():
            ready.set_result(None)
        return log, None
    ready.set_result(page)
    await go.wait()
    await asyncio.sleep(rng.uniform(0, 1.0))  # learners do not start in the same millisecond
    for k in range(digits):
        if k == digits - 1:  # by now every learner has saved theirs: still 1 of their own?
            mine = page.get_by_text(re.compile(r"of your \d+ saved drawings")).first
            log.own_drawings = int(re.search(r"of your (\d+)", await mine.inner_text()).group(1))
        want, stroke = STROKES[k % len(STROKES)]
        try:
            await draw(page, stroke)
            t_up = time.perf_counter()
            try:
                await page.locator(DIGIT).first.wait_for(timeout=lost_after * 1000)
            except Exception:  # noqa: BLE001 - playwright's TimeoutError: the prediction is lost
                log.lost += 1
                say(f"drawer {seed}: digit {k} not shown in {lost_after:g} s")
            try:  # a lost prediction may still come: its time counts in the percentiles
                await page.locator(DIGIT).first.wait_for(timeout=LATE_S * 1000)
            except Exception:  # noqa: BLE001
                log.never += 1
            else:
                t_seen = time.perf_counter()
                probe = await page.evaluate("window.__dl")
                if probe["up"] is not None and probe["seen"] is not None:
                    log.latencies_ms.append(probe["seen"] - probe["up"])
                else:  # the observer missed it: the harness's own clock
                    log.latencies_ms.append(1000 * (t_seen - t_up))
                log.shown.append((want, (await page.locator(DIGIT).first.inner_text()).strip()))
            if n := await page.locator(EXCEPTION).count():
                log.errors.append(
                    f"digit {k}: {n} exception(s) shown: "
                    f"{(await page.locator(EXCEPTION).first.inner_text())[:200]}"
                )
            await clear(page)
        except Exception as e:  # noqa: BLE001
            log.errors.append(f"digit {k}: {type(e).__name__}: {str(e).splitlines()[0]}")
        await asyncio.sleep(rng.uniform(0.3, 1.2))  # a learner looks, then draws the next one
    return log, page


def chromium_at_priority(nice: int, work: Path) -> str:
    """Chromium itself, or a wrapper that starts it (and so all its processes) at a lower
    priority: the learners' browsers stand in for their own laptops, which would take no CPU
    from the server at all; at nice +5 they take what the server and its job leave."""
    if nice == 0:
        return CHROMIUM
    wrapper = work / "chromium-niced"
    wrapper.write_text(f'#!/bin/sh\nexec nice -n {nice} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


async def run_level(n: int, *, home: Path, args, env_extra: dict) -> dict:
    from playwright.async_api import async_playwright

    work = Path(tempfile.mkdtemp(prefix=f"load{n}-", dir=home.parent))
    srv = Server(home, work / "server.log", env_extra)
    try:
        srv.wait_healthy(timeout=180)
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=chromium_at_priority(args.browser_nice, work),
                args=CHROMIUM_ARGS,
                headless=True,
            )
            trainer = None
            if args.train_epochs:
                trainer = await start_training(browser, srv.url, epochs=args.train_epochs)
            loop = asyncio.get_running_loop()
            readies = [loop.create_future() for _ in range(n)]
            go = asyncio.Event()
            tasks = [
                asyncio.create_task(
                    drawer(
                        browser,
                        srv.url,
                        digits=args.digits,
                        lost_after=args.lost_after,
                        ready=readies[i],
                        go=go,
                        seed=1000 * n + i,
                    )
                )
                for i in range(n)
            ]
            await asyncio.gather(*readies)
            train_before = await training_state(trainer) if trainer else (False, None)

            # The measurement: every drawer starts; RSS and the trainer sampled each second.
            rss, alive = [], []
            pid_server = srv.proc.pid
            cpu0 = (
                cpu_seconds(tree_pids(pid_server)),
                cpu_seconds(tree_pids(os.getpid())),
                cpu_seconds(chromium_pids()),
            )
            per0 = cpu_by_process(tree_pids(pid_server))
            busy0, t0 = machine_busy(), time.perf_counter()
            go.set()
            pending = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, timeout=1.0)
                rss.append(tree_rss_mb(pid_server))
                if trainer:
                    alive.append((await training_state(trainer))[0])
            wall = time.perf_counter() - t0
            busy1 = machine_busy()
            server_cpu = cpu_seconds(tree_pids(pid_server)) - cpu0[0]
            per1 = cpu_by_process(tree_pids(pid_server))
            harness_cpu = cpu_seconds(tree_pids(os.getpid())) - cpu0[1] - server_cpu
            chromium_cpu = cpu_seconds(chromium_pids()) - cpu0[2]
            train_after = await training_state(trainer) if trainer else (False, None)
            logs = [t.result()[0] for t in tasks]
            stop = trainer.get_by_role("button", name="Stop") if trainer else None
            if stop is not None and await stop.count():
                await stop.click()
            await browser.close()
    finally:
        srv.stop()
    log_text = srv.log_path.read_text(errors="replace")
    tracebacks = log_text.count("Traceback")
    lat = np.array([x for log in logs for x in log.latencies_ms])
    errors = [e for log in logs for e in log.errors]
    if tracebacks:
        errors.append(f"{tracebacks} traceback(s) in the server log {srv.log_path}")
    shown = [s for log in logs for s in log.shown]
    os.environ["DIGITLAB_HOME"] = str(home)
    from digitlab import store

    owners = [d["learner"] for d in store.drawing_table()]
    own_only = sum(
        log.own_drawings == 1 and owners.count(f"learner-{1000 * n + i}") == 1
        for i, log in enumerate(logs)
    )
    if own_only != n:
        errors.append(f"{n - own_only} of {n} learners did not see exactly their own drawing")
    throughout = bool(trainer) and train_before[0] and all(alive) and train_after[0]
    return {
        "n": n,
        "expected": n * args.digits,
        "answered": len(lat) - sum(log.lost - log.never for log in logs),
        "never": sum(log.never for log in logs),
        "lost": sum(log.lost for log in logs),
        "errors": errors,
        "median_ms": float(np.median(lat)) if len(lat) else float("nan"),
        "p95_ms": float(np.percentile(lat, 95)) if len(lat) else float("nan"),
        "max_ms": float(lat.max()) if len(lat) else float("nan"),
        "right": sum(a == b for a, b in shown),
        "own_only": own_only,
        "rss_mb": max(rss) if rss else tree_rss_mb(pid_server),
        "training": throughout,
        "trained": bool(trainer),
        "epochs": (train_before[1], train_after[1]),
        "wall_s": wall,
        "busy_pct": 100 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]),
        "server_cpu_s": server_cpu,
        "harness_cpu_s": harness_cpu,
        "chromium_cpu_s": chromium_cpu,
        # where the server tree's CPU went: each process's seconds over the measurement
        "server_processes": {
            f"{name} {pid}": round(cpu - per0.get((pid, name), 0.0), 1)
            for (pid, name), cpu in sorted(per1.items(), key=lambda kv: -kv[1])
            if cpu - per0.get((pid, name), 0.0) >= 0.1
        },
        "log": str(srv.log_path),
    }


# ---------------------------------------------------------------------------------------------
# Report


def rows_of(results: list[dict]) -> list[list]:
    rows = []
    for r in results:
        e0, e1 = r["epochs"]
        rows.append(
            [
                r["n"],
                f"{r['answered']}/{r['expected']}",
                f"{r['lost']} ({r['never']} never)",
                len(r["errors"]),
                f"{r['median_ms']:.0f}",
                f"{r['p95_ms']:.0f}",
                f"{r['max_ms']:.0f}",
                f"{r['right']}/{r['answered']}",
                f"{r['rss_mb']:.0f}",
                "no run"
                if not r["trained"]
                else f"{'yes' if r['training'] else 'NO'} (epochs {e0}->{e1})",
                f"{r['busy_pct']:.0f}% / {r['server_cpu_s'] / r['wall_s']:.2f} / "
                f"{r['harness_cpu_s'] / r['wall_s']:.2f} "
                f"({r['chromium_cpu_s'] / r['wall_s']:.2f})",
            ]
        )
    return rows


HEADERS = [
    "N",
    "answered",
    "lost",
    "errors",
    "median ms",
    "p95 ms",
    "max ms",
    "read as drawn",
    "server RSS MB (peak)",
    "training throughout",
    "CPU busy / server cores / browser and harness cores (Chromium alone)",
]


def verdict(results: list[dict]) -> tuple[bool, str]:
    r = next((r for r in results if r["n"] == TARGET_N), None)
    if r is None:
        return False, f"N = {TARGET_N} not run"
    ok = (
        not r["errors"]
        and r["lost"] == 0
        and r["answered"] == r["expected"]
        and r["p95_ms"] <= TARGET_P95_MS
        and r["training"]
    )
    return ok, (
        f"N = {TARGET_N} with a training run: {len(r['errors'])} errors, {r['lost']} lost, "
        f"p95 {r['p95_ms']:.0f} ms (target 0, 0, <= {TARGET_P95_MS:.0f} ms): {met(ok)}"
    )


def write_section(text: str) -> None:
    """Replace (or add) this benchmark's section of BENCHMARKS.md; other sections are untouched."""
    path = ROOT / "BENCHMARKS.md"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = text.rstrip() + "\n\n"
    new = (
        pattern.sub(lambda m: block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block
    )
    path.write_text(new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", default="1,5,10", help="comma-separated N (drawing sessions)")
    ap.add_argument("--digits", type=int, default=8, help="digits each session draws")
    ap.add_argument("--lost-after", type=float, default=10.0, help="seconds before 'lost'")
    ap.add_argument("--train-epochs", type=int, default=50, help="the trainer's run; 0: none")
    ap.add_argument("--start-epochs", type=int, default=1, help="the saved model's epochs")
    ap.add_argument(
        "--browser-nice",
        type=int,
        default=0,
        help="run Chromium at this nice value (0: the server's priority)",
    )
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    ap.add_argument("--verbose", action="store_true", help="say what each session does")
    args = ap.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: run scripts/ensure_chromium.sh")
    env_extra = {} if os.environ.get("DIGITLAB_MNIST") else {"DIGITLAB_OFFLINE": "1"}
    os.environ.update(env_extra)
    levels = [int(x) for x in args.sessions.split(",")]
    print(f"machine: {machine(tensorflow=False)}; Chromium at nice {args.browser_nice}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="digitlab-load-"))
    home = tmp / "home"
    data = save_start_model(home, epochs=args.start_epochs)
    print(f"data: {data}", flush=True)
    results = []
    for n in levels:
        r = asyncio.run(run_level(n, home=home, args=args, env_extra=env_extra))
        results.append(r)
        print(
            f"  N={n}: {r['answered']}/{r['expected']} answered, {r['lost']} lost, "
            f"{len(r['errors'])} errors, median {r['median_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, "
            f"RSS {r['rss_mb']:.0f} MB, training {r['training']} {r['epochs']}, "
            f"{r['wall_s']:.0f} s, CPU busy {r['busy_pct']:.0f}%  (log {r['log']})",
            flush=True,
        )
        print(f"    server tree, CPU s by process: {r['server_processes']}", flush=True)
        for e in r["errors"][:10]:
            print(f"    error: {e}")
    ok, line = verdict(results)
    tab = table(HEADERS, rows_of(results))
    print()
    print(tab)
    print(f"\ncommand: {command_line()}")
    print(f"SUMMARY load: {line}")
    if args.write:
        write_section(
            f"{SECTION}\n\n"
            f"N Draw sessions in one Chromium (one context each) draw {args.digits} digits each "
            f"with the mouse while one more session trains the tutorial MLP "
            f"({args.train_epochs} epochs) on the Train page. Time: mouse release to the "
            f"predicted digit in the page (the page's own clock); lost: none within "
            f"{args.lost_after:g} s (median and p95 include those that came later, up to "
            f"{LATE_S:g} s more; 'never': not even then). Server RSS: the server and its children, peak.\n\n"
            f"{tab}\n\n"
            f"Target at N = {TARGET_N} while one job trains: zero errors, zero lost, p95 <= "
            f"{TARGET_P95_MS:.0f} ms: **{met(ok)}**.  \n"
            f"Machine: {machine(tensorflow=False)} (shared with other work; the browser runs "
            f"on the same cores as the server, at nice {args.browser_nice}). Data: {data}.  \n"
            f"Command: `{command_line()}`\n"
        )


if __name__ == "__main__":
    main()
