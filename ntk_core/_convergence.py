"""Convergence of the finite-width NTK to the infinite-width one (Jacot et al. 2018, Figs 1-2;
Arora et al. 2019).

Kernel vs angle (Jacot Fig 1): Theta(x0, x) with x0 = (1, 0) and x = (cos g, sin g), g in [-pi, pi],
for a finite network at initialisation and after `steps` of full-batch gradient descent on
f*(x) = x1 x2 with training inputs x ~ N(0, I_2). Loss and time convention as `nc.train`:

    loss = 1/(2n) sum_i (f(x_i) - y_i)^2,   params <- params - lr grad loss   (t = lr * steps)

Convergence rate (Arora et al. 2019): the relative Frobenius distance

    e(m) = ||Theta_m - Theta_inf||_F / ||Theta_inf||_F

on a set of points, against width m; at initialisation e(m) ~ m^{-1/2} (one over the square root of
the number of terms in the per-layer averages), fitted by least squares on log e vs log m.

Jacot Fig 2: the network function on the circle after training on 4 points of the circle, percentiles
10/50/90 over initialisations, against the infinite-width NTK-GP Gaussian with the same percentiles.

Parameters are drawn with numpy's PCG64 generator (seeded by `seed`; W, b ~ N(0, 1) entrywise in
the layout of `nc.init_params`), which is 2-4x faster than jax's threefry at width 10,000; every
network is made, used and freed one at a time, so memory holds one network (plus its gradient).
"""
from __future__ import annotations

import dataclasses
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence

import jax.numpy as jnp
import numpy as np

from ._finite import count_params, empirical_ntk, layer_shapes
from ._gd import full_batch_gd
from ._infinite import infinite_kernels
from ._ntk_gp import ntk_gp
from ._spec import MLP
from ._training import train
from ._validation import (MAX_SWEEP_SEEDS, MAX_SWEEP_STEPS, MAX_SWEEP_TRAIN_POINTS, MAX_SWEEP_WIDTH, check_int,
                          check_lr)

# Size limits (ValueError naming the field when exceeded); widths, seeds, steps, training points in _validation.
MAX_ANGLES = 721
MAX_SWEEP_WIDTHS = 20
JACOT_X0 = (1.0, 0.0)
PERCENTILES = (10.0, 50.0, 90.0)


# ---------------------------------------------------------------------------------------------
# Inputs and validation
# ---------------------------------------------------------------------------------------------
def _check_mlp(spec):
    if not isinstance(spec, MLP):
        raise ValueError(f"spec must be an nc.MLP, got {type(spec).__name__}")
    check_int("width", spec.width, 1, MAX_SWEEP_WIDTH)


def circle_points(n_angles: int):
    """Angles g = linspace(-pi, pi, n_angles) and the points (cos g, sin g), shape (n_angles, 2)."""
    n_angles = check_int("n_angles", n_angles, 3, MAX_ANGLES)
    g = np.linspace(-np.pi, np.pi, n_angles)
    return g, np.stack([np.cos(g), np.sin(g)], axis=1)


def product_target(x):
    """Jacot et al.'s target f*(x) = x1 x2."""
    x = np.asarray(x, np.float64)
    return x[:, 0] * x[:, 1]


def gaussian_training_set(n_train: int, seed: int = 0):
    """n_train inputs x ~ N(0, I_2) and targets f*(x) = x1 x2 (Jacot et al. Fig 1)."""
    n_train = check_int("n_train", n_train, 1, MAX_SWEEP_TRAIN_POINTS)
    x = np.random.default_rng([int(seed), 7919]).standard_normal((n_train, 2))
    return x, product_target(x)


RNG_PIECES = 2                 # large matrices are drawn in this many row blocks, one thread each
RNG_PIECE_MIN = 1 << 20        # entries below which a matrix is drawn in one piece


