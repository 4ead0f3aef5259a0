"""Bound the memory maps held by compiled XLA programs.

Every jitted function keeps its compiled programs (one per static argument and shape) in JAX's
caches, and on the CPU each program holds a few memory maps of its own. A long-running process that
sees many shapes (a server with many users moving sliders, or a test session) would otherwise reach
the kernel's per-process limit `vm.max_map_count` (65,530 by default), where the next compilation
crashes the process with a segmentation fault instead of raising. `release_compiled_code_if_needed`
drops the caches well before that; programs in use stay alive and the others compile again on need.
"""
from __future__ import annotations

import threading
import time

import jax

_MAPS = "/proc/self/maps"
_LIMIT = "/proc/sys/vm/max_map_count"
DEFAULT_MAP_LIMIT = 65530
RELEASE_FRACTION = 0.5  # release at half the limit: one big compile adds thousands of maps
CHECK_INTERVAL_SECONDS = 2.0

_lock = threading.Lock()
_last_check = 0.0
releases = 0  # how many times the caches were dropped in this process (for tests and logs)


def map_count() -> int | None:
    """Number of memory maps of this process, or None where /proc is not available."""
    try:
        with open(_MAPS, "rb") as maps:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: maps.read(1 << 20), b""))
    except OSError:
        return None


def map_limit() -> int:
    try:
        with open(_LIMIT) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return DEFAULT_MAP_LIMIT


def release_compiled_code_if_needed(*, force_check: bool = False,
                                    threshold: int | None = None) -> bool:
    """Clear JAX's compilation caches when this process holds more than `threshold` memory maps
    (default: half of vm.max_map_count). Checks at most every CHECK_INTERVAL_SECONDS unless
    `force_check`. Returns True when the caches were cleared."""
    global _last_check, releases
    now = time.monotonic()
    if not force_check and now - _last_check < CHECK_INTERVAL_SECONDS:
        return False
    with _lock:
        _last_check = now
        count = map_count()
        if count is None:
            return False
        if count < (threshold if threshold is not None else int(RELEASE_FRACTION * map_limit())):
            return False
        jax.clear_caches()
        releases += 1
        return True
