"""Every page renders for every role that lists it; errors on the database are shown, not raised."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from skuaudit.navigation import PAGES, ROLES, pages_for_role

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _app(role: str, analyst: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["role"] = role
    if analyst:
        at.session_state["analyst_user"] = analyst
    return at


@pytest.mark.parametrize(
    "role, titles",
    [
        ("merchandiser", ["Live audit", "Photo audit", "Offline audit"]),
        ("category manager", ["Share of shelf", "Stockouts"]),
        ("analyst", [p.title for p in PAGES]),
    ],
)
def test_pages_for_role(role, titles):
    assert [p.title for p in pages_for_role(role)] == titles


def test_unknown_role_is_refused():
    with pytest.raises(ValueError, match="unknown role"):
        pages_for_role("intern")


@pytest.mark.parametrize("role, page", [(r, p.path) for r in ROLES for p in pages_for_role(r)])
def test_page_renders_for_role(demo_db_url, role, page):
    at = _app(role, analyst="ann" if role == "analyst" else None).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="store").value == "Central Superstore"
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert at.title[0].value == next(p.title for p in PAGES if p.path == page)


@pytest.mark.expected_errors("does not exist")
def test_broken_database_shows_error_not_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("SKUAUDIT_DB_URL", "sqlite:////no/such/dir/x.db")
    at = _app("analyst").run()
    assert not at.exception
    assert "does not exist" in at.error[0].value


@pytest.mark.expected_errors("newer release")
def test_newer_schema_shows_error(db_url):
    from skuaudit.storage.db import get_engine

    with get_engine(db_url).begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
    at = _app("merchandiser").run()
    assert not at.exception
    assert "newer release" in at.error[0].value


@pytest.mark.expected_errors("Wrong user name or password")
def test_analyst_must_sign_in(db_url):
    from skuaudit.auth import add_user

    at = _app("analyst").run()
    assert at.title[0].value == "Analyst sign-in"
    assert "skuaudit user add" in at.info[0].value  # no account yet: says how to make one
    add_user("ann", "correct horse", url=db_url)
    at = _app("analyst").run()
    at.text_input[0].input("ann")
    at.text_input[1].input("wrong password")
    at.button[0].click().run()
    assert "Wrong user name or password" in at.error[0].value
    assert "analyst_user" not in at.session_state
    at.text_input[1].input("correct horse")
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state["analyst_user"] == "ann"
    assert at.title[0].value == "Live audit"  # first analyst page


@pytest.mark.parametrize(
    "role, has_name_field", [("merchandiser", True), ("category manager", False)]
)
def test_merchandisers_can_give_their_name(demo_db_url, role, has_name_field):
    at = _app(role).run()
    assert not at.exception, at.exception
    fields = [t for t in at.sidebar.text_input if t.key == "merchandiser_name"]
    assert bool(fields) == has_name_field
    if has_name_field:
        fields[0].input("Ana").run()
        assert at.session_state["merchandiser_name"] == "Ana"  # saved with audits: photo test


@pytest.mark.parametrize(
    "role, page, message",
    [
        ("merchandiser", "pages/stockouts.py", "Stockouts is a page for the category manager"),
        ("category manager", "pages/live_audit.py", "Live audit is a page for the merchandiser"),
        ("category manager", "pages/catalogue.py", "Catalogue is a page for the analyst role"),
    ],
)
def test_a_page_of_another_role_says_which_role_it_needs(demo_db_url, role, page, message):
    """Every page's address works for every role (a reload, a shared link): a page the role may
    not see says which role it is for, and switching to it shows the page."""
    at = _app(role)
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert message in at.warning[0].value
    switch = [b for b in at.button if b.key and b.key.startswith("switch_role_")]
    assert switch
    if "analyst" in switch[0].key:  # the analyst role asks for a sign-in first
        switch[0].click().run()
        assert at.title[0].value == "Analyst sign-in"
        assert "Catalogue needs an analyst sign-in" in at.caption[0].value
    else:
        switch[0].click().run()
        assert at.title[0].value == next(p.title for p in PAGES if p.path == page)
        assert not at.warning


@pytest.mark.expected_errors(r"Loading the stockouts failed: sorry, .* \(error id [0-9a-f]{8}\)")
def test_a_bug_is_logged_with_an_id_and_shown_as_an_apology(demo_db_url, monkeypatch, caplog):
    """A programming error is not shown as if the user had made a mistake: the page apologises
    with an id, and the log holds the traceback under that id."""
    from skuaudit import reports

    def broken(*args, **kwargs):
        raise KeyError("brand_id")

    monkeypatch.setattr(reports, "current_stockouts", broken)
    at = _app("category manager")
    with caplog.at_level("ERROR", logger="skuaudit.errors"):
        at.switch_page("pages/stockouts.py").run()
    assert not at.exception
    error_id = at.error[0].value.split("error id ")[1][:8]
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and logged[0].exc_info[0] is KeyError
    assert "brand_id" not in at.error[0].value  # no internals on the page
