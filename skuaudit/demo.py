"""Demo data so the dashboards have something to show on first start.

``seed_demo`` creates the schema if the database is new and fills an *empty* database with a few
stores, brands with a few products (SKUs) each, planogram targets per product (and their sum per
brand) and some weeks of audits. Every row it writes is marked ``is_demo`` and ``skuaudit db
remove-demo`` deletes them all. A database that already holds stores is left untouched, so seeding
on every start is safe.

The demo brands are the first brands of the synthetic catalogue (``demo_catalogue``); their
products are pack types and flavour variants of the brand (``demo_products``), each enrolled with
a few generated reference crops. ``render_demo_shelf`` lays those products out on a shelf with an
exact box, brand and product for every facing, so a photo audit of it can be checked product by
product; a shelf rendered with ``render_shelf(seed, catalogue=demo_catalogue())`` shows the demo
brands in every pack type and variant, the enrolled products among them.
"""

from __future__ import annotations

import argparse
import colorsys
import sys
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import cache

import cv2
import numpy as np
import sqlalchemy as sa

from skuaudit.catalogue import gtin_check_digit
from skuaudit.datasets.synth import (
    BrandCatalogue,
    BrandIdentity,
    SynthShelf,
    default_catalogue,
    render_product,
)
from skuaudit.detections import GAP, PRODUCT, Detections
from skuaudit.images import encode_png
from skuaudit.metrics import audit_metrics
from skuaudit.storage import models as m
from skuaudit.storage.db import DatabaseError, session_scope, upgrade_database

DEMO_STORES: tuple[tuple[str, str], ...] = (
    ("Northgate Market", "North"),
    ("Harbour Foods", "North"),
    ("Riverside Grocer", "Central"),
    ("Central Superstore", "Central"),
    ("Southfield Express", "South"),
    ("Meadow Mart", "South"),
)

# (manufacturer, own brand) of the demo brands, in catalogue order
DEMO_OWNERS: tuple[tuple[str, bool], ...] = (
    ("Our Company", True),
    ("Our Company", True),
    ("Rival Foods", False),
    ("Rival Foods", False),
    ("Shelfco", False),
    ("Shelfco", False),
)
PRODUCTS_PER_BRAND = 3
REFERENCES_PER_PRODUCT = 3
REFERENCE_HEIGHT_PX = 96
# width / height of a demo facing per pack type
FACING_ASPECT = {"box": 0.7, "bottle": 0.4, "can": 0.55, "pouch": 0.75, "jar": 0.8}
# GS1 prefix 200-299: numbers for use inside one company, never printed on a real product
DEMO_GTIN_PREFIX = "200"


def demo_catalogue() -> BrandCatalogue:
    """The synthetic brands the demo database knows (the first of ``default_catalogue()``)."""
    full = default_catalogue()
    return BrandCatalogue(full.brands[: len(DEMO_OWNERS)], seed=full.seed)


def _hex(bgr: tuple[int, int, int]) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


def colour_name(bgr: tuple[int, int, int]) -> str:
    """A plain colour word for a BGR colour (a flavour band), e.g. ``"red"``.

    Example:
        >>> colour_name((40, 40, 220)), colour_name((240, 240, 240))
        ('red', 'white')
    """
    b, g, r = (c / 255 for c in bgr)
    hue, saturation, value = colorsys.rgb_to_hsv(r, g, b)
    if value < 0.2:
        return "black"
    if saturation < 0.2:
        return "white" if value > 0.75 else "grey"
    if 0.04 < hue < 0.12 and value < 0.6:
        return "brown"
    names = ((0.04, "red"), (0.12, "orange"), (0.19, "yellow"), (0.45, "green"), (0.55, "teal"))
    names += ((0.72, "blue"), (0.83, "purple"), (0.95, "pink"), (1.01, "red"))
    return next(name for limit, name in names if hue < limit)


