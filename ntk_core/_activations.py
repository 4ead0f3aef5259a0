"""Elementwise activations and their dual kernels.

For (u, v) ~ N(0, [[a, c], [c, b]]) the dual kernels of an activation phi are

    V(a, b, c)     = E[phi(u) phi(v)]        (NNGP step, Cho & Saul 2009; Lee et al. 2018)
    V_dot(a, b, c) = E[phi'(u) phi'(v)]      (NTK step, Jacot et al. 2018)

Closed forms are used for relu, leaky_relu, abs, erf, gelu, identity and sin. Every other activation
(tanh, softplus, sigmoid or any elementwise callable) goes through a Hermite (Mehler) series whose
coefficients come from 1-D Gauss-Hermite quadrature; see `HermiteDual`.
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ._spec import LEAKY_RELU_SLOPE, ActivationLike

_PI = math.pi


# --------------------------------------------------------------------------------------------
# Elementwise functions (used by finite networks and by the quadrature path)
# --------------------------------------------------------------------------------------------
def _leaky_relu(x):
    return jnp.where(x > 0, x, LEAKY_RELU_SLOPE * x)


def _gelu_exact(x):
    return jax.nn.gelu(x, approximate=False)


_ELEMENTWISE = {
    "relu": jax.nn.relu,
    "leaky_relu": _leaky_relu,
    "abs": jnp.abs,
    "erf": jax.scipy.special.erf,
    "gelu": _gelu_exact,
    "identity": lambda x: x,
    "sin": jnp.sin,
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
}


def activation_fn(activation: ActivationLike) -> Callable:
    """The elementwise function phi for a name or a callable."""
    if callable(activation):
        return activation
    return _ELEMENTWISE[activation]


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


_CLOSED_FORM = {
    "relu": _dual_relu,
    "leaky_relu": _dual_leaky_relu,
    "abs": _dual_abs,
    "erf": _dual_erf,
    "gelu": _dual_gelu,
    "identity": _dual_identity,
    "sin": _dual_sin,
}


# --------------------------------------------------------------------------------------------
# Any other activation: Mehler / Hermite series with 1-D Gauss-Hermite coefficients
# --------------------------------------------------------------------------------------------
HERMITE_TERMS = 160
HERMITE_NODES = 320


@functools.lru_cache(maxsize=8)
def _hermite_table(n_nodes: int, n_terms: int):
    """Probabilists' Gauss-Hermite nodes z, weights w (sum 1) and normalized Hermite polynomials
    h_k(z) = He_k(z) / sqrt(k!) at the nodes, shape (n_terms + 1, n_nodes)."""
    x, w = np.polynomial.hermite.hermgauss(n_nodes)
    z = x * math.sqrt(2.0)
    w = w / math.sqrt(math.pi)
    h = np.zeros((n_terms + 1, n_nodes))
    h[0] = 1.0
    if n_terms >= 1:
        h[1] = z
    for k in range(1, n_terms):
        h[k + 1] = (z * h[k] - math.sqrt(k) * h[k - 1]) / math.sqrt(k + 1)
    return z, w, h


def _hermite_coefficients(f, var, n_nodes=HERMITE_NODES, n_terms=HERMITE_TERMS):
    """c_k(var) = E[f(sqrt(var) z) h_k(z)], z ~ N(0, 1), for a vector of variances: (n, K+1),
    and the tail  E[f(sqrt(var) z)^2] - sum_k c_k^2 >= 0, which bounds the truncation error."""
    z, w, h = _hermite_table(n_nodes, n_terms)
    dtype = var.dtype
    z, w, h = (jnp.asarray(t, dtype) for t in (z, w, h))
    fz = f(jnp.sqrt(jnp.maximum(var, 0.0))[..., None] * z)  # (..., nodes)
    coef = jnp.einsum("...n,kn->...k", fz * w, h)
    second = jnp.sum(fz * fz * w, axis=-1)
    tail = jnp.maximum(second - jnp.sum(coef * coef, axis=-1), 0.0)
    return coef, tail


def _elementwise_grad(f):
    def df(x):
        return jax.grad(lambda t: jnp.sum(f(t)))(x)

    return df


def _mehler_sum(coef1, coef2, rho):
    """sum_k rho^k c_k(a) c_k(b) by Horner's rule; coef1, coef2 (..., K+1) broadcast with rho."""
    c1 = jnp.moveaxis(coef1, -1, 0)
    c2 = jnp.moveaxis(coef2, -1, 0)
    last = c1.shape[0] - 1

    def body(i, acc):
        k = last - 1 - i
        return acc * rho + c1[k] * c2[k]

    acc = jnp.broadcast_to(c1[last] * c2[last], jnp.broadcast_shapes(c1.shape[1:], c2.shape[1:], rho.shape))
    return jax.lax.fori_loop(0, last, body, acc)


