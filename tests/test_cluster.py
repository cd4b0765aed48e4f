"""A real external Ray cluster (`ray start --head` on loopback, token auth): the CLI and the app's
job API run their work on it, and a driver without the cluster's token is refused."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A one-node Ray cluster in its own process group, stopped by that group's id (never
    `ray stop`, which ends every Ray on the machine). Yields (address, environment)."""
    port = free_port()
    env = dict(
        os.environ,
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),  # this cluster's own token
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",  # every service on 127.0.0.1
        RAY_USAGE_STATS_ENABLED="0",
        TF_CPP_MIN_LOG_LEVEL="3",
        DIGITLAB_OFFLINE="1",
    )
    env.pop("DIGITLAB_MNIST", None)
    log = tmp_path_factory.mktemp("ray") / "ray-start.log"
    with open(log, "w") as out:
        head = subprocess.Popen(
            [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
             "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats", "--block"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # the head's GCS accepts connections
            assert head.poll() is None, log.read_text()[-2000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "ray start --head did not come up"
                time.sleep(0.5)
        yield address, env
    finally:
        pgid = head.pid
        os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(5)
        # Ray's services outlive a SIGTERM for a while: the group goes, whatever is left of it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        head.wait(10)


def run_py(code: str, env: dict, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def head_node(cluster) -> str:
    """The cluster's one node id, as a plain Ray driver on it sees itself (asked once)."""
    address, env = cluster
    proc = run_py(
        f"""
        import ray
        ray.init(address={address!r}, log_to_driver=False)
        print(ray.get_runtime_context().get_node_id())
        """,
        env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def test_the_cli_and_the_apps_jobs_run_on_the_cluster(cluster, head_node, tmp_path):
    """One driver on the cluster, as a server or a CLI session is: `kfold --json` (the CLI's
    main), then a training job and a 2-fold k-fold through the API the pages use (JobManager +
    work). One driver, so the cluster's workers import TensorFlow once for all three (a worker
    belongs to the driver that started it)."""
    address, env = cluster
    proc = run_py(
        """
        import contextlib, io, json
        from digitlab import cli, engine, work
        from digitlab.data import offline_subset
        from digitlab.jobs import JobManager
        from digitlab.models import ModelConfig
        from digitlab.training import TrainConfig

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main(["kfold", "--folds", "2", "--epochs", "1", "--limit", "400",
                             "--hidden-units", "32", "--json"])
        kfold = json.loads(out.getvalue().strip().splitlines()[-1])

        digits = offline_subset().take(400, 100)
        small = ModelConfig(hidden_units=32)
        jm = JobManager()
        train = jm.submit(work.training_work(digits, model_config=small,
                          train_config=TrainConfig(epochs=2)), kind="train", watched=False)
        cv = jm.submit(work.crossval_work(digits.x_train, digits.y_train, model_config=small,
                       n_splits=2, epochs=1, save=False), kind="cv", watched=False)
        assert train.wait(300) and cv.wait(300)
        print(json.dumps({
            "kfold": [code, [[f["fold"], f["node"]] for f in kfold["folds"]]],
            "address": engine.status()["address"],
            "max_jobs": jm.max_jobs,
            "train": [train.progress.status, train.progress.error,
                      len(train.progress.of_type("epoch")), train.progress.result.model is not None,
                      [w["node"] for w in train.progress.workers]],
            "cv": [cv.progress.status, cv.progress.error,
                   [f.node for f in cv.progress.result["fresh"].folds]],
        }))
        """,
        dict(env, DIGITLAB_RAY_ADDRESS=address, DIGITLAB_HOME=str(tmp_path / "home")),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # the CLI's folds ran on the cluster's node, not on a Ray of its own
    assert out["kfold"] == [0, [[1, head_node], [2, head_node]]]
    assert out["address"] == address
    assert out["max_jobs"] == 1  # half the cluster's 2 CPUs
    assert out["train"] == ["done", None, 2, True, [head_node]]
    assert out["cv"] == ["done", None, [head_node, head_node]]


def test_a_driver_without_the_token_is_refused_in_one_line(cluster, tmp_path):
    address, env = cluster
    proc = subprocess.run(
        [sys.executable, "-m", "digitlab", "train", "--limit", "100", "--epochs", "1"],
        env=dict(env, DIGITLAB_RAY_ADDRESS=address, RAY_AUTH_TOKEN=secrets.token_hex(32),
                 DIGITLAB_HOME=str(tmp_path / "home")),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("digitlab: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert f"Could not join the Ray cluster at {address}" in errors[0]
    assert "token" in errors[0]
