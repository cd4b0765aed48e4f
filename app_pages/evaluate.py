"""Evaluate page: k-fold cross-validation as a job, live per fold, curves, box plots, saved runs."""

import streamlit as st

from digitlab import charts, crossval, explore, store, work
from digitlab.models import ARCHITECTURES, ModelConfig
from digitlab.ui import jobpanel, learner, state
from digitlab.words import count

digits = state.digits()
ss = st.session_state
job = ss["cv_job"]
busy = job is not None and not job.progress.finished
n_all = len(digits.x_train)
LEAK = (
    "The tutorial builds its network once and keeps training it fold after fold, so from the "
    "second fold on the network has already trained on the digits it is tested on: its scores "
    "leak and look better than they are. A fresh model per fold tests each fold honestly."
)

st.title("Cross-validate")
st.caption(
    "k-fold cross-validation as the tutorial: KFold(shuffle=True, random_state=1); each fold "
    "trains a fresh network and tests it on the digits it held out."
)

with st.container(border=True):
    c1, c2, c3 = st.columns(3)
    folds = c1.number_input("Folds", 2, 10, 5, disabled=busy, key="cv_folds")
    epochs = c1.number_input("Epochs per fold", 1, 30, 5, disabled=busy, key="cv_epochs")
    batch = c2.select_slider(
        "Batch size", [16, 32, 64, 128, 256, 512, 1024], value=128, disabled=busy, key="cv_batch"
    )
    arch = c2.radio(
        "Architecture",
        ARCHITECTURES,
        horizontal=True,
        disabled=busy,
        key="cv_arch",
        format_func={"mlp": "MLP (the tutorial)", "cnn": "CNN"}.get,
    )
    n_use = c3.number_input(
        f"Training digits (of {n_all:,})",
        min_value=1,  # any count the page shows is the count that runs: crossval checks it
        max_value=n_all,
        value=n_all,
        step=max(10, n_all // 20),
        disabled=busy,
        key="cv_n",
        help="Fewer digits give a quick run for a workshop; all is the tutorial.",
    )
    reused = c3.checkbox(
        "Also run the tutorial's reused-model variant (leaks test data)",
        disabled=busy,
        key="cv_reused",
        help="One network trained across all folds, as the tutorial's code does.",
    )
    warning = crossval.small_folds_warning(int(n_use), int(folds))
    if warning and not busy:
        st.warning(warning)
    if st.button("Start cross-validation", type="primary", disabled=busy, key="cv_start"):
        n_use = int(n_use)
        try:
            crossval.check_settings(n_use, int(folds), int(epochs), batch)
        except crossval.CrossValError as e:
            st.error(str(e))
        else:
            job = jobpanel.submit(
                "cv_job",
                work.crossval_work(
                    digits.x_train[:n_use],
                    digits.y_train[:n_use],
                    model_config=ModelConfig(arch=arch),
                    n_splits=int(folds),
                    epochs=int(epochs),
                    batch_size=batch,
                    with_reused=reused,
                    data_source=f"{digits.source}, first {n_use:,} training digits",
                    learner=learner.name(),
                ),
                kind="cv",
                label=f"{folds}-fold cross-validation" + (" + reused model" if reused else ""),
            )
            busy = True


@st.fragment(run_every=1.0)
def live() -> None:
    current = ss["cv_job"]
    jobpanel.heartbeat()
    jobpanel.show_progress(current, stop_key="cv_stop")
    events = list(current.progress.events)
    variant = next((e["variant"] for e in reversed(events) if "variant" in e), "fresh")
    hist = explore.fold_histories(events, variant=variant)
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.fold_curves_figure(hist, metric="loss"), key="live_loss")
    c2.plotly_chart(charts.fold_curves_figure(hist, metric="accuracy"), key="live_acc")
    ended = [e for e in events if e.get("type") == "fold_end"]
    if ended:
        st.dataframe(
            [
                {
                    "variant": e.get("variant"),
                    "fold": e["fold"],
                    "accuracy": round(e["accuracy"], 4),
                    "seconds": round(e["seconds"], 1),
                }
                for e in ended
            ],
            hide_index=True,
        )
    if current.progress.finished:
        st.rerun()


if job is not None and busy:
    st.subheader(f"Run: {job.label}")
    live()
elif job is not None and ss.get("cv_shown_job") != job.id:
    ss["cv_shown_job"] = job.id
    if job.progress.result is not None:
        ss["cv_view"] = {k: job.progress.result[k] for k in ("fresh", "reused")}
if job is not None and not busy:
    jobpanel.show_outcome(job)


def show(view: dict) -> None:
    fresh, reused_run = view.get("fresh"), view.get("reused")
    main = fresh or reused_run
    if main is None or not main.folds:
        st.info("That run finished no fold, so there is nothing to show.")
        return
    st.caption(
        f"{main.n_splits} folds, {count(main.epochs, 'epoch')} each, batch {main.batch_size}, "
        f"{main.data_source}, {main.seconds:.0f} s"
    )
    runs = [
        (r, name)
        for r, name in ((fresh, "fresh model per fold"), (reused_run, "reused model (leaks)"))
        if r and r.folds
    ]
    cols = st.columns(len(runs) * 2)
    for i, (r, name) in enumerate(runs):
        cols[2 * i].metric(f"Mean accuracy, {name}", f"{r.mean:.4f}")
        cols[2 * i + 1].metric("Std", f"{r.std:.4f}")
    for r, name in runs:
        st.markdown(f"**Learning curves, {name}**: train in red, test in green")
        hist = {f.fold: f.history for f in r.folds}
        c1, c2 = st.columns(2)
        c1.plotly_chart(charts.fold_curves_figure(hist, metric="loss"), key=f"loss_{name}")
        c2.plotly_chart(charts.fold_curves_figure(hist, metric="accuracy"), key=f"acc_{name}")
    c1, c2 = st.columns([1, 1])
    c1.plotly_chart(charts.box_figure({name: r.accuracies.tolist() for r, name in runs}), key="box")
    with c2:
        if len(runs) == 2:
            st.info(LEAK)
        for r, name in runs:
            st.markdown(f"**Per fold, {name}**")
            st.dataframe(explore.fold_table(r.folds), hide_index=True)


if ss["cv_view"] is not None:
    st.subheader("Results")
    show(ss["cv_view"])

st.subheader("Saved runs")
saved = store.list_cv(learner=learner.name())
if not saved:
    st.caption("Your finished runs are kept here for reloading.")
else:
    names = [r["id"] for r in saved]

    def label(run_id: str) -> str:
        r = saved[names.index(run_id)]
        kind = "reused model" if r.get("reuse_model") else "fresh model per fold"
        return f"{r['name']}: {r.get('n_splits')} folds, mean {r.get('mean', float('nan')):.4f}, {kind}"

    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    pick = c1.selectbox(
        "Saved cross-validations (newest first)", names, format_func=label, key="cv_pick"
    )
    if c2.button("Show", key="cv_load"):
        try:
            view = crossval.load_cv_pair(pick, learner=learner.name())
        except store.StoreError as e:
            st.error(str(e))
        else:
            ss["cv_view"] = view
            st.rerun()
