"""SSD MobileNetV2-FPNLite detector of shelf products and gaps.

Inference (TFLite through ai-edge-litert needs no TensorFlow import)::

    detector = Detector.load("models/default")          # TFLite runtime when available
    detections = detector.detect(image_bgr)              # pixel xyxy; tiled for large photos
    detections = detector.detect(frame_bgr, tiled=False) # video frames: one pass

For export (TF.js, TFLite, ...) the pieces are separate:

- ``load_raw_model(model_dir)``: Keras model, input ``(B, S, S, 3)`` float32 RGB ``0..255``
  (no other preprocessing), output ``(B, A, 4 + C)``: SSD box deltas ``[ty, tx, th, tw]`` (divided by
  ``config.box_variance``) followed by ``C`` class logits (sigmoid, order of ``labels.json``).
- ``detector.anchors_yxyx_norm`` (or ``make_anchors(config.anchor_spec)``): ``(A, 4)`` float32
  anchors ``[y1, x1, y2, x2]`` in ``0..1`` of the model input, one per output row.
- ``decode_detections(raw, anchors, image_wh, ...)``: decode + per-class NMS of one image's raw
  outputs to pixel ``Detections``; ``decode_deltas`` is the box arithmetic alone.
- Tiles: ``skuaudit.detector.tiling.tile_grid`` lays them out, ``merge_tile_detections`` merges.
"""

from __future__ import annotations

from typing import Any

from skuaudit.detector.boxes import AnchorSpec, decode_deltas, encode_deltas, make_anchors
from skuaudit.detector.config import DetectorConfig
from skuaudit.detector.detector import (
    Detector,
    ModelLoadError,
    convert_to_tflite,
    load_raw_model,
    save_model_folder,
)
from skuaudit.detector.postprocess import decode_detections, merge_tile_detections, nms_per_class

# Training-side names import Keras; inference through TFLite (and `skuaudit detect` on a bad
# photo) does not, so they load on first use.
_TRAINING_NAMES = ("build_raw_model", "detection_loss", "encode_targets")


def __getattr__(name: str) -> Any:
    if name in _TRAINING_NAMES:
        from skuaudit.detector import network

        return getattr(network, name)
    raise AttributeError(f"module 'skuaudit.detector' has no attribute {name!r}")


__all__ = [
    "AnchorSpec",
    "Detector",
    "DetectorConfig",
    "ModelLoadError",
    "build_raw_model",
    "convert_to_tflite",
    "decode_deltas",
    "decode_detections",
    "detection_loss",
    "encode_deltas",
    "encode_targets",
    "load_raw_model",
    "make_anchors",
    "merge_tile_detections",
    "nms_per_class",
    "save_model_folder",
]
