"""digitlab.teach: the held-out split, the MNIST/drawings mix, fine-tuning a copy, before/after.

The "drawings" are real MNIST digits written by a hand no MNIST model has seen: mirrored left to
right. A model trained on MNIST reads few of them; taught some, it reads the held-out ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from digitlab.models import ModelConfig
from digitlab.teach import (
    TeachConfig,
    TeachError,
    before_after_rows,
    mixed_examples,
    split_drawings,
    teach,
)
from digitlab.training import StopEvent, TrainConfig, train

SMALL = ModelConfig(hidden_units=128, steps_per_execution=4)


@pytest.fixture(scope="module")
def mirrored(offline_digits):
    """300 real digits (not among tiny_digits' 600) mirrored: (n, 28, 28) float32, labels."""
    x = offline_digits.x_train[1000:1300][:, :, ::-1].astype("float32") / 255.0
    return x, offline_digits.y_train[1000:1300].astype("int64")


@pytest.fixture(scope="module")
def base(tiny_digits):
    """An MLP trained on 600 MNIST digits: it reads MNIST, not mirrored digits."""
    return train(
        tiny_digits,
        model_config=SMALL,
        train_config=TrainConfig(epochs=8, batch_size=32, validation_fraction=0.0),
    ).model


def test_split_is_every_fifth_and_stable_as_drawings_are_added():
    trained, held = split_drawings(12)
    assert held.tolist() == [4, 9]  # the 5th and the 10th
    assert sorted([*trained, *held]) == list(range(12))
    for n in range(1, 40):  # a drawing never changes side when more are saved
        t_more, h_more = split_drawings(n + 7)
        assert set(split_drawings(n)[1]) == set(h_more[h_more < n])
        assert set(split_drawings(n)[0]) == set(t_more[t_more < n])
    assert split_drawings(6, every=0)[1].size == 0
    assert "5th, 10th, 15th" in TeachConfig().rule()


def test_the_mix_holds_the_drawing_share(tiny_digits, mirrored):
    x_d, y_d = mirrored[0][:20], mirrored[1][:20]
    x, y = mixed_examples(tiny_digits, x_d, y_d, TeachConfig(drawing_share=0.25), seed=0)
    assert x.dtype == np.uint8 and x.shape[1:] == (28, 28) and len(x) == len(y)
    drawings = len(x) - 600
    assert drawings % 20 == 0 and abs(drawings / len(x) - 0.25) < 0.02
    # MNIST digits are the dataset's own; the drawings come back as their pixels
    np.testing.assert_array_equal(x[:600], tiny_digits.x_train)
    np.testing.assert_allclose(x[600:620] / 255.0, x_d, atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(y[600:620], y_d)
    # a sample of MNIST per epoch when asked, the same for the same seed
    a, _ = mixed_examples(tiny_digits, x_d, y_d, TeachConfig(mnist_digits=300), seed=1)
    b, _ = mixed_examples(tiny_digits, x_d, y_d, TeachConfig(mnist_digits=300), seed=1)
    assert len(a) == 300 + 100 and np.array_equal(a, b)


def test_teaching_reads_the_held_out_drawings_and_keeps_mnist(tiny_digits, mirrored, base):
    x, y = mirrored
    weights = [w.copy() for w in base.get_weights()]
    events = []
    result = teach(
        tiny_digits,
        x,
        y,
        model=base,
        model_config=SMALL,
        train_config=TrainConfig(epochs=6, batch_size=32),
        teach_config=TeachConfig(drawing_share=0.3, mnist_digits=0),
        on_event=events.append,
    )
    kinds = [e["type"] for e in events]
    assert kinds[0] == "before" and kinds[1] == "start" and kinds[-1] == "teach"
    assert kinds.count("epoch") == 6 and "batch" in kinds
    assert all("val_accuracy" in e for e in events if e["type"] == "epoch")  # the held-out ones
    assert result.n_drawings == 300 and result.n_trained_on == 240
    assert result.before.n_held_out == result.after.n_held_out == 60
    # the model passed in is untouched; the taught one is a copy
    assert all(np.array_equal(a, b) for a, b in zip(weights, base.get_weights(), strict=True))
    assert result.model is not base and result.fine_tuned and not result.stopped
    # mirrored digits: read badly before, far better after; MNIST kept
    assert result.before.held_out < 0.6, result.before
    assert result.after.held_out > result.before.held_out + 0.15, (result.before, result.after)
    assert result.after.mnist > result.before.mnist - 0.05, (result.before, result.after)
    assert result.test_accuracy == result.after.mnist  # what the job panel and the store read
    rows = before_after_rows(result)
    assert rows[1]["before"] == round(100 * result.before.held_out, 1)
    assert "60 held-out" in rows[1]["score"]
    assert result.summary()["held_out_rule"].startswith("Every 5th drawing")


def test_a_new_model_when_none_is_given(tiny_digits, mirrored):
    x, y = mirrored
    result = teach(
        tiny_digits,
        x[:50],
        y[:50],
        model_config=SMALL,
        train_config=TrainConfig(epochs=2, batch_size=32),
        teach_config=TeachConfig(mnist_digits=0),
    )
    assert result.before.mnist is None and result.before.held_out is None
    assert not result.fine_tuned and result.after.mnist > 0.5 and result.after.n_held_out == 10
    rows = before_after_rows(result)  # a new network: scores after only, no empty "before"
    assert [list(r) for r in rows] == [["score", "after"]] * 2
    assert rows[0]["after"] == round(100 * result.after.mnist, 1)


def test_stop_ends_it_within_a_batch_and_keeps_the_model(tiny_digits, mirrored, base):
    x, y = mirrored
    stop = StopEvent()
    seen = []

    def on_event(e):
        seen.append(e)
        if e["type"] == "batch":
            stop.set()

    result = teach(
        tiny_digits,
        x,
        y,
        model=base,
        model_config=SMALL,
        train_config=TrainConfig(epochs=5, batch_size=32),
        teach_config=TeachConfig(mnist_digits=0),
        on_event=on_event,
        stop=stop,
    )
    assert result.stopped and len(result.history) == 1
    assert sum(e["type"] == "batch" for e in seen) == 1  # steps_per_execution 4: one call
    assert result.after.mnist is not None and seen[-1]["type"] == "teach"


@pytest.mark.parametrize(
    "images, labels, words",
    [
        (np.zeros((0, 28, 28)), np.zeros(0, int), "no labelled drawings"),
        (np.zeros((3, 28, 28)), np.array([1, 2]), "3 drawings but 2 labels"),
        (np.zeros((3, 20, 20)), np.array([1, 2, 3]), "(n, 28, 28)"),
        (np.zeros((2, 28, 28)), np.array([1, 12]), "digits 0 to 9"),
    ],
)
def test_drawings_that_cannot_teach_say_why(tiny_digits, images, labels, words):
    with pytest.raises(TeachError) as e:
        teach(tiny_digits, images, labels, model_config=SMALL)
    assert words in str(e.value)


def test_a_config_that_cannot_work_says_why():
    with pytest.raises(TeachError, match="Drawing share"):
        TeachConfig(drawing_share=1.0)
    with pytest.raises(TeachError, match="Hold out every"):
        TeachConfig(hold_out_every=1)


def test_the_server_default_reads_at_once_by_a_first_pass_then_by_the_keras_default(
    tmp_path, monkeypatch
):
    """A fresh server: a scikit-learn first pass (no TensorFlow) reads drawings first; then the
    default model, trained by the trainer the server gives it, replaces it and is kept; then the
    convolutional network replaces that, and is kept; a restart reads both back untrained."""
    import dataclasses
    import time

    from digitlab import models
    from digitlab.data import normalise, offline_subset
    from digitlab.models import FirstPass
    from digitlab.teach import (
        CNN_EPOCHS,
        ServerDefault,
        default_model_kept,
        default_model_path,
        default_train_config,
    )
    from digitlab.training import train

    monkeypatch.setenv("DIGITLAB_HOME", str(tmp_path))
    digits = offline_subset().take(1500, 300)
    seen = []

    def trainer(d, *, model_config, train_config, **kwargs):  # the run asked for, 1 epoch of it
        seen.append((len(d.x_train), model_config.arch, train_config.epochs))
        return train(
            d,
            model_config=model_config,
            train_config=dataclasses.replace(train_config, epochs=1),
            **kwargs,
        )

    assert not default_model_kept(digits)  # a fresh server: the app waits for a page to ask
    server = ServerDefault(digits, train=trainer, cnn=True).start(default=False)
    assert server.wait_first(120), server.error  # what a drawing on a fresh server waits for
    assert server.stage == "first" and not models.is_keras(server.model), server.error
    assert server.recheck_s == 1.0
    assert not server.wait(0.5) and seen == []  # the default waits until someone asks for it
    server.want_default()
    deadline = time.monotonic() + 300
    while server.stage != "default" and server.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stage == "default" and models.is_keras(server.model), server.error
    assert not server.finished and "convolutional network" in server.describe()  # one follows
    assert server.recheck_s == 15.0  # pages look less often while it trains
    assert server.wait(300) and server.error is None, server.error
    assert set(server.ready_s) == {"first", "default", "cnn"}
    assert server.ready_s["first"] < server.ready_s["default"] < server.ready_s["cnn"]
    epochs = default_train_config(1500).epochs  # augmented, ~300,000 digits seen
    assert seen == [(1500, "mlp", epochs), (1500, "cnn", CNN_EPOCHS)]  # by the given trainer
    assert server.stage == "cnn" and server.finished and server.recheck_s is None
    assert server.model.get_layer(index=1).__class__.__name__ == "Conv2D"
    assert server.describe() == f"a convolutional network, {CNN_EPOCHS} augmented epochs"
    # kept for the next start, which reads both back unasked and trains nothing
    assert default_model_path(digits).is_file() and default_model_path(digits, "cnn").is_file()
    assert default_model_kept(digits) and default_model_kept(digits, "cnn")
    again = ServerDefault(digits, train=trainer, cnn=True).start(default=False)
    assert again.wait(120) and again.stage == "cnn" and again.error is None
    assert len(seen) == 2

    first = FirstPass(normalise(digits.x_train), digits.y_train)
    assert not models.is_keras(first)
    probs = models.predict_proba(first, normalise(digits.x_test[:5]))
    assert probs.shape == (5, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert models.accuracy(first, normalise(digits.x_test), digits.y_test) > 0.6  # chance: 0.1
    # a few hundred digits (the app's tests, DIGITLAB_LIMIT=400): small batches, enough steps
    few = FirstPass(normalise(digits.x_train[:400]), digits.y_train[:400])
    assert (
        models.accuracy(few, normalise(digits.x_test), digits.y_test) > 0.55
    )  # batches of 128: 0.41


FORK_SCRIPT = """
import subprocess, threading
from digitlab.data import normalise, offline_subset
from digitlab.models import FirstPass

d = offline_subset()
x, y = normalise(d.x_train), d.y_train
done = threading.Event()

def fit():
    for _ in range(2):
        FirstPass(x, y)
    done.set()

threading.Thread(target=fit, daemon=True).start()
forks = 0
while not done.is_set():  # as Ray's start forks its services beside the server's first pass
    subprocess.run(["true"], preexec_fn=lambda: None)
    forks += 1
print("forks", forks)
"""


def run_python(code: str):
    """code in a fresh interpreter at the repository's root; its exit status must be 0."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONPATH": "."},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def test_a_first_pass_never_hangs_a_fork():
    """Forks (Ray starting its services) beside a first pass's fit: with OpenBLAS's threads at
    work both hung for good (seen on a fresh server); on one BLAS thread neither does."""
    out = run_python(FORK_SCRIPT)
    assert int(out.stdout.split()[-1]) > 10


EXIT_SCRIPT = """
import atexit
from digitlab import teach
from digitlab.data import offline_subset

server = teach.ServerDefault(offline_subset(), train=None)
# registered first, so it runs last: after the exit's wait for the first pass, if any
atexit.register(lambda: print("at exit:", server.stage, server.test_accuracy is not None))
server.start(default=False)
"""


def test_a_process_that_ends_during_the_first_pass_waits_for_it():
    """A process (a short AppTest, a server stopped at once) that ended while the first pass
    computed in its daemon thread aborted now and then ("terminate called without an active
    exception"): its exit now waits for the first pass and its score."""
    out = run_python(EXIT_SCRIPT)
    assert out.stdout.strip().splitlines()[-1] == "at exit: first True"  # made and scored
