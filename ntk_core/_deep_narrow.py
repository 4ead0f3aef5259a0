"""Deep narrow ReLU networks of width d_in + 1 + d_out (Lee, Choi, Ryu, No, ICML 2022; seed 000).

Standard parameterization: the weights W^l and biases b^l are the parameters,

    h^0 = x,   h^l = ReLU(W^l h^{l-1} + b^l)  (l = 1 .. L-1),   f(x) = W^L h^{L-1} + b^L,

hidden width d_in + 1 + d_out, neurons ordered (input copy | one random neuron | accumulators).

Special initialisation (seed 000, "Initialization scheme for MLP"):

    W^1 = [C_L I; u^1; 0],   b^1 = [0; v^1; C_L 1]
    W^l = [[I, 0, 0], [u^l, 0, 0], [0, 0, I]],   b^l = [0; v^l; 0]      (2 <= l <= L-1)
    W^L = [0, 0, I],   b^L = -C_L 1
    u^l_i ~ N(0, rho^2 / d_in),   v^l ~ N(0, C_L^2 beta^2)

With x >= 0 the copy neurons carry C_L x through every ReLU, the accumulators hold C_L and the last
layer subtracts it, so f = 0 exactly at initialisation. Kaiming ("kaiming"): the same shapes with
W ~ N(0, 2 / fan_in) and zero biases (He et al. 2015).

CNN (seed 000, "Initialization scheme for CNN"): channels (c_in input copies | one random channel |
d_out accumulators), 3x3 convolutions with zero padding 1, the copy and accumulator kernels are C_L
(layer 1) or 1 at the kernel centre, the random channel's kernel reads the copy channels with entries
N(0, rho^2 / c_in) (the paper's N(0, rho^2) for c_in = 1), and f = global average pool of the last
(linear) convolution.

Limit NTK (derived here; the paper's Theorem states the L -> infinity kernel). At the special
initialisation only the accumulators carry a gradient: df_k/dh^L = e_k, W^l's accumulator block is I
and ReLU'(C_L) = 1, so the back-propagated vector delta^l = df_k/dz^l = e_{acc k} in every layer and
the random neuron and the copies get none. Hence df_k/dW^l = e_{acc k} h^{l-1}(x)^T, df_k/db^l =
e_{acc k}, and

    Theta_kj(x, x') = delta_kj * [ x.x' + 1 + sum_{l=2}^{L} ( h^{l-1}(x).h^{l-1}(x') + 1 ) ],
    h^{l-1}(x).h^{l-1}(x') = C_L^2 x.x' + r^{l-1}(x) r^{l-1}(x') + d_out C_L^2,

with r^l(x) = ReLU(C_L u^l.x + v^l) = C_L ReLU(g^l(x)) for l >= 2, where g^l(x) = u^l.x + beta xi^l
is a centred Gaussian process with covariance Sigma(x, x') = rho^2 x.x' / d_in + beta^2. Dividing by
L C_L^2, the L - 2 i.i.d. random-neuron terms average (law of large numbers) to

    Theta_inf(x, x') = x.x' + d_out + E[ReLU(g(x)) ReLU(g(x'))]
                     = x.x' + d_out + sqrt(Sigma(x,x) Sigma(x',x')) (sin t + (pi - t) cos t) / (2 pi),
    cos t = Sigma(x, x') / sqrt(Sigma(x, x) Sigma(x', x'))                (arc-cosine kernel),

times the identity over outputs. The finite-L kernel differs by O(1/L) deterministic terms (layer 1,
the biases, the 1/C_L^2 terms) and by the O(1/sqrt(L)) fluctuation of the average of L - 2 i.i.d.
terms, so the distance to the limit should fall like L^(-1/2) at initialisation.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

INITS = ("special", "kaiming")
MAX_DN_DEPTH = 100_000
MAX_DN_PARAMS = 60_000_000        # one network (depth 10,000 at width 75 would be 5.6e7)
MAX_DN_POINTS = 20_000            # rows of x given to apply / empirical_ntk / train
MAX_DN_NTK_ENTRIES = 200_000_000  # points x depth x width x outputs held by the layer-wise NTK
MAX_DN_STEPS = 1_000_000
MAX_DN_SEEDS = 100
SCAN_UNROLL = 16                  # layers per loop iteration: 2.8x faster GD at width 4, L = 1,000 (loop overhead)


# ---------------------------------------------------------------------------------------------
# Specifications
# ---------------------------------------------------------------------------------------------
def _int_in(name, value, low, high):
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low:,}, {high:,}], got {value:,}")
    return value


def _positive(name, value, allow_zero=False):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value}")
    return value


def _check_common(spec):
    object.__setattr__(spec, "depth", _int_in("depth", spec.depth, 2, MAX_DN_DEPTH))
    object.__setattr__(spec, "d_out", _int_in("d_out", spec.d_out, 1, 1000))
    object.__setattr__(spec, "C_L", _positive("C_L", spec.C_L))
    object.__setattr__(spec, "rho", _positive("rho", spec.rho, allow_zero=True))
    object.__setattr__(spec, "beta", _positive("beta", spec.beta, allow_zero=True))
    if spec.init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {spec.init!r}")


@dataclasses.dataclass(frozen=True)
class DeepNarrowMLP:
    """ReLU MLP of depth L (L weight layers) and width d_in + 1 + d_out (seed 000)."""
    depth: int
    d_in: int
    d_out: int = 1
    C_L: float = 50.0
    rho: float = 1.0
    beta: float = 1.0
    init: str = "special"

    def __post_init__(self):
        object.__setattr__(self, "d_in", _int_in("d_in", self.d_in, 1, 10_000))
        _check_common(self)

    @property
    def width(self) -> int:
        return self.d_in + 1 + self.d_out


@dataclasses.dataclass(frozen=True)
class DeepNarrowCNN:
    """ReLU CNN of depth L, c_in + 1 + d_out channels, 3x3 convolutions, global average pool (seed 000)."""
    depth: int
    c_in: int = 1
    d_out: int = 1
    C_L: float = 50.0
    rho: float = 1.0
    beta: float = 1.0
    init: str = "special"

    def __post_init__(self):
        object.__setattr__(self, "c_in", _int_in("c_in", self.c_in, 1, 64))
        _check_common(self)

    @property
    def width(self) -> int:
        return self.c_in + 1 + self.d_out


DeepNarrow = (DeepNarrowMLP, DeepNarrowCNN)


def is_deep_narrow(spec) -> bool:
    return isinstance(spec, DeepNarrow)


def _n_in(spec) -> int:
    return spec.d_in if isinstance(spec, DeepNarrowMLP) else spec.c_in


def count_params(spec) -> int:
    w, k = spec.width, (1 if isinstance(spec, DeepNarrowMLP) else 9)
    return (k * _n_in(spec) * w + w) + (spec.depth - 2) * (k * w * w + w) + (k * w * spec.d_out + spec.d_out)


# ---------------------------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------------------------
def _special_mlp(spec, key, dtype):
    d, w, o, L, C = spec.d_in, spec.width, spec.d_out, spec.depth, spec.C_L
    ku1, kv1, ku, kv = jax.random.split(key, 4)
    sd_u, sd_v = spec.rho / math.sqrt(d), C * spec.beta
    w_in = jnp.zeros((w, d), dtype).at[:d].set(C * jnp.eye(d, dtype=dtype))
    w_in = w_in.at[d].set(sd_u * jax.random.normal(ku1, (d,), dtype))
    b_in = jnp.zeros((w,), dtype).at[d].set(sd_v * jax.random.normal(kv1, (), dtype)).at[d + 1:].set(C)
    mid = jnp.zeros((w, w), dtype).at[:d, :d].set(jnp.eye(d, dtype=dtype))
    mid = mid.at[d + 1:, d + 1:].set(jnp.eye(o, dtype=dtype))
    ws = jnp.broadcast_to(mid, (L - 2, w, w))
    ws = ws.at[:, d, :d].set(sd_u * jax.random.normal(ku, (L - 2, d), dtype))
    bs = jnp.zeros((L - 2, w), dtype).at[:, d].set(sd_v * jax.random.normal(kv, (L - 2,), dtype))
    w_out = jnp.zeros((o, w), dtype).at[:, d + 1:].set(jnp.eye(o, dtype=dtype))
    b_out = jnp.full((o,), -C, dtype)
    return {"w_in": w_in, "b_in": b_in, "w": ws, "b": bs, "w_out": w_out, "b_out": b_out}


def _centre(c_out, c_in, dtype, scale=1.0):
    """HWIO 3x3 kernel with `scale` * identity at the centre (a copy for c_out == c_in)."""
    return jnp.zeros((3, 3, c_in, c_out), dtype).at[1, 1].set(scale * jnp.eye(c_in, c_out, dtype=dtype))


def _special_cnn(spec, key, dtype):
    c, w, o, L, C = spec.c_in, spec.width, spec.d_out, spec.depth, spec.C_L
    ku1, kv1, ku, kv = jax.random.split(key, 4)
    sd_u, sd_v = spec.rho / math.sqrt(c), C * spec.beta
    w_in = jnp.zeros((3, 3, c, w), dtype).at[1, 1, :, :c].set(C * jnp.eye(c, dtype=dtype))
    w_in = w_in.at[:, :, :, c].set(sd_u * jax.random.normal(ku1, (3, 3, c), dtype))
    b_in = jnp.zeros((w,), dtype).at[c].set(sd_v * jax.random.normal(kv1, (), dtype)).at[c + 1:].set(C)
    mid = jnp.zeros((3, 3, w, w), dtype).at[1, 1, :c, :c].set(jnp.eye(c, dtype=dtype))
    mid = mid.at[1, 1, c + 1:, c + 1:].set(jnp.eye(o, dtype=dtype))
    ws = jnp.broadcast_to(mid, (L - 2, 3, 3, w, w))
    ws = ws.at[:, :, :, :c, c].set(sd_u * jax.random.normal(ku, (L - 2, 3, 3, c), dtype))
    bs = jnp.zeros((L - 2, w), dtype).at[:, c].set(sd_v * jax.random.normal(kv, (L - 2,), dtype))
    w_out = jnp.zeros((3, 3, w, o), dtype).at[1, 1, c + 1:, :].set(jnp.eye(o, dtype=dtype))
    b_out = jnp.full((o,), -C, dtype)
    return {"w_in": w_in, "b_in": b_in, "w": ws, "b": bs, "w_out": w_out, "b_out": b_out}


def _kaiming(spec, key, dtype):
    """He-normal weights N(0, 2 / fan_in), zero biases, the same shapes as the special init."""
    shapes = jax.eval_shape(lambda k: (_special_mlp if isinstance(spec, DeepNarrowMLP) else _special_cnn)(
        spec, k, dtype), key)
    keys = jax.random.split(key, 3)
    out = {}
    for k, name in zip(keys, ("w_in", "w", "w_out")):
        shape = shapes[name].shape
        if isinstance(spec, DeepNarrowMLP):
            fan_in = shape[-1]
        else:
            fan_in = 9 * shape[-2]
        out[name] = math.sqrt(2.0 / fan_in) * jax.random.normal(k, shape, dtype)
    for name in ("b_in", "b", "b_out"):
        out[name] = jnp.zeros(shapes[name].shape, dtype)
    return out


def init_params(spec, seed, input_dim=None, dtype=jnp.float32):
    """Parameters of `spec`: {"w_in", "b_in", "w" (L-2 stacked), "b", "w_out", "b_out"}.

    MLP weights are (out, in) matrices; CNN kernels are HWIO. `input_dim` (d_in, or (H, W, c_in) /
    c_in for a CNN) is checked against the spec when given. seed: an integer or a jax PRNG key."""
    if input_dim is not None:
        given = input_dim if isinstance(input_dim, (int, np.integer)) else tuple(input_dim)[-1]
        if int(given) != _n_in(spec):
            raise ValueError(f"input_dim {input_dim!r} does not match the spec's {_n_in(spec)} inputs")
    n = count_params(spec)
    if n > MAX_DN_PARAMS:
        raise ValueError(f"the network has {n:,} parameters, more than the limit of {MAX_DN_PARAMS:,} "
                         "(reduce the depth or the number of inputs)")
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        key = jax.random.PRNGKey(int(seed) % 2**32)
    else:
        key = seed
    return _init_jit(spec, jnp.dtype(dtype), key)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _init_jit(spec, dtype, key):
    if spec.init == "kaiming":
        return _kaiming(spec, key, dtype)
    return (_special_mlp if isinstance(spec, DeepNarrowMLP) else _special_cnn)(spec, key, dtype)


# ---------------------------------------------------------------------------------------------
# Forward pass
# ---------------------------------------------------------------------------------------------
def _conv(a, w):
    return jax.lax.conv_general_dilated(a, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def forward(spec, params, x):
    """f(x), shape (n, d_out); traceable (no validation). Layers 2..L-1 run in one lax.scan."""
    relu = jax.nn.relu
    if isinstance(spec, DeepNarrowMLP):
        h = relu(x @ params["w_in"].T + params["b_in"])
        h, _ = jax.lax.scan(lambda h, wb: (relu(h @ wb[0].T + wb[1]), None), h, (params["w"], params["b"]),
                            unroll=SCAN_UNROLL)
        return h @ params["w_out"].T + params["b_out"]
    h = relu(_conv(x, params["w_in"]) + params["b_in"])
    h, _ = jax.lax.scan(lambda h, wb: (relu(_conv(h, wb[0]) + wb[1]), None), h, (params["w"], params["b"]),
                        unroll=SCAN_UNROLL)
    # bias before pooling (the same function): each pixel is exactly 0 at the special init
    return jnp.mean(_conv(h, params["w_out"]) + params["b_out"], axis=(1, 2))


_forward_jit = jax.jit(forward, static_argnums=0)


def as_inputs(spec, x, name="x", dtype=None):
    """Validated inputs: (n, d_in) for an MLP, (n, H, W, c_in) for a CNN, finite and nonnegative."""
    x = np.asarray(x, dtype=dtype) if dtype is not None else np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64 if jax.config.jax_enable_x64 else np.float32)
    want = 2 if isinstance(spec, DeepNarrowMLP) else 4
    if x.ndim != want or x.shape[-1] != _n_in(spec):
        form = "(n, d_in)" if want == 2 else "(n, H, W, c_in)"
        raise ValueError(f"{name} must have shape {form} with {_n_in(spec)} inputs, got {x.shape}")
    if x.shape[0] > MAX_DN_POINTS:
        raise ValueError(f"{name} has {x.shape[0]:,} points, more than the limit of {MAX_DN_POINTS:,}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(x < 0):
        raise ValueError(f"{name} has negative entries: deep narrow networks need nonnegative inputs "
                         "(the copy neurons carry C_L x through ReLU; Lee et al. 2022 use pixels in [0, 1])")
    return x


def apply(spec, params, x):
    """Network outputs f(x), shape (n, d_out), in the parameters' dtype."""
    x = as_inputs(spec, x, dtype=params["b_in"].dtype)
    return _forward_jit(spec, params, jnp.asarray(x))


