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
optional `progress(fraction)` callback is called. The step code of each spec comes from
`_gd.step_function` (hand-written backprop with deferred low-rank updates for deep MLPs, `jax.grad` otherwise).

`train` runs four named steps: `_validate` (arguments -> `_Problem`), `_layout` (networks -> threads and
vmapped blocks), `_run_chunks` (compiled chunks of steps between progress callbacks) and `_assemble`
(records -> `TrainRun`).
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
    as_inputs,
    check_spec,
    count_params,
    draw_params,
    forward,
    input_shape,
    mlp_activations_and_deltas,
    ntk_jacobian_block,
)
from ._gd import GDState, step_function
from ._spec import MLP
from ._validation import (
    MAX_SEEDS,
    MAX_STEPS,
    MAX_TRAIN_POINTS,
    check_count,
    check_int,
    check_lr,
    check_seeds,
    check_targets,
)

# Size limits (ValueError naming the field when exceeded); MAX_TRAIN_POINTS, MAX_SEEDS, MAX_STEPS in _validation.
MAX_ENSEMBLE_PARAMS = 300_000_000        # networks x parameters held at once (1.2 GB in float32)
MAX_RECORDED_VALUES = 100_000_000        # networks x records x (train + test points)
LAMBDA_PER_NET_POINTS = 256              # above this many training points lambda_max comes from network 0
MAX_WORKERS = 2                          # threads running parts of an ensemble concurrently
CACHE_BUDGET = 8 * 2**20                 # bytes of weights per block of networks run together


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


# ---------------------------------------------------------------------------------------------
# Step 1: validate
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Problem:
    """The validated arguments of `train` (inputs and targets on the device, in `dtype`)."""

    spec: object
    x: jax.Array
    y: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    lr: float
    steps: int
    batch_size: Optional[int]
    record_every: int
    seeds: np.ndarray
    input_shape: tuple
    dtype: np.dtype

    @property
    def n_nets(self) -> int:
        return int(self.seeds.size)


def record_steps(steps: int, record_every: int) -> np.ndarray:
    """Step counts of the records: 0, record_every, 2 record_every, ... and `steps` itself."""
    n_full, rest = divmod(steps, record_every)
    return np.concatenate([np.arange(n_full + 1) * record_every, [steps] if rest else []]).astype(np.int64)


