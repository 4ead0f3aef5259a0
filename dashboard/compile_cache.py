"""JAX's persistent compilation cache for the server.

XLA compiles each jitted function once per shape and static argument; for the quadrature activations
(tanh, softplus, sigmoid) a page's first kernels took 3-9 s of compiling, and a restarted server
compiled everything again. With the cache on disk a new server process loads what any earlier one
compiled (a key per program and backend, so a code change only adds entries): measured on 2 cores,
the finite page's tanh kernels (20 + 200 points) in a fresh process 8.8 s -> 3.6 s.

`$NTK_EXPLORER_JAX_CACHE`: a directory, or `off`; default `$XDG_CACHE_HOME/ntk_explorer/jax`
(`~/.cache/...`). Bounded to `MAX_BYTES`, least recently used entries evicted (JAX's LRU cache,
which needs the `filelock` package; without it the cache stays off, since JAX would refuse to
compile with a bound it cannot lock).
"""
from __future__ import annotations

import os

from .store import user_cache_dir

CACHE_ENV = "NTK_EXPLORER_JAX_CACHE"
MAX_BYTES = 512 * 2**20
MIN_COMPILE_SECONDS = 0.2  # cheaper compiles are not worth a file (JAX's default is 1 s)

_enabled: str | None = None


def cache_path() -> str | None:
    """The cache directory, or None when `$NTK_EXPLORER_JAX_CACHE` is `off`."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in ("off", "0", "false", "no"):
        return None
    return value or user_cache_dir("jax")


def enable_compilation_cache() -> str | None:
    """Turn the cache on for this process (before its first compile); returns the directory, or
    None when it stays off. Idempotent: app.py calls it on every run."""
    global _enabled
    if _enabled is not None:
        return _enabled
    path = cache_path()
    try:
        import filelock  # noqa: F401 - JAX's bounded cache locks its index with it
    except ImportError:
        path = None
    if path is None:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    _enabled = path
    return path
