"""``skuaudit catalogue``: stores, brands and planogram targets from the command line.

    skuaudit catalogue import stores data/catalogue/stores.csv
    skuaudit catalogue export brands -o brands.csv
    skuaudit catalogue add-store "Harbour Foods" --region North
    skuaudit catalogue add-brand Sunvale --own
    skuaudit catalogue delete-store "Harbour Foods" --yes

Commands that write create the schema of a new, empty database first (as ``seed-demo`` does), so
a fresh installation can be filled from CSV files before the first audit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skuaudit.catalogue_csv import KINDS


def _parser() -> argparse.ArgumentParser:
    from skuaudit.storage.cli import db_subcommands

    parser = argparse.ArgumentParser(
        prog="skuaudit catalogue",
        description="Stores, brands and planogram targets: CSV import and export, add, delete.",
    )
    subcommand = db_subcommands(parser)
    p = subcommand("import", help="import a CSV file (one transaction; every line checked first)")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("file", type=Path, help="the CSV file (samples: data/catalogue/)")
    p = subcommand("export", help="write the catalogue as CSV")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("-o", "--out", type=Path, help="file to write (default: standard output)")
    p = subcommand("add-store", help="add a store")
    p.add_argument("name")
    p.add_argument("--region", default="")
    p.add_argument("--address", default="")
    p = subcommand("add-brand", help="add a brand")
    p.add_argument("name")
    p.add_argument("--manufacturer", default="")
    p.add_argument("--own", action="store_true", help="one of our own brands")
    p.add_argument("--colour", help="#rrggbb (default: the next free palette colour)")
    for kind in ("store", "brand"):
        p = subcommand(
            f"delete-{kind}",
            help=f"delete a {kind} (its audits keep their history); says what it affects",
        )
        p.add_argument("name")
        p.add_argument(
            "--yes", action="store_true", help="delete; without it, only say what it does"
        )
    return parser


def _id_by_name(kind: str, name: str, url: str | None) -> int:
    from skuaudit.errors import UserError
    from skuaudit.storage.queries import list_brands, list_stores

    rows = list_stores(url) if kind == "store" else list_brands(url)
    found = next((r.id for r in rows if r.name.lower() == name.strip().lower()), None)
    if found is None:
        raise UserError(f"no {kind} named {name!r} in the catalogue")
    return found


def cli_main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from skuaudit import catalogue, catalogue_csv
    from skuaudit.errors import UserError
    from skuaudit.storage.db import DatabaseError, upgrade_database

    url = args.db_url
    try:
        if args.action == "export":
            text = catalogue_csv.export_csv(args.kind, url)
            if args.out:
                args.out.write_text(text, encoding="utf-8")
                print(f"wrote {args.kind} to {args.out}", file=sys.stderr)
            else:
                sys.stdout.write(text)
            return 0
        upgrade_database(url)  # a new, empty database gets its schema
        if args.action == "import":
            try:
                data = args.file.read_bytes()
            except OSError as exc:
                raise UserError(f"{args.file}: cannot be read ({exc.strerror})") from None
            print(
                catalogue_csv.import_csv(
                    args.kind, data, file_name=str(args.file), url=url
                ).message()
            )
        elif args.action == "add-store":
            catalogue.add_store(args.name, args.region, args.address, url=url)
            print(f"store {args.name.strip()} added")
        elif args.action == "add-brand":
            catalogue.add_brand(args.name, args.manufacturer, args.own, args.colour, url=url)
            print(f"brand {args.name.strip()} added")
        else:
            kind = args.action.removeprefix("delete-")
            item_id = _id_by_name(kind, args.name, url)
            if not args.yes:
                impact = (
                    catalogue.store_deletion if kind == "store" else catalogue.brand_deletion
                )(item_id, url)
                print(f"{impact.message()}\nRun again with --yes to delete.")
                return 0
            delete = catalogue.delete_store if kind == "store" else catalogue.delete_brand
            print(delete(item_id, url).message(done=True))
    except (UserError, DatabaseError) as exc:
        print(f"skuaudit catalogue: {exc}", file=sys.stderr)
        return 2
    return 0
