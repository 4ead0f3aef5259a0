"""Load test: 30 browser sessions (one Chromium, one tab each) against one `streamlit run app.py`.

Phase 1, the class scenario (issue 15): 30 sessions open the finite-vs-infinite page and each moves
the shared depth slider three times (2 -> 3 -> 4 -> 5), as a class following the lecturer: each
session starts within the first `CLASS_SPREAD_S` seconds and waits 1-3 s between moves, so the 30
sessions ask for the same three new networks at about the same time (single flight computes each
once). Phase 2, a mix: the sessions move to other pages and presets (depth page, kernel
convergence, finite page presets) and move one control there.

Latency = from the key press on the slider until the rerun it starts has finished with the new value
in its URL (the URL is written at the end of the run, so this is the complete rerun). A run waits
for a new network at most `dashboard.jobs.WAIT_SECONDS` and then shows the infinite-width curves
with a progress bar; the page reruns itself when the network arrives. That second time, key press
until no progress bar is left (the trained network drawn), is reported too, as `class_results`
(no target: it is the training time of the new network, shared by all sessions). Asserts: no
exception element in any session, p50 < 1 s and p95 < 3 s over the slider moves, server peak RSS
(VmHWM) < 2 GB. Also reports the server's CPU use during the run (`CpuSampler`: the process and
its event-loop thread), which shows whether slow moves waited on the server or on the 30
renderers that share its two cores here. Writes every figure to tests/artifacts/load.json. Uses a
fresh result store so the new networks are really computed; one warm-up visit to every page comes
first (the server's first runs compile JAX/numba functions), and is not timed.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time

import numpy as np
import pytest

from test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, start_server, stop_server
from test_browser import IDLE_JS as RESULT_JS  # script idle and no job's progress bar left

async_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.perf]

N_SESSIONS = int(os.environ.get("NTK_LOAD_SESSIONS", "30"))  # fewer for debugging
CLASS_MOVES = 3
CLASS_SPREAD_S = 8.0
P50_TARGET_S, P95_TARGET_S = 1.0, 3.0
MEMORY_TARGET_MB = 2048
TIMEOUT_MS = int(os.environ.get("NTK_LOAD_TIMEOUT_MS", "150000"))
# phase 2: (URL path and query, label of the slider to move, in the main area or the sidebar,
# the slider's URL parameter)
MIX = [
    ("/depth?preset=seed002_fig1", "Depth L for the heatmaps", "main", "L"),
    ("/finite_vs_infinite?preset=seed003_fig2", "Training time t", "main", "t"),
    ("/finite_vs_infinite?preset=cookbook_sin", "Training time t", "main", "t"),
    ("/kernel_convergence?depth=3&activation=relu&sigma_w=1&sigma_b=0.1&cv_w1=64&cv_w2=256"
     "&cv_seeds=3&cv_steps=20&cv_smin=32&cv_smax=256&cv_sseeds=2&cv_spoints=8",
     "Initialisations per width", "sidebar", "cv_seeds"),
    ("/depth?preset=seed002_fig1&activation=tanh&sigma_b=0.1", "Cobweb start", "sidebar", "rho0"),
]

IDLE_JS = """(arg) => {
  const a = document.querySelector("[data-testid='stApp']");
  if (!a || a.getAttribute('data-test-script-state') !== 'notRunning') return false;
  return arg === null || location.search.includes(arg);
}"""


def lower_browser_priority(niceness: int = 15) -> int:
    """Renice this machine's Chromium processes (the browser, its zygotes, so the renderers they
    fork later too). In a class each student's browser runs on their own laptop; here 30 renderers
    share the server's two cores, and at equal priority they would take the CPU the server needs
    (each page open costs Chromium ~2.7 CPU-seconds, the server ~0.1). Returns how many."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if "chrom" not in f.read():
                    continue
            os.setpriority(os.PRIO_PROCESS, int(pid), niceness)
            count += 1
        except OSError:   # gone, or not ours
            continue
    return count


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM) in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def wait_idle(page, url_part: str | None = None) -> None:
    await page.wait_for_selector("[data-testid='stApp']", timeout=TIMEOUT_MS)
    await page.wait_for_function(IDLE_JS, arg=url_part, timeout=TIMEOUT_MS)


async def exceptions(page) -> list[str]:
    errors = page.locator("[data-testid='stException']")
    return [await errors.nth(i).inner_text() for i in range(await errors.count())]


def slider(page, label: str, where: str):
    area = "stMain" if where == "main" else "stSidebar"
    return (page.locator(f"[data-testid='{area}'] [data-testid='stSlider']")
            .filter(has_text=label).locator("input[type='range']").first)


