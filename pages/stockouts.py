"""Stockouts: what is missing or short in each store's latest audit, per brand and per product,
since when, and which stores need attention first (availability, planogram compliance, empty
shelf)."""

from __future__ import annotations

import streamlit as st

from skuaudit import charts, ui
from skuaudit.config import get_settings

ui.ensure_routed()


CHART_STORES = 20
# The figures the two action lists (per brand, per product) share, in their column order, as
# they show them.
ACTION_COLUMNS = {
    "expected_facings": st.column_config.NumberColumn("expected"),
    "facings": st.column_config.NumberColumn("seen"),
    "since": st.column_config.DateColumn("since", format="D MMM YYYY"),
    "audits_in_row": st.column_config.NumberColumn("audits in a row"),
    "audited_at": st.column_config.DateColumn("latest audit", format="D MMM YYYY"),
}


st.title("Stockouts")
url = get_settings().db_url

with ui.user_errors("Loading the stockouts"):
    latest_id, span, scope = ui.dashboard_scope(url, key="so_scope")
    with st.sidebar:
        as_of = ui.latest_date_input("Latest audits as of", span[1], key="so_as_of")
    filters = {"url": url, "scope": scope, "as_of": as_of}

    stores = ui.cached_report("availability_by_store", latest_id, **filters)
    audited = stores.dropna(subset=["audit_id"])
    ui.stop_without_audits(
        audited, scope, f"on or before {as_of:%d %b %Y}", "Pick a later date or other stores."
    )
    actions = ui.cached_report("current_stockouts", latest_id, **filters)
    st.caption(
        f"{scope.label}: each store's latest audit on or before {as_of:%d %b %Y}. "
        "Availability = targeted brands seen / targeted brands; compliance = mean of "
        "min(facings / target, 1) over targeted brands."
    )

    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Stores audited", f"{len(audited)} of {len(stores)}")
    c2.metric("Stockouts", int((actions["status"] == "stockout").sum()))
    c3.metric("Below target", int((actions["status"] == "below target").sum()))
    c4.metric("Mean on-shelf availability", f"{audited['availability'].mean():.0%}")

    st.subheader("To act on")
    if actions.empty:
        st.success("No stockouts and no brand below its planogram target in the latest audits.")
    else:
        ui.table_with_csv(
            "Download the action list (CSV)",
            "stockouts_to_act_on.csv",
            actions[["store", "region", "brand", "status", *ACTION_COLUMNS]],
            column_config=ACTION_COLUMNS,
            key="so_actions",
        )

    st.subheader("Products to act on")
    product_actions = ui.cached_report("current_product_stockouts", latest_id, **filters)
    brands = sorted(set(product_actions["brand"]))
    picked = st.selectbox("Brand", ["All brands", *brands], key="so_product_brand")
    if picked != "All brands":
        product_actions = product_actions[product_actions["brand"] == picked]
    if product_actions.empty:
        st.success(
            "Every product with a target in a store shows at least its target in the "
            "store's latest audit."
        )
    else:
        product_list_columns = ["store", "region", "brand", "product", "gtin", "status"]
        product_list_columns += list(ACTION_COLUMNS)
        ui.table_with_csv(
            "Download the product action list (CSV)",
            "product_stockouts_to_act_on.csv",
            product_actions,
            product_list_columns,
            column_config={**ui.GTIN_COLUMN, **ACTION_COLUMNS},
            key="so_product_actions",
        )

    left, right = st.columns(2)
    with left:
        worst = audited.head(CHART_STORES)
        st.plotly_chart(charts.availability_bars(worst), key="so_availability_chart")
        ui.csv_download(
            f"Download availability of these {len(worst)} stores (CSV)",
            "availability_worst_stores.csv",
            worst,
            key="so_availability_csv",
        )
    with right:
        gaps = ui.cached_report("gap_share_by_store", latest_id, **filters).head(CHART_STORES)
        st.plotly_chart(charts.gap_share_bars(gaps), key="so_gap_chart")
        ui.csv_download(
            f"Download gap share of these {len(gaps)} stores (CSV)",
            "gap_share_by_store.csv",
            gaps,
            key="so_gap_csv",
        )

    st.subheader("Stores by on-shelf availability, lowest first")
    percent = {"format": "percent", "min_value": 0.0, "max_value": 1.0}
    st.dataframe(
        audited,
        hide_index=True,
        # The brand counts behind availability stay in the CSV; shown, they push the last
        # columns out of sight.
        column_order=[
            "rank",
            "store",
            "region",
            "audited_at",
            "availability",
            "planogram_compliance",
            "stockouts",
            "below_target",
        ],
        column_config={
            "availability": st.column_config.ProgressColumn("availability", **percent),
            "planogram_compliance": st.column_config.ProgressColumn("compliance", **percent),
            "below_target": st.column_config.NumberColumn("below target"),
            "audited_at": st.column_config.DateColumn("latest audit", format="D MMM YYYY"),
        },
        key="so_stores_table",
    )
    never = stores.loc[stores["audit_id"].isna(), "store"].tolist()
    if never:
        st.warning(
            f"No photo or live audit on or before {as_of:%d %b %Y}: {', '.join(never)}. "
            "(Offline-page audits count facings without brands, so they are not ranked.)"
        )
    ui.csv_download(
        "Download the store ranking (CSV)",
        "stores_by_availability.csv",
        stores,
        key="so_stores_csv",
    )

    compliance_config = {
        "expected_facings": st.column_config.NumberColumn("expected"),
        "facings": st.column_config.NumberColumn("seen"),
        "compliance": st.column_config.ProgressColumn("compliance", **percent),
    }
    with st.expander("Planogram compliance per brand"):
        compliance = ui.cached_report("planogram_compliance", latest_id, **filters)
        ui.table_with_csv(
            "Download compliance per brand (CSV)",
            "planogram_compliance.csv",
            compliance,
            shown=["store", "region", "brand", "expected_facings", "facings", "compliance"],
            column_config=compliance_config,
            key="so_compliance",
        )

    with st.expander("Planogram compliance per product"):
        per_product = ui.cached_report("product_compliance", latest_id, **filters)
        compliance_columns = [
            "store",
            "region",
            "brand",
            "product",
            "gtin",
            "expected_facings",
            "facings",
            "compliance",
        ]
        ui.table_with_csv(
            "Download compliance per product (CSV)",
            "planogram_compliance_per_product.csv",
            per_product,
            compliance_columns,
            column_config={**ui.GTIN_COLUMN, **compliance_config},
            key="so_product_compliance",
        )