@dataclass(frozen=True)
class DemoProduct:
    """One product (SKU) of a demo brand: a pack type in one flavour variant."""

    brand: BrandIdentity
    family: str
    variant: int
    name: str
    gtin: str

    @property
    def label(self) -> str:
        """``"Brand · Product"``, as audits name it."""
        from skuaudit.metrics import product_label

        return product_label(self.brand.name, self.name)

    def render(self, height_px: int, rng: np.random.Generator, width_px: int | None = None):
        """One facing of the product, ``(height_px, width_px, 3)`` BGR."""
        width_px = width_px or max(8, round(height_px * FACING_ASPECT[self.family]))
        return render_product(self.brand, self.family, width_px, height_px, rng, self.variant)


@cache
def demo_products() -> tuple[DemoProduct, ...]:
    """Up to ``PRODUCTS_PER_BRAND`` products per demo brand: other pack types first, then other
    flavour variants, each named after its flavour colour and pack (e.g. "Blue can")."""
    products = []
    for identity in demo_catalogue().brands:
        combos: list[tuple[str, int]] = []
        for i in range(PRODUCTS_PER_BRAND):
            combo = (identity.families[i % len(identity.families)], i % identity.n_variants)
            if combo not in combos:
                combos.append(combo)
        for family, variant in combos:
            colour = colour_name(identity.variant_bgr[variant])
            serial = f"{DEMO_GTIN_PREFIX}{len(products):09d}"
            products.append(
                DemoProduct(
                    identity,
                    family,
                    variant,
                    f"{colour.capitalize()} {family}",
                    serial + str(gtin_check_digit(serial)),
                )
            )
    return tuple(products)


