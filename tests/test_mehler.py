"""The Mehler-series engine (ntk_core/_mehler.py) for fully connected kernels of activations
without a closed form, checked against the 2-D quadrature engine (an independent method) and an
accurate reference for its coefficients; its fallbacks (hot pairs, 1-D inputs, large variances)."""
import math

import numpy as np
import pytest

import ntk_core as nc
from ntk_core import _infinite, _mehler
from ntk_core._activations import QUADRATURE_ACTIVATIONS, activation_fn


@pytest.fixture
def mehler_runs(monkeypatch):
    """Records what `_mlp_kernels_mehler` returned (None: it fell back) and how many pairs it
    handed to the 2-D quadrature."""
    runs = {"results": [], "hot": []}
    mehler, pairs = _infinite._mlp_kernels_mehler, _infinite._quadrature_pairs

    def spy_mehler(*args, **kwargs):
        out = mehler(*args, **kwargs)
        runs["results"].append(out)
        return out

    def spy_pairs(x1, x2, ii, *args):
        runs["hot"].append(ii.size)
        return pairs(x1, x2, ii, *args)

    monkeypatch.setattr(_infinite, "_mlp_kernels_mehler", spy_mehler)
    monkeypatch.setattr(_infinite, "_quadrature_pairs", spy_pairs)
    return runs


def _check_against_quadrature(spec, x1, x2=None):
    series = nc.infinite_kernels(spec, x1, x2, engine="numba")
    quad = nc.infinite_kernels(spec, x1, x2, engine="jax")
    scale = max(np.max(np.abs(quad.ntk)), np.max(np.abs(quad.nngp)))
    err = max(np.max(np.abs(series.ntk - quad.ntk)), np.max(np.abs(series.nngp - quad.nngp)))
    # both bounds are honest, so the engines differ by at most their sum
    assert err <= series.dual_error_bound + quad.dual_error_bound + 1e-14 * scale, (err, series.dual_error_bound)
    assert err <= 1e-10 * scale
    assert series.dual_error_bound <= 1e-9 * scale  # not vacuous
    return series


@pytest.mark.parametrize("activation", QUADRATURE_ACTIVATIONS)
def test_series_engine_matches_the_quadrature(activation, mehler_runs):
    rng = np.random.default_rng(5)
    x1, x2 = rng.standard_normal((41, 6)), rng.standard_normal((23, 6))  # 41: a partial tile of rows
    spec = nc.MLP(depth=4, w_std=1.5, b_std=0.2, activation=activation)
    _check_against_quadrature(spec, x1)
    _check_against_quadrature(spec, x1, x2)
    assert all(r is not None for r in mehler_runs["results"]), "the series engine fell back"


def test_pairs_near_correlation_one_go_to_the_quadrature(mehler_runs):
    rng = np.random.default_rng(6)
    x1 = rng.standard_normal((30, 5))
    x2 = np.concatenate([x1[:3], x1[3:4] * (1 + 1e-9), rng.standard_normal((20, 5))])  # copies, a near copy
    spec = nc.MLP(depth=3, w_std=1.4, b_std=0.1, activation="tanh")
    _check_against_quadrature(spec, x1, x2)
    assert mehler_runs["results"][0] is not None
    assert mehler_runs["hot"] and mehler_runs["hot"][0] >= 4


def test_series_engine_falls_back_on_one_dimensional_inputs(mehler_runs):
    x, spec = np.linspace(-2, 2, 12)[:, None], nc.MLP(depth=2, w_std=1.5, b_std=0.0, activation="tanh")
    series = nc.infinite_kernels(spec, x, engine="numba")  # without bias every pair has |rho| = 1
    quad = nc.infinite_kernels(spec, x, engine="jax")
    assert mehler_runs["results"] == [None]
    np.testing.assert_array_equal(series.ntk, quad.ntk)
    assert series.dual_error_bound == quad.dual_error_bound


