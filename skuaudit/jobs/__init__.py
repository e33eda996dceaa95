"""Background training jobs whose state lives in the database, uploaded data sets, evaluation.

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

The package, one module per part (every name is importable from ``skuaudit.jobs`` as before):

- ``queue``: ``TrainParams`` (a job's settings and their limits), ``JobView`` (a snapshot of a
  job's row), creating, starting, cancelling, reaping and listing jobs, the models a job can
  fine-tune.
- ``datasets``: uploaded data sets: extracted safely, checked, read back with the format and class
  map they were added with.
- ``evaluation``: a model folder scored on generated shelves or on an uploaded data set's
  validation photos.
- ``worker``: the worker process (``run_job``, its heartbeat thread, ``main``).

Example:
    >>> job_id = submit_job(TrainParams(steps=200), created_by="ana")  # doctest: +SKIP
    >>> get_job(job_id).status  # doctest: +SKIP
    'running'
"""

from skuaudit.jobs.datasets import (
    DATASET_INFO_SUFFIX,
    add_dataset_archive,
    as_uploaded,
    datasets_dir,
    list_datasets,
    read_uploaded_dataset,
)
from skuaudit.jobs.evaluation import EVAL_VAL_FRACTION, evaluate_model, evaluate_model_on_dataset
from skuaudit.jobs.queue import (
    BATCH_RANGE,
    FINAL_STATUSES,
    STALE_AFTER_S,
    START_GRACE_S,
    STATUSES,
    STEPS_RANGE,
    SYNTHETIC,
    SYNTHETIC_IMAGES_RANGE,
    WORKER_LOG,
    JobView,
    TrainParams,
    create_job,
    fine_tune_sources,
    get_job,
    list_jobs,
    reap_dead_jobs,
    request_cancel,
    start_worker,
    submit_job,
    unlisted_versions,
)
from skuaudit.jobs.worker import HEARTBEAT_S, main, run_job
from skuaudit.training.rates import FINE_TUNE_LEARNING_RATE, SCRATCH_LEARNING_RATE

__all__ = [
    "BATCH_RANGE",
    "DATASET_INFO_SUFFIX",
    "EVAL_VAL_FRACTION",
    "FINAL_STATUSES",
    "FINE_TUNE_LEARNING_RATE",
    "HEARTBEAT_S",
    "SCRATCH_LEARNING_RATE",
    "STALE_AFTER_S",
    "START_GRACE_S",
    "STATUSES",
    "STEPS_RANGE",
    "SYNTHETIC",
    "SYNTHETIC_IMAGES_RANGE",
    "WORKER_LOG",
    "JobView",
    "TrainParams",
    "add_dataset_archive",
    "as_uploaded",
    "create_job",
    "datasets_dir",
    "evaluate_model",
    "evaluate_model_on_dataset",
    "fine_tune_sources",
    "get_job",
    "list_datasets",
    "list_jobs",
    "main",
    "read_uploaded_dataset",
    "reap_dead_jobs",
    "request_cancel",
    "run_job",
    "start_worker",
    "submit_job",
    "unlisted_versions",
]
