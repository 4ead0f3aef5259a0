"""Infinite-width kernels against Neural Tangents' reference values, Monte Carlo, closed forms and
limits. Both engines (numba and jax) are checked wherever both apply."""
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.special

import ntk_core as nc
from ntk_core import _activations, _fast, _infinite

from conftest import REFERENCE_KERNELS

REFERENCE = REFERENCE_KERNELS
NAME = {"leaky_relu_0.1": "leaky_relu"}


@pytest.fixture(scope="module")
def reference():
    with open(REFERENCE) as f:
        return json.load(f)


def _rel_err(value, ref):
    ref = np.asarray(ref)
    return float(np.max(np.abs(np.asarray(value, np.float64) - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("engine", ["numba", "jax"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-7), (np.float32, 1e-5)])
def test_fully_connected_matches_reference(reference, engine, dtype, tol):
    x1 = np.asarray(reference["fc_inputs"]["x1"], dtype)
    x2 = np.asarray(reference["fc_inputs"]["x2"], dtype)
    assert len(reference["fc"]) >= 7
    for entry in reference["fc"]:
        spec = nc.MLP(depth=entry["n_hidden"], width=64, w_std=entry["w_std"], b_std=entry["b_std"],
                      activation=NAME.get(entry["activation"], entry["activation"]))
        k11 = nc.infinite_kernels(spec, x1, engine=engine)
        k12 = nc.infinite_kernels(spec, x1, x2, engine=engine)
        assert k11.ntk.dtype == dtype and k12.nngp.dtype == dtype
        for got, key in ((k11.nngp, "nngp_x1x1"), (k11.ntk, "ntk_x1x1"), (k12.nngp, "nngp_x1x2"), (k12.ntk, "ntk_x1x2")):
            assert _rel_err(got, entry[key]) <= tol, (entry["activation"], entry["n_hidden"], key)


@pytest.mark.parametrize("engine", ["numba", "jax"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-7), (np.float32, 1e-5)])
def test_convolutional_matches_reference(reference, engine, dtype, tol):
    images = np.asarray(reference["cnn_inputs"]["images_nhwc"], dtype)
    readouts = set()
    for entry in reference["cnn"]:
        spec = nc.CNN(depth=entry["n_hidden"], channels=16, w_std=entry["w_std"], b_std=entry["b_std"],
                      activation=NAME.get(entry["activation"], entry["activation"]), readout=entry["readout"])
        k = nc.infinite_kernels(spec, images, engine=engine)
        readouts.add(entry["readout"])
        for name in ("nngp", "ntk"):
            key = next(key for key in entry if key.startswith(name))
            assert _rel_err(getattr(k, name), entry[key]) <= tol, (entry, name)
    assert readouts == {"gap", "flatten"}


@pytest.mark.parametrize("activation", sorted(_fast.ACTIVATION_IDS))
def test_engines_agree(activation):
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal((9, 5)), rng.standard_normal((6, 5))
    x1[3] = 0.0  # zero-norm input
    x1[4] = x1[5]  # duplicate
    spec = nc.MLP(depth=4, w_std=1.3, b_std=0.2, activation=activation)
    for a, b in ((x1, None), (x1, x2)):
        fast = nc.infinite_kernels(spec, a, b, engine="numba")
        ref = nc.infinite_kernels(spec, a, b, engine="jax")
        np.testing.assert_allclose(fast.nngp, ref.nngp, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fast.ntk, ref.ntk, rtol=1e-10, atol=1e-12)
    imgs1, imgs2 = rng.standard_normal((3, 5, 4, 2)), rng.standard_normal((2, 5, 4, 2))
    for readout in ("gap", "flatten"):
        cnn = nc.CNN(depth=2, w_std=1.2, b_std=0.1, activation=activation, readout=readout)
        fast = nc.infinite_kernels(cnn, imgs1, imgs2, engine="numba")
        ref = nc.infinite_kernels(cnn, imgs1, imgs2, engine="jax")
        np.testing.assert_allclose(fast.ntk, ref.ntk, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fast.nngp, ref.nngp, rtol=1e-10, atol=1e-12)


def _arccos_and_sine(fn, ft):
    """fn(rho, ft) -> (arccos rho, sqrt(1 - rho^2)), compiled over an array as the kernels inline it."""
    from numba import njit

    @njit
    def both(rho):
        theta, sin_t = np.empty_like(rho), np.empty_like(rho)
        for k in range(rho.size):
            theta[k], sin_t[k] = fn(rho[k], ft)
        return theta, sin_t

    return both


def test_float64_arccos_and_sine_polynomials():
    """The compiled float64 arccos(rho) and sqrt(1 - rho^2) against 40-digit mpmath, on a grid
    with points within 1e-16 of +-1 and both sides of the branch point 1/2."""
    import mpmath

    both = _arccos_and_sine(_fast._acos_sin_f64, np.float64)
    near = np.logspace(-16, -1, 60)
    rho = np.concatenate([np.linspace(-1, 1, 2001), 1 - near, near - 1, [0.5, -0.5],
                          np.nextafter([0.5, -0.5], 0)])
    theta, sin_t = both(rho)
    mpmath.mp.dps = 40
    exact_theta = np.array([float(mpmath.acos(mpmath.mpf(r))) for r in rho])
    exact_sin = np.array([float(mpmath.sqrt(1 - mpmath.mpf(r) ** 2)) for r in rho])
    assert np.max(np.abs(theta - exact_theta) / np.maximum(exact_theta, 1e-300)) < 5e-16
    assert np.max(np.abs(sin_t - exact_sin) / np.maximum(exact_sin, 1e-300)) < 5e-16


@pytest.mark.parametrize("n", [1, 63, 64, 65, 130])
def test_mirror_fills_the_lower_triangle_from_the_upper(n):
    """Block edges: sizes below, at and above the 64-row tile."""
    rng = np.random.default_rng(n)
    a, b = rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n))
    upper_a, upper_b = np.triu(a), np.triu(b)
    _fast.mirror_lower_parallel(a, b)
    assert np.array_equal(a, upper_a + np.triu(upper_a, 1).T)
    assert np.array_equal(b, upper_b + np.triu(upper_b, 1).T)


