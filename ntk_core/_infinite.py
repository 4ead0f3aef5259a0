"""Exact infinite-width NNGP (Sigma) and NTK (Theta) of fully connected and convolutional networks.

Fully connected (Lee et al. 2018; Jacot et al. 2018; conventions of ../shared/reference/README.md):

    Sigma^0(x,x') = w^2 x.x'/d + b^2,                  Theta^0 = Sigma^0
    Sigma^l       = w^2 E[phi(u) phi(v)] + b^2,          (u, v) ~ N(0, Sigma^{l-1} on {x, x'})
    Theta^l       = Sigma^l + w^2 E[phi'(u) phi'(v)] Theta^{l-1}
    nngp = Sigma^depth, ntk = Theta^depth

Convolutional (Arora et al. 2019, CNTK): the same recursion on every pair of pixel positions (p, q),
followed by the 3x3 "patch average" A[K](p, q) = (1/9) sum_{d in 3x3} K(p+d, q+d) (zero padding);
`flatten` averages the pixel diagonal K(p, p), `gap` averages all pairs (p, q).

Work is done in tiles of the output so memory stays bounded; for x2 = None only the upper
triangle of tiles is computed and mirrored.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from . import _mehler
from ._activations import (REGISTRY, activation_fn, dual_activation, dual_activation_diag, dual_activation_with_bound,
                           is_closed_form, quadrature_moments, quadrature_nodes)
from ._spec import CNN, MLP, NetworkSpec

# Scratch memory a single compiled tile call may use (intermediates, not the output).
TILE_MEMORY_BYTES = 256 * 2**20
# Live arrays of tile size inside the recursion (measured upper bound; used to size tiles).
_LIVE_ARRAYS = 12
MAX_GAP_PIXELS = 1024  # (H W)^2 entries per image pair make larger images impractical for `gap`


class KernelSizeError(ValueError):
    """The requested kernel does not fit in memory (raised before anything large is allocated)."""


class KernelOverflowError(FloatingPointError):
    """The kernel leaves the floating point range at some layer."""


@dataclasses.dataclass(frozen=True)
class Kernels:
    """Infinite-width kernels: `nngp` (Sigma) and `ntk` (Theta), numpy arrays of shape (n1, n2).

    `dual_error_bound` bounds the absolute error of every entry of both kernels that the
    quadrature of activations without a closed form causes (0 for closed forms), diagonal entries
    included, propagated through the layers (see `_quadrature_layer`); floating-point rounding of
    the recursion itself, common to every activation (~eps per layer), is not in it.
    `relative_error_bound` divides it by the largest kernel entry."""

    nngp: np.ndarray
    ntk: np.ndarray
    dual_error_bound: float = 0.0

    @property
    def relative_error_bound(self) -> float:
        scale = max(float(np.max(np.abs(self.nngp))), float(np.max(np.abs(self.ntk))))
        return self.dual_error_bound / scale if scale > 0 else 0.0


# ----------------------------------------------------------------------------------------------
# Input handling
# ----------------------------------------------------------------------------------------------
def _working_dtype(*arrays):
    x64 = jax.config.jax_enable_x64
    if x64 and any(np.asarray(a).dtype == np.float64 for a in arrays if a is not None):
        return np.float64
    return np.float32


def _as_input(x, rank: int, name: str, dtype):
    try:
        arr = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"{name} must be a numeric array: {e}") from None
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != rank:
        shape = "(n, d)" if rank == 2 else "(n, H, W, C)"
        raise ValueError(f"{name} must have rank {rank} {shape}, got shape {arr.shape}")
    if arr.shape[0] < 1 or any(s < 1 for s in arr.shape[1:]):
        raise ValueError(f"{name} must be non-empty, got shape {arr.shape}")
    arr = arr.astype(dtype, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _available_memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def _check_output_fits(n1: int, n2: int, itemsize: int):
    need = 2 * n1 * n2 * itemsize  # nngp and ntk
    avail = _available_memory_bytes()
    if need + TILE_MEMORY_BYTES > 0.9 * avail:
        raise KernelSizeError(
            f"kernels of shape ({n1}, {n2}) need {need / 2**30:.1f} GiB for the two outputs, but only "
            f"{avail / 2**30:.1f} GiB of memory is available; use fewer points"
        )


def _overflow_message(spec, layer: int, dtype) -> str:
    return (
        f"the kernel leaves the {np.dtype(dtype).name} range at layer {layer} of {spec.depth} "
        f"(w_std={spec.w_std}, b_std={spec.b_std}, activation={spec.activation!r}); "
        "lower w_std or the depth"
    )


# ----------------------------------------------------------------------------------------------
# Diagonal pass: per-layer variances Sigma^l(x, x) and Theta^l(x, x) (cheap, O(n depth))
# ----------------------------------------------------------------------------------------------
# The compiled recursions take the number of layers as data and their per-layer arrays padded to a
# multiple of this: a new depth on a slider reuses the compiled code (each compile of the quadrature
# recursion took 1-3 s, ~10 s per new depth on the finite page with tanh).
LAYER_SLOTS = 8


def _layer_slots(depth: int) -> int:
    return max(LAYER_SLOTS, -(-depth // LAYER_SLOTS) * LAYER_SLOTS)


def _variance_history(step, var0, depth, slots):
    """Runs (var, theta) <- step(var, theta) from (var0, var0) for `depth` layers (data: one
    compile serves every depth up to `slots`); returns the variances entering each layer and the
    last, (slots + 1, ...) with the entries beyond depth + 1 zero, and the final (var, theta)."""
    def layer(l, carry):
        var, theta, hist = carry
        var, theta = step(var, theta)
        return var, theta, hist.at[l + 1].set(var)

    hist = jnp.zeros((slots + 1,) + var0.shape, var0.dtype).at[0].set(var0)
    var, theta, hist = jax.lax.fori_loop(0, depth, layer, (var0, var0, hist))
    return hist, var, theta


@functools.partial(jax.jit, static_argnames=("activation", "slots"))
def _mlp_diagonal_slots(x, w2, b2, depth, *, activation, slots):
    def step(var, theta):
        v, v_dot = dual_activation_diag(activation, var)
        new_var = w2 * v + b2
        return new_var, new_var + w2 * v_dot * theta

    return _variance_history(step, w2 * jnp.sum(x * x, axis=1) / x.shape[1] + b2, depth, slots)


def _mlp_diagonal(x, w2, b2, *, activation, depth):
    """Returns per-layer variances (depth + 1, n) and the final (Sigma, Theta) diagonals (numpy)."""
    hist, var, theta = _mlp_diagonal_slots(x, w2, b2, depth, activation=activation, slots=_layer_slots(depth))
    return np.asarray(hist)[: depth + 1], np.asarray(var), np.asarray(theta)


def _mlp_diagonal_numba(x, w2, b2, *, activation, depth):
    """`_mlp_diagonal` for the compiled engine (closed-form activations), in numpy / numba."""
    from . import _fast

    x = np.asarray(x)
    dtype = x.dtype.type
    var0 = (w2 * np.sum(x * x, axis=1) / dtype(x.shape[1]) + b2).astype(dtype)
    hist = np.empty((depth + 1, x.shape[0]), dtype)
    theta = np.empty(x.shape[0], dtype)
    poly, snap = dtype == np.float32, dtype(_fast.snap_threshold(dtype))
    _fast.kernels(_fast.ACTIVATION_IDS[activation], poly).mlp_diagonal(var0, w2, b2, snap, hist, theta, dtype)
    return hist, hist[-1], theta


def _first_nonfinite_layer(history):
    bad = ~np.all(np.isfinite(np.asarray(history)).reshape(history.shape[0], -1), axis=1)
    return int(np.argmax(bad)) if bad.any() else None


# ----------------------------------------------------------------------------------------------
# Fully connected: one tile of the output
# ----------------------------------------------------------------------------------------------
def _mlp_tile(xa, xb, va, vb, w2, b2, activation, depth):
    """Sigma, Theta and the error bound (0: closed forms) on a tile: xa (Ta, d), xb (Tb, d),
    per-layer variances va (depth + 1, Ta), vb (depth + 1, Tb)."""
    sigma = w2 * (xa @ xb.T) / xa.shape[1] + b2
    theta = sigma
    bound = jnp.zeros((), sigma.dtype)
    for layer in range(depth):
        v, v_dot = dual_activation(activation, va[layer][:, None], vb[layer][None, :], sigma)
        sigma = w2 * v + b2
        theta = sigma + w2 * v_dot * theta
    return sigma, theta, bound


def _mlp_tile_scan(xa, xb, va, vb, w2, b2, activation, depth):
    """Same as `_mlp_tile` for deep nets: a lax.scan keeps compile time flat in depth."""
    sigma0 = w2 * (xa @ xb.T) / xa.shape[1] + b2

    def step(carry, layer_vars):
        sigma, theta, bound = carry
        a, b = layer_vars
        v, v_dot = dual_activation(activation, a[:, None], b[None, :], sigma)
        sigma = w2 * v + b2
        return (sigma, sigma + w2 * v_dot * theta, bound), None

    init = (sigma0, sigma0, jnp.zeros((), sigma0.dtype))
    (sigma, theta, bound), _ = jax.lax.scan(step, init, (va[:depth], vb[:depth]))
    return sigma, theta, bound


_dual_with_bound = dual_activation_with_bound


def _quadrature_layer(activation, n, w2, b2, a, b, ma, mb, da, db, same, sigma, theta, dsig, dth):
    """One layer of the recursion for a quadrature activation, with first-order error bounds.

    a, b: variances of the two points (and da, db bounds on their errors); ma, mb: (..., 4) moments
    E[phi^(j)(u)^2], j = 0..3, at those variances; dsig, dth: bounds on the errors of sigma, theta.
    With eV, eV_dot the quadrature errors of this layer (`quadrature_dual`), Price's theorem
    (dV/dc = V_dot, dV_dot/dc = E[phi'' phi'']), the heat equation (dV/da = E[phi''(u) phi(v)] / 2)
    and Cauchy-Schwarz:

        dV     <= eV + |V_dot| dsig + sqrt(m2a m0b) da / 2 + sqrt(m0a m2b) db / 2
        dV_dot <= eV_dot + sqrt(m2a m2b) dsig + sqrt(m3a m1b) da / 2 + sqrt(m1a m3b) db / 2
        dsig'  =  w^2 dV,    dth' = dsig' + w^2 ((|V_dot| + dV_dot) dth + |theta| dV_dot).

    On `same` entries (a point with itself: a = b = c move together) the partial derivatives above
    cancel in part, and the total ones are used instead: dV <= eV + |dE[phi^2]/dq| da (ma[..., 4],
    heat equation) and dV_dot <= eV_dot + (m2a + sqrt(m1a m3a)) da; summing the partials there
    would grow the bound by chi_1 per layer in the chaotic phase, where the variance map contracts."""
    v, vd, ev, evd = _dual_with_bound(activation, a, b, sigma, n=n)
    m0a, m1a, m2a, m3a = (ma[..., j] for j in range(4))
    m0b, m1b, m2b, m3b = (mb[..., j] for j in range(4))
    dv = ev + jnp.abs(vd) * dsig + 0.5 * (jnp.sqrt(m2a * m0b) * da + jnp.sqrt(m0a * m2b) * db)
    dvd = evd + jnp.sqrt(m2a * m2b) * dsig + 0.5 * (jnp.sqrt(m3a * m1b) * da + jnp.sqrt(m1a * m3b) * db)
    off = jnp.abs(sigma - a)  # the entry's own covariance against the variance it stands for
    dv_same, dvd_same = _same_entry_errors(ev, evd, ma, da, vd, off, jnp.sqrt(m2a * m2b))
    dv = jnp.where(same, dv_same, dv)
    dvd = jnp.where(same, dvd_same, dvd)
    new_sigma = w2 * v + b2
    new_theta = new_sigma + w2 * vd * theta
    new_dsig, new_dth = _propagated_errors(w2, dv, dvd, vd, theta, dth)
    return new_sigma, new_theta, new_dsig, new_dth


def _same_entry_errors(ev, evd, ma, da, vd, off, m2_mean):
    """(dV, dV_dot) of a point with itself (`_quadrature_layer`): total variance derivatives
    dE[phi^2]/dq = ma[..., 4] and (m2 + sqrt(m1 m3)), plus |V_dot| and m2_mean = sqrt(m2a m2b)
    times `off`, how far the entry's covariance is from the variance it stands for."""
    m1, m2, m3 = ma[..., 1], ma[..., 2], ma[..., 3]
    # abs and ** 0.5 work on numpy (float64 host loop of `_diagonal_error_bound`) and jax arrays alike
    return (ev + abs(ma[..., 4]) * da + abs(vd) * off,
            evd + (m2 + (m1 * m3) ** 0.5) * da + m2_mean * off)


