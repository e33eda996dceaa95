"""Training jobs in the database: their settings, snapshots of their rows, and their control.

``create_job`` inserts a queued job, ``start_worker`` starts its worker process (see
``skuaudit.jobs.worker``), ``request_cancel`` asks it to stop, and every read (``get_job``,
``list_jobs``) first fails the jobs whose worker is gone (``reap_dead_jobs``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from skuaudit.config import get_settings
from skuaudit.errors import UserError
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope
from skuaudit.storage.models import utcnow
from skuaudit.training.rates import FINE_TUNE_LEARNING_RATE, SCRATCH_LEARNING_RATE

STATUSES: tuple[str, ...] = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATUSES: frozenset[str] = frozenset({"done", "failed", "cancelled"})
STALE_AFTER_S = 90.0  # no heartbeat for this long: the worker is gone
START_GRACE_S = 120.0  # a queued job whose worker never reported is failed after this long
SYNTHETIC = "synthetic"
WORKER_LOG = "worker.log"
# The limits a job's settings must keep; the Model lab's form uses the same ones.
STEPS_RANGE: tuple[int, int] = (1, 1_000_000)
BATCH_RANGE: tuple[int, int] = (1, 256)
SYNTHETIC_IMAGES_RANGE: tuple[int, int] = (2, 100_000)


@dataclass(frozen=True)
class TrainParams:
    """The settings a person chooses for a training job.

    Attributes:
        dataset: ``"synthetic"`` (generated shelves) or the folder of an extracted dataset.
        dataset_format: ``auto``, ``yolo``, ``voc``, ``coco`` or ``sku110k`` (uploaded datasets).
        synthetic_images: shelves to generate when ``dataset`` is synthetic.
        steps: optimiser steps.
        batch_size: images per step.
        alpha: MobileNetV2 width multiplier (of a run from random weights).
        image_size: square model input in pixels, a multiple of 32 (of a run from random
            weights).
        learning_rate: peak learning rate; ``None``: ``SCRATCH_LEARNING_RATE`` from random
            weights, ``FINE_TUNE_LEARNING_RATE`` from ``init_model``.
        seed: seed of the data split, the generated shelves and the weights.
        init_model: a model folder to fine-tune (its width, input size, head and anchors;
            ``alpha`` and ``image_size`` are then not used); ``""``: random weights.
    """

    dataset: str = SYNTHETIC
    dataset_format: str = "auto"
    synthetic_images: int = 64
    steps: int = 500
    batch_size: int = 8
    alpha: float = 0.35
    image_size: int = 320
    learning_rate: float | None = None
    seed: int = 0
    init_model: str = ""

    def __post_init__(self) -> None:
        if not STEPS_RANGE[0] <= self.steps <= STEPS_RANGE[1]:
            raise UserError(
                f"steps must be between {STEPS_RANGE[0]} and {STEPS_RANGE[1]:,}, got {self.steps}"
            )
        if not BATCH_RANGE[0] <= self.batch_size <= BATCH_RANGE[1]:
            raise UserError(
                f"batch size must be between {BATCH_RANGE[0]} and {BATCH_RANGE[1]}, "
                f"got {self.batch_size}"
            )
        if self.alpha not in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4):
            raise UserError(
                f"width alpha must be one of 0.35, 0.5, 0.75, 1.0, 1.3, 1.4; got {self.alpha}"
            )
        if self.image_size < 64 or self.image_size % 32:
            raise UserError(
                f"image size must be a multiple of 32 and at least 64, got {self.image_size}"
            )
        low, high = SYNTHETIC_IMAGES_RANGE
        if not low <= self.synthetic_images <= high:
            raise UserError(
                f"synthetic images must be between {low} and {high:,}, got {self.synthetic_images}"
            )
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise UserError(f"learning rate must be in (0, 1), got {self.learning_rate}")
        if self.dataset != SYNTHETIC and not Path(self.dataset).is_dir():
            raise UserError(f"dataset folder {self.dataset} does not exist")
        if self.init_model and not (Path(self.init_model) / "config.json").is_file():
            raise UserError(f"{self.init_model} is not a model folder (no config.json)")

    @property
    def peak_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return FINE_TUNE_LEARNING_RATE if self.init_model else SCRATCH_LEARNING_RATE

    @classmethod
    def from_json(cls, text: str) -> TrainParams:
        return cls(**json.loads(text or "{}"))


@dataclass(frozen=True)
class JobView:
    """A read-only snapshot of a ``TrainingJob`` row, safe to use after the session closed."""

    id: int
    status: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    params: dict
    progress: float
    step: int
    total_steps: int
    history: list[dict] = field(default_factory=list)
    message: str = ""
    pid: int | None = None
    cancel_requested: bool = False
    output_dir: str = ""
    model_version_id: int | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def eta_s(self) -> float | None:
        """Latest estimate of the seconds left, from the last progress event."""
        return self.history[-1].get("eta_s") if self.history and not self.is_final else None

    @property
    def progress_text(self) -> str:
        """One line for a progress bar: the phase until the first step is done, then the step,
        epoch and time left.

        Example:
            >>> JobView(1, "running", "", None, None, None, None, {}, 0.0, 0, 500,
            ...         message="starting: loading TensorFlow").progress_text
            'running, starting: loading TensorFlow (step 0 of 500)'
        """
        if self.status in ("queued", "running") and not self.history:
            phase = self.message or "waiting for the worker process"
            return f"{self.status}, {phase} (step 0 of {self.total_steps})"
        epoch = self.history[-1].get("epoch") if self.history else None
        eta = f", about {self.eta_s / 60:.0f} min left" if self.eta_s else ""
        return (
            f"{self.status}: step {self.step} of {self.total_steps}"
            + (f", epoch {epoch:.1f}" if epoch is not None else "")
            + eta
        )

    @classmethod
    def of(cls, row: m.TrainingJob) -> JobView:
        """The row's columns by field name; ``params`` and ``history`` parsed from their JSON."""
        json_fields = {
            "params": json.loads(row.params_json or "{}"),
            "history": json.loads(row.history_json or "[]"),
        }
        columns = {f.name: getattr(row, f.name) for f in fields(cls) if f.name not in json_fields}
        return cls(**columns, **json_fields)


