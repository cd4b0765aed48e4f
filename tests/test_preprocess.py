"""canvas_to_mnist checked against MNIST's own digits, both canvas conventions, and bad drawings."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from digitlab import preprocess
from digitlab.preprocess import (
    ALL_INK,
    NOTHING_DRAWN,
    ONLY_A_DOT,
    PreprocessError,
    canvas_to_mnist,
    describe_problem,
    ink_channel,
    naive_resize,
)


@pytest.fixture(scope="module")
def mnist_digits():
    """40 MNIST test digits (uint8) and labels: full MNIST if DIGITLAB_MNIST, else the subset."""
    from digitlab.data import load_mnist, offline_subset

    digits = load_mnist() if os.environ.get("DIGITLAB_MNIST") else offline_subset()
    return digits.x_test[:40], digits.y_test[:40]


def to_canvas(ink: np.ndarray, convention: str) -> np.ndarray:
    """(H, W) uint8 ink -> (H, W, 4) uint8 as the canvas returns it."""
    out = np.zeros((*ink.shape, 4), dtype="uint8")
    if convention == "transparent":
        out[..., 3] = ink  # black strokes on a transparent background
    else:
        out[..., :3] = ink[..., None]  # white strokes on opaque black
        out[..., 3] = 255
    return out


def drawn_large(digit: np.ndarray, *, side=200, at=(30, 60), canvas=280) -> np.ndarray:
    """An MNIST digit's ink box upscaled so its longest side is `side` px, pasted at `at`."""
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    box = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = side / max(box.shape)
    size = (max(1, round(box.shape[1] * scale)), max(1, round(box.shape[0] * scale)))
    big = np.asarray(Image.fromarray(box).resize(size, Image.Resampling.BICUBIC))
    out = np.zeros((canvas, canvas), dtype="uint8")
    top, left = at
    h, w = big.shape
    out[top : top + h, left : left + w] = big[: canvas - top, : canvas - left]
    return out


def correlation(a, b) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_real_mnist_centre_of_mass_is_the_target(mnist_digits):
    x, _ = mnist_digits
    com = np.mean([ndimage.center_of_mass(d.astype("float32")) for d in x], axis=0)
    assert np.allclose(com, preprocess.TARGET_COM, atol=0.2), com


@pytest.mark.parametrize("convention", ["transparent", "black"])
def test_mnist_digit_drawn_large_off_centre_comes_back(mnist_digits, convention):
    x, _ = mnist_digits
    corr, corr_plain, err = [], [], []
    for digit in x:
        canvas = to_canvas(drawn_large(digit, side=200, at=(50, 20)), convention)
        original = digit.astype("float32") / 255
        plain = canvas_to_mnist(canvas, normalise_stroke=False)  # the MNIST recipe alone
        out = canvas_to_mnist(canvas)
        corr_plain.append(correlation(plain, original))
        corr.append(correlation(out, original))
        err.append(np.abs(plain - original).mean())
    assert np.median(corr_plain) > 0.95 and min(corr_plain) > 0.85, corr_plain
    assert np.mean(err) < 0.05, np.mean(err)
    # Stroke normalisation moves MNIST's own widths to its median (a bold 5 px zero to 2.4 px).
    assert np.median(corr) > 0.9 and min(corr) > 0.5, corr


@pytest.mark.parametrize("convention", ["transparent", "black"])
def test_output_shape_dtype_range_and_centre(mnist_digits, convention):
    x, _ = mnist_digits
    for digit in x[:15]:
        out = canvas_to_mnist(to_canvas(drawn_large(digit, side=150, at=(120, 10)), convention))
        assert out.shape == (28, 28) and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() == pytest.approx(1.0)
        com = ndimage.center_of_mass(out)
        assert np.hypot(com[0] - 14.0, com[1] - 14.0) < 0.5, com
        rows, cols = np.flatnonzero(out.max(1) > 0.1), np.flatnonzero(out.max(0) > 0.1)
        longest = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
        assert 19 <= longest <= 22, longest  # the 20 px box (+ anti-aliased edge)
        # (A lopsided digit centred by its mass may touch the border, as some MNIST digits do.)


def test_both_conventions_give_the_same_input():
    from digitlab.pendigits import load_strokes, render

    strokes = load_strokes()
    for item in strokes[:6]:
        a = render(item["strokes"], stroke_width=18, height=170, convention="transparent")
        b = render(item["strokes"], stroke_width=18, height=170, convention="black")
        assert not np.array_equal(a, b)
        np.testing.assert_allclose(canvas_to_mnist(a), canvas_to_mnist(b), atol=1e-6)
        np.testing.assert_allclose(naive_resize(a), naive_resize(b), atol=1e-6)


def test_ink_channel_conventions():
    ink = np.zeros((50, 40), dtype="uint8")
    ink[10:30, 15:20] = 255
    for convention in ("transparent", "black"):
        np.testing.assert_allclose(ink_channel(to_canvas(ink, convention)), ink / 255)
    coloured = np.zeros((50, 40, 4), dtype="uint8")  # red strokes on a transparent background
    coloured[10:30, 15:20] = (255, 0, 0, 255)
    np.testing.assert_allclose(ink_channel(coloured), ink / 255)


