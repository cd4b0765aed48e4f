"""The app that `streamlit run streamlit_app.py` runs: page config, session defaults, the shared
sidebar, navigation. Streamlit calls main() on every run of the entry script."""

import logging

import streamlit as st

from digitlab import engine, ui
from digitlab.data import DataError
from digitlab.ui import jobpanel, learner, sidebar, state

log = logging.getLogger(__name__)

FIRST_PASS_S = 10.0  # Ray's start waits at most this long for the default's first pass

# The pages after Home: (script, title, icon, the home page's link to it)
PAGES = [
    ("app_pages/data.py", "Data", ":material/grid_view:", "Explore the data"),
    ("app_pages/train.py", "Train", ":material/model_training:", "Train a network"),
    ("app_pages/evaluate.py", "Evaluate", ":material/analytics:", "Cross-validate"),
    ("app_pages/draw.py", "Draw", ":material/draw:", "Draw a digit"),
    ("app_pages/room.py", "Room", ":material/groups:", "The room"),
]


def home() -> None:
    st.title("DigitLab")
    st.markdown(
        "An interactive lab for handwritten digit recognition: the classic Keras MNIST tutorial "
        "(784 pixels → Dense 512 → 10 digits), turned into pages you can click.  \n"
        "Start with **Data** to see the digits, **Train** a network and watch it learn, "
        "check it honestly with **Evaluate**, then **Draw** your own digits for it to read."
    )
    for col, (path, _, icon, link) in zip(st.columns(len(PAGES)), PAGES, strict=True):
        col.page_link(path, label=link, icon=icon)


def prepare_server():
    """The server's own work, at its start (streamlit_app.py's lifespan) and again, at no cost, at each
    session's first run: the dataset; when the room has no model, the default's quick first pass
    (it reads the first drawings); then Ray, once per server, in a thread, after that first pass
    (its start takes seconds of both cores). No page waits for any of it (BENCHMARKS.md, ready to
    draw at once). Returns the server's default (teach.ServerDefault), None when the room has
    a model."""
    state.load_digits()  # DataError: the server's start logs it, and each page says it
    first = state.prepare_default()
    engine.start_in_background(
        after=None if first is None else lambda: first.wait_first(FIRST_PASS_S)
    )
    return first


def start_server() -> None:
    """prepare_server at the server's start (streamlit_app.py's lifespan, in its own thread,
    before anyone visits), and a line in the terminal when drawings can be read; what fails is
    logged here and said on each page in one sentence."""
    try:
        first = prepare_server()
    except DataError as e:
        log.warning("The dataset could not be loaded: %s", e)
        return
    except Exception:  # the pages do the same work on their first run, and say what failed
        log.exception("preparing the server at its start")
        return
    if first is not None and first.wait_first(FIRST_PASS_S):  # the terminal, beside the URL
        print(
            f"  DigitLab reads drawings now: the default model's first pass took "
            f"{first.ready_s['first']:.1f} s.",
            flush=True,
        )


def main() -> None:
    st.set_page_config(page_title="DigitLab", page_icon=":material/draw:", layout="wide")
    state.init()  # session_state.setdefault for every key the pages use
    st.session_state[state.DATA_ERROR_SAID] = False
    learner.sync()  # ?learner=NAME in the URL <-> this session's learner
    learner.room_gate()  # DIGITLAB_ROOM_PASSWORD: nothing past here without it
    nav = st.navigation(
        [st.Page(home, title="Home", icon=":material/home:", default=True)]
        + [st.Page(path, title=title, icon=icon) for path, title, icon, _ in PAGES]
    )
    jobpanel.absorb_finished()  # a run that ended while away: its model is current now
    if nav.title != "Home":
        ui.wait_for_imports()  # charts' imports, started at server start, done before pages use them
    try:
        nav.run()
    finally:  # after the page (a rerun or st.stop included): the page is not kept waiting
        # The sidebar needs the dataset (one copy per server, st.cache_resource; no TensorFlow),
        # which Home does not: a fresh server's first Home page shows before its load.
        sidebar.render(state.digits())
        if state.once_per_session(state.SERVER_PREPARED):
            prepare_server()  # done at the server's start (streamlit_app.py); AppTest has no server
