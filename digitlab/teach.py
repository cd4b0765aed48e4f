"""Teach a model the room's handwriting: MNIST mixed with labelled canvas drawings, scored before
and after on MNIST's test set and on drawings the training never saw.

A drawing is (28, 28) float32 in [0, 1], as canvas_to_mnist gives it (and the store keeps it).
`teach` fine-tunes a given model (a copy: the model passed in is left as it was) or trains a new
one on a stream in which the drawings make up a fixed share of every epoch (repeated as often as
needed), the rest MNIST training digits, so MNIST is not forgotten. Before training, the
drawings are split: every HOLD_OUT_EVERY-th one in the order given (saved order: the 5th, 10th,
15th, ...) is held out and never trained on; that split is the same each time and stays the same
as drawings are added. The run is a plain work function (`on_event`, `stop`), so it runs as a
job like any training: the same epoch and batch events, Stop within a batch.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from digitlab.data import Digits, normalise, one_hot
from digitlab.models import ModelConfig, accuracy, build_model
from digitlab.training import (
    EventSink,
    StopFlag,
    TrainConfig,
    TrainingError,
    evaluate,
    run_epochs,
)

# training.train's signature: (digits, *, model_config, train_config, on_event, stop) -> TrainResult
Trainer = Callable[..., Any]

log = logging.getLogger(__name__)

HOLD_OUT_EVERY = 5  # the 5th, 10th, 15th, ... drawing is held out: 20%, the same split each time


class TeachError(TrainingError):
    """Drawings that cannot teach (none, wrong shape, labels that are not digits); one sentence."""


@dataclass(frozen=True)
class TeachConfig:
    """How drawings and MNIST are mixed. Epochs, batch size, seed and augmentation: TrainConfig."""

    drawing_share: float = 0.25  # of every epoch's examples; the rest are MNIST digits
    mnist_digits: int = 30_000  # MNIST training digits per epoch, a seeded sample; 0: all
    hold_out_every: int = HOLD_OUT_EVERY  # 0: train on every drawing, hold none out

    def __post_init__(self):
        problems = []
        if not 0.0 < self.drawing_share < 1.0:
            problems.append(f"drawing share must be in (0, 1), not {self.drawing_share}")
        if self.mnist_digits < 0:
            problems.append(f"MNIST digits must be 0 (all) or more, not {self.mnist_digits}")
        if self.hold_out_every == 1 or self.hold_out_every < 0:
            problems.append(f"hold out every must be 0 or at least 2, not {self.hold_out_every}")
        if problems:
            raise TeachError("; ".join(problems).capitalize() + ".")

    def rule(self) -> str:
        """The held-out split, in words for the page."""
        if not self.hold_out_every:
            return "No drawings are held out: every one is trained on."
        k = self.hold_out_every
        return (
            f"Every {_ordinal(k)} drawing in saved order (the {_ordinal(k)}, {_ordinal(2 * k)}, "
            f"{_ordinal(3 * k)}, ...) is held out: never trained on, only scored."
        )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass
class Scores:
    """One model's scores: MNIST test accuracy, and accuracy on the held-out drawings."""

    mnist: float | None = None  # None: no model yet (a new one is trained)
    held_out: float | None = None  # None: no model, or no drawing held out
    n_held_out: int = 0


@dataclass
class TeachResult:
    """What teaching leaves: the taught model, before and after, and how the drawings were used."""

    model: Any
    model_config: ModelConfig
    train_config: TrainConfig
    teach_config: TeachConfig
    before: Scores
    after: Scores
    n_drawings: int = 0
    n_trained_on: int = 0  # drawings trained on (the rest held out)
    n_examples: int = 0  # examples an epoch: MNIST plus the drawings repeated
    history: list[dict] = field(default_factory=list)
    stopped: bool = False
    seconds: float = 0.0
    data_source: str = ""
    fine_tuned: bool = True  # False: a new model was trained

    @property
    def test_accuracy(self) -> float | None:  # as TrainResult, for the job panel and the store
        return self.after.mnist

    @property
    def test_loss(self) -> float | None:
        return None

    def summary(self) -> dict:
        """Plain data (no model), for JSON and the store."""
        return {
            "model_config": self.model_config.to_dict(),
            "train_config": dataclasses.asdict(self.train_config),
            "teach_config": dataclasses.asdict(self.teach_config),
            "before": dataclasses.asdict(self.before),
            "after": dataclasses.asdict(self.after),
            "n_drawings": self.n_drawings,
            "n_trained_on": self.n_trained_on,
            "n_examples": self.n_examples,
            "held_out_rule": self.teach_config.rule(),
            "history": self.history,
            "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
            "data_source": self.data_source,
            "fine_tuned": self.fine_tuned,
        }


