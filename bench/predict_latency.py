"""Prediction latency: a 280x280 canvas drawing to ten probabilities, as the draw page does it.

For 1,000 synthetic drawings (MNIST test digits scaled up 5-9x, placed at random on a
transparent 280x280 RGBA canvas, ink in the alpha channel as streamlit-drawable-canvas gives
it), time digitlab.preprocess.canvas_to_mnist + digitlab.models.predict_proba, for the tutorial's
MLP and for the CNN, interleaved drawing by drawing. Prints one table and a summary line.
model.predict is timed on a few drawings beside it, to show what the direct call saves.

    DIGITLAB_MNIST=../shared/data/mnist.npz .venv/bin/python bench/predict_latency.py [--n 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import command_line, full_mnist, machine, met, table
from PIL import Image

CANVAS = 280
TARGET_P95_MS = {"mlp": 10.0, "cnn": 25.0}


def drawings(images: np.ndarray, *, n: int, seed: int = 0) -> list[np.ndarray]:
    """n (280, 280, 4) uint8 RGBA canvases: black ink (alpha = the digit) on transparency."""
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.choice(len(images), size=n, replace=False):
        side = int(rng.integers(140, 253))  # the 28x28 digit drawn 5-9x larger
        digit = Image.fromarray(images[i]).resize((side, side), Image.Resampling.BILINEAR)
        y, x = rng.integers(0, CANVAS - side + 1, size=2)
        canvas = np.zeros((CANVAS, CANVAS, 4), np.uint8)  # (280, 280, 4) transparent
        canvas[y : y + side, x : x + side, 3] = np.asarray(digit)
        out.append(canvas)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="drawings")
    args = ap.parse_args()
    from digitlab.models import TUTORIAL, ModelConfig, build_model, predict_proba
    from digitlab.preprocess import canvas_to_mnist

    digits = full_mnist()
    print(f"machine: {machine()}")
    canvases = drawings(digits.x_test, n=args.n)
    models = {
        "mlp": build_model(TUTORIAL, seed=0),  # weights do not change the time
        "cnn": build_model(ModelConfig(arch="cnn"), seed=0),
    }

    def one(model, canvas) -> tuple[float, float]:
        t0 = time.perf_counter()
        x = canvas_to_mnist(canvas)  # (28, 28) float32 in [0, 1]
        t1 = time.perf_counter()
        p = predict_proba(model, x)  # (1, 10)
        t2 = time.perf_counter()
        assert p.shape == (1, 10)
        return t1 - t0, t2 - t1

    for model in models.values():  # warm-up: the first calls trace and allocate
        for canvas in canvases[:20]:
            one(model, canvas)
    times = {name: [] for name in models}  # name -> [(preprocess s, predict s)]
    for canvas in canvases:  # interleaved: mlp, cnn, mlp, cnn, ...
        for name, model in models.items():
            times[name].append(one(model, canvas))

    predict_ms = {}  # model.predict, the slow way, on a few drawings
    for name, model in models.items():
        x = canvas_to_mnist(canvases[0])[None]
        model.predict(x, verbose=0)
        ts = []
        for canvas in canvases[:20]:
            x = canvas_to_mnist(canvas)[None]
            t = time.perf_counter()
            model.predict(x, verbose=0)
            ts.append(time.perf_counter() - t)
        predict_ms[name] = 1000 * float(np.median(ts))

    rows, summary = [], []
    for name, pairs in times.items():
        pre, pred = (1000 * np.array(col) for col in zip(*pairs, strict=True))
        total = pre + pred
        p50, p95 = float(np.median(total)), float(np.percentile(total, 95))
        ok = p95 <= TARGET_P95_MS[name]
        rows.append(
            [
                name,
                f"{np.median(pre):.2f} / {np.percentile(pre, 95):.2f}",
                f"{np.median(pred):.2f} / {np.percentile(pred, 95):.2f}",
                p50,
                p95,
                f"<= {TARGET_P95_MS[name]:g}",
                met(ok),
                predict_ms[name],
            ]
        )
        summary.append(f"{name} p95 {p95:.1f} ms ({met(ok)})")
    print()
    print(
        table(
            [
                "model",
                "preprocess ms (median / p95)",
                "predict_proba ms (median / p95)",
                "total ms median",
                "total ms p95",
                "target p95 ms",
                "met/missed",
                "model.predict ms (median of 20)",
            ],
            rows,
        )
    )
    print(f"\ncommand: {command_line()}  ({args.n} drawings, 20 warm-up calls per model)")
    print("SUMMARY predict_latency: " + ", ".join(summary))


if __name__ == "__main__":
    main()
