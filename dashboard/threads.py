"""Native thread pools of the server process.

OpenBLAS (numpy's and scipy's) keeps its worker threads spinning for a while after each call. In the
app its calls are small (kernel regression and condition numbers on a few hundred points, NTK-GP
solves), and they come right before the compiled kernels, whose job threads run at a lower priority
(dashboard.jobs): measured on 2 cores, two spinning OpenBLAS threads held 60-67 % of a core each
while an image-kernel job ran, and the lecture-size job (200 + 100 digits, depth 5) took 20 s in
the server; with one BLAS thread, 9 s (about its estimate and its time in a process of its own).
"""
_limited = False


def limit_blas_threads() -> None:
    """One BLAS thread for the whole process (threadpoolctl, which scikit-learn already installs:
    it finds every loaded BLAS, whatever the build). Idempotent: app.py calls it on every run."""
    global _limited
    if _limited:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    _limited = True