def _vary(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A reference as another photo would show it: other size, light and a slight tilt."""
    h, w = crop.shape[:2]
    d = 0.06 * np.array([w, h])
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = (src + rng.uniform(-1, 1, (4, 2)) * d).astype(np.float32)
    crop = cv2.warpPerspective(
        crop, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REPLICATE
    )
    gain, offset = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
    return np.clip(crop.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def demo_reference_crops(product: DemoProduct, rng: np.random.Generator) -> list[np.ndarray]:
    """Generated reference facings of a demo product, each seen a little differently."""
    return [
        _vary(product.render(int(REFERENCE_HEIGHT_PX * rng.uniform(1.1, 1.5)), rng), rng)
        for _ in range(REFERENCES_PER_PRODUCT)
    ]


@dataclass
class DemoShelf(SynthShelf):
    """A generated shelf of demo products, with the truth of every box (``SynthShelf``'s fields).

    Attributes:
        products: product label (``"Brand · Product"``) per box, ``""`` for gaps.
    """

    products: list[str] = field(default_factory=list)

    def to_detections(self) -> Detections:
        """The boxes as ``Detections`` with ``brand``, ``product`` and ``shelf_row`` data."""
        detections = super().to_detections()
        detections.data["product"] = np.array(self.products, dtype=object)
        return detections

    def counts(self) -> dict[str, int]:
        """Facings per product label."""
        labels, n = np.unique([p for p in self.products if p], return_counts=True)
        return dict(zip(labels.tolist(), n.tolist(), strict=True))


def render_demo_shelf(
    seed: int,
    width: int = 960,
    height: int = 720,
    *,
    rows: int = 3,
    products: tuple[DemoProduct, ...] | None = None,
    gap_rate: float = 0.08,
) -> DemoShelf:
    """A shelf of runs of demo product facings (and a few empty gaps), with exact boxes.

    Args:
        seed: the same seed gives the same shelf.
        width, height: image size in pixels.
        rows: shelf rows.
        products: what to stock (default: every demo product).
        gap_rate: chance that a run is an empty gap instead.
    """
    rng = np.random.default_rng([seed, 0xD3E0])
    products = products or demo_products()
    image = np.full((height, width, 3), rng.integers(150, 210), np.uint8)
    pitch = height / rows
    boxes, classes, brands, labels, shelf_rows = [], [], [], [], []
    for row in range(rows):
        bottom = int((row + 1) * pitch - pitch * 0.08)
        cv2.rectangle(image, (0, bottom), (width, int((row + 1) * pitch)), (70, 70, 80), -1)
        x = int(rng.integers(4, 20))
        while True:
            product = products[int(rng.integers(len(products)))]
            h = int(pitch * rng.uniform(0.7, 0.85))
            w = max(8, round(h * FACING_ASPECT[product.family]))
            if rng.random() < gap_rate:
                gap_w = int(w * rng.uniform(1.0, 2.0))
                if x + gap_w > width - 4:
                    break
                image[bottom - h : bottom, x : x + gap_w] = (30, 30, 35)
                boxes.append((x, bottom - h, x + gap_w, bottom))
                classes.append(GAP)
                brands.append("")
                labels.append("")
                shelf_rows.append(row)
                x += gap_w + 3
                continue
            run = int(rng.integers(1, 5))
            for _ in range(run):
                if x + w > width - 4:
                    break
                image[bottom - h : bottom, x : x + w] = product.render(h, rng, w)
                boxes.append((x, bottom - h, x + w, bottom))
                classes.append(PRODUCT)
                brands.append(product.brand.name)
                labels.append(product.label)
                shelf_rows.append(row)
                x += w + int(rng.integers(1, 4))
            if x + w > width - 4:
                break
    noise = rng.normal(0, 3, image.shape)
    image = np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return DemoShelf(
        image_bgr=image,
        boxes_xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        class_ids=np.array(classes, np.int32),
        brands=brands,
        shelf_rows=np.array(shelf_rows, np.int32),
        products=labels,
    )


@dataclass
class SeedResult:
    seeded: bool
    stores: int = 0
    brands: int = 0
    products: int = 0
    audits: int = 0

    def summary(self) -> str:
        if not self.seeded:
            return "database already has data; demo seeding skipped"
        return (
            f"seeded demo data: {self.stores} stores, {self.brands} brands, "
            f"{self.products} products, {self.audits} audits"
        )


def _demo_facings(
    rng: np.random.Generator,
    targets: dict[int, int],
    brand_of: dict[int, int],
    brands_out: set[int],
) -> list[int]:
    """The product id of each facing of one audit: about each product's target, none of a brand
    out of stock this week, and now and then one product out of stock on its own."""
    facings: list[int] = []
    for product_id, target in targets.items():
        if brand_of[product_id] in brands_out or rng.random() < 0.08:
            continue
        facings += [product_id] * max(0, int(round(target * rng.uniform(0.6, 1.15))))
    return facings


def seed_demo(url: str | None = None, *, weeks: int = 6, seed: int = 7) -> SeedResult:
    """Create the schema if needed and fill an empty database with demo rows (idempotent).

    The ``weeks`` weekly audits of each store end yesterday, so the dashboards open on recent
    weeks and no demo audit is dated in the future.
    """
    from skuaudit.audit import store_context, write_audit_rows

    upgrade_database(url)
    rng = np.random.default_rng(seed)
    with session_scope(url) as s:
        if s.scalar(sa.select(sa.func.count()).select_from(m.Store)):
            return SeedResult(seeded=False)
        stores = [m.Store(name=n, region=r, is_demo=True) for n, r in DEMO_STORES]
        identities = demo_catalogue().brands
        brands = {
            b.name: m.Brand(
                name=b.name,
                manufacturer=mf,
                is_own=own,
                color_hex=_hex(b.primary_bgr),
                is_demo=True,
            )
            for b, (mf, own) in zip(identities, DEMO_OWNERS, strict=True)
        }
        s.add_all(stores + list(brands.values()))
        s.flush()
        products = {
            p: m.Product(brand_id=brands[p.brand.name].id, name=p.name, gtin=p.gtin, is_demo=True)
            for p in demo_products()
        }
        s.add_all(products.values())
        s.flush()
        s.add_all(
            m.ReferenceImage(
                product_id=row.id, image_png=encode_png(crop), source="demo", is_demo=True
            )
            for product, row in products.items()
            for crop in demo_reference_crops(product, rng)
        )
        brand_of = {row.id: row.brand_id for row in products.values()}
        last = datetime.combine(m.utcnow().date() - timedelta(days=1), time(10))
        audits = 0
        for store in stores:
            targets = {row.id: int(rng.integers(2, 6)) for row in products.values()}
            s.add_all(
                m.ProductTarget(store_id=store.id, product_id=p, expected_facings=n, is_demo=True)
                for p, n in targets.items()
            )
            for brand in brands.values():
                total = sum(n for p, n in targets.items() if brand_of[p] == brand.id)
                s.add(
                    m.PlanogramTarget(
                        store_id=store.id, brand_id=brand.id, expected_facings=total, is_demo=True
                    )
                )
            s.flush()
            context = store_context(s, store.id)
            for week in range(weeks):
                out = {b.id for b in brands.values() if rng.random() < 0.08}
                detections = _demo_detections(
                    _demo_facings(rng, targets, brand_of, out),
                    brand_of,
                    int(rng.integers(0, 6)),
                    rng,
                )
                metrics = audit_metrics(detections, **context)
                audit = m.Audit(
                    store_id=store.id,
                    user_name="demo",
                    created_at=last - timedelta(weeks=weeks - 1 - week),
                    source="photo",
                    model_name="demo",
                    product_count=metrics.product_count,
                    gap_count=metrics.gap_count,
                    shelf_width_px=metrics.shelf_width_px,
                    gap_share_width=metrics.gap_share_width,
                    is_demo=True,
                )
                s.add(audit)
                s.flush()
                write_audit_rows(s, audit.id, detections, metrics)
                audits += 1
    return SeedResult(
        seeded=True,
        stores=len(stores),
        brands=len(brands),
        products=len(products),
        audits=audits,
    )


ROW_WIDTH_PX = 1000.0


def _demo_detections(
    facings: list[int], brand_of: dict[int, int], gap_count: int, rng: np.random.Generator
) -> Detections:
    """Boxes for an audit's facings (55-95 px wide) and gaps (70 px), in rows of 1000 px."""
    items = [(p, float(rng.uniform(55, 95))) for p in facings] + [(-1, 70.0)] * gap_count
    boxes, product_ids, brand_ids, classes, rows = [], [], [], [], []
    x = 0.0
    for product_id, width in items:
        row, x = int(x // ROW_WIDTH_PX), x + width
        left = x - width - row * ROW_WIDTH_PX
        boxes.append((left, row * 200.0, left + width, row * 200.0 + 180))
        product_ids.append(product_id)
        brand_ids.append(brand_of.get(product_id, -1))
        classes.append(PRODUCT if product_id >= 0 else GAP)
        rows.append(row)
    n = len(items)
    return Detections(
        np.array(boxes, np.float32).reshape(-1, 4),
        np.full(n, 0.9, np.float32),
        np.array(classes, np.int32),
        {
            "product_id": np.array(product_ids, np.int64),
            "product_score": np.full(n, 0.9, np.float32),
            "brand_id": np.array(brand_ids, np.int64),
            "brand_score": np.full(n, 0.9, np.float32),
            "shelf_row": np.array(rows, np.int64),
        },
    )


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="skuaudit seed-demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--db-url", help="database URL (default: SKUAUDIT_DB_URL or data/skuaudit.db)"
    )
    parser.add_argument("--weeks", type=int, default=6)
    args = parser.parse_args(argv)
    try:
        print(seed_demo(args.db_url, weeks=args.weeks).summary())
    except DatabaseError as exc:
        print(f"skuaudit seed-demo: {exc}", file=sys.stderr)
        return 2
    return 0
