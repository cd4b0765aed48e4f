"""Shared fixtures: a private DIGITLAB_HOME and small slices of real digits (no mocks)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("DIGITLAB_OFFLINE", "1")  # never wait on a download in tests
# The app's servers (AppTest, e2e) stop at the tutorial's network: the convolutional default's
# training (teach.CNN_EPOCHS) would take the CPU from the tests after it (its chain: test_teach.py)
os.environ.setdefault("DIGITLAB_DEFAULT_CNN", "0")


@pytest.fixture(autouse=True)
def digitlab_home(tmp_path, monkeypatch):
    """Every test gets an empty DIGITLAB_HOME, so nothing touches ~/.digitlab."""
    home = tmp_path / "digitlab-home"
    monkeypatch.setenv("DIGITLAB_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def offline_digits():
    """The 5,000-digit offline MNIST subset (real digits, no network), loaded once."""
    from digitlab.data import offline_subset

    return offline_subset()


@pytest.fixture(scope="session")
def tiny_digits(offline_digits):
    """600 train / 200 test real digits: enough for a model to learn something in a second."""
    return offline_digits.take(600, 200)


@pytest.fixture
def app(monkeypatch, digitlab_home):
    """The app in AppTest on 400 train / 400 test real digits (the offline subset), run once."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DIGITLAB_OFFLINE", "1")
    monkeypatch.setenv("DIGITLAB_LIMIT", "400")
    monkeypatch.delenv("DIGITLAB_MNIST", raising=False)
    entry = Path(__file__).resolve().parent.parent / "streamlit_app.py"
    return AppTest.from_file(str(entry), default_timeout=180).run()
