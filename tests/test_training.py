"""Training finite networks (GD, SGD, ensembles) and agreement with the NTK-GP (seed 003, Thm 5.1)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_core as nc
from ntk_core import _gd, _training, _validation
from ntk_core._finite import draw_params, forward


def _data(n=5, n_test=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 1))
    xt = np.linspace(-1, 1, n_test)[:, None]
    return x, np.sin(3 * x[:, 0]), xt, np.sin(3 * xt[:, 0])


def _plain_gd(spec, params, x, y, lr, steps):
    """Textbook GD with jax.grad on 1/(2n) sum (f - y)^2: independent of the library's backprop."""
    def loss(p):
        return 0.5 * jnp.mean((forward(spec, p, x)[:, 0] - y) ** 2)

    for _ in range(steps):
        g = jax.grad(loss)(params)
        params = jax.tree_util.tree_map(lambda a, b: a - lr * b, params, g)
    return params


@pytest.mark.slow  # several compiled shapes
def test_gd_matches_textbook_gradient_descent_float64():
    spec = nc.MLP(depth=3, width=64, w_std=1.5, b_std=0.3, activation="tanh")   # two hidden-hidden layers
    x, y, xt, yt = _data()
    run = nc.train(spec, x, y, xt, yt, lr=0.2, steps=24, seeds=[4], record_every=12, dtype=jnp.float64)
    p = _plain_gd(spec, nc.init_params(spec, 4, 1, dtype=jnp.float64), jnp.asarray(x), jnp.asarray(y), 0.2, 24)
    np.testing.assert_allclose(run.predictions[0, -1], np.asarray(forward(spec, p, jnp.asarray(xt))[:, 0]),
                               rtol=1e-9, atol=1e-11)
    for a, b in zip(jax.tree_util.tree_leaves(run.params_of(0)), jax.tree_util.tree_leaves(p)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
    assert run.steps.tolist() == [0, 12, 24]
    np.testing.assert_allclose(run.times, [0.0, 2.4, 4.8])
    f0 = nc.apply(spec, nc.init_params(spec, 4, 1, dtype=jnp.float64), x)[:, 0]
    np.testing.assert_allclose(run.train_loss[0, 0], 0.5 * np.mean((f0 - y) ** 2), rtol=1e-12)


def test_sgd_deferred_updates_equal_the_generic_path():
    """Same minibatches (same keys): hand-written backprop with low-rank windows == jax.grad steps."""
    spec = nc.MLP(depth=3, width=12, w_std=1.2, b_std=0.1, activation="erf")
    x, y, _, _ = _data(n=8)
    x, y = jnp.asarray(x), jnp.asarray(y)
    params = draw_params(spec, (1,), jnp.dtype(jnp.float64), jax.random.PRNGKey(0))
    state = _gd.initial_state(params, jax.random.PRNGKey(1), 1.0)
    a = _gd.mlp_steps(spec, 0.3, 3, 12, 4, x, y, state, 0)
    b = _gd.generic_steps(spec, 0.3, 3, 12, x, y, state, 0)
    for u, v in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)


@pytest.mark.slow  # several compiled shapes
def test_ensemble_members_equal_single_runs_and_progress_is_reported():
    spec = nc.MLP(depth=2, width=32, w_std=1.5, b_std=0.05, activation="erf")
    x, y, xt, yt = _data()
    fractions = []
    run = nc.train(spec, x, y, xt, yt, lr=0.3, steps=60, seeds=range(5), record_every=10,
                   progress=fractions.append)
    single = nc.train(spec, x, y, xt, yt, lr=0.3, steps=60, seeds=[3], record_every=10)
    np.testing.assert_allclose(run.predictions[3], single.predictions[0], rtol=1e-5, atol=1e-6)
    assert run.predictions.shape == (5, 7, 7) and run.train_predictions.shape == (5, 7, 5)
    assert run.train_loss.shape == (5, 7) and run.test_loss.shape == (5, 7)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and np.all(np.diff(fractions) >= 0)
    assert np.all(run.train_loss[:, -1] < run.train_loss[:, 0])
    assert not run.diverged.any() and run.warning is None


