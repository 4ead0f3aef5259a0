"""The activation registry under JAX's default configuration (x64 off), which is how a library user
calls ntk_core: every activation, and the CNN and NTK-GP paths, must match float64 to float32
accuracy (issue 14). A file of its own so that pytest-xdist (--dist loadfile) can run it beside the
long accuracy grid of test_activations.py instead of after it."""
import numpy as np
import pytest

import ntk_core as nc

# ------------------------------------------------------------------------------------------------
# JAX's default configuration: x64 off (conftest turns it on for every other test)
# ------------------------------------------------------------------------------------------------
_X32_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import jax
assert not jax.config.jax_enable_x64
import ntk_core as nc
x = np.random.default_rng(0).standard_normal((12, 3))
x[3] = 0.0
out = {}
WHOLE_PATH = {"tanh", "erf"}
for name in nc.ACTIVATIONS:
    k = nc.infinite_kernels(nc.MLP(depth=3, w_std=1.5, b_std=0.05, activation=name), x)
    assert k.ntk.dtype == np.float32
    out[name] = [k.nngp.tolist(), k.ntk.tolist()]
    if name in WHOLE_PATH:  # CNN and NTK-GP too: one quadrature activation (they share the code path), one closed form
        c = nc.infinite_kernels(nc.CNN(depth=2, w_std=1.5, b_std=0.1, activation=name, readout="flatten"),
                                x.reshape(12, 3, 1, 1)[:4])
        g = nc.ntk_gp(nc.MLP(depth=2, activation=name), x[:8], x[:8, 0], x[8:])
        out[name] += [c.ntk.tolist(), np.asarray(g.mean).tolist()]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_every_activation_with_x64_off_matches_float64():
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    out = subprocess.run([sys.executable, "-c", _X32_SCRIPT, root], capture_output=True, text=True,
                         timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    x = np.random.default_rng(0).standard_normal((12, 3))
    x[3] = 0.0
    whole_path = {"tanh", "erf"}
    for name in nc.ACTIVATIONS:
        k = nc.infinite_kernels(nc.MLP(depth=3, w_std=1.5, b_std=0.05, activation=name), x)
        refs = [k.nngp, k.ntk]
        if name in whole_path:
            refs.append(nc.infinite_kernels(nc.CNN(depth=2, w_std=1.5, b_std=0.1, activation=name, readout="flatten"),
                                            x.reshape(12, 3, 1, 1)[:4]).ntk)
            assert np.all(np.isfinite(got[name][3])), name
        assert len(got[name]) == (4 if name in whole_path else 2), name
        for value, ref in zip(got[name], refs):
            value = np.asarray(value)
            assert np.all(np.isfinite(value)), name
            np.testing.assert_allclose(value, ref, rtol=2e-5, atol=2e-5 * np.max(np.abs(ref)), err_msg=name)
