"""The default model, MNIST alone: which augmentation (or network) reads newcomers' drawings best.

    DIGITLAB_MNIST=../shared/data/mnist.npz nice -n 10 .venv/bin/python bench/default_model.py

Each variant trains on the 60,000 MNIST training digits only (validation_fraction 0, seed 0)
and is scored on the drawings of pendigits writers 16-30 (the "newcomers" of
bench/room_curve.py; no model here saw any pendigits writer), drawn on the 280x280 canvas at
stroke width 18 with bench/drawn_digits.py's plan (seed 0: sizes, places, both canvas
conventions) and read through canvas_to_mnist as the Draw page does. Prints the machine line,
one row per variant (MNIST test accuracy, newcomers' accuracy, training seconds) and the
per-digit table; writes artifacts/default_model.md/.json. Trained models are kept under
artifacts/default_models/ (bench/room_curve.py starts from them).
"""

from __future__ import annotations

import argparse
import json
import time

import _common  # noqa: F401  (sys.path, quiet TensorFlow)
import numpy as np
from _common import ROOT_DIR, full_mnist, machine, newcomer_drawings, room_drawings

from digitlab.augment import AugmentConfig
from digitlab.models import ModelConfig
from digitlab.training import TrainConfig, quick_config

CACHE = ROOT_DIR / "artifacts" / "default_models"
assert quick_config(60_000) == TrainConfig(epochs=5, augment=True)  # mlp_aug5 below

# name: (what, ModelConfig, TrainConfig)
VARIANTS = {
    "quick": (
        "Quick-train before: MLP, augment, 2 epochs",
        ModelConfig(),
        TrainConfig(epochs=2, augment=True),
    ),
    "mlp_aug5": (
        "MLP, augment, 5 epochs (Quick-train now)",
        ModelConfig(),
        TrainConfig(epochs=5, augment=True),
    ),
    "mlp_shear5": (
        "MLP, augment + slant 0.3, 5 epochs",
        ModelConfig(),
        TrainConfig(epochs=5, augment=AugmentConfig(max_shear=0.3)),
    ),
    "mlp_elastic5": (
        "MLP, augment + elastic 2 px, 5 epochs",
        ModelConfig(),
        TrainConfig(epochs=5, augment=AugmentConfig(elastic=2.0)),
    ),
    "mlp_reink5": (
        "MLP, augment + re-ink half, 5 epochs",
        ModelConfig(),
        TrainConfig(epochs=5, augment=AugmentConfig(reink=0.5)),
    ),
    "cnn_aug3": (
        "CNN, augment, 3 epochs",
        ModelConfig(arch="cnn"),
        TrainConfig(epochs=3, augment=True),
    ),
    "mlp_aug10": ("MLP, augment, 10 epochs", ModelConfig(), TrainConfig(epochs=10, augment=True)),
    "mlp_elastic1": (
        "MLP, augment + elastic 1 px, 5 epochs",
        ModelConfig(),
        TrainConfig(epochs=5, augment=AugmentConfig(elastic=1.0)),
    ),
    "cnn_aug10": (
        "CNN, augment, 10 epochs",
        ModelConfig(arch="cnn"),
        TrainConfig(epochs=10, augment=True),
    ),
    "cnn_aug20": (
        "CNN, augment, 20 epochs",
        ModelConfig(arch="cnn"),
        TrainConfig(epochs=20, augment=True),
    ),
    "cnn_aug30": (
        "CNN, augment, 30 epochs",
        ModelConfig(arch="cnn"),
        TrainConfig(epochs=30, augment=True),
    ),
    "cnn_shear3": (
        "CNN, augment + slant 0.3, 3 epochs",
        ModelConfig(arch="cnn"),
        TrainConfig(epochs=3, augment=AugmentConfig(max_shear=0.3)),
    ),
}


def rotated(images: np.ndarray, degrees: float) -> np.ndarray:
    """(n, 28, 28) images turned counter-clockwise about their centre (bilinear), same size."""
    from scipy import ndimage

    if degrees == 0:
        return images
    return ndimage.rotate(images, degrees, axes=(2, 1), reshape=False, order=1)


