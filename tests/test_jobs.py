"""Training jobs: the state machine in the database, and real worker processes (done, cancelled, killed)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest

from skuaudit import jobs
from skuaudit.jobs import TrainParams
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope

TINY = dict(synthetic_images=6, image_size=96, alpha=0.35, batch_size=2)


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SKUAUDIT_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path / "models"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(steps=0), "steps must be"),
        (dict(batch_size=0), "batch size"),
        (dict(alpha=0.4), "width alpha"),
        (dict(image_size=100), "multiple of 32"),
        (dict(synthetic_images=1), "synthetic images"),
        (dict(dataset="/no/such/folder"), "does not exist"),
        (dict(init_model="/no/such/model"), "is not a model folder"),
        (dict(learning_rate=0.0), "learning rate"),
    ],
)
def test_params_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainParams(**kwargs)


@pytest.mark.usefixtures("eager_steps")
def test_job_fine_tunes_a_model_with_its_own_architecture(db_url, models_dir, tiny_detector):
    """A job started from a model folder keeps that model's input size and width (not the
    job's), starts from its weights at the lower fine-tuning learning rate, and registers the
    result; the choices offered are the active model and the other registered versions."""
    import json

    from skuaudit.model_registry import activate_model_version, register_model_version

    source = tiny_detector[0]
    version = register_model_version(source, {}, name="tiny", url=db_url)
    (models_dir / "default").mkdir(parents=True)  # an active folder that is not a model
    register_model_version(models_dir / "default", {}, name="empty", url=db_url)
    assert jobs.fine_tune_sources(db_url) == {"Version tiny": str(source)}
    activate_model_version(version, db_url)
    assert list(jobs.fine_tune_sources(db_url).values()) == [str(source)]

    params = TrainParams(steps=2, init_model=str(source), **TINY)
    assert params.peak_learning_rate == jobs.FINE_TUNE_LEARNING_RATE
    assert TrainParams(**TINY).peak_learning_rate == jobs.SCRATCH_LEARNING_RATE
    job_id = jobs.create_job(params, created_by="ana", url=db_url)
    assert jobs.run_job(job_id, db_url) == "done", jobs.get_job(job_id, db_url).message
    out = Path(jobs.get_job(job_id, db_url).output_dir) / "model"
    saved = json.loads((out / "config.json").read_text())
    assert saved["detector"]["image_size"] == 128 != TINY["image_size"]
    assert saved["training"]["config"]["init_model_dir"] == str(source)
    assert saved["training"]["config"]["learning_rate"] == jobs.FINE_TUNE_LEARNING_RATE


def test_fine_tune_sources_name_the_models_and_keep_the_default(db_url, tmp_path, monkeypatch):
    """The "Start from" choices name the active model's version (or the shipped default) and,
    while a version is active, still offer the shipped default."""
    from skuaudit.model_registry import activate_model_version, register_model_version

    folders = {}
    for name in ("default", "lab-0001", "lab-0002"):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        (folders[name] / "config.json").write_text("{}")
    monkeypatch.setenv("SKUAUDIT_MODEL_DIR", str(folders["default"]))
    first = register_model_version(folders["lab-0001"], url=db_url)
    register_model_version(folders["lab-0002"], url=db_url)
    assert jobs.fine_tune_sources(db_url) == {
        "Active model (shipped default)": str(folders["default"]),
        "Version lab-0002": str(folders["lab-0002"].resolve()),
        "Version lab-0001": str(folders["lab-0001"].resolve()),
    }
    activate_model_version(first, db_url)
    assert jobs.fine_tune_sources(db_url) == {
        "Active model (lab-0001)": str(folders["lab-0001"].resolve()),
        "Version lab-0002": str(folders["lab-0002"].resolve()),
        "Shipped default model": str(folders["default"]),
    }


def _job_view(job_id: int, status: str, version_id: int | None) -> jobs.JobView:
    now = m.utcnow()
    return jobs.JobView(
        id=job_id,
        status=status,
        created_by="ana",
        created_at=now,
        started_at=now,
        finished_at=now,
        heartbeat_at=now,
        params={},
        progress=1.0,
        step=4,
        total_steps=4,
        model_version_id=version_id,
    )


@pytest.mark.parametrize(
    "job_states, listed, expected",
    [
        ([], set(), set()),
        ([("running", None), ("failed", None)], set(), set()),
        ([("done", 7)], set(), {7}),
        ([("done", 7), ("done", 5)], {5}, {7}),
        ([("done", 7)], {7}, set()),
    ],
)
def test_unlisted_versions(job_states, listed, expected):
    job_list = [_job_view(i, status, vid) for i, (status, vid) in enumerate(job_states, 1)]
    assert jobs.unlisted_versions(job_list, listed) == expected


def test_queued_job_is_cancelled_at_once(db_url, models_dir):
    job_id = jobs.create_job(TrainParams(steps=5, **TINY), created_by="ana", url=db_url)
    job = jobs.get_job(job_id, db_url)
    assert (job.status, job.created_by, job.total_steps) == ("queued", "ana", 5)
    assert job.output_dir.startswith(str(models_dir))
    jobs.request_cancel(job_id, db_url)
    assert jobs.get_job(job_id, db_url).status == "cancelled"
    with pytest.raises(ValueError, match="only a queued job"):
        jobs.start_worker(job_id, db_url)
    jobs.request_cancel(job_id, db_url)  # cancelling a finished job changes nothing
    assert jobs.get_job(job_id, db_url).status == "cancelled"


def _set(job_id, url, **values):
    with session_scope(url) as s:
        job = s.get(m.TrainingJob, job_id)
        for k, v in values.items():
            setattr(job, k, v)


def test_running_job_with_dead_pid_or_stale_heartbeat_fails(db_url, models_dir):
    exited = subprocess.Popen(["true"])
    exited.wait()
    dead = jobs.create_job(TrainParams(steps=5, **TINY), url=db_url)
    _set(dead, db_url, status="running", pid=exited.pid, heartbeat_at=m.utcnow())
    stale = jobs.create_job(TrainParams(steps=5, **TINY), url=db_url)
    _set(
        stale,
        db_url,
        status="running",
        pid=os.getpid(),
        heartbeat_at=m.utcnow() - timedelta(minutes=10),
    )
    alive = jobs.create_job(TrainParams(steps=5, **TINY), url=db_url)
    _set(alive, db_url, status="running", pid=os.getpid(), heartbeat_at=m.utcnow())
    views = {j.id: j for j in jobs.list_jobs(db_url)}
    assert views[dead].status == "failed" and "killed or crashed" in views[dead].message
    assert views[stale].status == "failed" and "no heartbeat" in views[stale].message
    assert views[alive].status == "running"


def _wait(job_id, url, predicate, timeout_s=240):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = jobs.get_job(job_id, url)
        if predicate(job):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} stuck: {jobs.get_job(job_id, url)}")


@pytest.fixture(scope="module")
def worker_runs(tmp_path_factory):
    """Three real workers started together: one trains to the end, one is cancelled, one is killed."""
    from skuaudit.model_registry import activate_model_version, register_model_version
    from skuaudit.storage.db import upgrade_database

    root = tmp_path_factory.mktemp("jobs")
    url = f"sqlite:///{root / 'jobs.db'}"
    upgrade_database(url)
    (root / "current").mkdir()
    current = register_model_version(root / "current", {"AP50": 0.5}, url=url)
    activate_model_version(current, url)
    pids = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SKUAUDIT_MODELS_DIR", str(root / "models"))
        done = jobs.submit_job(TrainParams(steps=3, **TINY), created_by="ana", url=url)
        cancelled = jobs.submit_job(TrainParams(steps=500, **TINY), url=url)
        killed = jobs.submit_job(TrainParams(steps=500, **TINY), url=url)
    pids += [jobs.get_job(j, url).pid for j in (done, cancelled, killed)]
    try:
        running = _wait(killed, url, lambda j: j.status == "running")
        os.kill(running.pid, signal.SIGKILL)
        _wait(cancelled, url, lambda j: j.status == "running")
        jobs.request_cancel(cancelled, url)
        for job_id in (done, cancelled, killed):
            _wait(job_id, url, lambda j: j.is_final)
        yield {
            "url": url,
            "done": done,
            "cancelled": cancelled,
            "killed": killed,
            "current": current,
            "pids": pids,
        }
    finally:
        for pid in pids:
            if pid and jobs.queue._pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_worker_trains_registers_but_does_not_activate(worker_runs):
    from skuaudit.model_registry import active_model_dir, list_model_versions

    url = worker_runs["url"]
    job = jobs.get_job(worker_runs["done"], url)
    assert job.status == "done", job.message
    assert job.step == job.total_steps == 3 and job.progress == 1.0
    assert job.history and job.history[-1]["event"] == "done"
    assert job.started_at <= job.finished_at
    versions = {v["id"]: v for v in list_model_versions(url)}
    assert not versions[job.model_version_id]["is_active"]
    assert versions[worker_runs["current"]]["is_active"]
    assert (active_model_dir(url)).name == "current"
    assert (Path(versions[job.model_version_id]["path"]) / "model.keras").is_file()


@pytest.mark.slow
def test_cancelled_worker_ends_cancelled_without_a_version(worker_runs):
    job = jobs.get_job(worker_runs["cancelled"], worker_runs["url"])
    assert job.status == "cancelled", job.message
    assert job.model_version_id is None


@pytest.mark.slow
def test_killed_worker_is_marked_failed_and_active_model_kept(worker_runs):
    from skuaudit.model_registry import active_model_dir

    job = jobs.get_job(worker_runs["killed"], worker_runs["url"])
    assert job.status == "failed" and "killed or crashed" in job.message
    assert job.model_version_id is None
    assert active_model_dir(worker_runs["url"]).name == "current"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_finished_workers_leave_no_zombie(worker_runs):
    # The app server is the workers' parent: a worker it never waits for stays a zombie.
    for pid in worker_runs["pids"]:
        deadline = time.monotonic() + 15
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{pid}").exists(), Path(f"/proc/{pid}/stat").read_text()


# --------------------------------------------------------------------------- evaluation on a dataset


@pytest.fixture(scope="module")
def shelf_dataset(tmp_path_factory) -> Path:
    """10 generated shelves in YOLO format, as an uploaded data set's folder holds them."""
    from skuaudit.datasets.synth import generate_dataset

    return generate_dataset(
        tmp_path_factory.mktemp("datasets") / "shelves", 10, 31, 512, 384, formats=("yolo",)
    )


