"""The one job runner: every long computation of every page goes through `run`.

A `Job` is one unit of work (one network, one kernel, one sweep point): its parameters (everything
that determines the result), a pure `compute(progress)` returning a flat dict of numpy arrays, and
an estimate of its cost. `run(jobs, ...)`:

1. reads every result it can from the result store (dashboard.store; shipped preset results too);
2. if some are missing, runs them at once when their estimated total is at most
   `ASK_ABOVE_SECONDS` (one threshold for the whole app), else shows a button with the estimate;
3. computes the missing ones in background worker threads, draws a progress bar while they run,
   stores each as it finishes and calls `on_result(results)` so the page redraws partial results;
4. turns a failure into a message in the page (never a traceback);
5. says where stored results came from ("computed on <date> with <command>"), with a Recompute
   button that computes them again live (replacing the local entries; shipped files stay as they
   are).

Sharing and load:
- single flight: a key being computed is computed once; every session (and `compute_one` caller)
  asking for it attaches to the same `Flight` and sees its progress;
- bounded concurrency: jobs run in two small pools of daemon threads, `HEAVY_WORKERS` (default 1,
  `$NTK_EXPLORER_JOB_WORKERS`) for jobs estimated above `HEAVY_SECONDS` and `LIGHT_WORKERS` for the
  rest, so a few-second job is not queued behind a five-minute one and the server keeps a core for
  interactive reruns;
- resume: the work runs outside the session's script, so a rerun (a moved slider) or a closed tab
  does not stop it; the next run of the page attaches to it again, and finished units are stored.

    jobs = [Job("convergence.angle", params, compute=lambda progress: {...}, seconds=3.0)]
    done = run(jobs, label="Kernel vs angle", key="cv_angle", on_result=redraw)
    done.results   # list aligned with jobs: dict of arrays or None
    done.complete  # every result present
"""
from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import queue
import threading
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

import ntk_core as nc

from .store import default_store, result_key

Progress = Callable[..., None]    # progress(fraction in [0, 1], text="")
ASK_ABOVE_SECONDS = 30.0          # the one threshold of the app: longer work waits for a click
HEAVY_SECONDS = 5.0               # jobs estimated above this run in the heavy pool
WORKERS_ENV = "NTK_EXPLORER_JOB_WORKERS"
LIGHT_WORKERS = 2
POLL_SECONDS = 0.25               # how often a waiting page redraws its progress bar
DASHBOARD = "dashboard"           # the `command` of results computed by the running app

log = logging.getLogger("ntk_explorer.jobs")


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
    origins: list = dataclasses.field(default_factory=list)   # "local" | "shipped" | "computed"
    errors: list = dataclasses.field(default_factory=list)    # messages shown in the page

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


def error_message(label: str, err: BaseException) -> str:
    """What the page says when a job fails: ValueErrors are our checks' own sentences."""
    if isinstance(err, ValueError):
        return f"{label}: {err}"
    return f"{label} failed ({type(err).__name__}: {err})."


# ------------------------------------------------------------------------------------------------
# Flights: one computation of one key, shared by everyone who asks for it
# ------------------------------------------------------------------------------------------------
class Flight:
    """One computation of `job.key` (queued, running or finished), with its shared progress."""

    def __init__(self, job: Job, command: str):
        self.job = job
        self.command = command
        self.fraction = 0.0
        self.text = ""
        self.started: Optional[float] = None
        self.done = threading.Event()
        self.result: Optional[dict] = None
        self.meta: Optional[dict] = None
        self.error: Optional[BaseException] = None

    def progress(self, fraction: float, text: str = "") -> None:
        self.fraction = min(max(float(fraction), 0.0), 1.0)
        self.text = text

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self.done.wait(timeout)

    @classmethod
    def finished(cls, job: Job, result: dict, meta: dict) -> "Flight":
        f = cls(job, meta.get("command", DASHBOARD))
        f.result, f.meta, f.fraction = result, meta, 1.0
        f.done.set()
        return f