def _validate(spec, x, y, x_test, y_test, lr, steps, batch_size, seeds, record_every, dtype) -> _Problem:
    check_spec(spec)
    dtype = jnp.dtype(dtype)
    x = as_inputs(spec, x, "x", dtype)
    x_test = as_inputs(spec, x_test, "x_test", dtype)
    if x_test.shape[1:] != x.shape[1:]:
        raise ValueError(f"x_test must have the same feature shape as x, got {x_test.shape[1:]} and {x.shape[1:]}")
    n = check_count("x", x.shape[0], MAX_TRAIN_POINTS)
    y = check_targets(y, n, "y")
    y_test = check_targets(y_test, x_test.shape[0], "y_test")
    lr = check_lr(lr)
    steps = check_int("steps", steps, 0, MAX_STEPS)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, 1, n)
        batch_size = None if batch_size == n else batch_size
    if record_every is None:
        record_every = max(1, steps // 100)
    record_every = min(check_int("record_every", record_every, 1), max(steps, 1))
    seeds = check_seeds(seeds, MAX_SEEDS)
    shape = input_shape(spec, tuple(int(s) for s in x.shape[1:]))
    n_params = count_params(spec, shape)
    if n_params * seeds.size > MAX_ENSEMBLE_PARAMS:
        raise ValueError(
            f"seeds: {seeds.size} networks x {n_params:,} parameters exceeds the limit of "
            f"{MAX_ENSEMBLE_PARAMS:,}; use fewer seeds or a smaller width"
        )
    n_records = record_steps(steps, record_every).size
    if seeds.size * n_records * (n + x_test.shape[0] + 2) > MAX_RECORDED_VALUES:
        raise ValueError(
            f"record_every: {n_records} records x {seeds.size} networks x {n + x_test.shape[0]} points "
            f"exceeds the limit of {MAX_RECORDED_VALUES:,} recorded values; record less often"
        )
    return _Problem(spec, x, jnp.asarray(y, dtype), x_test, jnp.asarray(y_test, dtype), lr, steps, batch_size,
                    record_every, seeds, shape, dtype)


# ---------------------------------------------------------------------------------------------
# Step 2: lay the ensemble out over threads and vmapped blocks
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Layout:
    """`workers` threads each run `per_worker` networks, `block` at a time (vmapped); `seeds` is padded
    with copies of the last seed to workers * per_worker networks."""

    workers: int
    block: int
    per_worker: int
    seeds: np.ndarray


def _block_size(spec, shape, dtype) -> int:
    """Networks per vmapped block so that a block's weights (twice: B and B^T) fit CACHE_BUDGET."""
    n_params = count_params(spec, shape)
    return max(1, CACHE_BUDGET // (2 * n_params * jnp.dtype(dtype).itemsize))


def ensemble_layout(seeds: np.ndarray, max_block: int, cpus: int) -> _Layout:
    """Split the networks of `seeds` over min(cpus, MAX_WORKERS) threads (XLA runs these small batched
    products on one core each) in blocks of at most max_block networks."""
    n_nets = seeds.size
    workers = max(1, min(cpus, MAX_WORKERS, n_nets))
    block = max(1, min(-(-n_nets // workers), max_block))
    per_worker = -(-n_nets // (workers * block)) * block
    padded = np.concatenate([seeds, np.repeat(seeds[-1:], workers * per_worker - n_nets)])
    return _Layout(workers, block, per_worker, padded)


# ---------------------------------------------------------------------------------------------
# Step 3: initialise and run the compiled chunks
# ---------------------------------------------------------------------------------------------
def _record(spec, params, x, y, x_test, y_test):
    """Train loss, test loss, f(x_train), f(x_test), with overflow mapped to the largest finite float."""
    f = forward(spec, params, jnp.concatenate([x, x_test], axis=0))[:, 0]
    f_train, f_test = f[: x.shape[0]], f[x.shape[0]:]
    big = jnp.finfo(f.dtype).max
    f_train = jnp.nan_to_num(f_train, nan=big, posinf=big, neginf=-big)
    f_test = jnp.nan_to_num(f_test, nan=big, posinf=big, neginf=-big)
    train_loss = jnp.nan_to_num(0.5 * jnp.mean((f_train - y) ** 2), nan=big, posinf=big)
    test_loss = jnp.nan_to_num(0.5 * jnp.mean((f_test - y_test) ** 2), nan=big, posinf=big)
    return train_loss, test_loss, f_train, f_test


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5), donate_argnums=(6,))
def _advance(spec, lr, batch_size, record_every, n_records, block, state, x, y, x_test, y_test):
    """n_records x [record_every steps, record] for every network of `state` (leading axis).

    Networks run `block` at a time (vmapped), each block through all the steps before the next, so a
    block's weights stay in cache."""
    steps = step_function(spec, lr, batch_size, record_every, x.shape[0] if batch_size is None else batch_size)

    def one_net(gd, step0):
        def record_block(gd, r):
            gd = steps(x, y, gd, step0 + r * record_every)
            return gd, _record(spec, gd.params, x, y, x_test, y_test)

        return jax.lax.scan(record_block, gd, jnp.arange(n_records))

    gd, step0 = state
    n_nets = gd.alive.shape[0]
    blocked = jax.tree_util.tree_map(lambda a: a.reshape((n_nets // block, block) + a.shape[1:]), gd)
    gd, recs = jax.lax.map(jax.vmap(lambda c: one_net(c, step0)), blocked)
    unblock = lambda a: a.reshape((n_nets,) + a.shape[2:])
    gd = jax.tree_util.tree_map(unblock, gd)
    recs = jax.tree_util.tree_map(unblock, recs)
    return (gd, step0 + n_records * record_every), recs


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _init_ensemble(spec, shape, dtype, keys, x, y, x_test, y_test):
    params = jax.vmap(lambda k: draw_params(spec, shape, dtype, k))(keys)
    recs = jax.vmap(lambda p: _record(spec, p, x, y, x_test, y_test))(params)
    return params, recs


@functools.partial(jax.jit, static_argnums=0)
def _lambda_max_layers(spec, params, x):
    """Largest eigenvalue of each network's empirical NTK on x (per-layer formula, vmapped)."""
    def one(p):
        inputs, deltas = mlp_activations_and_deltas(spec, p, x)
        theta = 0.0
        for a, d in zip(inputs, deltas):
            theta = theta + (d @ d.T) * ((float(spec.w_std) ** 2 / a.shape[-1]) * (a @ a.T) + float(spec.b_std) ** 2)
        return jnp.linalg.eigvalsh(theta)[-1]

    return jax.vmap(one)(params)


def _lambda_max(spec, params, x, n_nets):
    if isinstance(spec, MLP):
        if x.shape[0] <= LAMBDA_PER_NET_POINTS:
            return np.asarray(_lambda_max_layers(spec, params, x), np.float64)
        p0 = jax.tree_util.tree_map(lambda p: p[:1], params)
        return np.full(n_nets, float(np.asarray(_lambda_max_layers(spec, p0, x))[0]))
    # CNN: the Jacobian path is costly, use the first network's kernel for all of them.
    p0 = jax.tree_util.tree_map(lambda p: p[0], params)
    theta = np.asarray(ntk_jacobian_block(spec, p0, x, x), np.float64)
    return np.full(n_nets, np.linalg.eigvalsh(theta)[-1])


def critical_lr(lambda_max, n: int) -> np.ndarray:
    """lr above which GD on the linearised network diverges: 2 n / lambda_max (inf for lambda_max <= 0)."""
    lam = np.asarray(lambda_max, np.float64)
    with np.errstate(divide="ignore"):
        return np.where(lam > 0, 2.0 * n / np.maximum(lam, 1e-300), np.inf)


def _start(p: _Problem, layout: _Layout):
    """Initial parameters of every (padded) network, their first record, one (GDState, step) per worker,
    and each real network's critical learning rate."""
    keys = jax.vmap(lambda s: jax.random.PRNGKey(s))(jnp.asarray(layout.seeds % 2**32, jnp.uint32))
    params, rec0 = _init_ensemble(p.spec, p.input_shape, p.dtype, keys, p.x, p.y, p.x_test, p.y_test)
    lam = _lambda_max(p.spec, jax.tree_util.tree_map(lambda a: a[:p.n_nets], params), p.x, p.n_nets)
    n_padded = layout.seeds.size
    gd = GDState(params, jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys), jnp.ones(n_padded, bool),
                 jnp.array(rec0[0]), jnp.full(n_padded, -1, jnp.int32))
    w = layout.per_worker
    states = [(jax.tree_util.tree_map(lambda a: a[i * w:(i + 1) * w], gd), jnp.asarray(0, jnp.int32))
              for i in range(layout.workers)]
    return states, [np.asarray(r) for r in rec0], critical_lr(lam, p.x.shape[0])


def chunk_sizes(n_records: int, n_chunks: int) -> list[int]:
    """Records per compiled chunk between progress callbacks (at most two distinct sizes)."""
    per_chunk = max(1, math.ceil(n_records / max(1, n_chunks)))
    return [min(per_chunk, n_records - done) for done in range(0, n_records, per_chunk)]


def _run_chunks(p: _Problem, layout: _Layout, states: list, progress, n_chunks: int):
    """Advance every worker's networks through all the steps; returns the records of each chunk
    (lists of train loss, test loss, f(x_train), f(x_test) over all padded networks) and the final states."""
    records = []

    def run_chunk(every, k):
        def work(i):
            return jax.block_until_ready(
                _advance(p.spec, p.lr, p.batch_size, every, k, layout.block, states[i], p.x, p.y, p.x_test, p.y_test)
            )

        if layout.workers == 1:
            outs = [work(0)]
        else:
            with ThreadPoolExecutor(layout.workers) as pool:
                outs = list(pool.map(work, range(layout.workers)))
        for i, (state, _) in enumerate(outs):
            states[i] = state
        records.append([np.concatenate([np.asarray(o[1][j]) for o in outs], axis=0) for j in range(4)])

    n_full, rest = divmod(p.steps, p.record_every)
    done = 0
    if progress is not None:
        progress(0.0)
    for k in chunk_sizes(n_full, n_chunks):
        run_chunk(p.record_every, k)
        done += k
        if progress is not None:
            progress(done * p.record_every / max(p.steps, 1))
    if rest:
        run_chunk(rest, 1)
    if progress is not None:
        progress(1.0)
    return records, states


# ---------------------------------------------------------------------------------------------
# Step 4: assemble the result
# ---------------------------------------------------------------------------------------------
def divergence_warning(lr: float, lr_critical, blown) -> Optional[str]:
    """A sentence for the UI when lr exceeds some networks' critical value or some losses blew up."""
    lr_critical, blown = np.asarray(lr_critical), np.asarray(blown)
    unstable = lr > lr_critical
    parts = []
    if np.any(unstable):
        parts.append(
            f"learning rate {lr:g} is above the critical value 2n/lambda_max = {np.min(lr_critical):.4g} "
            f"for {int(np.sum(unstable))} of {unstable.size} networks: gradient descent on the linearised network "
            "diverges"
        )
    if np.any(blown):
        parts.append(f"the loss blew up for {int(np.sum(blown))} of {blown.size} networks; they were stopped there")
    return "; ".join(parts) or None


def _assemble(p: _Problem, rec0, records, states, lr_critical, keep_params: bool) -> TrainRun:
    n = p.n_nets
    final = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a, axis=0)[:n], *[s[0] for s in states])
    stopped = np.asarray(final.stopped_at)

    def stack(i):
        return np.concatenate([rec0[i][:n, None]] + [r[i][:n] for r in records], axis=1)

    train_loss, test_loss, train_pred, test_pred = (stack(i) for i in range(4))
    step_grid = record_steps(p.steps, p.record_every)
    blown = stopped >= 0
    diverged = blown | ((p.lr > lr_critical) & (train_loss[:, -1] > train_loss[:, 0]))
    warning = divergence_warning(p.lr, lr_critical, blown)
    if warning is not None:
        warnings.warn(warning, RuntimeWarning, stacklevel=3)
    return TrainRun(
        seeds=p.seeds,
        steps=step_grid,
        times=p.lr * step_grid.astype(np.float64),
        lr=p.lr,
        batch_size=p.batch_size,
        train_loss=train_loss,
        test_loss=test_loss,
        predictions=test_pred,
        train_predictions=train_pred,
        lr_critical=lr_critical,
        diverged=diverged,
        diverged_step=stopped.astype(np.int64),
        warning=warning,
        params=final.params if keep_params else None,
    )


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
) -> TrainRun:
    """Train one network per seed (initialised as `nc.init_params(spec, seed, ...)`) on (x, y).

    Full-batch gradient descent if batch_size is None, else minibatch SGD; loss and time convention
    in the module docstring (t = lr * steps). Records every `record_every` steps (default: steps / 100)
    plus step 0 and the last step. `progress(fraction)` is called between compiled chunks of training
    (fraction in [0, 1]). Returns a `TrainRun`."""
    problem = _validate(spec, x, y, x_test, y_test, lr, steps, batch_size, seeds, record_every, dtype)
    layout = ensemble_layout(problem.seeds, _block_size(problem.spec, problem.input_shape, problem.dtype),
                             os.cpu_count() or 1)
    states, rec0, lr_critical = _start(problem, layout)
    records, states = _run_chunks(problem, layout, states, progress, n_chunks)
    return _assemble(problem, rec0, records, states, lr_critical, keep_params)
