"""Lecture readiness without a browser: number formats, math in chart text, opaque themed chart
backgrounds with readable text, readable log ticks, and controls that tell the truth (help text on
every control, disabled-with-reason, the chosen preset stays shown). The browser side is
tests/test_layout.py."""
from __future__ import annotations

import numpy as np
import pytest

from apptest_helpers import exceptions, open_app

from dashboard import figures
from dashboard.figures import CHART_COLORS, Style, fmt_number, new_figure, rich, wrap_title


@pytest.mark.parametrize("value, text", [
    (0, "0"), (1e-7, "1×10⁻⁷"), (-2.5e-5, "−2.5×10⁻⁵"), (0.25, "0.25"), (0.123456, "0.123"),
    (3.0, "3"), (1234, "1,234"), (2.5e5 + 0.5, "2.5×10⁵"), (float("inf"), "∞"),
    (float("nan"), "—"), (None, "—"),
])
def test_fmt_number_reads_well(value, text):
    assert fmt_number(value) == text


def test_small_numbers_never_print_as_zeros():
    for v in (3e-5, 1.2e-9, 4.4e-300):
        assert fmt_number(v, 4) not in ("0", "0.0000") and "10" in fmt_number(v, 4)


def test_math_in_chart_text_becomes_sub_and_superscripts():
    assert rich("‖Θ_m − Θ_∞‖_F") == "‖Θ<sub>m</sub> − Θ<sub>∞</sub>‖<sub>F</sub>"
    assert rich("κ = λ_{max} / λ_{min}") == "κ = λ<sub>max</sub> / λ<sub>min</sub>"
    assert rich("m^{-1/2}") == "m<sup>-1/2</sup>"


def test_long_titles_wrap_at_spaces():
    text = "How fast correlations approach 1: 1 − ρ⁽ᴸ⁾ against depth"
    lines = wrap_title(text, 30).split("<br>")
    assert len(lines) >= 2 and all(len(line) <= 30 for line in lines)
    assert " ".join(lines) == text


