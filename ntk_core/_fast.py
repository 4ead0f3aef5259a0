"""Compiled CPU kernels for the closed-form infinite-width recursions (the dashboard's hot path).

Why numba and not XLA here: the per-layer recursion is a chain of cheap elementwise steps around
an arccos. XLA splits every layer into several fusions that each stream the whole (n1, n2) array
through memory, so it runs memory-bound at ~13 ns per entry and layer on this 2-core machine.
These kernels keep one row of the output in cache through all layers and let LLVM vectorize
the row loops: ~5x less CPU time than the XLA version, on both cores.

The math is the same as `_activations` (closed forms) and `_infinite` (recursions); the tests
check the two engines against each other and both against Neural Tangents' reference values.
"""
from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from numba import njit

from ._activations import LEAKY_RELU_SLOPE, REGISTRY

# Activation ids understood by the kernels (the registry's fast_id; others go through JAX).
ACTIVATION_IDS = {name: a.fast_id for name, a in REGISTRY.items() if a.fast_id is not None}

_FASTMATH = True  # overflow is caught before: the diagonal pass bounds every entry (Cauchy-Schwarz)
_PI = math.pi
_LEAKY = LEAKY_RELU_SLOPE
_SNAP_ULPS = 8  # same rule as _activations._RHO_SNAP_ULPS


class CompiledKernels(NamedTuple):
    mlp_rows: object
    cnn_gap_pairs: object
    cnn_flatten_pairs: object
    mlp_diagonal: object


@njit(inline="always", fastmath=_FASTMATH)
def _asin_poly(x, ft):
    """Cephes asinf: arcsin to float32 accuracy, branch-free (see _activations._asin_f32).
    `ft` is the float type (np.float32): constants must carry it or numba computes in float64."""
    ax = abs(x)
    big = ax > ft(0.5)
    z = ft(0.5) * (ft(1.0) - ax) if big else ax * ax
    s = math.sqrt(z) if big else ax
    p = (((ft(4.2163199048e-2) * z + ft(2.4181311049e-2)) * z + ft(4.5470025998e-2)) * z + ft(7.4953002686e-2)) * z
    p = p + ft(1.6666752422e-1)
    y = p * z * s + s
    y = ft(_PI / 2) - ft(2.0) * y if big else y
    return -y if x < ft(0.0) else y


@njit(inline="always", fastmath=_FASTMATH)
def _acos_poly(x, ft):
    near_one = x > ft(0.5)
    t = math.sqrt(max(ft(0.5) * (ft(1.0) - x), ft(0.0))) if near_one else x
    a = _asin_poly(t, ft)
    return ft(2.0) * a if near_one else ft(_PI / 2) - a


@njit(inline="always", fastmath=_FASTMATH)
def _rho(c, inv_root, snap, ft):
    """c / sqrt(ab) from inv_root = 1/sqrt(ab) (0 where a variance is 0), clipped and snapped."""
    rho = min(max(c * inv_root, ft(-1.0)), ft(1.0))
    if abs(rho) >= snap:
        rho = ft(1.0) if rho > ft(0.0) else ft(-1.0)
    return rho


@njit(inline="always", fastmath=_FASTMATH)
def _arccos_dual(act, rho, root, c, theta, ft):
    pi = ft(_PI)
    inv2pi = ft(1.0 / (2 * _PI))
    sin_t = math.sqrt(max(ft(1.0) - rho * rho, ft(0.0)))
    if act == 0:
        return root * (sin_t + (pi - theta) * rho) * inv2pi, (pi - theta) * inv2pi
    if act == 1:
        j1 = root * (sin_t + (pi - theta) * rho) * inv2pi
        slope = ft(_LEAKY)
        return slope * c + ft((1.0 - _LEAKY) ** 2) * j1, slope + ft((1.0 - _LEAKY) ** 2) * (pi - theta) * inv2pi
    return root * (ft(2.0) * sin_t + (pi - ft(2.0) * theta) * rho) * ft(1.0 / _PI), ft(1.0) - theta * ft(2.0 / _PI)


