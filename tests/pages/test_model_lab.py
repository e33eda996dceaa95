"""Model lab page: role gate, starting a job, live job progress, activation of a model version."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from skuaudit import jobs
from skuaudit.errors import UserError
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope

ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/model_lab.py"


def _lab(monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv("SKUAUDIT_MODELS_DIR", str(tmp_path / "models"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["role"] = "analyst"
    at.session_state["analyst_user"] = "ana"
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def test_page_is_for_analysts_only(db_url):
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=30)
    at.session_state["role"] = "merchandiser"
    at.run()
    assert not at.exception
    assert "needs an analyst sign-in" in at.warning[0].value


def test_start_training_job_from_the_form(db_url, monkeypatch, tmp_path):
    started = []
    monkeypatch.setattr(
        jobs.queue, "start_worker", lambda job_id, url=None: started.append(job_id) or 1
    )
    older = jobs.create_job(jobs.TrainParams(steps=10), created_by="ana")
    at = _lab(monkeypatch, tmp_path)
    assert at.selectbox(key="lab_job_pick").value == older
    at.number_input(key="train_steps").set_value(20)
    at.selectbox(key="train_size").set_value(128)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, at.exception
    assert started and "started" in at.success[0].value
    assert at.selectbox(key="lab_job_pick").value == started[0]  # the new job, not the older
    job = jobs.get_job(started[0], db_url)
    assert (job.status, job.params["steps"], job.params["image_size"]) == ("queued", 20, 128)


def test_start_a_fine_tuning_job_from_the_active_model(db_url, monkeypatch, tmp_path):
    """The "Start from" choice offers the active model (the shipped default here); the job
    records it."""
    from skuaudit.model_registry import active_model_dir

    monkeypatch.setenv("SKUAUDIT_MODEL_DIR", str(ROOT / "models" / "default"))
    started = []
    monkeypatch.setattr(
        jobs.queue, "start_worker", lambda job_id, url=None: started.append(job_id) or 1
    )
    at = _lab(monkeypatch, tmp_path)
    start = at.selectbox(key="train_start")
    assert start.options[0] == "Random weights" and start.options[1].startswith("Active model")
    start.set_value(start.options[1])
    at.button[1].click().run()
    assert not at.exception, at.exception
    assert started, [e.value for e in at.error]
    job = jobs.get_job(started[0], db_url)
    assert job.params["init_model"] == str(active_model_dir())
    assert jobs.TrainParams(**job.params).peak_learning_rate == jobs.FINE_TUNE_LEARNING_RATE


@pytest.mark.expected_errors("Starting the job failed: no GPU")
def test_bad_settings_show_an_error(db_url, monkeypatch, tmp_path):
    at = _lab(monkeypatch, tmp_path)
    at.selectbox(key="train_size").set_value(128)
    monkeypatch.setattr(
        jobs.TrainParams, "__post_init__", lambda self: (_ for _ in ()).throw(UserError("no GPU"))
    )
    at.button[1].click().run()
    assert not at.exception
    assert "Starting the job failed: no GPU" in at.error[0].value


def test_running_job_progress_is_shown(db_url, monkeypatch, tmp_path):
    job_id = jobs.create_job(jobs.TrainParams(steps=100), created_by="ana")
    history = [
        {
            "event": "step",
            "step": s,
            "epoch": s / 10,
            "loss": 2.0 - s / 100,
            "val_loss": None,
            "eta_s": 120,
        }
        for s in (10, 20, 30)
    ]
    with session_scope() as s:
        job = s.get(m.TrainingJob, job_id)
        job.status, job.pid, job.heartbeat_at = "running", __import__("os").getpid(), m.utcnow()
        job.step, job.progress, job.history_json = 30, 0.3, json.dumps(history)
    at = _lab(monkeypatch, tmp_path)
    assert not at.exception, at.exception
    texts = " ".join(str(p.proto) for p in at.get("progress"))
    assert "step 30 of 100" in texts and "epoch 3.0" in texts
    assert at.get("plotly_chart")
    at.button(key=f"cancel_{job_id}").click().run()
    assert jobs.get_job(job_id, db_url).cancel_requested


def test_activate_model_version(db_url, monkeypatch, tmp_path):
    from skuaudit.model_registry import (
        activate_model_version,
        list_model_versions,
        register_model_version,
    )

    for name in ("old", "new"):
        (tmp_path / name).mkdir()
    old = register_model_version(tmp_path / "old", {"product": {"AP50": 0.4}})
    new = register_model_version(tmp_path / "new", {"product": {"AP50": 0.6}})
    activate_model_version(old)
    at = _lab(monkeypatch, tmp_path)
    at.selectbox(key="lab_version").set_value("new").run()
    # not evaluated next to the active model: a warning, and the button waits for a confirmation
    assert any(
        "has not been evaluated next to the active model (old)" in w.value for w in at.warning
    )
    assert at.button(key="lab_activate").disabled
    at.checkbox(key="lab_activate_sure_new").check().run()
    at.button(key="lab_activate").click().run()
    assert not at.exception, at.exception
    active = [v["id"] for v in list_model_versions() if v["is_active"]]
    assert active == [new]
    # the model active before is one click away
    at.button(key="lab_go_back").click().run()
    assert [v["id"] for v in list_model_versions() if v["is_active"]] == [old]
    assert "old is the active model again" in at.success[0].value
    assert "lab_go_back" not in [b.key for b in at.button]


def _model_folder(path: Path, metrics: dict | None = None) -> Path:
    """A folder that passes for a model where only ``config.json`` is read."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"training": {"metrics": metrics or {}}}))
    return path


