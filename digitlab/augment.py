"""Augmented MNIST batches for model.fit: random shifts, rotations, scaling and stroke widths.

Everything runs on whole batches inside tf.data (no per-image Python): one projective
transform per image (rotation, zoom, shift composed into a single bilinear resample) and a
stroke-width change blended between the image and its 3x3 maximum (dilation) or minimum
(erosion). Random numbers are stateless, keyed on the seed and a per-batch random stream, so
the same seed gives the same batches and each epoch still draws new ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentConfig:
    """How far each change may go. Defaults: small, a drawn digit's variation after the recipe."""

    max_rotation: float = 12.0  # degrees either way
    min_zoom: float = 0.85  # scale of the digit about the centre; MNIST's 20 px box -> 17..22 px
    max_zoom: float = 1.1
    max_shift: float = 2.0  # px either way, each axis
    min_stroke: float = -0.5  # <0: blend toward the eroded image, >0: toward the dilated one
    max_stroke: float = 1.0
    # Off by default: measured on drawn digits, none of them helped (BENCHMARKS.md, issue 15)
    max_shear: float = 0.0  # slant: x moves by up to this x (y - centre) either way (0.3: ~17 deg)
    elastic: float = 0.0  # px: a smooth random displacement field (Simard et al. 2003) this large
    elastic_grid: int = 4  # the field's random values sit on a grid this coarse, then interpolated
    reink: float = 0.0  # share of images whose ink is re-drawn: thresholded, then edges smoothed


