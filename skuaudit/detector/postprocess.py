"""From raw SSD outputs to pixel boxes: decode, per-class NMS, and merging of overlapping tiles.

Pure numpy + OpenCV, no TensorFlow: the same functions serve every runtime (TFLite, tf.function,
an exported graph whose raw outputs are read back in Python).
"""

from __future__ import annotations

import cv2
import numpy as np

from skuaudit.detections import Detections, box_intersection_xyxy
from skuaudit.detector.boxes import decode_deltas


def nms_per_class(
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float,
    max_detections: int,
) -> np.ndarray:
    """Indices kept by per-class non-maximum suppression, best score first.

    Args:
        boxes_xyxy: ``(N, 4)`` pixel ``[x1, y1, x2, y2]``.
        scores: ``(N,)`` scores.
        class_ids: ``(N,)`` ints; boxes of different classes never suppress each other.
        iou_threshold: suppress a box whose IoU with a better box of its class exceeds this.
        max_detections: most indices returned (no hidden cap below it).

    Returns:
        ``(K,)`` int indices into the inputs, ``K <= max_detections``.
    """
    if len(boxes_xyxy) == 0:
        return np.empty(0, dtype=np.int64)
    boxes_xywh = np.asarray(boxes_xyxy, dtype=np.float64).copy()
    boxes_xywh[:, 2:] -= boxes_xywh[:, :2]
    keep = cv2.dnn.NMSBoxesBatched(
        boxes_xywh.tolist(),
        np.asarray(scores, dtype=np.float32).tolist(),
        np.asarray(class_ids, dtype=np.int32).tolist(),
        0.0,
        float(iou_threshold),
    )
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    keep = keep[np.argsort(-np.asarray(scores)[keep], kind="stable")]
    return keep[:max_detections]


def decode_detections(
    raw: np.ndarray,
    anchors_yxyx_norm: np.ndarray,
    image_wh: tuple[int, int],
    *,
    box_variance: tuple[float, ...],
    score_threshold: float,
    nms_iou: float,
    max_detections: int,
    pre_nms_top_k: int,
) -> Detections:
    """Turn one image's raw outputs into pixel detections.

    Args:
        raw: ``(A, 4 + C)`` box deltas then class logits, from the raw model.
        anchors_yxyx_norm: ``(A, 4)`` anchors in ``yxyx_norm``.
        image_wh: size of the image the model input was resized from; boxes are scaled to it.
        box_variance: the delta divisors the model was trained with.
        score_threshold: minimum sigmoid class score.
        nms_iou: per-class NMS IoU threshold.
        max_detections: most boxes returned.
        pre_nms_top_k: most candidates per class entering NMS.

    Returns:
        Detections with pixel ``xyxy`` clipped to the image, best score first.
    """
    logits = raw[:, 4:]
    scores = 1.0 / (1.0 + np.exp(-logits))
    anchor_idx, class_ids = np.nonzero(scores >= score_threshold)
    if len(anchor_idx) == 0:
        return Detections.empty()
    cand_scores = scores[anchor_idx, class_ids]
    keep_top = []
    for c in np.unique(class_ids):
        idx = np.flatnonzero(class_ids == c)
        keep_top.append(idx[np.argsort(-cand_scores[idx], kind="stable")[:pre_nms_top_k]])
    sel = np.concatenate(keep_top)
    anchor_idx, class_ids, cand_scores = anchor_idx[sel], class_ids[sel], cand_scores[sel]
    yxyx = decode_deltas(raw[anchor_idx, :4], anchors_yxyx_norm[anchor_idx], box_variance)
    w, h = image_wh
    xyxy = np.stack([yxyx[:, 1] * w, yxyx[:, 0] * h, yxyx[:, 3] * w, yxyx[:, 2] * h], axis=1)
    xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
    keep = nms_per_class(xyxy, cand_scores, class_ids, nms_iou, max_detections)
    return Detections(xyxy[keep], cand_scores[keep], class_ids[keep])