def test_switch_back_to_the_shipped_default_model(db_url, monkeypatch, tmp_path):
    """After a version is activated the shipped default stays listed (and as a "Start from"
    choice), "Use the shipped default model" deactivates every version, and each change's
    message survives the rerun that follows it."""
    from skuaudit.model_registry import (
        active_model_dir,
        list_model_versions,
        register_model_version,
    )

    default = _model_folder(tmp_path / "shipped", {"dataset 0": {"product": {"AP50": 0.9}}})
    (default / "config.json").write_text(
        json.dumps(
            {
                "training": {
                    "config": {"data_description": ["synthetic shelves: 1500 renders"]},
                    "metrics": {"dataset 0": {"product": {"AP50": 0.9}}},
                }
            }
        )
    )
    monkeypatch.setenv("SKUAUDIT_MODEL_DIR", str(default))
    register_model_version(_model_folder(tmp_path / "lab-0001"), name="lab-0001")
    at = _lab(monkeypatch, tmp_path)
    # The active model's validation figures name the data set they were measured on.
    shown = at.dataframe[-1].value
    assert list(shown["dataset"]) == ["synthetic shelves"] and list(shown["AP50"]) == [0.9]
    versions = at.selectbox(key="lab_version")
    assert versions.options == ["lab-0001", "Shipped default model (active)"]
    assert at.selectbox(key="train_start").options == [
        "Random weights",
        "Active model (shipped default)",
        "Version lab-0001",
    ]

    at.checkbox(key="lab_activate_sure_lab-0001").check().run()
    at.button(key="lab_activate").click().run()
    assert not at.exception, at.exception
    assert [v["name"] for v in list_model_versions() if v["is_active"]] == ["lab-0001"]
    assert "lab-0001 is now the active model" in at.success[0].value
    assert at.selectbox(key="lab_version").options == ["lab-0001 (active)", "Shipped default model"]
    assert at.selectbox(key="train_start").options == [
        "Random weights",
        "Active model (lab-0001)",
        "Shipped default model",
    ]

    at.selectbox(key="lab_version").set_value("shipped default").run()
    assert not at.success  # the message is shown once
    at.checkbox(key="lab_activate_sure_shipped default").check().run()
    assert at.button(key="lab_activate").label == "Use the shipped default model"
    at.button(key="lab_activate").click().run()
    assert not at.exception, at.exception
    assert not [v for v in list_model_versions() if v["is_active"]]
    assert active_model_dir() == default
    assert "Shipped default model is now the active model" in at.success[0].value
    assert at.selectbox(key="lab_version").options == ["lab-0001", "Shipped default model (active)"]
    assert "lab_activate" not in [b.key for b in at.button]


def test_models_tab_lists_a_version_when_its_job_finishes(db_url, monkeypatch, tmp_path):
    """Only the jobs fragment reruns while a job trains; once the job registers a version the
    whole page reruns, so the Models tab lists it without a reload."""
    from skuaudit.model_registry import register_model_version

    monkeypatch.setenv("SKUAUDIT_MODEL_DIR", str(tmp_path / "no-default"))
    job_id = jobs.create_job(jobs.TrainParams(steps=4), created_by="ana")
    with session_scope() as s:
        job = s.get(m.TrainingJob, job_id)
        job.status, job.pid, job.heartbeat_at = "running", os.getpid(), m.utcnow()
    at = _lab(monkeypatch, tmp_path)
    assert "No trained versions yet" in at.info[0].value

    version = register_model_version(_model_folder(tmp_path / "lab-0001"), name="lab-0001")
    with session_scope() as s:
        job = s.get(m.TrainingJob, job_id)
        job.status, job.step, job.model_version_id = "done", 4, version
    _rerun_fragments(at, monkeypatch)
    assert not at.exception, at.exception
    assert at.selectbox(key="lab_version").options[0] == "lab-0001"
    assert not [i for i in at.info if "No trained versions yet" in i.value]


