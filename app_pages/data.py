"""Data page: sample digits, the tutorial's facts, counts per digit, the mean image of each digit."""

import streamlit as st

from digitlab import charts, explore
from digitlab.ui import state

digits = state.digits()
st.title("The data")
st.caption(digits.summary)

left, right = st.columns([2, 3])
with left:
    part = st.radio("Split", ["train", "test"], horizontal=True, key="data_part")
    choice = st.selectbox("Digit", ["all", *range(10)], key="data_digit")
    c1, c2 = st.columns([2, 1])
    c1.number_input("Seed", min_value=0, max_value=10**9, step=1, key="sample_seed")
    c2.button(
        "Reshuffle",
        help="Draw another random sample (the next seed).",
        on_click=lambda: st.session_state.update(sample_seed=st.session_state["sample_seed"] + 1),
    )
    how_many = st.select_slider("How many", [9, 16, 25], value=9, key="data_n")
x, y = explore.split(digits, part)
idx = explore.sample(
    y,
    n=how_many,
    digit=None if choice == "all" else int(choice),
    seed=st.session_state["sample_seed"],
)
with right:
    if len(idx) == 0:
        st.info(f"There is no {choice} in the {part} split.")
    else:
        cols = int(len(idx) ** 0.5 + 0.999)
        st.plotly_chart(
            charts.images_figure(x[idx], [f"label {y[i]}" for i in idx], cols=cols, size=130),
            key="samples",
        )

st.subheader("Facts")
st.dataframe(explore.facts(digits), hide_index=True)

c1, c2 = st.columns(2)
with c1:
    st.plotly_chart(
        charts.counts_figure(explore.class_counts(y), title=f"Digits per class ({part})"),
        key="counts",
    )
with c2:
    means = state.mean_images(digits.source, part)  # (10, 28, 28) float32
    st.plotly_chart(
        charts.images_figure(
            means, [str(d) for d in range(10)], cols=5, size=110, title=f"Mean image ({part})"
        ),
        key="means",
    )
