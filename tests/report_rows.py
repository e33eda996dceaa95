"""Reading report tables back as plain tuples, shared by the report tests."""

from __future__ import annotations

import pandas as pd

# What a stockout row is checked on; "product" only where the table has one (the product level).
_STOCKOUT_FIELDS = (
    "store",
    "brand",
    "product",
    "status",
    "expected_facings",
    "facings",
    "since",
    "audits_in_row",
)


def stockout_rows(df: pd.DataFrame) -> list[tuple]:
    """Each row of a current-stockouts table as a tuple of ``_STOCKOUT_FIELDS`` that the table
    has, in that order, with ``since`` as its ISO day."""
    fields = [f for f in _STOCKOUT_FIELDS if f in df.columns]
    return [
        tuple(getattr(r, f).date().isoformat() if f == "since" else getattr(r, f) for f in fields)
        for r in df.itertuples()
    ]
