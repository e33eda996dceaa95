"""Box helpers and SSD anchors (numpy).

Box formats are part of every name: ``yxyx_norm`` is ``[y1, x1, y2, x2]`` in ``0..1`` of the model
input; ``deltas`` are SSD offsets ``[ty, tx, th, tw]`` of a box relative to an anchor, divided by
``box_variance``. Numpy only: inference needs no TensorFlow (the training targets are built by
``network.encode_targets``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def yxyx_to_center(boxes_yxyx: np.ndarray) -> np.ndarray:
    """``(..., 4)`` ``[y1, x1, y2, x2]`` -> ``(..., 4)`` ``[cy, cx, h, w]`` (numpy)."""
    y1, x1, y2, x2 = np.moveaxis(np.asarray(boxes_yxyx, dtype=np.float32), -1, 0)
    return np.stack([(y1 + y2) / 2, (x1 + x2) / 2, y2 - y1, x2 - x1], axis=-1)


def center_to_yxyx(boxes_center: np.ndarray) -> np.ndarray:
    """``(..., 4)`` ``[cy, cx, h, w]`` -> ``(..., 4)`` ``[y1, x1, y2, x2]`` (numpy)."""
    cy, cx, h, w = np.moveaxis(np.asarray(boxes_center, dtype=np.float32), -1, 0)
    return np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)


def encode_deltas(
    boxes_yxyx_norm: np.ndarray, anchors_yxyx_norm: np.ndarray, box_variance: tuple[float, ...]
) -> np.ndarray:
    """SSD offsets of ``(N, 4)`` boxes against ``(N, 4)`` anchors, both ``yxyx_norm``; ``(N, 4)`` deltas."""
    box = yxyx_to_center(boxes_yxyx_norm)
    anchor = yxyx_to_center(anchors_yxyx_norm)
    deltas = np.concatenate(
        [
            (box[..., :2] - anchor[..., :2]) / anchor[..., 2:],
            np.log(box[..., 2:] / anchor[..., 2:]),
        ],
        axis=-1,
    )
    return (deltas / np.asarray(box_variance, dtype=np.float32)).astype(np.float32)


def decode_deltas(
    deltas: np.ndarray, anchors_yxyx_norm: np.ndarray, box_variance: tuple[float, ...]
) -> np.ndarray:
    """Inverse of :func:`encode_deltas`: ``(N, 4)`` deltas + ``(N, 4)`` anchors -> ``(N, 4)`` ``yxyx_norm``."""
    deltas = np.asarray(deltas, dtype=np.float32) * np.asarray(box_variance, dtype=np.float32)
    anchor = yxyx_to_center(anchors_yxyx_norm)
    # exp() of a wild untrained output would overflow to inf; 4.0 is a 55x size change, plenty.
    size = np.exp(np.clip(deltas[..., 2:], -4.0, 4.0)) * anchor[..., 2:]
    center = deltas[..., :2] * anchor[..., 2:] + anchor[..., :2]
    return center_to_yxyx(np.concatenate([center, size], axis=-1))


@dataclass(frozen=True)
class AnchorSpec:
    """Where anchors sit and what shapes they take.

    Attributes:
        image_size: square model input side in pixels.
        strides: feature-map strides, one pyramid level each.
        size_factor: anchor side (square anchor, scale 1) = ``stride * size_factor`` pixels.
        scales: extra size multipliers per location.
        aspect_ratios: anchor ``width / height``; below 1 for tall bottles, above 1 for wide boxes.
    """

    image_size: int = 320
    strides: tuple[int, ...] = (8, 16, 32, 64)
    size_factor: float = 2.0
    scales: tuple[float, ...] = (1.0, 1.5)
    aspect_ratios: tuple[float, ...] = (0.33, 0.75, 1.6, 4.0)

    @property
    def anchors_per_location(self) -> int:
        return len(self.scales) * len(self.aspect_ratios)

    def feature_sizes(self) -> list[int]:
        """Side of each level's square feature map (``ceil(image_size / stride)``, as Keras ``same`` padding)."""
        return [-(-self.image_size // s) for s in self.strides]


def make_anchors(spec: AnchorSpec) -> np.ndarray:
    """All anchors, ``(num_anchors, 4)`` float32 ``yxyx_norm``, in the model's output order.

    Order: level, then row, then column, then ``scales x aspect_ratios`` (matches the head reshape).

    Example:
        >>> make_anchors(AnchorSpec(image_size=128)).shape
        (2720, 4)
    """
    shapes = []
    for scale in spec.scales:
        for ratio in spec.aspect_ratios:
            shapes.append(
                (scale / np.sqrt(ratio), scale * np.sqrt(ratio))
            )  # (h, w) in stride units
    shapes_hw = np.asarray(shapes, dtype=np.float32)
    levels = []
    for stride, side in zip(spec.strides, spec.feature_sizes(), strict=True):
        centers = (np.arange(side, dtype=np.float32) + 0.5) * stride
        cy, cx = np.meshgrid(centers, centers, indexing="ij")
        cy = np.repeat(cy.reshape(-1, 1), len(shapes_hw), axis=1)
        cx = np.repeat(cx.reshape(-1, 1), len(shapes_hw), axis=1)
        h = np.broadcast_to(shapes_hw[:, 0] * stride * spec.size_factor, cy.shape)
        w = np.broadcast_to(shapes_hw[:, 1] * stride * spec.size_factor, cy.shape)
        levels.append(np.stack([cy, cx, h, w], axis=-1).reshape(-1, 4))
    return center_to_yxyx(np.concatenate(levels) / spec.image_size).astype(np.float32)
