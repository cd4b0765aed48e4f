"""`python -m digitlab ...`: the tutorial end to end, or one step of it, without a browser."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from digitlab.data import DataError, Digits, load_mnist
from digitlab.words import count

# The tutorial's numbers, for the closing table: published in the tutorial, and its own code
# rerun on full MNIST on this project's machines (README.md, "The tutorial, reproduced").
TUTORIAL_PUBLISHED = {"test_accuracy": 0.9783, "train_accuracy": 0.989}
TUTORIAL_MEASURED = {
    "test_accuracy": 0.9788,
    "reused_folds": [0.990, 0.997, 1.000, 1.000, 1.000],
    "fresh_folds_range": (0.973, 0.978),
    "fresh_mean": 0.976,
}


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def say(*args, **kwargs) -> None:
    """Human progress goes to stderr so that --json's stdout stays one JSON object."""
    print(*args, **kwargs, file=sys.stderr, flush=True)


class EpochPrinter:
    """Epoch lines always; an in-place batch counter when stderr is a terminal."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix
        self.live = sys.stderr.isatty()

    def __call__(self, event: dict) -> None:
        kind = event["type"]
        tag = f"{self.prefix}fold {event['fold']} " if "fold" in event else self.prefix
        if kind == "batch" and self.live and event["batch"] % 20 == 0:
            say(f"\r  {tag}batch {event['batch']}/{event['batches']}", end="")
        elif kind == "epoch":
            val = (
                f"  val_loss {event['val_loss']:.4f}  val_accuracy {event['val_accuracy']:.4f}"
                if "val_loss" in event
                else ""
            )
            say(
                f"\r  {tag}epoch {event['epoch']}/{event['epochs']}  loss {event['loss']:.4f}"
                f"  accuracy {event['accuracy']:.4f}{val}  ({event['seconds']:.1f} s)"
            )
        elif kind == "fold_end":
            say(f"  {tag}accuracy {100 * event['accuracy']:.3f}%  ({event['seconds']:.1f} s)")


# ---------------------------------------------------------------------------------------------
# Shared argument groups


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        metavar="PATH",
        help="mnist.npz or a folder of IDX files "
        "(default: $DIGITLAB_MNIST, the Keras cache, then the offline subset)",
    )
    p.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="use only the first N training digits (and N/6 test digits)",
    )


def add_model_args(p: argparse.ArgumentParser) -> None:
    from digitlab.models import ARCHITECTURES, OPTIMIZERS

    p.add_argument(
        "--arch", choices=ARCHITECTURES, default="mlp", help="default: mlp (the tutorial)"
    )
    p.add_argument("--hidden-units", type=int, default=512)
    p.add_argument("--layers", type=int, default=1, help="hidden layers (mlp)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="rmsprop")
    p.add_argument(
        "--lr", type=float, default=None, help="learning rate (default: the optimizer's)"
    )
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)


def get_digits(args) -> Digits:
    say("Loading MNIST ...")
    digits = load_mnist(args.data)
    args.data_kind = digits.kind  # what was found, before --limit makes it a "custom" slice
    if digits.kind == "subset":
        say(
            "No full MNIST here (no DIGITLAB_MNIST, no Keras cache, no network): running on the "
            "offline subset of 5,000 real MNIST digits. Numbers will be lower than the tutorial's."
        )
    if args.limit is not None:
        if args.limit < 10:
            raise CliError(f"--limit must be at least 10 digits, not {args.limit}.")
        digits = digits.take(args.limit, max(10, args.limit // 6))
    say(f"Data: {digits.summary}")
    return digits


def model_config_from(args):
    from digitlab.models import ModelConfig

    return ModelConfig(
        arch=args.arch,
        hidden_units=args.hidden_units,
        hidden_layers=args.layers,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        dropout=args.dropout,
    )


def emit_json(obj: dict) -> None:
    print(json.dumps(obj, default=float))


# ---------------------------------------------------------------------------------------------
# Commands


def cmd_train(args) -> int:
    from digitlab import store
    from digitlab.training import TrainConfig

    if args.learner is not None and args.save_as is None:
        raise CliError("--learner names whose model --save-as keeps; give --save-as NAME too.")
    if args.save_as is not None:  # refused before training, not after
        store.check_name(args.save_as, what="model name")
        learner = None if args.learner is None else store.check_learner(args.learner)
    model_config = model_config_from(args)
    train_config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_fraction=args.validation,
        seed=args.seed,
        augment=args.augment,
    )
    if args.drawings or args.from_model:
        return train_with_drawings(args, model_config, train_config)
    digits = get_digits(args)
    say(f"Training {model_config.describe()} for {count(args.epochs, 'epoch')} ...")
    result = run_training(digits, model_config, train_config)
    say(
        f"Test accuracy {result.test_accuracy:.4f}, test loss {result.test_loss:.4f}"
        f"  ({result.seconds:.1f} s)"
    )
    if args.save:
        from digitlab.models import save_model_file

        path = save_model_file(result.model, args.save)
        say(f"Saved the model to {path}")
    summary = result.summary()
    if args.save_as is not None:
        entry = store.save_trained(
            result, name=args.save_as, learner=learner, origin="command line"
        )
        whose = f"{entry.owner}'s" if entry.learner else "the room's"
        say(f"Kept in the store as {whose} {entry.title!r}")
        summary["saved"] = entry.to_dict()
    if args.json:
        emit_json(summary)
    return 0


def cmd_models(args) -> int:
    """The learner's saved models (the room's without --learner), newest first."""
    from digitlab import store

    learner = None if args.learner is None else store.check_learner(args.learner)
    entries = store.list_models(learner=learner)
    if args.json:
        emit_json({"learner": learner, "models": [e.to_dict() for e in entries]})
    else:
        for e in entries:
            acc = e.meta.get("test_accuracy")
            print(f"{e.id}  {e.title}  {acc:.4f}" if acc is not None else f"{e.id}  {e.title}  -")
    return 0


def train_with_drawings(args, model_config, train_config) -> int:
    """`train --drawings DIR [--from-model PATH]`: MNIST plus labelled canvas drawings
    (digitlab.teach), every 5th drawing held out and scored before and after."""
    from digitlab.models import load_model_file
    from digitlab.teach import TeachConfig, before_after_rows, read_drawing_folder, teach

    teach_config = TeachConfig(mnist_digits=0, drawing_share=args.drawing_share)
    folder = None
    if args.drawings:
        folder = read_drawing_folder(args.drawings)
        for line in folder.skipped:
            say(line)
        say(
            f"Drawings: {len(folder.labels)} read from {args.drawings}, "
            f"{len(folder.skipped)} left out"
        )
        if not len(folder.labels):
            raise CliError(f"{args.drawings}: no drawing could be read (see the lines above).")
    else:
        raise CliError("--from-model needs --drawings DIR: the drawings to teach it.")
    base = load_model_file(args.from_model) if args.from_model else None
    digits = get_digits(args)
    say(
        f"{'Teaching ' + args.from_model if base is not None else 'Training ' + model_config.describe()}"
        f" for {count(args.epochs, 'epoch')} on MNIST and {count(len(folder.labels), 'drawing')} "
        f"({teach_config.drawing_share:.0%} of the examples). {teach_config.rule()}"
    )
    result = teach(
        digits,
        folder.images,
        folder.labels,
        model=base,
        model_config=model_config,
        train_config=train_config,
        teach_config=teach_config,
        on_event=EpochPrinter(),
    )
    for row in before_after_rows(result):
        before = "-" if row.get("before") is None else f"{row['before']:.1f}"
        after = "-" if row["after"] is None else f"{row['after']:.1f}"
        say(f"  {row['score']}: before {before}, after {after}")
    say(f"Test accuracy {result.after.mnist:.4f}  ({result.seconds:.1f} s)")
    if args.save:
        from digitlab.models import save_model_file

        say(f"Saved the model to {save_model_file(result.model, args.save)}")
    if args.json:
        emit_json(
            {
                **result.summary(),
                "test_accuracy": result.after.mnist,
                "drawings": {
                    "folder": args.drawings,
                    "read": len(folder.labels),
                    "left_out": len(folder.skipped),
                    "left_out_lines": folder.skipped,
                },
            }
        )
    return 0


def run_training(digits, model_config, train_config):
    """train() here, or as a task on the Ray cluster at DIGITLAB_RAY_ADDRESS when it is set."""
    from digitlab import engine

    if engine.address():
        from digitlab import work
        from digitlab.training import StopEvent

        say(f"On the Ray cluster at {engine.address()} ...")
        run = work.training_work(digits, model_config=model_config, train_config=train_config)
        return run(EpochPrinter(), StopEvent())
    from digitlab.training import train

    return train(
        digits, model_config=model_config, train_config=train_config, on_event=EpochPrinter()
    )


def fold_executor(workers: int | None):
    """Folds on the engine (Ray) with DIGITLAB_RAY_ADDRESS or --workers above 1; else here."""
    from digitlab import engine

    if engine.address() or (workers is not None and workers > 1):
        engine.connect()
        say(f"Folds on Ray ({engine.status()['address']}, {engine.status()['cpus']} CPUs)")
        return engine.RayExecutor()
    return None  # crossval's SerialExecutor: one fold after another in this process


def cmd_kfold(args) -> int:
    digits = get_digits(args)
    executor = fold_executor(args.workers)
    result = kfold_on(
        digits, args, model_config_from(args), reuse_model=args.reuse_model, executor=executor
    )
    if args.json:
        emit_json(result.to_dict())
    return 0


def kfold_on(digits, args, model_config, *, reuse_model: bool, executor=None):
    """k-fold on the training digits with the command's settings; prints the fold report."""
    from digitlab.crossval import cross_validate

    result = cross_validate(
        digits.x_train,
        digits.y_train,
        model_config=model_config,
        n_splits=args.folds,
        epochs=args.epochs,
        batch_size=args.batch_size,
        reuse_model=reuse_model,
        seed=args.seed,
        executor=executor,
        on_event=EpochPrinter(),
        data_source=digits.source,
    )
    say(fold_report(result))
    return result


