"""Kernel regression as a classifier on images (Arora et al. 2019, seed 001, Sec. 6), the data
protocol of that paper on scikit-learn's digits or user images, and small finite CNNs trained by
SGD as the control.

    pred = kernel_regression(K(X, X), K(X*, X), Y, diag_reg)   # K(X*, X) (K(X, X) + r I)^-1 Y
    Y    = class_targets(labels, n_classes)                    # 0.9 true class, -0.1 otherwise

Protocol of the paper: pixels scaled to [0, 1], then per-channel standardisation with the training
set's mean and standard deviation; no regulariser (`diag_reg=0`). A ridge `diag_reg * mean(diag K)`
is the control for ill-conditioned kernels.
"""
from __future__ import annotations

import dataclasses
import io
import math

import numpy as np

MAX_TRAIN_IMAGES = 2000
MAX_TEST_IMAGES = 1000
MAX_IMAGE_PIXELS = 32 * 32
MAX_CHANNELS = 4
MAX_CLASSES = 100
MAX_NPZ_BYTES = 50 * 2**20
TRUE_TARGET, FALSE_TARGET = 0.9, -0.1


def check_sizes(n_train: int, n_test: int) -> None:
    """The limits of the image-kernel computations (kernels grow as n^2 and each entry costs
    (H W)^2 pixel pairs times depth)."""
    if not 1 <= n_train <= MAX_TRAIN_IMAGES:
        raise ValueError(f"number of training images must be in [1, {MAX_TRAIN_IMAGES:,}], got {n_train:,}")
    if not 1 <= n_test <= MAX_TEST_IMAGES:
        raise ValueError(f"number of test images must be in [1, {MAX_TEST_IMAGES:,}], got {n_test:,}")


def class_targets(labels, n_classes: int) -> np.ndarray:
    """(n, n_classes) targets: 0.9 for the true class, -0.1 otherwise (Arora et al. 2019)."""
    labels = np.asarray(labels)
    y = np.full((labels.shape[0], n_classes), FALSE_TARGET)
    y[np.arange(labels.shape[0]), labels] = TRUE_TARGET
    return y


