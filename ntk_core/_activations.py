"""The activation registry, and the dual kernels of every activation.

For (u, v) ~ N(0, [[a, c], [c, b]]) the dual kernels of an activation phi are

    V(a, b, c)     = E[phi(u) phi(v)]        (NNGP step, Cho & Saul 2009; Lee et al. 2018)
    V_dot(a, b, c) = E[phi'(u) phi'(v)]      (NTK step, Jacot et al. 2018)

`REGISTRY` is the one place that knows the activations: per name its function, its closed-form dual
(if any), its id in the compiled kernels of `_fast`, and the properties the depth page needs. Every
other list (`ACTIVATIONS`, `CLOSED_FORM_ACTIVATIONS`, `_fast.ACTIVATION_IDS`, `_depth`'s limits) is
derived from it. Activations without a closed form (and any elementwise callable) go through the
2-D quadrature of `quadrature_dual`, which is accurate at every variance (see its docstring).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

ActivationLike = Union[str, Callable]
LEAKY_RELU_SLOPE = 0.1
_PI = math.pi


def _leaky_relu(x):
    return jnp.where(x > 0, x, LEAKY_RELU_SLOPE * x)


def _gelu_exact(x):
    return jax.nn.gelu(x, approximate=False)


# --------------------------------------------------------------------------------------------
# Fast inverse trigonometric functions for float32
# --------------------------------------------------------------------------------------------
def _asin_f32(x):
    """arcsin to float32 accuracy (Cephes asinf: one sqrt and a degree-4 polynomial, no branches).

    XLA's arcsin/arccos on CPU go through atan2 and cost ~30x more; this dominates kernel time."""
    ax = jnp.abs(x)
    big = ax > 0.5
    z = jnp.where(big, 0.5 * (1.0 - ax), ax * ax)
    s = jnp.where(big, jnp.sqrt(z), ax)
    p = ((((4.2163199048e-2 * z + 2.4181311049e-2) * z + 4.5470025998e-2) * z
          + 7.4953002686e-2) * z + 1.6666752422e-1)
    y = p * z * s + s
    y = jnp.where(big, _PI / 2 - 2.0 * y, y)
    return jnp.where(x < 0, -y, y)


def _asin(x):
    return _asin_f32(x) if x.dtype == jnp.float32 else jnp.arcsin(x)


def _acos(x):
    """arccos(x) = pi/2 - arcsin(x); for x near +1 via 2 arcsin(sqrt((1 - x)/2)) to keep precision."""
    if x.dtype != jnp.float32:
        return jnp.arccos(x)
    near_one = x > 0.5
    t = jnp.where(near_one, jnp.sqrt(jnp.maximum(0.5 * (1.0 - x), 0.0)), x)
    a = _asin_f32(t)
    return jnp.where(near_one, 2.0 * a, _PI / 2 - a)


# --------------------------------------------------------------------------------------------
# Closed-form dual kernels
# --------------------------------------------------------------------------------------------
# |rho| within this many ulps of 1 is taken as exactly +-1: the rounding of c and sqrt(ab) alone
# moves rho that far from 1 for identical inputs, and arccos near 1 would amplify it to sqrt(ulp).
_RHO_SNAP_ULPS = 8


def _correlation(a, b, c):
    """rho = c / sqrt(a b), clipped to [-1, 1] (and snapped to +-1 within a few ulps); 0 where a
    variance is 0; and sqrt(a b)."""
    ab = a * b
    root = jnp.sqrt(ab)
    safe = jnp.where(ab > 0, root, 1.0)
    rho = jnp.where(ab > 0, jnp.clip(c / safe, -1.0, 1.0), 0.0)
    snap = 1.0 - _RHO_SNAP_ULPS * float(jnp.finfo(rho.dtype).eps)
    rho = jnp.where(jnp.abs(rho) >= snap, jnp.sign(rho), rho)
    return rho, root