# ---------------------------------------------------------------------------------------------
# Empirical NTK
# ---------------------------------------------------------------------------------------------
def _mlp_layers(params, x):
    """Inputs of every layer (L, n, width; layer 1's input x zero-padded to the width) and the
    back-propagated delta^l_k = df_k/dz^l (L, n, d_out, width; layer L's delta e_k zero-padded)."""
    w = params["b_in"].shape[0]
    o = params["b_out"].shape[0]
    z1 = x @ params["w_in"].T + params["b_in"]

    def fwd(z, wb):
        z_next = jax.nn.relu(z) @ wb[0].T + wb[1]
        return z_next, z_next

    _, z_mid = jax.lax.scan(fwd, z1, (params["w"], params["b"]))
    zs = jnp.concatenate([z1[None], z_mid], axis=0)                                  # z^1 .. z^{L-1}
    d_top = params["w_out"][None, :, :] * (zs[-1] > 0).astype(x.dtype)[:, None, :]    # delta^{L-1}

    def bwd(delta, wz):                         # delta^{l+1} -> delta^l = (delta^{l+1} W^{l+1}) * 1[z^l > 0]
        w_next, z = wz
        d = (delta @ w_next) * (z > 0).astype(x.dtype)[:, None, :]
        return d, d

    _, d_low = jax.lax.scan(bwd, d_top, (params["w"], zs[:-1]), reverse=True)        # delta^1 .. delta^{L-2}
    pad = lambda a: jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, w - a.shape[-1])])
    inputs = jnp.concatenate([pad(x)[None], jax.nn.relu(zs)], axis=0)
    eye = jnp.broadcast_to(pad(jnp.eye(o, dtype=x.dtype)), (x.shape[0], o, w))
    return inputs, jnp.concatenate([d_low, d_top[None], eye[None]], axis=0)


