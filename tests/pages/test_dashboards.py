"""Share of shelf and Stockouts pages on the demo data: filters change what the figures hold, the
CSV downloads carry exactly the charted rows, and empty or reversed selections explain themselves."""

from __future__ import annotations

import base64
import io
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from skuaudit import reports
from skuaudit.catalogue import add_store
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope

APP = str(Path(__file__).resolve().parents[2] / "app.py")
SHARE = "pages/share_of_shelf.py"
STOCKOUTS = "pages/stockouts.py"


def _open(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["role"] = "category manager"
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _figures(at: AppTest) -> dict[str, dict]:
    """Chart title -> plotly figure spec (AppTest exposes st.plotly_chart as a raw proto)."""
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {s["layout"]["title"]["text"]: s for s in specs}


def _values(array) -> list:
    """Plotly 7 sends numeric arrays as ``{"dtype", "bdata"[, "shape"]}``; give plain lists."""
    if isinstance(array, dict) and "bdata" in array:
        flat = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
        shape = array.get("shape")
        if shape:
            flat = flat.reshape([int(n) for n in str(shape).split(",")])
        return flat.tolist()
    return list(array)


def _csv(downloads: dict[str, bytes], name: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(downloads[name]))


def _table(at: AppTest, *columns: str, without: str = ""):
    """The first table of the page that shows ``columns`` (and not ``without``)."""
    for frame in at.dataframe:
        shown = list(frame.proto.column_order) or list(frame.value.columns)
        if set(columns) <= set(shown) and without not in shown:
            return frame
    raise AssertionError(f"no table with columns {columns}")


def test_share_page_defaults_match_reports_and_csv(demo_db_url, downloads):
    at = _open(SHARE)
    first, last = reports.audit_date_range(demo_db_url)
    expected = reports.share_of_shelf(demo_db_url, first, last)  # the demo spans < 12 weeks
    bars = _figures(at)["Share of shelf per brand"]["data"]
    assert [t["name"] for t in bars] == ["Share by facings", "Share by linear width"]
    assert bars[0]["x"] == list(expected["brand"])
    assert _values(bars[0]["y"]) == pytest.approx(list(expected["share_facings"]))
    assert _values(bars[1]["y"]) == pytest.approx(list(expected["share_linear"]))
    csv = _csv(downloads, "share_of_shelf_by_brand.csv")
    assert list(csv["brand"]) == bars[0]["x"]
    # readable headers, percent with one decimal, no colour codes or internal ids
    assert list(csv.columns) == [
        "brand",
        "manufacturer",
        "brand type",
        "facings",
        "width (px)",
        "share by facings (%)",
        "share by width (%)",
        "audits",
    ]
    assert list(csv["share by facings (%)"]) == pytest.approx(
        [round(v * 100, 1) for v in _values(bars[0]["y"])]
    )
    assert set(csv["brand type"]) <= {"own", "competitor"}
    own = _figures(at)["Own brands versus competitors"]["data"]
    assert [t["name"] for t in own] == ["Own brands", "Competitors"]
    assert _values(own[0]["x"])[0] + _values(own[1]["x"])[0] == pytest.approx(1.0)
    assert "Own brands, share by facings" in [mt.label for mt in at.metric]


def test_share_page_filters_change_the_figures(demo_db_url, downloads):
    at = _open(SHARE)
    at.selectbox(key="sos_scope").set_value("Store: Meadow Mart")
    at.radio(key="sos_measure").set_value("share_linear")
    at.run()
    assert not at.exception, at.exception
    figures = _figures(at)
    heat = figures["Share by linear width per store and brand"]["data"][0]
    assert heat["y"] == ["Meadow Mart"]
    scope = next(s for s in reports.scopes(demo_db_url) if s.label == "Store: Meadow Mart")
    first, last = reports.audit_date_range(demo_db_url)
    expected = reports.store_brand_heatmap(demo_db_url, first, last, scope)
    assert heat["x"] == sorted(expected["brand"])
    assert _values(heat["z"])[0] == pytest.approx(
        list(expected.sort_values("brand")["share_linear"])
    )
    trend = figures["Share by linear width per week"]["data"]
    assert len(trend) == 6 and len(_values(trend[0]["x"])) == 6  # 6 brands, 6 weekly audits
    assert set(_csv(downloads, "share_of_shelf_store_brand.csv")["store"]) == {"Meadow Mart"}


def test_share_page_drill_down_shows_audits_and_snapshot(demo_db_url):
    with session_scope(demo_db_url) as s:
        audit_id = (
            s.query(m.Audit.id).order_by(m.Audit.created_at.desc(), m.Audit.id.desc()).first()[0]
        )
        s.add(
            m.AuditImage(
                audit_id=audit_id, image_index=0, width=2, height=2, image_jpeg=_tiny_jpeg()
            )
        )
    at = _open(SHARE)
    brand = at.selectbox(key="sos_drill_brand")
    brand.set_value(brand.options[1]).run()
    audits = _table(at, "audit_id")
    table = audits.value
    assert len(table) == 36 and table["audit_id"].iloc[0] == audit_id
    shown = list(audits.proto.column_order)
    assert shown[:3] == ["audit_id", "created_at", "store"] and "store_id" not in shown
    assert len(at.image) == 1


def _tiny_jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (2, 2), "red").save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "start, end, element, text",
    [
        (date(2026, 12, 20), date(2026, 12, 1), "warning", "is after the end date"),
        (date(2020, 1, 1), date(2020, 2, 1), "info", "No audits for any store"),
    ],
)
def test_share_page_reversed_or_empty_range(demo_db_url, start, end, element, text):
    at = _open(SHARE)
    at.date_input(key="sos_start").set_value(start)
    at.date_input(key="sos_end").set_value(end)
    at.run()
    assert not at.exception and not at.error
    assert text in getattr(at, element)[0].value
    assert not at.get("plotly_chart")


