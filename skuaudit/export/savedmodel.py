"""The SavedModel export and the serving module (decode and per-class NMS in the graph) the
TF.js export converts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skuaudit.export.base import fresh_dir, load_model_folder, write_sidecars

# boxes of class k are shifted by CLASS_OFFSET * k so a single NMS never compares two classes;
# normalised boxes lie in [0, 1], so 2 keeps every class apart.
CLASS_OFFSET = 2.0


def build_serving_module(model, config):
    """A ``tf.Module`` with the two export signatures (see ``skuaudit.export``).

    Args:
        model: raw Keras detector (``(B, S, S, 3)`` -> ``(B, A, 4 + C)``).
        config: its ``DetectorConfig``.

    Returns:
        Module with ``detect_image`` (``serving_default``) and ``detect_normalized`` tf.functions.
    """
    import tensorflow as tf

    from skuaudit.detector import make_anchors
    from skuaudit.detector.boxes import yxyx_to_center

    size, num_classes = config.image_size, config.num_classes
    anchors_center = yxyx_to_center(make_anchors(config.anchor_spec))
    num_anchors = len(anchors_center)
    top_k = min(config.pre_nms_top_k * num_classes, num_anchors * num_classes)
    variance = np.asarray(config.box_variance, dtype=np.float32)

    def postprocess(raw: tf.Tensor, score_threshold: tf.Tensor) -> dict[str, tf.Tensor]:
        deltas = raw[0, :, :4] * variance
        centers = deltas[:, :2] * anchors_center[:, 2:] + anchors_center[:, :2]
        # same clip as decode_deltas: exp() of a wild output would overflow
        sizes = tf.exp(tf.clip_by_value(deltas[:, 2:], -4.0, 4.0)) * anchors_center[:, 2:]
        boxes = tf.clip_by_value(
            tf.concat([centers - sizes / 2, centers + sizes / 2], axis=1), 0.0, 1.0
        )
        scores = tf.reshape(tf.sigmoid(raw[0, :, 4:]), [-1])  # index = anchor * C + class
        top_scores, top_idx = tf.math.top_k(scores, k=top_k, sorted=True)
        anchor_idx = top_idx // num_classes
        classes = top_idx - anchor_idx * num_classes
        cand_boxes = tf.gather(boxes, anchor_idx)
        shifted = cand_boxes + CLASS_OFFSET * tf.cast(classes, tf.float32)[:, None]
        keep, kept_scores = tf.image.non_max_suppression_with_scores(
            shifted,
            top_scores,
            max_output_size=config.max_detections,
            iou_threshold=config.nms_iou,
            score_threshold=score_threshold,
        )
        return {
            "boxes_yxyx_norm": tf.gather(cand_boxes, keep),
            "scores": kept_scores,
            "classes": tf.gather(classes, keep),
        }

    class DetectorModule(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        @tf.function(
            input_signature=[
                tf.TensorSpec([1, size, size, 3], tf.float32, name="image"),
                tf.TensorSpec([], tf.float32, name="score_threshold"),
            ]
        )
        def detect_normalized(self, image, score_threshold):
            raw = self.model(image, training=False)
            return {**postprocess(raw, score_threshold), "raw": raw}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, 3], tf.uint8, name="image"),
                tf.TensorSpec([], tf.float32, name="score_threshold"),
            ]
        )
        def detect_image(self, image, score_threshold):
            hw = tf.cast(tf.shape(image)[:2], tf.float32)
            resized = tf.image.resize(
                tf.cast(image, tf.float32)[None], [size, size], antialias=True
            )
            out = postprocess(self.model(resized, training=False), score_threshold)
            y1x1y2x2 = out["boxes_yxyx_norm"] * tf.concat([hw, hw], axis=0)
            boxes_xyxy = tf.gather(y1x1y2x2, [1, 0, 3, 2], axis=1)
            return {"boxes_xyxy": boxes_xyxy, "scores": out["scores"], "classes": out["classes"]}

    return DetectorModule()


def save_serving_module(model, config, saved_model_dir: Path) -> None:
    import tensorflow as tf

    module = build_serving_module(model, config)
    tf.saved_model.save(
        module,
        str(saved_model_dir),
        signatures={
            "serving_default": module.detect_image,
            "detect_normalized": module.detect_normalized,
        },
    )


def export_savedmodel(model_dir: str | Path, out_dir: str | Path) -> Path:
    """Write a SavedModel with ``serving_default`` and ``detect_normalized`` signatures.

    Raises:
        ModelLoadError: the model folder is incomplete or corrupt.
        ExportError: ``out_dir`` is not empty.
    """
    model, config = load_model_folder(Path(model_dir))
    out_dir = fresh_dir(out_dir)
    save_serving_module(model, config, out_dir)
    write_sidecars(
        config,
        out_dir,
        {
            "format": "savedmodel",
            "signatures": {
                "serving_default": {
                    "inputs": ["image", "score_threshold"],
                    "outputs": ["boxes_xyxy", "scores", "classes"],
                },
                "detect_normalized": {
                    "inputs": ["image", "score_threshold"],
                    "outputs": ["boxes_yxyx_norm", "scores", "classes", "raw"],
                },
            },
        },
    )
    return out_dir
