"""NTK-GP: the distribution of an infinitely wide network's outputs after training for time t.

Theorem 5.1 of seed 003 (Lee et al. 2019, eq. 16), with Theta = NTK and K = NNGP on the training set X:

    mean(x*) = Theta(x*, X) Theta^-1 (I - e^{-Theta t / n}) Y
    cov      = K(x*, x*) + A K A^T - (A K(X, x*) + K(x*, X) A^T),   A = Theta(x*, X) Theta^-1 (I - e^{-Theta t / n})

Time convention (the one of `nc.train` and Neural Tangents): the loss is 1/(2n) sum_i (f(x_i) - y_i)^2 and
gradient descent with learning rate lr for s steps corresponds to t = lr * s, i.e. the gradient flow
df/dt = -(1/n) Theta (f - y). (The essay's eta multiplies a sum-loss; here eta = 1/n.)

kernel="nngp" replaces Theta by K (training only the readout layer, Lee et al. 2019 sec. 2.3.1); at t = inf it
is the Bayesian GP posterior with observation noise variance `reg` (below).

Numerics: one symmetric eigendecomposition Theta_r = V diag(lam) V^T of the regularised training kernel
Theta_r = Theta + reg I, reg = diag_reg * mean(diag Theta) (Neural Tangents' convention), gives every t at
once: Theta^-1 (I - e^{-Theta t/n}) = V diag(-expm1(-lam t/n) / lam) V^T. Eigenvalues are clipped at
lam_max * n * eps so the result is never NaN; a singular or ill-conditioned kernel (condition number above
1e12 in float64) is reported in `warning`. All linear algebra runs in float64 numpy. The training-set part
(kernel, eigendecomposition, V^T K V) is memoised for small training sets, as Neural Tangents' predictor does,
so new test points or times cost only the test kernels and a few matrix products.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import threading
from typing import Optional

import numpy as np
from threadpoolctl import threadpool_limits

from ._infinite import infinite_kernels
from ._spec import CNN, MLP, check_targets

MAX_TRAIN = 5_000
MAX_TEST = 20_000
MAX_TIMES = 100_000
MAX_COV_ENTRIES = 50_000_000        # times x n_test^2 of the full covariance
ILL_CONDITIONED = 1e12
CACHE_MAX_TRAIN = 2_000             # training sets up to this size keep their eigendecomposition
CACHE_ENTRIES = 4


@dataclasses.dataclass
class NTKGPPosterior:
    """Result of `ntk_gp`. With a scalar t the leading time axis is absent.

    mean:        (T, n_test)          predictive mean on x_test
    cov:         (T, n_test, n_test)  predictive covariance (None if compute_cov=False or f0 given)
    var:         (T, n_test)          its diagonal (None if f0 given)
    mean_train:  (T, n_train)         mean on the training inputs (same formula with x* = X)
    var_train:   (T, n_train)         variance on the training inputs
    train_loss:  (T,)                 loss of the mean, 1/(2n) sum (mean - y)^2, on the training set
    test_loss:   (T,) or None         the same against y_test
    expected_train_loss, expected_test_loss: loss averaged over the Gaussian, = loss of the mean + var / 2
    t:           the times (inf allowed);  kernel: "ntk" or "nngp";  reg: the absolute diagonal added
    condition_number: lam_max / lam_min of the unregularised training kernel (inf when singular)
    warning:     None, or a sentence for the UI
    """

    t: np.ndarray
    kernel: str
    mean: np.ndarray
    cov: Optional[np.ndarray]
    var: Optional[np.ndarray]
    mean_train: np.ndarray
    var_train: Optional[np.ndarray]
    train_loss: np.ndarray
    test_loss: Optional[np.ndarray]
    expected_train_loss: Optional[np.ndarray]
    expected_test_loss: Optional[np.ndarray]
    reg: float
    condition_number: float
    warning: Optional[str]


def _times(t):
    try:
        arr = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"t must be a number, an array of numbers or np.inf, got {t!r}") from None
    scalar = arr.ndim == 0
    arr = arr.reshape(-1)
    if arr.size == 0:
        raise ValueError("t must contain at least one time")
    if arr.size > MAX_TIMES:
        raise ValueError(f"t has {arr.size} times, more than the limit of {MAX_TIMES}")
    if np.any(np.isnan(arr)) or np.any(arr < 0):
        raise ValueError("t must be >= 0 (np.inf allowed), got NaN or a negative time")
    return arr, scalar


def _targets(y, n, name):
    return check_targets(y, n, name, dtype=np.float64)


def _coefficients(lam, times, n):
    """c[k, i] = (1 - exp(-lam_i t_k / n)) / lam_i, with t = inf giving 1 / lam_i."""
    out = np.empty((times.size, lam.size))
    for k, t in enumerate(times):
        if math.isinf(t):
            out[k] = 1.0 / lam
        else:
            out[k] = -np.expm1(-lam * (t / n)) / lam
    return out


def _posterior_parts(proj, coef, vty, prior_proj, prior_mid, k_prior, compute_cov):
    """Mean, variance and (optionally) covariance on a set of points for every time.

    proj = D(x*, X) V, prior_proj = V^T K(X, x*), prior_mid = V^T K_mid V, k_prior = K(x*, x*)."""
    k_diag = np.diag(k_prior)
    mean = (coef * vty) @ proj.T                                    # (T, m)
    var = np.empty_like(mean)
    cov = np.empty((coef.shape[0], proj.shape[0], proj.shape[0])) if compute_cov else None
    for k in range(coef.shape[0]):
        r = proj * coef[k]                                          # A V = D(x*,X) V diag(c)
        h = 0.5 * (r @ prior_mid) - prior_proj.T                    # so that cov = K + H R^T + R H^T
        var[k] = k_diag + 2.0 * np.einsum("ij,ij->i", h, r)
        if compute_cov:
            hr = h @ r.T
            cov[k] = k_prior + hr + hr.T
    return mean, var, cov

@dataclasses.dataclass(frozen=True)
class _Factorization:
    """Everything ntk_gp needs from the training set alone (reused across x_test and t)."""

    nngp_dd: np.ndarray
    lam: np.ndarray          # eigenvalues of the regularised dynamics kernel, clipped > 0
    lam_unreg: np.ndarray    # the same minus reg (eigenvalues of the unregularised kernel)
    vecs: np.ndarray
    vt_k: np.ndarray         # V^T K(X, X)
    prior_mid: np.ndarray    # V^T K_mid V  (K_mid = K, or K + reg I for "nngp")
    reg: float
    cond: float
    warning: Optional[str]
    zero: bool


def _factorize(nngp_dd, ntk_dd, kernel, diag_reg) -> _Factorization:
    for a in (nngp_dd, ntk_dd):
        if not np.all(np.isfinite(a)):
            raise ValueError("the kernel of this network is not finite on these inputs (overflow)")
    n = nngp_dd.shape[0]
    dyn_dd = ntk_dd if kernel == "ntk" else nngp_dd
    dyn_dd = 0.5 * (dyn_dd + dyn_dd.T)
    reg = diag_reg * float(np.mean(np.diag(dyn_dd)))
    # One BLAS thread for LAPACK: multi-threaded eigh slows down 20x or more when the cores are shared.
    with threadpool_limits(1, user_api="blas"):
        lam, vecs = np.linalg.eigh(dyn_dd + reg * np.eye(n))
    lam_unreg = lam - reg
    lam_max = float(lam[-1])
    warning, zero = None, False
    if lam_max <= 0 or not math.isfinite(lam_max):
        # A zero kernel: training never moves the outputs.
        lam, lam_unreg, cond, zero = np.ones(n), np.zeros(n), math.inf, True
        warning = "the training kernel is zero: the outputs do not move during training"
    else:
        floor = lam_max * n * np.finfo(np.float64).eps
        lo = float(lam_unreg[0])
        cond = math.inf if lo <= floor else float(lam_unreg[-1] / lo)
        if cond > ILL_CONDITIONED:
            cond_text = "singular" if math.isinf(cond) else f"ill-conditioned (condition number {cond:.2g})"
            if reg > 0:
                warning = (f"the training {kernel.upper()} is {cond_text}; results rely on diag_reg = {diag_reg:g} "
                           f"(condition number {lam_max / max(float(lam[0]), floor):.2g} after regularisation)")
            else:
                warning = f"the training {kernel.upper()} is {cond_text} and diag_reg = 0; tiny eigenvalues were clipped"
        lam = np.maximum(lam, floor)
    # Prior of the initial function: K on the training set (for "nngp", the observation covariance K + reg I,
    # so that t = inf is exactly the GP posterior with noise variance reg).
    vt_k = vecs.T @ nngp_dd
    prior_mid = vt_k @ vecs
    if kernel == "nngp":
        prior_mid = prior_mid + reg * np.eye(n)
    for a in (nngp_dd, lam, lam_unreg, vecs, vt_k, prior_mid):
        a.setflags(write=False)       # shared through the cache
    return _Factorization(nngp_dd, lam, lam_unreg, vecs, vt_k, prior_mid, reg, cond, warning, zero)


_CACHE: "collections.OrderedDict" = collections.OrderedDict()
_CACHE_LOCK = threading.Lock()


def _train_factorization(spec, x_train, kernel, diag_reg) -> _Factorization:
    """_factorize on the infinite-width kernels of x_train, memoised (LRU, small training sets only):
    the UI asks for many times and test grids on one training set, like Neural Tangents' predictor."""
    x = np.ascontiguousarray(x_train)
    cacheable = x.shape[0] <= CACHE_MAX_TRAIN
    key = None
    if cacheable:
        try:
            key = (hash(spec), kernel, diag_reg, x.shape, x.dtype.str, hashlib.sha1(x.tobytes()).hexdigest())
        except TypeError:          # an unhashable custom activation
            key = None
    if key is not None:
        with _CACHE_LOCK:
            if key in _CACHE:
                _CACHE.move_to_end(key)
                return _CACHE[key]
    k_dd = infinite_kernels(spec, x_train)
    fact = _factorize(np.asarray(k_dd.nngp, np.float64), np.asarray(k_dd.ntk, np.float64), kernel, diag_reg)
    if key is not None:
        with _CACHE_LOCK:
            _CACHE[key] = fact
            while len(_CACHE) > CACHE_ENTRIES:
                _CACHE.popitem(last=False)
    return fact