def snap_covariance(a, b, c):
    """c = +-sqrt(a b) where |c| is within a few ulps of it (see _fast._snap_row): exact duplicates
    stay exactly correlated; otherwise, in the chaotic phase, rounding grows by chi_1 per layer."""
    root = jnp.sqrt(a * b)
    snap = 1.0 - _RHO_SNAP_ULPS * float(jnp.finfo(root.dtype).eps)
    return jnp.where(jnp.abs(c) >= snap * root, jnp.where(c > 0, root, -root), c)


def _arccos_kernels(a, b, c):
    """(J1, J0): E[relu(u) relu(v)] = sqrt(ab) (sin t + (pi - t) cos t) / (2 pi) and
    E[step(u) step(v)] = (pi - t) / (2 pi), t = arccos rho (Cho & Saul 2009; Arora et al. 2019)."""
    rho, root = _correlation(a, b, c)
    theta = _acos(rho)
    sin_t = jnp.sqrt(jnp.maximum(1.0 - rho * rho, 0.0))
    j0 = (_PI - theta) * (1.0 / (2 * _PI))
    j1 = root * (sin_t + (_PI - theta) * rho) * (1.0 / (2 * _PI))
    return j1, j0, rho, root, theta, sin_t


def _dual_relu(a, b, c):
    j1, j0, *_ = _arccos_kernels(a, b, c)
    return j1, j0


def _dual_leaky_relu(a, b, c):
    """phi = alpha x + (1 - alpha) relu(x):  V = alpha c + (1-alpha)^2 J1,  V_dot = alpha + (1-alpha)^2 J0."""
    al = LEAKY_RELU_SLOPE
    j1, j0 = _dual_relu(a, b, c)
    return al * c + (1 - al) ** 2 * j1, al + (1 - al) ** 2 * j0


def _dual_abs(a, b, c):
    """|x| = relu(x) + relu(-x):  V = sqrt(ab) (2 sin t + (pi - 2t) cos t) / pi,  V_dot = 1 - 2t/pi."""
    _, _, rho, root, theta, sin_t = _arccos_kernels(a, b, c)
    v = root * (2.0 * sin_t + (_PI - 2.0 * theta) * rho) * (1.0 / _PI)
    return v, 1.0 - theta * (2.0 / _PI)


def _dual_erf(a, b, c):
    """V = (2/pi) arcsin(2c / sqrt((1+2a)(1+2b))),  V_dot = (4/pi) / sqrt((1+2a)(1+2b) - 4c^2)
    (Williams 1997)."""
    prod = (1.0 + 2.0 * a) * (1.0 + 2.0 * b)
    r = jnp.clip(2.0 * c * jax.lax.rsqrt(prod), -1.0, 1.0)
    v = (2.0 / _PI) * _asin(r)
    v_dot = (4.0 / _PI) * jax.lax.rsqrt(jnp.maximum(prod - 4.0 * c * c, jnp.finfo(prod.dtype).tiny))
    return v, v_dot


def _dual_identity(a, b, c):
    return c, jnp.ones_like(c)


def _dual_sin(a, b, c):
    """E[sin u sin v] = exp(-(a+b)/2) sinh c,  E[cos u cos v] = exp(-(a+b)/2) cosh c."""
    e1 = jnp.exp(c - 0.5 * (a + b))
    e2 = jnp.exp(-c - 0.5 * (a + b))
    return 0.5 * (e1 - e2), 0.5 * (e1 + e2)


