"""The worker process of a training job: ``python -m skuaudit.jobs run JOB_ID``.

It trains the job's model, writes a heartbeat every ``HEARTBEAT_S``, the step, progress and loss
history at every progress event, polls ``cancel_requested`` between steps, and registers the
finished model as an inactive version.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import traceback
from pathlib import Path

from skuaudit.jobs.datasets import read_uploaded_dataset
from skuaudit.jobs.queue import SYNTHETIC, TrainParams, job_row
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope
from skuaudit.storage.models import utcnow

log = logging.getLogger(__name__)

HEARTBEAT_S = 3.0


class _Heartbeat(threading.Thread):
    """Writes ``heartbeat_at`` every ``HEARTBEAT_S`` and mirrors ``cancel_requested`` into an event.

    NOTE: runs beside the training loop so a long first step (tracing) still looks alive, and so
    ``should_stop`` (called every step) reads an Event instead of querying the database.
    """

    def __init__(self, job_id: int, url: str | None) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.job_id, self.url = job_id, url
        self.cancel = threading.Event()
        self.finished = threading.Event()

    def beat(self) -> None:
        with session_scope(self.url) as s:
            job = s.get(m.TrainingJob, self.job_id)
            job.heartbeat_at = utcnow()
            if job.cancel_requested:
                self.cancel.set()

    def run(self) -> None:
        while not self.finished.wait(HEARTBEAT_S):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - a lost heartbeat must not kill training; logged
                log.exception("heartbeat of job %d failed", self.job_id)


def _datasets(params: TrainParams, work_dir: Path):
    from skuaudit.datasets.readers import read_dataset

    if params.dataset == SYNTHETIC:
        from skuaudit.datasets.synth import generate_dataset

        folder = generate_dataset(
            work_dir / "synthetic-data",
            params.synthetic_images,
            params.seed,
            width=512,
            height=384,
            formats=("yolo",),
        )
        return [read_dataset(folder, "yolo")], [
            f"{params.synthetic_images} generated shelves (seed {params.seed})"
        ]
    dataset = read_uploaded_dataset(params.dataset, params.dataset_format)
    return [dataset], [f"{params.dataset} ({params.dataset_format}, {len(dataset)} images)"]


def _finish(
    job_id: int, url: str | None, status: str, message: str, version_id: int | None = None
) -> None:
    with session_scope(url) as s:
        job = s.get(m.TrainingJob, job_id)
        job.status, job.message, job.finished_at = status, message, utcnow()
        job.model_version_id = version_id
        if status == "done":
            job.progress = 1.0


def run_job(job_id: int, url: str | None = None) -> str:
    """The worker: train the job's model, report progress, register the result; returns the final status."""
    with session_scope(url) as s:
        job = job_row(s, job_id, queued_to="run")
        job.status, job.started_at, job.heartbeat_at, job.pid = (
            "running",
            utcnow(),
            utcnow(),
            os.getpid(),
        )
        params, out_dir = TrainParams.from_json(job.params_json), Path(job.output_dir)
        cancel_now = job.cancel_requested
    if cancel_now:
        _finish(job_id, url, "cancelled", "cancelled before it started")
        return "cancelled"
    heartbeat = _Heartbeat(job_id, url)
    heartbeat.start()
    history: list[dict] = []

    def phase(text: str) -> None:
        # The first minute has no step to show (TensorFlow loads, data is read, the first
        # step compiles): the page shows this instead of a bare "step 0".
        with session_scope(url) as s:
            s.get(m.TrainingJob, job_id).message = text

    def on_progress(event: dict) -> None:
        keep = ("event", "step", "epoch", "loss", "val_loss", "eta_s", "images_per_s", "elapsed_s")
        history.append({k: event.get(k) for k in keep})
        with session_scope(url) as s:
            job = s.get(m.TrainingJob, job_id)
            job.step, job.total_steps = int(event["step"]), int(event["total_steps"])
            job.progress = min(1.0, job.step / max(job.total_steps, 1))
            job.history_json = json.dumps(history, default=float)
            job.heartbeat_at = utcnow()
            job.message = f"{event['event']} at step {job.step}"

    try:
        phase("starting: loading TensorFlow")
        from skuaudit.model_registry import register_model_version
        from skuaudit.training.train import TrainConfig, train_detector
        from skuaudit.training.warm_start import architecture_of

        phase(
            f"starting: generating {params.synthetic_images} shelves"
            if params.dataset == SYNTHETIC
            else f"starting: reading the data set {Path(params.dataset).name}"
        )
        datasets, description = _datasets(params, out_dir)
        if heartbeat.cancel.is_set():
            _finish(job_id, url, "cancelled", "cancelled while preparing the data")
            return "cancelled"
        if params.init_model:
            architecture = architecture_of(params.init_model)
        else:
            architecture = {"image_size": params.image_size, "alpha": params.alpha}
        config = TrainConfig(
            out_dir=out_dir / "model",
            steps=params.steps,
            batch_size=params.batch_size,
            init_model_dir=params.init_model or None,
            **architecture,
            learning_rate=params.peak_learning_rate,
            seed=params.seed,
            eval_every=min(250, params.steps),
            log_every=max(1, min(10, params.steps // 20)),
            data_description=description,
        )
        phase("starting: building the model and compiling the first step (about a minute)")
        model_dir = train_detector(
            config, datasets, progress_callback=on_progress, should_stop=heartbeat.cancel.is_set
        )
        if heartbeat.cancel.is_set():
            _finish(
                job_id,
                url,
                "cancelled",
                f"cancelled at step {history[-1]['step'] if history else 0}; "
                f"the partial model in {model_dir} was not registered",
            )
            return "cancelled"
        metrics = (
            json.loads((model_dir / "config.json").read_text())
            .get("training", {})
            .get("metrics", {})
        )
        version_id = register_model_version(model_dir, metrics, name=out_dir.name, url=url)
        _finish(
            job_id, url, "done", f"model version {out_dir.name} registered (not active)", version_id
        )
        return "done"
    except Exception as exc:  # noqa: BLE001 - any failure ends the job as failed, with its reason
        traceback.print_exc()
        _finish(job_id, url, "failed", f"{type(exc).__name__}: {exc}")
        return "failed"
    finally:
        heartbeat.finished.set()


def main(argv: list[str]) -> int:
    """``python -m skuaudit.jobs run JOB_ID``."""
    if len(argv) != 2 or argv[0] != "run" or not argv[1].isdigit():
        print("usage: python -m skuaudit.jobs run JOB_ID", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        status = run_job(int(argv[1]), os.environ.get("SKUAUDIT_DB_URL"))
    except ValueError as exc:
        print(f"skuaudit.jobs: {exc}", file=sys.stderr)
        return 2
    return 0 if status in ("done", "cancelled") else 1
