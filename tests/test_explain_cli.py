"""`python -m digitlab explain IMAGE --model PATH --out DIR`: the pictures written for an MLP and
a CNN trained briefly on real digits, and one line for each bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clitools import run_here as run
from PIL import Image
from test_cli import assert_one_clear_line

from digitlab.data import normalise, one_hot
from digitlab.models import ModelConfig, build_model, save_model_file


@pytest.fixture(scope="module")
def files(tiny_digits, tmp_path_factory):
    """A test digit as a scan (dark ink on white, 4x larger), and two small trained models."""
    tmp = tmp_path_factory.mktemp("explain-cli")
    image = tmp / "digit.png"
    Image.fromarray(255 - tiny_digits.x_test[0]).resize((112, 112)).save(image)
    models = {}
    for arch, epochs in (("mlp", 3), ("cnn", 1)):
        model = build_model(ModelConfig(arch=arch, hidden_units=32, jit_compile=False), seed=0)
        x, y = normalise(tiny_digits.x_train), one_hot(tiny_digits.y_train)
        model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
        models[arch] = save_model_file(model, tmp / f"{arch}.keras")
    return tmp, image, models


def pictures(proc) -> dict[str, Image.Image]:
    """The files the command said it wrote, opened."""
    out = {}
    for line in proc.stdout.splitlines():
        assert line.startswith("wrote "), line
        path = line.removeprefix("wrote ")
        with Image.open(path) as im:
            out[path.rsplit("/", 1)[-1]] = im.copy()
    return out


def test_explain_an_mlp(files, tmp_path):
    _, image, models = files
    proc = run("explain", image, "--model", models["mlp"], "--out", tmp_path / "why")
    assert proc.returncode == 0, proc.stderr
    shown = pictures(proc)
    top = next(
        x for x in proc.stderr.splitlines() if x.startswith(f"{image}: ")
    )  # "...: 7 (91.0%), 9 (5.2%), 4 (1.1%)"
    answer, runner_up = (int(part.split()[0]) for part in top.split(": ")[1].split(", ")[:2])
    assert set(shown) == {
        "input.png",
        f"saliency-{answer}.png",
        f"input-x-gradient-{answer}.png",
        f"saliency-{runner_up}.png",
        f"input-x-gradient-{runner_up}.png",
        "top-units.png",
        "first-layer.png",
    }
    assert shown["input.png"].size == (280, 280) and shown[f"saliency-{answer}.png"].mode == "RGB"
    assert len(np.unique(np.asarray(shown[f"saliency-{answer}.png"]).reshape(-1, 3), axis=0)) > 10
    assert f"hidden units that pushed {answer} up most" in proc.stderr
    assert set((tmp_path / "why").iterdir()) == {tmp_path / "why" / n for n in shown}


def test_explain_a_cnn_against_a_chosen_digit(files, tmp_path):
    _, image, models = files
    proc = run(
        "explain", image, "--model", models["cnn"], "--out", tmp_path, "--versus", 3, "--json"
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    names = {p.rsplit("/", 1)[-1] for p in out["files"]}
    assert {"saliency-3.png", "filters.png", "feature-maps.png"} <= names
    assert f"saliency-{out['digit']}.png" in names and len(out["top"]) == 3
    with Image.open(tmp_path / "feature-maps.png") as maps:
        assert maps.size == (8 * 88 - 4, 4 * 88 - 4)  # 32 maps, 8 a row


def test_explain_bad_inputs(files, tmp_path):
    tmp, image, models = files
    (tmp_path / "file").write_text("x")
    Image.fromarray(np.zeros((50, 50), np.uint8)).save(tmp_path / "blank.png")
    mlp = models["mlp"]
    cases = [
        (("--versus", 12), [image, mlp, tmp_path / "o"], "--versus must be a digit"),
        ((), [image, mlp, tmp_path / "file"], "not a folder"),
        ((), [image, mlp, tmp_path / "no" / "such"], "no such folder"),
        ((), [tmp_path / "blank.png", mlp, tmp_path / "o"], "blank.png"),
        ((), [image, tmp_path / "file", tmp_path / "o"], "not a .keras"),
    ]
    for extra, (img, model, out), words in cases:
        proc = run("explain", img, "--model", model, "--out", out, *extra)
        assert_one_clear_line(proc, words)
    assert not (tmp_path / "o").exists()  # nothing written for a bad request
