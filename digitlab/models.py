"""Architectures by name, their compile settings, and checks on models that come from outside."""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

Arch = Literal["mlp", "cnn"]
ARCHITECTURES: tuple[Arch, ...] = ("mlp", "cnn")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
MAX_MODEL_BYTES = 50 * 1024 * 1024  # an upload larger than this is refused before it is read


class ModelError(ValueError):
    """A model configuration or model file that cannot be used; one sentence for people."""


@dataclass(frozen=True)
class ModelConfig:
    """What a learner may turn. Defaults are the tutorial's network and compile settings."""

    # "mlp": the tutorial's Dense(512, relu) -> Dense(10, softmax); "cnn": a small convnet
    arch: Arch = "mlp"
    hidden_units: int = 512  # tutorial: 512
    hidden_layers: int = 1  # tutorial: 1 (mlp only)
    optimizer: str = "rmsprop"  # tutorial: rmsprop
    learning_rate: float | None = None  # None: the optimizer's Keras default (rmsprop 0.001)
    dropout: float = 0.0  # tutorial: none (mlp); the cnn uses 0.5 when this is 0
    jit_compile: bool = True  # XLA: same maths, faster epochs on CPU (see BENCHMARKS.md)
    # Batches per Keras call (a compiled loop): same maths, less per-batch Python; a stop still
    # ends the run within one batch (training.input_pipeline). Tutorial: 1.
    steps_per_execution: int = 32

    def __post_init__(self):
        problems = []
        if self.arch not in ARCHITECTURES:
            problems.append(
                f"architecture must be one of {', '.join(ARCHITECTURES)}, not {self.arch!r}"
            )
        if not 1 <= self.hidden_units <= 4096:
            problems.append(f"hidden units must be 1..4096, not {self.hidden_units}")
        if not 1 <= self.hidden_layers <= 8:
            problems.append(f"hidden layers must be 1..8, not {self.hidden_layers}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}"
            )
        if self.learning_rate is not None and not 1e-6 <= self.learning_rate <= 1.0:
            problems.append(f"learning rate must be 1e-6..1, not {self.learning_rate}")
        if not 1 <= self.steps_per_execution <= 1000:
            problems.append(f"steps per execution must be 1..1000, not {self.steps_per_execution}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), not {self.dropout}")
        if problems:
            raise ModelError("; ".join(problems).capitalize() + ".")

    def describe(self) -> str:
        if self.arch == "cnn":
            return "CNN: Conv(32)-Pool-Conv(64)-Pool-Dropout-Dense(10)"
        hidden = " -> ".join([f"Dense({self.hidden_units}, relu)"] * self.hidden_layers)
        drop = f", dropout {self.dropout:g}" if self.dropout else ""
        return f"MLP: {hidden} -> Dense(10, softmax){drop}, {self.optimizer}"

    def to_dict(self) -> dict:
        return asdict(self)


TUTORIAL = ModelConfig(jit_compile=False, steps_per_execution=1)  # the tutorial as it compiles


# Keras builds and loads models through process-wide state that is not thread-safe (tensorflow
# issue 35813: a model built in a job thread while script threads loaded and called models failed
# with "Only input tensors may be passed as positional arguments"). Every construction and load in
# this process takes this lock.
keras_lock = threading.RLock()
_keras_import: threading.Thread | None = None
_keras_import_started = threading.Lock()  # not keras_lock: a job's start never waits on a build


def import_keras_soon() -> None:
    """Start importing Keras in a background thread (the import under keras_lock), once per
    process: a run on the engine builds its model here when it ends (from_weights), and the
    import takes seconds that the learner would otherwise wait after the last epoch
    (BENCHMARKS.md). Not a daemon: a process that exits meanwhile (a CLI run that failed) waits
    for the import to end, since TensorFlow killed mid-import at exit crashes the process."""
    global _keras_import
    with _keras_import_started:
        if _keras_import is None:
            _keras_import = threading.Thread(target=_import_keras, name="digitlab-keras-import")
            _keras_import.start()


def _import_keras() -> None:
    with keras_lock:
        import keras  # noqa: F401


