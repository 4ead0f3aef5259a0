"""Presets: one click sets every control to reproduce a paper figure.

PRESETS maps an id (used in URLs as ``?preset=<id>``) to

    page    the page id (the file name in pages/ without number and .py, e.g. "finite_vs_infinite")
    label   what the selector shows
    source  the figure and paper (shown under the selector)
    values  control key -> value, shared keys (depth, width, sigma_w, sigma_b, activation, seed,
            presentation, theme) and the page's own keys; keys left out keep their current value.

Other pages add their presets here (one dict entry each). The settings come from
../shared/docs/papers.md.
"""
from __future__ import annotations

import math

_SEED003_NET = {"depth": 2, "sigma_w": 1.5, "sigma_b": 0.05, "activation": "erf"}
_SEED003_DATA = {"data": "cubic", "n_train": 5, "noise": 0.01}
# The essay follows the Neural Tangents cookbook, whose optimizers.sgd step on all 5 training points
# is full-batch gradient descent; learning rate 0.1 and 10,000 steps as in the cookbook.
_SEED003_TRAIN = {"opt": "GD", "lr": 0.1, "steps": 10000, "t": math.inf, "posterior": "ntk"}

_LAZY_NET = {"depth": 1, "sigma_w": 1.5, "sigma_b": 0.05, "activation": "erf"}
_LAZY_DATA = {"lz_data": "cubic", "lz_ntrain": 5, "lz_noise": 0.01}

