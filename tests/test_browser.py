"""Real-browser checks: `streamlit run app.py` headless, driven through Debian's chromium.

The module-scoped `server` fixture starts the app once on a free port; `browser` launches chromium
once; each test opens its own page (`open_page(path)`), so another page's check is one more test
function. Screenshots go to tests/artifacts/ (git-ignored). The README screenshot is taken with
NTK_SCREENSHOT=assets/finite_vs_infinite.png.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not os.path.exists(CHROMIUM):
    pytest.skip("chromium is not installed (CI's .ci/run installs it with apt-get)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict | None = None):
    """Start `streamlit run app.py` on a free port; returns (base URL, Popen). `env` adds to the
    environment (e.g. NTK_EXPLORER_STORE). The server waits for jobs as the app does by default
    (the AppTests' longer wait, conftest.py, is not passed on)."""
    port = _free_port()
    log_path = os.path.join(ARTIFACTS, f"streamlit_{port}.log")
    os.makedirs(ARTIFACTS, exist_ok=True)
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**{k: v for k, v in os.environ.items() if k != "NTK_EXPLORER_JOB_WAIT"},
             **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    else:
        proc.terminate()
        pytest.fail(f"streamlit did not start within 60 s; log: {log_path}")
    if proc.poll() is not None:
        pytest.fail(f"streamlit exited with {proc.returncode}; log: {log_path}")
    return url, proc


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def server():
    """Base URL of `streamlit run app.py` on a free port (stopped after the module)."""
    url, proc = start_server()
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


IDLE_JS = """() => {
  const a = document.querySelector("[data-testid='stApp']");
  return a && a.getAttribute('data-test-script-state') === 'notRunning'
         && document.querySelectorAll("[data-testid='stProgress']").length === 0;
}"""


def wait_for_app(page, timeout_ms: int = 180_000) -> None:
    """Wait until the app has rendered, its script is no longer running and no job's progress bar
    is left (jobs run in the background: the page reruns itself when their results arrive)."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.wait_for_function(IDLE_JS, timeout=timeout_ms)
    page.wait_for_timeout(300)
    # a second check: a rerun triggered by the first render (e.g. the URL write-back)
    page.wait_for_function(IDLE_JS, timeout=timeout_ms)


def wait_for_charts(page, n: int, timeout_ms: int = 180_000) -> None:
    """Wait until at least n plotly charts are drawn and the app is idle: jobs finish in the
    background and the page reruns itself, so a count taken at the first chart can be short."""
    page.wait_for_function("(n) => document.querySelectorAll('.js-plotly-plot').length >= n",
                           arg=n, timeout=timeout_ms)
    wait_for_app(page, timeout_ms)


def wait_for_text(page, text: str, timeout_ms: int = 180_000) -> None:
    page.get_by_text(text).first.wait_for(state="visible", timeout=timeout_ms)


def open_page(browser, url: str, dark: bool = False, timeout_ms: int = 180_000):
    context = browser.new_context(viewport={"width": 1500, "height": 1100},
                                  color_scheme="dark" if dark else "light")
    page = context.new_page()
    page.goto(url, wait_until="domcontentloaded")
    wait_for_app(page, timeout_ms)
    return page


def assert_no_exception(page) -> None:
    errors = page.locator("[data-testid='stException']")
    assert errors.count() == 0, errors.first.inner_text()


def chart_signature(page, index: int = 0) -> str:
    """The y-values of the traces of the index-th plotly chart (plotly's typed-array JSON)."""
    return page.evaluate(
        "(i) => { const g = document.querySelectorAll('.js-plotly-plot')[i];"
        " return g ? JSON.stringify(g.data.map(t => t.y)) : ''; }", index)


def test_finite_vs_infinite_page(server, browser):
    """Trains 3 short networks, then moves the training-time slider: the prediction chart changes,
    the URL follows, and the warm rerun (nothing to train) is timed."""
    page = open_page(browser, server + "/finite_vs_infinite?steps=2000&K=3&t=1")
    assert_no_exception(page)
    wait_for_charts(page, 2, 120_000)
    assert page.locator(".js-plotly-plot").count() == 2
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    before = chart_signature(page, 0)

    # the training-time slider is the first slider of the main area
    thumb = page.locator("[data-testid='stMain'] [data-testid='stSlider'] input[type='range']").first
    thumb.focus()
    thumb.press("ArrowRight")  # t = 1 -> 2: the prediction moves on
    start = time.perf_counter()
    thumb.blur()  # streamlit's slider commits its value when it loses focus
    page.wait_for_function(
        "(b) => { const g = document.querySelector('.js-plotly-plot');"
        " return g && JSON.stringify(g.data.map(t => t.y)) !== b; }",
        arg=before, timeout=60_000)
    elapsed = time.perf_counter() - start
    wait_for_app(page)
    assert_no_exception(page)
    assert chart_signature(page, 0) != before
    assert "&t=2" in page.url  # the slider is bound to the URL
    os.makedirs(ARTIFACTS, exist_ok=True)
    with open(os.path.join(ARTIFACTS, "timings.txt"), "a") as f:
        f.write(f"finite_vs_infinite warm rerun (slider commit to redrawn chart): {elapsed:.3f} s\n")
    page.screenshot(path=os.environ.get("NTK_SCREENSHOT")
                    or os.path.join(ARTIFACTS, "finite_vs_infinite.png"), full_page=False)
    page.context.close()


def test_a_move_that_needs_a_new_network_does_not_wait_for_it(server, browser):
    """The job runner does not hold the rerun (issue 15): moving the depth to a setting never
    trained returns with the infinite-width curves and a progress bar; the page then draws the
    network by itself when its job finishes (its progress fragment reruns it), with no click."""
    seed = int(time.time() * 1000) % 100_000       # a network no earlier run has stored
    page = open_page(browser, server + f"/finite_vs_infinite?width=512&seed={seed}")
    assert_no_exception(page)
    thumb = (page.locator("[data-testid='stSidebar'] [data-testid='stSlider']")
             .filter(has_text="Depth (hidden layers)").locator("input[type='range']").first)
    thumb.focus()
    thumb.press("ArrowRight")                        # depth 2 -> 3: a new network to train
    start = time.perf_counter()
    thumb.blur()
    page.wait_for_function(
        "() => location.search.includes('depth=3&') && document.querySelector("
        "\"[data-testid='stApp']\").getAttribute('data-test-script-state') === 'notRunning'",
        timeout=60_000)
    returned = time.perf_counter() - start
    # under load the progress bar can reach the DOM just after the script state (one suite run in
    # three failed here); a run that had waited for training would show none at all
    page.wait_for_selector("[data-testid='stProgress']", timeout=10_000)
    assert page.locator("[data-testid='stProgress']").count() == 1, "the run waited for training"
    assert "0 of 1 done" in page.locator("[data-testid='stProgress']").first.inner_text()
    traces = "() => document.querySelector('.js-plotly-plot').data.length"
    without_network = page.evaluate(traces)
    page.wait_for_function("() => !document.querySelector(\"[data-testid='stProgress']\")",
                           timeout=180_000)
    drawn = time.perf_counter() - start
    wait_for_app(page)
    assert_no_exception(page)
    assert page.evaluate(traces) > without_network      # the network's prediction is drawn
    with open(os.path.join(ARTIFACTS, "timings.txt"), "a") as f:
        f.write(f"finite_vs_infinite move to a new depth: run returned after {returned:.2f} s, "
                f"trained network drawn after {drawn:.2f} s\n")
    page.context.close()


def test_home_page_links_to_pages(server, browser):
    """The home page links to the pages; following a link keeps the shared controls."""
    page = open_page(browser, server + "/?width=64")
    assert_no_exception(page)
    assert page.get_by_text("NTK Explorer").first.is_visible()
    link = page.locator("[data-testid='stMain'] [data-testid='stPageLink-NavLink']"
                        "[href='finite_vs_infinite']")
    link.wait_for(timeout=30_000)
    assert link.count() == 1
    link.click()
    page.wait_for_url("**/finite_vs_infinite**", timeout=30_000)
    wait_for_app(page)
    assert_no_exception(page)
    page.wait_for_function("() => location.href.includes('width=64')", timeout=30_000)
    page.context.close()


def test_depth_page(server, browser):
    """Depth page at depth 10,000: no exception, every chart drawn, the depth slider redraws the
    heatmaps and is bound to the URL."""
    page = open_page(browser, server + "/depth?L_max=10000&L=10")
    assert_no_exception(page)
    wait_for_charts(page, 7, 120_000)
    assert page.locator(".js-plotly-plot").count() == 7
    wait_for_text(page, "Claim (seed 002")
    heatmap = page.evaluate(
        "() => JSON.stringify(document.querySelectorAll('.js-plotly-plot')[2].data[0].z)")
    # streamlit 1.67 draws sliders as react-aria <input type="range">
    thumb = page.locator("[data-testid='stMain'] [data-testid='stSlider'] input[type='range']").first
    thumb.focus()
    for _ in range(6):
        thumb.press("ArrowRight")
    wait_for_app(page)
    page.wait_for_function(
        "(b) => JSON.stringify(document.querySelectorAll('.js-plotly-plot')[2].data[0].z) !== b",
        arg=heatmap, timeout=60_000)
    assert_no_exception(page)
    from urllib.parse import parse_qs, urlparse

    assert parse_qs(urlparse(page.url).query).get("L", ["10"]) != ["10"]  # bound to the URL
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.set_viewport_size({"width": 1500, "height": 4600})  # the main area scrolls by itself
    wait_for_app(page)
    page.screenshot(path=os.path.join(ARTIFACTS, "depth.png"), full_page=True)
    page.context.close()


def test_kernel_convergence_page(server, browser):
    """Kernel convergence page with small widths: every chart drawn, the fitted slope printed,
    no exception; saves tests/artifacts/kernel_convergence.png."""
    page = open_page(browser, server + "/kernel_convergence?depth=3&activation=relu&sigma_w=1"
                     "&sigma_b=0.1&cv_w1=64&cv_w2=1024&cv_seeds=5&cv_steps=50&cv_smin=32"
                     "&cv_smax=1024&cv_sseeds=2&cv_spoints=8")
    assert_no_exception(page)
    wait_for_charts(page, 3)
    wait_for_text(page, "fitted slope")
    assert page.locator(".js-plotly-plot").count() == 3
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.set_viewport_size({"width": 1500, "height": 3000})
    wait_for_app(page)
    page.screenshot(path=os.path.join(ARTIFACTS, "kernel_convergence.png"), full_page=True)
    page.context.close()


def test_deep_narrow_page(server, browser):
    """Deep narrow page with small settings: the drawing, the kernel against its limit, the distance
    fit and the two training charts are drawn, no exception; saves tests/artifacts/deep_narrow.png."""
    page = open_page(browser, server + "/deep_narrow?dn_L1=10&dn_L2=30&dn_L3=0&dn_trials=1&dn_steps=100"
                     "&dn_train=1&dn_L=10&dn_tsteps=10&dn_batch=32&dn_data=digits_500&dn_sweep=0"
                     "&dn_lr=0.001&dn_tCL=1&dn_CL=5", timeout_ms=600_000)
    assert_no_exception(page)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 5",
                           timeout=600_000)
    wait_for_app(page, 600_000)
    assert_no_exception(page)
    assert page.locator(".js-plotly-plot").count() == 5
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    wait_for_text(page, "Fitted slope")
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.set_viewport_size({"width": 1500, "height": 4200})
    wait_for_app(page)
    page.screenshot(path=os.path.join(ARTIFACTS, "deep_narrow.png"), full_page=True)
    page.context.close()


def test_lazy_training_page(server, browser):
    """Lazy-training page with small widths: all 8 charts drawn, the computed text boxes shown, no
    exception; saves tests/artifacts/lazy_training.png."""
    page = open_page(browser, server + "/lazy_training?depth=1&width=64&lz_wmin=16&lz_wmax=256"
                     "&lz_seeds=2&lz_steps=200&lz_csteps=100")
    assert_no_exception(page)
    wait_for_charts(page, 8, 240_000)
    for text in ("Fitted log-log slopes", "What the computation gives"):
        wait_for_text(page, text, 240_000)
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.set_viewport_size({"width": 1500, "height": 5200})
    wait_for_app(page)
    page.screenshot(path=os.path.join(ARTIFACTS, "lazy_training.png"), full_page=True)
    page.context.close()


def test_image_kernels_page(server, browser):
    """Image-kernels page on small digits settings: no exception, the accuracy chart, heatmap,
    confusion matrix and thumbnails drawn; screenshot."""
    page = open_page(browser, server + "/image_kernels?depth=3&ik_ntrain=100&ik_ntest=50&ik_cnn=0"
                                       "&activation=relu&sigma_w=1.4&sigma_b=0")
    assert_no_exception(page)
    wait_for_charts(page, 3)
    wait_for_text(page, "Test accuracy against depth")
    assert_no_exception(page)
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.set_viewport_size({"width": 1500, "height": 3600})
    wait_for_app(page)
    page.screenshot(path=os.path.join(ARTIFACTS, "image_kernels.png"), full_page=True)
    page.context.close()
