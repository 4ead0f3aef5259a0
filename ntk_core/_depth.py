"""Depth: correlation maps and the normalized infinite-width kernels of very deep networks.

Fully connected network in the NTK parameterization (conventions of ../shared/reference/README.md),
inputs x, x' in R^d. Layer counting: L = number of hidden layers (L = 1 is one hidden layer plus the
readout, the reference entries with n_hidden = 1); layer 0 is the input layer Sigma^0:

    Sigma^0(x,x') = w^2 x.x'/d + b^2,                       Theta^0 = Sigma^0
    Sigma^l       = w^2 E[phi(u) phi(v)] + b^2,              (u, v) ~ N(0, Sigma^{l-1} on {x, x'})
    Theta^l       = Sigma^l + w^2 E[phi'(u) phi'(v)] Theta^{l-1}

Normalized quantities (seed 002, St-Arnaud et al.: Definitions 3 and 4):

    rho^(l)(x,x')       = Sigma^l(x,x') / sqrt(Sigma^l(x,x) Sigma^l(x',x'))     (normalized NNGP)
    Theta_bar^(l)(x,x') = Theta^l(x,x') / sqrt(Theta^l(x,x) Theta^l(x',x'))     (normalized NTK)

Numerical safety at depth 10,000. The raw kernels leave the float64 range (e.g. ReLU with w^2/2 > 1
grows like (w^2/2)^L), the normalized ones do not, so the recursion carries only

    log q_i = log Sigma^l(x_i,x_i),  log T_i = log Theta^l(x_i,x_i),  rho_ij,  Theta_bar_ij

(as log q and u = log(T / q)) and every update uses ratios q'/q, T'/T computed directly, never
differences of large logs. Positively homogeneous activations (relu, leaky_relu, abs, identity:
E[phi(su)phi(sv)] = s^2 E[phi(u)phi(v)]) are evaluated at q = 1, which is exact. The others are
evaluated at q itself, except in two limits (`_dual`): below Q_LINEAR = 1e-8 by their linearization
phi(0) + phi'(0) u (error O(q); needed because e.g. sin's closed form loses eps / q to cancellation),
and gelu and softplus, whose variance can diverge, by their q -> infinity limit relu above
RELU_LIMIT_VARIANCE (error O(q^-3/2)); bounded activations (erf, tanh, sigmoid, sin) stay below
w^2 + b^2.
Float64 still limits the depth: rho is stored, so rounding adds ~1e-16 per layer to 1 - rho (ReLU:
1 - rho = 4.4e-7 at L = 10,000, relative drift ~1e-5 there, ~1e-3 at L = 100,000).

Correlation map (Poole et al. 2016, "Exponential expressivity in deep neural networks through
transient chaos"; Schoenholz et al. 2017, "Deep information propagation"): at variance q with
q' = w^2 E[phi(u)^2] + b^2,

    rho -> rho' = (w^2 E[phi(u) phi(v)] + b^2) / q',   d rho'/d rho = w^2 q E[phi'(u) phi'(v)] / q'
    (Price's theorem); chi_1 = w^2 E[phi'(u)^2] at the fixed-point variance q* = q*' is the slope at
    rho = 1: chi_1 < 1 ordered (rho -> 1), chi_1 > 1 chaotic (rho -> rho* < 1), chi_1 = 1 critical.

All computation runs in float64 (jax.enable_x64 inside the entry points): 1 - rho is ~4e-7 at
depth 10,000 for ReLU, far below float32 resolution.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._activations import (REGISTRY, activation_fn, check_activation, dual_activation,
                           dual_activation_diag, is_closed_form, mehler_dual)
from ._validation import check_int as _check_int

# Size limits (enforced here; the page uses smaller ones).
MAX_LAYERS = 100_000
MAX_POINTS = 200  # training plus test points of a data set
MAX_INPUT_DIM = 4096
MAX_STARTS = 32  # starting correlations for the rho^(L) curves
MAX_STORED_DEPTHS = 400
Q_MIN, Q_MAX = 1e-300, 1e30
Q_LINEAR = 1e-8  # below this variance smooth activations are replaced by their linearization
# From the activation registry: positively homogeneous activations (phi(s x) = s phi(x), s > 0;
# slopes on x > 0 and x < 0), and those that approach relu as q -> infinity, with the variance
# above which the relu duals are used.
HOMOGENEOUS_SLOPES = {n: a.homogeneous_slopes for n, a in REGISTRY.items() if a.homogeneous_slopes}
RELU_LIMIT_VARIANCE = {n: a.relu_limit_variance for n, a in REGISTRY.items() if a.relu_limit_variance}
PHASE_TOLERANCE = 1e-6


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------
def _check_float(name: str, value, low: float = 0.0, high: float = 1e6, *, positive=False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < low or value > high or (positive and value <= 0):
        rel = ">" if positive else ">="
        raise ValueError(f"{name} must be {rel} {low} and <= {high}, got {value}")
    return value


def _check_params(activation, w_std, b_std):
    activation = check_activation(activation)
    w_std = _check_float("w_std", w_std, 0.0, 100.0, positive=True)
    b_std = _check_float("b_std", b_std, 0.0, 100.0)
    return activation, w_std, b_std


# ----------------------------------------------------------------------------------------------
# One layer of the normalized recursion
# ----------------------------------------------------------------------------------------------
def _clipped(log_q, activation):
    """Variance at which the dual activation is evaluated, and its log: 1 for positively homogeneous
    activations (V(q_i, q_j, c) / sqrt(q_i q_j) depends on the correlation only, and evaluating at 1
    avoids rounding c / sqrt(q_i q_j)), else q clipped to [Q_MIN, Q_MAX]."""
    if isinstance(activation, str) and activation in HOMOGENEOUS_SLOPES:
        one = jnp.ones_like(log_q)
        return one, jnp.zeros_like(log_q)
    qc = jnp.clip(jnp.exp(jnp.clip(log_q, -700.0, 700.0)), Q_MIN, Q_MAX)
    return qc, jnp.log(qc)


@functools.lru_cache(maxsize=64)
def _value_and_slope_at_zero(activation):
    """(phi(0), phi'(0)) as Python floats."""
    f = activation_fn(activation)
    with jax.ensure_compile_time_eval(), jax.enable_x64(True):  # also called while tracing
        zero = jnp.float64(0.0)
        return float(f(zero)), float(jax.grad(lambda t: f(t))(zero))


def _dual_any(activation, qa, qb, c):
    """dual_activation with qa, qb broadcast against c for every activation: closed forms directly,
    the others by `mehler_dual` (coefficients once per layer when qa is qb: one shared variance)."""
    if is_closed_form(activation):
        return dual_activation(activation, qa, qb, c)
    return mehler_dual(activation_fn(activation), qa, qb, c)


def _dual(activation, qa, qb, c):
    """dual_activation with the two limits used at extreme variances (module doc):

    q < Q_LINEAR: the linearization phi(u) = phi(0) + phi'(0) u, i.e. V = phi(0)^2 + phi'(0)^2 c,
      V_dot = phi'(0)^2, error O(q) (closed forms such as sin's sinh(c) lose ~eps / q there);
    gelu / softplus above RELU_LIMIT_VARIANCE: their q -> infinity limit relu, error O(q^-3/2)
      (gelu: cancellation in (1+a)(1+b) - c^2; softplus: Hermite truncation)."""
    if isinstance(activation, str) and activation in HOMOGENEOUS_SLOPES:
        return dual_activation(activation, qa, qb, c)
    lo = Q_LINEAR
    hi = RELU_LIMIT_VARIANCE.get(activation, Q_MAX) if isinstance(activation, str) else Q_MAX
    sa = jnp.clip(qa, lo, hi)  # keeps the unused branches finite
    sb = sa if qb is qa else jnp.clip(qb, lo, hi)
    v, vd = _dual_any(activation, sa, sb, c * jnp.sqrt(sa / qa) * jnp.sqrt(sb / qb))
    f0, d0 = _value_and_slope_at_zero(activation)
    small = jnp.maximum(qa, qb) < lo
    v = jnp.where(small, f0 * f0 + d0 * d0 * c, v)
    vd = jnp.where(small, d0 * d0, vd)
    if hi < Q_MAX:
        big = jnp.minimum(qa, qb) > hi
        v_lim, vd_lim = dual_activation("relu", qa, qb, c)
        v, vd = jnp.where(big, v_lim, v), jnp.where(big, vd_lim, vd)
    return v, vd


def _dual_diag(activation, q):
    """dual_activation_diag with the same limits as `_dual`."""
    if isinstance(activation, str) and activation in HOMOGENEOUS_SLOPES:
        return dual_activation_diag(activation, q)
    lo = Q_LINEAR
    hi = RELU_LIMIT_VARIANCE.get(activation, Q_MAX) if isinstance(activation, str) else Q_MAX
    qc = jnp.clip(q, lo, hi)
    v, vd = _dual_any(activation, qc, qc, qc)  # the pairs' rule at rho = 1: the fixed point stays exact
    f0, d0 = _value_and_slope_at_zero(activation)
    v = jnp.where(q < lo, f0 * f0 + d0 * d0 * q, v)
    vd = jnp.where(q < lo, d0 * d0, vd)
    if hi < Q_MAX:
        v_lim, vd_lim = dual_activation_diag("relu", q)
        v, vd = jnp.where(q > hi, v_lim, v), jnp.where(q > hi, vd_lim, vd)
    return v, vd


def _diag_step(activation, w2, b2, log_q, u):
    """One layer on the diagonal, elementwise: returns (log q', u', r).

    q' = w^2 E[phi(u)^2] + b^2 (u ~ N(0, q)), T' = q' + w^2 E[phi'(u)^2] T, with u = log(T / q) and
    r = log(q' / q). Ratios are computed directly (not as differences of large logs): at depth
    10,000 log q can reach 1e4, and its rounding error would swamp 1 - rho ~ 1e-7."""
    qc, log_qc = _clipped(log_q, activation)
    e_phi2, e_dphi2 = _dual_diag(activation, qc)
    log_b2 = jnp.log(b2)  # -inf when b = 0; logaddexp(x, -inf) = x
    r = jnp.logaddexp(jnp.log(w2 * e_phi2) - log_qc, log_b2 - log_q)
    u_new = jnp.logaddexp(0.0, jnp.log(w2 * e_dphi2) + u - r)
    return log_q + r, u_new, r


def _pair_step(activation, w2, b2, old_i, old_j, new_i, new_j, rho, tbar):
    """(rho', Theta_bar') of pairs; old = (log q, u), new = (log q', u', r) of the two points
    (broadcastable against rho and tbar).

    rho'       = w^2 V(q_i, q_j, rho sqrt(q_i q_j)) / sqrt(q_i' q_j') + b^2 / sqrt(q_i' q_j')
    Theta_bar' = rho' sqrt(q_i' q_j' / (T_i' T_j')) + w^2 V_dot Theta_bar sqrt(T_i T_j / (T_i' T_j'))."""
    (lq_i, u_i), (lq_j, u_j) = old_i, old_j
    (lqn_i, un_i, r_i), (lqn_j, un_j, r_j) = new_i, new_j
    qc_i, _ = _clipped(lq_i, activation)
    qc_j = qc_i if lq_j is lq_i else _clipped(lq_j, activation)[0]  # one shared variance
    root = jnp.sqrt(qc_i) * jnp.sqrt(qc_j)  # the product underflows below q ~ 1e-154
    v, v_dot = _dual(activation, qc_i, qc_j, rho * root)
    bias = b2 * jnp.exp(-0.5 * jnp.clip(lqn_i + lqn_j, -1400.0, None))
    rho_new = jnp.clip(w2 * v / root * jnp.exp(-0.5 * (r_i + r_j)) + bias, -1.0, 1.0)
    tbar_new = (rho_new * jnp.exp(-0.5 * (un_i + un_j))
                + w2 * v_dot * tbar * jnp.exp(0.5 * (u_i - r_i - un_i + u_j - r_j - un_j)))
    return rho_new, jnp.clip(tbar_new, -1.0, 1.0)


def _map_slope(activation, w2, log_q, r, rho):
    """d rho'/d rho = w^2 q E[phi'(u) phi'(v)] / q' at correlation rho (Price's theorem); r = log(q'/q)."""
    qc, _ = _clipped(log_q, activation)
    _, v_dot = _dual(activation, qc, qc, rho * qc)
    return w2 * v_dot * jnp.exp(-r)


# ----------------------------------------------------------------------------------------------
# Pair curves on the sphere: rho^(L) and Theta_bar^(L) for many starting correlations
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DepthCurves:
    """rho^(l) and Theta_bar^(l), l = 0..max_depth, for inputs on the unit sphere S^{d-1} with
    cosines `rho0` (arrays of shape (len(rho0), max_depth + 1)); `log_variance[l]` = log Sigma^l(x,x)."""

    depths: np.ndarray
    rho0: np.ndarray
    rho: np.ndarray
    ntk: np.ndarray
    log_variance: np.ndarray


@functools.partial(jax.jit, static_argnames=("activation", "n_layers"))
def _curves_scan(activation, w2, b2, log_q0, rho_start, n_layers):
    def step(carry, _):
        lq, u, rho, tbar = carry
        new = _diag_step(activation, w2, b2, lq, u)
        rho, tbar = _pair_step(activation, w2, b2, (lq, u), (lq, u), new, new, rho, tbar)
        return (new[0], new[1], rho, tbar), (rho, tbar, new[0])

    init = (log_q0, jnp.zeros_like(log_q0), rho_start, rho_start)
    _, (rho, tbar, lq) = jax.lax.scan(step, init, None, length=n_layers)
    return rho, tbar, lq


def _input_layer(w_std, b_std, input_dim, cosine):
    """log Sigma^0(x,x) and rho^(0) for unit vectors in R^d with cosine `cosine`."""
    q0 = w_std**2 / input_dim + b_std**2
    return math.log(q0), (w_std**2 * np.asarray(cosine, float) / input_dim + b_std**2) / q0


def correlation_vs_depth(activation, w_std, b_std, rho0: Sequence[float], max_depth: int,
                         input_dim: int = 3) -> DepthCurves:
    """rho^(L)(x, x') and Theta_bar^(L)(x, x') for L = 0..max_depth, for pairs of unit vectors in
    R^input_dim with cosines rho0, by iterating the normalized pair recursion (see module doc)."""
    activation, w_std, b_std = _check_params(activation, w_std, b_std)
    max_depth = _check_int("max_depth", max_depth, 1, MAX_LAYERS)
    input_dim = _check_int("input_dim", input_dim, 1, MAX_INPUT_DIM)
    rho0 = np.atleast_1d(np.asarray(rho0, dtype=float))
    if rho0.ndim != 1 or not 1 <= rho0.size <= MAX_STARTS:
        raise ValueError(f"rho0 must hold 1 to {MAX_STARTS} starting correlations, got shape {rho0.shape}")
    if not np.all(np.isfinite(rho0)) or np.any(np.abs(rho0) > 1):
        raise ValueError(f"rho0 must lie in [-1, 1], got {rho0}")
    log_q0, r0 = _input_layer(w_std, b_std, input_dim, rho0)
    with jax.enable_x64(True):
        rho, tbar, lq = _curves_scan(activation, jnp.float64(w_std**2), jnp.float64(b_std**2),
                                     jnp.float64(log_q0), jnp.asarray(r0, jnp.float64), max_depth)
        rho, tbar, lq = (np.asarray(a) for a in (rho, tbar, lq))
    _check_finite("correlation_vs_depth", rho, tbar, lq)
    return DepthCurves(
        depths=np.arange(max_depth + 1),
        rho0=rho0,
        rho=np.concatenate([r0[None], rho]).T,
        ntk=np.concatenate([r0[None], tbar]).T,
        log_variance=np.concatenate([[log_q0], lq]),
    )


def _check_finite(where: str, *arrays):
    for a in arrays:
        if not np.all(np.isfinite(a)):
            raise FloatingPointError(
                f"{where}: the recursion left the floating point range for this activation "
                "(a custom activation whose variance diverges or vanishes faster than geometrically?)")


def predicted_rate(activation, b_std, depths):
    """Asymptotic 1 - rho^(L) ~ C / L^2 where it is known, else None.

    ReLU without bias: C = 9 pi^2 / 2 (seed 002; also Hayou et al. 2019). The same expansion for any
    activation with slopes a (x > 0) and b (x < 0) and no bias: near rho = cos(theta) = 1 the map is
    rho' = rho + (a - b)^2 theta^3 / (6 pi kappa) + O(theta^5), kappa = (a^2 + b^2) / 2, so
    delta = 1 - rho obeys delta' = delta - A delta^(3/2), A = (a-b)^2 2^(3/2) / (6 pi kappa), and
    delta_L ~ 4 / (A L)^2 = 18 pi^2 kappa^2 / ((a - b)^4 L^2)  (leaky_relu, abs: derived here)."""
    name = activation if isinstance(activation, str) else None
    if name not in HOMOGENEOUS_SLOPES or b_std != 0:
        return None
    a, b = HOMOGENEOUS_SLOPES[name]
    if a == b:
        return None  # linear: rho never moves
    kappa = (a * a + b * b) / 2
    c = 18 * math.pi**2 * kappa**2 / (a - b) ** 4
    depths = np.asarray(depths, dtype=float)
    return c / np.maximum(depths, 1.0) ** 2


# ----------------------------------------------------------------------------------------------
# Correlation map, fixed points, chi_1, phase, cobweb
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CorrelationMap:
    """The correlation map rho -> rho' of one layer at variance `variance` (see module doc).

    variance_status: 'fixed point' (q* = q*'), 'diverges' / 'vanishes' (no finite nonzero fixed
    point: the map is taken in that limit), 'any' (homogeneous activation without bias: the map does
    not depend on q), or 'not converged' (still moving after `VARIANCE_ITERATIONS` layers).
    fixed_points: the rho in [-1, 1] with rho' = rho (every rho if `all_fixed`), `fixed_point_slopes`
    their slopes; `stability` 'stable' (|slope| < 1), 'unstable' (> 1) or 'marginal' (= 1 within
    PHASE_TOLERANCE; ReLU's rho = 1 is marginal and still attracts, polynomially). chi_1 = w^2 E[phi'(u)^2] at the variance; `slope_at_one`
    = d rho'/d rho at rho = 1 (= chi_1 when q is a fixed point). phase: 'ordered' (slope < 1: rho -> 1
    exponentially), 'critical' (slope = 1), 'chaotic' (slope > 1: rho -> a fixed point below 1), or
    'linear' when the variance vanishes: the layers act linearly, the map tends to the identity and
    rho freezes at an input-dependent value (Poole et al. would call this ordered, chi_1 < 1)."""

    rho: np.ndarray
    rho_next: np.ndarray
    slope: np.ndarray
    variance: float
    variance_status: str
    fixed_points: np.ndarray
    fixed_point_slopes: np.ndarray
    stability: np.ndarray
    all_fixed: bool
    chi_1: float
    slope_at_one: float
    phase: str
    cobweb_x: np.ndarray
    cobweb_y: np.ndarray


VARIANCE_ITERATIONS = 10_000


@functools.partial(jax.jit, static_argnames=("activation", "n_layers"))
def _variance_scan(activation, w2, b2, log_q0, n_layers):
    def step(lq, _):
        lqn, _, _ = _diag_step(activation, w2, b2, lq, 0.0)
        return lqn, lqn

    return jax.lax.scan(step, log_q0, None, length=n_layers)[1]


@functools.partial(jax.jit, static_argnames=("activation",))
def _map_at(activation, w2, b2, log_q, rho):
    """(rho', d rho'/d rho) at fixed variance exp(log_q) for an array of rho."""
    new = _diag_step(activation, w2, b2, log_q, 0.0)
    rho_next, _ = _pair_step(activation, w2, b2, (log_q, 0.0), (log_q, 0.0), new, new, rho, rho)
    return rho_next, _map_slope(activation, w2, log_q, new[2], rho)


@functools.partial(jax.jit, static_argnames=("activation", "n_steps"))
def _iterate_map(activation, w2, b2, log_q, rho0, n_steps):
    def step(r, _):
        r_next, _ = _map_at(activation, w2, b2, log_q, r)
        return r_next, r_next

    return jax.lax.scan(step, rho0, None, length=n_steps)[1]


def _fixed_points(evaluate, grid, values):
    """Roots of rho' - rho on [-1, 1]: sign changes on the grid refined by bisection, plus grid
    points where it vanishes to 1e-12 (always including rho = 1)."""
    g = values - grid
    roots = [grid[i] for i in np.flatnonzero(np.abs(g) < 1e-12)]
    brackets = np.flatnonzero((g[:-1] * g[1:] < 0))
    if brackets.size:
        lo, hi = grid[brackets].copy(), grid[brackets + 1].copy()
        g_lo = g[brackets]
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            g_mid = evaluate(mid) - mid
            left = np.sign(g_mid) == np.sign(g_lo)
            lo, hi = np.where(left, mid, lo), np.where(left, hi, mid)
            g_lo = np.where(left, g_mid, g_lo)
        roots.extend(0.5 * (lo + hi))
    roots.append(1.0)
    roots = np.sort(np.asarray(roots))
    keep = np.concatenate([[True], np.diff(roots) > 1e-9])
    return roots[keep]


def _stability(slopes):
    mag = np.abs(slopes)
    return np.where(mag < 1 - PHASE_TOLERANCE, "stable",
                    np.where(mag > 1 + PHASE_TOLERANCE, "unstable", "marginal"))


def correlation_map(activation, w_std, b_std, *, input_dim: int = 3, rho0: float = 0.5,
                    cobweb_steps: int = 30, grid_size: int = 801) -> CorrelationMap:
    """The one-layer correlation map at the variance the network settles to (starting from unit
    inputs in R^input_dim), its fixed points, chi_1, the phase and a cobweb from rho0."""
    activation, w_std, b_std = _check_params(activation, w_std, b_std)
    input_dim = _check_int("input_dim", input_dim, 1, MAX_INPUT_DIM)
    rho0 = _check_float("rho0", rho0, -1.0, 1.0)
    cobweb_steps = _check_int("cobweb_steps", cobweb_steps, 1, 10_000)
    grid_size = _check_int("grid_size", grid_size, 11, 100_001)
    log_q0, _ = _input_layer(w_std, b_std, input_dim, 1.0)
    w2, b2 = w_std**2, b_std**2
    with jax.enable_x64(True):
        w2j, b2j = jnp.float64(w2), jnp.float64(b2)
        lq = np.asarray(_variance_scan(activation, w2j, b2j, jnp.float64(log_q0), VARIANCE_ITERATIONS))
        log_q = float(lq[-1])
        homogeneous = isinstance(activation, str) and activation in HOMOGENEOUS_SLOPES
        if homogeneous and b_std == 0:
            status, log_q = "any", log_q0
        elif log_q > math.log(Q_MAX):
            status = "diverges"
        elif log_q < math.log(Q_LINEAR):
            status = "vanishes"
        elif abs(lq[-1] - lq[-2]) < 1e-12 * max(1.0, abs(log_q)):
            status = "fixed point"
        else:
            status = "not converged"
        if status == "diverges" and homogeneous:
            log_q = math.log(Q_MAX)  # b^2 / q -> 0: the bias-free map
        log_q = float(np.clip(log_q, math.log(Q_MIN), math.log(Q_MAX)))
        lqj = jnp.float64(log_q)

        def evaluate(r):
            return np.asarray(_map_at(activation, w2j, b2j, lqj, jnp.asarray(r, jnp.float64))[0])

        grid = np.linspace(-1.0, 1.0, grid_size)
        rho_next, slope = (np.asarray(a) for a in _map_at(activation, w2j, b2j, lqj, jnp.asarray(grid)))
        all_fixed = bool(np.max(np.abs(rho_next - grid)) < 1e-12)
        fixed = grid.copy() if all_fixed else _fixed_points(evaluate, grid, rho_next)
        fp_slopes = np.asarray(_map_at(activation, w2j, b2j, lqj, jnp.asarray(fixed))[1])
        qc = _clipped(jnp.float64(log_q), activation)[0]
        chi_1 = float(w2 * _dual_diag(activation, qc)[1])
        slope_at_one = float(_map_at(activation, w2j, b2j, lqj, jnp.ones(1))[1][0])
        orbit = np.asarray(_iterate_map(activation, w2j, b2j, lqj, jnp.float64(rho0), cobweb_steps))
    _check_finite("correlation_map", rho_next, slope, fixed, fp_slopes, orbit)
    if status == "vanishes":
        phase = "linear"
    elif slope_at_one < 1 - PHASE_TOLERANCE:
        phase = "ordered"
    elif slope_at_one > 1 + PHASE_TOLERANCE:
        phase = "chaotic"
    else:
        phase = "critical"
    # Cobweb: (r0, r0) -> (r0, r1) -> (r1, r1) -> (r1, r2) ...
    seq = np.concatenate([[rho0], orbit])
    cob_x = np.repeat(seq, 2)[:-1]
    cob_y = np.concatenate([[rho0], np.repeat(seq[1:], 2)])
    return CorrelationMap(
        rho=grid, rho_next=rho_next, slope=slope, variance=math.exp(log_q), variance_status=status,
        fixed_points=fixed, fixed_point_slopes=fp_slopes, stability=_stability(fp_slopes),
        all_fixed=all_fixed, chi_1=chi_1, slope_at_one=slope_at_one, phase=phase,
        cobweb_x=cob_x, cobweb_y=cob_y,
    )


# ----------------------------------------------------------------------------------------------
# Data sets on the sphere
# ----------------------------------------------------------------------------------------------
def sphere_points(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """n points uniform on the unit sphere S^{dim-1} in R^dim (normalized Gaussians)."""
    n = _check_int("n", n, 1, MAX_POINTS)
    dim = _check_int("dim", dim, 2, MAX_INPUT_DIM)
    g = np.random.default_rng(seed).standard_normal((n, dim))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


@functools.lru_cache(maxsize=1)
def _digits():
    from sklearn.datasets import load_digits  # ships with scikit-learn, no download

    return load_digits().data.astype(float)


def digits_points(n: int, seed: int = 0) -> np.ndarray:
    """n of scikit-learn's 8x8 digits (1,797 images, 64 pixels in 0..16), chosen at random with
    `seed`, each divided by its norm (unit sphere S^63)."""
    n = _check_int("n", n, 1, MAX_POINTS)
    data = _digits()
    idx = np.random.default_rng(seed).choice(len(data), size=n, replace=False)
    x = data[idx]
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# Normalized kernels over a data set, every depth
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DepthKernels:
    """Normalized NTK and NNGP of a data set (n_train training points followed by n_test test
    points) as depth grows.

    Per layer l = 0..max_depth (arrays of length max_depth + 1), over the training block X:
      ntk_max_dist, ntk_mean_dist   max / mean over i != j of |1 - Theta_bar^(l)(x_i, x_j)|
      nngp_max_dist, nngp_mean_dist the same for rho^(l)
      ntk_offdiag_mean, nngp_offdiag_mean  mean off-diagonal entry
    At the stored depths `stored_depths` (log-spaced, with 1, max_depth/4, max_depth/2, max_depth):
      ntk, nngp         (K, n, n) normalized matrices over all points
      log_ntk_diag      (K, n) log Theta^(l)(x_i, x_i) (for the condition number of Theta itself)
      predictor         (K, n_test, n_train): Theta_bar(x, X) Theta_bar(X, X)^-1
      predictor_change  (K,) max |predictor(l + 1) - predictor(l)|
      predictor_to_final (K,) max |predictor(l) - predictor(max_depth)|
      condition         (K,) condition number of Theta^(l)(X, X) (inf when numerically singular)
    Limits (fitted through the depths `limit_depths` ~ max_depth/4, max_depth/2, max_depth; see
    `extrapolate_limit`): ntk_limit, nngp_limit (n_train, n_train); `*_limit_change` = the largest
    |value(max_depth) - value(max_depth/2)|, i.e. how much the entries still moved."""

    depths: np.ndarray
    n_train: int
    ntk_max_dist: np.ndarray
    ntk_mean_dist: np.ndarray
    nngp_max_dist: np.ndarray
    nngp_mean_dist: np.ndarray
    ntk_offdiag_mean: np.ndarray
    nngp_offdiag_mean: np.ndarray
    stored_depths: np.ndarray
    ntk: np.ndarray
    nngp: np.ndarray
    log_ntk_diag: np.ndarray
    predictor: np.ndarray
    predictor_change: np.ndarray
    predictor_to_final: np.ndarray
    condition: np.ndarray
    ntk_limit: np.ndarray
    nngp_limit: np.ndarray
    ntk_limit_change: float
    nngp_limit_change: float
    limit_depths: np.ndarray

    def stored_index(self, depth: int) -> int:
        """Index into the stored arrays of the stored depth closest to `depth`."""
        return int(np.argmin(np.abs(self.stored_depths - depth)))

    def offdiag(self, matrix) -> tuple[float, float, float]:
        """(min, mean, max) of the off-diagonal entries of the training block of `matrix`."""
        m = np.asarray(matrix)[: self.n_train, : self.n_train]
        vals = m[~np.eye(self.n_train, dtype=bool)]
        if vals.size == 0:
            return (1.0, 1.0, 1.0)
        return float(vals.min()), float(vals.mean()), float(vals.max())

    def settling_depth(self, tolerance: float = 1e-3):
        """The smallest stored depth >= 1 from which on the predictor changes by less than
        `tolerance` per layer (max over entries), or None if it does not settle by max_depth."""
        if self.predictor.shape[1] == 0:
            return None
        depths = self.stored_depths[self.stored_depths >= 1]
        big = self.predictor_change[self.stored_depths >= 1] >= tolerance
        if big[-1]:
            return None
        last_big = np.flatnonzero(big)
        return int(depths[last_big[-1] + 1] if last_big.size else depths[0])


def stored_depths_for(max_depth: int, n_log: int = 64) -> np.ndarray:
    """Log-spaced depths 0, 1, ..., max_depth (about n_log of them) with the round numbers
    1, 2, 5, 10, 20, ... and the depths of the limit fit (~max_depth/4, max_depth/2, max_depth)."""
    grid = np.unique(np.round(np.logspace(0, math.log10(max_depth), n_log)).astype(int))
    round_numbers = [m * 10**e for e in range(6) for m in (1, 2, 5) if m * 10**e <= max_depth]
    return np.unique(np.concatenate([grid, round_numbers, [0], _limit_depths(max_depth)]))


def _limit_depths(max_depth: int):
    """Three distinct depths ending at max_depth (>= 3) for the limit fit: ~L/4, ~L/2, L."""
    l2 = max(max_depth // 2, 2)
    return (max(max_depth // 4, 1) if max_depth >= 8 else l2 - 1, l2, max_depth)


def extrapolate_limit(depths, values):
    """Limit as L -> infinity of values sampled at three depths L1 < L2 < L3 (values: (3, ...),
    elementwise; the page uses ~L/4, L/2, L).

    Slow (algebraic) convergence, recognised by successive differences shrinking by a factor
    r = (v3 - v2) / (v2 - v1) in [1/4, 1): fit value(L) = limit + (alpha log L + beta) / L exactly
    through the three points -- the form of the normalized NTK for ReLU without bias (Theta_bar =
    1/4 + (0.6 log L + c) / L, see tests). Faster convergence (geometric: ordered or chaotic phase;
    r < 1/4), non-monotone or settled sequences: the last value, which is then within about
    |v3 - v2| r / (1 - r) of the limit. Clipped to [-1, 1] (a normalized kernel)."""
    depths = np.asarray(depths, dtype=float)
    values = np.asarray(values, dtype=float)
    if depths.shape != (3,) or values.shape[0] != 3 or not np.all(np.diff(depths) > 0):
        raise ValueError(f"need values at three increasing depths, got depths {depths}")
    basis = np.stack([np.ones(3), np.log(depths) / depths, 1.0 / depths], axis=1)
    flat = values.reshape(3, -1)
    fit = np.linalg.solve(basis, flat)[0]
    d1, d2 = flat[1] - flat[0], flat[2] - flat[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(np.abs(d1) > 1e-15, d2 / d1, 0.0)
    slow = (r >= 0.25) & (r < 1.0) & (np.abs(d2) > 1e-14)
    return np.clip(np.where(slow, fit, flat[2]), -1.0, 1.0).reshape(values.shape[1:])


@functools.partial(jax.jit, static_argnames=("activation", "n_layers", "n_train", "n_slots",
                                             "shared_variance"))
def _kernel_scan(activation, w2, b2, log_q0, rho0, slots, n_layers, n_train, n_slots,
                 shared_variance):
    n = rho0.shape[0]
    eye = jnp.eye(n, dtype=bool)
    off = ~jnp.eye(n_train, dtype=bool)
    n_off = max(n_train * (n_train - 1), 1)

    def summaries(rho, tbar):
        dr = jnp.abs(1.0 - rho[:n_train, :n_train])
        dt = jnp.abs(1.0 - tbar[:n_train, :n_train])
        s_r = jnp.sum(jnp.where(off, rho[:n_train, :n_train], 0.0)) / n_off
        s_t = jnp.sum(jnp.where(off, tbar[:n_train, :n_train], 0.0)) / n_off
        return (jnp.max(jnp.where(off, dt, 0.0)), jnp.sum(jnp.where(off, dt, 0.0)) / n_off,
                jnp.max(jnp.where(off, dr, 0.0)), jnp.sum(jnp.where(off, dr, 0.0)) / n_off, s_t, s_r)

    def step(carry, slot):
        lq, u, rho, tbar, buf_r, buf_t, buf_d = carry
        new = _diag_step(activation, w2, b2, lq, u)
        old = (lq, u)
        if shared_variance:  # every point has the same norm: one diagonal value for all
            rho, tbar = _pair_step(activation, w2, b2, old, old, new, new, rho, tbar)
        else:
            rows = tuple(a[:, None] for a in old), tuple(a[:, None] for a in new)
            cols = tuple(a[None, :] for a in old), tuple(a[None, :] for a in new)
            rho, tbar = _pair_step(activation, w2, b2, rows[0], cols[0], rows[1], cols[1], rho, tbar)
        lqn, un, _ = new
        rho = jnp.where(eye, 1.0, rho)
        tbar = jnp.where(eye, 1.0, tbar)
        buf_r = jax.lax.dynamic_update_index_in_dim(buf_r, rho, slot, 0)
        buf_t = jax.lax.dynamic_update_index_in_dim(buf_t, tbar, slot, 0)
        log_t = jnp.broadcast_to(lqn + un, (n,))  # log Theta(x_i, x_i)
        buf_d = jax.lax.dynamic_update_index_in_dim(buf_d, log_t, slot, 0)
        return (lqn, un, rho, tbar, buf_r, buf_t, buf_d), summaries(rho, tbar)

    buf_r = jnp.zeros((n_slots + 1, n, n), rho0.dtype).at[0].set(rho0)
    buf_t = jnp.zeros((n_slots + 1, n, n), rho0.dtype).at[0].set(rho0)
    buf_d = jnp.zeros((n_slots + 1, n), rho0.dtype).at[0].set(jnp.broadcast_to(log_q0, (n,)))
    init = (log_q0, jnp.zeros_like(log_q0), rho0, rho0, buf_r, buf_t, buf_d)
    final, per_layer = jax.lax.scan(step, init, slots)
    first = summaries(rho0, rho0)
    per_layer = tuple(jnp.concatenate([f[None], p]) for f, p in zip(first, per_layer))
    return final[4][:n_slots], final[5][:n_slots], final[6][:n_slots], per_layer


def _predictor(tbar, n_train):
    """Theta_bar(x, X) Theta_bar(X, X)^+ for the test rows, by the eigendecomposition: the inverse
    where Theta_bar(X, X) is numerically regular, else the pseudo-inverse that drops eigenvalues
    below n eps times the largest (the minimum-norm least-squares predictor). A plain solve of a
    singular matrix (depth 0: the input kernel of 40 points in 3 dimensions has rank 3) returns
    rounding noise amplified by 1e16, different on every CPU and BLAS."""
    k_xx = tbar[:n_train, :n_train]
    k_tx = tbar[n_train:, :n_train]
    if k_tx.shape[0] == 0:
        return np.zeros((0, n_train))
    eig, vec = np.linalg.eigh(0.5 * (k_xx + k_xx.T))
    keep = eig > max(eig[-1], 0.0) * n_train * np.finfo(eig.dtype).eps
    v = vec[:, keep]
    return ((k_tx @ v) / eig[keep]) @ v.T


def _condition(tbar, log_diag, n_train):
    """Condition number of Theta(X, X) = D^1/2 Theta_bar D^1/2, D = diag Theta (inf if singular)."""
    d = np.exp(0.5 * (log_diag[:n_train] - np.max(log_diag[:n_train])))
    eig = np.linalg.eigvalsh(d[:, None] * tbar[:n_train, :n_train] * d[None, :])
    if eig[0] <= eig[-1] * n_train * np.finfo(float).eps:
        return np.inf
    return float(eig[-1] / eig[0])


def normalized_kernels_vs_depth(x, activation, w_std, b_std, max_depth: int, *, n_test: int = 1,
                                n_stored: int = 64) -> DepthKernels:
    """Normalized NTK Theta_bar^(l) and NNGP rho^(l) of the points x (n, d) for every depth
    l = 0..max_depth; the last `n_test` rows of x are test points (for the predictor).

    Cost: max_depth layers of elementwise work on the n x n matrices in one lax.scan; only summaries
    are kept per layer and full matrices at ~n_stored log-spaced depths (and the layer after each,
    for the change of the predictor)."""
    activation, w_std, b_std = _check_params(activation, w_std, b_std)
    max_depth = _check_int("max_depth", max_depth, 3, MAX_LAYERS)
    n_stored = _check_int("n_stored", n_stored, 2, MAX_STORED_DEPTHS // 2)
    try:
        x = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"x must be a numeric array: {e}") from None
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x must have shape (n, d), got {x.shape}")
    n, d = x.shape
    if n > MAX_POINTS or d > MAX_INPUT_DIM:
        raise ValueError(f"x must have at most {MAX_POINTS} points and {MAX_INPUT_DIM} features, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite")
    n_test = _check_int("n_test", n_test, 0, n - 2) if n >= 2 else _check_int("n_test", n_test, 0, 0)
    n_train = n - n_test
    sq = np.einsum("ij,ij->i", x, x)
    if np.any(sq == 0) and b_std == 0:
        raise ValueError("x has a zero row and b_std = 0: its correlation is undefined")
    sigma0 = w_std**2 * (x @ x.T) / d + b_std**2
    q0 = np.diag(sigma0).copy()
    rho0 = np.clip(sigma0 / np.sqrt(np.outer(q0, q0)), -1.0, 1.0)
    np.fill_diagonal(rho0, 1.0)
    shared_variance = bool(np.allclose(q0, q0[0], rtol=1e-12, atol=0))
    log_q0 = np.log(q0[:1] if shared_variance else q0)

    keep = stored_depths_for(max_depth, n_stored)
    wanted = np.unique(np.concatenate([keep, keep + 1]))  # l and l + 1 for the predictor change
    n_slots = len(wanted)
    slots = np.full(max_depth + 1, n_slots, dtype=np.int32)  # layer l -> slot (n_slots = scratch)
    pos = {int(l): i for i, l in enumerate(wanted)}
    for l, i in pos.items():
        if 1 <= l <= max_depth + 1:
            slots[l - 1] = i
    with jax.enable_x64(True):
        buf_r, buf_t, buf_d, per_layer = _kernel_scan(
            activation, jnp.float64(w_std**2), jnp.float64(b_std**2), jnp.asarray(log_q0),
            jnp.asarray(rho0), jnp.asarray(slots), max_depth + 1, n_train, n_slots, shared_variance)
        buf_r, buf_t, buf_d = np.asarray(buf_r), np.asarray(buf_t), np.asarray(buf_d)
        per_layer = [np.asarray(p)[: max_depth + 1] for p in per_layer]
    _check_finite("normalized_kernels_vs_depth", buf_r, buf_t, buf_d, *per_layer)

    idx = np.array([pos[int(l)] for l in keep])
    idx_next = np.array([pos[int(l) + 1] for l in keep])
    preds = np.stack([_predictor(buf_t[i], n_train) for i in idx])
    preds_next = np.stack([_predictor(buf_t[i], n_train) for i in idx_next])
    reduce = (lambda a: np.max(np.abs(a), axis=(1, 2))) if n_test else (lambda a: np.zeros(len(a)))
    cond = np.array([_condition(buf_t[i], buf_d[i], n_train) for i in idx])

    at = {int(l): buf_t[pos[int(l)], :n_train, :n_train] for l in keep}
    ar = {int(l): buf_r[pos[int(l)], :n_train, :n_train] for l in keep}
    l1, l2, l3 = limit_depths = _limit_depths(max_depth)
    return DepthKernels(
        depths=np.arange(max_depth + 1),
        n_train=n_train,
        ntk_max_dist=per_layer[0], ntk_mean_dist=per_layer[1],
        nngp_max_dist=per_layer[2], nngp_mean_dist=per_layer[3],
        ntk_offdiag_mean=per_layer[4], nngp_offdiag_mean=per_layer[5],
        stored_depths=keep,
        ntk=buf_t[idx], nngp=buf_r[idx], log_ntk_diag=buf_d[idx],
        predictor=preds,
        predictor_change=reduce(preds_next - preds),
        predictor_to_final=reduce(preds - preds[-1:]),
        condition=cond,
        ntk_limit=extrapolate_limit(limit_depths, [at[l] for l in limit_depths]),
        nngp_limit=extrapolate_limit(limit_depths, [ar[l] for l in limit_depths]),
        limit_depths=np.array(limit_depths),
        ntk_limit_change=float(np.max(np.abs(at[l3] - at[l2]))),
        nngp_limit_change=float(np.max(np.abs(ar[l3] - ar[l2]))),
    )