def ntk_gp(
    spec,
    x_train,
    y_train,
    x_test,
    t=np.inf,
    kernel: str = "ntk",
    diag_reg: float = 1e-4,
    y_test=None,
    compute_cov: bool = True,
    fx_train_0=None,
    fx_test_0=None,
    kernels=None,
) -> NTKGPPosterior:
    """NTK-GP (or NNGP) predictive distribution on x_test at time(s) t (scalar, array, or np.inf).

    See the module docstring for the formula, the time convention (t = lr * steps of `nc.train`) and the
    regularisation. fx_train_0, fx_test_0: outputs of one network at initialisation; then `mean` is that
    network's linearised trajectory fx_test_0 + A (Y - fx_train_0) and no covariance is returned.
    kernels: optional precomputed (nngp_dd, ntk_dd, nngp_td, ntk_td, nngp_tt) to skip nc.infinite_kernels."""
    if not isinstance(spec, (MLP, CNN)):
        raise ValueError(f"spec must be an nc.MLP or nc.CNN, got {type(spec).__name__}")
    if kernel not in ("ntk", "nngp"):
        raise ValueError(f"kernel must be 'ntk' or 'nngp', got {kernel!r}")
    try:
        diag_reg = float(diag_reg)
    except (TypeError, ValueError):
        raise ValueError(f"diag_reg must be a number, got {diag_reg!r}") from None
    if not math.isfinite(diag_reg) or diag_reg < 0:
        raise ValueError(f"diag_reg must be a finite number >= 0, got {diag_reg}")
    times, scalar = _times(t)
    n, m = len(x_train), len(x_test)
    if n < 1 or m < 1:
        raise ValueError("x_train and x_test must contain at least one point")
    if n > MAX_TRAIN:
        raise ValueError(f"x_train has {n} points, more than the limit of {MAX_TRAIN}")
    if m > MAX_TEST:
        raise ValueError(f"x_test has {m} points, more than the limit of {MAX_TEST}")
    y = _targets(y_train, n, "y_train")
    yt = None if y_test is None else _targets(y_test, m, "y_test")
    given_f0 = fx_train_0 is not None or fx_test_0 is not None
    if given_f0:
        if fx_train_0 is None or fx_test_0 is None:
            raise ValueError("fx_train_0 and fx_test_0 must be given together")
        f0_train = _targets(fx_train_0, n, "fx_train_0")
        f0_test = _targets(fx_test_0, m, "fx_test_0")
        compute_cov = False
    if compute_cov and times.size * m * m > MAX_COV_ENTRIES:
        raise ValueError(
            f"compute_cov: {times.size} times x {m}^2 test pairs exceeds the limit of {MAX_COV_ENTRIES:,} "
            "covariance entries; pass compute_cov=False (the variance is still returned) or fewer times"
        )

    if kernels is None:
        fact = _train_factorization(spec, x_train, kernel, diag_reg)
        k_td = infinite_kernels(spec, x_test, x_train)
        nngp_td, ntk_td = k_td.nngp, k_td.ntk
        nngp_tt = infinite_kernels(spec, x_test).nngp
    else:
        nngp_dd, ntk_dd, nngp_td, ntk_td, nngp_tt = kernels
        fact = _factorize(np.asarray(nngp_dd, np.float64), np.asarray(ntk_dd, np.float64), kernel, diag_reg)
    nngp_td, ntk_td, nngp_tt = (np.asarray(a, dtype=np.float64) for a in (nngp_td, ntk_td, nngp_tt))
    if nngp_td.shape != (m, n) or ntk_td.shape != (m, n) or nngp_tt.shape != (m, m) or fact.vecs.shape != (n, n):
        raise ValueError("kernels have the wrong shapes for x_train and x_test")
    for a in (nngp_td, ntk_td, nngp_tt):
        if not np.all(np.isfinite(a)):
            raise ValueError("the kernel of this network is not finite on these inputs (overflow)")

    dyn_td = (ntk_td if kernel == "ntk" else nngp_td) * (0.0 if fact.zero else 1.0)
    vecs = fact.vecs
    coef = _coefficients(fact.lam, times, n)
    vty = vecs.T @ (y - f0_train if given_f0 else y)
    proj_test = dyn_td @ vecs
    proj_train = vecs * fact.lam_unreg                           # Theta(X, X) V = V diag(lam - reg)
    mean, var, cov = _posterior_parts(proj_test, coef, vty, vecs.T @ nngp_td.T, fact.prior_mid, nngp_tt,
                                      compute_cov)
    mean_tr, var_tr, _ = _posterior_parts(proj_train, coef, vty, fact.vt_k, fact.prior_mid, fact.nngp_dd, False)
    reg, cond, warning = fact.reg, fact.cond, fact.warning
    if given_f0:
        mean, mean_tr, var, var_tr = mean + f0_test, mean_tr + f0_train, None, None
    else:
        var, var_tr = np.maximum(var, 0.0), np.maximum(var_tr, 0.0)

    def loss(mu, target):
        return 0.5 * np.mean((mu - target) ** 2, axis=-1)

    train_loss = loss(mean_tr, y)
    test_loss = None if yt is None else loss(mean, yt)
    exp_train = None if var_tr is None else train_loss + 0.5 * var_tr.mean(axis=-1)
    exp_test = None if (yt is None or var is None) else test_loss + 0.5 * var.mean(axis=-1)

    def squeeze(a):
        return a[0] if (scalar and a is not None) else a

    return NTKGPPosterior(
        t=times[0] if scalar else times,
        kernel=kernel,
        mean=squeeze(mean),
        cov=squeeze(cov),
        var=squeeze(var),
        mean_train=squeeze(mean_tr),
        var_train=squeeze(var_tr),
        train_loss=squeeze(train_loss),
        test_loss=squeeze(test_loss),
        expected_train_loss=squeeze(exp_train),
        expected_test_loss=squeeze(exp_test),
        reg=reg,
        condition_number=cond,
        warning=warning,
    )
