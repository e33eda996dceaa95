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
    product_count: int = 0


def _reference_counts() -> sa.Subquery:
    return (
        sa.select(m.ReferenceImage.product_id, sa.func.count().label("n"))
        .group_by(m.ReferenceImage.product_id)
        .subquery()
    )


def list_brands(url: str | None = None) -> list[BrandRow]:
    """Every brand of the catalogue (deleted ones left out) with its number of reference images
    and products, by name."""
    with session_scope(url) as s:
        refs = _reference_counts()
        per_brand = (
            sa.select(
                m.Product.brand_id,
                sa.func.coalesce(sa.func.sum(refs.c.n), 0).label("refs"),
                sa.func.count(m.Product.id).label("products"),
            )
            .outerjoin(refs, refs.c.product_id == m.Product.id)
            .group_by(m.Product.brand_id)
            .subquery()
        )
        rows = s.execute(
            sa.select(
                m.Brand.id,
                m.Brand.name,
                m.Brand.manufacturer,
                m.Brand.is_own,
                m.Brand.color_hex,
                sa.func.coalesce(per_brand.c.refs, 0),
                sa.func.coalesce(per_brand.c.products, 0),
            )
            .outerjoin(per_brand, per_brand.c.brand_id == m.Brand.id)
            .where(m.Brand.deleted_at.is_(None))
            .order_by(m.Brand.name)
        )
        return [BrandRow(r[0], r[1], r[2], r[3], r[4], int(r[5]), int(r[6])) for r in rows]


@dataclass(frozen=True)
class ProductRow:
    id: int
    brand_id: int
    brand: str
    name: str
    gtin: str | None
    reference_count: int

    @property
    def label(self) -> str:
        """``"Brand · Product"``, as audits and dashboards name it."""
        from skuaudit.metrics import product_label

        return product_label(self.brand, self.name)


def list_products(url: str | None = None, brand_id: int | None = None) -> list[ProductRow]:
    """Every product of the catalogue (of one brand, when given; those of deleted brands left
    out) with its number of references, by brand and name."""
    with session_scope(url) as s:
        refs = _reference_counts()
        query = (
            sa.select(
                m.Product.id,
                m.Product.brand_id,
                m.Brand.name,
                m.Product.name,
                m.Product.gtin,
                sa.func.coalesce(refs.c.n, 0),
            )
            .join(m.Brand, m.Brand.id == m.Product.brand_id)
            .outerjoin(refs, refs.c.product_id == m.Product.id)
            .where(m.Brand.deleted_at.is_(None))
            .order_by(m.Brand.name, m.Product.name)
        )
        if brand_id is not None:
            query = query.where(m.Product.brand_id == brand_id)
        return [ProductRow(*r) for r in s.execute(query)]


def product_infos(url: str | None = None):
    """Product id -> ``metrics.ProductInfo`` (brand and name), for figures and labels."""
    from skuaudit.metrics import ProductInfo

    with session_scope(url) as s:
        rows = s.execute(sa.select(m.Product.id, m.Product.brand_id, m.Product.name)).all()
    return {pid: ProductInfo(brand_id, name) for pid, brand_id, name in rows}


def brand_names(url: str | None = None) -> dict[int, str]:
    """Brand id -> name, deleted brands included (past audits name them)."""
    with session_scope(url) as s:
        return dict(s.execute(sa.select(m.Brand.id, m.Brand.name)).all())


def brand_colours(url: str | None = None) -> dict[int, str]:
    """Brand id -> ``#rrggbb``, deleted brands included (past audits are drawn with them)."""
    with session_scope(url) as s:
        return dict(s.execute(sa.select(m.Brand.id, m.Brand.color_hex)).all())


def product_planogram_for_store(store_id: int, url: str | None = None) -> dict[int, int]:
    """Product id -> expected facings of one store."""
    return _targets(m.ProductTarget, m.ProductTarget.product_id, store_id, url)


def planogram_for_store(store_id: int, url: str | None = None) -> dict[int, int]:
    """Brand id -> expected facings of one store."""
    return _targets(m.PlanogramTarget, m.PlanogramTarget.brand_id, store_id, url)


def _targets(table, key, store_id: int, url: str | None) -> dict[int, int]:
    with session_scope(url) as s:
        query = sa.select(key, table.expected_facings).where(table.store_id == store_id)
        return dict(s.execute(query).all())


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
    product_id: int | None = None


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
                m.Detection.product_id,
            )
            .where(m.Detection.audit_id == audit_id, m.Detection.class_name == "product")
            .order_by(m.Detection.image_index, m.Detection.shelf_row, m.Detection.x1)
        )
        return [
            DetectionRow(r[0], r[1], (r[2], r[3], r[4], r[5]), r[6], r[7], r[8], r[9]) for r in rows
        ]
