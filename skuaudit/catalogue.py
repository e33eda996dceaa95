"""Catalogue edits: stores, brands and planogram targets, each checked before one transaction.

Every function raises ``ValueError`` with a message a person can act on (a duplicate name, a
negative target) and writes nothing in that case.

Example:
    >>> store_id = add_store("Harbour Foods", region="North")          # doctest: +SKIP
    >>> brand_id = add_brand("Sunvale", manufacturer="Our Company", is_own=True)  # doctest: +SKIP
    >>> set_planogram(store_id, {brand_id: 6})                          # doctest: +SKIP
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from skuaudit.errors import UserError
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


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
            raise UserError(f"a store named {name!r} already exists")
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
            raise UserError(f"a brand named {name!r} already exists")
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
            raise UserError(f"brand {brand_id} does not exist (was it deleted?)")
        if _name_taken(s, m.Brand, name, except_id=brand.id):
            raise UserError(f"another brand is already named {name!r}")
        brand.name, brand.manufacturer = name, manufacturer.strip()
        brand.is_own, brand.color_hex = bool(is_own), color_hex


def parse_target(value: object, brand: str = "") -> int:
    """A planogram target as a non-negative whole number of facings, or ValueError."""
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
        ValueError: a target that is not a non-negative whole number, or an unknown store/brand.
    """
    with session_scope(url) as s:
        if s.get(m.Store, int(store_id)) is None:
            raise UserError(f"store {store_id} does not exist (was it deleted?)")
        names = dict(s.execute(sa.select(m.Brand.id, m.Brand.name)).all())
        clean = {}
        for brand_id, value in targets.items():
            if int(brand_id) not in names:
                raise UserError(f"brand {brand_id} does not exist (was it deleted?)")
            clean[int(brand_id)] = parse_target(value, names[int(brand_id)])
        existing = {
            t.brand_id: t
            for t in s.scalars(
                sa.select(m.PlanogramTarget).where(m.PlanogramTarget.store_id == store_id)
            )
        }
        for brand_id, target in clean.items():
            row = existing.get(brand_id)
            if target == 0 and row is not None:
                s.delete(row)
            elif target > 0 and row is None:
                s.add(
                    m.PlanogramTarget(
                        store_id=int(store_id), brand_id=brand_id, expected_facings=target
                    )
                )
            elif row is not None:
                row.expected_facings = target
