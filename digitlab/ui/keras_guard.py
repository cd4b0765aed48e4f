"""Keep Streamlit from clearing the Keras session while a background job trains.

After every script run Streamlit calls `keras.backend.clear_session()`
(streamlit/runtime/scriptrunner/script_runner.py, `_clean_problem_modules`). DigitLab trains in
background threads that outlive script runs; clearing the session under a model that is being
traced resets TensorFlow's default graph mid-trace and the job hangs. Models here are built per
job and never rely on the session being cleared, so the Keras part is skipped; matplotlib's
part is kept.
"""

import contextlib
import sys

from streamlit.runtime.scriptrunner import script_runner


def _clean_problem_modules_except_keras() -> None:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        with contextlib.suppress(Exception):  # as Streamlit does: never crash the app over this
            plt.close("all")


def install() -> None:
    if hasattr(script_runner, "_clean_problem_modules"):
        script_runner._clean_problem_modules = _clean_problem_modules_except_keras
