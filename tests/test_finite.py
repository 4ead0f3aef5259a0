"""Finite networks: parameterization, forward pass, and the empirical NTK (per-layer and Jacobian paths)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import ntk_core as nc
from ntk_core._finite import forward


def _x(n, d, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


def _brute_force_ntk(spec, params, x1, x2):
    """Full flattened Jacobian J1 J2^T: independent of both library paths (tiny nets only)."""
    flat, unravel = ravel_pytree(params)

    def f(v, x):
        return forward(spec, unravel(v), jnp.asarray(x))[:, 0]

    j1 = jax.jacfwd(f)(flat, x1)
    j2 = jax.jacfwd(f)(flat, x2)
    return np.asarray(j1 @ j2.T)


def test_init_shapes_reproducible_and_standard_normal():
    spec = nc.MLP(depth=2, width=300, w_std=1.5, b_std=0.05, activation="erf")
    p = nc.init_params(spec, 7, 3, dtype=jnp.float64)
    assert [(q["w"].shape, q["b"].shape) for q in p] == [((3, 300), (300,)), ((300, 300), (300,)), ((300, 1), (1,))]
    q = nc.init_params(spec, 7, 3, dtype=jnp.float64)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(q)))
    w = np.asarray(p[1]["w"]).ravel()
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1.0) < 0.01       # N(0, 1): the scales live in apply
    assert nc.count_params(spec, 3) == 3 * 300 + 300 + 300 * 300 + 300 + 300 + 1


def test_apply_matches_the_written_out_parameterization():
    spec = nc.MLP(depth=2, width=17, w_std=1.3, b_std=0.2, activation="tanh")
    x = _x(5, 4)
    p = nc.init_params(spec, 1, 4, dtype=jnp.float64)
    a = x
    for layer in p[:-1]:
        a = np.tanh(1.3 / np.sqrt(a.shape[1]) * a @ np.asarray(layer["w"]) + 0.2 * np.asarray(layer["b"]))
    want = 1.3 / np.sqrt(17) * a @ np.asarray(p[-1]["w"]) + 0.2 * np.asarray(p[-1]["b"])
    got = nc.apply(spec, p, x)
    assert got.shape == (5, 1)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_output_variance_matches_nngp_monte_carlo():
    """Var over initialisations of f(x) -> NNGP (Lee et al. 2018): 400 nets of width 256."""
    spec = nc.MLP(depth=2, width=256, w_std=1.5, b_std=0.05, activation="erf")
    x = _x(3, 2, seed=3)
    keys = jax.random.split(jax.random.PRNGKey(0), 400)
    from ntk_core._finite import draw_params

    params = jax.vmap(lambda k: draw_params(spec, (2,), jnp.dtype(jnp.float64), k))(keys)
    f = np.asarray(jax.vmap(lambda p: forward(spec, p, jnp.asarray(x))[:, 0])(params))
    emp = f.T @ f / f.shape[0]
    nngp = nc.infinite_kernels(spec, x).nngp
    # sampling sd of a second moment with 400 draws is about sqrt(2/400) ~ 7 % of the diagonal
    assert np.max(np.abs(emp - nngp)) < 0.25 * np.max(np.diag(nngp))


@pytest.mark.parametrize("activation", ["erf", "relu", "tanh", "gelu"])
def test_layer_formula_equals_jacobian_paths(activation):
    spec = nc.MLP(depth=3, width=24, w_std=1.4, b_std=0.3, activation=activation)
    x1, x2 = _x(6, 3, 1), _x(4, 3, 2)
    p = nc.init_params(spec, 0, 3, dtype=jnp.float64)
    layers = nc.empirical_ntk(spec, p, x1, x2)
    jac = nc.empirical_ntk(spec, p, x1, x2, method="jacobian")
    brute = _brute_force_ntk(spec, p, x1, x2)
    assert layers.shape == (6, 4)
    np.testing.assert_allclose(layers, brute, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(jac, brute, rtol=1e-10, atol=1e-10)
    sym = nc.empirical_ntk(spec, p, x1)
    np.testing.assert_allclose(sym, sym.T, rtol=1e-12)
    assert np.linalg.eigvalsh(sym).min() > -1e-10


def test_layer_formula_matches_jacobian_to_1e6_in_float32_wide():
    spec = nc.MLP(depth=2, width=512, w_std=1.5, b_std=0.05, activation="erf")
    x = _x(10, 2).astype(np.float32)
    p = nc.init_params(spec, 2, 2, dtype=jnp.float64)
    a = nc.empirical_ntk(spec, p, x)
    b = nc.empirical_ntk(spec, p, x, method="jacobian")
    assert np.max(np.abs(a - b)) / np.max(np.abs(b)) < 1e-6


def test_depth_zero_is_the_linear_model():
    spec = nc.MLP(depth=0, width=5, w_std=2.0, b_std=0.5)
    x = _x(4, 3)
    p = nc.init_params(spec, 0, 3, dtype=jnp.float64)
    np.testing.assert_allclose(nc.empirical_ntk(spec, p, x), 4.0 / 3 * x @ x.T + 0.25, rtol=1e-12)


@pytest.mark.parametrize("readout", ["gap", "flatten"])
def test_cnn_apply_and_mean_empirical_ntk_approaches_infinite_cntk(readout):
    spec = nc.CNN(depth=2, channels=128, w_std=2**0.5, b_std=0.1, activation="relu", readout=readout)
    x = np.random.default_rng(0).standard_normal((3, 4, 4, 2))
    thetas = []
    for seed in range(6):
        p = nc.init_params(spec, seed, (4, 4, 2), dtype=jnp.float64)
        assert nc.apply(spec, p, x).shape == (3, 1)
        thetas.append(nc.empirical_ntk(spec, p, x))     # CNN -> Jacobian path
    mean = np.mean(thetas, axis=0)
    ref = nc.infinite_kernels(spec, x).ntk
    assert np.linalg.norm(mean - ref) / np.linalg.norm(ref) < 0.1
    with pytest.raises(ValueError, match="method='layers' needs an MLP"):
        nc.empirical_ntk(spec, p, x, method="layers")


def _relative_error(width, x, seeds, ref):
    spec = nc.MLP(depth=2, width=width, w_std=1.5, b_std=0.05, activation="erf")
    errs = []
    for s in seeds:
        theta = nc.empirical_ntk(spec, nc.init_params(spec, s, x.shape[1], dtype=jnp.float64), x)
        errs.append(np.linalg.norm(theta - ref) / np.linalg.norm(ref))
    return float(np.sqrt(np.mean(np.square(errs))))


@pytest.mark.slow
def test_empirical_ntk_converges_like_inverse_sqrt_width():
    """Arora et al. 2019: ||Theta_m - Theta_inf||_F / ||Theta_inf||_F = O(m^-1/2) at initialisation."""
    x = _x(8, 2, seed=5)
    ref = nc.infinite_kernels(nc.MLP(depth=2, width=1, w_std=1.5, b_std=0.05, activation="erf"), x).ntk
    widths = np.array([64, 256, 1024, 4096])
    errs = np.array([_relative_error(int(m), x, range(4), ref) for m in widths])
    assert np.all(np.diff(errs) < 0), errs
    slope = np.polyfit(np.log(widths), np.log(errs), 1)[0]
    assert -0.7 < slope < -0.3, (slope, errs)


def test_errors_name_the_field():
    spec = nc.MLP(depth=1, width=8)
    p = nc.init_params(spec, 0, 2)
    with pytest.raises(ValueError, match="spec"):
        nc.init_params("mlp", 0, 2)
    with pytest.raises(ValueError, match="input_dim"):
        nc.init_params(spec, 0, 0)
    with pytest.raises(ValueError, match="params do not match"):
        nc.apply(spec, p, _x(3, 5))
    with pytest.raises(ValueError, match="x1 must have shape"):
        nc.empirical_ntk(spec, p, np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="method"):
        nc.empirical_ntk(spec, p, _x(2, 2), method="magic")
    with pytest.raises(ValueError, match="parameters, more than the limit"):
        nc.init_params(nc.MLP(depth=10, width=10**5), 0, 2)
    with pytest.raises(ValueError, match="seed"):
        nc.init_params(spec, "zero", 2)
