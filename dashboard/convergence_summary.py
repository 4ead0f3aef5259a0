"""Display helpers of the kernel-convergence page: the width grid and summaries of per-seed results.

They shape numbers for charts and captions (no NTK math), so they live in the UI layer, not in ntk_core.
"""
from __future__ import annotations

import math

import numpy as np

import ntk_core as nc


def _positive_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def width_sweep(min_width: int = 32, max_width: int = 8192, per_octave: int = 1) -> list[int]:
    """Widths 2^k from min_width to max_width (per_octave values per doubling, rounded)."""
    min_width = _positive_int("min_width", min_width, 1, nc.MAX_SWEEP_WIDTH)
    max_width = _positive_int("max_width", max_width, min_width + 1, nc.MAX_SWEEP_WIDTH)
    per_octave = _positive_int("per_octave", per_octave, 1, 4)
    n = int(round(per_octave * math.log2(max_width / min_width))) + 1
    return sorted(set(int(round(v)) for v in np.geomspace(min_width, max_width, n)))


def seed_summary(values, axis: int = -2):
    """Mean, minimum and maximum over seeds (axis -2 of (..., n_seeds, n))."""
    v = np.asarray(values, np.float64)
    return v.mean(axis=axis), v.min(axis=axis), v.max(axis=axis)


def relative_change(init, trained) -> float:
    """Mean over seeds of ||Theta_trained - Theta_init|| / ||Theta_init|| (rows (n_seeds, n))."""
    a = np.asarray(init, np.float64)
    b = np.asarray(trained, np.float64)
    return float(np.mean(np.linalg.norm(b - a, axis=-1) / np.linalg.norm(a, axis=-1)))


def reference_line(widths, errors, slope: float = -0.5):
    """C m^slope through the data (C from the mean of log e - slope log m), at `widths`."""
    m = np.asarray(widths, np.float64)
    e = np.asarray(errors, np.float64).reshape(m.size, -1)
    c = np.mean(np.log(e) - slope * np.log(m)[:, None])
    return np.exp(c) * m ** slope
