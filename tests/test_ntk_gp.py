"""NTK-GP posterior (seed 003, Theorem 5.1): closed forms, limits, time convention and robustness."""
import numpy as np
import pytest
import scipy.linalg

import ntk_core as nc
from ntk_core import _validation

SPEC = nc.MLP(depth=2, width=512, w_std=1.5, b_std=0.05, activation="erf")


def _data(n=6, m=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, 2)), rng.standard_normal(n), rng.uniform(-1, 1, (m, 2))


def _kernels(spec, x, xt):
    kd, kt, kk = nc.infinite_kernels(spec, x), nc.infinite_kernels(spec, xt, x), nc.infinite_kernels(spec, xt)
    return kd, kt, kk


def _gp_kernels(kd, kt, kk):
    return nc.GPKernels(ntk_train_train=kd.ntk, ntk_test_train=kt.ntk, nngp_train_train=kd.nngp,
                        nngp_test_train=kt.nngp, nngp_test_test=kk.nngp)


@pytest.mark.parametrize("kernel", ["ntk", "nngp"])
def test_matches_matrix_exponential_formula(kernel):
    """Theorem 5.1 written out with scipy's expm and a linear solve, t = 0, 0.7, 5."""
    x, y, xt = _data()
    kd, kt, kk = _kernels(SPEC, x, xt)
    times = [0.0, 0.7, 5.0]
    post = nc.ntk_gp(SPEC, x, y, xt, t=times, kernel=kernel, diag_reg=0.0)
    dyn_dd, dyn_td = (kd.ntk, kt.ntk) if kernel == "ntk" else (kd.nngp, kt.nngp)
    n = len(y)
    for i, t in enumerate(times):
        a = dyn_td @ np.linalg.solve(dyn_dd, np.eye(n) - scipy.linalg.expm(-dyn_dd * t / n))
        cov = kk.nngp + a @ kd.nngp @ a.T - a @ kt.nngp.T - kt.nngp @ a.T
        np.testing.assert_allclose(post.mean[i], a @ y, atol=1e-10)
        np.testing.assert_allclose(post.cov[i], cov, atol=1e-10)
        np.testing.assert_allclose(post.var[i], np.diag(cov), atol=1e-10)
    assert post.mean.shape == (3, 4) and post.cov.shape == (3, 4, 4) and post.train_loss.shape == (3,)


def test_time_zero_is_the_prior_and_time_convention_is_lr_times_steps():
    x, y, xt = _data()
    kd, kt, kk = _kernels(SPEC, x, xt)
    post0 = nc.ntk_gp(SPEC, x, y, xt, t=0.0)
    np.testing.assert_allclose(post0.mean, 0.0, atol=1e-14)
    np.testing.assert_allclose(post0.cov, kk.nngp, rtol=1e-12)
    # discrete gradient descent on the kernel model with the loss 1/(2n) sum (f - y)^2:
    # f_train <- f_train - lr/n Theta (f_train - y); small lr, t = lr * steps
    lr, steps, n = 0.01, 500, len(y)
    f_train, f_test = np.zeros(n), np.zeros(len(xt))
    for _ in range(steps):
        r = f_train - y
        f_train, f_test = f_train - lr / n * kd.ntk @ r, f_test - lr / n * kt.ntk @ r
    post = nc.ntk_gp(SPEC, x, y, xt, t=lr * steps, diag_reg=0.0)
    np.testing.assert_allclose(post.mean, f_test, atol=2e-3 * np.abs(f_test).max())
    np.testing.assert_allclose(post.mean_train, f_train, atol=2e-3 * np.abs(f_train).max())


def test_infinite_time_interpolates_and_nngp_is_the_gp_posterior():
    x, y, xt = _data()
    kd, kt, kk = _kernels(SPEC, x, xt)
    post = nc.ntk_gp(SPEC, x, y, xt, t=np.inf, diag_reg=1e-10, y_test=np.zeros(4))
    np.testing.assert_allclose(post.mean_train, y, atol=1e-6)
    assert post.train_loss < 1e-12 and post.test_loss > 0
    np.testing.assert_allclose(post.var_train, 0.0, atol=1e-6)
    gp = nc.ntk_gp(SPEC, x, y, xt, t=np.inf, kernel="nngp", diag_reg=1e-4)
    k_noisy = kd.nngp + gp.reg * np.eye(len(y))
    np.testing.assert_allclose(gp.reg, 1e-4 * np.mean(np.diag(kd.nngp)))
    np.testing.assert_allclose(gp.mean, kt.nngp @ np.linalg.solve(k_noisy, y), atol=1e-10)
    np.testing.assert_allclose(gp.cov, kk.nngp - kt.nngp @ np.linalg.solve(k_noisy, kt.nngp.T), atol=1e-10)
    # t = inf is the limit of large t
    late = nc.ntk_gp(SPEC, x, y, xt, t=1e9, diag_reg=1e-10)
    np.testing.assert_allclose(late.mean, post.mean, atol=1e-8)


