"""Finite-width networks in the NTK parameterization and their empirical NTK.

Parameterization (../shared/reference/README.md, Neural Tangents' "ntk" convention):

    h^1     = (w_std / sqrt(d_in)) x W^1 + b_std b^1
    h^{l+1} = (w_std / sqrt(n_l))  phi(h^l) W^{l+1} + b_std b^{l+1}
    f(x)    = h^{depth+1}                         (width-1 readout, same w_std, b_std)
    W, b ~ N(0, 1) entrywise.

CNN: `depth` blocks of [3x3 convolution, stride 1, SAME zero padding, fan-in C_in * 9, activation], then
global average pooling ("gap", fan-in C) or flatten (fan-in H*W*C), then the Dense width-1 readout.

Empirical NTK (Jacot et al. 2018; seed 003, eq. for Theta-hat):

    Theta(x, x') = sum over parameters p of  df(x)/dp  df(x')/dp.

For an MLP this is computed per layer from activations a^l and back-propagated vectors
delta^l = df/dh^l, never from the full Jacobian:

    Theta(x, x') = sum_l  <delta^l(x), delta^l(x')> * ( w_std^2 / n_{l-1} <a^{l-1}(x), a^{l-1}(x')> + b_std^2 )

with a^0 = x (the weight part of layer l contributes <delta, delta'> * <a, a'> * w_std^2 / n_{l-1}, the bias
part <delta, delta'> * b_std^2). Any other architecture (CNN) uses `empirical_ntk_jacobian`, a generic
per-parameter-leaf Jacobian contraction that gives the same numbers on an MLP.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ._activations import activation_fn
from ._spec import CNN, MLP
from ._validation import MAX_KERNEL_POINTS, check_count

# Size limits (ValueError naming the field when exceeded).
MAX_PARAMS = 500_000_000          # one network; width 10,000 with 3 hidden layers has 2e8
MAX_ACTIVATION_ENTRIES = 400_000_000   # points x width x layers held by the per-layer NTK
MAX_JACOBIAN_CHUNK = 2**25        # entries of one Jacobian block (points x parameters) in the generic path

_DN = ("NHWC", "HWIO", "NHWC")


# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------
def check_spec(spec):
    if not isinstance(spec, (MLP, CNN)):
        raise ValueError(f"spec must be an nc.MLP or nc.CNN, got {type(spec).__name__}")


def input_shape(spec, input_dim):
    """Normalise input_dim: MLP -> (d,), CNN -> (H, W, C) (an int C is accepted for gap readout)."""
    if isinstance(spec, MLP):
        if isinstance(input_dim, (tuple, list)):
            if len(input_dim) != 1:
                raise ValueError(f"input_dim for an MLP must be an integer, got {input_dim!r}")
            input_dim = input_dim[0]
        if isinstance(input_dim, bool) or not isinstance(input_dim, (int, np.integer)) or input_dim < 1:
            raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}")
        return (int(input_dim),)
    if isinstance(input_dim, (int, np.integer)) and not isinstance(input_dim, bool):
        if spec.readout == "flatten":
            raise ValueError("input_dim for a CNN with flatten readout must be (height, width, channels)")
        shape = (1, 1, int(input_dim))
    else:
        try:
            shape = tuple(int(s) for s in input_dim)
        except TypeError:
            raise ValueError(f"input_dim for a CNN must be (height, width, channels), got {input_dim!r}") from None
        if len(shape) != 3:
            raise ValueError(f"input_dim for a CNN must be (height, width, channels), got {input_dim!r}")
    if min(shape) < 1:
        raise ValueError(f"input_dim entries must be positive, got {input_dim!r}")
    return shape


def layer_shapes(spec, shape):
    """[(W shape, b shape, fan_in)] for every layer, readout last."""
    if isinstance(spec, MLP):
        dims = [shape[0]] + [spec.width] * spec.depth
        out = [((n_in, spec.width), (spec.width,), n_in) for n_in in dims[:-1]]
        return out + [((dims[-1], 1), (1,), dims[-1])]
    h, w, c = shape
    out = []
    for _ in range(spec.depth):
        out.append(((3, 3, c, spec.channels), (spec.channels,), c * 9))
        c = spec.channels
    fan_in = c if spec.readout == "gap" else h * w * c
    return out + [((fan_in, 1), (1,), fan_in)]


def count_params(spec, input_dim) -> int:
    """Number of trainable parameters of `spec` on inputs of shape `input_dim`."""
    check_spec(spec)
    shape = input_shape(spec, input_dim)
    return sum(math.prod(ws) + math.prod(bs) for ws, bs, _ in layer_shapes(spec, shape))


def as_inputs(spec, x, name="x", dtype=None):
    x = jnp.asarray(x) if dtype is None else jnp.asarray(x, dtype)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    want = 2 if isinstance(spec, MLP) else 4
    if x.ndim == 1 and want == 2:
        x = x[:, None]
    if x.ndim != want:
        layout = "(n, d)" if want == 2 else "(n, height, width, channels) NHWC"
        raise ValueError(f"{name} must have shape {layout}, got shape {tuple(x.shape)}")
    check_count(name, x.shape[0], MAX_KERNEL_POINTS)
    return x


# ---------------------------------------------------------------------------------------------
# Parameters and forward pass
# ---------------------------------------------------------------------------------------------
def init_params(spec, seed, input_dim, dtype=jnp.float32):
    """Parameters of `spec` drawn i.i.d. N(0, 1) (NTK parameterization: the scales live in `apply`).

    input_dim: d for an MLP; (H, W, C) for a CNN (an int C is enough for "gap" readout).
    seed: an integer or a jax PRNG key. Returns a list of {"w": ..., "b": ...}, readout last."""
    check_spec(spec)
    shape = input_shape(spec, input_dim)
    n = count_params(spec, shape)
    if n > MAX_PARAMS:
        raise ValueError(f"spec has {n:,} parameters, more than the limit of {MAX_PARAMS:,} (reduce width)")
    key = _as_key(seed)
    return draw_params(spec, shape, jnp.dtype(dtype), key)


def _as_key(seed):
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return jax.random.PRNGKey(int(seed) % (2**32))
    try:
        if jnp.issubdtype(seed.dtype, jax.dtypes.prng_key) or seed.shape == (2,):
            return seed
    except AttributeError:
        pass
    raise ValueError(f"seed must be an integer or a jax PRNG key, got {seed!r}")


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def draw_params(spec, shape, dtype, key):
    layers = layer_shapes(spec, shape)
    keys = jax.random.split(key, 2 * len(layers))
    return [
        {"w": jax.random.normal(keys[2 * i], ws, dtype), "b": jax.random.normal(keys[2 * i + 1], bs, dtype)}
        for i, (ws, bs, _) in enumerate(layers)
    ]


def _conv(a, w):
    return jax.lax.conv_general_dilated(a, w, (1, 1), "SAME", dimension_numbers=_DN)


def forward(spec, params, x):
    """f(x) of shape (n, 1); traceable (no validation), for use inside jit/grad/vmap."""
    phi = activation_fn(spec.activation)
    w_std, b_std = float(spec.w_std), float(spec.b_std)
    a = x.astype(params[0]["w"].dtype)
    if isinstance(spec, MLP):
        for layer in params[:-1]:
            a = phi((w_std / math.sqrt(a.shape[-1])) * (a @ layer["w"]) + b_std * layer["b"])
    else:
        for layer in params[:-1]:
            fan_in = a.shape[-1] * 9
            a = phi((w_std / math.sqrt(fan_in)) * _conv(a, layer["w"]) + b_std * layer["b"])
        a = a.mean(axis=(1, 2)) if spec.readout == "gap" else a.reshape(a.shape[0], -1)
    out = params[-1]
    return (w_std / math.sqrt(a.shape[-1])) * (a @ out["w"]) + b_std * out["b"]


_forward_jit = jax.jit(forward, static_argnums=0)


def _check_params(spec, params, x):
    try:
        shapes = [(tuple(p["w"].shape), tuple(p["b"].shape)) for p in params]
    except (TypeError, KeyError, AttributeError):
        raise ValueError("params must be the list returned by nc.init_params") from None
    in_shape = x.shape[1:]
    want = [(ws, bs) for ws, bs, _ in layer_shapes(spec, tuple(int(s) for s in in_shape))]
    if shapes != want:
        raise ValueError(
            "params do not match spec and input shape: expected layer shapes "
            f"{want}, got {shapes} (was init_params called with the same spec and input_dim?)"
        )


def apply(spec, params, x):
    """Network outputs f(x), shape (n, 1), in the dtype of the parameters."""
    check_spec(spec)
    x = as_inputs(spec, x)
    _check_params(spec, params, x)
    return _forward_jit(spec, params, x)


# ---------------------------------------------------------------------------------------------
# Empirical NTK
# ---------------------------------------------------------------------------------------------
def mlp_activations_and_deltas(spec, params, x):
    """Per layer l (readout last): input a^{l-1} (n, n_{l-1}) and delta^l = df/dh^l (n, n_l)."""
    phi = activation_fn(spec.activation)
    w_std = float(spec.w_std)
    a = x.astype(params[0]["w"].dtype)
    inputs, derivs = [], []
    for layer in params[:-1]:
        inputs.append(a)
        h = (w_std / math.sqrt(a.shape[-1])) * (a @ layer["w"]) + float(spec.b_std) * layer["b"]
        a, d = jax.jvp(phi, (h,), (jnp.ones_like(h),))    # phi(h), phi'(h) elementwise
        derivs.append(d)
    inputs.append(a)
    delta = jnp.ones((x.shape[0], 1), a.dtype)
    deltas = [delta]
    for l in range(len(params) - 1, 0, -1):
        scale = w_std / math.sqrt(inputs[l].shape[-1])
        delta = scale * (delta @ params[l]["w"].T) * derivs[l - 1]
        deltas.append(delta)
    return inputs, deltas[::-1]


@functools.partial(jax.jit, static_argnums=(0, 3))
def _ntk_layers(spec, params, x, n1):
    """Per-layer empirical NTK of an MLP between x[:n1] and x[n1:] (or x against itself if n1 == 0)."""
    inputs, deltas = mlp_activations_and_deltas(spec, params, x)
    w_std2, b_std2 = float(spec.w_std) ** 2, float(spec.b_std) ** 2
    hi = jax.lax.Precision.HIGHEST
    theta = 0.0
    for a, d in zip(inputs, deltas):
        if n1:
            a1, a2, d1, d2 = a[:n1], a[n1:], d[:n1], d[n1:]
        else:
            a1 = a2 = a
            d1 = d2 = d
        act = (w_std2 / a.shape[-1]) * jnp.matmul(a1, a2.T, precision=hi) + b_std2
        theta = theta + jnp.matmul(d1, d2.T, precision=hi) * act
    return theta


def _jacobian_blocks(spec, params, x):
    """Per-leaf Jacobians df(x)/dp reshaped to (n, size of leaf)."""
    def f(p):
        return forward(spec, p, x)[:, 0]

    jac = jax.jacrev(f)(params)
    return [j.reshape(x.shape[0], -1) for j in jax.tree_util.tree_leaves(jac)]


@functools.partial(jax.jit, static_argnums=0)
def ntk_jacobian_block(spec, params, x1, x2):
    hi = jax.lax.Precision.HIGHEST
    j1 = _jacobian_blocks(spec, params, x1)
    j2 = _jacobian_blocks(spec, params, x2)
    return sum(jnp.matmul(a, b.T, precision=hi) for a, b in zip(j1, j2))


def empirical_ntk_jacobian(spec, params, x1, x2=None):
    """Empirical NTK by contracting per-parameter-leaf Jacobians, J1 J2^T summed over leaves.

    Works for any architecture (MLP or CNN). Rows are processed in chunks so that one Jacobian block
    holds at most MAX_JACOBIAN_CHUNK entries. Returns a numpy array (n1, n2)."""
    check_spec(spec)
    x1 = as_inputs(spec, x1, "x1")
    _check_params(spec, params, x1)
    x2 = x1 if x2 is None else as_inputs(spec, x2, "x2")
    if x2.shape[1:] != x1.shape[1:]:
        raise ValueError(f"x2 must have the same feature shape as x1, got {x2.shape[1:]} and {x1.shape[1:]}")
    n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))
    chunk = max(1, MAX_JACOBIAN_CHUNK // n_params)
    if n_params > 4 * MAX_JACOBIAN_CHUNK:
        raise ValueError(
            f"params has {n_params:,} parameters, too many for the Jacobian path (limit "
            f"{4 * MAX_JACOBIAN_CHUNK:,}); use method='layers' for an MLP or a smaller width"
        )
    rows = []
    for i in range(0, x1.shape[0], chunk):
        cols = [
            np.asarray(ntk_jacobian_block(spec, params, x1[i:i + chunk], x2[j:j + chunk]))
            for j in range(0, x2.shape[0], chunk)
        ]
        rows.append(np.concatenate(cols, axis=1))
    return np.concatenate(rows, axis=0)


def empirical_ntk(spec, params, x1, x2=None, method="auto"):
    """Empirical NTK Theta(x1, x2) = sum_p df(x1)/dp df(x2)/dp of an initialised or trained network.

    method: "layers" (MLP only: per-layer activations and back-propagated deltas, see module docstring),
    "jacobian" (generic Jacobian contraction, any architecture) or "auto" (layers for an MLP).
    Returns a numpy array (n1, n2) in the parameters' dtype."""
    check_spec(spec)
    if method not in ("auto", "layers", "jacobian"):
        raise ValueError(f"method must be 'auto', 'layers' or 'jacobian', got {method!r}")
    if method == "jacobian" or (method == "auto" and isinstance(spec, CNN)):
        return empirical_ntk_jacobian(spec, params, x1, x2)
    if not isinstance(spec, MLP):
        raise ValueError("method='layers' needs an MLP spec; use method='jacobian' for a CNN")
    x1 = as_inputs(spec, x1, "x1")
    _check_params(spec, params, x1)
    if x2 is not None:
        x2 = as_inputs(spec, x2, "x2")
        if x2.shape[1] != x1.shape[1]:
            raise ValueError(f"x2 must have {x1.shape[1]} features like x1, got {x2.shape[1]}")
    n = x1.shape[0] + (0 if x2 is None else x2.shape[0])
    held = n * (spec.width * 2 * spec.depth + x1.shape[1] + 1)
    if held > MAX_ACTIVATION_ENTRIES:
        raise ValueError(
            f"x1 (with x2) has too many points for this width: {n} points x width {spec.width} x "
            f"depth {spec.depth} exceeds the limit of {MAX_ACTIVATION_ENTRIES:,} stored activations"
        )
    if x2 is None:
        return np.asarray(_ntk_layers(spec, params, x1, 0))
    dtype = jnp.result_type(x1.dtype, x2.dtype)
    x = jnp.concatenate([x1.astype(dtype), x2.astype(dtype)], axis=0)
    return np.asarray(_ntk_layers(spec, params, x, x1.shape[0]))
