"""Training-side TensorFlow: the label encoder and the loss of ``skuaudit train``.

The network itself (``build_raw_model``, re-exported here) is backend-agnostic Keras 3 in
``detector.network``, which also holds ``keras.ops`` versions of the encoder and the loss for the
JAX trainer (``training.jax_train``); the tests hold both versions equal.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from skuaudit.detections import IGNORE_ID
from skuaudit.detector.network import build_raw_model

__all__ = ["LabelEncoder", "build_raw_model", "detection_loss", "iou_yxyx_tf"]


def iou_yxyx_tf(boxes: tf.Tensor, anchors: tf.Tensor) -> tf.Tensor:
    """Pairwise IoU of ``(N, 4)`` and ``(A, 4)`` ``yxyx`` boxes, ``(N, A)`` (TensorFlow)."""
    y1 = tf.maximum(boxes[:, None, 0], anchors[None, :, 0])
    x1 = tf.maximum(boxes[:, None, 1], anchors[None, :, 1])
    y2 = tf.minimum(boxes[:, None, 2], anchors[None, :, 2])
    x2 = tf.minimum(boxes[:, None, 3], anchors[None, :, 3])
    inter = tf.maximum(y2 - y1, 0.0) * tf.maximum(x2 - x1, 0.0)
    area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area_a = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    return inter / tf.maximum(area_b[:, None] + area_a[None, :] - inter, 1e-9)


class LabelEncoder:
    """Matches ground-truth boxes to anchors and builds per-anchor training targets.

    An anchor is positive when its best IoU is at least ``positive_iou``, negative below
    ``negative_iou`` and ignored in between; every box also claims its best anchor, so tall
    bottles that fit no anchor well still get one. A box of class ``IGNORE_ID`` (an uncertain
    pseudo-label) makes no positive: the anchors it would make positive are ignored.

    Args:
        anchors_yxyx_norm: ``(A, 4)`` anchors from :func:`make_anchors`.
        num_classes: number of detector classes ``C``.
        box_variance: divisors of the SSD deltas.
    """

    def __init__(
        self,
        anchors_yxyx_norm: np.ndarray,
        num_classes: int,
        box_variance: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2),
        positive_iou: float = 0.5,
        negative_iou: float = 0.4,
    ) -> None:
        self.anchors = tf.constant(anchors_yxyx_norm, dtype=tf.float32)
        self.num_classes = num_classes
        self.box_variance = tf.constant(box_variance, dtype=tf.float32)
        self.positive_iou = positive_iou
        self.negative_iou = negative_iou

    def encode_image(self, boxes_yxyx_norm: tf.Tensor, class_ids: tf.Tensor) -> tf.Tensor:
        """Targets for one image.

        Args:
            boxes_yxyx_norm: ``(max_boxes, 4)`` float32, zero-padded.
            class_ids: ``(max_boxes,)`` int32, padding is ``-1``, ignore boxes ``IGNORE_ID``.

        Returns:
            ``(A, 4 + C + 1)`` float32: box deltas, one-hot class, and the anchor state
            (``1`` positive, ``0`` negative, ``-1`` ignored).
        """
        valid = (
            ((class_ids >= 0) | (class_ids == IGNORE_ID))
            & (boxes_yxyx_norm[:, 2] > boxes_yxyx_norm[:, 0])
            & (boxes_yxyx_norm[:, 3] > boxes_yxyx_norm[:, 1])
        )
        boxes = tf.boolean_mask(boxes_yxyx_norm, valid)
        classes = tf.boolean_mask(class_ids, valid)
        num_anchors = tf.shape(self.anchors)[0]
        iou = iou_yxyx_tf(boxes, self.anchors)  # (N, A)
        num_boxes = tf.shape(boxes)[0]
        best_iou = tf.cond(
            num_boxes > 0, lambda: tf.reduce_max(iou, axis=0), lambda: tf.zeros([num_anchors])
        )
        matched = tf.cond(
            num_boxes > 0,
            lambda: tf.argmax(iou, axis=0, output_type=tf.int32),
            lambda: tf.zeros([num_anchors], tf.int32),
        )
        forced_anchor = tf.argmax(iou, axis=1, output_type=tf.int32)  # (N,)
        best_iou = tf.tensor_scatter_nd_update(
            best_iou, forced_anchor[:, None], tf.ones([num_boxes], tf.float32)
        )
        matched = tf.tensor_scatter_nd_update(matched, forced_anchor[:, None], tf.range(num_boxes))
        gt_class = tf.gather(tf.concat([classes, [-1]], 0), tf.minimum(matched, num_boxes))
        # An anchor an ignore box would make positive is ignored instead.
        positive = (best_iou >= self.positive_iou) & (gt_class >= 0)
        state = tf.where(positive, 1.0, tf.where(best_iou < self.negative_iou, 0.0, -1.0))
        gt = tf.gather(tf.concat([boxes, tf.zeros([1, 4])], 0), tf.minimum(matched, num_boxes))
        gt = tf.where(positive[:, None], gt, self.anchors)  # negatives: zero deltas, no NaN
        deltas = self._encode(gt)
        one_hot = tf.one_hot(tf.where(positive, gt_class, -1), self.num_classes)
        return tf.concat([deltas, one_hot, state[:, None]], axis=-1)

    def _encode(self, boxes_yxyx_norm: tf.Tensor) -> tf.Tensor:
        a = self.anchors
        a_hw = tf.maximum(a[:, 2:] - a[:, :2], 1e-6)
        a_c = (a[:, :2] + a[:, 2:]) / 2
        b_hw = tf.maximum(boxes_yxyx_norm[:, 2:] - boxes_yxyx_norm[:, :2], 1e-6)
        b_c = (boxes_yxyx_norm[:, :2] + boxes_yxyx_norm[:, 2:]) / 2
        deltas = tf.concat([(b_c - a_c) / a_hw, tf.math.log(b_hw / a_hw)], axis=-1)
        return deltas / self.box_variance

    def encode_batch(self, boxes_yxyx_norm: tf.Tensor, class_ids: tf.Tensor) -> tf.Tensor:
        """``(B, max_boxes, 4)`` + ``(B, max_boxes)`` -> ``(B, A, 4 + C + 1)`` targets."""
        return tf.map_fn(
            lambda args: self.encode_image(args[0], args[1]),
            (boxes_yxyx_norm, class_ids),
            fn_output_signature=tf.TensorSpec([None, 4 + self.num_classes + 1], tf.float32),
        )


def detection_loss(
    targets: tf.Tensor,
    predictions: tf.Tensor,
    class_mask: tf.Tensor,
    num_classes: int,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
    normalisation: str = "image",
) -> tuple[tf.Tensor, tf.Tensor]:
    """Focal classification loss and Huber box loss, both normalised by the positive anchors.

    With ``normalisation="image"`` (default) each image's loss is divided by its own positive
    anchors and the batch mean is taken, so every image weighs the same; ``"batch"`` divides the
    batch sum by the batch's positives (RetinaNet), which lets a dense synthetic shelf (~500
    positive anchors) drown a real gap photo (~20) in a mixed batch: the default model trained that
    way under-fitted the gaps (gap AP50 0.42 on its own training photos).

    Args:
        targets: ``(B, A, 4 + C + 1)`` from ``LabelEncoder.encode_batch``.
        predictions: ``(B, A, 4 + C)`` raw model outputs.
        class_mask: ``(B, C)`` float32, 1 where the class is exhaustively labelled in that image;
            0 drops that class's loss on every anchor of the image (unlabelled products in gap photos).
        num_classes: ``C``.
        normalisation: ``"image"`` or ``"batch"`` (see above).

    Returns:
        ``(class_loss, box_loss)`` scalars.
    """
    if normalisation not in ("image", "batch"):
        raise ValueError(f"normalisation must be 'image' or 'batch', got {normalisation!r}")
    box_t, cls_t, state = targets[..., :4], targets[..., 4 : 4 + num_classes], targets[..., -1]
    box_p, logits = predictions[..., :4], predictions[..., 4:]
    positive = tf.cast(state > 0, tf.float32)
    not_ignored = tf.cast(state >= 0, tf.float32)

    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=cls_t, logits=logits)
    prob = tf.sigmoid(logits)
    p_t = cls_t * prob + (1 - cls_t) * (1 - prob)
    alpha_t = cls_t * focal_alpha + (1 - cls_t) * (1 - focal_alpha)
    focal = alpha_t * tf.pow(1 - p_t, focal_gamma) * ce
    focal = focal * not_ignored[..., None] * class_mask[:, None, :]
    huber = tf.reduce_sum(
        keras.losses.huber(box_t[..., None], box_p[..., None], delta=1.0), axis=-1
    )
    per_image_class = tf.reduce_sum(focal, axis=[1, 2])  # (B,)
    per_image_box = tf.reduce_sum(huber * positive, axis=1)  # (B,)
    if normalisation == "image":
        per_image_norm = tf.maximum(tf.reduce_sum(positive, axis=1), 1.0)
        return (
            tf.reduce_mean(per_image_class / per_image_norm),
            tf.reduce_mean(per_image_box / per_image_norm),
        )
    normaliser = tf.maximum(tf.reduce_sum(positive), 1.0)
    return tf.reduce_sum(per_image_class) / normaliser, tf.reduce_sum(per_image_box) / normaliser
