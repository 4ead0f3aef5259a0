"""Durations of the app's script runs, written only when `$NTK_EXPLORER_RUN_TIMES` names a file.

The load test (tests/test_load.py) reads them to tell the server's share of a slider move (the
script run, including its short wait for jobs) from the browser's (receiving and drawing it).
One JSON line per finished run: {"page": title, "seconds": duration, "at": unix time}.
"""
from __future__ import annotations

import json
import os
import threading
import time

ENV = "NTK_EXPLORER_RUN_TIMES"
_LOCK = threading.Lock()


def record(page: str, seconds: float) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    line = json.dumps({"page": page, "seconds": round(float(seconds), 4), "at": time.time()})
    with _LOCK, open(path, "a") as f:
        f.write(line + "\n")
