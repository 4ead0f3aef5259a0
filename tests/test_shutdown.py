"""The server stops within 3 s of SIGTERM, idle and while a page is in a long computation."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from test_browser import CHROMIUM, CHROMIUM_ARGS, ROOT, _free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def _start(script: str):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("streamlit did not start within 60 s")


def _seconds_to_stop(proc) -> float:
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return time.time() - t0


def test_idle_server_stops_within_3_s():
    proc, _ = _start("app.py")
    assert _seconds_to_stop(proc) < 3.0


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed")
def test_server_stops_within_3_s_while_a_page_computes():
    proc, url = _start(os.path.join("tests", "sigterm_app.py"))
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url)
            page.get_by_text("computing").wait_for(timeout=60_000)
            page.wait_for_timeout(500)
            seconds = _seconds_to_stop(proc)
            browser.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert seconds < 3.0, f"the server took {seconds:.1f} s to stop on SIGTERM"