def _rerun_fragments(at: AppTest, monkeypatch) -> None:
    """Rerun only the page's fragments, as their ``run_every`` timer does in a browser.

    AppTest has no API for it, so its runner's ``RerunData`` gets the fragment queue a timer sends.
    """
    from streamlit.testing.v1 import local_script_runner

    fragment_ids = list(at._fragment_storage._fragments)
    assert fragment_ids
    rerun_data = local_script_runner.RerunData
    with monkeypatch.context() as patch:
        patch.setattr(
            local_script_runner,
            "RerunData",
            lambda **kw: rerun_data(**kw, fragment_id_queue=fragment_ids, is_auto_rerun=True),
        )
        at.run()


def test_export_replaces_the_pages_earlier_export(db_url, monkeypatch, tmp_path, tiny_detector):
    """Exporting a version and format again replaces the page's earlier export (a non-empty
    folder) instead of refusing it."""
    from skuaudit.export import lab_export_dir
    from skuaudit.model_registry import register_model_version

    register_model_version(tiny_detector[0], name="lab-0001")
    at = _lab(monkeypatch, tmp_path)
    at.selectbox(key="lab_export_format").set_value("savedmodel")
    out = lab_export_dir("lab-0001", "savedmodel")
    out.mkdir(parents=True)
    (out / "written-by-the-earlier-export").touch()
    at.button(key="lab_export").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    # no server path in the message: what was exported, its size, and a download
    assert at.success[0].value.startswith("Exported lab-0001 as savedmodel (")
    assert str(tmp_path) not in at.success[0].value
    downloads = [str(b.proto.label) for b in at.get("download_button")]
    assert "Download savedmodel (zip)" in downloads
    assert any(label.startswith("Download the model folder (zip, ") for label in downloads)
    assert json.loads((out / "export.json").read_text())["format"] == "savedmodel"
    assert not (out / "written-by-the-earlier-export").exists()
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no staging folder left


def test_evaluation_stays_shown_while_other_buttons_are_used(
    db_url, monkeypatch, tmp_path, tiny_detector
):
    from skuaudit.model_registry import register_model_version

    register_model_version(tiny_detector[0], name="lab-0002")
    at = _lab(monkeypatch, tmp_path)
    at.slider(key="lab_eval_n").set_value(2)
    at.button(key="lab_evaluate").click().run()
    assert not at.exception, at.exception
    shown = {m.label: m.value for m in at.metric}
    # product and gap count errors apart, not added together
    assert set(shown) == {
        "AP",
        "AP50",
        "AR300",
        "product count error (MAE)",
        "gap count error (MAE)",
    }
    at.selectbox(key="lab_export_format").set_value("tflite").run()  # any other widget
    assert {m.label: m.value for m in at.metric} == shown
    at.selectbox(key="lab_version").set_value("shipped default").run()
    assert not at.metric  # the figures belong to the version that was evaluated


def test_evaluate_on_an_uploaded_datasets_validation_photos(db_url, monkeypatch, tmp_path):
    """An uploaded data set is an evaluation source: its held-out photos are scored, and the
    figures say what they were measured on."""
    from skuaudit.datasets.synth import generate_dataset
    from skuaudit.jobs import datasets_dir

    generate_dataset(datasets_dir() / "shelves-upload", 10, 31, 512, 384, formats=("yolo",))
    monkeypatch.setenv("SKUAUDIT_MODEL_DIR", str(ROOT / "models" / "default"))  # the shipped one
    at = _lab(monkeypatch, tmp_path)
    source = at.selectbox(key="lab_eval_source")
    assert source.options == ["Generated shelves", "shelves-upload"]
    source.set_value("shelves-upload").run()
    at.button(key="lab_evaluate").click().run()
    assert not at.exception, at.exception
    assert any("Scored on 2 validation photos of shelves-upload" in c.value for c in at.caption)
    shown = {m.label: float(m.value) for m in at.metric}
    assert shown["AP50"] > 0.5  # the shipped model on generated shelves (products and gaps)


