"""Explanation time per drawing: what the Draw page's "Why this answer" views compute per stroke.

For n real MNIST test digits (28x28, as preprocess.canvas_to_mnist gives them), time, for the
tutorial's MLP and the CNN, interleaved digit by digit: explain.explain (probabilities, logits,
the answer's and the runner-up's gradients, hidden activations, feature maps: one compiled
call), then what the
page takes from it: the top three, both saliency maps (answer and runner-up, input x gradient),
and for the MLP the top units and their first-layer tiles, for the CNN its filters. Beside
each, the plain answer (models.predict_proba) on the same digit, so the ratio holds on a busy
machine. Prints a table and a summary line. Target: p95 <= 30 ms per drawing for both.

    DIGITLAB_MNIST=../shared/data/mnist.npz nice -n 10 .venv/bin/python bench/explain_speed.py [--n 500]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import command_line, full_mnist, machine, met, table

TARGET_P95_MS = 30.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="drawings")
    args = ap.parse_args()
    from digitlab import explain
    from digitlab.data import normalise
    from digitlab.models import TUTORIAL, ModelConfig, build_model, predict_proba

    digits = full_mnist()
    print(f"machine: {machine()}")
    rng = np.random.default_rng(0)
    images = normalise(digits.x_test[rng.choice(len(digits.x_test), args.n, replace=False)])
    models = {
        "mlp": build_model(TUTORIAL, seed=0),  # weights do not change the time
        "cnn": build_model(ModelConfig(arch="cnn"), seed=0),
    }

    def one(model, image) -> tuple[float, float, float]:
        t = time.perf_counter()
        predict_proba(model, image)
        t0 = time.perf_counter()
        e = explain.explain(model, image)
        t1 = time.perf_counter()
        e.top(3)
        maps = [e.saliency(d, times_input=True) for d in (e.digit, e.runner_up)]
        if e.feature_maps is None:
            top = e.top_units(e.digit, n=8)
            tiles = explain.first_layer_tiles(model, top.units)
        else:
            tiles = explain.first_layer_tiles(model)
        t2 = time.perf_counter()
        assert maps[0].shape == (28, 28) and len(tiles)
        return t1 - t0, t2 - t1, t0 - t

    for model in models.values():  # warm-up: the first call traces and compiles
        for image in images[:20]:
            one(model, image)
    times = {name: [] for name in models}
    for image in images:  # interleaved: mlp, cnn, mlp, cnn, ...
        for name, model in models.items():
            times[name].append(one(model, image))

    rows, summary = [], []
    for name, pairs in times.items():
        call, rest, answer = (1000 * np.array(col) for col in zip(*pairs, strict=True))
        total = call + rest
        p50, p95 = float(np.median(total)), float(np.percentile(total, 95))
        ok = p95 <= TARGET_P95_MS
        rows.append(
            [
                name,
                f"{np.median(call):.2f} / {np.percentile(call, 95):.2f}",
                f"{np.median(rest):.2f} / {np.percentile(rest, 95):.2f}",
                p50,
                p95,
                f"<= {TARGET_P95_MS:g}",
                met(ok),
                f"{np.median(answer):.2f} / {np.percentile(answer, 95):.2f}",
                float(np.median(total / answer)),
            ]
        )
        summary.append(f"{name} p95 {p95:.1f} ms ({met(ok)})")
    print()
    print(
        table(
            [
                "model",
                "explain() ms (median / p95)",
                "views ms (median / p95)",
                "total ms median",
                "total ms p95",
                "target p95 ms",
                "met/missed",
                "predict_proba ms (median / p95)",
                "explain / predict_proba (median)",
            ],
            rows,
        )
    )
    print(f"\ncommand: {command_line()}  ({args.n} drawings, 20 warm-up calls per model)")
    print("SUMMARY explain_speed: " + ", ".join(summary))


if __name__ == "__main__":
    main()
