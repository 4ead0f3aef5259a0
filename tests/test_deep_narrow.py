"""Deep narrow networks (Lee, Choi, Ryu, No, ICML 2022; seed 000): initialisation, NTK against
autodiff, the derived L -> infinity limit, Kaiming's collapse, training."""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_core as nc
from ntk_core import _deep_narrow as dn


def _x(n, d, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, d))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_special_init_output_is_exactly_zero_and_copies_carry_CL_x(dtype):
    spec = nc.DeepNarrowMLP(depth=7, d_in=3, d_out=2, C_L=37.5, rho=1.3, beta=0.7)
    params = nc.init_params(spec, 3, 3, dtype=dtype)
    x = _x(6, 3).astype(dtype)
    assert np.all(np.asarray(nc.apply(spec, params, x)) == 0.0)
    inputs, deltas = jax.jit(dn._mlp_layers)(params, jnp.asarray(x))
    hidden = np.asarray(inputs[1:])                      # h^1 .. h^{L-1}
    assert hidden.shape == (6, 6, 6)
    np.testing.assert_array_equal(hidden[:, :, :3], np.broadcast_to(np.asarray(37.5 * x, dtype), (6, 6, 3)))
    assert np.all(hidden[:, :, 4:] == 37.5)              # accumulators hold C_L
    # only the accumulators carry a gradient at the special init (the limit's derivation)
    d = np.asarray(deltas)[:-1]                          # layers 1 .. L-1 (layer L's is e_k itself)
    assert np.all(d[:, :, :, :4] == 0)
    np.testing.assert_array_equal(d[:, :, :, 4:], np.broadcast_to(np.eye(2), (6, 6, 2, 2)))


def test_special_init_weights_follow_the_paper():
    spec = nc.DeepNarrowMLP(depth=5, d_in=3, d_out=2, C_L=10.0)
    p = jax.tree_util.tree_map(np.asarray, nc.init_params(spec, 0, 3, dtype=jnp.float64))
    np.testing.assert_array_equal(p["w_in"][:3], 10.0 * np.eye(3))
    assert np.all(p["w_in"][4:] == 0) and np.all(p["b_in"][4:] == 10.0) and np.all(p["b_in"][:3] == 0)
    assert np.all(p["w"][:, 3, 3:] == 0)                  # the random neuron reads only the copies
    assert np.all(p["w"][:, :, 3] == 0)                   # and nobody reads it
    np.testing.assert_array_equal(p["w_out"], np.hstack([np.zeros((2, 4)), np.eye(2)]))
    np.testing.assert_array_equal(p["b_out"], [-10.0, -10.0])


def test_cnn_special_init_output_is_exactly_zero_and_copies():
    spec = nc.DeepNarrowCNN(depth=6, c_in=1, d_out=3, C_L=5.0)
    x = _x(4 * 36, 1).reshape(4, 6, 6, 1).astype(np.float32)
    params = nc.init_params(spec, 1, (6, 6, 1))
    assert np.all(np.asarray(nc.apply(spec, params, x)) == 0.0)
    h = jax.nn.relu(dn._conv(jnp.asarray(x), params["w_in"]) + params["b_in"])
    np.testing.assert_array_equal(np.asarray(h[..., 0]), 5.0 * x[..., 0])
    assert np.all(np.asarray(h[..., 2:]) == 5.0)


def test_negative_inputs_and_bad_specs_are_value_errors():
    spec = nc.DeepNarrowMLP(depth=3, d_in=2)
    params = nc.init_params(spec, 0, 2)
    with pytest.raises(ValueError, match="nonnegative"):
        nc.apply(spec, params, np.array([[0.5, -0.1]]))
    with pytest.raises(ValueError, match="nonnegative"):
        nc.empirical_ntk(spec, params, np.array([[0.5, -0.1]]))
    with pytest.raises(ValueError, match="depth"):
        nc.DeepNarrowMLP(depth=1, d_in=2)
    with pytest.raises(ValueError, match="C_L"):
        nc.DeepNarrowMLP(depth=3, d_in=2, C_L=0.0)
    with pytest.raises(ValueError, match="init"):
        nc.DeepNarrowMLP(depth=3, d_in=2, init="xavier")
    with pytest.raises(ValueError, match="parameters"):
        nc.init_params(nc.DeepNarrowMLP(depth=100_000, d_in=64, d_out=10), 0, 64)