def test_series_engine_at_large_variances(mehler_runs):
    """Variances ~1e2 and above (MAX_VARIANCE): the 2-D quadrature takes over in the layers and
    pairs the series does not fit; the result agrees with the quadrature engine within both bounds."""
    x = np.random.default_rng(7).standard_normal((16, 4))
    spec = nc.MLP(depth=2, w_std=10.0, b_std=5.0, activation="tanh")
    series = nc.infinite_kernels(spec, x, engine="numba")
    quad = nc.infinite_kernels(spec, x, engine="jax")
    err = max(np.max(np.abs(series.ntk - quad.ntk)), np.max(np.abs(series.nngp - quad.nngp)))
    assert err <= series.dual_error_bound + quad.dual_error_bound
    assert series.relative_error_bound < 1e-6  # below the pages' notice threshold


@pytest.mark.parametrize("activation,q", [("tanh", 0.3), ("tanh", 6.5), ("softplus", 9.0), ("sigmoid", 4.0)])
def test_coefficient_errors_are_bounded(activation, q):
    """The a-posteriori error of the trapezoidal coefficients bounds their distance to a rule with
    a quarter of the step (an accurate reference), and is not vacuous."""
    f = activation_fn(activation)
    n_terms = 60
    step = _mehler._grid_step(q, n_terms)
    z, table = _mehler._weighted_hermite(step, n_terms)
    values = [np.asarray(a) for a in _mehler._values(f, np.array([q]), z)]
    zf, fine_table = _mehler._weighted_hermite(step / 4, n_terms)
    fine = [np.asarray(a) for a in _mehler._values(f, np.array([q]), zf)]
    for got, ref in zip(values, fine):
        c, err = _mehler._coefficients(got, table, np.dtype(np.float64))
        c_ref = np.asarray(ref, np.float64) @ fine_table.T
        actual = float(np.linalg.norm(c - c_ref))
        assert actual <= err[0], (actual, err[0])
        assert err[0] < 1e-11 * math.sqrt(float(np.sum(c_ref**2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tables_hold_no_subnormal_products(dtype):
    """Subnormal numbers cost ~100 cycles per operation (they halved the pair kernel's speed):
    coefficients are 0 or at least FLOOR, with the flushed ones' norm in the error norm, and the
    tails are at least FLOOR, so products of up to three of them stay normal numbers."""
    floor = _mehler.FLOOR[np.dtype(dtype)]
    assert floor**3 >= np.finfo(dtype).tiny
    q = np.array([0.05, 0.4, 2.0])  # small variances: coefficients that decay fast
    # the engine's own 1-D moments of these variances (one layer: hist = [q, next])
    moments, _, errors = _infinite._diagonal_moments(np.stack([q, q]), 1.0, 0.0, activation="tanh", n=48)
    m, me = np.asarray(moments[0], np.float64), np.asarray(errors[0], np.float64)
    c, d, ec, ed, tail_c, tail_d, _, _ = _mehler._layer_coefficients(activation_fn("tanh"), q, m, me, 100,
                                                                       np.dtype(dtype))
    if dtype == np.float32:  # float64's coefficients stay above 2^-300 here
        assert np.any((np.abs(c) > 0) & (np.abs(c) < floor)), "the case does not exercise the flush"
    flushed, err = _mehler._flush_small(c, ec, floor)
    assert not np.any((np.abs(flushed) > 0) & (np.abs(flushed) < floor))
    dropped = np.linalg.norm(np.where(flushed == 0, c, 0.0), axis=1)
    np.testing.assert_allclose(err - ec, dropped, rtol=1e-5)  # the error norms may be float32
    tables = _mehler.layer_tables("tanh", np.stack([q, q]), m[None], me[None], np.zeros((2, 3)),
                                  np.array([100]), np.dtype(dtype))
    for a in (tables.c, tables.d):
        assert not np.any((np.abs(a) > 0) & (np.abs(a) < floor))
    assert np.all(tables.tail_c[0] >= floor) and np.all(tables.tail_d[0] >= floor)
