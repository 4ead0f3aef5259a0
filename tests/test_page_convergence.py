"""AppTest of the "Kernel convergence with width" page: charts hold data, the URL round-trips,
presets (Jacot Figs 1-2, Arora rate), bad URL values, warm rerun time."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

from apptest_helpers import exceptions, notices, open_app, plotly_charts, plotly_values

PAGE = "pages/2_kernel_convergence.py"
SMALL = {"cv_w1": 32, "cv_w2": 256, "cv_seeds": 3, "cv_steps": 20, "cv_lr": 0.5, "cv_ntrain": 6,
         "cv_angles": 33, "cv_smin": 16, "cv_smax": 128, "cv_sseeds": 2, "cv_spoints": 8,
         "depth": 2, "activation": "relu", "sigma_w": 1.0, "sigma_b": 0.1}


def assert_page_ok(at, n_charts):
    assert exceptions(at) == []
    assert [e.value for e in at.error] == []
    charts = plotly_charts(at)
    assert len(charts) == n_charts
    for fig in charts:
        assert fig["data"], "a chart without traces"
        for tr in fig["data"]:
            vals = plotly_values(tr.get("y"))
            assert vals.size > 0, f"empty trace {tr.get('name')}"
            assert np.any(np.isfinite(vals)), f"no finite values in {tr.get('name')}"
    assert len(at.latex) >= 2
    return charts


def printed_slopes(at) -> list[float]:
    text = " ".join(m.value for m in at.markdown)
    return [float(v) for v in re.findall(r"fitted slope (-?[0-9.]+)", text)]


def _q(at, key):
    got = at.query_params[key]
    return got[0] if isinstance(got, list) else got


def test_small_page_charts_url_round_trip_and_warm_rerun():
    at = open_app(PAGE, SMALL)
    charts = assert_page_ok(at, 3)   # init, trained, sweep
    names = [tr.get("name", "") for tr in charts[0]["data"]]
    assert "infinite width (analytic)" in names
    assert any("width 32" in n for n in names) and any("width 256" in n for n in names)
    for key, value in SMALL.items():
        got = _q(at, key)
        assert float(got) == float(value) if isinstance(value, (int, float)) else got == value, key
    assert len(printed_slopes(at)) == 2       # at init and after training
    warm = []
    for _ in range(2):   # best of two: one rerun can share the core with the other test process
        start = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - start)
        assert exceptions(at) == []
    assert min(warm) < 1.5, f"warm reruns took {warm} s"   # AppTest overhead included


def test_lines_toggle_draws_one_trace_per_initialisation():
    at = open_app(PAGE, {**SMALL, "cv_lines": 1, "cv_steps": 0})
    charts = assert_page_ok(at, 2)   # no "after training" panel, sweep at init only
    finite = [tr for tr in charts[0]["data"] if tr.get("name", "").startswith("width")]
    assert len(finite) == 2 * 3
    assert len(printed_slopes(at)) == 1


def test_jacot_fig1_preset_sets_the_paper_setting_and_shows_shipped_results():
    """The full Jacot preset takes minutes cold on 2 cores: its results ship with the app
    (assets/results), so the page draws the final figure at once, with no button, and says where
    the results came from."""
    start = time.perf_counter()
    at = open_app(PAGE, {"preset": "jacot_fig1"})
    seconds = time.perf_counter() - start
    assert exceptions(at) == [] and [e.value for e in at.error] == []
    assert at.sidebar.selectbox(key="activation").value == "relu"
    assert at.sidebar.select_slider(key="cv_w2").value == 10_000
    assert at.sidebar.select_slider(key="cv_w1").value == 500
    assert _q(at, "cv_seeds") == "10" and _q(at, "cv_steps") == "200" and _q(at, "depth") == "3"
    assert not any(b.label.startswith("Compute") for b in at.button)
    assert any(b.label == "Recompute" for b in at.button)
    assert any("python -m benchmarks.presets" in c.value for c in at.caption)
    charts = assert_page_ok(at, 3)
    names = [tr.get("name", "") for tr in charts[0]["data"]]
    assert any("10,000" in n or "10000" in n for n in names), names
    print(f"jacot_fig1 first open from shipped results: {seconds:.2f} s (AppTest)")


@pytest.mark.slow
def test_arora_preset_prints_a_slope_near_minus_one_half():
    at = open_app(PAGE, {"preset": "arora_rate", "cv_seeds": 3}, timeout=300)
    assert_page_ok(at, 2)
    slopes = printed_slopes(at)
    assert len(slopes) == 1 and -0.65 <= slopes[0] <= -0.35, slopes


@pytest.mark.slow
def test_jacot_fig2_preset_draws_percentiles(monkeypatch):
    at = open_app(PAGE, {"preset": "jacot_fig2", "cv_seeds": 4, "cv_f2steps": 200,
                         "cv_smax": 128}, timeout=300)
    charts = assert_page_ok(at, 3)   # init kernels, sweep, Fig 2
    names = [tr.get("name", "") for tr in charts[-1]["data"]]
    assert any("NTK-GP" in n for n in names) and any("width 1,000" in n for n in names)
    assert _q(at, "cv_f2") == "1"


def test_bad_url_values_give_notices_not_tracebacks():
    at = open_app(PAGE, {**SMALL, "cv_w1": "abc", "cv_seeds": 999, "cv_steps": 0})
    assert exceptions(at) == []
    msgs = " ".join(notices(at))
    assert "cv_w1" in msgs and "cv_seeds" in msgs
    assert at.sidebar.select_slider(key="cv_w1").value == 500


def test_equal_widths_warn():
    at = open_app(PAGE, {**SMALL, "cv_w1": 64, "cv_w2": 64, "cv_steps": 0, "cv_smax": 32})
    assert exceptions(at) == []
    assert any("at least two different widths" in w for w in notices(at))


@pytest.mark.slow
def test_jacot_setting_waits_for_a_click_then_warm_reruns_under_half_a_second(monkeypatch,
                                                                                tmp_path):
    """The Jacot setting with 33 angles (not shipped) and the networks replaced by a fast
    stand-in: the page waits for the Compute button, runs every unit through dashboard.jobs, and a
    warm rerun (everything stored) takes < 0.5 s."""
    import ntk_core as nc

    monkeypatch.setenv("NTK_EXPLORER_STORE", str(tmp_path))
    calls = []

    def fake_angle_kernels(spec, seed, n_angles, steps, lr, n_train):
        calls.append((spec.width, seed))
        row = np.full((1, n_angles), 0.3 + 1e-3 * seed)
        return nc.FiniteKernelPair(row, row * 1.01 if steps else None,
                                   np.ones(steps + 1) if steps else None)

    monkeypatch.setattr(nc, "angle_kernels", fake_angle_kernels)
    at = open_app(PAGE, {"preset": "jacot_fig1", "cv_angles": 33, "cv_smax": 64,
                         "cv_strain": 0, "cv_sseeds": 1, "cv_spoints": 4})
    assert exceptions(at) == []
    assert any("waits for the button" in i.value for i in at.info)
    button = next(b for b in at.button if "Compute 20 networks" in b.label)
    button.click().run()
    assert exceptions(at) == [] and [e.value for e in at.error] == []
    assert sorted(set(calls)) == [(w, s) for w in (500, 10_000) for s in range(10)]
    assert len(plotly_charts(at)) == 3
    n_calls = len(calls)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
    assert len(calls) == n_calls          # nothing recomputed
    assert min(times) < 0.5, times


def test_diverging_learning_rate_gives_a_message_not_a_traceback():
    at = open_app(PAGE, {**SMALL, "cv_lr": 10.0, "cv_steps": 200, "cv_smax": 32})
    assert exceptions(at) == []
    errors = " ".join(e.value for e in at.error)
    assert "diverged" in errors and "lr" in errors
