"""The only streamlit-aware helpers shared by pages: sidebar, job panel, model panel, state.

pandas and plotly take about half a second to import. They are imported once, by one thread
started here, so that the home page does not wait for them; every other page waits for that
thread (`wait_for_imports`, called by the entry point) before it runs. One importer matters:
two sessions' threads importing pandas at once met it half-initialised.
"""

import threading

from digitlab.ui import keras_guard

keras_guard.install()  # before any page runs: background training must survive script reruns


def _import_heavy() -> None:
    import pandas  # noqa: F401
    import plotly.graph_objects  # noqa: F401
    import plotly.subplots  # noqa: F401


_imports = threading.Thread(target=_import_heavy, daemon=True, name="digitlab-imports")
_imports.start()


def wait_for_imports() -> None:
    """Block until pandas and plotly are imported (pages that draw charts run after this)."""
    _imports.join()
