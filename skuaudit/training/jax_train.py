"""Detector training on Keras 3's JAX backend, for accelerator machines without TensorFlow.

``skuaudit train`` (``training.train``) trains on TensorFlow, the project's runtime. The GPU
machines sometimes lent to this project carry JAX but no TensorFlow (and TensorFlow's wheel is too
large to bring along), so this module trains the same network (``detector.network.build_raw_model``)
with the same targets and loss (``network.encode_targets`` / ``network.detection_loss``, held equal to
the TensorFlow encoder and loss by the tests) on the same training examples
(``datasets.tfdata.load_training_example``: tiles, zoom-in crops, albumentations), on JAX:

1. ``train_variants(variants, datasets, config, budget_s=..., out_dir=...)`` (``KERAS_BACKEND=jax``):
   one stream of batches, loaded by worker processes, feeds one or more ``Variant`` s (width,
   peak learning rate, starting weights) step by step until a wall-clock budget is spent. The
   learning rate warms up linearly, then follows a cosine over the rest of the budget, so a run
   ends annealed whatever the machine's speed. Each variant's weights are written to
   ``out_dir/NAME.best.npz`` when its validation loss improves and ``out_dir/NAME.last.npz`` at the
   end; ``out_dir/progress.jsonl`` holds the progress events.
2. ``model_folder_from_weights(npz, out_dir)`` (any backend; normally TensorFlow, on the CPU
   machine): rebuilds the network, loads the weights and writes a model folder as
   ``skuaudit train`` does (``model.keras``, ``model.tflite``, ``config.json``, ``MODEL_CARD.md``).

Weights travel as numpy arrays in ``model.weights`` order with their names and shapes
(``save_weights`` / ``load_weights``), so no Keras file written on one backend has to be read on
the other. ``scripts/train_on_accelerator.py`` drives both halves.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import logging
import math
import multiprocessing
import os
import platform
import sys
import time
import types
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from skuaudit.datasets.base import Dataset, DatasetError, LabeledImage
from skuaudit.datasets.tfdata import (
    TileSpec,
    build_augmenter,
    load_training_example,
    mosaic_partners,
)
from skuaudit.detections import CLASS_NAMES
from skuaudit.training.train import TrainConfig, detector_config_for, split_datasets

log = logging.getLogger(__name__)

WEIGHTS_FORMAT = "skuaudit-weights-1"


@dataclass(frozen=True)
class Variant:
    """One network trained on the shared batch stream.

    Attributes:
        name: file-name stem of its weights (letters, digits, ``_``, ``-``).
        alpha: MobileNetV2 width multiplier.
        learning_rate: peak learning rate.
        init_weights: a ``save_weights`` file of the same architecture to start from; ``None``
            starts from random weights.
    """

    name: str
    alpha: float = 0.35
    learning_rate: float = 2e-3
    init_weights: Path | None = None

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise ValueError(f"variant name must be letters, digits, '_' or '-', got {self.name!r}")
        if self.alpha <= 0 or self.learning_rate <= 0:
            raise ValueError("alpha and learning_rate must be positive")

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``NAME:ALPHA:LR[:INIT.npz]``, e.g. ``wide:1.0:3e-3`` or ``f:0.35:1e-3:f.npz``."""
        parts = text.split(":")
        if not 3 <= len(parts) <= 4:
            raise ValueError(f"variant {text!r}: expected NAME:ALPHA:LR[:INIT_WEIGHTS]")
        try:
            alpha, lr = float(parts[1]), float(parts[2])
        except ValueError as exc:
            raise ValueError(f"variant {text!r}: ALPHA and LR must be numbers") from exc
        init = Path(parts[3]) if len(parts) == 4 and parts[3] else None
        return cls(parts[0], alpha, lr, init)


# -- weights files ---------------------------------------------------------------------------


