"""ntk_core calls of the "Depth" page: the cheap correlation map through st.cache_data, the
kernels and correlation curves over all depths (seconds at L_max = 10,000) as jobs of
dashboard.jobs (stored, shared, shipped for presets).

Moving the depth slider changes none of these arguments, so a rerun only reads stored results and
redraws.
"""
from __future__ import annotations

import functools
from typing import Mapping

import numpy as np
import streamlit as st

import ntk_core as nc

from .jobs import Job
from .store import pack, unpack

VERSION = "2"   # bump when ntk_core's depth recursion changes (2: stable predictor at rank-deficient depths)
# The page's own controls and their defaults (the shared ones are controls.SHARED_DEFAULTS).
PAGE_DEFAULTS: dict = {"d_data": "sphere", "d_n": 40, "d_dim": 3, "L_max": 10_000, "rho0": 0.5}
# Cost model, timed on this 2-core machine (quiet, 2026-11-24; L_max 30 .. 10,000, 40 and 100
# points, relu and tanh): a start-up cost, then per layer a fixed part and a part per pair of
# points; activations without a closed form (quadrature) cost ~4x more per pair. Measured 0.5-7.5 s
# where the earlier (layers x pairs) model said up to 102 s, and asked for a button it did not need.
KERNELS_SECONDS = {"closed": (0.5, 2.8e-5, 1.8e-8), "quadrature": (0.62, 1.5e-5, 6.6e-8)}
CURVES_SECONDS = {"closed": (0.3, 1e-5), "quadrature": (0.35, 3.5e-5)}


def _method(activation: str) -> str:
    return "quadrature" if activation in nc.QUADRATURE_ACTIVATIONS else "closed"

RHO0_CURVES = (-0.9, -0.5, 0.0, 0.5, 0.9, 0.99)
N_TEST = 1


@functools.lru_cache(maxsize=32)
def points(data: str, n: int, dim: int, seed: int) -> np.ndarray:
    """n training points plus N_TEST test points on the unit sphere."""
    if data == "digits":
        return nc.digits_points(n + N_TEST, seed=seed)
    return nc.sphere_points(n + N_TEST, dim, seed=seed)


@st.cache_data(max_entries=32, show_spinner=False)
def correlation_map(activation: str, sigma_w: float, sigma_b: float, input_dim: int,
                    rho0: float) -> nc.CorrelationMap:
    return nc.correlation_map(activation, sigma_w, sigma_b, input_dim=input_dim, rho0=rho0)


def _curves(progress, *, activation, sigma_w, sigma_b, max_depth, input_dim) -> dict:
    return pack(nc.correlation_vs_depth(activation, sigma_w, sigma_b, RHO0_CURVES, max_depth,
                                        input_dim=input_dim))


def _kernels(progress, *, data, n, dim, seed, activation, sigma_w, sigma_b, max_depth) -> dict:
    x = points(data, n, dim, seed)
    return pack(nc.normalized_kernels_vs_depth(x, activation, sigma_w, sigma_b, max_depth,
                                               n_test=N_TEST))


def curves_job(activation: str, sigma_w: float, sigma_b: float, max_depth: int,
               input_dim: int) -> Job:
    params = dict(activation=str(activation), sigma_w=float(sigma_w), sigma_b=float(sigma_b),
                  max_depth=int(max_depth), input_dim=int(input_dim))
    return Job("depth.curves", params, functools.partial(_curves, **params),
               seconds=_curves_seconds(activation, int(max_depth)), version=VERSION)


def kernels_job(data: str, n: int, dim: int, seed: int, activation: str, sigma_w: float,
                sigma_b: float, max_depth: int) -> Job:
    params = dict(data=str(data), n=int(n), dim=int(dim), seed=int(seed),
                  activation=str(activation), sigma_w=float(sigma_w), sigma_b=float(sigma_b),
                  max_depth=int(max_depth))
    return Job("depth.kernels", params, functools.partial(_kernels, **params),
               seconds=_kernels_seconds(activation, int(max_depth), int(n) + N_TEST),
               version=VERSION)


def _curves_seconds(activation: str, max_depth: int) -> float:
    start, per_layer = CURVES_SECONDS[_method(activation)]
    return start + max_depth * per_layer


def _kernels_seconds(activation: str, max_depth: int, n_points: int) -> float:
    start, per_layer, per_layer_pair = KERNELS_SECONDS[_method(activation)]
    return start + max_depth * (per_layer + per_layer_pair * n_points ** 2)


def depth_jobs(v: Mapping) -> list:
    dim = 64 if v["d_data"] == "digits" else int(v["d_dim"])
    return [curves_job(v["activation"], v["sigma_w"], v["sigma_b"], v["L_max"], dim),
            kernels_job(v["d_data"], v["d_n"], dim, v["seed"], v["activation"], v["sigma_w"],
                        v["sigma_b"], v["L_max"])]


def jobs_for(values: Mapping) -> list:
    """Every long job of the depth page for control values `values` (page registry)."""
    from .controls import SHARED_DEFAULTS

    return depth_jobs({**SHARED_DEFAULTS, **PAGE_DEFAULTS, **dict(values)})


def curves_result(arrays) -> nc.DepthCurves:
    return unpack(nc.DepthCurves, arrays)


def kernels_result(arrays) -> nc.DepthKernels:
    return unpack(nc.DepthKernels, arrays)
