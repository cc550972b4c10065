"""Step explainer: one pixel, one step, animated, rebuilt from the record (no new sampling)."""

from __future__ import annotations

import streamlit as st

from app_support.boot import entry_guard
from app_support.explainer_view import explainer_page

entry_guard()
st.title("Step explainer")
explainer_page()
