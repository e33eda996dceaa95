"""Product-level reports against numbers worked out by hand, on SQLite and on PostgreSQL; the
audits are saved through the audit pipeline, so brand rows are the sums of product rows.

    stores    Alpha (North), Beta (North)
    products  Own: Cola, Lime; Rival: Cola
    targets   Alpha: Own Cola 2, Own Lime 2 (no brand targets: Own is expected to show 4)
              Beta: Rival Cola 1
    audit  store  when       Own Cola  Own Lime  Own, no product  Rival Cola   (facings / px)
    a1     Alpha  2 Mar      2 / 20    1 / 20    1 / 10           1 / 10
    a2     Alpha  9 Mar      3 / 30    -         -                1 / 10
    a3     Beta   10 Mar     1 / 10    -         -                -
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from skuaudit import audit, catalogue, reports
from skuaudit.detections import Detections
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope
from tests.report_rows import stockout_rows

MARCH = (date(2026, 3, 1), date(2026, 3, 31))


@pytest.fixture
def shop(storage_url) -> dict:
    url = storage_url
    alpha = catalogue.add_store("Alpha", "North", url=url)
    beta = catalogue.add_store("Beta", "North", url=url)
    own = catalogue.add_brand("Own", is_own=True, url=url)
    rival = catalogue.add_brand("Rival", url=url)
    ids = {
        "cola": catalogue.add_product(own, "Cola", "4006381333931", url),
        "lime": catalogue.add_product(own, "Lime", url=url),
        "rival": catalogue.add_product(rival, "Cola", url=url),
    }
    catalogue.set_product_planogram(alpha, {ids["cola"]: 2, ids["lime"]: 2}, url)
    catalogue.set_product_planogram(beta, {ids["rival"]: 1}, url)
    brand_of = {ids["cola"]: own, ids["lime"]: own, ids["rival"]: rival, -1: own}

    def save(store, when, facings):
        """``facings``: (product id or -1 for Own's unknown product, width px) left to right."""
        x = np.cumsum([0] + [w for _, w in facings])[:-1]
        detections = Detections(
            [[x0, 0, x0 + w, 50] for x0, (_, w) in zip(x, facings, strict=True)],
            class_id=[0] * len(facings),
            data={
                "product_id": np.array([p for p, _ in facings]),
                "brand_id": np.array([brand_of[p] for p, _ in facings]),
                "shelf_row": np.zeros(len(facings), int),
            },
        )
        analysis = audit.ImageAnalysis(np.zeros((60, 200, 3), np.uint8), detections)
        audit_id = audit.save_audit(store, [analysis], source="photo", url=url)
        with session_scope(url) as s:
            s.get(m.Audit, audit_id).created_at = when
        return audit_id

    cola, lime, rv = ids["cola"], ids["lime"], ids["rival"]
    save(
        alpha,
        datetime(2026, 3, 2, 10),
        [(cola, 10), (cola, 10), (lime, 20), (-1, 10), (rv, 10)],
    )
    save(alpha, datetime(2026, 3, 9, 10), [(cola, 10), (cola, 10), (cola, 10), (rv, 10)])
    save(beta, datetime(2026, 3, 10, 10), [(cola, 10)])
    return {"url": url, "alpha": alpha, "beta": beta, **ids}


def test_product_share_of_shelf_rolls_up_to_the_brand_figures(shop):
    df = reports.product_share_of_shelf(shop["url"], *MARCH)
    assert list(df.columns) == reports.PRODUCT_SHARE_COLUMNS
    got = {
        (r.brand, r.product): (
            r.facings,
            r.linear_px,
            r.share_of_brand,
            r.audits,
            None if pd.isna(r.gtin) else r.gtin,
        )
        for r in df.itertuples()
    }
    assert got == {
        ("Own", "Cola"): (6, 60.0, 6 / 8, 3, "4006381333931"),
        ("Own", "Lime"): (1, 20.0, 1 / 8, 2, None),  # a2's row: targeted, not seen
        ("Own", "unknown product"): (1, 10.0, 1 / 8, 1, None),
        ("Rival", "Cola"): (2, 20.0, 1.0, 3, None),  # a3's row: targeted, not seen
    }
    assert list(df["share_facings"]) == pytest.approx([0.6, 0.1, 0.1, 0.2])
    assert list(df["share_linear"]) == pytest.approx([60 / 110, 20 / 110, 10 / 110, 20 / 110])
    brands = reports.share_of_shelf(shop["url"], *MARCH).set_index("brand")
    per_brand = df.groupby("brand")[["facings", "linear_px", "share_facings"]].sum()
    pd.testing.assert_frame_equal(
        per_brand, brands.loc[per_brand.index, ["facings", "linear_px", "share_facings"]]
    )
    beta = reports.product_share_of_shelf(
        shop["url"], *MARCH, reports.Scope("Beta", store_ids=(shop["beta"],))
    )
    assert list(zip(beta["brand"], beta["product"], beta["facings"], strict=True)) == [
        ("Own", "Cola", 1),
        ("Rival", "Cola", 0),
    ]
    assert reports.product_share_of_shelf(shop["url"], date(2025, 1, 1), date(2025, 1, 2)).empty


@pytest.mark.parametrize(
    "as_of, expected",
    [
        (
            None,
            [
                ("Alpha", "Own", "Lime", "stockout", 2, 0, "2026-03-09", 1),
                ("Beta", "Rival", "Cola", "stockout", 1, 0, "2026-03-10", 1),
            ],
        ),
        (date(2026, 3, 2), [("Alpha", "Own", "Lime", "below target", 2, 1, "2026-03-02", 1)]),
        (date(2026, 3, 1), []),
    ],
)
def test_current_product_stockouts(shop, as_of, expected):
    df = reports.current_product_stockouts(shop["url"], as_of=as_of)
    assert list(df.columns) == reports.PRODUCT_STOCKOUT_COLUMNS
    assert stockout_rows(df) == expected


def test_lime_below_then_out_counts_two_audits_below_target(shop):
    durations = reports._durations(
        reports._PM, reports._PM.c.product_id, reports.ALL_STORES, None, shop["url"]
    )
    lime = durations[durations["product_id"] == shop["lime"]].iloc[0]
    assert (lime.stockout_audits_in_row, lime.below_audits_in_row) == (1, 2)
    assert lime.below_since == pd.Timestamp("2026-03-02 10:00")


def test_brand_figures_follow_the_products_targets(shop):
    """No brand has a target of its own: each is expected to show its products' sum."""
    brand = reports.current_stockouts(shop["url"])
    got = [(r.store, r.brand, r.status, r.expected_facings, r.facings) for r in brand.itertuples()]
    assert got == [("Beta", "Rival", "stockout", 1, 0), ("Alpha", "Own", "below target", 4, 3)]


def test_product_compliance(shop):
    df = reports.product_compliance(shop["url"])
    assert list(df.columns) == reports.PRODUCT_COMPLIANCE_COLUMNS
    got = {
        (r.store, r.brand, r.product): (r.expected_facings, r.facings, r.compliance)
        for r in df.itertuples()
    }
    assert got == {
        ("Alpha", "Own", "Cola"): (2, 3, 1.0),
        ("Alpha", "Own", "Lime"): (2, 0, 0.0),
        ("Beta", "Rival", "Cola"): (1, 0, 0.0),
    }


def test_csv_headers_are_words(shop):
    df = reports.product_share_of_shelf(shop["url"], *MARCH)
    text = reports.for_csv(df, ["brand", "product", "gtin", "facings", "share_of_brand"])
    lines = text.splitlines()
    assert lines[0] == "brand,product,EAN/GTIN,facings,share of brand facings (%)"
    assert lines[1] == "Own,Cola,4006381333931,6,75.0"


def test_renaming_a_product_changes_the_data_version(shop):
    before = reports.data_version(shop["url"])
    catalogue.update_product(shop["lime"], name="Lime 0.5 l", url=shop["url"])
    assert reports.data_version(shop["url"]) != before
    with session_scope(shop["url"]) as s:
        assert s.scalar(sa.select(m.Product.name).where(m.Product.id == shop["lime"])) == (
            "Lime 0.5 l"
        )