def _draw_normal(seq, shape, dtype):
    """N(0, 1) array from SeedSequence `seq`: row blocks from spawned generators, filled by up to
    RNG_PIECES threads (numpy releases the GIL while filling); deterministic for a given seq."""
    out = np.empty(shape, dtype)
    n = RNG_PIECES if out.size >= RNG_PIECE_MIN and shape[0] >= RNG_PIECES else 1
    bounds = np.linspace(0, shape[0], n + 1).astype(int)
    seqs = seq.spawn(n)

    def fill(i):
        np.random.default_rng(seqs[i]).standard_normal(out=out[bounds[i]:bounds[i + 1]], dtype=dtype)

    if n == 1:
        fill(0)
    else:
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(fill, range(n)))
    return out


def fast_init_params(spec: MLP, seed: int, input_dim: int, dtype=np.float32):
    """MLP parameters W, b ~ N(0, 1) from numpy's PCG64 (layout of nc.init_params)."""
    _check_mlp(spec)
    root = np.random.SeedSequence([int(seed) % 2**32, 2018])
    layers = layer_shapes(spec, (int(input_dim),))
    seqs = root.spawn(2 * len(layers))
    return [{"w": jnp.asarray(_draw_normal(seqs[2 * i], ws, dtype)),
             "b": jnp.asarray(_draw_normal(seqs[2 * i + 1], bs, dtype))}
            for i, (ws, bs, _) in enumerate(layers)]


# ---------------------------------------------------------------------------------------------
# Full-batch gradient descent (one network) and the kernel before/after
# ---------------------------------------------------------------------------------------------
def _train_gd(spec, lr, steps, params, x, y):
    """Full-batch GD (`_gd.full_batch_gd`: deferred low-rank updates for the wide nets of Jacot et al.,
    which are memory-bound); returns (params, losses) with losses = (initial, final), or raises if it diverged."""
    params, first, last, alive = full_batch_gd(spec, lr, steps, params, x, y)
    loss = np.array([float(first), float(last)])
    if not (bool(alive) and np.all(np.isfinite(loss))):
        raise ValueError(f"lr: gradient descent diverged at lr = {lr:g} (width {spec.width}); "
                         "use a smaller learning rate")
    return params, loss


@dataclasses.dataclass
class FiniteKernelPair:
    """Empirical NTK rows of one network: `init` and `trained` have shape (n1, n2); `loss` holds the
    training loss before the first step and after the last, (2,)."""

    init: np.ndarray
    trained: Optional[np.ndarray]
    loss: Optional[np.ndarray]


def finite_kernel_pair(spec: MLP, seed: int, x1, x2, x_train=None, y_train=None, steps: int = 0,
                       lr: float = 1.0) -> FiniteKernelPair:
    """Empirical NTK Theta_m(x1, x2) of one float32 network (seed) at initialisation and, if steps > 0,
    after `steps` of full-batch GD at learning rate lr on (x_train, y_train)."""
    _check_mlp(spec)
    steps = check_int("steps", steps, 0, MAX_SWEEP_STEPS)
    x1 = np.asarray(x1, np.float32)
    x2 = np.asarray(x2, np.float32)
    params = fast_init_params(spec, seed, x1.shape[1])
    k0 = np.asarray(empirical_ntk(spec, params, x1, x2), np.float64)
    if steps == 0:
        return FiniteKernelPair(k0, None, None)
    lr = check_lr(lr)
    if x_train is None or y_train is None:
        raise ValueError("x_train and y_train are needed when steps > 0")
    xt = jnp.asarray(x_train, jnp.float32)
    yt = jnp.asarray(np.asarray(y_train).reshape(-1), jnp.float32)
    if xt.ndim != 2 or xt.shape[1] != x1.shape[1] or yt.shape[0] != xt.shape[0]:
        raise ValueError(f"x_train must have shape (n, {x1.shape[1]}) and y_train shape (n,)")
    params, loss = _train_gd(spec, lr, steps, params, xt, yt)
    kt = np.asarray(empirical_ntk(spec, params, x1, x2), np.float64)
    del params
    return FiniteKernelPair(k0, kt, loss)


def _with_width(spec: MLP, width: int) -> MLP:
    return dataclasses.replace(spec, width=int(width))


def _check_widths(widths, name="widths", max_n=MAX_SWEEP_WIDTHS):
    try:
        widths = [int(w) for w in widths]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of integers, got {widths!r}") from None
    if not 1 <= len(widths) <= max_n:
        raise ValueError(f"{name} must hold 1 to {max_n} widths, got {len(widths)}")
    for w in widths:
        check_int(name, w, 1, MAX_SWEEP_WIDTH)
    return widths


