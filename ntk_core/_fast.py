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
def _reduce_abs(a, ft):
    """Cephes' range reduction of arcsin for a = |x| in [0, 1]: (big, z, s) with z = a^2, s = a
    for a <= 1/2, and (big) z = (1 - a) / 2, s = sqrt(z) above, where arcsin a = pi/2 - 2 arcsin s."""
    big = a > ft(0.5)
    z = ft(0.5) * (ft(1.0) - a) if big else a * a
    return big, z, (math.sqrt(z) if big else a)


@njit(inline="always", fastmath=_FASTMATH)
def _asin_abs_poly(a, ft):
    """Cephes asinf for a = |x| in [0, 1], branch-free: (arcsin a, z, s, big). For a <= 1/2,
    z = a^2, s = a and arcsin a = s + s z P(z); for a > 1/2 (big), z = (1 - a) / 2, s = sqrt(z) and
    arcsin a = pi/2 - 2 arcsin s. `ft` is the float type (np.float32): constants must carry it or
    numba computes in float64."""
    big, z, s = _reduce_abs(a, ft)
    p = (((ft(4.2163199048e-2) * z + ft(2.4181311049e-2)) * z + ft(4.5470025998e-2)) * z + ft(7.4953002686e-2)) * z
    p = p + ft(1.6666752422e-1)
    y = p * z * s + s
    return (ft(_PI / 2) - ft(2.0) * y if big else y), z, s, big


@njit(inline="always", fastmath=_FASTMATH)
def _asin_poly(x, ft):
    """arcsin to float32 accuracy, branch-free (see _activations._asin_f32)."""
    y = _asin_abs_poly(abs(x), ft)[0]
    return -y if x < ft(0.0) else y


@njit(inline="always", fastmath=_FASTMATH)
def _acos_sin_poly(rho, ft):
    """(arccos rho, sqrt(1 - rho^2)) to float32 accuracy, branch-free, with one square root.

    With z and s of `_asin_abs_poly`: sqrt(1 - rho^2) = R(z) for |rho| <= 1/2 and 2 s R(z) above,
    where R(z) = sqrt(1 - z) on [0, 1/4] is a degree-6 Chebyshev fit in 8z - 1 (error 8e-10, below
    float32 rounding). Square roots dominated the vectorized arc-cosine loops (three per entry
    before: arcsin's, arccos' range reduction and the sine's)."""
    asin_a, z, s, big = _asin_abs_poly(abs(rho), ft)
    theta = ft(_PI / 2) - asin_a if rho >= ft(0.0) else ft(_PI / 2) + asin_a
    t = ft(8.0) * z - ft(1.0)
    r = ft(-1.6709851524e-07) * t + ft(-1.5519165128e-06)
    r = r * t + ft(-1.5216154016e-05)
    r = r * t + ft(-1.7043347659e-04)
    r = r * t + ft(-2.3862615168e-03)
    r = r * t + ft(-6.6815312010e-02)
    r = r * t + ft(9.3541434671e-01)
    return theta, (ft(2.0) * s * r if big else r)


@njit(inline="always", fastmath=_FASTMATH)
def _acos_sin_f64(rho, ft):
    """(arccos rho, sqrt(1 - rho^2)) in float64, branch-free: the float64 twin of `_acos_sin_poly`
    (libm's scalar acos kept these loops from vectorising: 4.8x the float32 time). arcsin s =
    s + s z G(8z - 1) on z in [0, 1/4], G a Chebyshev interpolant of degree 14 (computed in 50-digit
    mpmath, converted to powers of 8z - 1). The sine takes a second square root, of 1 - z = 1 - rho^2
    (|rho| <= 1/2) or of 4 z (1 - z) = 1 - rho^2 with z = (1 - |rho|) / 2 exact (above): cheaper than
    the degree-15 polynomial it replaced (1.15x on the CNTK kernels), and accurate near +-1, where
    1 - rho^2 formed directly would cancel. Against mpmath: 2.2e-16 relative for both.
    theta is formed per branch (2y near rho = 1), keeping its relative accuracy.
    `ft` (np.float64 in use) keeps the float32 kernels, which type this branch too, in float32."""
    big, z, s = _reduce_abs(abs(rho), ft)
    t = ft(8.0) * z - ft(1.0)
    g = ft(6.9846394115282e-15)
    g = g * t + ft(5.409183508714671e-14)
    g = g * t + ft(3.9578921584454787e-13)
    g = g * t + ft(3.1170533275727e-12)
    g = g * t + ft(2.4835126844457755e-11)
    g = g * t + ft(1.99911205511264e-10)
    g = g * t + ft(1.6323530622259375e-09)
    g = g * t + ft(1.3565257115416316e-08)
    g = g * t + ft(1.1524658001218381e-07)
    g = g * t + ft(1.0074723776958953e-06)
    g = g * t + ft(9.15197325335247e-06)
    g = g * t + ft(8.77802113521091e-05)
    g = g * t + ft(0.0009145648551063194)
    g = g * t + ft(0.010972967607792887)
    g = g * t + ft(0.17680460199399817)
    y = s + s * z * g
    if big:
        theta = ft(2.0) * y if rho > ft(0.0) else ft(_PI) - ft(2.0) * y
    else:
        theta = ft(_PI / 2) - y if rho >= ft(0.0) else ft(_PI / 2) + y
    one_z = ft(1.0) - z  # exact for z <= 1/4
    return theta, math.sqrt(ft(4.0) * z * one_z if big else one_z)


