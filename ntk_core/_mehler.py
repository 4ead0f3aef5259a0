"""Mehler-series engine: fully connected kernels of activations without a closed form (tanh,
softplus, sigmoid, any callable), fast enough for thousands of points.

Mehler's formula (Mehler 1866; O'Donnell, "Analysis of Boolean Functions", Sec. 11.2): for
(u, v) ~ N(0, [[a, c], [c, b]]) and rho = c / sqrt(ab),

    E[phi(u) phi(v)]   = sum_k rho^k c_k(a) c_k(b),   c_k(q) = E[phi(sqrt(q) z) h_k(z)],
    E[phi'(u) phi'(v)] = sum_k rho^k d_k(a) d_k(b),   d_k(q) = E[phi'(sqrt(q) z) h_k(z)],

h_k = He_k / sqrt(k!) the orthonormal Hermite polynomials, z ~ N(0, 1). The coefficients depend on
one point's variance only, so a layer costs O(n K) per point and O(K) per pair instead of the
2-D quadrature's O(N^2) per pair. The series converges like |rho|^k: pairs with |rho| near 1 (a
point with itself, duplicates) are handed back to the 2-D quadrature (`quadrature_dual`), and
variances too large for the coefficients' quadrature send the whole call there.

Every pair carries a bound on its error, propagated through the layers as `_infinite._quadrature_layer`
does for the 2-D quadrature; this layer's error of V is at most

    |rho|^(K+1) sqrt(T_K(a) T_K(b))              truncation after K terms (Cauchy-Schwarz), with
                                                 T_K(q) = E[phi^2] - sum_{k<=K} c_k^2 (E[phi^2] from
                                                 the independent graded 1-D rule, `quadrature_moments`)
  + |c(a)| |dc(b)| + |dc(a)| |c(b)| + |dc(a)| |dc(b)|   coefficient errors (norms over k)
  + eps (2 sqrt(K + 1) sqrt(E phi(u)^2 E phi(v)^2) + 4 |rho| sqrt(ab) |V_dot|)   rounding of the
                                                 sum (Higham & Mary 2019, as `_quadrature_error`) and of rho,

and the same for V_dot with d_k, E[phi'^2] and E[phi''^2].
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from numba import njit

from ._activations import _elementwise_grad, activation_fn
from ._fast import input_covariance_row

# Above this variance the 2-D quadrature takes over: the coefficients' rule would need ~26 sqrt(q)
# nodes, and the series' bound grows loose (1,000x the error at q ~ 5e4).
MAX_VARIANCE = 100.0
_HALF_WIDTH = 13.0  # |h_k(z)| phi(z)^(1/2) <= 1.09 (Cramer): |z| > 13 carries < 1e-18 of any c_k
MAX_TERMS = {np.dtype(np.float64): 256, np.dtype(np.float32): 128}
# Target error of one layer's series, relative to sqrt(E phi(u)^2 E phi(v)^2): near the rounding
# of the sum itself.
TOLERANCE = {np.dtype(np.float64): 4e-15, np.dtype(np.float32): 1e-6}
COEFFICIENT_FACTOR = 1e3  # coefficients less accurate than this times TOLERANCE: the 2-D quadrature instead
HOT_FACTOR = 16.0  # a pair whose series error exceeds HOT_FACTOR * TOLERANCE goes to the 2-D quadrature
HOT_INPUT_FRACTION = 0.2  # more input pairs than this with |rho| > HOT_RHO: use the 2-D quadrature for all
HOT_RHO = 0.95
# Subnormal numbers cost ~100 cycles per operation on x86 (microcode assists): they halved the
# speed of the pair kernel. Coefficients below FLOOR are set to 0 (their norm joins the coefficient
# error), and the tails and |rho|^(K+1) are raised to at least FLOOR (still upper bounds), so that
# no product of two or three of them leaves the normal range: FLOOR^3 is normal in each precision.
FLOOR = {np.dtype(np.float64): 2.0 ** -300, np.dtype(np.float32): 2.0 ** -40}
_BUCKETS = 256  # |rho| buckets of the per-layer table of terms
_ROW_BLOCK = 64  # columns sharing one number of terms (the largest |rho| in the tile's block decides)
ROW_TILE = 4  # rows sharing each loaded column coefficient


@functools.lru_cache(maxsize=16)
def _weighted_hermite(step: float, n_terms: int):
    """Nodes z = step * m, |z| <= _HALF_WIDTH, m = -M..M with M a multiple of 4, and the table
    step * phi(z) h_k(z), k <= n_terms (float64): c_k = table[k] . f(sqrt(q) z) is the trapezoidal
    rule, which converges geometrically in 1 / step for integrands analytic in a strip (Trefethen &
    Weideman 2014, SIAM Review 56). The recurrence runs on h_k(z) phi(z), which stays below ~1."""
    half = -(-int(math.ceil(_HALF_WIDTH / step)) // 4) * 4
    z = step * np.arange(-half, half + 1, dtype=np.float64)
    table = np.empty((n_terms + 1, z.size))
    table[0] = step * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    if n_terms >= 1:
        table[1] = z * table[0]
    for k in range(1, n_terms):
        table[k + 1] = (z * table[k] - math.sqrt(k) * table[k - 1]) / math.sqrt(k + 1)
    return z, table


@functools.partial(jax.jit, static_argnames=("f",))
def _values(f, q, z):
    """phi(sqrt(q) z) and phi'(sqrt(q) z) on the grid, (n, len(z)) each."""
    u = jnp.sqrt(q)[:, None] * z[None, :]
    return f(u), _elementwise_grad(f)(u)


