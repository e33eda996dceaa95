"""Demo data so the dashboards have something to show on first start.

``seed_demo`` creates the schema if the database is new and fills an *empty* database with a few
stores, brands, planogram targets and some weeks of audits. Every row it writes is marked
``is_demo`` and ``skuaudit db remove-demo`` deletes them all. A database that already holds stores is
left untouched, so seeding on every start is safe.

The demo brands are the first brands of the synthetic catalogue (``demo_catalogue``), each enrolled
with a few generated reference crops, so a photo audit of a shelf rendered with
``render_shelf(seed, catalogue=demo_catalogue())`` recognises them out of the box.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime, time, timedelta

import numpy as np
import sqlalchemy as sa

from skuaudit.datasets.synth import BrandCatalogue, BrandIdentity, default_catalogue, render_product
from skuaudit.images import encode_png
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
REFERENCES_PER_BRAND = 6
REFERENCE_HEIGHT_PX = 96


def demo_catalogue() -> BrandCatalogue:
    """The synthetic brands the demo database knows (the first of ``default_catalogue()``)."""
    full = default_catalogue()
    return BrandCatalogue(full.brands[: len(DEMO_OWNERS)], seed=full.seed)


def _hex(bgr: tuple[int, int, int]) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


def demo_reference_crops(brand: BrandIdentity, rng: np.random.Generator) -> list[np.ndarray]:
    """Generated reference facings of a brand: every family and flavour variant in turn."""
    crops = []
    for i in range(REFERENCES_PER_BRAND):
        family = brand.families[i % len(brand.families)]
        width = int(REFERENCE_HEIGHT_PX * (0.4 if family == "bottle" else 0.75))
        crops.append(render_product(brand, family, width, REFERENCE_HEIGHT_PX, rng, variant=i))
    return crops


@dataclass
class SeedResult:
    seeded: bool
    stores: int = 0
    brands: int = 0
    audits: int = 0

    def summary(self) -> str:
        if not self.seeded:
            return "database already has data; demo seeding skipped"
        return f"seeded demo data: {self.stores} stores, {self.brands} brands, {self.audits} audits"


def _demo_audit(
    rng: np.random.Generator, expected: dict[int, int], week_stockouts: set[int]
) -> tuple[list[tuple[int, float]], int]:
    """Facings per brand for one audit as ``[(brand_id, width_px), ...]`` plus the gap count."""
    facings: list[tuple[int, float]] = []
    for brand_id, target in expected.items():
        if brand_id in week_stockouts:
            continue
        count = max(0, int(round(target * rng.uniform(0.6, 1.15))))
        facings += [(brand_id, float(rng.uniform(55, 95))) for _ in range(count)]
    return facings, int(rng.integers(0, 6))


def seed_demo(url: str | None = None, *, weeks: int = 6, seed: int = 7) -> SeedResult:
    """Create the schema if needed and fill an empty database with demo rows (idempotent).

    The ``weeks`` weekly audits of each store end yesterday, so the dashboards open on recent
    weeks and no demo audit is dated in the future.
    """
    upgrade_database(url)
    rng = np.random.default_rng(seed)
    with session_scope(url) as s:
        if s.scalar(sa.select(sa.func.count()).select_from(m.Store)):
            return SeedResult(seeded=False)
        stores = [m.Store(name=n, region=r, is_demo=True) for n, r in DEMO_STORES]
        identities = demo_catalogue().brands
        brands = [
            m.Brand(
                name=b.name,
                manufacturer=mf,
                is_own=own,
                color_hex=_hex(b.primary_bgr),
                is_demo=True,
            )
            for b, (mf, own) in zip(identities, DEMO_OWNERS, strict=True)
        ]
        s.add_all(stores + brands)
        s.flush()
        s.add_all(
            m.ReferenceImage(
                brand_id=brand.id, image_png=encode_png(crop), source="demo", is_demo=True
            )
            for brand, identity in zip(brands, identities, strict=True)
            for crop in demo_reference_crops(identity, rng)
        )
        last = datetime.combine(m.utcnow().date() - timedelta(days=1), time(10))
        audits = 0
        for store in stores:
            expected = {b.id: int(rng.integers(4, 14)) for b in brands}
            s.add_all(
                m.PlanogramTarget(store_id=store.id, brand_id=b, expected_facings=n, is_demo=True)
                for b, n in expected.items()
            )
            for week in range(weeks):
                out = {b.id for b in brands if rng.random() < 0.08}
                facings, gaps = _demo_audit(rng, expected, out)
                _add_demo_audit(
                    s, store.id, last - timedelta(weeks=weeks - 1 - week), facings, gaps, expected
                )
                audits += 1
    return SeedResult(seeded=True, stores=len(stores), brands=len(brands), audits=audits)


def _add_demo_audit(s, store_id, when, facings, gap_count, expected) -> None:
    total = len(facings)
    linear_total = sum(w for _, w in facings) or 1.0
    gap_width = gap_count * 70.0
    audit = m.Audit(
        store_id=store_id,
        user_name="demo",
        created_at=when,
        source="photo",
        model_name="demo",
        product_count=total,
        gap_count=gap_count,
        shelf_width_px=linear_total + gap_width,
        gap_share_width=gap_width / (linear_total + gap_width),
        is_demo=True,
    )
    s.add(audit)
    s.flush()
    x = 0.0
    rows = []
    for brand_id, width in facings:
        row, x = int(x // 1000), x + width
        left = x - width - row * 1000
        rows.append(
            m.Detection(
                audit_id=audit.id,
                x1=left,
                y1=row * 200.0,
                x2=left + width,
                y2=row * 200.0 + 180,
                score=0.9,
                class_name="product",
                brand_id=brand_id,
                brand_score=0.9,
                shelf_row=row,
            )
        )
    s.add_all(rows)
    for brand_id, target in expected.items():
        widths = [w for b, w in facings if b == brand_id]
        n = len(widths)
        s.add(
            m.BrandMetric(
                audit_id=audit.id,
                brand_id=brand_id,
                facings=n,
                share_facings=n / total if total else 0.0,
                linear_px=float(sum(widths)),
                share_linear=float(sum(widths)) / linear_total,
                expected_facings=target,
                is_stockout=n == 0 and target > 0,
                below_target=n < target,
            )
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
