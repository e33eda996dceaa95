from __future__ import annotations

import pytest
import sqlalchemy as sa

from skuaudit.storage import models as m
from skuaudit.storage.db import (
    DatabaseError,
    SchemaTooNewError,
    check_schema,
    current_revision,
    get_engine,
    head_revision,
    session_scope,
    upgrade_database,
)

TABLES = {
    "stores",
    "brands",
    "products",
    "product_targets",
    "product_metrics",
    "reference_images",
    "planogram_targets",
    "model_versions",
    "audits",
    "audit_images",
    "detections",
    "brand_metrics",
    "training_jobs",
    "users",
}


def test_migrations_create_schema_on_postgresql(postgres_server):
    url = postgres_server.create_database("fresh_schema")
    assert current_revision(url) is None
    assert upgrade_database(url) == head_revision()
    assert set(sa.inspect(get_engine(url)).get_table_names()) >= TABLES
    check_schema(url)


def test_migrations_create_schema_on_fresh_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert current_revision(url) is None
    assert upgrade_database(url) == head_revision()
    names = set(sa.inspect(get_engine(url)).get_table_names())
    assert names >= TABLES
    check_schema(url)
    # idempotent
    assert upgrade_database(url) == head_revision()


def test_sqlite_uses_wal_and_busy_timeout(db_url):
    with get_engine(db_url).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_round_trip_every_table(storage_url):
    db_url = storage_url
    with session_scope(db_url) as s:
        store = m.Store(name="S1", region="North")
        brand = m.Brand(name="B1", manufacturer="Acme", is_own=True, color_hex="#112233")
        s.add_all([store, brand])
        s.flush()
        mv = m.ModelVersion(
            name="v1", path="models/v1", is_active=True, metrics_json='{"ap50": 0.5}'
        )
        s.add(mv)
        product = m.Product(brand_id=brand.id, name="B1 Classic", gtin="4006381333931")
        s.add(product)
        s.flush()
        s.add(
            m.ReferenceImage(
                product_id=product.id,
                image_png=b"\x89PNG",
                embedding=b"\0" * 8,
                features=b"kp",
                features_model="sift",
            )
        )
        s.add(m.PlanogramTarget(store_id=store.id, brand_id=brand.id, expected_facings=6))
        s.add(m.ProductTarget(store_id=store.id, product_id=product.id, expected_facings=4))
        audit = m.Audit(
            store_id=store.id,
            user_name="ann",
            source="photo",
            model_version_id=mv.id,
            product_count=1,
            gap_count=1,
        )
        s.add(audit)
        s.flush()
        s.add(m.AuditImage(audit_id=audit.id, width=4, height=3, image_jpeg=b"\xff\xd8"))
        s.add(
            m.Detection(
                audit_id=audit.id,
                x1=1,
                y1=2,
                x2=3,
                y2=4,
                score=0.9,
                class_name="product",
                brand_id=brand.id,
                brand_score=0.8,
                product_id=product.id,
                product_score=0.8,
                shelf_row=0,
            )
        )
        # the audit's one facing, as its brand's figures and its product's
        figures = dict(
            audit_id=audit.id,
            brand_id=brand.id,
            facings=1,
            share_facings=1.0,
            linear_px=2.0,
            share_linear=1.0,
            below_target=True,
        )
        s.add(m.BrandMetric(**figures, expected_facings=6))
        s.add(m.ProductMetric(**figures, product_id=product.id, expected_facings=4))
        s.add(m.TrainingJob(status="running", progress=0.5, step=5, total_steps=10))
        s.add(m.User(username="ann", password_hash="x", role="analyst"))
    with session_scope(db_url) as s:
        audit = s.scalars(sa.select(m.Audit)).one()
        assert audit.store.name == "S1" and audit.source == "photo"
        assert audit.images[0].image_jpeg == b"\xff\xd8"
        det = audit.detections[0]
        assert (det.x1, det.y2, det.class_name, det.shelf_row) == (1, 4, "product", 0)
        assert audit.brand_metrics[0].below_target is True
        assert audit.product_metrics[0].expected_facings == 4
        assert det.product_id == s.scalars(sa.select(m.Product.id)).one()
        product = s.scalars(sa.select(m.Brand)).one().products[0]
        assert (product.name, product.gtin) == ("B1 Classic", "4006381333931")
        assert product.reference_images[0].embedding == b"\0" * 8
        assert product.reference_images[0].features_model == "sift"
        assert s.scalars(sa.select(m.ProductTarget)).one().expected_facings == 4
        assert s.scalars(sa.select(m.PlanogramTarget)).one().expected_facings == 6
        assert s.scalars(sa.select(m.ModelVersion)).one().is_active
        assert s.scalars(sa.select(m.TrainingJob)).one().progress == 0.5
        assert s.scalars(sa.select(m.User)).one().role == "analyst"
        # deleting an audit removes its children (one audit is one unit)
        s.delete(audit)
    with session_scope(db_url) as s:
        for table in (m.Detection, m.BrandMetric, m.ProductMetric, m.AuditImage):
            assert s.scalar(sa.select(sa.func.count()).select_from(table)) == 0


def test_failed_transaction_leaves_nothing(storage_url):
    db_url = storage_url
    with pytest.raises(RuntimeError), session_scope(db_url) as s:
        s.add(m.Store(name="half"))
        s.flush()
        raise RuntimeError("crash in the middle of a save")
    with session_scope(db_url) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(m.Store)) == 0


@pytest.mark.parametrize(
    "url, expected",
    [
        ("sqlite:////no/such/folder/x.db", "does not exist"),
        ("not a url", "not a valid database URL"),
        ("nosuchdb://x/y", "no driver"),
    ],
)
def test_unopenable_database_gives_clear_error(url, expected):
    with pytest.raises(DatabaseError, match=expected):
        upgrade_database(url)


def test_database_from_newer_schema_is_refused(storage_url):
    db_url = storage_url
    with get_engine(db_url).begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(SchemaTooNewError, match="newer release"):
        check_schema(db_url)
    with pytest.raises(SchemaTooNewError):
        upgrade_database(db_url)


def test_empty_database_check_asks_for_upgrade(tmp_path):
    with pytest.raises(DatabaseError, match="skuaudit db upgrade"):
        check_schema(f"sqlite:///{tmp_path / 'empty.db'}")
