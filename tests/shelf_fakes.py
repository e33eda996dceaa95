"""Stand-ins for the trained detector in pipeline tests: the generator's own boxes.

``GroundTruthDetector`` answers ``detect(image)`` with the exact boxes a generated shelf was
rendered with (matched by pixel content, so the image must reach it losslessly, e.g. as PNG).
``OracleRecognizer`` names each box's brand (and, on a ``demo.render_demo_shelf``, its product)
from the generator, so a test can check that the pipeline and storage keep counts exactly,
separately from recognition accuracy.
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
    def __init__(
        self, brand_ids_by_name: dict[str, int], product_ids_by_label: dict[str, int] | None = None
    ) -> None:
        self._ids = brand_ids_by_name
        self._product_ids = product_ids_by_label or {}

    def assign_products(
        self, image_bgr, detections: Detections, gallery, threshold=None, *, fast=False
    ) -> Detections:
        n = len(detections)
        blank = np.array([""] * n, dtype=object)
        names = detections.data.get("brand", blank)
        labels = detections.data.get("product", blank)
        is_product = detections.class_id == PRODUCT
        ids = [self._ids.get(b, -1) if p else -1 for b, p in zip(names, is_product, strict=True)]
        products = [
            self._product_ids.get(label, -1) if p else -1
            for label, p in zip(labels, is_product, strict=True)
        ]
        return detections.with_data(
            product_id=np.array(products, np.int64),
            product_score=np.ones(n, np.float32),
            brand_id=np.array(ids, np.int64),
            brand_score=np.ones(n, np.float32),
        )


def product_ids_by_label(url: str) -> dict[str, int]:
    """``"Brand · Product"`` -> product id of a database's catalogue."""
    from skuaudit.storage.queries import list_products

    return {p.label: p.id for p in list_products(url)}


def generated_counts(shelf: SynthShelf) -> dict[str, int]:
    """Facings per brand name in a generated shelf."""
    names, counts = np.unique(
        [b for b, c in zip(shelf.brands, shelf.class_ids, strict=True) if c == PRODUCT],
        return_counts=True,
    )
    return dict(zip(names.tolist(), counts.tolist(), strict=True))
