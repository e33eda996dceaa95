"""Small DataFrames for the dashboards, aggregated in the database from stored per-audit rows.

Every function takes the database ``url`` plus filters (dates, and a ``Scope``: which stores)
and returns a DataFrame with fixed columns,
empty (never ``None``) when nothing matches. The heavy work is SQLAlchemy Core ``GROUP BY`` and
window functions over ``brand_metrics``, ``product_metrics`` and ``audits`` (never over
``detections``); pandas only divides and labels the few grouped rows that come back. The SQL runs
on SQLite and PostgreSQL.

Definitions (per audit, ``ProductMetric`` rows and the ``BrandMetric`` rows that sum them per
brand are written by ``skuaudit.metrics``):

- **Share by facings** over many audits = the brand's summed facings / all summed facings (every
  brand plus the "unknown brand" row) in the same audits. **Share by linear width** is the same
  with summed box widths (``linear_px``). Both are weighted sums, not means of per-audit shares,
  so a big shelf counts more than a small one.
- **Stockout**: planogram target > 0 and no facing. **Below target**: facings < target (and not a
  stockout). Targets are the ones stored with each audit (``BrandMetric.expected_facings``).
- **On-shelf availability** of a store: of the brands its latest audit had a target for, the
  fraction seen with at least one facing.
- **Planogram compliance** of a store: mean over its targeted brands of ``min(facings / target, 1)``
  in its latest audit.
- **Audits in a row**: how many of the store's latest audits in a row show the problem (a
  stockout, or for "below target" any shortfall); **since**: the oldest audit of that run.
- The product level (``product_share_of_shelf``, ``current_product_stockouts``,
  ``product_compliance``) uses the same definitions per product; a product's target is its own
  (``ProductTarget``), and ``share_of_brand`` is its facings / its brand's facings.

Example:
    >>> from datetime import date
    >>> share_of_shelf("sqlite:///data/skuaudit.db", date(2026, 1, 1), date(2026, 3, 31))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from skuaudit.errors import UserError
from skuaudit.storage import models as m
from skuaudit.storage.db import DatabaseError, get_engine

UNKNOWN_BRAND = "Unknown brand"
OWN_GROUPS = {True: "Own brands", False: "Competitors", None: UNKNOWN_BRAND}
MEASURES = {"share_facings": "Share by facings", "share_linear": "Share by linear width"}

BRAND_COLUMNS = ["brand_id", "brand", "manufacturer", "is_own", "color_hex"]
_STORE_COLUMNS = ["store_id", "store", "region"]
_SHARE_FIGURES = ["facings", "linear_px", "share_facings", "share_linear"]
SHARE_COLUMNS = [*BRAND_COLUMNS, *_SHARE_FIGURES, "audits"]
TREND_COLUMNS = ["week_start", *BRAND_COLUMNS, *_SHARE_FIGURES]
OWN_COLUMNS = ["group", *_SHARE_FIGURES]
HEATMAP_COLUMNS = [*_STORE_COLUMNS, *BRAND_COLUMNS, *_SHARE_FIGURES]
AUDIT_COLUMNS = [
    "audit_id",
    "created_at",
    "store_id",
    "store",
    "region",
    "user_name",
    "source",
    "product_count",
    "facings",
    "linear_px",
    "share_facings",
    "share_linear",
    "images",
]
PRODUCT_COLUMNS = ["product_id", "product", "gtin"]
PRODUCT_SHARE_COLUMNS = [
    *BRAND_COLUMNS,
    *PRODUCT_COLUMNS,
    *_SHARE_FIGURES,
    "share_of_brand",
    "audits",
]
# A row of the latest-audit reports starts with its store and brand (and product, at that level).
_STORE_BRAND_COLUMNS = [*_STORE_COLUMNS, "brand_id", "brand"]
_STATUS_COLUMNS = [
    "status",
    "expected_facings",
    "facings",
    "since",
    "audits_in_row",
    "audit_id",
    "audited_at",
]
STOCKOUT_COLUMNS = [*_STORE_BRAND_COLUMNS, *_STATUS_COLUMNS]
PRODUCT_STOCKOUT_COLUMNS = [*_STORE_BRAND_COLUMNS, *PRODUCT_COLUMNS, *_STATUS_COLUMNS]
DURATION_COLUMNS = [
    "store_id",
    "brand_id",
    "stockout_audits_in_row",
    "stockout_since",
    "below_audits_in_row",
    "below_since",
]
AVAILABILITY_COLUMNS = [
    "rank",
    "store_id",
    "store",
    "region",
    "audit_id",
    "audited_at",
    "targeted_brands",
    "brands_on_shelf",
    "availability",
    "planogram_compliance",
    "stockouts",
    "below_target",
]
GAP_COLUMNS = [
    "store_id",
    "store",
    "region",
    "audit_id",
    "audited_at",
    "gap_count",
    "gap_share_width",
    "shelf_width_px",
]
_TARGET_COLUMNS = ["expected_facings", "facings", "compliance"]
COMPLIANCE_COLUMNS = [*_STORE_BRAND_COLUMNS, *_TARGET_COLUMNS]
PRODUCT_COMPLIANCE_COLUMNS = [*_STORE_BRAND_COLUMNS, *PRODUCT_COLUMNS, *_TARGET_COLUMNS]

_A = m.Audit.__table__
_BM = m.BrandMetric.__table__
_PM = m.ProductMetric.__table__
_S = m.Store.__table__
_B = m.Brand.__table__
_P = m.Product.__table__


@dataclass(frozen=True)
class _Level:
    """Where the latest-audit reports of one level (brand or product) find their rows.

    Attributes:
        table: its metrics (``brand_metrics`` or ``product_metrics``), one row per audit.
        key: the column a row is of (``brand_id`` or ``product_id``).
        names: the columns that name a row, after the store (``*_COLUMNS`` order).
        joins: ``(table, on)`` joined after the store to reach those columns.
        order: the names a compliance list is sorted by, after the store name.
        name: the report column a row is called by (``brand`` or ``product``).
        stockout_columns, compliance_columns: the columns of its two reports.
    """

    table: sa.Table
    key: sa.Column
    names: tuple[sa.ColumnElement, ...]
    joins: tuple[tuple[sa.Table, sa.ColumnElement[bool]], ...]
    order: tuple[sa.ColumnElement, ...]
    name: str
    stockout_columns: list[str]
    compliance_columns: list[str]


_BRAND_LEVEL = _Level(
    table=_BM,
    key=_BM.c.brand_id,
    names=(_BM.c.brand_id, _B.c.name),
    joins=((_B, _B.c.id == _BM.c.brand_id),),
    order=(_B.c.name,),
    name="brand",
    stockout_columns=STOCKOUT_COLUMNS,
    compliance_columns=COMPLIANCE_COLUMNS,
)
_PRODUCT_LEVEL = _Level(
    table=_PM,
    key=_PM.c.product_id,
    names=(_P.c.brand_id, _B.c.name, _PM.c.product_id, _P.c.name, _P.c.gtin),
    joins=((_P, _P.c.id == _PM.c.product_id), (_B, _B.c.id == _P.c.brand_id)),
    order=(_B.c.name, _P.c.name),
    name="product",
    stockout_columns=PRODUCT_STOCKOUT_COLUMNS,
    compliance_columns=PRODUCT_COMPLIANCE_COLUMNS,
)


class week_start(FunctionElement):  # noqa: N801 (a SQL function, named like one)
    """The Monday of a timestamp's ISO week, as a DATE, on SQLite and PostgreSQL alike."""

    type = sa.Date()
    name = "week_start"
    inherit_cache = True


