"""digitlab.data: every source, and one clear error for each kind of bad dataset."""

import gzip
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from digitlab.data import DataError, Digits, from_path, load_mnist, normalise, one_hot

MNIST = os.environ.get("DIGITLAB_MNIST")
needs_mnist = pytest.mark.skipif(
    not (MNIST and Path(MNIST).exists()), reason="full MNIST: set DIGITLAB_MNIST to mnist.npz"
)


def small_arrays(n_train=30, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }


def write_idx(path: Path, arr: np.ndarray, *, magic=None, gz=False):
    magic = magic or (2051 if arr.ndim == 3 else 2049)
    header = struct.pack(">II", magic, len(arr)) + (
        struct.pack(">II", *arr.shape[1:]) if arr.ndim == 3 else b""
    )
    raw = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def write_idx_folder(folder: Path, arrays, *, gz):
    names = {
        "x_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte",
    }
    folder.mkdir(exist_ok=True)
    for key, name in names.items():
        write_idx(folder / (name + (".gz" if gz else "")), arrays[key], gz=gz)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No DIGITLAB_MNIST, no Keras cache, no network."""
    monkeypatch.delenv("DIGITLAB_MNIST", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("DIGITLAB_OFFLINE", "1")


def test_npz_roundtrip(tmp_path):
    arrays = small_arrays()
    np.savez(tmp_path / "m.npz", **arrays)
    d = from_path(tmp_path / "m.npz")
    assert d.kind == "custom" and "m.npz" in d.source
    for k, v in arrays.items():
        np.testing.assert_array_equal(getattr(d, k), v)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder(tmp_path, gz):
    arrays = small_arrays()
    write_idx_folder(tmp_path / "idx", arrays, gz=gz)
    d = load_mnist(tmp_path / "idx")
    np.testing.assert_array_equal(d.x_train, arrays["x_train"])
    np.testing.assert_array_equal(d.y_test, arrays["y_test"])


def test_env_variable_is_used(tmp_path, monkeypatch):
    np.savez(tmp_path / "env.npz", **small_arrays())
    monkeypatch.setenv("DIGITLAB_MNIST", str(tmp_path / "env.npz"))
    assert load_mnist().origin == str(tmp_path / "env.npz")


def test_offline_subset(offline):
    t0 = time.perf_counter()
    d = load_mnist()
    assert time.perf_counter() - t0 < 30  # no long network timeout on the way
    assert d.kind == "subset" and "offline subset" in d.source
    assert d.x_train.shape == (4000, 28, 28) and d.x_test.shape == (1000, 28, 28)
    assert d.x_train.dtype == np.uint8 and d.x_train.max() == 255
    # stratified: every digit 100 times in the test part; the same split on every call
    np.testing.assert_array_equal(np.bincount(d.y_test, minlength=10), [100] * 10)
    np.testing.assert_array_equal(load_mnist().y_train, d.y_train)


def test_digits_are_read_only_and_take_slices(offline):
    d = load_mnist()
    with pytest.raises(ValueError):
        d.x_train[0, 0, 0] = 1
    small = d.take(100, 20)
    assert small.x_train.shape == (100, 28, 28) and small.y_test.shape == (20,)
    assert small.kind == "custom" and small.source.endswith("(first 100/20)")
    # a limit past the data's size cuts nothing, and names no count the data does not have
    # (DIGITLAB_LIMIT=10000 on the 4,000/1,000 offline subset said "first 10,000/10,000")
    assert d.take(10_000) is d
    part = d.take(10_000, 500)
    assert part.x_train.shape[0] == len(d.x_train) and part.source.endswith(
        f"(first {len(d.x_train):,}/500)"
    )


def test_normalise_and_one_hot():
    x = normalise(np.array([[[0, 255]]], dtype=np.uint8))
    assert x.dtype == np.float32 and x.max() == 1.0
    np.testing.assert_array_equal(one_hot(np.array([3]))[0], np.eye(10)[3])


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def bad(tmp_path, name, **changes):
    arrays = small_arrays()
    arrays.update(changes)
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "make, fault",
    [
        (lambda t: t / "missing.npz", "no such file"),
        (lambda t: write(t / "notes.txt", b"hello"), "not an .npz"),
        (lambda t: write(t / "fake.npz", b"PK\x03\x04garbage"), "npz"),
        (lambda t: bad(t, "shape.npz", x_train=np.zeros((30, 27, 28), np.uint8)), "(n, 28, 28)"),
        (lambda t: bad(t, "labels.npz", y_test=np.full(10, 11, np.int64)), "outside 0..9"),
        (lambda t: bad(t, "neg.npz", y_train=np.full(30, -1, np.int64)), "outside 0..9"),
        (lambda t: bad(t, "count.npz", y_train=np.zeros(29, np.uint8)), "counts must agree"),
        (lambda t: bad(t, "dtype.npz", x_train=np.full((30, 28, 28), 0.5)), "0..255"),
        (lambda t: bad(t, "strlab.npz", y_train=np.array(["a"] * 30)), "integer labels"),
    ],
    ids=[
        "missing",
        "text",
        "bad-zip",
        "shape",
        "labels",
        "negative",
        "count",
        "dtype",
        "str-labels",
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, make, fault):
    path = make(tmp_path)
    with pytest.raises(DataError) as e:
        load_mnist(path)
    msg = str(e.value)
    assert fault in msg and Path(path).name in msg and "\n" not in msg


def test_truncated_npz(tmp_path):
    good = bad(tmp_path, "good.npz")
    data = good.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.npz"):
        load_mnist(tmp_path / "cut.npz")


def test_missing_array_in_npz(tmp_path):
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DataError, match="missing array"):
        load_mnist(tmp_path / "partial.npz")


def test_idx_faults(tmp_path):
    arrays = small_arrays()
    write_idx_folder(tmp_path / "magic", arrays, gz=False)
    write_idx(tmp_path / "magic" / "train-labels-idx1-ubyte", arrays["y_train"], magic=1234)
    with pytest.raises(DataError, match="wrong magic number 1234"):
        load_mnist(tmp_path / "magic")

    write_idx_folder(tmp_path / "cut", arrays, gz=False)
    f = tmp_path / "cut" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        load_mnist(tmp_path / "cut")

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no train-images-idx3-ubyte"):
        load_mnist(tmp_path / "empty")


def test_wrong_explicit_path_never_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("DIGITLAB_MNIST", str(tmp_path / "typo.npz"))
    with pytest.raises(DataError, match="typo.npz"):
        load_mnist()


def test_imports_stay_light():
    code = (
        "import sys, digitlab, digitlab.data, digitlab.models, digitlab.training, "
        "digitlab.crossval, digitlab.cli\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'streamlit') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@needs_mnist
def test_full_mnist():
    d = load_mnist(MNIST)
    assert d.kind == "full" and d.source.startswith("MNIST 60,000/10,000")
    assert d.y_train[:5].tolist() == [5, 0, 4, 1, 9] and d.y_test[:5].tolist() == [7, 2, 1, 0, 4]
    assert abs(normalise(d.x_train).mean() - 0.1307) < 1e-3
    assert isinstance(d, Digits)


def test_counted_nouns_are_singular_for_exactly_one():
    from digitlab.words import count

    assert [count(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
    assert count(60000, "digit") == "60,000 digits"
    assert count(1, "fold", "folds") == "1 fold" and count(3, "person", "people") == "3 people"
