"""skuaudit web app: the router and the sidebar, nothing else."""

from __future__ import annotations

import streamlit as st

# NOTE: streamlit_webrtc must be imported before TensorFlow: with TF >= 2.20 the other order
# segfaults (pylibsrtp's HMAC init resolves into libtensorflow_framework's symbols; STACK.md).
import streamlit_webrtc  # noqa: F401, I001

from skuaudit import ui
from skuaudit.navigation import ROLES, pages_for_role, requires_login
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
    role = st.radio("Role", ROLES, key="role", horizontal=False)
    if stores:
        names = [s.name for s in stores]
        picked = st.selectbox("Store", names, key="store_name")
        st.session_state["store_id"] = next(s.id for s in stores if s.name == picked)
    else:
        st.caption("No stores yet: an analyst adds them in the Catalogue.")
        st.session_state["store_id"] = None

    if role == "merchandiser":
        # No sign-in for merchandisers; the name only says who saved an audit.
        st.text_input("Your name", key="merchandiser_name", max_chars=80,
                      placeholder="saved with your audits", persist_state="session")
    if ui.signed_in_analyst():
        st.caption(f"Signed in as {ui.signed_in_analyst()}")
        if st.button("Sign out"):
            st.session_state.pop("analyst_user", None)
            st.rerun()

if requires_login(role) and not ui.signed_in_analyst():
    pages = [st.Page(ui.sign_in_page, title="Sign in", icon=":material/login:")]
else:
    pages = [st.Page(p.path, title=p.title, icon=p.icon) for p in pages_for_role(role)]
st.navigation(pages).run()