@pytest.mark.slow  # several compiled shapes
def test_sgd_and_remainder_steps():
    spec = nc.MLP(depth=2, width=32)
    x, y, xt, yt = _data(n=10)
    run = nc.train(spec, x, y, xt, yt, lr=0.2, steps=25, batch_size=4, seeds=[0, 1], record_every=10)
    assert run.steps.tolist() == [0, 10, 20, 25] and run.batch_size == 4
    assert np.all(np.isfinite(run.train_loss))
    assert np.all(run.train_loss[:, -1] < run.train_loss[:, 0])


def test_cnn_training_runs():
    spec = nc.CNN(depth=1, channels=8, readout="flatten")
    rng = np.random.default_rng(0)
    x, xt = rng.standard_normal((4, 3, 3, 1)), rng.standard_normal((2, 3, 3, 1))
    run = nc.train(spec, x, x[:, 0, 0, 0], xt, xt[:, 0, 0, 0], lr=0.1, steps=20, seeds=[0, 1], record_every=5)
    assert run.predictions.shape == (2, 5, 2)
    assert np.all(run.train_loss[:, -1] < run.train_loss[:, 0])


@pytest.mark.slow  # several compiled shapes
def test_learning_rate_above_critical_is_reported_not_crashed():
    spec = nc.MLP(depth=2, width=64, w_std=1.5, b_std=0.05, activation="relu")
    x, y, xt, yt = _data()
    probe = nc.train(spec, x, y, xt, yt, lr=0.01, steps=1, seeds=range(3))
    lam = 2 * 5 / probe.lr_critical
    theta = nc.empirical_ntk(spec, nc.init_params(spec, 0, 1), x)
    np.testing.assert_allclose(lam[0], np.linalg.eigvalsh(theta)[-1], rtol=1e-4)
    with pytest.warns(RuntimeWarning, match="critical"):
        run = nc.train(spec, x, y, xt, yt, lr=20 * probe.lr_critical.max(), steps=200, seeds=range(3))
    assert run.diverged.all() and run.warning and "critical" in run.warning
    assert np.all(run.diverged_step > 0)
    for a in (run.train_loss, run.test_loss, run.predictions, run.train_predictions):
        assert np.all(np.isfinite(a))


def test_invalid_arguments_name_the_field():
    spec = nc.MLP(depth=1, width=8)
    x, y, xt, yt = _data()
    for kwargs, field in [
        (dict(lr=-1.0), "lr"), (dict(lr=float("nan")), "lr"), (dict(steps=-3), "steps"),
        (dict(batch_size=99), "batch_size"), (dict(record_every=0), "record_every"),
        (dict(seeds=range(_validation.MAX_SEEDS + 1)), "seeds"), (dict(seeds=[]), "seeds"),
    ]:
        args = dict(lr=0.1, steps=10) | kwargs
        with pytest.raises(ValueError, match=field):
            nc.train(spec, x, y, xt, yt, **args)
    with pytest.raises(ValueError, match="y must have shape"):
        nc.train(spec, x, y[:3], xt, yt, lr=0.1, steps=1)
    with pytest.raises(ValueError, match="seeds: .* exceeds"):
        nc.train(nc.MLP(depth=2, width=4096), x, y, xt, yt, lr=0.1, steps=1, seeds=range(100))


@pytest.mark.slow
def test_wide_network_follows_linearised_ntk_dynamics():
    """(4a) One network, lr small: outputs over time = its linearisation with the analytic NTK,
    f0(x*) + Theta(x*,X) Theta^-1 (I - e^{-Theta t/n}) (Y - f0(X)) at t = lr * steps; the gap shrinks
    like width^-1/2."""
    x, y, xt, yt = _data(n=6, n_test=9)
    errors = {}
    for width in (256, 2048):
        spec = nc.MLP(depth=2, width=width, w_std=1.5, b_std=0.05, activation="erf")
        run = nc.train(spec, x, y, xt, yt, lr=0.25, steps=600, seeds=[0], record_every=100)
        post = nc.ntk_gp(spec, x, y, xt, t=run.times, diag_reg=0.0, y_test=yt,
                         fx_train_0=run.train_predictions[0, 0], fx_test_0=run.predictions[0, 0])
        scale = np.max(np.abs(y))
        errors[width] = np.max(np.abs(run.predictions[0] - post.mean)) / scale
        loss_gap = np.max(np.abs(run.train_loss[0] - post.train_loss)) / run.train_loss[0, 0]
        assert loss_gap < 4 / np.sqrt(width), (width, loss_gap)
        assert post.train_loss[-1] < 0.1 * post.train_loss[0]
    assert errors[2048] < 1.5 / np.sqrt(2048), errors
    assert errors[2048] < errors[256], errors


