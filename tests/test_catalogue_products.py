"""Products (SKUs) in the catalogue: EAN/GTIN checks, unique names and codes, targets, delete."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from skuaudit import catalogue
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope


@pytest.mark.parametrize(
    "code, expected",
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("4006381333931", "4006381333931"),  # EAN-13
        ("4 006381 333931", "4006381333931"),
        ("400-6381-333931", "4006381333931"),
        ("96385074", "96385074"),  # EAN-8
        ("036000291452", "036000291452"),  # UPC-A
        ("10036000291459", "10036000291459"),  # GTIN-14
        (4006381333931, "4006381333931"),
    ],
)
def test_normalise_gtin(code, expected):
    assert catalogue.normalise_gtin(code) == expected


@pytest.mark.parametrize(
    "code, message",
    [
        ("4006381333932", "check digit 2, but its other digits give 1"),
        ("40063813339", "8, 12, 13 or 14 digits"),
        ("40063813339A1", "only digits"),
        ("96385075", "check digit"),
    ],
)
def test_bad_gtin_is_refused(code, message):
    with pytest.raises(ValueError, match=message):
        catalogue.normalise_gtin(code)


@pytest.fixture
def brand(db_url) -> int:
    return catalogue.add_brand("Sunvale", url=db_url)


def _products(url) -> list[tuple[str, str | None]]:
    with session_scope(url) as s:
        return s.execute(sa.select(m.Product.name, m.Product.gtin).order_by(m.Product.id)).all()


def test_add_product_checks_names_and_codes(db_url, brand):
    other = catalogue.add_brand("Rival", url=db_url)
    catalogue.add_product(brand, "Orange 1 l", "4006381333931", db_url)
    catalogue.add_product(other, "Orange 1 l", url=db_url)  # another brand may use the name
    with pytest.raises(ValueError, match="already has a product named 'orange 1 L'"):
        catalogue.add_product(brand, "orange 1 L", url=db_url)
    with pytest.raises(ValueError, match="already belongs to Sunvale / Orange 1 l"):
        catalogue.add_product(other, "Apple", "4006381333931", db_url)
    # a UPC-A and the EAN-13 with a leading 0 are one code
    catalogue.add_product(brand, "Apple", "036000291452", db_url)
    with pytest.raises(ValueError, match="already belongs to Sunvale / Apple"):
        catalogue.add_product(other, "Apple", "0036000291452", db_url)
    with pytest.raises(ValueError, match="how the audits name an unrecognised product"):
        catalogue.add_product(brand, "Unknown Product", url=db_url)
    with pytest.raises(ValueError, match="needs a name"):
        catalogue.add_product(brand, "  ", url=db_url)
    with pytest.raises(ValueError, match="brand 999 does not exist"):
        catalogue.add_product(999, "Orange", url=db_url)
    assert _products(db_url) == [
        ("Orange 1 l", "4006381333931"),
        ("Orange 1 l", None),
        ("Apple", "036000291452"),
    ]


def test_update_product(db_url, brand):
    orange = catalogue.add_product(brand, "Orange", "4006381333931", db_url)
    apple = catalogue.add_product(brand, "Apple", url=db_url)
    catalogue.update_product(orange, name="Orange 1 l", gtin="", url=db_url)  # code removed
    catalogue.update_product(apple, name="Apple", gtin="4006381333931", url=db_url)
    with pytest.raises(ValueError, match="already has a product named 'apple'"):
        catalogue.update_product(orange, name="apple", url=db_url)
    assert _products(db_url) == [("Orange 1 l", None), ("Apple", "4006381333931")]


def test_product_targets_replace_and_validate(db_url, brand):
    store = catalogue.add_store("Harbour", url=db_url)
    orange = catalogue.add_product(brand, "Orange", url=db_url)
    apple = catalogue.add_product(brand, "Apple", url=db_url)
    catalogue.set_product_planogram(store, {orange: 4, apple: "2"}, db_url)
    catalogue.set_product_planogram(store, {orange: 0, apple: 3}, db_url)  # 0 removes
    with pytest.raises(ValueError, match="whole number of facings >= 0"):
        catalogue.set_product_planogram(store, {orange: 5, apple: -1}, db_url)
    with pytest.raises(ValueError, match="product 999 does not exist"):
        catalogue.set_product_planogram(store, {999: 1}, db_url)
    with session_scope(db_url) as s:
        rows = s.execute(sa.select(m.ProductTarget.product_id, m.ProductTarget.expected_facings))
        assert dict(rows.all()) == {apple: 3}


def test_deleting_a_product_keeps_past_brand_figures(db_url, brand):
    """Past audits keep their figures: the deleted product's facings become the brand's unknown
    product, so the brand still sums to the same."""
    from skuaudit import audit
    from skuaudit.detections import Detections

    store = catalogue.add_store("Harbour", url=db_url)
    orange = catalogue.add_product(brand, "Orange", url=db_url)
    apple = catalogue.add_product(brand, "Apple", url=db_url)
    detections = Detections(
        [[0, 0, 10, 20], [10, 0, 20, 20], [20, 0, 30, 20]],
        class_id=[0, 0, 0],
        data={"product_id": np.array([orange, orange, apple]), "shelf_row": np.zeros(3, int)},
    )
    audit_id = audit.save_audit(
        store,
        [audit.ImageAnalysis(np.zeros((40, 40, 3), np.uint8), detections)],
        source="photo",
        url=db_url,
    )
    assert catalogue.delete_product(orange, db_url) == "Orange"
    with session_scope(db_url) as s:
        rows = s.execute(
            sa.select(m.ProductMetric.product_id, m.ProductMetric.facings).where(
                m.ProductMetric.audit_id == audit_id
            )
        ).all()
        brand_facings = s.scalar(
            sa.select(m.BrandMetric.facings).where(m.BrandMetric.audit_id == audit_id)
        )
        detection_products = s.scalars(
            sa.select(m.Detection.product_id).where(m.Detection.audit_id == audit_id)
        ).all()
    assert sorted(rows, key=repr) == sorted([(None, 2), (apple, 1)], key=repr)
    assert brand_facings == 3 == sum(f for _, f in rows)
    assert sorted(detection_products, key=repr) == sorted([None, None, apple], key=repr)
    with pytest.raises(ValueError, match="does not exist"):
        catalogue.delete_product(orange, db_url)