def _dual_gelu(a, b, c):
    """Exact GELU phi(x) = x Phi(x) (Tsuchida & Ong, arXiv:2002.08517):
    with D = sqrt((1+a)(1+b) - c^2) and t = atan2(c, D),
      V     = c/4 + (c t + (c^2 + ab D^2) / ((1+a)(1+b) D)) / (2 pi)
      V_dot = 1/4 + t/(2 pi) + c (1/D^2 + (1 - ab)/((1+a)(1+b)) + 1) / (2 pi D)."""
    p1 = (1.0 + a) * (1.0 + b)
    ab = a * b
    root = jnp.sqrt(ab)
    # (1+a)(1+b) - c^2 without cancellation at large variance
    d2 = jnp.maximum(1.0 + a + b + (root - jnp.abs(c)) * (root + jnp.abs(c)), jnp.finfo(p1.dtype).tiny)
    d = jnp.sqrt(d2)
    t = jnp.arctan2(c, d)
    v = 0.25 * c + (c * t + (c * c + ab * d2) / (p1 * d)) * (1.0 / (2 * _PI))
    v_dot = 0.25 + t * (1.0 / (2 * _PI)) + c * (1.0 / d2 + (1.0 - ab) / p1 + 1.0) / (2 * _PI * d)
    return v, v_dot


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Activation:
    """Everything the code knows about one named activation.

    fn: the elementwise function (JAX); its derivatives come from autodiff.
    closed_form: (a, b, c) -> (V, V_dot) elementwise, or None for quadrature (`quadrature_dual`).
    fast_id: the activation's branch in `_fast._dual_entry` (compiled kernels), or None.
    homogeneous_slopes: (slope for x > 0, slope for x < 0) if phi(s x) = s phi(x) for s > 0.
    relu_limit_variance: above this variance the depth page uses the relu duals, the q -> infinity
        limit (gelu, softplus: error O(q^-3/2)); None if the activation has no such limit."""

    name: str
    fn: Callable
    closed_form: Optional[Callable] = None
    fast_id: Optional[int] = None
    homogeneous_slopes: Optional[tuple] = None
    relu_limit_variance: Optional[float] = None


REGISTRY = {a.name: a for a in (
    Activation("relu", jax.nn.relu, _dual_relu, 0, homogeneous_slopes=(1.0, 0.0)),
    Activation("leaky_relu", _leaky_relu, _dual_leaky_relu, 1, homogeneous_slopes=(1.0, LEAKY_RELU_SLOPE)),
    Activation("abs", jnp.abs, _dual_abs, 2, homogeneous_slopes=(1.0, -1.0)),
    Activation("erf", jax.scipy.special.erf, _dual_erf, 3),
    Activation("gelu", _gelu_exact, _dual_gelu, 4, relu_limit_variance=1e6),
    Activation("identity", lambda x: x, _dual_identity, 5, homogeneous_slopes=(1.0, 1.0)),
    Activation("sin", jnp.sin, _dual_sin, 6),
    Activation("tanh", jnp.tanh),
    Activation("softplus", jax.nn.softplus, relu_limit_variance=1e4),
    Activation("sigmoid", jax.nn.sigmoid),
)}
ACTIVATIONS = tuple(REGISTRY)
CLOSED_FORM_ACTIVATIONS = tuple(n for n, a in REGISTRY.items() if a.closed_form is not None)
QUADRATURE_ACTIVATIONS = tuple(n for n, a in REGISTRY.items() if a.closed_form is None)


def check_activation(value) -> ActivationLike:
    """A registered name or an elementwise callable; ValueError naming the field otherwise."""
    if callable(value) or (isinstance(value, str) and value in REGISTRY):
        return value
    raise ValueError(
        f"activation must be one of {', '.join(ACTIVATIONS)} or an elementwise callable, got {value!r}"
    )


def activation_fn(activation: ActivationLike) -> Callable:
    """The elementwise function phi for a name or a callable."""
    return activation if callable(activation) else REGISTRY[activation].fn


def is_closed_form(activation: ActivationLike) -> bool:
    return isinstance(activation, str) and REGISTRY[activation].closed_form is not None


def _elementwise_grad(f):
    def df(x):
        return jax.grad(lambda t: jnp.sum(f(t)))(x)

    return df


