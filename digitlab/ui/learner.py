"""Who is using this session: the learner's name (kept in the URL as ?learner=NAME), the room's
password gate, the instructor's unlock, and names shown as exactly their characters.

Environment:
    DIGITLAB_ROOM_PASSWORD        set: nobody gets past the first page without it
    DIGITLAB_INSTRUCTOR_PASSWORD  set: unlocks the instructor's controls on the Room page
"""

from __future__ import annotations

import hmac
import os
import re

import streamlit as st

from digitlab import store

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#!<>|~:$&])|^([-+=])")


def md(text) -> str:
    """Text for st.markdown that shows as exactly its characters: every markup character escaped
    (and a leading '-', '+' or '=' that would start a list or a heading).

    '**bold**[link](javascript:alert(1))' stays those characters; it is never bold, nor a link."""
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), " ".join(str(text).splitlines()))


def name() -> str | None:
    """This session's learner, or None (then the session works as the room)."""
    return st.session_state.get("learner")


def sync() -> None:
    """Take ?learner= from the URL when it names someone else; keep the session's in the URL."""
    ss = st.session_state
    wanted = st.query_params.get("learner")
    ss.setdefault("learner", None)
    if wanted and wanted != ss["learner"] and wanted != ss.get("learner_refused"):
        try:  # a name in the URL (a link, a reload) is who this session is
            ss["learner"] = store.check_learner(wanted)
        except store.StoreError as e:
            ss["learner_error"], ss["learner_refused"] = str(e), wanted
    if not ss.get("learner_error"):
        # The box shows this session's learner on every run. Set only once, it came back empty
        # after a page switch (the sidebar's widget is made anew for each page), and the next
        # rerun sent that empty box back as a change, which made the learner the room: ten
        # browsers opening ?learner=... and then the Draw page lost 5 of 10 learners that way.
        ss["learner_box"] = ss["learner"] or ""
    if ss["learner"] and wanted != ss["learner"]:
        st.query_params["learner"] = ss["learner"]  # a page switch clears it: put it back


def _changed() -> None:
    ss = st.session_state
    typed = ss.get("learner_box", "")
    ss.pop("learner_error", None)
    if not typed.strip():
        ss["learner"] = None
        st.query_params.pop("learner", None)
        return
    try:
        ss["learner"] = store.add_learner(typed)
    except store.StoreError as e:
        ss["learner_error"] = str(e)
        return
    ss["learner_box"] = ss["learner"]
    st.query_params["learner"] = ss["learner"]
    ss["draw_autoload_tried"] = False  # a new learner: the Draw page looks for their model


def sidebar_box() -> None:
    """The name box at the top of the sidebar."""
    st.text_input(
        "Your name",
        key="learner_box",
        on_change=_changed,
        max_chars=store.LEARNER_MAX,
        placeholder="type your name, then Enter",
        help="Your models, runs and drawings are kept under this name. The link in the "
        "address bar keeps it.",
    )
    if st.session_state.get("learner_error"):
        st.error(st.session_state["learner_error"])
    elif name() is None:
        st.caption("No name yet: what you save is kept as the room's.")


def _matches(secret: str, typed: str) -> bool:
    return hmac.compare_digest(secret.encode(), typed.encode())


def room_gate() -> None:
    """With DIGITLAB_ROOM_PASSWORD set, stop every page until this session has given it."""
    secret = os.environ.get("DIGITLAB_ROOM_PASSWORD")
    if not secret or st.session_state.get("room_ok"):
        return
    st.title("DigitLab")
    st.write("This room asks for its password.")
    typed = st.text_input("Room password", type="password", key="room_password")
    if typed and _matches(secret, typed):
        st.session_state["room_ok"] = True
        st.rerun()
    if typed:
        st.error("That is not the room's password.")
    st.stop()


def instructor_enabled() -> bool:
    return bool(os.environ.get("DIGITLAB_INSTRUCTOR_PASSWORD"))


def is_instructor() -> bool:
    return instructor_enabled() and bool(st.session_state.get("instructor_ok"))


def instructor_unlock() -> bool:
    """A password box (once per session) that unlocks the instructor's controls."""
    if not instructor_enabled():
        return False
    if is_instructor():
        return True
    typed = st.text_input("Instructor password", type="password", key="instructor_password")
    if typed and _matches(os.environ["DIGITLAB_INSTRUCTOR_PASSWORD"], typed):
        st.session_state["instructor_ok"] = True
        st.rerun()
    if typed:
        st.error("That is not the instructor's password.")
    return False
