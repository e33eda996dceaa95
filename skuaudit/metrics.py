"""Share of shelf, gaps, stockouts and planogram compliance: pure functions of Detections.

Definitions (the same words are used on the pages, in the database and in the README):

- **facing**: one detected product box (``class_id == PRODUCT``). Products whose brand was not
  recognised (``brand_id == -1``) count under ``"unknown"`` in every total.
- **share_facings** of a brand: its facings / all product facings of the audit (unknown included).
- **row**: one shelf row of one image, keyed by ``(image_index, shelf_row)``.
- **row width**: the summed box widths of every product and gap of the row, in pixels.
- **normalised width** of a box: its width / its row width. A row photographed from further away
  therefore weighs the same as a close one, and every row that holds boxes sums to 1.
- **linear_px** of a brand: its summed box widths in pixels (as seen; for information).
- **share_linear** of a brand: the sum of its normalised widths / the sum of the normalised widths of
  all products. Shares of all brands (unknown included) sum to 1.
- **gap_share_width**: the sum of the normalised widths of all gaps / the number of rows, i.e. the
  mean fraction of a row's width that is empty shelf.
- **stockout**: a brand with a planogram target > 0 and no facing seen.
  **below_target**: a brand with a planogram target that shows at least one facing but fewer than
  the target (none at all is a stockout, counted apart).
- **planogram_compliance**: the mean over brands with a target > 0 of ``min(facings / target, 1)``;
  ``None`` when the store has no targets. 1.0 means every targeted brand shows at least its target.

Example:
    >>> from skuaudit.detections import Detections
    >>> d = Detections([[0, 0, 10, 20], [10, 0, 30, 20]], class_id=[0, 0],
    ...                data={"brand_id": [1, -1], "shelf_row": [0, 0]})
    >>> m = audit_metrics(d, {1: "Sunvale"}, {1: 2})
    >>> m.brand("Sunvale").facings, round(m.brand("Sunvale").share_linear, 3), m.planogram_compliance
    (1, 0.333, 0.5)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from skuaudit.detections import GAP, PRODUCT, Detections

UNKNOWN_BRAND_ID: int = -1
UNKNOWN_NAME: str = "unknown"


@dataclass(frozen=True)
class BrandRecord:
    """Figures of one brand in one audit (``brand_id`` ``None`` = unknown brand).

    Attributes:
        brand_id: database id, ``None`` for products of no recognised brand.
        name: brand name (``"unknown"`` for those).
        facings: product boxes of the brand.
        share_facings: ``facings`` / all facings, in ``[0, 1]``.
        linear_px: summed box widths in pixels.
        linear_rows: summed normalised widths (in rows: 1.0 = one full row).
        share_linear: ``linear_rows`` / all products' ``linear_rows``, in ``[0, 1]``.
        expected_facings: the planogram target, ``None`` when the brand has none.
        is_stockout: target > 0 and no facing.
        below_target: has a target and shows at least one facing, but fewer than the target.
    """

    brand_id: int | None
    name: str
    facings: int
    share_facings: float
    linear_px: float
    linear_rows: float
    share_linear: float
    expected_facings: int | None = None
    is_stockout: bool = False
    below_target: bool = False


@dataclass(frozen=True)
class AuditMetrics:
    """Everything an audit reports, per brand and in total (see the module docstring).

    Attributes:
        brands: one record per brand seen or targeted, most facings first; unknown last.
        product_count: all product facings.
        gap_count: gap boxes.
        row_count: shelf rows that hold at least one box.
        shelf_width_px: summed widths of all products and gaps, in pixels.
        gap_width_px: summed widths of all gaps, in pixels.
        gap_share_width: mean fraction of a row's width that is gap, in ``[0, 1]``.
        planogram_compliance: see module docstring; ``None`` without targets.
    """

    brands: list[BrandRecord] = field(default_factory=list)
    product_count: int = 0
    gap_count: int = 0
    row_count: int = 0
    shelf_width_px: float = 0.0
    gap_width_px: float = 0.0
    gap_share_width: float = 0.0
    planogram_compliance: float | None = None

    def brand(self, name: str) -> BrandRecord:
        """The record of the brand called ``name`` (``"unknown"`` for unrecognised products)."""
        for record in self.brands:
            if record.name == name:
                return record
        raise KeyError(f"no figures for brand {name!r}; brands: {[r.name for r in self.brands]}")

    @property
    def stockouts(self) -> list[str]:
        """Names of brands with a target > 0 and no facing."""
        return [r.name for r in self.brands if r.is_stockout]

    @property
    def below_target(self) -> list[str]:
        """Names of brands with fewer facings than their target (stockouts included)."""
        return [r.name for r in self.brands if r.below_target]

    def to_json(self) -> dict[str, Any]:
        """The JSON shape ``skuaudit audit --json`` prints (without ``audit_id``).

        ``brands`` maps a brand name to ``{"facings", "share_facings", "linear_px",
        "share_linear", "expected_facings"}``; ``gaps`` is ``{"count", "width_px", "share_width"}``.
        """
        return {
            "product_count": self.product_count,
            "row_count": self.row_count,
            "brands": {
                r.name: {
                    "facings": r.facings,
                    "share_facings": round(r.share_facings, 4),
                    "linear_px": round(r.linear_px, 1),
                    "share_linear": round(r.share_linear, 4),
                    "expected_facings": r.expected_facings,
                }
                for r in self.brands
            },
            "gaps": {
                "count": self.gap_count,
                "width_px": round(self.gap_width_px, 1),
                "share_width": round(self.gap_share_width, 4),
            },
            "stockouts": self.stockouts,
            "below_target": self.below_target,
            "planogram_compliance": (
                None if self.planogram_compliance is None else round(self.planogram_compliance, 4)
            ),
        }

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per brand (for a DataFrame)."""
        return [asdict(r) for r in self.brands]


