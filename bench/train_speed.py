"""Training speed: the tutorial's plain model.fit against DigitLab's train() and its job wrapper.

Runs the variants interleaved (tutorial, bare, train, job, tutorial, ...) on all 60,000 training
digits, batch 128, and prints one table and a summary line. Time is the whole run, from the call
to a tested model: model build, XLA compile, the epochs, and the test on the 10,000 test digits
(until round 4b it ended at the last epoch's end, which left out a stall after fit in DigitLab's
runs: BENCHMARKS.md, round 5).

    DIGITLAB_MNIST=../shared/data/mnist.npz .venv/bin/python bench/train_speed.py [--epochs 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import (
    command_line,
    full_mnist,
    gemm_gflops,
    interleaved,
    machine,
    median,
    met,
    ratios,
    table,
    tree_cpu_s,
)

BATCH = 128
FORWARD_FLOPS = 2 * (784 * 512 + 512 * 10)  # per image, the two matmuls of the tutorial's MLP
TRAIN_FLOPS = 3 * FORWARD_FLOPS  # forward + backward (two matmuls per forward one)


def epoch_clock():
    """A Keras callback noting the wall clock at each epoch's end (no batch hooks)."""
    import keras

    class Clock(keras.callbacks.Callback):
        ends: list[float] = []

        def on_epoch_end(self, epoch, logs=None):
            self.ends.append(time.perf_counter())

    clock = Clock()
    clock.ends = []
    return clock


def tutorial_fit(digits, epochs: int) -> dict:
    """The tutorial, verbatim (verbose=0, so that no progress bar is timed, and an epoch clock)."""
    from keras import layers, models
    from keras.utils import to_categorical

    train_images = digits.x_train.reshape((60000, 28 * 28))
    train_images = train_images.astype("float32") / 255
    test_images = digits.x_test.reshape((10000, 28 * 28))
    test_images = test_images.astype("float32") / 255
    train_labels = to_categorical(digits.y_train)
    test_labels = to_categorical(digits.y_test)

    t0, c0 = time.perf_counter(), tree_cpu_s()
    network = models.Sequential()
    network.add(layers.Dense(512, activation="relu", input_shape=(28 * 28,)))
    network.add(layers.Dense(10, activation="softmax"))
    network.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    clock = epoch_clock()
    network.fit(
        train_images, train_labels, epochs=epochs, batch_size=BATCH, verbose=0, callbacks=[clock]
    )
    _, test_acc = network.evaluate(test_images, test_labels, verbose=0)
    seconds, cpu = time.perf_counter() - t0, tree_cpu_s() - c0
    return {"seconds": seconds, "cpu": cpu, "accuracy": float(test_acc), "ends": clock.ends}


def bare_fit(digits, epochs: int) -> dict:
    """DigitLab's default model, input pipeline and model.fit call (training.fit) with only an
    epoch clock: no events callback, no train() bookkeeping, no job."""
    from digitlab.data import one_hot
    from digitlab.models import ModelConfig, build_model
    from digitlab.training import evaluate, fit

    x, y = digits.x_train, one_hot(digits.y_train)  # (60000, 28, 28) uint8, as train() passes
    t0, c0 = time.perf_counter(), tree_cpu_s()
    model = build_model(ModelConfig(), seed=0)
    clock = epoch_clock()
    fit(model, x, y, epochs=epochs, batch_size=BATCH, seed=0, events=clock)
    acc = evaluate(model, digits.x_test, digits.y_test)[1]
    seconds, cpu = time.perf_counter() - t0, tree_cpu_s() - c0
    return {"seconds": seconds, "cpu": cpu, "accuracy": acc, "ends": clock.ends}


def train_config(epochs: int):
    from digitlab.training import TrainConfig

    # validation_fraction=0: all 60,000 digits train, as in the tutorial (fair images/s)
    return TrainConfig(epochs=epochs, batch_size=BATCH, validation_fraction=0.0, seed=0)