def test_float32_arccos_and_sine_polynomials():
    """The compiled float32 kernels' arccos(rho) and sqrt(1 - rho^2), one square root between them,
    against float64 numpy on a dense grid with both ends and the branch point 1/2."""
    both = _arccos_and_sine(_fast._acos_sin_poly, np.float32)
    rho = np.concatenate([np.linspace(-1, 1, 200001), [-0.5, 0.5], np.nextafter(np.float32([0.5, -0.5]), 0)])
    rho = rho.astype(np.float32)
    theta, sin_t = both(rho)
    exact = rho.astype(np.float64)
    assert np.max(np.abs(theta - np.arccos(exact))) < 5e-7
    assert np.max(np.abs(sin_t - np.sqrt(1 - exact**2))) < 3e-7
    assert theta[0] == np.float32(np.pi) and sin_t[0] == 0 and theta[200000] == 0 and sin_t[200000] == 0


@pytest.mark.parametrize("activation,depth", [("relu", 3), ("erf", 0), ("tanh", 3), ("softplus", 2)])
def test_kernel_diagonals_are_the_full_kernels_diagonal(activation, depth):
    """infinite_kernel_diagonals runs the variance recursion alone; it must give the diagonal of
    the full kernels, within the quadrature bounds of both (tanh, softplus: 1-D against 2-D rules)."""
    x = np.random.default_rng(3).standard_normal((7, 3)) * 1.5
    spec = nc.MLP(depth=depth, w_std=2.0, b_std=0.3, activation=activation)
    full = nc.infinite_kernels(spec, x)
    diag = nc.infinite_kernel_diagonals(spec, x)
    assert diag.nngp.shape == diag.ntk.shape == (7,)
    slack = full.dual_error_bound + diag.dual_error_bound + 1e-13 * np.max(full.ntk)
    assert np.max(np.abs(diag.nngp - np.diag(full.nngp))) <= slack
    assert np.max(np.abs(diag.ntk - np.diag(full.ntk))) <= slack
    closed = _activations.is_closed_form(activation) or depth == 0
    assert (diag.dual_error_bound == 0.0) == closed
    if activation == "softplus":
        return  # the CNN path is the same code for every quadrature activation: tanh covers it
    cnn = nc.CNN(depth=1, w_std=1.5, b_std=0.1, activation=activation, readout="gap")
    images = x[:3, :3].reshape(3, 3, 1, 1) * np.ones((1, 1, 2, 1))
    np.testing.assert_allclose(nc.infinite_kernel_diagonals(cnn, images).ntk,
                               np.diag(nc.infinite_kernels(cnn, images).ntk), rtol=1e-12)


