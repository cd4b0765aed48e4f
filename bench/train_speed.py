"""Training speed: the tutorial's plain model.fit against DigitLab's train() and its job wrapper.

Runs the variants interleaved (tutorial, bare, train, job, tutorial, ...) on all 60,000 training
digits, batch 128, and prints one table and a summary line. Time is from the call to the end of
the last epoch (model build, XLA compile and the first epoch included); test accuracy is on the
10,000 test digits.

    DIGITLAB_MNIST=/work/shared/data/mnist.npz .venv/bin/python bench/train_speed.py [--epochs 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

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
)

BATCH = 128
FORWARD_FLOPS = 2 * (784 * 512 + 512 * 10)  # per image, the two matmuls of the tutorial's MLP
TRAIN_FLOPS = 3 * FORWARD_FLOPS  # forward + backward (two matmuls per forward one)


def tutorial_fit(digits, epochs: int) -> dict:
    """The tutorial, verbatim (verbose=0 only, so that no progress bar is timed)."""
    from keras import layers, models
    from keras.utils import to_categorical

    train_images = digits.x_train.reshape((60000, 28 * 28))
    train_images = train_images.astype("float32") / 255
    test_images = digits.x_test.reshape((10000, 28 * 28))
    test_images = test_images.astype("float32") / 255
    train_labels = to_categorical(digits.y_train)
    test_labels = to_categorical(digits.y_test)

    t0, c0 = time.perf_counter(), time.process_time()
    network = models.Sequential()
    network.add(layers.Dense(512, activation="relu", input_shape=(28 * 28,)))
    network.add(layers.Dense(10, activation="softmax"))
    network.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    network.fit(train_images, train_labels, epochs=epochs, batch_size=BATCH, verbose=0)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    _, test_acc = network.evaluate(test_images, test_labels, verbose=0)
    return {"seconds": seconds, "cpu": cpu, "accuracy": float(test_acc)}


def bare_fit(digits, epochs: int) -> dict:
    """DigitLab's default model and input pipeline with a bare model.fit: no callbacks, no job."""
    from digitlab.data import normalise, one_hot
    from digitlab.models import ModelConfig, build_model
    from digitlab.training import evaluate, input_pipeline

    x, y = normalise(digits.x_train), one_hot(digits.y_train)  # (60000, 28, 28), (60000, 10)
    t0, c0 = time.perf_counter(), time.process_time()
    model = build_model(ModelConfig(), seed=0)
    data = input_pipeline(x, y, batch_size=BATCH, seed=0)
    model.fit(data, epochs=epochs, shuffle=False, verbose=0)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    acc = evaluate(model, digits.x_test, digits.y_test)[1]
    return {"seconds": seconds, "cpu": cpu, "accuracy": acc}


def train_config(epochs: int):
    from digitlab.training import TrainConfig

    # validation_fraction=0: all 60,000 digits train, as in the tutorial (fair images/s)
    return TrainConfig(epochs=epochs, batch_size=BATCH, validation_fraction=0.0, seed=0)


