"""The SSD network and its training targets and loss in backend-agnostic Keras 3 (no TensorFlow).

``build_raw_model(config)`` returns a plain Keras model (only built-in layers, so ``model.keras``
loads without custom objects): input ``(B, S, S, 3)`` float32 RGB in ``0..255``, output
``(B, A, 4 + C)``: SSD box deltas (see ``boxes.encode_deltas``) then class logits (sigmoid), one row
per anchor of ``boxes.make_anchors(config.anchor_spec)``.

``encode_targets`` and ``detection_loss`` are written in ``keras.ops``, so the one training loop
(``skuaudit.training.train``) runs on TensorFlow and on JAX (accelerator machines without
TensorFlow); the targets are built inside the compiled training step from padded boxes.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from skuaudit.detections import IGNORE_ID
from skuaudit.detector.config import LOSS_NORMALISATIONS, DetectorConfig

_BACKBONE_TAPS = ("block_5_add", "block_12_add", "block_16_project_BN")  # strides 8, 16, 32
# Keras' MobileNetV2 uses 0.999: trained from scratch for a few thousand CPU steps, its moving
# statistics would still be half at their initial values and inference-mode outputs useless.
_BN_MOMENTUM = 0.9


def _separable_block(x, channels: int, name: str, strides: int = 1):
    x = keras.layers.SeparableConv2D(
        channels, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_sep"
    )(x)
    x = keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x)


def build_raw_model(config: DetectorConfig) -> keras.Model:
    """SSD MobileNetV2-FPNLite, randomly initialised (no downloads).

    Args:
        config: sizes, width and anchor layout.

    Returns:
        Keras model ``(B, S, S, 3)`` RGB ``0..255`` -> ``(B, A, 4 + C)`` deltas and class logits.
    """
    size = config.image_size
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    backbone = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=config.alpha, include_top=False, weights=None
    )
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = _BN_MOMENTUM
    taps = keras.Model(backbone.input, [backbone.get_layer(n).output for n in _BACKBONE_TAPS])
    c3, c4, c5 = taps(x)
    ch = config.fpn_channels
    lateral = [
        keras.layers.Conv2D(ch, 1, name=f"fpn_lateral{i}")(c)
        for i, c in zip((3, 4, 5), (c3, c4, c5), strict=True)
    ]
    p5 = lateral[2]
    p4 = keras.layers.Add(name="fpn_add4")(
        [lateral[1], keras.layers.UpSampling2D(name="fpn_up5")(p5)]
    )
    p3 = keras.layers.Add(name="fpn_add3")(
        [lateral[0], keras.layers.UpSampling2D(name="fpn_up4")(p4)]
    )
    levels = [
        _separable_block(p, ch, f"fpn_p{i}") for i, p in zip((3, 4, 5), (p3, p4, p5), strict=True)
    ]
    levels.append(_separable_block(levels[-1], ch, "fpn_p6", strides=2))

    per_location = config.anchor_spec.anchors_per_location

    def tower(prefix: str) -> list:
        return [
            keras.layers.SeparableConv2D(
                ch, 3, padding="same", activation="relu6", name=f"{prefix}{i}"
            )
            for i in range(config.head_depth)
        ]

    if config.separate_towers:
        box_convs, cls_convs = tower("head_box_conv"), tower("head_class_conv")
    else:
        box_convs = cls_convs = tower("head_conv")
    box_out = keras.layers.SeparableConv2D(per_location * 4, 3, padding="same", name="head_box")
    prior = -math.log((1 - 0.01) / 0.01)  # focal-loss prior: start at p=0.01
    cls_out = keras.layers.SeparableConv2D(
        per_location * config.num_classes,
        3,
        padding="same",
        bias_initializer=keras.initializers.Constant(prior),
        name="head_class",
    )

    def run(convs: list, x):
        for conv in convs:
            x = conv(x)
        return x

    boxes, logits = [], []
    for i, level in enumerate(levels):
        box_h = run(box_convs, level)
        cls_h = box_h if cls_convs is box_convs else run(cls_convs, level)
        boxes.append(keras.layers.Reshape((-1, 4), name=f"box_level{i}")(box_out(box_h)))
        logits.append(
            keras.layers.Reshape((-1, config.num_classes), name=f"class_level{i}")(cls_out(cls_h))
        )
    box_all = keras.layers.Concatenate(axis=1, name="box_deltas")(boxes)
    cls_all = keras.layers.Concatenate(axis=1, name="class_logits")(logits)
    outputs = keras.layers.Concatenate(axis=-1, name="raw_outputs")([box_all, cls_all])
    return keras.Model(inputs, outputs, name=f"ssd_mobilenetv2_fpnlite_{size}")


def pairwise_iou_yxyx(boxes, anchors):
    """IoU of ``(B, M, 4)`` boxes with ``(A, 4)`` anchors (``yxyx``), ``(B, M, A)``."""
    b = boxes[:, :, None, :]
    y1 = ops.maximum(b[..., 0], anchors[:, 0])
    x1 = ops.maximum(b[..., 1], anchors[:, 1])
    y2 = ops.minimum(b[..., 2], anchors[:, 2])
    x2 = ops.minimum(b[..., 3], anchors[:, 3])
    inter = ops.maximum(y2 - y1, 0.0) * ops.maximum(x2 - x1, 0.0)
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    area_a = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    return inter / ops.maximum(area_b + area_a - inter, 1e-9)


def encode_targets(
    boxes_yxyx_norm,
    class_ids,
    anchors_yxyx_norm: np.ndarray,
    num_classes: int,
    box_variance=(0.1, 0.1, 0.2, 0.2),
    positive_iou: float = 0.5,
    negative_iou: float = 0.4,
):
    """Per-anchor training targets of a batch.

    An anchor is positive when its best IoU is at least ``positive_iou``, negative below
    ``negative_iou`` and ignored in between; every box also claims its best anchor (when two boxes
    claim the same anchor, the later box keeps it). A box of class ``IGNORE_ID`` (an uncertain
    pseudo-label) makes no positive: the anchors it would make positive are ignored.

    Args:
        boxes_yxyx_norm: ``(B, M, 4)`` float32, zero-padded.
        class_ids: ``(B, M)`` int32, padding is ``-1``, ignore boxes ``IGNORE_ID`` (-2).
        anchors_yxyx_norm: ``(A, 4)`` from ``boxes.make_anchors``.
        num_classes: ``C``.
        box_variance: divisors of the SSD deltas.

    Returns:
        ``(B, A, 4 + C + 1)`` float32: box deltas, one-hot class, anchor state
        (``1`` positive, ``0`` negative, ``-1`` ignored).
    """
    boxes = ops.cast(boxes_yxyx_norm, "float32")
    class_ids = ops.cast(class_ids, "int32")
    anchors = ops.convert_to_tensor(np.asarray(anchors_yxyx_norm, np.float32))
    num_boxes = ops.shape(boxes)[1]
    num_anchors = int(anchors_yxyx_norm.shape[0])
    valid = (
        ((class_ids >= 0) | (class_ids == IGNORE_ID))
        & (boxes[..., 2] > boxes[..., 0])
        & (boxes[..., 3] > boxes[..., 1])
    )  # (B, M)
    iou = ops.where(valid[..., None], pairwise_iou_yxyx(boxes, anchors), -1.0)  # (B, M, A)
    best_iou = ops.max(iou, axis=1)  # (B, A); -1 where the image has no box
    matched = ops.cast(ops.argmax(iou, axis=1), "int32")
    forced = ops.cast(ops.argmax(iou, axis=2), "int32")  # (B, M): each box's best anchor
    claims = (forced[..., None] == ops.arange(num_anchors, dtype="int32")) & valid[..., None]
    claimed = ops.any(claims, axis=1)  # (B, A)
    # The last claiming box: argmax over the reversed box axis.
    last = (
        num_boxes
        - 1
        - ops.cast(ops.argmax(ops.flip(ops.cast(claims, "int32"), 1), axis=1), "int32")
    )
    best_iou = ops.where(claimed, 1.0, best_iou)
    matched = ops.where(claimed, last, matched)
    gt_class = ops.take_along_axis(class_ids, matched, axis=1)  # (B, A)
    # An anchor an ignore box would make positive is ignored instead.
    positive = (best_iou >= positive_iou) & (gt_class >= 0)
    state = ops.where(positive, 1.0, ops.where(best_iou < negative_iou, 0.0, -1.0))
    gt = ops.take_along_axis(boxes, matched[..., None], axis=1)  # (B, A, 4)
    gt = ops.where(positive[..., None], gt, anchors[None])  # negatives: zero deltas, no NaN
    a_hw = ops.maximum(anchors[:, 2:] - anchors[:, :2], 1e-6)
    a_c = (anchors[:, :2] + anchors[:, 2:]) / 2
    b_hw = ops.maximum(gt[..., 2:] - gt[..., :2], 1e-6)
    b_c = (gt[..., :2] + gt[..., 2:]) / 2
    deltas = ops.concatenate([(b_c - a_c) / a_hw, ops.log(b_hw / a_hw)], axis=-1)
    deltas = deltas / ops.convert_to_tensor(np.asarray(box_variance, np.float32))
    one_hot = ops.one_hot(ops.maximum(gt_class, 0), num_classes)
    one_hot = one_hot * ops.cast(positive, "float32")[..., None]
    return ops.concatenate([deltas, one_hot, state[..., None]], axis=-1)


def detection_loss(
    targets,
    predictions,
    class_mask,
    num_classes: int,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
    normalisation: str = "image",
):
    """Focal classification loss and Huber box loss.

    Args:
        targets: ``(B, A, 4 + C + 1)`` from :func:`encode_targets`.
        predictions: ``(B, A, 4 + C)`` raw model outputs.
        class_mask: ``(B, C)`` float32, 1 where the class is exhaustively labelled in that image.
        num_classes: ``C``.
        normalisation: ``"image"`` (each image over its own positive anchors, then the batch
            mean), ``"class"`` (as ``"image"``, but each class's classification loss over that
            class's own positive anchors in the image, so a class with few boxes on a photo,
            e.g. six gaps among 150 products, is not outweighed by the crowded one) or
            ``"batch"`` (the batch sum over the batch's positives).

    Returns:
        ``(class_loss, box_loss)`` scalars.
    """
    if normalisation not in LOSS_NORMALISATIONS:
        raise ValueError(
            f"normalisation must be one of {LOSS_NORMALISATIONS}, got {normalisation!r}"
        )
    predictions = ops.cast(predictions, "float32")
    box_t, cls_t, state = targets[..., :4], targets[..., 4 : 4 + num_classes], targets[..., -1]
    box_p, logits = predictions[..., :4], predictions[..., 4:]
    positive = ops.cast(state > 0, "float32")
    not_ignored = ops.cast(state >= 0, "float32")
    ce = ops.binary_crossentropy(cls_t, logits, from_logits=True)
    prob = ops.sigmoid(logits)
    p_t = cls_t * prob + (1 - cls_t) * (1 - prob)
    alpha_t = cls_t * focal_alpha + (1 - cls_t) * (1 - focal_alpha)
    focal = alpha_t * ops.power(1 - p_t, focal_gamma) * ce
    focal = focal * not_ignored[..., None] * ops.cast(class_mask, "float32")[:, None, :]
    diff = ops.abs(box_t - box_p)
    huber = ops.sum(ops.where(diff < 1.0, 0.5 * diff * diff, diff - 0.5), axis=-1)
    per_image_box = ops.sum(huber * positive, axis=1)
    if normalisation == "batch":
        normaliser = ops.maximum(ops.sum(positive), 1.0)
        return ops.sum(focal) / normaliser, ops.sum(per_image_box) / normaliser
    per_image_norm = ops.maximum(ops.sum(positive, axis=1), 1.0)
    if normalisation == "class":
        per_class_norm = ops.maximum(ops.sum(cls_t * positive[..., None], axis=1), 1.0)  # (B, C)
        per_image_class = ops.sum(ops.sum(focal, axis=1) / per_class_norm, axis=1)
    else:
        per_image_class = ops.sum(focal, axis=(1, 2)) / per_image_norm
    return ops.mean(per_image_class), ops.mean(per_image_box / per_image_norm)