def test_losses_fall_over_time_and_expected_loss_adds_the_variance():
    x, y, xt = _data()
    t = np.geomspace(1e-2, 1e4, 30)
    post = nc.ntk_gp(SPEC, x, y, xt, t=t, y_test=np.sin(xt[:, 0]))
    assert np.all(np.diff(post.train_loss) <= 1e-12)
    np.testing.assert_allclose(post.expected_train_loss, post.train_loss + 0.5 * post.var_train.mean(axis=1))
    np.testing.assert_allclose(post.expected_test_loss, post.test_loss + 0.5 * post.var.mean(axis=1))


def test_scalar_t_drops_the_time_axis_and_float32_inputs_work():
    x, y, xt = _data()
    post = nc.ntk_gp(SPEC, x.astype(np.float32), y.astype(np.float32)[:, None], xt.astype(np.float32), t=2.0)
    assert post.mean.shape == (4,) and post.cov.shape == (4, 4) and np.ndim(post.train_loss) == 0
    ref = nc.ntk_gp(SPEC, x, y, xt, t=2.0)
    np.testing.assert_allclose(post.mean, ref.mean, rtol=1e-4, atol=1e-5)


def test_singular_and_ill_conditioned_kernels_warn_and_stay_finite():
    x, y, xt = _data()
    xd, yd = np.concatenate([x, x[:2]]), np.concatenate([y, y[:2] + 0.5])    # duplicates, clashing labels
    for reg in (0.0, 1e-4):
        post = nc.ntk_gp(SPEC, xd, yd, xt, t=[1.0, np.inf], diag_reg=reg)
        assert post.warning and "singular" in post.warning
        assert all(np.all(np.isfinite(a)) for a in (post.mean, post.cov, post.var, post.train_loss))
    assert nc.ntk_gp(SPEC, x, y, xt, t=1.0).warning is None
    # ordered phase: with depth every entry of the kernel approaches the same constant
    deep = nc.MLP(depth=1000, width=1, w_std=1.0, b_std=0.5, activation="erf")
    post = nc.ntk_gp(deep, x, y, xt, t=[1.0, np.inf])
    assert post.warning is not None and post.condition_number > 1e12
    assert np.all(np.isfinite(post.mean)) and np.all(np.isfinite(post.cov))


def test_invalid_arguments_name_the_field():
    x, y, xt = _data()
    for kwargs, field in [(dict(kernel="rbf"), "kernel"), (dict(t=-1.0), "t must be"), (dict(t=[]), "t must"),
                          (dict(diag_reg=-1), "diag_reg"), (dict(y_test=np.zeros(3)), "y_test"),
                          (dict(fx_train_0=np.zeros(6)), "fx_train_0 and fx_test_0")]:
        with pytest.raises(ValueError, match=field):
            nc.ntk_gp(SPEC, x, y, xt, **kwargs)
    with pytest.raises(ValueError, match="y_train"):
        nc.ntk_gp(SPEC, x, y[:2], xt)
    with pytest.raises(ValueError, match="x_train has .* more than the limit"):
        nc.ntk_gp(SPEC, np.zeros((_validation.MAX_GP_TRAIN_POINTS + 1, 2)), np.zeros(_validation.MAX_GP_TRAIN_POINTS + 1), xt)
    with pytest.raises(ValueError, match="compute_cov"):
        nc.ntk_gp(SPEC, x, y, np.zeros((3000, 2)), t=np.arange(10.0))
    assert nc.ntk_gp(SPEC, x, y, np.zeros((3000, 2)), t=np.arange(10.0), compute_cov=False).cov is None


