"""Cached units of the kernel-convergence page: one (network, width, seed) at a time.

A unit is one network: its empirical NTK at initialisation and after training (seconds to minutes at
width 10,000), so units live in a process-wide LRU (`_UNITS`) keyed by every parameter that changes
them. The page asks which units are missing (`missing`), estimates their cost, and computes them one
by one with a progress bar, redrawing the charts as they arrive (so long sweeps run incrementally and
a rerun resumes where the last one stopped). Warm reruns only read the LRU.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import streamlit as st

import ntk_core as nc

MAX_UNITS = 5000           # each holds a few hundred floats
MAX_FIG2_RESULTS = 32
AUTO_RUN_SECONDS = 60.0    # longer jobs wait for a click

_UNITS = nc.LRUCache(MAX_UNITS)
_FIG2 = nc.LRUCache(MAX_FIG2_RESULTS)


def clear() -> None:
    _UNITS.clear()


def _spec(net: tuple, width: int) -> nc.MLP:
    depth, w_std, b_std, activation = net
    return nc.MLP(depth=depth, width=int(width), w_std=w_std, b_std=b_std, activation=activation)


# ---- kernel vs angle (Jacot Fig 1) ------------------------------------------------------------
def angle_key(net, width, seed, n_angles, steps, lr, n_train):
    return ("angle", tuple(net), int(width), int(seed), int(n_angles), int(steps), float(lr),
            int(n_train))


def angle_unit(key, compute: bool = True):
    """(init row (n_angles,), trained row or None, final loss or None), or None if not cached and
    compute is False."""
    hit = _UNITS.get(key)
    if hit is not None or not compute:
        return hit
    _, net, width, seed, n_angles, steps, lr, n_train = key
    pair = nc.angle_kernels(_spec(net, width), seed, n_angles, steps, lr, n_train)
    value = (pair.init[0], None if pair.trained is None else pair.trained[0],
             None if pair.loss is None else float(pair.loss[-1]))
    _UNITS.put(key, value)
    return value


@st.cache_data(max_entries=64, show_spinner=False)
def infinite_angle(net: tuple, n_angles: int) -> np.ndarray:
    return nc.infinite_kernel_vs_angle(_spec(net, 1), n_angles)


# ---- relative Frobenius error vs width (Arora et al.) ----------------------------------------
def sweep_key(net, width, seed, n_points, steps, lr, n_train):
    return ("sweep", tuple(net), int(width), int(seed), int(n_points), int(steps), float(lr),
            int(n_train))


@st.cache_data(max_entries=64, show_spinner=False)
def infinite_gram(net: tuple, n_points: int) -> np.ndarray:
    return np.asarray(nc.infinite_kernels(_spec(net, 1), nc.sweep_points(n_points)).ntk, np.float64)


def sweep_unit(key, compute: bool = True):
    """(error at init, error after training or None), or None if not cached and compute is False."""
    hit = _UNITS.get(key)
    if hit is not None or not compute:
        return hit
    _, net, width, seed, n_points, steps, lr, n_train = key
    value = nc.width_errors(_spec(net, width), seed, n_points, steps, lr, n_train,
                            theta_inf=infinite_gram(net, n_points))
    _UNITS.put(key, value)
    return value


def missing(keys) -> list:
    return [k for k in keys if _UNITS.get(k) is None]


# nc.estimate_seconds is a linear cost model of the computation alone; issue 10's timed runs on a
# quiet 2-core machine found the page's estimates 25-60 % low (Jacot Fig 1: 5.3 min estimated,
# 6.7 min measured), the rest being per-unit overheads (cache, progress redraws, the live charts).
# The factor 1.4 (middle of the measured ratios 1.25 .. 1.6) brings them within 15 %. The same
# factor as dashboard.caching.ESTIMATE_CALIBRATION, measured on the same runs.
ESTIMATE_CALIBRATION = 1.4


def estimate(keys, n_points_of: Callable[[tuple], int]) -> float:
    """Seconds to compute `keys` (nc.estimate_seconds per unit, calibrated)."""
    total = 0.0
    for k in keys:
        net, width, steps = k[1], k[2], k[5]
        total += nc.estimate_seconds(net[0], [width], 1, n_points_of(k), steps)
    return total * ESTIMATE_CALIBRATION


def run_units(keys, unit: Callable, on_done: Optional[Callable[[int, int], None]] = None,
              n_points_of: Callable[[tuple], int] = lambda k: 1):
    """Compute the missing units in `keys` in order (narrow first); `on_done(done, total)` after each."""
    todo = missing(keys)
    todo.sort(key=lambda k: k[2])
    for i, k in enumerate(todo):
        unit(k, compute=True)
        if on_done is not None:
            on_done(i + 1, len(todo))


# ---- Jacot Fig 2 ------------------------------------------------------------------------------
def fig2_key(net, widths, n_seeds, n_points, steps, lr):
    return (tuple(net), tuple(int(w) for w in widths), int(n_seeds), int(n_points), int(steps),
            float(lr))


def fig2(key, progress: Optional[Callable[[float], None]] = None, compute: bool = True):
    hit = _FIG2.get(key)
    if hit is not None or not compute:
        return hit
    net, widths, n_seeds, n_points, steps, lr = key
    res = nc.function_percentiles(_spec(net, widths[0]), widths, n_seeds, n_points, steps, lr,
                                  progress=progress)
    _FIG2.put(key, res)
    return res


def fig2_estimate(net, widths, n_seeds, n_points, steps) -> float:
    """nc.train cost: about 3 passes over the weights per step and network (small batches)."""
    return (sum(nc.estimate_seconds(net[0], [w], n_seeds, 0, steps) * 0.3 for w in widths)
            * ESTIMATE_CALIBRATION + 2.0)