PRESETS: dict[str, dict] = {
    "seed003_fig1": {
        "page": "finite_vs_infinite",
        "label": "Seed 003 Fig 1: width 512 vs infinite",
        "source": "Seed 003 (essay on infinite-width networks), Fig 1: y = x^3, 5 points, erf, "
                  "2 hidden layers, sigma_w 1.5, sigma_b 0.05, width 512, 10,000 steps.",
        "values": {**_SEED003_NET, **_SEED003_DATA, **_SEED003_TRAIN, "width": 512, "K": 1,
                   "seed": 0},
    },
    "seed003_fig2": {
        "page": "finite_vs_infinite",
        "label": "Seed 003 Fig 2: width 50 vs infinite",
        "source": "Seed 003, Fig 2: as Fig 1 with hidden width 50.",
        "values": {**_SEED003_NET, **_SEED003_DATA, **_SEED003_TRAIN, "width": 50, "K": 1,
                   "seed": 0},
    },
    "seed003_fig3": {
        "page": "finite_vs_infinite",
        "label": "Seed 003 Fig 3: ensemble of 100 width-512 nets",
        "source": "Seed 003, Fig 3: an ensemble of 100 width-512 networks, its mean and +/- 2 sd "
                  "against the NTK-GP band.",
        "values": {**_SEED003_NET, **_SEED003_DATA, **_SEED003_TRAIN, "width": 512, "K": 100,
                   "seed": 0},
    },
    "cookbook_sin": {
        "page": "finite_vs_infinite",
        "label": "Neural Tangents cookbook: sin(x)",
        "source": "Neural Tangents cookbook notebook: y = sin(x) + N(0, 0.1^2) noise, 5 points "
                  "on [-pi, pi], erf net, NNGP vs NTK posterior (diag_reg 1e-4), one net with "
                  "lr 0.1 for 10,000 steps.",
        "values": {**_SEED003_NET, "width": 512, "data": "sin", "n_train": 5, "noise": 0.1,
                   "opt": "GD", "lr": 0.1, "steps": 10000, "t": math.inf, "posterior": "ntk",
                   "K": 1, "seed": 0},
    },

    "seed002_fig1": {
        "page": "depth",
        "label": "Seed 002 Fig 1: ReLU on the sphere, L up to 30",
        "source": "Seed 002 (St-Arnaud et al.), Figure 1: normalized NTK entries and the predictor "
                  "against depth (L up to tens) for a ReLU network without bias on synthetic data "
                  "uniform on the sphere. Without bias ReLU's normalized kernels do not depend on "
                  "sigma_w.",
        "values": {"activation": "relu", "sigma_w": 1.4, "sigma_b": 0.0, "d_data": "sphere",
                   "d_n": 40, "d_dim": 3, "L_max": 30, "L": 10, "seed": 0},
    },
    "seed002_deep": {
        "page": "depth",
        "label": "Seed 002 claim at depth 10,000: ReLU, no bias",
        "source": "Seed 002's claim (normalized NTK -> matrix of ones) tested to L = 10,000; "
                  "papers.md notes that a plain recursion gives 1/4 off the diagonal.",
        "values": {"activation": "relu", "sigma_w": 1.4, "sigma_b": 0.0, "d_data": "sphere",
                   "d_n": 40, "d_dim": 3, "L_max": 10000, "L": 1000, "seed": 0},
    },

    "jacot_fig1": {
        "page": "kernel_convergence",
        "label": "Jacot et al. Fig 1: widths 500 and 10,000, init + 200 steps",
        "source": "Jacot, Gabriel, Hongler 2018, Fig 1: ReLU, 3 hidden layers (L = 4), beta = 0.1, "
                  "10 initialisations of widths 500 and 10,000, Theta(x0, x) on the circle at "
                  "t = 0 and after 200 GD steps (lr 1.0) on f*(x) = x1 x2, x ~ N(0, I).",
        "values": {"depth": 3, "activation": "relu", "sigma_w": 1.0, "sigma_b": 0.1,
                   "cv_w1": 500, "cv_w2": 10000, "cv_w3": 0, "cv_seeds": 10, "cv_steps": 200,
                   "cv_lr": 1.0, "cv_ntrain": 10, "cv_f2": False},
    },
    "jacot_fig2": {
        "page": "kernel_convergence",
        "label": "Jacot et al. Fig 2: function percentiles, widths 50 and 1,000",
        "source": "Jacot et al. 2018, Fig 2: widths 50 and 1,000, 4 points on the circle, 1,000 "
                  "GD steps at lr 1.0, percentiles 10/50/90 over 10 initialisations against the "
                  "infinite-width NTK-GP.",
        "values": {"depth": 3, "activation": "relu", "sigma_w": 1.0, "sigma_b": 0.1,
                   "cv_f2": True, "cv_f2w1": 50, "cv_f2w2": 1000, "cv_f2steps": 1000, "cv_f2n": 4,
                   "cv_lr": 1.0, "cv_seeds": 10, "cv_w1": 50, "cv_w2": 1000, "cv_w3": 0,
                   "cv_steps": 0},
    },
    "arora_rate": {
        "page": "kernel_convergence",
        "label": "Arora et al.: m^(-1/2) rate at init, ReLU, widths 64 .. 4,096",
        "source": "Arora et al. 2019: the finite-width NTK at initialisation approaches the "
                  "infinite one at about m^(-1/2); ReLU, 3 hidden layers, 3 seeds per width.",
        "values": {"depth": 3, "activation": "relu", "sigma_w": 1.0, "sigma_b": 0.1,
                   "cv_smin": 64, "cv_smax": 4096, "cv_sseeds": 3, "cv_strain": False,
                   "cv_steps": 0, "cv_w1": 64, "cv_w2": 4096, "cv_w3": 0, "cv_f2": False},
    },

    # ---- Deep narrow networks (seed 000: Lee, Choi, Ryu, No, ICML 2022) ----
    "lee2022_ntk": {
        "page": "deep_narrow",
        "label": "Lee et al. 2022: NTK of deep narrow MLPs at L = 10, 100, 1,000",
        "source": "Seed 000, NTK experiment: 200 points on the quarter circle, f*(x) = x1 x2, MSE, 2,000 "
                  "full-batch GD steps, 10 trials, float64, Theta(x0, x) / (L C_L^2) with x0 at pi/4. "
                  "C_L = 50 and the step 0.1 / (L C_L^2) are this page's choices (not stated in the seed).",
        "values": {"dn_L1": 10, "dn_L2": 100, "dn_L3": 1000, "dn_CL": 50.0, "dn_rho": 1.0,
                   "dn_beta": 1.0, "dn_trials": 10, "dn_steps": 2000, "dn_slr": 0.1, "dn_train": False,
                   "seed": 0},
    },
    "lee2022_mlp": {
        "page": "deep_narrow",
        "label": "Lee et al. 2022: depth-1,000 MLP on digits, special vs Kaiming",
        "source": "Seed 000, Experiments (left): depth-1,000 MLP, plain SGD, batch 512, MSE on one-hot "
                  "targets, the special init at lr 1e-5 against Kaiming at 1e-5 .. 1; MNIST replaced by "
                  "scikit-learn's digits; C_L = 5 as in the authors' code for L = 100. Batch 128 and 30 "
                  "steps (the paper: 512, longer) so the shipped results compute in minutes here.",
        "values": {"dn_train": True, "dn_arch": "mlp", "dn_data": "digits", "dn_L": 1000, "dn_tCL": 5.0,
                   "dn_tsteps": 30, "dn_batch": 128, "dn_lr": 1e-5, "dn_sweep": True, "dn_tseeds": 1,
                   "dn_rho": 1.0, "dn_beta": 1.0, "dn_L1": 0, "dn_L2": 0, "dn_L3": 100, "dn_trials": 2,
                   "dn_steps": 0, "dn_CL": 50.0, "seed": 0},
    },
    "lee2022_cnn": {
        "page": "deep_narrow",
        "label": "Lee et al. 2022: deep narrow CNN on digits (depth 100)",
        "source": "Seed 000, Experiments (right): CNN with channels (copy, random, 10 accumulators), 3x3 "
                  "convolutions, global average pooling, plain SGD, MSE. Depth 100 (the paper: 1,000) and "
                  "500 training images, batch 64, 30 steps, Kaiming at the same learning rate only (no sweep), "
                  "to fit this machine's budget for shipped results.",
        "values": {"dn_train": True, "dn_arch": "cnn", "dn_data": "digits_500", "dn_L": 100, "dn_tCL": 5.0,
                   "dn_tsteps": 30, "dn_batch": 64, "dn_lr": 1e-4, "dn_sweep": False, "dn_tseeds": 1,
                   "dn_rho": 1.0, "dn_beta": 1.0, "dn_L1": 0, "dn_L2": 0, "dn_L3": 100, "dn_trials": 2,
                   "dn_steps": 0, "dn_CL": 50.0, "seed": 0},
    },

    # ---- Lazy training (seed 003, section 2) ----
    "lazy_side_by_side": {
        "page": "lazy_training",
        "label": "Lazy training 1: width 1,024 vs its linearisation, y = x³",
        "source": "Seed 003, section 2.2: one hidden layer (erf, sigma_w 1.5, sigma_b 0.05), NTK "
                  "parameterization, 5 points of y = x³, 1,000 GD steps at half the stability boundary.",
        "values": {**_LAZY_NET, **_LAZY_DATA, "width": 1024, "lz_param": "ntk", "lz_lrmode": "multiple",
                   "lz_mult": 0.5, "lz_steps": 1000, "seed": 0},
    },
    "lazy_width_sweep": {
        "page": "lazy_training",
        "label": "Lazy training 2: widths 16 .. 16,384, NTK parameterization",
        "source": "Seed 003, section 2.2 (kappa_f ~ 2 m^-1/2 for one hidden layer; Chizat et al. 2019) "
                  "and Lee et al. 2019: distance f - f_lin, parameter and kernel change against width, "
                  "3 seeds per width.",
        "values": {**_LAZY_NET, **_LAZY_DATA, "width": 1024, "lz_param": "ntk", "lz_lrmode": "multiple",
                   "lz_mult": 0.5, "lz_steps": 1000, "lz_wmin": 16, "lz_wmax": 16384, "lz_seeds": 3,
                   "seed": 0},
    },
    "lazy_catapult": {
        "page": "lazy_training",
        "label": "Lazy training 3: learning rates 0.5, 1.5, 2.5 × 2/λ_max (catapult)",
        "source": "Lewkowycz et al. 2020 (the catapult mechanism): one hidden layer, width 1,024, GD "
                  "below 2/λ_max, between 2/λ_max and 4/λ_max, and above.",
        "values": {**_LAZY_NET, **_LAZY_DATA, "width": 1024, "lz_param": "ntk", "lz_m1": 0.5,
                   "lz_m2": 1.5, "lz_m3": 2.5, "lz_csteps": 300, "seed": 0},
    },

    # ---- Image kernels (seed 001: Arora et al. 2019) ----
    "arora_table1_digits": {
        "page": "image_kernels",
        "label": "Arora et al. Table 1 on digits: CNTK-GAP vs CNTK-V, depth 1-6",
        "source": "Arora et al. 2019 (seed 001), Table 1 protocol on scikit-learn's digits: ReLU, "
                  "sigma_w sqrt 2, sigma_b 0, kernels for 1..6 conv layers (paper's depth 2..7), "
                  "1,000 training and 500 test images, no regulariser, targets 0.9 / -0.1; finite "
                  "CNNs of 16 channels by 3,000 SGD steps (300 left the GAP nets near the constant "
                  "predictor).",
        "values": {"depth": 6, "activation": "relu", "sigma_w": 1.4, "sigma_b": 0.0, "seed": 0,
                   "ik_data": "digits", "ik_ntrain": 1000, "ik_ntest": 500, "ik_ridge": 0.0,
                   "ik_readout": "gap", "ik_cnn": True, "ik_channels": 16, "ik_steps": 3000, "ik_lr": 2.0},
    },
    "image_kernels_lecture": {
        "page": "image_kernels",
        "label": "CNTK on digits, small and fast (lecture)",
        "source": "Arora et al. 2019 (seed 001) protocol on 200 training and 100 test digits, ReLU, "
                  "depth 1-3, no finite CNNs: computes in seconds.",
        "values": {"depth": 3, "activation": "relu", "sigma_w": 1.4, "sigma_b": 0.0, "seed": 0,
                   "ik_data": "digits", "ik_ntrain": 200, "ik_ntest": 100, "ik_ridge": 0.0,
                   "ik_readout": "gap", "ik_cnn": False},
    },
}


def for_page(page_id: str | None) -> list[str]:
    """Ids of the presets of one page (all presets if page_id is None)."""
    return [pid for pid, p in PRESETS.items() if page_id is None or p["page"] == page_id]
