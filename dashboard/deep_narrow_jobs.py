"""Jobs and defaults of the "Deep narrow networks" page (Lee, Choi, Ryu, No, ICML 2022; seed 000).

`DEFAULTS` is the one dict of the page's control defaults (the page's controls use it too);
`jobs_for(values)` lists every long job the page runs for `values` (page registry contract):

    deep_narrow.kernel    one network of the NTK experiment (one depth, one trial)
    deep_narrow.distance  the distance of the initial kernel to the limit at log-spaced depths
    deep_narrow.train     one digits training run (one architecture, init, learning rate, seed)
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

import ntk_core as nc
from dashboard.jobs import Job
from dashboard.store import pack

DEPTH_OPTIONS = [0, 10, 30, 100, 300, 1000, 3000, 10_000]
TRAIN_DEPTH_OPTIONS = [10, 30, 100, 300, 1000, 2000, 4000]
LR_OPTIONS = [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
PAPER_LRS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)     # the paper's Kaiming sweep
DATASETS = {"digits": "digits, all 1,797 (360 held out)", "digits_500": "digits, 500 training images (360 held out)"}
ARCHS = {"mlp": "MLP (width 64 + 1 + 10 = 75)", "cnn": "CNN (channels 1 + 1 + 10 = 12, 8×8 images)"}
N_TEST = 360

DEFAULTS: dict[str, Any] = {
    # the drawing
    "dn_draw_in": 3, "dn_draw_out": 2, "dn_draw_L": 4,
    # the NTK experiment (paper: 10 trials, 2,000 GD steps, float64)
    "dn_L1": 10, "dn_L2": 100, "dn_L3": 1000, "dn_CL": 50.0, "dn_rho": 1.0, "dn_beta": 1.0,
    "dn_trials": 10, "dn_steps": 2000, "dn_slr": 0.1,
    # digits training
    "dn_train": True, "dn_arch": "mlp", "dn_data": "digits", "dn_L": 100, "dn_tCL": 5.0,
    "dn_tsteps": 100, "dn_batch": 512, "dn_lr": 1e-4, "dn_sweep": True, "dn_tseeds": 1,
}

# NTK experiment (GD on 200 points, width 4, float64), re-timed 2026-11-24 (quiet; depths 10 / 100 /
# 1,000, 2,000 steps: 2.5 / 5.7 / 20.3 s for a depth's first trial, 0.11 / 1.7 s for the next ones):
# per layer and step, plus a compilation at each new depth (3.5 s with training, 2.1 s for the kernel
# at initialisation only). The earlier constant (5e-5, timed at load average ~20) said 4 / 13 / 103 s.
KERNEL_SECONDS_PER_LAYER_STEP = 8.3e-6
KERNEL_COMPILE_SECONDS = {True: 3.5, False: 2.1}    # with / without training steps
# CNN SGD, float32, re-timed 2026-11-24 (quiet): the lee2022_cnn preset's two runs (L = 100, 30 steps,
# batch 64) took 91.4 s against 155 s at the earlier 1.6e-10 s/flop (which came from the MLP's DN1).
TRAIN_SECONDS_PER_FLOP = 9.2e-11
# MLP training, re-timed 2026-11-24 (quiet, each job alone, digits, batch 128): L = 1,000 with 10 / 60
# steps 10.4 / 22.9 s, L = 300 with 20 steps 10.1 s, L = 100 with 10 steps 5.8 s; the CNN's flop rate
# put them at 94 / 129 / 32 / 12 s. Fitted: a compile, SGD steps and the (forward-only, large-batch)
# loss/accuracy records each at their own rate: 10.5 / 22.8 / 7.6 / 5.8 s (within 25 %).
MLP_TRAIN_COMPILE_SECONDS = 5.3
MLP_TRAIN_SECONDS_PER_STEP_FLOP = 5.8e-11
MLP_TRAIN_SECONDS_PER_EVAL_FLOP = 5.0e-12


def values_with_defaults(values: Mapping[str, Any]) -> dict:
    out = dict(DEFAULTS)
    out.update({k: v for k, v in values.items() if k in DEFAULTS})
    return out


def kernel_depths(v: Mapping[str, Any]) -> list[int]:
    return sorted({int(v[k]) for k in ("dn_L1", "dn_L2", "dn_L3") if int(v[k]) > 0})


def distance_depths(max_depth: int) -> list[int]:
    """10, 30, 100, ... up to max_depth (at least two)."""
    grid = [d for d in (10, 30, 100, 300, 1000, 3000, 10_000) if d <= max(max_depth, 30)]
    return grid


def ntk_spec(v: Mapping[str, Any], depth: int) -> nc.DeepNarrowMLP:
    return nc.DeepNarrowMLP(depth=int(depth), d_in=2, d_out=1, C_L=float(v["dn_CL"]),
                            rho=float(v["dn_rho"]), beta=float(v["dn_beta"]))


def train_spec(v: Mapping[str, Any], init: str):
    common = dict(depth=int(v["dn_L"]), d_out=10, C_L=float(v["dn_tCL"]), rho=float(v["dn_rho"]),
                  beta=float(v["dn_beta"]), init=init)
    if v["dn_arch"] == "cnn":
        return nc.DeepNarrowCNN(c_in=1, **common)
    return nc.DeepNarrowMLP(d_in=64, **common)


def digits_data(arch: str, data: str):
    """x, y, x_test, y_test of the chosen data set (images 8x8x1 for the CNN)."""
    x, y, xt, yt = nc.digits_onehot(N_TEST, seed=0)
    if data == "digits_500":
        x, y = x[:500], y[:500]
    if arch == "cnn":
        x, xt = x.reshape(-1, 8, 8, 1), xt.reshape(-1, 8, 8, 1)
    return x, y, xt, yt


# ---- job computations (pure functions of their params) -------------------------------------------
def compute_kernel(p: Mapping[str, Any], progress) -> dict:
    spec = nc.DeepNarrowMLP(depth=p["depth"], d_in=2, d_out=1, C_L=p["C_L"], rho=p["rho"], beta=p["beta"])
    trial = nc.deep_narrow_kernel_trial(spec, p["seed"], p["steps"], p["scaled_lr"],
                                        progress=lambda f: progress(f, f"L = {p['depth']:,}, trial {p['seed'] + 1}"))
    return pack(trial)


def compute_distance(p: Mapping[str, Any], progress) -> dict:
    spec = nc.DeepNarrowMLP(depth=10, d_in=2, d_out=1, C_L=p["C_L"], rho=p["rho"], beta=p["beta"])
    dist = nc.limit_distances(spec, p["depths"], range(p["seeds"]))
    return {"depths": np.asarray(p["depths"]), "distance": dist}


def compute_train(p: Mapping[str, Any], progress) -> dict:
    v = {"dn_L": p["depth"], "dn_tCL": p["C_L"], "dn_rho": p["rho"], "dn_beta": p["beta"], "dn_arch": p["arch"]}
    spec = train_spec(v, p["init"])
    x, y, xt, yt = digits_data(p["arch"], p["data"])
    run = nc.train(spec, x, y, xt, yt, lr=p["lr"], steps=p["steps"], batch_size=min(p["batch"], x.shape[0]),
                   seeds=[p["seed"]], record_every=max(1, p["steps"] // 25), keep_params=False,
                   progress=lambda f: progress(f, f"{p['init']}, lr {p['lr']:g}"))
    return {"steps": run.steps, "train_loss": run.train_loss[0], "test_loss": run.test_loss[0],
            "test_accuracy": run.test_accuracy[0], "diverged": np.asarray(run.diverged[0])}


# ---- jobs ----------------------------------------------------------------------------------------
def kernel_jobs(v: Mapping[str, Any]) -> list[Job]:
    """One job per (depth, trial) of the NTK experiment, depth-major."""
    jobs = []
    for depth in kernel_depths(v):
        for seed in range(int(v["dn_trials"])):
            params = {"depth": depth, "C_L": float(v["dn_CL"]), "rho": float(v["dn_rho"]),
                      "beta": float(v["dn_beta"]), "seed": seed, "steps": int(v["dn_steps"]),
                      "scaled_lr": float(v["dn_slr"])}
            steps = int(v["dn_steps"])
            seconds = (0.05 + KERNEL_SECONDS_PER_LAYER_STEP * depth * max(steps, 1)
                       + (KERNEL_COMPILE_SECONDS[steps > 0] if seed == 0 else 0.0))
            jobs.append(Job("deep_narrow.kernel", params, compute=lambda pr, p=params: compute_kernel(p, pr),
                            seconds=seconds))
    return jobs


def distance_job(v: Mapping[str, Any]) -> Job:
    depths = distance_depths(max(kernel_depths(v) or [1000]))
    params = {"depths": depths, "C_L": float(v["dn_CL"]), "rho": float(v["dn_rho"]),
              "beta": float(v["dn_beta"]), "seeds": int(v["dn_trials"])}
    return Job("deep_narrow.distance", params, compute=lambda pr: compute_distance(params, pr),
               seconds=2.0 + 2e-3 * sum(depths) * int(v["dn_trials"]))


def train_runs(v: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(init, lr) of every run: the special init at the chosen lr; Kaiming at the paper's sweep (or
    at the chosen lr)."""
    lr = float(v["dn_lr"])
    kaiming = PAPER_LRS if v["dn_sweep"] else (lr,)
    return [("special", lr)] + [("kaiming", k) for k in kaiming]


