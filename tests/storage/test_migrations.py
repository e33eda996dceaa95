"""Migration 0003 (products) on a database that holds data from the previous head, on SQLite and on
a real PostgreSQL server: every brand becomes one product holding its references, past detections
and figures point to it, the dashboards read the same numbers, and the downgrade gives it back."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from skuaudit import reports
from skuaudit.storage import models as m
from skuaudit.storage.db import (
    current_revision,
    downgrade_database,
    get_engine,
    head_revision,
    session_scope,
    upgrade_database,
)

BEFORE_PRODUCTS = "0002"
MARCH = (date(2026, 3, 1), date(2026, 3, 31))

# The previous head's rows, written with its own columns (the ORM models are at the new head).
ROWS: list[tuple[str, list[dict]]] = [
    ("stores", [{"id": 1, "name": "Alpha", "region": "North", "address": "", "is_demo": False}]),
    (
        "brands",
        [
            {"id": 1, "name": "Own", "manufacturer": "Us", "is_own": True, "color_hex": "#ff0000"},
            {"id": 2, "name": "Rival", "manufacturer": "", "is_own": False, "color_hex": "#0000ff"},
            {"id": 3, "name": "Quiet", "manufacturer": "", "is_own": False, "color_hex": "#00ff00"},
        ],
    ),
    (
        "reference_images",
        [
            {"id": 1, "brand_id": 1, "image_png": b"png-own-1", "embedding": b"\0" * 8},
            {"id": 2, "brand_id": 1, "image_png": b"png-own-2", "embedding": None},
            {"id": 3, "brand_id": 2, "image_png": b"png-rival", "embedding": None},
        ],
    ),
    ("planogram_targets", [{"store_id": 1, "brand_id": 1, "expected_facings": 3}]),
    (
        "audits",
        [{"id": 1, "store_id": 1, "source": "photo", "product_count": 4, "gap_count": 1}],
    ),
    (
        "detections",
        [
            {"class_name": "product", "brand_id": 1, "brand_score": 0.9},
            {"class_name": "product", "brand_id": 1, "brand_score": 0.8},
            {"class_name": "product", "brand_id": 2, "brand_score": 0.7},
            {"class_name": "product", "brand_id": None, "brand_score": 0.2},
            {"class_name": "gap", "brand_id": None, "brand_score": None},
        ],
    ),
    (
        "brand_metrics",
        [
            {"brand_id": 1, "facings": 2, "linear_px": 200.0, "expected_facings": 3}
            | {"below_target": True},
            {"brand_id": 2, "facings": 1, "linear_px": 100.0, "expected_facings": None},
            {"brand_id": None, "facings": 1, "linear_px": 100.0, "expected_facings": None},
            {"brand_id": 3, "facings": 0, "linear_px": 0.0, "expected_facings": 2}
            | {"is_stockout": True, "below_target": True},
        ],
    ),
]
DEFAULTS = {
    "stores": {"created_at": datetime(2026, 1, 1)},
    "brands": {"is_demo": False, "created_at": datetime(2026, 1, 1)},
    "reference_images": {
        "embedding_model": "m",
        "source": "upload",
        "is_demo": False,
        "created_at": datetime(2026, 1, 1),
    },
    "planogram_targets": {"is_demo": False},
    "audits": {
        "user_name": "ana",
        "created_at": datetime(2026, 3, 2, 10),
        "model_name": "",
        "gap_share_width": 0.1,
        "shelf_width_px": 500.0,
        "notes": "",
        "is_demo": False,
    },
    "detections": {
        "audit_id": 1,
        "image_index": 0,
        "x1": 0.0,
        "y1": 0.0,
        "x2": 100.0,
        "y2": 150.0,
        "score": 0.9,
        "shelf_row": 0,
        "corrected": False,
    },
    "brand_metrics": {
        "audit_id": 1,
        "share_facings": 0.25,
        "share_linear": 0.25,
        "is_stockout": False,
        "below_target": False,
    },
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def old_url(request, tmp_path) -> str:
    """A database at the schema before products, holding ``ROWS``."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database(f"m_{uuid.uuid4().hex[:12]}")
    assert upgrade_database(url, BEFORE_PRODUCTS) == BEFORE_PRODUCTS
    metadata = sa.MetaData()
    metadata.reflect(get_engine(url))
    with get_engine(url).begin() as conn:
        for table, rows in ROWS:
            conn.execute(
                metadata.tables[table].insert(), [DEFAULTS.get(table, {}) | r for r in rows]
            )
        if conn.dialect.name == "postgresql":  # rows were given their ids: move the sequences on
            for table, rows in ROWS:
                if "id" in rows[0]:
                    conn.exec_driver_sql(
                        f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))"
                    )
    return url


def _schema_drift(url: str) -> list:
    with get_engine(url).connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), m.Base.metadata)


