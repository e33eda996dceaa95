"""Offline audit page under AppTest: the browser component is replaced by the reports it sends."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from skuaudit import web
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope
from tests.pages._apptest import open_page

PAGE = "pages/offline_audit.py"


@pytest.fixture
def browser(monkeypatch, demo_db_url):
    """What the in-browser detector reports; tests set ``browser["report"]``."""
    sent = {"report": None}
    st.cache_resource.clear()  # the page caches the prepared browser model
    monkeypatch.setattr(web, "prepare_browser_model", lambda model_dir: {})
    monkeypatch.setattr(web, "offline_audit_component", lambda args, **kw: sent["report"])
    return sent


def _report(product: int, gap: int, sent_at: int) -> dict:
    return {
        "counts": {"product": product, "gap": gap},
        "frames": 3,
        "backend": "wasm",
        "ms_per_frame": 12.0,
        "sent_at": sent_at,
    }


def _open() -> AppTest:
    return open_page(PAGE)


def _offline_audits(url: str) -> list[tuple[int, int]]:
    with session_scope(url) as s:
        rows = s.query(m.Audit).filter_by(source="offline").order_by(m.Audit.id)
        return [(a.product_count, a.gap_count) for a in rows]


def test_one_report_saves_one_audit(browser, demo_db_url):
    browser["report"] = _report(41, 3, sent_at=1)
    at = _open()
    at.button(key="offline_save").click().run()
    assert not at.exception, at.exception
    assert at.success[-1].value.startswith("Audit ")  # "Audit N saved for <store>."
    assert at.button(key="offline_save").disabled  # no second audit from the same counts
    assert _offline_audits(demo_db_url) == [(41, 3)]

    browser["report"] = _report(41, 3, sent_at=2)  # "Use these counts" again
    at.run()
    assert not at.button(key="offline_save").disabled
    at.button(key="offline_save").click().run()
    assert _offline_audits(demo_db_url) == [(41, 3), (41, 3)]


@pytest.mark.expected_errors("tick 'Save anyway'")
def test_nothing_found_asks_before_saving(browser, demo_db_url):
    browser["report"] = _report(0, 0, sent_at=1)
    at = _open()
    assert any("No products or gaps were found" in w.value for w in at.warning)
    at.button(key="offline_save").click().run()
    assert "tick 'Save anyway'" in at.error[0].value
    assert _offline_audits(demo_db_url) == []
    at.checkbox(key="offline_allow_empty").check().run()
    at.button(key="offline_save").click().run()
    assert not at.exception, at.exception
    assert _offline_audits(demo_db_url) == [(0, 0)]
