"""AppTest of the "Deep narrow networks" page: charts hold data, the URL round-trips, presets, jobs_for."""
from __future__ import annotations


import numpy as np
import pytest

from apptest_helpers import exceptions, open_app, plotly_charts, plotly_values

PAGE = "pages/4_deep_narrow.py"
SMALL = {"dn_L1": 10, "dn_L2": 30, "dn_L3": 0, "dn_trials": 2, "dn_steps": 100, "dn_train": 1,
         "dn_L": 10, "dn_tsteps": 10, "dn_batch": 32, "dn_data": "digits_500", "dn_sweep": 0,
         "dn_lr": 0.001, "dn_tCL": 1.0, "dn_CL": 5.0}


@pytest.fixture(autouse=True)
def _temp_store(monkeypatch, tmp_path):
    monkeypatch.setenv("NTK_EXPLORER_STORE", str(tmp_path))


def _check(at, n_charts):
    assert exceptions(at) == []
    assert [e.value for e in at.error] == []
    charts = plotly_charts(at)
    assert len(charts) == n_charts
    for fig in charts:
        ys = [plotly_values(tr.get("y")) for tr in fig["data"]]
        assert any(np.isfinite(y).any() for y in ys), fig["layout"].get("title")
    return charts


@pytest.mark.slow
def test_small_settings_draw_every_chart_and_round_trip_the_url():
    at = open_app(PAGE, SMALL, timeout=600)
    charts = _check(at, 5)      # drawing, kernel vs angle, distance, train loss, test accuracy
    kernel = charts[1]
    names = [tr.get("name") for tr in kernel["data"]]
    assert "L → ∞ limit (derived)" in names and "L = 10, init (mean)" in names
    assert any("fitted slope" in c.value.lower() or "Fitted slope" in c.value for c in at.caption)
    for key, value in SMALL.items():
        got = at.query_params[key]
        got = got[0] if isinstance(got, list) else got
        assert str(got) == str(value) or float(got) == float(value), key
    # the drawing is made from init_params: C_L edges and the -C_L output biases are there
    drawing = charts[0]
    texts = " ".join(" ".join(tr.get("text") or []) for tr in drawing["data"] if tr.get("text"))
    assert "(C_L)" in texts and "(-C_L)" in texts and "(Gaussian)" in texts


def test_training_off_and_negative_cases_show_no_traceback():
    at = open_app(PAGE, {**SMALL, "dn_train": 0, "dn_L2": 0, "dn_steps": 0, "dn_trials": 1})
    _check(at, 3)
    assert any("Training is off" in i.value for i in at.info)


def test_presets_select_the_paper_settings():
    from dashboard import deep_narrow_jobs as dj
    from dashboard.presets import PRESETS, for_page

    ids = for_page("deep_narrow")
    assert set(ids) == {"lee2022_ntk", "lee2022_mlp", "lee2022_cnn"}
    ntk = dj.values_with_defaults(PRESETS["lee2022_ntk"]["values"])
    kernel = dj.kernel_jobs(ntk)
    assert len(kernel) == 30 and {j.params["depth"] for j in kernel} == {10, 100, 1000}
    assert all(j.params["steps"] == 2000 for j in kernel)
    mlp = dj.jobs_for(PRESETS["lee2022_mlp"]["values"])
    train = [j for j in mlp if j.kind == "deep_narrow.train"]
    assert sorted(j.params["lr"] for j in train if j.params["init"] == "kaiming") == sorted(dj.PAPER_LRS)
    assert all(j.params["depth"] == 1000 and j.params["batch"] == 128 for j in train)  # shipped budget
    # every job key is stable (same params -> same key) and distinct
    keys = [j.key for j in dj.jobs_for(PRESETS["lee2022_mlp"]["values"])]
    assert keys == [j.key for j in mlp] and len(set(keys)) == len(keys)


@pytest.mark.slow
def test_preset_url_opens_with_preset_values():
    # a preset whose jobs are small enough to run here only when shipped; check its controls
    at = open_app(PAGE, {"preset": "lee2022_cnn", "dn_L": 10, "dn_tsteps": 10, "dn_sweep": 0,
                         "dn_L3": 10, "dn_trials": 1})
    assert exceptions(at) == []
    assert at.sidebar.radio(key="dn_arch").value == "cnn"
    assert at.sidebar.selectbox(key="dn_data").value == "digits_500"


def test_jobs_for_computes_standalone_with_defaults_filled():
    """jobs_for takes partial values; a small job computes outside streamlit."""
    from dashboard import deep_narrow_jobs as dj

    jobs = dj.jobs_for({"dn_L1": 10, "dn_L2": 0, "dn_L3": 0, "dn_trials": 1, "dn_steps": 5, "dn_train": False})
    assert [j.kind for j in jobs] == ["deep_narrow.kernel", "deep_narrow.distance"]
    res = jobs[0].compute(lambda f, t="": None)
    assert res["theta_init"].shape == (200,) and np.all(np.isfinite(res["theta_trained"]))


def test_default_page_opens_without_computing_long_jobs():
    """Defaults are the paper's NTK setting: long jobs wait for their button (or come shipped)."""
    at = open_app(PAGE)
    assert exceptions(at) == []
    assert len(plotly_charts(at)) >= 1          # the drawing at least
    assert at.query_params["dn_L3"] in ("1000", ["1000"])


def test_shipped_ntk_preset_opens_at_once():
    """When the NTK preset's results are shipped (assets/results), the preset draws its figures
    without computing anything."""
    import os
    import time

    from dashboard import deep_narrow_jobs as dj
    from dashboard.presets import PRESETS
    from dashboard.store import SHIPPED_DIR

    jobs = dj.jobs_for(PRESETS["lee2022_ntk"]["values"])
    if not all(os.path.exists(os.path.join(SHIPPED_DIR, f"{j.key}.npz")) for j in jobs):
        pytest.skip("the lee2022_ntk preset's results are not shipped in assets/results")
    start = time.perf_counter()
    at = open_app(PAGE, {"preset": "lee2022_ntk"})
    elapsed = time.perf_counter() - start
    _check(at, 3)
    print(f"lee2022_ntk preset from shipped results: {elapsed:.1f} s")
