"""The work the app runs as jobs, data and settings bound: `work(on_event, stop) -> result`.

Each sends its heavy part to the engine (Ray) and keeps the light part here: the digits go to
the object store once (engine.put), a training run comes back as its result and its weights,
and the model is built in this process under models' one lock. `on_engine=False` runs the same
functions directly in the caller's thread (tests, small CLI runs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from digitlab import engine, models
from digitlab.crossval import cross_validate, save_cv_pair
from digitlab.data import Digits
from digitlab.training import StopEvent, TrainResult, train

Work = Callable[[Callable[[dict], None], Any], Any]
PARTS = ("x_train", "y_train", "x_test", "y_test")


def training_work(
    digits: Digits,
    *,
    model_config,
    train_config,
    on_engine: bool = True,
    keras_early: bool = True,
    **train_kwargs,
) -> Work:
    """One training run (training.train); the job's result is the TrainResult with its model.

    On the engine the run's weights come back with the result and are kept on it
    (`result.weights`) until the model is built here, so a failure after training loses nothing.
    keras_early: import Keras here while the run trains, for a learner waiting for the model
    (not for the server's default, which must not slow a fresh server's first drawings).
    """

    def work(on_event, stop):
        if not on_engine:
            return train(
                digits,
                model_config=model_config,
                train_config=train_config,
                on_event=on_event,
                stop=stop,
                **train_kwargs,
            )
        arrays = [engine.put(getattr(digits, k)) for k in PARTS]  # EngineError: out of reach
        if keras_early:
            models.import_keras_soon()  # the model is built here at the end: Keras ready by then
        rest = replace(digits, **{k: getattr(digits, k)[:0] for k in PARTS})
        out = engine.run(
            train_remote,
            *arrays,
            rest,
            model_config,
            train_config,
            train_kwargs,
            on_event=on_event,
            stop=stop,
        )
        if out is None:  # stopped before the task began: nothing was trained
            return None
        result, weights = out
        result.weights = weights
        result.model = models.from_weights(model_config, weights)
        return result

    return work


def train_on_engine(digits: Digits, *, model_config, train_config, on_event=None, stop=None):
    """training.train's signature, run on the engine (what teach.ServerDefault is given)."""
    run = training_work(
        digits, model_config=model_config, train_config=train_config, keras_early=False
    )
    return run(on_event or (lambda event: None), stop or StopEvent())


def train_remote(
    x_train,
    y_train,
    x_test,
    y_test,
    rest: Digits,
    model_config,
    train_config,
    train_kwargs,
    *,
    on_event,
    stop,
) -> tuple[TrainResult, list]:
    """train() as an engine task runs it: the TrainResult without its model, and the weights.

    The network is the one this worker compiled for these settings (models.fresh_model: the
    engine's warm-up compiles the default run's), with every variable set anew."""
    digits = replace(rest, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    with models.fresh_model(model_config, train_config.seed) as model:
        result = train(
            digits,
            model_config=model_config,
            train_config=train_config,
            on_event=on_event,
            stop=stop,
            model=model,
            **train_kwargs,
        )
        weights = model.get_weights()
    result.model = None
    return result, weights


def crossval_work(
    images,
    labels,
    *,
    model_config,
    n_splits: int = 5,
    epochs: int = 5,
    batch_size: int = 128,
    with_reused: bool = False,
    data_source: str = "",
    save: bool = True,
    learner: str | None = None,
    on_engine: bool = True,
) -> Work:
    """k-fold with a fresh model per fold (folds side by side on the engine), then (with_reused)
    the tutorial's reused model (one network, fold after fold: one engine task).

    Events carry "variant" ("fresh" or "reused") besides "fold"; one "start" event covers both
    runs, so progress and ETA span the whole job. The result: {"fresh": CVResult, "reused":
    CVResult | None, "names": stored names}; with save, both are kept in the store under the
    learner, and the fresh one names its reused partner in meta["pair"].
    """

    def work(on_event, stop):
        variants = ["fresh", "reused"] if with_reused else ["fresh"]
        on_event({"type": "start", "folds": n_splits * len(variants), "epochs": epochs})
        out = {"fresh": None, "reused": None, "ids": {}}
        settings = dict(
            model_config=model_config,
            n_splits=n_splits,
            epochs=epochs,
            batch_size=batch_size,
            data_source=data_source,
        )
        for variant in variants:
            if stop.is_set():
                break

            def tagged(event, variant=variant):
                if event.get("type") != "start":
                    on_event({**event, "variant": variant})

            if variant == "fresh":
                executor = engine.RayExecutor() if on_engine else None
                out[variant] = cross_validate(
                    images, labels, executor=executor, on_event=tagged, stop=stop, **settings
                )
            elif on_engine:
                out[variant] = engine.run(
                    reused_remote,
                    engine.put(images),
                    engine.put(labels),
                    settings,
                    on_event=tagged,
                    stop=stop,
                )
            else:
                out[variant] = reused_remote(images, labels, settings, on_event=tagged, stop=stop)
        if save:
            out["ids"] = save_cv_pair(out["fresh"], out["reused"], learner=learner)
        return out

    return work


def reused_remote(images, labels, settings: dict, *, on_event, stop):
    """The tutorial's k-fold, one network across all folds (inherently one after another)."""
    return cross_validate(
        images, labels, reuse_model=True, on_event=on_event, stop=stop, **settings
    )


def teach_work(
    digits: Digits,
    images,
    labels,
    *,
    base_model=None,
    model_config,
    train_config,
    teach_config,
    on_engine: bool = True,
) -> Work:
    """Teaching (teach.teach) as a job: MNIST mixed with a learner's drawings, before and after.

    On the engine the base model travels as its .keras bytes (any architecture a learner
    uploaded), the taught weights come back, and the model is rebuilt here under models' lock."""
    from digitlab.teach import teach

    def work(on_event, stop):
        if not on_engine:
            return teach(
                digits, images, labels, model=base_model, model_config=model_config,
                train_config=train_config, teach_config=teach_config, on_event=on_event,
                stop=stop,
            )  # fmt: skip
        base = models.model_bytes(base_model) if base_model is not None else None
        arrays = [engine.put(getattr(digits, k)) for k in PARTS]  # EngineError: out of reach
        models.import_keras_soon()  # the model is built here at the end: Keras ready by then
        rest = replace(digits, **{k: getattr(digits, k)[:0] for k in PARTS})
        out = engine.run(
            teach_remote, *arrays, rest, images, labels, base, model_config, train_config,
            teach_config, on_event=on_event, stop=stop,
        )  # fmt: skip
        if out is None:  # stopped before the task began: nothing was taught
            return None
        result, weights = out
        result.model = (
            models.from_weights(model_config, weights)
            if base is None
            else models.with_weights(base, weights)
        )
        return result

    return work


def teach_remote(
    x_train, y_train, x_test, y_test, rest: Digits, images, labels, base: bytes | None,
    model_config, train_config, teach_config, *, on_event, stop,
):  # fmt: skip
    """teach() as an engine task runs it: the TeachResult without its model, and the weights."""
    from digitlab.teach import teach

    digits = replace(rest, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    model = models.from_bytes(base) if base is not None else None
    result = teach(
        digits, images, labels, model=model, model_config=model_config,
        train_config=train_config, teach_config=teach_config, on_event=on_event, stop=stop,
    )  # fmt: skip
    weights = result.model.get_weights()
    result.model = None
    return result, weights
