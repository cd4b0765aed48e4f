"""Two learners in two browser contexts, and the instructor in a third: each sees their own work,
both publish to the Room page's leaderboard, the instructor makes a room model and stops a run.

Screenshots (artifacts/e2e/): room-*.png; the Room page and the instructor's view are copied
to docs/screenshots/room.png and instructor.png when DIGITLAB_README_SHOTS=1.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import urllib.parse
from pathlib import Path

import pytest
from clitools import run_here
from playwright.sync_api import expect
from test_browser import LONG, ONE, ZERO, check_clean, draw, go, predicted, set_number, settled

_spec = importlib.util.spec_from_file_location(
    "e2e_harness", Path(__file__).with_name("conftest.py")
)
_harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_harness)
ROOT, Server = _harness.ROOT, _harness.Server  # the suite's server harness

pytestmark = pytest.mark.e2e
ANA, BOB = "ana", "bob **bold**"  # bob's name must show as those characters, never bold
PASSWORD = "teach"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("room")
    home = tmp / "home"
    for who, units in ((ANA, 128), (BOB, 64)):  # each learner's model, saved through the CLI
        proc = run_here(
            "train", "--limit", 3000, "--epochs", 3, "--hidden-units", units,
            "--learner", who, "--save-as", f"{who.split()[0]}-mlp", tmp_home=tmp,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
    srv = Server(
        home,
        tmp / "server.log",
        env_extra={
            "DIGITLAB_OFFLINE": "1",
            "DIGITLAB_LIMIT": "3000",
            "DIGITLAB_INSTRUCTOR_PASSWORD": PASSWORD,
        },
    )
    try:
        srv.wait_healthy()
        yield srv
    finally:
        srv.stop()


def open_as(browser, server, who: str | None):
    context = browser.new_context(viewport={"width": 1400, "height": 1500})
    page = context.new_page()
    page.set_default_timeout(60_000)
    query = f"?learner={urllib.parse.quote(who)}" if who else ""
    page.goto(server.url + "/" + query)
    page.get_by_role("heading", name="DigitLab").wait_for(timeout=LONG)
    return context, page


def unlock(page) -> None:
    """The Room page's instructor password (once per session: a reload is a new session)."""
    go(page, "Room", "The room")
    box = page.get_by_role("textbox", name="Instructor password")
    box.fill(PASSWORD)
    box.press("Enter")
    page.get_by_role("tab", name="Room model").wait_for(timeout=LONG)


def publish(page) -> None:
    go(page, "Room", "The room")
    page.get_by_role("button", name="Publish").click()
    page.get_by_role("button", name="Take off the board").wait_for(timeout=LONG)


def saved_drawing(page, stroke, digit: str) -> None:
    go(page, "Draw", "Draw a digit")
    draw(page, stroke)
    assert predicted(page, digit) == digit
    page.get_by_role("button", name=f"Save this drawing as {digit}").click()


