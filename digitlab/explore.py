"""What the pages show about data and results, computed headless: facts, samples, means, errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digitlab.data import Digits, normalise


def facts(digits: Digits) -> list[dict]:
    """The tutorial's printed facts as table rows: shapes, sizes, label range, per split."""
    rows = []
    for part in ("train", "test"):
        x, y = getattr(digits, f"x_{part}"), getattr(digits, f"y_{part}")
        rows.append(
            {
                "split": part,
                "images shape": str(x.shape),  # (n, 28, 28)
                "labels shape": str(y.shape),  # (n,)
                "digits": len(x),
                "pixel dtype": str(x.dtype),
                "pixel range": f"{int(x.min())}..{int(x.max())}",
                "labels": ", ".join(str(v) for v in np.unique(y)),
                "megabytes": round(x.nbytes / 2**20, 1),
            }
        )
    return rows


def split(digits: Digits, part: str) -> tuple[np.ndarray, np.ndarray]:
    if part not in ("train", "test"):
        raise ValueError(f"part must be 'train' or 'test', not {part!r}.")
    return getattr(digits, f"x_{part}"), getattr(digits, f"y_{part}")


def sample(
    labels: np.ndarray, *, n: int = 9, digit: int | None = None, seed: int = 0
) -> np.ndarray:
    """Indices of up to n random digits (only `digit` if given), reproducible by seed."""
    pool = np.flatnonzero(labels == digit) if digit is not None else np.arange(len(labels))
    rng = np.random.default_rng(seed)
    return rng.choice(pool, size=min(n, len(pool)), replace=False) if len(pool) else pool


def class_counts(labels: np.ndarray) -> dict[int, int]:
    counts = np.bincount(np.asarray(labels, dtype="int64"), minlength=10)
    return {d: int(c) for d, c in enumerate(counts)}


def mean_images(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(10, 28, 28) float32 in [0, 1]: the average image of each digit (zeros if absent)."""
    out = np.zeros((10, 28, 28), dtype="float32")
    for d in range(10):
        mask = labels == d
        if mask.any():
            out[d] = normalise(images[mask]).mean(axis=0)
    return out


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(10, 10) counts, rows true digit, columns predicted (scikit-learn's confusion_matrix)."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=list(range(10)))


def misclassified(y_true: np.ndarray, y_pred: np.ndarray, *, n: int = 12) -> np.ndarray:
    """Indices of the first n test digits the model got wrong."""
    return np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))[:n]


def test_report(model, digits: Digits, *, n_wrong: int = 12) -> dict:
    """After training: predictions on the test set, their confusion matrix, the first mistakes."""
    from digitlab.training import predictions

    pred = predictions(model, digits.x_test)  # (n,) int
    wrong = misclassified(digits.y_test, pred, n=n_wrong)
    return {
        "confusion": confusion(digits.y_test, pred),  # (10, 10)
        "wrong_images": digits.x_test[wrong],  # (k, 28, 28) uint8
        "wrong_titles": [f"true {digits.y_test[i]}, said {pred[i]}" for i in wrong],
        "n_wrong": int((pred != digits.y_test).sum()),
        "n_test": len(pred),
    }


@dataclass
class Reading:
    """What the network makes of one canvas drawing."""

    image: np.ndarray | None  # (28, 28) float32 in [0, 1]: what the network received
    probs: np.ndarray | None  # (10,) probabilities
    problem: str | None  # one sentence when there is no digit to read

    @property
    def digit(self) -> int | None:
        return None if self.probs is None else int(np.argmax(self.probs))

    @property
    def confidence(self) -> float | None:
        return None if self.probs is None else float(np.max(self.probs))


def read_drawing(model, rgba: np.ndarray | None) -> Reading:
    """Canvas RGBA (H, W, 4) uint8 -> the MNIST-style input and the model's probabilities.

    Calls the model directly (predict_proba), never model.predict (BENCHMARKS.md, "Prediction").
    """
    from digitlab.models import predict_proba
    from digitlab.preprocess import NOTHING_DRAWN, read_canvas

    if rgba is None:
        return Reading(None, None, NOTHING_DRAWN)
    image, problem = read_canvas(rgba)  # (28, 28) float32, or None and why
    if problem is not None:
        return Reading(None, None, problem)
    probs = predict_proba(model, image[None])[0] if model is not None else None
    return Reading(image, probs, None)


def probability_bars(probs) -> list[dict]:
    """(10,) probabilities, or None before there is a reading -> one row per digit for
    charts.PROBABILITY_SPEC: its probability, and whether it is the answer (the most likely
    digit), so the chart colours the answer apart. None gives ten empty bars: the chart stays on
    the page between drawings and only its data changes."""
    p = np.zeros(10) if probs is None else np.asarray(probs, dtype=float)
    top = -1 if probs is None else int(np.argmax(p))
    return [{"digit": str(d), "probability": float(v), "answer": d == top} for d, v in enumerate(p)]


def fold_histories(events: list[dict], *, variant: str = "fresh") -> dict[int, dict[str, list]]:
    """Live learning curves from a cross-validation job's epoch events: fold -> metric lists."""
    out: dict[int, dict[str, list]] = {}
    for e in events:
        if e.get("type") != "epoch" or e.get("variant", "fresh") != variant:
            continue
        h = out.setdefault(int(e["fold"]), {})
        for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if k in e:
                h.setdefault(k, []).append(e[k])
    return out


def fold_table(folds) -> list[dict]:
    """One row per finished fold (crossval.FoldResult objects) for a table."""
    return [
        {
            "fold": f.fold,
            "accuracy": round(f.accuracy, 4),
            "loss": round(f.loss, 4),
            "train digits": f.n_train,
            "test digits": f.n_test,
            "seconds": round(f.seconds, 1),
            "stopped": f.stopped,
        }
        for f in folds
    ]
