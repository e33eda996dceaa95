"""Saving the counts of the Offline audit page (the browser runs the model; only counts arrive)."""

from __future__ import annotations

from pathlib import Path

import pytest

from skuaudit.audit import EmptyAuditError
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope
from skuaudit.web import save_offline_audit

MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "default"


def _store_id(url: str) -> int:
    with session_scope(url) as s:
        return s.query(m.Store).order_by(m.Store.id).first().id


def _offline_audits(url: str) -> list[tuple[int, int, str]]:
    with session_scope(url) as s:
        rows = s.query(m.Audit).filter_by(source="offline").order_by(m.Audit.id)
        return [(a.product_count, a.gap_count, a.user_name) for a in rows]


def test_counts_are_saved(demo_db_url):
    store = _store_id(demo_db_url)
    audit_id = save_offline_audit(store, "mia", {"product": 41, "gap": 3}, MODEL_DIR, demo_db_url)
    assert audit_id > 0
    assert _offline_audits(demo_db_url) == [(41, 3, "mia")]


def test_an_empty_count_needs_save_anyway(demo_db_url):
    store = _store_id(demo_db_url)
    with pytest.raises(EmptyAuditError, match="Save anyway"):
        save_offline_audit(store, "", {"product": 0, "gap": 0}, MODEL_DIR, demo_db_url)
    assert _offline_audits(demo_db_url) == []
    save_offline_audit(
        store, "", {"product": 0, "gap": 0}, MODEL_DIR, demo_db_url, allow_empty=True
    )
    assert _offline_audits(demo_db_url) == [(0, 0, "")]


@pytest.mark.parametrize("counts", [{"product": -1}, {"product": 2.5}, {"gap": "3"}])
def test_bad_counts_are_refused(demo_db_url, counts):
    with pytest.raises(ValueError, match="whole number"):
        save_offline_audit(_store_id(demo_db_url), "", counts, MODEL_DIR, demo_db_url)
    assert _offline_audits(demo_db_url) == []
