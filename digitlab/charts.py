"""Plotly figures for DigitLab: pure functions, data in, figure out; they compute no statistics.

One chart is a Vega-Lite spec instead (PROBABILITY_SPEC, for Streamlit's st.vega_lite_chart):
the Draw page's bars, redrawn after every stroke, where the browser's cost decides how fast a
room full of learners is answered.

Colours follow the tutorial: training in red, held-out data in green.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

TRAIN = "#d62728"  # red, as the tutorial's learning curves
TEST = "#2ca02c"  # green
ACCENT = "#1f77b4"
MUTED = "#9aa5b1"  # grey: the runners-up beside the answer
METRIC_TITLES = {"loss": "Loss (cross-entropy)", "accuracy": "Accuracy"}

# A drawing's ten probabilities (rows from explore.probability_bars): the answer's bar green, the
# others grey, the axis fixed at 0..1 so drawings compare. A plain Vega-Lite spec: the lightest
# chart for the browser and the server on every stroke (BENCHMARKS.md, "Load").
PROBABILITY_SPEC = {
    "mark": {"type": "bar"},
    "encoding": {
        "x": {"field": "digit", "type": "ordinal", "title": "digit", "axis": {"labelAngle": 0}},
        "y": {
            "field": "probability",
            "type": "quantitative",
            "title": "probability",
            "scale": {"domain": [0, 1]},
        },
        "color": {"condition": {"test": "datum.answer", "value": TEST}, "value": MUTED},
        "tooltip": [{"field": "digit"}, {"field": "probability", "format": ".1%"}],
    },
}


def _layout(
    fig: go.Figure, *, title: str | None = None, height: int = 320, top: int = 0
) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=10, r=10, t=(40 if title else 10) + top, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1),
    )
    return fig


def _epoch_ticks(last: int) -> dict:
    """A tick at every epoch for short runs; for long ones plotly's own spacing (whole numbers):
    a 200-epoch run's two live charts, redrawn every second with 200 labelled ticks each, kept
    the browser at 0.94 of a core; with plotly's spacing 0.16 (one Train page, full MNIST)."""
    return {"dtick": 1} if last <= 20 else {"tickformat": "d"}


def history_figure(history: Sequence[Mapping], *, metric: str = "loss", epochs: int | None = None):
    """Train and validation `metric` per epoch from rows like {"epoch": 1, "loss": .., "val_loss": ..}.

    epochs fixes the x axis to the planned run, so a growing run does not rescale it.
    """
    x = [row["epoch"] for row in history]
    fig = go.Figure()
    fig.add_scatter(
        x=x,
        y=[row.get(metric) for row in history],
        name="train",
        mode="lines+markers",
        line=dict(color=TRAIN),
    )
    if any(f"val_{metric}" in row for row in history):
        fig.add_scatter(
            x=x,
            y=[row.get(f"val_{metric}") for row in history],
            name="validation",
            mode="lines+markers",
            line=dict(color=TEST),
        )
    last = max(epochs or 1, max(x, default=1))
    fig.update_xaxes(title="epoch", range=[0.8, last + 0.2], **_epoch_ticks(last))
    fig.update_yaxes(title=METRIC_TITLES.get(metric, metric))
    return _layout(fig, title=METRIC_TITLES.get(metric, metric))


def fold_curves_figure(
    histories: Mapping[int, Mapping[str, Sequence[float]]], *, metric: str = "loss"
):
    """One train (red) and one test (green) curve per fold, as the tutorial's summarize_diagnostics.

    histories: fold number -> {"loss": [...], "val_loss": [...], "accuracy": [...], ...}.
    """
    fig = go.Figure()
    for i, (fold, h) in enumerate(sorted(histories.items())):
        for key, name, colour in ((metric, "train", TRAIN), (f"val_{metric}", "test", TEST)):
            ys = list(h.get(key) or [])
            if not ys:
                continue
            fig.add_scatter(
                x=list(range(1, len(ys) + 1)),
                y=ys,
                mode="lines+markers",  # a 1-epoch run is one point per fold: still visible
                name=name,
                legendgroup=name,
                showlegend=i == 0,
                line=dict(color=colour),
                hovertemplate=f"fold {fold} {name}<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>",
            )
    last = max((len(h.get(metric) or []) for h in histories.values()), default=1)
    fig.update_xaxes(title="epoch", **_epoch_ticks(last))
    fig.update_yaxes(title=METRIC_TITLES.get(metric, metric))
    return _layout(fig, title=f"{METRIC_TITLES.get(metric, metric)} per fold")


