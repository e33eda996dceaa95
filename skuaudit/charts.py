"""Plotly figures for the dashboards: pure functions from a ``reports`` DataFrame to a figure.

Each builder draws exactly the rows it is given (the pages offer the same DataFrame as CSV), keeps
brand colours from the catalogue, shows shares as percentages, and returns an empty figure with a
"no data" note rather than failing on an empty frame.

Example:
    >>> import pandas as pd
    >>> fig = share_bars(pd.DataFrame(columns=["brand", "color_hex", "share_facings", "share_linear"]))
    >>> fig.layout.annotations[0].text
    'No audits in this selection'
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from skuaudit.reports import MEASURES

EMPTY_TEXT = "No audits in this selection"
HEATMAP_ROW_PX = 24
WEEK_TICKS_MAX = 12


def _empty(title: str) -> go.Figure:
    fig = go.Figure(layout={"title": {"text": title}})
    fig.add_annotation(text=EMPTY_TEXT, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _measure_label(measure: str) -> str:
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; choose one of {list(MEASURES)}")
    return MEASURES[measure]


def share_bars(df: pd.DataFrame) -> go.Figure:
    """Share by facings and by linear width per brand, side by side (``reports.share_of_shelf``)."""
    title = "Share of shelf per brand"
    if df.empty:
        return _empty(title)
    fig = go.Figure()
    for measure, label in MEASURES.items():
        fig.add_bar(
            name=label,
            x=df["brand"],
            y=df[measure],
            marker_color=df["color_hex"],
            marker_pattern_shape="" if measure == "share_facings" else "/",
            hovertemplate="%{x}: %{y:.1%}<extra>" + label + "</extra>",
        )
    fig.update_layout(
        title=title, barmode="group", yaxis_tickformat=".0%", legend={"orientation": "h", "y": -0.2}
    )
    return fig


def product_share_bars(df: pd.DataFrame, brand: str) -> go.Figure:
    """The products of one brand: each one's share of the brand's facings
    (``reports.product_share_of_shelf`` rows of that brand), largest first."""
    title = f"Products of {brand}: share of the brand's facings"
    if df.empty:
        return _empty(title)
    df = df.sort_values("share_of_brand", ascending=True)
    fig = go.Figure(
        go.Bar(
            y=df["product"],
            x=df["share_of_brand"],
            orientation="h",
            marker_color=df["color_hex"],
            customdata=df["facings"],
            hovertemplate="%{y}: %{x:.1%} (%{customdata} facings)<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_tickformat=".0%",
        xaxis_range=[0, 1],
        height=max(260, 120 + HEATMAP_ROW_PX * len(df)),
    )
    return fig


def share_trend_lines(df: pd.DataFrame, measure: str) -> go.Figure:
    """Weekly share per brand, one line per brand (``reports.share_trend``)."""
    title = f"{_measure_label(measure)} per week"
    if df.empty:
        return _empty(title)
    fig = go.Figure()
    for brand, rows in df.groupby("brand", sort=True):
        fig.add_scatter(
            name=brand,
            x=rows["week_start"],
            y=rows[measure],
            mode="lines+markers",
            line_color=rows["color_hex"].iloc[0],
            hovertemplate="week of %{x|%d %b %Y}: %{y:.1%}<extra>" + str(brand) + "</extra>",
        )
    fig.update_layout(title=title, yaxis_tickformat=".0%", xaxis_title="week starting")
    fig.update_xaxes(**_week_axis(df["week_start"]))
    return fig


def _week_axis(week_start: pd.Series) -> dict:
    """Ticks on the data's weeks as dates (at most ``WEEK_TICKS_MAX``), half a week of margin.

    Plotly's own date ticks zoom in to milliseconds around a single point and fall between weeks
    for a few points.
    """
    weeks = pd.DatetimeIndex(sorted(pd.to_datetime(week_start).unique()))
    step = math.ceil(len(weeks) / WEEK_TICKS_MAX)
    margin = pd.Timedelta(days=3.5)
    return {
        "tickmode": "array",
        "tickvals": list(weeks[::step]),
        "tickformat": "%d %b %Y",
        "range": [weeks[0] - margin, weeks[-1] + margin],
    }


def own_vs_competitors_bars(df: pd.DataFrame) -> go.Figure:
    """Own brands against competitors, one stacked bar per measure (``reports.own_vs_competitors``)."""
    title = "Own brands versus competitors"
    if df.empty:
        return _empty(title)
    colors = {"Own brands": "#e6550d", "Competitors": "#636363"}
    labels = list(MEASURES.values())
    fig = go.Figure()
    for row in df.itertuples(index=False):
        fig.add_bar(
            name=row.group,
            y=labels,
            x=[row.share_facings, row.share_linear],
            orientation="h",
            marker_color=colors.get(row.group, "#bbbbbb"),
            texttemplate="%{x:.1%}",
            hovertemplate="%{y}: %{x:.1%}<extra>" + row.group + "</extra>",
        )
    fig.update_layout(
        title=title,
        barmode="stack",
        xaxis_tickformat=".0%",
        xaxis_range=[0, 1],
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def store_brand_heatmap(df: pd.DataFrame, measure: str) -> go.Figure:
    """Stores down, brands across, colour = share within the store (``reports.store_brand_heatmap``)."""
    title = f"{_measure_label(measure)} per store and brand"
    if df.empty:
        return _empty(title)
    grid = df.pivot_table(
        index="store", columns="brand", values=measure, aggfunc="sum", fill_value=0.0
    )
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=list(grid.columns),
            y=list(grid.index),
            colorscale="Blues",
            zmin=0.0,
            texttemplate="%{z:.0%}",
            colorbar_tickformat=".0%",
            hovertemplate="%{y} / %{x}: %{z:.1%}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title, height=max(320, 120 + HEATMAP_ROW_PX * len(grid)), yaxis_autorange="reversed"
    )
    return fig


def availability_bars(df: pd.DataFrame) -> go.Figure:
    """On-shelf availability and planogram compliance per store (``reports.availability_by_store``)."""
    title = "Availability and compliance"
    df = df.dropna(subset=["availability"])
    if df.empty:
        return _empty(title)
    fig = go.Figure()
    for name, column, color, short in (
        ("On-shelf availability", "availability", "#3182bd", "availability"),
        ("Planogram compliance", "planogram_compliance", "#9ecae1", "compliance"),
    ):
        fig.add_bar(
            name=name,
            y=df["store"],
            x=df[column],
            orientation="h",
            marker_color=color,
            hovertemplate="%{y}: %{x:.0%}<extra>" + short + "</extra>",
        )
    fig.update_layout(
        title=title,
        barmode="group",
        xaxis_tickformat=".0%",
        xaxis_range=[0, 1],
        yaxis_autorange="reversed",
        height=max(320, 120 + 2 * HEATMAP_ROW_PX * len(df)),
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def gap_share_bars(df: pd.DataFrame) -> go.Figure:
    """Share of shelf width that is empty, per store (``reports.gap_share_by_store``)."""
    title = "Empty shelf (gap share of width)"
    if df.empty:
        return _empty(title)
    fig = go.Figure(
        go.Bar(
            y=df["store"],
            x=df["gap_share_width"],
            orientation="h",
            marker_color="#de2d26",
            customdata=df["gap_count"],
            hovertemplate="%{y}: %{x:.1%} (%{customdata} gaps)<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_tickformat=".0%",
        yaxis_autorange="reversed",
        height=max(320, 120 + HEATMAP_ROW_PX * len(df)),
    )
    return fig