def save_weights(model, det_config, path: str | Path, info: dict | None = None) -> Path:
    """Write a model's weights (``model.weights`` order), names, config and ``info`` to ``path``.

    Any Keras backend; the file is a plain ``.npz`` (no pickles).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"w{i:04d}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    meta = {
        "format": WEIGHTS_FORMAT,
        "names": [w.name for w in model.weights],
        "shapes": [list(w.shape) for w in model.weights],
        "detector": det_config.to_dict(),
        "info": info or {},
    }
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, __meta__=np.array(json.dumps(meta, default=_json_default)), **arrays)
    tmp.replace(path)
    return path


def read_weights(path: str | Path) -> tuple[dict, list[np.ndarray]]:
    """``(meta, arrays)`` of a ``save_weights`` file.

    Raises:
        ValueError: not a readable weights file of this format.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            count = len(meta["names"])
            arrays = [data[f"w{i:04d}"] for i in range(count)]
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a skuaudit weights file ({exc})") from exc
    if meta.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path}: unknown weights format {meta.get('format')!r}")
    return meta, arrays


def load_weights(model, path: str | Path) -> dict:
    """Set ``model``'s weights from a ``save_weights`` file; returns its metadata.

    Raises:
        ValueError: the file's weights differ from the model's in number, name or shape.
    """
    meta, arrays = read_weights(path)
    names = [w.name for w in model.weights]
    shapes = [list(w.shape) for w in model.weights]
    if names != meta["names"] or shapes != [list(a.shape) for a in arrays]:
        raise ValueError(
            f"{path}: its {len(arrays)} weights do not match the model's {len(names)} "
            "(another width, head or anchor layout?)"
        )
    model.set_weights(arrays)
    return meta


def export_model_weights(model_dir: str | Path, path: str | Path) -> Path:
    """A model folder's weights as a ``save_weights`` file (to start a JAX run from them)."""
    from skuaudit.detector import load_raw_model
    from skuaudit.detector.detector import CONFIG_FILE, DetectorConfig

    config = DetectorConfig.from_json(Path(model_dir) / CONFIG_FILE)
    training = json.loads((Path(model_dir) / CONFIG_FILE).read_text()).get("training") or {}
    info = {**training, "source": str(model_dir)}
    return save_weights(load_raw_model(model_dir), config, path, info)


def model_folder_from_weights(
    weights: str | Path,
    out_dir: str | Path,
    *,
    with_tflite: bool = True,
    metrics_sets: Sequence[Sequence[LabeledImage]] = (),
    eval_max_images: int = 100,
) -> Path:
    """Write a model folder from a ``save_weights`` file (on any backend; TFLite needs TensorFlow).

    Args:
        weights: the file.
        out_dir: the model folder to write.
        with_tflite: also write ``model.tflite``.
        metrics_sets: labelled validation images per training dataset, for the card's COCO
            figures (``training.train.evaluate_detector``); empty: none.
        eval_max_images: most images of each set evaluated.

    Returns:
        ``out_dir``.
    """
    from skuaudit.detector import Detector, save_model_folder
    from skuaudit.detector.config import DetectorConfig
    from skuaudit.detector.network import build_raw_model
    from skuaudit.training.train import _model_card, evaluate_detector

    meta, _ = read_weights(weights)
    config = DetectorConfig.from_dict(meta["detector"])
    model = build_raw_model(config)
    load_weights(model, weights)
    info = dict(meta["info"])
    info["config"] = {**info.get("config", {}), "out_dir": str(out_dir)}

    def card() -> str:
        try:
            return _model_card(info)
        except KeyError:  # weights of a model folder whose training was not recorded
            return (
                f"# Model card: {Path(out_dir).name}\n\nWeights from "
                f"`{info.get('source', weights)}`; no training record.\n"
            )

    save_model_folder(
        model, config, out_dir, training_info=info, model_card=card(), with_tflite=False
    )
    if metrics_sets:
        detector = Detector.load(out_dir)
        info["metrics"] = {
            f"dataset {i}": evaluate_detector(detector, list(images)[:eval_max_images])
            for i, images in enumerate(metrics_sets)
            if images
        }
    save_model_folder(
        model,
        config,
        out_dir,
        training_info=info,
        model_card=card(),
        with_tflite=with_tflite,
    )
    return Path(out_dir)


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# -- batches from worker processes -----------------------------------------------------------

_WORKER: dict = {}


