"""Share of shelf page."""

import streamlit as st

from skuaudit import ui

st.title("Share of shelf")
ui.coming_soon("Share of shelf")
