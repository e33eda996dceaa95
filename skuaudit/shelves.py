"""Shelf rows from boxes: which facings and gaps sit on which shelf.

Rows are found in two steps that tolerate a few degrees of rotation and perspective:

1. **Chains**: two boxes are linked when they are horizontal neighbours (the space between them is
   less than half the median box width) and overlap vertically by more than half the shorter box.
   Neighbours are close, so a tilted shelf still links box to box. Packs stacked on each other
   (about the same width, one directly on the other: the vertical space between them is under a
   tenth of the shorter box) are linked too. Gap boxes link like products, so gaps join the row
   they sit on.
2. **Merge**: chains broken by a missing box are joined when their vertical bands overlap after
   removing the shelf's global tilt (the median slope of the links).

Rows are numbered from the top (``0``) by their de-tilted centre.

Example:
    >>> from skuaudit.detections import Detections
    >>> d = Detections([[0, 0, 10, 20], [11, 1, 20, 21], [0, 40, 10, 60]])
    >>> group_rows(d).data["shelf_row"].tolist()
    [0, 0, 1]
"""

from __future__ import annotations

import numpy as np

from skuaudit.detections import Detections

MIN_VERTICAL_OVERLAP: float = 0.5
MAX_NEIGHBOUR_SPACE: float = 0.5
MAX_STACK_SPACE: float = 0.1


def group_rows(detections: Detections) -> Detections:
    """A copy of ``detections`` with ``data["shelf_row"]`` (int32, 0 = top) for every box.

    Boxes of different images (``data["image_index"]``) are grouped separately.

    Args:
        detections: products and gaps of one or several images, pixel ``xyxy``.

    Returns:
        The same boxes with ``shelf_row`` added.
    """
    n = len(detections)
    rows = np.zeros(n, dtype=np.int32)
    image_index = np.asarray(detections.data.get("image_index", np.zeros(n)), dtype=np.int64)
    for index in np.unique(image_index):
        mask = image_index == index
        rows[mask] = _rows_of_image(detections.xyxy[mask].astype(np.float64))
    return detections.with_data(shelf_row=rows)


def _rows_of_image(xyxy: np.ndarray) -> np.ndarray:
    """Row index per box of one image (``(N, 4)`` pixel xyxy -> ``(N,)`` int32)."""
    n = len(xyxy)
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    x1, y1, x2, y2 = xyxy.T
    heights = np.maximum(y2 - y1, 1e-6)
    widths = np.maximum(x2 - x1, 1e-6)
    overlap_y = np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :])
    shorter = np.minimum(heights[:, None], heights[None, :])
    space_x = np.maximum(x1[None, :] - x2[:, None], x1[:, None] - x2[None, :])
    linked = (overlap_y > MIN_VERTICAL_OVERLAP * shorter) & (
        space_x < MAX_NEIGHBOUR_SPACE * float(np.median(widths))
    )
    overlap_x = -space_x
    space_y = -overlap_y
    stacked = (
        (overlap_x > 0.5 * np.minimum(widths[:, None], widths[None, :]))
        & (
            np.minimum(widths[:, None], widths[None, :])
            > 0.8 * np.maximum(widths[:, None], widths[None, :])
        )
        & (np.abs(space_y) < MAX_STACK_SPACE * shorter)
    )
    linked |= stacked
    np.fill_diagonal(linked, False)
    chain = _components(linked)

    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
    slope = _tilt(linked, centre_x, centre_y, heights)
    top = y1 - slope * centre_x
    bottom = y2 - slope * centre_x
    bands = [(top[chain == c].min(), bottom[chain == c].max(), c) for c in np.unique(chain)]
    bands.sort()
    row_of_chain: dict[int, int] = {}
    row = -1
    band_top = band_bottom = 0.0
    for top_c, bottom_c, c in bands:
        overlap = min(band_bottom, bottom_c) - max(band_top, top_c)
        if row < 0 or overlap <= 0.5 * min(band_bottom - band_top, bottom_c - top_c):
            row += 1
            band_top, band_bottom = top_c, bottom_c
        else:
            band_bottom = max(band_bottom, bottom_c)
        row_of_chain[int(c)] = row
    return np.array([row_of_chain[int(c)] for c in chain], dtype=np.int32)


def _components(adjacency: np.ndarray) -> np.ndarray:
    """Connected-component label per node of a symmetric boolean ``(N, N)`` adjacency matrix."""
    n = len(adjacency)
    labels = np.full(n, -1, dtype=np.int64)
    neighbours = [np.flatnonzero(adjacency[i] | adjacency[:, i]) for i in range(n)]
    label = 0
    for start in range(n):
        if labels[start] >= 0:
            continue
        stack = [start]
        labels[start] = label
        while stack:
            node = stack.pop()
            for other in neighbours[node]:
                if labels[other] < 0:
                    labels[other] = label
                    stack.append(other)
        label += 1
    return labels


def _tilt(
    linked: np.ndarray, centre_x: np.ndarray, centre_y: np.ndarray, heights: np.ndarray
) -> float:
    """Median slope (dy/dx) of links between boxes of similar height; 0 without such links."""
    i, j = np.nonzero(np.triu(linked))
    similar = np.minimum(heights[i], heights[j]) > 0.8 * np.maximum(heights[i], heights[j])
    i, j = i[similar], j[similar]
    dx = centre_x[j] - centre_x[i]
    usable = np.abs(dx) > 1.0
    if not usable.any():
        return 0.0
    return float(np.median((centre_y[j] - centre_y[i])[usable] / dx[usable]))