def _propagated_errors(w2, dv, dvd, vd, theta, dth):
    """Bounds on the errors of the next layer's (sigma, theta) from this layer's dV, dV_dot:
    dsig' = w^2 dV, dth' = dsig' + w^2 ((|V_dot| + dV_dot) dth + |theta| dV_dot)."""
    dsig = w2 * dv
    return dsig, dsig + w2 * ((abs(vd) + dvd) * dth + abs(theta) * dvd)


def _mlp_tile_quadrature(xa, xb, va, vb, ma, mb, da, db, w2, b2, activation, depth, n):
    """`_mlp_tile` for quadrature activations: ma, mb (depth, T, 5) moments and da, db (depth + 1, T)
    variance error bounds per layer and point; n: quadrature nodes per dimension (static). A loop,
    not unrolled: one compiled layer keeps compile time short."""
    sigma = w2 * (xa @ xb.T) / xa.shape[1] + b2
    theta = sigma
    dsig = jnp.zeros_like(sigma)
    dth = dsig
    same = jnp.all(xa[:, None, :] == xb[None, :, :], axis=-1)

    def layer(l, carry):
        sigma, theta, dsig, dth = carry
        return _quadrature_layer(activation, n, w2, b2, va[l][:, None], vb[l][None, :], ma[l][:, None],
                                 mb[l][None, :], da[l][:, None], db[l][None, :], same, sigma, theta, dsig, dth)

    sigma, theta, dsig, dth = jax.lax.fori_loop(0, depth, layer, (sigma, theta, dsig, dth))
    return sigma, theta, jnp.maximum(jnp.max(dsig), jnp.max(dth))


