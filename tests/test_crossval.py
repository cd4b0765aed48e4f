"""digitlab.crossval: scikit-learn's splits, a fresh model per fold, and the tutorial's leak."""

import os
import threading

import numpy as np
import pytest
from sklearn.model_selection import KFold

from digitlab.crossval import (
    CrossValError,
    CVResult,
    SerialExecutor,
    cross_validate,
    make_tasks,
    run_fold,
)
from digitlab.data import load_mnist
from digitlab.models import ModelConfig

SMALL = ModelConfig(hidden_units=128, jit_compile=False)  # no XLA compile per tiny fold


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    os.environ.setdefault("DIGITLAB_OFFLINE", "1")
    mnist = os.environ.get("DIGITLAB_MNIST")
    if not (mnist and os.path.exists(mnist)):
        os.environ["KERAS_HOME"] = str(tmp_path_factory.mktemp("keras"))
        mnist = None
    return load_mnist(mnist).take(1200, 100)


def test_a_fold_on_a_lent_network_is_a_fold_on_a_new_one(digits):
    """fresh_model lends the network an earlier fold trained, every variable set from a new
    build: the folds score exactly as on networks built for them (with XLA, random dropout
    masks and optimizer state: all that could carry over)."""
    from digitlab import models

    config = ModelConfig(hidden_units=64, dropout=0.3)  # XLA on (the default): compiled steps
    x, y = digits.x_train[:600], digits.y_train[:600]
    tasks = make_tasks(
        600, model_config=config, n_splits=3, epochs=2, batch_size=64, random_state=1, seed=0
    )
    built = []
    for task in tasks:
        models.forget_compiled()  # nothing to lend: a network built for this fold
        built.append(run_fold(task, x, y))
    with models.fresh_model(config, 0) as network:  # the one the last fold trained, lent back
        pass
    lent = [run_fold(task, x, y) for task in tasks]  # each on that network
    with models.fresh_model(config, 0) as again:
        assert again is network  # the same network, lent three times
    for a, b in zip(built, lent, strict=True):
        assert a.history == b.history and (a.accuracy, a.loss) == (b.accuracy, b.loss)
    assert len({f.accuracy for f in lent}) > 1  # folds differ: the check is not on constants


def test_folds_are_sklearns_kfold():
    tasks = make_tasks(
        100, model_config=SMALL, n_splits=5, epochs=1, batch_size=32, random_state=1, seed=0
    )
    reference = KFold(n_splits=5, shuffle=True, random_state=1).split(np.zeros(100))
    for task, (train_ix, test_ix) in zip(tasks, reference, strict=True):
        np.testing.assert_array_equal(task.train_index, train_ix)
        np.testing.assert_array_equal(task.test_index, test_ix)
    assert [t.seed for t in tasks] == [0, 1, 2, 3, 4]  # a different fresh initialisation per fold


def test_fresh_versus_reused_model_shows_the_leak(digits):
    events = []
    kwargs = dict(
        model_config=SMALL, n_splits=3, epochs=4, batch_size=32, executor=SerialExecutor()
    )
    fresh = cross_validate(digits.x_train, digits.y_train, on_event=events.append, **kwargs)
    reused = cross_validate(digits.x_train, digits.y_train, reuse_model=True, **kwargs)

    assert [f.fold for f in fresh.folds] == [1, 2, 3]
    assert all(f.n_train == 800 and f.n_test == 400 for f in fresh.folds)
    assert fresh.mean == pytest.approx(np.mean([f.accuracy for f in fresh.folds]))
    assert fresh.std == pytest.approx(np.std([f.accuracy for f in fresh.folds]))
    for f in fresh.folds:
        assert len(f.history["loss"]) == 4 and len(f.history["val_accuracy"]) == 4
        assert f.accuracy == pytest.approx(f.history["val_accuracy"][-1], abs=1e-6)
    ends = [e for e in events if e["type"] == "fold_end"]
    assert [e["fold"] for e in ends] == [1, 2, 3]
    assert {e["fold"] for e in events if e["type"] == "epoch"} == {1, 2, 3}

    # Fold 1 is the same network on the same digits either way: the same numbers, bit for bit.
    assert reused.folds[0].history == fresh.folds[0].history
    assert reused.folds[0].accuracy == fresh.folds[0].accuracy
    # Folds 2 and 3 of the reused network are tested on digits it already trained on.
    assert min(f.accuracy for f in reused.folds[1:]) > max(f.accuracy for f in fresh.folds)
    assert reused.mean > fresh.mean + 0.03


def test_result_is_plain_data(digits):
    result = cross_validate(
        digits.x_train[:300],
        digits.y_train[:300],
        model_config=SMALL,
        n_splits=2,
        epochs=1,
        batch_size=64,
        executor=SerialExecutor(),
    )
    again = CVResult.from_dict(result.to_dict())
    assert again.mean == result.mean and again.folds[1].history == result.folds[1].history
    assert result.to_dict()["std"] == result.std


def test_stop_ends_early(digits):
    stop = threading.Event()

    def on_event(e):
        if e["type"] == "epoch":
            stop.set()

    result = cross_validate(
        digits.x_train,
        digits.y_train,
        model_config=SMALL,
        n_splits=3,
        epochs=3,
        batch_size=64,
        executor=SerialExecutor(),
        on_event=on_event,
        stop=stop,
    )
    assert result.stopped and len(result.folds) == 1 and result.folds[0].stopped


@pytest.mark.parametrize(
    "n, folds, words",
    [(100, 1, "at least 2 folds"), (5, 6, "only 5"), (100, 0, "at least 2 folds")],
)
def test_settings_that_cannot_work(n, folds, words):
    x, y = np.zeros((n, 28, 28), np.uint8), np.zeros(n, np.uint8)
    with pytest.raises(CrossValError, match=words):
        cross_validate(x, y, n_splits=folds)


def test_a_folds_score_is_its_network_on_the_held_out_digits(digits):
    """The fold's score is its last epoch's validation (no second pass): the same numbers as
    evaluating the trained network on the fold's held-out digits."""
    from digitlab.data import normalise, one_hot
    from digitlab.models import build_model

    x, y = digits.x_train[:600], digits.y_train[:600]
    task = make_tasks(
        600, model_config=SMALL, n_splits=3, epochs=2, batch_size=64, random_state=1, seed=0
    )[0]
    model = build_model(SMALL, seed=0)
    result = run_fold(task, x, y, model=model)
    loss, acc = model.evaluate(
        normalise(x[task.test_index]), one_hot(y[task.test_index]), batch_size=200, verbose=0
    )
    assert result.accuracy == pytest.approx(acc, abs=1e-6)
    assert result.loss == pytest.approx(loss, rel=1e-5)


@pytest.mark.parametrize(
    "n, folds, words",
    [(10, 10, "only 1 digit:"), (50, 5, "only 10 digits"), (100, 5, None), (60000, 10, None)],
)
def test_folds_too_small_to_mean_much_are_named(n, folds, words):
    from digitlab.crossval import small_folds_warning

    warning = small_folds_warning(n, folds)
    if words is None:
        assert warning is None
    else:
        assert words in warning and "mean little" in warning