@njit(inline="always", fastmath=_FASTMATH)
def _dual_entry(act, poly, c, ai, sai, rai, aj, saj, raj, snap, ft):
    """(E[phi(u) phi(v)], E[phi'(u) phi'(v)]) for variances (ai, aj) and covariance c.

    sa = sqrt(a); ra = 1/sqrt(a) (0 where a = 0), or 1/sqrt(1 + 2a) for erf. poly: float32 arccos /
    arcsin polynomials. c is first snapped to +-sqrt(ai aj) where it is within a few ulps of it:
    exact duplicates then stay exactly correlated. Without this, in the chaotic phase (chi_1 > 1)
    rounding on the diagonal grows by chi_1 per layer and reaches O(1) after a few hundred layers."""
    one, two, zero = ft(1.0), ft(2.0), ft(0.0)
    root = sai * saj
    if abs(c) >= snap * root:
        c = root if c > zero else -root
    if act <= 2:  # arc-cosine family: relu, leaky_relu, abs (Cho & Saul 2009)
        rho = _rho(c, rai * raj, snap, ft)
        theta = _acos_poly(rho, ft) if poly else math.acos(rho)
        return _arccos_dual(act, rho, root, c, theta, ft)
    if act == 3:  # erf (Williams 1997)
        e = rai * raj
        r = min(max(two * c * e, -one), one)
        asin_r = _asin_poly(r, ft) if poly else math.asin(r)
        tiny = ft(1e-37) if poly else ft(1e-300)
        return ft(2.0 / _PI) * asin_r, ft(4.0 / _PI) * e / math.sqrt(max(one - r * r, tiny))
    if act == 4:  # gelu (exact), Tsuchida & Ong, arXiv:2002.08517
        tiny = ft(1e-37) if poly else ft(1e-300)
        inv2pi = ft(1.0 / (2 * _PI))
        p1 = (one + ai) * (one + aj)
        ab = ai * aj
        # (1+a)(1+b) - c^2 without cancellation at large variance
        d2 = max(one + ai + aj + (root - abs(c)) * (root + abs(c)), tiny)
        d = math.sqrt(d2)
        t = math.atan2(c, d)
        v = ft(0.25) * c + (c * t + (c * c + ab * d2) / (p1 * d)) * inv2pi
        return v, ft(0.25) + t * inv2pi + c * (one / d2 + (one - ab) / p1 + one) * inv2pi / d
    if act == 5:  # identity
        return c, one
    e = ft(-0.5) * (ai + aj)  # sin
    e1 = math.exp(e + c)
    e2 = math.exp(e - c)
    return ft(0.5) * (e1 - e2), ft(0.5) * (e1 + e2)


@njit(inline="always", fastmath=_FASTMATH)
def _dual_row_of(act, poly, snap, ai_row, sai_row, rai_row, a_row, sa_row, ra_row, c_row, v, vd, m, ft):
    for j in range(m):
        v[j], vd[j] = _dual_entry(
            act, poly, c_row[j], ai_row[j], sai_row[j], rai_row[j], a_row[j], sa_row[j], ra_row[j], snap, ft
        )


@njit(inline="always", fastmath=_FASTMATH)
def _mlp_layer_of(act, poly, s, t, ai, sai, rai, a_row, sa_row, ra_row, m, w2, b2, snap, ft):
    for j in range(m):
        v, vd = _dual_entry(act, poly, s[j], ai, sai, rai, a_row[j], sa_row[j], ra_row[j], snap, ft)
        new = w2 * v + b2
        t[j] = new + w2 * vd * t[j]
        s[j] = new


@njit(inline="always", fastmath=_FASTMATH)
def _patch_average_flat(src, dst, planes, L, q0, q1, shifts, scale, b2):
    """dst = scale * sum_d src[. + shifts[d]] + b2 on the interior of every plane (cnn_gap_pairs'
    padded layout): the 3x3 patch average of the pixel-pair covariance as 9 shifted adds. Slices,
    not offset indices: numba's negative-index wraparound would otherwise stop vectorization."""
    m = q1 - q0
    for p in planes:
        lo = p * L + q0
        s0, s1, s2 = src[lo + shifts[0] :], src[lo + shifts[1] :], src[lo + shifts[2] :]
        s3, s4, s5 = src[lo + shifts[3] :], src[lo + shifts[4] :], src[lo + shifts[5] :]
        s6, s7, s8 = src[lo + shifts[6] :], src[lo + shifts[7] :], src[lo + shifts[8] :]
        out = dst[lo : lo + m]
        for k in range(m):
            acc = (s0[k] + s1[k] + s2[k]) + (s3[k] + s4[k] + s5[k]) + (s6[k] + s7[k] + s8[k])
            out[k] = scale * acc + b2


