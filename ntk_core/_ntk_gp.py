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

Two entry points, like Neural Tangents' `predict.gradient_descent_mse` beside `gradient_descent_mse_ensemble`:
`ntk_gp_posterior(GPKernels(...), y_train, ...)` works on kernel matrices; `ntk_gp(spec, x_train, y_train,
x_test, ...)` computes the infinite-width kernels of a network (memoising the training side) and calls the
same code.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Optional

import numpy as np
from threadpoolctl import threadpool_limits

from ._infinite import infinite_kernel_diagonals, infinite_kernels
from ._lru import LRUCache
from ._spec import CNN, MLP
from ._validation import (
    MAX_GP_TEST_POINTS,
    MAX_GP_TRAIN_POINTS,
    check_count,
    check_number,
    check_targets,
    check_times,
)

MAX_COV_ENTRIES = 50_000_000        # times x n_test^2 of the full covariance
ILL_CONDITIONED = 1e12
CACHE_MAX_TRAIN = 2_000             # training sets up to this size keep their eigendecomposition
CACHE_MAX_TEST_ENTRIES = 250_000    # test-side kernels up to this many entries (2 MB each) are kept too
CACHE_ENTRIES = 4
KERNELS = ("ntk", "nngp")


@dataclasses.dataclass
class NTKGPPosterior:
    """Result of `ntk_gp` / `ntk_gp_posterior`. With a scalar t the leading time axis is absent.

    mean:        (T, n_test)          predictive mean on x_test
    cov:         (T, n_test, n_test)  predictive covariance (None if compute_cov=False, f0 given or no NNGP)
    var:         (T, n_test)          its diagonal (None if f0 given or no NNGP kernels)
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


@dataclasses.dataclass(frozen=True)
class GPKernels:
    """Infinite-width kernels on the training inputs X (n points) and test inputs X* (m points).

    ntk_train_train  Theta(X, X)  (n, n)      nngp_train_train  K(X, X)    (n, n)
    ntk_test_train   Theta(X*, X) (m, n)      nngp_test_train   K(X*, X)   (m, n)
                                              nngp_test_test    K(X*, X*)  (m, m)

    The kernel that drives training (NTK for kernel="ntk", NNGP for "nngp") must be given on train-train
    and test-train; the NNGP kernels are needed for the variance and covariance (without them the
    posterior has the mean only)."""

    ntk_train_train: Optional[np.ndarray] = None
    ntk_test_train: Optional[np.ndarray] = None
    nngp_train_train: Optional[np.ndarray] = None
    nngp_test_train: Optional[np.ndarray] = None
    nngp_test_test: Optional[np.ndarray] = None

    def has_prior(self) -> bool:
        return all(k is not None for k in (self.nngp_train_train, self.nngp_test_train, self.nngp_test_test))


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Call:
    """Validated arguments shared by `ntk_gp` and `ntk_gp_posterior`."""

    kernel: str
    diag_reg: float
    times: np.ndarray
    scalar: bool
    y: np.ndarray
    y_test: Optional[np.ndarray]
    f0_train: Optional[np.ndarray]      # None unless fx_train_0 / fx_test_0 were given
    f0_test: Optional[np.ndarray]
    compute_cov: bool


def _check_call(n, m, y_train, t, kernel, diag_reg, y_test, compute_cov, fx_train_0, fx_test_0, has_prior) -> _Call:
    """Checks every argument but the kernels; compute_cov comes back False when no covariance is possible."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be 'ntk' or 'nngp', got {kernel!r}")
    diag_reg = check_number("diag_reg", diag_reg)
    times, scalar = check_times(t)
    check_count("x_train", n, MAX_GP_TRAIN_POINTS)
    check_count("x_test", m, MAX_GP_TEST_POINTS)
    y = check_targets(y_train, n, "y_train", dtype=np.float64)
    yt = None if y_test is None else check_targets(y_test, m, "y_test", dtype=np.float64)
    f0_train = f0_test = None
    if fx_train_0 is not None or fx_test_0 is not None:
        if fx_train_0 is None or fx_test_0 is None:
            raise ValueError("fx_train_0 and fx_test_0 must be given together")
        f0_train = check_targets(fx_train_0, n, "fx_train_0", dtype=np.float64)
        f0_test = check_targets(fx_test_0, m, "fx_test_0", dtype=np.float64)
    compute_cov = bool(compute_cov) and f0_train is None and has_prior
    if compute_cov and times.size * m * m > MAX_COV_ENTRIES:
        raise ValueError(
            f"compute_cov: {times.size} times x {m}^2 test pairs exceeds the limit of {MAX_COV_ENTRIES:,} "
            "covariance entries; pass compute_cov=False (the variance is still returned) or fewer times"
        )
    return _Call(kernel, diag_reg, times, scalar, y, yt, f0_train, f0_test, compute_cov)