def merge_tile_detections(
    parts: list[Detections],
    tiles_xyxy: np.ndarray,
    image_wh: tuple[int, int],
    *,
    nms_iou: float,
    border_margin_px: float = 2.0,
    cut_containment: float = 0.6,
) -> Detections:
    """Merge per-tile detections (already in image pixels) into one set for the whole image.

    A box touching a tile edge that is not an image edge is *cut*: the object continues in the
    neighbouring tile, which (because tiles overlap by more than a product) holds the whole box.
    Cut boxes lying mostly (``cut_containment`` of their area) inside a whole box of the same class
    are dropped; cut boxes of objects no tile holds whole are kept. Duplicates of whole boxes found
    by two tiles are then removed by per-class NMS.

    Args:
        parts: one Detections per tile, pixel ``xyxy`` of the whole image.
        tiles_xyxy: ``(T, 4)`` pixel tiles, in the order of ``parts``.
        image_wh: the whole image's size.
        nms_iou: per-class NMS IoU threshold across tiles.
        border_margin_px: how close to a tile edge a box side counts as touching it.
        cut_containment: intersection over the cut box's area above which it is dropped.

    Returns:
        Merged Detections, best score first.
    """
    width, height = image_wh
    cut_flags = []
    for det, tile in zip(parts, np.asarray(tiles_xyxy, dtype=np.float32), strict=True):
        x1, y1, x2, y2 = tile
        b = det.xyxy
        cut = (
            ((b[:, 0] <= x1 + border_margin_px) & (x1 > 0))
            | ((b[:, 1] <= y1 + border_margin_px) & (y1 > 0))
            | ((b[:, 2] >= x2 - border_margin_px) & (x2 < width))
            | ((b[:, 3] >= y2 - border_margin_px) & (y2 < height))
        )
        cut_flags.append(cut)
    merged = Detections.merge(list(parts))
    if len(merged) == 0:
        return merged
    cut = np.concatenate(cut_flags)
    whole_idx, cut_idx = np.flatnonzero(~cut), np.flatnonzero(cut)
    drop = np.zeros(len(merged), dtype=bool)
    if len(whole_idx) and len(cut_idx):
        share = share_inside(merged.xyxy[cut_idx], merged.xyxy[whole_idx])
        contained = share >= cut_containment
        same_class = merged.class_id[cut_idx][:, None] == merged.class_id[whole_idx][None, :]
        drop[cut_idx] = np.any(contained & same_class, axis=1)
    merged = merged[~drop]
    keep = nms_per_class(merged.xyxy, merged.confidence, merged.class_id, nms_iou, len(merged))
    return merged[keep]