def test_symmetric_call_equals_explicit_pair():
    x = np.random.default_rng(0).standard_normal((300, 4))  # several tiles / row blocks
    spec = nc.MLP(depth=3, activation="relu", w_std=1.4, b_std=0.1)
    a = nc.infinite_kernels(spec, x)
    b = nc.infinite_kernels(spec, x, x)
    np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-12)
    np.testing.assert_allclose(a.ntk, a.ntk.T, rtol=0, atol=0)


def test_a_new_depth_reuses_the_compiled_quadrature_recursion():
    """The quadrature path takes the depth as data (layer axes padded to `_layer_slots`): a depth
    slider move on the finite page with tanh took ~10 s of compiling before. Depths 2, 3 and 5
    share one compiled recursion, and depth 0 (nothing padded to copy) still works."""
    x = np.linspace(0.0, 1.0, 6)[:, None]  # 1-D inputs: the 2-D quadrature, not the Mehler series
    compiled = (_infinite._mlp_tiles_quadrature, _infinite._mlp_diagonal_slots, _infinite._layer_moments)

    def kernels(depth):
        return nc.infinite_kernels(nc.MLP(depth=depth, w_std=1.3, b_std=0.2, activation="tanh"), x)

    kernels(2)
    sizes = [f._cache_size() for f in compiled]
    deeper = kernels(5)
    kernels(3)
    assert [f._cache_size() for f in compiled] == sizes
    assert _infinite._layer_slots(5) == _infinite._layer_slots(2) < _infinite._layer_slots(9)
    # the padded recursion stops at the depth: the variance recursion q <- w^2 E[tanh(sqrt(q) z)^2]
    # + b^2, five times, by Gauss-Hermite (q < 2 here: converged to ~1e-13)
    z, w = np.polynomial.hermite_e.hermegauss(200)
    q = 1.3**2 * x[:, 0] ** 2 + 0.2**2
    for _ in range(5):
        q = 1.3**2 * (np.tanh(np.sqrt(q)[:, None] * z) ** 2 @ w) / math.sqrt(2 * math.pi) + 0.2**2
    np.testing.assert_allclose(np.diag(deeper.nngp), q, rtol=1e-10)
    np.testing.assert_allclose(kernels(0).ntk, 1.3**2 * x @ x.T + 0.2**2, rtol=1e-12)


def test_a_new_cnn_depth_reuses_the_compiled_recursion():
    """The same for the CNN recursion of the JAX path (quadrature activations on the image page):
    depths 2 and 3 share the compiled functions, and a depth's kernels are the deeper network's
    kernels cut after that layer (`infinite_kernels_by_depth`), so the padding changes nothing."""
    x = np.random.default_rng(3).standard_normal((3, 4, 4, 1))
    compiled = (_infinite._cnn_pairs, _infinite._cnn_diagonal_slots)

    def kernels(depth):
        return nc.infinite_kernels(nc.CNN(depth=depth, w_std=1.3, b_std=0.2, activation="tanh",
                                          readout="flatten"), x)

    k2 = kernels(2)
    sizes = [f._cache_size() for f in compiled]
    kernels(3)
    assert [f._cache_size() for f in compiled] == sizes
    by_depth = nc.infinite_kernels_by_depth(nc.CNN(depth=5, w_std=1.3, b_std=0.2, activation="tanh",
                                                   readout="flatten"), x)
    np.testing.assert_allclose(by_depth[2].ntk, k2.ntk, rtol=1e-12)
    assert not np.allclose(by_depth[3].ntk, k2.ntk, rtol=1e-3)


def test_depth_zero_is_the_linear_kernel():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3))
    k = nc.infinite_kernels(nc.MLP(depth=0, w_std=1.7, b_std=0.3), x)
    expected = 1.7**2 * x @ x.T / 3 + 0.3**2
    np.testing.assert_allclose(k.nngp, expected, rtol=1e-12)
    np.testing.assert_allclose(k.ntk, expected, rtol=1e-12)
    imgs = rng.standard_normal((3, 4, 4, 2))
    k = nc.infinite_kernels(nc.CNN(depth=0, w_std=1.0, b_std=0.0, readout="flatten"), imgs)
    flat = imgs.reshape(3, -1)
    np.testing.assert_allclose(k.ntk, flat @ flat.T / flat.shape[1], rtol=1e-12)