def split_drawings(n: int, every: int = HOLD_OUT_EVERY) -> tuple[np.ndarray, np.ndarray]:
    """(indices trained on, indices held out) of n drawings in saved order: every `every`-th
    (1-based: the 5th, 10th, ...) is held out; every=0 holds none out. Adding drawings never
    moves one from one side to the other."""
    index = np.arange(n)
    if not every:
        return index, index[:0]
    held = (index + 1) % every == 0
    return index[~held], index[held]


def check_drawings(images, labels) -> tuple[np.ndarray, np.ndarray]:
    """(n, 28, 28) float32 in [0, 1] and (n,) int64 in 0..9, or TeachError saying what is wrong."""
    x = np.asarray(images, dtype="float32")
    y = np.asarray(labels)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise TeachError(f"Drawings must be (n, 28, 28) images, not shape {x.shape}.")
    if len(x) != len(y):
        raise TeachError(f"{len(x)} drawings but {len(y)} labels.")
    if len(x) == 0:
        raise TeachError("There are no labelled drawings to learn from: save some first.")
    if y.dtype.kind not in "iu" or y.min() < 0 or y.max() > 9:
        raise TeachError("Drawing labels must be the digits 0 to 9.")
    return np.clip(x, 0.0, 1.0), y.astype("int64")


def mixed_examples(
    digits: Digits, x_draw: np.ndarray, y_draw: np.ndarray, config: TeachConfig, seed: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's examples: (n, 28, 28) uint8 and (n,) labels, MNIST (a seeded sample of
    config.mnist_digits) and the drawings repeated to make up config.drawing_share of them."""
    rng = np.random.default_rng(seed)
    n_mnist = len(digits.x_train)
    take = config.mnist_digits if 0 < config.mnist_digits < n_mnist else n_mnist
    pick = np.sort(rng.choice(n_mnist, take, replace=False)) if take < n_mnist else slice(None)
    x_m, y_m = digits.x_train[pick], digits.y_train[pick]
    share = config.drawing_share
    repeat = max(1, round(share * len(x_m) / ((1 - share) * len(x_draw))))
    x_d = np.round(np.tile(x_draw, (repeat, 1, 1)) * 255).astype("uint8")
    y_d = np.tile(y_draw, repeat)
    return np.concatenate([x_m, x_d]), np.concatenate([np.asarray(y_m, "int64"), y_d])


def copy_model(model, model_config: ModelConfig):
    """A new compiled model with the same layers and weights; the original is left untouched
    (a page may still be reading drawings with it). Compiled with model_config's settings."""
    import keras

    from digitlab.models import compile_model

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    compile_model(copy, model_config)
    return copy


def teach(
    digits: Digits,
    images,
    labels,
    *,
    model=None,
    model_config: ModelConfig = ModelConfig(),
    train_config: TrainConfig = TrainConfig(epochs=2, augment=True),
    teach_config: TeachConfig = TeachConfig(),
    on_event: EventSink | None = None,
    stop: StopFlag | None = None,
) -> TeachResult:
    """Fine-tune `model` (a copy of it) or, when None, train a new model_config network, on MNIST
    mixed with the drawings; score before and after.

    images: (n, 28, 28) float32 in [0, 1] (canvas_to_mnist's), labels: (n,) digits, in saved
    order (the held-out split depends on it). train_config gives epochs, batch size, seed and
    augmentation (its validation_fraction is not used: the held-out drawings are the check).
    Events: {"type": "start"}, {"type": "before", mnist, held_out, n_held_out}, batch and epoch
    events as in training.train (epoch rows carry val_accuracy on the held-out drawings), then
    {"type": "teach", before, after}. Stop ends it within a batch; what was learnt is kept.
    """
    t0 = time.perf_counter()
    x_all, y_all = check_drawings(images, labels)
    cfg = train_config
    train_idx, held_idx = split_drawings(len(x_all), teach_config.hold_out_every)
    if len(train_idx) == 0:
        raise TeachError("Every drawing would be held out: save more drawings first.")
    x_held, y_held = x_all[held_idx], y_all[held_idx]

    before = Scores(n_held_out=len(held_idx))
    if model is not None:
        before.mnist = evaluate(model, digits.x_test, digits.y_test)[1]
        before.held_out = accuracy(model, x_held, y_held)
    if on_event:
        on_event({"type": "before", **dataclasses.asdict(before)})

    x, y = mixed_examples(digits, x_all[train_idx], y_all[train_idx], teach_config, cfg.seed)
    if model is None:
        work = build_model(model_config, seed=cfg.seed)
    else:
        if cfg.seed is not None:
            import keras

            keras.utils.set_random_seed(cfg.seed)
        work = copy_model(model, model_config)
    events = run_epochs(
        work,
        x,
        one_hot(y),
        cfg,
        validation=(x_held, one_hot(y_held)) if len(held_idx) else None,
        on_event=on_event,
        stop=stop,
    )
    after = Scores(
        mnist=evaluate(work, digits.x_test, digits.y_test)[1],
        held_out=accuracy(work, x_held, y_held),
        n_held_out=len(held_idx),
    )
    result = TeachResult(
        model=work,
        model_config=model_config,
        train_config=cfg,
        teach_config=teach_config,
        before=before,
        after=after,
        n_drawings=len(x_all),
        n_trained_on=len(train_idx),
        n_examples=len(x),
        history=events.rows,
        stopped=bool(
            stop is not None
            and stop.is_set()
            and (len(events.rows) < cfg.epochs or events.rows[-1].get("partial"))
        ),
        data_source=f"{digits.source} + {len(train_idx)} drawings",
        fine_tuned=model is not None,
        seconds=time.perf_counter() - t0,
    )
    if on_event:
        on_event(
            {
                "type": "teach",
                "before": dataclasses.asdict(before),
                "after": dataclasses.asdict(after),
            }
        )
    return result


