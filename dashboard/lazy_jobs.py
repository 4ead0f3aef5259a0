"""Jobs of the lazy-training page (pages/6_lazy_training.py): one unit per network.

- "lazy.pair":     the network and its linearisation trained side by side (section 1)
- "lazy.width":    one (width, seed) of the width sweep: distance f - f_lin, parameter and kernel change,
                   kappa_f (section 2)
- "lazy.catapult": GD at one learning rate, loss and lambda_max over time (section 3)

`DEFAULTS` holds the page's control defaults (the page's controls read them too); `jobs_for(values)`
builds every job of the page for the control values, so shipped preset results are exactly what the
page asks for. Computation lives in ntk_core (nc.train_pair, nc.laziness_point, nc.catapult_run).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

import ntk_core as nc
from dashboard.jobs import Job

DEFAULTS: dict[str, Any] = {
    # shared keys: the page's topic (dashboard/page_registry.py)
    "depth": 1, "width": 1024, "sigma_w": 1.5, "sigma_b": 0.05, "activation": "erf", "seed": 0,
    # data (the finite page's data sets)
    "lz_data": "cubic", "lz_ntrain": 5, "lz_noise": 0.01,
    # training
    "lz_param": "ntk", "lz_lrmode": "multiple", "lz_lr": 0.5, "lz_mult": 0.5, "lz_steps": 1000,
    # width sweep
    "lz_wmin": 16, "lz_wmax": 16384, "lz_seeds": 3,
    # large learning rates (multiples of 2 / lambda_max)
    "lz_m1": 0.5, "lz_m2": 1.5, "lz_m3": 2.5, "lz_csteps": 300,
}
SWEEP_WIDTHS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
SWEEP_FACTOR = 4
N_TEST = 50
N_RECORDS = 50
MAX_SWEEP_PARAMS = 20_000_000     # one network of the sweep (depth 2 stops at width 4,096)
PHASES = ("lazy", "catapult", "converged", "diverged")
VERSION = "1"


def values_with_defaults(values: Mapping[str, Any]) -> dict:
    return {**DEFAULTS, **{k: v for k, v in values.items() if v is not None}}


def sweep_widths(w_min: int, w_max: int, depth: int) -> list[int]:
    """w_min, 4 w_min, 16 w_min, ... up to w_max (and w_max), without networks over MAX_SWEEP_PARAMS."""
    out, w = [], int(w_min)
    while w <= int(w_max):
        out.append(w)
        w *= SWEEP_FACTOR
    if out and out[-1] != int(w_max) and int(w_max) > int(w_min):
        out.append(int(w_max))
    return [w for w in out if nc.count_params(nc.MLP(depth=int(depth), width=w), 1) <= MAX_SWEEP_PARAMS]


def spec_of(v: Mapping[str, Any], width: int) -> nc.MLP:
    return nc.MLP(depth=int(v["depth"]), width=int(width), w_std=float(v["sigma_w"]),
                  b_std=float(v["sigma_b"]), activation=v["activation"],
                  parameterization=v["lz_param"])


def data_params(v: Mapping[str, Any]) -> dict:
    """What determines the data: a named set (name, n, noise, seed) or the user's points."""
    points = v.get("lz_points")
    if v["lz_data"] == "upload" and points is not None:
        xs, ys = points
        return {"points": [[float(a) for a in np.ravel(xs)], [float(b) for b in np.ravel(ys)]]}
    name = v["lz_data"] if v["lz_data"] in nc.DATASETS else "cubic"
    return {"name": name, "n_train": int(v["lz_ntrain"]), "noise": float(v["lz_noise"]),
            "seed": int(v["seed"])}


def dataset(data: Mapping[str, Any]) -> nc.Dataset:
    if "points" in data:
        xs, ys = data["points"]
        return nc.dataset_from_points(np.asarray(xs), np.asarray(ys), n_test=N_TEST)
    return nc.make_dataset(data["name"], n_train=data["n_train"], noise=data["noise"], seed=data["seed"],
                           n_test=N_TEST)


def _net(v) -> dict:
    return {"depth": int(v["depth"]), "sigma_w": float(v["sigma_w"]), "sigma_b": float(v["sigma_b"]),
            "activation": str(v["activation"]), "param": str(v["lz_param"])}


def _lr(v) -> dict:
    if v["lz_lrmode"] == "absolute":
        return {"lr": float(v["lz_lr"]), "lr_multiple": None}
    return {"lr": None, "lr_multiple": float(v["lz_mult"])}


def _spec(p, width):
    return nc.MLP(depth=p["depth"], width=int(width), w_std=p["sigma_w"], b_std=p["sigma_b"],
                  activation=p["activation"], parameterization=p["param"])


# Cost model, timed on this 2-core machine (quiet, 2026-11-24, `python -m benchmarks.estimates lazy
# lazy_deep`): per step, SECONDS_PER_UNIT_STEP per hidden unit (element-wise work, which is all of
# it at one hidden layer: the same constant fits widths 1,024 to 16,384) plus SECONDS_PER_WEIGHT_STEP
# per hidden-to-hidden weight (matrix products, deeper nets), for the network and its
# linearisation together; plus a compilation the first time a shape is met (0.9-2.0 s per new width;
# the sweep's later seeds and the catapult's other learning rates reuse it). Default sweep (LZ1):
# 18.2 s measured, 18.6 s estimated (the earlier per-parameter model said 77.6 s, and 4x high at
# depth 2).
SECONDS_PER_UNIT_STEP = {"lazy.pair": 1.8e-7, "lazy.width": 1.38e-7, "lazy.catapult": 1.2e-7}
SECONDS_PER_WEIGHT_STEP = {"lazy.pair": 7e-9, "lazy.width": 1.1e-8, "lazy.catapult": 3e-9}
COMPILE_SECONDS = {"lazy.pair": 1.3, "lazy.width": 1.5, "lazy.catapult": 0.35}
SECONDS_PER_JOB = 0.03