@pytest.mark.slow
def test_ensemble_mean_and_variance_match_ntk_gp():
    """(4b) 64 networks of width 512 (the essay's Fig. 3 net), 400 steps: ensemble mean and variance over
    initialisations against post.mean / post.var, within sampling error (+ a finite-width allowance)."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (5, 1))
    y = x[:, 0] ** 3 + 0.01 * rng.standard_normal(5)
    xt = np.linspace(0, 1, 11)[:, None]
    spec = nc.MLP(depth=2, width=512, w_std=1.5, b_std=0.05, activation="erf")
    run = nc.train(spec, x, y, xt, xt[:, 0] ** 3, lr=0.5, steps=400, seeds=range(64), record_every=100)
    post = nc.ntk_gp(spec, x, y, xt, t=run.times, diag_reg=1e-6)
    n_nets = run.predictions.shape[0]
    mean = run.predictions.mean(axis=0)
    var = run.predictions.var(axis=0, ddof=1)
    sd = np.sqrt(post.var)
    # mean: 4 standard errors plus 5 % of the prior sd for width-512 corrections
    assert np.all(np.abs(mean - post.mean) <= 4 * sd / np.sqrt(n_nets) + 0.05 * np.sqrt(np.diag(post.cov[0]))[None]), \
        np.max(np.abs(mean - post.mean) / (sd / np.sqrt(n_nets)))
    # variance: chi-square with n - 1 dof has relative sd sqrt(2 / (n - 1)); allow 4 of them plus 10 %
    big = post.var > 1e-3 * post.var.max()
    rel = np.abs(var[big] - post.var[big]) / post.var[big]
    assert np.all(rel < 4 * np.sqrt(2 / (n_nets - 1)) + 0.1), rel.max()
    # the full covariance at the end agrees too (relative Frobenius error)
    emp_cov = np.cov(run.predictions[:, -1].T)
    assert np.linalg.norm(emp_cov - post.cov[-1]) / np.linalg.norm(post.cov[-1]) < 0.35


def test_record_steps_and_chunk_sizes():
    assert _training.record_steps(25, 10).tolist() == [0, 10, 20, 25]
    assert _training.record_steps(20, 10).tolist() == [0, 10, 20]
    assert _training.record_steps(0, 1).tolist() == [0]
    assert _training.chunk_sizes(100, 20) == [5] * 20
    assert _training.chunk_sizes(7, 3) == [3, 3, 1] and _training.chunk_sizes(0, 20) == []
    assert sum(_training.chunk_sizes(101, 20)) == 101


def test_ensemble_layout_pads_with_the_last_seed():
    layout = _training.ensemble_layout(np.arange(5), max_block=2, cpus=8)
    assert layout.workers == 2 and layout.block == 2 and layout.per_worker == 4
    assert layout.seeds.tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    one = _training.ensemble_layout(np.array([9]), max_block=64, cpus=1)
    assert (one.workers, one.block, one.per_worker, one.seeds.tolist()) == (1, 1, 1, [9])
    assert _training.ensemble_layout(np.arange(10), max_block=64, cpus=2).block == 5


def test_critical_lr_and_divergence_warning():
    np.testing.assert_allclose(_training.critical_lr([4.0, 0.0], n=6), [3.0, np.inf])
    assert _training.divergence_warning(0.1, np.array([3.0, 3.0]), np.array([False, False])) is None
    text = _training.divergence_warning(5.0, np.array([3.0, 6.0]), np.array([True, False]))
    assert "above the critical value 2n/lambda_max = 3" in text and "1 of 2 networks" in text
    assert "blew up for 1 of 2" in text