def test_stroke_width_is_normalised():
    """The same digit with a 10 px and a 28 px brush gives nearly the same 28x28."""
    from digitlab.pendigits import load_strokes, render

    strokes = load_strokes()
    for item in strokes[:8]:
        thin = render(item["strokes"], stroke_width=10, height=230)
        fat = render(item["strokes"], stroke_width=28, height=130)
        with_norm = correlation(canvas_to_mnist(thin), canvas_to_mnist(fat))
        without = correlation(
            canvas_to_mnist(thin, normalise_stroke=False),
            canvas_to_mnist(fat, normalise_stroke=False),
        )
        assert with_norm > 0.85 and with_norm > without, (with_norm, without)
        widths = [
            preprocess.stroke_width(
                np.asarray(Image.fromarray(canvas_to_mnist(c)).resize((112, 112))) > 0.5
            )
            / 4
            for c in (thin, fat)
        ]
        assert all(1.6 < w < 3.6 for w in widths), widths


@pytest.mark.parametrize("convention", ["transparent", "black"])
def test_empty_canvas(convention):
    empty = to_canvas(np.zeros((280, 280), dtype="uint8"), convention)
    assert canvas_to_mnist(empty) is None
    assert describe_problem(empty) == NOTHING_DRAWN
    faint = to_canvas(np.full((280, 280), 60, dtype="uint8"), convention)  # under half ink
    assert describe_problem(faint) == NOTHING_DRAWN


@pytest.mark.parametrize("convention", ["transparent", "black"])
def test_a_dot_is_no_digit(convention):
    yy, xx = np.mgrid[:280, :280]
    tap = ((yy - 100) ** 2 + (xx - 170) ** 2 <= 9**2).astype("uint8") * 255  # one 18 px tap
    assert describe_problem(to_canvas(tap, convention)) == ONLY_A_DOT
    assert canvas_to_mnist(to_canvas(tap, convention)) is None
    speck = np.zeros((280, 280), dtype="uint8")
    speck[5:7, 270:272] = 255
    assert describe_problem(to_canvas(speck, convention)) == ONLY_A_DOT
    stroke = np.zeros((280, 280), dtype="uint8")
    stroke[40:240, 130:145] = 255  # a "1": narrow but long is a digit
    assert describe_problem(to_canvas(stroke, convention)) is None
    assert canvas_to_mnist(to_canvas(stroke, convention)) is not None


@pytest.mark.parametrize("convention", ["transparent", "black"])
def test_all_ink_canvas(convention):
    full = np.full((280, 280), 255, dtype="uint8")
    full[100:120, 100:200] = 0  # a scratch cleared out of a filled canvas
    canvas = to_canvas(full, convention)
    assert describe_problem(canvas) == ALL_INK
    assert canvas_to_mnist(canvas) is None


def test_ink_touching_the_edges(mnist_digits):
    x, _ = mnist_digits
    for digit in x[:10]:
        inside = drawn_large(digit, side=200, at=(40, 40))
        edge = np.zeros((200, 200), dtype="uint8")  # a canvas that the digit fills edge to edge
        edge[:] = inside[40:240, 40:240]
        a = canvas_to_mnist(to_canvas(inside, "black"))
        b = canvas_to_mnist(to_canvas(edge, "transparent"))
        assert b is not None and correlation(a, b) > 0.98


def test_any_canvas_size(mnist_digits):
    x, _ = mnist_digits
    ink = drawn_large(x[0], side=120, at=(10, 200), canvas=400)[:150]  # 150 x 400, not square
    out = canvas_to_mnist(to_canvas(ink, "transparent"))
    assert out.shape == (28, 28)


def test_naive_resize_squashes_the_whole_canvas(mnist_digits):
    x, _ = mnist_digits
    canvas = to_canvas(drawn_large(x[0], side=140, at=(0, 0)), "transparent")
    out = naive_resize(canvas)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out[14:].sum() == 0 and out[:, 14:].sum() == 0  # stays in the top-left quarter


@pytest.mark.parametrize(
    "bad", [np.zeros((28, 28, 2), dtype="uint8"), np.zeros((0, 5, 4)), np.array(["a"])]
)
def test_not_an_image_is_one_clear_error(bad):
    with pytest.raises(PreprocessError, match="drawing"):
        canvas_to_mnist(bad)


def test_enlarge_shows_each_pixel_as_a_square():
    rng = np.random.default_rng(3)
    image = rng.random((28, 28)).astype("float32")
    big = preprocess.enlarge(image, size=252)  # 9 screen px per pixel
    assert big.shape == (252, 252) and big.dtype == np.uint8
    blocks = big.reshape(28, 9, 28, 9)
    assert (blocks == blocks[:, :1, :, :1]).all()  # one grey level per 9x9 block
    np.testing.assert_array_equal(blocks[:, 0, :, 0], np.round(image * 255).astype("uint8"))
