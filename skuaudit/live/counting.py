"""Live audit counting: facings per brand and per product in one frame, and the counts smoothed
over the processor's window (per-product median, summed per brand)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

import numpy as np

from skuaudit.detections import PRODUCT, Detections
from skuaudit.metrics import UNKNOWN_BRAND_ID, UNKNOWN_NAME, UNKNOWN_PRODUCT_NAME, ProductInfo

# The name live counts give facings that the stream's embedding budget has not reached yet
# (``data["pending"]``, ``skuaudit.recognition.TrackCache``): neither a brand nor "unknown".
# Their key is smoothed like the others, so it leaves the counts once most of the window's
# frames have every facing named.
PENDING_NAME: str = "pending"


def _pending(detections: Detections) -> np.ndarray:
    return np.asarray(detections.data.get("pending", np.zeros(len(detections), bool)), bool)


def count_by_brand(detections: Detections, brand_names: Mapping[int, str]) -> dict[str, int]:
    """Product facings per brand name (``"unknown"`` for unrecognised products, ``"pending"``
    for facings not embedded yet; gaps excluded).

    Example:
        >>> det = Detections(np.zeros((3, 4)), class_id=[0, 0, 1], data={"brand_id": [7, -1, -1]})
        >>> count_by_brand(det, {7: "Acme"})
        {'Acme': 1, 'unknown': 1}
    """
    products = detections.class_id == PRODUCT
    brand_ids = np.asarray(
        detections.data.get("brand_id", np.full(len(detections), UNKNOWN_BRAND_ID))
    )[products]
    pending = _pending(detections)[products]
    counts: dict[str, int] = {}
    for brand_id, waiting in zip(brand_ids.tolist(), pending.tolist(), strict=True):
        name = PENDING_NAME if waiting else brand_names.get(int(brand_id), UNKNOWN_NAME)
        counts[name] = counts.get(name, 0) + 1
    return counts


def count_by_product(
    detections: Detections,
    brand_names: Mapping[int, str],
    products: Mapping[int, ProductInfo],
) -> dict[tuple[str, str], int]:
    """Product facings per ``(brand, product)`` name; ``(brand, "unknown product")`` for facings
    of a known brand whose product was not recognised, ``("pending", "pending")`` for facings not
    embedded yet (``data["pending"]``), ``("unknown", "unknown")`` for the rest.

    Example:
        >>> det = Detections(np.zeros((3, 4)), class_id=[0, 0, 0],
        ...                  data={"product_id": [5, -1, -1], "brand_id": [7, 7, -1]})
        >>> count_by_product(det, {7: "Acme"}, {5: ProductInfo(7, "Cola")})
        {('Acme', 'Cola'): 1, ('Acme', 'unknown product'): 1, ('unknown', 'unknown'): 1}
    """
    products_mask = detections.class_id == PRODUCT
    n = len(detections)
    product_ids = np.asarray(detections.data.get("product_id", np.full(n, -1)))[products_mask]
    brand_ids = np.asarray(detections.data.get("brand_id", np.full(n, UNKNOWN_BRAND_ID)))
    pending = _pending(detections)[products_mask]
    counts: dict[tuple[str, str], int] = {}
    for product_id, brand_id, waiting in zip(
        product_ids.tolist(), brand_ids[products_mask].tolist(), pending.tolist(), strict=True
    ):
        product = products.get(int(product_id))
        if waiting:
            key = (PENDING_NAME, PENDING_NAME)
        elif product is not None and product.brand_id in brand_names:
            key = (brand_names[product.brand_id], product.name)
        elif int(brand_id) in brand_names:
            key = (brand_names[int(brand_id)], UNKNOWN_PRODUCT_NAME)
        else:
            key = (UNKNOWN_NAME, UNKNOWN_NAME)
        counts[key] = counts.get(key, 0) + 1
    return counts


def roll_up(product_counts: Mapping[tuple[str, str], int]) -> dict[str, int]:
    """Facings per brand: the sums of ``count_by_product``'s counts.

    Example:
        >>> roll_up({("Acme", "Cola"): 2, ("Acme", "Lime"): 1, ("unknown", "unknown"): 1})
        {'Acme': 3, 'unknown': 1}
    """
    brands: dict[str, int] = {}
    for (brand, _), n in product_counts.items():
        brands[brand] = brands.get(brand, 0) + n
    return brands


def smooth_counts(history: Sequence[Mapping]) -> dict:
    """Per-key median over frames, a key missing from a frame counting 0; zero medians left out.

    ``median_low`` keeps the result a count that was actually seen.

    Example:
        >>> smooth_counts([{"a": 3}, {"a": 9, "b": 1}, {"a": 3}])
        {'a': 3}
    """
    keys = sorted({k for counts in history for k in counts})
    smoothed = {k: statistics.median_low([counts.get(k, 0) for counts in history]) for k in keys}
    return {k: v for k, v in smoothed.items() if v > 0}


def _count_distance(a: Mapping[str, int], b: Mapping[str, int]) -> int:
    return sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b))