WATCH_JS = """() => {
  const a = document.querySelector("[data-testid='stApp']");
  window.__states = [];
  if (window.__watch) window.__watch.disconnect();
  // one entry per change: [value before, value now, time]. A quick rerun under load can flip
  // running -> notRunning between two callbacks, so the current value alone could miss it.
  window.__watch = new MutationObserver(records => { for (const r of records)
      window.__states.push([r.oldValue, a.getAttribute('data-test-script-state'),
                            performance.now()]); });
  window.__watch.observe(a, {attributes: true, attributeOldValue: true,
                             attributeFilter: ['data-test-script-state']});
}"""
AT_MAX_JS = """(el) => {
  const now = el.getAttribute('aria-valuenow') ?? el.value;
  const max = el.getAttribute('aria-valuemax') ?? el.max;
  return now !== undefined && max !== undefined && now !== '' && max !== ''
         && Number(now) >= Number(max);
}"""
RERUN_DONE_JS = """(arg) => {
  const s = window.__states;
  const a = document.querySelector("[data-testid='stApp']");
  // a busy browser may apply 'running' and 'notRunning' in one render: 'rerunRequested' (set
  // when the moved widget asks for the rerun) counts as the start as well
  const started = v => v === 'running' || v === 'rerunRequested';
  // a rerun of ~70 ms (the home page, Streamlit 1.67) can also pass without any state change
  // reaching the DOM; the moved control's URL parameter, written at the end of the rerun, shows
  // it ran: equal to the new value, or (value null: a select slider's label is not its URL
  // form) different from the value before the key press
  const now = arg === null ? null : new URLSearchParams(location.search).get(arg.key);
  const inUrl = arg !== null && (arg.value !== null ? now === arg.value : now !== arg.before);
  return (s.some(x => started(x[0]) || started(x[1])) || inUrl)
         && a.getAttribute('data-test-script-state') === 'notRunning'
         && (arg === null || inUrl);
}"""


async def move(page, label: str, where: str, key: str | None = None,
               key_press: str | None = None, exact: bool = True) -> float:
    """Press `key_press` on a slider (default: the right arrow, the left one if the slider is at
    its maximum) and release it;
    seconds (browser clock) from the key press until the rerun it starts has finished (with
    `key=<new value>` in the URL if `key` given; with exact=False, `key` changed in the URL)."""
    thumb = slider(page, label, where)
    await thumb.focus()
    at_max = await thumb.evaluate(AT_MAX_JS)
    before = None if key is None else await page.evaluate(
        "(k) => new URLSearchParams(location.search).get(k)", key)
    await page.evaluate(WATCH_JS)
    pressed = await page.evaluate("() => performance.now()")
    await thumb.press(key_press or ("ArrowLeft" if at_max else "ArrowRight"))
    value = await thumb.get_attribute("aria-valuetext") or await thumb.input_value()
    await thumb.blur()
    arg = None if key is None else {"key": key, "value": value if exact else None, "before": before}
    await page.wait_for_function(RERUN_DONE_JS, arg=arg, timeout=TIMEOUT_MS)
    # the last script-state change, or now when none reached the DOM (RERUN_DONE_JS's URL case;
    # at most one polling interval late)
    finished = await page.evaluate(
        "() => { const s = window.__states; return s.length ? s[s.length - 1][2] : performance.now(); }")
    return (finished - pressed) / 1000


async def session(i: int, context, base: str, log: dict, start_gate: asyncio.Event) -> None:
    rng = random.Random(i)
    page = await context.new_page()
    try:
        t0 = time.perf_counter()
        await page.goto(base + "/finite_vs_infinite", wait_until="domcontentloaded")
        await wait_idle(page, "depth=2&")
        log["open"].append(time.perf_counter() - t0)
        log["errors"] += [f"session {i} open: {e}" for e in await exceptions(page)]
        await start_gate.wait()
        await asyncio.sleep(rng.uniform(0, CLASS_SPREAD_S))
        for depth in range(3, 3 + CLASS_MOVES):
            pressed = time.perf_counter()
            log["class"].append(await move(page, "Depth (hidden layers)", "sidebar", "depth"))
            await page.wait_for_function(RESULT_JS, timeout=TIMEOUT_MS)
            log["class_results"].append(time.perf_counter() - pressed)
            log["errors"] += [f"session {i} depth {depth}: {e}" for e in await exceptions(page)]
            await asyncio.sleep(rng.uniform(1.0, 3.0))
        path, label, where, key = MIX[i % len(MIX)]
        t0 = time.perf_counter()
        await page.goto(base + path, wait_until="domcontentloaded")
        await wait_idle(page, "sigma_w=")
        log["open"].append(time.perf_counter() - t0)
        log["errors"] += [f"session {i} {path}: {e}" for e in await exceptions(page)]
        await asyncio.sleep(rng.uniform(0, 3.0))
        log["mix"].append(await move(page, label, where, key, exact=False))
        log["errors"] += [f"session {i} {path} moved: {e}" for e in await exceptions(page)]
    except Exception as err:  # noqa: BLE001 - reported as a failed session
        log["errors"].append(f"session {i}: {type(err).__name__}: {str(err)[:300]} at "
                             f"{page.url}")
        try:
            await page.screenshot(path=os.path.join(ARTIFACTS, f"load_failed_{i}.png"))
        except Exception:  # noqa: BLE001 - the page may be gone
            pass
    finally:
        await page.close()