@pytest.mark.parametrize("page", [SHARE, STOCKOUTS])
def test_dashboard_without_audits_says_what_to_do(db_url, page):
    add_store("Meadow Mart", "North", url=db_url)
    at = _open(page)
    assert not at.error and not at.get("plotly_chart")
    assert at.info[0].value == (
        "No audits yet: save an audit from the Live or Photo audit page first."
    )


def _save_audit_now(url: str) -> None:
    """A merchandiser's audit of 100 unknown-brand facings, saved now."""
    with session_scope(url) as s:
        store = s.query(m.Store).filter_by(name="Meadow Mart").one()
        audit = m.Audit(store_id=store.id, created_at=m.utcnow(), source="photo", product_count=100)
        audit.brand_metrics = [m.BrandMetric(brand_id=None, facings=100, linear_px=5000.0)]
        s.add(audit)


def test_new_audit_shows_at_once(demo_db_url):
    """The demo audits end yesterday; an audit saved today moves the "To" date on and shows."""
    at = _open(SHARE)
    before = at.metric[2].value
    assert at.date_input(key="sos_end").value == m.utcnow().date() - timedelta(days=1)
    _save_audit_now(demo_db_url)
    at.run()
    assert at.date_input(key="sos_end").value == m.utcnow().date()
    assert int(at.metric[2].value.replace(",", "")) == int(before.replace(",", "")) + 100


def test_a_date_the_user_picked_stays_when_a_new_audit_comes(demo_db_url):
    at = _open(STOCKOUTS)
    picked = m.utcnow().date() - timedelta(days=9)
    at.date_input(key="so_as_of").set_value(picked).run()
    _save_audit_now(demo_db_url)
    at.run()
    assert at.date_input(key="so_as_of").value == picked
    assert not at.exception


