"""Why a network gave its answer and what it learned: saliency, the top answers, first-layer
tiles, hidden units' contributions, convolution filters and feature maps. Arrays in, arrays out.

Everything for one drawing comes from one compiled TensorFlow call (kept on the model, as
models.predict_proba keeps its own): the drawing copied once per digit asked for (by default
the answer and the runner-up, chosen inside the call), run forward and back, gives those
digits' gradients at once. The pre-softmax score (logit) is the last Dense layer's output
before its softmax.

Works on the networks models.build_model makes and on any uploaded model that is a chain of
layers ending in a Dense layer (an Activation or Softmax layer may follow it); others raise
ExplainError, one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TILE_UNITS = 16  # first-layer tiles sent live from a training run (the Train page's grid)
SCORES = ("logit", "probability")  # what a saliency map differentiates
ANSWER, RUNNER_UP = -1, -2  # in explain(digits=...): the most likely digit, the second


class ExplainError(ValueError):
    """A model whose answers cannot be taken apart here; one sentence for people."""


@dataclass
class Explanation:
    """One drawing through one network.

    gradients[c] is d score_c / d pixel for each digit c asked for: where more ink would raise
    digit c's score (red) or lower it (blue).
    """

    image: np.ndarray  # (28, 28) float32 in [0, 1]: the network's input
    probs: np.ndarray  # (10,) softmax probabilities
    logits: np.ndarray  # (10,) pre-softmax scores
    gradients: dict[int, np.ndarray]  # digit -> (28, 28) float32
    score: str  # "logit" (pre-softmax) or "probability": what the gradients differentiate
    hidden: np.ndarray  # (H,) the activations the last Dense layer reads (its input)
    out_kernel: np.ndarray  # (H, 10) the last Dense layer's weights
    out_bias: np.ndarray  # (10,)
    feature_maps: np.ndarray | None  # (k, h, w) the first convolution's output; None: no conv

    @property
    def digit(self) -> int:
        return int(np.argmax(self.probs))

    def top(self, k: int = 3) -> list[tuple[int, float]]:
        return top_answers(self.probs, k)

    @property
    def runner_up(self) -> int:
        return self.top(2)[1][0]

    def saliency(self, digit: int, *, times_input: bool = False) -> np.ndarray:
        """(28, 28): the gradient of digit's score, or input x gradient (the drawn pixels only,
        each weighted by how much it pushed that score up or down)."""
        if digit not in self.gradients:
            raise ExplainError(
                f"No saliency for digit {digit}: explain() was asked for "
                f"{', '.join(map(str, self.gradients))}."
            )
        g = self.gradients[digit]
        return g * self.image if times_input else g

    def contributions(self, digit: int) -> np.ndarray:
        """(H,) each hidden unit's share of digit's logit: activation x weight into the digit.
        Their sum plus the bias is the logit."""
        return self.hidden * self.out_kernel[:, digit]

    def top_units(self, digit: int, n: int = 8) -> Units:
        """The n hidden units that pushed digit's logit up the most, largest first."""
        c = self.contributions(digit)
        order = np.argsort(-c, kind="stable")[:n]
        return Units(
            units=order,
            activations=self.hidden[order],
            weights=self.out_kernel[order, digit],
            contributions=c[order],
            bias=float(self.out_bias[digit]),
            logit=float(self.logits[digit]),
        )


@dataclass
class Units:
    """Hidden units into one digit's logit, as Explanation.top_units picks them."""

    units: np.ndarray  # (n,) int indices into the last hidden layer
    activations: np.ndarray  # (n,)
    weights: np.ndarray  # (n,) weight from each unit into the digit
    contributions: np.ndarray  # (n,) activation x weight
    bias: float  # the digit's bias
    logit: float  # the digit's pre-softmax score: all units' contributions + bias


def top_answers(probs, k: int = 3) -> list[tuple[int, float]]:
    """The k most likely digits with their probabilities, most likely first."""
    p = np.asarray(probs, dtype=float)
    order = np.argsort(-p, kind="stable")[:k]
    return [(int(d), float(p[d])) for d in order]


# ---------------------------------------------------------------------------------------------
# The model taken apart