async def warm_up(context, base: str) -> None:
    """One visit to every page first (the lecturer's rehearsal): the server's first runs compile
    JAX and numba functions, which no session should be timed on."""
    page = await context.new_page()
    for path in ["/finite_vs_infinite"] + [m[0] for m in MIX]:
        await page.goto(base + path, wait_until="domcontentloaded")
        await wait_idle(page, "sigma_w=")
    await page.close()


async def drive(base: str) -> dict:
    log = {"open": [], "class": [], "class_results": [], "mix": [], "errors": [], "reniced": 0}
    gate = asyncio.Event()
    async with async_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=CHROMIUM_ARGS)
        # one context, one tab per session: the tabs share the HTTP and compiled-code caches, so
        # the app's ~2 MB of JavaScript is compiled once rather than 30 times (4.9 -> 2.6
        # Chromium CPU-seconds per page open here); each tab is its own Streamlit session
        context = await browser.new_context(viewport={"width": 1024, "height": 768})
        context.set_default_timeout(TIMEOUT_MS)  # navigation and locators, not only our waits
        await warm_up(context, base)
        log["reniced"] = lower_browser_priority()
        tasks = []
        for i in range(N_SESSIONS):
            tasks.append(asyncio.create_task(session(i, context, base, log, gate)))
            await asyncio.sleep(0.2)
        # the class starts once most sessions have their page (or after 60 s)
        deadline = time.perf_counter() + 60
        while len(log["open"]) < N_SESSIONS and time.perf_counter() < deadline:
            await asyncio.sleep(0.2)
        gate.set()
        await asyncio.gather(*tasks)
        await browser.close()
    return log


class CpuSampler:
    """The server's CPU use while the sessions run, from /proc/<pid>/task/*/stat once a second:
    the whole process and its main (event-loop) thread, in % of one core. It tells whether a slow
    move waited on the server or on the browsers, which on this machine share its two cores."""

    def __init__(self, pid: int, period: float = 1.0):
        import threading

        self.pid, self.period = pid, period
        self.process: list[float] = []
        self.main: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _ticks(self):
        total = main = 0
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:  # the thread ended
                continue
            ticks = int(fields[11]) + int(fields[12])  # utime + stime
            total += ticks
            if int(tid) == self.pid:
                main = ticks
        return total, main

    def _run(self):
        hz = os.sysconf("SC_CLK_TCK")
        last, t_last = self._ticks(), time.perf_counter()
        while not self._stop.wait(self.period):
            try:
                now, t_now = self._ticks(), time.perf_counter()
            except OSError:  # the server is gone
                return
            ticks_per_percent = (t_now - t_last) * hz / 100
            self.process.append((now[0] - last[0]) / ticks_per_percent)
            self.main.append((now[1] - last[1]) / ticks_per_percent)
            last, t_last = now, t_now

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def report(self) -> dict:
        def stats(v):
            return {**percentiles(v), "mean": round(float(np.mean(v)), 1)} if v else {"n": 0}
        return {"process_percent_of_one_core": stats(self.process),
                "main_thread_percent": stats(self.main)}


def percentiles(values) -> dict:
    if not values:
        return {"n": 0}
    v = np.asarray(values)
    return {"n": int(v.size), "p50": round(float(np.percentile(v, 50)), 3),
            "p95": round(float(np.percentile(v, 95)), 3), "max": round(float(v.max()), 3)}


def server_runs(path: str) -> dict:
    """Percentiles of the server's script runs (dashboard/run_times.py) per page."""
    runs: dict = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                runs.setdefault(r["page"], []).append(r["seconds"])
    return {page: percentiles(v) for page, v in runs.items()}


def test_thirty_sessions_class_and_mix():
    with tempfile.TemporaryDirectory() as store:
        run_log = os.path.join(store, "run_times.jsonl")
        base, proc = start_server({"NTK_EXPLORER_STORE": store, "NTK_EXPLORER_RUN_TIMES": run_log})
        try:
            t0 = time.perf_counter()
            with CpuSampler(proc.pid) as cpu:
                log = asyncio.run(drive(base))
            wall = time.perf_counter() - t0
            memory = peak_rss_mb(proc.pid)
        finally:
            stop_server(proc)
        runs = server_runs(run_log)
    moves = log["class"] + log["mix"]
    report = {"sessions": N_SESSIONS, "wall_s": round(wall, 1),
              "moves": percentiles(moves), "class_moves": percentiles(log["class"]),
              "class_results": percentiles(log["class_results"]),
              "mix_moves": percentiles(log["mix"]), "page_opens": percentiles(log["open"]),
              "server_script_runs": runs,
              "server_cpu": cpu.report(),
              "server_peak_rss_mb": round(memory, 1), "errors": log["errors"][:20],
              "browser_processes_reniced": log["reniced"],
              "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    os.makedirs(ARTIFACTS, exist_ok=True)
    with open(os.path.join(ARTIFACTS, "load.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))
    assert log["errors"] == []
    assert report["moves"]["n"] == N_SESSIONS * (CLASS_MOVES + 1)
    assert report["moves"]["p50"] < P50_TARGET_S, report
    assert report["moves"]["p95"] < P95_TARGET_S, report
    assert memory < MEMORY_TARGET_MB, report
