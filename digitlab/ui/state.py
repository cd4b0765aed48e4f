"""Session and server state: the shared dataset (one copy per server), the current model, jobs.

Environment:
    DIGITLAB_MNIST   an mnist.npz or IDX folder (else the Keras cache, else the offline subset)
    DIGITLAB_LIMIT   n: use only the first n train and first n test digits (tests, quick demos)
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

import streamlit as st

from digitlab import models
from digitlab.data import DataError, Digits, load_mnist

# Session-state keys and their defaults, set once per session by init() (the entry point).
DEFAULTS: dict[str, Any] = {
    "current_model": None,  # CurrentModel | None
    "train_job": None,  # digitlab.jobs.Job of the last training run
    "cv_job": None,  # Job of the last cross-validation
    "quick_job": None,  # Job of the Draw page's quick training
    "teach_job": None,  # Job teaching a model the learner's drawings (digitlab.teach)
    "absorbed_jobs": (),  # ids of finished jobs whose model became the current model
    "cv_view": None,  # {"fresh": CVResult, "reused": CVResult | None} on show
    "sample_seed": 0,  # Data page: which random sample
}


def init() -> None:
    ss = st.session_state
    ss.setdefault("session_id", uuid.uuid4().hex)  # owner of this session's jobs
    for key, value in DEFAULTS.items():
        ss.setdefault(key, value)


def data_limit() -> int | None:
    raw = os.environ.get("DIGITLAB_LIMIT", "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        raise DataError(f"DIGITLAB_LIMIT={raw!r} is not a whole number of digits.") from None
    if n < 10:
        raise DataError(f"DIGITLAB_LIMIT={n} is too small; use at least 10 digits.")
    return n


@st.cache_resource(show_spinner=False)  # loaded at the server's start (streamlit_app.py's lifespan)
def _load(path: str | None, offline: str | None, limit: int | None) -> Digits:
    digits = load_mnist(path)  # arguments are the cache key: change the env, get a new copy
    return digits.take(limit) if limit else digits


def load_digits() -> Digits:
    """The server's one dataset (loaded once); DataError when it cannot be."""
    return _load(
        os.environ.get("DIGITLAB_MNIST") or None, os.environ.get("DIGITLAB_OFFLINE"), data_limit()
    )


DATA_ERROR_SAID = "data_error_said"  # session_state: this run has said why the data is missing


def digits() -> Digits:
    """The server's one dataset; a wrong DIGITLAB_MNIST stops the page with one sentence, said
    once per run (the page asks first, then the sidebar drawn after it)."""
    try:
        return load_digits()
    except DataError as e:
        if not st.session_state.get(DATA_ERROR_SAID):
            st.session_state[DATA_ERROR_SAID] = True
            st.error(f"The dataset could not be loaded: {e}")
        st.stop()


@dataclass
class CurrentModel:
    """The model this session draws with and evaluates; any source."""

    model: Any
    name: str
    description: str
    test_accuracy: float | None = None
    origin: str = "trained here"  # "trained here", "saved", "uploaded"
    saved_as: str | None = None

    @property
    def arch(self) -> str:
        """ "mlp", "cnn" or "model" (another architecture), read from the network's layers."""
        from digitlab.models import arch_of

        return arch_of(self.model)


def current() -> CurrentModel | None:
    return st.session_state.get("current_model")


@st.cache_resource(show_spinner=False)
def _server_default(source: str, n_train: int):
    from digitlab import work
    from digitlab.teach import ServerDefault

    cnn = os.environ.get("DIGITLAB_DEFAULT_CNN", "1").strip() != "0"  # README: settings
    return ServerDefault(digits(), train=work.train_on_engine, cnn=cnn).start(default=False)


SERVER_PREPARED = "server_prepared"  # session_state: this session's first run prepared the server


def default_reading():
    """The server's default (teach.ServerDefault) when it reads drawings now, for a learner with
    no model: a model ready, and no room model to load instead. On a session's first run it
    starts nothing: that run's page comes first (ui.app.main prepares the server after it)."""
    if not st.session_state.get(SERVER_PREPARED):
        return None
    server = prepare_default()  # cached: the one the server made
    return server if server is not None and server.model is not None else None


def server_default(*, train_default: bool = True):
    """The server's default model (teach.ServerDefault): one per server and dataset, made in a
    background thread: its quick first pass at the first call, and the default model proper, on
    the engine, at the first call with train_default (a page that reads with it)."""
    d = digits()
    server = _server_default(d.source, len(d.x_train))
    if train_default:
        server.want_default()
    return server


def once_per_session(key: str) -> bool:
    """True at this session's first call with this key, then False."""
    ss = st.session_state
    if ss.get(key):
        return False
    ss[key] = True
    return True


def prepare_default():
    """When the room has no model for learners to fall back to, make the server's quick first
    pass now (about a second, no TensorFlow), so a learner's first drawing is read without
    waiting (issue 15); the default model proper waits until a page reads with it, unless an
    earlier start kept it (teach.ServerDefault.start). Returns that
    server default (teach.ServerDefault), or None when the room has a model. Called at the
    server's start (no session) and at each session's first run (cached: the same one)."""
    from digitlab import store

    if store.room_model() is None:
        return server_default(train_default=False)
    return None


def reading_model(*, drawing: bool = True, wait_s: float = 0.0) -> CurrentModel | None:
    """The model that reads drawings: this session's current model, else the server's default
    one once it is ready, else None. drawing=False (a panel that only names it): the default
    model proper is not started for it. wait_s: a drawing to read is here, so wait up to this
    long for the server's first pass (a fresh server's first seconds) rather than not read it."""
    model_now = current()
    if model_now is not None:
        return model_now
    server = server_default(train_default=drawing)
    if wait_s:
        server.wait_first(wait_s)
    model = server.model
    if model is None:
        return None
    return CurrentModel(
        model=model,
        name="the server's default model",
        description=server.describe(),
        test_accuracy=server.test_accuracy,
        origin="server default",
    )


def set_current(model, **info) -> CurrentModel:
    model_now = CurrentModel(model=model, **info)
    st.session_state["current_model"] = model_now
    return model_now


def set_current_saved(model, entry) -> CurrentModel:
    """Make a model loaded from the store (store.load_model) the current one."""
    return set_current(
        model,
        name=entry.name,
        description=entry.meta.get("description") or models.describe_model(model),
        test_accuracy=entry.meta.get("test_accuracy"),
        origin="saved",
        saved_as=entry.name,
    )


@st.cache_resource(show_spinner=False)
def mean_images(source: str, part: str):
    """(10, 28, 28) mean image per digit of one split; computed once per server."""
    from digitlab import explore

    x, y = explore.split(digits(), part)
    return explore.mean_images(x, y)
