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


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4}


def main(names):
    for name in names or list(WORKLOADS):
        try:
            out = {"workload": name, "seconds": WORKLOADS[name]()}
        except Exception as e:  # report and keep going, like the reference runner
            out = {"workload": name, "seconds": None, "error": f"{type(e).__name__}: {str(e)[:200]}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