def share_inside(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """``(N, M)``: the share of each of the ``(N, 4)`` ``inner`` boxes' area that lies inside
    each of the ``(M, 4)`` ``outer`` boxes (``xyxy``; a box of no area counts as 1e-6)."""
    areas = np.maximum((inner[:, 2] - inner[:, 0]) * (inner[:, 3] - inner[:, 1]), 1e-6)
    return box_intersection_xyxy(inner, outer) / areas[:, None]


def suppress_contained(
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    *,
    containment: float,
    stack_min_contained: int,
    drop_contained: bool,
) -> np.ndarray:
    """Keep mask that applies the facing-counting rules to nested boxes of one class.

    NMS leaves nested boxes alone (their IoU is low), yet a shelf count must hold neither a stack
    of packs and each pack, nor a pack and a box around its label. Two rules, in this order:

    1. *stack boxes*: a box holding at least ``stack_min_contained`` higher-scored boxes of its
       class, each with ``containment`` of its area inside it, is dropped (the items count);
    2. *contained boxes*: with ``drop_contained``, a box with ``containment`` of its area inside a
       higher-scored box of its class that rule 1 kept is dropped.

    Like NMS, a box is only ever dropped because of higher-scored boxes, so filtering the result by
    a score threshold gives the same boxes as applying the rules to the boxes above it: low-scored
    fragments cannot remove a confident box, and COCO AP at a low threshold measures the same
    detector as counting at the default threshold.

    Args:
        boxes_xyxy: ``(N, 4)`` pixel ``[x1, y1, x2, y2]``.
        scores: ``(N,)`` scores.
        class_ids: ``(N,)`` ints; boxes of different classes never suppress each other.
        containment: share of a box's area (0..1] inside another box for it to count as inside.
        stack_min_contained: contained higher-scored boxes that make a stack box; ``0`` turns
            rule 1 off.
        drop_contained: turn rule 2 on.

    Returns:
        ``(N,)`` bool, ``True`` for the boxes to keep.

    Example:
        >>> boxes = np.array([[0, 0, 20, 40], [0, 0, 20, 20], [0, 20, 20, 40]], np.float32)
        >>> suppress_contained(boxes, np.array([0.6, 0.8, 0.7]), np.zeros(3, int),
        ...                    containment=0.8, stack_min_contained=2, drop_contained=True).tolist()
        [False, True, True]
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64)
    class_ids = np.asarray(class_ids)
    held = share_inside(boxes, boxes).T  # held[i, j]: the share of box j inside box i
    np.fill_diagonal(held, 0.0)
    # inside[i, j]: box j lies mostly inside box i (same class only)
    inside = (held >= containment) & (class_ids[:, None] == class_ids[None, :])
    better = scores[:, None] < scores[None, :]  # better[i, j]: j scores higher than i
    keep = np.ones(len(boxes), dtype=bool)
    if stack_min_contained > 0:
        keep &= (inside & better).sum(axis=1) < stack_min_contained
    if drop_contained:
        keep &= ~np.any(inside & better.T & keep[:, None], axis=0)
    return keep


def suppress_inside_empty(
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    empty: np.ndarray,
    *,
    containment: float,
    counted: np.ndarray | None = None,
) -> np.ndarray:
    """Keep mask that drops boxes lying inside a higher-scored box that marks an empty stretch.

    A facing cannot stand in an empty stretch of shelf: where a box of a class such as ``gap``
    holds another class's box, one of them is wrong, and the better-scored one is believed.
    (Seen on a regular texture such as a grid-patterned back wall: tiles of a frame box its
    squares as tiny products inside the gap around them.) As in ``suppress_contained``, a box
    is only dropped for a higher-scored one.

    Args:
        boxes_xyxy: ``(N, 4)`` pixel ``[x1, y1, x2, y2]``.
        scores: ``(N,)`` scores.
        empty: ``(N,)`` bool, ``True`` for the boxes that mark an empty stretch; those are
            never dropped here.
        containment: share of a box's area (0..1] inside an empty box for it to be dropped.
        counted: ``(N,)`` bool, the empty boxes that may drop others (e.g. those that reach
            their class's threshold); ``None``: all of them.

    Returns:
        ``(N,)`` bool, ``True`` for the boxes to keep.

    Example:
        >>> boxes = np.array([[0, 0, 100, 40], [10, 10, 20, 20], [90, 0, 130, 40]], np.float32)
        >>> suppress_inside_empty(boxes, np.array([0.6, 0.5, 0.7]), np.array([True, False, False]),
        ...                       containment=0.8).tolist()
        [True, False, True]
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64)
    empty = np.asarray(empty, dtype=bool)
    droppers = empty if counted is None else empty & np.asarray(counted, dtype=bool)
    keep = np.ones(len(boxes), dtype=bool)
    others = np.flatnonzero(~empty)
    if not droppers.any() or len(others) == 0:
        return keep
    inside = share_inside(boxes[others], boxes[droppers]) >= containment
    better = scores[others][:, None] < scores[droppers][None, :]
    keep[others] = ~np.any(inside & better, axis=1)
    return keep


def fuse_views(views: list[Detections], *, iou_threshold: float) -> Detections:
    """Weighted box fusion (Solovyev et al., 2021) of one image's detections from several views.

    Each view is the same image seen differently (e.g. mirrored, boxes mapped back). Per class,
    boxes are taken best score first; a box joins the cluster whose fused box it overlaps most
    when that IoU exceeds ``iou_threshold``, or starts a new one. A cluster's box is the
    score-weighted mean of its members' boxes, its score the mean member score times
    ``min(members, views) / views``: an object every view finds keeps its score, one only a single
    view of two finds has it halved, so agreement ranks above a lone guess.

    Args:
        views: one Detections per view, pixel ``xyxy`` of the same image.
        iou_threshold: IoU with a cluster's fused box above which a box joins it.

    Returns:
        Fused Detections, best score first (extras in ``data`` are dropped).
    """
    num_views = len(views)
    merged = Detections.merge([Detections(v.xyxy, v.confidence, v.class_id) for v in views])
    if len(merged) == 0:
        return merged
    out_xyxy, out_scores, out_classes = [], [], []
    for class_id in np.unique(merged.class_id):
        idx = np.flatnonzero(merged.class_id == class_id)
        idx = idx[np.argsort(-merged.confidence[idx], kind="stable")]
        boxes, scores = merged.xyxy[idx].astype(np.float64), merged.confidence[idx]
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        # clusters 0..k-1 in preallocated arrays (one box per cluster at most); the fused boxes'
        # sides as four columns, so each box is compared with scalar sides (the loop's cost)
        fused, weighted_sum = np.empty_like(boxes), np.empty_like(boxes)
        fx1, fy1, fx2, fy2 = (np.empty(len(boxes)) for _ in range(4))
        fused_area = np.empty(len(boxes))
        score_sum, members = np.empty(len(boxes)), np.empty(len(boxes))
        k = 0
        for box, (x1, y1, x2, y2), area, score in zip(
            boxes, boxes.tolist(), areas.tolist(), scores.tolist(), strict=True
        ):
            if k:
                iw = np.minimum(fx2[:k], x2) - np.maximum(fx1[:k], x1)
                ih = np.minimum(fy2[:k], y2) - np.maximum(fy1[:k], y1)
                inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
                iou = inter / np.maximum(fused_area[:k] + area - inter, 1e-9)
                best = int(np.argmax(iou))
                if iou[best] > iou_threshold:
                    weighted_sum[best] += score * box
                    score_sum[best] += score
                    members[best] += 1
                    b = fused[best] = weighted_sum[best] / score_sum[best]
                    fx1[best], fy1[best], fx2[best], fy2[best] = b
                    fused_area[best] = (b[2] - b[0]) * (b[3] - b[1])
                    continue
            fused[k], weighted_sum[k], fused_area[k] = box, score * box, area
            fx1[k], fy1[k], fx2[k], fy2[k] = x1, y1, x2, y2
            score_sum[k], members[k] = score, 1
            k += 1
        fused, score_sum, counts = fused[:k], score_sum[:k], members[:k]
        out_xyxy.append(fused)
        out_scores.append(score_sum / counts * np.minimum(counts, num_views) / num_views)
        out_classes.append(np.full(len(fused), class_id))
    scores = np.concatenate(out_scores)
    order = np.argsort(-scores, kind="stable")
    return Detections(
        np.concatenate(out_xyxy)[order].astype(np.float32),
        scores[order].astype(np.float32),
        np.concatenate(out_classes)[order],
    )
