"""Drawing benchmark: human pen strokes (UCI pendigits) drawn on a 280x280 canvas, read by networks
trained on MNIST, through a naive resize of the whole canvas and through canvas_to_mnist.

    DIGITLAB_MNIST=/work/shared/data/mnist.npz .venv/bin/python bench/drawn_digits.py

Trained models are cached under artifacts/drawn_models/ (delete them to retrain). Prints one
table (accuracy per model x preprocessing x stroke width), per-digit accuracy at width 18 and a
summary line; writes artifacts/drawn_digits.md/.json and the grid image (--grid).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitlab.pendigits import load_strokes, render  # noqa: E402
from digitlab.preprocess import canvas_to_mnist, naive_resize  # noqa: E402

CACHE = ROOT / "artifacts" / "drawn_models"
WIDTHS = (10, 18, 28)
METHODS = ("naive", "canvas_to_mnist")

# name: (description, ModelConfig kwargs, TrainConfig kwargs). All train on the full 60,000.
MODELS = {
    "mlp": ("tutorial MLP, 5 epochs", {"arch": "mlp"}, {"epochs": 5}),
    "mlp_aug": ("MLP + augmentation, 10 epochs", {"arch": "mlp"}, {"epochs": 10, "augment": True}),
    "cnn": ("CNN, 6 epochs", {"arch": "cnn"}, {"epochs": 6}),
    "cnn_aug": ("CNN + augmentation, 12 epochs", {"arch": "cnn"}, {"epochs": 12, "augment": True}),
}


def get_model(name: str, digits):
    """The cached model, or a freshly trained one (then cached) and its MNIST test accuracy."""
    import keras

    from digitlab.models import ModelConfig
    from digitlab.training import TrainConfig, train

    path, meta_path = CACHE / f"{name}.keras", CACHE / f"{name}.json"
    if path.is_file() and meta_path.is_file():
        return keras.saving.load_model(path, compile=False), json.loads(meta_path.read_text())
    _, model_kwargs, train_kwargs = MODELS[name]
    t0 = time.perf_counter()
    result = train(
        digits,
        model_config=ModelConfig(**model_kwargs),
        train_config=TrainConfig(validation_fraction=0.0, seed=0, **train_kwargs),
        on_event=_print_epoch,
    )
    meta = {
        "test_accuracy": result.test_accuracy,
        "seconds": round(time.perf_counter() - t0, 1),
        "epoch_seconds": [round(h["seconds"], 1) for h in result.history],
        "model_config": model_kwargs,
        "train_config": train_kwargs,
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    result.model.save(path)
    meta_path.write_text(json.dumps(meta, indent=1))
    print(f"trained {name} in {meta['seconds']} s: MNIST test accuracy {result.test_accuracy:.4f}")
    return result.model, meta


def _print_epoch(event) -> None:
    if event["type"] == "epoch":
        print(
            f"  epoch {event['epoch']}/{event['epochs']}: accuracy {event['accuracy']:.4f}, "
            f"{event['seconds']:.0f} s",
            flush=True,
        )


def drawing_plan(n_all: int, n: int, seed: int) -> list[dict]:
    """Which digits, how tall, where, which convention: the same plan for every stroke width."""
    rng = np.random.default_rng(seed)
    index = np.arange(n_all) if n <= 0 or n >= n_all else np.sort(rng.choice(n_all, n, False))
    return [
        {
            "i": int(i),
            "height": float(rng.uniform(120, 230)),
            "center": (float(rng.uniform(60, 220)), float(rng.uniform(60, 220))),
            "convention": ("transparent", "black")[int(rng.integers(2))],
        }
        for i in index
    ]


_STROKES: list = []


def _work(args) -> tuple[np.ndarray, np.ndarray]:
    """Render one drawing and preprocess it both ways: (2, 28, 28) float32."""
    if not _STROKES:
        _STROKES.extend(load_strokes())
    item, width, stroke_norm = args
    canvas = render(
        _STROKES[item["i"]]["strokes"],
        stroke_width=width,
        height=item["height"],
        center=item["center"],
        convention=item["convention"],
    )
    fitted = canvas_to_mnist(canvas, normalise_stroke=stroke_norm)
    if fitted is None:
        fitted = np.zeros((28, 28), dtype="float32")
    return np.stack([naive_resize(canvas), fitted])


def predict(model, x: np.ndarray) -> np.ndarray:
    from digitlab.models import predict_proba

    return np.concatenate(
        [predict_proba(model, x[i : i + 1024]).argmax(1) for i in range(0, len(x), 1024)]
    )


def save_grid(path: Path, strokes, plan, labels, inputs, preds, *, width: int, per_digit: int = 2):
    """For per_digit drawings of each digit: the canvas, the naive 28x28, the canvas_to_mnist
    28x28, each with what the reference model read."""
    from PIL import Image, ImageDraw

    tile, pad, text = 84, 6, 14
    picks = [k for d in range(10) for k in np.flatnonzero(labels == d)[:per_digit]]
    cols = 10
    rows = -(-len(picks) // cols)
    cell_w, cell_h = tile + pad, 3 * (tile + text) + pad
    sheet = Image.new("L", (cols * cell_w + pad, rows * cell_h + 20 + pad), 40)
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 4), "rows: canvas | naive resize | canvas_to_mnist (CNN+aug's reading)", 255)
    for n, k in enumerate(picks):
        x0, y0 = pad + (n % cols) * cell_w, 20 + (n // cols) * cell_h
        item = plan[k]
        canvas = render(
            strokes[item["i"]]["strokes"],
            stroke_width=width,
            height=item["height"],
            center=item["center"],
            convention="black",
        )[..., 0]
        images = [canvas, inputs["naive"][k] * 255, inputs["canvas_to_mnist"][k] * 255]
        notes = [
            f"digit {labels[k]}",
            f"read {preds['naive'][k]}",
            f"read {preds['canvas_to_mnist'][k]}",
        ]
        for r, (img, note) in enumerate(zip(images, notes, strict=True)):
            pil = Image.fromarray(np.asarray(img, dtype="uint8"))
            resample = Image.Resampling.BOX if pil.width > tile else Image.Resampling.NEAREST
            sheet.paste(pil.resize((tile, tile), resample), (x0, y0 + r * (tile + text)))
            draw.text((x0 + 2, y0 + r * (tile + text) + tile), note, 220)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=0, help="drawings per width (0: all 7,494)")
    ap.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    ap.add_argument(
        "--models", nargs="+", default=["mlp", "mlp_aug", "cnn", "cnn_aug"], choices=list(MODELS)
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-stroke-norm", action="store_true", help="canvas_to_mnist without it")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--grid", default=str(ROOT / "docs" / "drawn_digits_grid.png"))
    args = ap.parse_args(argv)

    from digitlab.data import load_mnist

    digits = load_mnist(os.environ.get("DIGITLAB_MNIST") or "/work/shared/data/mnist.npz")
    models = {name: get_model(name, digits) for name in args.models}

    strokes = load_strokes()
    plan = drawing_plan(len(strokes), args.n, args.seed)
    labels = np.array([strokes[p["i"]]["label"] for p in plan])
    t0 = time.perf_counter()
    inputs = {}  # width -> method -> (n, 28, 28) float32
    spawn = multiprocessing.get_context("spawn")  # forking after TensorFlow started is unsafe
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=spawn) as pool:
        for width in args.widths:
            jobs = [(p, width, not args.no_stroke_norm) for p in plan]
            both = np.stack(list(pool.map(_work, jobs, chunksize=64)))  # (n, 2, 28, 28)
            inputs[width] = {m: both[:, j] for j, m in enumerate(METHODS)}
    seconds = time.perf_counter() - t0
    per_image_ms = 1000 * seconds / (len(plan) * len(args.widths))

    results = {}  # (model, method, width) -> accuracy
    per_digit = {}  # (model, method) -> per-digit accuracy at width 18
    preds18 = {}
    for name, (model, _) in models.items():
        for method in METHODS:
            for width in args.widths:
                pred = predict(model, inputs[width][method])
                results[name, method, width] = float((pred == labels).mean())
                if width == 18:
                    per_digit[name, method] = [
                        float((pred[labels == d] == d).mean()) for d in range(10)
                    ]
                    preds18[name, method] = pred

    lines = [
        f"{len(plan):,} drawings per width (pendigits training writers), seed {args.seed}, "
        f"stroke normalisation {'off' if args.no_stroke_norm else 'on'}; "
        f"render + both preprocessings {per_image_ms:.1f} ms per drawing",
        "",
        "| model | MNIST test | preprocessing | "
        + " | ".join(f"width {w}" for w in args.widths)
        + " | spread |",
        "|---|---|---|" + "---|" * len(args.widths) + "---|",
    ]
    for name, (_, meta) in models.items():
        for method in METHODS:
            accs = [results[name, method, w] for w in args.widths]
            lines.append(
                f"| {MODELS[name][0]} | {meta['test_accuracy']:.4f} | {method} | "
                + " | ".join(f"{a:.3f}" for a in accs)
                + f" | {100 * (max(accs) - min(accs)):.1f} pts |"
            )
    if 18 in args.widths:
        lines += [
            "",
            "Per digit, width 18:",
            "",
            "| model | preprocessing | " + " | ".join(str(d) for d in range(10)) + " |",
            "|---|---|" + "---|" * 10,
        ]
        for (name, method), accs in per_digit.items():
            lines.append(
                f"| {MODELS[name][0]} | {method} | " + " | ".join(f"{a:.2f}" for a in accs) + " |"
            )
    best = max(results, key=results.get)
    summary = (
        f"Summary: best {MODELS[best[0]][0]} + {best[1]} at width {best[2]}: "
        f"{results[best]:.3f}; "
        + ", ".join(
            f"{name} {min(results[name, 'canvas_to_mnist', w] for w in args.widths):.3f}"
            f"..{max(results[name, 'canvas_to_mnist', w] for w in args.widths):.3f}"
            for name in models
        )
        + " with canvas_to_mnist across widths"
    )
    lines += ["", summary]
    text = "\n".join(lines)
    print(text)

    out = ROOT / "artifacts"
    out.mkdir(exist_ok=True)
    (out / "drawn_digits.md").write_text(text + "\n")
    (out / "drawn_digits.json").write_text(
        json.dumps(
            {
                "n": len(plan),
                "seed": args.seed,
                "stroke_norm": not args.no_stroke_norm,
                "accuracy": {"/".join(map(str, k)): v for k, v in results.items()},
                "per_digit_w18": {"/".join(k): v for k, v in per_digit.items()},
                "models": {k: m for k, (_, m) in models.items()},
            },
            indent=1,
        )
    )
    if args.grid and 18 in args.widths:
        ref = "cnn_aug" if "cnn_aug" in models else next(iter(models))
        preds = {m: preds18[ref, m] for m in METHODS}
        save_grid(Path(args.grid), strokes, plan, labels, inputs[18], preds, width=18)
        print(f"grid: {args.grid}")


if __name__ == "__main__":
    main()
