"""Room page: the leaderboard of published models, the room's drawings, the room model; and,
for the instructor, the room's controls and every learner's running jobs."""

import time

import streamlit as st

from digitlab import charts, jobs, room, store
from digitlab.models import ModelError
from digitlab.ui import learner, serverload_panel

me = learner.name()
st.title("The room")
st.caption(
    "Models that learners publish, scored on the MNIST test set and on the labelled drawings "
    "of the *other* learners (nobody is scored on their own drawings)."
)

# -- the learner's own: publish -------------------------------------------------------------
with st.container(border=True):
    if me is None:
        st.caption("Give your name in the sidebar to publish a model of yours here.")
    else:
        mine = store.list_models(learner=me)
        if not mine:
            st.caption("You have no saved model yet: save one on the Train page to publish it.")
        else:
            ids = [e.id for e in mine]
            c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
            pick = c1.selectbox(
                "Your models",
                ids,
                format_func=lambda i: (
                    mine[ids.index(i)].label
                    + ("  · published" if mine[ids.index(i)].published else "")
                ),
                key="room_my_pick",
            )
            chosen = mine[ids.index(pick)]
            if c2.button(
                "Take off the board" if chosen.published else "Publish",
                key="room_publish",
                type="secondary" if chosen.published else "primary",
            ):
                store.publish_model(chosen.id, learner=me, published=not chosen.published)
                st.rerun()

# -- the leaderboard ------------------------------------------------------------------------
st.subheader("Leaderboard")
with st.spinner("Scoring the published models on the room's drawings ..."):
    board = room.leaderboard()
if not board:
    st.caption("No published models yet.")
else:
    st.dataframe(
        [
            {
                "learner": r["learner"] or "room",
                "model": r["name"],
                "architecture and settings": r["settings"] or r["arch"],
                "MNIST test accuracy": r["test_accuracy"],
                "other learners' drawings": r["others_accuracy"],
                "drawings scored": r["others_n"],
            }
            for r in board
        ],
        hide_index=True,
        column_config={
            "MNIST test accuracy": st.column_config.NumberColumn(format="%.4f"),
            "other learners' drawings": st.column_config.NumberColumn(format="%.3f"),
        },
        key="room_board",
    )
    st.plotly_chart(charts.leaderboard_figure(board), key="room_board_chart")

# -- the room's drawings and the room model ------------------------------------------------------
c1, c2 = st.columns(2)
with c1:
    by_digit = room.drawings_by_digit()
    total = sum(sum(v) for v in by_digit.values())
    st.metric("Labelled drawings in the room", f"{total:,}")
    if total:
        st.plotly_chart(charts.room_drawings_figure(by_digit), key="room_drawings")
with c2:
    rm = store.room_model()
    if rm is None:
        st.caption("No room model yet: the instructor publishes one.")
    else:
        origin = rm.meta.get("from_learner")
        by = f", by {learner.md(origin)}" if origin and origin != store.ROOM else ""
        st.markdown(
            f"Room model: **{learner.md(rm.title)}**{by} · {rm.meta.get('description') or rm.meta.get('arch', '')}"
        )
        key = (rm.id, store.count_drawings())
        if st.session_state.get("room_confusion", (None,))[0] != key:
            try:
                st.session_state["room_confusion"] = (key, room.room_confusion())
            except (ModelError, OSError) as e:
                st.session_state["room_confusion"] = (key, None)
                st.warning(f"The room model could not be loaded: {e}")
        found = st.session_state["room_confusion"][1]
        if found is not None:
            matrix, acc, n = found
            st.caption(
                f"It reads {acc:.1%} of the room's {n} drawings right." if n else "No drawings yet."
            )
            st.plotly_chart(
                charts.confusion_figure(matrix, title="Room model on the room's drawings"),
                key="room_confusion_chart",
            )

# -- the instructor -------------------------------------------------------------------------
if learner.instructor_enabled():
    st.divider()
    st.subheader("Instructor")
    if learner.instructor_unlock():
        every = store.list_all_models()
        t1, t2, t3, t4, t5 = st.tabs(
            ["Room model", "Hide", "Jobs", "Export and clear", "Server load"]
        )
        with t1:
            if not every:
                st.caption("No saved models in the room yet.")
            else:
                ids = [e.id for e in every]
                pick = st.selectbox(
                    "Model",
                    ids,
                    format_func=lambda i: (
                        f"{every[ids.index(i)].owner}: {every[ids.index(i)].label}"
                    ),
                    key="room_model_pick",
                )
                if st.button("Make it the room model", key="room_model_set", type="primary"):
                    made = store.set_room_model(pick)
                    st.success(f"The room model is now {learner.md(made.title)}.")
        with t2:
            kind = st.radio("Kind", ["model", "drawing"], horizontal=True, key="hide_kind")
            if kind == "model":
                items = {e.id: f"{e.owner}: {e.label}" for e in every}
            else:
                items = {
                    d["id"]: f"{d['learner'] or 'room'}: a {d['label']}, "
                    f"{time.strftime('%H:%M:%S', time.localtime(d['saved_at']))}"
                    for d in store.drawing_table()
                }
            if not items:
                st.caption(f"No {kind}s to hide.")
            else:
                pick = st.selectbox("Item", list(items), format_func=items.get, key="hide_pick")
                if st.button("Hide it", key="hide_item"):
                    store.set_hidden(kind, pick)
                    st.rerun()
        with t3:
            running = jobs.manager().jobs(active=True)
            if not running:
                st.caption("No runs going on this server.")
            for job in running:
                a, b, c = st.columns([2, 4, 1], vertical_alignment="center")
                a.text(job.learner or "(no name)")
                b.text(f"{job.label}: {job.progress.status}, {job.progress.fraction:.0%}")
                if c.button("Stop", key=f"room_stop_{job.id}"):
                    job.stop()
                    st.rerun()
        with t5:
            serverload_panel.render()  # sessions, the job queue, CPU: trouble seen coming
        with t4:
            st.download_button(
                "Export the room (.zip)",
                data=lambda: room.export_zip(board),
                file_name=f"digitlab-room-{time.strftime('%Y%m%d-%H%M')}.zip",
                mime="application/zip",
                key="room_export",
            )
            sure = st.checkbox(
                "Remove every learner's models, runs and drawings (the room model stays)",
                key="clear_sure",
            )
            if st.button("Clear the room", disabled=not sure, key="clear_room"):
                counts = store.clear_room()
                st.success(
                    f"Removed {counts['model']} models, {counts['cv']} runs, "
                    f"{counts['drawing']} drawings and {counts['learner']} learners."
                )
