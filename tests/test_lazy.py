"""Lazy training (ntk_core/_lazy.py): linearised GD against closed forms, laziness against width,
the Hessian norm of kappa_f against a dense Hessian, the GD stability boundary, the standard
parameterization."""
from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest

import ntk_core as nc
from ntk_core._finite import _check_params  # noqa: F401  (import check)

DATA = nc.make_dataset("cubic", n_train=5, noise=0.01, seed=0, n_test=20)
X, Y, XT, YT = DATA.x_train, DATA.y_train[:, 0], DATA.x_test, DATA.y_test[:, 0]


def _spec(width, depth=1, **kw):
    return nc.MLP(depth=depth, width=width, w_std=1.5, b_std=0.05, activation="erf", **kw)


def test_linearized_matches_discrete_and_continuous_closed_forms():
    """f_lin under GD: exactly f_k = y + (I - lr Theta/n)^k (f_0 - y); for a tiny lr the NTK-GP mean of
    the empirical kernel at theta_0 (nc.ntk_gp, diag_reg 0, same t = lr * steps)."""
    spec = _spec(64)
    n = len(X)
    params = nc.init_params(spec, 3, 1, dtype=np.float64)
    theta = nc.empirical_ntk(spec, params, X)
    theta_tx = nc.empirical_ntk(spec, params, XT, X)
    f0, f0t = (np.asarray(nc.apply(spec, params, z))[:, 0] for z in (X, XT))
    lr, steps = 1e-3, 2000
    run = nc.train(spec, X, Y, XT, YT, lr=lr, steps=steps, seeds=[3], record_every=500,
                   dtype=np.float64, linearized=True)
    # discrete closed form on the training points, every record
    step_matrix = np.eye(n) - lr * theta / n
    for k, s in enumerate(run.steps):
        want = Y + np.linalg.matrix_power(step_matrix, int(s)) @ (f0 - Y)
        np.testing.assert_allclose(run.train_predictions[0, k], want, rtol=0, atol=1e-10)
    # continuous closed form (gradient flow) on the test grid
    gp = nc.ntk_gp_posterior(nc.GPKernels(ntk_train_train=theta, ntk_test_train=theta_tx), Y, t=run.times,
                             diag_reg=0.0, fx_train_0=f0, fx_test_0=f0t)
    assert np.max(np.abs(run.predictions[0] - gp.mean)) < 2e-3 * np.max(np.abs(gp.mean))
    np.testing.assert_allclose(run.times, lr * run.steps)


@pytest.mark.slow
def test_pair_network_matches_nc_train():
    """train_pair's nonlinear network is the network nc.train trains (same init, data, lr)."""
    spec = _spec(32, depth=2)
    pair = nc.train_pair(spec, 1, X, Y, XT, lr=0.3, steps=200, record_every=50, dtype=np.float64)
    run = nc.train(spec, X, Y, XT, YT, lr=0.3, steps=200, seeds=[1], record_every=50, dtype=np.float64)
    np.testing.assert_allclose(pair.net_test, run.predictions[0], atol=1e-9)
    lin = nc.train(spec, X, Y, XT, YT, lr=0.3, steps=200, seeds=[1], record_every=50, dtype=np.float64,
                   linearized=True)
    np.testing.assert_allclose(pair.lin_test, lin.predictions[0], atol=1e-9)
    assert pair.sup_distance[0] == 0.0 and pair.sup_distance[-1] > 0


def _dense_hessians(spec, params, x):
    from jax.flatten_util import ravel_pytree
    from ntk_core._finite import forward

    flat, unravel = ravel_pytree(params)
    return np.asarray(jax.hessian(lambda p: forward(spec, unravel(p), x)[:, 0])(flat))


@pytest.mark.slow
def test_hessian_norm_matches_dense_hessian():
    """||D^2 f||: one point -> max |eig| of the dense Hessian; two points -> max over the unit circle of
    c of max |eig(c1 H1 + c2 H2)| (dense, grid + refinement). The Lanczos path runs (P > 64)."""
    from scipy.optimize import minimize_scalar

    spec = _spec(30)
    params = nc.init_params(spec, 0, 1, dtype=np.float64)
    assert nc.count_params(spec, 1) > 64
    x1 = X[:1]
    h = _dense_hessians(spec, params, x1)[0]
    got, _ = nc.hessian_norm(spec, params, x1)
    want = np.max(np.abs(np.linalg.eigvalsh(h)))
    assert abs(got - want) <= 1e-6 * want
    x2 = X[:2]
    hs = _dense_hessians(spec, params, x2)

    def norm_at(a):
        return np.max(np.abs(np.linalg.eigvalsh(np.cos(a) * hs[0] + np.sin(a) * hs[1])))

    grid = np.linspace(0, np.pi, 721)
    a0 = grid[np.argmax([norm_at(a) for a in grid])]
    best = minimize_scalar(lambda a: -norm_at(a), bounds=(a0 - 0.01, a0 + 0.01), method="bounded",
                           options={"xatol": 1e-12})
    want2 = max(-best.fun, norm_at(a0))
    got2, c = nc.hessian_norm(spec, params, x2, direction=[1.0, 0.3])
    assert abs(got2 - want2) <= 1e-6 * want2
    assert abs(np.linalg.norm(c) - 1) < 1e-12


