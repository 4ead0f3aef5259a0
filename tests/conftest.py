import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
# Neural Tangents 0.6.5 float64 reference kernels, shipped in the repository (tests/data/README.md)
# so that a fresh clone without ../shared runs every test.
REFERENCE_KERNELS = os.path.join(ROOT, "tests", "data", "kernels_public.json")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402

# float64 is available to every test; float32 tests pass float32 inputs explicitly.
jax.config.update("jax_enable_x64", True)
