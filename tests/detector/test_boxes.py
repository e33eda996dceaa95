from __future__ import annotations

import numpy as np
import pytest

from skuaudit.detections import IGNORE_ID
from skuaudit.detector.boxes import (
    AnchorSpec,
    center_to_yxyx,
    decode_deltas,
    encode_deltas,
    make_anchors,
    yxyx_to_center,
)
from skuaudit.detector.network import encode_targets

VARIANCE = (0.1, 0.1, 0.2, 0.2)


@pytest.mark.parametrize(
    "boxes_yxyx_norm, anchors_yxyx_norm",
    [
        (np.empty((0, 4)), np.empty((0, 4))),
        ([[0.1, 0.1, 0.3, 0.2]], [[0.1, 0.1, 0.3, 0.2]]),
        ([[0.1, 0.2, 0.5, 0.3]], [[0.0, 0.0, 0.2, 0.2]]),  # tall bottle on a square anchor
        ([[0.4, 0.1, 0.5, 0.6]], [[0.3, 0.2, 0.6, 0.4]]),  # wide box
        (
            [[0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.51, 0.52]],
            [[0.2, 0.2, 0.3, 0.3], [0.5, 0.5, 0.6, 0.6]],
        ),
    ],
)
def test_encode_decode_round_trip(boxes_yxyx_norm, anchors_yxyx_norm):
    boxes = np.asarray(boxes_yxyx_norm, np.float32).reshape(-1, 4)
    anchors = np.asarray(anchors_yxyx_norm, np.float32).reshape(-1, 4)
    deltas = encode_deltas(boxes, anchors, VARIANCE)
    assert deltas.shape == boxes.shape
    np.testing.assert_allclose(decode_deltas(deltas, anchors, VARIANCE), boxes, atol=1e-5)


@pytest.mark.parametrize(
    "boxes_yxyx, center",
    [
        (np.empty((0, 4)), np.empty((0, 4))),
        ([[0, 0, 2, 4]], [[1, 2, 2, 4]]),
        ([[1, 2, 3, 3]], [[2, 2.5, 2, 1]]),
    ],
)
def test_center_conversions(boxes_yxyx, center):
    np.testing.assert_allclose(
        yxyx_to_center(np.asarray(boxes_yxyx).reshape(-1, 4)), np.reshape(center, (-1, 4))
    )
    np.testing.assert_allclose(
        center_to_yxyx(np.asarray(center).reshape(-1, 4)), np.reshape(boxes_yxyx, (-1, 4))
    )


@pytest.mark.parametrize(
    "spec, expected_count",
    [
        (AnchorSpec(image_size=128), (16 * 16 + 8 * 8 + 4 * 4 + 2 * 2) * 8),
        (AnchorSpec(image_size=320), (40 * 40 + 20 * 20 + 10 * 10 + 5 * 5) * 8),
        (AnchorSpec(image_size=320, strides=(16,), scales=(1.0,), aspect_ratios=(1.0,)), 400),
    ],
)
def test_anchor_count_and_shapes(spec, expected_count):
    anchors = make_anchors(spec)
    assert anchors.shape == (expected_count, 4)
    assert np.all(anchors[:, 2] > anchors[:, 0]) and np.all(anchors[:, 3] > anchors[:, 1])
    ratios = (anchors[:, 3] - anchors[:, 1]) / (anchors[:, 2] - anchors[:, 0])
    np.testing.assert_allclose(
        sorted(set(np.round(ratios, 3))), sorted(set(np.round(spec.aspect_ratios, 3))), atol=1e-3
    )


def test_first_anchors_follow_output_order():
    spec = AnchorSpec(
        image_size=64, strides=(32,), scales=(1.0,), aspect_ratios=(1.0,), size_factor=1.0
    )
    np.testing.assert_allclose(
        make_anchors(spec),
        [[0, 0, 0.5, 0.5], [0, 0.5, 0.5, 1], [0.5, 0, 1, 0.5], [0.5, 0.5, 1, 1]],
    )


def _encode(anchors, boxes, classes, max_boxes=5):
    """``encode_targets`` of one image with ``boxes`` (yxyx_norm) padded to ``max_boxes``."""
    b = np.zeros((1, max_boxes, 4), np.float32)
    c = -np.ones((1, max_boxes), np.int32)
    b[0, : len(boxes)] = np.asarray(boxes, np.float32).reshape(-1, 4)
    c[0, : len(classes)] = classes
    return np.asarray(encode_targets(b, c, anchors, 2))[0]


def test_encode_targets_empty_image_is_all_negative():
    anchors = make_anchors(AnchorSpec(image_size=128))
    targets = _encode(anchors, [], [])
    assert targets.shape == (len(anchors), 4 + 2 + 1)
    assert np.all(targets[:, -1] == 0) and np.all(targets[:, 4:6] == 0)


def test_encode_targets_matches_box_to_its_anchor():
    anchors = make_anchors(AnchorSpec(image_size=128))
    tall_bottle = [0.3, 0.3, 0.7, 0.36]  # thinner than every anchor: still claims its best one
    targets = _encode(anchors, [anchors[100], tall_bottle], [1, 0])
    assert targets[100, -1] == 1 and targets[100, 5] == 1 and targets[100, 4] == 0
    np.testing.assert_allclose(targets[100, :4], 0, atol=1e-5)
    positive = np.flatnonzero(targets[:, -1] == 1)
    assert len(positive) >= 2
    np.testing.assert_allclose(
        decode_deltas(targets[positive, :4], anchors[positive], VARIANCE)[
            targets[positive, 4] == 1
        ],
        [tall_bottle],
        atol=1e-4,
    )


def test_encode_targets_ignores_the_anchors_an_ignore_box_would_make_positive():
    """An ignore box (an uncertain pseudo-label) is learned neither as an object nor as
    background: its would-be positive and in-between anchors are ignored, with no class or box
    target, and every other anchor is encoded as if it were not there."""
    anchors = make_anchors(AnchorSpec(image_size=128))
    real, unsure = [0.05, 0.05, 0.3, 0.2], [0.6, 0.6, 0.9, 0.8]  # far apart
    with_ignore = _encode(anchors, [real, unsure], [0, IGNORE_ID])
    as_product = _encode(anchors, [real, unsure], [0, 0])
    only_real = _encode(anchors, [real], [0])
    zone = as_product[:, -1] != only_real[:, -1]  # the anchors the box changes
    assert (as_product[zone, -1] == 1).any()
    assert (with_ignore[zone, -1] == -1).all() and (with_ignore[zone, 4:6] == 0).all()
    np.testing.assert_allclose(with_ignore[~zone], only_real[~zone], atol=1e-6)
