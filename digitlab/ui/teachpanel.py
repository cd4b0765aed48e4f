""" "Teach it your handwriting" (Draw and Train pages): a teach job on the learner's saved
drawings (digitlab.teach), live progress with Stop, then before and after."""

from __future__ import annotations

import numpy as np
import streamlit as st

from digitlab import models, store, work
from digitlab.models import ModelConfig
from digitlab.teach import TeachConfig, before_after_rows
from digitlab.training import TrainConfig
from digitlab.ui import jobpanel, learner, state

# Two augmented epochs of 20,000 MNIST digits plus the drawings (a quarter of the examples):
# about Quick-train's cost.
APP_TRAIN = TrainConfig(epochs=2, augment=True, validation_fraction=0.0)
APP_MIX = TeachConfig(mnist_digits=20_000)


def my_drawings() -> tuple[np.ndarray, np.ndarray]:
    """This learner's saved drawings, oldest first (the held-out split counts in saved order).

    The store lists them newest first."""
    who = learner.name()  # None: the room's own drawings (no name given)
    images, labels = store.load_drawings(learner=who)
    return images[::-1], labels[::-1]


def teach_work(digits, images, labels, base: state.CurrentModel | None):
    """The job's work (work.teach_work, on the engine) with this page's settings."""
    arch = base.arch if base is not None and base.arch in ("mlp", "cnn") else "mlp"
    return work.teach_work(
        digits,
        images,
        labels,
        base_model=base.model if base is not None else None,
        model_config=ModelConfig(arch=arch),
        train_config=APP_TRAIN,
        teach_config=APP_MIX,
    )


def render(digits, *, key: str) -> None:
    """The panel, a fragment of its own (timed while its job runs); `key` keeps its widgets
    apart on each page. Drawings are counted when the button is pressed: a save reruns only the
    drawing part of the Draw page, not this panel."""
    job = st.session_state.get("teach_job")
    timed = job is not None and not job.progress.finished
    st.fragment(_panel, run_every=1.0 if timed else None)(digits, key, timed)


def _panel(digits, key: str, timed: bool) -> None:
    ss = st.session_state
    job = ss.get("teach_job")
    base = state.reading_model(drawing=False)
    if base is not None and not models.is_keras(base.model):  # the server's quick first pass
        base = None  # teaching starts a new tutorial network
    with st.container(border=True):
        st.subheader("Teach it your handwriting")
        what = (
            f"Fine-tunes a copy of {learner.md(base.name)}"
            if base
            else "Trains a new tutorial network (there is no model of yours to start from yet)"
        )
        st.caption(
            f"{what} on MNIST and your saved drawings, which make up a quarter of what it sees, "
            f"so that it does not forget MNIST. {APP_MIX.rule()}"
        )
        if job is not None and not job.progress.finished:
            jobpanel.heartbeat()
            jobpanel.show_progress(job, stop_key=f"{key}_stop")
            return
        if timed:  # it has just finished: the whole page, so the sidebar shows the new model
            st.rerun()
        if job is not None:
            jobpanel.show_outcome(job)
            result = job.progress.result
            if result is not None:
                what = (
                    "fine-tuned"
                    if result.fine_tuned
                    else "a new tutorial network (no score before it, only after), trained"
                )
                st.markdown(
                    f"Last run: {what} on {result.n_trained_on} of {result.n_drawings} drawings "
                    f"in {result.seconds:.0f} s{' (stopped early)' if result.stopped else ''}; "
                    "it is now your current model."
                )
                st.dataframe(before_after_rows(result), hide_index=True, key=f"{key}_table")
        if st.button("Teach it your handwriting", key=f"{key}_start"):
            images, labels = my_drawings()
            if len(labels) < 2:
                st.warning("Save at least two labelled drawings first.")
                return
            jobpanel.submit(
                "teach_job",
                teach_work(digits, images, labels, base),
                kind="teach",
                label=f"teaching {len(labels)} drawings",
            )
            st.rerun()
