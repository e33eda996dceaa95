"""Demo data so the dashboards have something to show on first start.

``seed_demo`` creates the schema if the database is new and fills an *empty* database with a few
stores, brands, planogram targets and some weeks of audits. Every row it writes is marked
``is_demo`` and ``skuaudit db remove-demo`` deletes them all. A database that already holds stores is
left untouched, so seeding on every start is safe.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import sqlalchemy as sa

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

# (name, manufacturer, own brand, colour)
DEMO_BRANDS: tuple[tuple[str, str, bool, str], ...] = (
    ("Sunvale", "Our Company", True, "#e6550d"),
    ("Brisko", "Our Company", True, "#3182bd"),
    ("Kolmar", "Rival Foods", False, "#31a354"),
    ("Tavora", "Rival Foods", False, "#756bb1"),
    ("Nimbo", "Shelfco", False, "#de2d26"),
    ("Quenta", "Shelfco", False, "#fdae6b"),
)


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
    """Create the schema if needed and fill an empty database with demo rows (idempotent)."""
    upgrade_database(url)
    rng = np.random.default_rng(seed)
    with session_scope(url) as s:
        if s.scalar(sa.select(sa.func.count()).select_from(m.Store)):
            return SeedResult(seeded=False)
        stores = [m.Store(name=n, region=r, is_demo=True) for n, r in DEMO_STORES]
        brands = [
            m.Brand(name=n, manufacturer=mf, is_own=own, color_hex=c, is_demo=True)
            for n, mf, own, c in DEMO_BRANDS
        ]
        s.add_all(stores + brands)
        s.flush()
        now = datetime(2026, 1, 5) + timedelta(weeks=52)
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
                _add_demo_audit(s, store.id, now - timedelta(weeks=weeks - week), facings, gaps, expected)
                audits += 1
    return SeedResult(seeded=True, stores=len(stores), brands=len(brands), audits=audits)


def _add_demo_audit(s, store_id, when, facings, gap_count, expected) -> None:
    total = len(facings)
    linear_total = sum(w for _, w in facings) or 1.0
    gap_width = gap_count * 70.0
    audit = m.Audit(
        store_id=store_id, user_name="demo", created_at=when, source="photo",
        model_name="demo", product_count=total, gap_count=gap_count,
        shelf_width_px=linear_total + gap_width,
        gap_share_width=gap_width / (linear_total + gap_width), is_demo=True,
    )
    s.add(audit)
    s.flush()
    x = 0.0
    rows = []
    for brand_id, width in facings:
        row, x = int(x // 1000), x + width
        left = x - width - row * 1000
        rows.append(
            m.Detection(audit_id=audit.id, x1=left, y1=row * 200.0, x2=left + width,
                        y2=row * 200.0 + 180, score=0.9, class_name="product",
                        brand_id=brand_id, brand_score=0.9, shelf_row=row)
        )
    s.add_all(rows)
    for brand_id, target in expected.items():
        widths = [w for b, w in facings if b == brand_id]
        n = len(widths)
        s.add(
            m.BrandMetric(
                audit_id=audit.id, brand_id=brand_id, facings=n,
                share_facings=n / total if total else 0.0,
                linear_px=float(sum(widths)), share_linear=float(sum(widths)) / linear_total,
                expected_facings=target, is_stockout=n == 0 and target > 0,
                below_target=n < target,
            )
        )


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="skuaudit seed-demo", description=__doc__.split("\n")[0])
    parser.add_argument("--db-url", help="database URL (default: SKUAUDIT_DB_URL or data/skuaudit.db)")
    parser.add_argument("--weeks", type=int, default=6)
    args = parser.parse_args(argv)
    try:
        print(seed_demo(args.db_url, weeks=args.weeks).summary())
    except DatabaseError as exc:
        print(f"skuaudit seed-demo: {exc}", file=sys.stderr)
        return 2
    return 0
