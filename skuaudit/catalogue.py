"""Catalogue edits: stores, brands, their products (SKUs) and planogram targets, each checked
before one transaction.

Every function raises ``UserError`` with a message a person can act on (a duplicate name, a
negative target, a GTIN with a wrong check digit) and writes nothing in that case.

Targets exist per brand (``set_planogram``) and per product (``set_product_planogram``). A brand's
own target counts for the brand's figures; a brand without one is expected to show the sum of its
products' targets (``skuaudit.metrics``).

Deleting a store or a brand removes it from the catalogue (every list, picker, import and
export), with its planogram targets and, for a brand, its products with their reference images
and targets; audits keep their history. A store or brand no audit refers to is removed outright;
one that audits refer to keeps its row, marked ``deleted_at`` (a deleted brand's products stay
with it), so the dashboards still name it in past figures. Adding a store or brand with the name
of a deleted one brings that one back.

Example:
    >>> store_id = add_store("Harbour Foods", region="North")          # doctest: +SKIP
    >>> brand_id = add_brand("Sunvale", manufacturer="Our Company", is_own=True)  # doctest: +SKIP
    >>> product_id = add_product(brand_id, "Sunvale Orange 1 l", gtin="4006381333931")  # doctest: +SKIP
    >>> set_planogram(store_id, {brand_id: 6})                          # doctest: +SKIP
    >>> set_product_planogram(store_id, {product_id: 4})                # doctest: +SKIP
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from plotly.colors import qualitative

from skuaudit.errors import UserError
from skuaudit.metrics import UNKNOWN_NAME, UNKNOWN_PRODUCT_NAME
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope
from skuaudit.storage.models import utcnow

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
GTIN_LENGTHS = (8, 12, 13, 14)
# Names the review table uses for "not recognised": a product named so would read as one.
RESERVED_PRODUCT_NAMES = {UNKNOWN_NAME, UNKNOWN_PRODUCT_NAME}
# Default colours of new brands, in order: plotly's qualitative palettes without red and grey,
# which the audit pictures use for gaps and unrecognised products.
_RESERVED_COLOURS = {"#d62728", "#7f7f7f", "#fb0d0d", "#222a2a"}
BRAND_PALETTE: tuple[str, ...] = tuple(
    dict.fromkeys(
        c.lower()
        for c in (*qualitative.D3, *qualitative.Dark24)
        if c.lower() not in _RESERVED_COLOURS
    )
)


def _clean_name(name: str, what: str) -> str:
    name = (name or "").strip()
    if not name:
        raise UserError(f"a {what} needs a name")
    if len(name) > 200:
        raise UserError(f"{what} names are limited to 200 characters")
    return name


def _check_colour(color_hex: str) -> str:
    if not _HEX.match(color_hex or ""):
        raise UserError(f"colour must look like #1f77b4, got {color_hex!r}")
    return color_hex.lower()


def _named(s, model, name: str, except_id: int | None = None):
    """The row of ``model`` called ``name`` (any letter case), deleted or not, or ``None``."""
    query = sa.select(model).where(sa.func.lower(model.name) == name.lower())
    if except_id is not None:
        query = query.where(model.id != except_id)
    return s.scalars(query).first()


def _next_colour(used: list[str]) -> str:
    counts = {c: 0 for c in BRAND_PALETTE}
    for colour in used:
        if colour.lower() in counts:
            counts[colour.lower()] += 1
    return min(BRAND_PALETTE, key=lambda c: counts[c])  # first of the least used


def next_brand_colour(url: str | None = None) -> str:
    """The default colour of a new brand: the first ``BRAND_PALETTE`` colour no brand of the
    catalogue has (then the least used one), so brands are told apart on charts and photos."""
    with session_scope(url) as s:
        used = s.scalars(sa.select(m.Brand.color_hex).where(m.Brand.deleted_at.is_(None))).all()
    return _next_colour(list(used))


def add_store(name: str, region: str = "", address: str = "", url: str | None = None) -> int:
    """Create a store; returns its id. Names are unique regardless of letter case; the name of a
    deleted store brings that store back (with this region and address)."""
    name = _clean_name(name, "store")
    with session_scope(url) as s:
        store = _named(s, m.Store, name)
        if store is not None and store.deleted_at is None:
            raise UserError(f"a store named {name!r} already exists")
        if store is None:
            store = m.Store(name=name)
            s.add(store)
        store.region, store.address, store.deleted_at = region.strip(), address.strip(), None
        s.flush()
        return store.id


def add_brand(
    name: str,
    manufacturer: str = "",
    is_own: bool = False,
    color_hex: str | None = None,
    url: str | None = None,
) -> int:
    """Create a brand; returns its id. Names are unique regardless of letter case; the name of a
    deleted brand brings that brand back, with its products. ``color_hex`` ``None``:
    ``next_brand_colour``."""
    name = _clean_name(name, "brand")
    if color_hex is not None:
        color_hex = _check_colour(color_hex)
    with session_scope(url) as s:
        brand = _named(s, m.Brand, name)
        if brand is not None and brand.deleted_at is None:
            raise UserError(f"a brand named {name!r} already exists")
        if color_hex is None:
            used = s.scalars(sa.select(m.Brand.color_hex).where(m.Brand.deleted_at.is_(None)))
            color_hex = _next_colour(list(used))
        if brand is None:
            brand = m.Brand(name=name)
            s.add(brand)
        brand.manufacturer, brand.is_own = manufacturer.strip(), bool(is_own)
        brand.color_hex, brand.deleted_at = color_hex, None
        s.flush()
        return brand.id


def update_brand(
    brand_id: int,
    *,
    name: str,
    manufacturer: str,
    is_own: bool,
    color_hex: str,
    url: str | None = None,
) -> None:
    """Change a brand's name, manufacturer, own-brand flag and colour."""
    name = _clean_name(name, "brand")
    color_hex = _check_colour(color_hex)
    with session_scope(url) as s:
        brand = _live(s, m.Brand, brand_id, "brand")
        other = _named(s, m.Brand, name, except_id=brand.id)
        if other is not None:
            deleted = " (a deleted one, kept for the audits that counted it)"
            raise UserError(
                f"another brand is already named {name!r}"
                + (deleted if other.deleted_at is not None else "")
            )
        brand.name, brand.manufacturer = name, manufacturer.strip()
        brand.is_own, brand.color_hex = bool(is_own), color_hex