@compiles(week_start)
def _week_start_default(element, compiler, **kw) -> str:
    return f"CAST(date_trunc('week', {compiler.process(element.clauses, **kw)}) AS DATE)"


@compiles(week_start, "sqlite")
def _week_start_sqlite(element, compiler, **kw) -> str:
    # 'weekday 0' moves forward to the next Sunday (or stays on one); 6 days back is its Monday.
    return f"date({compiler.process(element.clauses, **kw)}, 'weekday 0', '-6 days')"


@dataclass(frozen=True)
class Scope:
    """Which stores a dashboard covers: all (both None), one region, or an explicit list."""

    label: str
    store_ids: tuple[int, ...] | None = None
    region: str | None = None
    words: str = ""  # the scope inside a sentence ("Central Superstore"); default: the label


ALL_STORES = Scope("All stores", words="any store")


@dataclass(frozen=True)
class AuditSnapshot:
    """One image an audit was computed from."""

    image_index: int
    width: int
    height: int
    image_jpeg: bytes


@contextmanager
def _connect(url: str | None) -> Iterator[Connection]:
    try:
        with get_engine(url).connect() as conn:
            yield conn
    except OperationalError as exc:
        raise DatabaseError(f"reading the dashboards failed: {exc.orig or exc}") from exc


def _frame(conn: Connection, stmt: sa.Select, columns: Sequence[str]) -> pd.DataFrame:
    rows = conn.execute(stmt).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=list(columns))


def check_date_range(start: date, end: date) -> None:
    """Raise a ValueError a person can act on when ``start`` is after ``end``."""
    if start > end:
        raise UserError(
            f"the start date {start.isoformat()} is after the end date {end.isoformat()}; "
            "pick a start on or before the end"
        )


def _day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """``[start 00:00, end + 1 day 00:00)``: ``end`` is included whole."""
    check_date_range(start, end)
    return datetime.combine(start, time.min), datetime.combine(end + timedelta(days=1), time.min)


def _scope_where(scope: Scope) -> list[sa.ColumnElement]:
    where: list[sa.ColumnElement] = []
    if scope.store_ids is not None:
        where.append(_A.c.store_id.in_(list(scope.store_ids)))
    if scope.region is not None:
        where.append(_A.c.store_id.in_(sa.select(_S.c.id).where(_S.c.region == scope.region)))
    return where


