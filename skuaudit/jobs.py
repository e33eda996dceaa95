"""Background training jobs whose state lives in the database.

A job moves ``queued -> running -> done | failed | cancelled``. The page (or any caller) creates a
job and starts a worker *process* (``python -m skuaudit.jobs run JOB_ID``, in its own session so a
Streamlit rerun or restart does not kill it). The worker writes a heartbeat every few seconds, the
step, progress and loss history at every progress event, and polls ``cancel_requested`` between
steps. A worker that dies without a final status (killed, out of memory, a crash in TensorFlow) is
noticed by whoever reads the job next: its pid is gone or its heartbeat is stale, and the job is
marked ``failed``. The pid check assumes the worker runs on the same host as the readers; the
heartbeat covers the rest.

A finished model lands in a new folder under ``models/`` and is registered as an *inactive*
``ModelVersion``; activating it is a separate, deliberate step (``activate_model_version``).

Example:
    >>> job_id = submit_job(TrainParams(steps=200), created_by="ana")  # doctest: +SKIP
    >>> get_job(job_id).status  # doctest: +SKIP
    'running'
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from skuaudit.config import get_settings
from skuaudit.errors import UserError
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope
from skuaudit.storage.models import utcnow
from skuaudit.training.rates import FINE_TUNE_LEARNING_RATE, SCRATCH_LEARNING_RATE

log = logging.getLogger(__name__)

STATUSES: tuple[str, ...] = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATUSES: frozenset[str] = frozenset({"done", "failed", "cancelled"})
HEARTBEAT_S = 3.0
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
        return cls(
            id=row.id,
            status=row.status,
            created_by=row.created_by,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            heartbeat_at=row.heartbeat_at,
            params=json.loads(row.params_json or "{}"),
            progress=row.progress,
            step=row.step,
            total_steps=row.total_steps,
            history=json.loads(row.history_json or "[]"),
            message=row.message,
            pid=row.pid,
            cancel_requested=row.cancel_requested,
            output_dir=row.output_dir,
            model_version_id=row.model_version_id,
        )


# --------------------------------------------------------------------------- reading and control


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


def start_worker(job_id: int, url: str | None = None) -> int:
    """Start the worker process of a queued job; returns its pid.

    The worker runs in a new session (``start_new_session``): it survives the Streamlit script run
    that started it. Its output goes to ``worker.log`` in the job's model folder. A daemon thread
    waits for it, so a finished worker does not stay behind as a zombie of the server.
    """
    with session_scope(url) as s:
        job = s.get(m.TrainingJob, job_id)
        if job is None:
            raise UserError(f"training job {job_id} does not exist")
        if job.status != "queued":
            raise UserError(f"training job {job_id} is {job.status}; only a queued job can start")
        output_dir = Path(job.output_dir)
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
        job = s.get(m.TrainingJob, job_id)
        if job is None:
            raise UserError(f"training job {job_id} does not exist")
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
        job = s.get(m.TrainingJob, job_id)
        if job is None:
            raise UserError(f"training job {job_id} does not exist")
        return JobView.of(job)


def list_jobs(url: str | None = None, limit: int = 20) -> list[JobView]:
    """The newest jobs first, after failing those whose worker is gone."""
    reap_dead_jobs(url)
    with session_scope(url) as s:
        rows = s.scalars(
            sa.select(m.TrainingJob).order_by(m.TrainingJob.id.desc()).limit(limit)
        ).all()
        return [JobView.of(r) for r in rows]


# --------------------------------------------------------------------------- datasets and evaluation


def datasets_dir() -> Path:
    """Where uploaded datasets are extracted (``<media>/datasets``)."""
    return get_settings().media_dir / "datasets"


DATASET_INFO_SUFFIX = ".skuaudit.json"  # beside an uploaded data set's folder: format, class map


def add_dataset_archive(
    source, name: str, dataset_format: str = "auto", class_map: dict[str, str] | None = None
):
    """Extract an uploaded zip safely into a new dataset folder and check it reads.

    Args:
        source: path or binary file object of the zip.
        name: the upload's file name; the folder is ``<name stem>-<timestamp>``.
        dataset_format: ``auto``, ``yolo``, ``voc``, ``coco`` or ``sku110k``.
        class_map: dataset class id or name -> detector class (``{"0": "gap"}``); every class
            must end up a detector class (or ``ignore``). Kept beside the folder
            (``DATASET_INFO_SUFFIX``) with the format, so training and evaluation read the data
            set the same way (``read_uploaded_dataset``).

    Returns:
        ``(folder, Dataset)``; bad images are skipped and listed in ``Dataset.problems``.

    Raises:
        UnsafeArchiveError: the archive is refused (zip slip, link, bomb, too many files).
        DatasetError: the extracted files are not a dataset of that format, or its classes are
            not detector classes; the folder is removed.
    """
    import re
    import shutil

    from skuaudit.datasets.base import DatasetError
    from skuaudit.datasets.readers import detect_format, read_dataset
    from skuaudit.datasets.splits import to_detector_classes
    from skuaudit.safezip import safe_extract

    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name).stem).strip("-")[:60] or "dataset"
    folder = datasets_dir() / f"{stem}-{utcnow().strftime('%Y%m%d-%H%M%S')}"
    safe_extract(source, folder)
    root = _dataset_root(folder)
    try:
        dataset = read_dataset(root, dataset_format, skip_bad=True, class_map=class_map)
        unknown = [p for p in dataset.problems if "unknown class" in p]
        if unknown:  # skipping them would train on the photos without those boxes
            raise DatasetError(f"{len(unknown)} file(s) name undeclared classes: {unknown[0]}")
        if not dataset.images:
            raise DatasetError(f"{name}: no usable images in the archive")
        to_detector_classes(dataset)  # refused now, not when a training job starts
        labelled = {c for im in dataset.images for c in im.class_names}
        unused = sorted({v for v in (class_map or {}).values()} - labelled)
        if unused:  # such a class would count as labelled everywhere, with no box of it
            entries = ", ".join(f"{k}={v}" for k, v in class_map.items() if v in unused)
            raise DatasetError(
                f"{name}: the class map names {', '.join(unused)}, but no box in the data set "
                f"is of that class; leave out {entries}"
            )
        fmt = detect_format(root) if dataset_format == "auto" else dataset_format
    except (DatasetError, ValueError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise DatasetError(as_uploaded(str(exc), folder, name)) from exc
    dataset.problems[:] = [as_uploaded(p, folder, name) for p in dataset.problems]
    info = {"format": fmt, "class_map": class_map or {}}
    folder.with_name(folder.name + DATASET_INFO_SUFFIX).write_text(json.dumps(info))
    return root, dataset


def as_uploaded(message: str, folder: Path, name: str) -> str:
    """``message`` with the server folder an upload was extracted to replaced by the name the
    user gave it, so a page names ``shelves.zip/labels/a.txt``, not where the file lies.

    Example:
        >>> as_uploaded("/srv/media/datasets/x-1/labels/a.txt line 3: bad", Path("/srv/media/datasets/x-1"), "x.zip")
        'x.zip/labels/a.txt line 3: bad'
    """
    return message.replace(str(folder), name)


def _dataset_root(folder: Path) -> Path:
    """The folder holding the data set: the one folder inside, for a zip of the folder itself."""
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else folder


def read_uploaded_dataset(folder: str | Path, dataset_format: str = "auto"):
    """Read a data set the Model lab extracted, with the format and class map it was added with.

    ``dataset_format`` other than ``auto`` wins over the recorded one. A folder without a record
    (added before records were kept, or by hand) is read with ``dataset_format`` and no map.
    """
    from skuaudit.datasets.readers import FORMATS, read_dataset

    folder = Path(folder)
    info_path = folder.with_name(folder.name + DATASET_INFO_SUFFIX)
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict):
        info = {}
    class_map = info.get("class_map") if isinstance(info.get("class_map"), dict) else None
    if dataset_format == "auto" and info.get("format") in FORMATS:
        dataset_format = info["format"]
    root = _dataset_root(folder) if folder.is_dir() else folder
    return read_dataset(root, dataset_format, skip_bad=True, class_map=class_map or None)


def list_datasets() -> list[Path]:
    """Extracted dataset folders, newest first."""
    base = datasets_dir()
    if not base.is_dir():
        return []
    folders = [p for p in base.iterdir() if p.is_dir()]
    return sorted(folders, key=lambda p: p.stat().st_mtime, reverse=True)


EVAL_VAL_FRACTION = 0.2  # the validation split training holds out (TrainConfig.val_fraction)


def evaluate_model(model_dir: str | Path, n_images: int = 8, seed: int = 4242, examples: int = 3):
    """Evaluate a model folder on generated shelves it has not seen.

    Args:
        model_dir: the model folder.
        n_images: shelves rendered (640x480) for the evaluation.
        seed: their seed; the default differs from training seeds.
        examples: how many shelves to return with boxes drawn.

    Returns:
        ``(EvalReport, [example BGR images with predicted boxes])``.
    """
    import tempfile

    import cv2

    from skuaudit.datasets.base import Dataset
    from skuaudit.datasets.synth import image_seed, render_shelf
    from skuaudit.detections import CLASS_NAMES
    from skuaudit.detector import Detector

    detector = Detector.load(model_dir)
    with tempfile.TemporaryDirectory(prefix="skuaudit-eval-") as tmp:
        images, pictures = [], []
        for i in range(n_images):
            shelf = render_shelf(image_seed(seed, i), width=640, height=480)
            path = Path(tmp) / f"shelf_{i:03d}.jpg"
            cv2.imwrite(str(path), shelf.image_bgr)
            images.append(shelf.to_labeled_image(path))
            pictures.append(shelf.image_bgr)
        return _evaluate(
            detector, Dataset(list(CLASS_NAMES), images), pictures.__getitem__, examples
        )


def evaluate_model_on_dataset(
    model_dir: str | Path,
    dataset_dir: str | Path,
    max_images: int = 50,
    *,
    seed: int = 0,
    examples: int = 3,
):
    """Evaluate a model folder on the validation photos of an uploaded data set.

    Scores the images training on that data set holds out (``split_by_image`` with
    ``EVAL_VAL_FRACTION`` and ``seed``, as a Model lab job splits it), at most ``max_images`` of
    them, through the photo path (tiled when large), each class only on the images that label it.

    Returns:
        ``(EvalReport, [example BGR images with predicted boxes], images scored)``.

    Raises:
        DatasetError: unreadable, empty, or classes that are not detector classes.
    """
    import cv2

    from skuaudit.datasets.base import Dataset, DatasetError
    from skuaudit.datasets.splits import split_by_image, to_detector_classes
    from skuaudit.detections import CLASS_NAMES
    from skuaudit.detector import Detector

    dataset = read_uploaded_dataset(dataset_dir)
    images = to_detector_classes(dataset)
    if len(images) < 2:
        raise DatasetError(
            f"{Path(dataset_dir).name}: {len(images)} image(s); at least 2 are needed to hold "
            "some out for the evaluation"
        )
    _, val = split_by_image(Dataset(dataset.classes, images), EVAL_VAL_FRACTION, seed)
    val = val[: max(1, int(max_images))]
    detector = Detector.load(model_dir)

    def picture(i: int):
        image = cv2.imread(str(val[i].path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"{Path(val[i].path).name}: cannot decode image")
        return image

    report, shown = _evaluate(detector, Dataset(list(CLASS_NAMES), val), picture, examples)
    return report, shown, len(val)


def _evaluate(detector, gt, picture, examples: int):
    """``(EvalReport, drawn examples)`` of ``detector`` on ``gt``; ``picture(i)`` is image i (BGR).

    Boxes are counted and drawn at the model's own per-class defaults, as audits count them; AP
    uses every box down to ``AP_SCORE_THRESHOLD``.
    """
    from skuaudit.drawing import draw_class_boxes
    from skuaudit.training.evaluate import AP_SCORE_THRESHOLD, evaluate_detections

    thresholds = detector.config.default_thresholds()
    predictions, shown = [], []
    for i in range(len(gt.images)):
        image = picture(i)
        det = detector.detect(image, score_threshold=AP_SCORE_THRESHOLD)
        predictions.append(det)
        if i < examples:
            shown.append(draw_class_boxes(image, det, thresholds))
    report = evaluate_detections(gt, predictions, score_threshold=detector.config.threshold_map())
    return report, shown


# --------------------------------------------------------------------------- the worker


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
        job = s.get(m.TrainingJob, job_id)
        if job is None:
            raise ValueError(f"training job {job_id} does not exist")
        if job.status != "queued":
            raise ValueError(f"training job {job_id} is {job.status}; only a queued job can run")
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


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