def digitlab_train(digits, epochs: int) -> dict:
    """digitlab.training.train with its events callback (every batch and epoch event recorded)."""
    from digitlab.training import train

    events: list[dict] = []
    ends: list[float] = []

    def on_event(e):
        events.append(e)
        if e["type"] == "epoch":
            ends.append(time.perf_counter())

    t0, c0 = time.perf_counter(), tree_cpu_s()
    result = train(digits, train_config=train_config(epochs), on_event=on_event)
    seconds, cpu = time.perf_counter() - t0, tree_cpu_s() - c0
    batches = [e["batch"] for e in events if e["type"] == "batch"]
    assert batches.count(-(-60000 // BATCH)) == epochs  # every epoch reported its last batch
    return {
        "seconds": seconds,
        "cpu": cpu,
        "accuracy": result.test_accuracy,
        "ends": ends,
    }


def digitlab_job(digits, epochs: int) -> dict:
    """The same train() as the app runs it: a digitlab.jobs job whose work runs as a task on the
    embedded Ray (a warm worker; CPU time counts every process under this one), Progress read by
    polling."""
    from digitlab import engine
    from digitlab.jobs import JobManager
    from digitlab.models import ModelConfig
    from digitlab.work import training_work

    engine.connect()
    engine.warm()  # the app warms one worker per CPU at server start; a job finds them ready
    jobs = JobManager(max_jobs=1, heartbeat_timeout=0)
    work = training_work(digits, model_config=ModelConfig(), train_config=train_config(epochs))
    tested = [0.0, 0.0]  # wall and CPU clocks when the test score arrived
    ends: list[float] = []

    def stamped(on_event, stop):  # notes when each epoch ended; events pass on unchanged
        def sink(e):
            if e["type"] == "epoch":
                ends.append(time.perf_counter())
            elif e["type"] == "test":
                tested[:] = time.perf_counter(), tree_cpu_s()
            on_event(e)

        return work(sink, stop)

    t0, c0 = time.perf_counter(), tree_cpu_s()
    job = jobs.submit(stamped, kind="train", watched=False)
    while not job.progress.finished:  # a page polls like this, from its fragment
        time.sleep(0.1)
        _ = job.progress.fraction, job.progress.batch
    if job.progress.status != "done":
        raise RuntimeError(f"job ended {job.progress.status}: {job.progress.error}")
    return {
        "seconds": tested[0] - t0,
        "cpu": tested[1] - c0,
        "accuracy": job.progress.result.test_accuracy,
        "ends": ends,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    digits = full_mnist()
    print(f"machine: {machine()}")
    gemm = gemm_gflops()
    epoch_gflop = TRAIN_FLOPS * 60000 / 1e9
    print(f"numpy float32 GEMM: {gemm:.0f} GFLOP/s; one epoch: {epoch_gflop:.0f} GFLOP")

    variants = {
        "tutorial model.fit": lambda: tutorial_fit(digits, args.epochs),
        "DigitLab bare fit": lambda: bare_fit(digits, args.epochs),
        "DigitLab train()": lambda: digitlab_train(digits, args.epochs),
        "DigitLab job": lambda: digitlab_job(digits, args.epochs),
    }
    runs = interleaved(variants, rounds=args.rounds)
    for rows in runs.values():
        for row in rows:
            row["eps"] = args.epochs / row["seconds"]  # epochs per second, start-up included
            # the epochs after the first: the rate once model build and XLA compile are paid
            steady = np.diff(row.pop("ends"))
            row["steady_s"] = float(np.median(steady)) if len(steady) else float("nan")

    ref = runs["tutorial model.fit"]
    rows = []
    for name, r in runs.items():
        eps = median(r, "eps")
        rows.append(
            [
                name,
                median(r, "seconds"),
                min(x["seconds"] for x in r),
                median(r, "steady_s"),
                f"{100 * eps * epoch_gflop / gemm:.0f}%",
                f"{ratios(r, ref, 'eps'):.2f}x",
                f"{best_ratio(ref, r, 'seconds'):.2f}x",
                f"{ratios(ref, r, 'steady_s'):.2f}x",
                median(r, "cpu") / args.epochs,
                median(r, "accuracy"),
            ]
        )
    print()
    print(
        table(
            [
                "variant",
                f"s for build, {args.epochs} epochs, test (median)",
                "(best)",
                "s/epoch after the first",
                "of GEMM rate",
                "x tutorial (medians)",
                "x tutorial (best)",
                "x tutorial (epochs after the first)",
                "CPU s/epoch",
                "test acc",
            ],
            rows,
        )
    )

    train_runs, job_runs, bare_runs = (
        runs["DigitLab train()"],
        runs["DigitLab job"],
        runs["DigitLab bare fit"],
    )
    speedup = ratios(train_runs, ref, "eps")
    speedup_best = best_ratio(ref, train_runs, "seconds")
    speedup_steady = ratios(ref, train_runs, "steady_s")
    acc_diff = 100 * (median(train_runs, "accuracy") - median(ref, "accuracy"))
    job_over = ratios(job_runs, bare_runs, "seconds") - 1
    job_over_best = best_ratio(job_runs, bare_runs, "seconds") - 1
    job_cpu_over = ratios(job_runs, bare_runs, "cpu") - 1
    train_over_best = best_ratio(train_runs, bare_runs, "seconds") - 1
    print()
    print(
        table(
            ["measure", "value", "target", "met/missed"],
            [
                [
                    "train() over the tutorial, whole run, best of rounds",
                    f"{speedup_best:.2f}x",
                    ">= 1.5x",
                    met(speedup_best >= 1.5),
                ],
                ["the same, median of per-round ratios", f"{speedup:.2f}x", "(info)", ""],
                ["the same, epochs after the first", f"{speedup_steady:.2f}x", "(info)", ""],
                [
                    "test accuracy, train() - tutorial",
                    f"{acc_diff:+.2f} pt",
                    "within +-0.3 pt",
                    met(abs(acc_diff) <= 0.3),
                ],
                [
                    "job over bare fit, best of rounds",
                    f"{100 * job_over_best:+.1f}%",
                    "<= 3%",
                    met(job_over_best <= 0.03),
                ],
                ["the same, median of per-round ratios", f"{100 * job_over:+.1f}%", "(info)", ""],
                ["the same by CPU time (medians)", f"{100 * job_cpu_over:+.1f}%", "(info)", ""],
                [
                    "train() over bare fit, best of rounds",
                    f"{100 * train_over_best:+.1f}%",
                    "(info)",
                    "",
                ],
            ],
        )
    )
    print(f"\ncommand: {command_line()}  ({args.rounds} rounds)")
    print(
        f"SUMMARY train_speed: train() {speedup_best:.2f}x tutorial, best of {args.rounds}"
        f" ({met(speedup_best >= 1.5)}; medians {speedup:.2f}x, epochs after the first"
        f" {speedup_steady:.2f}x), accuracy {acc_diff:+.2f} pt ({met(abs(acc_diff) <= 0.3)}),"
        f" job overhead {100 * job_over_best:+.1f}% best ({met(job_over_best <= 0.03)};"
        f" medians {100 * job_over:+.1f}%)"
    )


def best_ratio(a: list[dict], b: list[dict], key: str) -> float:
    """min(a[key]) / min(b[key]): each variant's best round, the one least hit by other load."""
    return min(x[key] for x in a) / min(x[key] for x in b)


if __name__ == "__main__":
    main()