@pytest.mark.slow
@pytest.mark.parametrize("init", ["special", "kaiming"])
def test_layerwise_ntk_equals_jacobian_product(init):
    """Theta = J J^T with J from jax.jacrev over every weight and bias (independent of the layer-wise
    formula), also after the parameters moved (the random neuron then gets a gradient)."""
    spec = nc.DeepNarrowMLP(depth=6, d_in=3, d_out=2, C_L=4.0, init=init)
    params = nc.init_params(spec, 2, 3, dtype=jnp.float64)
    key = jax.random.PRNGKey(5)
    moved = jax.tree_util.tree_map(lambda a: a + 0.3 * jax.random.normal(key, a.shape, a.dtype), params)
    x1, x2 = _x(5, 3, 1), _x(4, 3, 2)
    for p in (params, moved):
        got = nc.empirical_ntk(spec, p, x1, x2)
        j1 = jax.jacrev(lambda q: dn.forward(spec, q, jnp.asarray(x1)))(p)
        j2 = jax.jacrev(lambda q: dn.forward(spec, q, jnp.asarray(x2)))(p)
        want = sum(np.einsum("akp,bjp->abkj", np.asarray(a).reshape(5, 2, -1), np.asarray(b).reshape(4, 2, -1))
                   for a, b in zip(jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2)))
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-9 * np.abs(want).max())
    # d_out = 1 gives (n1, n2), symmetric for x2 = None
    s1 = nc.DeepNarrowMLP(depth=4, d_in=3, d_out=1, init=init)
    k = nc.empirical_ntk(s1, nc.init_params(s1, 0, 3, dtype=jnp.float64), x1)
    assert k.shape == (5, 5)
    np.testing.assert_allclose(k, k.T, rtol=1e-12)


@pytest.mark.slow
def test_cnn_ntk_matches_a_jacobian_with_finite_differences():
    """CNN NTK (Jacobian contraction) against directional finite differences of f."""
    spec = nc.DeepNarrowCNN(depth=3, c_in=1, d_out=1, C_L=2.0)
    x = _x(2 * 16, 1).reshape(2, 4, 4, 1)
    p = nc.init_params(spec, 0, (4, 4, 1), dtype=jnp.float64)
    theta = nc.empirical_ntk(spec, p, x)
    g = jax.grad(lambda q: dn.forward(spec, q, jnp.asarray(x[:1]))[0, 0])(p)
    eps = 1e-6
    plus = jax.tree_util.tree_map(lambda a, b: a + eps * b, p, g)
    minus = jax.tree_util.tree_map(lambda a, b: a - eps * b, p, g)
    fd = (np.asarray(dn.forward(spec, plus, jnp.asarray(x))) - np.asarray(dn.forward(spec, minus, jnp.asarray(x)))) / (2 * eps)
    np.testing.assert_allclose(theta[0], fd[:, 0], rtol=1e-5)


def test_relu_gaussian_kernel_against_monte_carlo():
    rng = np.random.default_rng(0)
    cov = np.array([[2.0, 0.7], [0.7, 0.5]])
    g = rng.multivariate_normal([0, 0], cov, size=2_000_000)
    mc = np.mean(np.maximum(g[:, 0], 0) * np.maximum(g[:, 1], 0))
    assert abs(nc.relu_gaussian_kernel(2.0, 0.5, 0.7) - mc) < 3e-3
    assert abs(nc.relu_gaussian_kernel(2.0, 2.0, 2.0) - 1.0) < 1e-12   # E[ReLU(u)^2] = var / 2


def test_finite_depth_kernel_at_init_matches_the_derivation():
    """The exact finite-L sum of the limit's derivation, from the initial parameters."""
    spec = nc.DeepNarrowMLP(depth=9, d_in=2, d_out=3, C_L=6.0, rho=0.8, beta=1.2)
    p = jax.tree_util.tree_map(np.asarray, nc.init_params(spec, 4, 2, dtype=jnp.float64))
    x1, x2 = _x(3, 2, 3), _x(4, 2, 4)

    def r(x):  # the random neuron of layers 1 .. L-1
        first = np.maximum(x @ p["w_in"][2] + p["b_in"][2], 0)
        mid = np.maximum(6.0 * x @ p["w"][:, 2, :2].T + p["b"][:, 2], 0)
        return np.column_stack([first, mid])

    dot = x1 @ x2.T
    want = dot + 1 + (spec.depth - 1) * (36 * dot + 3 * 36 + 1) + r(x1) @ r(x2).T
    got = nc.empirical_ntk(spec, p, x1, x2)
    np.testing.assert_allclose(got[:, :, 1, 1], want, rtol=1e-12)
    np.testing.assert_allclose(got[:, :, 0, 2], 0.0, atol=1e-9)


