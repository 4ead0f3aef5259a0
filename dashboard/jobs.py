"""The one job runner: every long computation of every page goes through `run`.

A `Job` is one unit of work (one network, one kernel, one sweep point): its parameters (everything
that determines the result), a pure `compute(progress)` returning a flat dict of numpy arrays, and
an estimate of its cost. `run(jobs, ...)`:

1. reads every result it can from the result store (dashboard.store; shipped preset results too);
2. if some are missing, runs them at once when their estimated total is at most
   `ASK_ABOVE_SECONDS` (one threshold for the whole app), else shows a button with the estimate;
3. computes the missing ones one at a time with a progress bar, stores each as it finishes and calls
   `on_result(results)` so the page redraws partial results; a rerun resumes where it stopped;
4. turns a failure into a message in the page (never a traceback);
5. says where stored results came from, with a Recompute button.

The same key asked by several sessions is computed once (the others wait for it).

    jobs = [Job("convergence.angle", params, compute=lambda progress: {...}, seconds=3.0)]
    done = run(jobs, label="Kernel vs angle", key="cv_angle", on_result=redraw)
    done.results   # list aligned with jobs: dict of arrays or None
    done.complete  # every result present
"""
from __future__ import annotations

import dataclasses
import datetime
import threading
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import streamlit as st

from .store import default_store, result_key

Progress = Callable[[float, str], None]
ASK_ABOVE_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class Job:
    """One unit of long work. `compute(progress)` must be pure given `params`."""
    kind: str
    params: Mapping[str, Any]
    compute: Callable[[Progress], Mapping[str, np.ndarray]]
    seconds: float
    version: str = "1"

    @property
    def key(self) -> str:
        return result_key(self.kind, self.version, self.params)


@dataclasses.dataclass
class JobsResult:
    results: list
    metas: list

    @property
    def complete(self) -> bool:
        return all(r is not None for r in self.results)

    @property
    def n_done(self) -> int:
        return sum(r is not None for r in self.results)


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


_FLIGHTS: dict[str, threading.Lock] = {}
_FLIGHTS_LOCK = threading.Lock()


def _flight_lock(key: str) -> threading.Lock:
    with _FLIGHTS_LOCK:
        return _FLIGHTS.setdefault(key, threading.Lock())


def compute_one(job: Job, progress: Optional[Progress] = None, *, command: str = "dashboard") -> dict:
    """The result of `job`: from the store, or computed once (other callers of the same key wait)."""
    store = default_store()
    with _flight_lock(job.key):
        found = store.get(job.key)
        if found is not None:
            return found
        start = time.perf_counter()
        arrays = dict(job.compute(progress or (lambda fraction, text="": None)))
        meta = {"kind": job.kind, "version": job.version,
                "computed": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
                "command": command, "seconds": round(time.perf_counter() - start, 3)}
        store.put(job.key, arrays, meta)
        return {k: np.asarray(v) for k, v in arrays.items()}


def run(jobs: Sequence[Job], *, label: str, key: str,
        on_result: Optional[Callable[[list], None]] = None) -> JobsResult:
    """Results of `jobs` (see the module docstring); draws its button/progress/messages in place."""
    store = default_store()
    results = [store.get(j.key) for j in jobs]
    metas = [store.meta(j.key) if r is not None else None for j, r in zip(jobs, results)]
    missing = [i for i, r in enumerate(results) if r is None]
    if not missing:
        _provenance(jobs, metas, key)
        return JobsResult(results, metas)
    estimate = sum(jobs[i].seconds for i in missing)
    if estimate > ASK_ABOVE_SECONDS and not st.button(
            f"Compute {label} (about {format_duration(estimate)})", key=f"{key}__run",
            type="primary", help="Results are kept and shared: later visits show them at once."):
        st.info(f"{label}: {len(missing)} of {len(jobs)} results still to compute, estimated "
                f"{format_duration(estimate)} on this machine, so it waits for the button.")
        return JobsResult(results, metas)
    bar = st.progress(0.0, text=f"{label}: starting …")
    for n, i in enumerate(missing):
        def progress(fraction: float, text: str = "", n=n):
            total = (n + min(max(fraction, 0.0), 1.0)) / len(missing)
            bar.progress(total, text=f"{label}: {n} of {len(missing)} done{' · ' + text if text else ''}")
        try:
            results[i] = compute_one(jobs[i], progress)
        except Exception as err:  # noqa: BLE001 - a message in the page, never a traceback
            bar.empty()
            st.error(f"{label} failed ({type(err).__name__}: {err}).")
            return JobsResult(results, metas)
        metas[i] = store.meta(jobs[i].key)
        if on_result is not None:
            on_result(results)
    bar.empty()
    return JobsResult(results, metas)


def _provenance(jobs: Sequence[Job], metas: list, key: str) -> None:
    shipped = [m for m in metas if m and m.get("command", "dashboard") != "dashboard"]
    if not shipped:
        return
    m = shipped[0]
    cols = st.columns([5, 1])
    cols[0].caption(f"Computed on {m.get('computed', '?')} with `{m.get('command')}`; "
                    "shipped with the app.")
    if cols[1].button("Recompute", key=f"{key}__recompute",
                      help="Compute these results again here, live."):
        for job in jobs:
            st.session_state.setdefault("_recompute", set()).add(job.key)
