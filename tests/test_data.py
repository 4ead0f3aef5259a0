"""Data sets of the paper figures and the CSV loader (ntk_core/_data.py)."""
import io
import math

import numpy as np
import pytest

import ntk_core as nc


@pytest.mark.parametrize("name,lo,hi,f", [("cubic", 0.0, 1.0, lambda x: x**3),
                                          ("sin", -math.pi, math.pi, np.sin)])
def test_dataset_shapes_domain_and_noise(name, lo, hi, f):
    d = nc.make_dataset(name, n_train=40, noise=0.0, seed=3, n_test=50)
    assert d.x_train.shape == d.y_train.shape == (40, 1)
    assert d.x_test.shape == d.y_test.shape == (50, 1)
    assert np.all((d.x_train >= lo) & (d.x_train <= hi))
    np.testing.assert_allclose(d.x_test[[0, -1], 0], [lo, hi])
    # without noise the targets are the true function, on the grid and at the training points
    np.testing.assert_allclose(d.y_train, f(d.x_train))
    np.testing.assert_allclose(d.y_test, f(d.x_test))


@pytest.mark.parametrize("name,fn", [("cubic", lambda v: math.pow(v, 3.0)), ("sin", math.sin)])
def test_dataset_bits_come_from_libm_not_numpy(name, fn):
    """Stored results are keyed by a hash of the data's bytes, so the data must be the same to the
    last bit on every install: each target is the C library's scalar value (numpy 2.4's x**3
    differs from pow in the last bit for ~5 % of x, which hid the shipped Fig 1-3 results)."""
    d = nc.make_dataset(name, n_train=200, noise=0.0, seed=5, n_test=500)
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        assert [float(v) for v in y[:, 0]] == [fn(float(v)) for v in x[:, 0]]


def test_noise_scales_fixed_draws():
    """Same seed: same x and same standard normal draws, the noise level only scales them."""
    a = nc.make_dataset("cubic", 200, noise=0.01, seed=1)
    b = nc.make_dataset("cubic", 200, noise=0.5, seed=1)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    eps_a = (a.y_train - a.x_train**3) / 0.01
    eps_b = (b.y_train - b.x_train**3) / 0.5
    np.testing.assert_allclose(eps_a, eps_b, atol=1e-9)
    # the draws are standard normal: mean ~ 0, sd ~ 1 for 200 samples
    assert abs(eps_a.mean()) < 0.3 and 0.8 < eps_a.std() < 1.2
    c = nc.make_dataset("cubic", 200, noise=0.01, seed=2)
    assert not np.allclose(a.x_train, c.x_train)


@pytest.mark.parametrize("kwargs,field", [
    (dict(name="square"), "data set"), (dict(name="cubic", n_train=0), "n_train"),
    (dict(name="cubic", n_train=2001), "n_train"), (dict(name="cubic", noise=-1), "noise"),
    (dict(name="cubic", noise=float("nan")), "noise"), (dict(name="cubic", seed=-1), "seed"),
    (dict(name="cubic", n_test=1), "n_test"),
])
def test_make_dataset_rejects_bad_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        nc.make_dataset(**kwargs)


def test_load_xy_csv_reads_columns_in_any_order_and_ignores_others():
    x, y = nc.load_xy_csv(b"note,Y, X\na,1.5,0\nb,-2e-1,3\n")
    np.testing.assert_array_equal(x, [0.0, 3.0])
    np.testing.assert_array_equal(y, [1.5, -0.2])
    x, y = nc.load_xy_csv(io.StringIO("x,y\n1,2\n\n3,4\n"))  # blank lines skipped, text file
    np.testing.assert_array_equal(x, [1.0, 3.0])
    x, y = nc.load_xy_csv(io.BytesIO("\ufeffx,y\n1,2\n".encode()))  # BOM from Excel
    np.testing.assert_array_equal(y, [2.0])


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"\n\n", "empty"),
    (b"a,b\n1,2\n", "missing: x, y"),
    (b"x,z\n1,2\n", "missing: y"),
    (b"x,y\n", "no data rows"),
    (b"x,y\n1,two\n", "line 2, column y: 'two' is not a number"),
    (b"x,y\n1,2\n3\n", "line 3, column y"),
    (b"x,y\nnan,2\n", "line 2, column x: 'nan' is not a finite number"),
    (b"x,y\n1,inf\n", "not a finite number"),
    (b"x,y\n\xff\xfe,1\n", "not UTF-8"),
    (b"x,y\n1\x00,2\n", "not text"),
])
def test_load_xy_csv_rejects_bad_files_with_a_message(content, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        nc.load_xy_csv(content)


def test_load_xy_csv_limits_rows_and_bytes():
    ok = "x,y\n" + "".join(f"{i},{i}\n" for i in range(2000))
    assert nc.load_xy_csv(ok)[0].shape == (2000,)
    too_many = ok + "1,1\n"
    with pytest.raises(ValueError, match="2,001 data rows; at most 2,000"):
        nc.load_xy_csv(too_many)
    with pytest.raises(ValueError, match="too large"):
        nc.load_xy_csv(b"x,y\n" + b"1,1\n" * 300_000)
    with pytest.raises(ValueError, match="too large"):
        nc.load_xy_csv(io.BytesIO(b"x,y\n" + b"1,1\n" * 300_000))


def test_dataset_from_points_grid_covers_the_data():
    d = nc.dataset_from_points([0.0, 2.0, 1.0], [1.0, 2.0, 3.0], n_test=21)
    assert d.y_test is None and d.x_train.shape == (3, 1)
    assert d.x_test[0, 0] < 0.0 and d.x_test[-1, 0] > 2.0
    single = nc.dataset_from_points([5.0], [1.0])
    assert single.x_test[0, 0] < 5.0 < single.x_test[-1, 0]
