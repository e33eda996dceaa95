"""Stand-ins for the trained detector in pipeline tests: the generator's own boxes.

``GroundTruthDetector`` answers ``detect(image)`` with the exact boxes a generated shelf was
rendered with (matched by pixel content, so the image must reach it losslessly, e.g. as PNG).
``OracleRecognizer`` names each box's brand from the generator, so a test can check that the
pipeline and storage keep counts exactly, separately from recognition accuracy.
"""

from __future__ import annotations

import hashlib

import numpy as np

from skuaudit.datasets.synth import SynthShelf
from skuaudit.detections import PRODUCT, Detections


def _key(image_bgr: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image_bgr).tobytes()).hexdigest()


class GroundTruthDetector:
    model_dir = None

    def __init__(self, shelves: list[SynthShelf]) -> None:
        self._by_image = {_key(s.image_bgr): s.to_detections() for s in shelves}

    def detect(self, image_bgr: np.ndarray) -> Detections:
        return self._by_image.get(_key(image_bgr), Detections.empty())


class OracleRecognizer:
    def __init__(self, brand_ids_by_name: dict[str, int]) -> None:
        self._ids = brand_ids_by_name

    def assign_brands(
        self, image_bgr, detections: Detections, gallery, threshold=None, *, fast=False
    ) -> Detections:
        names = detections.data.get("brand", np.array([""] * len(detections), dtype=object))
        ids = [
            self._ids.get(n, -1) if c == PRODUCT else -1
            for n, c in zip(names, detections.class_id, strict=True)
        ]
        return detections.with_data(
            brand_id=np.array(ids, np.int64), brand_score=np.ones(len(detections), np.float32)
        )


def generated_counts(shelf: SynthShelf) -> dict[str, int]:
    """Facings per brand name in a generated shelf."""
    names, counts = np.unique(
        [b for b, c in zip(shelf.brands, shelf.class_ids, strict=True) if c == PRODUCT],
        return_counts=True,
    )
    return dict(zip(names.tolist(), counts.tolist(), strict=True))