def test_one_layer_relu_closed_form():
    """Arc-cosine kernel of Cho & Saul for one hidden ReLU layer, written out independently."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3))
    w, b = 1.1, 0.0
    k = nc.infinite_kernels(nc.MLP(depth=1, w_std=w, b_std=b, activation="relu"), x)
    s0 = w**2 * x @ x.T / 3
    norms = np.sqrt(np.diag(s0))
    cos = np.clip(s0 / np.outer(norms, norms), -1, 1)
    np.fill_diagonal(cos, 1.0)  # exact: arccos amplifies the rounding of x.x / |x|^2 to sqrt(eps)
    theta = np.arccos(cos)
    nngp = w**2 * np.outer(norms, norms) * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)
    ntk = nngp + w**2 * (np.pi - theta) / (2 * np.pi) * s0
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(k.ntk, ntk, rtol=1e-10, atol=1e-14)


# ------------------------------------------------------------------------------------------------
# Dual activations
# ------------------------------------------------------------------------------------------------
def _dblquad_expectation(f, g, a, b, c):
    """E[f(u) g(v)] by adaptive 2-D quadrature over z1, z2 ~ N(0, 1) (scipy)."""
    rho = c / math.sqrt(a * b)

    def integrand(z2, z1):
        u = math.sqrt(a) * z1
        v = math.sqrt(b) * (rho * z1 + math.sqrt(1 - rho * rho) * z2)
        return f(u) * g(v) * math.exp(-(z1 * z1 + z2 * z2) / 2) / (2 * math.pi)

    val, _ = scipy.integrate.dblquad(integrand, -12, 12, -12, 12, epsabs=1e-11, epsrel=1e-11)
    return val


def _dtanh(t):
    return 1 - math.tanh(t) ** 2


def _gelu(t):
    return t * 0.5 * (1 + math.erf(t / math.sqrt(2)))


def _dgelu(t):
    return 0.5 * (1 + math.erf(t / math.sqrt(2))) + t * math.exp(-t * t / 2) / math.sqrt(2 * math.pi)


@pytest.mark.parametrize(
    "name,f,df",
    [
        ("erf", math.erf, lambda t: 2 / math.sqrt(math.pi) * math.exp(-t * t)),
        ("gelu", _gelu, _dgelu),
        ("sin", math.sin, math.cos),
    ],
)
def test_smooth_closed_forms_against_quadrature(name, f, df):
    for a, b, c in [(1.0, 2.0, 0.5), (0.3, 0.7, -0.4), (2.5, 1.5, 1.9)]:
        v, v_dot = nc.dual_activation(name, jnp.float64(a), jnp.float64(b), jnp.float64(c))
        assert float(v) == pytest.approx(_dblquad_expectation(f, f, a, b, c), abs=1e-8)
        assert float(v_dot) == pytest.approx(_dblquad_expectation(df, df, a, b, c), abs=1e-8)


def test_quadrature_for_tanh_is_within_its_bound():
    """tanh has no closed form: the quadrature must agree with adaptive quadrature within the
    error estimate it reports, and the estimate must be small at ordinary scales."""
    for a, b, c in [(1.0, 2.0, 0.5), (0.5, 0.5, 0.499), (2.25, 1.0, -1.2)]:
        v, v_dot, ev, evd = _activations.dual_activation_with_bound("tanh", jnp.float64(a), jnp.float64(b), jnp.float64(c))
        exact_v = _dblquad_expectation(math.tanh, math.tanh, a, b, c)
        exact_vd = _dblquad_expectation(_dtanh, _dtanh, a, b, c)
        assert float(ev) < 1e-12 and float(evd) < 1e-12
        assert abs(float(v) - exact_v) <= float(ev) + 1e-10
        assert abs(float(v_dot) - exact_vd) <= float(evd) + 1e-10


def test_custom_callable_activation_and_reported_bound():
    x = np.random.default_rng(0).standard_normal((5, 3))
    k = nc.infinite_kernels(nc.MLP(depth=3, w_std=1.5, b_std=0.1, activation=jnp.tanh), x)
    k_named = nc.infinite_kernels(nc.MLP(depth=3, w_std=1.5, b_std=0.1, activation="tanh"), x)
    np.testing.assert_allclose(k.ntk, k_named.ntk, rtol=1e-12)
    assert 0 < k.dual_error_bound < 1e-9 * np.max(np.abs(k.ntk))


# ------------------------------------------------------------------------------------------------
# Monte Carlo: wide finite networks
# ------------------------------------------------------------------------------------------------
def _mc_nngp(activation, x, width, depth, w_std, b_std, seeds):
    """Per-seed estimates of E[f(x) f(x')] for finite networks in the NTK parameterization.

    The readout layer is integrated out exactly (E over its weights of f f' given the hidden
    layers is w^2 phi.phi'/n + b^2), which lowers the variance; the hidden layers are sampled."""
    phi = _activations.activation_fn(activation)
    x = jnp.asarray(x)

    def one(key):
        h = x
        fan_in = x.shape[1]
        for _ in range(depth):
            key, kw, kb = jax.random.split(key, 3)
            W = jax.random.normal(kw, (fan_in, width), x.dtype)
            bias = jax.random.normal(kb, (width,), x.dtype)
            h = phi(w_std / math.sqrt(fan_in) * (h @ W) + b_std * bias)
            fan_in = width
        return w_std**2 * (h @ h.T) / width + b_std**2

    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    return np.asarray(jax.lax.map(one, keys))


@pytest.mark.slow
@pytest.mark.parametrize("activation", nc.ACTIVATIONS)
def test_nngp_matches_monte_carlo_of_wide_networks(activation):
    """Every registered activation (the registry's test of last resort: independent of any dual)."""
    w_std, b_std = (2**0.5, 0.1) if activation in ("relu", "abs", "leaky_relu") else (1.2, 0.2)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3))
    x[1] = 0.8 * x[0] + 0.2 * x[1]  # a correlated pair
    samples = _mc_nngp(activation, x, width=1024, depth=2, w_std=w_std, b_std=b_std, seeds=64)
    mean = samples.mean(0)
    stderr = samples.std(0, ddof=1) / math.sqrt(samples.shape[0])
    analytic = nc.infinite_kernels(nc.MLP(depth=2, w_std=w_std, b_std=b_std, activation=activation), x).nngp
    # within 4 standard errors (plus the O(1/width) finite-width bias, far smaller here)
    assert np.all(np.abs(mean - analytic) <= 4 * stderr + 2.0 / 1024 * np.abs(analytic)), (mean, analytic, stderr)
    # and the test can fail: a 2% change of sigma_w^2 is many standard errors away
    wrong = nc.infinite_kernels(nc.MLP(depth=2, w_std=w_std * 1.01, b_std=b_std, activation=activation), x).nngp
    assert np.any(np.abs(mean - wrong) > 4 * stderr)


# ------------------------------------------------------------------------------------------------
# Numerics and validation
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "activation,w_std,b_std",
    [("relu", 2**0.5, 0.0), ("leaky_relu", 1.4, 0.1), ("abs", 1.0, 0.1), ("erf", 1.5, 0.05),
     ("gelu", 1.5, 0.1), ("identity", 1.0, 0.0), ("sin", 1.5, 0.1), ("tanh", 1.5, 0.1),
     ("softplus", 1.0, 0.1), ("sigmoid", 2.0, 0.1)],
)
def test_depth_1000_is_finite(activation, w_std, b_std):
    x = np.random.default_rng(0).standard_normal((3, 3))
    x[0] = 0.0
    x[1] = x[2]
    k = nc.infinite_kernels(nc.MLP(depth=1000, w_std=w_std, b_std=b_std, activation=activation), x)
    assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))
    np.testing.assert_allclose(k.ntk[1], k.ntk[2], rtol=1e-12)