def augment_batch(x, seed, *, config: AugmentConfig = AugmentConfig()):
    """(b, 28, 28) float32 in [0, 1] -> the same shape, transformed; seed: (2,) int stateless seed."""
    import tensorflow as tf

    x = tf.convert_to_tensor(x, dtype=tf.float32)
    b = tf.shape(x)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=5)

    def uniform(i, lo, hi):
        return tf.random.stateless_uniform([b], seed=seeds[i], minval=lo, maxval=hi)

    angle = uniform(0, -1.0, 1.0) * (config.max_rotation * math.pi / 180.0)
    zoom = uniform(1, config.min_zoom, config.max_zoom)
    shift = tf.random.stateless_uniform(
        [b, 2], seed=seeds[2], minval=-config.max_shift, maxval=config.max_shift
    )
    stroke = uniform(3, config.min_stroke, config.max_stroke)
    more = tf.random.experimental.stateless_split(seeds[4], num=3)  # the newer changes' streams

    # Output pixel p maps to input pixel A p + t: rotate and zoom about the centre, then shift.
    c = 13.5  # centre of a 28x28 grid in pixel-index coordinates
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    if config.max_shear:  # slant: A . [[1, k], [0, 1]], the centre kept where it is
        k = tf.random.stateless_uniform(
            [b], seed=more[0], minval=-config.max_shear, maxval=config.max_shear
        )
        a1, b1 = a1 + a0 * k, b1 + b0 * k
    tx = c - a0 * c - a1 * c - shift[:, 0]
    ty = c - b0 * c - b1 * c - shift[:, 1]
    zeros = tf.zeros_like(cos)
    transforms = tf.stack([a0, a1, tx, b0, b1, ty, zeros, zeros], axis=1)  # (b, 8)

    img = x[..., None]  # (b, 28, 28, 1)
    img = tf.raw_ops.ImageProjectiveTransformV3(
        images=img,
        transforms=transforms,
        output_shape=tf.constant([28, 28]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    img = img[..., 0]  # (b, 28, 28)
    if config.elastic:
        img = _elastic(img, more[1], alpha=config.elastic, grid=config.elastic_grid)
    if config.reink:
        img = _reink(img, more[2], share=config.reink)
    s = stroke[:, None, None]
    target = tf.where(s > 0, _pool3x3(img, tf.maximum), _pool3x3(img, tf.minimum))
    img = img + tf.abs(s) * (target - img)
    return tf.clip_by_value(img, 0.0, 1.0)


def _elastic(img, seed, *, alpha: float, grid: int):
    """(b, 28, 28) -> the same, each image warped by its own smooth random field of up to
    `alpha` px: random values on a grid x grid lattice, bicubically interpolated to 28x28, then
    one bilinear resample (four gathers from the image with a 1 px border of zeros)."""
    import tensorflow as tf

    b = tf.shape(img)[0]
    coarse = tf.random.stateless_uniform([b, grid, grid, 2], seed=seed, minval=-1.0, maxval=1.0)
    field = alpha * tf.image.resize(coarse, [28, 28], method="bicubic")  # (b, 28, 28, 2)
    rows, cols = tf.meshgrid(tf.range(28.0), tf.range(28.0), indexing="ij")
    sy = tf.clip_by_value(rows + field[..., 0], -1.0, 28.0)  # (b, 28, 28) source row
    sx = tf.clip_by_value(cols + field[..., 1], -1.0, 28.0)
    y0, x0 = tf.floor(sy), tf.floor(sx)
    wy, wx = sy - y0, sx - x0
    flat = tf.reshape(tf.pad(img, [[0, 0], [1, 1], [1, 1]]), [-1])  # (b * 30 * 30,)
    base = (tf.range(b) * 900)[:, None, None]

    def at(yy, xx):
        yy = tf.cast(tf.clip_by_value(yy + 1.0, 0.0, 29.0), tf.int32)
        xx = tf.cast(tf.clip_by_value(xx + 1.0, 0.0, 29.0), tf.int32)
        return tf.gather(flat, base + yy * 30 + xx)

    top = at(y0, x0) * (1 - wx) + at(y0, x0 + 1) * wx
    bottom = at(y0 + 1, x0) * (1 - wx) + at(y0 + 1, x0 + 1) * wx
    return top * (1 - wy) + bottom * wy


def _reink(img, seed, *, share: float):
    """Re-draw the ink of a random `share` of the images as a canvas drawing's ink looks after
    canvas_to_mnist: solid strokes with a one-pixel anti-aliased edge (no pen pressure). The
    image at 2x (bilinear) thresholded at a random level (0.3-0.6), then averaged back 2x2."""
    import tensorflow as tf

    b = tf.shape(img)[0]
    u = tf.random.stateless_uniform([b, 2], seed=seed)
    level = (0.3 + 0.3 * u[:, 0])[:, None, None, None]
    big = tf.image.resize(img[..., None], [56, 56], method="bilinear")  # (b, 56, 56, 1)
    ink = tf.nn.avg_pool2d(tf.cast(big >= level, tf.float32), 2, 2, "VALID")[..., 0]
    return tf.where((u[:, 1] < share)[:, None, None], ink, img)


def _pool3x3(img, op):
    """3x3 max (dilation) or min (erosion) of (b, 28, 28), separable: four elementwise ops.

    tf.nn.max_pool2d with stride 1 costs ~6x more on CPU for these small images.
    """
    import tensorflow as tf

    pad = tf.pad(img, [[0, 0], [1, 1], [1, 1]], mode="SYMMETRIC")  # (b, 30, 30)
    rows = op(op(pad[:, :-2], pad[:, 1:-1]), pad[:, 2:])  # (b, 28, 30)
    return op(op(rows[:, :, :-2], rows[:, :, 1:-1]), rows[:, :, 2:])  # (b, 28, 28)


def augment_batches(data, *, seed: int | None, config: AugmentConfig = AugmentConfig()):
    """Map a tf.data.Dataset of (x, y) batches to augmented ones; y passes through unchanged."""
    import tensorflow as tf

    seed = 0 if seed is None else int(seed)
    # One (2,) stateless seed per batch; a fresh stream every epoch, the same for the same seed.
    streams = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    data = tf.data.Dataset.zip((data, streams))
    return data.map(
        lambda xy, s: (augment_batch(xy[0], s, config=config), xy[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
