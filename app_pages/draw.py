"""Draw page: a canvas, the network's reading after each stroke, why it said so, labelled
drawings kept. Fits a phone: the drawing and its answer on one screen, a Clear button for touch."""

import pyarrow as pa
import streamlit as st

from digitlab import charts, explain, explore, models, preprocess, store, work
from digitlab.models import ModelConfig, ModelError
from digitlab.training import quick_config
from digitlab.ui import jobpanel, learner, state, teachpanel

digits = state.digits()
ss = st.session_state
QUICK_MODEL = ModelConfig()  # the tutorial's network
QUICK_TRAIN = quick_config(len(digits.x_train))  # augmented; ~300,000 digits seen
FIRST_PASS_WAIT_S = 10.0  # a drawing on a fresh server waits this long for the first pass

st.title("Draw a digit")

if state.current() is None and not ss.get("draw_autoload_tried"):
    ss["draw_autoload_tried"] = True  # once per learner: their latest model, else the room's
    own = store.list_models(learner=learner.name())
    start = own[0] if own else store.room_model()
    if start is not None:
        try:
            with st.spinner(f"Loading the model {learner.md(start.title)} ..."):
                model, entry = store.load_model(start.id, learner=learner.name())
        except (ModelError, store.StoreError) as e:
            st.warning(f"The model {learner.md(start.title)} could not be loaded: {e}")
        else:
            state.set_current_saved(model, entry)
            st.rerun()  # the sidebar shows it too

model_now = state.current()
quick = ss["quick_job"]


def default_status(server, seen) -> None:
    """The server's default model as it gets ready, in one element whatever its stage: the canvas
    below keeps its place (a shifted canvas is built anew, and loses its strokes). A new stage
    (the first pass, the default model, the convolutional one) runs the page again, sidebar and
    all."""
    if (server.stage, server.error) != seen:
        st.rerun()
    if server.model is not None:
        score = f" (MNIST test {server.test_accuracy:.1%})" if server.test_accuracy else ""
        st.caption(
            f"Reading with the server's default model{score}: {server.describe()}. Train your "
            "own on the Train page, load one there, or train the tutorial's network here."
        )
    elif server.error is None:
        st.info("Getting the server's default model ready (a few seconds) ...")
    else:
        st.info(
            "There is no model yet to read your digits. Train one on the Train page, load one "
            "there, or train the tutorial's network here in a few seconds."
        )


@st.fragment(run_every=1.0)
def quick_progress() -> None:
    jobpanel.heartbeat()
    jobpanel.show_progress(ss["quick_job"], stop_key="quick_stop")
    if ss["quick_job"].progress.finished:
        st.rerun()


if model_now is None:
    server = state.server_default()  # made once per server, in the background, when first needed
    if quick is not None and not quick.progress.finished:
        st.info("Training the tutorial's network for you ...")
        quick_progress()
    else:
        if quick is not None:
            jobpanel.show_outcome(quick)
        st.fragment(default_status, run_every=server.recheck_s)(
            server, (server.stage, server.error)
        )
        if st.button(
            f"Quick-train the tutorial's network ({QUICK_TRAIN.epochs} epochs, augmented)",
            type="primary",
            key="quick_start",
        ):
            jobpanel.submit(
                "quick_job",
                work.training_work(digits, model_config=QUICK_MODEL, train_config=QUICK_TRAIN),
                kind="train",
                label="quick training",
            )
            st.rerun()


# On a phone (Streamlit stacks the columns under 640 px) the answer follows the canvas at once:
# a smaller title and digit, less space above, so a 390x664 screen shows the drawing and its
# answer together. On a tablet beside the sidebar the canvas's column is never narrower than
# the canvas: the other columns wrap under it instead (tests/e2e/test_touch.py).
LAYOUT_CSS = """<style>
[data-testid="stHorizontalBlock"]:has(> [data-testid="stColumn"] .st-key-canvas) {
  flex-wrap: wrap !important; }
[data-testid="stColumn"]:has(.st-key-canvas) { min-width: 290px !important; }
[data-testid="stColumn"]:has(.st-key-draw_answer) { min-width: 170px !important; }
@media (max-width: 640px) {
  .block-container { padding-top: 4.5rem !important; }
  .block-container h1 { font-size: 1.6rem !important; padding: 0 0 0.25rem 0 !important; }
  .st-key-draw_answer div[style*='7rem'] { font-size: 3.2rem !important; }
}
</style>"""