def test_relu_depth_1000_ntk_grows_linearly():
    """With sigma_w^2 = 2, b = 0 the ReLU NNGP diagonal is preserved and Theta(x, x) = (L + 1) Sigma(x, x)."""
    x = np.random.default_rng(0).standard_normal((3, 4))
    k = nc.infinite_kernels(nc.MLP(depth=1000, w_std=2**0.5, b_std=0.0, activation="relu"), x)
    s0 = 2 * np.sum(x * x, 1) / 4
    np.testing.assert_allclose(np.diag(k.nngp), s0, rtol=1e-9)
    np.testing.assert_allclose(np.diag(k.ntk), 1001 * s0, rtol=1e-9)


def test_overflow_is_reported_not_returned():
    x = np.random.default_rng(0).standard_normal((4, 3))
    with pytest.raises(nc.KernelOverflowError, match="layer"):
        nc.infinite_kernels(nc.MLP(depth=1000, w_std=10.0, b_std=0.0, activation="relu"), x)
    with pytest.raises(nc.KernelOverflowError):
        nc.infinite_kernels(nc.MLP(depth=1000, w_std=10.0, b_std=0.0, activation="relu"), x, engine="jax")
    with pytest.raises(nc.KernelOverflowError):
        nc.infinite_kernels(nc.CNN(depth=400, w_std=10.0, activation="relu"), np.ones((2, 3, 3, 1)))


