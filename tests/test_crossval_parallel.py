"""ProcessExecutor: folds in worker processes give SerialExecutor's results and live events."""

from collections import Counter

import pytest

from digitlab.crossval import ProcessExecutor, SerialExecutor, cross_validate
from digitlab.models import ModelConfig

SMALL = ModelConfig(hidden_units=64, jit_compile=False)  # no XLA compile: a quicker test


def event_keys(events):
    """What happened, per fold, regardless of how two folds' events interleave in time."""
    return Counter((e["type"], e.get("fold"), e.get("epoch"), e.get("batch")) for e in events)


@pytest.mark.timeout(300)  # ~20 s on an idle 2-core machine; two TensorFlow start-ups
def test_process_executor_matches_serial(tiny_digits):
    x, y = tiny_digits.x_train, tiny_digits.y_train  # (600, 28, 28) uint8, (600,)
    kwargs = dict(model_config=SMALL, n_splits=2, epochs=2, batch_size=64, seed=3)
    serial_events, parallel_events = [], []
    serial = cross_validate(
        x, y, executor=SerialExecutor(), on_event=serial_events.append, **kwargs
    )
    parallel = cross_validate(
        x, y, executor=ProcessExecutor(2), on_event=parallel_events.append, **kwargs
    )

    assert parallel.workers == 2 and serial.workers == 1
    s, p = serial.to_dict(), parallel.to_dict()
    assert s.keys() == p.keys()
    assert {
        k: v for k, v in s.items() if k not in ("folds", "seconds", "workers", "mean", "std")
    } == {k: v for k, v in p.items() if k not in ("folds", "seconds", "workers", "mean", "std")}
    for fs, fp in zip(serial.folds, parallel.folds, strict=True):
        assert (fp.fold, fp.n_train, fp.n_test, fp.stopped) == (
            fs.fold,
            fs.n_train,
            fs.n_test,
            False,
        )
        assert {k: len(v) for k, v in fp.history.items()} == {
            k: len(v) for k, v in fs.history.items()
        }
        # same split, same seed: the same network up to float rounding across processes
        assert fp.accuracy == pytest.approx(fs.accuracy, abs=0.03)

    # Live progress reached the caller: every event the serial run sent, from both folds.
    assert event_keys(parallel_events) == event_keys(serial_events)
    assert parallel_events[0]["type"] == "start"
    assert {e["fold"] for e in parallel_events if e["type"] == "batch"} == {1, 2}
    assert all(not e["type"].startswith("_") for e in parallel_events)
