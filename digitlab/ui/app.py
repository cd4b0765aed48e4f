"""The app that `streamlit run streamlit_app.py` runs: page config, session defaults, the shared
sidebar, navigation. Streamlit calls main() on every run of the entry script."""

import streamlit as st

from digitlab import engine, ui
from digitlab.ui import jobpanel, learner, sidebar, state

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


def main() -> None:
    st.set_page_config(page_title="DigitLab", page_icon=":material/draw:", layout="wide")
    state.init()  # session_state.setdefault for every key the pages use
    digits = state.digits()  # one copy per server (st.cache_resource); imports no TensorFlow
    first = state.prepare_default()  # no room model: the default's quick first pass starts now
    # Ray, once per server, in a thread: no page waits for it. Its start (seconds of both cores)
    # waits for the first pass, which reads the first drawings (BENCHMARKS.md, ready to draw).
    engine.start_in_background(
        after=None if first is None else lambda: first.wait_first(FIRST_PASS_S)
    )
    learner.sync()  # ?learner=NAME in the URL <-> this session's learner
    learner.room_gate()  # DIGITLAB_ROOM_PASSWORD: nothing past here without it
    nav = st.navigation(
        [st.Page(home, title="Home", icon=":material/home:", default=True)]
        + [st.Page(path, title=title, icon=icon) for path, title, icon, _ in PAGES]
    )
    jobpanel.absorb_finished()  # a run that ended while away: its model is current now
    sidebar.render(digits)
    if nav.title != "Home":
        ui.wait_for_imports()  # charts' imports, started at server start, done before pages use them
    nav.run()
