"""Photo audit page."""

import streamlit as st

from skuaudit import ui

st.title("Photo audit")
ui.coming_soon("Photo audit")
