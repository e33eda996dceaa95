"""ORM models. Every schema change goes through an Alembic migration in ``migrations/versions``.

The catalogue is brands -> products (SKUs) -> reference images; recognition names a product, and
so its brand, for each facing. Audits keep per-product figures (``ProductMetric``) and the brand
figures they roll up to (``BrandMetric``). Units are in the names: ``linear_px`` is pixels of box
width summed per brand or product, ``share_*`` are fractions in ``[0, 1]``. Demo rows carry
``is_demo=True`` so ``skuaudit db remove-demo`` can drop them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Timezone-naive UTC now (stored the same way on SQLite and PostgreSQL)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    region: Mapped[str] = mapped_column(String(100), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Set when deleted from the catalogue while audits refer to it (they keep their history).
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Brand(Base):
    __tablename__ = "brands"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    manufacturer: Mapped[str] = mapped_column(String(200), default="")
    is_own: Mapped[bool] = mapped_column(Boolean, default=False)
    color_hex: Mapped[str] = mapped_column(String(7), default="#888888")
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Set when deleted from the catalogue while audits refer to it (they keep their history).
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    products: Mapped[list[Product]] = relationship(
        back_populates="brand", cascade="all, delete-orphan", order_by="Product.name"
    )


class Product(Base):
    """A product (SKU) of a brand: what recognition names and audits count.

    ``gtin`` is the optional EAN/UPC/GTIN code (8, 12, 13 or 14 digits, check digit verified by
    ``skuaudit.catalogue``), unique when given.
    """

    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("brand_id", "name", name="uq_products_brand_name"),
        UniqueConstraint("gtin", name="uq_products_gtin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    gtin: Mapped[str | None] = mapped_column(String(14), nullable=True)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    brand: Mapped[Brand] = relationship(back_populates="products")
    reference_images: Mapped[list[ReferenceImage]] = relationship(
        back_populates="product", cascade="all, delete-orphan"
    )


class ReferenceImage(Base):
    """A reference crop of a product, with its embedding for few-shot recognition.

    ``embedding`` caches the recognition model's vector (``embedding_model`` names the model);
    ``features`` is a free slot for a matcher's per-reference data (e.g. local features), cached
    the same way under ``features_model``.
    """

    __tablename__ = "reference_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    image_png: Mapped[bytes] = mapped_column(LargeBinary)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    embedding_model: Mapped[str] = mapped_column(String(200), default="")
    features: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    features_model: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(50), default="upload")
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    product: Mapped[Product] = relationship(back_populates="reference_images")


class PlanogramTarget(Base):
    """How many facings of a brand a store is expected to show."""

    __tablename__ = "planogram_targets"
    __table_args__ = (UniqueConstraint("store_id", "brand_id", name="uq_planogram_store_brand"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), index=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id", ondelete="CASCADE"), index=True)
    expected_facings: Mapped[int] = mapped_column(Integer)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)


class ProductTarget(Base):
    """How many facings of a product a store is expected to show (its planogram, per SKU)."""

    __tablename__ = "product_targets"
    __table_args__ = (
        UniqueConstraint("store_id", "product_id", name="uq_product_target_store_product"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    expected_facings: Mapped[int] = mapped_column(Integer)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)


class ModelVersion(Base):
    """A trained detector folder; exactly one is active (the one new audits use)."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    path: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(50), default="detector")
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    metrics_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Audit(Base):
    __tablename__ = "audits"
    __table_args__ = (
        Index("ix_audits_store_created", "store_id", "created_at"),
        Index("ix_dash_audits_created_store", "created_at", "store_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    user_name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    source: Mapped[str] = mapped_column(
        String(10)
    )  # "live" | "photo" | "offline" (TF.js in the browser)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    model_name: Mapped[str] = mapped_column(String(200), default="")
    product_count: Mapped[int] = mapped_column(Integer, default=0)
    gap_count: Mapped[int] = mapped_column(Integer, default=0)
    gap_share_width: Mapped[float] = mapped_column(Float, default=0.0)
    shelf_width_px: Mapped[float] = mapped_column(Float, default=0.0)
    notes: Mapped[str] = mapped_column(Text, default="")
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)

    store: Mapped[Store] = relationship()
    images: Mapped[list[AuditImage]] = relationship(
        back_populates="audit", cascade="all, delete-orphan", order_by="AuditImage.image_index"
    )
    detections: Mapped[list[Detection]] = relationship(
        back_populates="audit", cascade="all, delete-orphan"
    )
    brand_metrics: Mapped[list[BrandMetric]] = relationship(
        back_populates="audit", cascade="all, delete-orphan"
    )
    product_metrics: Mapped[list[ProductMetric]] = relationship(
        back_populates="audit", cascade="all, delete-orphan"
    )


