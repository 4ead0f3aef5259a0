"""AppTest of the "Depth" page: charts hold data, the URL round-trips, presets, bad input, and the
time of a warm rerun when the depth slider moves."""
from __future__ import annotations

import math
import re
import time

import numpy as np
import pytest

from apptest_helpers import exceptions, notices, open_app, plotly_charts, plotly_values

DEPTH = "pages/3_depth.py"
N_CHARTS = 7


def assert_depth_page_ok(at):
    assert exceptions(at) == []
    assert [e.value for e in at.error] == []
    charts = plotly_charts(at)
    assert len(charts) == N_CHARTS
    for fig in charts:
        assert fig["data"], "a chart without traces"
        for tr in fig["data"]:
            vals = plotly_values(tr.get("z") if tr.get("type") == "heatmap" else tr.get("y"))
            assert vals.size > 0, f"empty trace {tr.get('name')}"
            assert np.all(np.isfinite(vals)), f"non-finite values in {tr.get('name')}"
    assert len(at.get("download_button")) >= N_CHARTS
    assert len(at.latex) >= N_CHARTS
    return charts


def summary_text(at) -> str:
    return "\n".join(m.value for m in at.markdown if "Claim (seed 002" in m.value)


_SUPERSCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")


def printed_ntk_limit(text: str) -> float:
    """The number after "The recursion approaches", as figures.fmt_number prints it (1.2×10⁻⁷, −0.5)."""
    raw = re.search(r"The recursion approaches \*\*([^*]+)\*\*", text).group(1).replace("−", "-")
    if "×10" in raw:
        mantissa, exponent = raw.split("×10")
        return float(mantissa) * 10.0 ** int(exponent.translate(_SUPERSCRIPT_DIGITS))
    return float(raw.replace(",", ""))


def heatmap(at) -> np.ndarray:
    fig = next(f for f in plotly_charts(at) if f["data"][0].get("type") == "heatmap")
    return plotly_values(fig["data"][0]["z"])


@pytest.mark.slow
def test_default_page_at_depth_10000_and_warm_rerun():
    at = open_app(DEPTH, timeout=300)
    assert_depth_page_ok(at)
    assert at.query_params["L_max"] == ["10000"] or at.query_params["L_max"] == "10000"
    before = heatmap(at)
    # moving the depth slider only reads the caches and redraws
    times = []
    for depth in (100, 1000, 20):
        t0 = time.perf_counter()
        at.select_slider(key="L").set_value(depth).run()
        times.append(time.perf_counter() - t0)
        assert exceptions(at) == []
    print(f"warm reruns (depth slider): {', '.join(f'{t:.3f}' for t in times)} s")
    assert not np.allclose(heatmap(at), before)
    assert min(times) < 1.0  # measured ~0.25 s; generous for a loaded CI machine


def test_relu_summary_states_the_computed_limit():
    """ReLU without bias: the text box reports the computed 1/4 limit and disagrees with the claim."""
    at = open_app(DEPTH, {"activation": "relu", "sigma_b": 0.0, "sigma_w": 1.4, "L_max": 1000,
                          "d_n": 12})
    assert_depth_page_ok(at)
    text = summary_text(at)
    assert "does **not** agree" in text
    assert abs(printed_ntk_limit(text) - 0.25) < 1e-3  # fitted from L <= 1,000
    # the rate line is drawn on the rho^(L) chart
    names = {tr.get("name") for f in plotly_charts(at) for tr in f["data"]}
    assert "9π²/(2L²) (seed 002)" in names


def test_url_round_trip_and_controls():
    params = {"d_data": "digits", "d_n": 15, "L_max": 300, "rho0": -0.3, "L": 50,
              "activation": "tanh", "sigma_w": 1.2, "sigma_b": 0.1}
    at = open_app(DEPTH, params)
    assert_depth_page_ok(at)
    for key, value in params.items():
        got = at.query_params[key]
        got = got[0] if isinstance(got, list) else got
        assert float(got) == float(value) if isinstance(value, (int, float)) else got == value, key
    assert at.select_slider(key="L").value == 50
    assert "15 digits on S^63" in summary_text(at)
    # d_dim is not drawn for digits; every other control keeps its URL value
    assert "d_dim" not in at.query_params


def test_preset_sets_the_paper_setting():
    at = open_app(DEPTH, {"preset": "seed002_fig1"})
    assert_depth_page_ok(at)
    assert at.select_slider(key="L_max").value == 30
    assert at.select_slider(key="L").value == 10
    assert at.sidebar.selectbox(key="activation").value == "relu"
    captions = " ".join(c.value for c in at.caption)
    assert "Settings match preset" in captions


def test_bad_url_values_give_notices_not_tracebacks():
    at = open_app(DEPTH, {"L_max": 12345, "d_n": -4, "L": "abc"})
    assert exceptions(at) == []
    text = " ".join(notices(at))
    assert "L_max=12345" in text and "d_n=-4" in text
    assert_depth_page_ok(at)


def test_chaotic_setting_reports_zero_ntk_limit():
    """tanh with large sigma_w is chaotic: rho -> rho* < 1 and the normalized NTK -> 0."""
    at = open_app(DEPTH, {"activation": "tanh", "sigma_w": 2.5, "sigma_b": 0.1, "L_max": 300,
                          "d_n": 10})
    assert_depth_page_ok(at)
    text = summary_text(at)
    assert "phase **chaotic**" in text and "does **not** agree" in text
    assert 0 <= printed_ntk_limit(text) < 1e-6
    assert not math.isnan(float(at.select_slider(key="L").value))