def fold_report(result) -> str:
    kind = (
        "one network reused across folds (the tutorial's leak)"
        if result.reuse_model
        else "a fresh network per fold"
    )
    scores = ", ".join(f"{100 * a:.3f}" for a in result.accuracies)
    return (
        f"{result.n_splits}-fold cross-validation, {kind}:\n  fold accuracies (%): {scores}\n"
        f"  Accuracy: mean={100 * result.mean:.3f} std={100 * result.std:.3f}, "
        f"n={len(result.folds)}  ({result.seconds:.1f} s, {result.workers} worker(s))"
    )


def read_image(path: str) -> np.ndarray:
    """An image file -> (H, W, 4) uint8 RGBA with light ink, as the canvas gives it."""
    from digitlab.preprocess import PreprocessError, read_image_file

    try:
        return read_image_file(path)
    except PreprocessError as e:
        raise CliError(str(e)) from None


def cmd_predict(args) -> int:
    from digitlab.models import load_model_file, predict_proba
    from digitlab.preprocess import read_canvas

    x, problem = read_canvas(read_image(args.image))  # (28, 28) float32 in [0, 1]
    if problem:
        raise CliError(f"{args.image}: {problem}")
    model = load_model_file(args.model)
    probs = predict_proba(model, x)[0]
    digit = int(probs.argmax())
    say(f"{args.image}: {digit}  (confidence {probs[digit]:.1%})")
    say("  " + "  ".join(f"{d}:{p:.3f}" for d, p in enumerate(probs)))
    if args.json:
        emit_json(
            {
                "image": args.image,
                "digit": digit,
                "confidence": float(probs[digit]),
                "probabilities": [float(p) for p in probs],
            }
        )
    else:
        print(digit)
    return 0