def test_evaluate_model_on_a_datasets_validation_photos(shelf_dataset):
    from skuaudit.config import get_settings
    from skuaudit.datasets.base import Dataset
    from skuaudit.datasets.readers import read_dataset
    from skuaudit.datasets.splits import split_by_image

    report, examples, scored = jobs.evaluate_model_on_dataset(
        get_settings().default_model_dir, shelf_dataset, max_images=50, examples=1
    )
    dataset = read_dataset(shelf_dataset, "yolo")
    _, held_out = split_by_image(Dataset(dataset.classes, dataset.images), 0.2, 0)
    assert scored == report.images == len(held_out) == 2  # what a training job holds out
    assert report.per_class["product"]["ap50"] > 0.8  # the shipped model on generated shelves
    assert len(examples) == 1 and examples[0].shape == (384, 512, 3)
    capped = jobs.evaluate_model_on_dataset(
        get_settings().default_model_dir, shelf_dataset, max_images=1, examples=0
    )
    assert capped[2] == capped[0].images == 1 and capped[1] == []


def test_evaluate_model_on_a_bad_dataset_says_why(tmp_path, shelf_dataset):
    import shutil

    from skuaudit.config import get_settings
    from skuaudit.datasets.base import DatasetError

    model = get_settings().default_model_dir
    with pytest.raises(DatasetError):
        jobs.evaluate_model_on_dataset(model, tmp_path / "empty")  # no such folder
    renamed = shutil.copytree(shelf_dataset, tmp_path / "renamed")
    names = renamed / "data.yaml"  # classes that are not the detector's
    names.write_text(names.read_text().replace("product", "bottle").replace("gap", "hole"))
    with pytest.raises(DatasetError, match="not detector classes"):
        jobs.evaluate_model_on_dataset(model, renamed)


