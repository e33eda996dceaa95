"""skuaudit web app: the router and the sidebar, nothing else.

Every page is registered for every role (pages of other roles are hidden from the menu), so its
address works after a reload or from a shared link. The role and the store are kept in the URL
query (``?role=category+manager&store=Harbour+Foods``); a page the chosen role may not see says
which role or sign-in it needs instead of "Page not found".
"""

from __future__ import annotations

import streamlit as st

# NOTE: streamlit_webrtc must be imported before TensorFlow: with TF >= 2.20 the other order
# segfaults (pylibsrtp's HMAC init resolves into libtensorflow_framework's symbols; STACK.md).
import streamlit_webrtc  # noqa: F401, I001

from skuaudit import ui
from skuaudit.navigation import PAGES, ROLES, page_access, pages_for_role
from skuaudit.storage.db import DatabaseError, check_schema
from skuaudit.storage.queries import list_stores

st.set_page_config(page_title="skuaudit", page_icon=":material/shelves:", layout="wide")

try:
    check_schema()
    stores = list_stores()
except DatabaseError as exc:
    st.error(f"The database cannot be used: {exc}")
    st.stop()

with st.sidebar:
    role = st.radio("Role", ROLES, key="role", horizontal=False, bind="query-params")
    if stores:
        names = [s.name for s in stores]
        picked = st.selectbox("Store", names, key="store", bind="query-params")
        st.session_state["store_id"] = next(s.id for s in stores if s.name == picked)
    else:
        st.caption("No stores yet: an analyst adds them in the Catalogue.")
        st.session_state["store_id"] = None

    if role == "merchandiser":
        # No sign-in for merchandisers; the name only says who saved an audit.
        st.text_input(
            "Your name",
            key="merchandiser_name",
            max_chars=80,
            placeholder="saved with your audits",
            persist_state="session",
        )
    if ui.signed_in_analyst():
        st.caption(f"Signed in as {ui.signed_in_analyst()}")
        if st.button("Sign out"):
            st.session_state.pop("analyst_user", None)
            st.rerun()

signed_in = ui.signed_in_analyst() is not None
listed = {p.path for p in pages_for_role(role)}
pages = {
    spec.path: st.Page(
        spec.path,
        title=spec.title,
        icon=spec.icon,
        url_path=spec.url_path,
        visibility="visible" if spec.path in listed else "hidden",
    )
    for spec in PAGES
}


# The app's root address shows the role's first page (its own address works as well).
first = pages_for_role(role)[0]
home = st.Page(
    first.path,
    title=first.title,
    icon=first.icon,
    url_path="start",
    default=True,
    visibility="hidden",
)
current = st.navigation([home, *pages.values()])
spec = first if current is home else next(s for s in PAGES if pages[s.path] is current)
access = page_access(spec, role, signed_in)
if not access.allowed:
    ui.access_needed_page(spec.title, access)
else:
    # The page's own failures are shown where they happen; this catches what escapes them:
    # a user error shows its message, anything else is logged and shown with an error id.
    with ui.user_errors(f"Showing {spec.title}"), ui.routed():
        current.run()
