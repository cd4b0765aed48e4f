"""Running `python -m digitlab` from tests: offline, a private home, no full MNIST unless asked."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


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


def run_here(*args, env_extra=None, tmp_home=None) -> subprocess.CompletedProcess:
    """The command run in this test process (digitlab.cli.main, in the same environment as
    `run`): what it prints and its exit status, without a new Python that imports TensorFlow
    and starts a Ray of its own (about 10 s of both cores per command). `run` stays for what
    only a process of its own shows: the entry point, the process boundary, a cluster to join."""
    from digitlab import cli

    env = cli_env(tmp_home, env_extra)
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for key in set(os.environ) - set(env):
            mp.delenv(key)
        for key, value in env.items():
            mp.setenv(key, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main([str(a) for a in args])
            except SystemExit as e:  # argparse's own errors
                code = e.code
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


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