@jax.jit
def _mlp_ntk(params, x1, x2):
    """sum_l (delta^l(x1) . delta^l(x2)) (h^{l-1}(x1) . h^{l-1}(x2) + 1), shape (n1, n2, d_out, d_out)."""
    h1, d1 = _mlp_layers(params, x1)
    h2, d2 = _mlp_layers(params, x2)

    def layer(acc, hd):
        a1, e1, a2, e2 = hd
        return acc + jnp.einsum("akw,bjw->abkj", e1, e2) * (a1 @ a2.T + 1.0)[:, :, None, None], None

    o = params["b_out"].shape[0]
    acc0 = jnp.zeros((x1.shape[0], x2.shape[0], o, o), x1.dtype)
    return jax.lax.scan(layer, acc0, (h1, d1, h2, d2))[0]


def ntk_by_jacobian(spec, params, x1, x2=None):
    """Theta = J(x1) J(x2)^T by autodiff over every parameter (small nets; independent of the
    layer-wise formula). Shape (n1, n2, d_out, d_out)."""
    x1 = jnp.asarray(x1)
    x2 = x1 if x2 is None else jnp.asarray(x2)
    j1 = jax.jacrev(lambda p: forward(spec, p, x1))(params)
    j2 = jax.jacrev(lambda p: forward(spec, p, x2))(params)
    flat = lambda j, n: jnp.concatenate([a.reshape(n, spec.d_out, -1) for a in jax.tree_util.tree_leaves(j)], -1)
    return jnp.einsum("akp,bjp->abkj", flat(j1, x1.shape[0]), flat(j2, x2.shape[0]))