def cmd_explain(args) -> int:
    """Why the model reads an image as it does: pictures in a folder, and the top answers."""
    from pathlib import Path

    from digitlab import explain
    from digitlab.models import load_model_file
    from digitlab.preprocess import read_canvas

    if args.versus is not None and not 0 <= args.versus <= 9:
        raise CliError(f"--versus must be a digit 0..9, not {args.versus}.")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"{out}: exists and is not a folder.")
    if not out.parent.is_dir():
        raise CliError(f"{out.parent}: no such folder to write the pictures in.")
    x, problem = read_canvas(read_image(args.image))  # (28, 28) float32 in [0, 1]
    if problem:
        raise CliError(f"{args.image}: {problem}")
    model = load_model_file(args.model)
    versus = explain.RUNNER_UP if args.versus is None else args.versus
    e = explain.explain(model, x, [explain.ANSWER, versus])
    out.mkdir(exist_ok=True)
    paths = explain.write_pictures(model, e, out)
    say(f"{args.image}: " + ", ".join(f"{d} ({p:.1%})" for d, p in e.top(3)))
    if e.feature_maps is None:
        top = e.top_units(e.digit, n=5)
        say(f"  hidden units that pushed {e.digit} up most (unit: activation x weight):")
        for u, a, w in zip(top.units, top.activations, top.weights, strict=True):
            say(f"    {u}: {a:.3f} x {w:.3f} = {a * w:.3f}")
    if args.json:
        emit_json(
            {
                "image": args.image,
                "digit": e.digit,
                "top": [{"digit": d, "probability": p} for d, p in e.top(3)],
                "files": [str(p) for p in paths],
            }
        )
    else:
        for p in paths:
            print(f"wrote {p}")
    return 0


