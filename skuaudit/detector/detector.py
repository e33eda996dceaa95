"""``Detector``: a trained model folder behind one ``detect(image_bgr)`` call.

A model folder holds ``model.keras`` (the raw Keras model, see ``model.build_raw_model``),
``model.tflite`` (the same network converted, the fast runtime), ``labels.json``, ``config.json``
(``{"detector": DetectorConfig fields, "training": ...}``) and ``MODEL_CARD.md``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import threading
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from skuaudit.detections import Detections
from skuaudit.detector.boxes import make_anchors
from skuaudit.detector.config import DetectorConfig
from skuaudit.detector.postprocess import (
    decode_detections,
    fuse_views,
    merge_tile_detections,
    suppress_contained,
    suppress_inside_empty,
)

log = logging.getLogger(__name__)

KERAS_FILE = "model.keras"
TFLITE_FILE = "model.tflite"
CONFIG_FILE = "config.json"
LABELS_FILE = "labels.json"

Runtime = Literal["auto", "tflite", "tf"]


class ModelLoadError(RuntimeError):
    """A model folder that cannot be used; the message names the folder and the file."""


class _RawRunner(Protocol):
    name: str

    def __call__(self, images_rgb: np.ndarray) -> np.ndarray: ...


class _TFLiteRunner:
    """ai-edge-litert interpreter, one image at a time (its input is fixed at batch 1).

    An interpreter is not thread-safe, and the app shares one detector between sessions (each
    Streamlit session and each live stream's worker is a thread): a lock runs one call at a time.
    """

    name = "tflite"

    def __init__(self, path: Path, num_threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._lock = threading.Lock()
        self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]

    def __call__(self, images_rgb: np.ndarray) -> np.ndarray:
        outputs = []
        with self._lock:
            for image in images_rgb:
                self._interpreter.set_tensor(self._input, image[None])
                self._interpreter.invoke()
                outputs.append(self._interpreter.get_tensor(self._output)[0])
        return np.stack(outputs)


class _TFFunctionRunner:
    """The Keras model traced once as a ``tf.function`` (never called eagerly per frame)."""

    name = "tf"

    def __init__(self, model) -> None:
        import tensorflow as tf

        size = model.input_shape[1]
        self._fn = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)],
            reduce_retracing=True,
        )

    def __call__(self, images_rgb: np.ndarray) -> np.ndarray:
        return self._fn(images_rgb).numpy()


class Detector:
    """Products and gaps in a BGR image, in that image's pixel coordinates.

    Attributes:
        config: the ``DetectorConfig`` of the model.
        anchors_yxyx_norm: ``(A, 4)`` float32 anchors matching the raw output rows.
        runtime: ``"tflite"`` or ``"tf"``.

    Example:
        >>> detector = Detector.load("models/default")  # doctest: +SKIP
        >>> detections = detector.detect(cv2.imread("shelf.jpg"))  # doctest: +SKIP
    """

    def __init__(
        self, config: DetectorConfig, runner: _RawRunner, model_dir: Path | None = None
    ) -> None:
        self.config = config
        self.model_dir = model_dir
        self._runner = runner
        self.anchors_yxyx_norm = make_anchors(config.anchor_spec)

    @property
    def runtime(self) -> str:
        return self._runner.name

    @classmethod
    def from_keras(cls, model, config: DetectorConfig) -> Detector:
        """Wrap an in-memory raw Keras model (e.g. during training) with the ``tf.function`` runtime."""
        return cls(config, _TFFunctionRunner(model))

    @classmethod
    def load(
        cls, model_dir: str | Path, *, runtime: Runtime = "auto", num_threads: int | None = 2
    ) -> Detector:
        """Load a model folder.

        Args:
            model_dir: folder with ``config.json``, ``model.keras`` and usually ``model.tflite``.
            runtime: ``"auto"`` uses TFLite when ``model.tflite`` and ai-edge-litert are present,
                else the Keras model as a ``tf.function``; ``"tflite"``/``"tf"`` force one.
            num_threads: TFLite interpreter threads.

        Raises:
            ModelLoadError: missing folder or file, or a file that does not load.
        """
        model_dir = Path(model_dir)
        config = read_model_config(model_dir)
        keras_path, tflite_path = model_dir / KERAS_FILE, model_dir / TFLITE_FILE
        if not keras_path.is_file():
            raise ModelLoadError(f"{model_dir}: weights file {KERAS_FILE} is missing")
        if runtime not in ("auto", "tflite", "tf"):
            raise ValueError(f"runtime must be auto, tflite or tf, got {runtime!r}")
        if runtime != "tf" and tflite_path.is_file():
            try:
                runner: _RawRunner = _TFLiteRunner(tflite_path, num_threads)
            except ImportError:
                if runtime == "tflite":
                    raise ModelLoadError(
                        "runtime 'tflite' needs ai-edge-litert: pip install ai-edge-litert"
                    ) from None
                log.info("ai-edge-litert not installed; using the Keras model")
            except (ValueError, RuntimeError) as exc:
                raise ModelLoadError(
                    f"{model_dir}: weights file {TFLITE_FILE} is corrupt ({exc})"
                ) from exc
            else:
                return cls(config, runner, model_dir)
        elif runtime == "tflite":
            raise ModelLoadError(f"{model_dir}: weights file {TFLITE_FILE} is missing")
        return cls(config, _TFFunctionRunner(load_raw_model(model_dir)), model_dir)

    def with_config(self, **changes) -> Detector:
        """This detector with some ``config`` settings changed, sharing the loaded network.

        Example:
            >>> plain = detector.with_config(flip_classes=[])  # doctest: +SKIP
        """
        return Detector(dataclasses.replace(self.config, **changes), self._runner, self.model_dir)

    def predict_raw(self, images_rgb: np.ndarray) -> np.ndarray:
        """Raw outputs ``(B, A, 4 + C)`` for ``(B, S, S, 3)`` float32 RGB ``0..255`` model inputs."""
        return self._runner(np.ascontiguousarray(images_rgb, dtype=np.float32))

    def detect(
        self,
        image_bgr: np.ndarray,
        *,
        score_threshold: float | None = None,
        tiled: bool | None = None,
    ) -> Detections:
        """Detect products and gaps.

        Args:
            image_bgr: ``(H, W, 3)`` uint8 BGR image (as ``cv2.imread`` returns).
            score_threshold: minimum score of every class; ``None`` uses the defaults of
                ``config`` (``score_threshold``, ``class_score_thresholds``, and in one pass
                ``single_pass_class_score_thresholds``).
            tiled: ``True`` runs overlapping tiles at full resolution and merges boxes across tile
                borders (plus one whole-image pass for ``config.whole_image_classes``);
                ``False`` resizes the whole image to the model input (video frames); ``None``
                tiles when the longer side exceeds ``config.tile_above_px``. With
                ``config.flip_classes`` the tiled mode also runs every tile mirrored, with
                ``config.extra_tile_fractions`` / ``class_tile_fractions`` more tile sizes, and
                fuses each class's views (``postprocess.fuse_views``).

        Returns:
            Detections in pixel ``xyxy`` of ``image_bgr``, best score first, after NMS and the
            nested-box rules of ``config`` (``postprocess.suppress_contained``).
        """
        image_bgr = np.asarray(image_bgr)
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.size == 0:
            raise ValueError(f"detect expects an (H, W, 3) BGR image, got shape {image_bgr.shape}")
        cfg = self.config
        height, width = image_bgr.shape[:2]
        if tiled is None:
            tiled = max(width, height) > cfg.tile_above_px
        if score_threshold is None:
            per_class = cfg.default_thresholds(single_pass=not tiled)
            threshold = float(per_class.min())
        else:
            threshold = float(score_threshold)
            per_class = np.full(cfg.num_classes, threshold, dtype=np.float32)
        if not tiled:
            raw = self.predict_raw(self._to_input(image_bgr)[None])[0]
            det = self._suppress_nested(self._decode(raw, (width, height), threshold))
            det = self._drop_inside_empty(det, single_pass=True)
            return det[det.confidence >= per_class[det.class_id]]
        floor = cfg.fusion_min_score
        multiscale = any(cfg.tile_fractions_of(name) for name in cfg.class_names)
        fusing = floor is not None and (cfg.flip_classes or multiscale)
        views, sets_of = self._tiled_views(
            image_bgr, min(threshold, floor) if fusing else threshold
        )
        det = self._suppress_nested(self._fuse_views(views, sets_of, threshold))
        det = self._drop_inside_empty(det, single_pass=False)
        # Per-class thresholds after the nested-box rules: those only drop boxes for better ones,
        # so the order does not change the result.
        return det[det.confidence >= per_class[det.class_id]]

    def _tile_sets(
        self, width: int, height: int
    ) -> tuple[list[np.ndarray], list[set[int]], set[int]]:
        """The tile sets of a tiled photo: ``(T, 4)`` pixel tiles of each set (the product
        tiles, plus the whole image for ``whole_image_classes``; then the sets of
        ``tile_fractions_of`` each class), for each class the indices of the sets its boxes are
        fused from, and the sets also run mirrored (with ``flip_classes``): the first and the
        shared ``extra_tile_fractions`` ones, not a class's own (``class_tile_fractions``)."""
        from skuaudit.detector.tiling import tile_grid

        cfg = self.config
        longer = max(width, height)
        sides = [max(cfg.image_size, round(longer * cfg.tile_fraction))]
        sets_of, mirrored = [], {0}
        for name in cfg.class_names:
            used = {0}
            shared = cfg.extra_tile_fractions if name in cfg.multiscale_classes else ()
            # a class's own tiles are never smaller than the input (like ``tile_fraction``)
            own = cfg.class_tile_fractions.get(name, ())
            for fraction, is_shared in [*((f, True) for f in shared), *((f, False) for f in own)]:
                side = max(1 if is_shared else cfg.image_size, round(longer * fraction))
                # A side within 10 % of one already run would show the model the same view again.
                near = [i for i, seen in enumerate(sides) if abs(side - seen) <= 0.1 * seen]
                if not near:
                    sides.append(side)
                index = near[0] if near else len(sides) - 1
                used.add(index)
                if is_shared:
                    mirrored.add(index)
            sets_of.append(used)
        tile_sets = [
            np.array(tile_grid(width, height, side, cfg.tile_overlap), dtype=np.int64).reshape(
                -1, 4
            )
            for side in sides
        ]
        if cfg.whole_image_classes:
            # The whole image is one more "tile" whose edges are the image's: its boxes are never
            # cut, and the merge removes their duplicates among the tiles' boxes.
            tile_sets[0] = np.vstack([tile_sets[0], [[0, 0, width, height]]])
        return tile_sets, sets_of, mirrored if cfg.flip_classes else set()

    def _tiled_views(
        self, image_bgr: np.ndarray, threshold: float
    ) -> tuple[dict[tuple[int, bool], Detections], list[set[int]]]:
        """``{(tile set, mirrored): boxes merged across that set's tiles}``, one network batch,
        and each class's tile sets (``_tile_sets``)."""
        cfg = self.config
        height, width = image_bgr.shape[:2]
        tile_sets, sets_of, mirrored = self._tile_sets(width, height)
        batch, covered = self._tile_inputs(image_bgr, np.vstack(tile_sets))
        ends = np.cumsum([len(tiles) for tiles in tile_sets])
        tile_sets = np.split(covered, ends[:-1])
        runs = [(index, False) for index in range(len(tile_sets))]
        runs += [(index, True) for index in sorted(mirrored)]
        if mirrored:  # the mirrored tiles of the same batch
            flip = np.concatenate(
                [np.arange(ends[i] - len(tile_sets[i]), ends[i]) for i in sorted(mirrored)]
            )
            batch = np.concatenate([batch, batch[flip, :, ::-1]])
        raws = iter(self.predict_raw(batch))
        views: dict[tuple[int, bool], Detections] = {}
        for set_index, mirror in runs:
            tiles = tile_sets[set_index]
            parts = []
            for x1, y1, x2, y2 in tiles:
                tile_w = x2 - x1
                det = self._decode(next(raws), (tile_w, y2 - y1), threshold)
                if mirror:  # boxes of the mirrored tile, back to the tile's own x
                    det.xyxy[:, [0, 2]] = tile_w - det.xyxy[:, [2, 0]]
                det.xyxy += np.array([x1, y1, x1, y1], dtype=np.float32)
                parts.append(det)
            if set_index == 0 and cfg.whole_image_classes:
                whole_ids = [cfg.class_names.index(c) for c in cfg.whole_image_classes]
                parts[-1] = parts[-1][np.isin(parts[-1].class_id, whole_ids)]
            views[set_index, mirror] = merge_tile_detections(
                parts, tiles, (width, height), nms_iou=cfg.nms_iou
            )
        return views, sets_of

    def _fuse_views(
        self,
        views: dict[tuple[int, bool], Detections],
        sets_of: list[set[int]],
        threshold: float,
    ) -> Detections:
        """One set of boxes from the views ``{(tile set, mirrored): boxes}`` of a tiled photo.

        Each class keeps the first tile set's plain view (its boxes from ``threshold`` up), fused
        (``postprocess.fuse_views``) with the mirrored views when it is in
        ``config.flip_classes`` and with the views of its other tile sets ``sets_of[class]``;
        fused views keep their boxes from ``config.fusion_min_score`` up when it is set.
        """
        cfg = self.config
        floor = threshold if cfg.fusion_min_score is None else cfg.fusion_min_score
        groups: dict[tuple[tuple[int, bool], ...], list[int]] = {}
        for class_id, name in enumerate(cfg.class_names):
            used = tuple(
                key
                for key in views
                if key[0] in sets_of[class_id] and (not key[1] or name in cfg.flip_classes)
            )
            groups.setdefault(used, []).append(class_id)
        parts = []
        for used, class_ids in groups.items():
            least = threshold if len(used) == 1 else floor
            of_group = [
                views[key][
                    np.isin(views[key].class_id, class_ids) & (views[key].confidence >= least)
                ]
                for key in used
            ]
            parts.append(
                of_group[0]
                if len(used) == 1
                else fuse_views(of_group, iou_threshold=cfg.fusion_iou)
            )
        merged = Detections.merge(parts)
        return merged[np.argsort(-merged.confidence, kind="stable")]

    def _suppress_nested(self, det: Detections) -> Detections:
        cfg = self.config
        keep = suppress_contained(
            det.xyxy,
            det.confidence,
            det.class_id,
            containment=cfg.containment,
            stack_min_contained=cfg.stack_min_contained,
            drop_contained=cfg.drop_contained,
        )
        return det[keep]

    def _drop_inside_empty(self, det: Detections, *, single_pass: bool) -> Detections:
        """``config.empty_classes``: drop boxes inside a higher-scored empty-stretch box that
        reaches its class's default threshold (of this mode), whatever threshold ``detect`` was
        asked for, so evaluation at a low threshold and counting drop the same boxes."""
        cfg = self.config
        if not cfg.empty_classes or len(det) == 0:
            return det
        marks = np.array([name in cfg.empty_classes for name in cfg.class_names])
        keep = suppress_inside_empty(
            det.xyxy,
            det.confidence,
            marks[det.class_id],
            containment=cfg.containment,
            counted=det.confidence >= cfg.default_thresholds(single_pass=single_pass)[det.class_id],
        )
        return det[keep]

    def _tile_inputs(
        self, image_bgr: np.ndarray, tiles: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs ``(T, S, S, 3)`` of the pixel tiles ``(T, 4)`` of ``image_bgr``, and the
        ``(T, 4)`` float pixel regions of ``image_bgr`` they show.

        A tile is cut from the smallest of the photo's halvings (each the one before shrunk by
        two, made once per call) on which it still covers the model input, so a large photo's
        tiles are shrunk from at most twice the input side instead of from full resolution. Its
        edges then fall on that halving's pixels: the region it shows moves by less than one of
        them, and its boxes are placed by the region it shows.
        """
        size = self.config.image_size
        levels = [image_bgr]  # the photo, then its halvings
        inputs = np.empty((len(tiles), size, size, 3), dtype=np.float32)
        covered = np.empty((len(tiles), 4), dtype=np.float64)
        for i, tile in enumerate(tiles):
            shorter = min(tile[2] - tile[0], tile[3] - tile[1])
            halvings = int(np.log2(shorter / size)) if shorter >= 2 * size else 0
            while len(levels) <= halvings:
                h, w = levels[-1].shape[:2]
                levels.append(
                    cv2.resize(
                        levels[-1], ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA
                    )
                )
            level = levels[halvings]
            scale = np.array([level.shape[1], level.shape[0]] * 2) / np.array(
                [image_bgr.shape[1], image_bgr.shape[0]] * 2
            )
            x1, y1, x2, y2 = np.round(tile * scale).astype(int)
            inputs[i] = self._to_input(level[y1:y2, x1:x2])
            covered[i] = np.array([x1, y1, x2, y2]) / scale
        return inputs, covered

    def _to_input(self, image_bgr: np.ndarray) -> np.ndarray:
        size = self.config.image_size
        h, w = image_bgr.shape[:2]
        interp = cv2.INTER_AREA if h > size or w > size else cv2.INTER_LINEAR
        resized = cv2.resize(image_bgr, (size, size), interpolation=interp)
        return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB).astype(np.float32)

    def _decode(self, raw: np.ndarray, image_wh: tuple[int, int], threshold: float) -> Detections:
        cfg = self.config
        return decode_detections(
            raw,
            self.anchors_yxyx_norm,
            image_wh,
            box_variance=cfg.box_variance,
            score_threshold=threshold,
            nms_iou=cfg.nms_iou,
            max_detections=cfg.max_detections,
            pre_nms_top_k=cfg.pre_nms_top_k,
        )


def read_model_config(model_dir: str | Path) -> DetectorConfig:
    """The ``DetectorConfig`` of a model folder.

    Raises:
        ModelLoadError: the folder or its ``config.json`` is missing, or the file does not parse.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"{model_dir}: model folder not found")
    config_path = model_dir / CONFIG_FILE
    if not config_path.is_file():
        raise ModelLoadError(f"{model_dir}: {CONFIG_FILE} is missing")
    try:
        return DetectorConfig.from_json(config_path)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{model_dir}: {CONFIG_FILE} is corrupt ({exc})") from exc