def before_after_rows(result: TeachResult) -> list[dict]:
    """The page's and the CLI's table: one row per score, before and after; after only when
    the network is new (nothing to score before)."""

    def pct(v):
        return None if v is None else round(100 * v, 1)

    held = f"your {result.after.n_held_out} held-out drawings"
    rows = [
        {
            "score": "MNIST test accuracy (%)",
            "before": pct(result.before.mnist),
            "after": pct(result.after.mnist),
        },
        {
            "score": f"accuracy on {held} (%)",
            "before": pct(result.before.held_out),
            "after": pct(result.after.held_out),
        },
    ]
    if not result.fine_tuned:
        for row in rows:
            del row["before"]
    return rows


# ---------------------------------------------------------------------------------------------
# Drawings from a folder (`python -m digitlab train --drawings DIR`)


@dataclass
class DrawingFolder:
    """Labelled drawings read from DIR/0/ ... DIR/9/, and a sentence for each file left out."""

    images: np.ndarray  # (n, 28, 28) float32 in [0, 1], canvas_to_mnist's
    labels: np.ndarray  # (n,) int64
    files: list[str]  # the file each drawing came from, in the order read
    skipped: list[str]  # one sentence per file left out, naming it


def read_drawing_folder(root) -> DrawingFolder:
    """Every file in root/<digit>/ (sorted by digit, then name) read as a canvas drawing through
    canvas_to_mnist: any size, strokes on a transparent background or light ink on an opaque
    dark one (dark ink on light paper is inverted). A file that is no image, a drawing with no
    digit in it (preprocess.describe_problem) and any file outside a 0-9 folder is left out
    with one sentence naming it. TeachError when root is no folder."""
    from pathlib import Path

    from digitlab.preprocess import PreprocessError, read_canvas, read_image_file

    root = Path(root)
    if not root.is_dir():
        raise TeachError(f"{root}: no such folder of drawings.")
    images, labels, files, skipped = [], [], [], []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        is_digit = entry.is_dir() and len(entry.name) == 1 and entry.name in "0123456789"
        if not is_digit:
            inside = sorted(p for p in entry.rglob("*") if p.is_file()) if entry.is_dir() else []
            for f in inside or ([entry] if entry.is_file() else []):
                where = (
                    "is not in a folder named 0-9"
                    if entry.is_file()
                    else (f"is in folder {entry.name!r}, not a digit 0-9")
                )
                skipped.append(f"{f}: {where}; left out.")
            continue
        for f in sorted(p for p in entry.rglob("*") if p.is_file()):
            try:
                x, problem = read_canvas(read_image_file(f))
            except PreprocessError as e:
                skipped.append(f"{str(e).rstrip('.')}; left out.")
                continue
            if problem is not None:
                skipped.append(f"{f}: {problem.rstrip('.')}; left out.")
                continue
            images.append(x)
            labels.append(int(entry.name))
            files.append(str(f))
    return DrawingFolder(
        images=np.stack(images) if images else np.zeros((0, 28, 28), dtype="float32"),
        labels=np.array(labels, dtype="int64"),
        files=files,
        skipped=skipped,
    )


