"""Dashboard reports against numbers worked out by hand, on SQLite and on PostgreSQL.

The fixture chain (through the ORM):

    stores   Alpha (North), Beta (North), Gamma (South, never audited)
    brands   Own (own brand), Rival
    audit    store  when              Own f/px/target   Rival f/px/target   unknown f/px  gaps
    a1       Alpha  Mon 2 Mar 10:00   6 / 600 / 5        2 / 100 / 4 low     2 / 300       10%
    a2       Alpha  Mon 9 Mar 10:00   0 /   0 / 5 out    3 / 300 / 4 low     -             30%
    a4       Beta   Tue 10 Mar 10:00  4 / 400 / 4        4 / 200 / 2         -              5%
    a3       Alpha  Mon 16 Mar 10:00  0 /   0 / 5 out    1 / 100 / 4 low     -             20%
"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from skuaudit import reports
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope
from tests.report_rows import stockout_rows

MARCH = (date(2026, 3, 1), date(2026, 3, 31))
SOUTH = reports.Scope("Region: South", region="South")


def _metric(brand, facings, linear_px, target, total_facings, total_px):
    return m.BrandMetric(
        brand_id=brand.id if brand else None,
        facings=facings,
        linear_px=linear_px,
        share_facings=facings / total_facings,
        share_linear=linear_px / total_px,
        expected_facings=target,
        is_stockout=bool(target) and facings == 0,
        below_target=bool(target) and facings < target,
    )


@pytest.fixture
def chain(storage_url) -> dict:
    """The fixture chain above; returns the url and the ids by name."""
    with session_scope(storage_url) as s:
        alpha = m.Store(name="Alpha", region="North")
        beta = m.Store(name="Beta", region="North")
        gamma = m.Store(name="Gamma", region="South")
        own = m.Brand(name="Own", manufacturer="Us", is_own=True, color_hex="#ff0000")
        rival = m.Brand(name="Rival", manufacturer="Them", is_own=False, color_hex="#0000ff")
        s.add_all([alpha, beta, gamma, own, rival])
        s.flush()

        def audit(store, when, gap_share, rows):
            total_f = sum(r[1] for r in rows) or 1
            total_px = sum(r[2] for r in rows) or 1.0
            a = m.Audit(
                store_id=store.id,
                created_at=when,
                source="photo",
                product_count=total_f,
                gap_count=round(gap_share * 10),
                gap_share_width=gap_share,
                shelf_width_px=1000.0,
            )
            a.brand_metrics = [_metric(*r, total_f, total_px) for r in rows]
            s.add(a)
            s.flush()
            return a.id

        ids = {
            "a1": audit(
                alpha,
                datetime(2026, 3, 2, 10),
                0.1,
                [(own, 6, 600.0, 5), (rival, 2, 100.0, 4), (None, 2, 300.0, None)],
            ),
            "a2": audit(
                alpha, datetime(2026, 3, 9, 10), 0.3, [(own, 0, 0.0, 5), (rival, 3, 300.0, 4)]
            ),
            "a4": audit(
                beta, datetime(2026, 3, 10, 10), 0.05, [(own, 4, 400.0, 4), (rival, 4, 200.0, 2)]
            ),
            "a3": audit(
                alpha, datetime(2026, 3, 16, 10), 0.2, [(own, 0, 0.0, 5), (rival, 1, 100.0, 4)]
            ),
        }
        s.add(
            m.AuditImage(
                audit_id=ids["a1"], image_index=0, width=4, height=3, image_jpeg=b"\xff\xd8jpeg"
            )
        )
        ids.update(
            url=storage_url,
            alpha=alpha.id,
            beta=beta.id,
            gamma=gamma.id,
            own=own.id,
            rival=rival.id,
        )
    return ids


def _by_brand(df: pd.DataFrame, column: str) -> dict:
    return dict(zip(df["brand"], df[column], strict=True))


@pytest.mark.parametrize(
    "scope, facings, share_facings, share_linear",
    [
        (
            {},
            {"Own": 10, "Rival": 10, "Unknown brand": 2},
            {"Own": 10 / 22, "Rival": 10 / 22, "Unknown brand": 2 / 22},
            {"Own": 0.5, "Rival": 0.35, "Unknown brand": 0.15},
        ),
        (
            {"region": "North"},
            {"Own": 10, "Rival": 10, "Unknown brand": 2},
            {"Own": 10 / 22, "Rival": 10 / 22, "Unknown brand": 2 / 22},
            {"Own": 0.5, "Rival": 0.35, "Unknown brand": 0.15},
        ),
        (
            {"store_ids": "beta"},
            {"Own": 4, "Rival": 4},
            {"Own": 0.5, "Rival": 0.5},
            {"Own": 400 / 600, "Rival": 200 / 600},
        ),
        ({"region": "South"}, {}, {}, {}),
        ({"store_ids": "gamma"}, {}, {}, {}),
        ({"store_ids": ()}, {}, {}, {}),
    ],
)
def test_share_of_shelf_is_weighted_over_audits(chain, scope, facings, share_facings, share_linear):
    if isinstance(scope.get("store_ids"), str):
        scope = {"store_ids": (chain[scope["store_ids"]],)}
    df = reports.share_of_shelf(chain["url"], *MARCH, reports.Scope("Picked", **scope))
    assert list(df.columns) == reports.SHARE_COLUMNS
    assert _by_brand(df, "facings") == facings
    assert _by_brand(df, "share_facings") == pytest.approx(share_facings)
    assert _by_brand(df, "share_linear") == pytest.approx(share_linear)


def test_share_of_shelf_end_day_is_included_and_empty_range_has_columns(chain):
    one_day = reports.share_of_shelf(chain["url"], date(2026, 3, 9), date(2026, 3, 9))
    assert _by_brand(one_day, "share_facings") == {"Own": 0.0, "Rival": 1.0}
    assert _by_brand(one_day, "audits") == {"Own": 1, "Rival": 1}
    empty = reports.share_of_shelf(chain["url"], date(2025, 1, 1), date(2025, 1, 31))
    assert empty.empty and list(empty.columns) == reports.SHARE_COLUMNS


@pytest.mark.parametrize(
    "report",
    [
        reports.share_of_shelf,
        reports.share_trend,
        reports.own_vs_competitors,
        reports.store_brand_heatmap,
    ],
)
def test_start_after_end_is_refused(chain, report):
    with pytest.raises(ValueError, match="start date 2026-03-31 is after the end date 2026-03-01"):
        report(chain["url"], date(2026, 3, 31), date(2026, 3, 1))


def test_share_trend_buckets_by_monday(chain):
    df = reports.share_trend(chain["url"], *MARCH)
    assert list(df.columns) == reports.TREND_COLUMNS
    got = {
        (w.date().isoformat(), b): round(s, 6)
        for w, b, s in zip(df["week_start"], df["brand"], df["share_facings"], strict=True)
    }
    assert got == {
        ("2026-03-02", "Own"): 0.6,
        ("2026-03-02", "Rival"): 0.2,
        ("2026-03-02", "Unknown brand"): 0.2,
        ("2026-03-09", "Own"): round(4 / 11, 6),
        ("2026-03-09", "Rival"): round(7 / 11, 6),
        ("2026-03-16", "Own"): 0.0,
        ("2026-03-16", "Rival"): 1.0,
    }
    assert reports.share_trend(chain["url"], date(2025, 1, 1), date(2025, 2, 1)).empty


def test_own_vs_competitors(chain):
    df = reports.own_vs_competitors(chain["url"], *MARCH)
    assert list(df["group"]) == ["Own brands", "Competitors", "Unknown brand"]
    assert list(df["share_facings"]) == pytest.approx([10 / 22, 10 / 22, 2 / 22])
    assert list(df["share_linear"]) == pytest.approx([0.5, 0.35, 0.15])
    empty = reports.own_vs_competitors(chain["url"], *MARCH, SOUTH)
    assert empty.empty and list(empty.columns) == reports.OWN_COLUMNS


def test_store_brand_heatmap_shares_within_store(chain):
    df = reports.store_brand_heatmap(chain["url"], *MARCH)
    got = {
        (st, b): v for st, b, v in zip(df["store"], df["brand"], df["share_linear"], strict=True)
    }
    assert got == pytest.approx(
        {
            ("Alpha", "Own"): 600 / 1400,
            ("Alpha", "Rival"): 500 / 1400,
            ("Alpha", "Unknown brand"): 300 / 1400,
            ("Beta", "Own"): 400 / 600,
            ("Beta", "Rival"): 200 / 600,
        }
    )
    assert "Gamma" not in set(df["store"])


def test_audits_behind_and_snapshots(chain):
    url = chain["url"]
    own = reports.audits_behind(url, chain["own"], *MARCH)
    assert list(own["audit_id"]) == [chain["a3"], chain["a4"], chain["a2"], chain["a1"]]
    assert list(own["facings"]) == [0, 4, 0, 6]
    assert list(own["images"]) == [0, 0, 0, 1]
    unknown = reports.audits_behind(url, None, *MARCH)
    assert list(unknown["audit_id"]) == [chain["a1"]]
    assert reports.audits_behind(url, chain["own"], *MARCH, SOUTH).empty
    (snap,) = reports.audit_snapshots(url, chain["a1"])
    assert (snap.image_index, snap.width, snap.height, snap.image_jpeg) == (
        0,
        4,
        3,
        b"\xff\xd8jpeg",
    )
    assert reports.audit_snapshots(url, chain["a2"]) == []


@pytest.mark.parametrize(
    "as_of, expected",
    [
        (
            None,
            [
                ("Alpha", "Own", "stockout", 5, 0, "2026-03-09", 2),
                ("Alpha", "Rival", "below target", 4, 1, "2026-03-02", 3),
            ],
        ),
        (
            date(2026, 3, 9),
            [
                ("Alpha", "Own", "stockout", 5, 0, "2026-03-09", 1),
                ("Alpha", "Rival", "below target", 4, 3, "2026-03-02", 2),
            ],
        ),
        (date(2026, 3, 1), []),
    ],
)
def test_current_stockouts_with_durations(chain, as_of, expected):
    df = reports.current_stockouts(chain["url"], as_of=as_of)
    assert list(df.columns) == reports.STOCKOUT_COLUMNS
    assert stockout_rows(df) == expected


def test_stockout_durations_count_runs_back_from_the_latest_audit(chain):
    df = reports.stockout_durations(chain["url"])
    rows = {r.brand_id: r for r in df.itertuples()}
    assert set(rows) == {chain["own"], chain["rival"]}
    own, rival = rows[chain["own"]], rows[chain["rival"]]
    assert (own.stockout_audits_in_row, own.below_audits_in_row) == (2, 2)
    assert own.stockout_since == pd.Timestamp("2026-03-09 10:00")
    assert (rival.stockout_audits_in_row, rival.below_audits_in_row) == (0, 3)
    assert pd.isna(rival.stockout_since)
    assert rival.below_since == pd.Timestamp("2026-03-02 10:00")


def test_availability_ranks_worst_first_and_lists_unaudited_stores(chain):
    df = reports.availability_by_store(chain["url"])
    assert list(df.columns) == reports.AVAILABILITY_COLUMNS
    assert list(df["store"]) == ["Alpha", "Beta", "Gamma"]
    assert list(df["rank"].astype("object").where(df["rank"].notna(), None)) == [1, 2, None]
    assert list(df["availability"][:2]) == pytest.approx([0.5, 1.0])
    assert list(df["planogram_compliance"][:2]) == pytest.approx([(0 + 1 / 4) / 2, 1.0])
    assert list(df["stockouts"][:2]) == [1, 0]
    assert list(df["below_target"][:2]) == [1, 0]
    assert pd.isna(df["availability"][2]) and pd.isna(df["audit_id"][2])
    south = reports.availability_by_store(chain["url"], SOUTH)
    assert list(south["store"]) == ["Gamma"] and south["audit_id"].isna().all()


def test_a_counts_only_offline_audit_does_not_hide_the_latest_brand_figures(chain):
    """An Offline-page audit (counts, no brands, no gap widths) saved after Alpha's a3 leaves
    Alpha's availability, stockouts, gap share and compliance as a3 has them."""
    before = {
        name: getattr(reports, name)(chain["url"])
        for name in (
            "availability_by_store",
            "current_stockouts",
            "gap_share_by_store",
            "planogram_compliance",
        )
    }
    with session_scope(chain["url"]) as s:
        s.add(
            m.Audit(
                store_id=chain["alpha"],
                created_at=datetime(2026, 3, 20, 10),
                source="offline",
                product_count=75,
                gap_count=9,
            )
        )
    for name, frame in before.items():
        pd.testing.assert_frame_equal(getattr(reports, name)(chain["url"]), frame, obj=name)


