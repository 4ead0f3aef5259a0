"""Kernel convergence with width (ntk_core/_convergence.py): Jacot et al. 2018 Figs 1-2, Arora et al."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_core as nc
from ntk_core import _convergence as cv
from ntk_core import _gd
from ntk_core._finite import forward

RELU = dict(depth=3, w_std=1.0, b_std=0.1, activation="relu")


def spec(width, **kw):
    return nc.MLP(width=width, **{**RELU, **kw})


def _plain_gd(spec, lr, steps, params, x, y):
    """Textbook full-batch GD with jax.grad: (params, per-step losses, final loss)."""
    def loss(p):
        return 0.5 * jnp.mean((forward(spec, p, x)[:, 0] - y) ** 2)

    losses = []
    for _ in range(steps):
        value, g = jax.value_and_grad(loss)(params)
        losses.append(float(value))
        params = jax.tree_util.tree_map(lambda a, b: a - lr * b, params, g)
    return params, np.array(losses), float(loss(params))


def test_circle_points_and_target():
    g, x = nc.circle_points(5)
    np.testing.assert_allclose(g, [-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi])
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0)
    np.testing.assert_allclose(nc.product_target(np.array([[2.0, 3.0], [-1.0, 0.5]])), [6.0, -0.5])
    xt, yt = nc.gaussian_training_set(7, seed=1)
    assert xt.shape == (7, 2)
    np.testing.assert_allclose(yt, xt[:, 0] * xt[:, 1])


def test_fast_init_layout_matches_init_params():
    s = spec(16)
    a = cv.fast_init_params(s, 0, 2)
    b = nc.init_params(s, 0, 2)
    assert [(p["w"].shape, p["b"].shape) for p in a] == [(p["w"].shape, p["b"].shape) for p in b]
    assert a[1]["w"].dtype == jnp.float32
    # same seed, same params; different seeds differ
    np.testing.assert_array_equal(a[1]["w"], cv.fast_init_params(s, 0, 2)[1]["w"])
    assert not np.allclose(a[1]["w"], cv.fast_init_params(s, 1, 2)[1]["w"])


def test_full_batch_gd_matches_textbook_gradient_steps():
    """_gd.full_batch_gd (jax.grad path at width 8) against a plain Python loop of jax.grad."""
    s = spec(8)
    x, y = nc.gaussian_training_set(5)
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    assert _gd.window_size(s, 3, 5) == 0
    p, losses, last = _plain_gd(s, 0.5, 3, cv.fast_init_params(s, 3, 2), x, y)
    got, first, final, alive = _gd.full_batch_gd(s, 0.5, 3, cv.fast_init_params(s, 3, 2), x, y)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(p)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first, losses[0], rtol=1e-6)
    np.testing.assert_allclose(final, last, rtol=1e-6)
    assert bool(alive)


def test_finite_kernel_pair_init_is_empirical_ntk_and_training_moves_it():
    s = spec(64)
    _, x = nc.circle_points(9)
    xt, yt = nc.gaussian_training_set(6)
    pair = nc.finite_kernel_pair(s, 2, x[:1], x, xt, yt, steps=30, lr=1.0)
    params = cv.fast_init_params(s, 2, 2)
    np.testing.assert_allclose(pair.init, nc.empirical_ntk(s, params, x[:1], x), rtol=1e-5)
    assert pair.trained.shape == (1, 9) and pair.loss.shape == (2,)
    assert pair.loss[-1] < pair.loss[0]
    assert np.max(np.abs(pair.trained - pair.init)) > 1e-4
    assert nc.finite_kernel_pair(s, 2, x[:1], x).trained is None


def test_kernel_vs_angle_close_to_infinite_and_narrow_moves_more():
    res = nc.kernel_vs_angle(spec(32), widths=[32, 1024], n_seeds=3, n_angles=17, steps=40,
                             lr=1.0, n_train=6)
    assert res.init.shape == (2, 3, 17) and res.trained.shape == (2, 3, 17)
    inf = res.infinite
    # Theta_inf(x0, x0) from the infinite_kernels diagonal at g = 0
    np.testing.assert_allclose(inf[8], nc.infinite_kernels(spec(1), np.array([[1.0, 0.0]])).ntk[0, 0])
    spread = np.abs(res.init - inf).mean(axis=(1, 2))
    moved = np.abs(res.trained - res.init).mean(axis=(1, 2))
    assert spread[1] < spread[0] / 2          # 32x wider: error ~ 1/sqrt(32) smaller
    assert moved[1] < moved[0] / 2            # wide nets move less during training
    assert np.max(np.abs(res.init[1].mean(0) - inf)) / inf.max() < 0.1


def test_relative_frobenius_and_slope_fit():
    assert nc.relative_frobenius([[2.0, 0.0], [0.0, 2.0]], np.eye(2)) == pytest.approx(1.0)
    m = np.array([10.0, 100.0, 1000.0])
    fit = nc.fit_loglog_slope(m, 3.0 * m ** -0.5)
    assert fit.slope == pytest.approx(-0.5) and fit.predict([10000.0])[0] == pytest.approx(0.03)
    with pytest.raises(ValueError, match="positive"):
        nc.fit_loglog_slope(m, [1.0, 0.0, 1.0])


def test_relu_init_slope_64_to_4096():
    """The issue's claim: at initialisation, ReLU, widths 64 .. 4,096, fitted slope in [-0.65, -0.35]."""
    widths = [64, 128, 256, 512, 1024, 2048, 4096]
    sw = nc.convergence_sweep(spec(64), widths, n_seeds=3, n_points=16)
    assert -0.65 <= sw.fit_init.slope <= -0.35, sw.fit_init
    assert sw.errors_init.shape == (7, 3) and sw.errors_trained is None
    assert sw.errors_init[-1].mean() < sw.errors_init[0].mean() / 4


