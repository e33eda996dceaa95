from __future__ import annotations

import cv2
import numpy as np
import pytest

from skuaudit.datasets.synth import render_shelf
from skuaudit.detections import Detections
from skuaudit.shelves import group_rows


def _rotate_boxes(xyxy: np.ndarray, degrees: float, width: int, height: int) -> np.ndarray:
    """Axis-aligned bounds of boxes rotated about the image centre (what a detector would box)."""
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    x1, y1, x2, y2 = xyxy.T
    corners = np.stack([np.stack(p, 1) for p in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))], 1)
    moved = corners @ matrix[:, :2].T + matrix[:, 2]
    return np.concatenate([moved.min(1), moved.max(1)], 1)


def _same_rows(found: np.ndarray, truth: np.ndarray) -> bool:
    """Exact match up to relabelling, with the top-to-bottom order kept."""
    pairs = sorted(set(zip(truth.tolist(), found.tolist(), strict=True)))
    return len(pairs) == len(set(truth.tolist())) == len(set(found.tolist())) and all(
        np.diff([f for _, f in pairs]) > 0
    )


@pytest.mark.parametrize("degrees", [0.0, 2.5, -4.0])
@pytest.mark.parametrize("seed", range(8))
def test_rows_of_generated_shelves(seed, degrees):
    shelf = render_shelf(seed, difficulty=1.0)  # perspective and up to 1 degree of tilt already
    det = shelf.to_detections()
    det = Detections(_rotate_boxes(det.xyxy, degrees, 1024, 768), det.confidence, det.class_id)
    rows = group_rows(det).data["shelf_row"]
    assert _same_rows(rows, shelf.shelf_rows)


def test_gaps_join_their_row():
    shelf = render_shelf(3, difficulty=1.0)
    rows = group_rows(shelf.to_detections()).data["shelf_row"]
    gaps = shelf.class_ids == 1
    assert gaps.any()
    mapping = dict(zip(shelf.shelf_rows.tolist(), rows.tolist(), strict=True))
    assert [mapping[r] for r in shelf.shelf_rows[gaps]] == rows[gaps].tolist()


@pytest.mark.parametrize(
    "xyxy, expected",
    [
        (np.empty((0, 4)), []),
        ([[0, 0, 10, 20]], [0]),
        # a stack of two packs sits in the same row as its full-height neighbour
        ([[0, 0, 10, 40], [11, 0, 21, 20], [11, 20, 21, 40], [0, 60, 10, 100]], [0, 0, 0, 1]),
        # a missing facing splits the chain; both parts are merged back into one row
        ([[0, 0, 10, 20], [11, 0, 21, 20], [80, 1, 90, 21], [91, 1, 101, 21]], [0, 0, 0, 0]),
    ],
)
def test_group_rows_table(xyxy, expected):
    assert (
        group_rows(Detections(np.asarray(xyxy, np.float32))).data["shelf_row"].tolist() == expected
    )


def test_images_are_grouped_separately():
    det = Detections([[0, 0, 10, 20], [0, 50, 10, 70]], data={"image_index": np.array([1, 0])})
    assert group_rows(det).data["shelf_row"].tolist() == [0, 0]