def cmd_reproduce(args) -> int:
    """The tutorial, step by step, then its numbers beside ours."""
    from digitlab.models import ModelConfig, build_model, model_summary
    from digitlab.training import TrainConfig, train

    t0 = time.perf_counter()
    digits = get_digits(args)
    say("\n== 1. The data")
    for part in ("train", "test"):
        x, y = getattr(digits, f"x_{part}"), getattr(digits, f"y_{part}")
        counts = np.bincount(y, minlength=10)
        say(
            f"{part}_images.shape {x.shape} {x.dtype}; len({part}_labels) {len(y)}; "
            f"first labels {y[:5].tolist()}; per digit {counts.tolist()}"
        )

    config = ModelConfig()
    say("\n== 2. The network (the tutorial's: Dense(512, relu) -> Dense(10, softmax), rmsprop)")
    say(model_summary(build_model(config)))

    say(
        f"\n== 3. Training: {count(args.epochs, 'epoch')}, batch {args.batch_size}, on all "
        f"{len(digits.x_train):,} training digits"
    )
    run = train(
        digits,
        model_config=config,
        on_event=EpochPrinter(),
        train_config=TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, validation_fraction=0.0, seed=args.seed
        ),
    )
    say(f"test_acc: {run.test_accuracy:.4f}  (test_loss {run.test_loss:.4f})")

    say(f"\n== 4. {args.folds}-fold cross-validation, a fresh network per fold")
    fresh = kfold_on(digits, args, config, reuse_model=False)
    say(f"\n== 5. The tutorial's version: one network reused across {args.folds} folds")
    reused = kfold_on(digits, args, config, reuse_model=True)

    rows = reproduce_table(run, fresh, reused, digits)
    say("\n== Tutorial vs DigitLab")
    say(rows)
    say(f"\nDone in {time.perf_counter() - t0:.0f} s on {digits.summary}.")
    if args.json:
        emit_json(
            {
                "data": digits.summary,
                "data_kind": args.data_kind,  # "full" or "subset", whatever --limit took of it
                "test_accuracy": run.test_accuracy,
                "test_loss": run.test_loss,
                "history": run.history,
                "fresh_folds": fresh.accuracies.tolist(),
                "fresh_mean": fresh.mean,
                "fresh_std": fresh.std,
                "reused_folds": reused.accuracies.tolist(),
                "reused_mean": reused.mean,
                "seconds": time.perf_counter() - t0,
            }
        )
    return 0