def parse_target(value: object, brand: str = "") -> int:
    """A planogram target as a non-negative whole number of facings, or ``UserError``."""
    where = f" for {brand}" if brand else ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(
            f"the target{where} must be a whole number of facings, got {value!r}"
        ) from None
    if number != int(number) or number < 0:
        raise UserError(f"the target{where} must be a whole number of facings >= 0, got {value!r}")
    return int(number)


def set_planogram(store_id: int, targets: dict[int, object], url: str | None = None) -> None:
    """Replace a store's targets for the given brands (0 removes the target) in one transaction.

    Raises:
        UserError: a target that is not a non-negative whole number, or an unknown store/brand.
    """
    _set_targets(m.PlanogramTarget, "brand_id", m.Brand, store_id, targets, url)


def _live_items(items) -> sa.Select:
    """(id, name) of the brands, or of the products, still in the catalogue (not deleted)."""
    if items is m.Brand:
        return sa.select(m.Brand.id, m.Brand.name).where(m.Brand.deleted_at.is_(None))
    return (
        sa.select(m.Product.id, m.Product.name)
        .join(m.Brand, m.Brand.id == m.Product.brand_id)
        .where(m.Brand.deleted_at.is_(None))
    )


def _live(s, model, row_id: int, kind: str):
    """The store or brand ``row_id``, unless it does not exist or was deleted."""
    row = s.get(model, int(row_id))
    if row is None or row.deleted_at is not None:
        raise UserError(f"{kind} {row_id} does not exist (was it deleted?)")
    return row


def _live_product(s, product_id: int) -> m.Product:
    """A product of a brand still in the catalogue (a deleted brand's products stay only for the
    audits that counted them)."""
    product = s.get(m.Product, int(product_id))
    if product is None or product.brand.deleted_at is not None:
        raise UserError(f"product {product_id} does not exist (was it deleted?)")
    return product


