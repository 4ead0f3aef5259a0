"""AppTest of the app shell and the "Finite vs infinite width" page: charts hold data, URL
parameters round-trip, presets set every control, bad URLs and bad CSV files give notices."""
from __future__ import annotations

import math
import time

import pytest

from apptest_helpers import exceptions, notices, open_app, plotly_charts, plotly_values

import ntk_core as nc
from dashboard import presets

FINITE = "pages/1_finite_vs_infinite.py"
FAST = {"steps": 200, "K": 2}  # small training runs keep the AppTests quick


def trace_length(trace: dict, axis: str = "y") -> int:
    return plotly_values(trace.get(axis)).size


def assert_page_ok(at, n_charts: int):
    assert exceptions(at) == []
    assert [e.value for e in at.error] == []
    charts = plotly_charts(at)
    assert len(charts) == n_charts
    for fig in charts:
        assert fig["data"], "a chart without traces"
        assert all(trace_length(tr) > 0 for tr in fig["data"]), "a trace without data"
        layout = fig["layout"]
        assert layout["xaxis"]["title"]["text"] and layout["yaxis"]["title"]["text"]
    assert len(at.get("download_button")) >= n_charts
    assert len(at.latex) >= n_charts
    return charts


def trace_names(fig) -> set[str]:
    return {tr.get("name") for tr in fig["data"]}


def sidebar_values(at) -> dict:
    values = {}
    for kind in ("slider", "number_input", "selectbox", "select_slider", "radio", "toggle"):
        for w in getattr(at.sidebar, kind):
            if w.key and not w.key.startswith("_"):
                values[w.key] = w.value
    for w in at.main.select_slider:
        values[w.key] = w.value
    return values


# --------------------------------------------------------------------------------------------
def test_home_page_has_shared_controls_and_links():
    at = open_app()
    assert exceptions(at) == []
    assert "NTK Explorer" in at.title[0].value
    keys = {w.key for w in at.sidebar.slider} | {w.key for w in at.sidebar.number_input}
    assert {"depth", "width", "sigma_w", "sigma_b", "seed"} <= keys
    assert at.sidebar.selectbox(key="activation").options == list(nc.ACTIVATIONS)
    assert at.query_params["depth"] == "2"


def test_finite_page_default_charts_hold_data():
    at = open_app(FINITE, FAST)
    prediction, loss = assert_page_ok(at, 2)
    names = trace_names(prediction)
    assert {"NTK-GP mean", "NTK-GP ± 2 sd", "training points", "true f(x) = x³",
            "finite networks", "ensemble mean", "ensemble ± 2 sd"} <= names
    assert loss["layout"]["xaxis"]["type"] == "log"
    assert {"NTK-GP mean: train", "NTK-GP mean: test"} <= trace_names(loss)
    assert any("networks: train" in n for n in trace_names(loss))


def test_nngp_option_sin_data_and_single_network():
    at = open_app(FINITE, {"posterior": "nngp", "data": "sin", "K": 1, "steps": 200,
                           "show_nets": 1, "bands": 0})
    prediction, _ = assert_page_ok(at, 2)
    names = trace_names(prediction)
    assert "NNGP mean" in names and "true f(x) = sin x" in names
    assert "NNGP ± 2 sd" not in names  # bands switched off
    assert "width-512 network" in names


@pytest.mark.parametrize("preset_id", presets.for_page("finite_vs_infinite"))
def test_presets_set_every_control(preset_id):
    """Selecting a preset sets every control it names; training shortened by moving steps/K
    afterwards, which keeps the rest of the preset."""
    at = open_app(FINITE, FAST)
    at.sidebar.selectbox(key="_urlctl_preset_choice").set_value(preset_id).run()
    wanted = presets.PRESETS[preset_id]["values"]
    values = sidebar_values(at)
    for key, value in wanted.items():
        assert values[key] == pytest.approx(value) if isinstance(value, float) else \
            values[key] == value, key
    assert any("match preset" in c.value for c in at.sidebar.caption)
    assert exceptions(at) == []
    # every preset opens with its final figure from the shipped results (assets/results)
    prediction, _ = assert_page_ok(at, 2)
    assert "finite networks" in trace_names(prediction) or \
        any("network" in (n or "") for n in trace_names(prediction))
    assert not any(b.label.startswith("Compute") for b in at.button)
    assert any("python -m benchmarks.presets" in c.value for c in at.caption)
    at.sidebar.slider(key="K").set_value(min(wanted.get("K", 1), 2)).run()
    at.sidebar.number_input(key="steps").set_value(200).run()
    assert_page_ok(at, 2)
    assert at.query_params["width"] == str(wanted["width"])


def test_conditional_control_in_url_is_not_unknown():
    """batch belongs to SGD; with GD it is ignored silently and left out of the URL."""
    at = open_app(FINITE, {"opt": "GD", "batch": 3, "steps": 100, "K": 1})
    assert notices(at) == [] and exceptions(at) == []
    assert "batch" not in at.query_params
    at.sidebar.radio(key="opt").set_value("SGD").run()
    assert at.sidebar.number_input(key="batch").value == 3


def test_preset_from_url_is_overridden_by_explicit_parameters():
    at = open_app(FINITE, {"preset": "seed003_fig2", "steps": 200, "K": 1, "noise": 0.05})
    assert notices(at) == []
    values = sidebar_values(at)
    assert values["width"] == 50 and values["noise"] == pytest.approx(0.05)
    assert values["steps"] == 200
    assert_page_ok(at, 2)