def reproduce_table(run, fresh, reused, digits) -> str:
    def pct(values):
        return ", ".join(f"{100 * v:.1f}" for v in values)

    lo, hi = TUTORIAL_MEASURED["fresh_folds_range"]
    lines = [
        f"{'':34} {'tutorial':>33} | DigitLab ({digits.kind})",
        f"{'test accuracy':34} {TUTORIAL_PUBLISHED['test_accuracy']:>33.4f} | {run.test_accuracy:.4f}",
        f"{'k-fold, one reused network (%)':34} {pct(TUTORIAL_MEASURED['reused_folds']):>33} | "
        f"{pct(reused.accuracies)}",
        f"{'k-fold, fresh network per fold (%)':34} {f'{100 * lo:.1f} to {100 * hi:.1f}':>33} | "
        f"{pct(fresh.accuracies)}",
        f"{'fresh k-fold mean (%)':34} {100 * TUTORIAL_MEASURED['fresh_mean']:>33.1f} | "
        f"{100 * fresh.mean:.1f} (std {100 * fresh.std:.2f})",
        f"{'reused minus fresh mean (points)':34} {'':>33} | "
        f"{100 * (reused.mean - fresh.mean):+.2f}  (the leak)",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line, not a usage dump
        command = " ".join(self.prog.split()[1:])  # "" for the top level, "train" for a command
        see = f"python -m digitlab {command} --help".replace("  ", " ")
        raise CliError(f"{message} (see '{see}')")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="digitlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("reproduce", help="the tutorial end to end, and its numbers beside ours")
    add_data_args(p)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("train", help="train one model, test it, optionally save it")
    add_data_args(p)
    add_model_args(p)
    p.add_argument("--validation", type=float, default=0.1, help="fraction of train held out")
    p.add_argument("--augment", action="store_true", help="shifts, rotations, scale, stroke width")
    p.add_argument("--save", metavar="PATH", help="write the trained model as a .keras file")
    p.add_argument(
        "--drawings",
        metavar="DIR",
        help="add labelled canvas drawings: image files in DIR/0/ ... DIR/9/ (every 5th held out)",
    )
    p.add_argument(
        "--from-model", metavar="PATH", help="with --drawings: teach this .keras model instead"
    )
    p.add_argument(
        "--drawing-share",
        type=float,
        default=0.25,
        help="with --drawings: the drawings' share of each epoch's examples (default 0.25)",
    )
    p.add_argument(
        "--save-as", metavar="MODEL", help="keep the model in the store (DIGITLAB_HOME) as MODEL"
    )
    p.add_argument(
        "--learner", metavar="NAME", help="whose model --save-as keeps (default: the room)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("models", help="list the models kept in the store")
    p.add_argument("--learner", metavar="NAME", help="whose models (default: the room's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("kfold", help="k-fold cross-validation, a fresh model per fold")
    add_data_args(p)
    add_model_args(p)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--reuse-model", action="store_true", help="the tutorial's leaky variant")
    p.add_argument(
        "--workers",
        type=int,
        help="above 1: folds side by side on Ray (default: one after another here, or on the "
        "cluster at DIGITLAB_RAY_ADDRESS)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_kfold)

    p = sub.add_parser("predict", help="which digit an image shows")
    p.add_argument(
        "image", help="PNG/JPEG: light ink on dark, dark ink on light, or on transparent"
    )
    p.add_argument("--model", required=True, metavar="PATH", help="a .keras model file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("explain", help="why a model reads an image as it does, as pictures")
    p.add_argument("image", help="PNG/JPEG, as for predict")
    p.add_argument("--model", required=True, metavar="PATH", help="a .keras model file")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG files")
    p.add_argument(
        "--versus", type=int, metavar="D", help="compare with digit D (default: runner-up)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_explain)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the user asked for something that cannot work: one line, exit 2."""
    from digitlab.crossval import CrossValError
    from digitlab.engine import EngineError
    from digitlab.explain import ExplainError
    from digitlab.models import ModelError
    from digitlab.store import StoreError
    from digitlab.training import TrainingError

    return (
        CliError,
        DataError,
        ModelError,
        TrainingError,
        CrossValError,
        EngineError,
        ExplainError,
        StoreError,
    )


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "kfold" and args.folds < 2:
            raise CliError(f"--folds must be at least 2, not {args.folds}.")
        return args.func(args)
    except user_errors() as e:
        say(f"digitlab: error: {e}")
        return 2
    except KeyboardInterrupt:
        say("digitlab: interrupted.")
        return 130
