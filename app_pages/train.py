"""Train page: settings, a background run with live charts, Stop, then test results and the model."""

import streamlit as st

from digitlab import charts, explore, work
from digitlab.models import ARCHITECTURES, OPTIMIZERS, ModelConfig, ModelError
from digitlab.training import TrainConfig, TrainingError
from digitlab.ui import jobpanel, models_panel, state, teachpanel
from digitlab.words import count

digits = state.digits()
ss = st.session_state
job = ss["train_job"]
busy = job is not None and not job.progress.finished
DEFAULT_M, DEFAULT_T = ModelConfig(), TrainConfig()

st.title("Train a network")
st.caption(
    f"Defaults are the tutorial's: {DEFAULT_M.describe()}, {DEFAULT_T.epochs} epochs, "
    f"batch {DEFAULT_T.batch_size}. Training uses {digits.summary}; the last "
    f"{DEFAULT_T.validation_fraction:.0%} of the training digits are held out for validation."
)

with st.container(border=True):
    c1, c2, c3 = st.columns(3)
    arch = c1.radio(
        "Architecture",
        ARCHITECTURES,
        format_func={"mlp": "MLP (the tutorial)", "cnn": "CNN (convolutional)"}.get,
        horizontal=True,
        disabled=busy,
        key="t_arch",
    )
    mlp = arch == "mlp"
    units = c1.select_slider(
        "Hidden units",
        [16, 32, 64, 128, 256, 512, 1024],
        value=DEFAULT_M.hidden_units,
        key="t_units",
        disabled=busy or not mlp,
    )
    layers = c1.number_input(
        "Hidden layers", 1, 4, DEFAULT_M.hidden_layers, disabled=busy or not mlp, key="t_layers"
    )
    optimizer = c2.selectbox("Optimizer", OPTIMIZERS, disabled=busy, key="t_opt")
    rate = c2.selectbox(
        "Learning rate",
        ["default", 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
        format_func=lambda r: "optimizer's default" if r == "default" else f"{r:g}",
        disabled=busy,
        key="t_rate",
    )
    dropout = c2.slider(
        "Dropout", 0.0, 0.7, DEFAULT_M.dropout, 0.05, disabled=busy, key="t_dropout"
    )
    epochs = c3.number_input("Epochs", 1, 200, DEFAULT_T.epochs, disabled=busy, key="t_epochs")
    batch = c3.select_slider(
        "Batch size",
        [16, 32, 64, 128, 256, 512, 1024],
        value=DEFAULT_T.batch_size,
        key="t_batch",
        disabled=busy,
    )
    augment = c3.checkbox(
        "Augment (random shifts, rotations, zoom, stroke width)",
        value=DEFAULT_T.augment,
        disabled=busy,
        key="t_augment",
        help="Helps with digits drawn on the Draw page; epochs take longer.",
    )
    if st.button("Start training", type="primary", disabled=busy, key="t_start"):
        try:
            mcfg = ModelConfig(
                arch=arch,
                hidden_units=units,
                hidden_layers=int(layers),
                optimizer=optimizer,
                learning_rate=None if rate == "default" else rate,
                dropout=dropout,
            )
            tcfg = TrainConfig(epochs=int(epochs), batch_size=batch, augment=augment)
        except (ModelError, TrainingError) as e:
            st.error(str(e))
        else:
            job = jobpanel.submit(
                "train_job",
                work.training_work(digits, model_config=mcfg, train_config=tcfg),
                kind="train",
                label=f"training {arch.upper()}, {count(tcfg.epochs, 'epoch')}",
            )
            busy = True


def curves(p, key: str) -> None:
    rows = p.of_type("epoch")
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.history_figure(rows, metric="loss", epochs=p.epochs), key=f"{key}_loss")
    c2.plotly_chart(
        charts.history_figure(rows, metric="accuracy", epochs=p.epochs), key=f"{key}_acc"
    )


def first_layer(p, key: str) -> None:
    tiles = p.of_type("tiles")  # the first layer's weights, sent before and after each epoch
    if tiles:
        last = tiles[-1]
        what = "weights: what each unit looks for" if last["shape"] == [28, 28] else "filters"
        st.plotly_chart(
            charts.tiles_figure(
                last["tiles"],
                cols=8,
                size=70 if last["shape"] == [28, 28] else 45,
                title=f"First layer after epoch {last['epoch']}, {len(last['tiles'])} {what}",
            ),
            key=f"{key}_tiles",
        )


@st.fragment(run_every=1.0)
def live() -> None:
    current = ss["train_job"]
    jobpanel.heartbeat()
    jobpanel.show_progress(current, stop_key="train_stop")
    curves(current.progress, "live")
    if current.progress.finished:
        st.rerun()  # the whole page: results, and the sidebar's new current model


# The first layer's tiles (64 small heatmaps) cost the browser far more to draw than the curves:
# every 5 s, not every second, while a run goes on (BENCHMARKS.md, "Load").
@st.fragment(run_every=5.0)
def live_first_layer() -> None:
    first_layer(ss["train_job"].progress, "live")


if job is not None:
    st.subheader(f"Run: {job.label}")
    if busy:
        live()
        live_first_layer()
    else:
        jobpanel.show_outcome(job)
        result = job.progress.result
        if result is not None:
            m = st.columns(4)
            m[0].metric("Test accuracy", f"{result.test_accuracy:.4f}")
            m[1].metric("Test loss", f"{result.test_loss:.4f}")
            m[2].metric("Epochs run", f"{len(result.history)} of {result.train_config.epochs}")
            m[3].metric("Time", f"{result.seconds:.1f} s")
            curves(job.progress, "done")
            first_layer(job.progress, "done")
            if ss.get("train_report", (None,))[0] != job.id:
                with st.spinner("Reading the test set ..."):
                    ss["train_report"] = (job.id, explore.test_report(result.model, digits))
            report = ss["train_report"][1]
            c1, c2 = st.columns([1, 1])
            c1.plotly_chart(charts.confusion_figure(report["confusion"]), key="confusion")
            with c2:
                st.markdown(
                    f"**Misclassified test digits**: {report['n_wrong']:,} of "
                    f"{report['n_test']:,}; the first {len(report['wrong_images'])}:"
                )
                if len(report["wrong_images"]):
                    st.plotly_chart(
                        charts.images_figure(
                            report["wrong_images"], report["wrong_titles"], cols=4, size=120
                        ),
                        key="wrong",
                    )

st.subheader("Model")
models_panel.save_and_download()
with st.expander("Load a saved or uploaded model", expanded=state.current() is None):
    models_panel.load()

teachpanel.render(digits, key="train_teach")
