"""What the pages cost the browser: CPU seconds per drawn digit, and per second of a live run.

In the load test (bench/load_test.py) the learners' browsers share the server's cores, so what a
page costs to render decides how fast the others are answered. This measures it for one page at
a time, with no other load: one fresh server (its own temporary DIGITLAB_HOME holding a saved
tutorial MLP), one Chromium, and

- a Draw page: --digits digits drawn with the mouse (a 1, a 0, a 7, ...), each read, then
  cleared with the canvas's bin icon. Reported: browser and server CPU per digit, the browser's
  split into drawing (the mouse moving on the canvas), reading (from the release until half a
  second after the digit shows) and clearing, and the time from mouse release to the digit;
- a Train page running the tutorial MLP for 200 epochs: browser and server CPU per second while
  its live progress and charts update (the server's figure includes the training worker).

"Browser" is every Chromium process, CPU time from /proc.

    DIGITLAB_MNIST=../shared/data/mnist.npz .venv/bin/python bench/page_cost.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import chromium_pids, command_line, machine, table, tree_pids
from load_test import (
    DIGIT,
    STROKES,
    clear,
    cpu_seconds,
    draw,
    open_page,
    save_start_model,
    start_training,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import CHROMIUM, CHROMIUM_ARGS, Server  # noqa: E402 - the e2e suite's harness


class CpuMeter:
    """CPU seconds of the browser and of the server's process tree since start."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.b0, self.s0, self.t0 = self._read()

    def _read(self) -> tuple[float, float, float]:
        return (
            cpu_seconds(chromium_pids()),
            cpu_seconds(tree_pids(self.server_pid)),
            time.perf_counter(),
        )

    def since(self) -> tuple[float, float, float]:
        """(browser CPU s, server CPU s, wall s)."""
        b, s, t = self._read()
        return b - self.b0, s - self.s0, t - self.t0


async def measure(url: str, server_pid: int, *, digits: int, train_s: float) -> list[list]:
    from playwright.async_api import async_playwright

    rows = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await open_page(browser, url, "Draw", "Draw a digit")
        await draw(page, STROKES[0][1])  # warm-up: the saved model loads and reads once
        await page.locator(DIGIT).first.wait_for()
        await clear(page)
        await asyncio.sleep(2)
        meter, latencies = CpuMeter(server_pid), []
        phases = {"drawing": 0.0, "reading": 0.0, "clearing": 0.0}  # browser CPU s, summed
        for k in range(digits):
            t0 = cpu_seconds(chromium_pids())
            await draw(page, STROKES[k % len(STROKES)][1])
            t1 = cpu_seconds(chromium_pids())
            await page.wait_for_function("window.__dl.seen !== null")
            latencies.append(await page.evaluate("window.__dl.seen - window.__dl.up"))
            await asyncio.sleep(0.5)
            t2 = cpu_seconds(chromium_pids())
            await clear(page)
            await asyncio.sleep(0.5)
            t3 = cpu_seconds(chromium_pids())
            for name, d in zip(phases, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                phases[name] += d
        b, s, _ = meter.since()
        split = ", ".join(f"{name} {1000 * v / digits:.0f}" for name, v in phases.items())
        rows.append(
            [
                "Draw page, per digit drawn, read and cleared",
                f"{1000 * b / digits:.0f} ms ({split})",
                f"{1000 * s / digits:.0f} ms",
                f"median {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms",
            ]
        )
        await page.close()

        await start_training(browser, url, epochs=200)
        await asyncio.sleep(5)  # past the first epoch's compile
        meter = CpuMeter(server_pid)
        await asyncio.sleep(train_s)
        b, s, wall = meter.since()
        rows.append(
            [
                "Train page, per second of a live run (MLP, 200 epochs)",
                f"{b / wall:.2f} cores",
                f"{s / wall:.2f} cores (with the training worker)",
                "",
            ]
        )
        await browser.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digits", type=int, default=12, help="digits drawn on the Draw page")
    ap.add_argument("--train-seconds", type=float, default=15.0, help="live run measured for")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: run scripts/ensure_chromium.sh")
    env_extra = {} if os.environ.get("DIGITLAB_MNIST") else {"DIGITLAB_OFFLINE": "1"}
    os.environ.update(env_extra)
    print(f"machine: {machine(tensorflow=False)}", flush=True)
    home = Path(tempfile.mkdtemp(prefix="digitlab-pages-")) / "home"
    print(f"data: {save_start_model(home, epochs=1)}", flush=True)
    srv = Server(home, home.parent / "server.log", env_extra)
    try:
        srv.wait_healthy(timeout=180)
        rows = asyncio.run(
            measure(srv.url, srv.proc.pid, digits=args.digits, train_s=args.train_seconds)
        )
    finally:
        srv.stop()
    print()
    print(table(["page", "browser CPU", "server CPU", "mouse release to digit"], rows))
    print(f"\ncommand: {command_line()}")
    print(f"SUMMARY pages: {rows[0][0]}: browser {rows[0][1]}; {rows[1][0]}: browser {rows[1][1]}")


if __name__ == "__main__":
    main()