def _set_targets(table, key: str, items, store_id: int, targets: dict, url: str | None) -> None:
    """Replace the ``table`` rows (keyed by ``key``, an id of ``items``) of one store."""
    what = items.__tablename__.removesuffix("s")
    with session_scope(url) as s:
        store = s.get(m.Store, int(store_id))
        if store is None or store.deleted_at is not None:
            raise UserError(f"store {store_id} does not exist (was it deleted?)")
        names = dict(s.execute(_live_items(items)).all())
        clean = {}
        for item_id, value in targets.items():
            if int(item_id) not in names:
                raise UserError(f"{what} {item_id} does not exist (was it deleted?)")
            clean[int(item_id)] = parse_target(value, names[int(item_id)])
        existing = {
            getattr(t, key): t
            for t in s.scalars(sa.select(table).where(table.store_id == int(store_id)))
        }
        for item_id, target in clean.items():
            row = existing.get(item_id)
            if target == 0 and row is not None:
                s.delete(row)
            elif target > 0 and row is None:
                s.add(table(store_id=int(store_id), expected_facings=target, **{key: item_id}))
            elif row is not None:
                row.expected_facings = target


def gtin_check_digit(digits: str) -> int:
    """The GS1 check digit of a GTIN's first digits (weights 3, 1, 3, ... from the right).

    Example:
        >>> gtin_check_digit("400638133393")
        1
    """
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def normalise_gtin(code: object) -> str | None:
    """An EAN-8, UPC-A (12), EAN-13 or GTIN-14 code as its digits; ``None`` for an empty code.

    Spaces and hyphens are dropped. Raises ``UserError`` naming what is wrong: not digits, a
    length that no GTIN has, or a check digit that does not match (usually a typing error).

    Example:
        >>> normalise_gtin("4 006381 333931")
        '4006381333931'
    """
    if code is None:
        return None
    text = re.sub(r"[\s-]", "", str(code))
    if not text:
        return None
    if not text.isdigit():
        raise UserError(f"an EAN/GTIN has only digits, got {code!r}")
    if len(text) not in GTIN_LENGTHS:
        raise UserError(f"an EAN/GTIN has 8, 12, 13 or 14 digits, {code!r} has {len(text)}")
    expected = gtin_check_digit(text[:-1])
    if int(text[-1]) != expected:
        raise UserError(
            f"EAN/GTIN {text} has check digit {text[-1]}, but its other digits give {expected}: "
            "check the code for a typing error"
        )
    return text


def _gtin_taken(s, gtin: str, except_id: int | None = None) -> str | None:
    """The product already holding ``gtin`` (UPC-A 012345... and EAN-13 0012345... are one code),
    as "Brand / Product", or None."""
    rows = s.execute(
        sa.select(m.Product.id, m.Product.gtin, m.Product.name, m.Brand.name)
        .join(m.Brand, m.Brand.id == m.Product.brand_id)
        .where(m.Product.gtin.is_not(None))
    ).all()
    for product_id, other, name, brand in rows:
        if other.zfill(14) == gtin.zfill(14) and product_id != except_id:
            return f"{brand} / {name}"
    return None


def _clean_product_name(s, brand_id: int, name: str, except_id: int | None = None) -> str:
    name = _clean_name(name, "product")
    if name.lower() in RESERVED_PRODUCT_NAMES:
        raise UserError(f"{name!r} is how the audits name an unrecognised product; pick another")
    query = sa.select(m.Product.id).where(
        m.Product.brand_id == brand_id, sa.func.lower(m.Product.name) == name.lower()
    )
    if except_id is not None:
        query = query.where(m.Product.id != except_id)
    if s.scalar(query) is not None:
        raise UserError(f"this brand already has a product named {name!r}")
    return name