def clear_canvas() -> None:
    ss["draw_clears"] = ss.get("draw_clears", 0) + 1  # a new (empty) initial drawing
    ss["draw_cleared"] = True  # this run: the canvas still holds the old strokes


@st.fragment
def drawing() -> None:
    """Canvas, reading and saving: a stroke reruns this part only, not the sidebar and the rest."""
    model_now = state.reading_model()  # this session's model, else the server's default one
    left, mid, right = st.columns([5, 4, 4])
    with left:
        from streamlit_drawable_canvas import st_canvas  # needs a running Streamlit

        canvas = st_canvas(
            stroke_width=ss.get("draw_width", 18),
            stroke_color="#FFFFFF",
            background_color="#000000",
            height=280,
            width=280,
            drawing_mode="freedraw",
            # The Clear button empties the canvas in place by a new initial drawing (no new
            # component); the bin icon above the canvas (on hover, desktop) clears at once in
            # the browser, without the round trip.
            initial_drawing={"objects": [], "digitlab_clears": ss.get("draw_clears", 0)},
            return_image_data=True,
            key="canvas",
        )
        c_clear, c_width = st.columns([1, 2], vertical_alignment="bottom", wrap=False)
        c_clear.button("Clear", icon=":material/delete:", on_click=clear_canvas, key="draw_clear")
        c_width.slider("Pen width", 6, 40, 18, key="draw_width")

    cleared = ss.pop("draw_cleared", False)
    drawn = canvas.image_data is not None and not cleared
    if model_now is None and drawn and preprocess.describe_problem(canvas.image_data) is None:
        model_now = state.reading_model(wait_s=FIRST_PASS_WAIT_S)  # a digit, on a fresh server
    reading = explore.read_drawing(
        model_now.model if model_now else None, None if cleared else canvas.image_data
    )
    # Each column keeps the same elements from one drawing to the next (a stroke or a clear
    # changes their content, not which elements there are): the browser updates them in place
    # instead of building them again, which decided the answer time with ten learners on one
    # machine (BENCHMARKS.md, load test).
    with mid, st.container(key="draw_answer"):
        if reading.problem:
            st.info(reading.problem)
        elif reading.probs is None:
            st.caption("Here the network's answer appears once there is a model.")
        else:
            st.markdown(
                "<div style='display:flex;flex-wrap:wrap;align-items:baseline;column-gap:1rem'>"
                f"<div style='font-size:7rem;line-height:1;font-weight:700'>{reading.digit}</div>"
                f"<div>confidence <b>{reading.confidence:.1%}</b></div></div>",
                unsafe_allow_html=True,
            )
        if model_now is not None:
            st.vega_lite_chart(  # an Arrow table: Streamlit sends it as is, no pandas on the way
                pa.Table.from_pylist(explore.probability_bars(reading.probs)),
                charts.PROBABILITY_SPEC,
                height=260,
                key="draw_probs",
            )
    with right:
        if reading.image is not None:
            st.image(preprocess.enlarge(reading.image), caption="What the network receives (28x28)")

    st.divider()
    c1, c2, c3 = st.columns([1, 2, 3], vertical_alignment="bottom")
    if ss.get("draw_label_for", -1) != reading.digit:  # a new reading: the label follows it
        ss["draw_label_for"] = reading.digit
        ss["draw_label"] = reading.digit if reading.digit is not None else 0
    label = c1.selectbox("This drawing is a", list(range(10)), key="draw_label")
    if c2.button(f"Save this drawing as {label}", disabled=reading.image is None, key="draw_save"):
        store.save_drawing(
            reading.image, label, learner=learner.name(), canvas_png=canvas.image_data
        )
        st.toast(f"Saved as a {label}.")
    # Every stroke reruns this fragment: the saved drawings are read and scored again only when
    # their number or the model changes, not on each stroke.
    who = learner.name()  # None: the room's drawings, everybody's
    key = (
        (model_now.name, id(model_now.model)) if model_now else None,
        who,
        store.count_drawings(who),
    )
    if ss.get("draw_saved_score", (None,))[0] != key:
        images, labels = store.load_drawings(learner=who)  # (n, 28, 28) float32, (n,)
        score = (
            models.accuracy(model_now.model, images, labels) if model_now and len(labels) else None
        )
        ss["draw_saved_score"] = (key, len(labels), score)
    _, n_saved, acc = ss["draw_saved_score"]
    whose = "your" if who else "the room's"
    shown = learner.md(model_now.name) if model_now else ""
    with c3:
        if n_saved == 0:
            st.caption("Saved drawings show how the model does on yours.")
        elif model_now is None:
            st.markdown(f"{n_saved} saved drawings; no model to score them yet.")
        else:
            st.markdown(
                f"**{shown}** reads **{acc:.0%}** of {whose} {n_saved} saved drawings right "
                f"(MNIST test set: {model_now.test_accuracy:.1%})."
                if model_now.test_accuracy is not None
                else f"**{shown}** reads **{acc:.0%}** of {whose} {n_saved} saved drawings right."
            )

    if model_now is not None and st.toggle(
        "Why this answer, and what the network learned",
        key="draw_why",
        help="Saliency maps, the top three answers, and the first layer's weights, "
        "updated with every stroke.",
    ):
        why(model_now.model, reading)


