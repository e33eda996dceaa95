"""Catalogue edits: stores, brands and planogram targets, each checked before one transaction.

Every function raises ``UserError`` with a message a person can act on (a duplicate name, a
negative target) and writes nothing in that case.

Deleting a store or a brand removes it from the catalogue (every list, picker, import and
export), with its planogram targets and, for a brand, its reference images; audits keep their
history. A store or brand no audit refers to is removed outright; one that audits refer to keeps
its row, marked ``deleted_at``, so the dashboards still name it in past figures. Adding a store
or brand with the name of a deleted one brings that one back.

Example:
    >>> store_id = add_store("Harbour Foods", region="North")          # doctest: +SKIP
    >>> brand_id = add_brand("Sunvale", manufacturer="Our Company", is_own=True)  # doctest: +SKIP
    >>> set_planogram(store_id, {brand_id: 6})                          # doctest: +SKIP
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from plotly.colors import qualitative

from skuaudit.errors import UserError
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope
from skuaudit.storage.models import utcnow

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
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
    deleted brand brings that brand back. ``color_hex`` ``None``: ``next_brand_colour``."""
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
        brand = s.get(m.Brand, int(brand_id))
        if brand is None or brand.deleted_at is not None:
            raise UserError(f"brand {brand_id} does not exist (was it deleted?)")
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
        store = s.get(m.Store, int(store_id))
        if store is None or store.deleted_at is not None:
            raise UserError(f"store {store_id} does not exist (was it deleted?)")
        names = dict(
            s.execute(sa.select(m.Brand.id, m.Brand.name).where(m.Brand.deleted_at.is_(None))).all()
        )
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


# --------------------------------------------------------------------------- deleting


@dataclass(frozen=True)
class Deletion:
    """What deleting a store or a brand does (``store_deletion`` / ``brand_deletion``).

    Attributes:
        kind: ``"store"`` or ``"brand"``.
        name: its name.
        audits: audits that refer to it; they keep their history.
        planogram_targets: targets deleted with it.
        reference_images: reference images deleted with it (brands).
    """

    kind: str
    name: str
    audits: int
    planogram_targets: int
    reference_images: int = 0

    def message(self, *, done: bool = False) -> str:
        """What deleting does (to confirm first) or, with ``done``, did, in words.

        Example:
            >>> Deletion("store", "North", audits=12, planogram_targets=6).message()
            'Deleting store North removes it from the store list and pickers and deletes its 6 planogram target(s). Its 12 audit(s) keep their history: the dashboards still show them under its name.'
        """
        removed = [f"{self.planogram_targets} planogram target(s)"]
        if self.kind == "brand":
            removed.append(f"{self.reference_images} reference image(s)")
        lists = "store list and pickers" if self.kind == "store" else "brand lists"
        if done:
            text = f"Deleted {self.kind} {self.name}: removed it from the {lists} and deleted its "
        else:
            text = f"Deleting {self.kind} {self.name} removes it from the {lists} and deletes its "
        text += " and ".join(removed) + ". "
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
    )
    return Deletion("store", store.name, audits, targets)


def _brand_deletion(s, brand: m.Brand) -> Deletion:
    counted = sa.union(
        sa.select(m.BrandMetric.audit_id).where(m.BrandMetric.brand_id == brand.id),
        sa.select(m.Detection.audit_id).where(m.Detection.brand_id == brand.id),
    )
    targets = _count(
        s, sa.select(m.PlanogramTarget.id).where(m.PlanogramTarget.brand_id == brand.id)
    )
    references = _count(
        s, sa.select(m.ReferenceImage.id).where(m.ReferenceImage.brand_id == brand.id)
    )
    return Deletion("brand", brand.name, _count(s, counted), targets, references)


def _live(s, model, row_id: int, kind: str):
    row = s.get(model, int(row_id))
    if row is None or row.deleted_at is not None:
        raise UserError(f"{kind} {row_id} does not exist (was it deleted?)")
    return row


def store_deletion(store_id: int, url: str | None = None) -> Deletion:
    """What ``delete_store(store_id)`` would do (nothing is changed)."""
    with session_scope(url) as s:
        return _store_deletion(s, _live(s, m.Store, store_id, "store"))


def brand_deletion(brand_id: int, url: str | None = None) -> Deletion:
    """What ``delete_brand(brand_id)`` would do (nothing is changed)."""
    with session_scope(url) as s:
        return _brand_deletion(s, _live(s, m.Brand, brand_id, "brand"))


def delete_store(store_id: int, url: str | None = None) -> Deletion:
    """Delete a store from the catalogue, with its planogram targets; its audits stay.

    Returns:
        What was done (``Deletion``).
    """
    with session_scope(url) as s:
        store = _live(s, m.Store, store_id, "store")
        done = _store_deletion(s, store)
        s.execute(sa.delete(m.PlanogramTarget).where(m.PlanogramTarget.store_id == store.id))
        if done.audits:
            store.deleted_at = utcnow()
        else:
            s.delete(store)
        return done


def delete_brand(brand_id: int, url: str | None = None) -> Deletion:
    """Delete a brand from the catalogue, with its planogram targets and reference images (so
    recognition no longer assigns it); the audits that counted it keep their figures.

    Returns:
        What was done (``Deletion``).
    """
    with session_scope(url) as s:
        brand = _live(s, m.Brand, brand_id, "brand")
        done = _brand_deletion(s, brand)
        s.execute(sa.delete(m.PlanogramTarget).where(m.PlanogramTarget.brand_id == brand.id))
        s.execute(sa.delete(m.ReferenceImage).where(m.ReferenceImage.brand_id == brand.id))
        if done.audits:
            brand.deleted_at = utcnow()
        else:
            s.expire(brand, ["reference_images"])
            s.delete(brand)
        return done
