"""The room learning curve: newcomers' drawings read by models taught 0 to all of the room's.

    DIGITLAB_MNIST=../shared/data/mnist.npz nice -n 10 .venv/bin/python bench/room_curve.py

The pendigits writers are split by writer: writers 1-15 are "the room" (3,749 digits), writers
16-30 "the newcomers" (3,745). Every digit is drawn once on the 280x280 canvas (stroke width 18,
bench/drawn_digits.py's plan, seed 0) and read through canvas_to_mnist. For the tutorial MLP and
the CNN, a model trained on MNIST alone (bench/default_model.py's variant, from its cache) is
taught 0, 100, 300, 1,000 and all room drawings (the first k of one seeded shuffle) with
digitlab.teach.teach: MNIST mixed with the drawings (a quarter of every epoch's examples), no
drawing held out (the newcomers are the held-out set). Reported: the newcomers' accuracy and the
MNIST test accuracy after teaching, and the seconds it took. Writes artifacts/room_curve.md/.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import _common  # noqa: F401  (sys.path, quiet TensorFlow)
import numpy as np
from _common import ROOT_DIR, full_mnist, machine, newcomer_drawings, room_drawings
from default_model import VARIANTS, trained

from digitlab.models import accuracy
from digitlab.teach import TeachConfig, teach
from digitlab.training import TrainConfig

SIZES = (0, 100, 300, 1000, -1)  # -1: all of the room's drawings


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    ap.add_argument("--mlp-base", default="mlp_aug5", choices=list(VARIANTS))
    ap.add_argument("--cnn-base", default="cnn_aug3", choices=list(VARIANTS))
    ap.add_argument("--epochs", type=int, default=2, help="teaching epochs")
    ap.add_argument("--mnist-digits", type=int, default=30_000, help="MNIST digits an epoch")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    args = ap.parse_args(argv)

    print(machine(), flush=True)
    digits = full_mnist()
    x_new, y_new = newcomer_drawings()
    x_room, y_room = room_drawings()
    order = np.random.default_rng(0).permutation(len(y_room))
    x_room, y_room = x_room[order], y_room[order]
    rows, out = [], {}
    for arch in args.archs:
        base_name = args.mlp_base if arch == "mlp" else args.cnn_base
        base, meta = trained(base_name, digits)
        _, mcfg, tcfg = VARIANTS[base_name]
        for k in args.sizes:
            k = len(y_room) if k < 0 else k
            t0 = time.perf_counter()
            if k == 0:
                model, mnist = base, meta["test_accuracy"]
            else:
                result = teach(
                    digits,
                    x_room[:k],
                    y_room[:k],
                    model=base,
                    model_config=mcfg,
                    train_config=TrainConfig(epochs=args.epochs, augment=tcfg.augment, seed=0),
                    teach_config=TeachConfig(mnist_digits=args.mnist_digits, hold_out_every=0),
                )
                model, mnist = result.model, result.after.mnist
            seconds = time.perf_counter() - t0
            acc = accuracy(model, x_new, y_new)
            out[f"{arch}/{k}"] = {"newcomers": acc, "mnist": mnist, "seconds": seconds}
            row = f"| {arch.upper()} ({base_name}) | {k:,} | {acc:.3f} | {mnist:.4f} | {seconds:.0f} s |"
            rows.append(row)
            print(row, f"(load {os.getloadavg()[0]:.1f})", flush=True)
    text = "\n".join(
        [
            f"newcomers: {len(y_new):,} drawings of writers 16-30; room: {len(y_room):,} of "
            f"writers 1-15; teaching {args.epochs} epochs, {args.mnist_digits:,} MNIST digits "
            "an epoch, drawings a quarter of the examples",
            "",
            "| model | room drawings taught | newcomers | MNIST test | teaching |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    print(text)
    (ROOT_DIR / "artifacts" / "room_curve.md").write_text(text + "\n")
    (ROOT_DIR / "artifacts" / "room_curve.json").write_text(
        json.dumps({"args": vars(args), "results": out}, indent=1, default=str)
    )


if __name__ == "__main__":
    main()