@functools.partial(jax.jit, static_argnames=("activation", "n"))
def _mlp_tiles_quadrature(xa, xb, va, vb, ma, mb, da, db, w2, b2, depth, *, activation, n):
    """`_mlp_tile_quadrature` over tiles; depth is data (the layer axes padded, `_layer_slots`)."""
    f = functools.partial(_mlp_tile_quadrature, w2=w2, b2=b2, activation=activation, depth=depth, n=n)
    return jax.vmap(f)(xa, xb, va, vb, ma, mb, da, db)


@functools.partial(jax.jit, static_argnames=("activation", "n"))
def _layer_moments(q, *, activation, n):
    """`quadrature_moments` (orders = 4) of one layer's variances: one compiled function per number
    of points, whatever the depth."""
    return quadrature_moments(activation_fn(activation), q, n, orders=4)


def _diagonal_moments(hist, w2, b2, *, activation, n):
    """Per layer l < depth and point: the moments E[phi^(j)(u)^2], j = 0..3, and d E[phi(u)^2] / dq,
    u ~ N(0, hist[l]) (shape (depth, ..., 5)), their quadrature errors (j = 0, 1; shape (depth, ..., 2)),
    and bounds dvar (depth + 1, ...) on the quadrature error of hist itself:
    dvar[0] = 0, dvar[l+1] = w^2 (e0 + |d E[phi^2] / dq| dvar[l]) (to first order), with
    d E[phi(u)^2] / dq = E[phi'^2 + phi phi''] (heat equation). numpy arrays."""
    hist = np.asarray(hist)
    layers = [_layer_moments(hist[l], activation=activation, n=n) for l in range(hist.shape[0] - 1)]
    m = np.stack([np.asarray(a) for a, _ in layers]) if layers else np.zeros((0, 5) + hist.shape[1:], hist.dtype)
    err = np.stack([np.asarray(e) for _, e in layers]) if layers else np.zeros((0, 2) + hist.shape[1:], hist.dtype)
    dvar = np.zeros(hist.shape, m.dtype)
    for layer in range(m.shape[0]):
        dvar[layer + 1] = w2 * (err[layer, 0] + np.abs(m[layer, 4]) * dvar[layer])
    return np.moveaxis(m, 1, -1), dvar, np.moveaxis(err, 1, -1)


def _layer_nodes(hist1, hist2, dtype) -> int:
    """Quadrature nodes per dimension from the largest variance any layer sees (hist: (depth + 1, ...))."""
    top = max(float(np.max(np.asarray(hist1)[:-1], initial=0.0)), float(np.max(np.asarray(hist2)[:-1], initial=0.0)))
    return quadrature_nodes(top, dtype)


UNROLL_MAX_DEPTH = 24


@functools.partial(jax.jit, static_argnames=("activation", "depth"))
def _mlp_tiles(xa, xb, va, vb, w2, b2, *, activation, depth):
    tile = _mlp_tile if depth <= UNROLL_MAX_DEPTH else _mlp_tile_scan
    f = functools.partial(tile, w2=w2, b2=b2, activation=activation, depth=depth)
    return jax.vmap(f)(xa, xb, va, vb)


