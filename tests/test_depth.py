"""Depth recursions (ntk_core/_depth.py): correlation maps, rho^(L), normalized kernels, limits.

Checks against independent things: closed forms (the ReLU map and its rate), Neural Tangents'
reference kernels, the lead's direct kernel recursion (nc.infinite_kernels), fixed points found by
bisection, and the recursion itself run to a larger depth."""
import json
import math

import numpy as np
import pytest

import ntk_core as nc
from conftest import REFERENCE_KERNELS

REFERENCE = REFERENCE_KERNELS
REF_NAMES = {"leaky_relu_0.1": "leaky_relu"}


def _normalize(k):
    d = np.sqrt(np.diag(k))
    return k / np.outer(d, d)


def _relu_map(r):
    """Normalized ReLU correlation map without bias (papers.md, seed 002)."""
    return (np.sqrt(1 - r**2) + (math.pi - np.arccos(r)) * r) / math.pi


# ---------------------------------------------------------------------------------------------
# rho^(L) and its rate
# ---------------------------------------------------------------------------------------------
def test_relu_rho_rate_at_depth_1000():
    c = nc.correlation_vs_depth("relu", 1.0, 0.0, [-0.9, 0.0, 0.5], 1000)
    predicted = 9 * math.pi**2 / (2 * 1000**2)
    np.testing.assert_allclose(1 - c.rho[:, 1000], predicted, rtol=0.05)
    np.testing.assert_allclose(nc.predicted_rate("relu", 0.0, [1000]), [predicted])


def test_relu_rho_rate_is_asymptotic_in_depth():
    """Starting closer to 1 acts like a head start of a few layers: rho0 = 0.9 is 5% off at
    L = 1,000 but within 1% at 10,000, and the error shrinks with depth for every start."""
    c = nc.correlation_vs_depth("relu", 1.0, 0.0, [-0.9, 0.5, 0.9], 10_000)
    ratio = (1 - c.rho[:, [100, 1000, 10_000]]) / nc.predicted_rate("relu", 0.0, [100, 1000, 10_000])
    assert np.all(np.abs(ratio[:, 2] - 1) < 0.01)
    assert np.all(np.diff(np.abs(ratio - 1), axis=1) < 0)


