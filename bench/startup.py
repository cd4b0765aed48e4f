"""Start-up and memory: `streamlit run streamlit_app.py` to the home page in Chromium, then RSS.

Each round starts a fresh server and measures the time from launching it to the home page's
"Train a network" link being visible in a real browser (Chromium through playwright, already
running, so its own start is not counted). Then the resident memory of the server and its
children (/proc VmRSS) after one browser session, and after ten (ten browser contexts, each a
Streamlit session; the dataset is held once through st.cache_resource).

    DIGITLAB_MNIST=../shared/data/mnist.npz .venv/bin/python bench/startup.py [--rounds 3]
        [--sessions 10] [--root WORKTREE]  (another checkout's code, e.g. a `git worktree`)

Every round starts on an empty DIGITLAB_HOME (a fresh machine: no model kept by an earlier
start). The page is watched at every animation frame (Playwright's own waits look again only
every 0.5 s after their first second).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from _common import (
    command_line,
    full_mnist,
    machine,
    met,
    start_streamlit,
    stop_streamlit,
    table,
    tree_rss_mb,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402 - the e2e suite's harness

ROOT = Path(__file__).resolve().parents[1]
HOME_MARK = "Train a network"  # a page link on the home page, drawn after the title
HOME_SHOWN = f"""[...document.querySelectorAll("a")].some(
  (a) => a.offsetParent !== null && a.textContent.includes({HOME_MARK!r}))"""
TARGET_FIRST_S = 3.0  # issue 13: with Ray starting in the background
TARGET_TEN_OVER_ONE = 1.5


def wait_listening(url: str, *, deadline: float) -> None:
    """Poll Streamlit's health endpoint until the server answers."""
    while True:
        try:
            with urllib.request.urlopen(url + "_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.perf_counter() > deadline:
            raise TimeoutError("the server did not start listening")
        time.sleep(0.02)


def open_session(browser, url: str, *, deadline: float, marks: dict | None = None):
    """A new browser context (a new Streamlit session) showing the home page; returns the page.
    marks, if given, gets "dom": when the page's HTML was loaded (perf_counter)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(url, wait_until="domcontentloaded", timeout=30_000)
    if marks is not None:
        marks["dom"] = time.perf_counter()
    page.wait_for_function(
        HOME_SHOWN, polling="raf", timeout=max(1000, 1000 * (deadline - time.perf_counter()))
    )
    return page


def settle_rss(pid: int, seconds: float = 3.0) -> float:
    """RSS after the server has had a moment to finish the session's work."""
    time.sleep(seconds)
    return tree_rss_mb(pid)


def one_round(browser, *, sessions: int, root: Path = ROOT) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    home = tempfile.TemporaryDirectory(prefix="digitlab-startup-")
    env = {**os.environ, "DIGITLAB_HOME": home.name}
    t0 = time.perf_counter()
    server = start_streamlit(root, port, env)
    try:
        wait_listening(url, deadline=t0 + 120)
        listen_s = time.perf_counter() - t0
        marks: dict = {}
        page = open_session(browser, url, deadline=t0 + 120, marks=marks)
        first_s = time.perf_counter() - t0
        dom_s = marks["dom"] - t0
        one_mb = settle_rss(server.pid)
        pages = [page]
        for _ in range(sessions - 1):
            pages.append(open_session(browser, url, deadline=time.perf_counter() + 120))
        ten_mb = settle_rss(server.pid)
        for p in pages:
            p.context.close()
    finally:
        stop_streamlit(server)
        home.cleanup()
    return {
        "first_s": first_s,
        "listen_s": listen_s,
        "dom_s": dom_s,
        "one_mb": one_mb,
        "ten_mb": ten_mb,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app is started")
    args = ap.parse_args()
    full_mnist()  # fail early, with one sentence, when DIGITLAB_MNIST is not set
    if not (args.root / "streamlit_app.py").is_file():
        sys.exit("streamlit_app.py is not there yet: nothing to start.")
    print(f"machine: {machine(tensorflow=False)}")
    from playwright.sync_api import sync_playwright

    runs = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for r in range(args.rounds):
            runs.append(one_round(browser, sessions=args.sessions, root=args.root.resolve()))
            print(
                f"  round {r + 1}/{args.rounds}: "
                + ", ".join(f"{k}={v:.3g}" for k, v in runs[-1].items())
            )
        browser.close()

    first = float(np.median([r["first_s"] for r in runs]))
    best = min(r["first_s"] for r in runs)
    listen = float(np.median([r["listen_s"] for r in runs]))
    dom = float(np.median([r["dom_s"] for r in runs]))
    one = float(np.median([r["one_mb"] for r in runs]))
    ten = float(np.median([r["ten_mb"] for r in runs]))
    ratio = float(np.median([r["ten_mb"] / r["one_mb"] for r in runs]))
    print()
    print(
        table(
            ["measure", "value", "target", "met/missed"],
            [
                [
                    "first page visible after `streamlit run`",
                    f"{first:.2f} s",
                    f"<= {TARGET_FIRST_S:g} s",
                    met(first <= TARGET_FIRST_S),
                ],
                ["the same, best round", f"{best:.2f} s", "(info)", ""],
                ["of which: until the server answers /_stcore/health", f"{listen:.2f} s", "", ""],
                ["until the page's HTML is loaded", f"{dom:.2f} s", "", ""],
                ["server RSS, 1 session", f"{one:.0f} MB", "", ""],
                [f"server RSS, {args.sessions} sessions", f"{ten:.0f} MB", "", ""],
                [
                    f"{args.sessions} sessions / 1 session",
                    f"{ratio:.2f}x",
                    f"< {TARGET_TEN_OVER_ONE:g}x",
                    met(ratio < TARGET_TEN_OVER_ONE),
                ],
            ],
        )
    )
    print(f"\ncommand: {command_line()}  ({args.rounds} rounds, medians)")
    print(
        f"SUMMARY startup: first page {first:.2f} s ({met(first <= TARGET_FIRST_S)}),"
        f" {args.sessions} sessions {ratio:.2f}x the memory of one ({met(ratio < TARGET_TEN_OVER_ONE)})"
    )


if __name__ == "__main__":
    main()
