"""Jobs of the image-kernels page (seed 001, Arora et al. 2019): exact CNTK / CNN-GP kernels by
depth used as classifiers, the fully connected NTK, and finite CNNs trained by SGD.

`DEFAULTS` is the one dict of the page's defaults (the page's controls read it too);
`jobs_for(values)` lists every long job for the control values (digits only: uploads are the
user's and are not shipped).
"""
from __future__ import annotations

import hashlib
from typing import Any, Mapping

import numpy as np

import ntk_core as nc
from ntk_core import _kernel_regression as kr

from .jobs import Job

DEFAULTS: dict[str, Any] = {
    "depth": 4, "sigma_w": 1.4, "sigma_b": 0.0, "activation": "relu", "seed": 0,
    "ik_data": "digits", "ik_ntrain": 500, "ik_ntest": 300, "ik_ridge": 0.0, "ik_readout": "gap",
    "ik_cnn": True, "ik_channels": 16, "ik_steps": 300, "ik_lr": 2.0, "ik_cnn_seeds": 1,
}
MAX_KERNEL_DEPTH = 12
HEATMAP_IMAGES = 60  # test images in the kernel heatmap (sorted by class)
# Cost model (seconds) on the 2-core machine: CNTK-GAP per image pair and per pair and layer,
# CNTK-V per pair and layer, each plus a compile (loading numba's cache); SGD per step, per image
# in the batch and per conv layer at 16 channels.
# Kernels re-timed 2026-11-25 (each job alone, x64 as in the app, one Python process), 8x8 digits,
# after the float64 sine change (eb6ca72); the model before ran 2.2-2.8x high on this machine:
#   GAP  300/100 images depth 4: 3.6 s (model 3.6); 600/200 depth 4: 11.0 s (11.0); 300/100
#        depth 8: 5.9 s (5.9); W8's 1,000/500 depth 6 in float64 (as the app): 50 s (48).
#   flatten: 0.22 / 0.74 / 0.57 s (model 0.28 / 0.83 / 0.47).
GAP_SECONDS_PER_PAIR = 3.5e-6
GAP_SECONDS_PER_PAIR_LAYER = 7.3e-6
GAP_COMPILE_SECONDS = 1.1
FLAT_SECONDS_PER_PAIR_LAYER = 0.6e-6
FLAT_COMPILE_SECONDS = 0.1
# Activations without a closed-form dual (tanh, softplus, ...) go through ntk_core's JAX 2-D
# quadrature per pixel pair, far slower (tanh, depth 3, 8x8 digits, same day, warm): GAP 6 / 21
# image pairs 18.9 / 66.3 s (3.2 s per pair), flatten 210 / 820 pairs 15.5 / 40.5 s.
QUAD_GAP_SECONDS_PER_PAIR_LAYER = 1.05
QUAD_FLAT_SECONDS_PER_PAIR_LAYER = 0.0137
QUAD_COMPILE_SECONDS = 7.0
# SGD (500 digits, batch 64, depth 1-4, same day): 300 steps at 16 channels, all 8 jobs 16.3 s (model
# 12.6); 3,000 steps 44.9 s (54); 300 steps at 32 channels 18.8 s (23). The model before
# (4e-5, channels squared, 3 s start) ran 2.4-4.5x high.
SGD_SECONDS = 1.2e-5
SGD_START_SECONDS = 1.0


def settings(values: Mapping[str, Any]) -> dict:
    v = {**DEFAULTS, **{k: values[k] for k in values if k in DEFAULTS}}
    v["depth"] = int(min(max(int(v["depth"]), 1), MAX_KERNEL_DEPTH))
    return v


def digits_split(n_train: int, n_test: int, seed: int) -> kr.ImageSplit:
    x, y = nc.digits_images()
    return nc.prepare_images(x, y, n_train, n_test, seed, scale=16.0)