@pytest.mark.expected_errors("unknown class 0")
def test_add_a_dataset_with_a_class_map(db_url, monkeypatch, tmp_path):
    """A YOLO zip whose class 0 is not named needs a class map: refused without one (the page
    says how to give it), added with it, and then offered for training and evaluation."""
    import io
    import zipfile

    from skuaudit.datasets.synth import generate_dataset

    shelves = generate_dataset(tmp_path / "shelves", 4, 31, 512, 384, formats=("yolo",))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for image in sorted((shelves / "images").glob("*.jpg")):
            zf.write(image, f"images/{image.name}")
            lines = (shelves / "labels" / f"{image.stem}.txt").read_text().splitlines()
            gaps = [line[2:] for line in lines if line.startswith("1 ")]  # as id 0, unnamed
            zf.writestr(f"labels/{image.stem}.txt", "".join(f"0 {g}\n" for g in gaps))
    at = _lab(monkeypatch, tmp_path)
    assert at.file_uploader(key="upload_dataset_zip_0").proto.max_upload_size_mb == 1024
    at.file_uploader(key="upload_dataset_zip_0").set_value(
        ("store-gaps.zip", buffer.getvalue(), "application/zip")
    )
    next(b for b in at.button if b.label == "Add dataset").click().run()
    assert not at.exception, at.exception
    assert "unknown class 0" in at.error[0].value
    assert "Class map in the Model lab" in at.error[0].value
    assert str(tmp_path) not in at.error[0].value  # the file the user gave, not where it lies
    assert at.selectbox(key="train_dataset").options == ["Generated shelves"]

    # The refused zip stays in the form: only the class map is added.
    assert at.file_uploader(key="upload_dataset_zip_0").value is not None
    at.text_input(key="upload_class_map_0").set_value("0=gap")
    next(b for b in at.button if b.label == "Add dataset").click().run()
    assert not at.exception, at.exception
    assert "store-gaps-" in at.success[0].value and "boxes (gap)" in at.success[0].value
    assert at.text_input(key="upload_class_map_1").value == ""  # emptied once added
    (added,) = at.selectbox(key="train_dataset").options[1:]
    assert at.selectbox(key="lab_eval_source").options == ["Generated shelves", added]

    # Gaps only: the product row of the evaluation is blank, not "None".
    monkeypatch.setenv("SKUAUDIT_MODEL_DIR", str(ROOT / "models" / "default"))
    at.selectbox(key="lab_eval_source").set_value(added).run()
    at.button(key="lab_evaluate").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[-1].value.set_index("class")
    assert pd.isna(table.loc["product", "ap50"]) and table.loc["gap", "ap50"] >= 0


def test_activation_compares_the_candidate_with_the_active_model(
    db_url, monkeypatch, tmp_path, tiny_detector
):
    """Champion and challenger on the same photos: a worse candidate is named worse, on which
    figures, and activating it needs 'anyway'."""
    from skuaudit.model_registry import list_model_versions, register_model_version

    monkeypatch.setenv("SKUAUDIT_MODEL_DIR", str(ROOT / "models" / "default"))
    register_model_version(tiny_detector[0], name="tiny")  # 40 steps at 128 px
    at = _lab(monkeypatch, tmp_path)
    at.selectbox(key="lab_version").set_value("tiny").run()
    at.slider(key="lab_eval_n").set_value(2).run()
    at.button(key="lab_evaluate_both").click().run()
    assert not at.exception, at.exception
    assert any("Champion and challenger on 2 generated shelves" in c.value for c in at.caption)
    table = at.dataframe[-1].value
    assert list(table["figure"])[:2] == ["AP50", "AP"]
    ap50 = dict(zip(table["figure"], table.iloc[:, 1], strict=True))["AP50"]
    shipped = dict(zip(table["figure"], table.iloc[:, 2], strict=True))["AP50"]
    assert ap50 < shipped
    assert any("tiny is worse than the active model" in w.value for w in at.warning)
    assert any("AP50" in w.value for w in at.warning)
    sure = at.checkbox(key="lab_activate_sure_tiny")
    assert sure.label == "Activate tiny anyway"
    assert at.button(key="lab_activate").disabled
    sure.check().run()
    at.button(key="lab_activate").click().run()
    assert [v["name"] for v in list_model_versions() if v["is_active"]] == ["tiny"]
    assert at.button(key="lab_go_back").label == "Go back to Shipped default model"
