"""A learner's first model: Start on the Train page (1 epoch, full MNIST) to the test metrics on
the page, in Chromium, on a fresh server whose engine has had --settle seconds to start.

The run trains on the engine; its model is then built in the server, which must import Keras
first unless a job already made it do so (models.import_keras_soon, at the job's start). The
phases, from the click: the first batch shown, the last batch shown, the metrics shown.

    DIGITLAB_MNIST=../shared/data/mnist.npz .venv/bin/python bench/first_model.py [--rounds 2]
        [--settle 25] [--root WORKTREE,WORKTREE]  (checkouts run alternately, e.g. two commits)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from pathlib import Path

from _common import machine, start_streamlit, stop_streamlit
from startup import wait_listening

for _tests in ("tests", "tests/e2e"):  # the e2e suite's harness, and the helpers it imports
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / _tests))
from conftest import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402 - the e2e suite's harness
from test_browser import go, set_number  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BATCH = re.compile(r"batch (\d+) of (\d+)")


def one_round(browser, root: Path, settle_s: float) -> dict:
    home = ROOT / "artifacts" / "first-model-home"
    shutil.rmtree(home, ignore_errors=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {
        **os.environ,
        "DIGITLAB_HOME": str(home),
        "DIGITLAB_DEFAULT_CNN": "0",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    server = start_streamlit(root, port, env)
    try:
        wait_listening(url, deadline=time.perf_counter() + 120)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.goto(url)
        page.get_by_role("heading", name="DigitLab").wait_for(timeout=120_000)
        time.sleep(settle_s)  # the engine starts in the background meanwhile
        go(page, "Train", "Train a network")
        set_number(page, "Epochs", 1)
        t0 = time.perf_counter()
        page.get_by_role("button", name="Start training").click()
        marks: dict[str, float] = {}
        while "metrics" not in marks and time.perf_counter() - t0 < 300:
            text = page.locator('[data-testid="stMain"]').inner_text()
            m = BATCH.search(text)
            now = time.perf_counter() - t0
            if m and "first batch" not in marks:
                marks["first batch"] = now
            if m and m.group(1) == m.group(2) and "all batches" not in marks:
                marks["all batches"] = now  # the page shows progress once a second: may be missed
            if "Test accuracy" in text:
                marks["metrics"] = now
            time.sleep(0.05)
        page.context.close()
    finally:
        stop_streamlit(server)
    return marks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--settle", type=float, default=25.0)
    ap.add_argument("--root", default=str(ROOT), help="checkouts to run, comma-separated")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    print(machine(tensorflow=False), flush=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for r in range(args.rounds):
            for root in args.root.split(","):
                load = os.getloadavg()[0]
                marks = one_round(browser, Path(root), args.settle)
                shown = ", ".join(f"{k} {v:.1f} s" for k, v in marks.items())
                print(f"round {r + 1} {root}: {shown}; load {load:.1f}", flush=True)
        browser.close()


if __name__ == "__main__":
    main()
