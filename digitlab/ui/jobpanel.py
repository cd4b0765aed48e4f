"""Job panels for pages: submit with this session as owner, heartbeats, progress, stop, outcome."""

from __future__ import annotations

import streamlit as st

from digitlab import jobs
from digitlab.ui import learner, state


def submit(key: str, work, *, kind: str, label: str) -> jobs.Job:
    """Run work as a background job owned by this session; its handle goes to session_state[key]."""
    job = jobs.manager().submit(
        work, kind=kind, label=label, owner=st.session_state["session_id"], learner=learner.name()
    )
    st.session_state[key] = job
    return job


def my_jobs(*, active: bool = True) -> list[jobs.Job]:
    return jobs.manager().jobs(owner=st.session_state.get("session_id"), active=active)


def heartbeat() -> None:
    """Tell the reaper this session is still here (called by every page's fragments)."""
    for job in my_jobs():
        job.heartbeat()


def show_progress(job: jobs.Job, *, stop_key: str) -> None:
    """Queue position or progress bar with epoch and ETA, and a Stop button."""
    p = job.progress
    if p.status == "queued" and job.stop_event.is_set():
        st.info("Stopping: this run leaves the queue without starting.")
    elif p.status == "queued":
        counts = jobs.manager().counts()
        st.info(
            f"Waiting for a free slot: number {p.queue_position or 1} in the queue "
            f"({counts['running']} run(s) going on this server, at most {jobs.manager().max_jobs} at once)."
        )
    elif p.status == "running":
        if not p.epochs:
            st.progress(0.0, text="Starting TensorFlow and building the model ...")
        else:
            st.progress(min(1.0, p.fraction), text=p.text())
    if not p.finished:
        stopping = job.stop_event.is_set()
        if st.button(
            "Stopping ..." if stopping else "Stop",
            key=stop_key,
            disabled=stopping,
            help="Ends the run within one batch and keeps what it learned so far.",
        ):
            job.stop()
            st.rerun()


def show_outcome(job: jobs.Job) -> None:
    p = job.progress
    if p.status == "failed":
        st.error(p.error or "The run failed.")
    elif p.status == "stopped":
        st.warning(p.note or f"Stopped after {p.elapsed_s:.0f} s; what it learned so far is kept.")


def absorb_finished() -> bool:
    """A finished training run's model becomes this session's current model (once per job)."""
    changed = False
    for key in ("train_job", "quick_job", "teach_job"):
        job = st.session_state.get(key)
        if job is None or not job.progress.finished or job.id in st.session_state["absorbed_jobs"]:
            continue
        st.session_state["absorbed_jobs"] = (*st.session_state["absorbed_jobs"], job.id)
        result = job.progress.result
        if result is None or getattr(result, "model", None) is None:
            continue
        saved = None
        if key == "quick_job":  # the Draw page's quick model is kept so the next visit finds it
            from digitlab import store

            saved = store.save_trained(result, learner=job.learner).name  # a new version
        state.set_current(
            result.model,
            name=saved
            or f"{result.model_config.arch}-{'taught' if key == 'teach_job' else 'run'}-{job.id}",
            description=result.model_config.describe(),
            test_accuracy=result.test_accuracy,
            origin="trained here",
            saved_as=saved,
        )
        changed = True
    return changed
