"""Times the shared benchmark workloads (../shared/docs/benchmarks.md) on this project's code.

    python -m benchmarks.run W1 W2 ...      one JSON line per workload: {"workload", "seconds"}

Time = best of 3 runs after a warm-up run (compilation excluded), result fully computed.
FIG3, JACOT, DN1 and LZ1 are the project's own targets (issues 3, 5, 11 and 13), timed once, cold,
as a user waits for them (DN1 also reports its floor); TANH1 is W1 with tanh, warm, beside W2
(issue 14). They are not in the shared list and run only when named.
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


def tanh1():
    """Issue 14's speed target: W1 with tanh (the Mehler series), warm, best of 3, and W2 (erf) in
    the same run for the ratio ("within 3x of erf")."""
    import ntk_core as nc

    x = data((2000, 10))
    spec = nc.MLP(depth=10, width=512, w_std=1.5, b_std=0.05, activation="tanh")
    seconds = best_time(lambda: nc.infinite_kernels(spec, x).ntk)
    erf = w2()
    return {"seconds": seconds, "erf_seconds": erf, "ratio_to_erf": seconds / erf}


def _cnn(readout):
    import ntk_core as nc

    spec = nc.CNN(depth=5, channels=64, w_std=2**0.5, b_std=0.0, activation="relu", readout=readout)
    x = data((64, 8, 8, 1))
    return best_time(lambda: nc.infinite_kernels(spec, x).ntk)


def w3():
    return _cnn("gap")


def w4():
    return _cnn("flatten")


def w8():
    """Seed 001's classifier on real images: CNTK-GAP kernels for every depth 1..6 in one pass,
    1,000 digits train x train (symmetric) and the next 500 test x train. One cold run (kernel
    compilation included, as the page's user waits for it)."""
    import ntk_core as nc
    from sklearn.datasets import load_digits

    x = load_digits().images[..., None] / 16
    spec = nc.CNN(depth=6, channels=64, w_std=2**0.5, b_std=0.0, activation="relu", readout="gap")
    start = time.perf_counter()
    train = nc.infinite_kernels_by_depth(spec, x[:1000])
    test = nc.infinite_kernels_by_depth(spec, x[1000:1500], x[:1000])
    assert len(train) == len(test) == 6
    return time.perf_counter() - start


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


def fig3():
    """Seed 003 Fig 3 (issue 3: under 60 s): 100 networks, width 512, 2 hidden erf layers, 10,000 GD steps
    on 5 points, lr 0.1 as the page's preset, records every 100 steps on 50 test points. One cold run
    (compilation included), since that is what the page's user waits for."""
    import ntk_core as nc

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (5, 1))
    y = x[:, 0] ** 3 + 0.01 * rng.standard_normal(5)
    xt = np.linspace(0, 1, 50)[:, None]
    spec = nc.MLP(depth=2, width=512, w_std=1.5, b_std=0.05, activation="erf")
    start = time.perf_counter()
    nc.train(spec, x, y, xt, xt[:, 0] ** 3, lr=0.1, steps=10_000, seeds=range(100), record_every=100)
    return time.perf_counter() - start


def jacot():
    """One width-10,000 network of the Jacot et al. Fig 1 preset (issue 5): init, kernel row at 121
    angles, 200 GD steps at lr 1.0 on 10 points, kernel row again. One cold run."""
    import ntk_core as nc
    from ntk_core import _convergence as cv

    spec = nc.MLP(depth=3, width=10_000, w_std=1.0, b_std=0.1, activation="relu")
    _, x = cv.circle_points(121)
    xt, yt = cv.gaussian_training_set(10)
    start = time.perf_counter()
    cv.finite_kernel_pair(spec, 0, x[:1], x, xt, yt, steps=200, lr=1.0)
    return time.perf_counter() - start


def dn1():
    """Seed 000 (issue 11): one SGD step of a depth-1,000 deep narrow MLP (width 64 + 1 + 10 = 75) on a
    batch of 512 digits, float32, against this machine's floor measured in the same run: 1,000
    sequential 512x75 @ 75x75 products (lax.scan) for the forward pass, twice that for the backward."""
    import jax
    import jax.numpy as jnp
    import ntk_core as nc
    from ntk_core import _deep_narrow as dn

    x, y, _, _ = nc.digits_onehot(360)
    xb, yb = jnp.asarray(x[:512]), jnp.asarray(y[:512])
    spec = nc.DeepNarrowMLP(depth=1000, d_in=64, d_out=10, C_L=5.0)
    params = nc.init_params(spec, 0, 64)
    step = jax.jit(dn.sgd_update, static_argnums=(0, 1))
    seconds = best_time(lambda: jax.block_until_ready(step(spec, 1e-5, params, xb, yb)))
    ws = jax.random.normal(jax.random.PRNGKey(0), (1000, 75, 75), jnp.float32) / 75 ** 0.5
    h0 = jax.random.normal(jax.random.PRNGKey(1), (512, 75), jnp.float32)
    chain = jax.jit(lambda h, ws: jax.lax.scan(lambda h, w: (h @ w, None), h, ws)[0])
    matmuls = best_time(lambda: jax.block_until_ready(chain(h0, ws)))
    floor = 3 * matmuls
    return {"seconds": seconds, "floor_seconds": floor, "forward_matmuls_seconds": matmuls,
            "ratio_to_floor": seconds / floor}


def lz1():
    """The lazy-training page's width sweep with its default settings (issue 13: under 60 s cold): one
    hidden layer (erf, sigma_w 1.5, sigma_b 0.05), widths 16, 64, ..., 16,384, 3 seeds, 1,000 GD steps of f
    and f_lin at half the stability boundary, kernel change and kappa_f; float64 as the page (x64 on)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from dashboard import lazy_jobs

    start = time.perf_counter()
    lazy_jobs.run_locally(lazy_jobs.width_jobs({}))
    return time.perf_counter() - start


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6, "W7": w7, "W8": w8, "FIG3": fig3,
             "JACOT": jacot, "DN1": dn1, "LZ1": lz1, "TANH1": tanh1}


def main(names):
    for name in names or [w for w in WORKLOADS if w.startswith("W")]:
        try:
            got = WORKLOADS[name]()
            out = {"workload": name, **(got if isinstance(got, dict) else {"seconds": got})}
        except Exception as e:  # report and keep going, like the reference runner
            out = {"workload": name, "seconds": None, "error": f"{type(e).__name__}: {str(e)[:200]}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
