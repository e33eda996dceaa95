"""Small Streamlit helpers shared by the pages: context from the sidebar, errors without tracebacks.

This is the only module of the package that imports Streamlit; everything it shows is computed
elsewhere in ``skuaudit``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import streamlit as st

from skuaudit.datasets.base import DatasetError
from skuaudit.detector import ModelLoadError
from skuaudit.errors import UserError, apology, report_unexpected
from skuaudit.export import ExportError
from skuaudit.recognition import RecognitionModelError
from skuaudit.storage.db import DatabaseError
from skuaudit.web import OfflineModeError

if TYPE_CHECKING:
    from skuaudit.reports import Scope

# Failures a person can act on, each with a message meant for them: ``UserError`` and the
# error types of modules that say which file or setting to fix. Anything else is logged as a
# bug (``report_unexpected``) and shown as an apology with the id the log carries.
USER_ERRORS: tuple[type[Exception], ...] = (
    UserError,
    DatabaseError,
    DatasetError,
    ModelLoadError,
    RecognitionModelError,
    ExportError,
    OfflineModeError,
)


ROUTER = Path(__file__).resolve().parent.parent / "app.py"
_routed: contextvars.ContextVar[bool] = contextvars.ContextVar("skuaudit_routed", default=False)


@contextmanager
def routed() -> Iterator[None]:
    """Mark the page run inside as started by the router (``app.py``)."""
    token = _routed.set(True)
    try:
        yield
    finally:
        _routed.reset(token)


def ensure_routed() -> None:
    """Rerun through the router when Streamlit ran a page on its own.

    While a ``pages/`` folder sits beside ``app.py``, a freshly started server answers its first
    request for a page address (``/stockouts``) the Streamlit 1.x "pages folder" way: it runs
    ``pages/stockouts.py`` alone, without the router's sidebar, role check or page list. That
    mode is switched off (``compat.route_every_page_through_main_script``) and the page reruns
    through ``app.py``, which shows the same address. A page run as the main script (``streamlit run
    pages/offline_audit.py``) is left alone.
    """
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if _routed.get():
        return
    ctx = get_script_run_ctx()
    if ctx is not None and Path(ctx.main_script_path).resolve() == ROUTER:
        from skuaudit.compat import route_every_page_through_main_script

        route_every_page_through_main_script()
        st.rerun()


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
        store_name=st.session_state.get("store") if st.session_state.get("store_id") else None,
        user_name=(
            st.session_state.get("user_name", "")
            if signed_in_analyst()
            else (st.session_state.get("merchandiser_name") or "").strip()
        ),
    )


def _copy_state(source: str, target: str) -> None:
    st.session_state[target] = st.session_state[source]


def audit_header() -> PageContext:
    """The store and the auditor's name at the top of an audit page, with a way to change them.

    On a phone the sidebar (where both are chosen) is folded away, so an audit could silently
    go to the first store; this line keeps them in sight and changes the sidebar's choice.
    """
    from skuaudit.storage.queries import list_stores

    ctx = context()
    if ctx.store_id is None:
        return ctx
    who = ctx.user_name or "no name given"
    st.markdown(f"Store: **{ctx.store_name}** · auditor: **{who}**")
    with st.expander("Change the store or your name"):
        names = [s.name for s in list_stores()]
        st.session_state["audit_store"] = ctx.store_name
        st.selectbox(
            "Store", names, key="audit_store", on_change=_copy_state, args=("audit_store", "store")
        )
        if ctx.role == "merchandiser":
            st.session_state["audit_name"] = ctx.user_name
            st.text_input(
                "Your name",
                key="audit_name",
                max_chars=80,
                on_change=_copy_state,
                args=("audit_name", "merchandiser_name"),
            )
    return ctx


@contextmanager
def user_errors(action: str) -> Iterator[None]:
    r"""Show a failure of ``action`` as ``st.error``, never a traceback.

    A ``USER_ERRORS`` failure shows its message. Any other exception is a bug or an environment
    failure: it is logged with its traceback and the page shows a short apology with the id the
    log entry carries. ``st.stop``/``st.rerun`` pass through (they are not ``Exception``\ s).
    """
    try:
        yield
    except USER_ERRORS as exc:
        st.error(f"{action} failed: {exc}")
    except Exception as exc:  # noqa: BLE001 - logged with its traceback, shown with its id
        show_unexpected(action, exc)


def apology_for(action: str, exc: BaseException) -> str:
    """Log ``exc`` with its traceback; returns the apology with its id (``errors.apology``)."""
    return apology(action, report_unexpected(action, exc))


def show_unexpected(action: str, exc: BaseException) -> None:
    """Log ``exc`` with its traceback and show the apology with its id."""
    st.error(apology_for(action, exc))


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


def _switch_role(role: str) -> None:
    st.session_state["role"] = role


def access_needed_page(title: str, access) -> None:
    """What a page shows in place of itself when the chosen role may not see it
    (``navigation.page_access``): which role it is for, with a button per role that needs no
    sign-in, or the analyst sign-in form."""
    if access.needs_sign_in:
        sign_in_page(needed_for=access.message)
        return
    st.title(title)
    st.warning(access.message)
    from skuaudit.navigation import requires_login

    for role in access.roles:
        label = f"Switch to the {role} role" + (" (sign-in)" if requires_login(role) else "")
        st.button(label, key=f"switch_role_{role}", on_click=_switch_role, args=(role,))


def sign_in_page(needed_for: str = "") -> None:
    """The analyst sign-in form (accounts come from ``skuaudit user add NAME``).

    Args:
        needed_for: why a sign-in is asked, e.g. "Catalogue needs an analyst sign-in."
    """
    from skuaudit.auth import authenticate, list_users

    st.title("Analyst sign-in")
    if needed_for:
        st.caption(needed_for)
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


def facing_targets_form(
    key: str,
    caption: str,
    labels: dict[int, str],
    current: dict[int, int],
    *,
    button: str,
    action: str,
    save: Callable[[dict[int, int]], None],
    saved: str,
) -> None:
    """A planogram form: one "expected facings" number per item (``labels``: id -> label),
    starting at its ``current`` target (0: none), keyed ``f"{key}_{id}"``; ``button`` calls
    ``save(targets by id)`` and shows ``saved``, or how ``action`` failed (``user_errors``)."""
    with st.form(key):
        st.caption(caption)
        targets = {
            item_id: st.number_input(
                label, min_value=0, step=1, value=current.get(item_id, 0), key=f"{key}_{item_id}"
            )
            for item_id, label in labels.items()
        }
        if st.form_submit_button(button):
            with user_errors(action):
                save(targets)
                st.success(saved)


def csv_download(
    label: str, file_name: str, table, columns: Sequence[str] | None = None, *, key: str
) -> None:
    """A button that downloads a report table as the CSV a person reads (``reports.for_csv``:
    readable headers, percentages, no internal ids); ``columns`` picks and orders them."""
    from skuaudit import reports

    st.download_button(
        label, reports.for_csv(table, columns), file_name=file_name, mime="text/csv", key=key
    )


@st.cache_data(show_spinner=False, max_entries=256)
def cached_report(report: str, data_version: str | int | None, **kwargs):
    """``skuaudit.reports.<report>(**kwargs)``, cached; keying on ``data_version``
    (``reports.data_version``) makes a new audit, store or brand name show up at once while
    repeated reruns with the same filters cost nothing."""
    from skuaudit import reports

    return getattr(reports, report)(**kwargs)


# Dashboard filters keep their values through visits to other pages (``persist_state``), as a
# category manager expects when coming back to a dashboard, and through a reload or a shared
# link (``bind``: each filter is a query parameter of the page's URL).
FILTER_PERSISTENCE = "session"
FILTER_BINDING = "query-params"

# Product tables show the code as text (a leading zero stays), under the CSV downloads' header.
GTIN_COLUMN = {"gtin": st.column_config.TextColumn("EAN/GTIN")}


def choice_input(label: str, options: list[str], *, key: str) -> str:
    """A dashboard filter ``st.selectbox`` kept across pages; a kept value that is no longer an
    option (a store renamed meanwhile) falls back to the first option."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]
    return st.selectbox(
        label, options, key=key, persist_state=FILTER_PERSISTENCE, bind=FILTER_BINDING
    )