def _gap_only_zip(shelf_dataset: Path, out: Path) -> Path:
    """The shelf data set as a gap-only YOLO zip without class names (as shelf-gaps ships):
    class 0 = the generated gaps, no ``data.yaml``."""
    import zipfile

    with zipfile.ZipFile(out, "w") as zf:
        for image in sorted((shelf_dataset / "images").glob("*.jpg")):
            label = shelf_dataset / "labels" / f"{image.stem}.txt"
            gaps = [line[2:] for line in label.read_text().splitlines() if line.startswith("1 ")]
            zf.write(image, f"gaps/images/{image.name}")
            zf.writestr(f"gaps/labels/{image.stem}.txt", "".join(f"0 {g}\n" for g in gaps))
    return out


def test_dataset_upload_with_a_class_map_is_read_with_it_everywhere(
    tmp_path, monkeypatch, shelf_dataset
):
    from skuaudit.config import get_settings
    from skuaudit.datasets.base import DatasetError

    monkeypatch.setenv("SKUAUDIT_MEDIA_DIR", str(tmp_path / "media"))
    archive = _gap_only_zip(shelf_dataset, tmp_path / "gaps.zip")
    with pytest.raises(
        DatasetError, match="unknown class 0.*class map such as 0=gap"
    ):  # refused now
        jobs.add_dataset_archive(archive, "gaps.zip")
    with pytest.raises(DatasetError, match="not detector classes"):  # named, but not ours
        jobs.add_dataset_archive(archive, "gaps.zip", "yolo", {"0": "hole"})
    with pytest.raises(DatasetError, match="names product, but no box.*leave out 1=product"):
        jobs.add_dataset_archive(archive, "gaps.zip", "yolo", {"0": "gap", "1": "product"})
    assert jobs.list_datasets() == []
    assert jobs.list_datasets() == []  # nothing half-added

    root, dataset = jobs.add_dataset_archive(archive, "gaps.zip", "yolo", {"0": "gap"})
    assert dataset.classes == ["gap"] and dataset.num_boxes > 0
    (folder,) = jobs.list_datasets()
    again = jobs.read_uploaded_dataset(folder)  # as training and evaluation read it
    assert again.classes == ["gap"] and again.num_boxes == dataset.num_boxes
    report, _, scored = jobs.evaluate_model_on_dataset(
        get_settings().default_model_dir, folder, examples=0
    )
    assert scored == 2 and report.per_class["product"]["ap50"] is None  # gaps only: not scored
    assert report.per_class["gap"]["ap50"] is not None