def _init_worker(
    items: list[LabeledImage],
    n_train: int,
    classes: list[str],
    image_size: int,
    max_boxes: int,
    tile: TileSpec | None,
    augment: bool,
    seed: int,
) -> None:
    import cv2

    cv2.setNumThreads(1)
    _WORKER.update(
        items=items,
        # mosaics of training photos draw their partners from the training photos only
        partners=mosaic_partners(items[:n_train], classes, tile if augment else None)
        + [()] * (len(items) - n_train),
        classes=classes,
        image_size=(image_size, image_size),
        max_boxes=max_boxes,
        tile=tile,
        augmenter=build_augmenter(seed * 1000 + os.getpid() % 1000) if augment else None,
        seed=seed,
    )


def _load_batch(batch_id: int, indices: list[int], fixed: bool) -> tuple[np.ndarray, ...]:
    """One batch: ``uint8`` RGB images, boxes, class ids, class masks (see ``make_tf_dataset``).

    ``fixed`` (validation): no augmentation and crops drawn from the image index alone, so every
    evaluation sees the same crops."""
    w = _WORKER
    out: list[list[np.ndarray]] = [[], [], [], []]
    for position, index in enumerate(indices):
        rng = np.random.default_rng(
            [w["seed"], int(index)] if fixed else [w["seed"], batch_id, position]
        )
        example = load_training_example(
            w["items"][index],
            w["classes"],
            w["image_size"],
            w["max_boxes"],
            w["tile"],
            None if fixed else w["augmenter"],
            rng,
            () if fixed else w["partners"][index],
        )
        out[0].append(np.clip(example[0], 0, 255).astype(np.uint8))
        for part, value in zip(out[1:], example[1:], strict=True):
            part.append(value)
    return tuple(np.stack(part) for part in out)


