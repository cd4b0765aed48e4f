"""What the pages show about data and results, computed headless: facts, samples, means, errors."""

from __future__ import annotations

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


def accuracy_on(model, images: np.ndarray, labels: np.ndarray) -> float | None:
    """Share of (n, 28, 28) float32 images in [0, 1] the model labels right; None when n is 0."""
    from digitlab.models import predict_proba

    if len(images) == 0:
        return None
    pred = predict_proba(model, images).argmax(axis=1)
    return float((pred == np.asarray(labels)).mean())