def add_product(
    brand_id: int,
    name: str,
    gtin: object = None,
    url: str | None = None,
    *,
    is_demo: bool = False,
) -> int:
    """Create a product (SKU) of a brand; returns its id.

    Names are unique within a brand regardless of letter case; a GTIN, when given, is unique
    across the catalogue and must pass its check digit (``normalise_gtin``).
    """
    gtin = normalise_gtin(gtin)
    with session_scope(url) as s:
        _live(s, m.Brand, brand_id, "brand")
        name = _clean_product_name(s, int(brand_id), name)
        if gtin is not None and (holder := _gtin_taken(s, gtin)):
            raise UserError(f"EAN/GTIN {gtin} already belongs to {holder}")
        product = m.Product(brand_id=int(brand_id), name=name, gtin=gtin, is_demo=is_demo)
        s.add(product)
        s.flush()
        return product.id


def update_product(
    product_id: int, *, name: str, gtin: object = None, url: str | None = None
) -> None:
    """Change a product's name and EAN/GTIN (an empty code removes it)."""
    gtin = normalise_gtin(gtin)
    with session_scope(url) as s:
        product = _live_product(s, product_id)
        name = _clean_product_name(s, product.brand_id, name, except_id=product.id)
        if gtin is not None and (holder := _gtin_taken(s, gtin, except_id=product.id)):
            raise UserError(f"EAN/GTIN {gtin} already belongs to {holder}")
        product.name, product.gtin = name, gtin


def delete_product(product_id: int, url: str | None = None) -> str:
    """Delete a product with its reference images and targets; returns its name.

    Past audits keep their figures: their facings of the product count as their brand's
    "unknown product" from then on, so brand figures do not change.
    """
    with session_scope(url) as s:
        product = _live_product(s, product_id)
        name = product.name
        # Explicit, so it holds where the database does not apply ON DELETE rules.
        s.execute(
            sa.update(m.Detection)
            .where(m.Detection.product_id == product.id)
            .values(product_id=None, product_score=None)
        )
        s.execute(
            sa.update(m.ProductMetric)
            .where(m.ProductMetric.product_id == product.id)
            .values(product_id=None)
        )
        s.execute(sa.delete(m.ProductTarget).where(m.ProductTarget.product_id == product.id))
        s.delete(product)
        return name


def set_product_planogram(
    store_id: int, targets: dict[int, object], url: str | None = None
) -> None:
    """Replace a store's targets for the given products (0 removes the target), in one transaction.

    Raises:
        UserError: a target that is not a non-negative whole number, or an unknown store/product.
    """
    _set_targets(m.ProductTarget, "product_id", m.Product, store_id, targets, url)


# --------------------------------------------------------------------------- deleting


@dataclass(frozen=True)
class Deletion:
    """What deleting a store or a brand does (``store_deletion`` / ``brand_deletion``).

    Attributes:
        kind: ``"store"`` or ``"brand"``.
        name: its name.
        audits: audits that refer to it; they keep their history.
        planogram_targets: brand and product targets deleted with it.
        reference_images: reference images deleted with it (a brand's products').
        products: products removed from the catalogue with it (brands).
    """

    kind: str
    name: str
    audits: int
    planogram_targets: int
    reference_images: int = 0
    products: int = 0

    def message(self, *, done: bool = False) -> str:
        """What deleting does (to confirm first) or, with ``done``, did, in words.

        Example:
            >>> Deletion("store", "North", audits=12, planogram_targets=6).message()
            'Deleting store North removes it from the store list and pickers and deletes its 6 planogram target(s). Its 12 audit(s) keep their history: the dashboards still show them under its name.'
        """
        removed = [f"{self.planogram_targets} planogram target(s)"]
        if self.kind == "brand":
            removed.append(f"{self.reference_images} reference image(s)")
        what = self.name
        if self.kind == "brand" and self.products:
            what += f" and its {self.products} product(s)"
        lists = "store list and pickers" if self.kind == "store" else "brand and product lists"
        it = "it" if what == self.name else "them"
        if done:
            text = f"Deleted {self.kind} {what}: removed {it} from the {lists} and deleted "
        else:
            text = f"Deleting {self.kind} {what} removes {it} from the {lists} and deletes "
        text += "its " + " and ".join(removed) + ". "
        if self.audits:
            text += (
                f"Its {self.audits} audit(s) keep their history: the dashboards still show "
                "them under its name."
            )
        else:
            text += "No audit refers to it."
        if self.kind == "brand":
            text += " New audits count its packs as an unknown brand."
        return text


