"""DigitLab's entry point: `streamlit run streamlit_app.py` (the app: digitlab/ui/app.py).

Streamlit runs this file as "__main__" for every page view. `streamlit run` also imports it once,
as a module, when the server starts, and finds `app`: an `st.App` whose lifespan starts the
server's own work (the dataset, the default model's first pass, the engine) in a thread, 3 s
after the start, so the first learner finds it done (BENCHMARKS.md, "Ready to draw at once").
The library is imported in that thread, not here: the server listens without waiting for it.
"""

import contextlib
import threading

import streamlit as st


def _start_server() -> None:
    from digitlab.ui.app import start_server

    start_server()


# The server's own work waits this long after its start, so that a page opened at once is served
# first (the first visit then starts that work itself, as it would with no st.App).
QUIET_START_S = 3.0


@contextlib.asynccontextmanager
async def lifespan(_app):
    timer = threading.Timer(QUIET_START_S, _start_server)
    timer.daemon = True
    timer.name = "digitlab-server-start"
    timer.start()
    yield


if __name__ == "__main__":
    from digitlab.ui.app import main

    main()
else:
    app = st.App("streamlit_app.py", lifespan=lifespan)
