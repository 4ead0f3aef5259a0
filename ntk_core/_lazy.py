"""Lazy training: wide networks train like their linearisation (seed 003, section 2).

Linearisation around the initialisation theta_0 (seed 003 sec. 2.2; Lee et al. 2019, eq. 6):

    f_lin(x; theta) = f(x; theta_0) + grad f(x; theta_0) (theta - theta_0)

computed with jax.linearize (one jvp per step) and its transpose (one vjp), never a stored Jacobian.
Loss and time as `nc.train`: loss = 1/(2n) sum_i (f(x_i) - y_i)^2, GD theta <- theta - lr grad loss,
t = lr * steps, so that f_lin follows df/dt = -(1/n) Theta_0 (f - y), the NTK-GP mean of `nc.ntk_gp`
with the empirical kernel Theta_0 (exact for the linear model in the limit lr -> 0).

Laziness measures (Chizat, Oyallon, Bach 2019 "On lazy training"; Lee et al. 2019, Figs 1 and S1):

    parameter change   ||theta_t - theta_0|| / ||theta_0||
    kernel change      ||Theta_t - Theta_0||_F / ||Theta_0||_F         (empirical NTK on the training set)
    kappa_f(theta_0) = ||f(theta_0) - y|| ||D^2 f(theta_0)|| / ||D f(theta_0)||^2

with f = (f(x_1), ..., f(x_n)) in R^n (Euclidean norm; kappa does not depend on rescaling it),
||D f||^2 = lambda_max(Theta_0) (operator norm of the n x P Jacobian) and ||D^2 f|| the operator norm of the
second derivative as a symmetric bilinear map R^P x R^P -> R^n:

    ||D^2 f|| = max over ||c|| = 1, ||u|| = 1 of |sum_i c_i u^T H_i u|,    H_i = Hessian of f(x_i)

found by alternating maximisation: for fixed c the top |eigenvalue| of H_c = sum_i c_i H_i by Lanczos on
Hessian-vector products (a Krylov power iteration), for fixed u the best c = D^2 f[u, u] / ||D^2 f[u, u]||
(each step can only increase the value; exact when n = 1). Seed 003: E kappa_f <~ 2 m^-1/2 for a
one-hidden-layer net of width m in the NTK parameterization.

Stability of GD (exact for the linear model): the loss Hessian of f_lin is J^T J / n, whose top eigenvalue is

    lambda_max := lambda_max(Theta(X, X)) / n        (`lambda_max`; Theta/n, the Gauss-Newton part)

so GD on f_lin converges iff lr < 2 / lambda_max (= nc.train's lr_critical = 2 n / lambda_max(Theta)).
For the nonlinear net, Lewkowycz et al. 2020 ("The large learning rate phase of deep learning: the
catapult mechanism") find for 2 / lambda_max < lr < about 4 / lambda_max (wide nets) a loss spike during
which lambda_max(Theta_t) drops until it is below 2 / lr, then convergence; `catapult_run` records
the loss and lambda_max(Theta_t) / n over training to show what happens for a given net.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ._finite import _check_params, _ntk_layers, count_params, forward
from ._finite import as_inputs as _as_inputs
from ._finite import check_spec as _check_spec
from ._finite import draw_params as _init
from ._finite import input_shape as _input_shape
from ._spec import MLP
from ._validation import check_lr, check_targets

MAX_LAZY_PARAMS = 40_000_000      # one network (and its linearisation) in the lazy-training functions
MAX_LAZY_STEPS = 1_000_000
MAX_LAZY_POINTS = 2_000           # training points
MAX_RECORDS = 10_000
BLOWUP_FACTOR = 1e8               # as nc.train: a loss above this x (initial loss + 1) counts as diverged
DENSE_HESSIAN_PARAMS = 64         # up to this many parameters the Hessian is built densely


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------
def _check_mlp(spec):
    _check_spec(spec)
    if not isinstance(spec, MLP):
        raise ValueError("the lazy-training functions take an nc.MLP spec")


def _check_size(spec, d):
    n_params = count_params(spec, d)
    if n_params > MAX_LAZY_PARAMS:
        raise ValueError(f"spec has {n_params:,} parameters, more than the lazy-training limit of "
                         f"{MAX_LAZY_PARAMS:,} (reduce width or depth)")
    return n_params


def _check_steps(steps):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 0 <= steps <= MAX_LAZY_STEPS:
        raise ValueError(f"steps must be an integer in [0, {MAX_LAZY_STEPS:,}], got {steps!r}")
    return int(steps)


def _inputs(spec, x, y, name="x", dtype=None):
    x = _as_inputs(spec, x, name, dtype)
    if x.shape[0] > MAX_LAZY_POINTS:
        raise ValueError(f"{name} has {x.shape[0]} points, more than the limit of {MAX_LAZY_POINTS:,}")
    y = None if y is None else check_targets(y, x.shape[0], "y" if name == "x" else f"y of {name}")
    return x, y


def _record_grid(steps, record_every):
    if record_every is None:
        record_every = max(1, steps // 100)
    if isinstance(record_every, bool) or not isinstance(record_every, (int, np.integer)) or record_every < 1:
        raise ValueError(f"record_every must be a positive integer, got {record_every!r}")
    record_every = int(min(record_every, max(steps, 1)))
    n_full, rest = divmod(steps, record_every)
    if n_full + 2 > MAX_RECORDS:
        raise ValueError(f"record_every: {n_full + 1} records exceed the limit of {MAX_RECORDS:,}; record less often")
    grid = np.concatenate([np.arange(n_full + 1) * record_every, [steps] if rest else []]).astype(np.int64)
    return record_every, n_full, rest, grid


# ---------------------------------------------------------------------------------------------
# Norms of parameters and kernels
# ---------------------------------------------------------------------------------------------
def _flat(params) -> np.ndarray:
    return np.asarray(ravel_pytree(params)[0], np.float64)


def parameter_change(params_0, params_t) -> float:
    """||theta_t - theta_0|| / ||theta_0|| over all weights and biases (seed 003, sec. 2.2)."""
    a, b = _flat(params_0), _flat(params_t)
    if a.shape != b.shape:
        raise ValueError("params_0 and params_t must have the same structure")
    return float(np.linalg.norm(b - a) / np.linalg.norm(a))


def kernel_change(theta_0, theta_t) -> float:
    """||Theta_t - Theta_0||_F / ||Theta_0||_F of two empirical NTK matrices."""
    a, b = np.asarray(theta_0, np.float64), np.asarray(theta_t, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"kernels must have the same shape, got {a.shape} and {b.shape}")
    return float(np.linalg.norm(b - a) / np.linalg.norm(a))


def _theta(spec, params, x) -> np.ndarray:
    return np.asarray(_ntk_layers(spec, params, x, 0), np.float64)


def lambda_max(spec, params, x) -> float:
    """lambda_max(Theta(X, X)) / n: the top eigenvalue of the loss Hessian's Gauss-Newton part for
    loss 1/(2n) ||f - y||^2, so that GD on the linearised net is stable iff lr < 2 / lambda_max."""
    _check_mlp(spec)
    x, _ = _inputs(spec, x, None)
    _check_params(spec, params, x)
    theta = _theta(spec, params, x)
    return float(np.linalg.eigvalsh(0.5 * (theta + theta.T))[-1]) / x.shape[0]


# ---------------------------------------------------------------------------------------------
# Inverse relative scale kappa_f
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RelativeScale:
    """kappa = residual_norm * hessian_norm / jacobian_norm_sq (see the module docstring)."""

    kappa: float
    residual_norm: float        # ||f(theta_0) - y||
    hessian_norm: float         # ||D^2 f(theta_0)||
    jacobian_norm_sq: float     # ||D f(theta_0)||^2 = lambda_max(Theta_0)
    direction: np.ndarray       # the maximising c (unit vector in R^n)


@functools.partial(jax.jit, static_argnums=0)
def _hvp(spec, params, x, c, v):
    """(sum_i c_i H_i) v for a flat tangent v."""
    flat, unravel = ravel_pytree(params)

    def g(p):
        return jnp.dot(c, forward(spec, unravel(p), x)[:, 0])

    return jax.jvp(jax.grad(g), (flat,), (v,))[1]


@functools.partial(jax.jit, static_argnums=0)
def _second_derivative(spec, params, x, u):
    """D^2 f[u, u] = (u^T H_i u)_i for a flat direction u."""
    flat, unravel = ravel_pytree(params)

    def f(p):
        return forward(spec, unravel(p), x)[:, 0]

    def df(p):
        return jax.jvp(f, (p,), (u,))[1]

    return jax.jvp(df, (flat,), (u,))[1]


def _top_abs_eig(matvec, size, tol, v0):
    """Largest |eigenvalue| and its unit eigenvector of a symmetric operator given by `matvec`."""
    if size <= DENSE_HESSIAN_PARAMS:
        dense = np.stack([matvec(e) for e in np.eye(size)], axis=1)
        lam, vecs = np.linalg.eigh(0.5 * (dense + dense.T))
        k = int(np.argmax(np.abs(lam)))
        return float(lam[k]), vecs[:, k]
    from scipy.sparse.linalg import LinearOperator, eigsh

    op = LinearOperator((size, size), matvec=matvec, dtype=np.float64)
    lam, vecs = eigsh(op, k=1, which="LM", v0=v0, tol=tol, maxiter=max(100, min(20 * size, 5000)))
    return float(lam[0]), vecs[:, 0]


def hessian_norm(spec, params, x, direction=None, max_rounds: int = 30, tol: float = 1e-10
                 ) -> tuple[float, np.ndarray]:
    """||D^2 f(theta)|| on the points x (module docstring) and the maximising direction c.

    direction: the starting c (default: the first unit vector; `relative_scale` starts from the residual).
    tol: relative tolerance of the Lanczos eigenvalue and of the alternating maximisation."""
    _check_mlp(spec)
    x, _ = _inputs(spec, x, None)
    _check_params(spec, params, x)
    n = x.shape[0]
    dtype = np.dtype(params[0]["w"].dtype)
    flat = _flat(params)
    size = flat.size
    c = np.zeros(n) if direction is None else np.asarray(direction, np.float64).ravel()
    if direction is None:
        c[0] = 1.0
    if c.shape != (n,) or not np.all(np.isfinite(c)) or np.linalg.norm(c) == 0:
        c = np.ones(n)
    c = c / np.linalg.norm(c)
    rng = np.random.default_rng(0)
    v0 = rng.standard_normal(size)
    best, best_c = 0.0, c
    for _ in range(max_rounds):
        cj = jnp.asarray(c, dtype)

        def matvec(v, cj=cj):
            v = np.asarray(v, np.float64).ravel()
            return np.asarray(_hvp(spec, params, x, cj, jnp.asarray(v, dtype)), np.float64)

        lam, u = _top_abs_eig(matvec, size, tol, v0)
        v0 = u
        d = np.asarray(_second_derivative(spec, params, x, jnp.asarray(u, dtype)), np.float64)
        value = float(np.linalg.norm(d))
        value = max(value, abs(lam))
        if not math.isfinite(value):
            raise ValueError("the second derivative of this network is not finite")
        improved = value > best * (1 + tol)
        if value >= best:
            best = value
            best_c = d / value if np.linalg.norm(d) > 0 else c
        if n == 1 or not improved or np.linalg.norm(d) == 0:
            break
        c = d / np.linalg.norm(d)
    return best, best_c


def relative_scale(spec, params, x, y, tol: float = 1e-10) -> RelativeScale:
    """Inverse relative scale kappa_f(theta) = ||f - y|| ||D^2 f|| / ||D f||^2 on (x, y) (seed 003,
    sec. 2.2, after Chizat et al. 2019); kappa << 1 means lazy training. tol: see `hessian_norm`."""
    _check_mlp(spec)
    x, y = _inputs(spec, x, y)
    _check_params(spec, params, x)
    resid = np.asarray(_outputs(spec, params, x), np.float64) - y
    r_norm = float(np.linalg.norm(resid))
    j_sq = float(np.linalg.eigvalsh(_theta(spec, params, x))[-1])
    h_norm, c = hessian_norm(spec, params, x, direction=resid if r_norm > 0 else None, tol=tol)
    kappa = r_norm * h_norm / j_sq if j_sq > 0 else math.inf
    return RelativeScale(kappa=kappa, residual_norm=r_norm, hessian_norm=h_norm, jacobian_norm_sq=j_sq,
                         direction=c)


# ---------------------------------------------------------------------------------------------
# Gradient descent on f and on f_lin from the same initialisation
# ---------------------------------------------------------------------------------------------
def _tree_axpy(a, x, y):
    return jax.tree_util.tree_map(lambda u, v: a * u + v, x, y)


def _guard(alive, loss, loss_ref):
    ok = jnp.isfinite(loss) & (loss <= BLOWUP_FACTOR * (loss_ref + 1.0))
    return alive & ok


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _pair_advance(spec, k, n_records, nonlinear, lr, params0, state, x, y, x_test):
    """n_records x [k GD steps on f_lin (and on f if `nonlinear`), record].

    state = (omega, params, alive_lin, alive_net, loss_ref); omega = theta_lin - theta_0."""
    n = x.shape[0]
    xall = jnp.concatenate([x, x_test], axis=0)

    def f_train(p):
        return forward(spec, p, x)[:, 0]

    def f_all(p):
        return forward(spec, p, xall)[:, 0]

    f0, jvp_train = jax.linearize(f_train, params0)
    vjp_train = jax.linear_transpose(jvp_train, params0)
    f0_all, jvp_all = jax.linearize(f_all, params0)

    def net_loss(p):
        return 0.5 * jnp.mean((f_train(p) - y) ** 2)

    def one_step(st, _):
        omega, params, alive_lin, alive_net, loss_ref = st
        r = f0 + jvp_train(omega) - y
        alive_lin = _guard(alive_lin, 0.5 * jnp.mean(r**2), loss_ref)
        (g,) = vjp_train(r / n)
        omega = _tree_axpy(-lr * alive_lin.astype(r.dtype), g, omega)
        if nonlinear:
            loss, g_net = jax.value_and_grad(net_loss)(params)
            alive_net = _guard(alive_net, loss, loss_ref)
            params = _tree_axpy(-lr * alive_net.astype(r.dtype), g_net, params)
        return (omega, params, alive_lin, alive_net, loss_ref), None

    def record(st, _):
        st, _ = jax.lax.scan(one_step, st, None, length=k)
        omega, params = st[0], st[1]
        out_lin = f0_all + jvp_all(omega)
        out_net = f_all(params) if nonlinear else out_lin
        return st, (out_lin, out_net)

    return jax.lax.scan(record, state, None, length=n_records)


@functools.partial(jax.jit, static_argnums=0)
def _outputs(spec, params, x):
    return forward(spec, params, x)[:, 0]


@dataclasses.dataclass
class LazyPair:
    """A network and its linearisation trained by GD from the same theta_0 on the same data.

    steps, times (= lr * steps): (R,);  net_test, lin_test: (R, n_test);  net_train, lin_train: (R, n)
    sup_distance: (R,) max over x_test of |f_t - f_lin,t|
    params_0, params_net, params_lin: initial and final parameters (params_lin = theta_0 + omega_T)
    diverged_net, diverged_lin: the loss blew up (that model was frozen there)."""

    steps: np.ndarray
    times: np.ndarray
    lr: float
    lambda_max: float
    net_train: np.ndarray
    lin_train: np.ndarray
    net_test: np.ndarray
    lin_test: np.ndarray
    sup_distance: np.ndarray
    params_0: list
    params_net: Optional[list]
    params_lin: list
    diverged_net: bool
    diverged_lin: bool


def _train_pair(spec, seed, x, y, x_test, lr, steps, record_every, nonlinear, dtype, progress, n_chunks=None,
                lr_multiple=None):
    _check_mlp(spec)
    dtype = jnp.dtype(dtype)
    x, y = _inputs(spec, np.asarray(x, dtype), y, "x", dtype)
    x_test, _ = _inputs(spec, np.asarray(x_test, dtype), None, "x_test", dtype)
    if x_test.shape[1:] != x.shape[1:]:
        raise ValueError(f"x_test must have the same feature shape as x, got {x_test.shape[1:]} and {x.shape[1:]}")
    steps = _check_steps(steps)
    record_every, n_full, rest, grid = _record_grid(steps, record_every)
    shape = _input_shape(spec, tuple(int(s) for s in x.shape[1:]))
    _check_size(spec, shape)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    params0 = _init(spec, shape, dtype, jax.random.PRNGKey(int(seed) % 2**32))
    n = x.shape[0]
    lam = float(np.linalg.eigvalsh(_theta(spec, params0, x))[-1]) / n
    if lr_multiple is not None:
        if lam <= 0 or not math.isfinite(lam):
            raise ValueError("the kernel at initialisation is zero or not finite: no learning rate scale")
        lr = float(lr_multiple) * 2.0 / lam
    lr = check_lr(lr)
    y_j = jnp.asarray(y, dtype)
    f0_all = np.asarray(_outputs(spec, params0, np.concatenate([np.asarray(x), np.asarray(x_test)])), np.float64)
    loss0 = 0.5 * float(np.mean((f0_all[:n] - y) ** 2))
    zeros = [{"w": np.zeros(p["w"].shape, dtype), "b": np.zeros(p["b"].shape, dtype)} for p in params0]
    state = (zeros, params0, jnp.asarray(True), jnp.asarray(True), jnp.asarray(loss0, dtype))
    lin_rec, net_rec = [f0_all[None]], [f0_all[None]]
    if n_chunks is None:
        n_chunks = 1 if progress is None else 10
    per_chunk = max(1, math.ceil(n_full / max(1, n_chunks)))
    done = 0
    if progress is not None:
        progress(0.0)
    chunks = []
    while done < n_full:
        chunks.append((record_every, min(per_chunk, n_full - done)))
        done += chunks[-1][1]
    if rest:
        chunks.append((rest, 1))
    done_steps = 0
    for k, r in chunks:
        state, (lin, net) = _pair_advance(spec, k, r, nonlinear, jnp.asarray(lr, dtype), params0, state, x, y_j,
                                            x_test)
        lin_rec.append(np.asarray(lin, np.float64))
        net_rec.append(np.asarray(net, np.float64))
        done_steps += k * r
        if progress is not None:
            progress(done_steps / max(steps, 1))
    lin_all, net_all = np.concatenate(lin_rec), np.concatenate(net_rec)
    omega, params, alive_lin, alive_net, _ = state
    params_lin = [{k: np.asarray(p[k]) + np.asarray(o[k]) for k in ("w", "b")} for p, o in zip(params0, omega)]
    sup = np.max(np.abs(net_all[:, n:] - lin_all[:, n:]), axis=1)
    return LazyPair(
        steps=grid, times=lr * grid.astype(np.float64), lr=lr, lambda_max=lam,
        net_train=net_all[:, :n], lin_train=lin_all[:, :n], net_test=net_all[:, n:], lin_test=lin_all[:, n:],
        sup_distance=sup, params_0=params0, params_net=params if nonlinear else None, params_lin=params_lin,
        diverged_net=bool(nonlinear and not bool(alive_net)), diverged_lin=not bool(alive_lin),
    )


def train_pair(spec, seed: int, x, y, x_test, lr: Optional[float] = None, steps: int = 1000,
               record_every: Optional[int] = None, lr_multiple: Optional[float] = None, dtype=jnp.float32,
               progress: Optional[Callable[[float], None]] = None) -> LazyPair:
    """Train the network f and its linearisation f_lin (module docstring) by full-batch GD from the same
    theta_0 = nc.init_params(spec, seed, d): same data, lr, steps, loss. Give lr, or lr_multiple to use
    lr = lr_multiple * 2 / lambda_max (the stability boundary of f_lin)."""
    if (lr is None) == (lr_multiple is None):
        raise ValueError("give exactly one of lr and lr_multiple")
    if lr_multiple is not None:
        lr_multiple = check_lr(lr_multiple)
    return _train_pair(spec, seed, x, y, x_test, lr, steps, record_every, True, dtype, progress,
                       lr_multiple=lr_multiple)


def train_linearized(spec, x, y, x_test, y_test, lr, steps, seeds=range(1), record_every=None,
                     progress=None, dtype=jnp.float32, keep_params=True, **_ignored):
    """`nc.train(..., linearized=True)`: GD on f_lin for every seed, returned as a `TrainRun` (same
    initialisation, loss, records and time convention as nc.train; batch_size must be None)."""
    from ._training import TrainRun
    from ._validation import check_seeds as _seed_array

    _check_mlp(spec)
    lr = check_lr(lr)
    seeds = _seed_array(seeds)
    x_t, _ = _inputs(spec, x_test, None, "x_test", dtype)
    y_test = check_targets(y_test, x_t.shape[0], "y_test")
    y_arr = np.asarray(y, np.float64)
    y_arr = y_arr[:, 0] if y_arr.ndim == 2 else y_arr
    pairs = []
    for i, s in enumerate(seeds):
        sub = None if progress is None else (lambda f, i=i: progress((i + f) / len(seeds)))
        pairs.append(_train_pair(spec, int(s), x, y, x_test, lr, steps, record_every, False, dtype, sub))
    grid = pairs[0].steps
    train_pred = np.stack([p.lin_train for p in pairs])
    test_pred = np.stack([p.lin_test for p in pairs])
    train_loss = 0.5 * np.mean((train_pred - y_arr) ** 2, axis=-1)
    test_loss = 0.5 * np.mean((test_pred - y_test) ** 2, axis=-1)
    n = train_pred.shape[-1]
    lr_critical = np.array([2.0 / p.lambda_max if p.lambda_max > 0 else np.inf for p in pairs])
    blown = np.array([p.diverged_lin for p in pairs])
    unstable = lr > lr_critical
    diverged = blown | (unstable & (train_loss[:, -1] > train_loss[:, 0]))
    warning = None
    if np.any(unstable):
        warning = (f"learning rate {lr:g} is above the critical value 2n/lambda_max = {np.min(lr_critical):.4g} "
                   f"for {int(np.sum(unstable))} of {len(pairs)} networks: gradient descent on the linearised "
                   "network diverges")
        warnings.warn(warning, RuntimeWarning, stacklevel=3)
    params = None
    if keep_params:
        params = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[p.params_lin for p in pairs])
    del n
    return TrainRun(seeds=seeds, steps=grid, times=lr * grid.astype(np.float64), lr=lr, batch_size=None,
                    train_loss=train_loss, test_loss=test_loss, predictions=test_pred,
                    train_predictions=train_pred, lr_critical=lr_critical, diverged=diverged,
                    diverged_step=np.full(len(pairs), -1, np.int64), warning=warning, params=params)


# ---------------------------------------------------------------------------------------------
# Width sweep unit: one (width, seed)
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class LazinessPoint:
    """Laziness of one network after `steps` GD steps (module docstring).

    distance: max over x_test of |f_T - f_lin,T| after training; sup_distance: the same maximised over
    time too; relative_distance: distance / max |f_lin,T| on x_test."""

    width: int
    seed: int
    lr: float
    lambda_max: float
    distance: float
    sup_distance: float
    relative_distance: float
    parameter_change: float
    kernel_change: float
    kappa: float
    final_loss: float
    diverged: bool


def laziness_point(spec, seed: int, x, y, x_test, steps: int, lr: Optional[float] = None,
                   lr_multiple: Optional[float] = None, dtype=jnp.float64, kappa_tol: float = 1e-4
                   ) -> LazinessPoint:
    """Train f and f_lin (train_pair), then measure the distance between them, the relative parameter
    and kernel changes of f, and kappa_f at theta_0 (to relative accuracy about kappa_tol)."""
    pair = train_pair(spec, seed, x, y, x_test, lr=lr, steps=steps, lr_multiple=lr_multiple, dtype=dtype)
    x_j, y_arr = _inputs(spec, x, y, "x", dtype)
    scale = relative_scale(spec, pair.params_0, x_j, y_arr, tol=kappa_tol)
    theta0 = _theta(spec, pair.params_0, x_j)
    theta_t = _theta(spec, pair.params_net, x_j)
    final = float(pair.sup_distance[-1])
    return LazinessPoint(
        width=int(spec.width), seed=int(seed), lr=pair.lr, lambda_max=pair.lambda_max, distance=final,
        sup_distance=float(np.max(pair.sup_distance)),
        relative_distance=final / max(float(np.max(np.abs(pair.lin_test[-1]))), 1e-300),
        parameter_change=parameter_change(pair.params_0, pair.params_net),
        kernel_change=kernel_change(theta0, theta_t), kappa=scale.kappa,
        final_loss=0.5 * float(np.mean((pair.net_train[-1] - y_arr) ** 2)),
        diverged=pair.diverged_net or pair.diverged_lin,
    )


# ---------------------------------------------------------------------------------------------
# Large learning rates: loss and lambda_max over training (catapult phase)
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class CatapultRun:
    """GD on the nonlinear net at one learning rate, recording loss and lambda_max(Theta_t)/n.

    phase: "lazy" (lr < 2/lambda_0, converged), "catapult" (lr >= 2/lambda_0, converged after the loss
    rose above its initial value), "converged" (lr >= 2/lambda_0, converged without a spike),
    "diverged" (the loss blew up or ended above its initial value), from what the run did."""

    steps: np.ndarray
    times: np.ndarray
    lr: float
    lr_multiple: float          # lr / (2 / lambda_0)
    loss: np.ndarray            # (R,)
    lambda_max: np.ndarray      # (R,) lambda_max(Theta_t) / n, NaN after a blow-up
    lambda_0: float
    peak_loss: float
    diverged: bool
    diverged_step: int
    phase: str


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _catapult_advance(spec, k, n_records, lr, state, x, y):
    n = x.shape[0]

    def loss_fn(p):
        return 0.5 * jnp.mean((forward(spec, p, x)[:, 0] - y) ** 2)

    def one_step(st, _):
        params, alive, loss_ref, step, stopped = st
        loss, g = jax.value_and_grad(loss_fn)(params)
        ok = _guard(alive, loss, loss_ref)
        stopped = jnp.where(alive & ~ok, step, stopped)
        params = _tree_axpy(-lr * ok.astype(loss.dtype), g, params)
        return (params, ok, loss_ref, step + 1, stopped), None

    def record(st, _):
        st, _ = jax.lax.scan(one_step, st, None, length=k)
        params, alive = st[0], st[1]
        loss = loss_fn(params)
        lam = jnp.linalg.eigvalsh(_ntk_layers(spec, params, x, 0))[-1] / n
        nan = jnp.asarray(jnp.nan, loss.dtype)
        return st, (jnp.where(alive, loss, nan), jnp.where(alive, lam, nan))

    return jax.lax.scan(record, state, None, length=n_records)


def catapult_run(spec, seed: int, x, y, lr_multiple: float, steps: int = 500,
                 record_every: Optional[int] = None, dtype=jnp.float32) -> CatapultRun:
    """GD at lr = lr_multiple * 2 / lambda_0 (lambda_0 = lambda_max(Theta_0)/n, see `lambda_max`) on the
    nonlinear net from nc.init_params(spec, seed, d), recording the loss and lambda_max(Theta_t)/n."""
    _check_mlp(spec)
    dtype = jnp.dtype(dtype)
    x, y = _inputs(spec, x, y, "x", dtype)
    steps = _check_steps(steps)
    lr_multiple = check_lr(lr_multiple)
    record_every, n_full, rest, grid = _record_grid(steps, 1 if record_every is None and steps <= 1000
                                                    else record_every)
    shape = _input_shape(spec, tuple(int(s) for s in x.shape[1:]))
    _check_size(spec, shape)
    params0 = _init(spec, shape, dtype, jax.random.PRNGKey(int(seed) % 2**32))
    n = x.shape[0]
    lam0 = float(np.linalg.eigvalsh(_theta(spec, params0, x))[-1]) / n
    if lam0 <= 0 or not math.isfinite(lam0):
        raise ValueError("the kernel at initialisation is zero or not finite: no learning rate scale")
    lr = lr_multiple * 2.0 / lam0
    y_j = jnp.asarray(y, dtype)
    loss0 = 0.5 * float(np.mean((np.asarray(_outputs(spec, params0, x), np.float64) - y) ** 2))
    state = (params0, jnp.asarray(True), jnp.asarray(loss0, dtype), jnp.asarray(0, jnp.int32),
             jnp.asarray(-1, jnp.int32))
    losses, lams = [np.array([loss0])], [np.array([lam0])]
    for k, r in ([(record_every, n_full)] if n_full else []) + ([(rest, 1)] if rest else []):
        state, (lo, la) = _catapult_advance(spec, k, r, jnp.asarray(lr, dtype), state, x, y_j)
        losses.append(np.asarray(lo, np.float64))
        lams.append(np.asarray(la, np.float64))
    loss, lam = np.concatenate(losses), np.concatenate(lams)
    stopped = int(state[4])
    blown = stopped >= 0 or not np.isfinite(loss[-1])
    diverged = blown or loss[-1] >= loss0
    peak = float(np.nanmax(loss))
    if diverged:
        phase = "diverged"
    elif lr < 2.0 / lam0:
        phase = "lazy"
    elif peak > loss0:
        phase = "catapult"
    else:
        phase = "converged"
    return CatapultRun(steps=grid, times=lr * grid.astype(np.float64), lr=lr, lr_multiple=lr_multiple,
                       loss=loss, lambda_max=lam, lambda_0=lam0, peak_loss=peak, diverged=diverged,
                       diverged_step=stopped, phase=phase)
