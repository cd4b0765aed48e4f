"""Pen trajectories (UCI pendigits) drawn the way a person's strokes land on the Draw canvas.

The strokes file (see ../shared/data/README.md beside the repository) holds tablet coordinates 0..500 with y
pointing up; `render` flips y, fits the digit to a given height, and draws round-capped,
round-jointed strokes with Pillow ImageDraw (a line per segment and a disc at every point),
at 4x and then downsampled, anti-aliased as a browser canvas is. It returns the RGBA array that
streamlit-drawable-canvas gives: black strokes on a transparent background, or white strokes on
an opaque black background.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

# The shared data folder beside the repository (../shared/data), unless DIGITLAB_PENDIGITS says
DEFAULT_PATH = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "pendigits"
    / "pendigits_train_strokes.json"
)
CONVENTIONS = ("transparent", "black")  # black ink, no background colour / white ink on black
SUPERSAMPLE = 4  # draw at 4x and downsample with a box filter: anti-aliased edges


def load_strokes(path: str | os.PathLike | None = None) -> list[dict]:
    """The training writers' digits: dicts with label, writer, sample, strokes [[[x, y], ...]]."""
    p = Path(path or os.environ.get("DIGITLAB_PENDIGITS") or DEFAULT_PATH)
    with open(p) as f:
        return json.load(f)["train"]


def render(
    strokes: list,
    *,
    stroke_width: float = 18,
    height: float = 180,
    center: tuple[float, float] | None = None,
    size: int = 280,
    convention: str = "transparent",
) -> np.ndarray:
    """One digit's pen strokes -> (size, size, 4) uint8 RGBA canvas image.

    The digit is scaled (aspect kept) to `height` px tall, shrunk if it would be too wide for the
    canvas, and centred on `center` (x, y) in canvas px (default: the middle), then nudged so
    that the whole stroke stays on the canvas.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, not {convention!r}")
    from PIL import Image, ImageDraw

    pts = [np.asarray(s, dtype="float64").reshape(-1, 2) for s in strokes if len(s)]
    allp = np.concatenate(pts)
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    w_tab, h_tab = np.maximum(hi - lo, 1.0)
    room = size - stroke_width - 2  # the digit's extent, strokes included, stays on the canvas
    scale = min(height / h_tab, room / w_tab, room / h_tab)
    w_px, h_px = w_tab * scale, h_tab * scale
    cx, cy = center if center is not None else (size / 2, size / 2)
    r = stroke_width / 2
    cx = float(np.clip(cx, r + 1 + w_px / 2, size - r - 1 - w_px / 2))
    cy = float(np.clip(cy, r + 1 + h_px / 2, size - r - 1 - h_px / 2))

    k = SUPERSAMPLE
    image = Image.new("L", (size * k, size * k), 0)
    draw = ImageDraw.Draw(image)
    for s in pts:
        x = (cx - w_px / 2 + (s[:, 0] - lo[0]) * scale) * k
        y = (cy + h_px / 2 - (s[:, 1] - lo[1]) * scale) * k  # tablet y points up: flip
        xy = list(zip(x.tolist(), y.tolist(), strict=True))
        if len(xy) > 1:
            draw.line(xy, fill=255, width=round(stroke_width * k))
        for px, py in xy:  # round caps and joints
            draw.ellipse((px - r * k, py - r * k, px + r * k, py + r * k), fill=255)
    ink = np.asarray(image.reduce(k))  # (size, size) uint8, anti-aliased
    out = np.zeros((size, size, 4), dtype="uint8")
    if convention == "transparent":
        out[..., 3] = ink  # black strokes: RGB stays 0, alpha is the ink
    else:
        out[..., :3] = ink[..., None]
        out[..., 3] = 255
    return out