def _plan(model):
    """(layers before the logit Dense, that Dense, first conv or None, first Dense): the chain
    explain() runs. ExplainError when the model is not such a chain."""
    from keras import layers as L

    chain = [layer for layer in model.layers if not isinstance(layer, L.InputLayer)]
    last = max((i for i, x in enumerate(chain) if isinstance(x, L.Dense)), default=None)
    if last is None:
        raise ExplainError(
            "The model has no Dense layer giving the ten scores, so it cannot be explained."
        )
    if not all(isinstance(x, L.Activation | L.Softmax) for x in chain[last + 1 :]):
        raise ExplainError(
            "The model's last Dense layer is followed by more than a softmax, so its scores "
            "cannot be taken apart."
        )
    if tuple(chain[last].kernel.shape)[-1] != 10:
        raise ExplainError("The model's last Dense layer does not give ten scores.")
    conv = next((x for x in chain[:last] if isinstance(x, L.Conv2D)), None)
    dense = next(x for x in chain if isinstance(x, L.Dense))
    return chain[:last], chain[last], conv, dense


def _explainer(model, score: str):
    """The compiled call for this model and score, made once and kept on it (dies with it)."""
    kept = model.__dict__.setdefault("_digitlab_explain", {})  # never saved with the model
    if score in kept:
        return kept[score]
    import tensorflow as tf

    body, out, conv, _ = _plan(model)
    in_shape = tuple(model.input_shape[1:])

    def run(image, wanted):  # (28, 28) float32; (k,) int32 digits, -1: the answer, -2: runner-up
        k = tf.shape(wanted)[0]
        x = tf.reshape(tf.tile(image[None], [k, 1, 1]), (-1, *in_shape))  # a copy per digit
        with tf.GradientTape() as tape:
            tape.watch(x)
            h, maps = x, tf.zeros((0,))
            for layer in body:
                h = layer(h, training=False)
                if layer is conv:
                    maps = h[0]  # (h, w, filters)
            logits = tf.matmul(h, out.kernel) + out.bias  # (k, 10), every row the same
            probs = tf.nn.softmax(logits)
            top2 = tf.math.top_k(logits[0], 2).indices  # answer, runner-up
            digits = tf.where(wanted >= 0, wanted, tf.gather(top2, tf.maximum(-wanted - 1, 0)))
            scores = logits if score == "logit" else probs
            own = tf.reduce_sum(tf.gather(scores, digits, batch_dims=1))  # copy i: digit i
        grads = tf.reshape(tape.gradient(own, x), (-1, 28, 28))
        return probs[0], logits[0], digits, grads, h[0], maps

    kept[score] = tf.function(run, jit_compile=True, reduce_retracing=True)
    return kept[score]


def explain(model, image: np.ndarray, digits=None, *, score: str = "logit") -> Explanation:
    """(28, 28) float32 in [0, 1] -> everything the Draw page shows about this drawing.

    digits: whose saliency to compute, 0..9 or ANSWER / RUNNER_UP (default: those two);
    score: "logit" (pre-softmax) or "probability". Each digit asked for costs one more copy of
    the drawing forward and back (BENCHMARKS.md, "Explain").
    """
    x = np.asarray(image, dtype="float32")
    if x.shape != (28, 28):
        raise ExplainError(f"A drawing to explain is 28x28 pixels, not {x.shape}.")
    if score not in SCORES:
        raise ExplainError(f"score must be one of {', '.join(SCORES)}, not {score!r}.")
    wanted = [ANSWER, RUNNER_UP] if digits is None else [int(d) for d in digits]
    if not wanted or any(not -2 <= d <= 9 for d in wanted):
        raise ExplainError(f"Digits to explain must be 0..9, not {digits}.")
    _, out, _, _ = _plan(model)
    probs, logits, chosen, grads, hidden, maps = _explainer(model, score)(
        x, np.asarray(wanted, dtype="int32")
    )
    maps = np.asarray(maps)
    return Explanation(
        image=x,
        probs=np.asarray(probs),
        logits=np.asarray(logits),
        gradients={int(d): g for d, g in zip(np.asarray(chosen), np.asarray(grads), strict=True)},
        score=score,
        hidden=np.asarray(hidden).reshape(-1),
        out_kernel=np.asarray(out.kernel),
        out_bias=np.asarray(out.bias),
        feature_maps=np.moveaxis(maps, -1, 0) if maps.ndim == 3 else None,  # (k, h, w)
    )


def saliency(
    model, image: np.ndarray, digit: int, *, score: str = "logit", times_input: bool = False
) -> np.ndarray:
    """(28, 28): d score(digit) / d pixel for one drawing (or input x gradient)."""
    return explain(model, image, [digit], score=score).saliency(digit, times_input=times_input)


