"""`python -m digitlab`: each command end to end on small real data, and one line for each bad input.

The commands run as `digitlab.cli.main` in this process (clitools.run_here); `python -m digitlab`
itself runs for two learners at once and for a cluster address that does not answer."""

import numpy as np
import pytest
from clitools import last_json, popen, run, run_here
from PIL import Image

from digitlab.data import load_mnist


def assert_one_clear_line(proc, *words):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("digitlab: error:")]
    assert len(errors) == 1, proc.stderr
    for w in words:
        assert w in errors[0], errors[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model trained through the CLI on the offline subset, saved to a .keras file."""
    tmp = tmp_path_factory.mktemp("cli")
    model = tmp / "m.keras"
    proc = run_here(
        "train",
        "--limit",
        3000,
        "--epochs",
        4,
        "--hidden-units",
        128,
        "--save",
        model,
        "--json",
        tmp_home=tmp,
    )
    assert proc.returncode == 0, proc.stderr
    return tmp, model, proc


def test_train_json_and_save(trained):
    tmp, model, proc = trained
    out = last_json(proc.stdout)
    assert {"test_accuracy", "test_loss", "history", "seconds"} <= set(out)
    assert len(out["history"]) == 4 and out["test_accuracy"] > 0.7
    assert "epoch 4/4" in proc.stderr and "offline subset" in proc.stderr
    assert model.is_file()


def test_predict_an_image(trained, tmp_path):
    tmp, model, _ = trained
    digits = load_mnist()
    # A typical test 0 (the nearest to the training 0s' mean image, chosen without the model:
    # the small model here misreads some odd ones) as a person's scan: dark ink on white
    # paper, 4x larger.
    zeros = np.flatnonzero(digits.y_test == 0)
    mean_zero = digits.x_train[digits.y_train == 0].mean(axis=0)
    i = int(zeros[np.argmin(((digits.x_test[zeros] - mean_zero) ** 2).sum(axis=(1, 2)))])
    img = Image.fromarray(255 - digits.x_test[i]).resize((112, 112), Image.Resampling.BILINEAR)
    img.save(tmp_path / "zero.png")
    proc = run_here("predict", tmp_path / "zero.png", "--model", model, "--json")
    assert proc.returncode == 0, proc.stderr
    out = last_json(proc.stdout)
    assert abs(sum(out["probabilities"]) - 1) < 1e-4 and out["digit"] == 0


def test_kfold_json(tmp_path):
    proc = run_here(
        "kfold",
        "--limit",
        400,
        "--folds",
        2,
        "--epochs",
        1,
        "--hidden-units",
        32,
        "--json",
        tmp_home=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = last_json(proc.stdout)
    assert len(out["folds"]) == 2 and 0 <= out["mean"] <= 1 and "std" in out
    assert "Accuracy: mean=" in proc.stderr


def test_reproduce_offline_says_so(tmp_path):
    proc = run_here(
        "reproduce", "--limit", 600, "--epochs", 1, "--folds", 2, "--json", tmp_home=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "No full MNIST here" in proc.stderr and "Tutorial vs DigitLab" in proc.stderr
    assert "Total params: 407,050" in proc.stderr  # the tutorial's network summary
    out = last_json(proc.stdout)
    assert out["data_kind"] == "subset"  # what was found, though --limit took a slice of it
    assert len(out["fresh_folds"]) == 2 and len(out["reused_folds"]) == 2


@pytest.mark.parametrize(
    "args, words",
    [
        (("train", "--data", "/no/such.npz"), ["/no/such.npz", "no such file"]),
        (("train", "--epochs", 0, "--limit", 100), ["Epochs must be 1..200"]),
        (("train", "--hidden-units", -3, "--limit", 100), ["Hidden units"]),
        (("train", "--dropout", 1.5, "--limit", 100), ["Dropout"]),
        (("train", "--epochs", "many"), ["invalid int value", "'python -m digitlab train --help'"]),
        (("kfold", "--folds", 1), ["at least 2"]),
        (("kfold", "--folds", 500, "--limit", 100, "--epochs", 1), ["500 folds", "only 100"]),
        (("predict", "/no/such.png", "--model", "/no/m.keras"), ["no such image"]),
        (("frobnicate",), ["invalid choice", "(see 'python -m digitlab --help')"]),
    ],
    ids=[
        "data",
        "epochs",
        "units",
        "dropout",
        "epochs-type",
        "folds",
        "folds-samples",
        "image",
        "command",
    ],
)
def test_bad_arguments(args, words, tmp_path):
    assert_one_clear_line(run_here(*args, tmp_home=tmp_path), *words)


def test_bad_dataset_file(tmp_path):
    (tmp_path / "bad.npz").write_text("not numbers")
    assert_one_clear_line(run_here("train", "--data", tmp_path / "bad.npz"), "bad.npz")


def test_predict_with_bad_model_and_image(tmp_path):
    Image.fromarray(np.zeros((50, 50), np.uint8)).save(tmp_path / "blank.png")
    (tmp_path / "fake.keras").write_text("hello")
    (tmp_path / "fake.png").write_text("hello")
    img = tmp_path / "digit.png"
    canvas = np.zeros((100, 100), np.uint8)
    canvas[20:80, 45:55] = 255
    Image.fromarray(canvas).save(img)
    fake = tmp_path / "fake.keras"
    assert_one_clear_line(run_here("predict", img, "--model", fake), "not a .keras")
    assert_one_clear_line(
        run_here("predict", tmp_path / "fake.png", "--model", fake), "not a readable image"
    )
    assert_one_clear_line(run_here("predict", tmp_path / "blank.png", "--model", fake), "blank.png")


@pytest.mark.parametrize("command", ["train", "kfold"])
def test_a_cluster_that_does_not_answer_is_one_line(command, tmp_path):
    """DIGITLAB_RAY_ADDRESS pointing at nothing: one sentence at once, not Ray's minutes of retries."""
    proc = run(
        command,
        "--limit",
        100,
        "--epochs",
        1,
        tmp_home=tmp_path,
        env_extra={"DIGITLAB_RAY_ADDRESS": "127.0.0.1:9"},
    )
    assert_one_clear_line(proc, "No Ray cluster answers at 127.0.0.1:9", "ray start --head")


def test_two_learners_save_my_model_at_once_and_both_keep_theirs(tmp_path):
    train = ["train", "--limit", 300, "--epochs", 1, "--hidden-units", 32, "--save-as", "my-model"]
    procs = {who: popen(*train, "--learner", who, "--json", tmp_home=tmp_path) for who in "ab"}
    saved = {}
    for who, proc in procs.items():
        out, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err
        saved[who] = last_json(out)["saved"]
        assert saved[who]["learner"] == who and saved[who]["name"] == "my-model"
    assert saved["a"]["id"] != saved["b"]["id"]
    for who in "ab":
        listed = last_json(run_here("models", "--learner", who, "--json", tmp_home=tmp_path).stdout)
        assert [(m["id"], m["name"], m["learner"]) for m in listed["models"]] == [
            (saved[who]["id"], "my-model", who)
        ]
        assert 0 < listed["models"][0]["test_accuracy"] <= 1
    models = sorted(p.name for p in (tmp_path / "home" / "models").iterdir())
    assert models == sorted(f"{saved[w]['id']}.keras" for w in "ab")  # files by id, not by name


@pytest.mark.parametrize(
    "args, words",
    [
        (["models", "--learner", "x" * 41], "1 to 40"),
        (["models", "--learner", "room"], "reserved"),
        (["train", "--learner", "a\tb", "--save-as", "m"], "printable"),
        (["train", "--learner", "ana", "--save-as", " "], "model name"),
        (["train", "--learner", "ana"], "--save-as"),
    ],
)
def test_bad_learner_and_model_names(args, words, tmp_path):
    assert_one_clear_line(run_here(*args, tmp_home=tmp_path), *words)