def test_memoised_training_factorisation_gives_the_same_answer():
    x, y, xt = _data(seed=4)
    kd, kt, kk = _kernels(SPEC, x, xt)
    explicit = nc.ntk_gp_posterior(_gp_kernels(kd, kt, kk), y, t=[0.5, np.inf])
    first = nc.ntk_gp(SPEC, x, y, xt, t=[0.5, np.inf])
    again = nc.ntk_gp(SPEC, x.copy(), 2 * y, xt[:2], t=[0.5, np.inf])          # cached train side, new y, x_test
    np.testing.assert_allclose(first.mean, explicit.mean, rtol=1e-12)
    np.testing.assert_allclose(first.cov, explicit.cov, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(again.mean, 2 * first.mean[:, :2], rtol=1e-12)
    moved = nc.ntk_gp(SPEC, x + 0.1, y, xt, t=0.5)                                # different training set
    assert not np.allclose(moved.mean, first.mean[0])


@pytest.mark.parametrize("activation", ["erf", "tanh"])
def test_variance_without_covariance_uses_the_kernel_diagonal_and_matches(activation):
    """compute_cov=False needs only K(x*, x*)'s diagonal (the variance recursion): the same
    variances as the full test-test kernel gives."""
    spec = nc.MLP(depth=2, w_std=1.5, b_std=0.05, activation=activation)
    x, y, xt = _data(n=5, m=6, seed=7)
    full = nc.ntk_gp(spec, x, y, xt, t=[0.3, np.inf], compute_cov=True)
    diag = nc.ntk_gp(spec, x, y, xt, t=[0.3, np.inf], compute_cov=False)
    assert diag.cov is None
    np.testing.assert_allclose(diag.var, full.var, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(diag.mean, full.mean, rtol=1e-13)


def test_other_times_on_the_same_points_compute_no_kernel(monkeypatch):
    """A page moving its time slider asks for new t on the same points: the test-side kernels are
    memoised like the training side (tanh's kernels take seconds)."""
    from ntk_core import _ntk_gp

    x, y, xt = _data(seed=11)
    first = nc.ntk_gp(SPEC, x, y, xt, t=1.0, compute_cov=False)
    calls = []
    monkeypatch.setattr(_ntk_gp, "infinite_kernels", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(_ntk_gp, "infinite_kernel_diagonals", lambda *a, **k: calls.append(a))
    later = nc.ntk_gp(SPEC, x, y, xt, t=[1.0, 5.0], compute_cov=False)
    assert calls == []
    np.testing.assert_allclose(later.mean[0], first.mean, rtol=1e-14)
    assert not np.allclose(later.mean[1], first.mean)


def test_kernel_level_equals_spec_level_and_a_direct_solve():
    """nc.ntk_gp_posterior on explicit kernels == nc.ntk_gp; at t = inf the mean is the kernel regression
    Theta(x*, X) (Theta + reg I)^-1 Y and the NNGP mode is the GP posterior with noise variance reg
    (independent linear solves with scipy)."""
    x, y, xt = _data(seed=7)
    kd, kt, kk = _kernels(SPEC, x, xt)
    ks = _gp_kernels(kd, kt, kk)
    for kernel in ("ntk", "nngp"):
        spec_level = nc.ntk_gp(SPEC, x, y, xt, t=[0.3, np.inf], kernel=kernel, y_test=np.ones(4))
        kernel_level = nc.ntk_gp_posterior(ks, y, t=[0.3, np.inf], kernel=kernel, y_test=np.ones(4))
        for field in ("mean", "cov", "var", "mean_train", "var_train", "train_loss", "test_loss"):
            np.testing.assert_allclose(getattr(kernel_level, field), getattr(spec_level, field),
                                       rtol=1e-12, atol=1e-14, err_msg=field)
    reg = 1e-4 * np.mean(np.diag(kd.ntk))
    post = nc.ntk_gp_posterior(ks, y, t=np.inf, diag_reg=1e-4)
    direct = kt.ntk @ scipy.linalg.solve(kd.ntk + reg * np.eye(len(y)), y, assume_a="pos")
    np.testing.assert_allclose(post.mean, direct, rtol=1e-8)
    reg = 1e-4 * np.mean(np.diag(kd.nngp))
    gp = nc.ntk_gp_posterior(ks, y, t=np.inf, kernel="nngp", diag_reg=1e-4)
    k_noisy = kd.nngp + reg * np.eye(len(y))
    np.testing.assert_allclose(gp.mean, kt.nngp @ scipy.linalg.solve(k_noisy, y), rtol=1e-8)
    np.testing.assert_allclose(gp.cov, kk.nngp - kt.nngp @ scipy.linalg.solve(k_noisy, kt.nngp.T),
                               rtol=1e-6, atol=1e-10)


def test_kernel_level_without_nngp_gives_the_mean_only():
    x, y, xt = _data(seed=8)
    kd, kt, kk = _kernels(SPEC, x, xt)
    full = nc.ntk_gp(SPEC, x, y, xt, t=[1.0, 4.0])
    mean_only = nc.ntk_gp_posterior(nc.GPKernels(ntk_train_train=kd.ntk, ntk_test_train=kt.ntk), y, t=[1.0, 4.0])
    np.testing.assert_allclose(mean_only.mean, full.mean, rtol=1e-12)
    np.testing.assert_allclose(mean_only.train_loss, full.train_loss, rtol=1e-12)
    assert mean_only.var is None and mean_only.cov is None and mean_only.expected_train_loss is None
    with pytest.raises(ValueError, match="nngp_train_train and nngp_test_train"):
        nc.ntk_gp_posterior(nc.GPKernels(ntk_train_train=kd.ntk, ntk_test_train=kt.ntk), y, kernel="nngp")
    with pytest.raises(ValueError, match="ntk_test_train must have shape"):
        nc.ntk_gp_posterior(nc.GPKernels(ntk_train_train=kd.ntk, ntk_test_train=kt.ntk.T), y)
    with pytest.raises(ValueError, match="not finite"):
        nc.ntk_gp_posterior(nc.GPKernels(ntk_train_train=kd.ntk * np.inf, ntk_test_train=kt.ntk), y)
    with pytest.raises(ValueError, match="GPKernels"):
        nc.ntk_gp_posterior((kd.nngp, kd.ntk, kt.nngp, kt.ntk, kk.nngp), y)