def test_relu_rho_follows_closed_form_map_layer_by_layer():
    c = nc.correlation_vs_depth("relu", 1.3, 0.0, [0.5, -0.3], 50, input_dim=4)
    np.testing.assert_allclose(c.rho[:, 0], [0.5, -0.3])  # no bias: rho^(0) is the input cosine
    np.testing.assert_allclose(c.rho[:, 1:], _relu_map(c.rho[:, :-1]), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("activation", ["leaky_relu", "abs"])
def test_derived_rates_for_other_kinked_activations(activation):
    """1 - rho ~ 18 pi^2 kappa^2 / ((a - b)^4 L^2), derived in `predicted_rate`: the recursion agrees."""
    c = nc.correlation_vs_depth(activation, 1.0, 0.0, [0.3, 0.8], 10_000)
    rate = nc.predicted_rate(activation, 0.0, [1000, 10_000])
    np.testing.assert_allclose((1 - c.rho[:, [1000, 10_000]]) / rate, 1.0, rtol=0.05)
    np.testing.assert_allclose((1 - c.rho[:, 10_000]) / rate[1], 1.0, rtol=0.01)
    assert nc.predicted_rate(activation, 0.1, [10]) is None
    assert nc.predicted_rate("tanh", 0.0, [10]) is None


def test_papers_md_sanity_figures():
    """papers.md: ReLU, no bias, rho0 = 0.5: Theta_bar = 0.2538 at L = 1,000 and 0.2505 at 10,000."""
    c = nc.correlation_vs_depth("relu", 1.0, 0.0, [0.5], 10_000)
    assert round(c.ntk[0, 1000], 4) == 0.2538
    assert round(c.ntk[0, 10_000], 4) == 0.2505
    assert 1 - c.rho[0, 10_000] < 1e-6


def test_scale_invariance_of_homogeneous_activations():
    """Without bias, ReLU's normalized kernels do not depend on w_std even though the raw
    variance changes by (w^2/2)^L: 1e-3000 for w = 1 and 1e+512 for w = 1.6 at L = 10,000."""
    a = nc.correlation_vs_depth("relu", 1.0, 0.0, [0.2, 0.7], 10_000)
    b = nc.correlation_vs_depth("relu", 1.6, 0.0, [0.2, 0.7], 10_000)
    assert a.log_variance[-1] < -6000 and b.log_variance[-1] > 1000
    np.testing.assert_allclose(a.rho, b.rho, rtol=0, atol=1e-11)
    # Theta_bar depends on sqrt(1 - rho), which amplifies rounding of rho near 1
    np.testing.assert_allclose(a.ntk, b.ntk, rtol=0, atol=1e-7)


@pytest.mark.parametrize("activation", nc.ACTIVATIONS)
@pytest.mark.parametrize("w_std,b_std", [(3.0, 0.0), (0.3, 0.0), (3.0, 1.0)])
def test_no_nan_at_depth_10000(activation, w_std, b_std):
    c = nc.correlation_vs_depth(activation, w_std, b_std, [-0.99, 0.0, 0.99], 10_000, input_dim=5)
    for a in (c.rho, c.ntk, c.log_variance):
        assert np.all(np.isfinite(a))
    assert np.all(np.abs(c.rho) <= 1) and np.all(np.abs(c.ntk) <= 1)


def test_diverging_variance_forgets_the_bias():
    """ReLU with w^2/2 > 1: q grows geometrically, b^2/q -> 0, so the bias stops mattering and the
    normalized NTK tends to the no-bias limit (1/4), not to the ordered-phase 1."""
    c = nc.correlation_vs_depth("relu", 2.0, 1.0, [0.5], 10_000)
    assert c.log_variance[-1] > 6000
    assert abs(c.ntk[0, -1] - 0.25) < 2e-3


# ---------------------------------------------------------------------------------------------
# Correlation map, fixed points, phase
# ---------------------------------------------------------------------------------------------
def test_relu_map_closed_form_and_phase():
    m = nc.correlation_map("relu", 1.7, 0.0, rho0=-0.4, cobweb_steps=5)
    np.testing.assert_allclose(m.rho_next, _relu_map(m.rho), atol=1e-14)
    np.testing.assert_allclose(m.slope, (math.pi - np.arccos(m.rho)) / math.pi, atol=1e-13)
    assert m.phase == "critical" and m.variance_status == "any"
    np.testing.assert_allclose(m.fixed_points, [1.0])
    assert list(m.stability) == ["marginal"]
    # cobweb: (r0, r0) -> (r0, f(r0)) -> (f(r0), f(r0)) -> ...
    f0 = _relu_map(-0.4)
    np.testing.assert_allclose(m.cobweb_x[:4], [-0.4, -0.4, f0, f0])
    np.testing.assert_allclose(m.cobweb_y[:4], [-0.4, f0, f0, _relu_map(f0)])


def test_relu_with_bias_is_ordered_with_chi1_closed_form():
    """q* = b^2 / (1 - w^2/2) and chi_1 = w^2 E[step^2] = w^2 / 2 (ordered for w < sqrt 2)."""
    m = nc.correlation_map("relu", 1.2, 0.3)
    assert m.variance_status == "fixed point"
    np.testing.assert_allclose(m.variance, 0.09 / (1 - 0.72), rtol=1e-10)
    np.testing.assert_allclose([m.chi_1, m.slope_at_one], 0.72, rtol=1e-10)
    assert m.phase == "ordered"


@pytest.mark.parametrize("activation,w_std,b_std", [("tanh", 2.5, 0.1), ("erf", 1.5, 0.05),
                                                    ("sin", 2.0, 0.0)])
def test_chaotic_fixed_point_attracts_the_recursion(activation, w_std, b_std):
    m = nc.correlation_map(activation, w_std, b_std)
    assert m.phase == "chaotic" and m.chi_1 > 1
    stable = m.fixed_points[m.stability == "stable"]
    assert stable.size >= 1 and np.all(stable < 1)
    rho_star = stable[np.argmin(np.abs(stable - 0.3))]
    # the recursion from a positive correlation converges to that fixed point
    c = nc.correlation_vs_depth(activation, w_std, b_std, [0.3], 3000)
    assert abs(c.rho[0, -1] - rho_star) < 1e-6
    # and the map really fixes it (independent evaluation on the grid)
    assert abs(np.interp(rho_star, m.rho, m.rho_next) - rho_star) < 1e-5


def test_tanh_phase_boundary():
    assert nc.correlation_map("tanh", 0.8, 0.05).phase == "ordered"
    assert nc.correlation_map("tanh", 1.3, 0.0).phase == "chaotic"
    # no bias and w < 1: q -> 0, tanh acts linearly, the normalized map tends to the identity
    m = nc.correlation_map("tanh", 0.8, 0.0)
    assert m.variance_status == "vanishes" and m.phase == "linear"
    np.testing.assert_allclose(m.chi_1, 0.64, rtol=1e-6)
    np.testing.assert_allclose(m.slope_at_one, 1.0, rtol=1e-6)


def test_identity_fixes_every_correlation():
    m = nc.correlation_map("identity", 1.0, 0.0)
    assert m.all_fixed and m.phase == "critical"


# ---------------------------------------------------------------------------------------------
# Normalized kernels over a data set
# ---------------------------------------------------------------------------------------------
def _reference_entries():
    with open(REFERENCE) as f:
        ref = json.load(f)
    return ref["fc_inputs"]["x1"], ref["fc"]


@pytest.mark.slow
def test_normalized_kernels_match_reference():
    """Normalized NNGP and NTK at depth n_hidden (L = 1: one hidden layer + readout) equal the
    normalized Neural Tangents kernels; x1 is not on a sphere (per-point variances)."""
    x1, entries = _reference_entries()
    checked = 0
    for e in entries:
        act = REF_NAMES.get(e["activation"], e["activation"])
        k = nc.normalized_kernels_vs_depth(np.array(x1), act, e["w_std"], e["b_std"], 8, n_test=0)
        i = list(k.stored_depths).index(e["n_hidden"])
        np.testing.assert_allclose(k.ntk[i], _normalize(np.array(e["ntk_x1x1"])), rtol=1e-7, atol=1e-9,
                                   err_msg=f"{e['activation']} L={e['n_hidden']}")
        np.testing.assert_allclose(k.nngp[i], _normalize(np.array(e["nngp_x1x1"])), rtol=1e-7, atol=1e-9)
        checked += e["n_hidden"] == 1
    assert checked == 7


@pytest.mark.slow
@pytest.mark.parametrize("activation,w_std,b_std", [("relu", 1.5, 0.1), ("tanh", 1.2, 0.2)])
def test_sphere_path_matches_direct_recursion(activation, w_std, b_std):
    """Data on the sphere uses one shared variance; compare to nc.infinite_kernels at several
    depths, and the condition number of Theta(X, X) and the predictor at depth 3."""
    x = nc.sphere_points(12, 5, seed=1)
    k = nc.normalized_kernels_vs_depth(x, activation, w_std, b_std, 8, n_test=2)
    for depth in (1, 3, 5):
        ref = nc.infinite_kernels(nc.MLP(depth=depth, width=1, w_std=w_std, b_std=b_std,
                                         activation=activation), x)
        i = k.stored_index(depth)
        np.testing.assert_allclose(k.ntk[i], _normalize(ref.ntk), atol=1e-9)
        np.testing.assert_allclose(k.nngp[i], _normalize(ref.nngp), atol=1e-9)
        if depth == 3:
            theta = ref.ntk[:10, :10]
            np.testing.assert_allclose(k.condition[i], np.linalg.cond(theta), rtol=1e-6)
            tb = _normalize(ref.ntk)
            pred = tb[10:, :10] @ np.linalg.inv(tb[:10, :10])
            np.testing.assert_allclose(k.predictor[i], pred, atol=1e-7)


def test_predictor_of_a_singular_kernel_is_the_stable_minimum_norm_one():
    """Depth 0: the input kernel of 12 points in 5 dimensions has rank 5, so Theta_bar(X, X) is
    singular. The predictor is then the pseudo-inverse's (minimum norm), and the same when the
    inputs move by rounding (a plain solve returned noise times 1e16, different on every CPU)."""
    x = nc.sphere_points(12, 5, seed=1)
    preds = []
    for x_in in (x, x * (1 + 1e-15 * np.random.default_rng(0).standard_normal(x.shape))):
        k = nc.normalized_kernels_vs_depth(x_in, "relu", 1.5, 0.0, 4, n_test=2)
        preds.append(k.predictor[k.stored_index(0)])
    tb = x @ x.T / np.sqrt(np.sum(x * x, 1)[:, None] * np.sum(x * x, 1)[None, :])
    want = tb[10:, :10] @ np.linalg.pinv(tb[:10, :10], rcond=1e-10, hermitian=True)
    np.testing.assert_allclose(preds[0], want, atol=1e-8)
    np.testing.assert_allclose(preds[1], preds[0], atol=1e-8)


def test_per_layer_summaries_match_stored_matrices():
    x = nc.digits_points(20, seed=2)
    k = nc.normalized_kernels_vs_depth(x, "erf", 1.5, 0.05, 300, n_test=3)
    n = k.n_train
    off = ~np.eye(n, dtype=bool)
    for i, depth in enumerate(k.stored_depths):
        dist = np.abs(1 - k.ntk[i][:n, :n][off])
        np.testing.assert_allclose(k.ntk_max_dist[depth], dist.max(), atol=1e-14)
        np.testing.assert_allclose(k.ntk_mean_dist[depth], dist.mean(), atol=1e-14)
        np.testing.assert_allclose(k.nngp_offdiag_mean[depth], k.nngp[i][:n, :n][off].mean(), atol=1e-14)
    assert k.predictor.shape == (len(k.stored_depths), 3, n)
    assert np.all(np.isfinite(k.predictor_change)) and k.predictor_to_final[-1] == 0


def test_printed_limit_is_where_the_recursion_goes():
    """The limit fitted from depths <= 2,000 is approached by the recursion run to 2,000 and to
    20,000 (closer at the larger depth); for ReLU without bias it is 1/4, not 1: with
    Theta^(l)(x,x) = (l + 1) q and Theta_bar' slope 1 - 3/l near rho = 1 (from 1 - rho ~ 9 pi^2/(2 l^2)),
    the off-diagonal solves a l = 1 + (1 - 3/l) a (l - 1), i.e. a = 1/4."""
    x = nc.sphere_points(8, 3, seed=0)
    k = nc.normalized_kernels_vs_depth(x, "relu", 1.0, 0.0, 2000, n_test=0)
    off = ~np.eye(8, dtype=bool)
    limit = k.ntk_limit[off]
    np.testing.assert_allclose(limit, 0.25, atol=2e-4)
    np.testing.assert_allclose(k.nngp_limit[off], 1.0, atol=1e-4)
    upper = np.triu_indices(8, 1)
    cos = (x @ x.T)[upper]
    far = nc.correlation_vs_depth("relu", 1.0, 0.0, cos, 20_000)
    err_2k = np.abs(far.ntk[:, 2000] - k.ntk_limit[upper])
    err_20k = np.abs(far.ntk[:, 20_000] - k.ntk_limit[upper])
    assert np.all(err_20k < err_2k / 5) and np.all(err_20k < 5e-4)
    np.testing.assert_allclose(far.ntk[:, 2000], k.ntk[-1][upper], atol=1e-12)


def test_limit_in_the_chaotic_phase():
    """tanh, w = 1.4, b = 0.1: rho -> the stable fixed point rho* < 1 of the map; the NTK diagonal
    grows like chi_1^L so the normalized off-diagonal NTK -> 0."""
    x = nc.sphere_points(6, 3, seed=4)
    k = nc.normalized_kernels_vs_depth(x, "tanh", 1.4, 0.1, 400, n_test=0)
    m = nc.correlation_map("tanh", 1.4, 0.1, input_dim=3)
    rho_star = m.fixed_points[m.stability == "stable"]
    off = ~np.eye(6, dtype=bool)
    np.testing.assert_allclose(k.nngp_limit[off], rho_star[0], atol=1e-6)
    np.testing.assert_allclose(k.ntk_limit[off], 0.0, atol=1e-8)
    deeper = nc.normalized_kernels_vs_depth(x, "tanh", 1.4, 0.1, 800, n_test=0)
    np.testing.assert_allclose(deeper.nngp[-1][off], k.nngp_limit[off], atol=1e-9)


def test_extrapolate_limit_exact_on_its_model():
    depths = [250, 500, 1000]
    vals = [0.3 + (0.7 * math.log(d) - 2.0) / d for d in depths]
    np.testing.assert_allclose(nc.extrapolate_limit(depths, vals), 0.3, atol=1e-12)
    # geometric convergence: the last value, not an algebraic fit that would overshoot
    vals = [0.3 + 0.5**d for d in (10, 20, 40)]
    np.testing.assert_allclose(nc.extrapolate_limit([10, 20, 40], vals), 0.3, atol=1e-12)
    with pytest.raises(ValueError, match="three increasing depths"):
        nc.extrapolate_limit([1, 1, 2], [0, 0, 0])


def test_data_sets_on_the_sphere():
    s = nc.sphere_points(30, 7, seed=3)
    d = nc.digits_points(25, seed=3)
    assert s.shape == (30, 7) and d.shape == (25, 64)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0)
    np.testing.assert_array_equal(d, nc.digits_points(25, seed=3))
    assert not np.allclose(d, nc.digits_points(25, seed=4))


