"""Model lab: datasets, background training jobs with live progress, evaluation, activation, export."""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from skuaudit import jobs, ui
from skuaudit.config import get_settings
from skuaudit.datasets.readers import parse_class_map
from skuaudit.detector import ModelLoadError
from skuaudit.model_registry import (
    activate_model_version,
    activation_check,
    headline_figures,
    model_choices,
    use_default_model,
)
from skuaudit.safezip import UnsafeArchiveError

ui.ensure_routed()


st.title("Model lab")
ui.require_analyst()

tab_train, tab_jobs, tab_models = st.tabs(["Data and training", "Training jobs", "Models"])

with tab_train:
    st.subheader("Datasets")
    # A refused zip and its class map stay in the form to be corrected; a new form round (new
    # widget keys) empties it once the data set is added.
    upload_round = st.session_state.setdefault("upload_round", 0)
    with st.form(f"upload_dataset_{upload_round}"):
        upload = st.file_uploader(
            "Dataset zip (SKU-110K CSV, Pascal VOC, YOLO or COCO; up to "
            f"{get_settings().max_dataset_mb:,} MB)",
            type=["zip"],
            key=f"upload_dataset_zip_{upload_round}",
            max_upload_size=get_settings().max_dataset_mb,
        )
        c1, c2 = st.columns(2)
        fmt = c1.selectbox(
            "Format", ["auto", "sku110k", "voc", "yolo", "coco"], key="upload_format"
        )
        class_map_text = c2.text_input(
            "Class map",
            key=f"upload_class_map_{upload_round}",
            placeholder="e.g. 0=gap",
            help="Dataset class id or name = detector class (product, gap, or ignore for regions "
            "to learn neither as objects nor as background), comma-separated. Not needed for "
            "classes already named product and gap, or for SKU-110K CSV files.",
        )
        submitted = st.form_submit_button("Add dataset")
        if submitted and upload is None:
            st.warning("Choose a dataset zip first (and wait until it has uploaded).")
        elif submitted:
            with ui.user_errors("Adding the dataset"):
                try:
                    folder, dataset = jobs.add_dataset_archive(
                        upload, upload.name, fmt, parse_class_map(class_map_text)
                    )
                except UnsafeArchiveError as exc:
                    st.error(f"The archive was refused: {exc}")
                else:
                    # named as the Dataset and Evaluate on lists name it
                    listed = folder.relative_to(jobs.datasets_dir()).parts[0]
                    st.session_state["upload_round"] = upload_round + 1
                    ui.rerun_with_messages(
                        "datasets",
                        f"{listed}: {len(dataset)} images, {dataset.num_boxes} boxes "
                        f"({', '.join(dataset.classes)})",
                        errors=[f"skipped: {problem}" for problem in dataset.problems[:10]],
                    )
    ui.show_messages("datasets")

    st.subheader("Start a training job")
    datasets = {"Generated shelves": jobs.SYNTHETIC} | {
        p.name: str(p) for p in jobs.list_datasets()
    }
    starts = {"Random weights": ""}
    with ui.user_errors("Reading the model versions"):
        starts |= jobs.fine_tune_sources()
    with st.form("train"):
        source = st.selectbox("Dataset", list(datasets), key="train_dataset")
        start = st.selectbox(
            "Start from",
            list(starts),
            key="train_start",
            help="A trained model is fine-tuned (its width, image size and anchors; peak learning rate "
            f"{jobs.FINE_TUNE_LEARNING_RATE:g} instead of {jobs.SCRATCH_LEARNING_RATE:g}): far fewer steps than "
            "from random weights. A data set that labels only products leaves the gap class's loss out.",
        )
        c1, c2, c3, c4 = st.columns(4)
        steps = c1.number_input("Steps", *jobs.STEPS_RANGE, 500, step=100, key="train_steps")
        batch = c2.number_input("Batch", *jobs.BATCH_RANGE, 8, key="train_batch")
        alpha = c3.selectbox(
            "Width alpha",
            [0.35, 0.5, 0.75, 1.0],
            key="train_alpha",
            help="From random weights only (a fine-tuned model keeps its own)",
        )
        size = c4.selectbox(
            "Image size",
            [128, 192, 256, 320, 416],
            index=3,
            key="train_size",
            help="From random weights only (a fine-tuned model keeps its own)",
        )
        synthetic = st.number_input(
            "Generated shelves (when the dataset is generated)",
            *jobs.SYNTHETIC_IMAGES_RANGE,
            64,
            key="train_synth",
        )
        if st.form_submit_button("Start training", type="primary"):
            with ui.user_errors("Starting the job"):
                params = jobs.TrainParams(
                    dataset=datasets[source],
                    steps=int(steps),
                    batch_size=int(batch),
                    alpha=float(alpha),
                    image_size=int(size),
                    synthetic_images=int(synthetic),
                    init_model=starts[start],
                )
                job_id = jobs.submit_job(params, created_by=ui.signed_in_analyst())
                st.session_state["lab_job_pick"] = job_id  # Training jobs shows it
                st.success(f"Job {job_id} started; follow it under Training jobs.")


