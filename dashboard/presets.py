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

    "arora_table1_digits": {
        "page": "image_kernels",
        "label": "Arora et al. Table 1 on digits: CNTK-GAP vs CNTK-V, depth 1-6",
        "source": "Arora et al. 2019 (seed 001), Table 1 protocol on scikit-learn's digits: ReLU, "
                  "sigma_w sqrt 2, sigma_b 0, kernels for 1..6 conv layers (paper's depth 2..7), "
                  "1,000 training and 500 test images, no regulariser, targets 0.9 / -0.1; finite "
                  "CNNs of 16 channels by SGD.",
        "values": {"depth": 6, "activation": "relu", "sigma_w": 1.4, "sigma_b": 0.0, "seed": 0,
                   "ik_data": "digits", "ik_ntrain": 1000, "ik_ntest": 500, "ik_ridge": 0.0,
                   "ik_readout": "gap", "ik_cnn": True, "ik_channels": 16, "ik_steps": 300, "ik_lr": 2.0},
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
