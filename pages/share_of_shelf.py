"""Share of shelf: per brand, per week, own versus competitors, per store; a brand's products and
the audits behind its figure."""

from __future__ import annotations

from datetime import timedelta

import cv2
import pandas as pd
import streamlit as st

from skuaudit import audit, charts, reports, ui
from skuaudit.config import get_settings
from skuaudit.storage.queries import brand_colours

ui.ensure_routed()


DEFAULT_WEEKS = 12
# The share columns both tables of a brand's drill-down show.
SHARE_COLUMNS = {
    "share_facings": st.column_config.NumberColumn("share by facings", format="percent"),
    "share_linear": st.column_config.NumberColumn("share by width", format="percent"),
    "linear_px": st.column_config.NumberColumn("width (px)", format="%.0f"),
}


@st.cache_data(show_spinner=False, max_entries=32)
def _drawn_snapshots(db_url: str, audit_id: int, data_version: str) -> list:
    """The audit's stored images with its saved boxes drawn (``audit.draw_analysis``); keyed on
    ``data_version`` too, so a brand's new colour shows."""
    colours = brand_colours(db_url)
    return [
        cv2.cvtColor(audit.draw_analysis(a, colours), cv2.COLOR_BGR2RGB)
        for a in audit.stored_analyses(audit_id, db_url)
    ]


st.title("Share of shelf")
url = get_settings().db_url

with ui.user_errors("Loading the share of shelf"):
    latest_id, (first, last), scope = ui.dashboard_scope(url, key="sos_scope")
    with st.sidebar:
        start = st.date_input(
            "From",
            max(first, last - timedelta(weeks=DEFAULT_WEEKS)),
            key="sos_start",
            persist_state=ui.FILTER_PERSISTENCE,
            bind=ui.FILTER_BINDING,
        )
        end = ui.latest_date_input("To", last, key="sos_end")
        measure = st.radio(
            "Trend and heat map show",
            list(reports.MEASURES),
            format_func=reports.MEASURES.get,
            key="sos_measure",
            persist_state=ui.FILTER_PERSISTENCE,
            bind=ui.FILTER_BINDING,
        )
    try:
        reports.check_date_range(start, end)
    except ValueError as exc:
        st.warning(f"Cannot show the dashboard: {exc}.")
        st.stop()

    filters = {"url": url, "start": start, "end": end, "scope": scope}
    shares = ui.cached_report("share_of_shelf", latest_id, **filters)
    ui.stop_without_audits(
        shares,
        scope,
        f"from {start:%d %b %Y} to {end:%d %b %Y}",
        "Widen the dates or pick other stores.",
    )
    own = ui.cached_report("own_vs_competitors", latest_id, **filters)
    st.caption(
        f"{scope.label}, audits from {start:%d %b %Y} to {end:%d %b %Y}. Shares over many "
        "audits are summed facings (or widths) per brand / all summed facings, so bigger "
        "shelves weigh more."
    )

    own_row = own.set_index("group").reindex(["Own brands"]).fillna(0.0).iloc[0]
    c1, c2, c3 = st.columns(3)
    c1.metric("Own brands, share by facings", f"{own_row['share_facings']:.1%}")
    c2.metric("Own brands, share by linear width", f"{own_row['share_linear']:.1%}")
    c3.metric("Product facings counted", f"{int(shares['facings'].sum()):,}")

    left, right = st.columns([3, 2])
    with left:
        brand_table = shares[
            [
                "brand",
                "manufacturer",
                "is_own",
                "color_hex",
                "facings",
                "linear_px",
                "share_facings",
                "share_linear",
                "audits",
            ]
        ]
        st.plotly_chart(charts.share_bars(brand_table), key="sos_share_chart")
        ui.csv_download(
            "Download share per brand (CSV)",
            "share_of_shelf_by_brand.csv",
            brand_table,
            key="sos_share_csv",
        )
    with right:
        st.plotly_chart(charts.own_vs_competitors_bars(own), key="sos_own_chart")
        ui.csv_download(
            "Download own vs competitors (CSV)", "own_vs_competitors.csv", own, key="sos_own_csv"
        )

    trend = ui.cached_report("share_trend", latest_id, **filters)
    st.plotly_chart(charts.share_trend_lines(trend, measure), key="sos_trend_chart")
    ui.csv_download(
        "Download weekly trend (CSV)", "share_of_shelf_trend.csv", trend, key="sos_trend_csv"
    )

    heatmap = ui.cached_report("store_brand_heatmap", latest_id, **filters)
    st.plotly_chart(charts.store_brand_heatmap(heatmap, measure), key="sos_heatmap_chart")
    ui.csv_download(
        "Download store x brand (CSV)",
        "share_of_shelf_store_brand.csv",
        heatmap,
        key="sos_heatmap_csv",
    )

    st.subheader("A brand's products, and the audits behind its figures")
    brand_ids = dict(zip(shares["brand"], shares["brand_id"], strict=True))
    brand = st.selectbox("Brand", list(brand_ids), key="sos_drill_brand")
    brand_id = None if pd.isna(brand_ids[brand]) else int(brand_ids[brand])
    products = ui.cached_report("product_share_of_shelf", latest_id, **filters)
    mine = products[products["brand"] == brand]
    st.plotly_chart(charts.product_share_bars(mine, brand), key="sos_product_chart")
    product_columns = [
        "product",
        "gtin",
        "facings",
        "share_of_brand",
        "share_facings",
        "share_linear",
        "linear_px",
        "audits",
    ]
    product_csv = ["brand", *product_columns]
    ui.table_with_csv(
        f"Download the products of {brand} (CSV)",
        "share_of_shelf_products_of_brand.csv",
        mine,
        product_csv,
        shown=product_columns,
        column_config={
            **ui.GTIN_COLUMN,
            "share_of_brand": st.column_config.NumberColumn("share of the brand", format="percent"),
            **SHARE_COLUMNS,
        },
        key="sos_products",
    )
    ui.csv_download(
        "Download share per product, all brands (CSV)",
        "share_of_shelf_by_product.csv",
        products,
        product_csv,
        key="sos_all_products_csv",
    )
    behind = ui.cached_report("audits_behind", latest_id, brand_id=brand_id, **filters)
    ui.table_with_csv(
        f"Download audits behind {brand} (CSV)",
        "audits_behind.csv",
        behind,
        shown=[
            "audit_id",
            "created_at",
            "store",
            "region",
            "user_name",
            "source",
            "facings",
            "share_facings",
            "linear_px",
            "share_linear",
            "product_count",
        ],
        column_config={
            "audit_id": st.column_config.NumberColumn("audit"),
            "user_name": st.column_config.TextColumn("merchandiser"),
            "product_count": st.column_config.NumberColumn("all products"),
            "created_at": st.column_config.DatetimeColumn("audited at", format="D MMM YYYY, HH:mm"),
            **SHARE_COLUMNS,
        },
        key="sos_behind",
    )
    if not behind.empty:
        labels = {
            f"#{r.audit_id}: {r.store}, {r.created_at:%d %b %Y %H:%M}": r.audit_id
            for r in behind.itertuples()
        }
        audit_id = labels[
            st.selectbox("Show the snapshot of audit", list(labels), key="sos_drill_audit")
        ]
        drawn = _drawn_snapshots(url, audit_id, latest_id)
        if not drawn:
            st.caption("This audit has no stored snapshot image.")
        for i, image_rgb in enumerate(drawn):
            height, width = image_rgb.shape[:2]
            st.image(
                image_rgb,
                caption=f"image {i + 1}: {width} x {height} px, boxes as saved "
                "(brand colours, unknown grey, gaps red)",
            )
