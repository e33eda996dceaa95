"""Plotly figures for the dashboards."""

from __future__ import annotations

import pandas as pd
import pytest

from skuaudit import charts


def _trend(weeks: list[str], brands: tuple[str, ...] = ("Dyvi", "Kapku")) -> pd.DataFrame:
    rows = [
        {"week_start": pd.Timestamp(w), "brand": b, "color_hex": "#123456", "share_facings": 0.5}
        for w in weeks
        for b in brands
    ]
    return pd.DataFrame(rows, columns=["week_start", "brand", "color_hex", "share_facings"])


@pytest.mark.parametrize(
    "weeks, expected_ticks",
    [
        (["2026-11-30"], ["2026-11-30"]),
        (["2026-11-16", "2026-11-30"], ["2026-11-16", "2026-11-30"]),
        (
            [str(d.date()) for d in pd.date_range("2026-01-05", periods=30, freq="7D")],
            [str(d.date()) for d in pd.date_range("2026-01-05", periods=10, freq="21D")],
        ),
    ],
)
def test_trend_ticks_are_the_weeks_as_dates(weeks, expected_ticks):
    xaxis = charts.share_trend_lines(_trend(weeks), "share_facings").layout.xaxis
    assert xaxis.tickformat == "%d %b %Y"
    assert [pd.Timestamp(t) for t in xaxis.tickvals] == [pd.Timestamp(t) for t in expected_ticks]
    low, high = (pd.Timestamp(x) for x in xaxis.range)  # half a week either side
    assert (low, high) == (
        pd.Timestamp(weeks[0]) - pd.Timedelta(days=3.5),
        pd.Timestamp(weeks[-1]) + pd.Timedelta(days=3.5),
    )


def test_trend_of_nothing_is_the_empty_figure():
    fig = charts.share_trend_lines(_trend([]), "share_facings")
    assert fig.layout.annotations[0].text == charts.EMPTY_TEXT
    assert fig.layout.xaxis.tickvals is None