# ---------------------------------------------------------------------------------------------
# The server's default model: something to read drawings with at once


DEFAULT_MODEL = ModelConfig()  # the tutorial's network, as Quick-train builds it
CNN_MODEL = ModelConfig(arch="cnn")  # the default's last stage (ServerDefault, cnn=True)
CNN_EPOCHS = 30  # chosen on the room's writers (BENCHMARKS.md): newcomers 0.9525 (20: 0.9498)


def default_train_config(n_train: int) -> TrainConfig:
    """The default model's training: Quick-train's (augmented, ~300,000 digits seen), all digits."""
    from digitlab.training import quick_config

    return dataclasses.replace(quick_config(n_train), validation_fraction=0.0)


def stage_configs(stage: str, n_train: int) -> tuple[ModelConfig, TrainConfig]:
    """The network and the training of a stage of the server's default: "default" (the
    tutorial's network, Quick-train's run) or "cnn" (the convolutional network, CNN_EPOCHS
    augmented epochs)."""
    if stage == "cnn":
        return CNN_MODEL, TrainConfig(epochs=CNN_EPOCHS, augment=True, validation_fraction=0.0)
    return DEFAULT_MODEL, default_train_config(n_train)


def default_model_path(digits: Digits, stage: str = "default"):
    """Where the server keeps its default model between starts: DIGITLAB_HOME/default/<key>.keras,
    the key naming the data and the settings (other data or settings: another file)."""
    import hashlib
    from pathlib import Path

    from digitlab.store import home

    model_config, cfg = stage_configs(stage, len(digits.x_train))
    text = f"{digits.source}|{len(digits.x_train)}|{model_config}|{cfg}"
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Path(home()) / "default" / f"default-{key}.keras"


def default_model_kept(digits: Digits, stage: str = "default") -> bool:
    """An earlier start left this stage's default model in DIGITLAB_HOME (default_model reads it)."""
    path = default_model_path(digits, stage)
    return path.is_file() and path.with_suffix(".json").is_file()


def default_model(
    digits: Digits,
    *,
    on_event: EventSink | None = None,
    stop: StopFlag | None = None,
    train: Trainer | None = None,
    stage: str = "default",
):
    """The default model of a stage (a TrainResult; stage_configs): read from DIGITLAB_HOME when
    an earlier start left it there, else trained (by `train`, default training.train, here) and
    kept there for the next start."""
    import json

    from digitlab.models import ModelError, load_model_file, save_model_file
    from digitlab.training import TrainResult

    if train is None:
        from digitlab.training import train
    model_config, cfg = stage_configs(stage, len(digits.x_train))
    path = default_model_path(digits, stage)
    meta = path.with_suffix(".json")
    if default_model_kept(digits, stage):
        try:
            model = load_model_file(path)
            info = json.loads(meta.read_text())
            return TrainResult(
                model=model,
                model_config=model_config,
                train_config=cfg,
                test_accuracy=info.get("test_accuracy"),
                data_source=digits.source,
            )
        except (ModelError, OSError, ValueError):
            pass  # damaged: train it again
    result = train(
        digits, model_config=model_config, train_config=cfg, on_event=on_event, stop=stop
    )
    if not result.stopped:
        from digitlab.files import atomic_write_json

        path.parent.mkdir(parents=True, exist_ok=True)
        save_model_file(result.model, path)
        atomic_write_json(meta, {"test_accuracy": result.test_accuracy, "config": str(cfg)})
    return result


EXIT_WAIT_S = 30.0  # a process's exit waits at most this long for a first pass under way