def test_long_training_waits_for_the_compute_button():
    """100 networks of width 512 for 2,000 steps (not shipped) are estimated above the app's
    threshold: the theory is drawn and the page waits for the button."""
    at = open_app(FINITE, {"preset": "seed003_fig3", "steps": 2000})
    assert exceptions(at) == []
    assert any("waits for the button" in i.value for i in at.info)
    assert any(b.label.startswith("Compute 100 networks") for b in at.button)
    assert len(plotly_charts(at)) == 2


def test_url_round_trip():
    params = {"depth": 1, "width": 64, "sigma_w": 1.25, "sigma_b": 0.1, "activation": "relu",
              "seed": 7, "presentation": 1, "theme": "dark", "data": "sin", "n_train": 8,
              "noise": 0.05, "opt": "SGD", "batch": 4, "lr": 0.05, "steps": 150, "K": 3,
              "posterior": "nngp", "show_nets": 0, "bands": 0, "t": 20}
    at = open_app(FINITE, params)
    assert notices(at) == []
    assert_page_ok(at, 2)
    written = dict(at.query_params)
    assert {k: written[k] for k in params} == {k: str(v) for k, v in params.items()}
    # a new session opened with that URL shows the same controls
    again = open_app(FINITE, written)
    assert sidebar_values(again) == sidebar_values(at)
    assert dict(again.query_params) == written
    # moving a control updates the URL
    again.sidebar.slider(key="K").set_value(4).run()
    assert again.query_params["K"] == "4"


def test_invalid_url_values_fall_back_with_notices():
    bad = {"depth": "abc", "width": "99999", "sigma_w": "nan", "activation": "swish",
           "seed": "-3", "presentation": "maybe", "theme": "blue", "data": "mnist",
           "noise": "0.9", "K": "0", "t": "7", "posterior": "gp", "steps": "2.5",
           "unknown_thing": "1", "preset": "fig99"}
    at = open_app(FINITE, {**bad, "lr": 0.1})
    assert exceptions(at) == []
    msgs = " ".join(notices(at))
    for key in bad:
        assert f"`{key}=" in msgs, key
    values = sidebar_values(at)
    assert values["depth"] == 2 and values["width"] == 512 and values["activation"] == "erf"
    assert values["K"] == 1 and values["t"] == math.inf and values["data"] == "cubic"
    # the URL now holds the defaults, and the notices can be dismissed
    assert at.query_params["width"] == "512" and "unknown_thing" not in at.query_params
    at.button(key="_urlctl_dismiss").click().run()
    assert notices(at) == []


BAD_CSVS = {
    "wrong_columns.csv": b"a,b\n1,2\n",
    "text.csv": b"x,y\n1,hello\n",
    "nan.csv": b"x,y\n1,nan\n",
    "empty.csv": b"",
    "too_many_rows.csv": b"x,y\n" + b"1,2\n" * 2001,
    "too_large.csv": b"x,y\n" + b"1.000000,2.000000\n" * 60_000,
    "binary.csv": bytes(range(256)) * 4,
}


def test_bad_csv_uploads_give_a_message_and_the_page_keeps_working():
    at = open_app(FINITE, {"data": "upload", "steps": 100, "K": 1})
    assert exceptions(at) == []
    assert any("Upload a CSV" in i.value for i in at.info)
    for name, content in BAD_CSVS.items():
        at.sidebar.file_uploader(key="upload_file").set_value((name, content, "text/csv")).run()
        assert exceptions(at) == [], name
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and f"Could not use {name}" in errors[0], (name, errors)
        assert len(plotly_charts(at)) == 2, name
    good = b"x,y\n-1,1\n0,0\n0.5,0.25\n1,1\n"
    at.sidebar.file_uploader(key="upload_file").set_value(("good.csv", good, "text/csv")).run()
    assert [e.value for e in at.error] == []
    assert any("4 points" in s.value for s in at.success)
    prediction, loss = assert_page_ok(at, 2)
    points = [tr for tr in prediction["data"] if tr.get("name") == "training points"][0]
    assert trace_length(points) == 4
    assert not any("test" in n for n in trace_names(loss))  # no true function: no test loss


def test_display_changes_do_not_retrain(monkeypatch):
    calls = []
    real_train = nc.train

    def counting_train(*args, **kwargs):
        calls.append(kwargs.get("steps"))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(nc, "train", counting_train)
    params = {"steps": 170, "K": 2, "seed": 11}  # a combination no other test trains
    at = open_app(FINITE, params)
    assert calls == [170]
    timings = []
    for t in (10, 100, 0.5):
        start = time.perf_counter()
        at.select_slider(key="t").set_value(t).run()
        timings.append(time.perf_counter() - start)
    at.sidebar.radio(key="posterior").set_value("nngp").run()
    at.sidebar.toggle(key="bands").set_value(False).run()
    at.sidebar.toggle(key="show_nets").set_value(False).run()
    assert_page_ok(at, 2)
    assert calls == [170], "a display change retrained the networks"
    # warm reruns (no training) are fast; the README reports the measured time
    assert min(timings) < 1.0, timings
    at.sidebar.slider(key="noise").set_value(0.02).run()  # new targets: trains once more
    assert calls == [170, 170]


def test_presentation_mode_and_dark_theme_reach_the_charts():
    at = open_app(FINITE, {**FAST, "presentation": 1, "theme": "dark"})
    charts = assert_page_ok(at, 2)
    normal = plotly_charts(open_app(FINITE, FAST))
    for big, small in zip(charts, normal):
        assert big["layout"]["font"]["size"] > small["layout"]["font"]["size"]
        assert big["layout"]["template"]["layout"]["paper_bgcolor"] != \
            small["layout"]["template"]["layout"]["paper_bgcolor"]
        widths = [tr["line"]["width"] for tr in big["data"] if tr.get("mode") == "lines"]
        widths0 = [tr["line"]["width"] for tr in small["data"] if tr.get("mode") == "lines"]
        assert max(widths) > max(widths0)
