"""The Draw page on touch screens, in Chromium with Playwright's phone and tablet descriptors:
a finger draws (real touch input through the DevTools protocol), the page does not scroll
under it, the answer shows beside the drawing without scrolling, and the Clear button clears.

Screenshots: artifacts/e2e/touch-<device>.png (docs/screenshots/draw-phone.png and
draw-tablet.png are copies of good ones), and touch-desktop-why.png, the "Why this answer"
views on a desktop screen.
"""

from __future__ import annotations

import os

import pytest
from test_browser import ONE, ZERO, check_clean, draw, predicted

pytestmark = pytest.mark.e2e
DEVICES = {"phone": "iPhone 12", "tablet": "iPad (gen 7)"}  # 390x664 and 810x1080


@pytest.fixture(scope="module")
def server_home(tmp_path_factory):
    """A store that already holds a small trained MLP: the Draw page loads it."""
    from digitlab import store
    from digitlab.data import offline_subset
    from digitlab.models import ModelConfig
    from digitlab.training import TrainConfig, train

    home = tmp_path_factory.mktemp("touch") / "home"
    result = train(
        offline_subset(),
        model_config=ModelConfig(hidden_units=128),
        train_config=TrainConfig(epochs=6, augment=True),  # drawn digits are not MNIST's
    )
    old = os.environ.get("DIGITLAB_HOME")
    os.environ["DIGITLAB_HOME"] = str(home)
    try:
        store.save_model(result.model, name="touch-mlp", meta={"arch": "mlp"})
    finally:
        if old is None:
            del os.environ["DIGITLAB_HOME"]
        else:
            os.environ["DIGITLAB_HOME"] = old
    return home


def open_draw_page(browser, descriptor: dict, url: str):
    context = browser.new_context(
        **{k: v for k, v in descriptor.items() if k != "default_browser_type"}
    )
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url + "/draw")
    page.get_by_role("heading", name="Draw a digit").wait_for(timeout=180_000)
    page.get_by_text("Nothing drawn yet.").wait_for(timeout=120_000)  # the saved model loaded
    page.locator("canvas.upper-canvas").first.wait_for()
    return context, page


def touch_stroke(page, cdp, points, target) -> None:
    """A finger pressed, moved along points (0..1 of the target's box) and lifted."""
    box = target.bounding_box()
    xy = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]

    def send(kind, x=None, y=None):
        touches = [] if x is None else [{"x": x, "y": y, "id": 1, "radiusX": 4, "radiusY": 4}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touches})

    send("touchStart", *xy[0])
    for x, y in xy[1:]:
        send("touchMove", x, y)
        page.wait_for_timeout(16)  # a finger's pace: one move a frame
    send("touchEnd")


# How far anything on the page has scrolled (the window, or Streamlit's scrolling main area)
SCROLLED = "() => Math.max(0, ...[...document.querySelectorAll('*')].map(e => e.scrollTop))"


def in_view(page, locator) -> bool:
    box = locator.bounding_box()
    view = page.viewport_size
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= view["height"]


@pytest.mark.parametrize("device", list(DEVICES))
def test_touch_draw_read_and_clear(device, server, browser, playwright, shots):
    context, page = open_draw_page(browser, playwright.devices[DEVICES[device]], server.url)
    try:
        cdp = context.new_cdp_session(page)
        canvas = page.locator("canvas.upper-canvas").first
        assert page.evaluate(SCROLLED) == 0
        touch_stroke(page, cdp, ONE, canvas)  # a finger moving down the canvas draws a 1 ...
        assert predicted(page, "1") == "1"
        assert page.evaluate(SCROLLED) == 0  # ... and the page did not scroll under it
        answer = page.locator("div[style*='7rem']").first
        confidence = page.get_by_text("confidence")
        for name, shown in (("canvas", canvas), ("answer", answer), ("confidence", confidence)):
            assert in_view(page, shown), f"{device}: the {name} is not on the first screen"
        column = page.locator('[data-testid="stColumn"]').filter(has=canvas).first
        assert column.bounding_box()["width"] >= 280, f"{device}: the canvas is cut off"
        check_clean(page, server, shots, f"touch-{device}")
        page.screenshot(path=shots / f"touch-{device}-screen.png")  # what the screen shows

        clear = page.get_by_role("button", name="Clear")
        assert clear.is_visible() and in_view(page, clear)  # no hover needed to find it
        clear.tap()
        page.get_by_text("Nothing drawn yet.").wait_for()
        touch_stroke(page, cdp, ZERO, canvas)  # the cleared canvas draws again
        assert predicted(page, "0") == "0"
        assert page.evaluate(SCROLLED) == 0

        # The same finger on the page's title scrolls the page: the check above can fail.
        if device == "phone":
            title = page.get_by_role("heading", name="Draw a digit")
            touch_stroke(page, cdp, [(0.5, 1.0 - t / 10) for t in range(11)], title)
            page.wait_for_function(f"({SCROLLED})() > 0", timeout=5_000)
    finally:
        context.close()


def test_desktop_why_this_answer(server, browser, shots):
    """On a desktop: draw with the mouse, turn on "Why this answer", compare with a runner-up."""
    context = browser.new_context(viewport={"width": 1400, "height": 1650})  # the whole page
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(server.url + "/draw")
        page.get_by_text("Nothing drawn yet.").wait_for(timeout=180_000)
        page.get_by_text("Why this answer, and what the network learned").click()
        page.get_by_text("Draw a digit to see why").wait_for()
        draw(page, ZERO)
        assert predicted(page, "0") == "0"
        page.get_by_role("heading", name="Why this answer").wait_for()
        page.get_by_role("heading", name="What it learned").wait_for()
        page.get_by_text("Top three:").wait_for()
        page.get_by_text("why 0 (").wait_for()  # the saliency map of the answer ...
        page.get_by_text("What these units look for").wait_for()  # ... and the units' tiles
        page.locator('[data-testid="stButtonGroup"] button', has_text="6").first.click()
        page.get_by_text("why 6 (").wait_for()  # the learner's runner-up, side by side
        page.get_by_text("Hidden units that pushed 0 up most").wait_for()
        check_clean(page, server, shots, "touch-desktop-why")
    finally:
        context.close()