def row_keys(detections: Detections) -> np.ndarray:
    """``(N,)`` int64 key of each box's row: ``image_index * 10_000 + shelf_row``.

    Missing ``image_index`` means one image; missing ``shelf_row`` means one row.
    """
    n = len(detections)
    image_index = np.asarray(detections.data.get("image_index", np.zeros(n)), dtype=np.int64)
    shelf_row = np.asarray(detections.data.get("shelf_row", np.zeros(n)), dtype=np.int64)
    return image_index * 10_000 + shelf_row


def normalised_widths(detections: Detections) -> np.ndarray:
    """``(N,)`` float64 width of each box / summed width of all boxes of its row.

    Example:
        >>> d = Detections([[0, 0, 10, 5], [10, 0, 40, 5], [0, 9, 5, 15]],
        ...                data={"shelf_row": [0, 0, 1]})
        >>> normalised_widths(d).tolist()
        [0.25, 0.75, 1.0]
    """
    if len(detections) == 0:
        return np.zeros(0)
    keys = row_keys(detections)
    widths = np.clip(detections.widths_px.astype(np.float64), 0, None)
    _, inverse = np.unique(keys, return_inverse=True)
    row_totals = np.bincount(inverse, weights=widths)
    totals = row_totals[inverse]
    return np.divide(widths, totals, out=np.zeros_like(widths), where=totals > 0)


def planogram_compliance(facings: dict[int, int], planogram: dict[int, int]) -> float | None:
    """Mean over brands with target > 0 of ``min(facings / target, 1)``; ``None`` without targets.

    Example:
        >>> planogram_compliance({1: 4, 2: 0}, {1: 2, 2: 3, 3: 0})
        0.5
    """
    ratios = [min(facings.get(b, 0) / t, 1.0) for b, t in planogram.items() if t > 0]
    return float(np.mean(ratios)) if ratios else None


