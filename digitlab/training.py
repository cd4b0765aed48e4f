"""One training run: Keras fit with epoch and batch events, a cooperative stop, test evaluation."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from digitlab.data import Digits, normalise, one_hot
from digitlab.explain import TILE_UNITS
from digitlab.models import ModelConfig, build_model, fresh_model

Event = dict[str, Any]
EventSink = Callable[[Event], None]


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


class TrainingError(ValueError):
    """Training settings that cannot work; one sentence for people."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Defaults are the tutorial's (5 epochs, batch 128) plus a validation split."""

    epochs: int = 5  # tutorial: 5
    batch_size: int = 128  # tutorial: 128
    validation_fraction: float = 0.1  # last 10% of train watched each epoch; 0: none (the tutorial)
    seed: int | None = 0  # keras.utils.set_random_seed: the same run twice gives the same model
    # random shifts, rotations, scale, stroke width (digitlab.augment); an AugmentConfig: those
    # settings (slant, elastic distortion and re-inking are options there)
    augment: Any = False

    def __post_init__(self):
        problems = []
        if not 1 <= self.epochs <= 200:
            problems.append(f"epochs must be 1..200, not {self.epochs}")
        if not 1 <= self.batch_size <= 8192:
            problems.append(f"batch size must be 1..8192, not {self.batch_size}")
        if not 0.0 <= self.validation_fraction < 0.9:
            problems.append(
                f"validation fraction must be in [0, 0.9), not {self.validation_fraction}"
            )
        if problems:
            raise TrainingError("; ".join(problems).capitalize() + ".")


def quick_config(n_train: int) -> TrainConfig:
    """The Draw page's one-click model (and the server's default one): augmented (drawn digits
    are not MNIST's), and enough epochs to see about 300,000 digits: 5 on full MNIST, 10 on the
    4,000-digit offline subset. 5 epochs instead of 2 read pen-drawn digits of writers no model
    saw 0.913 instead of 0.866 (BENCHMARKS.md, issue 15) for 2.5x the training time."""
    return TrainConfig(epochs=max(2, min(10, round(300_000 / max(1, n_train)))), augment=True)


@dataclass
class TrainResult:
    """What a run leaves: the model, its per-epoch history, and its test score."""

    model: Any
    model_config: ModelConfig
    train_config: TrainConfig
    history: list[dict] = field(default_factory=list)  # one dict per finished epoch
    test_loss: float | None = None
    test_accuracy: float | None = None
    stopped: bool = False  # True: stopped by request before the last epoch
    seconds: float = 0.0
    data_source: str = ""
    weights: list | None = None  # the trained weights, when the run happened elsewhere (work.py)

    def summary(self) -> dict:
        """Plain data (no model), for JSON and the store."""
        return {
            "model_config": self.model_config.to_dict(),
            "train_config": asdict(self.train_config),
            "history": self.history,
            "test_loss": self.test_loss,
            "test_accuracy": self.test_accuracy,
            "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
            "data_source": self.data_source,
        }