def _range_where(start: date, end: date, scope: Scope) -> list[sa.ColumnElement]:
    lo, hi = _day_bounds(start, end)
    return [_A.c.created_at >= lo, _A.c.created_at < hi, *_scope_where(scope)]


def _brands(conn: Connection) -> pd.DataFrame:
    stmt = sa.select(_B.c.id, _B.c.name, _B.c.manufacturer, _B.c.is_own, _B.c.color_hex)
    return _frame(conn, stmt, BRAND_COLUMNS)


def _with_brands(conn: Connection, df: pd.DataFrame) -> pd.DataFrame:
    """Add brand name, manufacturer, own flag and colour; NULL brand ids become "Unknown brand"."""
    out = df.astype({"brand_id": "Int64"}).merge(
        _brands(conn).astype({"brand_id": "Int64"}), on="brand_id", how="left"
    )
    unknown = out["brand_id"].isna()
    out.loc[unknown, "brand"] = UNKNOWN_BRAND
    out.loc[unknown, "color_hex"] = "#bbbbbb"
    return out


def _add_shares(df: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Facing- and width-weighted shares of each row within its ``by`` group (or overall)."""
    df = df.astype({"facings": "int64", "linear_px": "float64"})
    if by:
        facings_total = df.groupby(by)["facings"].transform("sum")
        linear_total = df.groupby(by)["linear_px"].transform("sum")
    else:
        facings_total, linear_total = df["facings"].sum(), df["linear_px"].sum()
    # 0 / 0 (a group with no products at all) is NaN: show it as a share of 0.
    df["share_facings"] = (df["facings"] / facings_total).fillna(0.0)
    df["share_linear"] = (df["linear_px"] / linear_total).fillna(0.0)
    return df


def _summed(
    conn: Connection,
    table: sa.Table,
    keys: dict[str, sa.ColumnElement],
    where: Sequence[sa.ColumnElement],
    audits: sa.ColumnElement | None = None,
) -> pd.DataFrame:
    """Summed ``facings`` and ``linear_px`` of ``table``'s rows (brand or product metrics) in the
    audits that match ``where``, one row per ``keys`` (column name -> SQL expression), with the
    brand columns added; ``audits`` (a count expression), if given, becomes an ``audits`` column."""
    names = [*keys, "facings", "linear_px"]
    columns = [*keys.values(), sa.func.sum(table.c.facings), sa.func.sum(table.c.linear_px)]
    if audits is not None:
        names.append("audits")
        columns.append(audits)
    stmt = (
        sa.select(*columns)
        .join_from(table, _A, _A.c.id == table.c.audit_id)
        .where(*where)
        .group_by(*keys.values())
    )
    return _with_brands(conn, _frame(conn, stmt, names))


def _with_products(conn: Connection, df: pd.DataFrame) -> pd.DataFrame:
    """Add product name and GTIN; a NULL product id reads "unknown product" under a known brand,
    "unknown" under the unknown brand."""
    from skuaudit.metrics import UNKNOWN_NAME, UNKNOWN_PRODUCT_NAME

    products = _frame(conn, sa.select(_P.c.id, _P.c.name, _P.c.gtin), PRODUCT_COLUMNS)
    out = df.astype({"product_id": "Int64"}).merge(
        products.astype({"product_id": "Int64"}), on="product_id", how="left"
    )
    no_product = out["product_id"].isna()
    out.loc[no_product, "product"] = UNKNOWN_PRODUCT_NAME
    out.loc[no_product & out["brand_id"].isna(), "product"] = UNKNOWN_NAME
    return out


def latest_audit_id(url: str | None = None) -> int | None:
    """The newest audit id (None without audits): a cache key that changes with every new audit."""
    with _connect(url) as conn:
        return conn.scalar(sa.select(sa.func.max(_A.c.id)))


def data_version(url: str | None = None) -> str:
    """A cache key of everything the dashboards show: the newest audit id and the stores, brands
    and products as they are now, so a new audit, a new store or a renamed brand shows at once."""
    import hashlib

    with _connect(url) as conn:
        newest = conn.scalar(sa.select(sa.func.max(_A.c.id)))
        stores = conn.execute(
            sa.select(_S.c.id, _S.c.name, _S.c.region, _S.c.deleted_at).order_by(_S.c.id)
        ).all()
        brands = conn.execute(
            sa.select(_B.c.id, _B.c.name, _B.c.is_own, _B.c.color_hex, _B.c.deleted_at).order_by(
                _B.c.id
            )
        ).all()
        products = conn.execute(
            sa.select(_P.c.id, _P.c.brand_id, _P.c.name, _P.c.gtin).order_by(_P.c.id)
        ).all()
    digest = hashlib.sha1(repr((stores, brands, products)).encode()).hexdigest()[:16]
    return f"{newest}:{digest}"


def audit_date_range(url: str | None = None) -> tuple[date, date] | None:
    """First and last audit dates, or None when there is no audit yet."""
    with _connect(url) as conn:
        first, last = conn.execute(
            sa.select(sa.func.min(_A.c.created_at), sa.func.max(_A.c.created_at))
        ).one()
    if first is None:
        return None
    return first.date(), last.date()


def scopes(url: str | None = None) -> list[Scope]:
    """The store choices a dashboard offers: all stores, each region, each store (a deleted
    store too, marked so: its audits are history the dashboards still show)."""
    with _connect(url) as conn:
        stores = conn.execute(
            sa.select(_S.c.id, _S.c.name, _S.c.region, _S.c.deleted_at).order_by(_S.c.name)
        ).all()
    regions = sorted({r.region for r in stores if r.region})
    return [
        ALL_STORES,
        *(Scope(f"Region: {r}", region=r, words=f"region {r}") for r in regions),
        *(
            Scope(
                f"Store: {s.name}" + (" (deleted)" if s.deleted_at else ""),
                store_ids=(s.id,),
                words=s.name,
            )
            for s in stores
        ),
    ]


def share_of_shelf(
    url: str | None, start: date, end: date, scope: Scope = ALL_STORES
) -> pd.DataFrame:
    """Share by facings and by linear width per brand over the audits from ``start`` to ``end``.

    Args:
        url: Database URL (None: ``SKUAUDIT_DB_URL``).
        start: First day included.
        end: Last day included.
        scope: Only its stores (default: all).

    Returns:
        One row per brand seen (``SHARE_COLUMNS``), largest share by facings first; ``audits`` is
        how many audits the brand has a row in.
    """
    where = _range_where(start, end, scope)
    keys = {"brand_id": _BM.c.brand_id}
    with _connect(url) as conn:
        df = _summed(conn, _BM, keys, where, audits=sa.func.count(_BM.c.audit_id))
    df = _add_shares(df)
    return df[SHARE_COLUMNS].sort_values(
        ["share_facings", "brand"], ascending=[False, True], ignore_index=True
    )


def product_share_of_shelf(
    url: str | None, start: date, end: date, scope: Scope = ALL_STORES
) -> pd.DataFrame:
    """Share by facings and by linear width per product over the audits from ``start`` to ``end``.

    The rows of a brand sum to its row of ``share_of_shelf``; ``share_of_brand`` is a product's
    facings / its brand's facings.

    Returns:
        One row per product seen (``PRODUCT_SHARE_COLUMNS``), by brand name, then most facings.
    """
    where = _range_where(start, end, scope)
    keys = {"brand_id": _PM.c.brand_id, "product_id": _PM.c.product_id}
    audits = sa.func.count(sa.distinct(_PM.c.audit_id))
    with _connect(url) as conn:
        df = _with_products(conn, _summed(conn, _PM, keys, where, audits=audits))
    df = _add_shares(df)
    brand_facings = df.groupby("brand_id", dropna=False)["facings"].transform("sum")
    df["share_of_brand"] = (df["facings"] / brand_facings.where(brand_facings > 0)).fillna(0.0)
    return df[PRODUCT_SHARE_COLUMNS].sort_values(
        ["brand", "facings", "product"], ascending=[True, False, True], ignore_index=True
    )


def share_trend(url: str | None, start: date, end: date, scope: Scope = ALL_STORES) -> pd.DataFrame:
    """Weekly share per brand: one row per (Monday of the week, brand), shares within the week."""
    where = _range_where(start, end, scope)
    keys = {"week_start": week_start(_A.c.created_at), "brand_id": _BM.c.brand_id}
    with _connect(url) as conn:
        df = _summed(conn, _BM, keys, where)
    df["week_start"] = pd.to_datetime(df["week_start"])
    df = _add_shares(df, by=["week_start"])
    return df[TREND_COLUMNS].sort_values(["week_start", "brand"], ignore_index=True)


def own_vs_competitors(
    url: str | None, start: date, end: date, scope: Scope = ALL_STORES
) -> pd.DataFrame:
    """Shares of own brands, competitors and unrecognised products (one row each present)."""
    brands = share_of_shelf(url, start, end, scope)
    group = brands["is_own"].map(lambda own: OWN_GROUPS[None if pd.isna(own) else bool(own)])
    df = brands.assign(group=group).groupby("group", as_index=False)[["facings", "linear_px"]].sum()
    df = _add_shares(df)
    order = {name: i for i, name in enumerate(OWN_GROUPS.values())}
    return df[OWN_COLUMNS].sort_values("group", key=lambda s: s.map(order), ignore_index=True)


def store_brand_heatmap(
    url: str | None, start: date, end: date, scope: Scope = ALL_STORES
) -> pd.DataFrame:
    """Share per (store, brand) over the range, shares within each store (long format)."""
    where = _range_where(start, end, scope)
    keys = {"store_id": _A.c.store_id, "brand_id": _BM.c.brand_id}
    stores = sa.select(_S.c.id, _S.c.name, _S.c.region)
    with _connect(url) as conn:
        df = _summed(conn, _BM, keys, where)
        df = df.merge(_frame(conn, stores, ["store_id", "store", "region"]), on="store_id")
    df = _add_shares(df, by=["store_id"])
    return df[HEATMAP_COLUMNS].sort_values(["store", "brand"], ignore_index=True)


def audits_behind(
    url: str | None,
    brand_id: int | None,
    start: date,
    end: date,
    scope: Scope = ALL_STORES,
    limit: int = 200,
) -> pd.DataFrame:
    """The audits behind a brand's figure, newest first (``brand_id`` None: the unknown brand)."""
    where = _range_where(start, end, scope)
    brand_match = _BM.c.brand_id.is_(None) if brand_id is None else _BM.c.brand_id == brand_id
    images = (
        sa.select(sa.func.count(m.AuditImage.id))
        .where(m.AuditImage.audit_id == _A.c.id)
        .scalar_subquery()
    )
    stmt = (
        sa.select(
            _A.c.id,
            _A.c.created_at,
            _S.c.id,
            _S.c.name,
            _S.c.region,
            _A.c.user_name,
            _A.c.source,
            _A.c.product_count,
            _BM.c.facings,
            _BM.c.linear_px,
            _BM.c.share_facings,
            _BM.c.share_linear,
            images,
        )
        .join_from(_BM, _A, _A.c.id == _BM.c.audit_id)
        .join(_S, _S.c.id == _A.c.store_id)
        .where(brand_match, *where)
        .order_by(_A.c.created_at.desc(), _A.c.id.desc())
        .limit(limit)
    )
    with _connect(url) as conn:
        return _frame(conn, stmt, AUDIT_COLUMNS)


def audit_snapshots(url: str | None, audit_id: int) -> list[AuditSnapshot]:
    """The images stored with one audit, in order (empty if it has none)."""
    ai = m.AuditImage.__table__
    stmt = (
        sa.select(ai.c.image_index, ai.c.width, ai.c.height, ai.c.image_jpeg)
        .where(ai.c.audit_id == audit_id)
        .order_by(ai.c.image_index)
    )
    with _connect(url) as conn:
        return [AuditSnapshot(*row) for row in conn.execute(stmt)]


# Audits that record only counts (the Offline page's browser model: no boxes, no brands, no gap
# widths) cannot stand for a store's latest shelf in the brand reports: they would hide its
# stockouts and gaps behind empty figures.
COUNTS_ONLY_SOURCES = ("offline",)


def _ranked_audits(as_of: date | None, scope: Scope) -> sa.Subquery:
    """Audits with brand figures up to the end of ``as_of``, ``audit_rank`` 1 = each store's
    latest (``COUNTS_ONLY_SOURCES`` left out)."""
    where = _scope_where(scope)
    where.append(_A.c.source.not_in(COUNTS_ONLY_SOURCES))
    # A deleted store has no current shelf: its audits are history only.
    where.append(_A.c.store_id.not_in(sa.select(_S.c.id).where(_S.c.deleted_at.is_not(None))))
    if as_of is not None:
        where.append(_A.c.created_at < datetime.combine(as_of + timedelta(days=1), time.min))
    rank = sa.func.row_number().over(
        partition_by=_A.c.store_id, order_by=(_A.c.created_at.desc(), _A.c.id.desc())
    )
    return (
        sa.select(
            _A.c.id,
            _A.c.store_id,
            _A.c.created_at,
            _A.c.gap_count,
            _A.c.gap_share_width,
            _A.c.shelf_width_px,
            rank.label("audit_rank"),
        )
        .where(*where)
        .subquery("ranked_audits")
    )


def _latest_audits(as_of: date | None, scope: Scope) -> sa.Subquery:
    ranked = _ranked_audits(as_of, scope)
    return sa.select(ranked).where(ranked.c.audit_rank == 1).subquery("latest_audits")


def _targeted(table: sa.Table = _BM) -> sa.ColumnElement[bool]:
    """A row of ``table`` (brand or product metrics) with a planogram target."""
    return table.c.expected_facings > 0


def _latest_targeted(
    level: _Level,
    as_of: date | None,
    scope: Scope,
    figures: Callable[[sa.Subquery], list[sa.ColumnElement]],
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> sa.Select:
    """The targeted rows of ``level`` in each store's latest audit that match ``where``: the
    store, the level's naming columns, then ``figures(latest audits)``."""
    latest = _latest_audits(as_of, scope)
    table = level.table
    stmt = (
        sa.select(latest.c.store_id, _S.c.name, _S.c.region, *level.names, *figures(latest))
        .join_from(table, latest, latest.c.id == table.c.audit_id)
        .join(_S, _S.c.id == latest.c.store_id)
    )
    for joined, on in level.joins:
        stmt = stmt.join(joined, on)
    return stmt.where(*where, _targeted(table))


def _current_problems(level: _Level, url: str | None, scope: Scope, as_of) -> pd.DataFrame:
    """The action list of ``level``: its rows out of stock or below target in each store's
    latest audit, with how long (see ``current_stockouts``)."""
    table = level.table
    status = sa.case((table.c.is_stockout, "stockout"), else_="below target")

    def figures(latest: sa.Subquery) -> list[sa.ColumnElement]:
        return [status, table.c.expected_facings, table.c.facings, latest.c.id, latest.c.created_at]

    problem = sa.or_(table.c.is_stockout, table.c.below_target)
    stmt = _latest_targeted(level, as_of, scope, figures, where=[problem])
    columns = [c for c in level.stockout_columns if c not in ("since", "audits_in_row")]
    with _connect(url) as conn:
        df = _frame(conn, stmt, columns)
    durations = _durations(table, level.key, scope, as_of, url)
    return _with_durations(df, durations, level.key.name, level.stockout_columns, level.name)


def _compliance_rows(level: _Level, url: str | None, scope: Scope, as_of) -> pd.DataFrame:
    """Target, facings and ``min(facings/target, 1)`` of ``level``'s targeted rows in each
    store's latest audit, by store name, then the level's names."""
    table = level.table
    figures = [table.c.expected_facings, table.c.facings, _compliance(table)]
    stmt = _latest_targeted(level, as_of, scope, lambda _latest: figures)
    stmt = stmt.order_by(_S.c.name, *level.order)
    with _connect(url) as conn:
        return _frame(conn, stmt, level.compliance_columns)


def _compliance(table: sa.Table = _BM) -> sa.ColumnElement[float]:
    """``min(facings / target, 1)`` for a targeted row of ``table`` (brand or product metrics),
    written without LEAST/MIN(a, b)."""
    ratio = sa.cast(table.c.facings, sa.Float) / table.c.expected_facings
    return sa.case((table.c.facings >= table.c.expected_facings, 1.0), else_=ratio)


def _durations(
    table: sa.Table, key: sa.Column, scope: Scope, as_of, url: str | None
) -> pd.DataFrame:
    """Stockout and below-target runs per (store, ``key``) in ``table`` (brand or product
    metrics), counted back from each store's latest audit (see ``stockout_durations``)."""
    ranked = _ranked_audits(as_of, scope)
    pair = (ranked.c.store_id, key)
    flagged = sa.or_(table.c.below_target, table.c.is_stockout)
    flag_rank = sa.func.row_number().over(partition_by=pair, order_by=ranked.c.audit_rank)
    stockouts_so_far = sa.func.sum(sa.case((table.c.is_stockout, 1), else_=0)).over(
        partition_by=pair, order_by=ranked.c.audit_rank, rows=(None, 0)
    )
    runs = (
        sa.select(
            ranked.c.store_id,
            key.label("key"),
            ranked.c.created_at,
            ranked.c.audit_rank,
            flag_rank.label("flag_rank"),
            stockouts_so_far.label("stockouts_so_far"),
        )
        .join_from(table, ranked, ranked.c.id == table.c.audit_id)
        .where(flagged, key.is_not(None))
        .subquery("runs")
    )
    in_below_run = runs.c.audit_rank == runs.c.flag_rank
    in_stockout_run = runs.c.audit_rank == runs.c.stockouts_so_far
    stmt = (
        sa.select(
            runs.c.store_id,
            runs.c.key,
            sa.func.sum(sa.case((in_stockout_run, 1), else_=0)),
            sa.func.min(sa.case((in_stockout_run, runs.c.created_at))),
            sa.func.sum(sa.case((in_below_run, 1), else_=0)),
            sa.func.min(sa.case((in_below_run, runs.c.created_at))),
        )
        .group_by(runs.c.store_id, runs.c.key)
        .having(sa.func.min(runs.c.audit_rank) == 1)
    )
    columns = [key.name if c == "brand_id" else c for c in DURATION_COLUMNS]
    with _connect(url) as conn:
        df = _frame(conn, stmt, columns)
    for col in ("stockout_since", "below_since"):
        df[col] = pd.to_datetime(df[col])
    return df.astype({"stockout_audits_in_row": int, "below_audits_in_row": int})


def stockout_durations(
    url: str | None, scope: Scope = ALL_STORES, as_of: date | None = None
) -> pd.DataFrame:
    """How long each store/brand problem has lasted, counted back from the store's latest audit.

    Runs of problem audits are found without scanning per pair in Python: among a pair's flagged
    rows ordered from the latest audit back, a row belongs to the current run exactly when its
    audit rank equals the number of flagged rows up to it (no unflagged audit in between).

    Returns:
        ``DURATION_COLUMNS``, one row per (store, brand) flagged below target or out of stock in
        the latest audit; ``*_audits_in_row`` 0 and ``*_since`` NaT where that run is empty.
    """
    return _durations(_BM, _BM.c.brand_id, scope, as_of, url)


def current_stockouts(
    url: str | None, scope: Scope = ALL_STORES, as_of: date | None = None
) -> pd.DataFrame:
    """What to act on: brands out of stock or below target in each store's latest audit.

    Returns:
        ``STOCKOUT_COLUMNS``: ``status`` is "stockout" or "below target", ``facings`` what was
        seen, ``since``/``audits_in_row`` how long that status has lasted. Stockouts first, then
        the longest-running problems.
    """
    return _current_problems(_BRAND_LEVEL, url, scope, as_of)


def _with_durations(
    df: pd.DataFrame, durations: pd.DataFrame, key: str, columns: list[str], name: str
) -> pd.DataFrame:
    """The action list with ``since`` and ``audits_in_row`` of its status; stockouts first,
    then the longest-running problems."""
    df = df.merge(durations, on=["store_id", key], how="left")
    is_stockout = df["status"] == "stockout"
    df["since"] = df["stockout_since"].where(is_stockout, df["below_since"])
    df["audits_in_row"] = df["stockout_audits_in_row"].where(is_stockout, df["below_audits_in_row"])
    df = df[columns].astype({"audits_in_row": "Int64"})
    return df.sort_values(
        ["status", "audits_in_row", "store", name],
        ascending=[False, False, True, True],
        ignore_index=True,
    )


def current_product_stockouts(
    url: str | None, scope: Scope = ALL_STORES, as_of: date | None = None
) -> pd.DataFrame:
    """The product-level action list: products with a target in a store that are out of stock
    (no facing) or below target in the store's latest audit.

    Returns:
        ``PRODUCT_STOCKOUT_COLUMNS``, as ``current_stockouts`` per product.
    """
    return _current_problems(_PRODUCT_LEVEL, url, scope, as_of)


def availability_by_store(
    url: str | None, scope: Scope = ALL_STORES, as_of: date | None = None
) -> pd.DataFrame:
    """Stores ranked by on-shelf availability in their latest audit, worst first.

    Stores in scope without any audit are listed last with empty figures, so they are not missed.

    Returns:
        ``AVAILABILITY_COLUMNS``; ``availability`` and ``planogram_compliance`` in ``[0, 1]``
        (NaN without targeted brands or audits), ``rank`` 1 = lowest availability (NA for a
        store never audited).
    """
    latest = _latest_audits(as_of, scope)
    targeted = _targeted()
    count_if = lambda cond: sa.func.sum(sa.case((cond, 1), else_=0))  # noqa: E731
    per_store = (
        sa.select(
            latest.c.store_id,
            latest.c.id.label("audit_id"),
            latest.c.created_at,
            count_if(targeted).label("targeted"),
            count_if(sa.and_(targeted, _BM.c.facings > 0)).label("on_shelf"),
            sa.func.avg(sa.case((targeted, _compliance()))).label("compliance"),
            count_if(sa.and_(targeted, _BM.c.is_stockout)).label("stockouts"),
            count_if(sa.and_(targeted, _BM.c.below_target, sa.not_(_BM.c.is_stockout))).label(
                "below"
            ),
        )
        .join_from(latest, _BM, _BM.c.audit_id == latest.c.id, isouter=True)
        .group_by(latest.c.store_id, latest.c.id, latest.c.created_at)
        .subquery("per_store")
    )
    store_where = [_S.c.deleted_at.is_(None)]
    if scope.store_ids is not None:
        store_where.append(_S.c.id.in_(list(scope.store_ids)))
    if scope.region is not None:
        store_where.append(_S.c.region == scope.region)
    stmt = (
        sa.select(
            _S.c.id,
            _S.c.name,
            _S.c.region,
            per_store.c.audit_id,
            per_store.c.created_at,
            per_store.c.targeted,
            per_store.c.on_shelf,
            per_store.c.compliance,
            per_store.c.stockouts,
            per_store.c.below,
        )
        .join_from(_S, per_store, per_store.c.store_id == _S.c.id, isouter=True)
        .where(*store_where)
    )
    columns = [c for c in AVAILABILITY_COLUMNS if c not in ("rank", "availability")]
    with _connect(url) as conn:
        df = _frame(conn, stmt, columns)
    counts = ["targeted_brands", "brands_on_shelf", "stockouts", "below_target"]
    df = df.astype({c: "Int64" for c in [*counts, "audit_id"]})
    df["planogram_compliance"] = df["planogram_compliance"].astype(float)
    df["availability"] = (
        df["brands_on_shelf"] / df["targeted_brands"].where(df["targeted_brands"] > 0)
    ).astype(float)
    df["audited_at"] = pd.to_datetime(df["audited_at"])
    df = df.sort_values(
        ["availability", "planogram_compliance", "store"], na_position="last", ignore_index=True
    )
    audited = df["audit_id"].notna()
    df["rank"] = pd.array([pd.NA] * len(df), dtype="Int64")
    df.loc[audited, "rank"] = range(1, int(audited.sum()) + 1)
    return df[AVAILABILITY_COLUMNS]


def gap_share_by_store(
    url: str | None, scope: Scope = ALL_STORES, as_of: date | None = None
) -> pd.DataFrame:
    """Empty shelf space in each store's latest audit, largest gap share first.

    Returns:
        ``GAP_COLUMNS``; ``gap_share_width`` is the gaps' summed width / shelf width, in ``[0, 1]``.
    """
    latest = _latest_audits(as_of, scope)
    stmt = (
        sa.select(
            latest.c.store_id,
            _S.c.name,
            _S.c.region,
            latest.c.id,
            latest.c.created_at,
            latest.c.gap_count,
            latest.c.gap_share_width,
            latest.c.shelf_width_px,
        )
        .join_from(latest, _S, _S.c.id == latest.c.store_id)
        .order_by(latest.c.gap_share_width.desc(), _S.c.name)
    )
    with _connect(url) as conn:
        return _frame(conn, stmt, GAP_COLUMNS)


def planogram_compliance(
    url: str | None, scope: Scope = ALL_STORES, as_of: date | None = None
) -> pd.DataFrame:
    """Per store and targeted brand in the latest audit: target, facings, ``min(facings/target, 1)``.

    The store figure in ``availability_by_store`` is the mean of ``compliance`` over its rows here.
    """
    return _compliance_rows(_BRAND_LEVEL, url, scope, as_of)


def product_compliance(
    url: str | None, scope: Scope = ALL_STORES, as_of: date | None = None
) -> pd.DataFrame:
    """Per store and targeted product in the latest audit: target, facings,
    ``min(facings/target, 1)`` (``PRODUCT_COMPLIANCE_COLUMNS``)."""
    return _compliance_rows(_PRODUCT_LEVEL, url, scope, as_of)


# --------------------------------------------------------------------------- CSV downloads

# Headers of the dashboards' CSV downloads, by report column; shares and rates become percent.
CSV_HEADERS: dict[str, str] = {
    "week_start": "week starting",
    "store": "store",
    "region": "region",
    "brand": "brand",
    "manufacturer": "manufacturer",
    "is_own": "brand type",
    "product": "product",
    "gtin": "EAN/GTIN",
    "group": "group",
    "status": "status",
    "rank": "rank",
    "created_at": "audited at",
    "audited_at": "latest audit",
    "user_name": "merchandiser",
    "source": "source",
    "product_count": "all product facings",
    "facings": "facings",
    "expected_facings": "target facings",
    "linear_px": "width (px)",
    "share_facings": "share by facings (%)",
    "share_linear": "share by width (%)",
    "share_of_brand": "share of brand facings (%)",
    "audits": "audits",
    "images": "images",
    "since": "since",
    "audits_in_row": "audits in a row",
    "targeted_brands": "brands with a target",
    "brands_on_shelf": "targeted brands on the shelf",
    "availability": "on-shelf availability (%)",
    "planogram_compliance": "planogram compliance (%)",
    "compliance": "planogram compliance (%)",
    "stockouts": "stockouts",
    "below_target": "below target",
    "gap_count": "gaps",
    "gap_share_width": "gap share of shelf width (%)",
    "shelf_width_px": "shelf width (px)",
}
_PERCENT = {
    "share_facings",
    "share_linear",
    "share_of_brand",
    "availability",
    "planogram_compliance",
    "compliance",
    "gap_share_width",
}
_WHOLE = {"linear_px", "shelf_width_px"}


def for_csv(df: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """A report as the CSV a person downloads: readable headers (``CSV_HEADERS``), shares in
    percent with one decimal, pixel widths whole, times to the minute, own brands and
    competitors in words; internal ids and colour codes left out. ``columns`` picks (and
    orders) the report columns to write; by default every one with a header.

    Example:
        >>> print(for_csv(pd.DataFrame({"brand_id": [3], "brand": ["Kapku"], "is_own": [True],
        ...                             "color_hex": ["#1f77b4"], "share_facings": [0.12345]})))
        brand,brand type,share by facings (%)
        Kapku,own,12.3
        <BLANKLINE>
    """
    keep = [c for c in (df.columns if columns is None else columns) if c in CSV_HEADERS]
    out = df[keep].copy()
    for column in keep:
        values = out[column]
        if column in _PERCENT:
            out[column] = (pd.to_numeric(values, errors="coerce") * 100).round(1)
        elif column in _WHOLE:
            out[column] = pd.to_numeric(values, errors="coerce").round().astype("Int64")
        elif column == "is_own":
            out[column] = values.map({True: "own", False: "competitor"})
        elif pd.api.types.is_datetime64_any_dtype(values):
            out[column] = values.dt.strftime("%Y-%m-%d %H:%M")
    return out.rename(columns=CSV_HEADERS).to_csv(index=False, lineterminator="\n")
