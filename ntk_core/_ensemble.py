"""Summaries of an ensemble of trained networks (numpy).

The loss convention is the one of nc.train and nc.ntk_gp: loss = 1/(2n) sum_i (f(x_i) - y_i)^2.
An ensemble's spread is its sample standard deviation over networks (ddof = 1), the finite-width
counterpart of the NTK-GP's predictive sd (seed 003, sec. 6.2; Lee et al. 2019, Fig. 3).
"""
from __future__ import annotations

import numpy as np


def half_mse(predictions, targets) -> np.ndarray:
    """1/(2n) sum_i (f_i - y_i)^2 over the last axis; targets broadcast against predictions."""
    predictions = np.asarray(predictions, dtype=float)
    targets = np.asarray(targets, dtype=float).reshape(-1)
    if predictions.shape[-1] != targets.shape[0]:
        raise ValueError(f"targets must have {predictions.shape[-1]} values, got {targets.shape[0]}")
    return 0.5 * np.mean((predictions - targets) ** 2, axis=-1)


def ensemble_mean_sd(predictions) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample sd (ddof = 1; zero for one network) over the leading (network) axis."""
    predictions = np.asarray(predictions, dtype=float)
    if predictions.ndim < 1 or predictions.shape[0] == 0:
        raise ValueError("predictions must have a non-empty leading network axis")
    mean = predictions.mean(axis=0)
    if predictions.shape[0] == 1:
        return mean, np.zeros_like(mean)
    return mean, predictions.std(axis=0, ddof=1)
