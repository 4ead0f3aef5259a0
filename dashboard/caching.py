"""Cached calls into ntk_core for the pages, keyed by every parameter that changes the result.

- `theory(...)`        NTK-GP / NNGP posterior at chosen times (st.cache_data; cheap, ms)
- `jobs_for(values)` / `training_jobs(...)` the finite networks as jobs of dashboard.jobs (stored,
                        shared across sessions, shipped for presets), CHUNK networks per job
- `ensemble(results)`   the finished chunks combined into what the page draws

Display options (training time t, bands, which curves) are not parameters of the jobs, so moving
them never retrains.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np
import streamlit as st

import ntk_core as nc

THEORY_DIAG_REG = 1e-4  # Neural Tangents cookbook


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
# Finite networks: jobs of the runner (dashboard.jobs), CHUNK networks per job
# --------------------------------------------------------------------------------------------
# The page's own controls and their defaults (the shared ones are controls.SHARED_DEFAULTS).
PAGE_DEFAULTS: dict = {"data": "cubic", "n_train": 5, "noise": 0.01, "opt": "GD", "batch": 2,
                       "lr": 0.1, "steps": 10000, "K": 1, "posterior": "ntk", "show_nets": True,
                       "bands": True, "t": math.inf}
T_OPTIONS = [0, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000,
             20000, 50000, 100000, math.inf]
N_TEST = 100
# Networks per job. The networks of one job train together (vmapped): 100 at once is the fast path
# (seed 003 Fig 3 in ~55 s quiet); chunks of 10 took several times longer per network on the
# loaded 2-core machine, so an ensemble of up to 100 is one job (its progress bar still moves).
CHUNK = 100
TRAIN_VERSION = "1"   # bump when nc.train or the recorded arrays change

# Training cost model, calibrated on this 2-core machine (quiet, 2026-11-24): each job of the page
# registry's `jobs_for` timed alone (job.compute, fresh store, x64 as in the app). With few points a
# step is memory-bound on the (width x width) hidden matrices, so the cost follows the weight entries
# touched, n_nets * steps * ((depth - 1) * width^2 + width * (n + 2)), times a factor for the batch
# size n (matrix products take over above ~9 points and grow sublinearly past ~60), plus a per-step
# overhead and a compile. Measured (model) with n = 5 unless given:
#   10 nets w512 d2 2,000 steps 8.6 s (8.6); 20 nets w1024 d3 5,000 steps 332 s (296);
#   100 nets w512 d2 1,000 steps 34.7 s (38.3); 1 net w2048 d2 2,000 steps 15.9 s (12.9);
#   5 nets w1024 d2 4,000 steps 30.6 s (30.8); 1 net w512 d1 10,000 steps 1.6 s (1.65);
#   5 nets w1024 d2 1,000 steps, n = 20 / 50 / 100: 17.7 / 40.0 / 48.9 s (17.7 / 43.9 / 53.5):
# every case within 20 %. The previous width^2 model (x1.4) ran 1.5-3x low at width >= 1024 or
# n >= 20. Re-measure when the training loop changes.
SECONDS_PER_WEIGHT_STEP = 1.4e-9
SECONDS_PER_STEP = 6e-5
COMPILE_SECONDS = 1.0


def estimated_training_seconds(depth: int, width: int, n_nets: int, steps: int,
                               n_points: int) -> float:
    """Wall time of training `n_nets` networks together for `steps` steps on batches of `n_points`
    (the runner's estimate and question; calibration above)."""
    touched = max(int(depth) - 1, 0) * width * width + width * (n_points + 2)
    batch_factor = min(max(1.0, n_points / 9.0), 6.5)
    return (COMPILE_SECONDS + SECONDS_PER_STEP * steps
            + SECONDS_PER_WEIGHT_STEP * n_nets * steps * touched * batch_factor)


def snapshot_indices(times: np.ndarray) -> np.ndarray:
    """The records the time slider can show (one per T_OPTIONS value): only these predictions
    on the test grid are kept, so a stored ensemble stays small."""
    return np.asarray(sorted({snapshot_index(times, t) for t in T_OPTIONS}), dtype=np.int64)


def train_chunk(progress, *, depth, width, sigma_w, sigma_b, activation, x_train, y_train,
                x_test, y_test, lr, steps, batch_size, seeds) -> dict:
    """Train the networks `seeds` together (nc.train) and keep what the page draws: losses of each
    network, sums of predictions over the networks at every record (for the ensemble mean's loss)
    and every network's test-grid predictions at the slider's records."""
    spec = _net(depth, sigma_w, sigma_b, activation, width)
    run = nc.train(spec, x_train, y_train, x_test, y_test, lr=lr, steps=steps,
                   batch_size=batch_size, seeds=list(seeds), record_every=max(1, steps // 200),
                   progress=progress, keep_params=False)
    snaps = snapshot_indices(run.times)
    return {"steps": np.asarray(run.steps), "times": np.asarray(run.times, np.float64),
            "train_loss": np.asarray(run.train_loss, np.float32),
            "test_loss": np.asarray(run.test_loss, np.float32),
            "train_sum": np.asarray(run.train_predictions, np.float64).sum(0).astype(np.float32),
            "test_sum": np.asarray(run.predictions, np.float64).sum(0).astype(np.float32),
            "snap_index": snaps,
            "snap_predictions": np.asarray(run.predictions, np.float32)[:, snaps, :],
            "warning": np.asarray(run.warning or "")}


def training_jobs(*, depth, width, sigma_w, sigma_b, activation, x_train, y_train, x_test, y_test,
                  lr, steps, batch_size, n_nets, seed) -> list:
    """Jobs that train networks seed, seed+1, ..., seed+n_nets-1 in chunks of CHUNK."""
    from .jobs import Job

    y_test = y_test if y_test is not None else np.zeros((len(x_test), 1))
    base = dict(depth=int(depth), width=int(width), sigma_w=float(sigma_w),
                sigma_b=float(sigma_b), activation=str(activation),
                x_train=np.asarray(x_train, np.float64), y_train=np.asarray(y_train, np.float64),
                x_test=np.asarray(x_test, np.float64), y_test=np.asarray(y_test, np.float64),
                lr=float(lr), steps=int(steps),
                batch_size=None if batch_size is None else int(batch_size))
    n_points = len(x_train) if batch_size is None else int(batch_size)
    out = []
    for start in range(int(seed), int(seed) + int(n_nets), CHUNK):
        seeds = tuple(range(start, min(start + CHUNK, int(seed) + int(n_nets))))
        params = {**base, "seeds": seeds}
        out.append(Job("finite.train", params,
                       compute=lambda progress, params=params: train_chunk(progress, **params),
                       seconds=estimated_training_seconds(depth, width, len(seeds), steps,
                                                          n_points),
                       version=TRAIN_VERSION))
    return out


def page_dataset(data: str, n_train: int, noise: float, seed: int):
    """The page's built-in data set (uploads are the page's business)."""
    name = data if data in nc.DATASETS else "cubic"
    return nc.make_dataset(name, n_train=int(n_train), noise=float(noise), seed=int(seed),
                           n_test=N_TEST)


def jobs_for(values) -> list:
    """Every long job of the finite-vs-infinite page for control values `values` (page registry)."""
    from .controls import SHARED_DEFAULTS

    v = {**SHARED_DEFAULTS, **PAGE_DEFAULTS, **dict(values)}
    if v["data"] == "upload":
        return []
    ds = page_dataset(v["data"], v["n_train"], v["noise"], v["seed"])
    batch = None if v["opt"] == "GD" else min(int(v["batch"]), len(ds.x_train))
    return training_jobs(depth=v["depth"], width=v["width"], sigma_w=v["sigma_w"],
                         sigma_b=v["sigma_b"], activation=v["activation"], x_train=ds.x_train,
                         y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test, lr=v["lr"],
                         steps=v["steps"], batch_size=batch, n_nets=v["K"], seed=v["seed"])


@dataclasses.dataclass
class Ensemble:
    """The trained networks as the page draws them (from the chunks that are done)."""
    n_nets: int
    times: np.ndarray             # (T,) record times
    steps: np.ndarray             # (T,)
    train_loss: np.ndarray        # (K, T) each network's loss
    test_loss: np.ndarray         # (K, T)
    mean_train_prediction: np.ndarray   # (T, n) ensemble mean on the training points
    mean_test_prediction: np.ndarray    # (T, m)
    snap_index: np.ndarray        # (S,) records with predictions
    snap_predictions: np.ndarray  # (K, S, m)
    warning: Optional[str]

    def at(self, t: float) -> tuple[int, np.ndarray]:
        """(record index, (K, m) predictions) at training time t (the last record at or before)."""
        k = snapshot_index(self.times, t)
        j = int(np.searchsorted(self.snap_index, k, side="right") - 1)
        return int(self.snap_index[max(j, 0)]), self.snap_predictions[:, max(j, 0), :]


def ensemble(results: list) -> Optional[Ensemble]:
    """Combine the finished chunks (None entries skipped); None if none is finished."""
    done = [r for r in results if r is not None]
    if not done:
        return None
    k = sum(int(r["train_loss"].shape[0]) for r in done)
    warnings = sorted({str(r["warning"]) for r in done if str(r["warning"])})
    return Ensemble(
        n_nets=k, times=done[0]["times"], steps=done[0]["steps"],
        train_loss=np.concatenate([r["train_loss"] for r in done]),
        test_loss=np.concatenate([r["test_loss"] for r in done]),
        mean_train_prediction=sum(r["train_sum"] for r in done) / k,
        mean_test_prediction=sum(r["test_sum"] for r in done) / k,
        snap_index=done[0]["snap_index"],
        snap_predictions=np.concatenate([r["snap_predictions"] for r in done]),
        warning="; ".join(warnings) or None)


def snapshot_index(times: np.ndarray, t: float) -> int:
    """Index of the last record at or before time t (the last record for t beyond training)."""
    times = np.asarray(times)
    if math.isinf(t):
        return len(times) - 1
    return int(max(0, np.searchsorted(times, t, side="right") - 1))