def empirical_ntk(spec, params, x1, x2=None):
    """Empirical NTK Theta(x1, x2) = sum_p df(x1)/dp df(x2)/dp over all weights and biases.

    MLP: layer-wise from activations and back-propagated deltas (module docstring); CNN: Jacobian
    contraction (small nets). Returns (n1, n2) for d_out = 1, else (n1, n2, d_out, d_out) with
    [a, b, k, j] = sum_p df_k(x1_a)/dp df_j(x2_b)/dp. Not scaled: divide by L C_L^2 for the limit."""
    dtype = params["b_in"].dtype
    x1 = as_inputs(spec, x1, "x1", dtype)
    x2 = x1 if x2 is None else as_inputs(spec, x2, "x2", dtype)
    n = x1.shape[0] + x2.shape[0]
    if isinstance(spec, DeepNarrowMLP):
        held = n * spec.depth * spec.width * (spec.d_out + 1)
        if held > MAX_DN_NTK_ENTRIES:
            raise ValueError(f"points x depth x width x outputs = {held:,} exceeds the limit of "
                             f"{MAX_DN_NTK_ENTRIES:,} for the layer-wise NTK; use fewer points")
        theta = _mlp_ntk(params, jnp.asarray(x1), jnp.asarray(x2))
    else:
        held = n * spec.d_out * count_params(spec)
        if held > MAX_DN_NTK_ENTRIES:
            raise ValueError(f"points x outputs x parameters = {held:,} exceeds the limit of "
                             f"{MAX_DN_NTK_ENTRIES:,} for the CNN Jacobian; use fewer points or layers")
        theta = ntk_by_jacobian(spec, params, x1, x2)
    theta = np.asarray(theta)
    return theta[:, :, 0, 0] if spec.d_out == 1 else theta


