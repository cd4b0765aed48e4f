"""k-fold cross-validation: scikit-learn's KFold, a fresh model per fold, folds on any executor.

The tutorial builds one network and fits it fold after fold, so every fold after the first is
tested on digits the network has already trained on. `reuse_model=True` reproduces that, to show
the leak; the default builds a fresh model for every fold.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from digitlab.data import normalise, one_hot
from digitlab.models import ModelConfig, build_model, fresh_model
from digitlab.training import (
    Event,
    EventSink,
    StopFlag,
    even_batch_size,
    fit,
    make_events_callback,
)
from digitlab.words import count


class CrossValError(ValueError):
    """Cross-validation settings that cannot work; one sentence for people."""


@dataclass(frozen=True)
class FoldTask:
    """One fold's work: everything a worker needs besides the shared images and labels."""

    fold: int  # 1-based
    train_index: np.ndarray
    test_index: np.ndarray
    model_config: ModelConfig
    epochs: int
    batch_size: int
    seed: int | None


@dataclass
class FoldResult:
    fold: int
    accuracy: float  # on the fold's held-out part, in [0, 1]
    loss: float
    history: dict[str, list[float]]  # loss, accuracy, val_loss, val_accuracy per epoch
    seconds: float
    n_train: int
    n_test: int
    stopped: bool = False
    node: str = ""  # the Ray node it ran on (engine.RayExecutor); "" when run in this process


@dataclass
class CVResult:
    """Plain data: per-fold scores and curves, and the settings that made them."""

    folds: list[FoldResult]
    n_splits: int
    epochs: int
    batch_size: int
    reuse_model: bool
    model_config: dict
    random_state: int
    seconds: float = 0.0
    workers: int = 1
    data_source: str = ""
    stopped: bool = False
    meta: dict = field(default_factory=dict)

    @property
    def accuracies(self) -> np.ndarray:
        return np.array([f.accuracy for f in self.folds])

    @property
    def mean(self) -> float:
        return float(self.accuracies.mean()) if self.folds else float("nan")

    @property
    def std(self) -> float:
        return (
            float(self.accuracies.std()) if self.folds else float("nan")
        )  # np.std, as the tutorial

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = self.mean, self.std
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CVResult:
        d = {k: v for k, v in d.items() if k not in ("mean", "std")}
        d["folds"] = [FoldResult(**f) for f in d["folds"]]
        return cls(**d)


def check_settings(n_samples: int, n_splits: int, epochs: int, batch_size: int) -> None:
    if n_splits < 2:
        raise CrossValError(f"Cross-validation needs at least 2 folds, not {n_splits}.")
    if n_splits > n_samples:
        raise CrossValError(
            f"{n_splits} folds need at least {n_splits} digits, but there are only {n_samples}."
        )
    if not 1 <= epochs <= 200:
        raise CrossValError(f"Epochs must be 1..200, not {epochs}.")
    if not 1 <= batch_size <= 8192:
        raise CrossValError(f"Batch size must be 1..8192, not {batch_size}.")


def small_folds_warning(n_samples: int, n_splits: int) -> str | None:
    """A sentence when each fold would test so few digits that its score means little, else None.

    A fold tests about n_samples / n_splits digits; with fewer than 20 one digit moves its score
    by more than 5 points (10 digits in 10 folds: each fold tests one, and scores 0% or 100%)."""
    per_fold = n_samples // max(1, n_splits)
    if per_fold >= 20 or n_splits > n_samples:
        return None
    return (
        f"Each fold tests only {count(per_fold, 'digit')}: one digit moves its "
        f"score by {100 / max(1, per_fold):.0f} points, so the scores mean little; use more digits "
        "or fewer folds."
    )


def make_tasks(n_samples, *, model_config, n_splits, epochs, batch_size, random_state, seed):
    from sklearn.model_selection import KFold

    kfold = KFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    return [
        FoldTask(
            fold=i + 1,
            train_index=train_ix,
            test_index=test_ix,
            model_config=model_config,
            epochs=epochs,
            batch_size=batch_size,
            seed=None if seed is None else seed + i,
        )
        for i, (train_ix, test_ix) in enumerate(kfold.split(np.zeros(n_samples)))
    ]