def fine_tune_sources(url: str | None = None) -> dict[str, str]:
    """``{label: model folder}`` a training job can start from, each folder once.

    The model audits use comes first (``"Active model (NAME)"``, NAME a version name or
    ``"shipped default"``), then the other registered versions newest first (``"Version NAME"``),
    then the shipped default model when a version is active (``"Shipped default model"``).
    Folders without a ``config.json`` are left out.
    """
    from skuaudit.model_registry import model_choices

    sources: dict[str, str] = {}
    seen: set[Path] = set()
    for choice in sorted(model_choices(url), key=lambda c: not c["in_use"]):
        folder = Path(choice["path"])
        if not (folder / "config.json").is_file() or folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        if choice["in_use"]:
            label = f"Active model ({choice['name']})"
        elif choice["id"] is None:
            label = "Shipped default model"
        else:
            label = f"Version {choice['name']}"
        sources[label] = str(folder)
    return sources


def unlisted_versions(job_list: list[JobView], listed_version_ids: set[int]) -> set[int]:
    """Model versions registered by finished jobs in ``job_list`` that are not in ``listed_version_ids``.

    A page that listed the versions before those jobs finished uses this to know it must redraw.
    """
    return {
        j.model_version_id
        for j in job_list
        if j.status == "done" and j.model_version_id is not None
    } - set(listed_version_ids)


def create_job(params: TrainParams, created_by: str = "", url: str | None = None) -> int:
    """Insert a queued job with its own new model folder name; returns the job id."""
    with session_scope(url) as s:
        job = m.TrainingJob(
            status="queued",
            created_by=created_by,
            params_json=json.dumps(asdict(params)),
            total_steps=params.steps,
        )
        s.add(job)
        s.flush()
        stamp = utcnow().strftime("%Y%m%d-%H%M%S")
        job.output_dir = str(get_settings().models_dir / f"lab-{job.id:04d}-{stamp}")
        return job.id


