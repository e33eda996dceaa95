"""Model lab page."""

import streamlit as st

from skuaudit import ui

st.title("Model lab")
ui.coming_soon("Model lab")
