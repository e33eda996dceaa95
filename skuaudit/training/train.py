"""Training loop of the SSD detector: splits, checkpoints, early stopping, progress events.

``train_detector(config, datasets, progress_callback=..., should_stop=...)`` trains on one or
several ``Dataset`` objects combined (e.g. synthetic shelves + real gap photos whose products are
unlabelled: such images list only ``gap`` in ``annotated_classes`` and the product-class loss is
masked there), writes a complete model folder at every evaluation (so a run cut short still leaves a
usable model) and returns the folder.

Progress events are dicts, one per ``log_every`` steps and one per evaluation::

    {"event": "step" | "eval" | "done" | "stopped", "step": 120, "total_steps": 4000,
     "epoch": 1.9, "loss": 1.23, "class_loss": 0.8, "box_loss": 0.43, "val_loss": 1.4 | None,
     "images_per_s": 10.8, "eta_s": 360.0, "elapsed_s": 90.0, "model_dir": "models/x"}
"""

from __future__ import annotations

import logging
import platform
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from skuaudit.datasets.base import Dataset, DatasetError, LabeledImage
from skuaudit.datasets.tfdata import TileSpec
from skuaudit.detections import CLASS_NAMES, IGNORE_CLASS

log = logging.getLogger(__name__)

ProgressCallback = Callable[[dict], None]


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
        tile: random crops of large photos (``datasets.tfdata.TileSpec`` defaults), so products keep
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
            sparse real gap photo weighs as much as a dense synthetic shelf) or ``"batch"``
            (RetinaNet: over the batch's positives); see ``detector.model.detection_loss``.
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
        TileSpec(small_photo_fraction=tuple(self.small_photo_crop), mosaic=self.mosaic)  # checks
        if self.mosaic and not self.tile:
            raise ValueError("mosaic needs tile: mosaics are built from the training crops")
        if any(r < 1 for r in self.dataset_repeats):
            raise ValueError(f"dataset_repeats must be >= 1, got {self.dataset_repeats}")
        if self.loss_normalisation not in ("image", "batch"):
            raise ValueError(
                f"loss_normalisation must be 'image' or 'batch', got {self.loss_normalisation!r}"
            )

    def tile_spec(self) -> TileSpec | None:
        """The training crops of this run (``None`` without ``tile``)."""
        if not self.tile:
            return None
        return TileSpec(small_photo_fraction=tuple(self.small_photo_crop), mosaic=self.mosaic)


def split_by_image(
    dataset: Dataset, val_fraction: float, seed: int
) -> tuple[list[LabeledImage], list[LabeledImage]]:
    """Deterministic train/validation split: sort by file name, shuffle with ``seed``, cut.

    Returns:
        ``(train_images, val_images)``; validation gets ``round(n * val_fraction)`` images.
    """
    images = sorted(dataset.images, key=lambda im: str(im.path))
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = int(round(len(images) * val_fraction))
    val = [images[i] for i in sorted(order[:n_val])]
    train = [images[i] for i in sorted(order[n_val:])]
    return train, val


def to_detector_classes(dataset: Dataset) -> list[LabeledImage]:
    """Images whose class names are detector classes, with ``annotated_classes`` filled in.

    A dataset that declares only some detector classes labels only those: its images get
    ``annotated_classes`` = those classes unless a reader already set it. Boxes named
    ``IGNORE_CLASS`` are kept: trainers leave the anchors they would make positive out of the loss.
    """
    unknown = sorted(set(dataset.classes) - {*CLASS_NAMES, IGNORE_CLASS})
    if unknown:
        raise DatasetError(
            f"dataset classes {unknown} are not detector classes {list(CLASS_NAMES)}; "
            f"map them with a class map (e.g. 0=gap, or 2={IGNORE_CLASS} for regions to learn "
            "neither as objects nor as background): --class-map on the command line, "
            "Class map when adding a data set in the Model lab"
        )
    declared = tuple(c for c in CLASS_NAMES if c in dataset.classes)
    out = []
    for im in dataset.images:
        if im.annotated_classes is None:
            im = LabeledImage(
                im.path, im.width, im.height, im.boxes_xyxy, im.class_names, declared, im.extras
            )
        out.append(im)
    return out


def split_datasets(
    config: TrainConfig, datasets: Sequence[Dataset]
) -> tuple[list[LabeledImage], list[LabeledImage], list[list[LabeledImage]]]:
    """Each dataset split by image (``split_by_image``), training images repeated per
    ``config.dataset_repeats``.

    Returns:
        ``(train_images, val_images, val_sets)``: all training images, all validation images, and
        the validation images of each dataset in order.

    Raises:
        DatasetError: no training images, or classes that are not detector classes.
    """
    train_images, val_images, val_sets = [], [], []
    for i, ds in enumerate(datasets):
        tr, va = split_by_image(
            Dataset(ds.classes, to_detector_classes(ds)), config.val_fraction, config.seed
        )
        repeats = config.dataset_repeats[i] if i < len(config.dataset_repeats) else 1
        train_images += tr * repeats
        val_images += va
        val_sets.append(va)
    if not train_images:
        raise DatasetError("no training images: the datasets are empty")
    return train_images, val_images, val_sets


def architecture_of(model_dir: str | Path) -> dict:
    """The ``TrainConfig`` architecture fields of a model folder, to fine-tune it as it is:
    ``image_size``, ``alpha``, ``head_depth``, ``separate_towers`` and its anchors.

    Raises:
        ModelLoadError: not a model folder with a readable ``config.json``.
    """
    from skuaudit.detector.detector import read_model_config

    source = read_model_config(model_dir)
    return {
        "image_size": source.image_size,
        "alpha": source.alpha,
        "head_depth": source.head_depth,
        "separate_towers": source.separate_towers,
        "anchor_aspect_ratios": tuple(source.anchor_aspect_ratios),
        "anchor_size_factor": source.anchor_size_factor,
    }


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
    """
    import tensorflow as tf

    from skuaudit.datasets.tfdata import make_tf_dataset
    from skuaudit.detector import (
        LabelEncoder,
        build_raw_model,
        detection_loss,
        make_anchors,
        save_model_folder,
    )
    from skuaudit.detector.detector import CONFIG_FILE

    train_images, val_images, val_sets = split_datasets(config, datasets)
    classes = list(CLASS_NAMES)
    det_config = detector_config_for(config)
    encoder = LabelEncoder(
        make_anchors(det_config.anchor_spec), len(classes), det_config.box_variance
    )

    def pipeline(images: list[LabeledImage], training: bool) -> tf.data.Dataset:
        ds = make_tf_dataset(
            Dataset(classes, images),
            classes,
            image_size=(config.image_size, config.image_size),
            batch_size=config.batch_size,
            augment=training and config.augment,
            shuffle=training,
            seed=config.seed,
            tile=config.tile_spec(),
            max_boxes=config.max_boxes,
            repeat=training,
        )
        return ds.map(
            lambda x, y: (
                x,
                encoder.encode_batch(y["boxes_yxyx_norm"], y["class_ids"]),
                y["class_mask"],
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        ).prefetch(2)

    tf.keras.utils.set_random_seed(config.seed)
    model = build_raw_model(det_config)
    if config.init_model_dir is not None:
        _load_initial_weights(model, det_config, config.init_model_dir)
    warmup = max(1, min(200, config.steps // 10))
    decay = max(1, config.steps - warmup)  # a 1-step run is all warm-up; CosineDecay needs >= 1
    schedule = tf.keras.optimizers.schedules.CosineDecay(
        0.0, decay, warmup_target=config.learning_rate, warmup_steps=warmup
    )
    optimizer = tf.keras.optimizers.Adam(schedule, global_clipnorm=10.0)
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    best_var = tf.Variable(np.inf, dtype=tf.float64, trainable=False)
    seconds_var = tf.Variable(0.0, dtype=tf.float64, trainable=False)  # across resumed runs
    checkpoint = tf.train.Checkpoint(
        model=model,
        optimizer=optimizer,
        step=step_var,
        best_val_loss=best_var,
        train_seconds=seconds_var,
    )
    manager = tf.train.CheckpointManager(checkpoint, str(config.checkpoint_dir), max_to_keep=2)
    if config.resume and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).expect_partial()
        log.info("resumed from %s at step %d", manager.latest_checkpoint, int(step_var.numpy()))
    num_classes = len(classes)
    norm = config.loss_normalisation

    @tf.function(reduce_retracing=True)
    def train_step(images, targets, class_mask):
        with tf.GradientTape() as tape:
            predictions = model(images, training=True)
            class_loss, box_loss = detection_loss(
                targets, predictions, class_mask, num_classes, normalisation=norm
            )
            loss = class_loss + box_loss
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, class_loss, box_loss

    @tf.function(reduce_retracing=True)
    def val_step(images, targets, class_mask):
        class_loss, box_loss = detection_loss(
            targets, model(images, training=False), class_mask, num_classes, normalisation=norm
        )
        return class_loss + box_loss

    val_ds = pipeline(val_images, training=False) if val_images else None

    def validation_loss() -> float | None:
        if val_ds is None:
            return None
        losses = [float(val_step(*batch)) for batch in val_ds.take(config.val_batches)]
        return float(np.mean(losses)) if losses else None

    train_iter = iter(pipeline(train_images, training=True))
    start_step = int(step_var.numpy())
    started = time.monotonic()
    seconds_before = float(seconds_var.numpy())
    info = {
        "train_images": len(train_images),
        "val_images": len(val_images),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "hardware": f"{platform.machine()} {platform.processor() or ''} CPU x{_cpu_count()}".strip(),
        "tensorflow": tf.__version__,
    }

    # The first step traces the graph (tens of seconds): speed is measured from its end.
    rate_origin: list[tuple[int, float]] = []

    def emit(event: str, step: int, **values) -> None:
        now = time.monotonic()
        elapsed = now - started
        rate = 0.0
        if rate_origin and step > rate_origin[0][0] and now > rate_origin[0][1]:
            rate = (step - rate_origin[0][0]) * config.batch_size / (now - rate_origin[0][1])
        payload = {
            "event": event,
            "step": step,
            "total_steps": config.steps,
            "epoch": step * config.batch_size / len(train_images),
            "images_per_s": rate,
            "eta_s": (config.steps - step) * config.batch_size / rate if rate else None,
            "elapsed_s": elapsed,
            "model_dir": str(config.out_dir),
            **values,
        }
        if progress_callback is not None:
            progress_callback(payload)

    def total_seconds() -> float:
        return seconds_before + time.monotonic() - started

    def save_checkpoint(step: int) -> None:
        seconds_var.assign(total_seconds())
        manager.save(checkpoint_number=step)

    def write_folder(step: int, val_loss: float | None) -> None:
        info.update(steps_done=step, val_loss=val_loss, train_seconds=round(total_seconds(), 1))
        save_model_folder(
            model,
            det_config,
            config.out_dir,
            training_info=info,
            model_card=_model_card(info),
            with_tflite=config.export_tflite,
        )

    step = start_step
    stale_evals = 0
    stopped = False
    recent: list[tuple[float, float, float]] = []
    while step < config.steps:
        if should_stop is not None and should_stop():
            stopped = True
            break
        images, targets, class_mask = next(train_iter)
        recent.append(tuple(float(v) for v in train_step(images, targets, class_mask)))
        step += 1
        step_var.assign(step)
        if not rate_origin:
            rate_origin.append((step, time.monotonic()))
        if step % config.log_every == 0 or step == config.steps:
            loss, class_loss, box_loss = np.mean(recent, axis=0)
            recent.clear()
            emit(
                "step",
                step,
                loss=float(loss),
                class_loss=float(class_loss),
                box_loss=float(box_loss),
                val_loss=None,
            )
        if step % config.eval_every == 0 or step == config.steps:
            val_loss = validation_loss()
            improved = val_loss is None or val_loss < float(best_var.numpy())
            if improved:
                best_var.assign(np.inf if val_loss is None else val_loss)
                write_folder(step, val_loss)
                stale_evals = 0
            else:
                stale_evals += 1
            save_checkpoint(step)
            emit("eval", step, val_loss=val_loss, improved=improved)
            if stale_evals >= config.patience:
                log.info(
                    "early stop at step %d: no better validation loss in %d evaluations",
                    step,
                    stale_evals,
                )
                break
    if stopped or not (config.out_dir / "model.keras").is_file():
        save_checkpoint(step)
        write_folder(step, validation_loss())
    info["stopped_early"] = step < config.steps
    info["metrics"] = _final_metrics(config, val_sets)
    _update_card(config.out_dir / CONFIG_FILE, info)
    emit("stopped" if stopped else "done", step, val_loss=info.get("val_loss"))
    return config.out_dir


def _load_initial_weights(model, det_config, model_dir: Path) -> None:
    """Copy the weights of the model folder ``model_dir`` into ``model``.

    The architectures must match, except that ``model`` may have a wider backbone (a larger
    ``alpha``, see :func:`_widen_weights`), a deeper head, separate box and class towers where
    the source shares one, or more anchor aspect ratios (the source's, then new ones). A shared
    tower's convolutions are copied into both towers. Extra
    convolutions start as the identity (a depthwise kernel with a single 1 at its centre, an
    identity pointwise kernel, no bias): their inputs come out of ReLU6 and lie in ``[0, 6]``,
    where ReLU6 of the identity is the identity. A new anchor shape starts as a copy of the
    source's anchor of the same scale and the nearest ratio, with its box outputs rescaled to
    its own shape (:func:`_grow_anchor_outputs`), so it predicts the same boxes and scores as
    that anchor. Either way the new model's detections (after NMS) are the source's. (The same
    number of anchor shapes with other ratios or sizes is copied as is, and the head learns the
    new shapes: stages B and C of the default model changed theirs that way.)

    Raises:
        ValueError: the folder's input size or head layout differs from ``det_config``, its
            backbone is wider, its head is deeper, or it has separate towers and the run shares
            one.
    """
    from skuaudit.detector import DetectorConfig, load_raw_model
    from skuaudit.detector.detector import CONFIG_FILE

    source = DetectorConfig.from_json(model_dir / CONFIG_FILE)
    if source.image_size != det_config.image_size or source.alpha > det_config.alpha:
        raise ValueError(
            f"{model_dir}: image_size {source.image_size} / alpha {source.alpha} do not fit the "
            f"run's {det_config.image_size} / {det_config.alpha} (same size, alpha at most the run's)"
        )
    old_ratios = tuple(source.anchor_aspect_ratios)
    new_ratios = tuple(det_config.anchor_aspect_ratios)
    grows_anchors = (
        new_ratios[: len(old_ratios)] == old_ratios
        and len(new_ratios) > len(old_ratios)
        and (source.anchor_scales, source.anchor_size_factor, source.strides)
        == (det_config.anchor_scales, det_config.anchor_size_factor, det_config.strides)
    )
    layout = (source.anchor_spec.anchors_per_location, source.num_classes, source.fpn_channels)
    wanted = (
        det_config.anchor_spec.anchors_per_location,
        det_config.num_classes,
        det_config.fpn_channels,
    )
    if grows_anchors:
        layout = wanted[:1] + layout[1:]
    if layout != wanted:
        raise ValueError(
            f"{model_dir}: its heads (anchors per location, classes, FPN channels {layout}) differ "
            f"from the run's {wanted}; pass the same anchor_aspect_ratios (new ones may follow them)"
        )
    if source.head_depth > det_config.head_depth:
        raise ValueError(
            f"{model_dir}: its head has {source.head_depth} convolutions, more than the run's "
            f"{det_config.head_depth}"
        )
    if source.separate_towers and not det_config.separate_towers:
        raise ValueError(f"{model_dir}: it has separate box and class towers, the run shares one")
    source_model = load_raw_model(model_dir)

    def is_head(layer) -> bool:  # matched by name; the rest by order (auto-named sub-models)
        return layer.name.startswith("head_")

    targets = [layer for layer in _leaf_layers(model) if layer.weights and not is_head(layer)]
    sources = [
        layer for layer in _leaf_layers(source_model) if layer.weights and not is_head(layer)
    ]
    shapes = [[tuple(w.shape) for w in layer.weights] for layer in targets]
    source_shapes = [[tuple(w.shape) for w in layer.weights] for layer in sources]
    fits = len(shapes) == len(source_shapes) and all(
        len(a) == len(b)
        and all(
            len(x) == len(y) and all(i >= j for i, j in zip(x, y, strict=True))
            for x, y in zip(a, b, strict=True)
        )
        for a, b in zip(shapes, source_shapes, strict=True)
    )
    if not fits or (source.alpha == det_config.alpha and shapes != source_shapes):
        raise ValueError(f"{model_dir}: its layers differ from the run's architecture")
    for target, layer in zip(targets, sources, strict=True):
        target.set_weights(_widen_weights(target, layer.get_weights()))
    source_head = {layer.name: layer for layer in source_model.layers if is_head(layer)}
    for layer in model.layers:
        if not is_head(layer) or not layer.weights:
            continue
        name = layer.name
        if not source.separate_towers:
            name = re.sub(r"^head_(box|class)_conv", "head_conv", name)
        if name in source_head:
            weights = source_head[name].get_weights()
            if grows_anchors and name in ("head_box", "head_class"):
                weights = _grow_anchor_outputs(weights, source, det_config, box=name == "head_box")
            layer.set_weights(weights)
            continue
        depthwise, pointwise, bias = layer.get_weights()  # a convolution the source lacks
        depthwise[:] = 0.0
        depthwise[depthwise.shape[0] // 2, depthwise.shape[1] // 2, :, 0] = 1.0
        pointwise[0, 0] = np.eye(pointwise.shape[2], dtype=pointwise.dtype)
        layer.set_weights([depthwise, pointwise, np.zeros_like(bias)])


def _leaf_layers(model) -> list:
    """The layers of ``model`` in order, nested models (the backbone's taps) opened up."""
    import keras

    leaves = []
    for layer in model.layers:
        leaves.extend(_leaf_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return leaves


def _widen_weights(layer, source_weights: list) -> list:
    """The weights of ``layer`` (already built, freshly initialised) holding ``source_weights``,
    the same layer of a narrower network, so that the wider network computes the same outputs.

    Every channel of the narrower layer keeps its index; the new channels come after. Per
    weight: a depthwise kernel ``(h, w, C, 1)`` and 1-D weights (batch-norm statistics, biases)
    take the source's values in their first channels; a convolution kernel ``(h, w, in, out)``
    takes them in ``[:in, :out]`` and gets **zeros from the new input channels to the old
    output channels**. The new channels keep their random initial values, so they compute
    something, but it does not reach any old channel until training moves those zeros: the
    old channels, the residual sums and the heads (whose inputs do not widen) see exactly what
    the source computed. Training then grows the new weights (the zeros get gradients from the
    start, as the new channels are not zero). With equal shapes this is a plain copy.
    """
    import keras

    weights = [np.array(w) for w in layer.get_weights()]
    for index, (target, source) in enumerate(zip(weights, source_weights, strict=True)):
        if target.shape == source.shape:
            weights[index] = np.array(source, dtype=target.dtype)
            continue
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D) or (
            isinstance(layer, keras.layers.SeparableConv2D) and index == 0
        )
        target[tuple(slice(0, n) for n in source.shape)] = source
        if target.ndim == 4 and not depthwise:
            target[:, :, source.shape[2] :, : source.shape[3]] = 0.0
    return weights


def _grow_anchor_outputs(weights: list, source, target, *, box: bool) -> list:
    """``head_box`` / ``head_class`` weights ``[depthwise, pointwise, bias]`` of ``source``
    grown to the anchors of ``target`` (the source's aspect ratios followed by new ones).

    Output channels are ordered by anchor (``scales x aspect_ratios``), then by box delta
    ``[ty, tx, th, tw]`` or class. A new anchor copies the channels of the source anchor of the
    same scale whose ratio is nearest (in log), rescaled so that it decodes to the same box:
    with ``k = sqrt(new ratio / source ratio)`` the new anchor is ``k`` times wider and ``1/k``
    times as high, so ``ty`` is multiplied by ``k``, ``tx`` by ``1/k``, and ``th`` / ``tw``
    shift by ``+log k`` / ``-log k`` (over ``box_variance``).
    """
    depthwise, pointwise, bias = weights
    width = 4 if box else source.num_classes
    old_ratios, new_ratios = source.anchor_aspect_ratios, target.anchor_aspect_ratios
    variance = np.asarray(target.box_variance, dtype=np.float64)
    out_w, out_b = [], []
    for scale in range(len(target.anchor_scales)):
        for ratio in new_ratios:
            nearest = int(np.argmin([abs(np.log(ratio / r)) for r in old_ratios]))
            start = (scale * len(old_ratios) + nearest) * width
            w = pointwise[..., start : start + width].astype(np.float64)
            b = bias[start : start + width].astype(np.float64)
            if box:
                k = np.sqrt(ratio / old_ratios[nearest])
                factor = np.array([k, 1.0 / k, 1.0, 1.0])
                w, b = (
                    w * factor,
                    b * factor + np.array([0.0, 0.0, np.log(k), -np.log(k)]) / variance,
                )
            out_w.append(w)
            out_b.append(b)
    grown_w = np.concatenate(out_w, axis=-1).astype(pointwise.dtype)
    return [depthwise, grown_w, np.concatenate(out_b).astype(bias.dtype)]


def count_matching_threshold(
    detector, images: list[LabeledImage], class_name: str = "product"
) -> dict[str, float]:
    """The score threshold at which a class's detected count equals its true count.

    Runs ``detector`` (its ``tiled=None`` rule, nested-box rules included) at a low threshold on
    labelled images and returns the score of the ``N``-th best box of ``class_name`` over all
    images, ``N`` the true number of boxes: counting at that score gives the right total. Meant
    for held-out *generated* shelves (exhaustive labels), not for a yardstick of real photos.

    Returns:
        ``{"threshold", "true_count", "precision", "recall"}``; precision and recall at IoU 0.5
        of the boxes at that threshold (greedy matching by score).

    Raises:
        DatasetError: no image labels ``class_name``, or an image cannot be read.
    """
    import cv2

    class_id = list(CLASS_NAMES).index(class_name)
    scored, true_count, matched = [], 0, []
    for im in images:
        image = cv2.imread(str(im.path))
        if image is None:
            raise DatasetError(f"{im.path}: not a readable image")
        det = detector.detect(image, score_threshold=0.05)
        det = det[det.class_id == class_id]
        truth = np.asarray(im.boxes_xyxy, np.float32).reshape(-1, 4)[
            [c == class_name for c in im.class_names]
        ]
        true_count += len(truth)
        hit = _greedy_matches(det.xyxy, det.confidence, truth)
        scored.append(np.asarray(det.confidence, np.float64))
        matched.append(hit)
    if true_count == 0:
        raise DatasetError(f"no image labels {class_name!r}: nothing to calibrate on")
    scores = np.concatenate(scored)
    hits = np.concatenate(matched)
    order = np.argsort(-scores, kind="stable")
    # Fewer boxes than truths: every box counts, at the lowest score looked at.
    threshold = float(scores[order[true_count - 1]]) if len(scores) >= true_count else 0.05
    kept = scores >= threshold
    return {
        "threshold": threshold,
        "true_count": int(true_count),
        "precision": float(hits[kept].mean()) if kept.any() else 0.0,
        "recall": float(hits[kept].sum() / true_count),
    }


def _greedy_matches(boxes: np.ndarray, scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: each detection (best score first) claims an unclaimed truth at IoU >= 0.5."""
    hit = np.zeros(len(boxes), bool)
    if len(boxes) == 0 or len(truth) == 0:
        return hit
    lt = np.maximum(boxes[:, None, :2], truth[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], truth[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda b: np.prod(b[:, 2:] - b[:, :2], axis=-1)  # noqa: E731
    iou = inter / np.maximum(area(boxes)[:, None] + area(truth)[None, :] - inter, 1e-9)
    free = np.ones(len(truth), bool)
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        candidates = np.where(free, iou[i], 0.0)
        j = int(np.argmax(candidates))
        if candidates[j] >= 0.5:
            hit[i], free[j] = True, False
    return hit


def _product_detections(detector, photos: Sequence[Path], score_threshold: float):
    """``(path, image_bgr, product Detections)`` of each photo, best score first.

    Raises:
        DatasetError: a photo that cannot be read.
    """
    import cv2

    from skuaudit.detections import PRODUCT

    for path in photos:
        image = cv2.imread(str(path))
        if image is None:
            raise DatasetError(f"{path}: not a readable image")
        det = detector.detect(image, score_threshold=score_threshold)
        yield path, image, det[det.class_id == PRODUCT]


def pseudo_label_photos(
    detector,
    photos: Sequence[Path],
    *,
    score_threshold: float,
    ignore_threshold: float | None = None,
) -> Dataset:
    """Self-training data: the detector's confident product boxes on unlabelled photos.

    Only ``product`` is declared, so trainers mask the gap loss on these images (the detector's gap
    boxes on real photos are not reliable enough to teach from). With ``ignore_threshold``, the
    product boxes scoring from it up to ``score_threshold`` become ``IGNORE_CLASS`` boxes: the
    products the detector is unsure of are then learned neither as products nor as background.

    Args:
        detector: a ``Detector``; photos are tiled by its ``tiled=None`` rule and boxes pass its
            NMS and nested-box rules.
        photos: image files.
        score_threshold: minimum product score of a pseudo-label (high: a missed product is
            learned as background, a wrong box as a product).
        ignore_threshold: minimum score of an ignore box (below ``score_threshold``); ``None``:
            no ignore boxes.

    Returns:
        Dataset with classes ``["product"]`` (and ``IGNORE_CLASS`` with ``ignore_threshold``), one
        image per readable photo, pixel ``xyxy`` boxes.

    Raises:
        DatasetError: a photo that cannot be read.
        ValueError: ``ignore_threshold`` not below ``score_threshold``.
    """
    if ignore_threshold is not None and not ignore_threshold < score_threshold:
        raise ValueError(
            f"ignore_threshold {ignore_threshold} must be below score_threshold {score_threshold}"
        )
    lowest = score_threshold if ignore_threshold is None else ignore_threshold
    images = []
    for path, image, det in _product_detections(detector, photos, lowest):
        names = np.where(det.confidence >= score_threshold, "product", IGNORE_CLASS).tolist()
        height, width = image.shape[:2]
        images.append(LabeledImage(path, width, height, det.xyxy, names))
    classes = ["product"] if ignore_threshold is None else ["product", IGNORE_CLASS]
    return Dataset(classes, images)


def harvest_product_crops(
    detector,
    photos: Sequence[Path],
    out_dir: Path,
    *,
    score_threshold: float,
    min_side_px: int = 24,
) -> int:
    """Cut the detector's confident product boxes out of real photos, one PNG per product, as
    whole facings for the synthetic shelves (``render_shelf(crop_dir=...)``): the rendered shelves
    then show real products, next to each other and stacked, each with an exact box.

    Args:
        detector: a ``Detector``; photos are tiled by its ``tiled=None`` rule.
        photos: image files.
        out_dir: folder for the crops (created; named ``<photo stem>_<n>.png``).
        score_threshold: minimum product score (high: a box around two products, or half of
            one, becomes a facing).
        min_side_px: smaller boxes are left out.

    Returns:
        The number of crops written.

    Raises:
        DatasetError: a photo that cannot be read.
    """
    import cv2

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for path, image, det in _product_detections(detector, photos, score_threshold):
        for n, (x1, y1, x2, y2) in enumerate(np.round(det.xyxy).astype(int)):
            x1, y1 = max(x1, 0), max(y1, 0)
            if min(x2 - x1, y2 - y1) < min_side_px:
                continue
            cv2.imwrite(str(out_dir / f"{Path(path).stem}_{n}.png"), image[y1:y2, x1:x2])
            written += 1
    return written


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _final_metrics(config: TrainConfig, val_sets: list[list[LabeledImage]]) -> dict:
    """COCO AP of the saved model folder on each dataset's validation images (``eval_max_images`` each).

    Returns:
        ``{"dataset 0": {class: {...}}, ...}`` in the order of the training datasets.
    """
    from skuaudit.detector import Detector

    detector = Detector.load(config.out_dir)
    return {
        f"dataset {i}": evaluate_detector(detector, images[: config.eval_max_images])
        for i, images in enumerate(val_sets)
        if images
    }


def evaluate_detector(
    detector,
    images: list[LabeledImage],
    score_threshold: float = 0.05,
    tiled: bool | None = None,
) -> dict:
    """Per-class COCO AP50, AP50:95 and AR300 of a detector on labelled images.

    ``coco_metrics`` scores each class only on images that label it (``annotated_classes``), so
    unlabelled products in gap photos do not count as false positives.

    Args:
        detector: a ``Detector``.
        images: labelled images (pixel ``xyxy`` boxes).
        score_threshold: low, so the precision/recall curve is complete.
        tiled: ``Detector.detect``'s ``tiled`` (``None``: its rule by image size).

    Returns:
        ``{class_name: {"AP50", "AP", "AR300", "images"}}`` for classes with ground truth.
    """
    import cv2

    from skuaudit.training.evaluate import coco_metrics

    predictions = []
    for im in images:
        image = cv2.imread(str(im.path))
        if image is None:
            raise DatasetError(f"{im.path}: not a readable image")
        predictions.append(detector.detect(image, score_threshold=score_threshold, tiled=tiled))
    result = coco_metrics(
        Dataset(list(CLASS_NAMES), images), predictions, list(CLASS_NAMES), max_dets=300
    )
    return {
        name: {"AP50": m["ap50"], "AP": m["ap"], "AR300": m["ar300"], "images": len(images)}
        for name, m in result["per_class"].items()
        if m["ap50"] is not None
    }


def _update_card(config_path: Path, info: dict) -> None:
    import json

    payload = json.loads(config_path.read_text())
    payload["training"] = info
    config_path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    (config_path.parent / "MODEL_CARD.md").write_text(_model_card(info))


def _model_card(info: dict) -> str:
    from skuaudit.detector.config import DetectorConfig

    cfg = info["config"]
    trainer = f"`{info['trainer']}`" if info.get("trainer") else "`skuaudit train`"
    lines = [
        f"# Model card: {Path(cfg['out_dir']).name}",
        "",
        f"SSD MobileNetV2 (alpha {cfg['alpha']}) with an FPNLite pyramid and a head of "
        f"{cfg.get('head_depth', 2)} separable convolutions"
        f"{' per tower (separate box and class towers)' if cfg.get('separate_towers') else ''}"
        f", input {cfg['image_size']}x"
        f"{cfg['image_size']}, classes `product` and `gap`. "
        + (
            f"Fine-tuned from `{cfg['init_model_dir']}` by {trainer}."
            if cfg.get("init_model_dir")
            else f"Trained from scratch by {trainer}."
        ),
        "",
        "## Data",
        *[
            f"- dataset {i}: {d}"
            for i, d in enumerate(cfg.get("data_description") or ["(not described)"])
        ],
        f"- {info['train_images']} training images, {info['val_images']} validation images "
        f"(split by image, seed {cfg['seed']}, validation fraction {cfg['val_fraction']})",
        "",
        "## Training",
        f"- steps done: {info.get('steps_done')} of {cfg['steps']}, batch {cfg['batch_size']}, "
        f"peak learning rate {cfg['learning_rate']}, crop/tile {cfg['tile']}, zoom-in crops of "
        f"photos too small to tile {list(cfg.get('small_photo_crop') or (1.0, 1.0))}"
        + (f", mosaic of them with probability {cfg['mosaic']}" if cfg.get("mosaic") else ""),
        f"- loss normalised per {cfg.get('loss_normalisation', 'batch')}; anchor width/height "
        f"ratios {list(cfg.get('anchor_aspect_ratios') or DetectorConfig().anchor_aspect_ratios)}, "
        f"side {cfg.get('anchor_size_factor') or DetectorConfig().anchor_size_factor} x stride; "
        f"dataset repeats per epoch {cfg.get('dataset_repeats') or 'all 1'}",
        f"- time: {info.get('train_seconds')} s on {info['hardware']} "
        f"({info.get('framework') or 'TensorFlow ' + str(info.get('tensorflow'))})",
        f"- last saved validation loss: {info.get('val_loss')}",
    ]
    metrics = info.get("metrics")
    if metrics:
        lines += [
            "",
            "## Validation metrics (COCO, maxDets 300; datasets numbered as under Data)",
            "",
            "| dataset | class | AP50 | AP50:95 | AR300 | images |",
            "|---|---|---|---|---|---|",
        ]
        for source, per_class in metrics.items():
            for name, m in per_class.items():
                lines.append(
                    f"| {source} | {name} | {m['AP50']:.3f} | {m['AP']:.3f} | {m['AR300']:.3f} | {m['images']} |"
                )
    lines += [
        "",
        "## Known limits",
        "- Products were learned from synthetic shelves only: real packaging, lighting and perspective",
        "  differ, so product recall on real photos is lower than on the synthetic validation split.",
        "- Gap boxes come from 416x416 squashed photos; gaps on full-resolution tiles look different.",
        "- Boxes of objects larger than the tile overlap may be split in tiled mode.",
        "",
    ]
    return "\n".join(lines)
