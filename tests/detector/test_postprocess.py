from __future__ import annotations

import numpy as np
import pytest

from skuaudit.detections import Detections, box_iou_xyxy
from skuaudit.detector.boxes import AnchorSpec, encode_deltas, make_anchors
from skuaudit.detector.postprocess import (
    decode_detections,
    fuse_views,
    merge_tile_detections,
    nms_per_class,
    suppress_contained,
    suppress_inside_empty,
)
from skuaudit.detector.tiling import tile_grid

VARIANCE = (0.1, 0.1, 0.2, 0.2)


def _grid_boxes(n: int, size: float = 10.0, pitch: float = 12.0) -> np.ndarray:
    cols = int(np.ceil(np.sqrt(n)))
    idx = np.arange(n)
    x, y = (idx % cols) * pitch, (idx // cols) * pitch
    return np.stack([x, y, x + size, y + size], axis=1).astype(np.float32)


@pytest.mark.parametrize("n", [0, 1, 350, 500])
def test_nms_keeps_every_separate_box(n):
    boxes = _grid_boxes(n)
    keep = nms_per_class(boxes, np.linspace(1, 0.5, n), np.zeros(n, int), 0.5, max_detections=1000)
    assert len(keep) == n


@pytest.mark.parametrize(
    "boxes, scores, class_ids, expected",
    [
        ([[0, 0, 10, 10], [1, 1, 10, 10]], [0.9, 0.8], [0, 0], [0]),
        ([[0, 0, 10, 10], [1, 1, 10, 10]], [0.8, 0.9], [0, 0], [1]),
        (
            [[0, 0, 10, 10], [1, 1, 10, 10]],
            [0.9, 0.8],
            [0, 1],
            [0, 1],
        ),  # classes never suppress each other
        ([[0, 0, 10, 10], [20, 0, 30, 10]], [0.5, 0.9], [0, 0], [1, 0]),  # best first
    ],
)
def test_nms_per_class(boxes, scores, class_ids, expected):
    keep = nms_per_class(
        np.array(boxes, np.float32), np.array(scores), np.array(class_ids), 0.5, 10
    )
    assert keep.tolist() == expected


def _decode(raw, anchors, image_wh, max_detections):
    return decode_detections(
        raw,
        anchors,
        image_wh,
        box_variance=VARIANCE,
        score_threshold=0.5,
        nms_iou=0.5,
        max_detections=max_detections,
        pre_nms_top_k=3000,
    )


def test_decode_detections_keeps_over_300_boxes_in_pixels():
    spec = AnchorSpec(image_size=320)
    anchors = make_anchors(spec)
    boxes_px = _grid_boxes(400, size=12, pitch=16) + 2  # 20x20 grid inside a 320x320 input
    boxes_yxyx_norm = boxes_px[:, [1, 0, 3, 2]] / 320
    chosen = np.argmax(
        box_iou_xyxy(boxes_yxyx_norm[:, [1, 0, 3, 2]], anchors[:, [1, 0, 3, 2]]), axis=1
    )
    assert len(set(chosen.tolist())) == 400
    raw = np.zeros((len(anchors), 6), np.float32)
    raw[:, 4:] = -10
    raw[chosen, :4] = encode_deltas(boxes_yxyx_norm, anchors[chosen], VARIANCE)
    raw[chosen, 4] = 5.0
    det = _decode(raw, anchors, (640, 480), max_detections=400)
    assert len(det) == 400 and np.all(det.class_id == 0)
    expected = boxes_px * np.array([2, 1.5, 2, 1.5], np.float32)
    assert np.all(box_iou_xyxy(expected, det.xyxy).max(axis=1) > 0.999)
    capped = _decode(raw, anchors, (640, 480), max_detections=300)
    assert len(capped) == 300


def test_decode_detections_empty():
    anchors = make_anchors(AnchorSpec(image_size=128))
    raw = np.full((len(anchors), 6), -10, np.float32)
    det = _decode(raw, anchors, (100, 100), max_detections=300)
    assert len(det) == 0


def _perfect_tile_detector(gt: Detections, tile, min_visible: float = 0.3) -> Detections:
    """What an ideal model sees in a tile: every box clipped to the tile, in image pixels."""
    x1, y1, x2, y2 = tile
    clipped = np.clip(gt.xyxy, [x1, y1, x1, y1], [x2, y2, x2, y2])
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    visible = area(clipped) / area(gt.xyxy) >= min_visible
    return Detections(clipped[visible], gt.confidence[visible], gt.class_id[visible])


def test_tiled_merge_recovers_boxes_across_tile_borders():
    rng = np.random.default_rng(0)
    width, height = 2000, 1500
    boxes = []
    for y in range(20, height - 120, 130):  # shelf rows of products of varied widths
        x = 5.0
        while x < width - 90:
            w = rng.uniform(30, 90)
            boxes.append([x, y, x + w, y + rng.uniform(60, 115)])
            x += w + rng.uniform(2, 8)
    gt = Detections(
        np.array(boxes), rng.uniform(0.5, 1, len(boxes)), rng.integers(0, 2, len(boxes))
    )
    tiles = np.array(tile_grid(width, height, 600, 0.25))
    assert len(tiles) > 4
    parts = [_perfect_tile_detector(gt, t) for t in tiles]
    cut_in_some_tile = sum(len(p) for p in parts) > len(gt)
    assert cut_in_some_tile
    merged = merge_tile_detections(parts, tiles, (width, height), nms_iou=0.5)
    assert len(merged) == len(gt)
    iou = box_iou_xyxy(gt.xyxy, merged.xyxy)
    assert np.all(iou.max(axis=1) > 0.999)  # every box whole, none cut
    assert np.all((iou > 0.999).sum(axis=0) == 1)  # no duplicates


def test_tiled_merge_empty():
    tiles = np.array(tile_grid(1000, 800, 500, 0.25))
    merged = merge_tile_detections(
        [Detections.empty() for _ in tiles], tiles, (1000, 800), nms_iou=0.5
    )
    assert len(merged) == 0


STACK = [[0, 0, 20, 40], [0, 0, 20, 20], [0, 20, 20, 40]]  # a stack box and its two packs


@pytest.mark.parametrize(
    "boxes, scores, class_ids, stack_min, drop_contained, expected",
    [
        (np.empty((0, 4)), [], [], 2, True, []),
        (STACK, [0.6, 0.8, 0.7], [0, 0, 0], 2, True, [False, True, True]),
        (STACK, [0.6, 0.8, 0.7], [0, 0, 0], 2, False, [False, True, True]),
        (STACK, [0.75, 0.8, 0.7], [0, 0, 0], 2, False, [True, True, True]),  # one item better
        (STACK, [0.75, 0.8, 0.7], [0, 0, 0], 1, False, [False, True, True]),
        (STACK, [0.75, 0.8, 0.7], [0, 0, 0], 2, True, [True, True, False]),  # rule 2: 0.7 inside
        (STACK, [0.9, 0.8, 0.7], [0, 0, 0], 2, True, [True, False, False]),  # items inside better
        (STACK, [0.9, 0.8, 0.7], [0, 0, 0], 2, False, [True, True, True]),
        (STACK, [0.6, 0.8, 0.7], [0, 0, 0], 0, False, [True, True, True]),  # both rules off
        (STACK, [0.6, 0.8, 0.7], [0, 0, 0], 3, True, [True, True, True]),  # 2 items < 3
        (STACK, [0.6, 0.8, 0.7], [0, 1, 1], 2, True, [True, True, True]),  # other class
        ([[0, 0, 20, 40], [0, 0, 20, 10]], [0.9, 0.8], [0, 0], 2, True, [True, False]),  # a label
        ([[0, 0, 20, 20], [10, 0, 30, 20]], [0.9, 0.8], [0, 0], 2, True, [True, True]),  # half
        ([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], [0, 0], 2, True, [True, False]),  # equal
        ([[0, 0, 10, 10], [20, 0, 30, 10]], [0.9, 0.8], [0, 0], 1, True, [True, True]),  # apart
    ],
)
def test_suppress_contained(boxes, scores, class_ids, stack_min, drop_contained, expected):
    keep = suppress_contained(
        np.array(boxes, np.float32),
        np.array(scores, np.float32),
        np.array(class_ids, np.int64),
        containment=0.8,
        stack_min_contained=stack_min,
        drop_contained=drop_contained,
    )
    assert keep.dtype == bool and keep.tolist() == expected


@pytest.mark.parametrize(
    "containment, expected",
    [(0.8, [True, False]), (0.95, [True, True])],  # 90 % of the small box lies inside
)
def test_suppress_contained_fraction(containment, expected):
    boxes = np.array([[0, 0, 20, 20], [2, 2, 12, 22]], np.float32)
    keep = suppress_contained(
        boxes,
        np.array([0.9, 0.8]),
        np.zeros(2, int),
        containment=containment,
        stack_min_contained=2,
        drop_contained=True,
    )
    assert keep.tolist() == expected


GAP_WITH_SQUARES = [[0, 0, 100, 40], [10, 10, 20, 20], [30, 10, 40, 20], [90, 0, 130, 40]]


@pytest.mark.parametrize(
    "scores, empty, counted, expected",
    [
        # squares inside a better gap go; the pack half over the gap's edge stays
        ([0.6, 0.5, 0.4, 0.7], [1, 0, 0, 0], None, [True, False, False, True]),
        ([0.6, 0.7, 0.4, 0.7], [1, 0, 0, 0], None, [True, True, False, True]),  # one is better
        ([0.6, 0.5, 0.4, 0.7], [1, 0, 0, 0], [0, 0, 0, 0], [True, True, True, True]),  # not counted
        ([0.6, 0.5, 0.4, 0.7], [0, 0, 0, 0], None, [True, True, True, True]),  # no empty box
        ([0.6, 0.5, 0.4, 0.7], [1, 1, 1, 1], None, [True, True, True, True]),  # never dropped
    ],
)
def test_suppress_inside_empty(scores, empty, counted, expected):
    keep = suppress_inside_empty(
        np.array(GAP_WITH_SQUARES, np.float32),
        np.array(scores),
        np.array(empty, bool),
        containment=0.8,
        counted=None if counted is None else np.array(counted, bool),
    )
    assert keep.dtype == bool and keep.tolist() == expected


def test_suppress_inside_empty_commutes_with_a_score_threshold():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 200, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 80, (300, 2))], axis=1)
    scores, empty = rng.uniform(0, 1, 300), rng.uniform(0, 1, 300) < 0.2
    keep_all = suppress_inside_empty(boxes, scores, empty, containment=0.8)
    above = scores >= 0.5
    keep_above = suppress_inside_empty(boxes[above], scores[above], empty[above], containment=0.8)
    assert keep_above.tolist() == keep_all[above].tolist()
    assert (~keep_all).sum() > 0 and keep_all[empty].all()


