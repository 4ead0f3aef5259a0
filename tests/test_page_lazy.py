"""AppTest of the lazy-training page: no exception, charts hold data, URL round-trip, presets, and
the page's jobs_for standalone (what `python -m benchmarks.presets` ships)."""
from __future__ import annotations


import numpy as np
import pytest

from apptest_helpers import exceptions, open_app, plotly_charts, plotly_values

PAGE = "pages/6_lazy_training.py"
SMALL = {"width": 32, "depth": 1, "lz_wmin": 16, "lz_wmax": 64, "lz_seeds": 2, "lz_steps": 60,
         "lz_csteps": 30, "lz_ntrain": 4}
N_CHARTS = 8


@pytest.fixture(autouse=True)
def _store(tmp_path, monkeypatch):
    monkeypatch.setenv("NTK_EXPLORER_STORE", str(tmp_path))


def _query(at, key):
    v = at.query_params[key]
    return v[0] if isinstance(v, list) else v


def assert_page_ok(at, n_charts=N_CHARTS):
    assert exceptions(at) == []
    assert [e.value for e in at.error] == []
    charts = plotly_charts(at)
    assert len(charts) == n_charts
    for fig in charts:
        assert fig["data"], "a chart without traces"
        assert any(plotly_values(tr.get("y")).size and np.isfinite(plotly_values(tr.get("y"))).any() for tr in fig["data"])
    assert len(at.get("download_button")) >= n_charts
    return charts


@pytest.mark.slow
def test_small_page_draws_every_section_and_round_trips_the_url():
    at = open_app(PAGE, {**SMALL, "lz_m2": 1.2}, timeout=600)
    assert_page_ok(at)
    for key, value in {**SMALL, "lz_m2": 1.2}.items():
        assert float(_query(at, key)) == pytest.approx(float(value))
    texts = " ".join(i.value for i in at.info)
    assert "λ₀ = λ_max(Θ₀)/n" in texts and "Fitted log-log slopes" in texts
    # standard parameterization and an absolute learning rate: the same charts, no exception
    at.radio(key="lz_param").set_value("standard").run()
    at.radio(key="lz_lrmode").set_value("absolute").run()
    assert exceptions(at) == []
    assert _query(at, "lz_param") == "standard" and _query(at, "lz_lrmode") == "absolute"
    assert "lz_lr" in at.query_params


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["lazy_side_by_side", "lazy_width_sweep", "lazy_catapult"])
def test_presets_apply(preset):
    from dashboard.presets import PRESETS

    # explicit URL parameters override the preset: keep the networks small for the test
    small = {k: v for k, v in SMALL.items() if k not in PRESETS[preset]["values"] or k == "width"}
    small.update({"lz_wmax": 64, "lz_steps": 60, "lz_csteps": 30, "width": 32})
    at = open_app(PAGE, {"preset": preset, **small}, timeout=600)
    assert exceptions(at) == []
    for key, value in PRESETS[preset]["values"].items():
        if key not in small:
            assert str(_query(at, key)) in (str(value), f"{value:g}" if isinstance(value, float) else str(value))


def test_jobs_for_defaults_and_a_small_unit():
    from dashboard import lazy_jobs as lj

    jobs = lj.jobs_for({})
    kinds = [j.kind for j in jobs]
    assert kinds.count("lazy.pair") == 1 and kinds.count("lazy.catapult") == 3
    widths = sorted({j.params["width"] for j in jobs if j.kind == "lazy.width"})
    assert widths == [16, 64, 256, 1024, 4096, 16384]
    assert len({j.key for j in jobs}) == len(jobs)
    deep = lj.width_jobs({"depth": 2})
    assert max(j.params["width"] for j in deep) <= 4096     # MAX_SWEEP_PARAMS
    (small,) = lj.width_jobs({"lz_wmin": 16, "lz_wmax": 16, "lz_seeds": 1, "lz_steps": 20}) or [None]
    assert small is None or small.params["width"] == 16
    unit = lj.width_jobs({"lz_wmin": 16, "lz_wmax": 32, "lz_seeds": 1, "lz_steps": 20})[0]
    out = unit.compute(lambda f, t="": None)
    assert set(out) >= {"distance", "parameter_change", "kernel_change", "kappa"}
    assert all(np.isfinite(float(out[k])) for k in ("distance", "kappa"))