def audit_metrics(
    detections: Detections,
    brand_names: dict[int, str],
    planogram: dict[int, int] | None = None,
) -> AuditMetrics:
    """Per-brand and total figures of one audit (one or several images).

    Args:
        detections: products and gaps; uses ``data["brand_id"]`` (-1 = unknown; missing = all
            unknown), ``data["shelf_row"]`` and ``data["image_index"]`` when present.
        brand_names: brand id -> name, for every id that may appear.
        planogram: brand id -> expected facings for the audited store; ``None`` = no targets.

    Returns:
        ``AuditMetrics``; brands seen or targeted, most facings first, ``"unknown"`` last.

    Raises:
        ValueError: a detection names a brand id missing from ``brand_names``, or a target is
            negative.
    """
    planogram = dict(planogram or {})
    bad_targets = {b: t for b, t in planogram.items() if int(t) < 0}
    if bad_targets:
        raise ValueError(f"planogram targets must be >= 0, got {bad_targets}")
    n = len(detections)
    brand_ids = np.asarray(
        detections.data.get("brand_id", np.full(n, UNKNOWN_BRAND_ID)), dtype=np.int64
    )
    is_product = detections.class_id == PRODUCT
    is_gap = detections.class_id == GAP
    unnamed = sorted(
        {int(b) for b in brand_ids[is_product]} - set(brand_names) - {UNKNOWN_BRAND_ID}
    )
    if unnamed:
        raise ValueError(f"detections name brand ids {unnamed} that are not in the catalogue")

    norm = normalised_widths(detections)
    widths_px = np.clip(detections.widths_px.astype(np.float64), 0, None)
    product_count = int(is_product.sum())
    product_rows = float(norm[is_product].sum())
    row_count = len(np.unique(row_keys(detections))) if n else 0

    facings_by_brand: dict[int, int] = {}
    records = []
    seen = {int(b) for b in brand_ids[is_product]}
    targeted = {b for b, t in planogram.items() if t > 0}
    for brand_id in sorted((seen | targeted) - {UNKNOWN_BRAND_ID}):
        mask = is_product & (brand_ids == brand_id)
        facings = int(mask.sum())
        facings_by_brand[brand_id] = facings
        target = planogram.get(brand_id)
        records.append(
            _record(
                brand_id,
                brand_names.get(brand_id, f"brand {brand_id}"),
                facings,
                product_count,
                widths_px[mask].sum(),
                norm[mask].sum(),
                product_rows,
                target,
            )
        )
    records.sort(key=lambda r: (-r.facings, r.name))
    unknown = is_product & (brand_ids == UNKNOWN_BRAND_ID)
    if unknown.any():
        records.append(
            _record(
                None,
                UNKNOWN_NAME,
                int(unknown.sum()),
                product_count,
                widths_px[unknown].sum(),
                norm[unknown].sum(),
                product_rows,
                None,
            )
        )
    return AuditMetrics(
        brands=records,
        product_count=product_count,
        gap_count=int(is_gap.sum()),
        row_count=row_count,
        shelf_width_px=float(widths_px.sum()),
        gap_width_px=float(widths_px[is_gap].sum()),
        gap_share_width=float(norm[is_gap].sum() / row_count) if row_count else 0.0,
        planogram_compliance=planogram_compliance(facings_by_brand, planogram),
    )


def _record(
    brand_id: int | None,
    name: str,
    facings: int,
    product_count: int,
    linear_px: float,
    linear_rows: float,
    product_rows: float,
    target: int | None,
) -> BrandRecord:
    return BrandRecord(
        brand_id=brand_id,
        name=name,
        facings=facings,
        share_facings=facings / product_count if product_count else 0.0,
        linear_px=float(linear_px),
        linear_rows=float(linear_rows),
        share_linear=float(linear_rows / product_rows) if product_rows > 0 else 0.0,
        expected_facings=None if target is None else int(target),
        is_stockout=target is not None and target > 0 and facings == 0,
        below_target=target is not None and 0 < facings < target,
    )