@contextlib.contextmanager
def _without_main_file():
    """Hide the parent's ``__main__`` from process start-up.

    ``spawn`` re-runs the parent's ``__main__`` file in every new process, and that may be anything
    (under Streamlit's AppTest it is ``app.py``); the data workers need only what they unpickle.
    (``fork`` is no option: the trainer's process holds a GPU and threads.)
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


class BatchStream:
    """Training batches loaded by a pool of worker processes, in order, a few batches ahead.

    Items ``0 .. n_train - 1`` are the training images (endless, reshuffled every epoch with
    ``seed``, augmented); ``fixed_batches`` loads any items without augmentation.
    """

    def __init__(
        self,
        items: list[LabeledImage],
        n_train: int,
        classes: list[str],
        *,
        image_size: int,
        batch_size: int,
        max_boxes: int,
        tile: TileSpec | None,
        augment: bool,
        seed: int,
        workers: int,
        prefetch: int | None = None,
    ) -> None:
        if n_train < 1:
            raise DatasetError("no training images: the datasets are empty")
        self.batch_size = batch_size
        self._n_train = n_train
        self._seed = seed
        # An executor, not a multiprocessing.Pool: a worker that dies (or fails to start) raises
        # BrokenProcessPool in the caller instead of leaving it waiting for a lost task.
        self._pool = ProcessPoolExecutor(
            max(1, workers),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(items, n_train, classes, image_size, max_boxes, tile, augment, seed),
        )
        self._depth = prefetch or 3 * max(1, workers)
        self._order = self._epochs()
        self._pending: collections.deque = collections.deque()
        self._next_id = 0

    def _epochs(self) -> Iterator[int]:
        rng = np.random.default_rng(self._seed)
        while True:
            yield from (int(i) for i in rng.permutation(self._n_train))

    def _submit(self) -> None:
        indices = [next(self._order) for _ in range(self.batch_size)]
        with _without_main_file():  # workers start on submit
            self._pending.append(self._pool.submit(_load_batch, self._next_id, indices, False))
        self._next_id += 1

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> tuple[np.ndarray, ...]:
        while len(self._pending) < self._depth:
            self._submit()
        batch = self._pending.popleft().result()
        self._submit()
        return batch

    def fixed_batches(self, indices: Sequence[int]) -> list[tuple[np.ndarray, ...]]:
        """Batches of the items ``indices`` (in order, last batch may be short), unaugmented."""
        chunks = [
            list(indices[i : i + self.batch_size]) for i in range(0, len(indices), self.batch_size)
        ]
        with _without_main_file():
            jobs = [self._pool.submit(_load_batch, -1, chunk, True) for chunk in chunks]
        return [job.result() for job in jobs]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- the JAX training loop -------------------------------------------------------------------


def learning_rate_at(
    peak: float, step: int, warmup_steps: int, fraction: float, floor: float = 0.0
) -> float:
    """Linear warm-up over ``warmup_steps`` steps, then a cosine from ``peak`` to ``floor`` over
    ``fraction`` (``0..1``) of the time budget."""
    warm = min(1.0, (step + 1) / max(1, warmup_steps))
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(max(fraction, 0.0), 1.0)))
    return warm * (floor + (peak - floor) * cosine)


class _JaxVariant:
    """One variant's model, optimiser state and jitted steps."""

    def __init__(self, variant: Variant, det_config, norm: str, seed: int) -> None:
        import jax
        import jax.numpy as jnp
        import keras

        from skuaudit.detector.boxes import make_anchors
        from skuaudit.detector.network import build_raw_model, detection_loss, encode_targets

        self.variant = variant
        self.det_config = det_config
        keras.utils.set_random_seed(seed)
        self.model = model = build_raw_model(det_config)
        self.init_meta = load_weights(model, variant.init_weights) if variant.init_weights else None
        optimizer = keras.optimizers.Adam(
            learning_rate=float(variant.learning_rate), global_clipnorm=10.0
        )
        optimizer.build(model.trainable_variables)
        lr_index = [i for i, v in enumerate(optimizer.variables) if v is optimizer._learning_rate]
        if len(lr_index) != 1:
            raise RuntimeError("cannot find the optimiser's learning-rate variable")
        lr_index = lr_index[0]
        anchors = make_anchors(det_config.anchor_spec)
        num_classes = det_config.num_classes
        variance = det_config.box_variance

        def losses(tv, ntv, images, boxes, ids, mask, training):
            preds, ntv = model.stateless_call(
                tv, ntv, images.astype(jnp.float32), training=training
            )
            targets = encode_targets(boxes, ids, anchors, num_classes, variance)
            cls, box = detection_loss(targets, preds, mask, num_classes, normalisation=norm)
            return cls + box, (ntv, cls, box)

        grad_fn = jax.value_and_grad(functools.partial(losses, training=True), has_aux=True)

        def train_step(state, lr, images, boxes, ids, mask):
            tv, ntv, ov = state
            (loss, (ntv, cls, box)), grads = grad_fn(tv, ntv, images, boxes, ids, mask)
            ov = list(ov)
            ov[lr_index] = lr.astype(ov[lr_index].dtype)
            tv, ov = optimizer.stateless_apply(ov, grads, tv)
            return (tv, ntv, ov), jnp.stack([loss, cls, box])

        def val_step(state, images, boxes, ids, mask):
            tv, ntv, _ = state
            return losses(tv, ntv, images, boxes, ids, mask, training=False)[0]

        self.train_step = jax.jit(train_step, donate_argnums=0)
        self.val_step = jax.jit(val_step)
        self.state = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in optimizer.variables],
        )
        self.best_val = math.inf
        self.steps = 0

    def step(self, lr: float, batch: tuple[np.ndarray, ...]):
        import jax.numpy as jnp

        self.state, metrics = self.train_step(self.state, jnp.float32(lr), *batch)
        self.steps += 1
        return metrics

    def validation_loss(self, batches: list[tuple[np.ndarray, ...]]) -> float | None:
        if not batches:
            return None
        weights = [len(b[0]) for b in batches]
        values = [float(self.val_step(self.state, *b)) for b in batches]
        return float(np.average(values, weights=weights))

    def save(self, path: Path, info: dict) -> Path:
        tv, ntv, _ = self.state
        for var, value in zip(self.model.trainable_variables, tv, strict=True):
            var.assign(value)
        for var, value in zip(self.model.non_trainable_variables, ntv, strict=True):
            var.assign(value)
        return save_weights(self.model, self.det_config, path, info)


