"""What DigitLab relies on inside Streamlit: each test fails when Streamlit changes under it."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap


def test_streamlit_still_clears_the_keras_session_where_the_guard_replaces_it():
    """ui/keras_guard patches script_runner._clean_problem_modules, a private function that
    calls keras.backend.clear_session() after every script run. If Streamlit renames it or
    stops clearing Keras there, the guard has nothing to guard and this fails."""
    from streamlit.runtime.scriptrunner import script_runner

    from digitlab.ui import keras_guard

    original = script_runner._clean_problem_modules
    if original is not keras_guard._clean_problem_modules_except_keras:
        source = inspect.getsource(original)
        assert "keras" in source and "clear_session" in source, source
    keras_guard.install()
    assert script_runner._clean_problem_modules is keras_guard._clean_problem_modules_except_keras
    assert "clear_session" not in inspect.getsource(script_runner._clean_problem_modules)


def test_importing_the_ui_imports_charts_in_one_background_thread():
    """digitlab.ui starts one thread that imports pandas and plotly; wait_for_imports joins it."""
    code = textwrap.dedent(
        """
        import sys
        import digitlab.ui as ui
        started = ui._imports.ident is not None and ui._imports.name == "digitlab-imports"
        ui.wait_for_imports()
        print(started, "plotly.graph_objects" in sys.modules,
              "pandas" in sys.modules, ui._imports.is_alive())
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    started, plotly, pandas, alive = out.stdout.split()
    assert (started, plotly, pandas, alive) == ("True", "True", "True", "False")