# --------------------------------------------------------------------------------------------
# Every other activation: direct 2-D quadrature, accurate at every variance
# --------------------------------------------------------------------------------------------
_GAUSS_HALF_WIDTH = 8.5  # |w| <= 8.5 carries all but 2e-17 of N(0, 1)
_FAR_STEP = 3.0  # far from the feature, nodes are _FAR_STEP * (t-step) apart in w
# Nodes per dimension by the largest variance in the call (float64, float32): chosen so that the
# measured error against an independent polar Gauss-Legendre reference (tests/test_activations.py)
# is below 1e-13 (float64) and 1e-8 (float32) for tanh, softplus and sigmoid.
_NODES = {np.dtype(np.float64): ((10.0, 48), (1e3, 64), (1e6, 96), (math.inf, 128)),
          np.dtype(np.float32): ((1e2, 32), (1e4, 48), (math.inf, 64))}


def quadrature_nodes(max_variance: float, dtype) -> int:
    """Nodes per dimension of `quadrature_dual` for variances up to `max_variance`."""
    table = _NODES.get(np.dtype(dtype), _NODES[np.dtype(np.float64)])
    return next(n for q, n in table if max_variance <= q)


def graded_rule(center, scale, n: int):
    """Nodes w (..., n) and weights (N(0, 1) density included) for E[g(w)], w ~ N(0, 1), where g
    has a feature (a kink, a pole near the real axis) of width `scale` at `center`.

    w = center + s asinh((scale / s) sinh t) with s = _FAR_STEP and t on n equispaced midpoints:
    near the feature the nodes are `scale` * step apart, far from it s * step, so one rule fits any
    variance. The integrand is analytic in a strip around the real t axis, where the midpoint rule
    converges geometrically (Trefethen & Weideman 2014, SIAM Review 56)."""
    s = _FAR_STEP
    edge = _GAUSS_HALF_WIDTH
    c = jnp.clip(center, -edge - 1.0, edge + 1.0)  # a feature beyond the Gaussian's bulk is smooth there
    r = scale / s
    t_lo = jnp.arcsinh(jnp.sinh((-edge - c) / s) / r)
    t_hi = jnp.arcsinh(jnp.sinh((edge - c) / s) / r)
    h = (t_hi - t_lo) / n
    t = t_lo[..., None] + h[..., None] * (jnp.arange(n, dtype=h.dtype) + 0.5)
    st = r[..., None] * jnp.sinh(t)
    w = c[..., None] + s * jnp.arcsinh(st)
    dw = scale[..., None] * jnp.cosh(t) / jnp.sqrt(1.0 + st * st)
    return w, (h[..., None] * (1.0 / math.sqrt(2 * _PI))) * dw * jnp.exp(-0.5 * w * w)