def _luminance(hex_color: str) -> float:
    rgb = [int(hex_color.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("presentation", [False, True])
def test_charts_carry_an_opaque_background_with_readable_text(theme, presentation):
    style = Style(theme=theme, presentation=presentation)
    fig = new_figure("A title", "x", "y", style=style, log_y=True)
    layout = fig.layout
    colors = CHART_COLORS[theme]
    assert layout.paper_bgcolor == colors["paper"] and layout.plot_bgcolor == colors["plot"]
    assert layout.font.color == colors["text"] == layout.title.font.color
    assert layout.legend.font.color == colors["text"]
    assert _contrast(colors["text"], colors["paper"]) >= 4.5
    assert layout.yaxis.exponentformat == "power"  # 10⁻⁵, never SI prefixes like "10µ"
    assert layout.legend.yref == "container"  # below the x-axis title, never on it
    if presentation:
        assert min(style.font_size, style.title_size, style.axis_title_size) >= 18


def test_apply_style_reaches_every_axis_and_annotation_and_keeps_the_rest():
    """apply_style assigns one merged layout (much faster than update_layout calls): every subplot
    axis and annotation gets the theme, what the figure had (shapes, axis types, titles) stays."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("left", "right"))
    fig.add_trace(go.Scatter(x=[1, 2], y=[3, 4]), row=1, col=2)
    fig.update_layout(title_text="T", xaxis2=dict(type="log", title_text="λ_{max}"))
    fig.add_hline(y=1.0)
    style = Style(theme="dark", presentation=True)
    out = figures.apply_style(fig, style).layout
    for ax in (out.xaxis, out.yaxis, out.xaxis2, out.yaxis2):
        assert ax.tickfont.color == style.colors["text"] and ax.gridcolor == style.colors["grid"]
    assert out.xaxis2.type == "log" and out.xaxis2.title.text == "λ<sub>max</sub>"
    assert [a.font.color for a in out.annotations] == [style.colors["text"]] * 2
    assert [a.text for a in out.annotations] == ["left", "right"] and len(out.shapes) == 1
    assert out.title.font.size == style.title_size and out.paper_bgcolor == style.colors["paper"]
    assert out.template.layout.to_plotly_json()  # the theme's template is set


def test_merged_updates_nested_dicts_and_leaves_its_inputs_alone():
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    assert figures._merged(base, {"a": {"c": 3}, "d": [2]}) == {"a": {"b": 1, "c": 3}, "d": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}


def test_csv_download_is_the_frame_the_chart_shows():
    frame = figures.to_frame({"x": [1.0, 2.0], "y": [3.0]})
    assert figures.csv_bytes(frame).decode().splitlines() == ["x,y", "1.0,3.0", "2.0,"]


def test_log_axes_label_decades_only():
    style = Style()
    fig = new_figure("t", "x", "y", style=style, log_x=True, log_y=True)
    figures.add_line(fig, np.geomspace(1, 1e4, 50), np.geomspace(1e-16, 1, 50), "a", color="#000000",
                     style=style)
    figures._log_axis_ticks(fig)
    assert fig.layout.xaxis.dtick == 1  # 4 decades: every power of ten, no 2, 5 labels
    assert fig.layout.yaxis.dtick == 3  # 16 decades: every third power of ten
    short = new_figure("t", "x", "y", style=style, log_x=True)
    figures.add_line(short, [1, 30], [0, 1], "a", color="#000000", style=style)
    figures._log_axis_ticks(short)
    assert list(short.layout.xaxis.tickvals) == [1, 2, 5, 10, 20]  # full-size labels, no 3, 4, ...


def _all_widgets(at):
    for kind in ("slider", "number_input", "selectbox", "select_slider", "radio", "toggle",
                 "text_input", "checkbox", "multiselect"):
        for w in getattr(at, kind, []):
            yield w


@pytest.mark.slow
@pytest.mark.parametrize("page, params", [
    ("pages/1_finite_vs_infinite.py", {"steps": 200}),
    ("pages/2_kernel_convergence.py", {"cv_w1": 16, "cv_w2": 32, "cv_seeds": 1, "cv_steps": 0,
                                        "cv_smin": 8, "cv_smax": 16, "cv_sseeds": 1,
                                        "cv_strain": 0}),
    ("pages/3_depth.py", {"L_max": 30, "L": 10, "d_n": 5}),
])
def test_every_control_has_help_text(page, params):
    at = open_app(page, params)
    assert exceptions(at) == []
    missing = [w.label for w in _all_widgets(at) if not (w.key or "").startswith("_")
               and not w.help]
    assert missing == []


def test_nngp_mode_disables_the_time_slider_with_a_reason():
    at = open_app("pages/1_finite_vs_infinite.py", {"steps": 200, "posterior": "nngp"})
    t = at.select_slider(key="t")
    assert t.disabled and "Not used here" in t.help
    at = open_app("pages/1_finite_vs_infinite.py", {"steps": 200})
    assert not at.select_slider(key="t").disabled


SHARED_KEYS = {"depth": "slider", "width": "number_input", "sigma_w": "slider", "sigma_b": "slider",
               "activation": "selectbox", "seed": "number_input"}


@pytest.mark.slow
@pytest.mark.parametrize("page, params, ignored", [
    ("pages/1_finite_vs_infinite.py", {"steps": 200}, set()),
    ("pages/4_deep_narrow.py", {"activation": "tanh", "width": 64},
     {"depth", "width", "sigma_w", "sigma_b", "activation"}),
    ("pages/5_image_kernels.py", {"width": 64, "ik_ntrain": 20, "ik_ntest": 20, "depth": 1}, {"width"}),
])
def test_shared_controls_a_page_ignores_are_disabled_with_the_reason(page, params, ignored):
    """...and a link that set them differently gets no "Switch to this page's setting" for them."""
    at = open_app(page, params)
    assert exceptions(at) == []
    if "activation" in ignored:  # the deep narrow page's topic is ReLU and seed 0 (the default)
        assert "_urlctl_topic_button" not in {b.key for b in at.sidebar.button}
    for key, kind in SHARED_KEYS.items():
        widget = getattr(at.sidebar, kind)(key=key)
        assert widget.disabled == (key in ignored), key
        assert ("Not used here" in widget.help) == (key in ignored), key


def test_the_chosen_preset_stays_shown_until_a_control_changes():
    at = open_app("pages/1_finite_vs_infinite.py", {"steps": 200, "K": 1})
    box = at.sidebar.selectbox(key="_urlctl_preset_choice")
    box.set_value("seed003_fig2").run()
    assert exceptions(at) == []
    assert at.sidebar.selectbox(key="_urlctl_preset_choice").value == "seed003_fig2"
    at.sidebar.slider(key="n_train").set_value(7).run()
    assert at.sidebar.selectbox(key="_urlctl_preset_choice").value == "(choose a preset)"


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("presentation", [False, True])
def test_thumbnails_follow_the_theme_and_are_projector_sized(theme, presentation):
    """The misclassified-images grid is a subplot figure outside new_figure: it must still carry
    the theme's opaque background and text colour, and 18 px titles on a projector."""
    from dashboard.image_kernel_figures import thumbnails_figure

    style = Style(theme=theme, presentation=presentation)
    images = np.random.default_rng(0).random((10, 8, 8))
    fig = thumbnails_figure(images, [f"{i}→5 (0.36 vs 0.18)" for i in range(10)], style=style)
    colors = CHART_COLORS[theme]
    assert fig.layout.paper_bgcolor == colors["paper"] and fig.layout.plot_bgcolor == colors["plot"]
    assert {fig.layout.font.color, fig.layout.title.font.color} == {colors["text"]}
    assert {a.font.color for a in fig.layout.annotations} == {colors["text"]}
    if presentation:
        assert min(a.font.size for a in fig.layout.annotations) >= 18


@pytest.mark.parametrize("n, presentation, cols", [(3, False, 3), (19, False, 6), (19, True, 4), (1, True, 1)])
def test_thumbnails_keep_square_pixels_and_two_line_titles(n, presentation, cols):
    """A few misclassified images used to be drawn as tall strips under overlapping titles."""
    from dashboard.image_kernel_figures import thumbnails_figure

    images = np.random.default_rng(0).random((n, 8, 8))
    fig = thumbnails_figure(images, [f"{i % 10}→5 (0.36 vs 0.18)" for i in range(n)],
                            style=Style(theme="light", presentation=presentation))
    x_axes = sorted(k for k in fig.layout.to_plotly_json() if k.startswith("xaxis"))
    assert len(x_axes) == cols * -(-n // cols)
    domains = {tuple(fig.layout[k].domain) for k in x_axes}
    assert len({round(d[0], 6) for d in domains}) == cols
    for k in x_axes:
        y = "yaxis" + k[len("xaxis"):]
        assert fig.layout[y].scaleanchor == "x" + k[len("xaxis"):] and fig.layout[y].constrain == "domain"
    titles = [a.text for a in fig.layout.annotations if a.text]
    assert len(titles) == n and all(t.count("<br>") == 1 and t.split("<br>")[1].startswith("(")
                                    for t in titles)
