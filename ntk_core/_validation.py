"""Checks of user-facing arguments and the size limits they enforce (one place for both).

Every checker returns the value in a canonical type and raises ValueError with a message that names the
argument, so a page can show the message as it is. Each size limit has one meaning, stated by its name.
"""
from __future__ import annotations

import math
import operator

import numpy as np

# ---- Size limits (points are rows of an input array) ------------------------------------------
MAX_TRAIN_POINTS = 20_000          # training points of one `nc.train` run
MAX_KERNEL_POINTS = 20_000         # rows of x given to `nc.apply` / `nc.empirical_ntk` (and train's x_test)
MAX_GP_TRAIN_POINTS = 5_000        # training points of one `nc.ntk_gp` / `nc.ntk_gp_posterior` call
MAX_GP_TEST_POINTS = 20_000        # test points of one NTK-GP call
MAX_GP_TIMES = 100_000             # times of one NTK-GP call
MAX_DATASET_POINTS = 2_000         # training points of a built-in data set, data rows of an uploaded CSV
MAX_DATASET_TEST_POINTS = 2_000    # test grid of a data set
MAX_SWEEP_TRAIN_POINTS = 1_000     # Gaussian training set of the kernel-convergence task (Jacot et al.)
MAX_SEEDS = 1_000                  # networks of one `nc.train` ensemble
MAX_SWEEP_WIDTH = 16_384           # hidden width of a network of a kernel-convergence sweep
MAX_SWEEP_SEEDS = 100              # seeds per width of a kernel-convergence sweep
MAX_STEPS = 10_000_000             # GD/SGD steps of one `nc.train` run
MAX_SWEEP_STEPS = 20_000           # GD steps of one network of a kernel-convergence sweep


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """An integer (anything with __index__: Python, numpy; not bool) in [low, high] (high None: no upper
    bound)."""
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {bound}, got {value}")
    return value


def check_number(name: str, value, low: float = 0.0, strict: bool = False) -> float:
    """A finite float >= low (> low if strict)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < low or (strict and value == low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low:g}, got {value}")
    return value


def check_lr(lr) -> float:
    """A learning rate: a finite number > 0."""
    return check_number("lr", lr, 0.0, strict=True)


def check_targets(y, n: int, name: str, dtype=None) -> np.ndarray:
    """Targets as a finite vector of length n; accepts shape (n,) or (n, 1)."""
    y = np.asarray(y, dtype=dtype)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) or ({n}, 1), got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return y


def check_seeds(seeds, max_seeds: int = MAX_SEEDS) -> np.ndarray:
    """An integer or a non-empty sequence of at most max_seeds integers, as a 1-D integer array."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = [seeds]
    try:
        seeds = np.asarray(list(seeds))
    except TypeError:
        raise ValueError(f"seeds must be an integer or a sequence of integers, got {seeds!r}") from None
    if seeds.ndim != 1 or seeds.size == 0 or not np.issubdtype(seeds.dtype, np.integer):
        raise ValueError("seeds must be a non-empty sequence of integers")
    if seeds.size > max_seeds:
        raise ValueError(f"seeds has {seeds.size} entries, more than the limit of {max_seeds}")
    return seeds


def check_times(t, max_times: int = MAX_GP_TIMES) -> tuple[np.ndarray, bool]:
    """Times t >= 0 (np.inf allowed) as a 1-D float64 array, and whether t was a scalar."""
    try:
        arr = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"t must be a number, an array of numbers or np.inf, got {t!r}") from None
    scalar = arr.ndim == 0
    arr = arr.reshape(-1)
    if arr.size == 0:
        raise ValueError("t must contain at least one time")
    if arr.size > max_times:
        raise ValueError(f"t has {arr.size} times, more than the limit of {max_times}")
    if np.any(np.isnan(arr)) or np.any(arr < 0):
        raise ValueError("t must be >= 0 (np.inf allowed), got NaN or a negative time")
    return arr, scalar


def check_count(name: str, n: int, limit: int) -> int:
    """A number of points n in [1, limit] (the message names the limit)."""
    if n < 1:
        raise ValueError(f"{name} must contain at least one point")
    if n > limit:
        raise ValueError(f"{name} has {n} points, more than the limit of {limit}")
    return n