def build_model(config: ModelConfig = ModelConfig(), *, seed: int | None = None):
    """A fresh compiled Keras model taking (n, 28, 28) float32 in [0, 1]."""
    with keras_lock:
        return _build_model(config, seed=seed)


def from_weights(config: ModelConfig, weights: list) -> Any:
    """build_model(config) with these weights (a run's result, trained elsewhere)."""
    with keras_lock:
        model = _build_model(config)
        model.set_weights(weights)
        return model


def _build_model(config: ModelConfig, *, seed: int | None = None):
    import keras
    from keras import layers

    if seed is not None:
        keras.utils.set_random_seed(seed)
    if config.arch == "mlp":
        stack = [keras.Input(shape=(28, 28)), layers.Flatten()]  # (n, 784), the tutorial's reshape
        for _ in range(config.hidden_layers):
            stack.append(layers.Dense(config.hidden_units, activation="relu"))
            if config.dropout:
                stack.append(layers.Dropout(config.dropout))
        stack.append(layers.Dense(10, activation="softmax"))
    else:  # keras-io mnist_convnet: 99% test accuracy on MNIST
        stack = [
            keras.Input(shape=(28, 28)),
            layers.Reshape((28, 28, 1)),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dropout(config.dropout or 0.5),
            layers.Dense(10, activation="softmax"),
        ]
    return compile_model(keras.Sequential(stack, name=config.arch), config)


