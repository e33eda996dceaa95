"""Small Streamlit helpers shared by the pages: context from the sidebar, errors without tracebacks.

This is the only module of the package that imports Streamlit; everything it shows is computed
elsewhere in ``skuaudit``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import NoReturn

import streamlit as st

from skuaudit.datasets.base import DatasetError
from skuaudit.storage.db import DatabaseError

# Errors raised on user input or environment problems; each message is meant for a person.
USER_ERRORS: tuple[type[Exception], ...] = (DatabaseError, DatasetError, ValueError, OSError)


@dataclass(frozen=True)
class PageContext:
    role: str
    store_id: int | None
    store_name: str | None
    user_name: str


def context() -> PageContext:
    """What the sidebar (drawn by app.py) chose."""
    return PageContext(
        role=st.session_state.get("role", "merchandiser"),
        store_id=st.session_state.get("store_id"),
        store_name=st.session_state.get("store_name"),
        user_name=(
            st.session_state.get("user_name", "")
            if signed_in_analyst()
            else (st.session_state.get("merchandiser_name") or "").strip()
        ),
    )


@contextmanager
def user_errors(action: str) -> Iterator[None]:
    """Show a failure of ``action`` as ``st.error`` with its message, never a traceback."""
    try:
        yield
    except USER_ERRORS as exc:
        st.error(f"{action} failed: {exc}")


def rerun_with_messages(where: str, *successes: str, errors: Sequence[str] = ()) -> NoReturn:
    """Rerun the app at once, so every list and picker shows a change just made, keeping its
    messages for ``show_messages(where)`` (a rerun would wipe messages shown now)."""
    st.session_state[f"messages:{where}"] = (tuple(successes), tuple(errors))
    st.rerun()


def show_messages(where: str) -> None:
    """Show, once, the messages ``rerun_with_messages`` kept for ``where``."""
    successes, errors = st.session_state.pop(f"messages:{where}", ((), ()))
    for message in successes:
        st.success(message)
    for message in errors:
        st.error(message)


def signed_in_analyst() -> str | None:
    return st.session_state.get("analyst_user")


def require_analyst() -> None:
    """Stop the page unless an analyst is signed in (pages are also hidden by the router)."""
    if not signed_in_analyst():
        st.warning("This page needs an analyst sign-in: choose the analyst role in the sidebar.")
        st.stop()


def sign_in_page() -> None:
    """The analyst sign-in form (accounts come from ``skuaudit user add NAME``)."""
    from skuaudit.auth import authenticate, list_users

    st.title("Analyst sign-in")
    with user_errors("Reading accounts"):
        if not list_users():
            st.info(
                "No analyst account exists yet. On the server, create one with "
                "`skuaudit user add NAME` (or `.venv/bin/skuaudit user add NAME`)."
            )
    with st.form("sign_in"):
        username = st.text_input("User name")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        with user_errors("Sign-in"):
            if authenticate(username, password) == "analyst":
                st.session_state["analyst_user"] = username.strip()
                st.session_state["user_name"] = username.strip()
                st.rerun()
            else:
                st.error("Wrong user name or password.")


@st.cache_data(show_spinner=False, max_entries=256)
def cached_report(report: str, data_version: str | int | None, **kwargs):
    """``skuaudit.reports.<report>(**kwargs)``, cached; keying on ``data_version``
    (``reports.data_version``) makes a new audit, store or brand name show up at once while
    repeated reruns with the same filters cost nothing."""
    from skuaudit import reports

    return getattr(reports, report)(**kwargs)


# Dashboard filters keep their values through visits to other pages (``persist_state``), as a
# category manager expects when coming back to a dashboard.
FILTER_PERSISTENCE = "session"


def choice_input(label: str, options: list[str], *, key: str) -> str:
    """A dashboard filter ``st.selectbox`` kept across pages; a kept value that is no longer an
    option (a store renamed meanwhile) falls back to the first option."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]
    return st.selectbox(label, options, key=key, persist_state=FILTER_PERSISTENCE)


def latest_date_input(label: str, latest: date, *, key: str) -> date:
    """A date filter that starts at ``latest`` (the newest audit's date) and moves on with it
    when a newer audit is saved, until the user picks another date, which it then keeps."""
    followed = f"{key}:latest"
    if key not in st.session_state or st.session_state[key] == st.session_state.get(followed):
        st.session_state[key] = latest
    st.session_state[followed] = latest
    return st.date_input(label, key=key, persist_state=FILTER_PERSISTENCE)
