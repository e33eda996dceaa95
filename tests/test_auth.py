from __future__ import annotations

import subprocess
import sys

import pytest

from skuaudit.auth import add_user, authenticate, list_users, remove_user


def test_add_and_authenticate(db_url):
    add_user("ann", "s3cret-pass", url=db_url)
    assert authenticate("ann", "s3cret-pass", url=db_url) == "analyst"
    assert authenticate("ann", "wrong-pass", url=db_url) is None
    assert authenticate("bob", "s3cret-pass", url=db_url) is None
    assert list_users(db_url) == [("ann", "analyst")]
    assert remove_user("ann", db_url) and list_users(db_url) == []


def test_password_is_stored_hashed(db_url):
    import sqlalchemy as sa

    from skuaudit.storage import models as m
    from skuaudit.storage.db import session_scope

    add_user("ann", "s3cret-pass", url=db_url)
    with session_scope(db_url) as s:
        stored = s.scalar(sa.select(m.User.password_hash))
    assert "s3cret-pass" not in stored and stored.startswith("$2")


@pytest.mark.parametrize(
    "username, password, role, message",
    [
        ("ann", "short", "analyst", "at least 8"),
        ("", "long enough", "analyst", "user name"),
        ("a b", "long enough", "analyst", "user name"),
        ("ann", "long enough", "admin", "unknown role"),
    ],
)
def test_bad_accounts_refused(db_url, username, password, role, message):
    with pytest.raises(ValueError, match=message):
        add_user(username, password, role=role, url=db_url)


def test_duplicate_user_refused(db_url):
    add_user("ann", "long enough", url=db_url)
    with pytest.raises(ValueError, match="already exists"):
        add_user("ann", "other password", url=db_url)


def test_cli_user_add_reads_password_from_stdin(db_url):
    def add_carol() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "skuaudit", "user", "add", "carol", "--db-url", db_url],
            input="a-long-password\n",
            capture_output=True,
            text=True,
            timeout=120,
        )

    run = add_carol()
    assert run.returncode == 0, run.stderr
    assert authenticate("carol", "a-long-password", url=db_url) == "analyst"
    again = add_carol()  # the same user a second time
    assert (
        again.returncode == 2
        and "already exists" in again.stderr
        and "Traceback" not in again.stderr
    )
