"""The catalogue as CSV files: stores, brands and planogram targets (of brands and of products),
imported and exported.

A chain's 1,000 stores are not typed in by hand: a spreadsheet saved as CSV is imported in one
transaction, every line checked first (a fault names the file, line and column; nothing is
written then). Rows are matched by name, regardless of letter case: a new name is added, a known
one updated, the name of a deleted store or brand brings it back. Exports write the same columns,
so an export edited in a spreadsheet imports again.

| kind | columns (the first is required, the others optional) |
|---|---|
| ``stores`` | ``name``, ``region``, ``address`` |
| ``brands`` | ``name``, ``manufacturer``, ``type`` (``own`` or ``competitor``), ``colour`` (``#1f77b4``) |
| ``planogram`` | ``store``, ``brand``, ``product``, ``target`` (all but ``product`` required) |

A planogram row is a store's target (expected facings; 0 removes the target) for a brand or,
when its ``product`` names one of the brand's products (SKUs), for that product. Products are
added on the Catalogue page; a file without the ``product`` column holds brand targets only.

Commas, semicolons or tabs separate the columns (spreadsheets save CSV with the list separator of
their language), the text is UTF-8 (a byte-order mark is fine), headers are matched regardless of
case. The project ships samples in ``data/catalogue/``.

Example:
    >>> result = import_csv("stores", "name,region\\nHarbour Foods,North\\n")  # doctest: +SKIP
    >>> result.message()  # doctest: +SKIP
    'stores: 1 added, 0 updated, 0 unchanged.'
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import sqlalchemy as sa

from skuaudit.catalogue import _check_colour, _clean_name, _next_colour, parse_target
from skuaudit.errors import UserError
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope

KINDS: tuple[str, ...] = ("stores", "brands", "planogram")
COLUMNS: dict[str, tuple[str, ...]] = {
    "stores": ("name", "region", "address"),
    "brands": ("name", "manufacturer", "type", "colour"),
    "planogram": ("store", "brand", "product", "target"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "stores": ("name",),
    "brands": ("name",),
    "planogram": ("store", "brand", "target"),
}
BRAND_TYPES: dict[str, bool] = {"own": True, "competitor": False}
MAX_ROWS = 200_000


@dataclass(frozen=True)
class ImportResult:
    """What an import did: row counts by outcome."""

    kind: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    restored: int = 0
    removed: int = 0

    def message(self) -> str:
        """E.g. ``"stores: 3 added, 2 updated, 995 unchanged."``"""
        parts = [f"{self.added} added", f"{self.updated} updated", f"{self.unchanged} unchanged"]
        if self.restored:
            parts.append(f"{self.restored} deleted one(s) brought back")
        if self.removed:
            parts.append(f"{self.removed} target(s) removed (0)")
        return f"{self.kind}: {', '.join(parts)}."


@dataclass
class _Counts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    restored: int = 0
    removed: int = 0
    seen: dict[str, int] = field(default_factory=dict)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UserError(f"unknown catalogue file kind {kind!r}; choose one of {', '.join(KINDS)}")


def read_rows(kind: str, data: str | bytes, file_name: str = "") -> list[tuple[int, dict]]:
    """Parse a CSV file of ``kind``: ``[(line number, {column: stripped text}), ...]``.

    Raises:
        UserError: not UTF-8 text, no header, a missing required column or an unknown one, too
            many rows. The message names ``file_name`` (default: the kind).
    """
    _check_kind(kind)
    where = file_name or f"{kind}.csv"
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UserError(
                f"{where}: not UTF-8 text (byte {exc.start}); save it as 'CSV UTF-8'"
            ) from None
    data = data.removeprefix("\ufeff")
    first_line = data.split("\n", 1)[0]
    if not first_line.strip():
        raise UserError(
            f"{where}: no header line; the first line names the columns: {', '.join(COLUMNS[kind])}"
        )
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.reader(io.StringIO(data, newline=""), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader)]
    unknown = [h for h in header if h not in COLUMNS[kind]]
    if unknown:
        raise UserError(
            f"{where} line 1: unknown column(s) {', '.join(repr(h) for h in unknown)}; a {kind} "
            f"file has the columns {', '.join(COLUMNS[kind])}"
        )
    missing = [c for c in REQUIRED[kind] if c not in header]
    if missing:
        raise UserError(
            f"{where} line 1: the column(s) {', '.join(missing)} are missing; a {kind} file has "
            f"the columns {', '.join(COLUMNS[kind])}"
        )
    rows = []
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(header):
            raise UserError(
                f"{where} line {line}: {len(values)} values for {len(header)} columns (a "
                f"separator inside a name? put such a name in double quotes)"
            )
        rows.append((line, {h: v.strip() for h, v in zip(header, values, strict=False)}))
        if len(rows) > MAX_ROWS:
            raise UserError(f"{where}: more than {MAX_ROWS:,} rows; split the file")
    return rows


def import_csv(
    kind: str, data: str | bytes, *, file_name: str = "", url: str | None = None
) -> ImportResult:
    """Import a CSV file of ``kind`` (``KINDS``) in one transaction; see the module docstring.

    Args:
        kind: ``stores``, ``brands`` or ``planogram``.
        data: the file's text or bytes.
        file_name: how messages name the file (the name the user gave, not a server path).
        url: database URL.

    Raises:
        UserError: any fault in the file, with its line; nothing is written then.
    """
    rows = read_rows(kind, data, file_name)
    where = file_name or f"{kind}.csv"
    importer = {"stores": _import_stores, "brands": _import_brands, "planogram": _import_targets}
    with session_scope(url) as s:
        counts = importer[kind](s, rows, where)
    return ImportResult(
        kind, counts.added, counts.updated, counts.unchanged, counts.restored, counts.removed
    )


def _first_time(counts: _Counts, where: str, line: int, what: str, key: str) -> None:
    if key.lower() in counts.seen:
        raise UserError(
            f"{where} line {line}: {what} {key!r} is already on line {counts.seen[key.lower()]}"
        )
    counts.seen[key.lower()] = line


def _by_name(s, model) -> dict[str, object]:
    return {row.name.lower(): row for row in s.scalars(sa.select(model))}


def _upsert(s, model, existing: dict, name: str, wanted: dict, counts: _Counts) -> None:
    """Add ``name`` with ``wanted``, bring a deleted one back with them, or update what differs."""
    row = existing.get(name.lower())
    if row is None:
        s.add(model(name=name, **wanted))
        counts.added += 1
        return
    if row.deleted_at is None and all(getattr(row, k) == v for k, v in wanted.items()):
        counts.unchanged += 1
        return
    if row.deleted_at is not None:
        counts.restored += 1
    else:
        counts.updated += 1
    row.deleted_at = None
    for key, value in wanted.items():
        setattr(row, key, value)


def _name(row: dict, what: str, where: str, line: int) -> str:
    try:
        return _clean_name(row.get("name", ""), what)
    except UserError as exc:
        raise UserError(f"{where} line {line}: {exc}") from None


def _import_stores(s, rows: list[tuple[int, dict]], where: str) -> _Counts:
    counts = _Counts()
    existing = _by_name(s, m.Store)
    for line, row in rows:
        name = _name(row, "store", where, line)
        _first_time(counts, where, line, "store", name)
        wanted = {k: row[k] for k in ("region", "address") if k in row}
        if name.lower() not in existing:
            wanted = {"region": "", "address": "", **wanted}
        _upsert(s, m.Store, existing, name, wanted, counts)
    return counts


def _brand_values(row: dict, where: str, line: int) -> dict:
    values = {}
    if "manufacturer" in row:
        values["manufacturer"] = row["manufacturer"]
    if row.get("type"):
        kind = row["type"].lower()
        if kind not in BRAND_TYPES:
            raise UserError(
                f"{where} line {line}: type must be own or competitor, got {row['type']!r}"
            )
        values["is_own"] = BRAND_TYPES[kind]
    if row.get("colour"):
        try:
            values["color_hex"] = _check_colour(row["colour"])
        except UserError as exc:
            raise UserError(f"{where} line {line}: {exc}") from None
    return values


def _import_brands(s, rows: list[tuple[int, dict]], where: str) -> _Counts:
    counts = _Counts()
    existing = _by_name(s, m.Brand)
    colours = [b.color_hex for b in existing.values() if b.deleted_at is None]
    for line, row in rows:
        name = _name(row, "brand", where, line)
        _first_time(counts, where, line, "brand", name)
        wanted = _brand_values(row, where, line)
        brand = existing.get(name.lower())
        if brand is None or brand.deleted_at is not None:
            wanted.setdefault("color_hex", _next_colour(colours))
            colours.append(wanted["color_hex"])
        if brand is None:
            wanted = {"manufacturer": "", "is_own": False, **wanted}
        _upsert(s, m.Brand, existing, name, wanted, counts)
    return counts


def _import_targets(s, rows: list[tuple[int, dict]], where: str) -> _Counts:
    counts = _Counts()
    stores = {k: v for k, v in _by_name(s, m.Store).items() if v.deleted_at is None}
    brands = {k: v for k, v in _by_name(s, m.Brand).items() if v.deleted_at is None}
    products = {
        (p.brand_id, p.name.lower()): p
        for p in s.scalars(
            sa.select(m.Product).where(m.Product.brand_id.in_([b.id for b in brands.values()]))
        )
    }
    brand_targets = {(t.store_id, t.brand_id): t for t in s.scalars(sa.select(m.PlanogramTarget))}
    product_targets = {(t.store_id, t.product_id): t for t in s.scalars(sa.select(m.ProductTarget))}
    for line, row in rows:
        store = stores.get(row.get("store", "").lower())
        brand = brands.get(row.get("brand", "").lower())
        if store is None:
            raise UserError(
                f"{where} line {line}: no store named {row.get('store', '')!r} in the catalogue "
                "(import the stores first)"
            )
        if brand is None:
            raise UserError(
                f"{where} line {line}: no brand named {row.get('brand', '')!r} in the catalogue "
                "(import the brands first)"
            )
        product_name = row.get("product", "")
        if product_name:
            product = products.get((brand.id, product_name.lower()))
            if product is None:
                raise UserError(
                    f"{where} line {line}: brand {brand.name} has no product named "
                    f"{product_name!r} (add it on the Catalogue page first)"
                )
            item, what = f"{brand.name} / {product.name}", product.name
            key, existing = (store.id, product.id), product_targets
            new = {"product_id": product.id}
        else:
            item, what = brand.name, brand.name
            key, existing = (store.id, brand.id), brand_targets
            new = {"brand_id": brand.id}
        _first_time(counts, where, line, "the pair", f"{store.name} / {item}")
        try:
            target = parse_target(row.get("target", ""), what)
        except UserError as exc:
            raise UserError(f"{where} line {line}: {exc}") from None
        current = existing.get(key)
        table = m.ProductTarget if product_name else m.PlanogramTarget
        if current is None and target > 0:
            s.add(table(store_id=store.id, expected_facings=target, **new))
            counts.added += 1
        elif current is not None and target == 0:
            s.delete(current)
            counts.removed += 1
        elif current is not None and current.expected_facings != target:
            current.expected_facings = target
            counts.updated += 1
        else:
            counts.unchanged += 1
    return counts


def export_csv(kind: str, url: str | None = None) -> str:
    """The catalogue's ``kind`` as CSV text (deleted stores and brands left out), sorted by name,
    with the columns ``import_csv`` reads."""
    _check_kind(kind)
    with session_scope(url) as s:
        if kind == "stores":
            rows = s.execute(
                sa.select(m.Store.name, m.Store.region, m.Store.address)
                .where(m.Store.deleted_at.is_(None))
                .order_by(m.Store.name)
            ).all()
        elif kind == "brands":
            rows = [
                (name, manufacturer, "own" if is_own else "competitor", colour)
                for name, manufacturer, is_own, colour in s.execute(
                    sa.select(m.Brand.name, m.Brand.manufacturer, m.Brand.is_own, m.Brand.color_hex)
                    .where(m.Brand.deleted_at.is_(None))
                    .order_by(m.Brand.name)
                )
            ]
        else:
            brand_rows = s.execute(
                sa.select(
                    m.Store.name, m.Brand.name, sa.literal(""), m.PlanogramTarget.expected_facings
                )
                .join(m.Store, m.Store.id == m.PlanogramTarget.store_id)
                .join(m.Brand, m.Brand.id == m.PlanogramTarget.brand_id)
                .where(m.Store.deleted_at.is_(None), m.Brand.deleted_at.is_(None))
            ).all()
            product_rows = s.execute(
                sa.select(
                    m.Store.name, m.Brand.name, m.Product.name, m.ProductTarget.expected_facings
                )
                .join(m.Store, m.Store.id == m.ProductTarget.store_id)
                .join(m.Product, m.Product.id == m.ProductTarget.product_id)
                .join(m.Brand, m.Brand.id == m.Product.brand_id)
                .where(m.Store.deleted_at.is_(None), m.Brand.deleted_at.is_(None))
            ).all()
            # a store's brand target first, then its products'
            rows = sorted([*brand_rows, *product_rows], key=lambda r: (r[0], r[1], r[2]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS[kind])
    writer.writerows(rows)
    return out.getvalue()