def test_stockouts_page_lists_what_to_act_on(demo_db_url, downloads):
    add_store("Lakeside Corner Shop", "East", url=demo_db_url)  # never audited
    at = _open(STOCKOUTS)
    expected = reports.current_stockouts(demo_db_url)
    table = at.dataframe[0].value  # the brand action list comes first
    assert list(table["brand"]) == list(expected["brand"])
    assert list(table["status"]) == list(expected["status"])
    assert list(table["audits_in_row"]) == list(expected["audits_in_row"])
    csv = _csv(downloads, "stockouts_to_act_on.csv")
    assert list(csv.columns) == [
        "store",
        "region",
        "brand",
        "status",
        "target facings",
        "facings",
        "since",
        "audits in a row",
        "latest audit",
    ]
    assert len(csv) == len(expected)
    avail = _figures(at)["Availability and compliance"]["data"]
    ranking = reports.availability_by_store(demo_db_url)
    audited = ranking[ranking["audit_id"].notna()]
    assert avail[0]["y"] == list(audited["store"])
    assert _values(avail[0]["x"]) == pytest.approx(list(audited["availability"]))
    gaps = _figures(at)["Empty shelf (gap share of width)"]["data"][0]
    assert _values(gaps["x"]) == sorted(_values(gaps["x"]), reverse=True)
    assert list(_csv(downloads, "gap_share_by_store.csv")["store"]) == gaps["y"]
    # The ranking table shows the audited stores, without internal ids (which pushed the last
    # columns out of sight); a store never audited is named under it, and stays in the CSV.
    shown = _table(at, "rank")
    assert list(shown.value["store"]) == list(audited["store"])
    assert len(audited) == len(ranking) - 1
    assert "store_id" not in shown.proto.column_order
    assert "audit_id" not in shown.proto.column_order
    assert "No photo or live audit on or before" in at.warning[0].value
    assert "Lakeside Corner Shop" in at.warning[0].value
    assert list(_csv(downloads, "stores_by_availability.csv")["store"]) == list(ranking["store"])
    assert "brand_id" not in _table(at, "compliance", without="product").proto.column_order


def test_stockouts_page_filters(demo_db_url):
    at = _open(STOCKOUTS)
    at.selectbox(key="so_scope").set_value("Region: North")
    at.run()
    assert set(_table(at, "rank").value["region"]) == {"North"}
    avail = _figures(at)["Availability and compliance"]["data"]
    assert len(avail[0]["y"]) == 2
    at.date_input(key="so_as_of").set_value(date(2020, 1, 1))
    at.run()
    assert not at.exception
    assert "No audits for region North on or before 01 Jan 2020" in at.info[0].value
    assert not at.get("plotly_chart")


def test_filters_survive_a_visit_to_another_page(demo_db_url):
    at = _open(SHARE)
    store = next(o for o in at.selectbox(key="sos_scope").options if o.startswith("Store: "))
    at.selectbox(key="sos_scope").set_value(store).run()
    at.radio(key="sos_measure").set_value("share_linear").run()
    start = at.date_input(key="sos_start").value
    at.switch_page(STOCKOUTS).run()
    at.selectbox(key="so_scope").set_value(store).run()
    at.switch_page("pages/photo_audit.py").run()
    at.switch_page(SHARE).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="sos_scope").value == store
    assert at.radio(key="sos_measure").value == "share_linear"
    assert at.date_input(key="sos_start").value == start
    at.switch_page(STOCKOUTS).run()
    assert at.selectbox(key="so_scope").value == store


def test_kept_store_filter_of_a_renamed_store_falls_back(demo_db_url):
    at = _open(SHARE)
    at.selectbox(key="sos_scope").set_value("Store: Central Superstore").run()
    at.switch_page("pages/photo_audit.py").run()
    with session_scope(demo_db_url) as s:  # renamed in the database meanwhile
        s.query(m.Store).filter_by(name="Central Superstore").one().name = "Central Hypermarket"
    at.switch_page(SHARE).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="sos_scope").value == "All stores"
    assert "Store: Central Hypermarket" in at.selectbox(key="sos_scope").options


def test_a_store_added_meanwhile_shows_without_a_new_audit(demo_db_url):
    """The reports are cached per data version: a new store (or a renamed one) is part of it,
    not only the newest audit."""
    at = _open(STOCKOUTS)
    assert not at.warning
    add_store("Lakeside Mini", "East", url=demo_db_url)
    at.run()
    assert "Lakeside Mini" in at.warning[0].value
    assert "Region: East" in at.selectbox(key="so_scope").options
