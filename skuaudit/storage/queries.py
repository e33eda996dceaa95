"""Small read queries shared by the pages and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope


@dataclass(frozen=True)
class StoreRow:
    id: int
    name: str
    region: str


def list_stores(url: str | None = None) -> list[StoreRow]:
    with session_scope(url) as s:
        rows = s.execute(sa.select(m.Store.id, m.Store.name, m.Store.region).order_by(m.Store.name))
        return [StoreRow(*r) for r in rows]


def store_id_by_name(name: str, url: str | None = None) -> int:
    """The id of the store called ``name``; ValueError naming the known stores otherwise."""
    with session_scope(url) as s:
        found = s.scalar(sa.select(m.Store.id).where(m.Store.name == name))
        if found is None:
            known = s.scalars(sa.select(m.Store.name).order_by(m.Store.name).limit(20)).all()
            raise ValueError(f"no store named {name!r}; known stores: {', '.join(known) or 'none'}")
        return found
