"""AppTest of the image-kernels page (seed 001): charts hold data, URL round-trip, presets, a bad
upload gives a message. Small settings so the kernels take about a second."""
from __future__ import annotations

import io

import numpy as np
import pytest

from apptest_helpers import exceptions, open_app, plotly_charts, plotly_values

PAGE = "pages/5_image_kernels.py"
SMALL = {"depth": 2, "ik_ntrain": 40, "ik_ntest": 20, "ik_cnn": "0", "activation": "relu",
         "sigma_w": 1.4, "sigma_b": 0.0}


@pytest.fixture(autouse=True)
def _store(tmp_path, monkeypatch):
    monkeypatch.setenv("NTK_EXPLORER_STORE", str(tmp_path))


def _check(at, n_charts):
    assert exceptions(at) == []
    assert [e.value for e in at.error] == []
    charts = plotly_charts(at)
    assert len(charts) >= n_charts
    for fig in charts:
        assert fig["data"], "a chart without traces"
        for tr in fig["data"]:
            vals = plotly_values(tr.get("z") if tr.get("type") == "heatmap" else tr.get("y"))
            assert vals.size > 0, f"empty trace {tr.get('name')}"
    return charts


@pytest.mark.slow
def test_small_page_draws_table_and_inside_views_and_round_trips_url():
    at = open_app(PAGE, SMALL, timeout=600)
    charts = _check(at, 3)
    acc = charts[0]
    names = {tr["name"] for tr in acc["data"]}
    assert {"CNTK-GAP", "CNTK-V", "CNN-GP-GAP", "CNN-GP-V", "FC NTK"} <= names
    for tr in acc["data"]:
        y = np.asarray(plotly_values(tr["y"]), float)
        assert y.shape == (2,) and np.all((y >= 0) & (y <= 100))
    assert len(at.dataframe) >= 2  # results and the paper's reference table
    for key, value in SMALL.items():
        got = at.query_params[key]
        got = got[0] if isinstance(got, list) else got
        assert got == str(value) or float(got) == float(value), key
    # the same URL again: the stored results, identical numbers
    again = open_app(PAGE, {k: at.query_params[k] for k in at.query_params}, timeout=600)
    assert plotly_charts(again)[0]["data"][0]["y"] == acc["data"][0]["y"]


@pytest.mark.slow
def test_bad_upload_gives_a_message_and_the_page_keeps_working(monkeypatch):
    import ntk_core as nc

    with pytest.raises(ValueError, match="not a readable .npz"):
        nc.load_images_npz(b"not a zip file")
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((10, 8, 8)), labels=np.zeros(10))
    with pytest.raises(ValueError, match="named 'x' and 'y'"):
        nc.load_images_npz(buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((10, 8, 8, 1)), y=np.zeros(9))
    with pytest.raises(ValueError, match="one label per image"):
        nc.load_images_npz(buf.getvalue())
    # upload mode without a file: the digits are used and the page draws
    at = open_app(PAGE, {**SMALL, "ik_data": "upload"}, timeout=600)
    _check(at, 3)
    assert any("Upload an .npz" in i.value for i in at.info)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["image_kernels_lecture"])
def test_lecture_preset(preset):
    at = open_app(PAGE, {"preset": preset}, timeout=600)
    _check(at, 3)
    assert at.query_params["ik_ntrain"] in ("200", ["200"])


def test_a_quadrature_activation_says_its_cost_and_asks():
    """tanh has no closed-form dual: the kernels go through 2-D quadrature, about 1 s per image pair
    and layer with GAP. The page says so, draws flatten and the fully connected NTK, and asks for
    GAP with an honest estimate instead of starting a job of hours that it once estimated at a
    second."""
    at = open_app(PAGE, {**SMALL, "activation": "tanh", "ik_ntrain": 20, "ik_ntest": 10,
                         "depth": 1, "ik_readout": "flatten"}, timeout=600)
    assert exceptions(at) == []
    assert any("no closed-form dual" in i.value for i in at.info)
    # flatten and the fully connected NTK at once (seconds), GAP behind its own button
    button = [b for b in at.button if b.key == "ik_kernels_gap__run"]
    assert button, [b.label for b in at.button]
    assert button[0].label.endswith((" min)", " h)", " days)")), button[0].label
    assert "ik_kernels__run" not in {b.key for b in at.button}
    charts = _check(at, 1)
    names = {tr.get("name") for tr in charts[0]["data"]}
    assert {"CNTK-V", "CNN-GP-V", "FC NTK"} <= names and "CNTK-GAP" not in names, names


def test_kernel_cost_model_tells_quadrature_from_closed_forms():
    from dashboard import image_kernel_jobs as ij
    from dashboard.jobs import ASK_ABOVE_SECONDS

    # the page's smallest setting (20 + 10 images, heatmap of 10, depth 1) with GAP
    pairs = 20 * 21 / 2 + 10 * 20 + 10 * 11 / 2
    assert ij.kernel_seconds("gap", "relu", pairs, 1, 64) < 2
    assert ij.kernel_seconds("gap", "tanh", pairs, 1, 64) > ASK_ABOVE_SECONDS
    assert ij.kernel_seconds("flatten", "tanh", pairs, 1, 64) < ASK_ABOVE_SECONDS
    # GAP grows with the pixel pairs, flatten with the pixels
    assert ij.kernel_seconds("gap", "tanh", pairs, 1, 256) > 10 * ij.kernel_seconds("gap", "tanh", pairs, 1, 64)
