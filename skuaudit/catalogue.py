"""Catalogue edits: stores, brands, their products (SKUs) and planogram targets, each checked
before one transaction.

Every function raises ``ValueError`` with a message a person can act on (a duplicate name, a
negative target, a GTIN with a wrong check digit) and writes nothing in that case.

Targets exist per brand (``set_planogram``) and per product (``set_product_planogram``). A brand's
own target counts for the brand's figures; a brand without one is expected to show the sum of its
products' targets (``skuaudit.metrics``).

Example:
    >>> store_id = add_store("Harbour Foods", region="North")          # doctest: +SKIP
    >>> brand_id = add_brand("Sunvale", manufacturer="Our Company", is_own=True)  # doctest: +SKIP
    >>> product_id = add_product(brand_id, "Sunvale Orange 1 l", gtin="4006381333931")  # doctest: +SKIP
    >>> set_planogram(store_id, {brand_id: 6})                          # doctest: +SKIP
    >>> set_product_planogram(store_id, {product_id: 4})                # doctest: +SKIP
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from skuaudit.metrics import UNKNOWN_NAME, UNKNOWN_PRODUCT_NAME
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
GTIN_LENGTHS = (8, 12, 13, 14)
# Names the review table uses for "not recognised": a product named so would read as one.
RESERVED_PRODUCT_NAMES = {UNKNOWN_NAME, UNKNOWN_PRODUCT_NAME}


def _clean_name(name: str, what: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValueError(f"a {what} needs a name")
    if len(name) > 200:
        raise ValueError(f"{what} names are limited to 200 characters")
    return name


def _check_colour(color_hex: str) -> str:
    if not _HEX.match(color_hex or ""):
        raise ValueError(f"colour must look like #1f77b4, got {color_hex!r}")
    return color_hex.lower()


def _name_taken(s, model, name: str, except_id: int | None = None) -> bool:
    query = sa.select(model.id).where(sa.func.lower(model.name) == name.lower())
    if except_id is not None:
        query = query.where(model.id != except_id)
    return s.scalar(query) is not None


def add_store(name: str, region: str = "", address: str = "", url: str | None = None) -> int:
    """Create a store; returns its id. Names are unique regardless of letter case."""
    name = _clean_name(name, "store")
    with session_scope(url) as s:
        if _name_taken(s, m.Store, name):
            raise ValueError(f"a store named {name!r} already exists")
        store = m.Store(name=name, region=region.strip(), address=address.strip())
        s.add(store)
        s.flush()
        return store.id


def add_brand(
    name: str,
    manufacturer: str = "",
    is_own: bool = False,
    color_hex: str = "#888888",
    url: str | None = None,
) -> int:
    """Create a brand; returns its id. Names are unique regardless of letter case."""
    name = _clean_name(name, "brand")
    color_hex = _check_colour(color_hex)
    with session_scope(url) as s:
        if _name_taken(s, m.Brand, name):
            raise ValueError(f"a brand named {name!r} already exists")
        brand = m.Brand(
            name=name, manufacturer=manufacturer.strip(), is_own=bool(is_own), color_hex=color_hex
        )
        s.add(brand)
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
        brand = s.get(m.Brand, int(brand_id))
        if brand is None:
            raise ValueError(f"brand {brand_id} does not exist (was it deleted?)")
        if _name_taken(s, m.Brand, name, except_id=brand.id):
            raise ValueError(f"another brand is already named {name!r}")
        brand.name, brand.manufacturer = name, manufacturer.strip()
        brand.is_own, brand.color_hex = bool(is_own), color_hex


def parse_target(value: object, brand: str = "") -> int:
    """A planogram target as a non-negative whole number of facings, or ValueError."""
    where = f" for {brand}" if brand else ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"the target{where} must be a whole number of facings, got {value!r}"
        ) from None
    if number != int(number) or number < 0:
        raise ValueError(f"the target{where} must be a whole number of facings >= 0, got {value!r}")
    return int(number)


def set_planogram(store_id: int, targets: dict[int, object], url: str | None = None) -> None:
    """Replace a store's targets for the given brands (0 removes the target) in one transaction.

    Raises:
        ValueError: a target that is not a non-negative whole number, or an unknown store/brand.
    """
    _set_targets(m.PlanogramTarget, "brand_id", m.Brand, store_id, targets, url)


def _set_targets(table, key: str, items, store_id: int, targets: dict, url: str | None) -> None:
    """Replace the ``table`` rows (keyed by ``key``, an id of ``items``) of one store."""
    what = items.__tablename__.removesuffix("s")
    with session_scope(url) as s:
        if s.get(m.Store, int(store_id)) is None:
            raise ValueError(f"store {store_id} does not exist (was it deleted?)")
        names = dict(s.execute(sa.select(items.id, items.name)).all())
        clean = {}
        for item_id, value in targets.items():
            if int(item_id) not in names:
                raise ValueError(f"{what} {item_id} does not exist (was it deleted?)")
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

    Spaces and hyphens are dropped. Raises ``ValueError`` naming what is wrong: not digits, a
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
        raise ValueError(f"an EAN/GTIN has only digits, got {code!r}")
    if len(text) not in GTIN_LENGTHS:
        raise ValueError(f"an EAN/GTIN has 8, 12, 13 or 14 digits, {code!r} has {len(text)}")
    expected = gtin_check_digit(text[:-1])
    if int(text[-1]) != expected:
        raise ValueError(
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
        raise ValueError(f"{name!r} is how the audits name an unrecognised product; pick another")
    query = sa.select(m.Product.id).where(
        m.Product.brand_id == brand_id, sa.func.lower(m.Product.name) == name.lower()
    )
    if except_id is not None:
        query = query.where(m.Product.id != except_id)
    if s.scalar(query) is not None:
        raise ValueError(f"this brand already has a product named {name!r}")
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
        if s.get(m.Brand, int(brand_id)) is None:
            raise ValueError(f"brand {brand_id} does not exist (was it deleted?)")
        name = _clean_product_name(s, int(brand_id), name)
        if gtin is not None and (holder := _gtin_taken(s, gtin)):
            raise ValueError(f"EAN/GTIN {gtin} already belongs to {holder}")
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
        product = s.get(m.Product, int(product_id))
        if product is None:
            raise ValueError(f"product {product_id} does not exist (was it deleted?)")
        name = _clean_product_name(s, product.brand_id, name, except_id=product.id)
        if gtin is not None and (holder := _gtin_taken(s, gtin, except_id=product.id)):
            raise ValueError(f"EAN/GTIN {gtin} already belongs to {holder}")
        product.name, product.gtin = name, gtin


def delete_product(product_id: int, url: str | None = None) -> str:
    """Delete a product with its reference images and targets; returns its name.

    Past audits keep their figures: their facings of the product count as their brand's
    "unknown product" from then on, so brand figures do not change.
    """
    with session_scope(url) as s:
        product = s.get(m.Product, int(product_id))
        if product is None:
            raise ValueError(f"product {product_id} does not exist (was it deleted?)")
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
        ValueError: a target that is not a non-negative whole number, or an unknown store/product.
    """
    _set_targets(m.ProductTarget, "product_id", m.Product, store_id, targets, url)
