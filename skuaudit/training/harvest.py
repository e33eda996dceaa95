"""Real product crops for the synthetic shelves: a detector's confident boxes cut out of photos."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skuaudit.datasets.base import DatasetError


def _product_detections(detector, photos: Sequence[Path], score_threshold: float):
    """``(path, image_bgr, product Detections)`` of each photo, best score first.

    Raises:
        DatasetError: a photo that cannot be read.
    """
    import cv2

    from skuaudit.detections import PRODUCT

    for path in photos:
        image = cv2.imread(str(path))
        if image is None:
            raise DatasetError(f"{path}: not a readable image")
        det = detector.detect(image, score_threshold=score_threshold)
        yield path, image, det[det.class_id == PRODUCT]


def harvest_product_crops(
    detector,
    photos: Sequence[Path],
    out_dir: Path,
    *,
    score_threshold: float,
    min_side_px: int = 24,
) -> int:
    """Cut the detector's confident product boxes out of real photos, one PNG per product, as
    whole facings for the synthetic shelves (``render_shelf(crop_dir=...)``): the rendered shelves
    then show real products, next to each other and stacked, each with an exact box.

    Args:
        detector: a ``Detector``; photos are tiled by its ``tiled=None`` rule.
        photos: image files.
        out_dir: folder for the crops (created; named ``<photo stem>_<n>.png``).
        score_threshold: minimum product score (high: a box around two products, or half of
            one, becomes a facing).
        min_side_px: smaller boxes are left out.

    Returns:
        The number of crops written.

    Raises:
        DatasetError: a photo that cannot be read.
    """
    import cv2

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for path, image, det in _product_detections(detector, photos, score_threshold):
        for n, (x1, y1, x2, y2) in enumerate(np.round(det.xyxy).astype(int)):
            x1, y1 = max(x1, 0), max(y1, 0)
            if min(x2 - x1, y2 - y1) < min_side_px:
                continue
            cv2.imwrite(str(out_dir / f"{Path(path).stem}_{n}.png"), image[y1:y2, x1:x2])
            written += 1
    return written