def test_relative_scale_parts():
    spec = _spec(40)
    params = nc.init_params(spec, 0, 1, dtype=np.float64)
    rs = nc.relative_scale(spec, params, X, Y)
    f0 = np.asarray(nc.apply(spec, params, X))[:, 0]
    assert rs.residual_norm == pytest.approx(np.linalg.norm(f0 - Y), rel=1e-12)
    assert rs.jacobian_norm_sq == pytest.approx(np.linalg.eigvalsh(nc.empirical_ntk(spec, params, X))[-1],
                                                rel=1e-10)
    assert rs.kappa == pytest.approx(rs.residual_norm * rs.hessian_norm / rs.jacobian_norm_sq)


def test_gd_stability_boundary_on_the_linearised_model():
    """GD on f_lin is stable iff lr < 2 / lambda_max with lambda_max = lambda_max(Theta)/n."""
    spec = _spec(64)
    params = nc.init_params(spec, 0, 1, dtype=np.float64)
    lam = nc.lambda_max(spec, params, X)
    assert lam == pytest.approx(np.linalg.eigvalsh(nc.empirical_ntk(spec, params, X))[-1] / len(X))
    below = nc.train(spec, X, Y, XT, YT, lr=0.98 * 2 / lam, steps=3000, seeds=[0], dtype=np.float64,
                     linearized=True)
    assert below.train_loss[0, -1] < 1e-2 * below.train_loss[0, 0]
    assert not below.diverged[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        above = nc.train(spec, X, Y, XT, YT, lr=1.02 * 2 / lam, steps=3000, seeds=[0], dtype=np.float64,
                         linearized=True)
    assert above.diverged[0] and above.train_loss[0, -1] > 10 * above.train_loss[0, 0]
    np.testing.assert_allclose(above.lr_critical, 2 / lam)


def test_linearized_rejects_minibatches():
    with pytest.raises(ValueError, match="batch_size"):
        nc.train(_spec(8), X, Y, XT, YT, lr=0.1, steps=5, batch_size=2, linearized=True)


@pytest.mark.slow
def test_standard_parameterization_same_function_other_kernel():
    """At initialisation the standard parameterization computes the same function (the scales move
    into the weights); its NTK grows with the width. Both NTK paths agree on it."""
    ntk, std = _spec(256, depth=2), _spec(256, depth=2, parameterization="standard")
    p_ntk, p_std = (nc.init_params(s, 5, 1, dtype=np.float64) for s in (ntk, std))
    np.testing.assert_allclose(nc.apply(std, p_std, X), nc.apply(ntk, p_ntk, X), rtol=1e-10)
    k_layers = nc.empirical_ntk(std, p_std, X, method="layers")
    np.testing.assert_allclose(k_layers, nc.empirical_ntk(std, p_std, X, method="jacobian"), rtol=1e-9)
    assert np.trace(k_layers) > 20 * np.trace(nc.empirical_ntk(ntk, p_ntk, X))
    with pytest.raises(ValueError, match="parameterization"):
        nc.MLP(parameterization="mean_field")
    run = nc.train(std, X, Y, XT, YT, lr=0.5 * 2 / nc.lambda_max(std, p_std, X), steps=50, seeds=[5],
                   dtype=np.float64)
    pair = nc.train_pair(std, 5, X, Y, XT, lr=float(run.lr), steps=50, dtype=np.float64)
    np.testing.assert_allclose(pair.net_test[-1], run.predictions[0, -1], atol=1e-9)


def test_catapult_run_phases():
    spec = _spec(512)
    lazy = nc.catapult_run(spec, 0, X, Y, lr_multiple=0.5, steps=200)
    assert lazy.phase == "lazy" and lazy.loss[-1] < lazy.loss[0]
    assert lazy.lambda_max[0] == pytest.approx(lazy.lambda_0)
    assert lazy.lr == pytest.approx(0.5 * 2 / lazy.lambda_0)
    far = nc.catapult_run(spec, 0, X, Y, lr_multiple=5.0, steps=200)
    assert far.phase == "diverged" and far.diverged


@pytest.mark.slow
def test_laziness_falls_with_width():
    """NTK parameterization, one hidden layer: the relative parameter change falls like m^-1/2 and
    sup |f - f_lin| after training falls at least that fast (fitted slopes over widths 64 .. 4,096, 2
    seeds). m^-1/2 is Lee et al. 2019's bound; the computation gives about m^-1 for the distance (and the
    kernel change), the rate of Dyer & Gur-Ari 2019 for the change during training."""
    widths = [64, 256, 1024, 4096]
    pts = [[nc.laziness_point(_spec(w), s, X, Y, XT, steps=300, lr=0.5) for s in range(2)] for w in widths]
    dist = np.array([[p.distance for p in row] for row in pts])
    par = np.array([[p.parameter_change for p in row] for row in pts])
    ker = np.array([[p.kernel_change for p in row] for row in pts])
    s_dist = nc.fit_loglog_slope(widths, dist).slope
    s_par = nc.fit_loglog_slope(widths, par).slope
    print(f"slopes: distance {s_dist:.3f}, parameters {s_par:.3f}, kernel "
          f"{nc.fit_loglog_slope(widths, ker).slope:.3f}")
    assert -1.25 <= s_dist <= -0.25
    assert -0.6 <= s_par <= -0.4
