"""Training of the SSD detector: one Keras ``fit`` loop on TensorFlow (CPU) and JAX (accelerators).

``train_detector(config, datasets, progress_callback=..., should_stop=...)`` trains on one or
several ``Dataset`` objects combined (e.g. real shelf photos whose products a teacher labelled,
and gap photos whose gaps people labelled; an image that lists only some classes in
``annotated_classes`` has the loss of the others masked), writes a complete model folder at every
evaluation that improves the validation loss (so a run cut short still leaves a usable model)
and returns the folder.

The network (``detector.network.build_raw_model``), its targets (``network.encode_targets``) and
its loss (``network.detection_loss``) are written in ``keras.ops``, and the batches
(``datasets.batches``) are numpy, so the same code trains on whichever Keras backend is loaded:
TensorFlow here, ``KERAS_BACKEND=jax`` on a lent GPU machine (``scripts/train_on_accelerator.py``).
Checkpoints (Keras ``BackupAndRestore``) let ``resume`` continue a run cut short.

Progress events are dicts, one per ``log_every`` steps and one per evaluation::

    {"event": "step" | "eval" | "done" | "stopped", "step": 120, "total_steps": 4000,
     "epoch": 1.9, "loss": 1.23, "class_loss": 0.8, "box_loss": 0.43, "val_loss": 1.4 | None,
     "images_per_s": 10.8, "eta_s": 360.0, "elapsed_s": 90.0, "model_dir": "models/x"}

``loss``, ``class_loss`` and ``box_loss`` are means over the steps since the last evaluation.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from skuaudit.datasets.base import Dataset
from skuaudit.datasets.examples import TileSpec
from skuaudit.datasets.splits import split_datasets
from skuaudit.detections import CLASS_NAMES

log = logging.getLogger(__name__)

ProgressCallback = Callable[[dict], None]
STATE_FILE = "train_state.json"  # best validation loss and seconds trained, beside the backup


@dataclass
class TrainConfig:
    """Settings of one training run.

    Attributes:
        out_dir: model folder to write.
        steps: optimiser steps (batches).
        batch_size: images per step.
        image_size: square model input side (multiple of 32).
        alpha: MobileNetV2 width multiplier.
        learning_rate: peak Adam learning rate (linear warm-up, cosine decay to 0).
        val_fraction: share of each dataset's images held out, split by image deterministically.
        seed: seed of the split, the shuffling and the initial weights.
        tile: random crops of large photos (``datasets.examples.TileSpec`` defaults), so products keep
            the size they have in the tiles of ``Detector.detect``; ``False`` uses whole images.
        augment: random flips / colour / crops from ``make_tf_dataset``.
        eval_every: steps between validation, checkpoint and model-folder writes.
        patience: evaluations without a better validation loss before stopping early.
        val_batches: most validation batches per evaluation.
        checkpoint_dir: where resumable checkpoints go (default ``out_dir/checkpoints``).
        resume: continue from the latest checkpoint in ``checkpoint_dir``.
        max_boxes: boxes kept per training image.
        eval_max_images: most validation images used for the final AP figures.
        log_every: steps between ``"step"`` progress events.
        export_tflite: also write ``model.tflite`` at each save (a few seconds each).
        data_description: one line per data source, for the model card.
        init_model_dir: start from the weights of this model folder (same ``image_size``,
            ``alpha`` at most this run's: a wider backbone starts from the narrower one's
            outputs) instead of random ones, e.g. to fine-tune on pseudo-labels; a checkpoint
            found with ``resume`` takes precedence.
        dataset_repeats: times each dataset's training images appear per epoch, in the order of
            the datasets (missing entries: 1), so a small set is not drowned by a large one; the
            validation split is made before repeating.
        loss_normalisation: ``"image"`` (each image's loss over its own positive anchors, so a
            sparse real gap photo weighs as much as a dense synthetic shelf), ``"class"`` (each
            class's classification loss over its own positive anchors in the image: six gaps
            among 150 products weigh as much as the products) or ``"batch"`` (RetinaNet: over
            the batch's positives); see ``detector.network.detection_loss``.
        anchor_aspect_ratios: anchor ``width / height`` ratios (``None``: the ``DetectorConfig``
            default); saved in the model's ``config.json``.
        anchor_size_factor: anchor side at scale 1 in strides (``None``: the ``DetectorConfig``
            default); smaller anchors give small boxes (a shelf gap of 15 px) a matching anchor.
            Changing it keeps the head's shape, so a model can be fine-tuned to new anchor sizes.
        head_depth: separable convolutions of the shared box/class head
            (``DetectorConfig.head_depth``). Fine-tuning from a model with a shallower head copies
            its weights and starts the new convolutions as the identity, so the run starts from
            the same detections.
        separate_towers: one tower of ``head_depth`` convolutions for the boxes and one for
            the classes (``DetectorConfig.separate_towers``). Fine-tuning from a model whose
            tower is shared starts both towers as copies of it (same detections).
        small_photo_crop: with ``tile``, zoom-in crops of photos too small to tile, as a
            fraction of their sides (``TileSpec.small_photo_fraction``; ``(1.0, 1.0)``: whole).
        mosaic: with ``tile``, the probability that a training photo too small to tile becomes
            a 2x2 mosaic of it and three other such photos (``TileSpec.mosaic``).
        crop_aspect: with ``tile``, the ``width / height`` range of the crops of large photos
            (``TileSpec.aspect``), stretched to the square input as a video frame is.
        image_cache_mb: decoded training photos kept in memory (``examples.ImageCache``).
        time_budget_s: stop after this many seconds of training (across resumed runs); the
            model folder then holds the best weights seen. ``None``: no limit.
        workers: threads loading the training examples.
    """

    out_dir: Path
    steps: int = 3000
    batch_size: int = 8
    image_size: int = 320
    alpha: float = 0.35
    learning_rate: float = 2e-3
    val_fraction: float = 0.2
    seed: int = 0
    tile: bool = True
    augment: bool = True
    eval_every: int = 250
    patience: int = 4
    val_batches: int = 10
    checkpoint_dir: Path | None = None
    resume: bool = False
    max_boxes: int = 400
    eval_max_images: int = 100
    log_every: int = 10
    export_tflite: bool = True
    data_description: list[str] = field(default_factory=list)
    init_model_dir: Path | None = None
    dataset_repeats: list[int] = field(default_factory=list)
    loss_normalisation: str = "image"
    anchor_aspect_ratios: tuple[float, ...] | None = None
    anchor_size_factor: float | None = None
    small_photo_crop: tuple[float, float] = (1.0, 1.0)
    mosaic: float = 0.0
    head_depth: int = 2
    separate_towers: bool = False
    crop_aspect: tuple[float, float] = (1.0, 1.0)
    image_cache_mb: int = 0
    time_budget_s: float | None = None
    workers: int = 2

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.init_model_dir = Path(self.init_model_dir) if self.init_model_dir else None
        self.checkpoint_dir = (
            Path(self.checkpoint_dir) if self.checkpoint_dir else self.out_dir / "checkpoints"
        )
        if self.steps < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError("steps, batch_size and eval_every must be positive")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        self._crops()  # checks the crop settings
        if self.mosaic and not self.tile:
            raise ValueError("mosaic needs tile: mosaics are built from the training crops")
        if any(r < 1 for r in self.dataset_repeats):
            raise ValueError(f"dataset_repeats must be >= 1, got {self.dataset_repeats}")
        from skuaudit.detector.config import LOSS_NORMALISATIONS

        if self.loss_normalisation not in LOSS_NORMALISATIONS:
            raise ValueError(
                f"loss_normalisation must be one of {LOSS_NORMALISATIONS}, "
                f"got {self.loss_normalisation!r}"
            )

    def _crops(self) -> TileSpec:
        return TileSpec(
            small_photo_fraction=tuple(self.small_photo_crop),
            mosaic=self.mosaic,
            aspect=tuple(self.crop_aspect),
        )

    def tile_spec(self) -> TileSpec | None:
        """The training crops of this run (``None`` without ``tile``)."""
        return self._crops() if self.tile else None


def detector_config_for(config: TrainConfig, alpha: float | None = None):
    """The ``DetectorConfig`` a run of ``config`` trains (``alpha`` overrides ``config.alpha``)."""
    from skuaudit.detector.config import DetectorConfig

    anchors = {}
    if config.anchor_aspect_ratios:
        anchors["anchor_aspect_ratios"] = tuple(config.anchor_aspect_ratios)
    if config.anchor_size_factor:
        anchors["anchor_size_factor"] = float(config.anchor_size_factor)
    return DetectorConfig(
        image_size=config.image_size,
        alpha=config.alpha if alpha is None else alpha,
        head_depth=config.head_depth,
        separate_towers=config.separate_towers,
        class_names=list(CLASS_NAMES),
        **anchors,
    )


def _trainer_class():
    """The Keras model ``fit`` trains: the raw detector, its targets built from the padded boxes
    inside the compiled step, the focal + Huber loss, class and box losses as metrics."""
    import keras

    from skuaudit.detector.network import detection_loss, encode_targets

    class DetectorTrainer(keras.Model):
        def __init__(self, detector, anchors_yxyx_norm, box_variance, normalisation):
            super().__init__()
            self.detector = detector
            self.anchors_yxyx_norm = np.asarray(anchors_yxyx_norm, np.float32)
            self.box_variance = tuple(box_variance)
            self.normalisation = normalisation
            self.num_classes = detector.output_shape[-1] - 4
            self.class_loss_tracker = keras.metrics.Mean(name="class_loss")
            self.box_loss_tracker = keras.metrics.Mean(name="box_loss")

        def call(self, images, training=False):
            return self.detector(images, training=training)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            targets = encode_targets(
                y["boxes_yxyx_norm"],
                y["class_ids"],
                self.anchors_yxyx_norm,
                self.num_classes,
                self.box_variance,
            )
            class_loss, box_loss = detection_loss(
                targets,
                y_pred,
                y["class_mask"],
                self.num_classes,
                normalisation=self.normalisation,
            )
            self.class_loss_tracker.update_state(class_loss)
            self.box_loss_tracker.update_state(box_loss)
            return class_loss + box_loss

    return DetectorTrainer


def train_detector(
    config: TrainConfig,
    datasets: Sequence[Dataset],
    *,
    progress_callback: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Path:
    """Train (or resume) an SSD detector and write its model folder.

    Args:
        config: run settings.
        datasets: one or more datasets; each is split by image into train and validation.
        progress_callback: receives progress event dicts (see the module docstring).
        should_stop: polled every step; returning True ends the run after writing the model folder.

    Returns:
        The model folder (``config.out_dir``).

    Raises:
        DatasetError: no training images, or classes that are not detector classes.
        ValueError: an ``init_model_dir`` whose architecture the run cannot grow from.
    """
    import keras

    from skuaudit.datasets.batches import TrainingBatches, ValidationBatches
    from skuaudit.detector import make_anchors
    from skuaudit.detector.network import build_raw_model
    from skuaudit.training.warm_start import load_initial_weights

    train_images, val_images, val_sets = split_datasets(
        datasets, config.val_fraction, config.seed, config.dataset_repeats
    )
    classes = list(CLASS_NAMES)
    det_config = detector_config_for(config)
    keras.utils.set_random_seed(config.seed)
    detector = build_raw_model(det_config)
    if config.init_model_dir is not None:
        load_initial_weights(detector, det_config, config.init_model_dir)
    trainer = _trainer_class()(
        detector,
        make_anchors(det_config.anchor_spec),
        det_config.box_variance,
        config.loss_normalisation,
    )
    warmup = max(1, min(200, config.steps // 10))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        max(1, config.steps - warmup),
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
    )
    tensorflow = keras.backend.backend() == "tensorflow"
    trainer.compile(
        optimizer=keras.optimizers.Adam(schedule, global_clipnorm=10.0),
        # TensorFlow runs plain graphs (its XLA steps were slower on CPU); JAX always compiles.
        jit_compile=not tensorflow,
    )
    trainer.build((None, config.image_size, config.image_size, 3))

    shared = {
        "image_size": config.image_size,
        "batch_size": config.batch_size,
        "max_boxes": config.max_boxes,
        "tile": config.tile_spec(),
        "seed": config.seed,
        "workers": config.workers,
    }
    batches = TrainingBatches(
        train_images, classes, augment=config.augment, cache_mb=config.image_cache_mb, **shared
    )
    val_batches = (
        ValidationBatches(val_images, classes, max_batches=config.val_batches, **shared)
        if val_images
        else None
    )
    if not config.resume and config.checkpoint_dir.exists():
        shutil.rmtree(config.checkpoint_dir)
    config.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(config, detector, det_config, len(train_images), len(val_images), progress_callback)
    run.should_stop = should_stop
    eval_every = min(config.eval_every, config.steps)
    if run.step < config.steps:
        trainer.fit(
            batches,
            # an epoch is the steps between evaluations; a resumed run starts at the epoch after
            # its last backup (a run stopped mid-epoch saved that epoch as done)
            epochs=run.epochs_done + math.ceil((config.steps - run.step) / eval_every),
            steps_per_epoch=eval_every,
            validation_data=val_batches,
            shuffle=False,  # TrainingBatches shuffles itself
            callbacks=[
                keras.callbacks.BackupAndRestore(
                    str(config.checkpoint_dir / "backup"), delete_checkpoint=False
                ),
                run.callback(),
            ],
            verbose=0,
        )
    if run.stopped or not (config.out_dir / "model.keras").is_file():
        run.write_folder()
    info = run.info
    info["stopped_early"] = run.step < config.steps
    if tensorflow and val_sets:
        from skuaudit.training.evaluate import validation_metrics

        info["metrics"] = validation_metrics(config.out_dir, val_sets, config.eval_max_images)
    from skuaudit.detector.detector import CONFIG_FILE
    from skuaudit.training.model_card import update_card

    update_card(config.out_dir / CONFIG_FILE, info)
    run.emit("stopped" if run.stopped else "done", val_loss=info.get("val_loss"))
    return config.out_dir


class _Run:
    """The bookkeeping of one training run around ``fit``: progress events, evaluations, model
    folder writes, early stopping, the time budget, and the state a resumed run continues."""

    def __init__(self, config, detector, det_config, n_train, n_val, progress_callback):
        import keras

        self.config = config
        self.detector = detector
        self.det_config = det_config
        self.progress_callback = progress_callback
        self.should_stop: Callable[[], bool] | None = None
        self.n_train = n_train
        self.state_path = config.checkpoint_dir / STATE_FILE
        state = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        self.best_val_loss = state.get("best_val_loss", math.inf)
        self.seconds_before = state.get("train_seconds", 0.0)
        self.stale_evals = state.get("stale_evals", 0)
        self.step = state.get("step", 0)
        self.epochs_done = state.get("epochs_done", 0)
        self.stopped = False
        self.started = time.monotonic()
        self.rate_origin: tuple[int, float] | None = None
        self.info = {
            "train_images": n_train,
            "val_images": n_val,
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
            "hardware": f"{platform.machine()} {platform.processor() or ''} CPU x{_cpu_count()}".strip(),
            "framework": f"Keras {keras.__version__} on {keras.backend.backend()}",
        }
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            self.info["tensorflow"] = tf.__version__

    def seconds(self) -> float:
        return self.seconds_before + time.monotonic() - self.started

    def emit(self, event: str, **values) -> None:
        if self.progress_callback is None:
            return
        now = time.monotonic()
        rate = 0.0
        if self.rate_origin and self.step > self.rate_origin[0] and now > self.rate_origin[1]:
            rate = (self.step - self.rate_origin[0]) * self.config.batch_size
            rate /= now - self.rate_origin[1]
        self.progress_callback(
            {
                "event": event,
                "step": self.step,
                "total_steps": self.config.steps,
                "epoch": self.step * self.config.batch_size / self.n_train,
                "images_per_s": rate,
                "eta_s": (self.config.steps - self.step) * self.config.batch_size / rate
                if rate
                else None,
                "elapsed_s": now - self.started,
                "model_dir": str(self.config.out_dir),
                **values,
            }
        )

    def write_folder(self, val_loss: float | None = None) -> None:
        import keras

        from skuaudit.detector import save_model_folder
        from skuaudit.training.model_card import model_card

        self.info.update(
            steps_done=self.step, val_loss=val_loss, train_seconds=round(self.seconds(), 1)
        )
        save_model_folder(
            self.detector,
            self.det_config,
            self.config.out_dir,
            training_info=self.info,
            model_card=model_card(self.info),
            with_tflite=self.config.export_tflite and keras.backend.backend() == "tensorflow",
        )

    def save_state(self) -> None:
        state = {
            "best_val_loss": self.best_val_loss,
            "train_seconds": self.seconds(),
            "stale_evals": self.stale_evals,
            "step": self.step,
            "epochs_done": self.epochs_done,
        }
        tmp = self.state_path.with_name(f".{STATE_FILE}.tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_path)

    def callback(self):
        import keras

        run = self
        config = self.config

        class RunCallback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                run.step += 1
                if run.rate_origin is None:  # the first step traces the graph: rate from its end
                    run.rate_origin = (run.step, time.monotonic())
                logs = logs or {}
                if run.step % config.log_every == 0 or run.step == config.steps:
                    run.emit(
                        "step",
                        loss=_float(logs.get("loss")),
                        class_loss=_float(logs.get("class_loss")),
                        box_loss=_float(logs.get("box_loss")),
                        val_loss=None,
                    )
                out_of_time = (
                    config.time_budget_s is not None and run.seconds() >= config.time_budget_s
                )
                if run.should_stop is not None and run.should_stop():
                    run.stopped = True
                if run.stopped or out_of_time or run.step >= config.steps:
                    self.model.stop_training = True

            def on_epoch_end(self, epoch, logs=None):
                run.epochs_done = epoch + 1
                val_loss = _float((logs or {}).get("val_loss"))
                improved = val_loss is None or val_loss < run.best_val_loss
                if improved:
                    run.best_val_loss = math.inf if val_loss is None else val_loss
                    run.stale_evals = 0
                    run.write_folder(val_loss)
                else:
                    run.stale_evals += 1
                run.save_state()
                run.emit("eval", val_loss=val_loss, improved=improved)
                if run.stale_evals >= config.patience:
                    log.info(
                        "early stop at step %d: no better validation loss in %d evaluations",
                        run.step,
                        run.stale_evals,
                    )
                    self.model.stop_training = True

        return RunCallback()


def _float(value) -> float | None:
    return None if value is None else float(value)


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
