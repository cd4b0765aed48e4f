"""The instructor's view of the server's load: sessions, jobs, CPU, memory, and a warning in time."""

from __future__ import annotations

import streamlit as st

from digitlab import serverload


def active_sessions() -> int | None:
    """Browser sessions connected to this server, from Streamlit's runtime; None when unknown."""
    from streamlit import runtime

    if not runtime.exists():
        return None  # AppTest, or a bare script run
    try:  # Streamlit 1.67 has no public accessor; its session manager counts them
        return runtime.get_instance()._session_mgr.num_active_sessions()
    except (AttributeError, RuntimeError):
        return None


def _show() -> None:
    load = serverload.measure(sessions=active_sessions())
    c = st.columns(4)
    c[0].metric(
        "Learners connected",
        "?" if load.sessions is None else f"{load.sessions}",
        help=f"This server holds about {load.capacity} drawing learners "
        f"({serverload.LEARNERS_PER_CORE} per core, {load.cores} cores) with answers within 1 s.",
    )
    c[1].metric(
        "Training jobs",
        f"{load.jobs_running} running",
        f"{load.jobs_queued} waiting",
        delta_color="off",
    )
    busy = "?" if load.machine_busy is None else f"{load.machine_busy:.0%}"
    c[2].metric(
        "CPU busy",
        busy,
        None if load.process_cores is None else f"server {load.process_cores:.1f} cores",
        delta_color="off",
    )
    c[3].metric("Server memory", "?" if load.rss_mb is None else f"{load.rss_mb:,.0f} MB")
    note = serverload.advice(load)
    if note and load.level == "over":
        st.error(note)
    elif note:
        st.warning(note)


def render(*, refresh_s: float | None = 5.0) -> None:
    """The panel, read again every refresh_s seconds (None: once per page run)."""
    st.fragment(_show, run_every=refresh_s)()
