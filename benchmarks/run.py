"""Times the shared benchmark workloads (../shared/docs/benchmarks.md) on this project's code.

    python -m benchmarks.run W1 W2 ...      one JSON line per workload: {"workload", "seconds"}

Time = best of 3 runs after a warm-up run (compilation excluded), result fully computed.
"""
import json
import sys
import time

import numpy as np


def best_time(f, reps=3):
    f()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


def data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def w1():
    import ntk_core as nc

    spec, x = nc.MLP(depth=10, width=512, w_std=1.5, b_std=0.05, activation="relu"), data((2000, 10))
    return best_time(lambda: nc.infinite_kernels(spec, x).ntk)


def w2():
    import ntk_core as nc

    spec, x = nc.MLP(depth=10, width=512, w_std=1.5, b_std=0.05, activation="erf"), data((2000, 10))
    return best_time(lambda: nc.infinite_kernels(spec, x).ntk)


def _cnn(readout):
    import ntk_core as nc

    spec = nc.CNN(depth=5, channels=64, w_std=2**0.5, b_std=0.0, activation="relu", readout=readout)
    x = data((64, 8, 8, 1))
    return best_time(lambda: nc.infinite_kernels(spec, x).ntk)


def w3():
    return _cnn("gap")


def w4():
    return _cnn("flatten")


def _empirical(spec, x):
    """Empirical NTK of an initialised net; like the reference, parameters are drawn outside the timing."""
    import jax
    import ntk_core as nc

    params = jax.block_until_ready(nc.init_params(spec, 0, x.shape[1]))
    return best_time(lambda: nc.empirical_ntk(spec, params, x))


def w5():
    import ntk_core as nc

    return _empirical(nc.MLP(depth=3, width=4096, w_std=1.5, b_std=0.05, activation="erf"), data((100, 2)))


def w6():
    import ntk_core as nc

    g = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    x = np.stack([np.cos(g), np.sin(g)], 1).astype(np.float32)
    return _empirical(nc.MLP(depth=3, width=10000, w_std=1.0, b_std=0.1, activation="relu"), x)


def w7():
    """Whole NTK-GP call: the three kernels, the eigendecomposition, mean and full covariance at t = 10
    (the reference caches its train-train kernel and eigendecomposition between timed calls)."""
    import ntk_core as nc

    spec = nc.MLP(depth=2, width=512, w_std=1.5, b_std=0.05, activation="erf")
    xtr, ytr, xte = data((1000, 4), 1), data((1000, 1), 2), data((1000, 4), 3)
    return best_time(lambda: nc.ntk_gp(spec, xtr, ytr, xte, t=10.0, kernel="ntk", diag_reg=1e-4).cov)


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6, "W7": w7}


def main(names):
    for name in names or list(WORKLOADS):
        try:
            out = {"workload": name, "seconds": WORKLOADS[name]()}
        except Exception as e:  # report and keep going, like the reference runner
            out = {"workload": name, "seconds": None, "error": f"{type(e).__name__}: {str(e)[:200]}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
