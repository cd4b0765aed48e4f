"""Drawing benchmark: human pen strokes (UCI pendigits) drawn on a 280x280 canvas, read by networks
trained on MNIST, through a naive resize of the whole canvas and through canvas_to_mnist.

    DIGITLAB_MNIST=../shared/data/mnist.npz .venv/bin/python bench/drawn_digits.py

Two models are also trained on pen strokes: they go on from the augmented MNIST models with
drawings of pendigits writers 1-15 added to MNIST (4 renders of each digit, put through
canvas_to_mnist). Every model is therefore scored on writers 16-30, whom no model saw; the
MNIST-only models on all 30 writers too.

Trained models are cached under artifacts/drawn_models/ (delete them to retrain). Prints one
table (accuracy per model x preprocessing x stroke width), per-digit accuracy at width 18 and a
summary line; writes artifacts/drawn_digits.md/.json and the grid image (--grid, writers
16-30).
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
# Trained on pen strokes as well: the model named by "from", then more augmented epochs on MNIST
# plus drawings of the TRAIN_WRITERS (PEN_RENDERS renders each); measured on the other writers.
PEN_MODELS = {
    "cnn_aug_pen": (
        "CNN + aug, then + pen strokes of writers 1-15, 3 epochs",
        {"arch": "cnn"},
        {"epochs": 3, "augment": True, "from": "cnn_aug"},
    ),
    "mlp_aug_pen": (
        "MLP + aug, then + pen strokes of writers 1-15, 5 epochs",
        {"arch": "mlp"},
        {"epochs": 5, "augment": True, "from": "mlp_aug"},
    ),
}
MODELS.update(PEN_MODELS)
TRAIN_WRITERS = range(1, 16)  # pendigits writers 1..15 may be trained on; 16..30 never are
PEN_RENDERS = 4  # drawings per training-writer digit: random size, place, width, convention


def get_model(name: str, digits):
    """The cached model, or a freshly trained one (then cached) and its MNIST test accuracy."""
    import keras

    from digitlab.models import ModelConfig, build_model
    from digitlab.training import TrainConfig, train

    path, meta_path = CACHE / f"{name}.keras", CACHE / f"{name}.json"
    if path.is_file() and meta_path.is_file():
        return keras.saving.load_model(path, compile=False), json.loads(meta_path.read_text())
    _, model_kwargs, train_kwargs = MODELS[name]
    train_kwargs = dict(train_kwargs)
    base, model = train_kwargs.pop("from", None), None
    data = digits
    if base is not None:  # go on from the base model, with the training writers' drawings added
        base_model, _ = get_model(base, digits)
        model = build_model(ModelConfig(**model_kwargs))
        model.set_weights(base_model.get_weights())
        data = with_pen_strokes(digits)
    t0 = time.perf_counter()
    result = train(
        data,
        model_config=ModelConfig(**model_kwargs),
        train_config=TrainConfig(validation_fraction=0.0, seed=0, **train_kwargs),
        on_event=_print_epoch,
        model=model,
    )
    meta = {
        "test_accuracy": result.test_accuracy,
        "seconds": round(time.perf_counter() - t0, 1),
        "epoch_seconds": [round(h["seconds"], 1) for h in result.history],
        "model_config": model_kwargs,
        "train_config": MODELS[name][2],
        "n_train": len(data.x_train),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    result.model.save(path)
    meta_path.write_text(json.dumps(meta, indent=1))
    print(f"trained {name} in {meta['seconds']} s: MNIST test accuracy {result.test_accuracy:.4f}")
    return result.model, meta


def with_pen_strokes(digits, *, seed: int = 1):
    """MNIST's training digits plus PEN_RENDERS canvas drawings of every TRAIN_WRITERS digit, put
    through canvas_to_mnist as the Draw page does (widths 10-28, heights 120-230, anywhere)."""
    from digitlab.data import Digits

    strokes = load_strokes()
    mine = [i for i, s in enumerate(strokes) if s["writer"] in TRAIN_WRITERS]
    rng = np.random.default_rng(seed)
    jobs = []
    for _ in range(PEN_RENDERS):
        for i in mine:
            item = {
                "i": i,
                "height": float(rng.uniform(120, 230)),
                "center": (float(rng.uniform(60, 220)), float(rng.uniform(60, 220))),
                "convention": ("transparent", "black")[int(rng.integers(2))],
            }
            jobs.append((item, float(rng.uniform(10, 28)), True))
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=spawn) as pool:
        fitted = np.stack([both[1] for both in pool.map(_work, jobs, chunksize=64)])
    labels = np.array([strokes[item["i"]]["label"] for item, _, _ in jobs], dtype="uint8")
    x = np.round(fitted * 255).astype("uint8")
    print(f"added {len(x):,} drawings of {len(mine):,} pen digits (writers 1-15) to MNIST")
    return Digits(
        x_train=np.concatenate([digits.x_train, x]),
        y_train=np.concatenate([digits.y_train, labels]),
        x_test=digits.x_test,
        y_test=digits.y_test,
        source=digits.source + " + pendigits writers 1-15",
        kind="custom",
    )


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


def save_grid(
    path: Path, strokes, plan, labels, inputs, preds, *, ref: str, width: int, per_digit: int = 2
):
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
    draw.text((pad, 4), f"rows: canvas | naive resize | canvas_to_mnist ({ref}'s reading)", 255)
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
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-stroke-norm", action="store_true", help="canvas_to_mnist without it")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--grid", default=str(ROOT / "docs" / "drawn_digits_grid.png"))
    args = ap.parse_args(argv)

    from digitlab.data import load_mnist

    digits = load_mnist(
        os.environ.get("DIGITLAB_MNIST")
        or str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz")
    )
    models = {name: get_model(name, digits) for name in args.models}

    strokes = load_strokes()
    plan = drawing_plan(len(strokes), args.n, args.seed)
    labels = np.array([strokes[p["i"]]["label"] for p in plan])
    held_out = np.array([strokes[p["i"]]["writer"] not in TRAIN_WRITERS for p in plan])
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

    # Every model is scored on the writers no model trained on (16-30); the MNIST-only models
    # on all 30 writers too.
    results = {}  # (model, method, width) -> accuracy on the held-out writers
    all_writers = {}  # (model, method) -> accuracy on all writers at width 18 (MNIST-only models)
    per_digit = {}  # (model, method) -> per-digit accuracy at width 18, held-out writers
    preds18 = {}
    yh = labels[held_out]
    for name, (model, _) in models.items():
        for method in METHODS:
            for width in args.widths:
                pred = predict(model, inputs[width][method])
                results[name, method, width] = float((pred[held_out] == yh).mean())
                if width == 18:
                    if name not in PEN_MODELS:
                        all_writers[name, method] = float((pred == labels).mean())
                    per_digit[name, method] = [
                        float((pred[held_out][yh == d] == d).mean()) for d in range(10)
                    ]
                    preds18[name, method] = pred

    lines = [
        f"{len(plan):,} drawings per width, of which {held_out.sum():,} by the writers no model "
        f"trained on (pendigits writers 16-30), seed {args.seed}, stroke normalisation "
        f"{'off' if args.no_stroke_norm else 'on'}; render + both preprocessings "
        f"{per_image_ms:.1f} ms per drawing",
        "",
        "| model | MNIST test | preprocessing | "
        + " | ".join(f"width {w} (writers 16-30)" for w in args.widths)
        + " | spread | width 18, all 30 writers |",
        "|---|---|---|" + "---|" * len(args.widths) + "---|---|",
    ]
    for name, (_, meta) in models.items():
        for method in METHODS:
            accs = [results[name, method, w] for w in args.widths]
            every = all_writers.get((name, method))
            lines.append(
                f"| {MODELS[name][0]} | {meta['test_accuracy']:.4f} | {method} | "
                + " | ".join(f"{a:.3f}" for a in accs)
                + f" | {100 * (max(accs) - min(accs)):.1f} pts | "
                + (f"{every:.3f} |" if every is not None else "(trained on 1-15) |")
            )
    if 18 in args.widths:
        lines += [
            "",
            "Per digit, width 18, writers 16-30:",
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
        f"Summary (writers 16-30): best {MODELS[best[0]][0]} + {best[1]} at width {best[2]}: "
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
                "accuracy_writers_16_30": {"/".join(map(str, k)): v for k, v in results.items()},
                "accuracy_all_writers_w18": {"/".join(k): v for k, v in all_writers.items()},
                "per_digit_w18": {"/".join(k): v for k, v in per_digit.items()},
                "models": {k: m for k, (_, m) in models.items()},
            },
            indent=1,
        )
    )
    if args.grid and 18 in args.widths:
        ref = next((m for m in ("cnn_aug_pen", "cnn_aug") if m in models), next(iter(models)))
        preds = {m: preds18[ref, m] for m in METHODS}
        keep = held_out  # the grid shows writers no model trained on
        save_grid(
            Path(args.grid),
            strokes,
            [p for p, k in zip(plan, keep, strict=True) if k],
            labels[keep],
            {m: v[keep] for m, v in inputs[18].items()},
            {m: v[keep] for m, v in preds.items()},
            ref=ref,
            width=18,
        )
        print(f"grid: {args.grid}")


if __name__ == "__main__":
    main()
