"""Draw page: a canvas, the network's reading after each stroke, labelled drawings kept."""

import streamlit as st

from digitlab import charts, explore, jobs, preprocess, store, workers
from digitlab.models import ModelConfig, ModelError
from digitlab.training import quick_config
from digitlab.ui import jobpanel, learner, state

digits = state.digits()
ss = st.session_state
QUICK_MODEL = ModelConfig()  # the tutorial's network
QUICK_TRAIN = quick_config(len(digits.x_train))  # augmented; ~40,000 digits seen

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

cm = state.current()
quick = ss["quick_job"]


@st.fragment(run_every=1.0)
def quick_progress() -> None:
    jobpanel.heartbeat()
    jobpanel.show_progress(ss["quick_job"], stop_key="quick_stop")
    if ss["quick_job"].progress.finished:
        st.rerun()


if cm is None:
    workers.prewarm()  # quick-train starts without waiting for TensorFlow to load
    if quick is not None and not quick.progress.finished:
        st.info("Training the tutorial's network for you ...")
        quick_progress()
    else:
        if quick is not None:
            jobpanel.show_outcome(quick)
        st.info(
            "There is no model yet to read your digits. Train one on the Train page, load one "
            "there, or train the tutorial's network here in a few seconds."
        )
        if st.button(
            f"Quick-train the tutorial's network ({QUICK_TRAIN.epochs} epochs, augmented)",
            type="primary",
            key="quick_start",
        ):
            jobpanel.submit(
                "quick_job",
                jobs.training_work(digits, model_config=QUICK_MODEL, train_config=QUICK_TRAIN),
                kind="train",
                label="quick training",
            )
            st.rerun()


@st.fragment
def drawing() -> None:
    """Canvas, reading and saving: a stroke reruns this part only, not the sidebar and the rest."""
    cm = state.current()
    left, mid, right = st.columns([5, 4, 4])
    with left:
        width = st.slider("Pen width", 6, 40, 18, key="draw_width")
        from streamlit_drawable_canvas import st_canvas  # needs a running Streamlit

        canvas = st_canvas(
            stroke_width=width,
            stroke_color="#FFFFFF",
            background_color="#000000",
            height=280,
            width=280,
            drawing_mode="freedraw",
            return_image_data=True,
            key="canvas",
        )
        # Clearing happens in the browser, at once: a server-side Clear (a new canvas, or a new
        # initial drawing) arrives a round trip later and lost strokes begun in between.
        st.caption("Clear with the bin icon above the canvas; the arrows undo and redo strokes.")

    reading = explore.read_drawing(cm.model if cm else None, canvas.image_data)
    # Each column keeps the same elements from one drawing to the next (a stroke or a clear
    # changes their content, not which elements there are): the browser updates them in place
    # instead of building them again, which decided the answer time with ten learners on one
    # machine (BENCHMARKS.md, load test).
    with mid:
        if reading.problem:
            st.info(reading.problem)
        elif reading.probs is None:
            st.caption("Here the network's answer appears once there is a model.")
        else:
            st.markdown(
                f"<div style='font-size:7rem;line-height:1;font-weight:700'>{reading.digit}</div>"
                f"\n\nconfidence **{reading.confidence:.1%}**",
                unsafe_allow_html=True,
            )
        if cm is not None:
            st.vega_lite_chart(
                explore.probability_bars(reading.probs),
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
    key = ((cm.name, id(cm.model)) if cm else None, who, store.count_drawings(who))
    if ss.get("draw_saved_score", (None,))[0] != key:
        images, labels = store.load_drawings(learner=who)  # (n, 28, 28) float32, (n,)
        score = explore.accuracy_on(cm.model, images, labels) if cm and len(labels) else None
        ss["draw_saved_score"] = (key, len(labels), score)
    _, n_saved, acc = ss["draw_saved_score"]
    whose = "your" if who else "the room's"
    shown = learner.md(cm.name) if cm else ""
    with c3:
        if n_saved == 0:
            st.caption("Saved drawings show how the model does on yours.")
        elif cm is None:
            st.markdown(f"{n_saved} saved drawings; no model to score them yet.")
        else:
            st.markdown(
                f"**{shown}** reads **{acc:.0%}** of {whose} {n_saved} saved drawings right "
                f"(MNIST test set: {cm.test_accuracy:.1%})."
                if cm.test_accuracy is not None
                else f"**{shown}** reads **{acc:.0%}** of {whose} {n_saved} saved drawings right."
            )


drawing()