def kernel_regression(k_train_train, k_test_train, y_train, diag_reg: float = 0.0) -> np.ndarray:
    """Kernel regression predictions K(X*, X) (K(X, X) + r mean(diag K) I)^{-1} Y, (n_test, n_out).

    Solved in float64 by a Cholesky factorisation (the kernel is positive semi-definite), falling
    back to an LU solve; a singular kernel raises ValueError asking for a ridge (diag_reg > 0)."""
    import scipy.linalg

    k = np.asarray(k_train_train, np.float64)
    kx = np.asarray(k_test_train, np.float64)
    y = np.asarray(y_train, np.float64)
    if y.ndim == 1:
        y = y[:, None]
    n = k.shape[0]
    if k.ndim != 2 or k.shape != (n, n):
        raise ValueError(f"k_train_train must be square, got shape {k.shape}")
    if kx.ndim != 2 or kx.shape[1] != n:
        raise ValueError(f"k_test_train must have shape (n_test, {n}), got {kx.shape}")
    if y.shape[0] != n:
        raise ValueError(f"y_train must have {n} rows, got {y.shape[0]}")
    if not (math.isfinite(diag_reg) and diag_reg >= 0):
        raise ValueError(f"diag_reg must be a finite number >= 0, got {diag_reg}")
    for name, a in (("k_train_train", k), ("k_test_train", kx), ("y_train", y)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or infinite values")
    a = k + diag_reg * np.mean(np.diag(k)) * np.eye(n) if diag_reg > 0 else k
    try:
        alpha = scipy.linalg.cho_solve(scipy.linalg.cho_factor(a, lower=True), y)
    except np.linalg.LinAlgError:
        try:
            alpha = scipy.linalg.solve(a, y, assume_a="sym")
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
            raise ValueError("the training kernel is singular; use a ridge (diag_reg > 0)") from None
    return kx @ alpha


def condition_number(k) -> float:
    """lambda_max / lambda_min of a symmetric kernel (inf when lambda_min <= 0)."""
    ev = np.linalg.eigvalsh(np.asarray(k, np.float64))
    return float(ev[-1] / ev[0]) if ev[0] > 0 else math.inf


def accuracy(scores, labels) -> float:
    return float(np.mean(np.argmax(np.asarray(scores), axis=1) == np.asarray(labels)))


def confusion_matrix(labels, predicted, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts, row = true class, column = predicted class."""
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (np.asarray(labels), np.asarray(predicted)), 1)
    return m


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ImageSplit:
    """Standardised train / test images (n, H, W, C) with integer labels 0..n_classes-1."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    class_names: tuple


def standardize(x_train, x_test):
    """Per-channel standardisation with the training set's mean and standard deviation."""
    mean = x_train.mean(axis=(0, 1, 2), keepdims=True)
    sd = x_train.std(axis=(0, 1, 2), keepdims=True)
    sd = np.where(sd > 0, sd, 1.0)
    return (x_train - mean) / sd, (x_test - mean) / sd


def stratified_split(labels, n_train: int, n_test: int, seed: int):
    """Indices (train, test), disjoint and seeded, each with the classes in proportion: images are
    ordered by their fractional rank within their class in a random order, so every prefix of
    that order holds the classes in proportion."""
    labels = np.asarray(labels)
    if n_train + n_test > labels.shape[0]:
        raise ValueError(f"{n_train:,} training + {n_test:,} test images exceed the {labels.shape[0]:,} available")
    order = np.random.default_rng(seed).permutation(labels.shape[0])
    rank = np.empty(labels.shape[0])
    for c in np.unique(labels):
        members = order[labels[order] == c]
        rank[members] = (np.arange(members.shape[0]) + 0.5) / members.shape[0]
    interleaved = order[np.argsort(rank[order], kind="stable")]
    return np.sort(interleaved[:n_train]), np.sort(interleaved[n_train : n_train + n_test])


def prepare_images(x, y, n_train: int, n_test: int, seed: int, scale: float, class_names=None) -> ImageSplit:
    """The paper's protocol on images x (n, H, W, C), labels y: stratified seeded split, pixels /
    scale, per-channel standardisation with the training statistics."""
    check_sizes(n_train, n_test)
    _, labels = np.unique(y, return_inverse=True)
    names = tuple(str(c) for c in (class_names if class_names is not None else np.unique(y)))
    tr, te = stratified_split(labels, n_train, n_test, seed)
    x = np.asarray(x, np.float64) / scale
    xtr, xte = standardize(x[tr], x[te])
    return ImageSplit(xtr, labels[tr], xte, labels[te], len(names), names)


def digits_images():
    """scikit-learn's digits: (1797, 8, 8, 1) pixels in 0..16 and labels 0..9 (shipped, no download)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images[..., None].astype(np.float64), d.target.astype(np.int64)


def load_images_npz(data: bytes):
    """User images from an .npz with arrays `x` (n, H, W, C) and `y` (n,) labels. Returns (x, y,
    scale) where scale maps the pixels to [0, 1] (255 for 8-bit images, else max |x|). Raises
    ValueError with a message that says what is wrong."""
    if len(data) > MAX_NPZ_BYTES:
        raise ValueError(f"the file has {len(data) / 2**20:.1f} MB, more than the limit of {MAX_NPZ_BYTES // 2**20} MB")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            names = list(getattr(f, "files", []))
            arrays = {k: f[k] for k in ("x", "y") if k in names}
    except Exception as e:  # not a zip, pickled objects, truncated file ...
        raise ValueError(f"this is not a readable .npz file ({type(e).__name__}: {e})") from None
    if set(arrays) != {"x", "y"}:
        raise ValueError(f"the .npz must hold arrays named 'x' and 'y'; it has {sorted(names)}")
    x, y = arrays["x"], arrays["y"]
    if x.dtype.kind not in "fiub":
        raise ValueError(f"x must be numeric, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"x must have shape (n, H, W, C) (or (n, H, W)), got {x.shape}")
    n, h, w, c = x.shape
    if h * w > MAX_IMAGE_PIXELS or c > MAX_CHANNELS or min(h, w) < 1:
        raise ValueError(f"images must have at most {MAX_IMAGE_PIXELS} pixels and {MAX_CHANNELS} channels, got {h}x{w}x{c}")
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},) (one label per image), got {y.shape}")
    if y.dtype.kind not in "iuUSb" and not (y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y))):
        raise ValueError(f"y must hold class labels (integers or strings), got dtype {y.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or infinite values")
    classes = np.unique(y)
    if not 2 <= len(classes) <= MAX_CLASSES:
        raise ValueError(f"y must have between 2 and {MAX_CLASSES} classes, got {len(classes)}")
    top = float(np.max(np.abs(x)))
    scale = 255.0 if x.dtype.kind in "ui" or (top > 1 and top <= 255 and np.all(x == np.round(x))) else max(top, 1.0)
    return x, y, scale


# ----------------------------------------------------------------------------------------------
# Finite CNNs trained by SGD (the channels control of Table 1)
# ----------------------------------------------------------------------------------------------
def train_cnn_classifier(spec, x_train, targets, x_test, *, steps: int, lr: float, batch: int, seed: int):
    """Trains a CNN (`spec`, NTK parameterization, `n_classes` outputs) by SGD on the half mean
    squared error to `targets`; returns the test scores (n_test, n_classes) and the final training
    loss. Each class is one output head sharing the conv layers (readout width n_classes)."""
    import jax
    import jax.numpy as jnp

    from ._finite import draw_params, forward, layer_shapes

    x_train = jnp.asarray(x_train, jnp.float32)
    x_test = jnp.asarray(x_test, jnp.float32)
    y = jnp.asarray(targets, jnp.float32)
    n, n_out = y.shape
    shape = tuple(int(s) for s in x_train.shape[1:])
    key = jax.random.PRNGKey(int(seed) % 2**32)
    k_body, k_head, k_batch = jax.random.split(key, 3)
    body = draw_params(spec, shape, jnp.dtype(jnp.float32), k_body)[:-1]
    fan = layer_shapes(spec, shape)[-1][0][0]
    head = {"w": jax.random.normal(k_head, (fan, n_out)), "b": jax.random.normal(k_head, (n_out,)) * 0}
    params = body + [head]

    def loss(p, xb, yb):
        return 0.5 * jnp.mean(jnp.sum((forward(spec, p, xb) - yb) ** 2, axis=1))

    @jax.jit
    def step(p, idx):
        val, g = jax.value_and_grad(loss)(p, x_train[idx], y[idx])
        return jax.tree_util.tree_map(lambda a, b: a - lr * b, p, g), val

    b = min(batch, n)
    idx = jax.random.randint(k_batch, (steps, b), 0, n)
    for s in range(steps):
        params, last = step(params, idx[s])
    scores = jax.jit(lambda p, x: forward(spec, p, x))(params, x_test)
    return np.asarray(scores, np.float64), float(last)
