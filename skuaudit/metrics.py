"""Share of shelf, gaps, stockouts and planogram compliance: pure functions of Detections.

Figures are computed per product (SKU) and rolled up to brands: a brand's facings and widths are
the sums of its products' (plus its facings whose product was not recognised), so a brand figure
always equals the sum of the product figures under it.

Definitions (the same words are used on the pages, in the database and in the README):

- **facing**: one detected product box (``class_id == PRODUCT``). It names a product
  (``product_id``, -1 = not recognised) and so that product's brand; a facing of no recognised
  product may still name a brand (``brand_id``). Facings of no recognised brand count under
  ``"unknown"`` in every total; those of a known brand but no product, under the brand's
  ``"unknown product"``.
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
- **stockout**: a brand (or product) with a planogram target > 0 and no facing seen.
  **below_target**: a brand (or product) with a target that shows at least one facing but fewer
  than the target (none at all is a stockout, counted apart). A brand's target is its own
  (``planogram``) or, when it has none, the sum of its products' targets (``product_planogram``).
- **planogram_compliance**: the mean over brands with a target > 0 of ``min(facings / target, 1)``;
  ``None`` when the store has no targets. 1.0 means every targeted brand shows at least its target.
  ``product_compliance`` is the same over products with a target.

Example:
    >>> from skuaudit.detections import Detections
    >>> d = Detections([[0, 0, 10, 20], [10, 0, 30, 20]], class_id=[0, 0],
    ...                data={"brand_id": [1, -1], "shelf_row": [0, 0]})
    >>> m = audit_metrics(d, {1: "Sunvale"}, {1: 2})
    >>> m.brand("Sunvale").facings, round(m.brand("Sunvale").share_linear, 3), m.planogram_compliance
    (1, 0.333, 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from skuaudit.detections import GAP, PRODUCT, Detections

UNKNOWN_BRAND_ID: int = -1
UNKNOWN_PRODUCT_ID: int = -1
UNKNOWN_NAME: str = "unknown"
UNKNOWN_PRODUCT_NAME: str = "unknown product"


@dataclass(frozen=True)
class ProductInfo:
    """What the figures need to know of a catalogue product: its brand and name."""

    brand_id: int
    name: str


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
class ProductRecord:
    """Figures of one product in one audit.

    Attributes:
        product_id: database id; ``None`` for facings of no recognised product (of brand
            ``brand_id``, or of no known brand when that is ``None`` too).
        brand_id: the product's brand; ``None`` for facings of no recognised brand.
        name: product name (``"unknown product"`` / ``"unknown"`` for those).
        brand: brand name (``"unknown"`` for no recognised brand).
        facings, share_facings, linear_px, linear_rows, share_linear: as for ``BrandRecord``;
            shares are of all facings of the audit.
        expected_facings: the product's own planogram target, ``None`` when it has none.
        is_stockout: target > 0 and no facing.
        below_target: has a target and shows at least one facing, but fewer than the target.
    """

    product_id: int | None
    brand_id: int | None
    name: str
    brand: str
    facings: int
    share_facings: float
    linear_px: float
    linear_rows: float
    share_linear: float
    expected_facings: int | None = None
    is_stockout: bool = False
    below_target: bool = False

    @property
    def label(self) -> str:
        """``"Brand · Product"``, or ``"unknown"`` for facings of no recognised brand."""
        return product_label(self.brand, self.name) if self.brand_id is not None else self.name


def product_label(brand: str, product: str) -> str:
    """How pages and counts name a product: ``"Brand · Product"``."""
    return f"{brand} · {product}"


@dataclass(frozen=True)
class AuditMetrics:
    """Everything an audit reports, per brand and in total (see the module docstring).

    Attributes:
        brands: one record per brand seen or targeted, most facings first; unknown last.
        products: one record per product seen or targeted, by brand (in ``brands`` order), most
            facings first within a brand; each brand's unknown product, then unknown, last.
        product_count: all product facings.
        gap_count: gap boxes.
        row_count: shelf rows that hold at least one box.
        shelf_width_px: summed widths of all products and gaps, in pixels.
        gap_width_px: summed widths of all gaps, in pixels.
        gap_share_width: mean fraction of a row's width that is gap, in ``[0, 1]``.
        planogram_compliance: see module docstring; ``None`` without targets.
        product_compliance: the same over products with a target; ``None`` without any.
    """

    brands: list[BrandRecord] = field(default_factory=list)
    products: list[ProductRecord] = field(default_factory=list)
    product_count: int = 0
    gap_count: int = 0
    row_count: int = 0
    shelf_width_px: float = 0.0
    gap_width_px: float = 0.0
    gap_share_width: float = 0.0
    planogram_compliance: float | None = None
    product_compliance: float | None = None

    def brand(self, name: str) -> BrandRecord:
        """The record of the brand called ``name`` (``"unknown"`` for unrecognised products)."""
        for record in self.brands:
            if record.name == name:
                return record
        raise KeyError(f"no figures for brand {name!r}; brands: {[r.name for r in self.brands]}")

    def product(self, label: str) -> ProductRecord:
        """The record of the product labelled ``label`` (``"Brand · Product"``)."""
        for record in self.products:
            if record.label == label:
                return record
        raise KeyError(
            f"no figures for product {label!r}; products: {[r.label for r in self.products]}"
        )

    @property
    def product_stockouts(self) -> list[str]:
        """Labels of products with a target > 0 and no facing."""
        return [r.label for r in self.products if r.is_stockout]

    @property
    def stockouts(self) -> list[str]:
        """Names of brands with a target > 0 and no facing."""
        return [r.name for r in self.brands if r.is_stockout]

    @property
    def below_target(self) -> list[str]:
        """Names of brands with at least one facing but fewer than their target."""
        return [r.name for r in self.brands if r.below_target]

    def to_json(self) -> dict[str, Any]:
        """The JSON shape ``skuaudit audit --json`` prints (without ``audit_id``).

        ``brands`` maps a brand name to ``{"facings", "share_facings", "linear_px",
        "share_linear", "expected_facings"}``; ``products`` lists the same figures per product
        with its ``brand`` and ``product`` names; ``gaps`` is ``{"count", "width_px",
        "share_width"}``.
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
            "products": [
                {
                    "brand": r.brand,
                    "product": r.name,
                    "facings": r.facings,
                    "share_facings": round(r.share_facings, 4),
                    "linear_px": round(r.linear_px, 1),
                    "share_linear": round(r.share_linear, 4),
                    "expected_facings": r.expected_facings,
                }
                for r in self.products
            ],
            "gaps": {
                "count": self.gap_count,
                "width_px": round(self.gap_width_px, 1),
                "share_width": round(self.gap_share_width, 4),
            },
            "stockouts": self.stockouts,
            "below_target": self.below_target,
            "product_stockouts": self.product_stockouts,
            "planogram_compliance": _round(self.planogram_compliance),
            "product_compliance": _round(self.product_compliance),
        }

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per brand (for a DataFrame)."""
        return [asdict(r) for r in self.brands]

    def product_records(self) -> list[dict[str, Any]]:
        """One dict per product (for a DataFrame), with its ``label``."""
        return [asdict(r) | {"label": r.label} for r in self.products]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


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
    brand_names: Mapping[int, str],
    planogram: Mapping[int, int] | None = None,
    *,
    products: Mapping[int, ProductInfo] | None = None,
    product_planogram: Mapping[int, int] | None = None,
) -> AuditMetrics:
    """Per-product, per-brand and total figures of one audit (one or several images).

    Args:
        detections: products and gaps; uses ``data["product_id"]`` (-1 = no product recognised;
            missing = none), ``data["brand_id"]`` (-1 = unknown; a recognised product's brand
            wins), ``data["shelf_row"]`` and ``data["image_index"]`` when present.
        brand_names: brand id -> name, for every brand that may appear.
        planogram: brand id -> expected facings for the audited store; ``None`` = no targets.
        products: product id -> ``ProductInfo``, for every product that may appear.
        product_planogram: product id -> expected facings for the audited store.

    Returns:
        ``AuditMetrics``: brands seen or targeted, most facings first, ``"unknown"`` last; the
        products under them the same way.

    Raises:
        ValueError: a detection names a brand or product missing from the catalogue, or a
            target is negative.
    """
    planogram = dict(planogram or {})
    products = dict(products or {})
    product_planogram = dict(product_planogram or {})
    bad_targets = {b: t for b, t in [*planogram.items(), *product_planogram.items()] if int(t) < 0}
    if bad_targets:
        raise ValueError(f"planogram targets must be >= 0, got {bad_targets}")
    unlisted = sorted(set(product_planogram) - set(products))
    if unlisted:
        raise ValueError(f"targets name product ids {unlisted} that are not in the catalogue")
    n = len(detections)
    is_product = detections.class_id == PRODUCT
    is_gap = detections.class_id == GAP
    product_ids = np.asarray(
        detections.data.get("product_id", np.full(n, UNKNOWN_PRODUCT_ID)), dtype=np.int64
    )
    product_ids = np.where(is_product, product_ids, UNKNOWN_PRODUCT_ID)
    unnamed = sorted({int(p) for p in product_ids} - set(products) - {UNKNOWN_PRODUCT_ID})
    if unnamed:
        raise ValueError(f"detections name product ids {unnamed} that are not in the catalogue")
    brand_ids = np.asarray(
        detections.data.get("brand_id", np.full(n, UNKNOWN_BRAND_ID)), dtype=np.int64
    )
    brand_ids = np.array(
        [
            products[int(p)].brand_id if p != UNKNOWN_PRODUCT_ID else int(b)
            for p, b in zip(product_ids, brand_ids, strict=True)
        ],
        dtype=np.int64,
    ).reshape(-1)
    unnamed = sorted(
        {int(b) for b in brand_ids[is_product]} - set(brand_names) - {UNKNOWN_BRAND_ID}
    )
    if unnamed:
        raise ValueError(f"detections name brand ids {unnamed} that are not in the catalogue")

    norm = normalised_widths(detections)
    widths_px = np.clip(detections.widths_px.astype(np.float64), 0, None)
    totals = _Totals(int(is_product.sum()), float(norm[is_product].sum()))
    row_count = len(np.unique(row_keys(detections))) if n else 0

    def brand_name(brand_id: int) -> str:
        return brand_names.get(brand_id, f"brand {brand_id}")

    # products: every (brand, product) seen, and every targeted product
    keys = {
        (int(b), int(p))
        for b, p in zip(brand_ids[is_product], product_ids[is_product], strict=True)
    }
    keys |= {(products[p].brand_id, p) for p, t in product_planogram.items() if t > 0}
    product_records = []
    for brand_id, product_id in keys:
        mask = is_product & (brand_ids == brand_id) & (product_ids == product_id)
        if product_id != UNKNOWN_PRODUCT_ID:
            name, brand = products[product_id].name, brand_name(brand_id)
        elif brand_id != UNKNOWN_BRAND_ID:
            name, brand = UNKNOWN_PRODUCT_NAME, brand_name(brand_id)
        else:
            name, brand = UNKNOWN_NAME, UNKNOWN_NAME
        product_records.append(
            ProductRecord(
                product_id=None if product_id == UNKNOWN_PRODUCT_ID else product_id,
                brand_id=None if brand_id == UNKNOWN_BRAND_ID else brand_id,
                name=name,
                brand=brand,
                **_figures(mask, widths_px, norm, totals, product_planogram.get(product_id)),
            )
        )

    # brands: the sums of their products; a brand's target is its own or its products' sum
    targets_of_products: dict[int, int] = {}
    for product_id, target in product_planogram.items():
        brand_id = products[product_id].brand_id
        targets_of_products[brand_id] = targets_of_products.get(brand_id, 0) + int(target)
    brand_targets = {**{b: t for b, t in targets_of_products.items() if t > 0}, **planogram}
    seen = {int(b) for b in brand_ids[is_product]}
    targeted = {b for b, t in brand_targets.items() if t > 0}
    records, facings_by_brand = [], {}
    for brand_id in sorted((seen | targeted) - {UNKNOWN_BRAND_ID}):
        mask = is_product & (brand_ids == brand_id)
        facings_by_brand[brand_id] = int(mask.sum())
        records.append(
            BrandRecord(
                brand_id=brand_id,
                name=brand_name(brand_id),
                **_figures(mask, widths_px, norm, totals, brand_targets.get(brand_id)),
            )
        )
    records.sort(key=lambda r: (-r.facings, r.name))
    unknown = is_product & (brand_ids == UNKNOWN_BRAND_ID)
    if unknown.any():
        records.append(
            BrandRecord(None, UNKNOWN_NAME, **_figures(unknown, widths_px, norm, totals, None))
        )
    brand_order = {r.brand_id: i for i, r in enumerate(records)}
    product_records.sort(
        key=lambda r: (
            brand_order.get(r.brand_id, len(brand_order)),
            r.product_id is None,
            -r.facings,
            r.name,
        )
    )
    product_facings = {r.product_id: r.facings for r in product_records if r.product_id}
    return AuditMetrics(
        brands=records,
        products=product_records,
        product_count=totals.facings,
        gap_count=int(is_gap.sum()),
        row_count=row_count,
        shelf_width_px=float(widths_px.sum()),
        gap_width_px=float(widths_px[is_gap].sum()),
        gap_share_width=float(norm[is_gap].sum() / row_count) if row_count else 0.0,
        planogram_compliance=planogram_compliance(facings_by_brand, brand_targets),
        product_compliance=planogram_compliance(product_facings, product_planogram),
    )


@dataclass(frozen=True)
class _Totals:
    facings: int
    linear_rows: float


def _figures(
    mask: np.ndarray,
    widths_px: np.ndarray,
    norm: np.ndarray,
    totals: _Totals,
    target: int | None,
) -> dict[str, Any]:
    """The figures of the facings in ``mask`` against the audit's totals and a target."""
    facings = int(mask.sum())
    linear_rows = float(norm[mask].sum())
    return {
        "facings": facings,
        "share_facings": facings / totals.facings if totals.facings else 0.0,
        "linear_px": float(widths_px[mask].sum()),
        "linear_rows": linear_rows,
        "share_linear": linear_rows / totals.linear_rows if totals.linear_rows > 0 else 0.0,
        "expected_facings": None if target is None else int(target),
        "is_stockout": target is not None and target > 0 and facings == 0,
        "below_target": target is not None and 0 < facings < target,
    }