@njit(inline="always", fastmath=_FASTMATH)
def _rho(c, inv_root, snap, ft):
    """c / sqrt(ab) from inv_root = 1/sqrt(ab) (0 where a variance is 0), clipped and snapped."""
    rho = min(max(c * inv_root, ft(-1.0)), ft(1.0))
    if abs(rho) >= snap:
        rho = ft(1.0) if rho > ft(0.0) else ft(-1.0)
    return rho


@njit(inline="always", fastmath=_FASTMATH)
def _arccos_dual(act, rho, root, c, theta, sin_t, ft):
    pi = ft(_PI)
    inv2pi = ft(1.0 / (2 * _PI))
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
    if act != 0 and act != 2 and abs(c) >= snap * root:  # relu and abs see c only through rho
        c = root if c > zero else -root
    if act <= 2:  # arc-cosine family: relu, leaky_relu, abs (Cho & Saul 2009)
        rho = _rho(c, rai * raj, snap, ft)
        theta, sin_t = _acos_sin_poly(rho, ft) if poly else _acos_sin_f64(rho, ft)
        return _arccos_dual(act, rho, root, c, theta, sin_t, ft)
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
def input_covariance_row(x1, x2, i, c0, m, w2, b2, inv_d, s, t, ft):
    """s[j] = t[j] = w^2 x1[i] . x2[c0 + j] / d + b^2 for j < m: the first layer's row (NNGP = NTK).
    Computed here rather than by BLAS: OpenBLAS' worker threads spin after a product and would take
    the cores from the kernels' loops."""
    for j in range(m):
        acc = ft(0.0)
        for q in range(x1.shape[1]):
            acc += x1[i, q] * x2[c0 + j, q]
        s[j] = w2 * acc * inv_d + b2
        t[j] = s[j]


