"""Jobs and cached kernels of the kernel-convergence page.

Each finite network is one job of dashboard.jobs (one (network, width, seed)): its empirical NTK at
initialisation and after training takes seconds to minutes at width 10,000, so results are stored,
shared by every session, shipped for presets, drawn as they arrive and resumed after an
interruption. The infinite-width kernels are cheap (st.cache_data).

    jobs_for(values)   every job the page runs for control values `values` (page registry)
    angle_jobs / sweep_jobs / fig2_job   the jobs of the page's three sections
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Mapping

import numpy as np
import streamlit as st

import ntk_core as nc

from .convergence_summary import width_sweep
from .jobs import Job
from .store import pack, unpack

VERSION = "1"   # bump when ntk_core's finite kernels, training or these results change
# The page's own controls and their defaults (the shared ones are controls.SHARED_DEFAULTS).
PAGE_DEFAULTS: dict = {"cv_w1": 500, "cv_w2": 10_000, "cv_w3": 0, "cv_seeds": 10, "cv_angles": 65,
                       "cv_steps": 200, "cv_lr": 1.0, "cv_ntrain": 10, "cv_lines": False,
                       "cv_smin": 32, "cv_smax": 8192, "cv_sseeds": 3, "cv_spoints": 16,
                       "cv_strain": True, "cv_f2": False, "cv_f2w1": 50, "cv_f2w2": 1000,
                       "cv_f2steps": 1000, "cv_f2n": 4}


def _spec(net: tuple, width: int) -> nc.MLP:
    depth, w_std, b_std, activation = net
    return nc.MLP(depth=depth, width=int(width), w_std=w_std, b_std=b_std, activation=activation)


def _net_params(net) -> dict:
    depth, w_std, b_std, activation = net
    return {"depth": int(depth), "sigma_w": float(w_std), "sigma_b": float(b_std),
            "activation": str(activation)}


# nc.estimate_seconds is a linear cost model of the computation alone; issue 10's timed runs on a
# quiet 2-core machine found the page's estimates 25-60 % low (Jacot Fig 1: 5.3 min estimated,
# 6.7 min measured), the rest being per-unit overheads. The factor 1.4 (middle of the measured
# ratios 1.25 .. 1.6) brings them within 15 %.
# Units without training (kernels at initialisation only, as in the Arora preset and the width sweep)
# ran 2-3x below that (python -m benchmarks.estimates, 2026-11-24: 4.7 s measured for 14.1 s
# estimated): their factor is 0.55, and each new width's first unit pays ~0.3 s of compilation.
ESTIMATE_CALIBRATION = 1.4
INIT_ONLY_CALIBRATION = 0.55
NEW_WIDTH_SECONDS = 0.3


def _seconds(net, width, n_points, steps, first_of_width: bool) -> float:
    factor = ESTIMATE_CALIBRATION if steps else INIT_ONLY_CALIBRATION
    return (nc.estimate_seconds(int(net[0]), [int(width)], 1, n_points, int(steps)) * factor
            + (NEW_WIDTH_SECONDS if first_of_width else 0.0))


# ---- kernel vs angle (Jacot Fig 1) ------------------------------------------------------------
def angle_unit(progress, *, net, width, seed, n_angles, steps, lr, n_train) -> dict:
    """One network's Theta(x0, x(angle)) at init and after `steps` GD steps, final loss."""
    pair = nc.angle_kernels(_spec(net, width), seed, n_angles, steps, lr, n_train)
    out = {"init": np.asarray(pair.init[0], np.float64)}
    if pair.trained is not None:
        out["trained"] = np.asarray(pair.trained[0], np.float64)
    if pair.loss is not None:
        out["loss"] = np.asarray(float(pair.loss[-1]))
    return out


def angle_jobs(net, widths, n_seeds, n_angles, steps, lr, n_train) -> dict:
    """{(width, seed): Job} for section 1, narrow widths first."""
    out = {}
    for w in sorted(int(x) for x in widths):
        for s in range(int(n_seeds)):
            params = dict(net=tuple(net), width=w, seed=s, n_angles=int(n_angles),
                          steps=int(steps), lr=float(lr), n_train=int(n_train))
            out[(w, s)] = Job("convergence.angle", {**_net_params(net), **params, "net": None},
                              functools.partial(angle_unit, **params),
                              _seconds(net, w, int(n_angles) + 1, steps, s == 0), VERSION)
    return out


@st.cache_data(max_entries=64, show_spinner=False)
def infinite_angle(net: tuple, n_angles: int) -> np.ndarray:
    return nc.infinite_kernel_vs_angle(_spec(net, 1), n_angles)


# ---- relative Frobenius error vs width (Arora et al.) ----------------------------------------
@functools.lru_cache(maxsize=32)
def _infinite_gram(net: tuple, n_points: int) -> np.ndarray:
    return np.asarray(nc.infinite_kernels(_spec(net, 1), nc.sweep_points(n_points)).ntk, np.float64)


@st.cache_data(max_entries=64, show_spinner=False)
def infinite_gram(net: tuple, n_points: int) -> np.ndarray:
    return _infinite_gram(net, n_points)


