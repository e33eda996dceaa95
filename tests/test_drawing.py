"""One palette and one box drawing (skuaudit.drawing), used by live, audit, jobs and synth."""

import doctest

import numpy as np

from skuaudit import drawing
from skuaudit.datasets.synth import draw_boxes, render_shelf
from skuaudit.detections import GAP, PRODUCT, Detections
from skuaudit.drawing import (
    GAP_BGR,
    PRODUCT_BGR,
    UNKNOWN_BGR,
    box_colours,
    draw_class_boxes,
    hex_to_bgr,
)


def test_doctests():
    assert doctest.testmod(drawing).failed == 0


def test_hex_to_bgr_and_malformed_grey():
    assert hex_to_bgr("#ff8000") == (0, 128, 255)
    assert hex_to_bgr("1f77b4") == (180, 119, 31)
    assert hex_to_bgr("#zzzzzz") == UNKNOWN_BGR
    assert hex_to_bgr("") == UNKNOWN_BGR


def test_box_colours_gap_brand_unknown():
    d = Detections(
        [[0, 0, 5, 5]] * 4,
        class_id=[GAP, PRODUCT, PRODUCT, PRODUCT],
        data={"brand_id": [7, 7, 8, -1]},
    )
    assert box_colours(d, {7: (1, 2, 3)}) == [GAP_BGR, (1, 2, 3), UNKNOWN_BGR, UNKNOWN_BGR]
    # without brand ids every product is of the unknown brand
    assert box_colours(Detections([[0, 0, 5, 5]]), {7: (1, 2, 3)}) == [UNKNOWN_BGR]


def test_draw_class_boxes_keeps_boxes_at_their_class_threshold():
    image = np.zeros((100, 100, 3), np.uint8)
    d = Detections(
        [[10, 10, 40, 40], [50, 50, 90, 90], [10, 60, 30, 90]],
        confidence=[0.6, 0.6, 0.3],
        class_id=[PRODUCT, GAP, PRODUCT],
    )
    out = draw_class_boxes(image, d, {PRODUCT: 0.5, GAP: 0.7})
    assert not image.any()  # drawn on a copy
    assert out[10, 25].tolist() == list(PRODUCT_BGR)  # top edge of the kept product
    assert not out[50:91, 50:91].any()  # the gap is under its threshold
    assert not out[60:91, 10:31].any()  # so is the weak product


def test_synth_draw_boxes_draws_on_the_last_pixel_inside():
    shelf = render_shelf(3, 320, 240)
    drawn = draw_boxes(shelf, thickness=1)
    x1, y1, x2, y2 = shelf.boxes_xyxy[0].astype(int)
    colour = list(GAP_BGR if shelf.class_ids[0] == GAP else PRODUCT_BGR)
    assert drawn[y2 - 1, (x1 + x2) // 2].tolist() == colour
    assert drawn[(y1 + y2) // 2, x2 - 1].tolist() == colour