def _loss_figure(history: list[dict]) -> go.Figure:
    fig = go.Figure()
    steps = [h for h in history if h.get("loss") is not None]
    fig.add_trace(
        go.Scatter(x=[h["step"] for h in steps], y=[h["loss"] for h in steps], name="training loss")
    )
    vals = [h for h in history if h.get("val_loss") is not None]
    fig.add_trace(
        go.Scatter(
            x=[h["step"] for h in vals],
            y=[h["val_loss"] for h in vals],
            name="validation loss",
            mode="lines+markers",
        )
    )
    fig.update_layout(xaxis_title="step", yaxis_title="loss", template="plotly_white", height=320)
    last_step = max((h["step"] for h in history), default=0)
    if last_step <= 10:  # plotly would tick a short run at half steps
        fig.update_xaxes(dtick=1)
    return fig


@st.fragment(run_every=3)
def job_panel(listed_version_ids: set[int]) -> None:
    # NOTE: polls the database, so a reload or another analyst sees the same progress.
    with ui.user_errors("Reading the jobs"):
        job_list = jobs.list_jobs(limit=20)
        # NOTE: only this fragment reruns every 3 s; when a job has registered a version the Models
        # tab (drawn by the last full run, which listed ``listed_version_ids``) lacks, rerun the app
        # once so it lists it.
        refreshed = st.session_state.setdefault("lab_refreshed_versions", set())
        unlisted = jobs.unlisted_versions(job_list, listed_version_ids) - refreshed
        if unlisted:
            refreshed |= unlisted
            st.rerun(scope="app")
        if not job_list:
            st.info("No training jobs yet.")
            return
        rows = [
            {
                "job": j.id,
                "status": j.status,
                "step": f"{j.step}/{j.total_steps}",
                "by": j.created_by,
                "created": j.created_at,
                "message": j.message,
            }
            for j in job_list
        ]
        st.dataframe(
            pd.DataFrame(rows),
            hide_index=True,
            width="stretch",
            column_config={
                "created": st.column_config.DatetimeColumn("created", format="D MMM YYYY, HH:mm"),
                # The widest; the chosen job's whole message is shown below the table.
                "message": st.column_config.TextColumn("message", width="large"),
            },
        )
        ids = [j.id for j in job_list]  # newest first
        if st.session_state.get("lab_job_pick") not in ids:
            st.session_state["lab_job_pick"] = ids[0]
        job_id = st.selectbox("Job", ids, key="lab_job_pick")
        job = next(j for j in job_list if j.id == job_id)
        st.progress(job.progress, text=job.progress_text)
        if job.message and (job.history or job.is_final):
            (st.error if job.status == "failed" else st.caption)(job.message)
        if job.history:
            st.plotly_chart(_loss_figure(job.history), width="stretch", key=f"loss_{job.id}")
        if not job.is_final:
            st.button(
                "Cancel job",
                key=f"cancel_{job.id}",
                disabled=job.cancel_requested,
                on_click=jobs.request_cancel,
                args=(job.id,),
            )