def _coefficients(values, table, dtype):
    """(c, error norm per point): c = values @ table.T (float64), the trapezoidal rule of step h,
    and an a-posteriori bound on its error from the rule of step 2h (every 2nd node): for an
    integrand analytic in the strip |Im z| < a and bounded by M there, e(h) ~ 2 M exp(-2 pi a / h)
    (Trefethen & Weideman 2014, Thm 5.1), so e(h) ~ e(2h)^2 / (2M) <= d^2 / sqrt(E f^2) with
    d = |c_h - c_2h| ~ e(2h) (norms over k; M >= sqrt(E f^2)); at most d, times 10 for safety (as
    `_activations._quadrature_error`). Plus the rounding: of the values (relative eps of `dtype`;
    Bessel's inequality for the orthonormal h_k turns it into 2 eps sqrt(E f^2) for the whole
    vector) and of the float64 sums (2 sqrt(N) eps sqrt(E f^2) per coefficient)."""
    values = np.asarray(values, np.float64)
    fine = values @ table.T
    half = values[:, ::2] @ (2 * table[:, ::2]).T
    rms = np.sqrt((values * values) @ table[0])  # sqrt(E f^2) by the same rule
    eps64 = float(np.finfo(np.float64).eps)
    rounding = rms * (2.0 * float(np.finfo(dtype).eps)
                      + 2.0 * math.sqrt(values.shape[1] * table.shape[0]) * eps64)
    d = np.maximum(np.linalg.norm(fine - half, axis=1) - 2 * rounding, 0.0)
    est = np.minimum(d, d * d / np.where(rms > 0, rms, 1.0))
    return fine, 10.0 * est + rounding


def _grid_step(q_max: float, n_terms: int) -> float:
    """Trapezoid step for variances up to q_max and n_terms terms. The rule's error is about the
    integrand's Fourier transform at 2 pi / h: h_k phi reaches frequencies ~sqrt(4k + 2), and
    phi(sqrt(q) z) decays like exp(-a w) with a = pi / (2 sqrt(q)) for tanh (poles pi / 2 from the
    real axis; softplus and sigmoid have pi): a (2 pi / h - sqrt(4K + 2)) >= 37 for 1e-16. The rule
    of step 2h, which the error estimate of `_coefficients` uses, must resolve h_k phi too:
    pi / h >= sqrt(4K + 2) + 6 (its Gaussian tail beyond that frequency is below 1e-8)."""
    top = math.sqrt(4 * n_terms + 2)
    step = min(2 * math.pi / (24.0 * math.sqrt(max(q_max, 0.25)) + top), math.pi / (top + 6.0))
    return 2.0 ** (math.floor(8 * math.log2(step)) / 8)  # on a grid, so that `_weighted_hermite`'s cache hits


