"""The whole app in Chromium, as a learner uses it: data, train, draw with the mouse, cross-validate.

One browser page (one Streamlit session) walks through the steps in order; each step saves a
screenshot under artifacts/e2e/ and fails on any exception shown in the page or logged by the server.
"""

from __future__ import annotations

import math
import re
import time

import pytest
from playwright.sync_api import expect
from proctools import descendants, names

pytestmark = pytest.mark.e2e
LONG = 180_000  # ms: a training step on a busy 2-core machine


@pytest.fixture(scope="module")
def page(server, browser):  # noqa: F811 - one session for every step
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(server.url)
    page.get_by_role("heading", name="DigitLab").wait_for(timeout=LONG)
    yield page
    context.close()


def settled(page) -> None:
    """Wait until the session's script has ended its run (Streamlit marks its app root so)."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()


def check_clean(page, server, shots, name: str) -> None:
    settled(page)
    page.screenshot(path=shots / f"{name}.png", full_page=True)
    shown = page.locator('[data-testid="stException"]')
    assert shown.count() == 0, f"{name}: the page shows an exception: {shown.first.inner_text()}"
    assert "Traceback" not in page.locator("body").inner_text(), f"{name}: traceback in the page"
    log = server.text()
    assert "Traceback" not in log and "Error" not in log, f"{name}: server log:\n{log[-3000:]}"


def go(page, title: str, heading: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.get_by_role("heading", name=heading).wait_for()


def set_number(page, label, value: int) -> None:
    """Type a number and press Enter, as a person does; return once the widget has applied it
    (its "Press Enter to apply" hint is gone) and the run it started has ended. label: the
    box's exact label, or the box itself."""
    box = page.get_by_label(label, exact=True) if isinstance(label, str) else label
    box.fill(str(value))
    box.press("Enter")
    widget = page.locator('[data-testid="stNumberInput"]').filter(has=box)
    expect(widget.get_by_text("Press Enter to apply")).to_have_count(0)
    expect(box).to_have_value(str(value))
    settled(page)


def test_the_server_gets_ready_before_anyone_visits(server):
    """streamlit_app.py's st.App lifespan: the default's first pass, then the engine, start with
    the server; nobody has opened a page yet (this test runs before the page fixture)."""
    deadline = time.monotonic() + 90
    while "DigitLab reads drawings now" not in server.text():
        assert time.monotonic() < deadline, f"no first pass before a visit:\n{server.text()}"
        time.sleep(0.2)
    while "raylet" not in names(descendants(server.proc.pid)):
        assert time.monotonic() < deadline, f"no Ray started by the server:\n{server.text()}"
        time.sleep(0.2)


def test_home_and_data_page(page, server, shots):
    current = page.locator('[data-testid="stSidebar"]').get_by_text("Current model")
    current.wait_for()  # the sidebar comes after the page (it needs the dataset; Home does not)
    assert current.count() == 1
    check_clean(page, server, shots, "01-home")
    go(page, "Data", "The data")
    grid = page.locator(".js-plotly-plot").first  # the sample grid is the page's first chart
    grid.wait_for()
    # samples, counts per digit, mean images: charts appear one by one as the page runs
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 3")
    assert page.locator(".js-plotly-plot").count() >= 3
    check_clean(page, server, shots, "02-data")


def test_train_one_epoch(page, server, shots):
    go(page, "Train", "Train a network")
    set_number(page, "Epochs", 1)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Test accuracy", exact=True).wait_for(timeout=LONG)
    page.locator(".js-plotly-plot").nth(2).wait_for(timeout=LONG)  # loss, accuracy, confusion
    assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 2  # curves drawn
    value = page.locator('[data-testid="stMetricValue"]').first.inner_text()
    assert 0.5 < float(value) <= 1.0, value
    page.get_by_text("First layer after epoch 1, 16 weights").wait_for()  # the live tiles, kept
    check_clean(page, server, shots, "03-train")


def draw(page, points) -> None:
    """Press, move along the path, release: a person's stroke on the canvas."""
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for()
    box = canvas.bounding_box()
    xy = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=3)
    page.mouse.up()


def predicted(page, want: str, timeout_s: float = 30) -> str:
    """The big digit the page shows, once it settles on want (or what it shows at the end)."""
    digit = page.locator("div[style*='7rem']")
    shown = ""
    for _ in range(int(timeout_s * 4)):
        if digit.count():
            shown = digit.first.inner_text().strip()
            if shown == want:
                return shown
        page.wait_for_timeout(250)
    return shown


ONE = [(0.52, 0.15 + 0.7 * t / 20) for t in range(21)]
ZERO = [
    (0.5 + 0.22 * math.sin(2 * math.pi * t / 40), 0.5 - 0.32 * math.cos(2 * math.pi * t / 40))
    for t in range(43)
]


def test_draw_one_and_zero(page, server, shots):
    go(page, "Draw", "Draw a digit")
    draw(page, ONE)
    assert predicted(page, "1") == "1"
    check_clean(page, server, shots, "04-draw-one")

    page.get_by_role("button", name="Save this drawing as 1").click()
    page.get_by_text(re.compile(r"of the room's 1 saved drawings")).wait_for()  # no name given

    page.get_by_role("button", name="Reset canvas & history").click()  # the canvas's bin icon
    page.get_by_text("Nothing drawn yet.").wait_for()  # the page heard the canvas clear
    draw(page, ZERO)
    assert predicted(page, "0") == "0"
    page.get_by_role("button", name="Save this drawing as 0").wait_for()  # the label follows
    check_clean(page, server, shots, "05-draw-zero")


def test_two_fold_cross_validation(page, server, shots):
    go(page, "Evaluate", "Cross-validate")
    set_number(page, "Folds", 2)
    set_number(page, "Epochs per fold", 1)
    set_number(page, page.get_by_role("spinbutton", name=re.compile(r"Training digits")), 1000)
    page.get_by_role("button", name="Start cross-validation").click()
    page.locator(".js-plotly-plot .boxlayer .trace").first.wait_for(timeout=LONG)
    check_clean(page, server, shots, "06-evaluate")


def test_teach_it_your_handwriting(page, server, shots):
    """Five drawings saved with the mouse by a learner of their own, the model taught on them,
    before and after shown."""
    page.goto(f"{server.url}/draw?learner=tess")  # a learner with no drawings yet
    page.get_by_role("heading", name="Draw a digit").wait_for(timeout=LONG)
    for n, stroke in enumerate([ZERO, ONE, ZERO, ONE, ZERO], start=1):
        if n > 1:
            page.get_by_role("button", name="Reset canvas & history").click()
            page.get_by_text("Nothing drawn yet.").wait_for()
        draw(page, stroke)
        page.locator("div[style*='7rem']").first.wait_for()
        page.get_by_role("button", name=re.compile(r"Save this drawing as")).click()
        page.get_by_text(re.compile(rf"of your {n} saved drawings")).wait_for(timeout=LONG)
    page.get_by_role("button", name="Teach it your handwriting").click()
    # the server's default fine-tuned, or a new network while the default is still training
    page.get_by_text(re.compile(r"Last run: .* on 4 of 5 drawings")).wait_for(timeout=LONG)
    table = page.locator('[data-testid="stDataFrame"]').last
    table.wait_for()
    check_clean(page, server, shots, "07-teach")
    assert "it is now your current model" in page.locator("body").inner_text()
    page.locator('[data-testid="stSidebar"]').get_by_text(re.compile(r"taught")).first.wait_for()
