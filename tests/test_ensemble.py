"""Ensemble summaries (ntk_core/_ensemble.py) against explicit loops."""
import numpy as np
import pytest

import ntk_core as nc


def test_half_mse_matches_a_loop():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(3, 4, 7))
    y = rng.normal(size=(7, 1))
    got = nc.half_mse(pred, y)
    want = np.array([[sum((pred[a, b, i] - y[i, 0]) ** 2 for i in range(7)) / 14
                      for b in range(4)] for a in range(3)])
    np.testing.assert_allclose(got, want)
    with pytest.raises(ValueError, match="targets"):
        nc.half_mse(pred, y[:5])


def test_ensemble_mean_sd_sample_statistics():
    rng = np.random.default_rng(1)
    pred = rng.normal(2.0, 3.0, size=(4000, 5))
    mean, sd = nc.ensemble_mean_sd(pred)
    np.testing.assert_allclose(mean, pred.sum(0) / 4000)
    np.testing.assert_allclose(sd, np.sqrt(((pred - mean) ** 2).sum(0) / 3999))
    assert np.all(np.abs(sd - 3.0) < 0.2)  # a Monte Carlo check of the scale
    m1, s1 = nc.ensemble_mean_sd(pred[:1])
    np.testing.assert_array_equal(m1, pred[0])
    np.testing.assert_array_equal(s1, 0.0)