class ServerDefault:
    """The server's default model, made once in a background thread: first a quick pass
    (models.FirstPass: scikit-learn, about a second, and no TensorFlow to import), so drawings are
    read at once, then the default model (default_model: read from DIGITLAB_HOME, else trained
    by `train`: the app passes the engine's, so the long run does not share the server's cores at
    its priority), which replaces it; with cnn, then the convolutional network (CNN_EPOCHS
    epochs: about 35 minutes on 2 cores), which replaces that. Pages read `.model` (None until
    the first is ready); nothing here touches Streamlit.
    """

    def __init__(self, digits: Digits, *, train: Trainer | None = None, cnn: bool = False):
        self.digits = digits
        self._train = train
        self.stages = ("first", "default", "cnn") if cnn else ("first", "default")
        self.model = None  # the best model so far; replaced, never changed in place
        self.stage: str | None = None  # "first", then "default" (then "cnn")
        self.test_accuracy: float | None = None
        self.error: str | None = None
        self.started_at: float | None = None
        self.ready_s: dict[str, float] = {}  # stage -> seconds from start to that model
        self._thread = None
        self._first = threading.Event()  # set at the first model, or at a failure
        self._wanted = threading.Event()  # someone reads with the default: go past the first pass
        self._done = threading.Event()  # every stage made, or one failed
        self._first_scored = threading.Event()  # the first pass made and scored, or failed
        self._gave_up = False  # a later stage failed: the stage before it stays

    def start(self, *, default: bool = True) -> ServerDefault:
        """Make the first pass now, in a thread (once); default=False: the default model only
        once someone asks for it (want_default): a server where nobody reads with the default
        never trains it. Stages an earlier start kept are read after the first pass unasked (a
        restart's first drawing then does not wait for TensorFlow's import)."""
        if self._thread is None:
            self.started_at = time.perf_counter()
            self._thread = threading.Thread(target=self._run, daemon=True, name="digitlab-default")
            self._thread.start()
            # A process that ended while the first pass computed in this daemon thread (seen
            # inside NumPy's np.unique under scikit-learn) aborted at exit: "terminate called
            # without an active exception", in 6 of 37 short AppTest runs. Its exit waits for
            # the first pass and its score (a second or two); then this thread only waits.
            atexit.register(self._first_scored.wait, EXIT_WAIT_S)
        if default:
            self.want_default()
        return self

    def want_default(self) -> None:
        """Go on from the first pass to the default model (idempotent)."""
        self._wanted.set()

    @property
    def finished(self) -> bool:
        """No better model will come: the last stage is here, or a stage failed."""
        return self.stage == self.stages[-1] or self.error is not None or self._gave_up

    @property
    def recheck_s(self) -> float | None:
        """How often a page showing this should look for the next stage: every second until
        the tutorial's network is here (a minute at most), then every 15 s while the
        convolutional network trains (35 minutes: a page per learner looking each second would
        cost the server more than the wait is worth); None once finished."""
        if self.finished:
            return None
        return 1.0 if self.stage in (None, "first") else 15.0

    def describe(self) -> str:
        if self.stage == "first":
            return (
                "a quick first pass (a small network, one epoch, scikit-learn); "
                "the tutorial's network follows in a minute"
            )
        if self.stage == "cnn":
            return f"a convolutional network, {CNN_EPOCHS} augmented epochs"
        epochs = default_train_config(len(self.digits.x_train)).epochs
        text = f"the tutorial's network, {epochs} augmented epochs"
        if not self.finished:
            text += "; a convolutional network that reads more hands right is training to follow it"
        return text

    def wait_first(self, timeout: float | None = None) -> bool:
        """Block until there is a model to read with (the first pass, a second or so after the
        start) or the start failed; True when there is a model."""
        self._first.wait(timeout)
        return self.model is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every stage is ready (not only the first pass), or one failed."""
        return self._done.wait(timeout)

    def _publish(self, model, test_accuracy: float | None, stage: str) -> None:
        self.test_accuracy = test_accuracy
        self.model = model
        self.stage = stage
        self.ready_s[stage] = time.perf_counter() - self.started_at
        self._first.set()
        log.info(
            "the server's default model, %s stage, ready %.1f s after its start",
            stage,
            self.ready_s[stage],
        )

    def _run(self) -> None:
        from digitlab.models import FirstPass

        d = self.digits
        try:
            try:
                first = FirstPass(normalise(d.x_train), d.y_train)
                self._publish(first, None, "first")  # drawings are read from now on
                self.test_accuracy = accuracy(first, normalise(d.x_test), d.y_test)
            finally:
                self._first_scored.set()
            if not all(default_model_kept(d, stage) for stage in self.stages[1:]):
                self._wanted.wait()  # kept by an earlier start: read now, trains nothing
            result = default_model(d, train=self._train)
            self._publish(result.model, result.test_accuracy, "default")
        except Exception as e:  # a page shows it; the server goes on without a default model
            self.error = f"The default model could not be made: {type(e).__name__}: {e}"[:300]
            self._first.set()
            self._done.set()
            return
        try:
            if "cnn" in self.stages:
                result = default_model(d, train=self._train, stage="cnn")
                self._publish(result.model, result.test_accuracy, "cnn")
        except Exception as e:  # the default model stays; the log says why the better one did not
            self._gave_up = True
            if threading.main_thread().is_alive():
                log.exception("the server's convolutional default could not be made")
            else:  # the server is exiting, and the engine with it
                log.info("the server's convolutional default ended with the server: %s", e)
        finally:
            self._done.set()
