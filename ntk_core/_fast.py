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

import math

import numpy as np
from numba import njit, prange

# Activation ids understood by the kernels (closed forms only; others go through JAX).
ACTIVATION_IDS = {"relu": 0, "leaky_relu": 1, "abs": 2, "erf": 3, "gelu": 4, "identity": 5, "sin": 6}

_FASTMATH = True  # overflow is caught before: the diagonal pass bounds every entry (Cauchy-Schwarz)
_PI = math.pi
_LEAKY = 0.1  # keep equal to _spec.LEAKY_RELU_SLOPE (checked by the tests)
_SNAP_ULPS = 8  # same rule as _activations._RHO_SNAP_ULPS


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
def _snap_row(c_row, sai_row, sa_row, snap, m):
    """c = +-sqrt(a b) where |c| is within a few ulps of it: exact duplicates then stay exactly
    correlated. Without this, in the chaotic phase (chi_1 > 1) rounding on the diagonal grows by
    chi_1 per layer and reaches O(1) after a few hundred layers."""
    for j in range(m):
        root = sai_row[j] * sa_row[j]
        c = c_row[j]
        if abs(c) >= snap * root:
            c_row[j] = root if c > 0 else -root


@njit(inline="always", fastmath=_FASTMATH)
def _dual_row(act, poly, snap, ai_row, sai_row, rai_row, a_row, sa_row, ra_row, c_row, v, vd, m, ft):
    """v[j], vd[j] = E[phi(u) phi(v)], E[phi'(u) phi'(v)] for variances (ai_row[j], a_row[j]) and
    covariance c_row[j], j < m. sa = sqrt(a), ra = 1/sqrt(a) (0 where a = 0). poly: float32 arccos/arcsin polynomials.
    Branches on act / poly stay outside the loops so that each loop vectorizes."""
    pi = ft(_PI)
    inv2pi = ft(1.0 / (2 * _PI))
    one, two, zero = ft(1.0), ft(2.0), ft(0.0)
    if act <= 2:  # arc-cosine family: relu, leaky_relu, abs (Cho & Saul 2009)
        if poly:
            for j in range(m):
                rho = _rho(c_row[j], rai_row[j] * ra_row[j], snap, ft)
                v[j], vd[j] = _arccos_dual(act, rho, sai_row[j] * sa_row[j], c_row[j], _acos_poly(rho, ft), ft)
        else:
            for j in range(m):
                rho = _rho(c_row[j], rai_row[j] * ra_row[j], snap, ft)
                v[j], vd[j] = _arccos_dual(act, rho, sai_row[j] * sa_row[j], c_row[j], math.acos(rho), ft)
    elif act == 3:  # erf (Williams 1997); here ra = 1 / sqrt(1 + 2a) (see erf_normalizer)
        tiny = ft(1e-37) if poly else ft(1e-300)
        if poly:
            for j in range(m):
                e = rai_row[j] * ra_row[j]
                r = min(max(two * c_row[j] * e, -one), one)
                v[j] = ft(2.0 / _PI) * _asin_poly(r, ft)
                vd[j] = ft(4.0 / _PI) * e / math.sqrt(max(one - r * r, tiny))
        else:
            for j in range(m):
                e = rai_row[j] * ra_row[j]
                r = min(max(two * c_row[j] * e, -one), one)
                v[j] = ft(2.0 / _PI) * math.asin(r)
                vd[j] = ft(4.0 / _PI) * e / math.sqrt(max(one - r * r, tiny))
    elif act == 4:  # gelu (exact), Tsuchida & Ong, arXiv:2002.08517
        tiny = ft(1e-37) if poly else ft(1e-300)
        for j in range(m):
            c = c_row[j]
            aj = a_row[j]
            p1 = (one + ai_row[j]) * (one + aj)
            ab = ai_row[j] * aj
            root = sai_row[j] * sa_row[j]
            # (1+a)(1+b) - c^2 without cancellation at large variance
            d2 = max(one + ai_row[j] + aj + (root - abs(c)) * (root + abs(c)), tiny)
            d = math.sqrt(d2)
            t = math.atan2(c, d)
            v[j] = ft(0.25) * c + (c * t + (c * c + ab * d2) / (p1 * d)) * inv2pi
            vd[j] = ft(0.25) + t * inv2pi + c * (one / d2 + (one - ab) / p1 + one) * inv2pi / d
    elif act == 5:  # identity
        for j in range(m):
            v[j] = c_row[j]
            vd[j] = one
    else:  # sin
        for j in range(m):
            c = c_row[j]
            e = ft(-0.5) * (ai_row[j] + a_row[j])
            e1 = math.exp(e + c)
            e2 = math.exp(e - c)
            v[j] = ft(0.5) * (e1 - e2)
            vd[j] = ft(0.5) * (e1 + e2)


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def mlp_rows(g, row0, col0, a1, sa1, ra1, a2, sa2, ra2, w2, b2, act, poly, snap, symmetric, out_s, out_t, ft):
    """Rows row0 .. row0 + len(g) of the fully connected NNGP / NTK.

    g[r, k] = x1[row0 + r] . x2[col0 + k] / d; a1 (depth + 1, n1), a2 (depth + 1, n2): per-layer
    variances, sa = sqrt(a). symmetric: x2 is x1, compute columns >= the row and mirror."""
    rows, cols = g.shape
    depth = a1.shape[0] - 1
    half = (rows + 1) // 2
    for k in prange(half):  # rows k and rows-1-k together: balanced work in the triangle
        for which in range(2):
            r = np.int64(k) if which == 0 else np.int64(rows - 1 - k)
            if which == 1 and r == k:
                continue
            i = row0 + r
            start = i - col0 if symmetric else 0
            m = np.int64(cols - start)
            s = np.empty(m, g.dtype)
            t = np.empty(m, g.dtype)
            v = np.empty(m, g.dtype)
            vd = np.empty(m, g.dtype)
            ai = np.empty(m, g.dtype)
            sai = np.empty(m, g.dtype)
            rai = np.empty(m, g.dtype)
            for j in range(m):
                s[j] = w2 * g[r, start + j] + b2
                t[j] = s[j]
            c0 = col0 + start
            for layer in range(depth):
                ai[:] = a1[layer, i]
                sai[:] = sa1[layer, i]
                rai[:] = ra1[layer, i]
                _snap_row(s, sai, sa2[layer, c0:], snap, m)
                _dual_row(act, poly, snap, ai, sai, rai, a2[layer, c0:], sa2[layer, c0:], ra2[layer, c0:], s, v, vd, m, ft)
                for j in range(m):
                    new = w2 * v[j] + b2
                    t[j] = new + w2 * vd[j] * t[j]
                    s[j] = new
            for j in range(m):
                out_s[i, c0 + j] = s[j]
                out_t[i, c0 + j] = t[j]
            if symmetric:
                for j in range(m):
                    out_s[c0 + j, i] = s[j]
                    out_t[c0 + j, i] = t[j]


