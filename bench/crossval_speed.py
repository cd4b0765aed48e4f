"""Cross-validation speed: folds one after another here against folds side by side on Ray.

5-fold cross-validation of the default model on all 60,000 training digits, 5 epochs, batch 128,
run with SerialExecutor (in this process) and with engine.RayExecutor (the app's default: the
embedded Ray, workers warmed as the app warms them),
interleaved (serial, parallel, serial, ...). Prints one table and a summary line: the speed-up,
the fold accuracies of both, and the events that reached the caller's on_event.

    DIGITLAB_MNIST=../shared/data/mnist.npz .venv/bin/python bench/crossval_speed.py [--rounds 1] [--epochs 5]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter

import numpy as np
from _common import command_line, full_mnist, interleaved, machine, median, met, ratios, table

TARGET_SPEEDUP = 1.5
TOLERANCE_PT = 0.3  # mean fold accuracy: parallel within this of serial ("within noise")


def run(digits, executor, *, epochs: int, folds: int) -> dict:
    from digitlab.crossval import cross_validate

    kinds: Counter = Counter()
    t0, c0 = time.perf_counter(), time.process_time()
    result = cross_validate(
        digits.x_train,
        digits.y_train,
        n_splits=folds,
        epochs=epochs,
        executor=executor,
        on_event=lambda e: kinds.update(
            [e["type"]] + (["last batch"] if e.get("batch") == e.get("batches") else [])
        ),
    )
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "cores": (time.process_time() - c0) / seconds,  # this process only: serial runs
        "mean": result.mean,
        "accuracies": result.accuracies.tolist(),
        "events": dict(kinds),
        "workers": result.workers,
        "fold_seconds": float(np.median([f.seconds for f in result.folds])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    from digitlab import engine
    from digitlab.crossval import SerialExecutor

    digits = full_mnist()
    print(f"machine: {machine()}")
    engine.connect()
    engine.warm()  # as the app does at server start: one warm worker per CPU
    parallel = engine.RayExecutor()
    name = f"Ray ({engine.status()['cpus']} CPUs)"
    runs = interleaved(
        {
            "serial (SerialExecutor)": lambda: run(
                digits, SerialExecutor(), epochs=args.epochs, folds=args.folds
            ),
            name: lambda: run(digits, parallel, epochs=args.epochs, folds=args.folds),
        },
        rounds=args.rounds,
    )
    serial, par = runs["serial (SerialExecutor)"], runs[name]
    speedup = ratios(serial, par, "seconds")
    diff_pt = 100 * (median(par, "mean") - median(serial, "mean"))
    fold_diff_pt = 100 * max(
        abs(a - b)
        for s, p in zip(serial, par, strict=True)
        for a, b in zip(s["accuracies"], p["accuracies"], strict=True)
    )
    cores_busy = median(serial, "cores")
    bound = (os.cpu_count() or 1) / cores_busy
    epochs_expected = args.folds * args.epochs
    rows = []
    for label, r in runs.items():
        accs = r[-1]["accuracies"]
        ev = r[-1]["events"]
        rows.append(
            [
                label,
                median(r, "seconds"),
                f"{ratios(serial, r, 'seconds'):.2f}x",
                " ".join(f"{a:.4f}" for a in accs),
                f"{np.mean(accs):.4f} +- {np.std(accs):.4f}",
                f"{ev.get('epoch', 0)} epoch ({epochs_expected} expected), {ev.get('batch', 0)}"
                f" batch progress, {ev.get('last batch', 0)} of them an epoch's last batch",
            ]
        )
    print()
    print(
        table(
            ["run", "seconds", "speed-up", "fold accuracies", "mean +- std", "events at on_event"],
            rows,
        )
    )
    print()
    print(
        table(
            ["measure", "value", "target", "met/missed"],
            [
                [
                    f"{args.folds} folds x {args.epochs} epochs, serial / parallel time",
                    f"{speedup:.2f}x",
                    f">= {TARGET_SPEEDUP:g}x",
                    met(speedup >= TARGET_SPEEDUP),
                ],
                [
                    "cores the serial run keeps busy (its CPU s / wall s)",
                    f"{cores_busy:.2f} of {os.cpu_count()}",
                    "(info)",
                    "",
                ],
                [
                    "the most parallel folds could gain here (cores / that)",
                    f"{bound:.2f}x, before any worker start-up or compile",
                    "(info)",
                    "",
                ],
                [
                    "mean fold accuracy, parallel - serial",
                    f"{diff_pt:+.2f} pt (largest fold difference {fold_diff_pt:.2f} pt)",
                    f"within +-{TOLERANCE_PT:g} pt",
                    met(abs(diff_pt) <= TOLERANCE_PT),
                ],
            ],
        )
    )
    # On paper: a room of 200 learners each starting a k-fold run at once, one fold per CPU, each
    # fold costing what it cost here with one fold per CPU (the Ray runs).
    fold_s = median(par, "fold_seconds")
    paper = []
    for cpus in (16, 64, 256):
        waves = -(-200 * args.folds // cpus)
        paper.append([f"{cpus} CPUs", waves, f"{waves * fold_s / 60:.1f} min"])
    print(f"\nOn paper: 200 learners x {args.folds} folds, {fold_s:.1f} s a fold (measured above)")
    print(table(["cluster", "waves of folds", "wall time"], paper))
    print(f"\ncommand: {command_line()}  ({args.rounds} rounds, medians)")
    print(
        f"SUMMARY crossval_speed: parallel {speedup:.2f}x serial ({met(speedup >= TARGET_SPEEDUP)}),"
        f" mean accuracy {diff_pt:+.2f} pt ({met(abs(diff_pt) <= TOLERANCE_PT)})"
    )


if __name__ == "__main__":
    main()
