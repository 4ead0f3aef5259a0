import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402

# float64 is available to every test; float32 tests pass float32 inputs explicitly.
jax.config.update("jax_enable_x64", True)
