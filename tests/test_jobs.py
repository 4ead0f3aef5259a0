"""The job runner: single flight across threads, errors as messages, resume, provenance."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import jobs
from dashboard.jobs import Job


@pytest.fixture(autouse=True)
def temp_store(tmp_path, monkeypatch):
    monkeypatch.setenv("NTK_EXPLORER_STORE", str(tmp_path / "store"))


def counting_job(calls, value=1.0, seconds=0.1, sleep=0.3, kind="test.count", fail=None):
    def compute(progress):
        calls.append(value)
        for i in range(3):
            progress((i + 1) / 3, f"step {i + 1}")
            time.sleep(sleep / 3)
        if fail is not None:
            raise fail
        return {"value": np.asarray(value), "row": np.full(5, value)}
    return Job(kind, {"value": value, "nonce": id(calls)}, compute, seconds=seconds)


def test_ten_concurrent_requests_of_one_key_compute_once():
    calls, out, seen = [], [], []
    job = counting_job(calls, value=2.0, sleep=0.6)

    def ask():
        out.append(jobs.compute_one(job, progress=lambda f, text="": seen.append(f)))

    threads = [threading.Thread(target=ask) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert calls == [2.0]
    assert len(out) == 10 and all(float(r["value"]) == 2.0 for r in out)
    assert seen and max(seen) > 0          # the waiters saw the shared progress
    assert jobs.active(job.key) is None
    # a later request reads the store
    assert float(jobs.compute_one(job)["value"]) == 2.0 and calls == [2.0]


def test_an_error_reaches_every_waiter_and_is_not_stored():
    calls = []
    job = counting_job(calls, fail=ValueError("lr = 10 diverged"))
    with pytest.raises(ValueError, match="diverged"):
        jobs.compute_one(job)
    assert jobs.error_message("Kernel", ValueError("lr = 10 diverged")) == "Kernel: lr = 10 diverged"
    assert "RuntimeError" in jobs.error_message("Kernel", RuntimeError("x"))
    with pytest.raises(ValueError):
        jobs.compute_one(job)              # tried again, not remembered as a result
    assert len(calls) == 2


def test_work_continues_after_the_asking_session_is_gone():
    """`submit` returns at once; the result lands in the store without anyone waiting."""
    calls = []
    job = counting_job(calls, value=5.0, sleep=0.3)
    flight = jobs.submit(job)
    assert jobs.active(job.key) is flight
    assert flight.wait(30) and calls == [5.0]
    from dashboard.store import default_store
    assert float(default_store().get(job.key)["value"]) == 5.0


def test_force_recomputes_and_replaces():
    calls = []
    job = counting_job(calls, sleep=0.01)
    jobs.compute_one(job)
    jobs.compute_one(job)
    jobs.compute_one(job, force=True)
    assert len(calls) == 2


def test_heavy_jobs_do_not_block_light_ones():
    heavy_calls, light_calls = [], []
    heavy = counting_job(heavy_calls, value=1.0, seconds=100.0, sleep=1.5, kind="test.heavy")
    light = counting_job(light_calls, value=2.0, seconds=0.1, sleep=0.01, kind="test.light")
    jobs.submit(heavy)
    start = time.perf_counter()
    jobs.compute_one(light)
    assert time.perf_counter() - start < 1.0
    assert jobs.active(heavy.key) is not None
    jobs.compute_one(heavy)


# ---- the page side (AppTest of a tiny script) ------------------------------------------------
def _page(nonce: str, threshold_seconds: float, fail: bool):
    import time

    import numpy as np
    import streamlit as st

    from dashboard.jobs import Job, run

    def make(i):
        def compute(progress):
            time.sleep(0.05)
            if fail and i == 1:
                raise ValueError("the learning rate is too large")
            return {"i": np.asarray(i)}
        return Job("test.page", {"i": i, "nonce": nonce}, compute, seconds=threshold_seconds)

    partial = []
    done = run([make(i) for i in range(3)], label="Three units", key="three",
               on_result=lambda results: partial.append(sum(r is not None for r in results)))
    st.write(f"done={done.n_done} complete={done.complete} partial={partial}")


def _app(**kwargs):
    return AppTest.from_function(_page, kwargs=kwargs, default_timeout=60)


def test_page_runs_small_jobs_at_once_then_reads_them_with_provenance():
    at = _app(nonce=str(time.time()), threshold_seconds=1.0, fail=False).run()
    assert not at.exception
    assert "done=3 complete=True" in at.markdown[0].value
    assert "partial=[" in at.markdown[0].value and "partial=[]" not in at.markdown[0].value
    at.run()
    assert "done=3 complete=True partial=[]" in at.markdown[0].value   # from the store
    assert any("computed on" in c.value and "`dashboard`" in c.value for c in at.caption)
    assert any(b.label == "Recompute" for b in at.button)


def test_page_asks_above_the_threshold_and_resumes_after_an_interruption():
    nonce = str(time.time())
    # one unit was finished before the "interruption"
    from dashboard.jobs import compute_one
    compute_one(Job("test.page", {"i": 0, "nonce": nonce}, lambda p: {"i": np.asarray(0)}, 20.0))
    at = _app(nonce=nonce, threshold_seconds=20.0, fail=False).run()
    assert not at.exception
    assert "done=1 complete=False" in at.markdown[0].value
    button = next(b for b in at.button if b.label.startswith("Compute Three units"))
    assert "40 s" in button.label                     # only the two missing units are estimated
    assert any("2 of 3 results still to compute" in i.value for i in at.info)
    button.click().run()
    assert "done=3 complete=True" in at.markdown[0].value


def test_page_shows_an_error_as_a_message_and_retries_only_on_request():
    nonce = str(time.time())
    at = _app(nonce=nonce, threshold_seconds=1.0, fail=True).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Three units: the learning rate is too large"]
    assert "done=2 complete=False" in at.markdown[0].value
    failed_key = Job("test.page", {"i": 1, "nonce": nonce}, None, 1.0).key
    first_error = jobs.failure(failed_key)
    assert first_error is not None
    at.run()      # a rerun (any moved control) shows the message again without computing again
    assert [e.value for e in at.error] == ["Three units: the learning rate is too large"]
    assert jobs.failure(failed_key) is first_error and jobs.active(failed_key) is None
    next(b for b in at.button if b.label == "Try again").click().run()
    assert [e.value for e in at.error] == ["Three units: the learning rate is too large"]
    assert jobs.failure(failed_key) is not first_error      # computed (and failed) once more


def test_page_run_does_not_wait_for_slow_jobs(monkeypatch):
    """With the app's short wait, a run ends with a progress bar while the job trains; the next
    run (the polling fragment starts it in the browser) draws the result."""
    monkeypatch.setenv("NTK_EXPLORER_JOB_WAIT", "0.1")
    nonce = str(time.time())
    at = _app(nonce=nonce, threshold_seconds=1.0, fail=False)
    started = time.perf_counter()
    at.run()
    assert time.perf_counter() - started < 3.0      # three 0.05 s jobs, but no waiting
    assert not at.exception
    flights = [jobs.active(Job("test.page", {"i": i, "nonce": nonce}, None, 1.0).key)
               for i in range(3)]
    if any(f is not None for f in flights):         # not all finished within the wait
        assert "complete=False" in at.markdown[0].value
        assert len(at.get("progress")) == 1
    for f in flights:
        if f is not None:
            f.wait(30)
    at.run()
    assert "done=3 complete=True" in at.markdown[0].value
    assert len(at.get("progress")) == 0


def _slow_page(nonce: str):
    import time

    import numpy as np
    import streamlit as st

    from dashboard.jobs import Job, run

    def compute(progress):
        for i in range(20):
            progress((i + 1) / 20, f"step {i + 1} of 20")
            time.sleep(0.05)
        return {"v": np.asarray(1.0)}

    done = run([Job("test.slow", {"nonce": nonce}, compute, seconds=1.0)], label="Slow", key="s")
    st.write(f"complete={done.complete}")


def test_a_slow_job_leaves_a_progress_bar_and_the_run_ends_at_once(monkeypatch):
    monkeypatch.setenv("NTK_EXPLORER_JOB_WAIT", "0")
    nonce = str(time.time())
    at = AppTest.from_function(_slow_page, kwargs={"nonce": nonce}, default_timeout=60)
    started = time.perf_counter()
    at.run()
    assert time.perf_counter() - started < 0.9       # the job takes 1 s
    assert "complete=False" in at.markdown[0].value
    bars = at.get("progress")
    assert len(bars) == 1 and "Slow: 0 of 1 done" in bars[0].proto.text
    jobs.active(Job("test.slow", {"nonce": nonce}, None, 1.0).key).wait(30)
    at.run()
    assert "complete=True" in at.markdown[0].value and len(at.get("progress")) == 0


def _counting_page(nonce: str):
    import numpy as np
    import streamlit as st

    from dashboard.jobs import Job, run

    counter = st.session_state.setdefault("computed", [])

    def compute(progress):
        counter.append(1)
        return {"n": np.asarray(len(counter))}

    done = run([Job("test.recompute", {"nonce": nonce}, compute, seconds=0.1)], label="One",
               key="one")
    st.write(f"value={int(done.results[0]['n']) if done.complete else None}")


def test_recompute_button_computes_again_live():
    at = AppTest.from_function(_counting_page, kwargs={"nonce": str(time.time())},
                               default_timeout=60).run()
    assert "value=1" in at.markdown[0].value
    next(b for b in at.button if b.label == "Recompute").click().run()
    assert not at.exception
    assert "value=2" in at.markdown[0].value
    at.run()
    assert "value=2" in at.markdown[0].value


def test_progress_text_counts_the_time_left():
    """Unstarted jobs count their estimate; a running one its estimate less the time spent, and its
    rate so far once it is half done."""
    def flight(seconds, started_ago=None, fraction=0.0):
        f = jobs.Flight(Job("test.left", {"s": seconds}, lambda p: {}, seconds=seconds), "test")
        if started_ago is not None:
            f.started, f.fraction = time.perf_counter() - started_ago, fraction
        return f

    fraction, text = jobs.progress_state([flight(30.0, started_ago=10.0, fraction=0.1),
                                          flight(40.0)], 0, 2, "Nets")
    assert text.startswith("Nets: 0 of 2 done") and "about 60 s left" in text
    assert fraction == pytest.approx(0.05)
    _, text = jobs.progress_state([flight(30.0, started_ago=10.0, fraction=0.5)], 1, 2, "Nets")
    assert "about 10 s left" in text                # 10 s for the first half: 10 s to go
    _, text = jobs.progress_state([flight(5.0, started_ago=9.0, fraction=0.1)], 0, 1, "Nets")
    assert text.endswith("· taking longer than estimated")   # too early for a rate
    _, text = jobs.progress_state([flight(5.0, started_ago=9.0, fraction=0.99)], 0, 1, "Nets")
    assert text.endswith("· finishing")
    _, text = jobs.progress_state([flight(30.0)], 0, 1, "Nets")
    assert "waiting for a free worker" in text and "left" not in text
