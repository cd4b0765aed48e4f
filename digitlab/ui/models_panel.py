"""The current model's actions: save to the store, download the .keras file, load saved or uploaded."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from digitlab import models, store
from digitlab.models import ModelError
from digitlab.ui import learner, state


def save_and_download() -> None:
    model_now = state.current()
    if model_now is None:
        st.caption("No current model yet: train one above, or load one.")
        return
    st.markdown(f"Current model: **{learner.md(model_now.name)}** · {model_now.description}")
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    name = c1.text_input(
        "Save as", value=model_now.saved_as or model_now.name, key=f"save_name_{id(model_now)}"
    )
    if c2.button("Save", key="save_model"):
        try:
            entry = store.save_model(
                model_now.model,
                learner=learner.name(),
                name=name,
                meta=store.model_meta(
                    arch=model_now.arch,
                    description=model_now.description,
                    test_accuracy=model_now.test_accuracy,
                    origin=model_now.origin,
                ),
            )
        except (store.StoreError, OSError) as e:
            st.error(f"Could not save the model: {e}")
        else:
            model_now.saved_as = entry.name
            whose = "yours" if learner.name() else "the room's"
            st.success(f"Saved as {learner.md(entry.title)}, {whose}.")
    c3.download_button(
        "Download .keras",
        data=lambda: models.model_bytes(model_now.model),
        file_name=f"{_file_stem(model_now.saved_as or model_now.name)}.keras",
        mime="application/zip",
        key="download_model",
    )


def load() -> None:
    c1, c2 = st.columns(2)
    with c1:
        saved = store.list_models(learner=learner.name())
        if not saved:
            st.caption("No saved models of yours yet.")
        else:
            ids = [e.id for e in saved]
            pick = st.selectbox(
                "Your saved models (newest first)",
                ids,
                format_func=lambda i: saved[ids.index(i)].label,
                key="load_pick",
            )
            if st.button("Load", key="load_saved"):
                try:
                    with st.spinner("Loading the model ..."):
                        model, entry = store.load_model(pick, learner=learner.name())
                except (ModelError, store.StoreError) as e:
                    st.error(str(e))
                else:
                    state.set_current_saved(model, entry)
                    st.rerun()
    with c2:
        up = st.file_uploader("Upload a .keras model", type=["keras"], key="upload_model")
        if up is not None and st.session_state.get("uploaded_id") != up.file_id:
            st.session_state["uploaded_id"] = up.file_id
            try:
                with st.spinner("Checking the model ..."):
                    model = load_uploaded(up.name, up.getvalue())
            except ModelError as e:
                st.error(learner.md(e))  # it names the file: its characters, never markup
            else:
                from digitlab.data import normalise

                digits = state.digits()
                acc = models.accuracy(model, normalise(digits.x_test), digits.y_test)
                state.set_current(
                    model,
                    name=Path(up.name).stem,
                    description=models.describe_model(model),
                    test_accuracy=acc,
                    origin="uploaded",
                )
                st.rerun()


def load_uploaded(filename: str, data: bytes):
    """An uploaded file -> checked Keras model (safe_mode=True); ModelError in one sentence."""
    return models.from_bytes(data, name=filename)  # the name is display text, never a path


def _file_stem(name: str) -> str:
    try:
        return store.safe_name(name)
    except store.StoreError:
        return "model"
