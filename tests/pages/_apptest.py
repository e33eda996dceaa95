"""Opening the app on one page under AppTest, shared by page tests."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_page(page: str, role: str = "merchandiser", timeout: float = 60) -> AppTest:
    """The app in ``role`` switched to ``page`` (e.g. ``"pages/live_audit.py"``), run without error."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.session_state["role"] = role
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at