def why(model, reading) -> None:
    """The "Why this answer" and "What it learned" views (digitlab.explain) for this drawing."""
    if reading.image is None:
        st.caption("Draw a digit to see why the network reads it as it does.")
        return
    if not models.is_keras(model):
        st.caption("These views open once the server's default model is ready (in a minute).")
        return
    if ss.get("draw_rival_for") != reading.digit or "draw_rival" not in ss:  # a new answer:
        # compare it with its runner-up
        ss["draw_rival_for"] = reading.digit
        ss["draw_rival"] = explain.top_answers(reading.probs, 2)[1][0]
    st.subheader("Why this answer")
    c1, c2 = st.columns([1, 2])
    with c1:
        st.markdown(
            "Top three: "
            + ", ".join(f"**{d}** {p:.1%}" for d, p in explain.top_answers(reading.probs, 3))
            + "\n\nRed: more ink there raises that digit's score; blue: lowers it."
        )
        rival = st.pills("Compare with", range(10), key="draw_rival", required=True, wrap=True)
        times_input = (
            st.radio(
                "Map",
                ["input x gradient", "gradient"],
                horizontal=True,
                key="draw_map",
                help="Gradient: where ink would change the score (the pre-softmax score). "
                "Input x gradient: the drawn pixels only, each by how much it counted.",
            )
            == "input x gradient"
        )
    try:
        e = explain.explain(model, reading.image, [reading.digit, rival])
    except explain.ExplainError as err:
        st.info(str(err))
        return
    c2.plotly_chart(
        charts.saliency_figure(
            [e.saliency(d, times_input=times_input) for d in (reading.digit, rival)],
            [f"why {d} ({reading.probs[d]:.0%})" for d in (reading.digit, rival)],
        ),
        key="draw_saliency",
    )
    st.subheader("What it learned")
    c1, c2 = st.columns(2)
    if e.feature_maps is None:  # an MLP: the hidden units behind this answer
        top = e.top_units(e.digit, n=8)
        c1.plotly_chart(
            charts.units_figure(top.units, top.contributions, top.activations, digit=e.digit),
            key="draw_units",
        )
        pixels = explain.reads_pixels(model)  # else the units' inputs are not pixels
        units = top.units if pixels else range(explain.TILE_UNITS)
        c2.plotly_chart(
            charts.tiles_figure(
                explain.first_layer_tiles(model, units),
                [f"unit {u}" for u in units],
                cols=4,
                size=120,
                title="What these units look for" if pixels else "First layer: what units look for",
            ),
            key="draw_tiles",
        )
    else:  # a CNN: its first filters, and what they found in this drawing
        filters = explain.first_layer_tiles(model)
        c1.plotly_chart(
            charts.tiles_figure(filters, cols=8, size=60, title="First convolution's filters"),
            key="draw_filters",
        )
        c2.plotly_chart(
            charts.tiles_figure(
                e.feature_maps, cols=8, size=60, title="Their maps of this drawing", signed=False
            ),
            key="draw_maps",
        )


st.html(LAYOUT_CSS)  # once per page run: a stroke reruns only the fragment, the style stays
drawing()
teachpanel.render(digits, key="draw_teach")