def make_events_callback(
    on_event: EventSink | None,
    stop: StopFlag | None,
    *,
    epochs: int,
    batches: int,
    tiles: int = 0,
):
    """A Keras callback that reports epochs and batches, and ends the fit on a stop request.

    tiles: also report the first `tiles` units' first-layer weights before the first epoch and
    after each one, {"type": "tiles", "epoch": n, "shape": [28, 28], "tiles": (n, 28, 28)
    float16} (explain.tiles_event), for a live view of what the network learns. 0: none.

    Within one call of several steps, input_pipeline's stop check ends the epoch; this callback
    then stops the fit at its next batch event.
    """
    import keras

    def send_tiles(model, epoch: int) -> None:
        if tiles and on_event is not None:
            from digitlab.explain import ExplainError, tiles_event

            with contextlib.suppress(ExplainError):  # a network whose first layer has no tiles
                on_event({**tiles_event(model, tiles), "epoch": epoch})

    class Events(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            send_tiles(self.model, 0)

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()
            if stop is not None and stop.is_set():
                self.model.stop_training = True

        def on_train_batch_end(self, batch, logs=None):
            # With steps_per_execution k this comes once per k batches; batch is the last one.
            if on_event is not None:
                on_event({"type": "batch", "batch": min(batch + 1, batches), "batches": batches})
            if stop is not None and stop.is_set():
                self.model.stop_training = True  # Keras 3 checks this after every batch

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            row = {"epoch": epoch + 1, "epochs": epochs, "seconds": time.perf_counter() - self.t0}
            row.update({k: float(v) for k, v in logs.items()})
            if stop is not None and stop.is_set() and self.model.stop_training:
                row["partial"] = True  # ended early: its metrics cover the batches run
            self.rows.append(row)
            if on_event is not None:
                on_event({"type": "epoch", **row})
            send_tiles(self.model, epoch + 1)

    cb = Events()
    cb.rows = []
    return cb


def input_pipeline(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    seed: int | None,
    augment: Any = False,
    stopped=None,
    repeat: bool = False,
):
    """The tf.data batches model.fit reads: reshuffled every epoch, maybe augmented, stoppable.

    x: (n, 28, 28) uint8 pixels, scaled to [0, 1] batch by batch (the same float32 `/ 255` as
    data.normalise, bit for bit, without a float copy of the whole set), or float32 already in [0, 1]; y: (n, 10). Shuffling is
    by index (the arrays are held once, batches gathered from them, as Keras's own array
    adapter does). With `stopped` (a boolean tf.Variable, from stop_variable) the stream ends
    at the first batch asked for after it turns True: Keras runs several steps per call
    (ModelConfig.steps_per_execution), and the loop inside that call takes its next batch from
    here, so at most a batch already taken (the one in flight, or under load one more) runs
    after a stop request, even between two callbacks.

    With `repeat` the stream goes on pass after pass (each pass reshuffled) and every batch is
    full: model.fit reads ceil(n / batch_size) batches an epoch (steps_per_epoch), so an epoch
    whose digits do not fill its last batch takes the rest from the next pass. Without it, one
    pass whose last batch is short, whose new shape costs XLA a second compile of the training
    step (BENCHMARKS.md, "Training").
    """
    import tensorflow as tf

    x = np.asarray(x)
    pixels = x.dtype == np.uint8
    xs = tf.constant(x if pixels else x.astype("float32", copy=False))
    ys = tf.constant(np.asarray(y, dtype="float32"))
    n = len(x)

    def gather(i):
        batch = tf.gather(xs, i)
        return (tf.cast(batch, tf.float32) / 255.0 if pixels else batch), tf.gather(ys, i)

    data = tf.data.Dataset.range(n)
    data = data.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        data = data.repeat()
    data = data.batch(batch_size)
    data = data.map(gather)
    if augment:
        from digitlab.augment import AugmentConfig, augment_batches

        config = augment if isinstance(augment, AugmentConfig) else AugmentConfig()
        data = augment_batches(data, seed=seed, config=config)
    data = data.prefetch(2)
    if stopped is not None:
        data = data.take_while(lambda *_: tf.logical_not(stopped))
        options = tf.data.Options()
        # else tf.data adds a prefetch after the (synchronous) take_while, which would take
        # batches ahead of the training loop and read the stop early
        options.experimental_optimization.inject_prefetch = False
        # tf.data's autotuner thread, still at work when fit ends, held up deleting the
        # iterator for seconds (BENCHMARKS.md); the pipeline's sizes are fixed above
        options.autotune.enabled = False
        data = data.with_options(options)
    return data


def augmented_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    seed: int | None,
):
    """A tf.data.Dataset of augmented (x, y) batches, reshuffled every epoch, for model.fit.

    x: (n, 28, 28) float32 in [0, 1]; y: (n, 10) one-hot, passed through unchanged.
    """
    x = np.asarray(x, dtype="float32")
    y = np.asarray(y, dtype="float32")
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"Augmentation needs (n, 28, 28) images, not shape {x.shape}.")
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels.")
    return input_pipeline(x, y, batch_size=batch_size, seed=seed, augment=True)


