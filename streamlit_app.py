"""DigitLab's entry point: `streamlit run streamlit_app.py` (the app: digitlab/ui/app.py).

Worker processes (multiprocessing's spawn and forkserver) run their parent's main script again
as "__mp_main__" before their work; the guard keeps them from starting the app. Streamlit runs
this file as "__main__".
"""

if __name__ == "__main__":
    from digitlab.ui.app import main

    main()
