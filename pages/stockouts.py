"""Stockouts page."""

import streamlit as st

from skuaudit import ui

st.title("Stockouts")
ui.coming_soon("Stockouts")