def train_variants(
    variants: Sequence[Variant],
    datasets: Sequence[Dataset],
    config: TrainConfig,
    *,
    budget_s: float,
    out_dir: str | Path,
    workers: int | None = None,
    warmup_steps: int = 300,
    eval_every_s: float = 60.0,
    log_every: int = 50,
    reserve_s: float = 20.0,
    max_steps: int | None = None,
    progress_callback: Callable[[dict], None] | None = None,
) -> dict[str, dict]:
    """Train ``variants`` on JAX for ``budget_s`` seconds of wall clock (see the module docstring).

    Args:
        variants: the networks; each gets the same batches.
        datasets: as for ``train_detector`` (split by image per ``config``; ``dataset_repeats``).
        config: shared settings (``batch_size``, ``image_size``, ``tile``, ``small_photo_crop``,
            ``head_depth``, ``separate_towers``, anchors, ``val_batches``, ``seed``...); its
            ``alpha``, ``learning_rate`` and ``steps`` are replaced by each variant's and the
            budget's.
        budget_s: wall-clock seconds from the call to the last weights written.
        out_dir: where weights and ``progress.jsonl`` go.
        workers: data worker processes (default: CPUs - 2).
        warmup_steps: linear learning-rate warm-up.
        eval_every_s: seconds between validations (and best-weights writes).
        log_every: steps between progress events.
        reserve_s: seconds kept at the end for the last validation and writes.
        max_steps: stop after this many steps even if time is left (tests).
        progress_callback: receives each progress event dict.

    Returns:
        ``{variant name: info}`` as stored in its weights files.

    Raises:
        RuntimeError: Keras does not run on the JAX backend.
        DatasetError: no training images.
    """
    import jax
    import keras

    if keras.backend.backend() != "jax":
        raise RuntimeError("train_variants needs KERAS_BACKEND=jax (set before importing keras)")
    started = time.monotonic()
    deadline = started + budget_s
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [v.name for v in variants]
    if not variants or len(set(names)) != len(names):
        raise ValueError(f"need one or more variants with distinct names, got {names}")
    train_images, val_images, val_sets = split_datasets(config, datasets)
    classes = list(CLASS_NAMES)
    log_path = out_dir / "progress.jsonl"

    def emit(event: dict) -> None:
        event = {"elapsed_s": round(time.monotonic() - started, 1), **event}
        with log_path.open("a") as fh:
            fh.write(json.dumps(event, default=_json_default) + "\n")
        if progress_callback is not None:
            progress_callback(event)

    workers = workers or max(1, (os.cpu_count() or 2) - 2)
    stream = BatchStream(
        train_images + val_images,
        len(train_images),
        classes,
        image_size=config.image_size,
        batch_size=config.batch_size,
        max_boxes=config.max_boxes,
        tile=config.tile_spec(),
        augment=config.augment,
        seed=config.seed,
        workers=workers,
    )
    try:
        n_val = min(len(val_images), config.val_batches * config.batch_size)
        # Every dataset's validation images take turns, so a small set is not left out.
        val_order = _interleave([len(s) for s in val_sets])[:n_val]
        val_batches = stream.fixed_batches([len(train_images) + i for i in val_order])
        runs = []
        for v in variants:
            det_config = detector_config_for(config, alpha=v.alpha)
            runs.append(_JaxVariant(v, det_config, config.loss_normalisation, config.seed))
        device = jax.devices()[0]
        hardware = (
            f"{device.device_kind} ({device.platform}), {platform.machine()} CPU x{os.cpu_count()}"
        )
        emit(
            {
                "event": "start",
                "variants": [asdict(v) for v in variants],
                "train_images": len(train_images),
                "val_images": len(val_images),
                "val_crops": n_val,
                "hardware": hardware,
                "workers": workers,
            }
        )
        end = deadline - reserve_s
        step, images_seen = 0, 0

        def evaluate(*, final: bool) -> dict[str, dict]:
            """Validate every variant; write its weights if better (and at the end)."""
            infos = {}
            for run in runs:
                val_loss = run.validation_loss(val_batches)
                improved = val_loss is None or val_loss < run.best_val
                v = run.variant
                run_config = replace(
                    config,
                    alpha=v.alpha,
                    learning_rate=v.learning_rate,
                    steps=max(step, 1),
                    init_model_dir=None,
                )
                info = {
                    "train_images": len(train_images),
                    "val_images": len(val_images),
                    "config": {
                        **{
                            k: str(x) if isinstance(x, Path) else x
                            for k, x in asdict(run_config).items()
                        },
                        "init_model_dir": str(v.init_weights) if v.init_weights else None,
                        "learning_rate_schedule": "linear warm-up, cosine over the wall-clock budget",
                    },
                    "steps_done": step,
                    "images_seen": images_seen,
                    "train_seconds": round(time.monotonic() - started, 1),
                    "hardware": hardware,
                    "framework": f"Keras {keras.__version__} on JAX {jax.__version__}",
                    "trainer": "scripts/train_on_accelerator.py (skuaudit.training.jax_train)",
                    "val_loss": val_loss,
                    "best_val_loss": min(run.best_val, val_loss) if val_loss is not None else None,
                }
                if run.init_meta is not None:
                    info["init_weights_info"] = run.init_meta.get("info", {})
                if improved:
                    run.best_val = math.inf if val_loss is None else val_loss
                    run.save(out_dir / f"{v.name}.best.npz", info)
                if final:
                    run.save(out_dir / f"{v.name}.last.npz", info)
                infos[v.name] = info
                emit(
                    {
                        "event": "final" if final else "eval",
                        "variant": v.name,
                        "step": step,
                        "val_loss": val_loss,
                        "improved": improved,
                    }
                )
            return infos

        rate_origin: tuple[int, float] | None = None
        last_eval = time.monotonic()
        recent: list[list] = [[] for _ in runs]
        while True:
            now = time.monotonic()
            if now >= end or (max_steps is not None and step >= max_steps):
                break
            batch = next(stream)
            if rate_origin is None:  # the first step compiles: the schedule starts after it
                fraction = 0.0
            else:
                fraction = (now - rate_origin[1]) / max(end - rate_origin[1], 1e-9)
            lrs = [
                learning_rate_at(r.variant.learning_rate, step, warmup_steps, fraction)
                for r in runs
            ]
            for run, lr, bucket in zip(runs, lrs, recent, strict=True):
                bucket.append(run.step(lr, batch))
            step += 1
            images_seen += len(batch[0])
            if rate_origin is None:
                for bucket in recent:
                    np.asarray(bucket[-1])  # wait for the compiled first step
                rate_origin = (step, time.monotonic())
                emit({"event": "compiled", "step": step})
            if step % log_every == 0:
                means = [np.mean(np.stack([np.asarray(m) for m in b]), axis=0) for b in recent]
                recent = [[] for _ in runs]
                elapsed = time.monotonic() - rate_origin[1]
                emit(
                    {
                        "event": "step",
                        "step": step,
                        "images_per_s": round(
                            (step - rate_origin[0]) * config.batch_size / max(elapsed, 1e-9), 1
                        ),
                        "fraction": round(fraction, 4),
                        **{
                            r.variant.name: {
                                "lr": lr,
                                "loss": float(m[0]),
                                "class_loss": float(m[1]),
                                "box_loss": float(m[2]),
                            }
                            for r, lr, m in zip(runs, lrs, means, strict=True)
                        },
                    }
                )
            if time.monotonic() - last_eval >= eval_every_s:
                last_eval = time.monotonic()
                evaluate(final=False)
        info = evaluate(final=True)
    finally:
        stream.close()
    return info


def _interleave(sizes: Sequence[int]) -> list[int]:
    """Indices into the concatenation of sets of ``sizes``, taking one from each set in turn."""
    offsets = np.cumsum([0, *sizes[:-1]])
    order = []
    for i in range(max(sizes, default=0)):
        order += [int(o) + i for o, n in zip(offsets, sizes, strict=True) if i < n]
    return order