def _seconds(kind: str, p, width, steps, first_of_shape: bool = True) -> float:
    width, depth = int(width), int(p["depth"])
    per_step = (SECONDS_PER_UNIT_STEP[kind] * width * depth
                + SECONDS_PER_WEIGHT_STEP[kind] * (depth - 1) * width * width)
    return (SECONDS_PER_JOB + per_step * max(int(steps), 1)
            + (COMPILE_SECONDS[kind] if first_of_shape else 0.0))


# ---- computations (pure functions of the job params) ------------------------------------------
def compute_pair(p: Mapping[str, Any], progress=None) -> dict:
    d = dataset(p["data"])
    steps = int(p["steps"])
    res = nc.train_pair(_spec(p, p["width"]), int(p["seed"]), d.x_train, d.y_train[:, 0], d.x_test,
                        lr=p["lr"], lr_multiple=p["lr_multiple"], steps=steps,
                        record_every=max(1, steps // N_RECORDS), dtype=np.float64,
                        progress=None if progress is None else (lambda f: progress(f, "training")))
    return {"times": res.times, "steps": res.steps, "x_test": d.x_test[:, 0], "net_test": res.net_test,
            "lin_test": res.lin_test, "sup_distance": res.sup_distance, "x_train": d.x_train[:, 0],
            "y_train": d.y_train[:, 0], "lr": np.float64(res.lr), "lambda_max": np.float64(res.lambda_max),
            "diverged": np.bool_(res.diverged_net or res.diverged_lin),
            "y_true": np.full(N_TEST, np.nan) if d.y_test is None else d.y_test[:, 0]}


def compute_width(p: Mapping[str, Any], progress=None) -> dict:
    d = dataset(p["data"])
    pt = nc.laziness_point(_spec(p, p["width"]), int(p["seed"]), d.x_train, d.y_train[:, 0], d.x_test,
                           steps=int(p["steps"]), lr=p["lr"], lr_multiple=p["lr_multiple"])
    return {k: np.asarray(getattr(pt, k)) for k in (
        "width", "seed", "lr", "lambda_max", "distance", "sup_distance", "relative_distance",
        "parameter_change", "kernel_change", "kappa", "final_loss", "diverged")}


def compute_catapult(p: Mapping[str, Any], progress=None) -> dict:
    d = dataset(p["data"])
    run = nc.catapult_run(_spec(p, p["width"]), int(p["seed"]), d.x_train, d.y_train[:, 0],
                          lr_multiple=float(p["multiple"]), steps=int(p["steps"]), dtype=np.float64)
    return {"steps": run.steps, "loss": run.loss, "lambda_max": run.lambda_max,
            "lambda_0": np.float64(run.lambda_0), "lr": np.float64(run.lr),
            "multiple": np.float64(run.lr_multiple), "peak_loss": np.float64(run.peak_loss),
            "diverged": np.bool_(run.diverged), "phase": np.int64(PHASES.index(run.phase))}


# ---- jobs -----------------------------------------------------------------------------------
def pair_job(values: Mapping[str, Any]) -> Job:
    v = values_with_defaults(values)
    p = {**_net(v), **_lr(v), "width": int(v["width"]), "seed": int(v["seed"]), "steps": int(v["lz_steps"]),
         "data": data_params(v)}
    return Job("lazy.pair", p, compute=lambda progress: compute_pair(p, progress),
               seconds=_seconds("lazy.pair", p, p["width"], p["steps"]), version=VERSION)


def width_jobs(values: Mapping[str, Any]) -> list[Job]:
    v = values_with_defaults(values)
    base = {**_net(v), **_lr(v), "steps": int(v["lz_steps"]), "data": data_params(v)}
    jobs = []
    for w in sweep_widths(v["lz_wmin"], v["lz_wmax"], v["depth"]):
        for s in range(int(v["lz_seeds"])):
            p = {**base, "width": w, "seed": int(v["seed"]) + s}
            jobs.append(Job("lazy.width", p, compute=lambda progress, p=p: compute_width(p, progress),
                            seconds=_seconds("lazy.width", p, w, p["steps"], first_of_shape=s == 0),
                            version=VERSION))
    return jobs


def catapult_jobs(values: Mapping[str, Any]) -> list[Job]:
    v = values_with_defaults(values)
    base = {**_net(v), "width": int(v["width"]), "seed": int(v["seed"]), "steps": int(v["lz_csteps"]),
            "data": data_params(v)}
    jobs = []
    for i, key in enumerate(("lz_m1", "lz_m2", "lz_m3")):
        p = {**base, "multiple": float(v[key])}
        jobs.append(Job("lazy.catapult", p, compute=lambda progress, p=p: compute_catapult(p, progress),
                        seconds=_seconds("lazy.catapult", p, p["width"], p["steps"],
                                         first_of_shape=i == 0), version=VERSION))
    return jobs


def jobs_for(values: Mapping[str, Any]) -> list[Job]:
    """Every job the lazy-training page runs for the control values `values`."""
    return [pair_job(values)] + width_jobs(values) + catapult_jobs(values)


def run_locally(jobs) -> list[dict]:
    """Compute jobs without the store (benchmarks, tests)."""
    return [dict(j.compute(lambda f, t="": None)) for j in jobs]
