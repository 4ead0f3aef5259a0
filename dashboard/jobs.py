"""The one job runner: every long computation of every page goes through `run`.

A `Job` is one unit of work (one network, one kernel, one sweep point): its parameters (everything
that determines the result), a pure `compute(progress)` returning a flat dict of numpy arrays, and
an estimate of its cost. `run(jobs, ...)`:

1. reads every result it can from the result store (dashboard.store; shipped preset results too);
2. if some are missing, runs them at once when their estimated total is at most
   `ASK_ABOVE_SECONDS` (one threshold for the whole app), else shows a button with the estimate;
3. computes the missing ones in background worker threads and stores each as it finishes. The
   page's run waits for them at most `WAIT_SECONDS` (calling `on_result(results)` as each
   arrives), then ends with what it has and a progress bar: a fragment that redraws itself every
   `WATCH_SECONDS` and reruns the whole page when it sees a new result, so partial results are
   drawn as they come and a slider move never waits for a network to train (issue 15). The
   rerun starts from the browser (the fragment's timer), so it carries the browser's current
   controls; server-started reruns (Streamlit's run-on-save call) were tried and dropped: under
   load they lost a slider move made while they arrived;
4. turns a failure into a message in the page (never a traceback); a failed key is remembered
   (`_FAILED`), so a rerun shows the message again instead of retrying in a loop, until the
   page's "Try again" button;
5. says where stored results came from ("computed on <date> with <command>"), with a Recompute
   button that computes them again live (replacing the local entries; shipped files stay as they
   are).

Sharing and load:
- single flight: a key being computed is computed once; every session (and `compute_one` caller)
  asking for it attaches to the same `Flight` and sees its progress;
- bounded concurrency: jobs run in two small pools of daemon threads, `HEAVY_WORKERS` (default 1,
  `$NTK_EXPLORER_JOB_WORKERS`) for jobs estimated above `HEAVY_SECONDS` and `LIGHT_WORKERS` for the
  rest, so a few-second job is not queued behind a five-minute one and the server keeps a core for
  interactive reruns; job threads run at a lower OS priority (`WORKER_NICENESS`), so a rerun
  is not slowed by the jobs' compute;
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
WORKER_NICENESS = 10              # OS priority of job threads (and the XLA threads they start)
POLL_SECONDS = 0.25               # how often a waiting run (or compute_one) checks its flights
WATCH_SECONDS = 2.0               # how often a page with running jobs redraws its progress bar:
                                  # each redraw costs the browser ~35 ms, 30 tabs on one machine
WAIT_ENV = "NTK_EXPLORER_JOB_WAIT"
WAIT_SECONDS = 0.3                # a page's run waits this long for its jobs, then goes on
MAX_FAILED = 256                  # failed keys remembered (oldest forgotten first)
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
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.1f} days"


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
        try:    # background work yields the CPU to the sessions' reruns (Linux: per thread)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)
        except (AttributeError, OSError):
            pass
        while True:
            fn, args = self.queue.get()
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 - _execute records errors; never kill a worker
                log.exception("job worker")
            nc.release_compiled_code_if_needed()


def _env_number(name: str, default, kind: Callable, least):
    """`kind($name)` (at least `least`), or `default` when unset or not a number."""
    try:
        return max(least, kind(os.environ.get(name, default)))
    except ValueError:
        return default


_ACTIVE: dict[str, Flight] = {}
_FAILED: dict[str, BaseException] = {}     # key -> error of its last computation (insertion order)
_LOCK = threading.Lock()
_POOLS: dict[str, _Pool] = {}


def _pool(heavy: bool) -> _Pool:
    name = "ntk-heavy" if heavy else "ntk-light"
    with _LOCK:
        if name not in _POOLS:
            workers = _env_number(WORKERS_ENV, 1, int, 1) if heavy else LIGHT_WORKERS
            _POOLS[name] = _Pool(name, workers)
        return _POOLS[name]


def active(key: str) -> Optional[Flight]:
    """The flight computing `key` right now (queued or running), or None."""
    with _LOCK:
        return _ACTIVE.get(key)


def failure(key: str) -> Optional[BaseException]:
    """The error of the last computation of `key` if it failed (and was not retried since)."""
    with _LOCK:
        return _FAILED.get(key)


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
            if flight.error is not None:
                _FAILED[job.key] = flight.error
                while len(_FAILED) > MAX_FAILED:
                    del _FAILED[next(iter(_FAILED))]
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
        _FAILED.pop(job.key, None)
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
    failed: dict[int, BaseException] = {}
    for i, job in enumerate(jobs):
        flight = active(job.key)
        if flight is not None:
            flights[i] = flight
            continue
        entry = store.lookup(job.key)
        if entry is not None:
            results[i], metas[i], origins[i] = entry.arrays, entry.meta, entry.origin
        elif (err := failure(job.key)) is not None:
            failed[i] = err
    missing = [i for i in range(n) if results[i] is None and i not in flights and i not in failed]
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
    pending = _wait(flights, results, metas, origins, failed, on_result) if flights else {}
    if pending:
        _watch(pending, sum(r is not None for r in results), n, label)
    errors = []
    for err in failed.values():
        if (message := error_message(label, err)) not in errors:
            errors.append(message)
    for message in errors:
        st.error(message)
    if failed and st.button("Try again", key=f"{key}__retry",
                            help=f"Compute the failed {label} again."):
        for i in failed:
            submit(jobs[i], force=True)
        st.rerun()
    done = JobsResult(results, metas, origins, errors)
    if done.complete and n:
        _provenance(jobs, done, label, key)
    return done


def _wait(flights, results, metas, origins, failed, on_result) -> dict[int, Flight]:
    """Wait at most `WAIT_SECONDS` for the flights, taking in each result as it arrives; returns
    the flights still running."""
    pending = dict(flights)
    deadline = time.perf_counter() + _env_number(WAIT_ENV, WAIT_SECONDS, float, 0.0)
    while True:
        new = False
        for i, flight in list(pending.items()):
            if not flight.done.is_set():
                continue
            del pending[i]
            if flight.error is not None:
                failed[i] = flight.error
            else:
                results[i], metas[i], origins[i] = flight.result, flight.meta, "computed"
                new = True
        if new and on_result is not None:
            on_result(results)
        remaining = deadline - time.perf_counter()
        if not pending or remaining <= 0:
            return pending
        next(iter(pending.values())).wait(min(POLL_SECONDS, remaining))


def progress_state(flights: Sequence[Flight], n_done: int, total: int,
                   label: str) -> tuple[float, str]:
    """(fraction, text) of a progress bar: finished results plus the running ones' fractions, and
    the time left (the estimates of the jobs not started, and for the running ones their estimate
    less the time spent, or the rate so far once they are half done)."""
    running = [f for f in flights if f.started is not None]
    fraction = (n_done + sum(f.fraction for f in running)) / max(total, 1)
    text = f"{label}: {n_done} of {total} done"
    now = running[0] if running else None
    if now is not None and now.text:
        text += f" · {now.text}"
    elif now is None:
        text += " · waiting for a free worker (other computations are running)"
    if running:
        clock = time.perf_counter()
        left, late = sum(f.job.seconds for f in flights if f.started is None), False
        for f in running:
            spent = clock - f.started
            if f.fraction >= 0.5:   # earlier, the rate so far still holds the compilation
                left += spent * (1 - f.fraction) / f.fraction
            else:
                left += max(f.job.seconds - spent, 0.0)
                late = late or spent > f.job.seconds
        text += (" · taking longer than estimated" if late and left < 1
                 else f" · about {format_duration(left)} left" if left >= 1 else " · finishing")
    return min(max(fraction, 0.0), 1.0), text


def _watch(pending: dict[int, Flight], n_done: int, total: int, label: str) -> None:
    """A progress bar that redraws itself every `WATCH_SECONDS` (a Streamlit fragment, so only
    the bar reruns) and reruns the whole page once any pending result has arrived."""
    import streamlit as st

    flights = list(pending.values())

    @st.fragment(run_every=WATCH_SECONDS)
    def job_progress():
        if any(f.done.is_set() for f in flights):
            st.rerun()
        fraction, text = progress_state(flights, n_done, total, label)
        st.progress(fraction, text=text)

    job_progress()


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
