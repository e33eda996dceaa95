"""Live audit page."""

import streamlit as st

from skuaudit import ui

st.title("Live audit")
ui.coming_soon("Live audit")