# a zero input once made the series' relative tails overflow (FLOOR over a zero scale)
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_zero_inputs_and_duplicates():
    x = np.zeros((3, 2))
    for act in ("relu", "erf", "tanh"):
        k = nc.infinite_kernels(nc.MLP(depth=3, b_std=0.0, activation=act), x)
        assert np.all(np.isfinite(k.ntk)) and np.all(np.isfinite(k.nngp))


@pytest.mark.parametrize(
    "kwargs,field",
    [({"depth": -1}, "depth"), ({"width": 0}, "width"), ({"w_std": -1.0}, "w_std"),
     ({"b_std": float("nan")}, "b_std"), ({"activation": "swish"}, "activation"), ({"depth": 2.5}, "depth")],
)
def test_invalid_spec_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        nc.MLP(**kwargs)


def test_invalid_inputs():
    spec = nc.MLP(depth=1)
    with pytest.raises(ValueError, match="rank"):
        nc.infinite_kernels(spec, np.ones(3))
    with pytest.raises(ValueError, match="rank"):
        nc.infinite_kernels(nc.CNN(depth=1), np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        nc.infinite_kernels(spec, np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="feature dimension"):
        nc.infinite_kernels(spec, np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="readout"):
        nc.CNN(readout="max")
    with pytest.raises(ValueError, match="engine"):
        nc.infinite_kernels(spec, np.ones((2, 3)), engine="gpu")


def test_size_limits_raise_before_allocating(monkeypatch):
    x = np.ones((50_000, 2), np.float32)
    monkeypatch.setattr(_infinite, "_available_memory_bytes", lambda: 4 * 2**30)
    with pytest.raises(nc.KernelSizeError, match="GiB"):
        nc.infinite_kernels(nc.MLP(depth=2), x)
    with pytest.raises(nc.KernelSizeError, match="gap"):
        nc.infinite_kernels(nc.CNN(depth=1, readout="gap"), np.ones((1, 40, 40, 1)))


@pytest.mark.slow
def test_20000_points_in_bounded_memory(tmp_path):
    """20,000 x 20,000 kernels, depth 10, in a fresh process: peak memory beyond the two float32
    outputs stays under 4 GB."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import resource, sys, numpy as np
        sys.path.insert(0, %r)
        import ntk_core as nc
        x = np.random.default_rng(0).standard_normal((20000, 10)).astype(np.float32)
        k = nc.infinite_kernels(nc.MLP(depth=10, w_std=1.5, b_std=0.05, activation="relu"), x)
        assert np.isfinite(k.ntk[::997, ::991]).all() and k.ntk.shape == (20000, 20000)
        assert abs(k.ntk[123, 4567] - k.ntk[4567, 123]) == 0
        ref = nc.infinite_kernels(nc.MLP(depth=10, w_std=1.5, b_std=0.05, activation="relu"), x[[123, 4567]])
        assert np.allclose(ref.ntk[0, 1], k.ntk[123, 4567], rtol=1e-5)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        """
        % os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    peak = int(out.stdout.strip().splitlines()[-1])
    outputs = 2 * 20000 * 20000 * 4
    assert peak - outputs < 4 * 10**9, f"peak {peak / 1e9:.2f} GB"
