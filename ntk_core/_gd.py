"""Gradient-descent steps on the MSE loss for one network, shared by `nc.train` and the convergence code.

    loss(params) = 1/(2n) sum_i (f(x_i) - y_i)^2          (0.5 * mean squared error)
    GD:  params <- params - lr * grad loss                 (full batch)
    SGD: the same with the loss of a random minibatch of `batch_size` points (without replacement)

A run of steps carries a `GDState`; a network whose loss stops being finite or grows by BLOWUP_FACTOR is
frozen (`alive` False, `stopped_at` the step), so every array stays finite. `step_function(spec, ...)` is
the one place where the step loop of a spec is chosen: MLPs with >= 2 hidden layers use hand-written
backprop with deferred low-rank weight updates (`mlp_steps`), every other spec `jax.grad` (`generic_steps`).
All functions are traceable (no validation): callers check their arguments.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from ._activations import activation_fn
from ._finite import forward
from ._spec import MLP

BLOWUP_FACTOR = 1e8       # a loss above BLOWUP_FACTOR * (initial loss + 1) counts as diverged
MAX_WINDOW = 16           # steps whose weight updates `mlp_steps` keeps as low-rank factors


class GDState(NamedTuple):
    """What a run of GD steps carries for one network (a pytree; stacked over networks for ensembles)."""

    params: Any             # list of {"w", "b"} (nc.init_params layout)
    key: jax.Array          # PRNG key of the SGD minibatches
    alive: jax.Array        # bool: not frozen by a blow-up
    loss_ref: jax.Array     # the initial loss, the reference of the blow-up test
    stopped_at: jax.Array   # int32: step of the blow-up, -1 if none


def initial_state(params, key, loss_ref) -> GDState:
    """A live network's state before its first step."""
    return GDState(params, key, jnp.asarray(True), jnp.asarray(loss_ref), jnp.asarray(-1, jnp.int32))


def half_mse(spec, params, x, y):
    """1/(2n) sum_i (f(x_i) - y_i)^2."""
    f = forward(spec, params, x)[:, 0]
    return 0.5 * jnp.mean((f - y) ** 2)


def minibatch(x, y, key, batch_size):
    """batch_size rows of (x, y) drawn without replacement (all of them if batch_size is None)."""
    if batch_size is None:
        return x, y, key
    key, sub = jax.random.split(key)
    idx = jax.random.permutation(sub, x.shape[0])[:batch_size]
    return x[idx], y[idx], key


def guard(alive, loss, loss_ref, stopped_at, step):
    """Freeze a network whose loss is no longer finite or has grown by BLOWUP_FACTOR."""
    ok = alive & jnp.isfinite(loss) & (loss <= BLOWUP_FACTOR * (loss_ref + 1.0))
    return ok, jnp.where(alive & ~ok, jnp.asarray(step).astype(stopped_at.dtype), stopped_at)


def generic_steps(spec, lr, batch_size, n_steps, x, y, state: GDState, step0) -> GDState:
    """n_steps of GD/SGD with jax.grad (any architecture)."""
    loss_grad = jax.value_and_grad(functools.partial(half_mse, spec))

    def step(state, i):
        params, key, alive, loss_ref, stopped_at = state
        xb, yb, key = minibatch(x, y, key, batch_size)
        loss, grads = loss_grad(params, xb, yb)
        alive, stopped_at = guard(alive, loss, loss_ref, stopped_at, step0 + i)
        scale = jnp.where(alive, lr, 0.0).astype(loss.dtype)
        params = jax.tree_util.tree_map(lambda p, g: p - scale * g, params, grads)
        return GDState(params, key, alive, loss_ref, stopped_at), None

    return jax.lax.scan(step, GDState(*state), jnp.arange(n_steps))[0]


def mlp_steps(spec, lr, batch_size, n_steps, window, x, y, state: GDState, step0) -> GDState:
    """n_steps of GD/SGD for an MLP with hand-written backprop and deferred low-rank weight updates.

    A hidden-to-hidden weight matrix receives a rank-(batch) update per step, W <- W - lr s a^T g.
    Within a window of `window` steps the updates are kept as factors, W = B + U^T V (U: rows
    -lr s a, V: rows g), so each step costs two products with the fixed B (forward a B, backward
    g B^T, with B^T kept too) plus thin products with U and V; at the end of the window B += U^T V (one GEMM)
    and B^T is refreshed. Exact in exact arithmetic; it replaces three memory-bound passes over W per
    step by two cache-friendly ones. U, V are also kept transposed so that no product needs a copy.
    n_steps must be a multiple of window."""
    phi = activation_fn(spec.activation)
    w_std, b_std = float(spec.w_std), float(spec.b_std)
    params, key, alive, loss_ref, stopped_at = state
    n_layers = len(params)
    mids = list(range(1, n_layers - 1))
    rows = x.shape[0] if batch_size is None else batch_size
    dtype = params[0]["w"].dtype
    dus = jax.lax.dynamic_update_slice

    def one_step(state, i, j):
        params, bt, low, key, alive, stopped_at = state
        xb, yb, key = minibatch(x, y, key, batch_size)
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
        alive, stopped_at = guard(alive, loss, loss_ref, stopped_at, step0 + i)
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
    carry = (params, bt, key, alive, stopped_at)
    carry, _ = jax.lax.scan(one_window, carry, jnp.arange(n_steps // window) * window)
    params, _, key, alive, stopped_at = carry
    return GDState(params, key, alive, loss_ref, stopped_at)


def window_size(spec, n_steps: int, rows: int) -> int:
    """Deferred-update window of `mlp_steps` for runs of n_steps steps on `rows` points per step: the
    largest divisor of n_steps with window * rows <= width / 4 (so the thin products stay cheap), at most
    MAX_WINDOW; 0 = use `generic_steps` (not an MLP with >= 2 hidden layers, or width < 8 * rows)."""
    if not isinstance(spec, MLP) or spec.depth < 2:
        return 0
    limit = min(MAX_WINDOW, spec.width // (4 * rows))
    if limit < 2:
        return 0
    return max(d for d in range(1, limit + 1) if n_steps % d == 0)


def step_function(spec, lr, batch_size, n_steps: int, rows: int) -> Callable[..., GDState]:
    """The step loop of `spec`: f(x, y, state, step0) -> state after n_steps steps of GD/SGD.

    The one place where a spec's step code is chosen (static: call it while tracing)."""
    window = window_size(spec, n_steps, rows)
    if window:
        return functools.partial(mlp_steps, spec, lr, batch_size, n_steps, window)
    return functools.partial(generic_steps, spec, lr, batch_size, n_steps)


@functools.partial(jax.jit, static_argnums=(0, 1, 2), donate_argnums=(3,))
def full_batch_gd(spec, lr, n_steps, params, x, y):
    """n_steps of full-batch GD on one network: (final params, initial loss, final loss, alive)."""
    loss0 = half_mse(spec, params, x, y)
    state = initial_state(params, jax.random.PRNGKey(0), loss0)
    state = step_function(spec, lr, None, n_steps, x.shape[0])(x, y, state, 0)
    return state.params, loss0, half_mse(spec, state.params, x, y), state.alive