def _check_seeds(n_seeds):
    return check_int("n_seeds", n_seeds, 1, MAX_SWEEP_SEEDS)


# ---------------------------------------------------------------------------------------------
# Jacot Fig 1: kernel vs angle
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class KernelVsAngle:
    """Theta(x0, x(g)) for x(g) = (cos g, sin g). init/trained: (n_widths, n_seeds, n_angles);
    infinite: (n_angles,); final_loss: (n_widths, n_seeds)."""

    angles: np.ndarray
    widths: np.ndarray
    infinite: np.ndarray
    init: np.ndarray
    trained: Optional[np.ndarray]
    final_loss: Optional[np.ndarray]


def infinite_kernel_vs_angle(spec: MLP, n_angles: int):
    """Analytic infinite-width Theta_inf(x0, x(g)), shape (n_angles,)."""
    _check_mlp(spec)
    g, x = circle_points(n_angles)
    return np.asarray(infinite_kernels(spec, np.array([JACOT_X0]), x).ntk, np.float64)[0]


def angle_kernels(spec: MLP, seed: int, n_angles: int = 121, steps: int = 200, lr: float = 1.0,
                  n_train: int = 10, data_seed: int = 0) -> FiniteKernelPair:
    """One network's Theta(x0, x(g)) (rows of shape (1, n_angles)) at init and after GD on the Jacot
    task (n_train Gaussian inputs, target x1 x2): one unit of `kernel_vs_angle`."""
    _, x = circle_points(n_angles)
    x_train, y_train = gaussian_training_set(n_train, data_seed)
    return finite_kernel_pair(spec, seed, np.array([JACOT_X0]), x, x_train, y_train, steps, lr)





def kernel_vs_angle(spec: MLP, widths: Sequence[int], n_seeds: int = 10, n_angles: int = 121,
                    steps: int = 200, lr: float = 1.0, n_train: int = 10, data_seed: int = 0,
                    progress: Optional[Callable[[float], None]] = None) -> KernelVsAngle:
    """Jacot et al. Fig 1 for every width in `widths` and seeds 0 .. n_seeds-1 (see module doc)."""
    _check_mlp(spec)
    widths = _check_widths(widths)
    n_seeds = _check_seeds(n_seeds)
    g, x = circle_points(n_angles)
    x_train, y_train = gaussian_training_set(n_train, data_seed)
    inf = infinite_kernel_vs_angle(spec, n_angles)
    init = np.zeros((len(widths), n_seeds, len(g)))
    trained = np.zeros_like(init) if steps else None
    final = np.zeros((len(widths), n_seeds)) if steps else None
    total = sum(count_params(_with_width(spec, w), 2) for w in widths) * n_seeds
    done = 0
    for i, w in enumerate(widths):
        s = _with_width(spec, w)
        for j in range(n_seeds):
            pair = angle_kernels(s, j, n_angles, steps, lr, n_train, data_seed)
            init[i, j] = pair.init[0]
            if steps:
                trained[i, j] = pair.trained[0]
                final[i, j] = pair.loss[-1]
            done += count_params(s, 2)
            if progress is not None:
                progress(done / total)
    return KernelVsAngle(g, np.asarray(widths), inf, init, trained, final)


# ---------------------------------------------------------------------------------------------
# Arora et al.: relative Frobenius error against width
# ---------------------------------------------------------------------------------------------
def relative_frobenius(theta, theta_inf) -> float:
    """||theta - theta_inf||_F / ||theta_inf||_F."""
    theta_inf = np.asarray(theta_inf, np.float64)
    return float(np.linalg.norm(np.asarray(theta, np.float64) - theta_inf) / np.linalg.norm(theta_inf))


@dataclasses.dataclass
class SlopeFit:
    """log10 e = intercept + slope log10 m (least squares over every (width, seed) value)."""

    slope: float
    intercept: float

    def predict(self, widths):
        return 10.0 ** (self.intercept + self.slope * np.log10(np.asarray(widths, np.float64)))


