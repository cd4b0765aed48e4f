"""The only streamlit-aware helpers shared by pages: sidebar, job panel, model panel, state."""

from digitlab.ui import keras_guard

keras_guard.install()  # before any page runs: background training must survive script reruns