def dashboard_scope(url: str | None, *, key: str) -> tuple[str, tuple[date, date], Scope]:
    """What a dashboard starts with: the data version (``cached_report``'s cache key: new audits,
    stores, brand names), the dates of the first and the latest audit, and the stores picked
    under the sidebar's "Dashboard filters" (``choice_input`` kept under ``key``). Stops the page
    with a note while there is no audit yet."""
    from skuaudit import reports

    latest_id = reports.data_version(url)
    span = reports.audit_date_range(url)
    if span is None:
        st.info("No audits yet: save an audit from the Live or Photo audit page first.")
        st.stop()
    scopes = {s.label: s for s in reports.scopes(url)}
    with st.sidebar:
        st.subheader("Dashboard filters")
        return latest_id, span, scopes[choice_input("Stores", list(scopes), key=key)]


def latest_date_input(label: str, latest: date, *, key: str) -> date:
    """A date filter that starts at ``latest`` (the newest audit's date) and moves on with it
    when a newer audit is saved, until the user picks another date, which it then keeps (a date
    in the page's URL counts as picked: Streamlit seeds the widget from it on a page load)."""
    followed = f"{key}:latest"
    if key not in st.session_state or st.session_state[key] == st.session_state.get(followed):
        st.session_state[key] = latest
    st.session_state[followed] = latest
    return st.date_input(label, key=key, persist_state=FILTER_PERSISTENCE, bind=FILTER_BINDING)


def stop_without_audits(table, scope: Scope, when: str, advice: str) -> None:
    """Stops a dashboard with a note when ``table``, its first report for the picked stores and
    dates, is empty: "No audits for <the stores> <when>. <advice>"."""
    if table.empty:
        st.info(f"No audits for {scope.words or scope.label} {when}. {advice}")
        st.stop()


def table_with_csv(
    label: str,
    file_name: str,
    table,
    columns: Sequence[str] | None = None,
    *,
    key: str,
    shown: Sequence[str] | None = None,
    column_config: dict | None = None,
) -> None:
    """A report table without its index and, under it, the button that downloads it as CSV
    (``csv_download``: ``columns``, default all). The table shows ``shown`` in that order
    (default: the CSV's columns). Widget keys ``f"{key}_table"`` and ``f"{key}_csv"``."""
    st.dataframe(
        table,
        hide_index=True,
        column_order=shown or columns,
        column_config=column_config,
        key=f"{key}_table",
    )
    csv_download(label, file_name, table, columns, key=f"{key}_csv")