def run_fold(task: FoldTask, images, labels, *, model=None, on_event=None, stop=None) -> FoldResult:
    """Fit on the fold's train part, validating on its test part each epoch (as the tutorial).

    model: the network to go on training (the tutorial's reused network); by default a fresh
    one (fresh_model).
    """
    if model is None:
        with fresh_model(task.model_config, task.seed) as model:
            return run_fold(task, images, labels, model=model, on_event=on_event, stop=stop)
    t0 = time.perf_counter()
    x_train, y_train = images[task.train_index], one_hot(labels[task.train_index])  # uint8 in
    x_test, y_test = normalise(images[task.test_index]), one_hot(labels[task.test_index])

    def tagged(event: Event) -> None:
        if on_event is not None:
            on_event({**event, "fold": task.fold})

    batches = -(-len(x_train) // task.batch_size)
    tagged({"type": "fold_start", "epochs": task.epochs, "batches": batches})
    events = make_events_callback(tagged, stop, epochs=task.epochs, batches=batches)
    fit(
        model,
        x_train,
        y_train,
        epochs=task.epochs,
        batch_size=task.batch_size,
        seed=task.seed,
        events=events,
        stop=stop,
        validation_data=(x_test, y_test),
    )
    # The last epoch's validation scored these weights on these digits (Keras validates an epoch
    # cut short by a stop too): evaluating them again, as the tutorial does, repeats that pass.
    last = events.rows[-1] if events.rows else {}
    if "val_accuracy" in last:
        loss, acc = last["val_loss"], last["val_accuracy"]
    else:  # no epoch ended (a stop before the first one)
        loss, acc = model.evaluate(
            x_test, y_test, batch_size=even_batch_size(len(x_test)), verbose=0
        )
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    history = {k: [row[k] for row in events.rows if k in row] for k in keys}
    result = FoldResult(
        fold=task.fold,
        accuracy=float(acc),
        loss=float(loss),
        history=history,
        seconds=time.perf_counter() - t0,
        n_train=len(x_train),
        n_test=len(x_test),
        stopped=bool(stop is not None and stop.is_set()),
    )
    tagged(
        {
            "type": "fold_end",
            "accuracy": result.accuracy,
            "loss": result.loss,
            "seconds": result.seconds,
        }
    )
    return result


# ---------------------------------------------------------------------------------------------
# Executors: how fold tasks get run. Here, in this process; on Ray: engine.RayExecutor.


class FoldExecutor(Protocol):
    workers: int

    def run(
        self, tasks: Sequence[FoldTask], images, labels, *, on_event, stop
    ) -> list[FoldResult]: ...


class SerialExecutor:
    """Folds one after another in this process."""

    workers = 1

    def run(self, tasks, images, labels, *, on_event=None, stop=None):
        results = []
        for task in tasks:
            if stop is not None and stop.is_set():
                break
            results.append(run_fold(task, images, labels, on_event=on_event, stop=stop))
        return results


def cross_validate(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    model_config: ModelConfig = ModelConfig(),
    n_splits: int = 5,
    epochs: int = 5,
    batch_size: int = 128,
    reuse_model: bool = False,
    random_state: int = 1,
    seed: int | None = 0,
    executor: FoldExecutor | None = None,
    on_event: EventSink | None = None,
    stop: StopFlag | None = None,
    data_source: str = "",
) -> CVResult:
    """k-fold cross-validation on (n, 28, 28) uint8 images, as the tutorial's evaluate_model.

    KFold(n_splits, shuffle=True, random_state=1); each fold trains `epochs` epochs and is scored
    on its held-out part. reuse_model=True: one network across all folds (the tutorial's leak).
    """
    images, labels = np.asarray(images), np.asarray(labels)
    check_settings(len(images), n_splits, epochs, batch_size)
    t0 = time.perf_counter()
    tasks = make_tasks(
        len(images),
        model_config=model_config,
        n_splits=n_splits,
        epochs=epochs,
        batch_size=batch_size,
        random_state=random_state,
        seed=seed,
    )
    if on_event:
        on_event({"type": "start", "folds": n_splits, "epochs": epochs})
    if reuse_model:  # inherently sequential: each fold continues the previous fold's network
        executor = SerialExecutor()
        shared = build_model(model_config, seed=seed)
        folds = []
        for task in tasks:
            if stop is not None and stop.is_set():
                break
            folds.append(run_fold(task, images, labels, model=shared, on_event=on_event, stop=stop))
    else:
        executor = executor or SerialExecutor()
        folds = executor.run(tasks, images, labels, on_event=on_event, stop=stop)
    return CVResult(
        folds=folds,
        n_splits=n_splits,
        epochs=epochs,
        batch_size=batch_size,
        reuse_model=reuse_model,
        model_config=model_config.to_dict(),
        random_state=random_state,
        seconds=time.perf_counter() - t0,
        workers=executor.workers,
        data_source=data_source,
        stopped=bool(stop is not None and stop.is_set()),
    )


def load_cv_run(id_or_name: str, learner: str | None = None) -> CVResult:
    """A saved cross-validation (store.load_cv) as a CVResult; StoreError if it cannot be read."""
    from digitlab import store

    d = store.load_cv(id_or_name, learner)
    try:
        return CVResult.from_dict(
            {
                k: v
                for k, v in d.items()
                if k not in ("id", "name", "version", "learner", "saved_at")
            }
        )
    except (TypeError, KeyError, ValueError) as e:
        raise store.StoreError(
            f"The saved cross-validation {d['name']!r} is damaged or from another version ({e})."
        ) from None


def save_cv_pair(fresh, reused, *, learner: str | None = None) -> dict[str, str]:
    """Keep a fresh k-fold run and its reused partner (either may be None or empty) in the store;
    the fresh one names its partner in meta["pair"]. Returns {"fresh": id, "reused": id}."""
    from digitlab import store

    ids: dict[str, str] = {}
    if reused is not None and reused.folds:
        ids["reused"] = store.save_cv(reused.to_dict(), learner=learner)
    if fresh is not None and fresh.folds:
        if "reused" in ids:
            fresh.meta["pair"] = ids["reused"]
        ids["fresh"] = store.save_cv(fresh.to_dict(), learner=learner)
    return ids


def load_cv_pair(id_or_name: str, learner: str | None = None) -> dict[str, CVResult]:
    """A saved run as the Evaluate page shows it: {"fresh": run} or {"reused": run}, with a fresh
    run's reused partner beside it while the learner still lists it. StoreError as load_cv_run."""
    from digitlab import store

    run = load_cv_run(id_or_name, learner)
    if run.reuse_model:
        return {"reused": run}
    view = {"fresh": run}
    partner = run.meta.get("pair")
    if partner and partner in {r["id"] for r in store.list_cv(learner)}:
        view["reused"] = load_cv_run(partner, learner)
    return view
