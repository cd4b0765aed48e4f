"""`python -m digitlab`: see digitlab.cli. Guarded: worker processes re-run it as __mp_main__."""

if __name__ == "__main__":
    import sys

    from digitlab.cli import main

    sys.exit(main())