def _conditional_sums(f, df, a, b, c, n, df2=None, df3=None):
    """(V, V_dot, E|phi(u) phi(v)|, E|phi'(u) phi'(v)|) by the n x n conditional rule of
    `quadrature_dual`; with df2, df3 (phi^(2), phi^(3)), also bounds on the rounding of the change
    of variables v = m + sig w: m is good to 2 eps relative, and sig^2 = b (1 - rho^2) to 4 eps b,
    which is integrating at the variance b + 4 eps b; dV/db = E[phi(u) phi^(2)(v)] / 2 (heat
    equation), so E|phi(u)| (E|phi'(v)| 2 eps |m| + E|phi^(2)(v)| 2 eps b), and the same one
    derivative up for V_dot."""
    dtype = jnp.result_type(a, b, c)
    sa, sb = jnp.sqrt(a), jnp.sqrt(b)
    root = sa * sb
    rho = jnp.where(root > 0, jnp.clip(c / jnp.where(root > 0, root, 1.0), -1.0, 1.0), 0.0)
    z, wz = graded_rule(jnp.zeros_like(root), jax.lax.rsqrt(jnp.maximum(jnp.maximum(a, b), 1.0)), n)
    m = (sb * rho)[..., None] * z  # v | u = m + sig w
    sig = (sb * jnp.sqrt(jnp.maximum(1.0 - rho * rho, 0.0)))[..., None] * jnp.ones_like(z)
    safe = jnp.where(sig > 0, sig, 1.0)
    center = jnp.where(sig > 0, -m / safe, 0.0)
    w, ww = graded_rule(center, jnp.minimum(1.0, 1.0 / safe).astype(dtype), n)
    v = m[..., None] + sig[..., None] * w
    fv, dfv = f(v), df(v)
    u = sa[..., None] * z
    fu, dfu = f(u), df(u)
    v_sum = jnp.sum(wz * fu * jnp.sum(ww * fv, -1), -1)
    vd_sum = jnp.sum(wz * dfu * jnp.sum(ww * dfv, -1), -1)
    scale = jnp.sum(wz * jnp.abs(fu) * jnp.sum(ww * jnp.abs(fv), -1), -1)
    scale_d = jnp.sum(wz * jnp.abs(dfu) * jnp.sum(ww * jnp.abs(dfv), -1), -1)
    if df2 is None:
        return v_sum, vd_sum, scale, scale_d
    eps = float(jnp.finfo(dtype).eps)
    dm = 2.0 * eps * jnp.abs(m)[..., None]
    db = 2.0 * eps * b[..., None, None]
    d2v = jnp.abs(df2(v))
    moved = jnp.sum(wz * jnp.abs(fu) * jnp.sum(ww * (jnp.abs(dfv) * dm + d2v * db), -1), -1)
    moved_d = jnp.sum(wz * jnp.abs(dfu) * jnp.sum(ww * (d2v * dm + jnp.abs(df3(v)) * db), -1), -1)
    return v_sum, vd_sum, scale, scale_d, moved, moved_d


def _quadrature_error(values, scale, n, dtype, moved=0.0):
    """Error estimate of the rule with n nodes from its values with n, 3n / 4 and n / 2 nodes
    (`values`, in that order; equally spaced node counts): with d1 = |Q_n - Q_3n/4|,
    d2 = |Q_3n/4 - Q_n/2|, Aitken's extrapolation of a geometric convergence gives
    e(n) ~ d1^2 / (d2 - d1) (exact for e(n) = C r^n); at most d1 where the differences do not
    shrink (slow, e.g. algebraic, convergence); times 10 for safety, plus the rounding: of the sums,
    2 sqrt(n) eps scale (the probabilistic bound lambda sqrt(n) u of Higham & Mary, SIAM J. Sci.
    Comput. 41 (2019), for the nested n-term sums; the worst case n u is ~sqrt(n) times larger and
    would leave the bound hundreds of times above the real error), and `moved`, the rounding of the
    change of variables (`_conditional_sums`), twice. Two rules that each carry at most that
    rounding differ by up to twice it with no discretization error at all, so d1 and d2 are taken
    beyond that floor: otherwise rounding noise, times 10, would dominate the bound of a converged rule."""
    eps = float(jnp.finfo(dtype).eps)
    rounding = 2.0 * math.sqrt(n) * eps * scale + 2.0 * moved
    fine, half, quarter = values
    d1 = jnp.maximum(jnp.abs(fine - half) - 2.0 * rounding, 0.0)
    d2 = jnp.maximum(jnp.abs(half - quarter) - 2.0 * rounding, 0.0)
    gap = d2 - d1
    est = jnp.where(gap > d1, d1 * d1 / jnp.where(gap > 0, gap, 1.0), d1)
    return 10.0 * est + rounding