@pytest.mark.parametrize("call,field", [
    (lambda: nc.correlation_vs_depth("swish", 1, 0, [0.5], 10), "activation"),
    (lambda: nc.correlation_vs_depth("relu", 0.0, 0, [0.5], 10), "w_std"),
    (lambda: nc.correlation_vs_depth("relu", 1, -1, [0.5], 10), "b_std"),
    (lambda: nc.correlation_vs_depth("relu", 1, 0, [1.5], 10), "rho0"),
    (lambda: nc.correlation_vs_depth("relu", 1, 0, [0.5], 200_001), "max_depth"),
    (lambda: nc.normalized_kernels_vs_depth(np.ones(3), "relu", 1, 0, 10), "x"),
    (lambda: nc.normalized_kernels_vs_depth(np.ones((300, 3)), "relu", 1, 0, 10), "x"),
    (lambda: nc.normalized_kernels_vs_depth(np.eye(3), "relu", 1, 0, 10, n_test=2), "n_test"),
    (lambda: nc.normalized_kernels_vs_depth(np.zeros((3, 2)), "relu", 1, 0, 10), "x"),
    (lambda: nc.sphere_points(0, 3), "n"),
    (lambda: nc.correlation_map("relu", 1, 0, rho0=2), "rho0"),
])
def test_bad_input_names_the_field(call, field):
    with pytest.raises(ValueError, match=field):
        call()
