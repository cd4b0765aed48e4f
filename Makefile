# The two commands of the README. Each one installs what it needs first (scripts/setup.sh).
.PHONY: app test lint setup

setup:
	@bash scripts/setup.sh

app: setup
	.venv/bin/streamlit run streamlit_app.py

test: setup
	@bash scripts/ensure_chromium.sh
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -n 2 --dist loadfile  # two workers; a file's tests stay together, in order

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