@njit(inline="always", fastmath=_FASTMATH)
def _patch_average_diag(src, dst, h, w, w2, b2, ft):
    for ph in range(h):
        for pw in range(w):
            acc = ft(0.0)
            for dh in range(3):
                for dw in range(3):
                    acc += src[ph + dh, pw + dw]
            dst[ph * w + pw] = w2 * ft(1.0 / 9.0) * acc + b2


@functools.lru_cache(maxsize=None)
def kernels(act: int, poly: bool) -> CompiledKernels:
    """The compiled kernels specialised to one activation id (ACTIVATION_IDS) and arithmetic (poly:
    float32 arccos / arcsin polynomials). The constants fold into the inlined loops, so each loop
    vectorizes, and numba compiles (and caches on disk) only the activations that are used."""
    ACT, POLY = act, bool(poly)

    @njit(nogil=True, cache=True, fastmath=_FASTMATH)
    def mlp_rows(k0, k1, x1, x2, a1, sa1, ra1, a2, sa2, ra2, w2, b2, snap, symmetric, out_s, out_t, ft):
        """Rows k and n1 - 1 - k, k0 <= k < k1 <= (n1 + 1) // 2, of the fully connected NNGP / NTK
        (paired rows: equal work in the triangle); x1 (n1, d), x2 (n2, d).

        a1 (depth + 1, n1), a2 (depth + 1, n2): per-layer variances, sa = sqrt(a), ra the normalizer
        (see _dual_entry). symmetric: x2 is x1, compute columns >= the row and mirror. The inner
        products x1[i] . x2[j] / d are computed here rather than by BLAS: OpenBLAS' worker threads
        spin after a product and would take the cores from these loops (4x slower on 2 cores)."""
        rows = x1.shape[0]
        n2, d = x2.shape
        depth = a1.shape[0] - 1
        inv_d = ft(1.0) / ft(d)
        for k in range(k0, k1):
            s = np.empty(n2, x1.dtype)
            t = np.empty(n2, x1.dtype)
            for which in range(2):
                r = np.int64(k) if which == 0 else np.int64(rows - 1 - k)
                if which == 1 and r == k:
                    continue
                i = r
                c0 = i if symmetric else np.int64(0)
                m = np.int64(n2 - c0)
                for j in range(m):
                    acc = ft(0.0)
                    for q in range(d):
                        acc += x1[i, q] * x2[c0 + j, q]
                    s[j] = w2 * acc * inv_d + b2
                    t[j] = s[j]
                for layer in range(depth):
                    _mlp_layer_of(
                        ACT, POLY, s, t, a1[layer, i], sa1[layer, i], ra1[layer, i],
                        a2[layer, c0:], sa2[layer, c0:], ra2[layer, c0:], m, w2, b2, snap, ft,
                    )
                out_s[i, c0:] = s[:m]
                out_t[i, c0:] = t[:m]
                if symmetric:
                    out_s[c0:, i] = s[:m]
                    out_t[c0:, i] = t[:m]


    @njit(nogil=True, cache=True, fastmath=_FASTMATH)
    def cnn_gap_pairs(k0, k1, xp1, xp2, ii, jj, a1, sa1, ra1, a2, sa2, ra2, w2, b2, snap, h, w, out_s, out_t, ft):
        """CNTK with global average pooling for image pairs (x1[ii[k]], x2[jj[k]]), the readout taken
        after each of the last out_s.shape[1] layers (out[k, r]: depth - n_rec + 1 + r).

        Layout (see `gap_layout`): a pixel (r, c), r in [-1, h], c in [-1, w - 1], lives at
        (r + 1) S + c + 1 of a padded plane of length L = (h + 2) S + 1, S = w + 1: one zero
        column is shared between the right edge of a row and the left edge of the next. The
        (PQ) x (PQ) pixel-pair covariance of an image pair is an (L, L) array; the 3x3 patch average
        A[K](p, q) = (1/9) sum_d K(p + d, q + d) then reads, for each of the 9 shifts d, the flat
        array at the constant offset d (L + 1): long contiguous loops that vectorize.
        xp: (n, L, C) padded images; a, sa, ra: (n, depth, L) pixel variances (padding 1)."""
        S = w + 1
        L = (h + 2) * S + 1
        q0, q1 = S + 1, h * S + w + 1  # first and one past the last interior pixel
        m = q1 - q0
        # the dual loop runs over a multiple of 8 entries: a scalar remainder of 7 arccos costs
        # as much as the 64 vectorized ones (the extra entries read zeros and are zeroed after)
        m8 = min(-(-m // 8) * 8, L - q0)
        P = h * w
        depth = a1.shape[1]
        n_rec = out_s.shape[1]
        ch = xp1.shape[2]
        cov = np.zeros(L * L, xp1.dtype)
        ntk = np.zeros(L * L, xp1.dtype)
        e = np.zeros(L * L, xp1.dtype)  # padding planes and columns stay 0
        f = np.zeros(L * L, xp1.dtype)
        planes = np.empty(P, np.int64)
        for r in range(h):
            for c in range(w):
                planes[r * w + c] = (r + 1) * S + c + 1
        shifts = np.empty(9, np.int64)
        for dh in range(3):
            for dw in range(3):
                shifts[dh * 3 + dw] = ((dh - 1) * S + dw - 1) * (L + 1)
        scale = w2 * ft(1.0 / 9.0)
        inv_c = ft(1.0) / ft(ch)
        for pair in range(k0, k1):
            i, j = np.int64(ii[pair]), np.int64(jj[pair])
            xj = xp2[j]
            for p in planes:
                ep = e[p * L + q0 : p * L + q1]
                for k in range(m):
                    acc = ft(0.0)
                    for c in range(ch):
                        acc += xp1[i, p, c] * xj[q0 + k, c]
                    ep[k] = acc * inv_c
            _patch_average_flat(e, cov, planes, L, q0, q1, shifts, scale, b2)
            ntk[:] = cov
            for layer in range(depth):
                ajq, sajq, rajq = a2[j, layer, q0 : q0 + m8], sa2[j, layer, q0 : q0 + m8], ra2[j, layer, q0 : q0 + m8]
                sum_e = ft(0.0)
                sum_f = ft(0.0)
                for p in planes:
                    lo = p * L + q0
                    ai, sai, rai = a1[i, layer, p], sa1[i, layer, p], ra1[i, layer, p]
                    cp, tp, ep, fp = cov[lo : lo + m8], ntk[lo : lo + m8], e[lo : lo + m8], f[lo : lo + m8]
                    for k in range(m8):
                        v, vd = _dual_entry(ACT, POLY, cp[k], ai, sai, rai, ajq[k], sajq[k], rajq[k], snap, ft)
                        ep[k] = v
                        fp[k] = v + vd * tp[k]
                    for r in range(1, h):  # the shared padding columns inside [q0, q1)
                        ep[r * S - 1] = ft(0.0)
                        fp[r * S - 1] = ft(0.0)
                    for k in range(m, m8):
                        ep[k] = ft(0.0)
                        fp[k] = ft(0.0)
                    for k in range(m):
                        sum_e += ep[k]
                        sum_f += fp[k]
                rec = layer - (depth - n_rec)
                if rec >= 0:
                    out_s[pair, rec] = w2 * sum_e / (P * P) + b2
                    out_t[pair, rec] = w2 * sum_f / (P * P) + b2
                if layer < depth - 1:
                    _patch_average_flat(e, cov, planes, L, q0, q1, shifts, scale, b2)
                    _patch_average_flat(f, ntk, planes, L, q0, q1, shifts, scale, b2)


    @njit(nogil=True, cache=True, fastmath=_FASTMATH)
    def cnn_flatten_pairs(k0, k1, x1, x2, ii, jj, a1, sa1, ra1, a2, sa2, ra2, w2, b2, snap, out_s, out_t, ft):
        """CNTK with a flatten readout (CNTK-V): only the pixel diagonal (p, p) of each image pair
        is needed, since the patch average of a diagonal entry reads only diagonal entries.
        The readout is taken after each of the last out_s.shape[1] layers, as in cnn_gap_pairs."""
        h, w, ch = x1.shape[1], x1.shape[2], x1.shape[3]
        P = h * w
        depth = a1.shape[1] - 1
        n_rec = out_s.shape[1]
        s = np.empty(P, x1.dtype)
        t = np.empty(P, x1.dtype)
        v = np.empty(P, x1.dtype)
        vd = np.empty(P, x1.dtype)
        pad_e = np.zeros((h + 2, w + 2), x1.dtype)
        pad_f = np.zeros((h + 2, w + 2), x1.dtype)
        for k in range(k0, k1):
            i, j = np.int64(ii[k]), np.int64(jj[k])
            for ph in range(h):
                for pw in range(w):
                    acc = ft(0.0)
                    for c in range(ch):
                        acc += x1[i, ph, pw, c] * x2[j, ph, pw, c]
                    pad_e[ph + 1, pw + 1] = acc / ch
            _patch_average_diag(pad_e, s, h, w, w2, b2, ft)
            t[:] = s
            for layer in range(depth):
                _dual_row_of(ACT, POLY, snap, a1[i, layer], sa1[i, layer], ra1[i, layer], a2[j, layer], sa2[j, layer], ra2[j, layer], s, v, vd, P, ft)
                sum_e = ft(0.0)
                sum_f = ft(0.0)
                for p in range(P):
                    f = v[p] + vd[p] * t[p]
                    sum_e += v[p]
                    sum_f += f
                    pad_e[p // w + 1, p % w + 1] = v[p]
                    pad_f[p // w + 1, p % w + 1] = f
                rec = layer - (depth - n_rec)
                if rec >= 0:
                    out_s[k, rec] = w2 * sum_e / P + b2
                    out_t[k, rec] = w2 * sum_f / P + b2
                if layer < depth - 1:
                    _patch_average_diag(pad_f, t, h, w, w2, b2, ft)
                    _patch_average_diag(pad_e, s, h, w, w2, b2, ft)

    @njit(nogil=True, cache=True)
    def mlp_diagonal(var0, w2, b2, snap, hist, theta, ft):
        """The diagonal recursion (the same _dual_entry at c = a): hist[l] = Sigma^l(x, x) for
        l <= depth (hist[0] = var0), theta = Theta(x, x). Without fastmath, so that an overflow
        shows as inf / nan in hist for the caller's check. (A JAX pass here would leave XLA's
        worker threads spinning on the cores that the kernels need next.)"""
        depth = hist.shape[0] - 1
        for i in range(var0.shape[0]):
            a = var0[i]
            th = a
            hist[0, i] = a
            for layer in range(depth):
                sa = math.sqrt(a)
                if ACT == 3:
                    ra = ft(1.0) / math.sqrt(ft(1.0) + ft(2.0) * a)
                else:
                    ra = ft(1.0) / sa if sa > ft(0.0) else ft(0.0)
                v, vd = _dual_entry(ACT, POLY, a, a, sa, ra, a, sa, ra, snap, ft)
                a = w2 * v + b2
                th = a + w2 * vd * th
                hist[layer + 1, i] = a
            theta[i] = th

    return CompiledKernels(mlp_rows, cnn_gap_pairs, cnn_flatten_pairs, mlp_diagonal)


def run_split(kernel, n_items, *args, threads=None, chunks_per_thread=4):
    """kernel(k0, k1, *args) over [0, n_items) in chunks on `threads` threads (default: the CPUs).

    The kernels release the GIL (nogil), so Python threads run them in parallel. This replaces
    numba's parallel=True, whose compilation takes several seconds per specialised kernel."""
    threads = threads or os.cpu_count() or 1
    n_chunks = max(1, min(n_items, threads * chunks_per_thread))
    bounds = np.linspace(0, n_items, n_chunks + 1).astype(np.int64)
    if n_chunks == 1 or threads == 1:
        for k0, k1 in zip(bounds[:-1], bounds[1:]):
            kernel(k0, k1, *args)
        return
    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(kernel, k0, k1, *args) for k0, k1 in zip(bounds[:-1], bounds[1:])]:
            f.result()


def snap_threshold(dtype) -> float:
    return 1.0 - _SNAP_ULPS * float(np.finfo(dtype).eps)


def gap_layout(h: int, w: int):
    """(L, interior index array) of cnn_gap_pairs' padded plane for h x w images: pixel (r, c) at
    (r + 1)(w + 1) + c + 1."""
    S = w + 1
    idx = ((np.arange(h)[:, None] + 1) * S + np.arange(w)[None, :] + 1).ravel()
    return (h + 2) * S + 1, idx

