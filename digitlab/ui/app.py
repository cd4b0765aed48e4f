"""The app that `streamlit run streamlit_app.py` runs: page config, session defaults, the shared
sidebar, navigation. Streamlit calls main() on every run of the entry script."""

import streamlit as st

from digitlab import ui
from digitlab.ui import jobpanel, sidebar, state


def home() -> None:
    st.title("DigitLab")
    st.markdown(
        "An interactive lab for handwritten digit recognition: the classic Keras MNIST tutorial "
        "(784 pixels → Dense 512 → 10 digits), turned into pages you can click.  \n"
        "Start with **Data** to see the digits, **Train** a network and watch it learn, "
        "check it honestly with **Evaluate**, then **Draw** your own digits for it to read."
    )
    cols = st.columns(4)
    cols[0].page_link("app_pages/data.py", label="Explore the data", icon=":material/grid_view:")
    cols[1].page_link(
        "app_pages/train.py", label="Train a network", icon=":material/model_training:"
    )
    cols[2].page_link("app_pages/evaluate.py", label="Cross-validate", icon=":material/analytics:")
    cols[3].page_link("app_pages/draw.py", label="Draw a digit", icon=":material/draw:")


def main() -> None:
    st.set_page_config(page_title="DigitLab", page_icon=":material/draw:", layout="wide")
    state.init()  # session_state.setdefault for every key the pages use
    nav = st.navigation(
        [
            st.Page(home, title="Home", icon=":material/home:", default=True),
            st.Page("app_pages/data.py", title="Data", icon=":material/grid_view:"),
            st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
            st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
            st.Page("app_pages/draw.py", title="Draw", icon=":material/draw:"),
        ]
    )
    digits = state.digits()  # one copy per server (st.cache_resource); imports no TensorFlow
    jobpanel.absorb_finished()  # a run that ended while away: its model is current now
    sidebar.render(digits)
    if nav.title != "Home":
        ui.wait_for_imports()  # charts' imports, started at server start, done before pages use them
    nav.run()