def sweep_unit(progress, *, net, width, seed, n_points, steps, lr, n_train) -> dict:
    """One network's relative Frobenius errors at init and (steps > 0) after training."""
    e0, et = nc.width_errors(_spec(net, width), seed, n_points, steps, lr, n_train,
                             theta_inf=_infinite_gram(tuple(net), int(n_points)))
    out = {"e0": np.asarray(float(e0))}
    if et is not None:
        out["et"] = np.asarray(float(et))
    return out


def sweep_jobs(net, widths, n_seeds, n_points, steps, lr, n_train) -> dict:
    """{(width, seed): Job} for section 2."""
    out = {}
    for w in sorted(int(x) for x in widths):
        for s in range(int(n_seeds)):
            params = dict(net=tuple(net), width=w, seed=s, n_points=int(n_points),
                          steps=int(steps), lr=float(lr), n_train=int(n_train))
            out[(w, s)] = Job("convergence.sweep", {**_net_params(net), **params, "net": None},
                              functools.partial(sweep_unit, **params),
                              _seconds(net, w, int(n_points), steps, s == 0), VERSION)
    return out


# ---- Jacot Fig 2 ------------------------------------------------------------------------------
def fig2_unit(progress, *, net, widths, n_seeds, n_points, steps, lr) -> dict:
    res = nc.function_percentiles(_spec(net, widths[0]), list(widths), n_seeds, n_points, steps,
                                  lr, progress=progress)
    out = pack(res)
    out["warning"] = np.asarray(res.warning or "")
    return out


# Jacot Fig 2 (nc.function_percentiles), timed 2026-11-24 (quiet, depth 3, 4 points): widths
# (50, 1000) x 10 seeds x 1,000 steps 20.4-30.4 s over four runs, (100, 500) x 4 x 2,000 10.5 s,
# (50, 2000) x 10 x 300 30.1 s; the earlier model said 7.2 / 3.1 / 8.7 s. Fitted: a compilation,
# then the linear model's training term (nc.estimate_seconds) at its own rate: 24.9 / 13.1 / 29.2 s.
FIG2_COMPILE_SECONDS = 10.0
FIG2_CALIBRATION = 1.2


def fig2_estimate(net, widths, n_seeds, n_points, steps) -> float:
    """nc.train of every (width, seed) network, plus the compilation (calibration above)."""
    return (FIG2_COMPILE_SECONDS
            + FIG2_CALIBRATION * sum(nc.estimate_seconds(net[0], [w], n_seeds, 0, steps)
                                     for w in widths))


def fig2_job(net, widths, n_seeds, n_points, steps, lr) -> Job:
    params = dict(net=tuple(net), widths=tuple(sorted(int(w) for w in widths)),
                  n_seeds=int(n_seeds), n_points=int(n_points), steps=int(steps), lr=float(lr))
    return Job("convergence.fig2", {**_net_params(net), **params, "net": None},
               functools.partial(fig2_unit, **params),
               fig2_estimate(net, params["widths"], n_seeds, n_points, steps), VERSION)


def fig2_result(arrays) -> nc.FunctionPercentiles:
    out = unpack(nc.FunctionPercentiles, arrays)
    return dataclasses.replace(out, warning=out.warning or None)


# ---- the page's jobs for given control values -------------------------------------------------
def settings(values: Mapping) -> dict:
    """Control values (shared + page defaults filled in) as the page's sections use them."""
    from .controls import SHARED_DEFAULTS

    v = {**SHARED_DEFAULTS, **PAGE_DEFAULTS, **dict(values)}
    net = (int(v["depth"]), float(v["sigma_w"]), float(v["sigma_b"]), str(v["activation"]))
    n_seeds = int(v["cv_seeds"])
    return dict(
        net=net,
        widths=sorted({int(w) for w in (v["cv_w1"], v["cv_w2"], v["cv_w3"]) if w}),
        n_seeds=n_seeds, n_angles=int(v["cv_angles"]), steps=int(v["cv_steps"]),
        lr=float(v["cv_lr"]), n_train=int(v["cv_ntrain"]),
        sweep=(list(width_sweep(int(v["cv_smin"]), int(v["cv_smax"])))
               if int(v["cv_smin"]) < int(v["cv_smax"]) else []),
        s_seeds=int(v["cv_sseeds"]), s_points=int(v["cv_spoints"]),
        s_steps=int(v["cv_steps"]) if v["cv_strain"] else 0,
        f2=bool(v["cv_f2"]), f2_widths=sorted({int(v["cv_f2w1"]), int(v["cv_f2w2"])}),
        f2_seeds=max(n_seeds, 2), f2_n=int(v["cv_f2n"]), f2_steps=int(v["cv_f2steps"]))


def jobs_for(values: Mapping) -> list:
    """Every long job of the kernel-convergence page for control values `values`."""
    s = settings(values)
    out = list(angle_jobs(s["net"], s["widths"], s["n_seeds"], s["n_angles"], s["steps"], s["lr"],
                          s["n_train"]).values())
    out += list(sweep_jobs(s["net"], s["sweep"], s["s_seeds"], s["s_points"], s["s_steps"],
                           s["lr"], s["n_train"]).values())
    if s["f2"]:
        out.append(fig2_job(s["net"], s["f2_widths"], s["f2_seeds"], s["f2_n"], s["f2_steps"],
                            s["lr"]))
    return out
