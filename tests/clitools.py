"""Running `python -m digitlab` from tests: offline, a private home, no full MNIST unless asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def cli_env(tmp_home: Path | None = None, env_extra: dict | None = None) -> dict:
    """The environment a CLI test runs in: offline, quiet, and (tmp_home) its own DIGITLAB_HOME."""
    env = {k: v for k, v in os.environ.items() if k != "DIGITLAB_MNIST"}
    env.update(DIGITLAB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3")
    if tmp_home is not None:
        env.update(KERAS_HOME=str(tmp_home / "keras"), DIGITLAB_HOME=str(tmp_home / "home"))
    env.update(env_extra or {})
    return env


def cli_command(*args) -> list[str]:
    return [sys.executable, "-m", "digitlab", *map(str, args)]


def run(*args, env_extra=None, tmp_home=None) -> subprocess.CompletedProcess:
    """The command to its end: exit status, stdout, stderr."""
    return subprocess.run(
        cli_command(*args),
        capture_output=True,
        text=True,
        env=cli_env(tmp_home, env_extra),
        timeout=400,
    )


def popen(*args, tmp_home) -> subprocess.Popen:
    """The command started, for running several at once."""
    return subprocess.Popen(
        cli_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(tmp_home),
    )


def last_json(out: str) -> dict:
    """The one JSON object --json prints as the last line of stdout."""
    return json.loads(out.strip().splitlines()[-1])