def train_jobs(v: Mapping[str, Any]) -> list[Job]:
    if not v["dn_train"]:
        return []
    n_train = 500 if v["dn_data"] == "digits_500" else 1797 - N_TEST
    batch = min(int(v["dn_batch"]), n_train)
    width = 12 if v["dn_arch"] == "cnn" else 75
    per_layer = (64 * 9 if v["dn_arch"] == "cnn" else 1) * 2 * width * width
    evals = 26 * (n_train + N_TEST)          # the loss/accuracy records on the full sets
    step_flops = int(v["dn_L"]) * per_layer * 3 * batch * int(v["dn_tsteps"])
    eval_flops = int(v["dn_L"]) * per_layer * evals
    if v["dn_arch"] == "cnn":
        seconds = 3.0 + TRAIN_SECONDS_PER_FLOP * (step_flops + eval_flops)
    else:
        seconds = (MLP_TRAIN_COMPILE_SECONDS + MLP_TRAIN_SECONDS_PER_STEP_FLOP * step_flops
                   + MLP_TRAIN_SECONDS_PER_EVAL_FLOP * eval_flops)
    jobs = []
    for init, lr in train_runs(v):
        for seed in range(int(v["dn_tseeds"])):
            params = {"arch": v["dn_arch"], "data": v["dn_data"], "depth": int(v["dn_L"]),
                      "C_L": float(v["dn_tCL"]), "rho": float(v["dn_rho"]), "beta": float(v["dn_beta"]),
                      "init": init, "lr": lr, "steps": int(v["dn_tsteps"]), "batch": batch, "seed": seed}
            jobs.append(Job("deep_narrow.train", params, compute=lambda pr, p=params: compute_train(p, pr),
                            seconds=seconds))
    return jobs


def jobs_for(values: Mapping[str, Any]) -> list[Job]:
    """Every long job of the page for the control values `values` (missing keys: DEFAULTS)."""
    v = values_with_defaults(values)
    return kernel_jobs(v) + [distance_job(v)] + train_jobs(v)