class LayerTables:
    """Per layer and point: coefficients, tails and scalars for `mehler_rows`, in its layouts."""

    SCALARS = ("var", "inv_root", "root", "s0", "s1", "s2", "s3", "coef_c", "err_c", "coef_d", "err_d", "dvar")

    def __init__(self, depth, n, n_terms, dtype):
        self.c = np.zeros((depth, n, n_terms + 1), dtype)
        self.d = np.zeros((depth, n, n_terms + 1), dtype)
        self.tail_c = np.zeros((depth, n, n_terms + 1), dtype)  # sqrt(T_K) upper bounds
        self.tail_d = np.zeros((depth, n, n_terms + 1), dtype)
        self.scalars = np.zeros((depth, len(self.SCALARS), n), dtype)
        self.used = np.full(depth, n_terms + 1, np.int64)  # terms filled per layer (K_l + 1)

    def transposed(self):
        """Column-side layout: (depth, k, n), contiguous in the point index; only the terms each
        layer uses are copied (the rest stays 0)."""
        out = []
        for a in (self.c, self.d, self.tail_c, self.tail_d):
            t = np.zeros((a.shape[0], a.shape[2], a.shape[1]), a.dtype)
            for layer, k in enumerate(self.used):
                t[layer, :k] = a[layer, :, :k].T
            out.append(t)
        return tuple(out)


def _tails(coef, err, moment, moment_err, dtype):
    """sqrt of upper bounds on T_K = E[g^2] - sum_{k<=K} c_k^2 for every K: the computed difference
    plus the moment's error, the coefficients' (2 |c| |dc| + |dc|^2) and the rounding of the sums."""
    eps = float(np.finfo(np.float64).eps)  # the sums run in float64
    partial = np.cumsum(coef.astype(np.float64) ** 2, axis=-1)
    norm = np.sqrt(partial[:, -1])
    slack = moment_err + 2 * norm * err + err * err + (2 + coef.shape[-1]) * eps * moment
    return np.sqrt(np.maximum(moment[:, None] - partial + slack[:, None], 0.0)).astype(dtype)


def _relative_tails(tail_c, tail_d, scale_c, scale_d):
    """max over points of T_K / E[g^2] for g = phi and phi' (the larger of the two), for every K."""
    return np.maximum(np.max(tail_c / scale_c[:, None], axis=0), np.max(tail_d / scale_d[:, None], axis=0)) ** 2


def _terms_needed(rel, tol, rho=HOT_RHO):
    """Smallest K with rho^(K+1) rel[K] <= tol (`_relative_tails`); the last K if none. rho may be
    an array (one K per entry)."""
    rho = np.asarray(rho, np.float64)
    ok = rho[..., None] ** (np.arange(rel.size) + 1.0) * rel <= tol
    return np.where(np.any(ok, axis=-1), np.argmax(ok, axis=-1), rel.size - 1)


def _layer_coefficients(f, q, m, me, n_terms, dtype):
    """c, d (n, n_terms + 1) and their error norms, tails (`_tails`) for one layer; None when the
    coefficients miss COEFFICIENT_FACTOR * TOLERANCE."""
    tol = TOLERANCE[dtype]
    z, table = _weighted_hermite(_grid_step(float(np.max(q, initial=0.0)), n_terms), n_terms)
    fv, dfv = _values(f, jnp.asarray(q), jnp.asarray(z, dtype))
    c, ec = _coefficients(fv, table, dtype)
    d, ed = _coefficients(dfv, table, dtype)
    scale_c, scale_d = np.sqrt(np.maximum(m[:, 0], 0.0)), np.sqrt(np.maximum(m[:, 1], 0.0))
    if np.any(ec > COEFFICIENT_FACTOR * tol * scale_c) or np.any(ed > COEFFICIENT_FACTOR * tol * scale_d):
        return None
    return (c, d, ec, ed, _tails(c, ec, m[:, 0], me[:, 0], dtype), _tails(d, ed, m[:, 1], me[:, 1], dtype),
            np.maximum(scale_c, FLOOR[dtype]), np.maximum(scale_d, FLOOR[dtype]))  # tails >= FLOOR too


def _flush_small(coef, err, floor):
    """Coefficients below `floor` set to 0 (see FLOOR), their norm added to the error norm."""
    small = np.abs(coef) < floor
    return np.where(small, 0.0, coef), err + np.sqrt(np.sum(np.where(small, coef * coef, 0.0), axis=1))


def variances_fit(*hists) -> bool:
    """Whether every variance entering a layer (hist[:-1] of each (depth + 1, n) history) is at
    most MAX_VARIANCE (and not NaN)."""
    return all(np.max(np.asarray(h)[:-1], initial=0.0) <= MAX_VARIANCE for h in hists)


