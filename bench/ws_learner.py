"""A learner without a browser: Streamlit 1.67's websocket protocol, spoken as the frontend speaks it.

`ProtocolLearner` opens `/_stcore/stream` (subprotocol "streamlit", the page's own Origin), asks
for a script run with a `BackMsg.rerun_script` (a `ClientState`: the widget states it holds, the
page's script hash, the fragment to rerun), and reads the `ForwardMsg`s that come back: the
page list (`new_session`, `navigation`), the elements (`delta`), `auto_rerun` timers and
`script_finished`. It keeps the widget states a browser keeps (sliders, select boxes, number
inputs, checkboxes at the values the server last showed), answers `auto_rerun` timers as the
browser does (a fragment rerun every `interval` seconds, `is_auto_rerun`), and sends the Draw
page's canvas value as streamlit-drawable-canvas 0.13 (a Components v2 component) sends it after
a stroke: the component's state as one `json_value`,
`{"drawing": {"raw": <Fabric.js JSON>, "data": "data:image/png;base64,<280x280 RGBA PNG>"}}`,
in a rerun of the fragment that holds the canvas. Nothing is rendered.

`render_strokes` draws pen strokes (canvas pixels) as the canvas does: white, round-capped,
18 px wide, on an opaque black 280 x 280, anti-aliased.

Run as a script, it checks itself against Chromium on one server (the e2e suite's Server, a
temporary DIGITLAB_HOME with a saved tutorial MLP): for each of --digits drawings (the load
test's 1, 0, 7, ...), Chromium draws it with the mouse and the protocol learner, in its own
session, sends the same strokes rendered here; both answers (digit and confidence) and times
are printed. Times: Chromium's from the websocket send of the drawing to the digit in the page
(the page's own clock: server + the browser's handling and rendering), and from the mouse
release (that plus the canvas's 200 ms wait); the protocol learner's from its send to the
digit's element arriving. The learner also replays Chromium's own PNG, to tell rendering
differences from protocol differences.

    DIGITLAB_MNIST=../shared/data/mnist.npz .venv/bin/python bench/ws_learner.py [--write]
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import re
import time
from dataclasses import dataclass, field

import numpy as np
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

CANVAS = 280  # the Draw page's canvas, px
PEN = 18  # the Draw page's default pen width, px
DIGIT_RE = re.compile(
    r"font-size:7rem[^>]*>(\d)</div>.*?confidence\s*(?:\*\*|<b>)([\d.]+%)", re.DOTALL
)
DONE = {
    "FINISHED_SUCCESSFULLY",
    "FINISHED_FRAGMENT_RUN_SUCCESSFULLY",
    "FINISHED_WITH_COMPILE_ERROR",
}
CONTEXT = {"timezone": "UTC", "timezone_offset": 0, "locale": "en-US", "color_scheme": "light"}


class ProtocolError(RuntimeError):
    """The server did not answer as a Streamlit 1.67 server does."""


# ---------------------------------------------------------------------------------------------
# What the canvas sends


def render_strokes(strokes: list[list[tuple[float, float]]], *, width: float = PEN) -> np.ndarray:
    """Strokes in canvas px [(x, y), ...] -> (280, 280, 4) uint8 RGBA: white ink on opaque black,
    round caps and joints, drawn at 4x and box-filtered (a browser canvas's anti-aliasing)."""
    from PIL import Image, ImageDraw

    k, r = 4, width / 2
    image = Image.new("L", (CANVAS * k, CANVAS * k), 0)
    pen = ImageDraw.Draw(image)
    for s in strokes:
        xy = [(x * k, y * k) for x, y in s]
        if len(xy) > 1:
            pen.line(xy, fill=255, width=round(width * k))
        for x, y in xy:
            pen.ellipse((x - r * k, y - r * k, x + r * k, y + r * k), fill=255)
    ink = np.asarray(image.reduce(k))  # (280, 280) uint8
    out = np.full((CANVAS, CANVAS, 4), 255, dtype="uint8")
    out[..., :3] = ink[..., None]
    return out


def png_data_url(rgba: np.ndarray) -> str:
    """(H, W, 4) uint8 -> "data:image/png;base64,...", as canvas.toDataURL() gives it."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def fabric_paths(strokes: list[list[tuple[float, float]]], *, width: float = PEN) -> list[dict]:
    """Fabric.js 7 freedraw Path objects for the strokes (what the canvas's JSON holds)."""
    objects = []
    for s in strokes:
        xs, ys = [p[0] for p in s], [p[1] for p in s]
        path = [["M", *s[0]]] + [["Q", *a, *b] for a, b in zip(s, s[1:], strict=False)]
        objects.append(
            {
                "type": "Path",
                "version": "7.4.0",
                "originX": "center",
                "originY": "center",
                "left": (min(xs) + max(xs)) / 2,
                "top": (min(ys) + max(ys)) / 2,
                "width": max(xs) - min(xs),
                "height": max(ys) - min(ys),
                "fill": None,
                "stroke": "#FFFFFF",
                "strokeWidth": width,
                "strokeLineCap": "round",
                "strokeLineJoin": "round",
                "path": path + [["L", *s[-1]]],
            }
        )
    return objects


def canvas_value(data_url: str, objects: list[dict]) -> str:
    """The component's state as its frontend sends it: one JSON string (a `json_value`)."""
    raw = {"version": "7.4.0", "objects": objects, "background": "#000000"}
    return json.dumps({"drawing": {"raw": raw, "data": data_url}}, separators=(",", ":"))


_BLANK: str | None = None


def blank_value() -> str:
    """The canvas after its bin icon: no objects, an all-black image."""
    global _BLANK
    if _BLANK is None:
        _BLANK = canvas_value(png_data_url(render_strokes([])), [])
    return _BLANK


def drawing_value(strokes: list[list[tuple[float, float]]]) -> str:
    return canvas_value(png_data_url(render_strokes(strokes)), fabric_paths(strokes))


# ---------------------------------------------------------------------------------------------
# The protocol


@dataclass
class Run:
    """One script run as the client saw it."""

    t_sent: float
    t_first: float | None = None  # the run's first message arrived
    t_answer: float | None = None  # the Draw page's digit element arrived
    t_done: float | None = None  # script_finished
    status: str | None = None
    digit: str | None = None
    confidence: str | None = None
    exceptions: list[str] = field(default_factory=list)
    elements: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def answer_ms(self) -> float | None:
        return None if self.t_answer is None else 1000 * (self.t_answer - self.t_sent)


def _widget_value(el) -> tuple[str, str, object] | None:
    """(widget id, WidgetState field, value) a browser would send for this element, or None."""
    kind = el.WhichOneof("type")
    w = getattr(el, kind, None) if kind else None
    if w is None or not getattr(w, "id", "").startswith("$$ID-"):
        return None
    if kind == "slider":
        at = list(w.value if w.set_value else w.default)
        if w.type == type(w).SELECT_SLIDER:  # sent as the formatted options, not indices
            return w.id, "string_array_value", [w.options[int(i)] for i in at]
        return w.id, "double_array_value", at
    if kind == "selectbox":
        if w.set_value and w.HasField("raw_value"):
            return w.id, "string_value", w.raw_value
        if w.HasField("default") and w.default < len(w.options):
            return w.id, "string_value", w.options[w.default]
        return None
    if kind == "number_input":  # a double_value, whole numbers too
        return w.id, "double_value", float(w.value if w.set_value else w.default)
    if kind == "checkbox":
        return w.id, "bool_value", bool(w.value if w.set_value else w.default)
    return None


class ProtocolLearner:
    """One browser tab's session, without the browser."""

    def __init__(self, url: str, *, name: str = "learner"):
        self.url = url.rstrip("/")
        self.name = name
        self.ws = None
        self.pages: dict[str, str] = {}  # page name -> page script hash
        self.page_hash = ""
        self.widgets: dict[str, tuple[str, object]] = {}  # id -> (field, value)
        self.keys: dict[str, str] = {}  # user key -> widget id ("draw_width" -> "$$ID-...")
        self.fragments: dict[str, str] = {}  # user key -> fragment that holds the widget
        self.run: Run | None = None
        self.timers: dict[str, asyncio.Task] = {}  # fragment id -> its auto-rerun timer
        self.auto_reruns = 0
        self.errors: list[str] = []
        self.received_bytes = 0
        self.progress_text = ""  # the last progress bar's text (a training run's epoch)
        self._reader: asyncio.Task | None = None

    # -- connection ------------------------------------------------------------------------
    async def open(self, *, timeout: float = 120) -> Run:
        ws_url = self.url.replace("http", "ws", 1) + "/_stcore/stream"
        self.ws = await websockets.connect(
            ws_url, subprotocols=["streamlit"], origin=self.url, max_size=None, open_timeout=60
        )
        self._reader = asyncio.create_task(self._read())
        return await self.rerun(timeout=timeout)  # the first page, as the browser loads it

    async def close(self) -> None:
        for t in self.timers.values():
            t.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()

    async def goto(self, page: str, *, timeout: float = 120) -> Run:
        if page not in self.pages:
            raise ProtocolError(f"no page {page!r}; the app has {sorted(self.pages)}")
        self.page_hash = self.pages[page]
        self.widgets.clear()
        self.keys.clear()
        for t in self.timers.values():
            t.cancel()
        self.timers.clear()
        return await self.rerun(timeout=timeout)

    # -- runs ------------------------------------------------------------------------------
    async def rerun(
        self,
        *,
        set_widgets: dict[str, tuple[str, object]] | None = None,
        fragment: str = "",
        auto: bool = False,
        timeout: float = 120,
    ) -> Run:
        """Ask for a run with the widget states held (updated by set_widgets: id -> (field,
        value)); wait for its script_finished. Trigger values are sent once, not kept."""
        msg = BackMsg()
        cs = msg.rerun_script
        cs.page_script_hash = self.page_hash
        cs.fragment_id = fragment
        cs.is_auto_rerun = auto
        for k, v in CONTEXT.items():
            setattr(cs.context_info, k, v)
        cs.context_info.url = self.url + "/"
        states = dict(self.widgets)
        for wid, (fld, value) in (set_widgets or {}).items():
            states[wid] = (fld, value)
            if not fld.endswith("trigger_value"):
                self.widgets[wid] = (fld, value)
        for wid, (fld, value) in states.items():
            w = cs.widget_states.widgets.add()
            w.id = wid
            if fld in ("double_array_value", "int_array_value", "string_array_value"):
                getattr(w, fld).data.extend(value)
            else:
                setattr(w, fld, value)
        run = Run(t_sent=time.perf_counter())
        self.run = run
        await self.ws.send(msg.SerializeToString())
        with contextlib.suppress(TimeoutError):  # run.t_done stays None: the caller counts it lost
            await asyncio.wait_for(run.done.wait(), timeout)
        return run

    async def draw(self, value: str, *, timeout: float = 120) -> Run:
        """Send the canvas's state after a stroke (or a clear): a rerun of the canvas's fragment."""
        wid = self.keys.get("canvas")
        if wid is None:
            raise ProtocolError("no canvas on this page (go to the Draw page first)")
        return await self.rerun(
            set_widgets={wid: ("json_value", value)},
            fragment=self.fragments.get("canvas", ""),
            timeout=timeout,
        )

    async def click(self, key: str, *, also: dict[str, object] | None = None, timeout=120) -> Run:
        """Press the button with this user key (and set keyed widgets first, as a person would)."""
        sets = {}
        for k, v in (also or {}).items():
            fld = self.widgets[self.keys[k]][0]
            sets[self.keys[k]] = (fld, v)
        sets[self.keys[key]] = ("trigger_value", True)
        return await self.rerun(
            set_widgets=sets, fragment=self.fragments.get(key, ""), timeout=timeout
        )

    # -- reading ---------------------------------------------------------------------------
    async def _read(self) -> None:
        try:
            async for data in self.ws:
                self.received_bytes += len(data)
                m = ForwardMsg()
                m.ParseFromString(data)
                self._handle(m, time.perf_counter())
        except websockets.ConnectionClosed as e:
            if e.rcvd is None or e.rcvd.code != 1000:
                self.errors.append(f"{self.name}: connection closed: {e}")
        finally:
            if self.run is not None:
                self.run.done.set()

    def _handle(self, m: ForwardMsg, now: float) -> None:
        kind = m.WhichOneof("type")
        run = self.run
        if run is not None and run.t_first is None:
            run.t_first = now
        if kind in ("new_session", "navigation"):
            pages = m.new_session.app_pages if kind == "new_session" else m.navigation.app_pages
            for p in pages:
                self.pages[p.page_name] = p.page_script_hash
            if kind == "navigation" and m.navigation.page_script_hash:
                self.page_hash = m.navigation.page_script_hash
        elif kind == "delta" and m.delta.WhichOneof("type") == "new_element":
            el = m.delta.new_element
            et = el.WhichOneof("type")
            if run is not None:
                run.elements += 1
            wv = _widget_value(el)
            wid = getattr(getattr(el, et), "id", "") if et else ""
            if wid.startswith("$$ID-"):
                key = wid.rsplit("-", 1)[1]
                self.keys[key] = wid
                self.fragments[key] = m.delta.fragment_id
            if wv is not None:
                self.widgets[wv[0]] = (wv[1], wv[2])
            if et == "markdown" and run is not None and run.t_answer is None:
                hit = DIGIT_RE.search(el.markdown.body)
                if hit:
                    run.t_answer, run.digit, run.confidence = now, hit.group(1), hit.group(2)
            elif et == "progress":
                self.progress_text = el.progress.text
            elif et == "exception" and run is not None:
                run.exceptions.append(f"{el.exception.type}: {el.exception.message[:200]}")
        elif kind == "auto_rerun":
            frag, every = m.auto_rerun.fragment_id, m.auto_rerun.interval
            if frag in self.timers:
                self.timers[frag].cancel()
            self.timers[frag] = asyncio.get_running_loop().create_task(self._tick(frag, every))
        elif kind == "stop_auto_rerun":
            for t in self.timers.values():
                t.cancel()
            self.timers.clear()
        elif kind == "script_finished":
            status = ForwardMsg.ScriptFinishedStatus.Name(m.script_finished)
            if run is not None and status in DONE:
                run.status, run.t_done = status, now
                run.done.set()

    async def _tick(self, fragment: str, every: float) -> None:
        """The browser's timer for a fragment with run_every: a rerun of it each interval,
        skipped while another run is in flight (as the frontend's queue does)."""
        while True:
            await asyncio.sleep(every)
            if self.run is None or self.run.done.is_set():
                self.auto_reruns += 1
                await self.rerun(fragment=fragment, auto=True)


def write_section(text: str, *, section: str) -> None:
    """Replace (or add) one section of BENCHMARKS.md; the others are untouched."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
    old = path.read_text()
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = text.rstrip() + "\n\n"
    found = pattern.search(old)
    path.write_text(pattern.sub(lambda m: block, old) if found else old.rstrip() + "\n\n" + block)


# ---------------------------------------------------------------------------------------------
# The check against Chromium

PROBE_SEND = """
window.__dl = Object.assign(window.__dl || {}, {sent: null, first: null, arrived: null});
const __send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  if (!this.__dlHooked) {  // the answer's arrival: the message that holds the digit's element
    this.__dlHooked = true;
    this.addEventListener('message', (ev) => {
      const d = window.__dl;
      if (d.sent !== null && d.first === null) d.first = performance.now();
      if (d.sent !== null && d.arrived === null && ev.data instanceof ArrayBuffer &&
          ev.data.byteLength < 20000 &&
          new TextDecoder().decode(ev.data).includes('font-size:7rem')) {
        d.arrived = performance.now();
      }
    });
  }
  const n = data.byteLength ?? data.size ?? data.length ?? 0;
  if (n > 2000) { window.__dl.sent = performance.now(); window.__dl.arrived = null;
                  window.__dl.first = null;
                  window.__dl.sentBytes = n; }
  return __send.call(this, data);
};
"""


def fractions_to_px(points) -> list[tuple[float, float]]:
    return [(x * CANVAS, y * CANVAS) for x, y in points]


async def compare(url: str, n_digits: int, log=print) -> list[dict]:
    """Chromium and the protocol learner, in turn, on the same server: one row per drawing."""
    from load_test import CHROMIUM, CHROMIUM_ARGS, DIGIT, PROBE, STROKES, clear, draw
    from playwright.async_api import async_playwright

    rows = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        page, sent_values = await open_page_probed(browser, url, PROBE + PROBE_SEND)
        learner = ProtocolLearner(url, name="compare")
        await learner.open()
        await learner.goto("Draw")
        # warm-up, both: the model is loaded and has read once
        await draw(page, STROKES[0][1])
        await page.locator(DIGIT).first.wait_for(timeout=180_000)
        await clear(page)
        await learner.draw(drawing_value([fractions_to_px(STROKES[0][1])]))
        await learner.draw(blank_value())
        for k in range(n_digits):
            want, stroke = STROKES[k % len(STROKES)]
            await draw(page, stroke)
            await page.locator(DIGIT).first.wait_for(timeout=60_000)
            await page.wait_for_timeout(300)  # the rest of the answer lands
            probe = await page.evaluate("window.__dl")
            answer = page.locator("[data-testid='stMarkdown']", has=page.locator(DIGIT))
            text = (await answer.first.inner_text()).replace("\n", " ")
            hit = re.search(r"(\d)\s*confidence\s*([\d.]+%)", text)
            b_value = sent_values[-1] if sent_values else None
            await clear(page)
            mine = await learner.draw(drawing_value([fractions_to_px(stroke)]))
            await learner.draw(blank_value())
            replay = await learner.draw(b_value) if b_value else None
            await learner.draw(blank_value())
            row = {
                "drawn": want,
                "browser": f"{hit.group(1)} ({hit.group(2)})" if hit else text[:20],
                "protocol": f"{mine.digit} ({mine.confidence})",
                "replay": f"{replay.digit} ({replay.confidence})" if replay else "-",
                "browser_up_ms": probe["seen"] - probe["up"],
                "browser_send_ms": probe["seen"] - probe["sent"],
                "browser_arrive_ms": (probe["arrived"] or float("nan")) - probe["sent"],
                "browser_render_ms": probe["seen"] - (probe["arrived"] or float("nan")),
                "browser_first_ms": (probe["first"] or float("nan")) - probe["sent"],
                "browser_page_ms": probe["seen"] - (probe["first"] or float("nan")),
                "protocol_ms": mine.answer_ms,
                "protocol_first_ms": 1000 * (mine.t_first - mine.t_sent),
                "replay_ms": replay.answer_ms if replay else float("nan"),
                "keys": sorted(json.loads(b_value)) if b_value else [],
                "browser_bytes": probe.get("sentBytes"),
            }
            rows.append(row)
            log(
                f"  {k + 1}/{n_digits} drawn {want}: browser {row['browser']} "
                f"send->digit {row['browser_send_ms']:.0f} ms (release->digit "
                f"{row['browser_up_ms']:.0f}; arrived {row['browser_arrive_ms']:.0f}, shown "
                f"{row['browser_render_ms']:.0f} ms later); protocol {row['protocol']} {row['protocol_ms']:.0f} ms; "
                f"replay of the browser's PNG {row['replay']} {row['replay_ms']:.0f} ms",
                flush=True,
            )
        await learner.close()
        await browser.close()
    return rows


async def open_page_probed(browser, url: str, probe: str):
    """The Draw page in Chromium with both probes, and the canvas values its websocket sends."""
    from streamlit.proto.BackMsg_pb2 import BackMsg as _Back

    values: list[str] = []

    def on_ws(ws):
        def sent(payload):
            if isinstance(payload, bytes) and len(payload) > 2000:
                m = _Back()
                m.ParseFromString(payload)
                for w in m.rerun_script.widget_states.widgets:
                    if (
                        w.id.endswith("-canvas")
                        and w.WhichOneof("value") == "json_value"
                        and json.loads(w.json_value)["drawing"]["raw"]["objects"]
                    ):
                        values.append(w.json_value)

        ws.on("framesent", sent)

    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    await context.add_init_script(probe)
    context.on("page", lambda pg: pg.on("websocket", on_ws))
    page = await context.new_page()
    page.on("websocket", on_ws)
    page.set_default_timeout(120_000)
    await page.goto(url)
    await page.get_by_role("heading", name="DigitLab").wait_for()
    await page.locator('[data-testid="stSidebarNav"] a', has_text="Draw").first.click()
    await page.get_by_role("heading", name="Draw a digit").wait_for()
    return page, values


def main() -> None:
    import argparse
    import os
    import tempfile
    from pathlib import Path

    from _common import command_line, machine, table
    from load_test import Server, save_start_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digits", type=int, default=12, help="drawings compared")
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = ap.parse_args()
    env_extra = {} if os.environ.get("DIGITLAB_MNIST") else {"DIGITLAB_OFFLINE": "1"}
    os.environ.update(env_extra)
    load0 = os.getloadavg()
    print(f"machine: {machine(tensorflow=False)}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="digitlab-wscheck-"))
    data = save_start_model(tmp / "home", epochs=1)
    srv = Server(tmp / "home", tmp / "server.log", env_extra)
    try:
        srv.wait_healthy(timeout=180)
        rows = asyncio.run(compare(srv.url, args.digits))
    finally:
        srv.stop()
    load1 = os.getloadavg()
    same = sum(r["browser"] == r["protocol"] for r in rows)
    same_digit = sum(r["browser"][:1] == r["protocol"][:1] for r in rows)
    same_replay = sum(r["browser"] == r["replay"] for r in rows)
    med = {k: float(np.nanmedian([r[k] for r in rows])) for k in rows[0] if k.endswith("_ms")}
    keys = {tuple(r["keys"]) for r in rows}
    n = len(rows)
    gap = med["browser_send_ms"] - med["protocol_ms"]
    tab = table(
        [
            "drawings",
            "same digit: protocol / replay",
            "same digit and confidence: protocol / replay",
            "protocol: send -> digit, median ms",
            "replay: send -> digit",
            "protocol: send -> first message",
            "Chromium: send -> first message in the page",
            "Chromium: first message -> digit shown (the page's work)",
            "Chromium: send -> digit's message",
            "Chromium: message -> digit shown",
            "Chromium: send -> digit shown",
            "Chromium: mouse release -> digit shown",
        ],
        [
            [
                n,
                f"{same_digit}/{n} / {sum(r['browser'][:1] == r['replay'][:1] for r in rows)}/{n}",
                f"{same}/{n} / {same_replay}/{n}",
                f"{med['protocol_ms']:.0f}",
                f"{med['replay_ms']:.0f}",
                f"{med['protocol_first_ms']:.0f}",
                f"{med['browser_first_ms']:.0f}",
                f"{med['browser_page_ms']:.0f}",
                f"{med['browser_arrive_ms']:.0f}",
                f"{med['browser_render_ms']:.0f}",
                f"{med['browser_send_ms']:.0f}",
                f"{med['browser_up_ms']:.0f}",
            ]
        ],
    )
    print()
    print(tab)
    print(f"the browser's canvas value keys: {keys}")
    print(f"load average {load0[0]:.1f} -> {load1[0]:.1f}; data: {data}")
    print(f"command: {command_line()}")
    ok = same_digit == n and same_replay == n and 0 <= gap <= med["browser_page_ms"]
    line = (
        f"digits agree {same_digit}/{n} (the browser's own PNG replayed: digit and confidence "
        f"{same_replay}/{n}); answer time, median: protocol {med['protocol_ms']:.0f} ms, Chromium "
        f"{med['browser_send_ms']:.0f} ms to the digit shown: Chromium is {gap:.0f} ms later, within "
        f"its own work on the page from the run's first message to the digit shown "
        f"({med['browser_page_ms']:.0f} ms): {'met' if ok else 'MISSED'}"
    )
    print(f"SUMMARY ws_learner: {line}")
    if args.write:
        section = "## Protocol learner against Chromium (issue 18)"
        write_section(
            f"{section}\n\n"
            "One server; Chromium draws the load test's 1, 0, 7, ... with the mouse on the Draw page "
            "and, in turn, the protocol learner (bench/ws_learner.py, its own session) sends the same "
            "strokes rendered in Python (white 18 px round pen on black, 280 x 280 RGBA PNG in the "
            "component's JSON), then replays the PNG Chromium sent. Chromium's times by the page's "
            "own clock: websocket send of the drawing -> the message holding the digit arrives -> "
            "the digit is in the page.\n\n"
            f"{tab}\n\n"
            f"{line}.  \n"
            f"Machine: {machine(tensorflow=False)}; load average {load0[0]:.1f} at the start, "
            f"{load1[0]:.1f} at the end (shared with other work).  \n"
            f"Command: `{command_line()}`\n",
            section=section,
        )


if __name__ == "__main__":
    main()
