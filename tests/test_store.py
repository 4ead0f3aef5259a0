"""The result store: round trip, atomic writes under a crash, checksums, LRU eviction, location."""
from __future__ import annotations

import os

import numpy as np
import pytest

from dashboard import store as st_
from dashboard.store import ResultStore, ShippedResults, result_key


def arrays(seed=0, n=1000):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=n).astype(np.float32), "k": np.asarray(3),
            "note": np.asarray("a sentence")}


def same(a, b):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert np.asarray(a[k]).dtype == np.asarray(b[k]).dtype


def test_round_trip_meta_and_a_fresh_process_sees_it(tmp_path):
    s = ResultStore(str(tmp_path))
    key = result_key("test.kind", "1", {"w": 10, "lr": 0.5, "x": np.arange(3)})
    assert s.get(key) is None
    s.put(key, arrays(), {"command": "pytest"})
    same(s.get(key), arrays())
    assert s.meta(key)["command"] == "pytest"
    again = ResultStore(str(tmp_path))      # a restarted server: nothing in memory
    same(again.get(key), arrays())
    assert again.lookup(key).origin == "local"


def test_keys_depend_on_every_parameter_and_the_version():
    base = {"w": 10, "lr": 0.5, "x": np.arange(3.0)}
    k = result_key("a", "1", base)
    assert k == result_key("a", "1", dict(reversed(list(base.items()))))
    assert k != result_key("a", "2", base)
    assert k != result_key("a", "1", {**base, "lr": 0.25})
    assert k != result_key("a", "1", {**base, "x": np.arange(3.0) + 1e-9})


def test_a_crash_during_a_write_leaves_the_old_entry(tmp_path, monkeypatch):
    s = ResultStore(str(tmp_path))
    s.put("k", arrays(0))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed during the write")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        s.put("k", arrays(1))
    monkeypatch.undo()
    same(ResultStore(str(tmp_path)).get("k"), arrays(0))
    assert [f for f in os.listdir(tmp_path) if f.endswith(".part")] == []


def test_a_file_renamed_but_never_indexed_is_not_trusted(tmp_path):
    """A crash between the rename and the index row: the file is removed, not shown."""
    s = ResultStore(str(tmp_path))
    st_.write_atomic(os.path.join(tmp_path, "orphan.npz"), st_.encode(arrays()))
    assert s.get("orphan") is None
    assert not os.path.exists(os.path.join(tmp_path, "orphan.npz"))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_corrupt_entry_is_removed_and_reported_missing(tmp_path, damage):
    s = ResultStore(str(tmp_path))
    s.put("k", arrays())
    path = os.path.join(tmp_path, "k.npz")
    data = bytearray(open(path, "rb").read())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    open(path, "wb").write(bytes(data))
    fresh = ResultStore(str(tmp_path))
    assert fresh.get("k") is None
    assert not os.path.exists(path) and "k" not in fresh.keys()
    fresh.put("k", arrays())                 # recomputed and stored again
    same(ResultStore(str(tmp_path)).get("k"), arrays())


def test_least_recently_used_entries_are_evicted_beyond_the_bound(tmp_path):
    one = len(st_.encode(arrays(0)))
    s = ResultStore(str(tmp_path), max_bytes=int(3.5 * one))
    for i in range(3):
        s.put(f"k{i}", arrays(i))
    s.clear_memory()
    assert s.get("k0") is not None           # k0 is now more recent than k1
    s.put("k3", arrays(3))
    assert sorted(s.keys()) == ["k0", "k2", "k3"]
    assert s.total_bytes() <= s.max_bytes
    assert not os.path.exists(os.path.join(tmp_path, "k1.npz"))


def test_shipped_entries_are_read_only_checksummed_and_shadowed_by_local(tmp_path):
    shipped_dir, local_dir = tmp_path / "shipped", tmp_path / "local"
    ShippedResults(str(shipped_dir)).write("k", arrays(0), {"command": "python -m x"})
    s = ResultStore(str(local_dir), read_only_dirs=(str(shipped_dir),))
    hit = s.lookup("k")
    assert hit.origin == "shipped" and hit.meta["command"] == "python -m x"
    s.put("k", arrays(1), {"command": "dashboard"})      # a Recompute: local wins
    assert ResultStore(str(local_dir), read_only_dirs=(str(shipped_dir),)).lookup("k").origin == "local"
    # a damaged shipped file is skipped, not shown
    path = shipped_dir / "k.npz"
    path.write_bytes(path.read_bytes()[:-10])
    assert ResultStore(str(tmp_path / "other"), read_only_dirs=(str(shipped_dir),)).get("k") is None


def test_location_and_bound_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(st_.STORE_ENV, str(tmp_path / "here"))
    monkeypatch.setenv(st_.MAX_MB_ENV, "7")
    s = st_.default_store()
    assert s.path == str(tmp_path / "here") and s.max_bytes == 7 * 2**20
    assert st_.SHIPPED_DIR in s.read_only_dirs
    monkeypatch.delenv(st_.STORE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert st_.default_store().path == str(tmp_path / "cache" / "ntk_explorer" / "results")


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(TypeError):
        ResultStore(str(tmp_path)).put("k", {"x": np.array([{}, 1], dtype=object)})
