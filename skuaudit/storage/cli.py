"""``skuaudit db upgrade|check|remove-demo``."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from skuaudit.storage.db import DatabaseError, check_schema, upgrade_database


def db_url_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A parent parser with ``--db-url`` for subcommands; ``parser`` accepts it too, so the option
    reads naturally before or after the action (``skuaudit user add ann --db-url ...``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db-url",
        default=argparse.SUPPRESS,
        help="database URL (default: SKUAUDIT_DB_URL or data/skuaudit.db)",
    )
    parser.add_argument("--db-url", default=None, help=argparse.SUPPRESS)
    return common


def db_subcommands(parser: argparse.ArgumentParser) -> Callable[..., argparse.ArgumentParser]:
    """The subcommands of ``parser`` (``args.action`` names the one given), each taking
    ``--db-url`` (``db_url_option``): returns ``subcommand(name, help=...)``, which adds one and
    returns its parser."""
    common = db_url_option(parser)
    sub = parser.add_subparsers(dest="action", required=True)
    return functools.partial(sub.add_parser, parents=[common])


def remove_demo(url: str | None = None) -> dict[str, int]:
    """Delete every row marked as demo; returns the number of rows removed per table."""
    import sqlalchemy as sa

    from skuaudit.storage import models as m
    from skuaudit.storage.db import session_scope

    removed: dict[str, int] = {}
    with session_scope(url) as s:
        # children first, so it also works where foreign-key cascades are off
        demo_audits = sa.select(m.Audit.id).where(m.Audit.is_demo.is_(True))
        for child in (m.Detection, m.BrandMetric, m.ProductMetric, m.AuditImage):
            res = s.execute(sa.delete(child).where(child.audit_id.in_(demo_audits)))
            removed[child.__tablename__] = res.rowcount or 0
        for table in (m.Audit, m.PlanogramTarget, m.ProductTarget, m.ReferenceImage):
            res = s.execute(sa.delete(table).where(table.is_demo.is_(True)))
            removed[table.__tablename__] = res.rowcount or 0
        for table in (m.Product, m.Brand, m.Store):
            res = s.execute(sa.delete(table).where(table.is_demo.is_(True)))
            removed[table.__tablename__] = res.rowcount or 0
    return removed


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="skuaudit db", description="Database maintenance.")
    subcommand = db_subcommands(parser)
    subcommand("upgrade", help="apply migrations (creates the schema on a new database)")
    subcommand("check", help="exit 0 if the schema is current")
    subcommand("remove-demo", help="delete all demo rows")
    args = parser.parse_args(argv)
    try:
        if args.action == "upgrade":
            print(f"database at schema revision {upgrade_database(args.db_url)}")
        elif args.action == "check":
            check_schema(args.db_url)
            print("database schema is current")
        else:
            removed = remove_demo(args.db_url)
            print("removed demo rows: " + ", ".join(f"{k}={v}" for k, v in removed.items()))
    except DatabaseError as exc:
        print(f"skuaudit db: {exc}", file=sys.stderr)
        return 2
    return 0
