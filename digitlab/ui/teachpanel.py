""" "Teach it your handwriting" (Draw and Train pages): a teach job on the learner's saved
drawings (digitlab.teach), live progress with Stop, then before and after."""

from __future__ import annotations

import numpy as np
import streamlit as st

from digitlab import store
from digitlab.models import ModelConfig
from digitlab.teach import TeachConfig, before_after_rows, teach
from digitlab.training import TrainConfig
from digitlab.ui import jobpanel, state

# Two augmented epochs of 20,000 MNIST digits plus the drawings (a quarter of the examples):
# about Quick-train's cost.
APP_TRAIN = TrainConfig(epochs=2, augment=True, validation_fraction=0.0)
APP_MIX = TeachConfig(mnist_digits=20_000)


def my_drawings() -> tuple[np.ndarray, np.ndarray]:
    """This learner's saved drawings, oldest first (the held-out split counts in saved order).

    The store lists them newest first."""
    learner = st.session_state.get("learner")
    images, labels = store.load_drawings(learner=learner) if learner else store.load_drawings()
    return images[::-1], labels[::-1]


def teach_work(digits, images, labels, base: state.CurrentModel | None):
    """The job's work: teach(...) with this page's settings, on a copy of the base model."""
    arch = "cnn" if base is not None and base.arch.upper() == "CNN" else "mlp"

    def work(on_event, stop):
        return teach(
            digits,
            images,
            labels,
            model=base.model if base is not None else None,
            model_config=ModelConfig(arch=arch),
            train_config=APP_TRAIN,
            teach_config=APP_MIX,
            on_event=on_event,
            stop=stop,
        )

    return work


def render(digits, *, key: str) -> None:
    """The panel; `key` keeps its widgets apart on each page."""
    with st.container(border=True):
        st.subheader("Teach it your handwriting")
        images, labels = my_drawings()
        base = state.reading_model()
        st.caption(
            f"Fine-tunes a copy of {base.name if base else 'a new tutorial network'} on MNIST "
            f"and your {len(labels)} saved drawings, which make up a quarter of what it sees, so "
            f"that it does not forget MNIST. {APP_MIX.rule()}"
        )
        _panel(digits, images, labels, base, key)


@st.fragment(run_every=1.0)
def _live(key: str) -> None:
    job = st.session_state["teach_job"]
    jobpanel.heartbeat()
    jobpanel.show_progress(job, stop_key=f"{key}_stop")
    if job.progress.finished:
        st.rerun()


def _panel(digits, images, labels, base, key: str) -> None:
    job = st.session_state.get("teach_job")
    if job is not None and not job.progress.finished:
        _live(key)
        return
    if job is not None:
        jobpanel.show_outcome(job)
        result = job.progress.result
        if result is not None:
            st.markdown(
                f"Taught on {result.n_trained_on} drawings in {result.seconds:.0f} s"
                f"{' (stopped early)' if result.stopped else ''}; it is now your current model."
            )
            st.dataframe(before_after_rows(result), hide_index=True, key=f"{key}_table")
    if st.button(
        "Teach it your handwriting",
        key=f"{key}_start",
        disabled=len(labels) < 2,
        help="Save at least two labelled drawings first." if len(labels) < 2 else None,
    ):
        jobpanel.submit(
            "teach_job",
            teach_work(digits, images, labels, base),
            kind="teach",
            label=f"teaching {len(labels)} drawings",
        )
        st.rerun()