choices: list[dict] = []
with tab_models, ui.user_errors("Reading the model versions"):
    choices = model_choices()

with tab_jobs:
    job_panel({c["id"] for c in choices if c["id"] is not None})


def _metrics_table(metrics: dict, datasets: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per class; validation figures of several data sets (``{"dataset 0": {...}}``) get a
    ``dataset`` column, named by ``datasets`` (``model_registry.dataset_labels``)."""
    rows = []
    for name, values in metrics.items():
        if not isinstance(values, dict):
            continue
        if all(isinstance(v, dict) for v in values.values()):
            label = (datasets or {}).get(name, name)
            rows += [{"dataset": label, "class": cls, **v} for cls, v in values.items()]
        else:
            rows.append({"class": name, **values})
    return pd.DataFrame(rows)


@st.cache_data(show_spinner="Evaluating on generated shelves ...", max_entries=8)
def _evaluate(model_dir: str, n_images: int):
    report, examples = jobs.evaluate_model(model_dir, n_images=n_images)
    return report, examples, f"{n_images} generated shelves"


@st.cache_data(show_spinner="Evaluating on the data set's validation photos ...", max_entries=8)
def _evaluate_on_dataset(model_dir: str, dataset_dir: str, max_images: int, changed: float):
    # NOTE: `changed` (the folder's mtime) is only a cache key: a re-added folder is scored anew.
    report, examples, scored = jobs.evaluate_model_on_dataset(model_dir, dataset_dir, max_images)
    return report, examples, f"{scored} validation photos of {Path(dataset_dir).name}"


def _name(choice: dict) -> str:
    return "Shipped default model" if choice["id"] is None else choice["name"]


def _label(choice: dict) -> str:
    return f"{_name(choice)}{' (active)' if choice['in_use'] else ''}"


def _go_back(previous_id: int | None, previous_name: str) -> None:
    try:
        if previous_id is None:
            use_default_model()
        else:
            activate_model_version(previous_id)
    except ui.USER_ERRORS as exc:
        st.session_state["messages:lab_models"] = ((), (f"Going back failed: {exc}",))
        return
    st.session_state.pop("lab_previous_model", None)
    st.session_state["messages:lab_models"] = ((f"{previous_name} is the active model again.",), ())


with tab_models:
    ui.show_messages("lab_models")
    previous = st.session_state.get("lab_previous_model")  # (id, label) of the model before
    if previous is not None and not any(c["in_use"] and c["id"] == previous[0] for c in choices):
        st.button(
            f"Go back to {previous[1]}",
            key="lab_go_back",
            on_click=_go_back,
            args=previous,
            help="Make the model that was active before the last activation active again",
        )
    if not choices:
        st.stop()
    if len(choices) == 1:
        st.info("No trained versions yet: finished training jobs appear here.")
    # NOTE: options are names, not labels, so the choice survives its label gaining "(active)".
    by_name = {c["name"]: c for c in choices}
    version = by_name[
        st.selectbox(
            "Model version",
            list(by_name),
            key="lab_version",
            format_func=lambda name: _label(by_name[name]),
        )
    ]
    active = next(c for c in choices if c["in_use"])
    st.caption(f"Folder: {version['path']} · active model folder: {active['path']}")

    left, right = st.columns(2)
    left.markdown(f"**{_label(version)}** (validation figures from training)")
    left.dataframe(
        _metrics_table(version["metrics"], version["datasets"]),
        hide_index=True,
        width="stretch",
    )
    right.markdown(f"**Active: {_label(active).removesuffix(' (active)')}**")
    right.dataframe(
        _metrics_table(active["metrics"], active["datasets"]),
        hide_index=True,
        width="stretch",
    )

    st.subheader("Evaluate")
    eval_sources = {"Generated shelves": ""} | {p.name: str(p) for p in jobs.list_datasets()}
    eval_source = eval_sources[
        st.selectbox(
            "Evaluate on",
            list(eval_sources),
            key="lab_eval_source",
            help="Generated shelves the model has not seen, or an uploaded data set's "
            f"validation photos: the {jobs.EVAL_VAL_FRACTION:.0%} of its photos that a training "
            "job on it holds out (split by image name, seed 0)",
        )
    ]
    if eval_source:
        n_eval = st.slider("Validation photos (at most)", 2, 200, 50, key="lab_eval_max")
    else:
        n_eval = st.slider("Generated shelves for the evaluation", 2, 50, 8, key="lab_eval_n")
    # Every evaluation of this session, by model folder and what it scored: the activation
    # below compares two models only on the same photos.
    evaluations: dict = st.session_state.setdefault("lab_evaluations", {})
    eval_key = (eval_source, n_eval)

    def _run_evaluation(model: dict) -> bool:
        try:
            evaluations[(model["path"], eval_key)] = (
                _evaluate_on_dataset(
                    model["path"], eval_source, n_eval, Path(eval_source).stat().st_mtime
                )
                if eval_source
                else _evaluate(model["path"], n_eval)
            )
        except ModelLoadError as exc:
            st.error(f"{_name(model)} cannot be loaded: {exc}")
            return False
        except ui.USER_ERRORS as exc:
            st.error(f"The evaluation of {_name(model)} failed: {exc}")
            return False
        st.session_state["lab_shown_evaluation"] = (model["path"], eval_key)
        return True

    if st.button("Evaluate", key="lab_evaluate"):
        _run_evaluation(version)
    shown = st.session_state.get("lab_shown_evaluation")
    evaluation = evaluations.get(shown) if shown and shown[0] == version["path"] else None
    if evaluation is not None:
        report, examples, scored_on = evaluation
        st.caption(f"Scored on {scored_on}; counts at the model's own thresholds.")
        headline = headline_figures(report)
        columns = st.columns(len(headline) + 1)
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        for column, (label, value) in zip(columns, headline.items(), strict=False):
            column.metric(label, fmt(value))
        columns[-1].metric(f"AR{report.max_dets}", fmt(report.ar))
        from skuaudit.training.evaluate import pr_curve_figure

        st.plotly_chart(pr_curve_figure(report), width="stretch")
        per_class = _metrics_table(report.per_class)
        figures = [c for c in per_class.columns if c != "class"]
        # None (a class no photo labels) becomes a blank cell, not the word "None".
        per_class[figures] = per_class[figures].apply(pd.to_numeric, errors="coerce")
        st.dataframe(
            per_class,
            width="stretch",
            hide_index=True,
            column_config={
                "ap": st.column_config.NumberColumn("AP", format="%.3f"),
                "ap50": st.column_config.NumberColumn("AP50", format="%.3f"),
                "ap75": st.column_config.NumberColumn("AP75", format="%.3f"),
                f"ar{report.max_dets}": st.column_config.NumberColumn(
                    f"AR{report.max_dets}", format="%.3f"
                ),
                "count_mae": st.column_config.NumberColumn("count error (MAE)", format="%.2f"),
                "count_rmse": st.column_config.NumberColumn("count error (RMSE)", format="%.2f"),
            },
        )
        st.caption(
            "Blank: no photo scored here labels that class. Examples: predicted boxes at the "
            "model's thresholds, products green, gaps red."
        )
        st.image(
            [e[:, :, ::-1] for e in examples],
            width=300,
            caption=[f"example {i + 1}" for i in range(len(examples))],
        )

    st.subheader("Activate")
    if version["in_use"]:
        st.caption("New audits use this model.")
    else:
        pair = [evaluations.get((m["path"], eval_key)) for m in (version, active)]
        if st.button(
            "Evaluate both on these photos",
            key="lab_evaluate_both",
            help="The candidate and the active model, scored on the same photos chosen above",
        ) and all(_run_evaluation(m) for m in (version, active)):
            pair = [evaluations[(m["path"], eval_key)] for m in (version, active)]
        check = activation_check(
            version,
            active,
            pair[0][0] if pair[0] else None,
            pair[1][0] if pair[1] else None,
            pair[0][2] if all(pair) else None,
        )
        if check.evaluated:
            st.caption(f"Champion and challenger on {check.scored_on}:")
            names = {
                "figure": "figure",
                "candidate": f"{_name(version)} (candidate)",
                "active": f"{_name(active)} (active)",
            }
            st.dataframe(
                pd.DataFrame(list(check.rows)).rename(columns=names),
                hide_index=True,
                column_config={
                    names[c]: st.column_config.NumberColumn(format="%.3f")
                    for c in ("candidate", "active")
                },
                key="lab_compare_table",
            )
        for warning in check.warnings():
            st.warning(warning)
        confirmed = st.checkbox(
            f"Activate {_name(version)}" + ("" if check.safe else " anyway"),
            key=f"lab_activate_sure_{version['name']}",
            help="New audits then use it; the model active now stays one click away",
        )
        label = "Use the shipped default model" if version["id"] is None else "Activate"
        if st.button(label, type="primary", key="lab_activate", disabled=not confirmed):
            with ui.user_errors("Changing the active model"):
                if version["id"] is None:
                    use_default_model()
                else:
                    activate_model_version(version["id"])
                st.session_state["lab_previous_model"] = (active["id"], _name(active))
                ui.rerun_with_messages(
                    "lab_models",
                    f"{_name(version)} is now the active model; new audits record it.",
                )

    st.subheader("Export")
    from skuaudit import export

    c1, c2 = st.columns(2)
    export_format = c1.selectbox("Format", list(export.FORMATS), key="lab_export_format")
    int8 = c2.checkbox(
        "int8 (TFLite only)", key="lab_export_int8", disabled=export_format != "tflite"
    )
    int8 = int8 and export_format == "tflite"  # a disabled checkbox keeps its last value
    if st.button(
        "Export",
        key="lab_export",
        help="Replaces this page's earlier export of the same "
        "version and format once the new one is written",
    ):
        out = export.lab_export_dir(version["name"], export_format, int8=int8)
        with ui.user_errors("Export"), st.spinner("Exporting ..."):
            export.export_model(version["path"], export_format, out, int8=int8, replace=True)
            st.success(
                f"Exported {_name(version)} as {export_format}{' int8' if int8 else ''} "
                f"({export.human_size(export.folder_size_bytes(out))}): download it below."
            )
    for made in export.lab_exports(version["name"]):
        label = made["format"]
        left, right = st.columns([3, 2])
        left.markdown(f"**{label}** export · {export.human_size(made['size_bytes'])}")
        right.download_button(
            f"Download {label} (zip)",
            data=functools.partial(export.zip_folder, made["path"]),
            file_name=f"{made['path'].name}.zip",
            mime="application/zip",
            key=f"lab_download_{made['path'].name}",
            on_click="ignore",
        )
        if label == "tfjs":
            with left.expander("How to host the TF.js model"):
                st.code(export.TFJS_HOSTING, language="text")
    model_size = export.folder_size_bytes(version["path"])
    st.download_button(
        f"Download the model folder (zip, {export.human_size(model_size)})",
        data=functools.partial(export.zip_folder, version["path"]),
        file_name=f"{Path(version['path']).name if version['id'] is None else version['name']}.zip",
        mime="application/zip",
        key="lab_download_model",
        on_click="ignore",
        help="The Keras model, its TFLite file, labels, config and model card",
    )