@njit(inline="always", fastmath=_FASTMATH)
def _patch_average_pairs(src, dst, h, w, w2, b2, ft):
    """dst[(ph,pw),(qh,qw)] = w2/9 sum_{dh,dw} src[ph+dh, pw+dw, qh+dh, qw+dw] + b2, where src is
    the zero-padded (h+2, w+2, h+2, w+2) buffer (the 3x3 'patch trace' of Arora et al. 2019)."""
    for ph in range(h):
        for pw in range(w):
            p = ph * w + pw
            for qh in range(h):
                base = p * h * w + qh * w
                for qw in range(w):
                    dst[base + qw] = ft(0.0)
                for dh in range(3):
                    for dw in range(3):
                        for qw in range(w):
                            dst[base + qw] += src[ph + dh, pw + dw, qh + dh, qw + dw]
                for qw in range(w):
                    dst[base + qw] = w2 * ft(1.0 / 9.0) * dst[base + qw] + b2


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def cnn_gap_pairs(x1, x2, ii, jj, a1, sa1, ra1, a2, sa2, ra2, w2, b2, act, poly, snap, out_s, out_t, ft):
    """CNTK with global average pooling for image pairs (x1[ii[k]], x2[jj[k]]).

    x: (n, H, W, C); a: per-layer pixel variances (n, depth + 1, H*W). Writes out[k]."""
    n_pairs = ii.shape[0]
    h, w, ch = x1.shape[1], x1.shape[2], x1.shape[3]
    P = h * w
    depth = a1.shape[1] - 1
    for k in prange(n_pairs):
        i, j = np.int64(ii[k]), np.int64(jj[k])
        s = np.empty(P * P, x1.dtype)
        t = np.empty(P * P, x1.dtype)
        v = np.empty(P, x1.dtype)
        vd = np.empty(P, x1.dtype)
        ai = np.empty(P, x1.dtype)
        sai = np.empty(P, x1.dtype)
        rai = np.empty(P, x1.dtype)
        pad_e = np.zeros((h + 2, w + 2, h + 2, w + 2), x1.dtype)
        pad_f = np.zeros((h + 2, w + 2, h + 2, w + 2), x1.dtype)
        # Sigma^0 = w^2 A[x x'^T / C] + b^2
        for ph in range(h):
            for pw in range(w):
                for qh in range(h):
                    for qw in range(w):
                        acc = ft(0.0)
                        for c in range(ch):
                            acc += x1[i, ph, pw, c] * x2[j, qh, qw, c]
                        pad_e[ph + 1, pw + 1, qh + 1, qw + 1] = acc / ch
        _patch_average_pairs(pad_e, s, h, w, w2, b2, ft)
        t[:] = s
        sum_e = ft(0.0)
        sum_f = ft(0.0)
        for layer in range(depth):
            last = layer == depth - 1
            for p in range(P):
                row = s[p * P : (p + 1) * P]
                ai[:] = a1[i, layer, p]
                sai[:] = sa1[i, layer, p]
                rai[:] = ra1[i, layer, p]
                _snap_row(row, sai, sa2[j, layer], snap, P)
                _dual_row(act, poly, snap, ai, sai, rai, a2[j, layer], sa2[j, layer], ra2[j, layer], row, v, vd, P, ft)
                ph, pw = p // w, p % w
                for q in range(P):
                    f = v[q] + vd[q] * t[p * P + q]
                    if last:
                        sum_e += v[q]
                        sum_f += f
                    else:
                        pad_e[ph + 1, pw + 1, q // w + 1, q % w + 1] = v[q]
                        pad_f[ph + 1, pw + 1, q // w + 1, q % w + 1] = f
            if not last:
                _patch_average_pairs(pad_f, t, h, w, w2, b2, ft)
                _patch_average_pairs(pad_e, s, h, w, w2, b2, ft)
        out_s[k] = w2 * sum_e / (P * P) + b2
        out_t[k] = w2 * sum_f / (P * P) + b2


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def cnn_flatten_pairs(x1, x2, ii, jj, a1, sa1, ra1, a2, sa2, ra2, w2, b2, act, poly, snap, out_s, out_t, ft):
    """CNTK with a flatten readout (CNTK-V): only the pixel diagonal (p, p) of each image pair
    is needed, since the patch average of a diagonal entry reads only diagonal entries."""
    n_pairs = ii.shape[0]
    h, w, ch = x1.shape[1], x1.shape[2], x1.shape[3]
    P = h * w
    depth = a1.shape[1] - 1
    for k in prange(n_pairs):
        i, j = np.int64(ii[k]), np.int64(jj[k])
        s = np.empty(P, x1.dtype)
        t = np.empty(P, x1.dtype)
        v = np.empty(P, x1.dtype)
        vd = np.empty(P, x1.dtype)
        pad_e = np.zeros((h + 2, w + 2), x1.dtype)
        pad_f = np.zeros((h + 2, w + 2), x1.dtype)
        for ph in range(h):
            for pw in range(w):
                acc = ft(0.0)
                for c in range(ch):
                    acc += x1[i, ph, pw, c] * x2[j, ph, pw, c]
                pad_e[ph + 1, pw + 1] = acc / ch
        _patch_average_diag(pad_e, s, h, w, w2, b2, ft)
        t[:] = s
        sum_e = ft(0.0)
        sum_f = ft(0.0)
        for layer in range(depth):
            last = layer == depth - 1
            _snap_row(s, sa1[i, layer], sa2[j, layer], snap, P)
            _dual_row(act, poly, snap, a1[i, layer], sa1[i, layer], ra1[i, layer], a2[j, layer], sa2[j, layer], ra2[j, layer], s, v, vd, P, ft)
            for p in range(P):
                f = v[p] + vd[p] * t[p]
                if last:
                    sum_e += v[p]
                    sum_f += f
                else:
                    pad_e[p // w + 1, p % w + 1] = v[p]
                    pad_f[p // w + 1, p % w + 1] = f
            if not last:
                _patch_average_diag(pad_f, t, h, w, w2, b2, ft)
                _patch_average_diag(pad_e, s, h, w, w2, b2, ft)
        out_s[k] = w2 * sum_e / P + b2
        out_t[k] = w2 * sum_f / P + b2


@njit(inline="always", fastmath=_FASTMATH)
def _patch_average_diag(src, dst, h, w, w2, b2, ft):
    for ph in range(h):
        for pw in range(w):
            acc = ft(0.0)
            for dh in range(3):
                for dw in range(3):
                    acc += src[ph + dh, pw + dw]
            dst[ph * w + pw] = w2 * ft(1.0 / 9.0) * acc + b2


def snap_threshold(dtype) -> float:
    return 1.0 - _SNAP_ULPS * float(np.finfo(dtype).eps)