def compile_model(model, config: ModelConfig = ModelConfig()):
    """Compile a model with config's optimizer, learning rate and speed settings (a new
    optimizer: no state from an earlier fit); returns the model."""
    import keras

    optimizer = keras.optimizers.get(config.optimizer)
    if config.learning_rate is not None:
        optimizer.learning_rate = config.learning_rate
    model.compile(
        optimizer=optimizer,
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return model


# This process's compiled networks, one per configuration, each lent to one run at a time
_compiled: dict[ModelConfig, Any] = {}
_compiled_lock = threading.Lock()


@contextlib.contextmanager
def fresh_model(config: ModelConfig, seed: int | None):
    """A network in exactly the state build_model(config, seed=seed) gives, lent for one run.

    A new build costs XLA compiles of its training and validation steps at its first use (a
    good part of a short fold). So the network an earlier run in this process trained (a fold,
    or the engine's warm-up of a worker: training.prepare) is taken back and every one of its
    variables set from a new build: weights, optimizer state (step count, accumulators) and
    random-generator states. Nothing it learnt remains (tests run folds and training both ways
    and get the same numbers, bit for bit); only its compiled steps are kept. One network per
    configuration is kept, and lent to one run at a time. Whoever keeps a model after the block
    (a TrainResult) must not use this: the next run would reset it.
    """
    new = build_model(config, seed=seed)
    with _compiled_lock:
        model = _compiled.pop(config, None)
    if model is None:
        model = new
    else:
        new.optimizer.build(new.trainable_variables)  # its variables at their starting values
        for target, source in (
            (model.variables, new.variables),
            (model.optimizer.variables, new.optimizer.variables),
        ):
            for t, v in zip(target, source, strict=True):
                t.assign(v)
    try:
        yield model
    finally:
        with _compiled_lock:
            _compiled.clear()  # the last configuration only: an earlier one is not held forever
            _compiled[config] = model


def forget_compiled() -> None:
    """Drop the network fresh_model keeps, so that the next run builds and compiles its own."""
    with _compiled_lock:
        _compiled.clear()


def describe_model(model) -> str:
    """One line for a model from outside: its layers' kinds and sizes."""
    parts = []
    for layer in model.layers:
        kind = type(layer).__name__
        units = getattr(layer, "units", None) or getattr(layer, "filters", None)
        parts.append(f"{kind}({units})" if units else kind)
    return " -> ".join(p for p in parts if p not in ("InputLayer",))


def arch_of(model) -> Arch | Literal["model"]:
    """ "cnn" for a network with a convolution, "mlp" for one of Dense layers, else "model"."""
    kinds = {type(layer).__name__ for layer in model.layers}
    if any(k.startswith("Conv") for k in kinds):
        return "cnn"
    if "Dense" in kinds:
        return "mlp"
    return "model"


def model_bytes(model) -> bytes:
    """The model as a .keras file's bytes (a download)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.keras"
        with keras_lock:
            model.save(path)
        return path.read_bytes()


def from_bytes(data: bytes, *, name: str = "model.keras"):
    """A model from a .keras file's bytes (an upload, or models.model_bytes), loaded and checked
    as a file; ModelError in one sentence that calls the file `name` (display text only: it is
    never used as a path)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.keras"
        path.write_bytes(data)
        try:
            return load_model_file(path)
        except ModelError as e:
            raise ModelError(str(e).replace(path.name, name, 1)) from None


def with_weights(data: bytes, weights: list):
    """The model in these .keras bytes, with these weights (a copy trained elsewhere)."""
    model = from_bytes(data)
    with keras_lock:
        model.set_weights(weights)
    return model


def model_summary(model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda s, **_: lines.append(s))
    return "\n".join(lines)


def check_model(model) -> None:
    """Raise ModelError unless the model takes 28x28 (or 784) pixels and gives 10 outputs."""
    try:
        in_shape = tuple(model.input_shape)
        out_shape = tuple(model.output_shape)
    except Exception:
        raise ModelError(
            "The model has no single input and output, so it cannot read digits."
        ) from None
    if in_shape[1:] not in ((28, 28), (784,), (28, 28, 1)):
        raise ModelError(
            f"The model expects input {in_shape[1:]}, but digits are 28x28 (or 784) pixels."
        )
    if out_shape[1:] != (10,):
        raise ModelError(f"The model gives {out_shape[1:]} outputs, but there are 10 digits.")


def load_model_file(path: str | os.PathLike, *, max_bytes: int = MAX_MODEL_BYTES):
    """Load a .keras file with safe_mode=True and check its shapes; ModelError on any fault.

    safe_mode refuses Lambda layers (deserialising one would run its code); unknown custom
    classes fail to resolve. Either way no code from the file runs.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p.name}: no such model file.")
    size = p.stat().st_size
    if size > max_bytes:
        raise ModelError(
            f"{p.name} is {size / 2**20:.1f} MB; models larger than {max_bytes / 2**20:.0f} MB are refused."
        )
    with open(p, "rb") as f:
        if f.read(2) != b"PK":
            raise ModelError(
                f"{p.name} is not a .keras model file (a .keras file is a zip archive)."
            )
    import keras

    try:
        with keras_lock:
            model = keras.saving.load_model(p, safe_mode=True, compile=False)
    except Exception as e:
        text = str(e)
        if "Lambda" in text or "safe_mode" in text or "unsafe" in text.lower():
            raise ModelError(
                f"{p.name} contains a Lambda or custom layer that could run code; it was refused."
            ) from None
        if "Could not locate" in text or "Unknown" in text or "custom" in text.lower():
            raise ModelError(
                f"{p.name} uses a custom layer or object that DigitLab does not know; it was refused."
            ) from None
        raise ModelError(
            f"{p.name} could not be read as a Keras model (damaged or truncated)."
        ) from None
    check_model(model)
    return model


def save_model_file(model, path: str | os.PathLike) -> Path:
    """Write a .keras file atomically: a temporary file beside it, then a rename.

    A crash mid-write leaves the old file (or none), never half of one.
    """
    p = Path(path)
    if p.suffix != ".keras":
        raise ModelError(f"{p.name}: a model file must end in .keras.")
    if not p.parent.is_dir():
        raise ModelError(f"{p.parent}: no such folder to save the model in.")
    from digitlab.files import atomic_write

    atomic_write(p, model.save)  # Keras wants the .keras suffix: the temporary file keeps it
    return p


class FirstPass:
    """A smaller tutorial network (784 -> 128 ReLU -> 10 softmax) fitted for one pass over the
    digits by scikit-learn's MLPClassifier: about a second, and no TensorFlow to import first
    (5 s on the benchmark machine), so a fresh server reads drawings at once while the Keras
    default trains (teach.ServerDefault; BENCHMARKS.md, "Ready to draw at once"). It reads and
    scores drawings (predict_proba, accuracy); the views inside the network and teaching need a
    Keras model."""

    HIDDEN_UNITS = 128  # 512 (the tutorial's): 3.7x the time for 2.7 points on drawings
    # One pass in about STEPS steps, the learning rate grown with the batch: on 60,000 digits
    # batches of 500 fit in 0.57 s instead of 0.95 s (batches of 128) and read MNIST and
    # drawings no worse; on a few hundred digits, more steps than 128-digit batches give
    # (BENCHMARKS.md, "Ready to draw at once").
    STEPS = 120

    # Its matrix products run on one BLAS thread, one call at a time: a fork in another thread
    # (Ray starting its services) while OpenBLAS's own threads work deadlocks both
    # (tests/test_teach.py, test_a_first_pass_never_hangs_a_fork).
    _blas = threading.Lock()

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, seed: int = 0):
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        batch = int(np.clip(len(images) // self.STEPS, 32, 512))
        self.network = MLPClassifier(
            hidden_layer_sizes=(self.HIDDEN_UNITS,),
            max_iter=1,
            batch_size=batch,
            learning_rate_init=0.001 * max(1.0, batch / 128),  # sklearn's default at 128
            random_state=seed,
        )
        x = np.asarray(images, dtype="float32").reshape(len(images), -1)
        with self._one_thread(), warnings.catch_warnings():  # one pass: no convergence wanted
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.network.fit(x, labels)
        if list(self.network.classes_) != list(range(10)):
            raise ModelError("A first pass needs examples of all ten digits.")

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, dtype="float32").reshape(-1, 784)
        with self._one_thread():
            return self.network.predict_proba(x).astype("float32")

    @contextlib.contextmanager
    def _one_thread(self):
        from threadpoolctl import threadpool_limits

        with self._blas, threadpool_limits(limits=1, user_api="blas"):
            yield


def is_keras(model) -> bool:
    """A Keras model (everything but a FirstPass): what the views and teaching need."""
    return model is not None and not isinstance(model, FirstPass)


def predict_proba(model, images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) float32 in [0, 1] -> (n, 10) probabilities, by a direct model call.

    The call goes through one XLA-compiled tf.function kept on the model (traced on its first
    call for each input shape): a tenth of an eager model(x), and no dataset built per call as
    model.predict does (BENCHMARKS.md, "Prediction").
    """
    if isinstance(model, FirstPass):
        return model.predict_proba(images)
    out = _direct_call(model)(_model_input(model, images))
    return np.asarray(out, dtype="float32")


def probabilities(model, images: np.ndarray, *, batch_size: int = 2000) -> np.ndarray:
    """(n, 28, 28) float32 in [0, 1] -> (n, 10) probabilities, by plain (uncompiled) model calls
    in chunks: for one pass over a test set, an XLA compile costs more than it saves
    (BENCHMARKS.md, "Training")."""
    if isinstance(model, FirstPass):
        return model.predict_proba(images)
    x = _model_input(model, images)
    chunks = [
        np.asarray(model(x[i : i + batch_size], training=False), dtype="float32")
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, 10), dtype="float32")


