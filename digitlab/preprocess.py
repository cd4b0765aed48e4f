"""Canvas drawing -> 28x28 MNIST-style input: the ink, the MNIST recipe, and why a drawing is no digit.

MNIST's recipe (LeCun et al.): crop to the ink, fit the longest side into 20 px keeping the aspect
ratio (anti-aliased), paste into 28x28 so that the centre of mass is at the centre. On real MNIST
the mean centre of mass (scipy.ndimage.center_of_mass, row/column index coordinates) is
(14.0, 14.0) with a spread of 0.3 px, so that is where we put it.

One more step makes drawings read like MNIST whatever the brush: MNIST strokes are about 2.4 px
wide after the 20 px fit (median; 2-3.5 px for 80% of digits), while a 10 px brush on a tall
digit comes out under 1 px and a 28 px brush on a small digit over 4 px. `canvas_to_mnist`
measures the stroke width (distance transform along the stroke's ridge) and dilates or erodes
the ink so that it lands on MNIST's width (see BENCHMARKS.md, "Drawn digits").
"""

from __future__ import annotations

import math

import numpy as np

BOX = 20  # MNIST: the longest side of the ink fits 20 px
SIZE = 28  # MNIST: 28x28 images
TARGET_COM = (14.0, 14.0)  # real MNIST's mean centre of mass (row, col), measured on x_train
TARGET_STROKE = 2.4  # px at 28x28: median MNIST stroke width, by stroke_width() at 4x upscale
INK_LEVEL = 0.5  # a pixel with at least this much ink counts as drawn (crop, masks, checks)
DOT_FRACTION = 0.06  # ink whose longest side is under 6% of the canvas's longer side is a dot...
DOT_STROKES = 2.0  # ...and so is ink whose longest side is under 2 stroke widths (one tap)
FULL_FRACTION = 0.8  # a canvas with more than 80% of its pixels drawn is no digit

NOTHING_DRAWN = "Nothing drawn yet."
ONLY_A_DOT = "That is only a dot: draw a whole digit."
ALL_INK = "The whole canvas is ink: clear it and draw a digit."


class PreprocessError(ValueError):
    """An image that is no canvas drawing (wrong shape or type); one sentence for people."""


# ---------------------------------------------------------------------------------------------
# Ink


def ink_channel(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 canvas image -> (H, W) float32 ink in [0, 1], from either convention.

    - Some transparency (alpha varies): strokes on a transparent background, as
      streamlit-drawable-canvas gives without background_color. The ink is alpha, whatever the
      stroke colour (black strokes have zero luminance, so luminance cannot be it).
    - Opaque (alpha constant 255, or no alpha): the ink is luminance (white ink on black, the
      canvas with background_color black). Dark ink on light paper is not guessed at: a canvas
      filled with white and a scratch cleared out of it must read as all ink, not as a digit.
    An opaque black canvas and a transparent canvas covered in black ink are the same pixels;
    both read as nothing drawn.
    """
    a = np.asarray(rgba)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or min(a.shape[:2]) < 1:
        raise PreprocessError(
            f"A drawing must be an H x W x 4 (RGBA) image, not an array of shape {a.shape}."
        )
    if a.dtype == np.uint8:
        a = a.astype("float32") / 255.0
    elif np.issubdtype(a.dtype, np.number) and a.dtype != np.bool_:
        a = a.astype("float32")
        if a.max(initial=0) > 1.0:
            a = a / 255.0
    else:
        raise PreprocessError(f"A drawing must hold numbers, not {a.dtype}.")
    a = np.clip(a, 0.0, 1.0)
    channels = a.shape[2]
    if channels == 4 and a[..., 3].min() < 1.0:
        return np.ascontiguousarray(a[..., 3])  # strokes on a transparent background
    if channels == 1:
        return np.ascontiguousarray(a[..., 0])
    lum = a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114  # ITU-R 601 luma
    return np.ascontiguousarray(lum, dtype="float32")


def stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width in pixels of a boolean ink mask: 2 x median ridge distance - 1.

    The Euclidean distance transform along the ridge of a stroke w pixels wide is (w + 1) / 2.
    """
    from scipy import ndimage

    if not mask.any():
        return 0.0
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))
    ridge = (dist > 0) & (dist >= ndimage.maximum_filter(dist, size=3))
    return float(2.0 * np.median(dist[ridge]) - 1.0)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) inclusive of the True pixels, or None."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _analyse(ink: np.ndarray):
    """(problem sentence or None, the ink's box, its stroke width): measured once per drawing."""
    mask = ink >= INK_LEVEL
    box = _bbox(mask)
    if box is None:
        return NOTHING_DRAWN, None, 0.0
    if mask.mean() > FULL_FRACTION:
        return ALL_INK, box, 0.0
    top, bottom, left, right = box
    extent = max(bottom - top, right - left) + 1
    if extent < DOT_FRACTION * max(ink.shape):
        return ONLY_A_DOT, box, 0.0
    width = stroke_width(mask[top : bottom + 1, left : right + 1])
    if extent < DOT_STROKES * width:
        return ONLY_A_DOT, box, width
    return None, box, width


