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

    # Output pixel p maps to input pixel A p + t: rotate and zoom about the centre, then shift.
    c = 13.5  # centre of a 28x28 grid in pixel-index coordinates
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
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
    s = stroke[:, None, None]
    target = tf.where(s > 0, _pool3x3(img, tf.maximum), _pool3x3(img, tf.minimum))
    img = img + tf.abs(s) * (target - img)
    return tf.clip_by_value(img, 0.0, 1.0)


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