class _Pool:
    """A fixed number of daemon worker threads taking work from one FIFO queue (started lazily;
    daemon so a stopped server exits at once: atomic writes leave no half-written entry)."""

    def __init__(self, name: str, workers: int):
        self.name, self.workers = name, max(1, int(workers))
        self.queue: "queue.Queue" = queue.Queue()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def submit(self, fn: Callable, *args) -> None:
        with self.lock:
            while len(self.threads) < self.workers:
                t = threading.Thread(target=self._work, name=f"{self.name}-{len(self.threads)}",
                                     daemon=True)
                t.start()
                self.threads.append(t)
        self.queue.put((fn, args))

    def _work(self) -> None:
        while True:
            fn, args = self.queue.get()
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 - _execute records errors; never kill a worker
                log.exception("job worker")
            nc.release_compiled_code_if_needed()


def _heavy_workers() -> int:
    try:
        return max(1, int(os.environ.get(WORKERS_ENV, "1")))
    except ValueError:
        return 1


_ACTIVE: dict[str, Flight] = {}
_LOCK = threading.Lock()
_POOLS: dict[str, _Pool] = {}


def _pool(heavy: bool) -> _Pool:
    name = "ntk-heavy" if heavy else "ntk-light"
    with _LOCK:
        if name not in _POOLS:
            _POOLS[name] = _Pool(name, _heavy_workers() if heavy else LIGHT_WORKERS)
        return _POOLS[name]


def active(key: str) -> Optional[Flight]:
    """The flight computing `key` right now (queued or running), or None."""
    with _LOCK:
        return _ACTIVE.get(key)


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def _execute(flight: Flight) -> None:
    job = flight.job
    flight.started = time.perf_counter()
    try:
        arrays = {k: np.asarray(v) for k, v in dict(job.compute(flight.progress)).items()}
        meta = {"kind": job.kind, "version": job.version, "computed": _today(),
                "command": flight.command,
                "seconds": round(time.perf_counter() - flight.started, 3),
                "estimated_seconds": round(float(job.seconds), 3)}
        default_store().put(job.key, arrays, meta)
        flight.result, flight.meta, flight.fraction = arrays, meta, 1.0
    except BaseException as err:  # noqa: BLE001 - reported to every waiting session
        flight.error = err
        if not isinstance(err, ValueError):
            log.exception("job %s failed", job.kind)
    finally:
        with _LOCK:
            if _ACTIVE.get(job.key) is flight:
                del _ACTIVE[job.key]
        flight.done.set()


def submit(job: Job, *, command: str = DASHBOARD, force: bool = False) -> Flight:
    """Start `job` in the background unless it is stored (then a finished Flight) or already
    running (then that Flight). `force` computes it again even if stored."""
    store = default_store()
    if not force and (entry := store.lookup(job.key)) is not None:
        return Flight.finished(job, entry.arrays, entry.meta)
    with _LOCK:
        flight = _ACTIVE.get(job.key)
        if flight is not None:
            return flight
    if not force and (entry := store.lookup(job.key)) is not None:   # finished meanwhile
        return Flight.finished(job, entry.arrays, entry.meta)
    with _LOCK:
        flight = _ACTIVE.get(job.key)
        if flight is not None:
            return flight
        flight = Flight(job, command)
        _ACTIVE[job.key] = flight
    _pool(job.seconds > HEAVY_SECONDS).submit(_execute, flight)
    return flight


def compute_one(job: Job, progress: Optional[Progress] = None, *, command: str = DASHBOARD,
                force: bool = False) -> dict:
    """The result of `job`: from the store, or computed once (other callers of the same key share
    the computation and its progress). Raises the job's error."""
    flight = submit(job, command=command, force=force)
    while not flight.wait(POLL_SECONDS):
        if progress is not None:
            progress(flight.fraction, flight.text)
    if flight.error is not None:
        raise flight.error
    return flight.result