@njit(inline="always", fastmath=_FASTMATH)
def _patch_plane(src, dst, p, uL, uq0, um, shifts, scale, b2):
    """dst = scale * sum_d src[. + shifts[d]] + b2 on entries [q0, q0 + m) of plane p (cnn_gap_pairs'
    padded layout): the 3x3 patch average of the pixel-pair covariance as 9 shifted adds.
    Unsigned indices: numba's negative-index wraparound on signed ones stops vectorization."""
    U = np.uint64
    lo = p * uL + uq0
    ilo = np.int64(lo)
    b0, b1, b2_ = U(ilo + shifts[0]), U(ilo + shifts[1]), U(ilo + shifts[2])
    b3, b4, b5 = U(ilo + shifts[3]), U(ilo + shifts[4]), U(ilo + shifts[5])
    b6, b7, b8 = U(ilo + shifts[6]), U(ilo + shifts[7]), U(ilo + shifts[8])
    for k in range(um):
        acc = (src[b0 + k] + src[b1 + k] + src[b2_ + k]) + (src[b3 + k] + src[b4 + k] + src[b5 + k]) \
            + (src[b6 + k] + src[b7 + k] + src[b8 + k])
        dst[lo + k] = scale * acc + b2


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
        (see _dual_entry). symmetric: x2 is x1, compute columns >= the row (`mirror_lower` then
        fills the rest: column stores here cost ~40 % of W1). The inner
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
                input_covariance_row(x1, x2, i, c0, m, w2, b2, inv_d, s, t, ft)
                for layer in range(depth):
                    _mlp_layer_of(
                        ACT, POLY, s, t, a1[layer, i], sa1[layer, i], ra1[layer, i],
                        a2[layer, c0:], sa2[layer, c0:], ra2[layer, c0:], m, w2, b2, snap, ft,
                    )
                out_s[i, c0:] = s[:m]
                out_t[i, c0:] = t[:m]


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
        xp: (n, C, L) padded images; a, sa, ra: (n, depth, L) pixel variances (padding 1)."""
        U = np.uint64
        S = w + 1
        L = (h + 2) * S + 1
        q0, q1 = S + 1, h * S + w + 1  # first and one past the last interior pixel
        m = q1 - q0
        # the loops run over a multiple of 8 entries: a scalar remainder of 7 costs as much as the
        # 64 vectorized ones (the extra entries are masked to 0; the arrays have 2L of slack)
        m8 = min(-(-m // 8) * 8, L - q0)
        P = h * w
        depth = a1.shape[1]
        n_rec = out_s.shape[1]
        ch = xp1.shape[1]
        cov = np.zeros(L * L + 2 * L, xp1.dtype)
        ntk = np.zeros(L * L + 2 * L, xp1.dtype)
        e = np.zeros(L * L + 2 * L, xp1.dtype)  # padding planes stay 0, padding columns are masked
        f = np.zeros(L * L + 2 * L, xp1.dtype)
        mask = np.zeros(m8, xp1.dtype)  # 1 on the interior columns of [q0, q0 + m8)
        interior = np.zeros(L, np.bool_)
        planes = np.empty(P, np.uint64)
        for r in range(h):
            for c in range(w):
                mask[r * S + c] = ft(1.0)
                interior[(r + 1) * S + c + 1] = True
                planes[r * w + c] = U((r + 1) * S + c + 1)
        shifts = np.empty(9, np.int64)
        for dh in range(3):
            for dw in range(3):
                shifts[dh * 3 + dw] = ((dh - 1) * S + dw - 1) * (L + 1)
        scale = w2 * ft(1.0 / 9.0)
        inv_c = ft(1.0) / ft(ch)
        uL, uq0, um8 = U(L), U(q0), U(m8)
        for pair in range(k0, k1):
            i, j = np.int64(ii[pair]), np.int64(jj[pair])
            xi, xj = xp1[i], xp2[j]
            for p in planes:
                lo = p * uL + uq0
                for k in range(um8):
                    e[lo + k] = ft(0.0)
                for c in range(ch):
                    xic, xjc = xi[c, p] * inv_c, xj[c]
                    for k in range(um8):
                        e[lo + k] += xic * xjc[uq0 + k]
                for k in range(um8):
                    e[lo + k] *= mask[k]
            for p in planes:
                _patch_plane(e, cov, p, uL, uq0, um8, shifts, scale, b2)
            for layer in range(depth):
                tk = cov if layer == 0 else ntk  # the NTK entering layer 1 is its NNGP
                ajq, sajq, rajq = a2[j, layer], sa2[j, layer], ra2[j, layer]
                ail, sail, rail = a1[i, layer], sa1[i, layer], ra1[i, layer]
                sum_e = ft(0.0)
                sum_f = ft(0.0)
                more = layer < depth - 1
                # One sweep over the planes: the dual of plane t, then the patch average of plane
                # t - S - 1, whose 9 neighbours are done by then. In place: plane t - S - 1 of cov
                # is not read again in this layer. The planes it reads are still in the L1 cache
                # (1.15x faster than a dual pass then a patch pass).
                for tt in range(q0, q1 + S + 1):
                    t = U(tt)
                    if tt < q1 and interior[t]:
                        lo = t * uL + uq0
                        ai, sai, rai = ail[t], sail[t], rail[t]
                        for k in range(um8):
                            v, vd = _dual_entry(ACT, POLY, cov[lo + k], ai, sai, rai, ajq[uq0 + k], sajq[uq0 + k],
                                                rajq[uq0 + k], snap, ft)
                            v = v * mask[k]
                            fv = (v + vd * tk[lo + k]) * mask[k]
                            e[lo + k] = v
                            f[lo + k] = fv
                            sum_e += v
                            sum_f += fv
                    tp = tt - S - 1
                    if more and tp >= q0 and interior[U(tp)]:
                        _patch_plane(e, cov, U(tp), uL, uq0, um8, shifts, scale, b2)
                        _patch_plane(f, ntk, U(tp), uL, uq0, um8, shifts, scale, b2)
                rec = layer - (depth - n_rec)
                if rec >= 0:
                    out_s[pair, rec] = w2 * sum_e / (P * P) + b2
                    out_t[pair, rec] = w2 * sum_f / (P * P) + b2

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


MIRROR_BLOCK = 64


@njit(nogil=True, cache=True)
def mirror_lower(k0, k1, a, b):
    """a[i, j] = a[j, i] and b[i, j] = b[j, i] below the diagonal, for the rows of blocks [k0, k1) of
    MIRROR_BLOCK rows: tile by tile, so that the column reads stay in cache."""
    n = a.shape[0]
    B = MIRROR_BLOCK
    for bi in range(k0, k1):
        i0 = bi * B
        i1 = min(i0 + B, n)
        for j0 in range(0, i0, B):  # whole tiles left of the diagonal tile
            for i in range(i0, i1):
                for j in range(j0, j0 + B):
                    a[i, j] = a[j, i]
            for i in range(i0, i1):
                for j in range(j0, j0 + B):
                    b[i, j] = b[j, i]
        for i in range(i0, i1):  # the diagonal tile
            for j in range(i0, i):
                a[i, j] = a[j, i]
                b[i, j] = b[j, i]


def mirror_lower_parallel(a, b):
    """`mirror_lower` over all rows on the CPUs; later blocks hold more tiles, hence small chunks."""
    run_split(mirror_lower, -(-a.shape[0] // MIRROR_BLOCK), a, b, chunks_per_thread=8)


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