def load_raw_model(model_dir: str | Path):
    """The raw Keras model of a model folder (image ``0..255`` -> ``(B, A, 4 + C)``), for export.

    Raises:
        ModelLoadError: ``model.keras`` missing or corrupt.
    """
    model_dir = Path(model_dir)
    path = model_dir / KERAS_FILE
    if not path.is_file():
        raise ModelLoadError(f"{model_dir}: weights file {KERAS_FILE} is missing")
    import keras

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a damaged zip/h5
        raise ModelLoadError(
            f"{model_dir}: weights file {KERAS_FILE} is corrupt ({type(exc).__name__})"
        ) from exc


def convert_to_tflite(model) -> bytes:
    """TFLite fp32 flatbuffer of a raw Keras model (``model.export`` then ``from_saved_model``)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, verbose=False)
        return tf.lite.TFLiteConverter.from_saved_model(tmp).convert()


def save_model_folder(
    model,
    config: DetectorConfig,
    out_dir: str | Path,
    *,
    training_info: dict | None = None,
    model_card: str | None = None,
    with_tflite: bool = True,
) -> Path:
    """Write a complete model folder, replacing each file atomically.

    Args:
        model: the raw Keras model.
        config: its ``DetectorConfig``.
        out_dir: the model folder (created).
        training_info: stored under ``"training"`` in ``config.json``.
        model_card: text of ``MODEL_CARD.md``.
        with_tflite: also write ``model.tflite`` (a few seconds of conversion).

    Returns:
        The folder.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def write(name: str, data: bytes | str) -> None:
        tmp = out_dir / f".{name}.tmp"
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
        tmp.replace(out_dir / name)

    keras_tmp = out_dir / ".tmp.model.keras"
    model.save(keras_tmp)
    keras_tmp.replace(out_dir / KERAS_FILE)
    if with_tflite:
        write(TFLITE_FILE, convert_to_tflite(model))
    else:
        (out_dir / TFLITE_FILE).unlink(missing_ok=True)  # a stale one would shadow the new weights
    write(LABELS_FILE, json.dumps(list(config.class_names), indent=2) + "\n")
    payload = {"detector": config.to_dict(), "training": training_info or {}}
    write(CONFIG_FILE, json.dumps(payload, indent=2) + "\n")
    if model_card is not None:
        write("MODEL_CARD.md", model_card)
    return out_dir