class AuditImage(Base):
    """The photo(s) or the live snapshot an audit was computed from (JPEG bytes)."""

    __tablename__ = "audit_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id", ondelete="CASCADE"), index=True)
    image_index: Mapped[int] = mapped_column(Integer, default=0)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    image_jpeg: Mapped[bytes] = mapped_column(LargeBinary)

    audit: Mapped[Audit] = relationship(back_populates="images")


class Detection(Base):
    __tablename__ = "detections"

    id: Mapped[int] = mapped_column(primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id", ondelete="CASCADE"), index=True)
    image_index: Mapped[int] = mapped_column(Integer, default=0)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    class_name: Mapped[str] = mapped_column(String(20))  # "product" | "gap"
    brand_id: Mapped[int | None] = mapped_column(
        ForeignKey("brands.id", ondelete="SET NULL"), nullable=True
    )
    brand_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    # NULL = no product recognised (the brand may still be known)
    product_id: Mapped[int | None] = mapped_column(
        ForeignKey("products.id", ondelete="SET NULL"), nullable=True
    )
    product_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    shelf_row: Mapped[int | None] = mapped_column(Integer, nullable=True)
    corrected: Mapped[bool] = mapped_column(Boolean, default=False)

    audit: Mapped[Audit] = relationship(back_populates="detections")


class AuditFigures:
    """The figures an audit keeps per brand and per product (``skuaudit.metrics``)."""

    facings: Mapped[int] = mapped_column(Integer, default=0)
    share_facings: Mapped[float] = mapped_column(Float, default=0.0)
    linear_px: Mapped[float] = mapped_column(Float, default=0.0)
    share_linear: Mapped[float] = mapped_column(Float, default=0.0)
    expected_facings: Mapped[int | None] = mapped_column(Integer, nullable=True)
    is_stockout: Mapped[bool] = mapped_column(Boolean, default=False)
    below_target: Mapped[bool] = mapped_column(Boolean, default=False)


# The columns of ``AuditFigures``, as ``skuaudit.metrics`` names them on its records.
AUDIT_FIGURES: tuple[str, ...] = (
    "facings",
    "share_facings",
    "linear_px",
    "share_linear",
    "expected_facings",
    "is_stockout",
    "below_target",
)

# The figures the dashboard queries (``skuaudit.reports``) read, kept in the metric tables'
# covering indexes after their keys.
COVERED_FIGURES: tuple[str, ...] = (
    "facings",
    "linear_px",
    "expected_facings",
    "is_stockout",
    "below_target",
)


class BrandMetric(AuditFigures, Base):
    """Per audit, per brand figures (``brand_id`` NULL = products of no known brand)."""

    __tablename__ = "brand_metrics"
    __table_args__ = (
        Index("ix_brand_metrics_brand_audit", "brand_id", "audit_id"),
        # Covers every dashboard query (skuaudit.reports): no table lookups per metric row.
        Index("ix_dash_brand_metrics_cover", "audit_id", "brand_id", *COVERED_FIGURES),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id", ondelete="CASCADE"), index=True)
    brand_id: Mapped[int | None] = mapped_column(
        ForeignKey("brands.id", ondelete="CASCADE"), nullable=True
    )

    audit: Mapped[Audit] = relationship(back_populates="brand_metrics")


class ProductMetric(AuditFigures, Base):
    """Per audit, per product figures; the audit's ``BrandMetric`` rows are their sums per brand.

    ``product_id`` NULL is the facings no product was recognised for: of brand ``brand_id``, or of
    no known brand when that is NULL too. ``expected_facings`` is the product's own target
    (``ProductTarget``) when the store has one.
    """

    __tablename__ = "product_metrics"
    __table_args__ = (
        Index("ix_product_metrics_product_audit", "product_id", "audit_id"),
        Index("ix_product_metrics_cover", "audit_id", "brand_id", "product_id", *COVERED_FIGURES),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id", ondelete="CASCADE"), index=True)
    brand_id: Mapped[int | None] = mapped_column(
        ForeignKey("brands.id", ondelete="CASCADE"), nullable=True
    )
    # A deleted product's rows stay as its brand's "unknown product": brand figures keep summing.
    product_id: Mapped[int | None] = mapped_column(
        ForeignKey("products.id", ondelete="SET NULL"), nullable=True
    )

    audit: Mapped[Audit] = relationship(back_populates="product_metrics")


class TrainingJob(Base):
    """A background training run; its state machine is queued -> running -> done|failed|cancelled."""

    __tablename__ = "training_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    params_json: Mapped[str] = mapped_column(Text, default="{}")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer, default=0)
    history_json: Mapped[str] = mapped_column(Text, default="[]")
    message: Mapped[str] = mapped_column(Text, default="")
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    output_dir: Mapped[str] = mapped_column(String(500), default="")
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(30), default="analyst")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