def fit_loglog_slope(widths, errors) -> SlopeFit:
    """Least-squares line through (log m, log e); errors (n_widths,) or (n_widths, n_seeds)."""
    m = np.asarray(widths, np.float64)
    e = np.asarray(errors, np.float64)
    if e.ndim == 1:
        e = e[:, None]
    if e.shape[0] != m.size or m.size < 2:
        raise ValueError("widths: need at least two widths, one row of errors per width")
    if np.any(m <= 0) or np.any(~np.isfinite(e)) or np.any(e <= 0):
        raise ValueError("errors must be finite and positive, widths positive")
    lx = np.repeat(np.log10(m), e.shape[1])
    ly = np.log10(e).ravel()
    slope, intercept = np.polyfit(lx, ly, 1)
    return SlopeFit(float(slope), float(intercept))


@dataclasses.dataclass
class ConvergenceSweep:
    """errors_init / errors_trained: (n_widths, n_seeds) relative Frobenius distances to Theta_inf on
    `points`; fit_init / fit_trained: the log-log slope fits."""

    widths: np.ndarray
    points: np.ndarray
    errors_init: np.ndarray
    errors_trained: Optional[np.ndarray]
    fit_init: SlopeFit
    fit_trained: Optional[SlopeFit]


def sweep_points(n_points: int):
    """n_points equally spaced points of the unit circle (angles -pi + 2 pi k / n_points)."""
    n_points = check_int("n_points", n_points, 2, 256)
    g = np.linspace(-np.pi, np.pi, n_points, endpoint=False)
    return np.stack([np.cos(g), np.sin(g)], axis=1)


def width_errors(spec: MLP, seed: int, n_points: int = 16, steps: int = 0, lr: float = 1.0,
                 n_train: int = 10, data_seed: int = 0, theta_inf=None):
    """One network's relative Frobenius errors (at init, after training or None) on sweep_points:
    one unit of `convergence_sweep`."""
    pts = sweep_points(n_points)
    if theta_inf is None:
        theta_inf = np.asarray(infinite_kernels(spec, pts).ntk, np.float64)
    x_train, y_train = gaussian_training_set(n_train, data_seed)
    pair = finite_kernel_pair(spec, seed, pts, pts, x_train, y_train, steps, lr)
    e_t = relative_frobenius(pair.trained, theta_inf) if steps else None
    return relative_frobenius(pair.init, theta_inf), e_t


def convergence_sweep(spec: MLP, widths: Sequence[int], n_seeds: int = 5, n_points: int = 16,
                      steps: int = 0, lr: float = 1.0, n_train: int = 10, data_seed: int = 0,
                      progress: Optional[Callable[[float], None]] = None) -> ConvergenceSweep:
    """Relative Frobenius error of the empirical NTK Gram matrix on `n_points` points of the unit
    circle (angles linspace(-pi, pi) without the repeated endpoint) at every width and seed, at
    initialisation and (steps > 0) after GD on the Jacot task."""
    _check_mlp(spec)
    widths = _check_widths(widths)
    if len(widths) < 2:
        raise ValueError("widths: need at least two widths to fit a slope")
    n_seeds = _check_seeds(n_seeds)
    pts = sweep_points(n_points)
    theta_inf = np.asarray(infinite_kernels(spec, pts).ntk, np.float64)
    e0 = np.zeros((len(widths), n_seeds))
    et = np.zeros_like(e0) if steps else None
    total = sum(count_params(_with_width(spec, w), 2) for w in widths) * n_seeds
    done = 0
    for i, w in enumerate(widths):
        s = _with_width(spec, w)
        for j in range(n_seeds):
            e0[i, j], e_t = width_errors(s, j, n_points, steps, lr, n_train, data_seed, theta_inf)
            if steps:
                et[i, j] = e_t
            done += count_params(s, 2)
            if progress is not None:
                progress(done / total)
    return ConvergenceSweep(np.asarray(widths), pts, e0, et, fit_loglog_slope(widths, e0),
                            fit_loglog_slope(widths, et) if steps else None)


