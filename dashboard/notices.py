"""Notices in the pages about the accuracy of what ntk_core computed."""
from __future__ import annotations

import numpy as np
import streamlit as st

import ntk_core as nc

# Above this bound on the relative error of the infinite-width kernels, the page says so.
RELATIVE_BOUND_NOTICE = 1e-6
_SAMPLE = 8  # points with the smallest and the largest norms (variances grow with the norm)


@st.cache_data(max_entries=64, show_spinner=False)
def kernel_relative_error_bound(depth: int, sigma_w: float, sigma_b: float, activation: str,
                                x: np.ndarray) -> float:
    """`Kernels.relative_error_bound` of the MLP's kernels on the extreme-norm points of x (0 for
    closed-form activations, whose kernels carry no quadrature error)."""
    if activation not in nc.QUADRATURE_ACTIVATIONS:
        return 0.0
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    order = np.argsort(np.sum(x * x, axis=1))
    pick = np.unique(np.concatenate([order[:_SAMPLE], order[-_SAMPLE:]]))
    spec = nc.MLP(depth=int(depth), w_std=float(sigma_w), b_std=float(sigma_b), activation=activation)
    return nc.infinite_kernels(spec, x[pick]).relative_error_bound


def kernel_accuracy_notice(depth, sigma_w, sigma_b, activation, x) -> None:
    """A visible notice when the quadrature error bound of the infinite-width kernels exceeds
    RELATIVE_BOUND_NOTICE relative (activations without a closed form, e.g. tanh at large sigma_w)."""
    try:
        bound = kernel_relative_error_bound(depth, sigma_w, sigma_b, activation, np.asarray(x))
    except (ValueError, FloatingPointError):
        return  # the page reports these errors where it computes the kernels
    if bound > RELATIVE_BOUND_NOTICE:
        st.warning(f"Numerical accuracy: the infinite-width kernels of {activation} come from 2-D "
                   f"quadrature; their error is bounded by {bound:.1e} relative at these settings.")
