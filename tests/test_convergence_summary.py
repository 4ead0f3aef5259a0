"""dashboard/convergence_summary.py: display helpers of the kernel-convergence page."""
import numpy as np
import pytest

from dashboard import convergence_summary as summary


def test_width_sweep_doubles_and_validates():
    assert summary.width_sweep(64, 4096) == [64, 128, 256, 512, 1024, 2048, 4096]
    assert summary.width_sweep(64, 256, per_octave=2) == [64, 91, 128, 181, 256]
    with pytest.raises(ValueError, match="max_width"):
        summary.width_sweep(64, 32)
    with pytest.raises(ValueError, match="min_width"):
        summary.width_sweep(0, 32)


def test_seed_summary_relative_change_and_reference_line():
    rows = np.array([[1.0, 2.0], [3.0, 6.0]])                  # (n_seeds, n)
    mean, lo, hi = summary.seed_summary(rows)
    np.testing.assert_allclose(mean, [2.0, 4.0])
    np.testing.assert_allclose(lo, [1.0, 2.0])
    np.testing.assert_allclose(hi, [3.0, 6.0])
    assert summary.relative_change([[3.0, 4.0]], [[3.0, 4.0 + 5.0]]) == pytest.approx(1.0)
    m = np.array([16.0, 64.0, 256.0])
    np.testing.assert_allclose(summary.reference_line(m, 2.0 * m ** -0.5), 2.0 * m ** -0.5)
