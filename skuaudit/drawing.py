"""One way to draw boxes: the palette, hex-to-BGR and the box and number-tag helpers.

Every drawing of boxes uses these: the Live audit overlay (``live.draw_live_overlay``), the photo
review and the dashboards' snapshots (``audit.draw_analysis``, which enrolment's numbered boxes
reuse), the Model lab's example images (``draw_class_boxes``) and the synthetic shelf preview
(``datasets.synth.draw_boxes``). Colours are BGR tuples, as OpenCV draws them.

Palette: a product in its brand's catalogue colour, a product of an unknown brand (or of a brand
without a colour) grey, a gap red; where boxes are drawn by class only (no brand), products green.

Example:
    >>> import numpy as np
    >>> from skuaudit.detections import Detections
    >>> hex_to_bgr("#1f77b4")
    (180, 119, 31)
    >>> image = np.zeros((20, 20, 3), np.uint8)
    >>> d = Detections([[2, 2, 10, 10]], class_id=[1])
    >>> draw_boxes(image, d.xyxy, box_colours(d, {}), 1)[2, 5].tolist()
    [0, 0, 255]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from skuaudit.detections import GAP, PRODUCT, Detections
from skuaudit.metrics import UNKNOWN_BRAND_ID

BGR = tuple[int, int, int]

GAP_BGR: BGR = (0, 0, 255)
UNKNOWN_BGR: BGR = (160, 160, 160)
PRODUCT_BGR: BGR = (0, 220, 0)
CLASS_BGR: dict[int, BGR] = {PRODUCT: PRODUCT_BGR, GAP: GAP_BGR}


def hex_to_bgr(color_hex: str) -> BGR:
    """``"#RRGGBB"`` to an OpenCV BGR tuple (``UNKNOWN_BGR`` when malformed)."""
    text = color_hex.lstrip("#")
    try:
        r, g, b = (int(text[i : i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        return UNKNOWN_BGR
    return (b, g, r)


def box_colours(detections: Detections, brand_colours: Mapping[int, BGR]) -> list[BGR]:
    """The colour of each box: gaps red, products their brand's colour (``data["brand_id"]``,
    looked up in ``brand_colours``), grey for an unknown brand or one without a colour."""
    n = len(detections)
    brand_ids = np.asarray(detections.data.get("brand_id", np.full(n, UNKNOWN_BRAND_ID)))
    return [
        GAP_BGR if class_id == GAP else brand_colours.get(int(brand_id), UNKNOWN_BGR)
        for class_id, brand_id in zip(detections.class_id, brand_ids, strict=True)
    ]


def draw_boxes(
    image: np.ndarray, xyxy: np.ndarray, colours: Sequence[BGR], thickness: int
) -> np.ndarray:
    """Draw each box (pixel ``[x1, y1, x2, y2]``, rounded) in its colour on ``image``, in place;
    returns ``image``."""
    boxes = np.asarray(xyxy).round().astype(int).reshape(-1, 4)
    for (x1, y1, x2, y2), colour in zip(boxes, colours, strict=True):
        cv2.rectangle(image, (int(x1), int(y1)), (int(x2), int(y2)), colour, thickness)
    return image


def draw_class_boxes(
    image: np.ndarray, detections: Detections, thresholds: Mapping[int, float]
) -> np.ndarray:
    """A copy of ``image`` with the boxes that reach their class's score threshold, products
    green and gaps red (``CLASS_BGR``): how the Model lab shows a model's examples."""
    scores, classes = detections.confidence, detections.class_id
    keep = np.array(
        [score >= thresholds[int(c)] for score, c in zip(scores, classes, strict=True)], dtype=bool
    )
    colours = [CLASS_BGR.get(int(c), (255, 255, 255)) for c in detections.class_id[keep]]
    thickness = max(2, round(max(image.shape[:2]) / 400))
    return draw_boxes(image.copy(), detections.xyxy[keep], colours, thickness)


def label_colour(colour: BGR) -> BGR:
    """Black or white text, whichever reads better on ``colour`` (BGR)."""
    b, g, r = colour
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def draw_number_tags(
    image: np.ndarray, xyxy: np.ndarray, order: Sequence[int], colours: Sequence[BGR]
) -> np.ndarray:
    """Number the boxes ``order[0]``, ``order[1]``, ... from 1, in place: each number on a tag of
    its box's colour with black or white text, sized to the image so it reads on a phone, and
    moved below the box's top edge when it would cover an earlier tag. Returns ``image``."""
    longest = max(image.shape[:2])
    scale = max(0.45, longest / 1600)
    text_thickness = max(1, round(scale * 1.6))
    boxes = np.asarray(xyxy).round().astype(int).reshape(-1, 4)
    placed: list[tuple[int, int, int, int]] = []
    for number, i in enumerate(order, start=1):
        text = str(number)
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, text_thickness)
        x1, y1, x2, y2 = (int(v) for v in boxes[i])
        tag_w, tag_h = w + 4, h + base + 4
        tag = None
        for top in (y1, y2 - tag_h, y1 + tag_h, (y1 + y2 - tag_h) // 2):
            candidate = (x1, top, x1 + tag_w, top + tag_h)
            if not any(_overlap(candidate, other) for other in placed):
                tag = candidate
                break
        tag = tag or (x1, y1, x1 + tag_w, y1 + tag_h)
        placed.append(tag)
        colour = colours[i]
        cv2.rectangle(image, tag[:2], tag[2:], colour, -1)
        cv2.putText(
            image,
            text,
            (tag[0] + 2, tag[3] - base - 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            label_colour(colour),
            text_thickness,
            cv2.LINE_AA,
        )
    return image