def hermite_dual(f, var1, var2, cov):
    """Dual kernels of an arbitrary elementwise f through Mehler's formula
        E[f(u) f(v)] = sum_k rho^k c_k(a) c_k(b),   rho = c / sqrt(ab),
    with c_k from 1-D Gauss-Hermite quadrature (HERMITE_NODES nodes, HERMITE_TERMS terms).
    var1 and var2 broadcast against cov (e.g. var1[:, None], var2[None, :]).

    Returns (V, V_dot, bound): by Cauchy-Schwarz the truncation error of every entry is at most
    sqrt(tail(a) tail(b)) (`bound`, the max over V and V_dot), tail = E[f^2] - sum_k c_k^2 >= 0."""
    df = _elementwise_grad(f)
    rho, _ = _correlation(var1, var2, cov)
    c1, t1 = _hermite_coefficients(f, var1)
    c2, t2 = _hermite_coefficients(f, var2)
    d1, s1 = _hermite_coefficients(df, var1)
    d2, s2 = _hermite_coefficients(df, var2)
    v = _mehler_sum(c1, c2, rho)
    v_dot = _mehler_sum(d1, d2, rho)
    bound = jnp.maximum(jnp.sqrt(jnp.max(t1) * jnp.max(t2)), jnp.sqrt(jnp.max(s1) * jnp.max(s2)))
    return v, v_dot, bound


def hermite_dual_diag(f, var):
    """E[f(u)^2] and E[f'(u)^2] for u ~ N(0, var), by 1-D Gauss-Hermite quadrature."""
    z, w, _ = _hermite_table(HERMITE_NODES, 0)
    z, w = jnp.asarray(z, var.dtype), jnp.asarray(w, var.dtype)
    u = jnp.sqrt(jnp.maximum(var, 0.0))[..., None] * z
    fu = f(u)
    dfu = _elementwise_grad(f)(u)
    return jnp.sum(fu * fu * w, -1), jnp.sum(dfu * dfu * w, -1)


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------
def is_closed_form(activation: ActivationLike) -> bool:
    return isinstance(activation, str) and activation in _CLOSED_FORM


def dual_activation(activation: ActivationLike, var1, var2, cov):
    """(E[phi(u) phi(v)], E[phi'(u) phi'(v)]) for (u, v) ~ N(0, [[var1, cov], [cov, var2]]),
    elementwise; var1 and var2 broadcast against cov."""
    v, v_dot, _ = dual_activation_with_bound(activation, var1, var2, cov)
    return v, v_dot


def dual_activation_with_bound(activation: ActivationLike, var1, var2, cov):
    """`dual_activation` plus a bound on its error: 0 for closed forms, the Hermite truncation
    bound of `hermite_dual` otherwise."""
    var1, var2, cov = jnp.asarray(var1), jnp.asarray(var2), jnp.asarray(cov)
    cov = snap_covariance(var1, var2, cov)
    if is_closed_form(activation):
        v, v_dot = _CLOSED_FORM[activation](var1, var2, cov)
        return v, v_dot, jnp.zeros((), v.dtype)
    return hermite_dual(activation_fn(activation), var1, var2, cov)


def dual_activation_diag(activation: ActivationLike, var):
    """(E[phi(u)^2], E[phi'(u)^2]) for u ~ N(0, var), elementwise over var."""
    var = jnp.asarray(var)
    if is_closed_form(activation):
        return _CLOSED_FORM[activation](var, var, var)
    return hermite_dual_diag(activation_fn(activation), var)
