"""dashboard.threads: the server runs BLAS on one thread (spinning OpenBLAS workers took the cores
from the compiled kernels' jobs). In a subprocess, so that the limit does not reach other tests."""
import subprocess
import sys

from conftest import ROOT

_SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np, scipy.linalg  # noqa: F401  (load the BLAS libraries)
from threadpoolctl import threadpool_info
from dashboard import threads
threads.limit_blas_threads()
threads.limit_blas_threads()
blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
assert blas and all(i["num_threads"] == 1 for i in blas), blas
print("ok")
"""


def test_limit_blas_threads_leaves_one_thread_per_blas():
    out = subprocess.run([sys.executable, "-c", _SCRIPT, ROOT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
