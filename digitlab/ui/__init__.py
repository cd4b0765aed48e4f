"""The only streamlit-aware helpers shared by pages: sidebar, job panel, model panel, state."""

import pandas  # noqa: F401 - imported once here, before page and job threads: two threads
import plotly.graph_objects  # noqa: F401 - importing pandas at once met it half-initialised

from digitlab.ui import keras_guard

keras_guard.install()  # before any page runs: background training must survive script reruns