# ---------------------------------------------------------------------------------------------
# Jacot Fig 2: function percentiles vs the NTK-GP
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class FunctionPercentiles:
    """Network function on the circle after training. finite: (n_widths, 3, n_angles) percentiles
    10/50/90 over initialisations; gp: (3, n_angles) the same percentiles of the NTK-GP Gaussian;
    x_train angles and targets of the 4 (n) training points."""

    angles: np.ndarray
    widths: np.ndarray
    finite: np.ndarray
    gp: np.ndarray
    train_angles: np.ndarray
    y_train: np.ndarray
    warning: Optional[str] = None


def _normal_quantile(p):
    from statistics import NormalDist
    return NormalDist().inv_cdf(p)


def function_percentiles(spec: MLP, widths: Sequence[int] = (50, 1000), n_seeds: int = 10,
                         n_points: int = 4, steps: int = 1000, lr: float = 1.0, n_angles: int = 121,
                         progress: Optional[Callable[[float], None]] = None) -> FunctionPercentiles:
    """Jacot Fig 2: train `n_seeds` networks per width on n_points equally spaced points of the circle
    (targets x1 x2, first point at angle pi/8) with `nc.train`; the NTK-GP (`nc.ntk_gp` at
    t = lr * steps) gives mean and sd, its percentiles are mean + z_p sd."""
    _check_mlp(spec)
    widths = _check_widths(widths, max_n=4)
    n_seeds = check_int("n_seeds", n_seeds, 2, MAX_SWEEP_SEEDS)
    n_points = check_int("n_points", n_points, 1, 64)
    steps = check_int("steps", steps, 1, MAX_SWEEP_STEPS)
    lr = check_lr(lr)
    g, x = circle_points(n_angles)
    tg = np.pi / 8 + 2 * np.pi * np.arange(n_points) / n_points
    tg = np.angle(np.exp(1j * tg))
    xt = np.stack([np.cos(tg), np.sin(tg)], axis=1)
    yt = product_target(xt)
    finite = np.zeros((len(widths), len(PERCENTILES), len(g)))
    notes = []
    for i, w in enumerate(widths):
        def prog(f, i=i):
            if progress is not None:
                progress((i + f) / len(widths))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            run = train(_with_width(spec, w), xt, yt, x, product_target(x), lr=lr, steps=steps,
                        seeds=range(n_seeds), record_every=steps, progress=prog, keep_params=False)
        if run.warning:
            notes.append(f"width {w}: {run.warning}")
        finite[i] = np.percentile(run.predictions[:, -1, :], PERCENTILES, axis=0)
    post = ntk_gp(spec, xt, yt, x, t=lr * steps, kernel="ntk", compute_cov=False)
    mean = np.asarray(post.mean, np.float64).reshape(-1)
    sd = np.sqrt(np.clip(np.asarray(post.var, np.float64).reshape(-1), 0.0, None))
    gp = np.stack([mean + _normal_quantile(p / 100.0) * sd for p in PERCENTILES])
    return FunctionPercentiles(g, np.asarray(widths), finite, gp, tg, yt, "; ".join(notes) or None)


# ---------------------------------------------------------------------------------------------
# Cost model (for the page's "this will take long" question)
# ---------------------------------------------------------------------------------------------
SECONDS_PER_PARAM_INIT = 2e-8         # numpy normal draws (1.2e-8 measured quiet, width 10,000)
SECONDS_PER_PARAM_POINT = 1.5e-10     # forward + backward per evaluation point (empirical NTK)
SECONDS_PER_PARAM_STEP = 6e-10        # one full-batch GD step on a handful of points with deferred
                                      # updates (memory bound: 4.4e-10 measured quiet, i.e. 0.09 s
                                      # per step at width 10,000, depth 3)


def estimate_seconds(depth: int, widths: Sequence[int], n_seeds: int, n_points: int, steps: int,
                     input_dim: int = 2) -> float:
    """Rough wall-clock estimate of kernel_vs_angle / convergence_sweep (a linear cost model)."""
    total = 0.0
    for w in widths:
        p = count_params(MLP(depth=depth, width=int(w)), input_dim)
        per = p * (SECONDS_PER_PARAM_INIT + SECONDS_PER_PARAM_POINT * n_points
                   * (2 if steps else 1) + SECONDS_PER_PARAM_STEP * steps)
        total += per * n_seeds
    return total