def data_id(split: kr.ImageSplit) -> str:
    h = hashlib.sha256()
    for a in (split.x_train, split.y_train, split.x_test, split.y_test):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def heatmap_subset(y_test, n_classes: int, count: int = HEATMAP_IMAGES) -> np.ndarray:
    """Up to `count` test images, about equally many per class, sorted by class."""
    per = max(1, count // n_classes)
    idx = [np.flatnonzero(y_test == c)[:per] for c in range(n_classes)]
    return np.concatenate(idx).astype(np.int64)


def kernel_compute(split: kr.ImageSplit, v: Mapping[str, Any], readout: str):
    """Per depth 1..D: NTK and NNGP regression accuracy, predictions, NTK scores, the training
    kernel's condition number and the NTK among a class-sorted subset of test images."""
    cnn = nc.CNN(depth=v["depth"], w_std=v["sigma_w"], b_std=v["sigma_b"], activation=v["activation"],
                 readout=readout)

    def compute(progress):
        n_tr, n_te = len(split.y_train), len(split.y_test)
        sub = heatmap_subset(split.y_test, split.n_classes)
        pairs = np.array([n_tr * (n_tr + 1) / 2, n_te * n_tr, len(sub) * (len(sub) + 1) / 2])
        done = np.concatenate([[0], np.cumsum(pairs)]) / pairs.sum()
        parts = []
        for k, (a, b) in enumerate(((split.x_train, None), (split.x_test, split.x_train), (split.x_test[sub], None))):
            parts.append(nc.infinite_kernels_by_depth(
                cnn, a, b, progress=lambda f, k=k: progress(done[k] + f * (done[k + 1] - done[k]),
                                                            f"kernels {readout}")))
        return regression_results(parts[0], parts[1], parts[2], split, float(v["ik_ridge"]), sub)

    return compute


def regression_results(k_tt, k_te, k_sub, split, ridge, sub=None):
    """Flat result arrays of kernel regression at every depth of {d: Kernels}."""
    depths = sorted(k_tt)
    targets = nc.class_targets(split.y_train, split.n_classes)
    out = {"depths": np.asarray(depths)}
    for name in ("ntk", "nngp"):
        acc, pred, cond, scores = [], [], [], []
        for d in depths:
            ktt, kte = getattr(k_tt[d], name), getattr(k_te[d], name)
            cond.append(nc.condition_number(ktt))
            try:
                s = nc.kernel_regression(ktt, kte, targets, diag_reg=ridge)
                acc.append(nc.accuracy(s, split.y_test))
            except ValueError:
                s = np.full((len(split.y_test), split.n_classes), np.nan)
                acc.append(np.nan)
            pred.append(np.argmax(np.nan_to_num(s, nan=-np.inf), axis=1) if np.all(np.isfinite(s)) else np.full(len(s), -1))
            scores.append(s)
        out[f"acc_{name}"] = np.asarray(acc)
        out[f"pred_{name}"] = np.asarray(pred, np.int16)
        out[f"cond_{name}"] = np.asarray(cond)
        if name == "ntk":
            out["scores_ntk"] = np.asarray(scores, np.float16)
    if k_sub is not None:
        out["k_sub"] = np.asarray([k_sub[d].ntk for d in depths], np.float32)
        out["sub_idx"] = np.asarray(sub, np.int64)
    return out


def fc_compute(split: kr.ImageSplit, v: Mapping[str, Any]):
    """Fully connected NTK / NNGP of the flattened images at depths 1..D (hidden layers)."""

    def compute(progress):
        xtr = split.x_train.reshape(len(split.x_train), -1)
        xte = split.x_test.reshape(len(split.x_test), -1)
        k_tt, k_te = {}, {}
        for d in range(1, v["depth"] + 1):
            mlp = nc.MLP(depth=d, w_std=v["sigma_w"], b_std=v["sigma_b"], activation=v["activation"])
            k_tt[d], k_te[d] = nc.infinite_kernels(mlp, xtr), nc.infinite_kernels(mlp, xte, xtr)
            progress(d / v["depth"], f"depth {d}")
        res = regression_results(k_tt, k_te, None, split, float(v["ik_ridge"]))
        return {k: res[k] for k in ("depths", "acc_ntk", "acc_nngp", "cond_ntk")}

    return compute


def cnn_compute(split: kr.ImageSplit, v: Mapping[str, Any], depth: int, readout: str, seed: int):
    cnn = nc.CNN(depth=depth, channels=int(v["ik_channels"]), w_std=v["sigma_w"], b_std=v["sigma_b"],
                 activation=v["activation"], readout=readout)

    def compute(progress):
        progress(0.0, f"CNN depth {depth} {readout}")
        targets = nc.class_targets(split.y_train, split.n_classes)
        scores, loss = nc.train_cnn_classifier(cnn, split.x_train, targets, split.x_test,
                                               steps=int(v["ik_steps"]), lr=float(v["ik_lr"]),
                                               batch=64, seed=seed)
        acc = nc.accuracy(scores, split.y_test) if np.all(np.isfinite(scores)) else np.nan
        return {"acc": np.asarray(acc), "loss": np.asarray(loss)}

    return compute


CONSTANT_PREDICTOR_LOSS = 0.5 * (0.9**2 + 9 * 0.1**2)  # half squared error of predicting 0, 10 classes


def cnn_summary(results, n_depths: int) -> tuple[np.ndarray, np.ndarray]:
    """Test accuracy and final training loss of the finite-CNN jobs (`jobs_for_split`'s order:
    readout gap then flatten, depth, seed), each (2, n_depths), the mean over seeds; NaN where a
    job has no result."""
    def field(name):
        vals = [float(r[name]) if r is not None else np.nan for r in results]
        return np.asarray(vals, float).reshape(2, n_depths, -1).mean(axis=2)

    return field("acc"), field("loss")


def net_params(v: Mapping[str, Any]) -> dict:
    return {k: v[k] for k in ("depth", "sigma_w", "sigma_b", "activation", "ik_ridge")}


def kernel_seconds(readout: str, activation: str, pairs: float, depth: int, pixels: int) -> float:
    """Estimated seconds of one kernel job: `pairs` image pairs of `pixels` pixels, all depths up to
    `depth` (cost model above; compiled kernels for closed-form activations, 2-D quadrature else)."""
    if activation in nc.CLOSED_FORM_ACTIVATIONS:
        if readout == "gap":
            return (pairs * (GAP_SECONDS_PER_PAIR + depth * GAP_SECONDS_PER_PAIR_LAYER) * pixels**2 / 4096
                    + GAP_COMPILE_SECONDS)
        return pairs * depth * FLAT_SECONDS_PER_PAIR_LAYER + FLAT_COMPILE_SECONDS
    if readout == "gap":
        return pairs * depth * QUAD_GAP_SECONDS_PER_PAIR_LAYER * pixels**2 / 4096 + QUAD_COMPILE_SECONDS
    return pairs * depth * QUAD_FLAT_SECONDS_PER_PAIR_LAYER * pixels / 64 + QUAD_COMPILE_SECONDS


def jobs_for_split(values: Mapping[str, Any], split: kr.ImageSplit, source: str) -> dict[str, list[Job]]:
    """The page's jobs for a prepared data split: {"kernels": [gap, flatten], "fc": [...],
    "cnn": [one per (depth, readout, seed)]}. source names the data (digits settings or upload hash)."""
    v = settings(values)
    base = {"data": source, **net_params(v)}
    n_tr, n_te = len(split.y_train), len(split.y_test)
    n_sub = len(heatmap_subset(split.y_test, split.n_classes))
    pairs = n_tr * (n_tr + 1) / 2 + n_te * n_tr + n_sub * (n_sub + 1) / 2
    px = split.x_train.shape[1] * split.x_train.shape[2]
    kernels = [
        Job("image_kernels.cntk", {**base, "readout": ro}, kernel_compute(split, v, ro),
            seconds=kernel_seconds(ro, v["activation"], pairs, v["depth"], px), version="1")
        for ro in ("gap", "flatten")
    ]
    fc = [Job("image_kernels.fc", base, fc_compute(split, v), seconds=0.5 + 2e-8 * pairs * v["depth"], version="1")]
    cnn = []
    if v["ik_cnn"]:
        for ro in ("gap", "flatten"):
            for d in range(1, v["depth"] + 1):
                for s in range(int(v["ik_cnn_seeds"])):
                    p = {**base, "readout": ro, "cnn_depth": d, "cnn_seed": int(v["seed"]) + s,
                         "channels": int(v["ik_channels"]), "steps": int(v["ik_steps"]), "lr": float(v["ik_lr"])}
                    cost = (SGD_SECONDS * int(v["ik_steps"]) * d * (int(v["ik_channels"]) / 16) ** 1.7 * 64
                            + SGD_START_SECONDS)
                    cnn.append(Job("image_kernels.cnn", p, cnn_compute(split, v, d, ro, int(v["seed"]) + s),
                                   seconds=cost, version="1"))
    return {"kernels": kernels, "fc": fc, "cnn": cnn}


def digits_source(v: Mapping[str, Any]) -> str:
    return f"digits n_train={int(v['ik_ntrain'])} n_test={int(v['ik_ntest'])} seed={int(v['seed'])}"


def jobs_for(values: Mapping[str, Any]) -> list[Job]:
    """Every long job of the page for these control values (digits data)."""
    v = settings(values)
    if v["ik_data"] != "digits":
        return []
    split = digits_split(int(v["ik_ntrain"]), int(v["ik_ntest"]), int(v["seed"]))
    groups = jobs_for_split(v, split, digits_source(v))
    return groups["kernels"] + groups["fc"] + groups["cnn"]


# Arora et al. 2019, Table 1 (CIFAR-10, 50k training images), from ../shared/docs/papers.md.
# "depth" there counts conv layers + 1.
PAPER_TABLE1 = {
    "depth": [3, 4, 6, 11, 21],
    "CNTK-V": [64.47, 65.52, 66.03, 65.90, 64.09],
    "CNTK-GAP": [70.47, 75.93, 76.73, 77.43, 77.08],
    "CNN-V": [59.97, 60.20, 64.11, 69.48, 75.57],
    "CNN-GAP": [63.81, 80.93, 83.75, 82.92, 83.30],
}
