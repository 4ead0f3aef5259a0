import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
# Neural Tangents 0.6.5 float64 reference kernels, shipped in the repository (tests/data/README.md)
# so that a fresh clone without ../shared runs every test.
REFERENCE_KERNELS = os.path.join(ROOT, "tests", "data", "kernels_public.json")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# The app keeps JAX's compiled code on disk (dashboard/compile_cache.py); the tests' own processes
# do not write into the user's cache (tests/test_compile_cache.py checks it in subprocesses).
os.environ.setdefault("NTK_EXPLORER_JAX_CACHE", "off")

import jax  # noqa: E402

# float64 is available to every test; float32 tests pass float32 inputs explicitly.
jax.config.update("jax_enable_x64", True)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def _session_store(tmp_path_factory):
    return str(tmp_path_factory.mktemp("ntk_store"))


@pytest.fixture(autouse=True)
def _temp_result_store(_session_store, monkeypatch):
    """Tests never read or fill the user's result store (shipped presets are still found).
    An AppTest run is one script run (no browser reruns the page when a background job ends), so
    a page's run waits for its jobs to finish; tests of the app's short wait set it back."""
    monkeypatch.setenv("NTK_EXPLORER_STORE", _session_store)
    monkeypatch.setenv("NTK_EXPLORER_JOB_WAIT", "900")


@pytest.fixture(autouse=True)
def _bounded_compiled_code():
    """Thousands of compiled shapes across the suite would otherwise reach vm.max_map_count and
    crash the process (a segmentation fault in XLA); the app does the same on every rerun.
    Between tests the caches are dropped at a quarter of the limit, so that the app's own check
    (at half) never clears them in the middle of a test and turns a warm rerun into a cold one."""
    from ntk_core._compiled import map_limit, release_compiled_code_if_needed

    release_compiled_code_if_needed(force_check=True, threshold=map_limit() // 4)
    yield