def box_figure(groups: Mapping[str, Sequence[float]], *, title: str = "Fold accuracies"):
    """Side-by-side box plots of scores (one box per group), each fold's point shown."""
    fig = go.Figure()
    colours = [ACCENT, "#ff7f0e", "#9467bd"]
    for i, (name, values) in enumerate(groups.items()):
        fig.add_box(
            y=list(values),
            name=name,
            boxpoints="all",
            jitter=0.3,
            pointpos=0,
            marker=dict(color=colours[i % len(colours)]),
        )
    fig.update_yaxes(title="accuracy", tickformat=".3f")
    return _layout(fig, title=title, height=360)


def confusion_figure(
    matrix: np.ndarray,
    *,
    labels: Sequence = tuple(range(10)),
    title: str = "Confusion matrix (test set)",
):
    """A confusion matrix (rows: true digit, columns: predicted) as an annotated heatmap."""
    m = np.asarray(matrix)
    names = [str(v) for v in labels]
    fig = go.Figure(
        go.Heatmap(
            z=m,
            x=names,
            y=names,
            colorscale="Blues",
            text=m,
            texttemplate="%{text}",
            showscale=False,
            hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>",
        )
    )
    fig.update_xaxes(title="predicted", side="bottom", type="category")
    fig.update_yaxes(title="true", autorange="reversed", type="category")
    return _layout(fig, title=title, height=460)


def counts_figure(counts: Mapping[int, int] | Sequence[int], *, title: str = "Digits per class"):
    """A bar per digit with its count."""
    items = sorted(counts.items()) if isinstance(counts, Mapping) else list(enumerate(counts))
    fig = go.Figure(
        go.Bar(
            x=[str(k) for k, _ in items],
            y=[v for _, v in items],
            text=[f"{v:,}" for _, v in items],
            textposition="outside",
            marker_color=ACCENT,
        )
    )
    fig.update_xaxes(title="digit", type="category")
    fig.update_yaxes(title="count")
    return _layout(fig, title=title)


def images_figure(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    *,
    cols: int = 3,
    size: int = 110,
    title: str | None = None,
):
    """A grid of grey images (n, h, w), white ink on black as MNIST stores it, with titles."""
    imgs = np.asarray(images)
    zmax = 1.0 if imgs.dtype.kind == "f" else 255
    style = dict(colorscale="gray", zmin=0, zmax=zmax)
    return _grid(imgs, titles, style=style, cols=cols, size=size, title=title)


# What a network looks at: positive values red, negative blue, zero white, each panel on its own
# scale centred at zero (plotly's zmid), so a weak map is as readable as a strong one.
SIGNED = dict(colorscale="RdBu", reversescale=True, zmid=0)
ACTIVATION = dict(colorscale="Viridis", zmin=0)  # relu outputs: 0 and up


def tiles_figure(
    tiles: np.ndarray,
    titles: Sequence[str] | None = None,
    *,
    cols: int = 8,
    size: int = 90,
    title: str | None = None,
    signed: bool = True,
):
    """Weights or maps (n, h, w) as a grid: signed ones (weights, saliency) red/blue around
    zero; unsigned ones (feature maps) on a dark-to-bright scale."""
    style = SIGNED if signed else ACTIVATION
    arrays = np.asarray(tiles, dtype="float32")  # float16 (a training event) is not plotly's
    return _grid(arrays, titles, style=style, cols=cols, size=size, title=title)