@pytest.mark.slow
def test_scaled_ntk_approaches_the_limit_as_depth_grows():
    """Quarter-circle kernel row at init: error at L = 1,000 well below L = 10; rate printed."""
    spec = nc.DeepNarrowMLP(depth=10, d_in=2, d_out=1, C_L=50.0)
    depths = [10, 100, 1000]
    start = time.perf_counter()
    err = nc.limit_distances(spec, depths, seeds=range(4))
    fit = nc.fit_loglog_slope(depths, err)
    print(f"relative distance to the limit: {dict(zip(depths, err.mean(1).round(4)))}, "
          f"fitted rate L^{fit.slope:.2f} ({time.perf_counter() - start:.1f} s)")
    assert err[2].mean() < 0.25 * err[0].mean()
    assert -0.8 < fit.slope < -0.3          # the O(L^-1/2) law of large numbers of the derivation


@pytest.mark.slow
def test_kaiming_output_collapses_with_depth():
    """Kaiming-initialised width-75 nets on digits: the output scale shrinks by orders of magnitude
    between depth 10 and 1,000 (what the page says), so the gradients vanish."""
    x = nc.digits_onehot(360)[0][:64]
    rms = {}
    for L in (10, 1000):
        spec = nc.DeepNarrowMLP(depth=L, d_in=64, d_out=10, init="kaiming")
        rms[L] = np.median([np.sqrt(np.mean(np.asarray(nc.apply(spec, nc.init_params(spec, s, 64), x)) ** 2))
                            for s in range(3)])
    print(f"Kaiming output rms: {rms}")
    assert rms[1000] < 1e-3 * rms[10]


@pytest.mark.slow
def test_training_special_learns_and_kaiming_deep_does_not():
    """Small setting (depth 100, 300 digits, 30 GD steps; ~60 s loaded): the special init (f = 0 at
    the start) goes well below the best constant predictor's loss and above chance accuracy; the
    Kaiming net of the same shape does neither (it diverges at lr 1)."""
    x, y, xt, yt = nc.digits_onehot(100)
    x, y = x[:300], y[:300]
    const = float(np.mean((y - y.mean(0)) ** 2))
    special = nc.DeepNarrowMLP(depth=100, d_in=64, d_out=10, C_L=1.0)
    lr = 0.5 * nc.critical_lr(special, x)
    run = nc.train(special, x, y, xt, yt, lr=lr, steps=30, seeds=[0], record_every=10)
    assert isinstance(run, nc.DeepNarrowRun) and run.train_loss.shape == (1, 4)
    assert abs(run.train_loss[0, 0] - 0.1) < 1e-6            # f = 0 at init
    assert run.train_loss[0, -1] < 0.8 * const and run.test_accuracy[0, -1] > 0.5
    kaiming = nc.DeepNarrowMLP(depth=100, d_in=64, d_out=10, init="kaiming")
    for lr in (1e-3, 1.0):
        k = nc.train(kaiming, x, y, xt, yt, lr=lr, steps=30, seeds=[0], record_every=10)
        assert k.diverged[0] or (k.train_loss[0, -1] > 0.95 * const and k.test_accuracy[0, -1] < 0.25)


@pytest.mark.slow
def test_train_reports_divergence_as_nan():
    x, y, xt, yt = nc.digits_onehot(100)
    spec = nc.DeepNarrowMLP(depth=20, d_in=64, d_out=10, C_L=50.0)
    run = nc.train(spec, x[:200], y[:200], xt, yt, lr=1.0, steps=20, record_every=5)
    assert run.diverged[0] and np.isnan(run.train_loss[0, -1])


def test_limit_ntk_shape_and_symmetry():
    spec = nc.DeepNarrowMLP(depth=10, d_in=2)
    _, x = nc.quarter_circle_points()
    k = nc.deep_narrow_limit_ntk(spec, x)
    assert k.shape == (200, 200)
    np.testing.assert_allclose(k, k.T)
    assert np.all(np.linalg.eigvalsh(k) > -1e-9)