def terms_per_layer(activation, hist, moments, moment_err, dtype):
    """Per layer, the number of terms K_l that the point of largest variance needs for |rho| up to
    HOT_RHO (its coefficients up to MAX_TERMS); None when they miss the tolerance."""
    dtype = np.dtype(dtype)
    f = activation_fn(activation)
    cap, tol = MAX_TERMS[dtype], TOLERANCE[dtype]
    hist = np.asarray(hist, dtype)
    terms = np.zeros(hist.shape[0] - 1, np.int64)
    for layer in range(terms.size):
        q, m, me = hist[layer], np.asarray(moments[layer], np.float64), np.asarray(moment_err[layer], np.float64)
        top = int(np.argmax(q))
        probe = _layer_coefficients(f, q[top : top + 1], m[top : top + 1], me[top : top + 1], cap, dtype)
        if probe is None:
            return None
        terms[layer] = _terms_needed(_relative_tails(*probe[4:8]), tol)
    return terms


def layer_tables(activation, hist, moments, moment_err, dvar, terms, dtype):
    """`LayerTables` up to K_l = terms[l] terms (`terms_per_layer`; padded to the largest) for points
    with per-layer variances hist (depth + 1, n), moments (depth, n, 5) and their errors
    (depth, n, 2) and variance error bounds dvar (depth + 1, n) from `_infinite._diagonal_moments`;
    None when the coefficients' quadrature cannot reach the tolerance (very large variances)."""
    dtype = np.dtype(dtype)
    f = activation_fn(activation)
    depth, n = hist.shape[0] - 1, hist.shape[1]
    hist = np.asarray(hist, dtype)
    tables = LayerTables(depth, n, int(np.max(terms, initial=0)), dtype.type)
    for layer in range(depth):
        q, m = hist[layer], np.asarray(moments[layer], np.float64)
        full = _layer_coefficients(f, q, m, np.asarray(moment_err[layer], np.float64), int(terms[layer]), dtype)
        if full is None:
            return None
        c, d, ec, ed, tail_c, tail_d, _, _ = full
        c, ec = _flush_small(c, ec, FLOOR[dtype])
        d, ed = _flush_small(d, ed, FLOOR[dtype])
        tail_c, tail_d = np.maximum(tail_c, FLOOR[dtype]), np.maximum(tail_d, FLOOR[dtype])
        k = c.shape[1]
        tables.used[layer] = k
        tables.c[layer, :, :k], tables.d[layer, :, :k] = c, d
        tables.tail_c[layer, :, :k], tables.tail_d[layer, :, :k] = tail_c, tail_d
        root = np.sqrt(q)
        inv_root = np.where(root > 0, 1 / np.where(root > 0, root, 1), 0)
        sq = np.sqrt(np.maximum(m[:, :4], 0.0))
        values = (q, inv_root, root, sq[:, 0], sq[:, 1], sq[:, 2], sq[:, 3],
                  np.linalg.norm(c, axis=1), ec, np.linalg.norm(d, axis=1), ed, np.asarray(dvar[layer]))
        tables.scalars[layer] = np.stack(values).astype(dtype)
    return tables


def term_table(tables: LayerTables, terms, dtype):
    """(depth, _BUCKETS) number of terms K for a block whose largest |rho| is below (b + 1) / _BUCKETS:
    the smallest K <= terms[l] with |rho|^(K+1) max T_K <= tolerance (relative), else terms[l]."""
    tol = TOLERANCE[np.dtype(dtype)]
    depth = tables.c.shape[0]
    out = np.empty((depth, _BUCKETS), np.int64)
    for layer in range(depth):
        k = int(terms[layer]) + 1
        rel = _relative_tails(*(a[layer, :, :k].astype(np.float64) for a in (tables.tail_c, tables.tail_d)),
                              *(np.maximum(tables.scalars[layer, j].astype(np.float64), FLOOR[np.dtype(dtype)])
                                for j in (3, 4)))
        out[layer] = _terms_needed(rel, tol, (np.arange(_BUCKETS) + 1.0) / _BUCKETS)
    return out