def relu_gaussian_kernel(s11, s22, s12):
    """E[ReLU(u) ReLU(v)] for centred Gaussians with variances s11, s22 and covariance s12
    (arc-cosine kernel of degree 1, Cho and Saul 2009)."""
    s11, s22, s12 = (np.asarray(a, np.float64) for a in (s11, s22, s12))
    norm = np.sqrt(s11 * s22)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.clip(np.where(norm > 0, s12 / np.where(norm > 0, norm, 1.0), 1.0), -1.0, 1.0)
    t = np.arccos(cos)
    return norm * (np.sin(t) + (np.pi - t) * cos) / (2 * np.pi)


def deep_narrow_limit_ntk(spec, x1, x2=None):
    """L -> infinity limit of Theta(x1, x2) / (L C_L^2) at the special initialisation (MLP):

        x.x' + d_out + E[ReLU(g(x)) ReLU(g(x'))],   Cov g = rho^2 x.x' / d_in + beta^2

    (derivation in the module docstring), the same for every output (zero between outputs).
    Returns (n1, n2) in float64."""
    if not isinstance(spec, DeepNarrowMLP):
        raise ValueError("deep_narrow_limit_ntk is derived for DeepNarrowMLP")
    x1 = as_inputs(spec, x1, "x1", np.float64)
    x2 = x1 if x2 is None else as_inputs(spec, x2, "x2", np.float64)
    dot = x1 @ x2.T
    a = spec.rho ** 2 / spec.d_in
    s11 = a * np.sum(x1 ** 2, 1)[:, None] + spec.beta ** 2
    s22 = a * np.sum(x2 ** 2, 1)[None, :] + spec.beta ** 2
    return dot + spec.d_out + relu_gaussian_kernel(s11, s22, a * dot + spec.beta ** 2)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class DeepNarrowRun:
    """Result of `train_deep_narrow`; arrays indexed (network, record).

    train_loss, test_loss: mean over points and outputs of (f - y)^2 (PyTorch's MSELoss, as the
    paper's code), on the full sets.  test_accuracy: argmax agreement (NaN for d_out = 1).
    diverged: the loss became NaN/inf (that network's later records are NaN)."""
    seeds: np.ndarray
    steps: np.ndarray
    lr: float
    batch_size: Optional[int]
    train_loss: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    diverged: np.ndarray
    params: Optional[list] = None

    def params_of(self, i: int):
        return self.params[i]


