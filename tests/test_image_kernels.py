"""Per-depth CNTKs, kernel regression and the image data protocol (seed 001)."""
from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest

import ntk_core as nc


IMGS = np.random.default_rng(3).standard_normal((5, 5, 6, 2))
IMGS2 = np.random.default_rng(4).standard_normal((3, 5, 6, 2))


@pytest.mark.parametrize("readout", ["gap", "flatten"])
@pytest.mark.parametrize("activation,engine", [
    ("relu", "numba"), ("erf", "numba"),
    pytest.param("relu", "jax", marks=pytest.mark.slow),   # JAX CNN compile: minutes on 2 cores
    pytest.param("tanh", "jax", marks=pytest.mark.slow)])
def test_per_depth_kernels_equal_single_depth_kernels(readout, activation, engine):
    quadrature = activation in nc.QUADRATURE_ACTIVATIONS  # each depth and shape is its own slow compile
    cnn = nc.CNN(depth=2 if quadrature else 3, w_std=1.3, b_std=0.2, activation=activation, readout=readout)
    for x2 in (IMGS2,) if quadrature else (None, IMGS2):
        ks = nc.infinite_kernels_by_depth(cnn, IMGS, x2, engine=engine)
        assert sorted(ks) == list(range(1, cnn.depth + 1))
        for d, k in ks.items():
            ref = nc.infinite_kernels(dataclasses.replace(cnn, depth=d), IMGS, x2, engine="jax")
            assert k.ntk.dtype == np.float64
            np.testing.assert_allclose(k.ntk, ref.ntk, rtol=1e-10, atol=0)
            np.testing.assert_allclose(k.nngp, ref.nngp, rtol=1e-10, atol=0)


def test_per_depth_progress_and_bad_spec():
    seen = []
    nc.infinite_kernels_by_depth(nc.CNN(depth=2), IMGS, progress=seen.append)
    assert seen and seen[-1] == 1.0
    with pytest.raises(ValueError, match="depth"):
        nc.infinite_kernels_by_depth(nc.CNN(depth=0), IMGS)
    with pytest.raises(ValueError, match="CNN"):
        nc.infinite_kernels_by_depth(nc.MLP(depth=2), IMGS.reshape(5, -1))


def test_kernel_regression_equals_an_independent_solve():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((30, 40))
    k = a @ a.T / 40 + 0.1 * np.eye(30)
    kx = rng.standard_normal((7, 30))
    y = rng.standard_normal((30, 4))
    want = kx @ np.linalg.solve(k, y)
    np.testing.assert_allclose(nc.kernel_regression(k, kx, y), want, rtol=1e-9)
    r = 1e-2
    want = kx @ np.linalg.solve(k + r * np.mean(np.diag(k)) * np.eye(30), y)
    np.testing.assert_allclose(nc.kernel_regression(k, kx, y, diag_reg=r), want, rtol=1e-9)
    singular = np.ones((30, 30))
    with pytest.raises(ValueError, match="singular"):
        nc.kernel_regression(singular, kx, y)
    with pytest.raises(ValueError, match="diag_reg"):
        nc.kernel_regression(k, kx, y, diag_reg=-1)


def test_targets_split_and_limits():
    y = nc.class_targets(np.array([0, 2]), 3)
    np.testing.assert_array_equal(y, [[0.9, -0.1, -0.1], [-0.1, -0.1, 0.9]])
    x, labels = nc.digits_images()
    s1 = nc.prepare_images(x, labels, 100, 50, seed=1, scale=16.0)
    s2 = nc.prepare_images(x, labels, 100, 50, seed=1, scale=16.0)
    np.testing.assert_array_equal(s1.x_train, s2.x_train)
    assert np.bincount(s1.y_train, minlength=10).min() >= 9  # stratified: 10 per class
    assert np.bincount(s1.y_test, minlength=10).min() >= 4
    assert abs(s1.x_train.mean()) < 1e-12 and abs(s1.x_train.std() - 1) < 1e-12
    with pytest.raises(ValueError, match="training images"):
        nc.prepare_images(x, labels, nc.MAX_TRAIN_IMAGES + 1, 10, seed=0, scale=16.0)
    with pytest.raises(ValueError, match="test images"):
        nc.prepare_images(x, labels, 10, nc.MAX_TEST_IMAGES + 1, seed=0, scale=16.0)


def test_npz_upload_roundtrip():
    buf = io.BytesIO()
    x = np.random.default_rng(0).integers(0, 256, (30, 6, 6, 3)).astype(np.uint8)
    np.savez(buf, x=x, y=np.array(["cat", "dog", "eel"] * 10))
    xs, ys, scale = nc.load_images_npz(buf.getvalue())
    assert xs.shape == (30, 6, 6, 3) and scale == 255.0
    split = nc.prepare_images(xs, ys, 12, 6, seed=0, scale=scale)
    assert split.class_names == ("cat", "dog", "eel") and split.n_classes == 3


def test_digits_cntk_classifies_and_is_reproducible():
    """CNTK-GAP regression on 100 digits: well above chance, the same for the same seed."""
    from dashboard import image_kernel_jobs as ij

    v = ij.settings({"depth": 2, "ik_ntrain": 100, "ik_ntest": 50, "ik_cnn": False})
    runs = [ij.jobs_for(v)[0].compute(lambda f, t="": None) for _ in range(2)]
    np.testing.assert_array_equal(runs[0]["acc_ntk"], runs[1]["acc_ntk"])
    assert runs[0]["acc_ntk"].min() > 0.7


def test_digits_split_larger_than_the_data_set_is_a_clear_error():
    x, labels = nc.digits_images()
    with pytest.raises(ValueError, match="exceed the 1,797 available"):
        nc.prepare_images(x, labels, 1500, 500, seed=0, scale=16.0)


def test_cnn_summary_averages_seeds_per_readout_and_depth():
    """jobs_for_split orders the CNN jobs readout (gap, flatten), depth, seed; a missing result is NaN."""
    from dashboard import image_kernel_jobs as ij

    results = [{"acc": 0.1 * k, "loss": 1.0 + k} for k in range(12)]  # 2 readouts x 3 depths x 2 seeds
    results[11] = None
    acc, loss = ij.cnn_summary(results, 3)
    np.testing.assert_allclose(acc[0], [0.05, 0.25, 0.45])
    np.testing.assert_allclose(loss[1, :2], [7.5, 9.5])
    assert np.isnan(acc[1, 2]) and np.isnan(loss[1, 2])
    assert ij.CONSTANT_PREDICTOR_LOSS == pytest.approx(0.45)