def describe_problem(rgba: np.ndarray) -> str | None:
    """One sentence saying why the canvas holds no digit to read, or None when it does.

    "Nothing drawn yet." (no pixel at least half inked); "That is only a dot: draw a whole
    digit." (the ink's longest side is under 6% of the canvas or under 2 stroke widths);
    "The whole canvas is ink: clear it and draw a digit." (over 80% of the pixels drawn).
    canvas_to_mnist returns None exactly when this returns a sentence.
    """
    return _analyse(ink_channel(rgba))[0]


# ---------------------------------------------------------------------------------------------
# The MNIST recipe


def _normalise_stroke(mask: np.ndarray, *, target: float, width: float | None = None) -> np.ndarray:
    """Dilate or erode a cropped boolean mask so its strokes are `target` px wide after the fit.

    With stroke width t and longest side L (canvas px), growing every edge by r gives width
    t + 2r and side L + 2r; solving (t + 2r) * BOX / (L + 2r) = target for r.
    """
    from scipy import ndimage

    t = stroke_width(mask) if width is None else width
    side = max(mask.shape)
    k = target / BOX
    r = (k * side - t) / (2.0 * (1.0 - k))
    r = max(r, -(t - 2.0) / 2.0)  # never erode a stroke below 2 canvas px
    if abs(r) < 0.5:
        return mask
    if r > 0:
        pad = math.ceil(r) + 1
        grown = ndimage.distance_transform_edt(~np.pad(mask, pad)) <= r
        box = _bbox(grown)
        return grown[box[0] : box[1] + 1, box[2] : box[3] + 1]
    shrunk = ndimage.distance_transform_edt(np.pad(mask, 1)) > -r
    box = _bbox(shrunk)
    if box is None:
        return mask
    return shrunk[box[0] : box[1] + 1, box[2] : box[3] + 1]


def _fit(ink: np.ndarray) -> np.ndarray:
    """(h, w) float ink cropped to its box -> (28, 28) float32: longest side 20, centre of mass
    at TARGET_COM, by one anti-aliased Pillow resize of a source window (no second resampling)."""
    from PIL import Image
    from scipy import ndimage

    h, w = ink.shape
    scale = BOX / max(h, w)  # output px per source px
    cy, cx = ndimage.center_of_mass(ink)  # index coordinates: pixel i has its centre at i
    span = SIZE / scale  # the 28x28 window, in source px
    top = cy + 0.5 - (TARGET_COM[0] + 0.5) / scale
    left = cx + 0.5 - (TARGET_COM[1] + 0.5) / scale
    # Pillow's resize box must lie inside the image: pad each side only as far as the window
    # reaches past the ink (a full-span pad on every side cost 7x the pixels).
    pt, pl = max(0, math.ceil(-top)) + 1, max(0, math.ceil(-left)) + 1
    pb, pr = max(0, math.ceil(top + span - h)) + 1, max(0, math.ceil(left + span - w)) + 1
    padded = np.pad(ink.astype("float32"), ((pt, pb), (pl, pr)))
    image = Image.fromarray(padded, mode="F")
    box = (left + pl, top + pt, left + pl + span, top + pt + span)
    out = np.asarray(image.resize((SIZE, SIZE), resample=Image.Resampling.BOX, box=box))
    return np.clip(out, 0.0, 1.0).astype("float32")