def first_layer_tiles(model, units=None) -> np.ndarray:
    """What the first layer looks for, one tile per unit or filter.

    MLP: the first Dense layer's weights from the 784 pixels into each unit, (k, 28, 28).
    CNN: the first convolution's kernels, (k, kh, kw) (their first input channel).
    units: which ones (default all).
    """
    _, _, conv, dense = _plan(model)
    if conv is not None:
        k = np.asarray(conv.kernel)  # (kh, kw, in, k)
        tiles = np.moveaxis(k[:, :, 0, :], -1, 0)
    else:
        w = np.asarray(dense.kernel)  # (784, units)
        if w.shape[0] != 28 * 28:
            raise ExplainError("The model's first Dense layer does not read the 784 pixels.")
        tiles = w.T.reshape(-1, 28, 28)
    return tiles if units is None else tiles[np.asarray(units, dtype=int)]


def reads_pixels(model) -> bool:
    """True when the last hidden layer is the first one and reads the 784 pixels (a one-layer
    MLP): then each unit whose contribution is shown also has a 28x28 tile of what it looks for."""
    from keras import layers as L

    body, _, conv, dense = _plan(model)
    hidden_dense = [x for x in body if isinstance(x, L.Dense)]
    return conv is None and hidden_dense == [dense] and tuple(dense.kernel.shape)[0] == 784


def tiles_event(model, n: int = TILE_UNITS) -> dict:
    """The first n tiles as a small event for a live training view: (n, h, w) float16, 25 KB
    for 16 MLP units (a job keeps every event: as Python floats, 400 KB an epoch)."""
    tiles = first_layer_tiles(model)[:n]
    return {"type": "tiles", "shape": list(tiles.shape[1:]), "tiles": tiles.astype("float16")}


# ---------------------------------------------------------------------------------------------
# Pictures without a browser (the CLI): Pillow only


def picture(a: np.ndarray, *, signed: bool = True, scale: int = 10):
    """A 2-D array as an RGB PIL image, each value a scale x scale block.

    signed: white at 0, red for positive, blue for negative, each at full strength at the
    array's largest absolute value. Else grey from black (min) to white (max).
    """
    from PIL import Image

    a = np.asarray(a, dtype="float64")
    if signed:
        v = a / (np.abs(a).max() or 1.0)  # [-1, 1]
        pos, neg = np.clip(v, 0, 1), np.clip(-v, 0, 1)
        rgb = np.stack([1 - neg, 1 - pos - neg, 1 - pos], axis=-1)
    else:
        lo, hi = a.min(), a.max()
        g = (a - lo) / ((hi - lo) or 1.0)
        rgb = np.stack([g, g, g], axis=-1)
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype("uint8"), "RGB")
    return img.resize((a.shape[1] * scale, a.shape[0] * scale), Image.Resampling.NEAREST)


def picture_grid(arrays: np.ndarray, *, cols: int = 8, signed: bool = True, size: int = 84):
    """(n, h, w) arrays as one RGB image: tiles of size x size pixels, 4 pixels apart."""
    from PIL import Image

    n = len(arrays)
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    gap = 4
    sheet = Image.new("RGB", (cols * (size + gap) - gap, rows * (size + gap) - gap), "#808080")
    for i, a in enumerate(arrays):
        tile = picture(a, signed=signed, scale=1).resize((size, size), Image.Resampling.NEAREST)
        sheet.paste(tile, ((i % cols) * (size + gap), (i // cols) * (size + gap)))
    return sheet


def write_pictures(model, e: Explanation, out) -> list:
    """The Draw page's views of one drawing as PNG files in folder out; returns their paths.

    input.png (what the network received), saliency-<d>.png (gradient of d's score) and
    input-x-gradient-<d>.png for each digit e has gradients of (the answer first); for an MLP
    top-units.png (the first-layer tiles of the units that pushed the answer up most, when
    they read the pixels) and first-layer.png (the first TILE_UNITS units); for a CNN
    filters.png and feature-maps.png.
    """
    from pathlib import Path

    out = Path(out)
    pictures = {"input.png": picture(e.image, signed=False)}
    for d in sorted(e.gradients, key=lambda d: d != e.digit):  # the answer first
        pictures[f"saliency-{d}.png"] = picture(e.saliency(d))
        pictures[f"input-x-gradient-{d}.png"] = picture(e.saliency(d, times_input=True))
    if e.feature_maps is None:
        if reads_pixels(model):
            top = e.top_units(e.digit, n=TILE_UNITS)
            pictures["top-units.png"] = picture_grid(first_layer_tiles(model, top.units))
        pictures["first-layer.png"] = picture_grid(first_layer_tiles(model)[:TILE_UNITS])
    else:
        pictures["filters.png"] = picture_grid(first_layer_tiles(model), size=42)
        pictures["feature-maps.png"] = picture_grid(e.feature_maps, signed=False)
    paths = []
    for name, img in pictures.items():
        img.save(out / name)
        paths.append(out / name)
    return paths
