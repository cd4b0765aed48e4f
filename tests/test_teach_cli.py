"""`python -m digitlab train --drawings DIR`: real PNG drawings in both canvas conventions, and
one line for each file that cannot be used while the run goes on."""

from __future__ import annotations

import clitools
import numpy as np
import pytest
from PIL import Image

from digitlab.teach import read_drawing_folder


def run(*args, tmp):
    return clitools.run_here(*args, tmp_home=tmp)


def canvas(digit_img: np.ndarray, size: int, convention: str) -> Image.Image:
    """A 28x28 MNIST digit drawn large, as the canvas saves it: white ink on opaque black, or
    black ink on a transparent background."""
    ink = np.asarray(Image.fromarray(digit_img).resize((size, size), Image.Resampling.BILINEAR))
    if convention == "black":
        return Image.fromarray(np.stack([ink, ink, ink, np.full_like(ink, 255)], axis=-1))
    return Image.fromarray(np.stack([np.zeros_like(ink)] * 3 + [ink], axis=-1), mode="RGBA")


@pytest.fixture
def folder(tmp_path, offline_digits):
    """DIR/0..DIR/9 with 4 real drawings each (sizes 140-280, both conventions), plus a text
    file in DIR/3, an empty drawing in DIR/5, a folder 'x' and a loose file at the top."""
    root = tmp_path / "drawings"
    x, y = offline_digits.x_test, offline_digits.y_test
    for d in range(10):
        (root / str(d)).mkdir(parents=True)
        for k, i in enumerate(np.flatnonzero(y == d)[:4]):
            size = (140, 200, 280, 180)[k]
            convention = ("black", "transparent")[k % 2]
            canvas(x[i], size, convention).save(root / str(d) / f"d{k}.png")
    (root / "3" / "notes.png").write_text("not an image")
    Image.new("RGBA", (280, 280), (0, 0, 0, 0)).save(root / "5" / "empty.png")
    (root / "x").mkdir()
    canvas(x[0], 200, "black").save(root / "x" / "stray.png")
    canvas(x[0], 200, "black").save(root / "loose.png")
    return root


def test_read_drawing_folder(folder):
    got = read_drawing_folder(folder)
    assert len(got.labels) == 40 and got.images.shape == (40, 28, 28)
    assert np.bincount(got.labels).tolist() == [4] * 10
    assert got.images.dtype == np.float32 and got.images.max() <= 1.0
    assert len(got.skipped) == 4
    text = "\n".join(got.skipped)
    for name, words in [
        ("notes.png", "not a readable image"),
        ("empty.png", "Nothing drawn yet"),
        ("stray.png", "not a digit"),
        ("loose.png", "not in a folder named 0-9"),
    ]:
        line = next(s for s in got.skipped if name in s)
        assert words in line, line
    assert text.count("\n") == 3  # one line each
    # the two conventions of one digit read alike: white-on-black and black-on-transparent
    a = read_drawing_folder(folder).images[0]
    assert a.max() == pytest.approx(1.0)


def test_train_with_drawings_goes_on_without_the_bad_files(folder, tmp_path):
    proc = run(
        "train",
        "--limit",
        600,
        "--epochs",
        2,
        "--hidden-units",
        64,
        "--drawings",
        folder,
        "--save",
        tmp_path / "taught.keras",
        "--json",
        tmp=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for name in ("notes.png", "empty.png", "stray.png", "loose.png"):
        assert sum(name in line for line in proc.stderr.splitlines()) == 1, proc.stderr
    assert "Drawings: 40 read" in proc.stderr and "4 left out" in proc.stderr
    assert "held-out drawings" in proc.stderr and "Every 5th drawing" in proc.stderr
    out = clitools.last_json(proc.stdout)
    assert out["drawings"]["read"] == 40 and out["drawings"]["left_out"] == 4
    assert out["n_trained_on"] == 32 and out["after"]["n_held_out"] == 8
    assert 0 <= out["after"]["held_out"] <= 1 and out["test_accuracy"] > 0.5
    assert (tmp_path / "taught.keras").is_file()

    # and on from that model: before and after both measured
    proc = run(
        "train",
        "--limit",
        600,
        "--epochs",
        1,
        "--drawings",
        folder,
        "--from-model",
        tmp_path / "taught.keras",
        "--json",
        tmp=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = clitools.last_json(proc.stdout)
    assert out["before"]["mnist"] is not None and out["before"]["held_out"] is not None
    assert out["fine_tuned"] is True


def test_no_such_folder_is_one_line(tmp_path):
    proc = run("train", "--limit", 100, "--drawings", tmp_path / "nope", tmp=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [s for s in proc.stderr.splitlines() if s.startswith("digitlab: error:")]
    assert len(errors) == 1 and "no such folder of drawings" in errors[0]
