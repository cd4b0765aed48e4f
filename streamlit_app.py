"""DigitLab's entry point: `streamlit run streamlit_app.py` (the app: digitlab/ui/app.py).

Streamlit runs this file as "__main__"; the guard keeps anything that imports it (a process that
runs its parent's main script again) from starting the app.
"""

if __name__ == "__main__":
    from digitlab.ui.app import main

    main()