def test_a_zip_of_the_dataset_folder_itself_is_read_from_that_folder(
    tmp_path, monkeypatch, shelf_dataset
):
    """``synthds/data.yaml`` inside the zip: added, then read the same way for training and
    evaluation (the names file is in the inner folder, not in the extracted one)."""
    import zipfile

    from skuaudit.config import get_settings

    monkeypatch.setenv("SKUAUDIT_MEDIA_DIR", str(tmp_path / "media"))
    archive = tmp_path / "synthds.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in shelf_dataset.rglob("*"):
            if path.is_file():
                zf.write(path, f"synthds/{path.relative_to(shelf_dataset)}")
    _, added = jobs.add_dataset_archive(archive, "synthds.zip")
    (folder,) = jobs.list_datasets()
    again = jobs.read_uploaded_dataset(folder)
    assert again.classes == added.classes == ["product", "gap"]
    assert again.num_boxes == added.num_boxes and not again.problems
    report, _, scored = jobs.evaluate_model_on_dataset(
        get_settings().default_model_dir, folder, examples=0
    )
    assert scored == 2 and report.per_class["product"]["ap50"] > 0.8


@pytest.mark.slow
@pytest.mark.usefixtures("eager_steps")
def test_the_smallest_job_the_form_allows_trains(db_url, models_dir, monkeypatch):
    """steps = 1 (the form's minimum, ``jobs.STEPS_RANGE``) trains a model; before its first
    step the job says which phase it is in instead of a bare 'step 0'."""
    phases = []
    read_data = jobs.worker._datasets

    def reading(params, work_dir):
        phases.append(jobs.get_job(job_id, db_url).progress_text)
        return read_data(params, work_dir)

    monkeypatch.setattr(jobs.worker, "_datasets", reading)
    params = TrainParams(steps=jobs.STEPS_RANGE[0], **TINY)
    job_id = jobs.create_job(params, created_by="ana", url=db_url)
    assert jobs.get_job(job_id, db_url).progress_text == (
        "queued, waiting for the worker process (step 0 of 1)"
    )
    assert jobs.run_job(job_id, db_url) == "done", jobs.get_job(job_id, db_url).message
    assert phases == ["running, starting: generating 6 shelves (step 0 of 1)"]
    job = jobs.get_job(job_id, db_url)
    assert job.step == 1 and (Path(job.output_dir) / "model" / "model.keras").is_file()
    assert job.progress_text.startswith("done: step 1 of 1")