def _as_kernel(a, shape, name) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.shape != shape:
        raise ValueError(f"kernels: {name} must have shape {shape} for these inputs, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("the kernel of this network is not finite on these inputs (overflow)")
    return a


# ---------------------------------------------------------------------------------------------
# Training side: one eigendecomposition
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Factorization:
    """Everything the posterior needs from the training set alone (reused across x_test and t)."""

    nngp_dd: Optional[np.ndarray]
    lam: np.ndarray                 # eigenvalues of the regularised dynamics kernel, clipped > 0
    lam_unreg: np.ndarray           # the same minus reg (eigenvalues of the unregularised kernel)
    vecs: np.ndarray
    vt_k: Optional[np.ndarray]      # V^T K(X, X)         (None without the NNGP)
    prior_mid: Optional[np.ndarray]  # V^T K_mid V  (K_mid = K, or K + reg I for "nngp")
    reg: float
    cond: float
    warning: Optional[str]
    zero: bool


def _factorize(dyn_dd, nngp_dd, kernel, diag_reg) -> _Factorization:
    """Eigendecomposition of the regularised training kernel (dyn_dd: NTK or NNGP, finite float64)."""
    n = dyn_dd.shape[0]
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
    vt_k = prior_mid = None
    if nngp_dd is not None:
        vt_k = vecs.T @ nngp_dd
        prior_mid = vt_k @ vecs
        if kernel == "nngp":
            prior_mid = prior_mid + reg * np.eye(n)
    for a in (nngp_dd, lam, lam_unreg, vecs, vt_k, prior_mid):
        if a is not None:
            a.setflags(write=False)       # shared through the cache
    return _Factorization(nngp_dd, lam, lam_unreg, vecs, vt_k, prior_mid, reg, cond, warning, zero)


# ---------------------------------------------------------------------------------------------
# Test side: mean, variance, covariance for every time
# ---------------------------------------------------------------------------------------------
def _coefficients(lam, times, n):
    """c[k, i] = (1 - exp(-lam_i t_k / n)) / lam_i, with t = inf giving 1 / lam_i."""
    out = np.empty((times.size, lam.size))
    for k, t in enumerate(times):
        if math.isinf(t):
            out[k] = 1.0 / lam
        else:
            out[k] = -np.expm1(-lam * (t / n)) / lam
    return out


def _variance(proj, coef, prior_proj, prior_mid, k_prior, compute_cov):
    """Variance and (optionally) covariance on a set of points for every time.

    proj = D(x*, X) V, prior_proj = V^T K(X, x*), prior_mid = V^T K_mid V, k_prior = K(x*, x*)."""
    k_diag = np.diag(k_prior) if k_prior.ndim == 2 else k_prior    # (m,): its diagonal only
    var = np.empty((coef.shape[0], proj.shape[0]))
    cov = np.empty((coef.shape[0], proj.shape[0], proj.shape[0])) if compute_cov else None
    for k in range(coef.shape[0]):
        r = proj * coef[k]                                          # A V = D(x*,X) V diag(c)
        h = 0.5 * (r @ prior_mid) - prior_proj.T                    # so that cov = K + H R^T + R H^T
        var[k] = k_diag + 2.0 * np.einsum("ij,ij->i", h, r)
        if compute_cov:
            hr = h @ r.T
            cov[k] = k_prior + hr + hr.T
    return np.maximum(var, 0.0), cov


def _half_mse(mu, target):
    return 0.5 * np.mean((mu - target) ** 2, axis=-1)


def _posterior(fact: _Factorization, call: _Call, dyn_td, nngp_td, nngp_tt) -> NTKGPPosterior:
    """Seed 003 Thm 5.1 on the test points from the training-side factorisation (module docstring).

    dyn_td: D(x*, X), the training kernel between test and training points; nngp_td, nngp_tt: K(x*, X),
    K(x*, x*) or None (mean only)."""
    n = fact.vecs.shape[0]
    vecs = fact.vecs
    coef = _coefficients(fact.lam, call.times, n)
    vty = vecs.T @ (call.y if call.f0_train is None else call.y - call.f0_train)
    proj_test = (dyn_td * (0.0 if fact.zero else 1.0)) @ vecs
    proj_train = vecs * fact.lam_unreg                           # Theta(X, X) V = V diag(lam - reg)
    mean = (coef * vty) @ proj_test.T                            # (T, m)
    mean_tr = (coef * vty) @ proj_train.T
    var = var_tr = cov = None
    if call.f0_train is not None:
        mean, mean_tr = mean + call.f0_test, mean_tr + call.f0_train
    elif fact.prior_mid is not None and nngp_td is not None:
        var, cov = _variance(proj_test, coef, vecs.T @ nngp_td.T, fact.prior_mid, nngp_tt, call.compute_cov)
        var_tr, _ = _variance(proj_train, coef, fact.vt_k, fact.prior_mid, fact.nngp_dd, False)

    train_loss = _half_mse(mean_tr, call.y)
    test_loss = None if call.y_test is None else _half_mse(mean, call.y_test)
    exp_train = None if var_tr is None else train_loss + 0.5 * var_tr.mean(axis=-1)
    exp_test = None if (test_loss is None or var is None) else test_loss + 0.5 * var.mean(axis=-1)

    def squeeze(a):
        return a[0] if (call.scalar and a is not None) else a

    return NTKGPPosterior(
        t=call.times[0] if call.scalar else call.times,
        kernel=call.kernel,
        mean=squeeze(mean),
        cov=squeeze(cov),
        var=squeeze(var),
        mean_train=squeeze(mean_tr),
        var_train=squeeze(var_tr),
        train_loss=squeeze(train_loss),
        test_loss=squeeze(test_loss),
        expected_train_loss=squeeze(exp_train),
        expected_test_loss=squeeze(exp_test),
        reg=fact.reg,
        condition_number=fact.cond,
        warning=fact.warning,
    )


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------
def ntk_gp_posterior(
    kernels: GPKernels,
    y_train,
    t=np.inf,
    kernel: str = "ntk",
    diag_reg: float = 1e-4,
    y_test=None,
    compute_cov: bool = True,
    fx_train_0=None,
    fx_test_0=None,
) -> NTKGPPosterior:
    """NTK-GP (or NNGP) predictive distribution at time(s) t from kernel matrices (module docstring).

    Args:
      kernels: a `GPKernels`; the training kernel of `kernel` on train-train and test-train is required,
        the three NNGP kernels give the variance and covariance.
      y_train: (n,) or (n, 1) targets.  t: scalar, array or np.inf (t = lr * steps of `nc.train`).
      kernel: "ntk" (gradient descent on every layer) or "nngp" (readout only; the GP posterior at t = inf).
      diag_reg: regularisation relative to the mean diagonal of the training kernel.
      y_test: optional test targets for `test_loss`.  compute_cov: also return the full covariance.
      fx_train_0, fx_test_0: outputs of one network at initialisation; then `mean` is that network's
        linearised trajectory fx_test_0 + A (Y - fx_train_0) and no variance is returned.
    Returns an `NTKGPPosterior`."""
    if not isinstance(kernels, GPKernels):
        raise ValueError(f"kernels must be an nc.GPKernels, got {type(kernels).__name__}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be 'ntk' or 'nngp', got {kernel!r}")
    dyn = kernel
    dyn_dd, dyn_td = getattr(kernels, f"{dyn}_train_train"), getattr(kernels, f"{dyn}_test_train")
    if dyn_dd is None or dyn_td is None:
        raise ValueError(f"kernels: kernel={kernel!r} needs {dyn}_train_train and {dyn}_test_train")
    n, m = np.shape(dyn_dd)[0], np.shape(dyn_td)[0]
    call = _check_call(n, m, y_train, t, kernel, diag_reg, y_test, compute_cov, fx_train_0, fx_test_0,
                       kernels.has_prior())
    dyn_dd = _as_kernel(dyn_dd, (n, n), f"{dyn}_train_train")
    dyn_td = _as_kernel(dyn_td, (m, n), f"{dyn}_test_train")
    nngp_dd = nngp_td = nngp_tt = None
    if kernels.has_prior():
        nngp_dd = _as_kernel(kernels.nngp_train_train, (n, n), "nngp_train_train")
        nngp_td = _as_kernel(kernels.nngp_test_train, (m, n), "nngp_test_train")
        nngp_tt = _as_kernel(kernels.nngp_test_test, (m, m), "nngp_test_test")
    fact = _factorize(dyn_dd, nngp_dd, call.kernel, call.diag_reg)
    return _posterior(fact, call, dyn_td, nngp_td, nngp_tt)


_FACTORIZATIONS = LRUCache(CACHE_ENTRIES)
_TEST_KERNELS = LRUCache(CACHE_ENTRIES)


def _cache_key(spec, options: tuple, *arrays):
    """Key of a memoised result of `spec` on these arrays (shape, dtype and bytes of each), or
    None for an unhashable custom activation."""
    try:
        spec_hash = hash(spec)
    except TypeError:
        return None
    parts = []
    for a in arrays:
        a = np.ascontiguousarray(a)
        parts.append((a.shape, a.dtype.str, hashlib.sha1(a.tobytes()).hexdigest()))
    return (spec_hash, options, tuple(parts))


def _train_factorization(spec, x_train, kernel, diag_reg) -> _Factorization:
    """_factorize on the infinite-width kernels of x_train, memoised (LRU, small training sets only):
    the UI asks for many times and test grids on one training set, like Neural Tangents' predictor."""
    x = np.ascontiguousarray(x_train)
    key = _cache_key(spec, (kernel, diag_reg), x) if x.shape[0] <= CACHE_MAX_TRAIN else None
    fact = None if key is None else _FACTORIZATIONS.get(key)
    if fact is None:
        k_dd = infinite_kernels(spec, x_train)
        nngp_dd = _as_kernel(k_dd.nngp, (x.shape[0],) * 2, "nngp_train_train")
        ntk_dd = _as_kernel(k_dd.ntk, (x.shape[0],) * 2, "ntk_train_train")
        fact = _factorize(ntk_dd if kernel == "ntk" else nngp_dd, nngp_dd, kernel, diag_reg)
        if key is not None:
            _FACTORIZATIONS.put(key, fact)
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
) -> NTKGPPosterior:
    """NTK-GP (or NNGP) predictive distribution of an infinitely wide `spec` on x_test at time(s) t.

    `ntk_gp_posterior` on the kernels of `nc.infinite_kernels(spec, ...)` (same arguments); the training
    side (kernel and eigendecomposition) is memoised for training sets of up to CACHE_MAX_TRAIN points."""
    if not isinstance(spec, (MLP, CNN)):
        raise ValueError(f"spec must be an nc.MLP or nc.CNN, got {type(spec).__name__}")
    n, m = len(x_train), len(x_test)
    call = _check_call(n, m, y_train, t, kernel, diag_reg, y_test, compute_cov, fx_train_0, fx_test_0, True)
    fact = _train_factorization(spec, x_train, call.kernel, call.diag_reg)
    nngp_td, ntk_td, nngp_tt = _test_kernels(spec, x_test, x_train, call.compute_cov)
    return _posterior(fact, call, ntk_td if call.kernel == "ntk" else nngp_td, nngp_td, nngp_tt)