# ----------------------------------------------------------------------------------------------
# Tiling
# ----------------------------------------------------------------------------------------------
def _tile_plan(n1, n2, symmetric, entry_cost, itemsize):
    """Tile edges (rows Ta, columns Tb), the list of (row tile, column tile) pairs to compute, and
    the number of pairs per compiled call. A lopsided call (100 test points against 10 training
    points) gets a thin tile instead of padding the short side up to the long one's edge."""
    budget_entries = max(TILE_MEMORY_BYTES // (_LIVE_ARRAYS * itemsize * entry_cost), 64 * 64)
    edge = max(8, int(math.isqrt(budget_entries)) // 8 * 8)
    if symmetric:
        ta = tb = min(_round_up(n1, 8), 256, edge)
    else:
        tb = min(_round_up(n2, 8), 512, edge)
        ta = min(_round_up(n1, 8), 512, max(8, budget_entries // tb // 8 * 8))
    t1, t2 = -(-n1 // ta), -(-n2 // tb)
    if symmetric:
        pairs = [(i, j) for i in range(t1) for j in range(i, t1)]
    else:
        pairs = [(i, j) for i in range(t1) for j in range(t2)]
    per_call = max(1, min(len(pairs), budget_entries // (ta * tb)))
    return ta, tb, pairs, per_call


def _round_up(n, m):
    return -(-n // m) * m


def _pad_rows(a, rows, axis=0):
    pad = rows - a.shape[axis]
    if pad == 0:
        return a
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, pad)
    if a.shape[axis] == 0:  # nothing to copy (no layers)
        return np.pad(a, widths)
    return np.pad(a, widths, mode="edge")  # copies of a real row: the error bound is a max over the tile


def _run_tiles(compute, rows_a, rows_b, n1, n2, symmetric, tiles, pairs, per_call, dtype):
    """Evaluates `compute(a_tiles, b_tiles) -> (nngp, ntk, bound)` over batches of tile pairs and
    assembles the (n1, n2) outputs. rows_a / rows_b: tuples of arrays indexed by row, padded to a
    whole number of tiles; tiles: the tile edges (Ta, Tb)."""
    ta, tb = tiles
    nngp = np.empty((n1, n2), dtype)
    ntk = np.empty((n1, n2), dtype)
    bound = 0.0

    def gather(rows, idx, tile):
        return tuple(
            np.stack([r.reshape((-1, tile) + r.shape[1:])[k] for k in idx]) if r.ndim >= 1 else r
            for r in rows
        )

    for start in range(0, len(pairs), per_call):
        batch = pairs[start : start + per_call]
        padded = batch + [batch[-1]] * (per_call - len(batch))  # keep one compiled shape
        a = gather(rows_a, [i for i, _ in padded], ta)
        b = gather(rows_b, [j for _, j in padded], tb)
        s, t, err = compute(a, b)
        s, t = np.asarray(s), np.asarray(t)
        bound = max(bound, float(np.max(err)))
        for k, (i, j) in enumerate(batch):
            r0, c0 = i * ta, j * tb
            r1, c1 = min(r0 + ta, n1), min(c0 + tb, n2)
            nngp[r0:r1, c0:c1] = s[k, : r1 - r0, : c1 - c0]
            ntk[r0:r1, c0:c1] = t[k, : r1 - r0, : c1 - c0]
            if symmetric and i != j:
                nngp[c0:c1, r0:r1] = s[k, : r1 - r0, : c1 - c0].T
                ntk[c0:c1, r0:r1] = t[k, : r1 - r0, : c1 - c0].T
    return nngp, ntk, bound


def _check_finite(spec, nngp, ntk, dtype):
    if not (np.all(np.isfinite(nngp)) and np.all(np.isfinite(ntk))):
        raise KernelOverflowError(_overflow_message(spec, spec.depth, dtype))


# ----------------------------------------------------------------------------------------------
# Fully connected driver
# ----------------------------------------------------------------------------------------------
def _checked_diagonal(diagonal, spec: MLP, x, w2, b2, dtype):
    """`diagonal`'s (history, Sigma, Theta) of x; KernelOverflowError naming the first layer
    that leaves the floating point range."""
    hist, var, theta = diagonal(x, w2, b2, activation=spec.activation, depth=spec.depth)
    layer = _first_nonfinite_layer(hist)
    if layer is not None or not (np.all(np.isfinite(np.asarray(var))) and np.all(np.isfinite(np.asarray(theta)))):
        raise KernelOverflowError(_overflow_message(spec, spec.depth if layer is None else layer, dtype))
    return hist, var, theta


def _mlp_kernels(spec: MLP, x1, x2, engine):
    dtype = _working_dtype(x1, x2)
    symmetric = x2 is None
    x1 = _as_input(x1, 2, "x1", dtype)
    x2 = x1 if symmetric else _as_input(x2, 2, "x2", dtype)
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f"x1 and x2 must have the same feature dimension, got {x1.shape} and {x2.shape}")
    n1, n2 = x1.shape[0], x2.shape[0]
    _check_output_fits(n1, n2, np.dtype(dtype).itemsize)
    w2, b2 = dtype(spec.w_std**2), dtype(spec.b_std**2)
    act, depth = spec.activation, spec.depth

    closed = is_closed_form(act)
    diagonal = _mlp_diagonal_numba if engine == "numba" and closed else _mlp_diagonal
    hist1, _, theta1 = _checked_diagonal(diagonal, spec, x1, w2, b2, dtype)
    hist2 = hist1 if symmetric else _checked_diagonal(diagonal, spec, x2, w2, b2, dtype)[0]

    if engine == "numba" and not closed:
        out = _mlp_kernels_mehler(x1, x2, hist1, hist2, theta1, w2, b2, act, depth, symmetric, dtype, spec)
        if out is not None:
            return out
        engine = "jax"
    if engine == "numba":
        nngp, ntk = _mlp_kernels_numba(x1, x2, hist1, hist2, w2, b2, act, symmetric, dtype)
        _check_finite(spec, nngp, ntk, dtype)
        return Kernels(nngp=nngp, ntk=ntk)

    if not is_closed_form(act):
        return _mlp_kernels_quadrature(x1, x2, hist1, hist2, w2, b2, act, depth, symmetric, dtype, spec)
    ta, tb, pairs, per_call = _tile_plan(n1, n2, symmetric, 1, np.dtype(dtype).itemsize)
    rows_a = (_pad_rows(x1, _round_up(n1, ta)), _pad_rows(np.asarray(hist1).T, _round_up(n1, ta)))
    rows_b = rows_a if symmetric else (_pad_rows(x2, _round_up(n2, tb)), _pad_rows(np.asarray(hist2).T, _round_up(n2, tb)))

    def compute(a, b):
        xa, va = a
        xb, vb = b
        return _mlp_tiles(
            xa, xb, np.swapaxes(va, 1, 2), np.swapaxes(vb, 1, 2), w2, b2, activation=act, depth=depth
        )

    nngp, ntk, bound = _run_tiles(compute, rows_a, rows_b, n1, n2, symmetric, (ta, tb), pairs, per_call, dtype)
    _check_finite(spec, nngp, ntk, dtype)
    return Kernels(nngp=nngp, ntk=ntk, dual_error_bound=bound)


def _point_moments(hist1, hist2, symmetric, w2, b2, act, dtype):
    """`_diagonal_moments` (moments, variance error bounds, moment errors) of both point sets; the
    second is the first when symmetric."""
    def moments(hist):  # the rule's node count for the largest variance entering a layer
        top = float(np.max(np.asarray(hist)[:-1], initial=0.0))
        return _diagonal_moments(hist, w2, b2, activation=act, n=quadrature_nodes(top, dtype))

    first = moments(hist1)
    return first, first if symmetric else moments(hist2)


def _quadrature_rows(x, hist, m, dv, padded):
    """Per-point inputs of `_mlp_tiles_quadrature`, indexed by point and padded to `padded` rows:
    x (n, d), variances (n, slots + 1), moments (n, slots, 5), variance error bounds (n, slots + 1),
    the layer axes padded to `_layer_slots(depth)` (the recursion stops at depth)."""
    slots = _layer_slots(np.asarray(hist).shape[0] - 1)
    return (_pad_rows(x, padded), _pad_rows(_pad_rows(np.asarray(hist).T, slots + 1, axis=1), padded),
            _pad_rows(_pad_rows(np.moveaxis(np.asarray(m), 1, 0), slots, axis=1), padded),
            _pad_rows(_pad_rows(np.asarray(dv).T, slots + 1, axis=1), padded))


def _input_correlations_near_one(x1, x2, hist1, hist2, w2, b2, symmetric) -> float:
    """Fraction of input pairs with |rho| > HOT_RHO (the Mehler series converges slowly there), on
    at most 256 x 256 evenly spread pairs; without a point's pair with itself (symmetric)."""
    r1 = np.linspace(0, x1.shape[0] - 1, min(x1.shape[0], 256)).astype(int)
    r2 = np.linspace(0, x2.shape[0] - 1, min(x2.shape[0], 256)).astype(int)
    s = w2 * (np.asarray(x1[r1], np.float64) @ np.asarray(x2[r2], np.float64).T) / x1.shape[1] + b2
    root = np.sqrt(np.outer(np.asarray(hist1[0][r1], np.float64), np.asarray(hist2[0][r2], np.float64)))
    near = np.abs(s) > _mehler.HOT_RHO * root
    if symmetric:
        near = near[r1[:, None] != r2[None, :]]
    return float(np.mean(near)) if near.size else 0.0


def _mlp_kernels_mehler(x1, x2, hist1, hist2, theta1, w2, b2, act, depth, symmetric, dtype, spec):
    """Fully connected kernels of a quadrature activation by Mehler series (`_mehler`), pairs whose
    series converges too slowly by the 2-D quadrature; None where the series does not fit (many
    correlations near 1 at the input, or variances too large for its coefficients)."""
    n1, n2 = x1.shape[0], x2.shape[0]
    if depth == 0:
        return None
    hist1, hist2 = np.asarray(hist1), np.asarray(hist2)
    if _input_correlations_near_one(x1, x2, hist1, hist2, w2, b2, symmetric) > _mehler.HOT_INPUT_FRACTION:
        return None
    if not _mehler.variances_fit(hist1, hist2):
        return None
    moments = _point_moments(hist1, hist2, symmetric, w2, b2, act, dtype)
    points = list(zip((hist1, hist2), moments))[: 1 if symmetric else 2]
    terms = [_mehler.terms_per_layer(act, h, np.asarray(m), np.asarray(err), dtype) for h, (m, _, err) in points]
    if any(t is None for t in terms):
        return None
    terms = np.maximum(terms[0], terms[-1])  # one table shape for both sides
    tables = []
    for h, (m, dv, err) in points:
        built = _mehler.layer_tables(act, h, np.asarray(m), np.asarray(err), np.asarray(dv), terms, dtype)
        if built is None:
            return None
        tables.append(built)
    t1, t2 = tables[0], tables[-1]
    ktab = _mehler.term_table(t1, terms, dtype)
    if not symmetric:
        ktab = np.maximum(ktab, _mehler.term_table(t2, terms, dtype))
    c2t, d2t, tc2t, td2t = t2.transposed()
    nngp = np.empty((n1, n2), dtype)
    ntk = np.empty((n1, n2), dtype)
    row_bound = np.zeros(n1, dtype)
    hot = np.zeros((n1, n2), np.uint8)
    eps = dtype(np.finfo(dtype).eps)
    hot_tol = dtype(_mehler.HOT_FACTOR * _mehler.TOLERANCE[np.dtype(dtype)])
    xa = np.ascontiguousarray(x1, dtype)
    xb = xa if symmetric else np.ascontiguousarray(x2, dtype)
    from . import _fast

    _fast.run_split(_mehler.mehler_rows, (-(-n1 // _mehler.ROW_TILE) + 1) // 2, xa, xb, t1.c, t1.d, t1.tail_c, t1.tail_d, t1.scalars,
                    c2t, d2t, tc2t, td2t, t2.scalars, ktab, dtype(w2), dtype(b2), eps,
                    dtype(_mehler.FLOOR[np.dtype(dtype)]), hot_tol, symmetric,
                    nngp, ntk, row_bound, hot, dtype)
    bound = float(np.max(row_bound, initial=0.0))
    if symmetric:
        idx = np.arange(n1)
        nngp[idx, idx] = np.asarray(hist1[-1], dtype)
        ntk[idx, idx] = np.asarray(theta1, dtype)
        m, dv, err = moments[0]
        bound = max(bound, _diagonal_bound_from(hist1, np.asarray(m, np.float64), np.asarray(dv, np.float64),
                                                np.asarray(err, np.float64), w2))
    if hot.any():  # a scan of the flags is ~20x cheaper than np.nonzero's (10 ms at 2,000 points)
        ii, jj = np.nonzero(hot)
        (m1, dv1, _), (m2, dv2, _) = moments
        bound = max(bound, _quadrature_pairs(x1, x2, ii, jj, hist1, hist2, m1, m2, dv1, dv2, w2, b2, act, depth,
                                             dtype, nngp, ntk))
    if symmetric:
        _fast.mirror_lower_parallel(nngp, ntk)
    _check_finite(spec, nngp, ntk, dtype)
    return Kernels(nngp=nngp, ntk=ntk, dual_error_bound=bound)


HOT_PAIR_BATCH = 64


def _quadrature_pairs(x1, x2, ii, jj, hist1, hist2, m1, m2, dv1, dv2, w2, b2, act, depth, dtype, nngp, ntk):
    """Entries (ii[k], jj[k]) of the kernels by the 2-D quadrature (`_mlp_tiles_quadrature` with
    1 x 1 tiles), written into nngp / ntk; returns their largest error bound."""
    n = _layer_nodes(hist1, hist2, dtype)
    x1, h1, m1, d1 = _quadrature_rows(x1, hist1, m1, dv1, x1.shape[0])
    x2, h2, m2, d2 = _quadrature_rows(x2, hist2, m2, dv2, x2.shape[0])
    bound = 0.0
    batch = HOT_PAIR_BATCH  # one compiled shape per depth and node count
    for start in range(0, ii.size, batch):
        i, j = ii[start : start + batch], jj[start : start + batch]
        pad = batch - i.size
        i, j = np.concatenate([i, np.repeat(i[-1:], pad)]), np.concatenate([j, np.repeat(j[-1:], pad)])
        s, t, err = _mlp_tiles_quadrature(
            x1[i][:, None], x2[j][:, None], h1[i][:, :, None], h2[j][:, :, None], m1[i][:, :, None],
            m2[j][:, :, None], d1[i][:, :, None], d2[j][:, :, None], w2, b2, depth, activation=act, n=n)
        k = batch - pad
        nngp[i[:k], j[:k]] = np.asarray(s)[:k, 0, 0]
        ntk[i[:k], j[:k]] = np.asarray(t)[:k, 0, 0]
        bound = max(bound, float(np.max(np.asarray(err)[:k])))
    return bound


def _mlp_kernels_quadrature(x1, x2, hist1, hist2, w2, b2, act, depth, symmetric, dtype, spec):
    n1, n2 = x1.shape[0], x2.shape[0]
    n = _layer_nodes(hist1, hist2, dtype)
    (m1, dv1, _), (m2, dv2, _) = _point_moments(hist1, hist2, symmetric, w2, b2, act, dtype)
    cost = n * n * 29 // 16 + 4
    ta, tb, pairs, per_call = _tile_plan(n1, n2, symmetric, cost, np.dtype(dtype).itemsize)
    rows_a = _quadrature_rows(x1, hist1, m1, dv1, _round_up(n1, ta))
    rows_b = rows_a if symmetric else _quadrature_rows(x2, hist2, m2, dv2, _round_up(n2, tb))

    def compute(a, b):
        xa, va, ma, da = a
        xb, vb, mb, db = b
        return _mlp_tiles_quadrature(
            xa, xb, np.swapaxes(va, 1, 2), np.swapaxes(vb, 1, 2), np.swapaxes(ma, 1, 2), np.swapaxes(mb, 1, 2),
            np.swapaxes(da, 1, 2), np.swapaxes(db, 1, 2), w2, b2, depth, activation=act, n=n)

    nngp, ntk, bound = _run_tiles(compute, rows_a, rows_b, n1, n2, symmetric, (ta, tb), pairs, per_call, dtype)
    _check_finite(spec, nngp, ntk, dtype)
    return Kernels(nngp=nngp, ntk=ntk, dual_error_bound=bound)


# ----------------------------------------------------------------------------------------------
# Convolutional (CNTK)
# ----------------------------------------------------------------------------------------------
def _patch_average_2d(k):
    """(1/9) sum over the 3x3 neighbourhood with zero padding, on the last two axes (H, W)."""
    h, w = k.shape[-2:]
    pad = [(0, 0)] * (k.ndim - 2) + [(1, 1), (1, 1)]
    kp = jnp.pad(k, pad)
    out = sum(kp[..., dh : dh + h, dw : dw + w] for dh in range(3) for dw in range(3))
    return out * (1.0 / 9.0)


def _patch_average_4d(k):
    """A[K](p, q) = (1/9) sum_d K(p + d, q + d) for K of shape (..., H, W, H, W), zero padding."""
    h, w = k.shape[-4], k.shape[-3]
    pad = [(0, 0)] * (k.ndim - 4) + [(1, 1)] * 4
    kp = jnp.pad(k, pad)
    out = sum(
        kp[..., dh : dh + h, dw : dw + w, dh : dh + h, dw : dw + w] for dh in range(3) for dw in range(3)
    )
    return out * (1.0 / 9.0)


@functools.partial(jax.jit, static_argnames=("activation", "slots"))
def _cnn_diagonal_slots(x, w2, b2, depth, *, activation, slots):
    def step(var, theta):
        v, v_dot = dual_activation_diag(activation, var)
        return w2 * _patch_average_2d(v) + b2, w2 * _patch_average_2d(v + v_dot * theta) + b2

    hist, _, theta = _variance_history(step, w2 * _patch_average_2d(jnp.mean(x * x, axis=-1)) + b2, depth, slots)
    return hist, theta


def _cnn_diagonal(x, w2, b2, *, activation, depth):
    """Per-layer pixel variances (depth + 1, n, H, W) and the pixel-diagonal NTK (n, H, W), numpy;
    compiled once per `_layer_slots(depth)`."""
    hist, theta = _cnn_diagonal_slots(x, w2, b2, depth, activation=activation, slots=_layer_slots(depth))
    return np.asarray(hist)[: depth + 1], np.asarray(theta)


def _cnn_pair(xa, xb, va, vb, w2, b2, depth, activation, slots, readout, nodes):
    """CNTK of one image pair after every layer: (nngp, ntk, bound), each of shape (max(slots, 1),),
    entry l < depth the readout after layer l + 1 (slots 0, depth 0: of the input). xa, xb:
    (H, W, C); va, vb: per-layer variances (slots + 1, H, W), the layers beyond depth padding
    (`_layer_slots`: depth is data, one compile serves every depth up to slots).

    The error bound of a quadrature activation is propagated as in `_quadrature_layer` (the patch
    average of bounds bounds the patch average of errors), to first order in the covariance only:
    the second-derivative terms there are left out here."""
    n = nodes
    c = xa.shape[-1]
    diagonal = readout == "flatten"
    if diagonal:
        raw = jnp.sum(xa * xb, axis=-1) / c  # (H, W)
        average = _patch_average_2d
        bcast = lambda a, b: (a, b)  # noqa: E731
    else:
        raw = jnp.einsum("pqc,rsc->pqrs", xa, xb) / c  # (H, W, H, W)
        average = _patch_average_4d
        bcast = lambda a, b: (a[:, :, None, None], b[None, None, :, :])  # noqa: E731

    if slots == 0:
        out = (w2 * jnp.mean(raw) + b2)[None]
        return out, out, jnp.zeros(1, raw.dtype)

    def layer(l, carry):
        sigma, theta, dsig, dth, nngps, ntks, bounds = carry
        a, b = bcast(va[l], vb[l])
        v, v_dot, ev, evd = _dual_with_bound(activation, a, b, sigma, n=n)
        dv = ev + jnp.abs(v_dot) * dsig
        f, df = v + v_dot * theta, dv + (jnp.abs(v_dot) + evd) * dth + jnp.abs(theta) * evd
        nngps = nngps.at[l].set(w2 * jnp.mean(v) + b2)
        ntks = ntks.at[l].set(w2 * jnp.mean(f) + b2)
        bounds = bounds.at[l].set(w2 * jnp.maximum(jnp.mean(dv), jnp.mean(df)))
        # the next layer's input (after the last layer: computed, not used)
        return (w2 * average(v) + b2, w2 * average(f) + b2, w2 * average(dv), w2 * average(df),
                nngps, ntks, bounds)

    sigma = w2 * average(raw) + b2
    zeros = jnp.zeros(slots, raw.dtype)
    carry = (sigma, sigma, jnp.zeros_like(sigma), jnp.zeros_like(sigma), zeros, zeros, zeros)
    *_, nngps, ntks, bounds = jax.lax.fori_loop(0, depth, layer, carry)
    return nngps, ntks, bounds


@functools.partial(jax.jit, static_argnames=("activation", "slots", "readout", "nodes"))
def _cnn_pairs(xa, xb, va, vb, w2, b2, depth, *, activation, slots, readout, nodes):
    f = functools.partial(_cnn_pair, w2=w2, b2=b2, depth=depth, activation=activation, slots=slots,
                          readout=readout, nodes=nodes)
    return jax.vmap(f)(xa, xb, va, vb)


def _cnn_kernels(spec: CNN, x1, x2, engine, n_rec=1, progress=None) -> list:
    """Kernels after each of the last n_rec layers (depths depth - n_rec + 1, ..., depth), all
    from one recursion. progress(fraction) is called as image pairs finish."""
    dtype = _working_dtype(x1, x2)
    symmetric = x2 is None
    x1 = _as_input(x1, 4, "x1", dtype)
    x2 = x1 if symmetric else _as_input(x2, 4, "x2", dtype)
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(f"x1 and x2 must have the same image shape, got {x1.shape[1:]} and {x2.shape[1:]}")
    n1, n2 = x1.shape[0], x2.shape[0]
    h, w = x1.shape[1:3]
    if spec.readout == "gap" and h * w > MAX_GAP_PIXELS:
        raise KernelSizeError(
            f"readout='gap' needs all (H W)^2 pixel pairs per image pair; images of {h}x{w} exceed "
            f"the limit of {MAX_GAP_PIXELS} pixels (use smaller images or readout='flatten')"
        )
    _check_output_fits(n1 * n_rec, n2, np.dtype(dtype).itemsize)
    w2, b2 = dtype(spec.w_std**2), dtype(spec.b_std**2)
    act, depth = spec.activation, spec.depth

    hist1, th1 = _cnn_diagonal(x1, w2, b2, activation=act, depth=depth)
    hist2, th2 = (hist1, th1) if symmetric else _cnn_diagonal(x2, w2, b2, activation=act, depth=depth)
    for hh, th in ((hist1, th1), (hist2, th2)):
        layer = _first_nonfinite_layer(hh)
        if layer is not None or not np.all(np.isfinite(np.asarray(th))):
            raise KernelOverflowError(_overflow_message(spec, depth if layer is None else layer, dtype))
    hist1 = np.moveaxis(np.asarray(hist1), 1, 0)  # (n, depth + 1, H, W)
    hist2 = np.moveaxis(np.asarray(hist2), 1, 0)

    if symmetric:
        ii, jj = np.triu_indices(n1)
    else:
        ii, jj = (g.ravel() for g in np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij"))

    if engine == "numba" and depth > 0:
        nngp, ntk = _cnn_kernels_numba(
            x1, x2, ii, jj, hist1, hist2, w2, b2, act, spec.readout, dtype, n1, n2, symmetric, n_rec, progress
        )
        _check_finite(spec, nngp, ntk, dtype)
        return [Kernels(nngp=nngp[r], ntk=ntk[r]) for r in range(n_rec)]

    nodes = None if is_closed_form(act) else _layer_nodes(np.moveaxis(hist1, 1, 0), np.moveaxis(hist2, 1, 0), dtype)
    per_pair = h * w if spec.readout == "flatten" else (h * w) ** 2
    per_pair *= nodes * nodes * 29 // 16 + 4 if nodes else 1
    budget = max(1, TILE_MEMORY_BYTES // (_LIVE_ARRAYS * np.dtype(dtype).itemsize * per_pair))
    per_call = int(min(len(ii), budget))
    nngp = np.empty((n_rec, n1, n2), dtype)
    ntk = np.empty((n_rec, n1, n2), dtype)
    bound = np.zeros(n_rec)
    slots = _layer_slots(depth) if depth > 0 else 0
    hist1 = _pad_rows(hist1, slots + 1, axis=1)  # depth is data: one compile for every depth to slots
    hist2 = _pad_rows(hist2, slots + 1, axis=1)
    top = max(depth, 1)  # outputs: entry l the readout after layer l + 1 (depth 0: of the input)
    for start in range(0, len(ii), per_call):
        i, j = ii[start : start + per_call], jj[start : start + per_call]
        pad = per_call - len(i)
        ip, jp = np.concatenate([i, np.full(pad, i[-1])]), np.concatenate([j, np.full(pad, j[-1])])
        s, t, err = _cnn_pairs(
            x1[ip], x2[jp], hist1[ip], hist2[jp], w2, b2, depth, activation=act, slots=slots,
            readout=spec.readout, nodes=nodes)
        rec = slice(top - n_rec, top)
        s, t = np.asarray(s)[: len(i), rec].T, np.asarray(t)[: len(i), rec].T
        nngp[:, i, j], ntk[:, i, j] = s, t
        if symmetric:
            nngp[:, j, i], ntk[:, j, i] = s, t
        bound = np.maximum(bound, np.max(np.asarray(err)[: len(i), rec], axis=0))
        if progress is not None:
            progress(min(start + per_call, len(ii)) / len(ii))
    _check_finite(spec, nngp, ntk, dtype)
    return [Kernels(nngp=nngp[r], ntk=ntk[r], dual_error_bound=float(bound[r])) for r in range(n_rec)]


# ----------------------------------------------------------------------------------------------
# Compiled engine (closed-form activations)
# ----------------------------------------------------------------------------------------------


def _roots(a1, a2, act):
    """sqrt(a) and the per-point normalizer of the kernels' correlation: 1/sqrt(a) (0 where a = 0,
    which makes rho = 0 there), or 1/sqrt(1 + 2a) for erf (its arcsine argument)."""

    def normalizer(a, sa):
        if act == "erf":
            return (1 / np.sqrt(1 + 2 * a)).astype(a.dtype)
        return np.where(sa > 0, 1 / np.where(sa > 0, sa, 1), 0).astype(a.dtype)

    sa1, sa2 = np.sqrt(a1), np.sqrt(a2)
    ra1 = normalizer(a1, sa1)
    ra2 = ra1 if a2 is a1 else normalizer(a2, sa2)
    return sa1, sa2, ra1, ra2


def _mlp_kernels_numba(x1, x2, hist1, hist2, w2, b2, act, symmetric, dtype):
    from . import _fast

    n1, n2 = x1.shape[0], x2.shape[0]
    a1 = np.ascontiguousarray(hist1, dtype)
    a2 = a1 if symmetric else np.ascontiguousarray(hist2, dtype)
    sa1, sa2, ra1, ra2 = _roots(a1, a2, act)
    nngp = np.empty((n1, n2), dtype)
    ntk = np.empty((n1, n2), dtype)
    act_id, poly, snap = _fast.ACTIVATION_IDS[act], dtype == np.float32, dtype(_fast.snap_threshold(dtype))
    x1 = np.ascontiguousarray(x1, dtype)
    x2 = x1 if symmetric else np.ascontiguousarray(x2, dtype)
    _fast.run_split(_fast.kernels(act_id, poly).mlp_rows, (n1 + 1) // 2, x1, x2, a1, sa1, ra1, a2, sa2, ra2, w2, b2, snap, symmetric, nngp, ntk, dtype)
    if symmetric:
        _fast.mirror_lower_parallel(nngp, ntk)
    return nngp, ntk


PAIR_BLOCK = 4096


def _cnn_kernels_numba(x1, x2, ii, jj, hist1, hist2, w2, b2, act, readout, dtype, n1, n2, symmetric, n_rec, progress):
    """(n_rec, n1, n2) NNGP and NTK through the compiled kernels, in blocks of image pairs."""
    from . import _fast

    n, depth1, h, w = hist1.shape
    a1 = np.ascontiguousarray(hist1.reshape(n, depth1, -1), dtype)
    a2 = a1 if symmetric else np.ascontiguousarray(hist2.reshape(hist2.shape[0], depth1, -1), dtype)
    act_id, poly, snap = _fast.ACTIVATION_IDS[act], dtype == np.float32, dtype(_fast.snap_threshold(dtype))
    compiled = _fast.kernels(act_id, poly)
    if readout == "gap":
        length, idx = _fast.gap_layout(h, w)

        def padded(a, fill):
            out = np.full(a.shape[:-1] + (length,), fill, dtype)
            out[..., idx] = a
            return out

        a1 = padded(a1[:, :-1], 1.0)  # the kernel needs the variances entering layers 1..depth
        a2 = a1 if symmetric else padded(a2[:, :-1], 1.0)
        xs = [np.ascontiguousarray(padded(np.moveaxis(x.reshape(x.shape[0], h * w, -1), 1, 2), 0.0))  # (n, C, L)
              for x in ((x1,) if symmetric else (x1, x2))]
        x1c, x2c = xs[0], xs[-1]
        sa1, sa2, ra1, ra2 = _roots(a1, a2, act)
        kernel, extra = compiled.cnn_gap_pairs, (h, w)
    else:
        sa1, sa2, ra1, ra2 = _roots(a1, a2, act)
        x1c, x2c = np.ascontiguousarray(x1), np.ascontiguousarray(x2)
        kernel, extra = compiled.cnn_flatten_pairs, ()
    nngp = np.empty((n_rec, n1, n2), dtype)
    ntk = np.empty((n_rec, n1, n2), dtype)
    for start in range(0, len(ii), PAIR_BLOCK):
        i = np.ascontiguousarray(ii[start : start + PAIR_BLOCK], np.int64)
        j = np.ascontiguousarray(jj[start : start + PAIR_BLOCK], np.int64)
        s, t = np.empty((len(i), n_rec), dtype), np.empty((len(i), n_rec), dtype)
        _fast.run_split(kernel, len(i), x1c, x2c, i, j, a1, sa1, ra1, a2, sa2, ra2, w2, b2, snap, *extra, s, t, dtype)
        nngp[:, i, j], ntk[:, i, j] = s.T, t.T
        if symmetric:
            nngp[:, j, i], ntk[:, j, i] = s.T, t.T
        if progress is not None:
            progress(min(start + PAIR_BLOCK, len(ii)) / len(ii))
    return nngp, ntk


def _choose_engine(spec, engine):
    if engine not in ("auto", "numba", "jax"):
        raise ValueError(f"engine must be 'auto', 'numba' or 'jax', got {engine!r}")
    closed = isinstance(spec.activation, str) and spec.activation in _FAST_ACTIVATIONS
    if isinstance(spec, MLP):  # every activation: closed forms compiled, the others by Mehler series
        return "numba" if engine == "auto" else engine
    if engine == "numba" and not closed:
        raise ValueError(f"engine='numba' supports only closed-form activations for CNNs, not {spec.activation!r}")
    if engine == "auto":
        return "numba" if closed else "jax"
    return engine


_FAST_ACTIVATIONS = tuple(name for name, a in REGISTRY.items() if a.fast_id is not None)


# ----------------------------------------------------------------------------------------------
# Public entry point
# ----------------------------------------------------------------------------------------------
def infinite_kernels(spec: NetworkSpec, x1, x2=None, *, engine: str = "auto") -> Kernels:
    """Infinite-width NNGP and NTK of `spec` between x1 and x2 (x2 = None: x1 against itself).

    MLP inputs have shape (n, d); CNN inputs are images (n, H, W, C). Results are float64 when
    JAX's x64 mode is on and an input is float64, float32 otherwise. Raises ValueError for bad
    inputs, KernelSizeError when the output cannot fit in memory, KernelOverflowError when the
    kernel leaves the floating point range.

    engine: "numba" (compiled CPU kernels: closed forms; for an MLP with any other activation the
    Mehler series of `_mehler`, with pairs of correlation near 1 by 2-D quadrature), "jax" (XLA;
    every activation, 2-D quadrature for those without a closed form) or "auto" (numba when it can;
    CNNs with a quadrature activation use jax)."""
    if isinstance(spec, (MLP, CNN)):
        engine = _choose_engine(spec, engine)
    if isinstance(spec, MLP):
        return _mlp_kernels(spec, x1, x2, engine)
    if isinstance(spec, CNN):
        return _cnn_kernels(spec, x1, x2, engine)[-1]
    raise ValueError(f"spec must be ntk_core.MLP or ntk_core.CNN, got {type(spec).__name__}")


def infinite_kernel_diagonals(spec: NetworkSpec, x) -> Kernels:
    """The diagonals k(x_i, x_i) of `infinite_kernels(spec, x)`, as 1-D `.nngp` and `.ntk` (n,).

    For an MLP this is the variance recursion alone (n points, not n^2 pairs; 1-D quadrature for
    activations without a closed form): what a posterior variance needs, at a small part of the
    cost of the full matrix. A CNN's readout couples pixels, so it takes the full kernels' diagonal."""
    if isinstance(spec, CNN):
        k = infinite_kernels(spec, x)
        return Kernels(nngp=np.diag(k.nngp).copy(), ntk=np.diag(k.ntk).copy(),
                       dual_error_bound=k.dual_error_bound)
    if not isinstance(spec, MLP):
        raise ValueError(f"spec must be ntk_core.MLP or ntk_core.CNN, got {type(spec).__name__}")
    dtype = _working_dtype(x)
    x = _as_input(x, 2, "x", dtype)
    w2, b2 = dtype(spec.w_std**2), dtype(spec.b_std**2)
    hist, var, theta = _checked_diagonal(_mlp_diagonal, spec, x, w2, b2, dtype)
    var, theta = np.asarray(var, dtype), np.asarray(theta, dtype)
    bound = 0.0
    if not is_closed_form(spec.activation) and spec.depth > 0:
        bound = _diagonal_error_bound(hist, w2, b2, spec.activation, dtype)
    return Kernels(nngp=var, ntk=theta, dual_error_bound=bound)


def _diagonal_error_bound(hist, w2, b2, activation, dtype) -> float:
    """`_quadrature_layer`'s bound on its `same` entries (a point with itself, where the
    covariance is the variance: no off-diagonal term), run on the diagonal alone."""
    m, dvar, err = (np.asarray(a, np.float64) for a in _diagonal_moments(
        hist, w2, b2, activation=activation, n=quadrature_nodes(np.inf, dtype)))
    return _diagonal_bound_from(hist, m, dvar, err, w2)


def _diagonal_bound_from(hist, m, dvar, err, w2) -> float:
    """`_diagonal_error_bound` from `_diagonal_moments`' arrays (float64)."""
    w2 = float(w2)
    theta = np.asarray(hist[0], np.float64)
    dth = np.zeros_like(theta)
    for layer in range(m.shape[0]):
        ma = m[layer]
        vd = ma[..., 1]  # V_dot of a point with itself: E[phi'(u)^2]
        dv, dvd = _same_entry_errors(err[layer, ..., 0], err[layer, ..., 1], ma, dvar[layer], vd, 0.0, 0.0)
        _, dth = _propagated_errors(w2, dv, dvd, vd, theta, dth)
        theta = np.asarray(hist[layer + 1], np.float64) + w2 * vd * theta
    return float(max(np.max(dvar[-1]), np.max(dth)))


def infinite_kernels_by_depth(spec: CNN, x1, x2=None, *, engine: str = "auto", progress=None) -> dict:
    """{d: Kernels} for d = 1, ..., spec.depth: the CNTK / NNGP of the same CNN cut after d conv
    layers (readout applied there), each equal to `infinite_kernels(replace(spec, depth=d), x1, x2)`.

    One recursion: the depth-d kernels are by-products of the depth-(d + 1) recursion (Arora et
    al. 2019, Sec. 4: the readout of layer d), so all depths cost what the deepest one costs.
    progress(fraction), if given, is called as blocks of image pairs finish."""
    if not isinstance(spec, CNN):
        raise ValueError(f"spec must be ntk_core.CNN, got {type(spec).__name__}")
    if spec.depth < 1:
        raise ValueError(f"depth must be >= 1 for kernels by depth, got {spec.depth}")
    engine = _choose_engine(spec, engine)
    ks = _cnn_kernels(spec, x1, x2, engine, n_rec=spec.depth, progress=progress)
    return {d + 1: k for d, k in enumerate(ks)}
