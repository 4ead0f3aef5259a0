"""Cached ntk_core calls of the "Depth" page (st.cache_data keyed by every parameter).

Moving the depth slider changes none of these arguments, so a rerun only reads the cache
(unpickling a few MB) and redraws.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

import ntk_core as nc

RHO0_CURVES = (-0.9, -0.5, 0.0, 0.5, 0.9, 0.99)
N_TEST = 1


@st.cache_data(max_entries=32, show_spinner=False)
def points(data: str, n: int, dim: int, seed: int) -> np.ndarray:
    """n training points plus N_TEST test points on the unit sphere."""
    if data == "digits":
        return nc.digits_points(n + N_TEST, seed=seed)
    return nc.sphere_points(n + N_TEST, dim, seed=seed)


@st.cache_data(max_entries=32, show_spinner=False)
def correlation_map(activation: str, sigma_w: float, sigma_b: float, input_dim: int,
                    rho0: float) -> nc.CorrelationMap:
    return nc.correlation_map(activation, sigma_w, sigma_b, input_dim=input_dim, rho0=rho0)


@st.cache_data(max_entries=32, show_spinner=False)
def curves(activation: str, sigma_w: float, sigma_b: float, max_depth: int,
           input_dim: int) -> nc.DepthCurves:
    return nc.correlation_vs_depth(activation, sigma_w, sigma_b, RHO0_CURVES, max_depth,
                                   input_dim=input_dim)


@st.cache_data(max_entries=16, show_spinner=False)
def kernels(data: str, n: int, dim: int, seed: int, activation: str, sigma_w: float,
            sigma_b: float, max_depth: int) -> nc.DepthKernels:
    x = points(data, n, dim, seed)
    return nc.normalized_kernels_vs_depth(x, activation, sigma_w, sigma_b, max_depth,
                                          n_test=N_TEST)