def accuracy(model, images: np.ndarray, labels: np.ndarray) -> float | None:
    """Share of (n, 28, 28) float32 images in [0, 1] the model labels right; None when n is 0.

    The one accuracy of DigitLab's pages and teaching (training.evaluate gives the loss too)."""
    if len(images) == 0:
        return None
    predicted = probabilities(model, images).argmax(axis=1)  # (n,)
    return float((predicted == np.asarray(labels)).mean())


def _model_input(model, images: np.ndarray) -> np.ndarray:
    """Float32 images (one or many) in the shape the model takes: (n, 28, 28), (n, 784), ..."""
    x = np.asarray(images, dtype="float32")
    if x.ndim == 2:
        x = x[None]
    return x.reshape((len(x), *tuple(model.input_shape[1:])))


def _direct_call(model):
    """model(x, training=False) as a compiled function, made once per model and kept on it."""
    fn = getattr(model, "_digitlab_predict", None)
    if fn is None:
        import keras

        if keras.backend.backend() != "tensorflow":
            return lambda x: model(x, training=False)
        import tensorflow as tf

        fn = tf.function(
            lambda x: model(x, training=False), jit_compile=True, reduce_retracing=True
        )
        model._digitlab_predict = fn  # dies with the model; never saved with it
    return fn