@njit(nogil=True, cache=True, fastmath=True)
def mehler_rows(k0, k1, x1, x2, c1, d1, tc1, td1, p1, c2t, d2t, tc2t, td2t, p2, ktab, w2, b2, eps, floor,
                hot_tol, symmetric, out_s, out_t, out_bound, hot, ft):
    """Row tiles k and T - 1 - k (T tiles of ROW_TILE rows), k0 <= k < k1 <= (T + 1) // 2, of the
    NNGP / NTK by Mehler series (module docstring), with per-entry error bounds propagated as
    `_infinite._quadrature_layer`. c1, d1, tc1, td1 (depth, n1, K + 1) and p1 (depth, 12, n1):
    `LayerTables` of x1; the column side transposed (depth, K + 1, n2). symmetric: columns > the
    row only (the diagonal and the lower triangle are filled by the caller). hot[i, j] = 1 marks
    entries whose series did not converge (left to the 2-D quadrature): relative series error above
    hot_tol; out_bound[i] is the largest bound of row i's other entries. eps: the working
    precision's machine epsilon; floor: FLOOR. The rows of a tile share each column coefficient
    they load, and the loops run over contiguous column vectors so that LLVM vectorizes them."""
    rows = x1.shape[0]
    n2, d = x2.shape
    depth = c1.shape[0]
    buckets = ktab.shape[1]
    inv_d = ft(1.0) / ft(d)
    tiles = (rows + ROW_TILE - 1) // ROW_TILE
    s = np.empty((ROW_TILE, n2), x1.dtype)
    t = np.empty((ROW_TILE, n2), x1.dtype)
    ds = np.empty((ROW_TILE, n2), x1.dtype)
    dt = np.empty((ROW_TILE, n2), x1.dtype)
    rho = np.empty((ROW_TILE, n2), x1.dtype)
    v = np.empty((ROW_TILE, n2), x1.dtype)
    vd = np.empty((ROW_TILE, n2), x1.dtype)
    flag = np.empty((ROW_TILE, n2), x1.dtype)
    pw = np.empty((ROW_TILE, n2), x1.dtype)
    sq = np.empty((ROW_TILE, n2), x1.dtype)
    ck = np.empty(ROW_TILE, x1.dtype)
    dk = np.empty(ROW_TILE, x1.dtype)
    for k in range(k0, k1):
        for which in range(2):
            tile = np.int64(k) if which == 0 else np.int64(tiles - 1 - k)
            if which == 1 and tile == k:
                continue
            i0 = tile * ROW_TILE
            nr = min(ROW_TILE, rows - i0)
            c0 = i0 + 1 if symmetric else np.int64(0)
            m = np.int64(n2 - c0)
            if m <= 0:
                for r in range(nr):
                    out_bound[i0 + r] = 0.0
                continue
            for r in range(nr):
                input_covariance_row(x1, x2, i0 + r, c0, m, w2, b2, inv_d, s[r], t[r], ft)
                for j in range(m):
                    ds[r, j] = 0.0
                    dt[r, j] = 0.0
                    flag[r, j] = 0.0
            for layer in range(depth):
                pa = p1[layer]
                inv_b = p2[layer, 1, c0:]
                for r in range(nr):
                    inv_a = pa[1, i0 + r]
                    below = r if symmetric else 0  # columns c0 + j <= i0 + r: not this row's
                    for j in range(m):
                        x = min(max(s[r, j] * inv_a * inv_b[j], ft(-1.0)), ft(1.0))
                        rho[r, j] = x if j >= below else ft(0.0)
                for j0 in range(0, m, _ROW_BLOCK):
                    j1 = min(j0 + _ROW_BLOCK, m)
                    nb = j1 - j0
                    top = ft(0.0)
                    for r in range(nr):
                        for j in range(j0, j1):
                            top = max(top, abs(rho[r, j]))
                    kk = ktab[layer, min(np.int64(top * buckets), buckets - 1)]
                    cb = c2t[layer, kk, c0 + j0 : c0 + j1]
                    db = d2t[layer, kk, c0 + j0 : c0 + j1]
                    for r in range(nr):
                        cr, dr = c1[layer, i0 + r, kk], d1[layer, i0 + r, kk]
                        vb, vdb = v[r, j0:j1], vd[r, j0:j1]
                        for j in range(nb):
                            vb[j] = cr * cb[j]
                            vdb[j] = dr * db[j]
                    for step in range(kk):
                        kq = kk - 1 - step
                        cb = c2t[layer, kq, c0 + j0 : c0 + j1]
                        db = d2t[layer, kq, c0 + j0 : c0 + j1]
                        for r in range(nr):
                            ck[r] = c1[layer, i0 + r, kq]
                            dk[r] = d1[layer, i0 + r, kq]
                        for r in range(nr):
                            cr, dr = ck[r], dk[r]
                            vb, vdb, rb = v[r, j0:j1], vd[r, j0:j1], rho[r, j0:j1]
                            for j in range(nb):
                                vb[j] = vb[j] * rb[j] + cr * cb[j]
                                vdb[j] = vdb[j] * rb[j] + dr * db[j]
                    for r in range(nr):  # |rho|^(K+1) per entry, by repeated squaring
                        pr, xr, rb = pw[r, j0:j1], sq[r, j0:j1], rho[r, j0:j1]
                        for j in range(nb):
                            pr[j] = ft(1.0)
                            xr[j] = max(abs(rb[j]), floor)
                        e = kk + 1
                        while e > 0:  # every factor >= floor: the products stay normal numbers
                            if e & 1:
                                for j in range(nb):
                                    pr[j] = max(pr[j] * xr[j], floor)
                            e >>= 1
                            if e > 0:
                                for j in range(nb):
                                    xr[j] = max(xr[j] * xr[j], floor)
                    tcb = tc2t[layer, kk, c0 + j0 : c0 + j1]
                    tdb = td2t[layer, kk, c0 + j0 : c0 + j1]
                    # 1-D slices: a 2-D view of p2 has a runtime stride in j, and its loads keep
                    # the loop below from vectorizing
                    jb0, jb1 = c0 + j0, c0 + j1
                    b_root, b_s0, b_s1 = p2[layer, 2, jb0:jb1], p2[layer, 3, jb0:jb1], p2[layer, 4, jb0:jb1]
                    b_s2, b_s3, b_nc = p2[layer, 5, jb0:jb1], p2[layer, 6, jb0:jb1], p2[layer, 7, jb0:jb1]
                    b_ec, b_nd, b_ed = p2[layer, 8, jb0:jb1], p2[layer, 9, jb0:jb1], p2[layer, 10, jb0:jb1]
                    b_dv = p2[layer, 11, jb0:jb1]
                    round_terms = ft(2.0) * math.sqrt(ft(kk + 1)) * eps
                    for r in range(nr):
                        i = i0 + r
                        root_a = pa[2, i]
                        s0a, s1a, s2a, s3a = pa[3, i], pa[4, i], pa[5, i], pa[6, i]
                        nca, eca, nda, eda, dva = pa[7, i], pa[8, i], pa[9, i], pa[10, i], pa[11, i]
                        tca, tda = tc1[layer, i, kk], td1[layer, i, kk]
                        vb, vdb, rb, pr = v[r, j0:j1], vd[r, j0:j1], rho[r, j0:j1], pw[r, j0:j1]
                        sb, tb, dsb, dtb, fb = s[r, j0:j1], t[r, j0:j1], ds[r, j0:j1], dt[r, j0:j1], flag[r, j0:j1]
                        for j in range(nb):
                            s0b, s1b, s2b, s3b = b_s0[j], b_s1[j], b_s2[j], b_s3[j]
                            tail_v = pr[j] * tca * tcb[j]
                            tail_vd = pr[j] * tda * tdb[j]
                            over = max(tail_v - hot_tol * s0a * s0b, tail_vd - hot_tol * s1a * s1b)
                            fb[j] = max(fb[j], over)
                            avd = abs(vdb[j])
                            rr = abs(rb[j]) * root_a * b_root[j]
                            ev = (tail_v + nca * b_ec[j] + eca * b_nc[j] + eca * b_ec[j]
                                  + round_terms * s0a * s0b + ft(4.0) * eps * rr * avd)
                            evd = (tail_vd + nda * b_ed[j] + eda * b_nd[j] + eda * b_ed[j]
                                   + round_terms * s1a * s1b + ft(4.0) * eps * rr * s2a * s2b)
                            dv = ev + avd * dsb[j] + ft(0.5) * (s2a * s0b * dva + s0a * s2b * b_dv[j])
                            dvd = evd + s2a * s2b * dsb[j] + ft(0.5) * (s3a * s1b * dva + s1a * s3b * b_dv[j])
                            new_s = w2 * vb[j] + b2
                            new_ds = w2 * dv
                            dtb[j] = new_ds + w2 * ((avd + dvd) * dtb[j] + abs(tb[j]) * dvd)
                            tb[j] = new_s + w2 * vdb[j] * tb[j]
                            sb[j] = new_s
                            dsb[j] = new_ds
            for r in range(nr):
                i = i0 + r
                below = r if symmetric else 0
                worst = ft(0.0)
                for j in range(below, m):
                    out_s[i, c0 + j] = s[r, j]
                    out_t[i, c0 + j] = t[r, j]
                    is_hot = flag[r, j] > 0
                    hot[i, c0 + j] = is_hot
                    if not is_hot:
                        worst = max(worst, max(ds[r, j], dt[r, j]))
                out_bound[i] = worst
