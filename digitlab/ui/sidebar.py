"""The sidebar every page shows: the data source with counts, the current model, running jobs."""

from __future__ import annotations

import streamlit as st

from digitlab.data import Digits
from digitlab.ui import jobpanel, learner, state


def render(digits: Digits) -> None:
    with st.sidebar:
        learner.sidebar_box()
        st.subheader("Data")
        kind = {"full": "Full MNIST", "subset": "Offline subset"}.get(digits.kind, "Custom slice")
        st.markdown(f"**{kind}**: {len(digits.x_train):,} train · {len(digits.x_test):,} test")
        st.caption(digits.source)
        st.subheader("Current model")
        model_now = state.current()
        if model_now is None:
            st.markdown("none yet: train one, or load one on the Train page")
            server = state.default_reading()  # the room has no model: the server's default reads
            if server is not None:
                st.caption(
                    "Until then the Draw page reads with the server's default model: "
                    f"{server.describe()}."
                )
        else:
            acc = (
                f"{model_now.test_accuracy:.4f}"
                if model_now.test_accuracy is not None
                else "not measured"
            )
            st.markdown(
                f"**{learner.md(model_now.name)}** ({model_now.origin})  \ntest accuracy **{acc}**"
            )
            st.caption(model_now.description)
        engine_line()
        # A timer only while this session has a run going: every timed rerun competes with the
        # reruns that answer drawings, and a widget change that lands during one can be lost.
        st.fragment(_jobs, run_every=3 if jobpanel.my_jobs() else None)()


def _jobs() -> None:
    """Heartbeats for this session's jobs on every page, and a one-line status of each."""
    jobpanel.heartbeat()
    active = jobpanel.my_jobs()
    if active:
        st.subheader("Running")
        for job in active:
            if job.progress.status == "queued":
                st.caption(f"{job.label}: waiting, number {job.progress.queue_position} in line")
            else:
                st.caption(f"{job.label}: {job.progress.fraction:.0%}")
    if jobpanel.absorb_finished():
        st.rerun()  # a run ended while watching another page: show its model here now


def engine_line() -> None:
    """Where heavy work runs, or the one sentence that says why it cannot (Data and Draw go on)."""
    from digitlab import engine

    info = engine.status()
    if info.get("error"):
        st.warning(
            info["error"] + " Training and cross-validation wait for it; Data and Draw work."
        )
    elif info["connected"]:
        st.caption(f"Engine: Ray, {info['address']}, {info['nodes']} node(s), {info['cpus']} CPUs")
    else:
        st.caption(f"Engine: Ray, starting ({info['address']}) ...")
