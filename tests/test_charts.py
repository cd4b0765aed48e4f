"""digitlab.charts: each figure carries exactly the data it was given, in the tutorial's colours."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from digitlab import charts

HISTORY = [
    {"epoch": 1, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.4, "val_accuracy": 0.85},
    {"epoch": 2, "loss": 0.3, "accuracy": 0.9, "val_loss": 0.35, "val_accuracy": 0.88},
]


def test_history_figure_train_and_validation():
    fig = charts.history_figure(HISTORY, metric="accuracy", epochs=5)
    assert isinstance(fig, go.Figure)
    train, val = fig.data
    assert list(train.y) == [0.8, 0.9] and list(val.y) == [0.85, 0.88]
    assert train.line.color == charts.TRAIN and val.line.color == charts.TEST
    assert fig.layout.xaxis.range[1] >= 5  # room for the planned epochs
    no_val = charts.history_figure([{"epoch": 1, "loss": 0.5}], metric="loss")
    assert len(no_val.data) == 1
    assert len(charts.history_figure([], metric="loss").data) == 1  # empty run: no crash


def test_fold_curves_red_train_green_test():
    hist = {k: {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]} for k in (1, 2, 3)}
    fig = charts.fold_curves_figure(hist, metric="loss")
    assert len(fig.data) == 6
    assert [t.line.color for t in fig.data] == [charts.TRAIN, charts.TEST] * 3
    assert sum(bool(t.showlegend) for t in fig.data) == 2  # one legend entry per colour


def test_box_figure_side_by_side():
    fig = charts.box_figure(
        {"fresh model per fold": [0.97, 0.98], "reused model": [0.98, 0.99, 1.0]}
    )
    assert [t.type for t in fig.data] == ["box", "box"]
    assert [t.name for t in fig.data] == ["fresh model per fold", "reused model"]
    assert list(fig.data[1].y) == [0.98, 0.99, 1.0]


def test_confusion_figure_keeps_counts():
    m = np.arange(100).reshape(10, 10)
    fig = charts.confusion_figure(m)
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), m)
    assert fig.layout.yaxis.autorange == "reversed"  # digit 0 at the top, as a table reads


def test_counts_and_images():
    fig = charts.counts_figure({d: 10 * d for d in range(10)})
    assert list(fig.data[0].y) == [10 * d for d in range(10)]
    imgs = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    grid = charts.images_figure(imgs, [f"label {i}" for i in range(5)], cols=3)
    assert len(grid.data) == 5
    assert [a.text for a in grid.layout.annotations] == [f"label {i}" for i in range(5)]
    np.testing.assert_array_equal(np.asarray(grid.data[4].z), imgs[4])
    assert grid.data[0].zmax == 255
    one = charts.images_figure(np.zeros((1, 28, 28), "float32"), ["what the network sees"])
    assert len(one.data) == 1 and one.data[0].zmax == 1.0
    assert len(charts.images_figure(np.zeros((0, 28, 28))).data) == 0


def test_long_runs_get_a_readable_epoch_axis():
    rows = [{"epoch": e, "loss": 1 / e} for e in range(1, 4)]
    assert charts.history_figure(rows, epochs=5).layout.xaxis.dtick == 1  # every epoch labelled
    long = charts.history_figure(rows, epochs=200).layout.xaxis
    assert long.dtick is None and long.tickformat == "d"  # plotly spaces them, whole numbers
    folds = charts.fold_curves_figure({1: {"loss": [1.0] * 50}}).layout.xaxis
    assert folds.dtick is None


def test_explain_figures_show_the_arrays_they_get():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 28, 28))
    sal = charts.saliency_figure([a, b], ["why 3", "why 8"])
    assert len(sal.data) == 2 and [x.text for x in sal.layout.annotations] == ["why 3", "why 8"]
    np.testing.assert_array_equal(np.asarray(sal.data[1].z), b.astype("float32"))
    assert sal.data[0].zmid == 0 and sal.data[0].colorscale[0][1] != sal.data[0].colorscale[-1][1]
    tiles = charts.tiles_figure(rng.normal(size=(16, 28, 28)), cols=8)
    assert len(tiles.data) == 16 and all(t.zmid == 0 for t in tiles.data)
    maps = charts.tiles_figure(rng.random((32, 26, 26)), signed=False)
    assert len(maps.data) == 32 and maps.data[0].zmin == 0 and maps.data[0].zmid is None
    units = charts.units_figure([7, 2, 9], [1.5, 0.75, -0.25], [3.0, 1.5, 0.5], digit=4)
    bar = units.data[0]
    assert list(bar.x) == [1.5, 0.75, -0.25] and list(bar.y) == ["unit 7", "unit 2", "unit 9"]
    assert list(bar.text) == ["activation 3.00", "activation 1.50", "activation 0.50"]
    assert bar.marker.color[2] == charts.TRAIN  # a unit that pushed the digit down