def trained(name: str, digits):
    """(model, meta): cached under artifacts/default_models/, else trained now and cached."""
    import dataclasses

    import keras

    from digitlab.training import train

    path, meta_path = CACHE / f"{name}.keras", CACHE / f"{name}.json"
    if path.is_file() and meta_path.is_file():
        return keras.saving.load_model(path, compile=False), json.loads(meta_path.read_text())
    _, mcfg, tcfg = VARIANTS[name]
    tcfg = dataclasses.replace(tcfg, validation_fraction=0.0, seed=0)
    t0 = time.perf_counter()
    result = train(digits, model_config=mcfg, train_config=tcfg)
    meta = {
        "test_accuracy": result.test_accuracy,
        "seconds": round(time.perf_counter() - t0, 1),
        "model_config": mcfg.to_dict(),
        "train_config": dataclasses.asdict(tcfg),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    result.model.save(path)
    meta_path.write_text(json.dumps(meta, indent=1, default=str))
    return result.model, meta


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument(
        "--ensembles",
        nargs="*",
        default=[],
        metavar="A+B",
        help="also score the mean of these cached variants' probabilities, e.g. mlp_aug10+cnn_aug3",
    )
    ap.add_argument(
        "--rotations",
        default="",
        metavar="A,B,...",
        help="also score each variant reading every drawing turned by these angles (degrees, "
        "counter-clockwise) and averaging, on the room's writers (1-15: where a setting is chosen) "
        "and on the newcomers, e.g. 0,5,10",
    )
    args = ap.parse_args(argv)

    from digitlab.models import predict_proba

    print(machine(), flush=True)
    digits = full_mnist()
    x_new, y_new = newcomer_drawings()
    room = room_drawings() if args.rotations else None  # where a rotation is chosen
    rows, per_digit, out = [], [], {}

    def probs(model, x):
        return np.concatenate(
            [predict_proba(model, x[i : i + 1000]) for i in range(0, len(x), 1000)]
        )

    for name in args.variants + args.ensembles:
        if "+" in name:  # an ensemble: the mean of its members' probabilities
            members = [trained(m, digits) for m in name.split("+")]
            p_test = np.mean([probs(m, digits.x_test / 255.0) for m, _ in members], axis=0)
            meta = {
                "test_accuracy": float((p_test.argmax(1) == digits.y_test).mean()),
                "seconds": sum(mm["seconds"] for _, mm in members),
            }
            pred = np.mean([probs(m, x_new) for m, _ in members], axis=0).argmax(1)
            VARIANTS[name] = (f"ensemble: {' + '.join(VARIANTS[m][0] for m in name.split('+'))}",)
        else:
            model, meta = trained(name, digits)
            pred = probs(model, x_new).argmax(1)
        if args.rotations and "+" not in name:
            angles = [float(a) for a in args.rotations.split(",")]
            for who, (xs, ys) in (("room", room), ("newcomers", (x_new, y_new))):
                turned = {a: probs(model, rotated(xs, a)) for a in angles}
                each = ", ".join(
                    f"{a:g}: {(p.argmax(1) == ys).mean():.4f}" for a, p in turned.items()
                )
                mean = (np.mean(list(turned.values()), axis=0).argmax(1) == ys).mean()
                print(f"  {name}, {who}, turned by {each}; their mean: {mean:.4f}", flush=True)
                out.setdefault(name, {})[f"rotations_{who}"] = {
                    **{str(a): float((p.argmax(1) == ys).mean()) for a, p in turned.items()},
                    "mean": float(mean),
                }
        acc = float((pred == y_new).mean())
        digit_acc = [float((pred[y_new == d] == d).mean()) for d in range(10)]
        out[name] = {**out.get(name, {}), **meta, "newcomers": acc, "per_digit": digit_acc}
        row = (
            f"| {VARIANTS[name][0]} | {meta['test_accuracy']:.4f} | {acc:.3f} | "
            f"{meta['seconds']:.0f} s |"
        )
        rows.append(row)
        per_digit.append(f"| {VARIANTS[name][0]} | " + " | ".join(f"{a:.2f}" for a in digit_acc))
        print(row, f"(load {__import__('os').getloadavg()[0]:.1f})", flush=True)
    text = "\n".join(
        [
            f"{len(y_new):,} drawings of pendigits writers 16-30, width 18, canvas_to_mnist",
            "",
            "| model (MNIST only) | MNIST test | newcomers | training |",
            "|---|---|---|---|",
            *rows,
            "",
            "| model | " + " | ".join(str(d) for d in range(10)) + " |",
            "|---|" + "---|" * 10,
            *[r + " |" for r in per_digit],
        ]
    )
    print(text)
    (ROOT_DIR / "artifacts" / "default_model.md").write_text(text + "\n")
    (ROOT_DIR / "artifacts" / "default_model.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