class StopEvent(threading.Event):
    """A threading.Event that also sets, at once and in the caller's thread, whatever training
    reads it (stop_variable). Jobs hand one of these to their work."""

    def __init__(self):
        super().__init__()
        self._hooks: list[Callable[[], None]] = []

    def set(self) -> None:
        super().set()
        for hook in list(self._hooks):
            hook()


@contextlib.contextmanager
def stop_variable(stop: StopFlag):
    """A boolean tf.Variable that turns True as soon as the flag is set, while the block runs.

    The input pipeline reads it as each batch is taken, inside TensorFlow (a Python check
    there, tf.py_function, slowed every epoch). A StopEvent sets it in set() itself;
    any other flag (a multiprocessing Event in a fold worker) is waited on by a thread, which
    wakes within about a millisecond, a fraction of a batch of 128.
    """
    import tensorflow as tf

    stopped = tf.Variable(False, trainable=False, name="digitlab_stop")

    def hook():
        stopped.assign(True)

    done = threading.Event()
    if isinstance(stop, StopEvent):
        stop._hooks.append(hook)
        if stop.is_set():
            hook()
    else:
        wait = getattr(stop, "wait", None)  # threading and multiprocessing Events have one

        def watch():
            while not done.is_set():
                if stop.is_set() or (wait(0.1) if wait else time.sleep(0.002)):
                    hook()
                    return

        threading.Thread(target=watch, daemon=True, name="digitlab-stop-watch").start()
    try:
        yield stopped
    finally:
        done.set()
        if isinstance(stop, StopEvent):
            stop._hooks.remove(hook)


def fit(
    model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    seed: int | None,
    events,
    stop: StopFlag | None = None,
    augment: Any = False,
    validation_data=None,
) -> None:
    """model.fit on the stoppable pipeline, with the events callback (train() and every fold)."""
    import warnings

    # Always a flag, so a run without one is the same pipeline (same batches for the same seed)
    stop = stop if stop is not None else StopEvent()
    with stop_variable(stop) as stopped, warnings.catch_warnings():
        data = input_pipeline(
            x, y, batch_size=batch_size, seed=seed, augment=augment, stopped=stopped, repeat=True
        )
        # A stop ends the stream (take_while) mid-epoch: Keras reads that as "ran out of data"
        warnings.filterwarnings("ignore", message=".*ran out of data.*")
        model.fit(
            data,
            steps_per_epoch=math.ceil(len(x) / batch_size),
            shuffle=False,  # the pipeline reshuffles every pass
            epochs=epochs,
            validation_data=validation_data,
            validation_batch_size=(
                even_batch_size(len(validation_data[0])) if validation_data else None
            ),
            callbacks=[events],
            verbose=0,
        )


def run_epochs(
    model, x, y, cfg: TrainConfig, *, validation=None, on_event=None, stop=None, tiles: int = 0
):
    """The epochs of a run (train() and teach.teach()): the "start" event, then fit with the
    events callback; returns the callback, whose .rows are the epochs' metrics.

    x: (n, 28, 28) uint8 (or float32 in [0, 1]); y: (n, 10) one-hot; validation: (x, y) or None.
    """
    batches = math.ceil(len(x) / cfg.batch_size)
    n_val = 0 if validation is None else len(validation[0])
    if on_event:
        on_event(
            {
                "type": "start",
                "epochs": cfg.epochs,
                "batches": batches,
                "n_train": len(x),
                "n_val": n_val,
            }
        )
    events = make_events_callback(on_event, stop, epochs=cfg.epochs, batches=batches, tiles=tiles)
    fit(
        model,
        x,
        y,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        events=events,
        stop=stop,
        augment=cfg.augment,
        validation_data=validation,
    )
    return events


