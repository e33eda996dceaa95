"""Shared fixtures.

streamlit_webrtc is imported first on purpose: with TensorFlow >= 2.20, importing TensorFlow before
it segfaults the process (STACK.md), and pytest runs everything in one process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit_webrtc  # noqa: F401, I001

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    """A fresh migrated SQLite file, also exported as SKUAUDIT_DB_URL for code that reads it."""
    from skuaudit.storage.db import upgrade_database

    url = f"sqlite:///{tmp_path / 'skuaudit.db'}"
    monkeypatch.setenv("SKUAUDIT_DB_URL", url)
    monkeypatch.setenv("SKUAUDIT_MEDIA_DIR", str(tmp_path / "media"))
    upgrade_database(url)
    return url


@pytest.fixture
def demo_db_url(db_url) -> str:
    """A migrated SQLite file filled with the demo data."""
    from skuaudit.demo import seed_demo

    seed_demo(db_url)
    return db_url