def test_upgrade_turns_each_brand_into_one_product(old_url):
    assert upgrade_database(old_url) == head_revision()
    assert _schema_drift(old_url) == []
    with session_scope(old_url) as s:
        products = {p.brand.name: p for p in s.scalars(sa.select(m.Product))}
        assert {b: (p.name, p.gtin) for b, p in products.items()} == {
            "Own": ("Own", None),
            "Rival": ("Rival", None),
            "Quiet": ("Quiet", None),
        }
        refs = {r.image_png: r.product.brand.name for r in s.scalars(sa.select(m.ReferenceImage))}
        assert refs == {b"png-own-1": "Own", b"png-own-2": "Own", b"png-rival": "Rival"}
        assert s.get(m.ReferenceImage, 1).embedding == b"\0" * 8  # cached embeddings kept
        detections = s.execute(
            sa.select(m.Detection.brand_id, m.Detection.product_id, m.Detection.product_score)
            .where(m.Detection.class_name == "product")
            .order_by(m.Detection.id)
        ).all()
        own, rival = products["Own"].id, products["Rival"].id
        assert [(p, sc) for _, p, sc in detections] == [
            (own, 0.9),
            (own, 0.8),
            (rival, 0.7),
            (None, None),
        ]
        product_rows = s.execute(
            sa.select(
                m.ProductMetric.brand_id,
                m.ProductMetric.product_id,
                m.ProductMetric.facings,
                m.ProductMetric.linear_px,
                m.ProductMetric.expected_facings,
            ).order_by(m.ProductMetric.id)
        ).all()
        assert sorted(product_rows, key=repr) == sorted(
            [(1, own, 2, 200.0, None), (2, rival, 1, 100.0, None), (None, None, 1, 100.0, None)],
            key=repr,
        )
        assert s.scalar(sa.select(sa.func.count()).select_from(m.ProductTarget)) == 0
        # the schema takes new products and their references at once
        second = m.Product(brand_id=1, name="Own Light", gtin="4006381333931")
        s.add(second)
        s.flush()
        s.add(m.ReferenceImage(product_id=second.id, image_png=b"png-light"))
    shares = reports.share_of_shelf(old_url, *MARCH)
    assert dict(zip(shares["brand"], shares["facings"], strict=True)) == {
        "Own": 2,
        "Rival": 1,
        "Unknown brand": 1,
        "Quiet": 0,
    }
    stockouts = reports.current_stockouts(old_url)
    assert list(zip(stockouts["brand"], stockouts["status"], strict=True)) == [
        ("Quiet", "stockout"),
        ("Own", "below target"),
    ]


def test_downgrade_gives_references_their_brand_back(old_url):
    upgrade_database(old_url)
    with session_scope(old_url) as s:
        light = m.Product(brand_id=1, name="Own Light")
        s.add(light)
        s.flush()
        s.add(m.ReferenceImage(product_id=light.id, image_png=b"png-light"))
    assert downgrade_database(old_url, BEFORE_PRODUCTS) == BEFORE_PRODUCTS
    with get_engine(old_url).connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        assert not tables & {"products", "product_metrics", "product_targets"}
        refs = dict(conn.execute(sa.text("SELECT image_png, brand_id FROM reference_images")).all())
        columns = {c["name"] for c in sa.inspect(conn).get_columns("detections")}
    assert {bytes(k): v for k, v in refs.items()} == {
        b"png-own-1": 1,
        b"png-own-2": 1,
        b"png-rival": 2,
        b"png-light": 1,
    }
    assert "product_id" not in columns
    assert upgrade_database(old_url) == head_revision()  # and up again
    assert current_revision(old_url) == head_revision()


def test_catalogue_deletion_0004_on_top_of_products(old_url):
    """0004 (``deleted_at``) chains on 0003: a brand deleted with its products at the head keeps
    its rows for the audits; down to 0003 the mark goes and the brand is listed again; down to
    0002 its products fold back into it; and up to the head again."""
    from skuaudit import catalogue
    from skuaudit.storage.queries import list_brands, list_products

    assert upgrade_database(old_url) == head_revision() == "0004"
    own = 1
    done = catalogue.delete_brand(own, old_url)
    assert (done.audits, done.products, done.reference_images) == (1, 1, 2)
    assert "Own" not in [b.name for b in list_brands(old_url)]
    assert "Own" not in [p.brand for p in list_products(old_url)]
    shares = reports.share_of_shelf(old_url, *MARCH)
    assert dict(zip(shares["brand"], shares["facings"], strict=True))["Own"] == 2  # history

    assert downgrade_database(old_url, "0003") == "0003"
    with get_engine(old_url).connect() as conn:
        for table in ("stores", "brands"):
            assert "deleted_at" not in {c["name"] for c in sa.inspect(conn).get_columns(table)}
        assert conn.execute(sa.text("SELECT count(*) FROM products WHERE brand_id = 1")).scalar()
    assert downgrade_database(old_url, BEFORE_PRODUCTS) == BEFORE_PRODUCTS
    with get_engine(old_url).connect() as conn:
        names = set(conn.execute(sa.text("SELECT name FROM brands")).scalars())
        brand_of = conn.execute(
            sa.text("SELECT brand_id FROM detections WHERE class_name = 'product' ORDER BY id")
        ).scalars()
        assert names == {"Own", "Rival", "Quiet"} and list(brand_of)[:2] == [1, 1]
    assert upgrade_database(old_url) == head_revision()
    assert _schema_drift(old_url) == []
