"""ntk_core/_validation.py (argument checkers) and ntk_core/_lru.py (the LRU helper), and the public namespace."""
import threading

import numpy as np
import pytest

import ntk_core as nc
from ntk_core import _validation as v


def test_check_int_accepts_python_and_numpy_integers_in_range():
    assert v.check_int("n", 3, 1, 5) == 3 and type(v.check_int("n", np.int64(5), 1, 5)) is int
    assert v.check_int("n", 10**9, 0) == 10**9          # no upper bound


@pytest.mark.parametrize("value, message", [
    (True, "n must be an integer"), (2.0, "n must be an integer"), ("3", "n must be an integer"),
    (0, r"n must be an integer in \[1, 5\], got 0"), (6, r"in \[1, 5\]"),
])
def test_check_int_rejects_with_the_field_name(value, message):
    with pytest.raises(ValueError, match=message):
        v.check_int("n", value, 1, 5)


def test_check_number_and_lr():
    assert v.check_number("noise", "0.5") == 0.5 and v.check_number("noise", 0) == 0.0
    for bad in (-1e-9, float("nan"), float("inf"), "x", None):
        with pytest.raises(ValueError, match="noise"):
            v.check_number("noise", bad)
    assert v.check_lr(0.1) == 0.1
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        v.check_lr(0.0)


def test_check_targets_shapes_and_finiteness():
    np.testing.assert_array_equal(v.check_targets([[1.0], [2.0]], 2, "y"), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"y must have shape \(3,\) or \(3, 1\)"):
        v.check_targets(np.zeros((3, 2)), 3, "y")
    with pytest.raises(ValueError, match="y_test contains NaN"):
        v.check_targets([1.0, np.nan], 2, "y_test")


def test_check_seeds_times_and_counts():
    np.testing.assert_array_equal(v.check_seeds(7), [7])
    np.testing.assert_array_equal(v.check_seeds(range(3)), [0, 1, 2])
    for bad in ([], [0.5], "abc", None):
        with pytest.raises(ValueError, match="seeds"):
            v.check_seeds(bad)
    with pytest.raises(ValueError, match="limit of 2"):
        v.check_seeds(range(3), max_seeds=2)
    t, scalar = v.check_times(np.inf)
    assert scalar and t.tolist() == [np.inf]
    assert v.check_times([0.0, 1.0])[1] is False
    for bad in ([], -1.0, [np.nan], "soon"):
        with pytest.raises(ValueError, match="t "):
            v.check_times(bad)
    assert v.check_count("x", 5, 5) == 5
    with pytest.raises(ValueError, match="x_train has 6 points, more than the limit of 5"):
        v.check_count("x_train", 6, 5)
    with pytest.raises(ValueError, match="x must contain at least one point"):
        v.check_count("x", 0, 5)


def test_size_limits_have_one_meaning_each():
    assert nc.MAX_CSV_ROWS == nc.MAX_DATASET_POINTS
    assert nc.MAX_GP_TRAIN_POINTS <= nc.MAX_TRAIN_POINTS
    with pytest.raises(ValueError, match="n_train"):
        nc.make_dataset("cubic", n_train=nc.MAX_DATASET_POINTS + 1)


def test_lru_cache_evicts_the_least_recently_used():
    cache = nc.LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1            # "a" is now the most recent
    cache.put("c", 3)                     # evicts "b"
    assert "b" not in cache and cache.get("b") is None and cache.get("b", 0) == 0
    assert cache.get("a") == 1 and cache.get("c") == 3 and len(cache) == 2
    cache.put("a", 10)                    # overwrite keeps one entry
    assert len(cache) == 2 and cache.get("a") == 10
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match="max_entries"):
        nc.LRUCache(0)


def test_lru_cache_is_safe_under_concurrent_puts():
    cache = nc.LRUCache(50)

    def fill(offset):
        for i in range(2000):
            cache.put((offset, i), i)
            cache.get((offset, i // 2))

    threads = [threading.Thread(target=fill, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 50


def test_public_namespace_is_grouped_sorted_and_free_of_ui_helpers():
    names = nc.__all__
    assert len(names) == len(set(names))
    assert all(hasattr(nc, n) for n in names)
    for ui_only in ("seed_summary", "reference_line", "width_sweep", "relative_change"):
        assert not hasattr(nc, ui_only)
    # sorted within each commented group of __init__.py
    import inspect
    source = inspect.getsource(nc).split("__all__ = [", 1)[1]
    groups, current = [], None
    for line in source.splitlines():
        line = line.strip()
        if line.startswith("#"):
            current = []
            groups.append(current)
        elif line.startswith('"'):
            current.append(line.strip('",'))
    assert sum(len(g) for g in groups) == len(names)
    for g in groups:
        assert g == sorted(g), g