def test_two_learners_and_the_instructor(server, browser, shots):
    ctx_a, a = open_as(browser, server, ANA)
    ctx_b, b = open_as(browser, server, BOB)
    try:
        # the name box shows the name from the URL once the session's first run is done
        expect(a.get_by_role("textbox", name="Your name")).to_have_value(ANA, timeout=LONG)
        expect(b.get_by_role("textbox", name="Your name")).to_have_value(BOB, timeout=LONG)
        # each Draw page loads its learner's own model, and counts only their own drawings
        saved_drawing(a, ONE, "1")
        a.get_by_text("of your 1 saved drawings").wait_for()
        a.locator('[data-testid="stSidebar"]').get_by_text("ana-mlp").wait_for()
        saved_drawing(b, ZERO, "0")
        b.get_by_text("of your 1 saved drawings").wait_for()
        sidebar_b = b.locator('[data-testid="stSidebar"]')
        sidebar_b.get_by_text("bob-mlp").wait_for()  # one element: wait_for is strict
        assert sidebar_b.locator("strong", has_text="bold").count() == 0  # no markdown from a name
        check_clean(b, server, shots, "room-01-bob-draw")
        assert "learner=bob" in b.url  # the name stays in the URL across pages

        publish(a)
        publish(b)
        a.reload()
        a.get_by_role("heading", name="The room").wait_for(timeout=LONG)
        board = a.locator(".js-plotly-plot").first
        board.get_by_text(f"{ANA}: ana-mlp").first.wait_for()
        board.get_by_text(f"{BOB}: bob-mlp").first.wait_for()  # exactly those characters
        check_clean(a, server, shots, "room-02-room-page")

        # the instructor: a room model, everyone's running jobs with a Stop each
        ctx_i, ins = open_as(browser, server, None)
        try:
            unlock(ins)
            ins.get_by_role("button", name="Make it the room model").click()
            ins.get_by_text("The room model is now").wait_for(timeout=LONG)

            go(a, "Train", "Train a network")
            set_number(a, "Epochs", 200)
            a.get_by_role("button", name="Start training").click()
            # past TensorFlow's start: a Stop lands inside an epoch and is honoured within a batch
            a.locator('[data-testid="stProgress"]').get_by_text(
                re.compile(r"Epoch \d+ of")
            ).wait_for(timeout=LONG)

            ins.reload()
            ins.get_by_role("heading", name="The room").wait_for(timeout=LONG)
            unlock(ins)  # now it lists ana's run
            ins.get_by_role("tab", name="Jobs").click()
            row_stop = ins.get_by_role("button", name="Stop", exact=True)
            row_stop.first.wait_for()
            ins.get_by_test_id("stText").filter(has_text=ANA).first.wait_for()  # ana's run
            ins.get_by_role("tab", name="Room model").click()
            ins.get_by_text("of the room's 2 drawings right").wait_for(timeout=LONG)
            ins.get_by_role("tab", name="Jobs").click()
            ins.get_by_role("heading", name="Instructor").evaluate(
                "h => h.scrollIntoView({block: 'start'})"
            )  # the controls in the screenshot
            check_clean(ins, server, shots, "room-03-instructor")
            row_stop.first.click()
            # ana's page hears it: her run's progress bar goes, the run is over
            a.locator('[data-testid="stProgress"]').first.wait_for(state="detached", timeout=LONG)
            check_clean(a, server, shots, "room-05-ana-stopped")
        except Exception:
            for who, pg in (("ana", a), ("bob", b), ("instructor", ins)):
                pg.screenshot(path=shots / f"FAILED-room-{who}.png")
            raise
        finally:
            ctx_i.close()
    finally:
        ctx_a.close()
        ctx_b.close()
    if os.environ.get("DIGITLAB_README_SHOTS") == "1":
        docs = ROOT / "docs" / "screenshots"
        shutil.copy(shots / "room-02-room-page.png", docs / "room.png")
        shutil.copy(shots / "room-03-instructor.png", docs / "instructor.png")


def test_the_learner_stays_after_a_page_switch(server, browser):
    """Five learners open their links at once, then the Draw page: each name box still shows its
    learner, and each page works as that learner (the box once came back empty after the page
    switch, and the next rerun sent it as a change that made the learner the room: 9 of 10
    browsers opening the Draw page this way)."""
    names = [f"dana-{i}" for i in range(5)]
    opened = []
    try:
        for who in names:  # every session's first run under way together
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(LONG)
            page.goto(f"{server.url}/?learner={who}", wait_until="commit")
            opened.append((who, context, page))
        for _, _, page in opened:
            page.get_by_role("heading", name="DigitLab").wait_for()
            page.locator('[data-testid="stSidebarNav"] a', has_text="Draw").first.click()
        for who, _, page in opened:
            page.get_by_role("heading", name="Draw a digit").wait_for()
            settled(page)
            # not a wait for something: a second in which a run that lost the name would show
            page.wait_for_timeout(1000)
            expect(page.get_by_role("textbox", name="Your name")).to_have_value(who)
            assert page.get_by_text("No name yet").count() == 0
    finally:
        for _, context, _ in opened:
            context.close()
