from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import sqlalchemy as sa

from skuaudit.cli import COMMANDS, main
from skuaudit.demo import seed_demo
from skuaudit.storage import models as m
from skuaudit.storage.cli import remove_demo
from skuaudit.storage.db import session_scope


def _count(url, table):
    with session_scope(url) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(table))


def test_seed_demo_creates_schema_fills_once_and_is_removable(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"  # not migrated: seed-demo must create the schema
    first = seed_demo(url, weeks=3)
    assert first.seeded and first.stores == 6 and first.audits == 18
    assert first.products == 16 and _count(url, m.Product) == 16
    assert _count(url, m.Audit) == 18
    assert _count(url, m.BrandMetric) == 18 * first.brands
    assert _count(url, m.ProductTarget) == 6 * 16
    assert not seed_demo(url).seeded  # a database with data is left alone
    with session_scope(url) as s:
        s.add(m.Store(name="Real store"))
    removed = remove_demo(url)
    assert removed["audits"] == 18 and removed["products"] == 16
    assert _count(url, m.Audit) == 0 and _count(url, m.Detection) == 0
    assert _count(url, m.ProductMetric) == 0 and _count(url, m.ReferenceImage) == 0
    with session_scope(url) as s:
        assert s.scalars(sa.select(m.Store.name)).all() == ["Real store"]


def test_demo_audits_are_weekly_and_end_yesterday(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    seed_demo(url, weeks=4)
    with session_scope(url) as s:
        dates = sorted(set(s.scalars(sa.select(m.Audit.created_at)).all()))
    today = m.utcnow().date()
    assert [d.date() for d in dates] == [today - timedelta(days=1 + 7 * k) for k in (3, 2, 1, 0)]


def test_demo_shares_sum_to_one_per_audit(demo_db_url):
    with session_scope(demo_db_url) as s:
        sums = s.execute(
            sa.select(
                sa.func.sum(m.BrandMetric.share_facings), sa.func.sum(m.BrandMetric.facings)
            ).group_by(m.BrandMetric.audit_id)
        ).all()
    for share_sum, facings in sums:
        if facings:
            assert abs(share_sum - 1.0) < 1e-6


def test_demo_products_sum_to_their_brands_and_show_stockouts(demo_db_url):
    """Every demo audit's brand rows are the sums of its product rows, and the product level has
    something to show: several products per brand, products out of stock."""
    from skuaudit import reports

    with session_scope(demo_db_url) as s:
        per_product = s.execute(
            sa.select(
                m.ProductMetric.audit_id,
                m.ProductMetric.brand_id,
                sa.func.sum(m.ProductMetric.facings),
                sa.func.sum(m.ProductMetric.linear_px),
            ).group_by(m.ProductMetric.audit_id, m.ProductMetric.brand_id)
        ).all()
        per_brand = s.execute(
            sa.select(
                m.BrandMetric.audit_id,
                m.BrandMetric.brand_id,
                m.BrandMetric.facings,
                m.BrandMetric.linear_px,
            )
        ).all()
        names = s.execute(
            sa.select(m.Brand.name, sa.func.count(m.Product.id))
            .join(m.Product, m.Product.brand_id == m.Brand.id)
            .group_by(m.Brand.name)
        ).all()
    assert {(a, b): (f, round(px, 6)) for a, b, f, px in per_product} == {
        (a, b): (f, round(px, 6)) for a, b, f, px in per_brand
    }
    assert sorted(n for _, n in names) == [1, 3, 3, 3, 3, 3]
    stockouts = reports.current_product_stockouts(demo_db_url)
    assert (stockouts["status"] == "stockout").any()


def test_cli_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("seed-demo", "detect", "audit", "train", "evaluate", "export"):
        assert name in COMMANDS and name in out
    assert main(["nope"]) == 2


def test_cli_db_error_is_one_line_not_traceback(tmp_path):
    env_url = "sqlite:////no/such/dir/x.db"
    out = subprocess.run(
        [sys.executable, "-m", "skuaudit", "seed-demo", "--db-url", env_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "does not exist" in out.stderr


def test_default_database_folder_exists_in_a_fresh_checkout(monkeypatch):
    from pathlib import Path

    from skuaudit.config import get_settings

    monkeypatch.delenv("SKUAUDIT_DB_URL", raising=False)
    url = get_settings().db_url
    assert url.startswith("sqlite:///")
    folder = Path(url.removeprefix("sqlite:///")).parent
    assert (
        folder.is_dir() and (folder / "README.md").is_file()
    )  # tracked, so make run can create the DB
