"""Model lab page: role gate, starting a job, live job progress, activation of a model version."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from skuaudit import jobs
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope

ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/model_lab.py"


def _lab(monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv("SKUAUDIT_MODELS_DIR", str(tmp_path / "models"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["role"] = "analyst"
    at.session_state["analyst_user"] = "ana"
    at.run()
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
    monkeypatch.setattr(jobs, "start_worker", lambda job_id, url=None: started.append(job_id) or 1)
    at = _lab(monkeypatch, tmp_path)
    at.number_input(key="train_steps").set_value(20)
    at.selectbox(key="train_size").set_value(128)
    at.button[1].click().run()  # the form's "Start training"
    assert not at.exception, at.exception
    assert started and "started" in at.success[0].value
    job = jobs.get_job(started[0], db_url)
    assert (job.status, job.params["steps"], job.params["image_size"]) == ("queued", 20, 128)


def test_start_a_fine_tuning_job_from_the_active_model(db_url, monkeypatch, tmp_path):
    """The "Start from" choice offers the active model (the shipped default here); the job
    records it."""
    from skuaudit.model_registry import active_model_dir

    monkeypatch.setenv("SKUAUDIT_MODEL_DIR", str(ROOT / "models" / "default"))
    started = []
    monkeypatch.setattr(jobs, "start_worker", lambda job_id, url=None: started.append(job_id) or 1)
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


def test_bad_settings_show_an_error(db_url, monkeypatch, tmp_path):
    at = _lab(monkeypatch, tmp_path)
    at.selectbox(key="train_size").set_value(128)
    monkeypatch.setattr(
        jobs.TrainParams, "__post_init__", lambda self: (_ for _ in ()).throw(ValueError("no GPU"))
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
    at.button(key="lab_activate").click().run()
    assert not at.exception, at.exception
    active = [v["id"] for v in list_model_versions() if v["is_active"]]
    assert active == [new]