def _mse(spec, params, x, y):
    return jnp.mean((forward(spec, params, x) - y) ** 2)


def _metrics(spec, params, x, y, xt, yt):
    f, ft = forward(spec, params, x), forward(spec, params, xt)
    acc = (jnp.mean(jnp.argmax(ft, 1) == jnp.argmax(yt, 1)) if yt.shape[1] > 1
           else jnp.asarray(jnp.nan, ft.dtype))
    return jnp.stack([jnp.mean((f - y) ** 2), jnp.mean((ft - yt) ** 2), acc.astype(ft.dtype)])


def sgd_update(spec, lr, params, x, y):
    """One plain SGD step on mean((f - y)^2) over the batch (x, y); traceable."""
    g = jax.grad(_mse, argnums=1)(spec, params, x, y)
    return jax.tree_util.tree_map(lambda a, b: a - lr * b, params, g)


def _advance(spec, n_steps, batch_size, lr, params, key, x, y, xt, yt):
    """n_steps of SGD (or full-batch GD if batch_size is None); then the metrics."""

    def step(carry, _):
        p, k = carry
        if batch_size is None:
            xb, yb = x, y
        else:
            k, sub = jax.random.split(k)
            idx = jax.random.choice(sub, x.shape[0], (batch_size,), replace=False)
            xb, yb = x[idx], y[idx]
        return (sgd_update(spec, lr, p, xb, yb), k), None

    (params, key), _ = jax.lax.scan(step, (params, key), None, length=n_steps)
    return params, key, _metrics(spec, params, x, y, xt, yt)


@functools.partial(jax.jit, static_argnums=0)
def _metrics_many(spec, params, x, y, xt, yt):
    return jax.vmap(lambda p: _metrics(spec, p, x, y, xt, yt))(params)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _advance_many(spec, n_steps, batch_size, lr, params, keys, x, y, xt, yt):
    return jax.vmap(lambda p, k: _advance(spec, n_steps, batch_size, lr, p, k, x, y, xt, yt))(params, keys)


