"""Time every dashboard query on a chain-sized SQLite database.

Generates (unless it exists) 1,000 stores x 52 weekly audits x ~150 detections (~8M detection
rows, ~0.7M brand metric rows), then prints the median time of each ``skuaudit.reports`` query
over a few runs, and two baselines measured in the same run: the share-of-shelf figure computed
with pandas over every detection row (what a dashboard without stored metrics would do), and each
query with the dashboard indexes of migration 0002 dropped.

    .venv/bin/python bench/bench_dashboards.py                      # full size, /tmp/...
    .venv/bin/python bench/bench_dashboards.py --stores 50 --weeks 8   # quick
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from _timing import median_ms

from skuaudit import reports
from skuaudit.storage.db import get_engine, upgrade_database
from skuaudit.storage.models import Base

N_BRANDS = 12
N_OWN_BRANDS = 4
FIRST_WEEK = datetime(2026, 1, 5, 9, 0)
BOX_WIDTH_RANGE_PX = (40.0, 110.0)
GAP_WIDTH_PX = 70.0


def _dashboard_indexes() -> list[tuple[str, str, list[str]]]:
    """(table, index name, columns) of the indexes migration 0002 adds, read from the models."""
    found = []
    for table in Base.metadata.sorted_tables:
        for index in table.indexes:
            if index.name and index.name.startswith("ix_dash_"):
                found.append((table.name, index.name, [c.name for c in index.columns]))
    return found


def generate(path: Path, n_stores: int, n_weeks: int, seed: int = 0) -> None:
    """Write the benchmark database: schema via the migrations, rows via bulk executemany."""
    url = f"sqlite:///{path}"
    upgrade_database(url)
    get_engine(url).dispose()
    rng = np.random.default_rng(seed)
    con = sqlite3.connect(path)
    # Bulk load only: no journal and no fsync; the file is rebuilt if the run is interrupted.
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-262144")
    brand_ids = np.arange(1, N_BRANDS + 1)
    con.executemany(
        "INSERT INTO brands (id, name, manufacturer, is_own, color_hex, is_demo, created_at) "
        "VALUES (?, ?, ?, ?, ?, 0, ?)",
        [
            (
                int(b),
                f"Brand {b:02d}",
                "Us" if b <= N_OWN_BRANDS else f"Rival {b % 3}",
                int(b <= N_OWN_BRANDS),
                "#888888",
                str(FIRST_WEEK),
            )
            for b in brand_ids
        ],
    )
    con.executemany(
        "INSERT INTO stores (id, name, region, address, is_demo, created_at) "
        "VALUES (?, ?, ?, '', 0, ?)",
        [
            (s, f"Store {s:04d}", f"Region {s % 10}", str(FIRST_WEEK))
            for s in range(1, n_stores + 1)
        ],
    )
    # Each store targets ~10 of the brands with 8-22 facings (0 = not in its planogram).
    targets = rng.integers(8, 23, size=(n_stores, N_BRANDS)) * (
        rng.random((n_stores, N_BRANDS)) < 0.83
    )
    con.executemany(
        "INSERT INTO planogram_targets (store_id, brand_id, expected_facings, is_demo) "
        "VALUES (?, ?, ?, 0)",
        [(s + 1, b + 1, int(t)) for (s, b), t in np.ndenumerate(targets) if t],
    )
    audit_id = 0
    for week in range(n_weeks):
        ids = np.arange(audit_id + 1, audit_id + n_stores + 1)
        audit_id += n_stores
        _insert_week(con, rng, week, ids, targets)
    con.commit()
    con.execute("PRAGMA journal_mode=WAL")
    con.close()


def _insert_week(
    con: sqlite3.Connection,
    rng: np.random.Generator,
    week: int,
    audit_ids: np.ndarray,
    targets: np.ndarray,
) -> None:
    """One audit per store for ``week``: detections, brand metrics and the audit rows."""
    n_stores = len(audit_ids)
    stockout = (rng.random(targets.shape) < 0.03) & (targets > 0)
    counts = np.rint(targets * rng.uniform(0.7, 1.2, targets.shape)).astype(np.int64)
    counts[stockout] = 0
    unknown = rng.integers(0, 10, n_stores)
    counts_all = np.column_stack([counts, unknown])  # last column: products of no known brand
    gaps = rng.integers(0, 8, n_stores)

    per_audit = counts_all.sum(axis=1)
    det_audit = np.repeat(audit_ids, per_audit)
    det_brand_col = np.repeat(np.tile(np.arange(N_BRANDS + 1), n_stores), counts_all.ravel())
    n_det = len(det_audit)
    widths = rng.uniform(*BOX_WIDTH_RANGE_PX, n_det)
    position = np.arange(n_det) - np.repeat(np.cumsum(per_audit) - per_audit, per_audit)
    row = position // 12
    x1 = (position % 12) * 115.0
    y1 = row * 200.0
    brand = np.where(det_brand_col < N_BRANDS, det_brand_col + 1, -1)
    brand_list = [None if b < 0 else b for b in brand.tolist()]
    con.executemany(
        "INSERT INTO detections (audit_id, image_index, x1, y1, x2, y2, score, class_name, "
        "brand_id, brand_score, shelf_row, corrected) VALUES (?, 0, ?, ?, ?, ?, 0.9, 'product', "
        "?, 0.8, ?, 0)",
        zip(
            det_audit.tolist(),
            x1.tolist(),
            y1.tolist(),
            (x1 + widths).tolist(),
            (y1 + 180.0).tolist(),
            brand_list,
            row.tolist(),
            strict=True,
        ),
    )
    gap_audit = np.repeat(audit_ids, gaps)
    con.executemany(
        "INSERT INTO detections (audit_id, image_index, x1, y1, x2, y2, score, class_name, "
        "brand_id, brand_score, shelf_row, corrected) VALUES (?, 0, 0, 0, ?, 180, 0.8, 'gap', "
        "NULL, NULL, NULL, 0)",
        zip(gap_audit.tolist(), [GAP_WIDTH_PX] * len(gap_audit), strict=True),
    )

    pair = np.repeat(np.arange(n_stores), per_audit) * (N_BRANDS + 1) + det_brand_col
    linear = np.bincount(pair, weights=widths, minlength=n_stores * (N_BRANDS + 1))
    linear = linear.reshape(n_stores, N_BRANDS + 1)
    linear_total = linear.sum(axis=1)
    total = np.maximum(per_audit, 1)
    gap_width = gaps * GAP_WIDTH_PX
    # Stored exactly as SQLAlchemy's DateTime writes them on SQLite.
    created = [
        (FIRST_WEEK + timedelta(weeks=week, minutes=s)).strftime("%Y-%m-%d %H:%M:%S.%f")
        for s in range(n_stores)
    ]
    con.executemany(
        "INSERT INTO audits (id, store_id, user_name, created_at, source, model_name, "
        "product_count, gap_count, gap_share_width, shelf_width_px, notes, is_demo) "
        "VALUES (?, ?, 'bench', ?, 'photo', 'bench', ?, ?, ?, ?, '', 0)",
        zip(
            audit_ids.tolist(),
            range(1, n_stores + 1),
            created,
            per_audit.tolist(),
            gaps.tolist(),
            (gap_width / (linear_total + gap_width)).tolist(),
            (linear_total + gap_width).tolist(),
            strict=True,
        ),
    )
    metrics = []
    for s in range(n_stores):
        for b in range(N_BRANDS + 1):
            target = int(targets[s, b]) if b < N_BRANDS else 0
            facings = int(counts_all[s, b])
            if b < N_BRANDS and not target and not facings:
                continue
            metrics.append(
                (
                    int(audit_ids[s]),
                    b + 1 if b < N_BRANDS else None,
                    facings,
                    facings / total[s],
                    float(linear[s, b]),
                    float(linear[s, b] / linear_total[s]),
                    target or None,
                    int(target > 0 and facings == 0),
                    int(facings < target),
                )
            )
    con.executemany(
        "INSERT INTO brand_metrics (audit_id, brand_id, facings, share_facings, linear_px, "
        "share_linear, expected_facings, is_stockout, below_target) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        metrics,
    )


def _queries(url: str, first: date, last: date) -> dict[str, Callable[[], object]]:
    one_region = reports.Scope("Region 3", region="Region 3")
    return {
        "latest_audit_id": lambda: reports.latest_audit_id(url),
        "share_of_shelf (all stores, all weeks)": lambda: reports.share_of_shelf(url, first, last),
        "share_of_shelf (one region, 12 weeks)": lambda: reports.share_of_shelf(
            url, last - timedelta(weeks=12), last, one_region
        ),
        "share_trend (all stores)": lambda: reports.share_trend(url, first, last),
        "own_vs_competitors (all stores)": lambda: reports.own_vs_competitors(url, first, last),
        "store_brand_heatmap (all stores)": lambda: reports.store_brand_heatmap(url, first, last),
        "audits_behind (brand 1, one region)": lambda: reports.audits_behind(
            url, 1, first, last, one_region
        ),
        "current_stockouts (all stores)": lambda: reports.current_stockouts(url),
        "stockout_durations (all stores)": lambda: reports.stockout_durations(url),
        "availability_by_store (all stores)": lambda: reports.availability_by_store(url),
        "gap_share_by_store (all stores)": lambda: reports.gap_share_by_store(url),
        "planogram_compliance (all stores)": lambda: reports.planogram_compliance(url),
    }


def _pandas_share_of_shelf(url: str, first: date, last: date) -> pd.DataFrame:
    """Baseline: the same share figure from every product detection, grouped in pandas."""
    sql = (
        "SELECT d.brand_id, d.x2 - d.x1 AS width_px FROM detections d "
        "JOIN audits a ON a.id = d.audit_id "
        "WHERE d.class_name = 'product' AND a.created_at >= ? AND a.created_at < ?"
    )
    lo, hi = (
        datetime.combine(first, datetime.min.time()),
        datetime.combine(last + timedelta(days=1), datetime.min.time()),
    )
    with get_engine(url).connect() as conn:
        rows = pd.read_sql_query(sql, conn.connection.driver_connection, params=(lo, hi))
    out = rows.groupby("brand_id", dropna=False).agg(
        facings=("width_px", "size"), linear_px=("width_px", "sum")
    )
    out["share_facings"] = out["facings"] / out["facings"].sum()
    out["share_linear"] = out["linear_px"] / out["linear_px"].sum()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stores", type=int, default=1000)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help="database file (default /tmp/skuaudit_bench_<stores>x<weeks>.db)",
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per query (median)")
    args = parser.parse_args(argv)
    path = args.db or Path(f"/tmp/skuaudit_bench_{args.stores}x{args.weeks}.db")
    if not path.exists():
        t0 = time.perf_counter()
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        generate(partial, args.stores, args.weeks)
        partial.rename(path)
        print(f"generated {path} in {time.perf_counter() - t0:.0f} s")
    url = f"sqlite:///{path}"
    upgrade_database(url)
    with get_engine(url).connect() as conn:
        counts = {
            t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar()
            for t in ("stores", "audits", "detections", "brand_metrics")
        }
    print(
        ", ".join(f"{n:,} {t}" for t, n in counts.items())
        + f"; {path.stat().st_size / 2**20:,.0f} MiB; load average {os.getloadavg()[0]:.1f}"
    )
    first, last = reports.audit_date_range(url)
    queries = _queries(url, first, last)

    timed = {name: median_ms(fn, args.runs) for name, fn in queries.items()}
    indexes = _dashboard_indexes()
    engine = get_engine(url)
    with engine.begin() as conn:
        for _table, name, _cols in indexes:
            conn.exec_driver_sql(f"DROP INDEX {name}")
    try:
        unindexed = {name: median_ms(fn, max(1, args.runs // 2)) for name, fn in queries.items()}
    finally:
        with engine.begin() as conn:
            for table, name, cols in indexes:
                conn.exec_driver_sql(f"CREATE INDEX {name} ON {table} ({', '.join(cols)})")
    t0 = time.perf_counter()
    _pandas_share_of_shelf(url, first, last)
    pandas_ms = (time.perf_counter() - t0) * 1000

    width = max(map(len, timed))
    print(f"{'query':<{width}}  median ms  without 0002 indexes  ratio")
    for name, ms in timed.items():
        print(f"{name:<{width}}  {ms:9.1f}  {unindexed[name]:20.1f}  {unindexed[name] / ms:5.1f}x")
    share_ms = timed["share_of_shelf (all stores, all weeks)"]
    print(
        f"baseline: share of shelf with pandas over all detection rows: {pandas_ms:,.0f} ms "
        f"({pandas_ms / share_ms:,.0f}x the stored-metrics query)"
    )
    slow = [n for n, ms in timed.items() if ms >= 1000]
    print("all queries under 1 s" if not slow else f"over 1 s: {', '.join(slow)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