def _test_kernels(spec, x_test, x_train, compute_cov: bool):
    """K(x*, X), Theta(x*, X) and K(x*, x*) (its diagonal alone when no covariance is asked: the
    variance recursion, n and not n^2 pairs), memoised (LRU) like the training side, so that a
    page asking for other times on the same points computes no kernel."""
    m, n = len(x_test), len(x_train)
    key = (_cache_key(spec, (compute_cov,), x_test, x_train)
           if m * (m + n) <= CACHE_MAX_TEST_ENTRIES else None)
    cached = None if key is None else _TEST_KERNELS.get(key)
    if cached is not None:
        return cached
    k_td = infinite_kernels(spec, x_test, x_train)
    nngp_td = _as_kernel(k_td.nngp, (m, n), "nngp_test_train")
    ntk_td = _as_kernel(k_td.ntk, (m, n), "ntk_test_train")
    if compute_cov:
        nngp_tt = _as_kernel(infinite_kernels(spec, x_test).nngp, (m, m), "nngp_test_test")
    else:
        nngp_tt = _as_kernel(infinite_kernel_diagonals(spec, x_test).nngp, (m,), "nngp_test_test diagonal")
    out = (nngp_td, ntk_td, nngp_tt)
    for a in out:
        a.setflags(write=False)           # shared through the cache
    if key is not None:
        _TEST_KERNELS.put(key, out)
    return out
