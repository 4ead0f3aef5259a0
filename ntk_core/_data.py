"""1-D regression data sets of the paper figures, and a validated loader for users' CSV files.

- "cubic": y = x^3 on [0, 1], training x ~ U(0, 1)  (seed 003, Figs 1-3: 5 points, noise sd 0.01)
- "sin":   y = sin(x) on [-pi, pi], training x ~ U(-pi, pi)  (Neural Tangents cookbook: 5 points,
  noise sd 0.1, 50 test points on a grid)

Noise: the standard normal draws eps_i come from `seed` alone and are scaled by `noise`, so moving
the noise level changes only the size of the perturbation, not the points.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math

import numpy as np

from ._validation import MAX_DATASET_POINTS, MAX_DATASET_TEST_POINTS, check_int, check_number

MAX_CSV_ROWS = MAX_DATASET_POINTS
MAX_CSV_BYTES = 1_000_000
DATASETS = ("cubic", "sin")

_DOMAINS = {"cubic": (0.0, 1.0), "sin": (-math.pi, math.pi)}


def _libm(fn, *args):
    """fn (a `math` function) elementwise, float64. The data's bits must not depend on numpy's
    version or the CPU: results are stored under a hash of the data (dashboard/store.py), and the
    shipped preset results must be found on every install. numpy 2.4's x**3 differs from libm's
    pow in the last bit for ~5 % of x (it multiplies), which hid the shipped Fig 1-3 results."""
    return np.vectorize(fn, otypes=[np.float64])(*args)


_TARGETS = {"cubic": lambda x: _libm(math.pow, x, 3.0), "sin": lambda x: _libm(math.sin, x)}
LATEX = {"cubic": r"y = x^3", "sin": r"y = \sin x"}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Training points (n, 1), test grid (m, 1) and the true function on it ((m, 1) or None)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray | None
    domain: tuple[float, float]


def make_dataset(name: str, n_train: int = 5, noise: float = 0.01, seed: int = 0,
                 n_test: int = 100) -> Dataset:
    """The data set `name` ("cubic" or "sin") with `n_train` noisy points and a test grid.

    y_i = f(x_i) + noise * eps_i, x_i ~ U(domain), eps_i ~ N(0, 1), both drawn from `seed`;
    test inputs: `n_test` evenly spaced points over the domain, targets f(x) without noise.
    """
    if name not in DATASETS:
        raise ValueError(f"data set must be one of {', '.join(DATASETS)}, got {name!r}")
    n_train = check_int("n_train", n_train, 1, MAX_DATASET_POINTS)
    n_test = check_int("n_test", n_test, 2, MAX_DATASET_TEST_POINTS)
    noise = check_number("noise", noise)
    seed = check_int("seed", seed, 0, 2**32 - 1)
    lo, hi = _DOMAINS[name]
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, size=(n_train, 1))
    eps = rng.standard_normal((n_train, 1))
    f = _TARGETS[name]
    x_test = np.linspace(lo, hi, n_test).reshape(-1, 1)
    return Dataset(name=name, x_train=x, y_train=f(x) + noise * eps, x_test=x_test,
                   y_test=f(x_test), domain=(lo, hi))


def dataset_from_points(x, y, n_test: int = 100, margin: float = 0.1) -> Dataset:
    """A Dataset from the user's points: test grid over their x range widened by `margin` on
    each side, no true function."""
    x = np.asarray(x, dtype=float).reshape(-1, 1)
    y = np.asarray(y, dtype=float).reshape(-1, 1)
    if x.shape != y.shape or x.size == 0:
        raise ValueError("x and y must be non-empty and of the same length")
    n_test = check_int("n_test", n_test, 2, MAX_DATASET_TEST_POINTS)
    lo, hi = float(x.min()), float(x.max())
    pad = margin * (hi - lo) if hi > lo else 1.0
    x_test = np.linspace(lo - pad, hi + pad, n_test).reshape(-1, 1)
    return Dataset(name="upload", x_train=x, y_train=y, x_test=x_test, y_test=None,
                   domain=(lo - pad, hi + pad))


def load_xy_csv(file_like, max_rows: int = MAX_CSV_ROWS,
                max_bytes: int = MAX_CSV_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Read a CSV with a header row naming columns ``x`` and ``y`` (other columns are ignored).

    Accepts bytes, str, a path-less file object (text or binary). Returns 1-D float arrays
    (x, y). Raises ValueError with a message for the user when the file is too large (bytes),
    not UTF-8 text, empty, lacks an x or y column, has a value that is not a number or not
    finite (NaN, inf, empty cell), or has more than `max_rows` data rows.
    """
    if hasattr(file_like, "read"):
        raw = file_like.read(max_bytes + 1)
    else:
        raw = file_like
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if not isinstance(raw, (bytes, bytearray)):
        raise ValueError("the upload must be a CSV file")
    if len(raw) > max_bytes:
        raise ValueError(f"the file is too large (more than {max_bytes:,} bytes)")
    try:
        text = bytes(raw).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("the file is not UTF-8 text; upload a CSV file") from None
    if "\x00" in text:
        raise ValueError("the file is not text; upload a CSV file")
    rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    if not rows:
        raise ValueError("the file is empty; it needs a header row 'x,y' and data rows")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in ("x", "y") if c not in header]
    if missing:
        raise ValueError(
            f"the header must name columns 'x' and 'y' (found: {', '.join(rows[0]) or 'nothing'}; "
            f"missing: {', '.join(missing)})")
    ix, iy = header.index("x"), header.index("y")
    data = rows[1:]
    if not data:
        raise ValueError("the file has a header but no data rows")
    if len(data) > max_rows:
        raise ValueError(f"the file has {len(data):,} data rows; at most {max_rows:,} are allowed")
    xs, ys = np.empty(len(data)), np.empty(len(data))
    for i, row in enumerate(data, start=2):
        for col, idx, out in (("x", ix, xs), ("y", iy, ys)):
            cell = row[idx].strip() if idx < len(row) else ""
            try:
                value = float(cell)
            except ValueError:
                shown = cell if len(cell) <= 20 else cell[:20] + "..."
                raise ValueError(f"line {i}, column {col}: {shown!r} is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"line {i}, column {col}: {cell!r} is not a finite number")
            out[i - 2] = value
    return xs, ys