def test_sweep_after_training_and_slope_erf():
    sw = nc.convergence_sweep(spec(8, activation="erf", w_std=1.5), [32, 128, 512], n_seeds=2,
                              n_points=8, steps=20, lr=0.5, n_train=5)
    assert sw.errors_trained.shape == (3, 2)
    assert sw.fit_trained.slope < -0.2 and sw.fit_init.slope < -0.2


def test_function_percentiles_against_ntk_gp():
    res = nc.function_percentiles(spec(8), widths=(64, 512), n_seeds=10, n_points=4, steps=150,
                                  n_angles=33)
    assert res.finite.shape == (2, 3, 33) and res.gp.shape == (3, 33)
    assert np.all(res.finite[:, 0] <= res.finite[:, 1]) and np.all(res.finite[:, 1] <= res.finite[:, 2])
    # training points are fitted by the GP median (ntk_gp at large t interpolates)
    g_idx = [np.argmin(np.abs(res.angles - a)) for a in res.train_angles]
    assert np.allclose(res.gp[1, g_idx], nc.product_target(np.stack(
        [np.cos(res.angles[g_idx]), np.sin(res.angles[g_idx])], 1)), atol=0.15)
    # the wider network's median is closer to the GP median
    err = np.abs(res.finite[:, 1] - res.gp[1]).mean(axis=1)
    assert err[1] < err[0] + 0.02


@pytest.mark.parametrize("call, field", [
    (lambda: nc.circle_points(1), "n_angles"),
    (lambda: nc.kernel_vs_angle(spec(8), widths=[], n_seeds=1), "widths"),
    (lambda: nc.kernel_vs_angle(spec(8), widths=[8], n_seeds=0), "n_seeds"),
    (lambda: nc.kernel_vs_angle(spec(8), widths=[10**6], n_seeds=1), "widths"),
    (lambda: nc.kernel_vs_angle(spec(8), widths=[8], n_seeds=1, lr=-1.0), "lr"),
    (lambda: nc.convergence_sweep(spec(8), widths=[8], n_seeds=1), "widths"),
    (lambda: nc.gaussian_training_set(0), "n_train"),
    (lambda: nc.finite_kernel_pair(spec(8), 0, [[1.0, 0.0]], [[1.0, 0.0]], steps=5), "x_train"),
])
def test_errors_name_the_field(call, field):
    with pytest.raises(ValueError, match=field):
        call()


def test_divergence_is_reported():
    xt, yt = nc.gaussian_training_set(4)
    with pytest.raises(ValueError, match="lr"):
        nc.finite_kernel_pair(spec(16), 0, [[1.0, 0.0]], [[1.0, 0.0]], xt, yt, steps=50, lr=500.0)


def test_estimate_grows_with_width_and_steps():
    a = nc.estimate_seconds(3, [500], 10, 122, 0)
    b = nc.estimate_seconds(3, [500, 10_000], 10, 122, 200)
    assert 0 < a < 5 < b


def test_fast_init_draws_standard_normals_in_independent_pieces():
    w = np.asarray(cv.fast_init_params(spec(2048), 5, 2)[1]["w"], np.float64)   # 2 row blocks
    assert abs(w.mean()) < 3e-3 and abs(w.std() - 1.0) < 3e-3
    half = w.shape[0] // 2
    assert abs(np.corrcoef(w[:half].ravel()[:100_000], w[half:].ravel()[:100_000])[0, 1]) < 0.02
    np.testing.assert_array_equal(w, np.asarray(cv.fast_init_params(spec(2048), 5, 2)[1]["w"]))


def test_deferred_gd_matches_plain_gd():
    """The page's GD (deferred low-rank updates) takes the same steps as jax.grad GD."""
    s = spec(64)
    xt, yt = cv.gaussian_training_set(4)
    xt, yt = jnp.asarray(xt, jnp.float32), jnp.asarray(yt, jnp.float32)
    assert _gd.window_size(s, 20, 4) >= 2
    plain, losses, last = _plain_gd(s, 0.5, 20, cv.fast_init_params(s, 3, 2), xt, yt)
    deferred, loss = cv._train_gd(s, 0.5, 20, cv.fast_init_params(s, 3, 2), xt, yt)
    np.testing.assert_allclose(loss, [float(losses[0]), float(last)], rtol=1e-5)
    for a, b in zip(plain, deferred):
        np.testing.assert_allclose(np.asarray(b["w"]), np.asarray(a["w"]), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(b["b"]), np.asarray(a["b"]), rtol=1e-4, atol=1e-5)