def test_suppress_contained_commutes_with_a_score_threshold():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (300, 2))], axis=1)
    scores, class_ids = rng.uniform(0, 1, 300), rng.integers(0, 2, 300)
    rules = dict(containment=0.8, stack_min_contained=2, drop_contained=True)
    keep_all = suppress_contained(boxes, scores, class_ids, **rules)
    above = scores >= 0.5
    keep_above = suppress_contained(boxes[above], scores[above], class_ids[above], **rules)
    assert keep_above.tolist() == keep_all[above].tolist()
    assert 0 < keep_all.sum() < 300


def _dets(boxes, scores, classes=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Detections(boxes, np.asarray(scores, np.float32), classes)


def test_fuse_views_of_identical_views_is_the_view():
    view = _dets([[0, 0, 10, 10], [20, 0, 30, 10]], [0.9, 0.6], [0, 1])
    fused = fuse_views([view, view], iou_threshold=0.6)
    np.testing.assert_allclose(fused.xyxy, view.xyxy)
    np.testing.assert_allclose(fused.confidence, view.confidence)
    np.testing.assert_array_equal(fused.class_id, view.class_id)


def test_fuse_views_weights_boxes_by_score_and_halves_lone_boxes():
    a = _dets([[0, 0, 10, 10], [50, 50, 60, 60]], [0.8, 0.7])
    b = _dets([[2, 0, 12, 10]], [0.2])  # the same object, shifted; the second object is missed
    fused = fuse_views([a, b], iou_threshold=0.5)
    assert len(fused) == 2
    np.testing.assert_allclose(fused.xyxy[0], [0.4, 0, 10.4, 10], atol=1e-5)  # 0.8 / 0.2 mean
    np.testing.assert_allclose(fused.confidence, [0.5, 0.35])  # (0.8 + 0.2) / 2, 0.7 / 2


def test_fuse_views_keeps_classes_and_distant_boxes_apart():
    a = _dets([[0, 0, 10, 10]], [0.9], [0])
    b = _dets([[0, 0, 10, 10], [0, 0, 10, 4]], [0.9, 0.8], [1, 0])  # other class; low IoU box
    fused = fuse_views([a, b], iou_threshold=0.6)
    got = sorted(zip(fused.class_id.tolist(), fused.confidence.tolist(), strict=True))
    assert [c for c, _ in got] == [0, 0, 1]
    np.testing.assert_allclose([s for _, s in got], [0.4, 0.45, 0.45], rtol=1e-6)


def test_fuse_views_empty():
    assert len(fuse_views([Detections.empty(), Detections.empty()], iou_threshold=0.6)) == 0
    one = fuse_views([_dets([[0, 0, 5, 5]], [0.6]), Detections.empty()], iou_threshold=0.6)
    np.testing.assert_allclose(one.confidence, [0.3])
