"""Finite vs infinite width (work in progress)."""
import streamlit as st

from dashboard import controls

shared = controls.shared()
st.title("Finite vs infinite width")
K = controls.url_slider("K", "Ensemble size K", 1, 100, 1)
st.write(shared, K)
