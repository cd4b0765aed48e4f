"""Where a drawing's milliseconds go on the server: the Draw fragment's rerun, timed and profiled.

A real `streamlit run` (started by this script, in a subprocess, on a free loopback port, a
temporary DIGITLAB_HOME with a saved tutorial MLP) whose ScriptRunner is wrapped in-process:
every fragment run (a drawing or a clearing, told apart by the canvas value) records its wall
time and the script thread's CPU time, and, with --profile, runs under cProfile. One protocol
learner (bench/ws_learner.py) draws --digits digits on the Draw page, clearing after each.

    DIGITLAB_MNIST=../shared/data/mnist.npz .venv/bin/python bench/draw_profile.py --profile

Before/after a change, side by side: --roots A,B (two checkouts of the repository, e.g. a git
worktree of the commit before) runs the same drawings on a server from each, in turn, --rounds
times; the medians of per-round ratios are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# In the server process


def serve(out: Path, profile: bool, port: int) -> None:
    """Run `streamlit run streamlit_app.py` here, with fragment runs timed (and profiled)."""
    from streamlit.runtime.scriptrunner import script_runner
    from streamlit.web import cli

    prof = cProfile.Profile() if profile else None
    runs: list[dict] = []
    original = script_runner.ScriptRunner._run_script

    def timed(self, rerun_data):
        if not rerun_data.fragment_id_queue:
            return original(self, rerun_data)
        kind = "other"
        for w in rerun_data.widget_states.widgets if rerun_data.widget_states else []:
            if w.id.endswith("-canvas"):
                kind = "clear" if '"objects":[]' in w.json_value else "drawing"
        t0, c0 = time.perf_counter(), time.thread_time()
        warm = len(runs) >= 2  # the warm-up drawing and clearing (model load, tracing) left out
        if prof is not None and warm:
            prof.enable()
        try:
            return original(self, rerun_data)
        finally:
            if prof is not None and warm:
                prof.disable()
            runs.append(
                {
                    "kind": kind,
                    "wall_ms": 1000 * (time.perf_counter() - t0),
                    "cpu_ms": 1000 * (time.thread_time() - c0),
                }
            )
            (out / "runs.json").write_text(json.dumps(runs))
            if prof is not None and warm:
                prof.dump_stats(out / "profile.pstats")

    script_runner.ScriptRunner._run_script = timed
    sys.argv = [
        "streamlit",
        "run",
        "streamlit_app.py",
        "--server.headless=true",
        f"--server.port={port}",
        "--server.address=127.0.0.1",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
    ]
    cli.main()


# ---------------------------------------------------------------------------------------------
# The driver


class Served:
    def __init__(self, root: Path, home: Path, out: Path, *, profile: bool):
        from conftest import free_port  # the e2e suite's

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.log = open(out / "server.log", "w")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", str(out), str(self.port)]
        if profile:
            cmd.append("--profile")
        env = dict(os.environ, DIGITLAB_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="3")
        self.proc = subprocess.Popen(
            cmd,
            cwd=root,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        t0 = time.monotonic()
        while time.monotonic() - t0 < 180:
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError((out / "server.log").read_text()) from None
                time.sleep(0.2)
        raise RuntimeError("the server did not start in 180 s")

    def stop(self) -> list[dict]:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()
        return json.loads((self.out / "runs.json").read_text())


async def draw_digits(url: str, n: int, pool) -> list[float]:
    from ws_learner import ProtocolLearner, blank_value

    learner = ProtocolLearner(url)
    await learner.open()
    await learner.goto("Draw")
    await learner.draw(pool[0][1])  # warm-up: the model is loaded and has read once
    await learner.draw(blank_value())
    answers = []
    for k in range(n):
        run = await learner.draw(pool[k % len(pool)][1])
        answers.append(run.answer_ms)
        await learner.draw(blank_value())
    await learner.close()
    return answers


def session(root: Path, home: Path, out: Path, n: int, pool, *, profile: bool) -> dict:
    srv = Served(root, home, out, profile=profile)
    try:
        answers = asyncio.run(draw_digits(srv.url, n, pool))
    finally:
        runs = srv.stop()
    runs = runs[2:]  # the warm-up drawing and its clearing
    import numpy as np

    med = {
        f"{kind}_{m}": float(np.median([r[m] for r in runs if r["kind"] == kind]))
        for kind in ("drawing", "clear")
        for m in ("cpu_ms", "wall_ms")
    }
    med["answer_ms"] = float(np.median(answers))
    return med


def report_profile(path: Path, n_runs: int, top: int = 30) -> None:
    st = pstats.Stats(str(path))
    st.sort_stats("cumulative")
    print(f"\ncProfile of {n_runs} fragment runs (drawings and clearings), cumulative, per run:")
    rows = []
    for (file, line, fn), (_cc, nc, tt, ct, _callers) in st.stats.items():
        rows.append((ct, tt, nc, f"{Path(file).name}:{line}:{fn}"))
    rows.sort(reverse=True)
    for ct, tt, nc, name in rows[:top]:
        print(
            f"  {1000 * ct / n_runs:7.2f} ms cum  {1000 * tt / n_runs:6.2f} ms own  {nc / n_runs:6.0f} calls  {name}"
        )
    rows.sort(key=lambda r: r[1], reverse=True)
    print("  -- by own time:")
    for ct, tt, nc, name in rows[:15]:
        print(
            f"  {1000 * ct / n_runs:7.2f} ms cum  {1000 * tt / n_runs:6.2f} ms own  {nc / n_runs:6.0f} calls  {name}"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(Path(sys.argv[2]), "--profile" in sys.argv, int(sys.argv[3]))
        return
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    from _common import command_line, machine
    from load_test import save_start_model
    from room_load import drawings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digits", type=int, default=30)
    ap.add_argument("--profile", action="store_true", help="cProfile the fragment runs")
    ap.add_argument("--roots", default="", help="A,B: two checkouts, run in turn (before/after)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not os.environ.get("DIGITLAB_MNIST"):
        os.environ["DIGITLAB_OFFLINE"] = "1"
    print(f"machine: {machine(tensorflow=False)}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="digitlab-drawprof-"))
    save_start_model(tmp / "home", epochs=1)
    pool = drawings()
    if not args.roots:
        med = session(ROOT, tmp / "home", tmp / "run", args.digits, pool, profile=args.profile)
        print(f"per run, median: {json.dumps({k: round(v, 1) for k, v in med.items()})}")
        if args.profile:
            report_profile(tmp / "run" / "profile.pstats", 2 * args.digits)
    else:
        import numpy as np

        roots = [Path(r).resolve() for r in args.roots.split(",")]
        out: dict[str, list[dict]] = {str(r): [] for r in roots}
        for k in range(args.rounds):
            for r in roots:
                med = session(
                    r, tmp / "home", tmp / f"{r.name}-{k}", args.digits, pool, profile=False
                )
                out[str(r)].append(med)
                print(
                    f"  round {k + 1} {r}: {json.dumps({a: round(b, 1) for a, b in med.items()})}",
                    flush=True,
                )
        a, b = (out[str(r)] for r in roots)
        for key in a[0]:
            ratio = float(np.median([x[key] / y[key] for x, y in zip(a, b, strict=True)]))
            print(
                f"  {key}: {roots[0].name} {np.median([x[key] for x in a]):.1f} / "
                f"{roots[1].name} {np.median([x[key] for x in b]):.1f} (median of ratios {ratio:.2f})"
            )
    print(f"load average now {os.getloadavg()[0]:.1f}; command: {command_line()}")


if __name__ == "__main__":
    main()