def job_row(s: sa.orm.Session, job_id: int, queued_to: str | None = None) -> m.TrainingJob:
    """The job's row in session ``s``.

    Raises:
        UserError: no such job, or (with ``queued_to``, what only a queued job may do: "start",
            "run") the job is no longer queued.
    """
    job = s.get(m.TrainingJob, job_id)
    if job is None:
        raise UserError(f"training job {job_id} does not exist")
    if queued_to and job.status != "queued":
        raise UserError(f"training job {job_id} is {job.status}; only a queued job can {queued_to}")
    return job


def start_worker(job_id: int, url: str | None = None) -> int:
    """Start the worker process of a queued job; returns its pid.

    The worker runs in a new session (``start_new_session``): it survives the Streamlit script run
    that started it. Its output goes to ``worker.log`` in the job's model folder. A daemon thread
    waits for it, so a finished worker does not stay behind as a zombie of the server.
    """
    with session_scope(url) as s:
        output_dir = Path(job_row(s, job_id, queued_to="start").output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    env = os.environ.copy()
    env["SKUAUDIT_DB_URL"] = url or get_settings().db_url
    with open(output_dir / WORKER_LOG, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "skuaudit.jobs", "run", str(job_id)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    threading.Thread(target=proc.wait, name=f"skuaudit-job-{job_id}-reaper", daemon=True).start()
    with session_scope(url) as s:
        job = s.get(m.TrainingJob, job_id)
        if job.pid is None:  # the worker may already have written its own pid
            job.pid = proc.pid
    return proc.pid


def submit_job(params: TrainParams, created_by: str = "", url: str | None = None) -> int:
    """``create_job`` then ``start_worker``; returns the job id."""
    job_id = create_job(params, created_by, url)
    start_worker(job_id, url)
    return job_id


def request_cancel(job_id: int, url: str | None = None) -> None:
    """Ask a job to stop: a queued job is cancelled at once, a running one at its next step."""
    with session_scope(url) as s:
        job = job_row(s, job_id)
        if job.status in FINAL_STATUSES:
            return
        job.cancel_requested = True
        if job.status == "queued":
            job.status, job.finished_at, job.message = (
                "cancelled",
                utcnow(),
                "cancelled before it started",
            )


def _pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(
            pid, os.WNOHANG
        )  # reap our own exited child, or it stays a zombie that looks alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _dead_reason(job: m.TrainingJob, now: datetime) -> str | None:
    if job.status == "running":
        if not _pid_alive(job.pid):
            return "the worker process ended without reporting (killed or crashed)"
        if job.heartbeat_at and now - job.heartbeat_at > timedelta(seconds=STALE_AFTER_S):
            return f"no heartbeat from the worker for {STALE_AFTER_S:.0f} s"
    elif (
        job.status == "queued"
        and job.pid is not None
        and now - job.created_at > timedelta(seconds=START_GRACE_S)
        and not _pid_alive(job.pid)
    ):
        return "the worker process ended before it started training"
    return None


def reap_dead_jobs(url: str | None = None) -> list[int]:
    """Mark jobs whose worker is gone as failed (the active model is never touched); returns their ids."""
    now = utcnow()
    failed = []
    with session_scope(url) as s:
        for job in s.scalars(
            sa.select(m.TrainingJob).where(m.TrainingJob.status.in_(("queued", "running")))
        ):
            reason = _dead_reason(job, now)
            if reason:
                job.status, job.finished_at = "failed", now
                job.message = f"{reason}; see {Path(job.output_dir) / WORKER_LOG}"
                failed.append(job.id)
    return failed


def get_job(job_id: int, url: str | None = None) -> JobView:
    """The job, after failing it if its worker is gone."""
    reap_dead_jobs(url)
    with session_scope(url) as s:
        return JobView.of(job_row(s, job_id))


def list_jobs(url: str | None = None, limit: int = 20) -> list[JobView]:
    """The newest jobs first, after failing those whose worker is gone."""
    reap_dead_jobs(url)
    with session_scope(url) as s:
        rows = s.scalars(
            sa.select(m.TrainingJob).order_by(m.TrainingJob.id.desc()).limit(limit)
        ).all()
        return [JobView.of(r) for r in rows]