# ------------------------------------------------------------------------------------------------
# The page side
# ------------------------------------------------------------------------------------------------
def run(jobs: Sequence[Job], *, label: str, key: str,
        on_result: Optional[Callable[[list], None]] = None) -> JobsResult:
    """Results of `jobs` (see the module docstring); draws its button/progress/messages in place."""
    import streamlit as st

    from .figures import current_style

    store = default_store()
    n = len(jobs)
    results: list = [None] * n
    metas: list = [None] * n
    origins: list = [None] * n
    flights: dict[int, Flight] = {}
    for i, job in enumerate(jobs):
        flight = active(job.key)
        if flight is not None:
            flights[i] = flight
            continue
        entry = store.lookup(job.key)
        if entry is not None:
            results[i], metas[i], origins[i] = entry.arrays, entry.meta, entry.origin
    missing = [i for i in range(n) if results[i] is None and i not in flights]
    if missing:
        estimate = sum(jobs[i].seconds for i in missing)
        if estimate <= ASK_ABOVE_SECONDS or st.button(
                f"Compute {label} (about {format_duration(estimate)})", key=f"{key}__run",
                type="primary", help="Runs on the server; results are kept and shared, so later "
                                     "visits (and other people) see them at once."):
            for i in missing:
                flights[i] = submit(jobs[i])
        elif not current_style().presentation:  # on a projector the button says enough
            st.info(f"{label}: {len(missing)} of {n} results still to compute, estimated "
                    f"{format_duration(estimate)} on this machine, so it waits for the button. "
                    "Finished results are kept: a later run resumes where this one stopped.")
    errors = _wait(jobs, flights, results, metas, origins, label, on_result) if flights else []
    for message in errors:
        st.error(message)
    done = JobsResult(results, metas, origins, errors)
    if done.complete and n:
        _provenance(jobs, done, label, key)
    return done


def _wait(jobs, flights, results, metas, origins, label, on_result) -> list[str]:
    """Poll the flights until all are done, drawing progress and partial results."""
    import streamlit as st

    total = len(jobs)
    pending = dict(flights)
    errors: list[str] = []
    bar = st.progress(0.0, text=f"{label}: starting …")
    try:
        while pending:
            new = False
            for i, flight in list(pending.items()):
                if not flight.done.is_set():
                    continue
                del pending[i]
                if flight.error is not None:
                    message = error_message(label, flight.error)
                    if message not in errors:
                        errors.append(message)
                else:
                    results[i], metas[i], origins[i] = flight.result, flight.meta, "computed"
                    new = True
            if new and on_result is not None:
                on_result(results)
            if not pending:
                break
            running = [f for f in pending.values() if f.started is not None]
            done = sum(r is not None for r in results)
            fraction = (done + sum(f.fraction for f in running)) / max(total, 1)
            now = running[0] if running else None
            text = f"{label}: {done} of {total} done"
            if now is not None and now.text:
                text += f" · {now.text}"
            elif now is None:
                text += " · waiting for a free worker (other computations are running)"
            bar.progress(min(max(fraction, 0.0), 1.0), text=text)
            time.sleep(POLL_SECONDS)
    finally:
        bar.empty()
    return errors


def provenance_text(metas: Sequence[Optional[dict]], origins: Sequence[Optional[str]]) -> str:
    """'computed on <date(s)> with <command(s)>' for a set of stored results."""
    dates = sorted({m.get("computed", "?") for m in metas if m})
    commands = sorted({m.get("command", DASHBOARD) for m in metas if m})
    when = dates[0] if len(dates) == 1 else f"{dates[0]} … {dates[-1]}" if dates else "?"
    how = ", ".join(f"`{c}`" for c in commands) if commands else "?"
    seconds = sum(float(m.get("seconds", 0.0)) for m in metas if m)
    where = ("shipped with the app" if all(o == "shipped" for o in origins)
             else "kept in this server's result store")
    return (f"computed on {when} with {how} ({format_duration(seconds)} of computing); "
            f"{where}")


def _provenance(jobs: Sequence[Job], done: JobsResult, label: str, key: str) -> None:
    import streamlit as st

    from .figures import current_style

    text = f"{label}: {provenance_text(done.metas, done.origins)}."
    if current_style().presentation:  # one short row, so the first chart fits a 1024x768 projector
        text_box = button_box = st.popover("Where this result came from", help=text)
    else:
        # at 1024 px beside the sidebar, 1/7 of the width cut the button's label ("Reco...")
        text_box, button_box = st.columns([5, 2])
    text_box.caption(text)
    estimate = sum(j.seconds for j in jobs)
    if button_box.button("Recompute", key=f"{key}__recompute",
                      help=f"Compute these results again here, live (about "
                           f"{format_duration(estimate)}); the new results replace the stored "
                           "ones for everyone."):
        for job in jobs:
            submit(job, force=True)
        st.rerun()
