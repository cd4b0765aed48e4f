"""DigitLab's entry point: `streamlit run streamlit_app.py` (the app: digitlab/ui/app.py).

Streamlit runs this file as "__main__" for every page view. `streamlit run` also imports it once,
as a module, when the server starts, and finds `app`: an `st.App` whose lifespan starts the
server's own work (the dataset, the default model's first pass, the engine) in a thread before
anyone visits, so the first learner finds it done (BENCHMARKS.md, "Ready to draw at once"). The
library is imported in that thread, not here: the server listens without waiting for it.
"""

import contextlib
import threading

import streamlit as st


def _start_server() -> None:
    from digitlab.ui.app import start_server

    start_server()


@contextlib.asynccontextmanager
async def lifespan(_app):
    threading.Thread(target=_start_server, daemon=True, name="digitlab-server-start").start()
    yield


if __name__ == "__main__":
    from digitlab.ui.app import main

    main()
else:
    app = st.App("streamlit_app.py", lifespan=lifespan)