def _count(s, query) -> int:
    return int(s.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0)


def _store_deletion(s, store: m.Store) -> Deletion:
    audits = _count(s, sa.select(m.Audit.id).where(m.Audit.store_id == store.id))
    targets = _count(
        s, sa.select(m.PlanogramTarget.id).where(m.PlanogramTarget.store_id == store.id)
    ) + _count(s, sa.select(m.ProductTarget.id).where(m.ProductTarget.store_id == store.id))
    return Deletion("store", store.name, audits, targets)


def _brand_products(brand: m.Brand) -> sa.Select:
    return sa.select(m.Product.id).where(m.Product.brand_id == brand.id)


def _brand_deletion(s, brand: m.Brand) -> Deletion:
    products = _brand_products(brand)
    counted = sa.union(
        sa.select(m.BrandMetric.audit_id).where(m.BrandMetric.brand_id == brand.id),
        sa.select(m.ProductMetric.audit_id).where(m.ProductMetric.brand_id == brand.id),
        sa.select(m.Detection.audit_id).where(
            sa.or_(m.Detection.brand_id == brand.id, m.Detection.product_id.in_(products))
        ),
    )
    targets = _count(
        s, sa.select(m.PlanogramTarget.id).where(m.PlanogramTarget.brand_id == brand.id)
    ) + _count(s, sa.select(m.ProductTarget.id).where(m.ProductTarget.product_id.in_(products)))
    references = _count(
        s, sa.select(m.ReferenceImage.id).where(m.ReferenceImage.product_id.in_(products))
    )
    return Deletion(
        "brand", brand.name, _count(s, counted), targets, references, _count(s, products)
    )


def store_deletion(store_id: int, url: str | None = None) -> Deletion:
    """What ``delete_store(store_id)`` would do (nothing is changed)."""
    with session_scope(url) as s:
        return _store_deletion(s, _live(s, m.Store, store_id, "store"))


def brand_deletion(brand_id: int, url: str | None = None) -> Deletion:
    """What ``delete_brand(brand_id)`` would do (nothing is changed)."""
    with session_scope(url) as s:
        return _brand_deletion(s, _live(s, m.Brand, brand_id, "brand"))


def delete_store(store_id: int, url: str | None = None) -> Deletion:
    """Delete a store from the catalogue, with its brand and product targets; its audits stay.

    Returns:
        What was done (``Deletion``).
    """
    with session_scope(url) as s:
        store = _live(s, m.Store, store_id, "store")
        done = _store_deletion(s, store)
        s.execute(sa.delete(m.PlanogramTarget).where(m.PlanogramTarget.store_id == store.id))
        s.execute(sa.delete(m.ProductTarget).where(m.ProductTarget.store_id == store.id))
        if done.audits:
            store.deleted_at = utcnow()
        else:
            s.delete(store)
        return done


def delete_brand(brand_id: int, url: str | None = None) -> Deletion:
    """Delete a brand and its products from the catalogue, with their planogram targets and
    reference images (so recognition no longer assigns them); the audits that counted them keep
    their figures.

    A brand audits refer to keeps its row and its products' rows (marked deleted through the
    brand), so past figures still name them; their EAN/GTIN codes are freed for other products.
    Adding a brand of the same name brings it back with its products, without references or
    targets.

    Returns:
        What was done (``Deletion``).
    """
    with session_scope(url) as s:
        brand = _live(s, m.Brand, brand_id, "brand")
        done = _brand_deletion(s, brand)
        products = _brand_products(brand)
        s.execute(sa.delete(m.PlanogramTarget).where(m.PlanogramTarget.brand_id == brand.id))
        s.execute(sa.delete(m.ProductTarget).where(m.ProductTarget.product_id.in_(products)))
        s.execute(sa.delete(m.ReferenceImage).where(m.ReferenceImage.product_id.in_(products)))
        if done.audits:
            s.execute(sa.update(m.Product).where(m.Product.brand_id == brand.id).values(gtin=None))
            brand.deleted_at = utcnow()
        else:
            s.expire(brand, ["products"])
            s.delete(brand)
        return done