def quadrature_dual(f, a, b, c, n: int):
    """(V, V_dot, error of V, error of V_dot) of any elementwise f by direct 2-D quadrature:

        E[f(u) f(v)] = E_u[ f(u) E_w[ f(m(u) + sig w) ] ],  m = (c / a) u,  sig^2 = b - c^2 / a,

    outer over u = sqrt(a) z with nodes graded at z = 0 (width 1 / sqrt(max(a, b, 1))), inner with
    nodes graded at the kink w = -m / sig (width min(1, 1 / sig)); see `graded_rule`. Unlike a
    Hermite (Mehler) series, the cost does not grow with the variance: f(sqrt(q) z) for large q is
    a near-step whose width the nodes follow. The errors are the a-posteriori estimates of
    `_quadrature_error` (rule with n against 3n / 4 and n / 2 nodes per dimension)."""
    dtype = jnp.result_type(a, b, c)
    df = _elementwise_grad(f)
    df2 = _elementwise_grad(df)
    v, vd, s, sd, mv, mvd = _conditional_sums(f, df, a, b, c, n, df2, _elementwise_grad(df2))
    v2, vd2, _, _ = _conditional_sums(f, df, a, b, c, 3 * n // 4)
    v4, vd4, _, _ = _conditional_sums(f, df, a, b, c, n // 2)
    return (v, vd, _quadrature_error((v, v2, v4), s, n, dtype, mv),
            _quadrature_error((vd, vd2, vd4), sd, n, dtype, mvd))


def quadrature_moments(f, q, n: int, orders: int = 2):
    """E[f^(j)(u)^2] for j < orders, u ~ N(0, q), stacked on a new first axis (for orders = 4 a
    fifth row: d E[f(u)^2] / dq = E[f'(u)^2 + f(u) f''(u)], heat equation), and the error estimates
    of the first two (j = 0, 1), by the 1-D rule of `graded_rule`."""
    dtype = jnp.result_type(q)
    derivs = [f]
    for _ in range(orders - 1):
        derivs.append(_elementwise_grad(derivs[-1]))

    def moments(k):
        z, wz = graded_rule(jnp.zeros_like(q), jax.lax.rsqrt(jnp.maximum(q, 1.0)), k)
        u = jnp.sqrt(q)[..., None] * z
        vals = [g(u) for g in derivs]
        rows = [jnp.sum(wz * g * g, -1) for g in vals]
        if orders == 4:
            rows.append(jnp.sum(wz * (vals[1] ** 2 + vals[0] * vals[2]), -1))
        return jnp.stack(rows)

    fine = moments(n)
    err = _quadrature_error((fine[:2], moments(3 * n // 4)[:2], moments(n // 2)[:2]), fine[:2], n, dtype)
    return fine, err


# --------------------------------------------------------------------------------------------
# Mehler series: the depth page's fast path for a variance shared by many pairs
# --------------------------------------------------------------------------------------------
HERMITE_TERMS = 160
HERMITE_NODES = 320


@functools.lru_cache(maxsize=8)
def _hermite_table(n_nodes: int, n_terms: int):
    """Probabilists' Gauss-Hermite nodes z, weights w (sum 1) and normalized Hermite polynomials
    h_k(z) = He_k(z) / sqrt(k!) at the nodes (n_terms + 1, n_nodes), in float64 numpy."""
    x, w = np.polynomial.hermite.hermgauss(n_nodes)
    z = x * math.sqrt(2.0)
    w = w / math.sqrt(math.pi)
    h = np.zeros((n_terms + 1, n_nodes))
    h[0] = 1.0
    h[1] = z
    for k in range(1, n_terms):
        h[k + 1] = (z * h[k] - math.sqrt(k) * h[k - 1]) / math.sqrt(k + 1)
    return z, w, h


def mehler_dual(f, qa, qb, c):
    """(V, V_dot) by Mehler's formula E[f(u) f(v)] = sum_k rho^k c_k(a) c_k(b), rho = c / sqrt(ab),
    c_k(q) = E[f(sqrt(q) z) h_k(z)] by 320-node Gauss-Hermite quadrature, 160 terms; coefficients
    computed once when qb is qa. Float64 only (the h_k table leaves the float32 range). Cheap per
    pair once the coefficients exist, but accurate only for moderate variances (the nodes cannot
    resolve f(sqrt(q) z) for q >~ 10): used by the depth page, whose pairs share one variance;
    everything else uses `quadrature_dual`."""
    z, w, h = (jnp.asarray(t, jnp.float64) for t in _hermite_table(HERMITE_NODES, HERMITE_TERMS))
    df = _elementwise_grad(f)

    def coefficients(g, q):
        return jnp.einsum("...n,kn->...k", g(jnp.sqrt(jnp.maximum(q, 0.0))[..., None] * z) * w, h)

    ca, da = coefficients(f, qa), coefficients(df, qa)
    cb, db = (ca, da) if qb is qa else (coefficients(f, qb), coefficients(df, qb))
    rho = jnp.clip(c / (jnp.sqrt(qa) * jnp.sqrt(qb)), -1.0, 1.0)

    def mehler_sum(c1, c2):
        c1, c2 = jnp.moveaxis(c1, -1, 0), jnp.moveaxis(c2, -1, 0)
        last = c1.shape[0] - 1
        acc = jnp.broadcast_to(c1[last] * c2[last], jnp.broadcast_shapes(c1.shape[1:], c2.shape[1:], rho.shape))
        return jax.lax.fori_loop(0, last, lambda i, a: a * rho + c1[last - 1 - i] * c2[last - 1 - i], acc)

    return mehler_sum(ca, cb), mehler_sum(da, db)


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------
def _max_variance(*arrays) -> float:
    """Largest variance in the arrays, for the node count; inside jit (tracers), the worst case."""
    try:
        return max(float(jnp.max(x)) for x in arrays)
    except (jax.errors.ConcretizationTypeError, TypeError):
        return math.inf


def dual_activation(activation: ActivationLike, var1, var2, cov):
    """(E[phi(u) phi(v)], E[phi'(u) phi'(v)]) for (u, v) ~ N(0, [[var1, cov], [cov, var2]]),
    elementwise; var1 and var2 broadcast against cov."""
    v, v_dot, _, _ = dual_activation_with_bound(activation, var1, var2, cov)
    return v, v_dot


def dual_activation_with_bound(activation: ActivationLike, var1, var2, cov, n: int | None = None):
    """`dual_activation` plus error estimates of V and V_dot (elementwise): 0 for closed forms, the
    quadrature estimate of `quadrature_dual` otherwise. n: nodes per dimension (default by the
    largest variance, `quadrature_nodes`)."""
    var1, var2, cov = jnp.asarray(var1), jnp.asarray(var2), jnp.asarray(cov)
    cov = snap_covariance(var1, var2, cov)
    if is_closed_form(activation):
        v, v_dot = REGISTRY[activation].closed_form(var1, var2, cov)
        zero = jnp.zeros_like(v)
        return v, v_dot, zero, zero
    var1, var2, cov = jnp.broadcast_arrays(var1, var2, cov)
    if n is None:
        n = quadrature_nodes(_max_variance(var1, var2), var1.dtype)
    f = activation_fn(activation)
    try:
        hash(f)
    except TypeError:  # an unhashable callable cannot be a static argument: op by op
        return quadrature_dual(f, var1, var2, cov, n)
    return _quadrature_dual_compiled(f, var1, var2, cov, n=n)


@functools.partial(jax.jit, static_argnames=("f", "n"))
def _quadrature_dual_compiled(f, a, b, c, *, n):
    """`quadrature_dual` as one compiled function (per activation, node count and shape): called
    eagerly, its few hundred operations each compiled on their own, 6-12 s per new node count."""
    return quadrature_dual(f, a, b, c, n)


def dual_activation_diag(activation: ActivationLike, var, n: int | None = None):
    """(E[phi(u)^2], E[phi'(u)^2]) for u ~ N(0, var), elementwise over var."""
    var = jnp.asarray(var)
    if is_closed_form(activation):
        return REGISTRY[activation].closed_form(var, var, var)
    if n is None:
        n = quadrature_nodes(_max_variance(var), var.dtype)
    m, _ = quadrature_moments(activation_fn(activation), var, n)
    return m[0], m[1]
