"""Cached calls into ntk_core for the pages, keyed by every parameter that changes the result.

- `theory(...)`        NTK-GP / NNGP posterior at chosen times (st.cache_data; cheap, ms)
- `train_networks(...)` an ensemble of finite networks (a process-wide LRU of TrainRuns; on a miss
                        it trains with a progress callback, which a rerun can interrupt)

Display options (training time t, bands, which curves) are not arguments of `train_networks`, so
moving them never retrains.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Callable, Optional

import numpy as np
import streamlit as st

import ntk_core as nc

TRAIN_CACHE_ENTRIES = 12
THEORY_DIAG_REG = 1e-4  # Neural Tangents cookbook


def array_key(*arrays) -> str:
    """A short content hash of numpy arrays (for cache keys)."""
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Theory: NTK-GP (gradient descent to time t) and the NNGP posterior
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Theory:
    times: np.ndarray        # (T,)
    mean: np.ndarray         # (T, m) predictive mean on x_test
    sd: np.ndarray           # (T, m) predictive sd on x_test
    train_loss: np.ndarray   # (T,) loss of the mean on the training set
    test_loss: Optional[np.ndarray]  # (T,) loss of the mean against y_test (None without y_test)
    warning: Optional[str]


def _net(depth, sigma_w, sigma_b, activation, width=512) -> nc.MLP:
    return nc.MLP(depth=depth, width=width, w_std=sigma_w, b_std=sigma_b, activation=activation)


@st.cache_data(max_entries=64, show_spinner=False)
def theory(depth: int, sigma_w: float, sigma_b: float, activation: str, x_train: np.ndarray,
           y_train: np.ndarray, x_test: np.ndarray, y_test: Optional[np.ndarray], kernel: str,
           times: tuple) -> Theory:
    """The infinite-width prediction on x_test at every time in `times` (seed 003, Thm 5.1)."""
    spec = _net(depth, sigma_w, sigma_b, activation)
    t = np.asarray(times, dtype=np.float64)
    post = nc.ntk_gp(spec, x_train, y_train, x_test, t=t, kernel=kernel,
                     diag_reg=THEORY_DIAG_REG, y_test=y_test, compute_cov=False)
    mean = np.asarray(post.mean, dtype=np.float64).reshape(len(t), -1)
    var = np.asarray(post.var, dtype=np.float64).reshape(len(t), -1)
    test_loss = None if post.test_loss is None else np.asarray(post.test_loss).reshape(len(t))
    return Theory(times=t, mean=mean, sd=np.sqrt(np.clip(var, 0.0, None)),
                  train_loss=np.asarray(post.train_loss).reshape(len(t)), test_loss=test_loss,
                  warning=getattr(post, "warning", None))


def loss_time_grid(t_max: float, n: int = 120) -> tuple:
    """Log-spaced times for loss curves, from 1e-3 t_max (at most 1e-2) to t_max."""
    t_max = max(float(t_max), 1.0)
    return tuple(np.geomspace(min(1e-2, 1e-3 * t_max), t_max, n).tolist())


# --------------------------------------------------------------------------------------------
# Finite networks
# --------------------------------------------------------------------------------------------
@st.cache_resource
def _train_store() -> nc.LRUCache:
    return nc.LRUCache(TRAIN_CACHE_ENTRIES)


def train_key(**params) -> tuple:
    return tuple(sorted(params.items()))


def cached_run(key: tuple):
    """The cached TrainRun for `key`, or None."""
    return _train_store().get(key)


# Measured: 100 networks of width 512, depth 2, 10,000 GD steps on 5 points take ~200 s on the
# 2-core CI machine, i.e. about 4e-10 s per (network x step x depth x width^2). Issue 10's timed
# runs (quiet 2-core machine, Chromium) found the estimates 25-60 % low (e.g. 5.3 min estimated,
# 6.7 min measured): the per-step overheads (recording, progress, the vmapped batch of K nets) are
# not in the width^2 model. ESTIMATE_CALIBRATION = 1.4, the geometric middle of the measured
# ratios 1.25 .. 1.6, puts every measured case within 15 % (1.25 / 1.4 = 0.89, 1.6 / 1.4 = 1.14).
# Re-measure on a quiet machine with benchmarks (FIG3) when the training loop changes.
ESTIMATE_CALIBRATION = 1.4
SECONDS_PER_UNIT = 4e-10 * ESTIMATE_CALIBRATION
AUTO_TRAIN_SECONDS = 15.0


def estimated_training_seconds(depth: int, width: int, n_nets: int, steps: int,
                               n_points: int) -> float:
    """Rough wall time of `train_networks` (for the "Train" button and the progress text)."""
    per_step = max(depth, 1) * width * width + width * (n_points + 2)
    return SECONDS_PER_UNIT * n_nets * steps * per_step * max(1.0, n_points / 20.0)


def train_networks(*, depth: int, width: int, sigma_w: float, sigma_b: float, activation: str,
                   x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                   y_test: np.ndarray, lr: float, steps: int, batch_size: Optional[int],
                   n_nets: int, seed: int,
                   progress: Optional[Callable[[float], None]] = None,
                   only_cached: bool = False):
    """Train `n_nets` networks (seeds seed, seed+1, ...) or return the cached run.

    Returns (run, was_cached); with `only_cached`, (None, False) instead of training."""
    key = train_key(depth=depth, width=width, sigma_w=sigma_w, sigma_b=sigma_b,
                    activation=activation, data=array_key(x_train, y_train, x_test, y_test),
                    lr=lr, steps=steps, batch_size=batch_size, n_nets=n_nets, seed=seed)
    run = cached_run(key)
    if run is not None:
        return run, True
    if only_cached:
        return None, False
    spec = _net(depth, sigma_w, sigma_b, activation, width)
    run = nc.train(spec, x_train, y_train, x_test, y_test, lr=lr, steps=steps,
                   batch_size=batch_size, seeds=range(seed, seed + n_nets),
                   record_every=max(1, steps // 200), progress=progress, keep_params=False)
    _train_store().put(key, run)
    return run, False


def snapshot_index(times: np.ndarray, t: float) -> int:
    """Index of the last record at or before time t (the last record for t beyond training)."""
    times = np.asarray(times)
    if math.isinf(t):
        return len(times) - 1
    return int(max(0, np.searchsorted(times, t, side="right") - 1))