def train(
    digits: Digits,
    *,
    model_config: ModelConfig = ModelConfig(),
    train_config: TrainConfig = TrainConfig(),
    on_event: EventSink | None = None,
    stop: StopFlag | None = None,
    model=None,
) -> TrainResult:
    """Train on digits.x_train (holding out the last validation_fraction), then test.

    Events: {"type": "start"}, {"type": "batch", ...}, {"type": "epoch", epoch, loss, accuracy,
    val_loss, val_accuracy, seconds}, {"type": "tiles", epoch, shape, tiles} (before the first
    epoch and after each), {"type": "test", test_loss, test_accuracy}. A stop request
    ends the run after the current batch; the model and the history so far are kept.
    """
    t_start = time.perf_counter()
    cfg = train_config
    x = digits.x_train  # (n, 28, 28) uint8: the input pipeline scales each batch
    y = one_hot(digits.y_train)  # (n, 10)
    n_val = int(round(len(x) * cfg.validation_fraction))
    if len(x) - n_val < 1:
        raise TrainingError(f"Only {len(x)} training digits: too few to train on.")
    validation = (normalise(x[-n_val:]), y[-n_val:]) if n_val else None
    if n_val:
        x, y = x[:-n_val], y[:-n_val]

    if model is None:
        model = build_model(model_config, seed=cfg.seed)
    elif cfg.seed is not None:
        import keras

        keras.utils.set_random_seed(cfg.seed)
    events = run_epochs(
        model, x, y, cfg, validation=validation, on_event=on_event, stop=stop, tiles=TILE_UNITS
    )
    result = TrainResult(
        model=model,
        model_config=model_config,
        train_config=cfg,
        history=events.rows,
        stopped=bool(
            stop is not None
            and stop.is_set()
            and (len(events.rows) < cfg.epochs or events.rows[-1].get("partial"))
        ),
        data_source=digits.source,
    )
    result.test_loss, result.test_accuracy = evaluate(model, digits.x_test, digits.y_test)
    result.seconds = time.perf_counter() - t_start
    if on_event:
        on_event(
            {"type": "test", "test_loss": result.test_loss, "test_accuracy": result.test_accuracy}
        )
    return result


def prepare(
    model_config: ModelConfig = ModelConfig(),
    train_config: TrainConfig = TrainConfig(),
    *,
    n_train: int = 60_000,
) -> None:
    """Compile a network for these settings before a run asks for one: each engine worker does
    this when it is warmed (engine.warm), and the run borrows the network with every variable set
    anew (models.fresh_model), without the XLA compiles its first batches would cost.

    One short fit on random pixels, in the shapes a run on n_train digits has: batches of
    batch_size, steps_per_execution of them per call, validation in even_batch_size batches.
    """
    import keras

    rng = np.random.default_rng(0)
    cfg = train_config
    n_val = int(round(n_train * cfg.validation_fraction))

    def digits(n):
        return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), one_hot(rng.integers(0, 10, n))

    x, y = digits(cfg.batch_size * model_config.steps_per_execution)
    validation = None
    if n_val:
        x_val, y_val = digits(even_batch_size(n_val))
        validation = (normalise(x_val), y_val)
    with fresh_model(model_config, cfg.seed) as model:
        fit(
            model,
            x,
            y,
            epochs=1,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            events=keras.callbacks.Callback(),
            augment=cfg.augment,
            validation_data=validation,
        )


def even_batch_size(n: int, most: int = 2000) -> int:
    """The batch size that splits n items into the fewest batches of at most `most`, all of one
    size where n allows (10,000 -> 2,000; 12,000 -> 2,000; 6,000 -> 2,000; 400 -> 400).

    An XLA-compiled model compiles its step once per batch shape: a short
    last batch costs a second compile. Validation and testing use this size.
    """
    n = max(1, int(n))
    return math.ceil(n / math.ceil(n / most))


def evaluate(model, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(loss, accuracy) of a model on uint8 images: the categorical cross-entropy and accuracy
    that model.evaluate reports, from one uncompiled pass (models.probabilities; scikit-learn's
    log_loss and accuracy_score)."""
    from sklearn.metrics import accuracy_score, log_loss

    from digitlab.models import probabilities

    probs = probabilities(model, normalise(images))
    labels = np.asarray(labels)
    loss = log_loss(labels, probs, labels=np.arange(probs.shape[1]))
    return float(loss), float(accuracy_score(labels, probs.argmax(axis=1)))


def predictions(model, images: np.ndarray) -> np.ndarray:
    """(n,) predicted digits for uint8 images, from one uncompiled pass (models.probabilities)."""
    from digitlab.models import probabilities

    return probabilities(model, normalise(images)).argmax(axis=1)
