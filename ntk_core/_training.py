"""Training finite networks (singly or as ensembles) by gradient descent on the MSE loss.

Convention (the same as Neural Tangents' `predict.gradient_descent_mse*` and `nc.ntk_gp`):

    loss(params) = 1/(2n) sum_i (f(x_i) - y_i)^2          (0.5 * mean squared error)
    GD:  params <- params - lr * grad loss                 (full batch)
    SGD: the same with the loss of a random minibatch of `batch_size` points (without replacement)

so that in the small-lr limit the outputs follow the gradient flow df/dt = -(1/n) Theta (f - y) with
continuous time t = lr * steps. `TrainRun.times` holds t for every record and can be passed straight to
`nc.ntk_gp(..., t=run.times)`. (Seed 003 writes eta for the essay's sum-loss; here eta = 1/n.)

Linearised GD diverges along the top NTK eigenvector when lr * lambda_max(Theta) / n > 2, i.e. for
lr > lr_critical = 2 n / lambda_max(Theta(X, X)) (Lee et al. 2019, sec. 2.3). The run reports it
(`lr_critical`, `warning`) and freezes any network whose loss blows up (`diverged`), so the returned
arrays stay finite.

Ensembles: one `lax.scan` over steps per network, `vmap` over blocks of networks sized so a block's
weights stay in cache (`lax.map` over blocks), the networks split over up to MAX_WORKERS threads (XLA runs
these small products on one core each). The Python loop only runs between chunks of records, where the
optional `progress(fraction)` callback is called. MLPs with >= 2 hidden layers use hand-written backprop
with deferred low-rank weight updates (`_mlp_steps`); other specs use `jax.grad` (`_generic_steps`).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ._finite import (
    _as_inputs,
    _check_spec,
    _init,
    _input_shape,
    _mlp_activations_and_deltas,
    _ntk_jacobian_block,
    count_params,
    forward,
)
from ._activations import activation_fn
from ._spec import MLP, check_lr, check_targets, is_standard

# Size limits (ValueError naming the field when exceeded).
MAX_SEEDS = 1_000
MAX_ENSEMBLE_PARAMS = 300_000_000        # networks x parameters held at once (1.2 GB in float32)
MAX_STEPS = 10_000_000
MAX_TRAIN_POINTS = 20_000
MAX_RECORDED_VALUES = 100_000_000        # networks x records x (train + test points)
LAMBDA_PER_NET_POINTS = 256              # above this many training points lambda_max comes from network 0
MAX_WORKERS = 2                          # threads running parts of an ensemble concurrently
CACHE_BUDGET = 8 * 2**20                 # bytes of weights per block of networks run together
BLOWUP_FACTOR = 1e8                      # a loss above BLOWUP_FACTOR * (initial loss + 1) counts as diverged


@dataclasses.dataclass
class TrainRun:
    """Result of `train`. Arrays are indexed (network, record, ...); record k is after `steps[k]` steps.

    train_loss, test_loss: (n_nets, n_records)   0.5 * mean squared error on the full train / test set
    predictions:           (n_nets, n_records, n_test)   f(x_test) over time
    train_predictions:     (n_nets, n_records, n_train)  f(x_train) over time
    steps:                 (n_records,)  step counts;  times = lr * steps (continuous time, see module doc)
    lr_critical:           (n_nets,)     2 n / lambda_max of each network's empirical NTK at initialisation
    diverged:              (n_nets,)     the loss blew up (that network was frozen) or lr > lr_critical and
                                         the final loss exceeds the initial one
    diverged_step:         (n_nets,)     first step at which the blow-up was detected, -1 if none
    warning:               None, or a sentence for the UI (learning rate above the critical value, ...)
    params:                final parameters stacked over networks (leading axis), or None
    """

    seeds: np.ndarray
    steps: np.ndarray
    times: np.ndarray
    lr: float
    batch_size: Optional[int]
    train_loss: np.ndarray
    test_loss: np.ndarray
    predictions: np.ndarray
    train_predictions: np.ndarray
    lr_critical: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    warning: Optional[str] = None
    params: Optional[list] = None

    def params_of(self, i: int):
        """Final parameters of network i (in the format of nc.init_params)."""
        if self.params is None:
            raise ValueError("params were not kept (train(..., keep_params=False))")
        return jax.tree_util.tree_map(lambda p: p[i], self.params)


def _loss(spec, params, x, y):
    f = forward(spec, params, x)[:, 0]
    return 0.5 * jnp.mean((f - y) ** 2)


def _record(spec, params, x, y, x_test, y_test):
    f = forward(spec, params, jnp.concatenate([x, x_test], axis=0))[:, 0]
    f_train, f_test = f[: x.shape[0]], f[x.shape[0]:]
    big = jnp.finfo(f.dtype).max
    f_train = jnp.nan_to_num(f_train, nan=big, posinf=big, neginf=-big)
    f_test = jnp.nan_to_num(f_test, nan=big, posinf=big, neginf=-big)
    train_loss = jnp.nan_to_num(0.5 * jnp.mean((f_train - y) ** 2), nan=big, posinf=big)
    test_loss = jnp.nan_to_num(0.5 * jnp.mean((f_test - y_test) ** 2), nan=big, posinf=big)
    return train_loss, test_loss, f_train, f_test


def _minibatch(x, y, key, batch_size):
    if batch_size is None:
        return x, y, key
    key, sub = jax.random.split(key)
    idx = jax.random.permutation(sub, x.shape[0])[:batch_size]
    return x[idx], y[idx], key


def _guard(alive, loss, loss_ref, stopped_at, step):
    """Freeze a network whose loss is no longer finite or has grown by BLOWUP_FACTOR."""
    ok = alive & jnp.isfinite(loss) & (loss <= BLOWUP_FACTOR * (loss_ref + 1.0))
    return ok, jnp.where(alive & ~ok, jnp.asarray(step).astype(stopped_at.dtype), stopped_at)


def _generic_steps(spec, lr, batch_size, n_steps, x, y, carry, step0):
    """n_steps of GD/SGD with jax.grad (any architecture)."""
    loss_grad = jax.value_and_grad(functools.partial(_loss, spec))

    def step(carry, i):
        params, key, alive, loss_ref, stopped_at = carry
        xb, yb, key = _minibatch(x, y, key, batch_size)
        loss, grads = loss_grad(params, xb, yb)
        alive, stopped_at = _guard(alive, loss, loss_ref, stopped_at, step0 + i)
        scale = jnp.where(alive, lr, 0.0).astype(loss.dtype)
        params = jax.tree_util.tree_map(lambda p, g: p - scale * g, params, grads)
        return (params, key, alive, loss_ref, stopped_at), None

    return jax.lax.scan(step, carry, jnp.arange(n_steps))[0]


def _mlp_steps(spec, lr, batch_size, n_steps, window, x, y, carry, step0):
    """n_steps of GD/SGD for an MLP with hand-written backprop and deferred low-rank weight updates.

    A hidden-to-hidden weight matrix receives a rank-(batch) update per step, W <- W - lr s a^T g.
    Within a window of `window` steps the updates are kept as factors, W = B + U^T V (U: rows
    -lr s a, V: rows g), so each step costs two products with the fixed B (forward a B, backward
    g B^T, with B^T kept too) plus thin products with U and V; at the end of the window B += U^T V (one GEMM)
    and B^T is refreshed. Exact in exact arithmetic; it replaces three memory-bound passes over W per
    step by two cache-friendly ones. U, V are also kept transposed so that no product needs a copy."""
    phi = activation_fn(spec.activation)
    w_std, b_std = float(spec.w_std), float(spec.b_std)
    params, key, alive, loss_ref, stopped_at = carry
    n_layers = len(params)
    mids = list(range(1, n_layers - 1))
    rows = x.shape[0] if batch_size is None else batch_size
    dtype = params[0]["w"].dtype
    dus = jax.lax.dynamic_update_slice

    def one_step(state, i, j):
        params, bt, low, key, alive, stopped_at = state
        xb, yb, key = _minibatch(x, y, key, batch_size)
        slot = j * rows
        inputs, derivs, low = [], [], dict(low)
        a = xb
        for l, layer in enumerate(params[:-1]):
            inputs.append(a)
            s = w_std / math.sqrt(a.shape[-1])
            z = a @ layer["w"]
            if l in low:
                u, ut, v, vt = low[l]
                # This step's U rows are written now (its V rows are still zero, so they add nothing).
                a_scaled = -lr * s * a
                u, ut = dus(u, a_scaled, (slot, 0)), dus(ut, a_scaled.T, (0, slot))
                low[l] = (u, ut, v, vt)
                z = z + (a @ ut) @ v
            h = s * z + b_std * layer["b"]
            a, d = jax.jvp(phi, (h,), (jnp.ones_like(h),))
            derivs.append(d)
        inputs.append(a)
        f = (w_std / math.sqrt(a.shape[-1])) * (a @ params[-1]["w"]) + b_std * params[-1]["b"]
        resid = f[:, 0] - yb
        loss = 0.5 * jnp.mean(resid**2)
        alive, stopped_at = _guard(alive, loss, loss_ref, stopped_at, step0 + i)
        on = alive.astype(dtype)
        g = (on / rows) * resid[:, None]          # d loss / d h^{L+1}, zero once frozen
        new_params = list(params)
        for l in range(n_layers - 1, -1, -1):
            a_in = inputs[l]
            s = w_std / math.sqrt(a_in.shape[-1])
            if l > 0:
                if l in low:
                    u, ut, v, vt = low[l]
                    back = g @ bt[l] + (g @ vt) @ u
                else:
                    back = g @ params[l]["w"].T
                g_next = s * back * derivs[l - 1]
            b_new = params[l]["b"] - (lr * b_std) * g.sum(0)
            if l in low:
                low[l] = (u, ut, dus(v, g, (slot, 0)), dus(vt, g.T, (0, slot)))
                new_params[l] = {"w": params[l]["w"], "b": b_new}
            else:
                new_params[l] = {"w": params[l]["w"] - (lr * s) * (a_in.T @ g), "b": b_new}
            if l > 0:
                g = g_next
        return (new_params, bt, low, key, alive, stopped_at), None

    def one_window(state, w0):
        params, bt, key, alive, stopped_at = state
        width = params[0]["w"].shape[1]
        zeros, zeros_t = jnp.zeros((window * rows, width), dtype), jnp.zeros((width, window * rows), dtype)
        low = {l: (zeros, zeros_t, zeros, zeros_t) for l in mids}

        def step(st, j):
            return one_step(st, w0 + j, j)

        (params, bt, low, key, alive, stopped_at), _ = jax.lax.scan(
            step, (params, bt, low, key, alive, stopped_at), jnp.arange(window)
        )
        params, bt = list(params), dict(bt)
        for l in mids:
            u, ut, v, vt = low[l]
            w_new = params[l]["w"] + ut @ v
            params[l] = {"w": w_new, "b": params[l]["b"]}
            bt[l] = w_new.T
        return (params, bt, key, alive, stopped_at), None

    bt = {l: params[l]["w"].T for l in mids}
    state = (params, bt, key, alive, stopped_at)
    state, _ = jax.lax.scan(one_window, state, jnp.arange(n_steps // window) * window)
    params, _, key, alive, stopped_at = state
    return params, key, alive, loss_ref, stopped_at


def _window_size(spec, record_every, rows):
    """Deferred-update window of _mlp_steps: the largest divisor of record_every with
    window * rows <= width / 4 (so the thin products stay cheap), at most 16; 0 = use _generic_steps."""
    if not isinstance(spec, MLP) or spec.depth < 2 or is_standard(spec):
        return 0
    limit = min(16, spec.width // (4 * rows))
    if limit < 2:
        return 0
    return max(d for d in range(1, limit + 1) if record_every % d == 0)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5), donate_argnums=(6,))
def _advance(spec, lr, batch_size, record_every, n_records, block, state, x, y, x_test, y_test):
    """n_records x [record_every steps, record] for every network of `state` (leading axis).

    Networks run `block` at a time (vmapped), each block through all the steps before the next, so a
    block's weights stay in cache."""
    window = _window_size(spec, record_every, x.shape[0] if batch_size is None else batch_size)

    def one_net(carry, step0):
        def record_block(carry, r):
            s0 = step0 + r * record_every
            if window:
                carry = _mlp_steps(spec, lr, batch_size, record_every, window, x, y, carry, s0)
            else:
                carry = _generic_steps(spec, lr, batch_size, record_every, x, y, carry, s0)
            return carry, _record(spec, carry[0], x, y, x_test, y_test)

        return jax.lax.scan(record_block, carry, jnp.arange(n_records))

    carry, step0 = state
    n_nets = carry[2].shape[0]
    blocked = jax.tree_util.tree_map(lambda a: a.reshape((n_nets // block, block) + a.shape[1:]), carry)
    carry, recs = jax.lax.map(jax.vmap(lambda c: one_net(c, step0)), blocked)
    unblock = lambda a: a.reshape((n_nets,) + a.shape[2:])
    carry = jax.tree_util.tree_map(unblock, carry)
    recs = jax.tree_util.tree_map(unblock, recs)
    return (carry, step0 + n_records * record_every), recs


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _init_ensemble(spec, shape, dtype, keys, x, y, x_test, y_test):
    params = jax.vmap(lambda k: _init(spec, shape, dtype, k))(keys)
    recs = jax.vmap(lambda p: _record(spec, p, x, y, x_test, y_test))(params)
    return params, recs


@functools.partial(jax.jit, static_argnums=0)
def _lambda_max_layers(spec, params, x):
    """Largest eigenvalue of each network's empirical NTK on x (per-layer formula, vmapped)."""
    def one(p):
        inputs, deltas = _mlp_activations_and_deltas(spec, p, x)
        theta = 0.0
        for a, d in zip(inputs, deltas):
            theta = theta + (d @ d.T) * ((float(spec.w_std) ** 2 / a.shape[-1]) * (a @ a.T) + float(spec.b_std) ** 2)
        return jnp.linalg.eigvalsh(theta)[-1]

    return jax.vmap(one)(params)


def _lambda_max(spec, params, x, n_nets):
    if isinstance(spec, MLP) and not is_standard(spec):
        if x.shape[0] <= LAMBDA_PER_NET_POINTS:
            return np.asarray(_lambda_max_layers(spec, params, x), np.float64)
        p0 = jax.tree_util.tree_map(lambda p: p[:1], params)
        return np.full(n_nets, float(np.asarray(_lambda_max_layers(spec, p0, x))[0]))
    # CNN: the Jacobian path is costly, use the first network's kernel for all of them.
    p0 = jax.tree_util.tree_map(lambda p: p[0], params)
    theta = np.asarray(_ntk_jacobian_block(spec, p0, x, x), np.float64)
    return np.full(n_nets, np.linalg.eigvalsh(theta)[-1])


def _block_size(spec, shape, dtype):
    """Networks per vmapped block so that a block's weights (twice: B and B^T) fit CACHE_BUDGET."""
    n_params = count_params(spec, shape)
    return max(1, CACHE_BUDGET // (2 * n_params * jnp.dtype(dtype).itemsize))


def _seed_array(seeds):
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = [seeds]
    try:
        seeds = np.asarray(list(seeds))
    except TypeError:
        raise ValueError(f"seeds must be an integer or a sequence of integers, got {seeds!r}") from None
    if seeds.ndim != 1 or seeds.size == 0 or not np.issubdtype(seeds.dtype, np.integer):
        raise ValueError("seeds must be a non-empty sequence of integers")
    if seeds.size > MAX_SEEDS:
        raise ValueError(f"seeds has {seeds.size} entries, more than the limit of {MAX_SEEDS}")
    return seeds


def train(
    spec,
    x,
    y,
    x_test,
    y_test,
    lr: float,
    steps: int,
    batch_size: Optional[int] = None,
    seeds=range(1),
    record_every: Optional[int] = None,
    progress: Optional[Callable[[float], None]] = None,
    dtype=jnp.float32,
    keep_params: bool = True,
    n_chunks: int = 20,
    linearized: bool = False,
) -> TrainRun:
    """Train one network per seed (initialised as `nc.init_params(spec, seed, ...)`) on (x, y).

    Full-batch gradient descent if batch_size is None, else minibatch SGD; loss and time convention
    in the module docstring (t = lr * steps). Records every `record_every` steps (default: steps / 100)
    plus step 0. `progress(fraction)` is called between compiled chunks of training (fraction in
    [0, 1]). Returns a `TrainRun`. linearized=True trains f_lin instead (nc._lazy.train_linearized)."""
    if linearized:
        from ._lazy import train_linearized

        if batch_size is not None:
            raise ValueError("linearized=True trains by full-batch GD: batch_size must be None")
        return train_linearized(spec, x, y, x_test, y_test, lr, steps, seeds=seeds, record_every=record_every,
                                progress=progress, dtype=dtype, keep_params=keep_params)
    _check_spec(spec)
    x = _as_inputs(spec, x, "x", dtype)
    x_test = _as_inputs(spec, x_test, "x_test", dtype)
    if x_test.shape[1:] != x.shape[1:]:
        raise ValueError(f"x_test must have the same feature shape as x, got {x_test.shape[1:]} and {x.shape[1:]}")
    n = x.shape[0]
    if n > MAX_TRAIN_POINTS:
        raise ValueError(f"x has {n} training points, more than the limit of {MAX_TRAIN_POINTS}")
    y = check_targets(y, n, "y")
    y_test = check_targets(y_test, x_test.shape[0], "y_test")
    lr = check_lr(lr)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 0 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be an integer in [0, {MAX_STEPS}], got {steps!r}")
    steps = int(steps)
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= n:
            raise ValueError(f"batch_size must be None or an integer in [1, {n}], got {batch_size!r}")
        batch_size = None if batch_size == n else int(batch_size)
    if record_every is None:
        record_every = max(1, steps // 100)
    if isinstance(record_every, bool) or not isinstance(record_every, (int, np.integer)) or record_every < 1:
        raise ValueError(f"record_every must be a positive integer, got {record_every!r}")
    record_every = int(min(record_every, max(steps, 1)))
    seeds = _seed_array(seeds)
    n_nets = seeds.size
    shape = _input_shape(spec, tuple(int(s) for s in x.shape[1:]))
    n_params = count_params(spec, shape)
    if n_params * n_nets > MAX_ENSEMBLE_PARAMS:
        raise ValueError(
            f"seeds: {n_nets} networks x {n_params:,} parameters exceeds the limit of "
            f"{MAX_ENSEMBLE_PARAMS:,}; use fewer seeds or a smaller width"
        )
    n_full, rest = divmod(steps, record_every)
    n_records = n_full + 1 + (1 if rest else 0)
    if n_nets * n_records * (n + x_test.shape[0] + 2) > MAX_RECORDED_VALUES:
        raise ValueError(
            f"record_every: {n_records} records x {n_nets} networks x {n + x_test.shape[0]} points "
            f"exceeds the limit of {MAX_RECORDED_VALUES:,} recorded values; record less often"
        )

    dtype = jnp.dtype(dtype)
    y_j, yt_j = jnp.asarray(y, dtype), jnp.asarray(y_test, dtype)
    # Networks are split over worker threads (XLA runs these small batched products on one core
    # each) and run `block` at a time inside each worker; pad with copies of the last seed.
    workers = max(1, min(os.cpu_count() or 1, MAX_WORKERS, n_nets))
    block = max(1, min(-(-n_nets // workers), _block_size(spec, shape, dtype)))
    per_worker = -(-n_nets // (workers * block)) * block
    padded = np.concatenate([seeds, np.repeat(seeds[-1:], workers * per_worker - n_nets)])
    keys = jax.vmap(lambda s: jax.random.PRNGKey(s))(jnp.asarray(padded % 2**32, jnp.uint32))
    params, rec0 = _init_ensemble(spec, shape, dtype, keys, x, y_j, x_test, yt_j)
    lam = _lambda_max(spec, jax.tree_util.tree_map(lambda p: p[:n_nets], params), x, n_nets)
    with np.errstate(divide="ignore"):
        lr_critical = np.where(lam > 0, 2.0 * n / np.maximum(lam, 1e-300), np.inf)
    sgd_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    carry = (params, sgd_keys, jnp.ones(padded.size, bool), jnp.array(rec0[0]), jnp.full(padded.size, -1, jnp.int32))
    states = [
        (jax.tree_util.tree_map(lambda a: a[i * per_worker:(i + 1) * per_worker], carry), jnp.asarray(0, jnp.int32))
        for i in range(workers)
    ]
    del carry, params
    records = [[np.asarray(r) for r in rec0]]

    def run_chunk(record_every_, k):
        def work(i):
            return jax.block_until_ready(
                _advance(spec, lr, batch_size, record_every_, k, block, states[i], x, y_j, x_test, yt_j)
            )

        if workers == 1:
            outs = [work(0)]
        else:
            with ThreadPoolExecutor(workers) as pool:
                outs = list(pool.map(work, range(workers)))
        for i, (state, _) in enumerate(outs):
            states[i] = state
        records.append([np.concatenate([np.asarray(o[1][j]) for o in outs], axis=0) for j in range(4)])

    # Chunks of records between progress callbacks (at most three compiled shapes).
    per_chunk = max(1, math.ceil(n_full / max(1, n_chunks)))
    done = 0
    if progress is not None:
        progress(0.0)
    while done < n_full:
        k = min(per_chunk, n_full - done)
        run_chunk(record_every, k)
        done += k
        if progress is not None:
            progress(done * record_every / max(steps, 1))
    if rest:
        run_chunk(rest, 1)
    if progress is not None:
        progress(1.0)
    final = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a, axis=0)[:n_nets], *[s[0] for s in states])
    params, stopped = final[0], np.asarray(final[4])

    def stack(i):
        first = records[0][i][:n_nets, None]
        return np.concatenate([first] + [r[i][:n_nets] for r in records[1:]], axis=1)

    train_loss, test_loss = stack(0), stack(1)
    train_pred, test_pred = stack(2), stack(3)
    step_grid = np.concatenate([np.arange(n_full + 1) * record_every, [steps] if rest else []]).astype(np.int64)
    blown = stopped >= 0
    unstable = lr > lr_critical
    diverged = blown | (unstable & (train_loss[:, -1] > train_loss[:, 0]))
    warning = None
    if np.any(unstable):
        warning = (
            f"learning rate {lr:g} is above the critical value 2n/lambda_max = {np.min(lr_critical):.4g} "
            f"for {int(np.sum(unstable))} of {n_nets} networks: gradient descent on the linearised network "
            "diverges"
        )
    if np.any(blown):
        msg = f"the loss blew up for {int(np.sum(blown))} of {n_nets} networks; they were stopped there"
        warning = msg if warning is None else f"{warning}; {msg}"
    if warning is not None:
        warnings.warn(warning, RuntimeWarning, stacklevel=2)
    return TrainRun(
        seeds=seeds,
        steps=step_grid,
        times=lr * step_grid.astype(np.float64),
        lr=lr,
        batch_size=batch_size,
        train_loss=train_loss,
        test_loss=test_loss,
        predictions=test_pred,
        train_predictions=train_pred,
        lr_critical=lr_critical,
        diverged=diverged,
        diverged_step=stopped.astype(np.int64),
        warning=warning,
        params=params if keep_params else None,
    )
