"""Small read queries shared by the pages and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from skuaudit.errors import UserError
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope


@dataclass(frozen=True)
class StoreRow:
    id: int
    name: str
    region: str


def list_stores(url: str | None = None) -> list[StoreRow]:
    """The stores of the catalogue (deleted ones left out), by name."""
    with session_scope(url) as s:
        rows = s.execute(
            sa.select(m.Store.id, m.Store.name, m.Store.region)
            .where(m.Store.deleted_at.is_(None))
            .order_by(m.Store.name)
        )
        return [StoreRow(*r) for r in rows]


def store_id_by_name(name: str, url: str | None = None) -> int:
    """The id of the store called ``name``; ``UserError`` naming the known stores and how to add
    one otherwise."""
    with session_scope(url) as s:
        found = s.scalar(
            sa.select(m.Store.id).where(m.Store.name == name, m.Store.deleted_at.is_(None))
        )
        if found is None:
            known = s.scalars(
                sa.select(m.Store.name)
                .where(m.Store.deleted_at.is_(None))
                .order_by(m.Store.name)
                .limit(20)
            ).all()
            raise UserError(
                f"no store named {name!r}; known stores: {', '.join(known) or 'none'}. Add it "
                f"with: skuaudit catalogue add-store {name!r} --region REGION (or import a "
                "stores CSV: skuaudit catalogue import stores FILE)"
            )
        return found


@dataclass(frozen=True)
class BrandRow:
    id: int
    name: str
    manufacturer: str
    is_own: bool
    color_hex: str
    reference_count: int


def list_brands(url: str | None = None) -> list[BrandRow]:
    """Every brand of the catalogue (deleted ones left out) with its number of reference images,
    by name."""
    with session_scope(url) as s:
        refs = (
            sa.select(m.ReferenceImage.brand_id, sa.func.count().label("n"))
            .group_by(m.ReferenceImage.brand_id)
            .subquery()
        )
        rows = s.execute(
            sa.select(
                m.Brand.id,
                m.Brand.name,
                m.Brand.manufacturer,
                m.Brand.is_own,
                m.Brand.color_hex,
                sa.func.coalesce(refs.c.n, 0),
            )
            .outerjoin(refs, refs.c.brand_id == m.Brand.id)
            .where(m.Brand.deleted_at.is_(None))
            .order_by(m.Brand.name)
        )
        return [BrandRow(*r) for r in rows]


def brand_names(url: str | None = None) -> dict[int, str]:
    """Brand id -> name, deleted brands included (past audits name them)."""
    with session_scope(url) as s:
        return dict(s.execute(sa.select(m.Brand.id, m.Brand.name)).all())


def brand_colours(url: str | None = None) -> dict[int, str]:
    """Brand id -> ``#rrggbb``, deleted brands included (past audits are drawn with them)."""
    with session_scope(url) as s:
        return dict(s.execute(sa.select(m.Brand.id, m.Brand.color_hex)).all())


def planogram_for_store(store_id: int, url: str | None = None) -> dict[int, int]:
    """Brand id -> expected facings of one store."""
    with session_scope(url) as s:
        return dict(
            s.execute(
                sa.select(m.PlanogramTarget.brand_id, m.PlanogramTarget.expected_facings).where(
                    m.PlanogramTarget.store_id == store_id
                )
            ).all()
        )


@dataclass(frozen=True)
class AuditRow:
    id: int
    store_name: str
    created_at: object
    source: str
    product_count: int


def recent_audits(limit: int = 50, url: str | None = None) -> list[AuditRow]:
    """The latest audits that kept an image, newest first."""
    with session_scope(url) as s:
        rows = s.execute(
            sa.select(
                m.Audit.id, m.Store.name, m.Audit.created_at, m.Audit.source, m.Audit.product_count
            )
            .join(m.Store, m.Store.id == m.Audit.store_id)
            .where(sa.exists().where(m.AuditImage.audit_id == m.Audit.id))
            .order_by(m.Audit.created_at.desc(), m.Audit.id.desc())
            .limit(limit)
        )
        return [AuditRow(*r) for r in rows]


@dataclass(frozen=True)
class DetectionRow:
    id: int
    image_index: int
    xyxy: tuple[float, float, float, float]
    brand_id: int | None
    brand_score: float | None
    shelf_row: int | None


def product_detections(audit_id: int, url: str | None = None) -> list[DetectionRow]:
    """The product detections of one audit, by image, row and x."""
    with session_scope(url) as s:
        rows = s.execute(
            sa.select(
                m.Detection.id,
                m.Detection.image_index,
                m.Detection.x1,
                m.Detection.y1,
                m.Detection.x2,
                m.Detection.y2,
                m.Detection.brand_id,
                m.Detection.brand_score,
                m.Detection.shelf_row,
            )
            .where(m.Detection.audit_id == audit_id, m.Detection.class_name == "product")
            .order_by(m.Detection.image_index, m.Detection.shelf_row, m.Detection.x1)
        )
        return [DetectionRow(r[0], r[1], (r[2], r[3], r[4], r[5]), r[6], r[7], r[8]) for r in rows]