def saliency_figure(maps: Sequence[np.ndarray], titles: Sequence[str], *, size: int = 260):
    """Saliency maps (each (28, 28)) side by side: red where more ink raises that digit's score,
    blue where it lowers it."""
    return tiles_figure(np.asarray(maps), titles, cols=len(maps), size=size)


def units_figure(
    units: Sequence[int],
    contributions: Sequence[float],
    activations: Sequence[float],
    *,
    digit: int,
):
    """Hidden units' contributions to one digit's score (activation x weight), largest at the
    top, each bar labelled with the unit's activation."""
    names = [f"unit {u}" for u in units]
    fig = go.Figure(
        go.Bar(
            x=list(contributions),
            y=names,
            orientation="h",
            text=[f"activation {a:.2f}" for a in activations],
            textposition="auto",
            marker_color=[TEST if c >= 0 else TRAIN for c in contributions],
            hovertemplate="%{y}: contributes %{x:.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title=f"contribution to digit {digit}'s score (activation x weight)")
    return _layout(fig, title=f"Hidden units that pushed {digit} up most", height=320)


def _grid(
    imgs: np.ndarray,
    titles: Sequence[str] | None,
    *,
    style: dict,
    cols: int,
    size: int,
    title: str | None,
):
    """(n, h, w) arrays as heatmaps in a grid of square panels, with titles."""
    n = len(imgs)
    cols = max(1, min(cols, n or 1))
    rows = max(1, -(-n // cols))
    titles = list(titles) if titles is not None else [""] * n
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=titles or None,
        horizontal_spacing=0.02,
        vertical_spacing=0.12 / rows + 0.02,
    )
    for i, img in enumerate(imgs):
        fig.add_trace(
            go.Heatmap(
                z=img,
                showscale=False,
                hovertemplate="x %{x}, y %{y}: %{z}<extra></extra>",
                **style,
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    for k in range(2, n + 1):  # square pixels in every panel, not only the first
        fig.update_yaxes(scaleanchor=f"x{k}", row=(k - 1) // cols + 1, col=(k - 1) % cols + 1)
    fig.update_annotations(font_size=12)
    top = 20 if any(titles) else 0  # room for the first row's titles
    return _layout(fig, title=title, height=int(rows * size + (40 if title else 20) + top), top=top)


def _plain(text) -> str:
    """Text plotly shows as exactly its characters (it reads <b>, <a href=...> as markup)."""
    return html.escape(str(text), quote=False)


def room_drawings_figure(by_learner: Mapping[str, Sequence[int]]):
    """The room's drawings per digit, one stacked colour per learner (room.drawings_by_digit)."""
    fig = go.Figure(
        [
            go.Bar(x=[str(d) for d in range(10)], y=list(counts), name=_plain(who))
            for who, counts in by_learner.items()
        ]
    )
    fig.update_layout(barmode="stack", showlegend=len(by_learner) <= 30)
    fig.update_xaxes(title="digit", type="category")
    fig.update_yaxes(title="drawings")
    return _layout(fig, title="The room's labelled drawings by digit", top=20)


def leaderboard_figure(rows: Sequence[Mapping]):
    """Published models: MNIST test accuracy (green) beside accuracy on other learners' drawings."""
    names = [_plain(f"{r['learner'] or 'room'}: {r['name']}") for r in rows]
    fig = go.Figure(
        [
            go.Bar(
                y=names,
                x=[r.get("others_accuracy") for r in rows],
                name="other learners' drawings",
                orientation="h",
                marker_color=ACCENT,
            ),
            go.Bar(
                y=names,
                x=[r.get("test_accuracy") for r in rows],
                name="MNIST test set",
                orientation="h",
                marker_color=TEST,
            ),
        ]
    )
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="accuracy", range=[0, 1], tickformat=".0%")
    fig.update_yaxes(autorange="reversed", type="category")
    return _layout(fig, title="Leaderboard", height=max(260, 60 + 46 * len(rows)), top=20)
