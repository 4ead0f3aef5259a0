"""The server's persistent JAX compilation cache (dashboard/compile_cache.py): a second process
loads what the first compiled."""
import os
import subprocess
import sys

from conftest import ROOT

SCRIPT = """
import logging, sys
import jax
logging.basicConfig(level=logging.WARNING)
logging.getLogger("jax._src.compiler").setLevel(logging.DEBUG)
jax.config.update("jax_enable_x64", True)
from dashboard import compile_cache
print("DIR", compile_cache.enable_compilation_cache())
import numpy as np
import ntk_core as nc
x = np.linspace(0.0, 1.0, 5)[:, None]
k = nc.infinite_kernels(nc.MLP(depth=2, w_std=1.3, b_std=0.2, activation="tanh"), x)
print("NTK", float(k.ntk[0, 1]))
"""


def _run(env):
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout, out.stderr


def test_a_second_process_loads_the_compiled_code(tmp_path):
    cache = tmp_path / "jax"
    env = {**os.environ, "NTK_EXPLORER_JAX_CACHE": str(cache), "PYTHONPATH": ROOT}
    first, log1 = _run(env)
    assert f"DIR {cache}" in first
    entries = [p for p in os.listdir(cache) if p.endswith("-cache")]
    assert any("mlp_tiles_quadrature" in p for p in entries), entries
    second, log2 = _run(env)
    assert "Persistent compilation cache hit" in log2
    assert first.split("NTK")[1] == second.split("NTK")[1]  # the same kernels from loaded code


def test_off_leaves_the_cache_off(tmp_path):
    env = {**os.environ, "NTK_EXPLORER_JAX_CACHE": "off", "PYTHONPATH": ROOT}
    out, _ = _run(env)
    assert "DIR None" in out
