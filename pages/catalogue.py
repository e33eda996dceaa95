"""Catalogue page."""

import streamlit as st

from skuaudit import ui

st.title("Catalogue")
ui.coming_soon("Catalogue")