def digitlab_train(digits, epochs: int) -> dict:
    """digitlab.training.train with its events callback (every batch and epoch event recorded)."""
    from digitlab.training import train

    events: list[dict] = []
    last_epoch = [0.0, 0.0]  # wall and process CPU clocks at the end of the last epoch

    def on_event(e):
        events.append(e)
        if e["type"] == "epoch":
            last_epoch[:] = time.perf_counter(), time.process_time()

    t0, c0 = time.perf_counter(), time.process_time()
    result = train(digits, train_config=train_config(epochs), on_event=on_event)
    batches = [e["batch"] for e in events if e["type"] == "batch"]
    assert batches.count(-(-60000 // BATCH)) == epochs  # every epoch reported its last batch
    return {
        "seconds": last_epoch[0] - t0,
        "cpu": last_epoch[1] - c0,
        "accuracy": result.test_accuracy,
    }


def digitlab_job(digits, epochs: int) -> dict:
    """The same train() as the app runs it: a digitlab.jobs job in a thread, Progress events."""
    from digitlab.jobs import JobManager, training_work
    from digitlab.models import ModelConfig

    jobs = JobManager(max_jobs=1, heartbeat_timeout=0)
    work = training_work(digits, model_config=ModelConfig(), train_config=train_config(epochs))
    last_epoch = [0.0, 0.0]  # wall and process CPU clocks at the end of the last epoch

    def stamped(on_event, stop):  # notes when the last epoch ended; events pass on unchanged
        def sink(e):
            if e["type"] == "epoch":
                last_epoch[:] = time.perf_counter(), time.process_time()
            on_event(e)

        return work(sink, stop)

    t0, c0 = time.perf_counter(), time.process_time()
    job = jobs.submit(stamped, kind="train", watched=False)
    while not job.progress.finished:  # a page polls like this, from its fragment
        time.sleep(0.1)
        _ = job.progress.fraction, job.progress.batch
    if job.progress.status != "done":
        raise RuntimeError(f"job ended {job.progress.status}: {job.progress.error}")
    return {
        "seconds": last_epoch[0] - t0,
        "cpu": last_epoch[1] - c0,
        "accuracy": job.progress.result.test_accuracy,
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
            row["eps"] = args.epochs / row["seconds"]  # epochs per second

    ref = runs["tutorial model.fit"]
    rows = []
    for name, r in runs.items():
        eps = median(r, "eps")
        rows.append(
            [
                name,
                median(r, "seconds") / args.epochs,
                eps,
                eps * 60000,
                f"{100 * eps * epoch_gflop / gemm:.0f}%",
                ratios(r, ref, "eps"),
                median(r, "cpu") / args.epochs,
                ratios(ref, r, "cpu"),
                median(r, "accuracy"),
            ]
        )
    print()
    print(
        table(
            [
                "variant",
                "s/epoch",
                "epochs/s",
                "images/s",
                "of GEMM rate",
                "x tutorial (wall)",
                "CPU s/epoch",
                "x tutorial (CPU time)",
                "test acc",
            ],
            rows,
        )
    )

    speedup = ratios(runs["DigitLab train()"], ref, "eps")
    cpu_speedup = ratios(ref, runs["DigitLab train()"], "cpu")
    acc_diff = 100 * (median(runs["DigitLab train()"], "accuracy") - median(ref, "accuracy"))
    job_over = ratios(runs["DigitLab job"], runs["DigitLab bare fit"], "seconds") - 1
    job_cpu_over = ratios(runs["DigitLab job"], runs["DigitLab bare fit"], "cpu") - 1
    train_over = ratios(runs["DigitLab train()"], runs["DigitLab bare fit"], "seconds") - 1
    print()
    print(
        table(
            ["measure", "value", "target", "met/missed"],
            [
                [
                    "train() epochs/s / tutorial's (wall clock)",
                    f"{speedup:.2f}x",
                    ">= 1.5x",
                    met(speedup >= 1.5),
                ],
                ["the same by CPU time (less load noise)", f"{cpu_speedup:.2f}x", "(info)", ""],
                [
                    "test accuracy, train() - tutorial",
                    f"{acc_diff:+.2f} pt",
                    "within +-0.3 pt",
                    met(abs(acc_diff) <= 0.3),
                ],
                [
                    "job overhead over bare fit (wall clock)",
                    f"{100 * job_over:+.1f}%",
                    "<= 3%",
                    met(job_over <= 0.03),
                ],
                ["the same by CPU time", f"{100 * job_cpu_over:+.1f}%", "(info)", ""],
                [
                    "train() overhead over bare fit (wall)",
                    f"{100 * train_over:+.1f}%",
                    "(info)",
                    "",
                ],
            ],
        )
    )
    print(f"\ncommand: {command_line()}  ({args.rounds} rounds, medians)")
    print(
        f"SUMMARY train_speed: train() {speedup:.2f}x tutorial epochs/s ({met(speedup >= 1.5)}),"
        f" accuracy {acc_diff:+.2f} pt ({met(abs(acc_diff) <= 0.3)}),"
        f" job overhead {100 * job_over:+.1f}% ({met(job_over <= 0.03)})"
    )


if __name__ == "__main__":
    main()
