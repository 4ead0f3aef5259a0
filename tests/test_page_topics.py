"""AppTest of page topics (dashboard.controls, PageInfo.topic): a page opened without shared
settings starts on its topic; settings chosen elsewhere (URL, another page) are kept with a one-click
switch; "Reset this page" restores the page's defaults and its topic."""
from __future__ import annotations

import pytest

from apptest_helpers import exceptions, open_app

from dashboard import page_registry

FINITE = "pages/1_finite_vs_infinite.py"
CONVERGENCE = "pages/2_kernel_convergence.py"
DEPTH = "pages/3_depth.py"
# small page settings (no shared keys) so the pages compute quickly
SMALL_PAGES = {"steps": 200, "K": 1, "d_n": 8, "L_max": 30, "L": 10,
               "cv_w1": 32, "cv_w2": 64, "cv_seeds": 2, "cv_steps": 0, "cv_ntrain": 4,
               "cv_angles": 33, "cv_smin": 16, "cv_smax": 64, "cv_sseeds": 1, "cv_spoints": 4,
               "cv_strain": 0}
TOPIC_BUTTON = "_urlctl_topic_button"
SLOW = pytest.mark.slow  # every page's first run compiles (JAX, numba): ~10 s each here
RESET_BUTTON = "_urlctl_reset_button"


def shared_values(at) -> dict:
    side = at.sidebar
    return {"depth": side.slider(key="depth").value, "sigma_w": side.slider(key="sigma_w").value,
            "sigma_b": side.slider(key="sigma_b").value,
            "activation": side.selectbox(key="activation").value}


def assert_on_topic(at, page_id):
    assert exceptions(at) == []
    values = shared_values(at)
    for key, value in page_registry.by_id(page_id).topic.items():
        assert values[key] == pytest.approx(value) if key != "activation" else \
            values[key] == value, (key, values[key], value)


def button_keys(at) -> set:
    return {b.key for b in at.sidebar.button}


def test_every_page_has_a_topic():
    for page in page_registry.PAGES:
        assert page.topic, page.id
        assert set(page.topic) <= {"depth", "width", "sigma_w", "sigma_b", "activation", "seed"}


@SLOW
def test_page_without_shared_parameters_starts_on_its_topic():
    at = open_app(DEPTH, SMALL_PAGES)
    assert_on_topic(at, "depth")
    assert shared_values(at)["activation"] == "relu" and shared_values(at)["sigma_b"] == 0.0
    assert TOPIC_BUTTON not in button_keys(at)
    assert RESET_BUTTON in button_keys(at)
    assert at.query_params["activation"] in ("relu", ["relu"])


@SLOW
def test_link_with_other_settings_keeps_them_and_offers_a_switch():
    at = open_app(DEPTH, {**SMALL_PAGES, "activation": "tanh", "sigma_b": 0.3})
    assert exceptions(at) == []
    assert shared_values(at)["activation"] == "tanh"
    assert shared_values(at)["sigma_b"] == pytest.approx(0.3)
    button = at.sidebar.button(key=TOPIC_BUTTON)
    assert "ReLU" in button.label and "σ_b = 0" in button.label
    button.click().run()
    assert_on_topic(at, "depth")
    assert TOPIC_BUTTON not in button_keys(at)


@SLOW
def test_navigation_applies_each_topic_until_the_user_chooses():
    at = open_app(FINITE, SMALL_PAGES)
    assert_on_topic(at, "finite_vs_infinite")
    at.switch_page(DEPTH).run()
    assert_on_topic(at, "depth")
    at.switch_page(CONVERGENCE).run()
    assert_on_topic(at, "kernel_convergence")
    assert shared_values(at)["depth"] == 3
    at.switch_page(FINITE).run()
    assert_on_topic(at, "finite_vs_infinite")
    # the user moves a shared control: other pages keep it and offer their topic
    at.sidebar.slider(key="sigma_b").set_value(0.5).run()
    at.switch_page(DEPTH).run()
    assert exceptions(at) == []
    assert shared_values(at)["activation"] == "erf"
    assert shared_values(at)["sigma_b"] == pytest.approx(0.5)
    assert TOPIC_BUTTON in button_keys(at)


@SLOW
def test_reset_restores_page_defaults_and_topic_and_keeps_display():
    at = open_app(DEPTH, {**SMALL_PAGES, "activation": "tanh", "rho0": -0.3, "presentation": 1})
    assert at.sidebar.slider(key="rho0").value == pytest.approx(-0.3)
    at.sidebar.button(key=RESET_BUTTON).click().run()
    assert_on_topic(at, "depth")
    assert at.sidebar.slider(key="rho0").value == pytest.approx(0.5)   # the page default
    assert at.sidebar.slider(key="d_n").value == 40
    assert at.sidebar.toggle(key="presentation").value is True
    assert at.query_params["rho0"] in ("0.5", ["0.5"])


@SLOW
def test_a_preset_of_the_page_is_on_topic():
    """Arora et al.'s Table 1 preset runs at depth 6, the image page's topic at depth 4: opened from
    its link, the paper's own setting offers no switch; once a control it sets moves, it does."""
    at = open_app("pages/5_image_kernels.py", {"preset": "arora_table1_digits"})
    assert exceptions(at) == []
    assert shared_values(at)["depth"] == 6
    assert TOPIC_BUTTON not in button_keys(at)
    at.sidebar.slider(key="depth").set_value(5).run()
    assert exceptions(at) == []
    assert TOPIC_BUTTON in button_keys(at)