def test_gap_share_and_compliance_use_the_latest_audit(chain):
    gaps = reports.gap_share_by_store(chain["url"])
    assert list(zip(gaps["store"], gaps["gap_share_width"], strict=True)) == [
        ("Alpha", 0.2),
        ("Beta", 0.05),
    ]
    earlier = reports.gap_share_by_store(chain["url"], as_of=date(2026, 3, 9))
    assert list(zip(earlier["store"], earlier["gap_share_width"], strict=True)) == [("Alpha", 0.3)]
    assert reports.gap_share_by_store(chain["url"], as_of=date(2026, 1, 1)).empty
    comp = reports.planogram_compliance(chain["url"])
    got = {
        (r.store, r.brand): (r.expected_facings, r.facings, r.compliance) for r in comp.itertuples()
    }
    assert got == {
        ("Alpha", "Own"): (5, 0, 0.0),
        ("Alpha", "Rival"): (4, 1, 0.25),
        ("Beta", "Own"): (4, 4, 1.0),
        ("Beta", "Rival"): (2, 4, 1.0),
    }


def test_helpers(chain):
    url = chain["url"]
    assert reports.latest_audit_id(url) == chain["a3"]
    assert reports.audit_date_range(url) == (date(2026, 3, 2), date(2026, 3, 16))
    assert [s.label for s in reports.scopes(url)] == [
        "All stores",
        "Region: North",
        "Region: South",
        "Store: Alpha",
        "Store: Beta",
        "Store: Gamma",
    ]


def test_empty_database(storage_url):
    assert reports.latest_audit_id(storage_url) is None
    assert reports.audit_date_range(storage_url) is None
    assert reports.current_stockouts(storage_url).empty
    assert reports.availability_by_store(storage_url).empty