def _targets(y, n, d_out, name, dtype):
    y = np.asarray(y, dtype)
    if y.ndim == 1:
        y = y[:, None]
    if y.shape != (n, d_out):
        raise ValueError(f"{name} must have shape ({n}, {d_out}), got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return y


def train_deep_narrow(spec, x, y, x_test, y_test, lr: float, steps: int, batch_size: Optional[int] = None,
                      seeds=range(1), record_every: Optional[int] = None,
                      progress: Optional[Callable[[float], None]] = None, dtype=jnp.float32,
                      keep_params: bool = True, **_ignored) -> DeepNarrowRun:
    """Plain SGD (full-batch GD if batch_size is None) on the MSE, one network per seed, initialised
    as `init_params(spec, seed)`; the networks run together (vmapped). Records every `record_every`
    steps (default steps / 50) and step 0."""
    dtype = jnp.dtype(dtype)
    x = as_inputs(spec, x, "x", dtype)
    x_test = as_inputs(spec, x_test, "x_test", dtype)
    n = x.shape[0]
    y = _targets(y, n, spec.d_out, "y", dtype)
    y_test = _targets(y_test, x_test.shape[0], spec.d_out, "y_test", dtype)
    lr = _positive("lr", lr)
    steps = _int_in("steps", steps, 0, MAX_DN_STEPS)
    if batch_size is not None:
        batch_size = _int_in("batch_size", batch_size, 1, n)
        batch_size = None if batch_size == n else batch_size
    record_every = max(1, steps // 50) if record_every is None else _int_in("record_every", record_every, 1, 10**9)
    seeds = [int(s) for s in (seeds if hasattr(seeds, "__iter__") else [seeds])]
    if not 1 <= len(seeds) <= MAX_DN_SEEDS:
        raise ValueError(f"seeds must hold 1 .. {MAX_DN_SEEDS} integers, got {len(seeds)}")
    if count_params(spec) * len(seeds) > MAX_DN_PARAMS:
        raise ValueError(f"{len(seeds)} networks x {count_params(spec):,} parameters exceed the limit of "
                         f"{MAX_DN_PARAMS:,}; train fewer seeds at a time")
    grid = sorted(set(range(0, steps, record_every)) | {steps})
    xj, yj, xtj, ytj = (jnp.asarray(a) for a in (x, y, x_test, y_test))
    params = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[init_params(spec, s, dtype=dtype) for s in seeds])
    keys = jnp.stack([jax.random.PRNGKey((s + 1_000_003) % 2**32) for s in seeds])
    metrics = np.full((len(seeds), len(grid), 3), np.nan)
    metrics[:, 0] = np.asarray(_metrics_many(spec, params, xj, yj, xtj, ytj))
    for r in range(1, len(grid)):
        params, keys, m = _advance_many(spec, grid[r] - grid[r - 1], batch_size, lr, params, keys, xj, yj, xtj, ytj)
        metrics[:, r] = np.asarray(m)
        if progress is not None:
            progress(grid[r] / max(steps, 1))
    bad = ~np.isfinite(metrics[:, :, 0])
    metrics[np.cumsum(bad, axis=1) > 0] = np.nan          # after a blow-up only NaN
    finals = [jax.tree_util.tree_map(lambda a: a[i], params) for i in range(len(seeds))] if keep_params else None
    return DeepNarrowRun(seeds=np.asarray(seeds), steps=np.asarray(grid), lr=lr, batch_size=batch_size,
                         train_loss=metrics[:, :, 0], test_loss=metrics[:, :, 1],
                         test_accuracy=metrics[:, :, 2], diverged=bad.any(axis=1), params=finals)


# ---------------------------------------------------------------------------------------------
# The paper's experiments
# ---------------------------------------------------------------------------------------------
def quarter_circle_points():
    """The paper's 200 inputs: angles linspace(0, pi/2, 220)[10:210] and (cos, sin) of them."""
    angles = np.linspace(0.0, np.pi / 2, 220)[10:210]
    return angles, np.stack([np.cos(angles), np.sin(angles)], axis=1)


NTK_ANCHOR = np.array([[np.cos(np.pi / 4), np.sin(np.pi / 4)]])   # x0 of the paper's kernel plot


@dataclasses.dataclass
class DeepNarrowKernelTrial:
    """Theta(x0, x) / (L C_L^2) on the quarter circle at initialisation and after `steps` of
    full-batch GD on f*(x) = x1 x2 (one network); loss = mean (f - y)^2 over the steps grid."""
    angles: np.ndarray
    theta_init: np.ndarray
    theta_trained: np.ndarray
    steps: np.ndarray
    train_loss: np.ndarray


def scaled_kernel_row(spec, params, x):
    """Theta(x0, x) / (L C_L^2) for the paper's x0 = (cos pi/4, sin pi/4); (n,) (first output)."""
    theta = empirical_ntk(spec, params, NTK_ANCHOR, x)
    theta = theta if theta.ndim == 2 else theta[:, :, 0, 0]
    return theta[0] / (spec.depth * spec.C_L ** 2)


def deep_narrow_kernel_trial(spec, seed, steps, scaled_lr, dtype=jnp.float64, progress=None):
    """The paper's NTK experiment for one network: GD with lr = scaled_lr / (L C_L^2) (the NTK grows
    like L C_L^2, so this keeps the function-space step the same at every depth) on the quarter
    circle with f*(x) = x1 x2."""
    from ._convergence import product_target
    angles, x = quarter_circle_points()
    lr = _positive("scaled_lr", scaled_lr) / (spec.depth * spec.C_L ** 2)
    run = train_deep_narrow(spec, x, product_target(x), x, product_target(x), lr=lr, steps=steps,
                            seeds=[seed], dtype=dtype, record_every=max(1, steps // 40), progress=progress)
    p0 = init_params(spec, seed, dtype=dtype)
    return DeepNarrowKernelTrial(angles=angles, theta_init=scaled_kernel_row(spec, p0, x),
                                 theta_trained=scaled_kernel_row(spec, run.params[0], x),
                                 steps=run.steps, train_loss=run.train_loss[0])


def relative_distance(theta, limit):
    """||theta - limit|| / ||limit|| (Euclidean over the points)."""
    theta, limit = np.asarray(theta, np.float64), np.asarray(limit, np.float64)
    return float(np.linalg.norm(theta - limit) / np.linalg.norm(limit))


def limit_distances(spec, depths, seeds, dtype=jnp.float64):
    """Relative distance of Theta(x0, .) / (L C_L^2) at initialisation to the limit, (depths, seeds)."""
    _, x = quarter_circle_points()
    out = np.zeros((len(depths), len(seeds)))
    for i, L in enumerate(depths):
        s = dataclasses.replace(spec, depth=int(L))
        limit = deep_narrow_limit_ntk(s, NTK_ANCHOR, x)[0]
        for j, seed in enumerate(seeds):
            out[i, j] = relative_distance(scaled_kernel_row(s, init_params(s, seed, dtype=dtype), x), limit)
    return out


def digits_onehot(n_test=360, seed=0):
    """scikit-learn's 8x8 digits: pixels / 16 in [0, 1], one-hot targets; a random split with
    n_test test images. Returns x, y, x_test, y_test (float32; images flattened to 64)."""
    from sklearn.datasets import load_digits  # ships with scikit-learn, no download
    d = load_digits()
    n_test = _int_in("n_test", n_test, 1, len(d.target) - 1)
    order = np.random.default_rng(seed).permutation(len(d.target))
    x = (d.data / 16.0).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[d.target]
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def critical_lr(spec, x, batch_size=None):
    """Largest stable SGD step predicted by the limit NTK at the special initialisation:
    the loss mean((f - y)^2) over b points and d_out outputs moves f by -(2 lr / (b d_out)) Theta (f - y),
    stable while 2 lr lambda_max / (b d_out) < 2, with Theta ~ L C_L^2 Theta_inf. Uses up to 512 points; NaN for a CNN."""
    x = as_inputs(spec, x, "x", np.float64)
    b = min(batch_size or x.shape[0], x.shape[0], 512)
    xs = x[:b]
    if isinstance(spec, DeepNarrowCNN):
        return float("nan")         # no closed-form limit derived for the CNN here
    lam = np.linalg.eigvalsh(deep_narrow_limit_ntk(spec, xs))[-1] * spec.depth * spec.C_L ** 2
    return float(b * spec.d_out / lam)