def canvas_to_mnist(rgba: np.ndarray, *, normalise_stroke: bool = True) -> np.ndarray | None:
    """(H, W, 4) uint8 canvas image -> (28, 28) float32 in [0, 1], white digit on black; None
    when there is no digit to read (describe_problem says why).

    Crop to the ink, bring the strokes to MNIST's width (normalise_stroke), fit the longest side
    into 20 px keeping the aspect ratio (anti-aliased), place the centre of mass at (14, 14),
    and scale so the brightest pixel is 1 (as in every MNIST digit).
    """
    return read_canvas(rgba, normalise_stroke=normalise_stroke)[0]


def read_canvas(
    rgba: np.ndarray, *, normalise_stroke: bool = True
) -> tuple[np.ndarray | None, str | None]:
    """(the 28x28 input or None, the sentence saying why not or None), measuring the ink once."""
    ink = ink_channel(rgba)
    problem, box, width = _analyse(ink)
    if problem is not None:
        return None, problem
    top, bottom, left, right = box
    if normalise_stroke:
        mask = ink[top : bottom + 1, left : right + 1] >= INK_LEVEL
        crop = _normalise_stroke(mask, target=TARGET_STROKE, width=width).astype("float32")
    else:
        crop = ink[top : bottom + 1, left : right + 1]
    out = _fit(crop)  # (28, 28) float32
    peak = out.max()
    return (out / peak if peak > 0 else out), None


def read_image_file(path) -> np.ndarray:
    """An image file -> (H, W, 4) uint8 RGBA as the canvas gives it: strokes on a transparent
    background stay so; an opaque image with light ink on dark stays so; dark ink on light paper
    (mean luminance over half) is inverted to light ink on dark. PreprocessError (one sentence
    naming the file) when it is missing or not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            has_alpha = im.mode in ("RGBA", "LA") or "transparency" in im.info
            rgba = np.asarray(im.convert("RGBA"))
    except FileNotFoundError:
        raise PreprocessError(f"{path}: no such image file.") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise PreprocessError(f"{path}: not a readable image ({e}).") from None
    if not has_alpha or rgba[..., 3].min() == 255:
        lum = rgba[..., :3].mean(axis=2)
        if lum.mean() > 127:  # dark ink on light paper: make it light ink on black, like MNIST
            rgba = rgba.copy()
            rgba[..., :3] = 255 - rgba[..., :3]
    return rgba


def naive_resize(rgba: np.ndarray) -> np.ndarray:
    """The baseline: the whole canvas's ink squashed to (28, 28) float32 in [0, 1], no recipe."""
    from PIL import Image

    ink = ink_channel(rgba)
    image = Image.fromarray(ink, mode="F")
    out = np.asarray(image.resize((SIZE, SIZE), resample=Image.Resampling.BOX))
    return np.clip(out, 0.0, 1.0).astype("float32")


def enlarge(image: np.ndarray, size: int = 252) -> np.ndarray:
    """(28, 28) float in [0, 1] -> (size, size) uint8 with each pixel a visible square (nearest
    neighbour), for showing what the network receives as a plain image."""
    from PIL import Image

    grey = np.clip(np.asarray(image, dtype="float32") * 255.0 + 0.5, 0, 255).astype("uint8")
    return np.asarray(Image.fromarray(grey).resize((size, size), Image.Resampling.NEAREST))
