"""Compiled programs are released before the process reaches vm.max_map_count (ntk_core/_compiled.py)."""
import jax
import jax.numpy as jnp
import pytest

import ntk_core as nc
from ntk_core import _compiled


@pytest.mark.skipif(_compiled.map_count() is None, reason="needs /proc/self/maps (Linux)")
def test_release_drops_compiled_programs_and_their_maps():
    @jax.jit
    def f(x):
        return jnp.sin(x) * 2.0

    for n in range(1, 60):  # 59 shapes, 59 programs
        f(jnp.ones(n))
    assert f._cache_size() >= 59
    before = _compiled.releases
    assert not nc.release_compiled_code_if_needed(force_check=True, threshold=10**9)
    assert nc.release_compiled_code_if_needed(force_check=True, threshold=1)
    assert _compiled.releases == before + 1
    assert f._cache_size() == 0
    assert float(f(jnp.ones(3))[0]) == pytest.approx(2 * 0.8414709848078965)  # compiles again


def test_checks_are_rate_limited_and_the_default_threshold_is_half_the_limit():
    nc.release_compiled_code_if_needed(force_check=True, threshold=10**9)
    assert not nc.release_compiled_code_if_needed(threshold=1)  # within CHECK_INTERVAL_SECONDS
    assert _compiled.map_limit() >= 1000
