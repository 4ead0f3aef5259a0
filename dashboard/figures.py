"""Plotly helpers that follow the theme and the presentation switch, and the chart block.

    style = figures.current_style()            # from the shared controls (theme, presentation)
    fig = figures.new_figure(title, x_title, y_title, style=style, log_x=False, log_y=False)
    figures.add_line(fig, x, y, name, color=..., dash=None, style=style)
    figures.add_band(fig, x, lower, upper, name, color=..., style=style)   # filled region
    figures.add_points(fig, x, y, name, color=..., style=style)
    figures.chart(fig, data, formula_latex, source, key)

`chart` renders the figure (st.plotly_chart, theme=None so our template applies), a "Download
data (CSV)" button for `data` (a pandas DataFrame, or a dict of 1-D columns; columns of unequal
length are padded with NaN) and, next to it, the formula(s) in LaTeX with a caption naming the
source. `key` must be unique on the page; it names the CSV file too.

Figure builders take arrays and return a plotly Figure; they never compute the math.
`COLORS` is the palette every page uses for the same things (theory, nets, ensemble, data).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

COLORS = {
    "ntk": "#1f77b4",       # NTK-GP (theory, gradient descent)
    "nngp": "#9467bd",      # NNGP posterior (Bayesian)
    "net": "#ff7f0e",       # a finite network
    "ensemble": "#2ca02c",  # ensemble of finite networks
    "truth": "#7f7f7f",     # the true function
    "data_light": "#111111",
    "data_dark": "#f5f5f5",
    "train": "#d62728",
    "test": "#17becf",
}


# Opaque chart backgrounds: a chart carries its own background, so its text stays readable whatever
# the app theme is (a forced "dark" chart on the light app, or the reverse). Text colours reach a
# contrast of at least 4.5 (WCAG AA) against these backgrounds; tests/test_layout.py measures it.
CHART_COLORS = {
    "light": {"paper": "#ffffff", "plot": "#ffffff", "text": "#1a1a1a", "grid": "#e3e3e3",
              "zero": "#b0b0b0"},
    "dark": {"paper": "#0e1117", "plot": "#0e1117", "text": "#f2f2f2", "grid": "#30343c",
             "zero": "#6a6f78"},
}


@dataclasses.dataclass(frozen=True)
class Style:
    """Chart style: theme ("light"/"dark") and presentation mode (projector)."""

    theme: str = "light"
    presentation: bool = False

    @property
    def template(self) -> str:
        return "plotly_dark" if self.theme == "dark" else "plotly_white"

    @property
    def colors(self) -> dict:
        return CHART_COLORS["dark" if self.theme == "dark" else "light"]

    @property
    def font_size(self) -> int:
        """Tick, legend and hover text (px); at least 18 on a projector."""
        return 19 if self.presentation else 13

    @property
    def title_size(self) -> int:
        return 22 if self.presentation else 16

    @property
    def axis_title_size(self) -> int:
        return 20 if self.presentation else 14

    @property
    def line_width(self) -> float:
        return 4.0 if self.presentation else 2.0

    @property
    def marker_size(self) -> int:
        return 13 if self.presentation else 8

    @property
    def height(self) -> int:
        # also in presentation mode: the first chart of a page fits a 1024x768 projector below the
        # page title (the larger fonts take their room from the plot area)
        return 440

    @property
    def title_chars(self) -> int:
        """Characters per title line that fit the narrowest chart: a half-width column at 1024 px
        with the sidebar open (~270 px), or in presentation mode a full-width chart (~850 px)."""
        return 56 if self.presentation else 30

    @property
    def data_color(self) -> str:
        return COLORS["data_dark"] if self.theme == "dark" else COLORS["data_light"]


def current_style() -> Style:
    """The style of the shared controls of this run (light, normal if they are not drawn)."""
    shared = st.session_state.get("_urlctl_shared")
    if shared is None:
        return Style()
    return Style(theme=shared.theme, presentation=shared.presentation)


def rgba(hex_color: str, alpha: float) -> str:
    """'#rrggbb' -> 'rgba(r,g,b,alpha)' (for translucent bands)."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def set_template(fig: go.Figure, name: str) -> None:
    """fig.layout.template = the registered template `name`, without validating it again.

    Plotly validates (deep-copies) a template on every assignment: ~0.1-0.2 s per figure, most of
    a warm rerun of a page with several charts. Registered templates are valid already; plotly
    assigns its default template the same way (BaseFigure._initialize_layout_template)."""
    import plotly.io as pio

    layout = fig.layout
    layout._validate = False
    try:
        layout.template = pio.templates[name]
    finally:
        layout._validate = True


# --------------------------------------------------------------------------------------------
# Text: numbers and math for reading
# --------------------------------------------------------------------------------------------
_SUPERSCRIPT = str.maketrans("0123456789-+", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺")


def fmt_number(value, digits: int = 3) -> str:
    """A number for reading: `digits` significant digits, scientific notation (1.23×10⁻⁵) below
    10⁻³ and from 10⁵ on, no trailing zeros; "∞", "−∞", "—" (NaN / None); exact integers as
    integers with thousands separators."""
    if value is None:
        return "—"
    v = float(value)
    if math.isnan(v):
        return "—"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0:
        return "0"
    if v == int(v) and abs(v) < 1e9:
        return f"{int(v):,}".replace("-", "−")
    if abs(v) < 1e-3 or abs(v) >= 1e5:
        mant, exp = f"{v:.{digits - 1}e}".split("e")
        mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
        exp_txt = str(int(exp)).translate(_SUPERSCRIPT)
        return f"{mant}×10{exp_txt}".replace("-", "−")
    text = f"{v:.{digits}g}"
    if "e" in text:  # e.g. 12345.6 with 3 digits
        text = f"{v:,.0f}"
    return text.replace("-", "−")


_SUB = re.compile(r"_\{([^}]*)\}|_([A-Za-z0-9∞]+)")
_SUP = re.compile(r"\^\{([^}]*)\}|\^([−\-]?[A-Za-z0-9∞]+)")


def rich(text: str) -> str:
    """Plain math in chart text as plotly's HTML: `Θ_m`, `λ_{max}` -> subscripts, `m^(-1/2)` stays,
    `x^2`, `m^{-1/2}` -> superscripts (Streamlit loads no MathJax, so plotly cannot typeset TeX)."""
    if not text or "<" in text:
        return text
    text = _SUB.sub(lambda m: f"<sub>{m.group(1) or m.group(2)}</sub>", text)
    return _SUP.sub(lambda m: f"<sup>{m.group(1) or m.group(2)}</sup>", text)


def wrap_title(text: str, max_chars: int) -> str:
    """Break a title into lines of at most `max_chars` characters at spaces (so it fits its chart)."""
    if not text or len(text) <= max_chars or "<br>" in text:
        return text
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > max_chars:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "<br>".join(lines)


_AXIS_KEY = re.compile(r"^[xy]axis\d*$")


def _merged(base: dict, update: Mapping) -> dict:
    """`base` updated by `update` recursively (plotly's update_layout semantics for dicts)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def apply_style(fig: go.Figure, style: Style | None = None) -> go.Figure:
    """Theme, opaque background, fonts and legend placement of `style` on any figure (also
    subplots and heatmaps that do not come from `new_figure`).

    The style is merged into the layout as one dict and assigned once: plotly validates every
    `update_layout` / `update_xaxes` call through its relayout machinery (~35 ms per figure, most of
    a warm rerun of a page with several charts); one assignment costs ~6 ms."""
    style = style or current_style()
    c = style.colors
    layout = fig.layout.to_plotly_json()
    layout.pop("template", None)
    update = dict(
        paper_bgcolor=c["paper"], plot_bgcolor=c["plot"],
        font=dict(size=style.font_size, color=c["text"]),
        height=style.height,
        # the legend sits at the bottom of the figure, below the x-axis title; plotly grows the
        # bottom margin to fit it, so the two never overlap
        legend=dict(orientation="h", yref="container", yanchor="bottom", y=0.0, xanchor="left",
                    x=0.0, font=dict(size=style.font_size, color=c["text"]),
                    bgcolor="rgba(0,0,0,0)"),
        margin=dict(l=10, r=20, t=30, b=10),
        hoverlabel=dict(font=dict(size=style.font_size)),
    )
    title = (layout.get("title") or {}).get("text")
    if title:
        update["title"] = dict(
            # above the plot area; automargin grows the top margin to fit every line
            text=wrap_title(rich(title), style.title_chars), x=0.0, xanchor="left",
            xref="container", pad=dict(l=8, b=12),
            yref="paper", y=1.0, yanchor="bottom", automargin=True,
            font=dict(size=style.title_size, color=c["text"]))
    if layout.get("annotations"):
        update["annotations"] = [_merged(a, dict(font=dict(color=c["text"], size=style.font_size)))
                                 for a in layout["annotations"]]
    axis = dict(gridcolor=c["grid"], zerolinecolor=c["zero"], linecolor=c["zero"],
                tickfont=dict(size=style.font_size, color=c["text"]),
                title=dict(font=dict(size=style.axis_title_size, color=c["text"])),
                exponentformat="power", automargin=True)
    for key in {"xaxis", "yaxis", *(k for k in layout if _AXIS_KEY.match(k))}:
        update[key] = axis
        text = ((layout.get(key) or {}).get("title") or {}).get("text")
        if text:
            update[key] = _merged(axis, dict(title=dict(text=rich(text))))
    fig.layout = _merged(layout, update)
    set_template(fig, style.template)
    return fig


def new_figure(title: str, x_title: str, y_title: str, *, style: Style | None = None,
               log_x: bool = False, log_y: bool = False) -> go.Figure:
    """An empty figure with axis titles, legend, unified hover and the theme's template."""
    fig = go.Figure(layout=dict(
        title=dict(text=title), hovermode="x unified",
        xaxis=dict(title=dict(text=x_title), type="log" if log_x else "linear"),
        yaxis=dict(title=dict(text=y_title), type="log" if log_y else "linear")))
    return apply_style(fig, style)


def _log_axis_ticks(fig: go.Figure) -> None:
    """Readable log axes: labels only at powers of ten (no 2, 5 minor labels), every k-th decade
    when the data span many decades; ranges under two decades keep plotly's own ticks."""
    for letter, axes in (("x", fig.select_xaxes()), ("y", fig.select_yaxes())):
        for ax in axes:
            if ax.type != "log" or ax.dtick is not None:
                continue
            values = []
            for tr in fig.data:
                v = getattr(tr, letter, None)
                if v is None:
                    continue
                try:
                    arr = np.asarray(v, dtype=float).ravel()
                except (TypeError, ValueError):
                    continue
                values.append(arr[np.isfinite(arr) & (arr > 0)])
            values = [v for v in values if v.size]
            if not values:
                continue
            allv = np.concatenate(values)
            lo, hi = math.log10(allv.min()), math.log10(allv.max())
            if hi - lo >= 2:
                ax.dtick = max(1, math.ceil((hi - lo) / 6))
            else:  # 1, 2, 5 x 10^k at full size (plotly's own minor labels are small digits)
                vals = [m * 10.0 ** k for k in range(math.floor(lo), math.ceil(hi) + 1)
                        for m in (1, 2, 5) if lo - 1e-9 <= math.log10(m) + k <= hi + 1e-9]
                if len(vals) >= 2:
                    ax.tickvals = vals
                    ax.ticktext = [fmt_number(v) for v in vals]
def add_line(fig: go.Figure, x, y, name: str, *, color: str, dash: str | None = None,
             style: Style | None = None, width_scale: float = 1.0, opacity: float = 1.0,
             showlegend: bool = True, legendgroup: str | None = None,
             hover: bool = True) -> go.Figure:
    style = style or current_style()
    fig.add_trace(go.Scatter(
        x=np.asarray(x), y=np.asarray(y), name=name, mode="lines", opacity=opacity,
        line=dict(color=color, width=style.line_width * width_scale, dash=dash),
        showlegend=showlegend, legendgroup=legendgroup,
        hoverinfo=None if hover else "skip",
        hovertemplate=None if not hover else f"{name}: %{{y:.4g}}<extra></extra>",
    ))
    return fig


def add_band(fig: go.Figure, x, lower, upper, name: str, *, color: str, alpha: float = 0.2,
             style: Style | None = None, dash: str | None = None,
             legendgroup: str | None = None) -> go.Figure:
    """A filled region between `lower` and `upper` (drawn as one closed polygon)."""
    style = style or current_style()
    x = np.asarray(x)
    fig.add_trace(go.Scatter(
        x=np.concatenate([x, x[::-1]]),
        y=np.concatenate([np.asarray(upper), np.asarray(lower)[::-1]]),
        # translucent fills fade on a dark background: stronger there
        name=name, fill="toself", fillcolor=rgba(color, min(0.6, alpha * (1.8 if style.theme == "dark" else 1.0))),
        line=dict(color=rgba(color, 0.0 if dash is None else 0.9), dash=dash,
                  width=style.line_width * 0.6),
        hoverinfo="skip", legendgroup=legendgroup,
    ))
    return fig


def add_points(fig: go.Figure, x, y, name: str, *, color: str | None = None,
               style: Style | None = None, symbol: str = "circle") -> go.Figure:
    style = style or current_style()
    fig.add_trace(go.Scatter(
        x=np.asarray(x), y=np.asarray(y), name=name, mode="markers",
        marker=dict(color=color or style.data_color, size=style.marker_size, symbol=symbol,
                    line=dict(width=1, color="white" if style.theme == "light" else "black")),
        hovertemplate=f"{name}: (%{{x:.4g}}, %{{y:.4g}})<extra></extra>",
    ))
    return fig


def to_frame(data) -> pd.DataFrame:
    """A DataFrame from a DataFrame or a dict of 1-D columns (unequal lengths padded with NaN)."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        return pd.DataFrame({str(k): pd.Series(np.asarray(v).ravel()) for k, v in data.items()})
    raise TypeError("chart data must be a pandas DataFrame or a dict of columns")


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The CSV file a chart's download button serves."""
    return frame.to_csv(index=False).encode()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "chart"


def chart(fig: go.Figure, data, formula_latex: str | Sequence[str] | None, source: str | None,
          key: str, *, caption: str | None = None, where=None) -> None:
    """Render `fig`, a CSV download of `data`, and the formula(s) with their source.

    Long formulas should be split into several strings (one line each): a line must fit a
    half-width column at 1024 px (about 45 characters of rendered math)."""
    box = where if where is not None else st.container()
    _log_axis_ticks(fig)
    with box:
        st.plotly_chart(fig, theme=None, key=f"chart_{key}", config={"displaylogo": False})
        frame = to_frame(data)
        if caption:
            st.caption(caption)
        if formula_latex:
            formulas: Iterable[str] = ([formula_latex] if isinstance(formula_latex, str)
                                       else formula_latex)
            for f in formulas:
                st.latex(f)
        if source:
            st.caption(f"Source: {source}")
        # its own row: in a half-width column a button beside text is cut ("Downloa...")
        st.download_button(  # the CSV is written when the button is clicked, not on every rerun
            "CSV", functools.partial(csv_bytes, frame), icon=":material/download:",
            file_name=f"{_slug(key)}.csv", mime="text/csv", key=f"csv_{key}",
            on_click="ignore", help="Download the data this chart shows (CSV).",
        )


def columns(n: int, where=None):
    """`n` side-by-side containers for charts; in presentation mode one below the other (full
    width, so the projector fonts fit)."""
    box = where if where is not None else st
    if current_style().presentation:
        return [box.container() for _ in range(n)]
    return box.columns(n)


def projector_later(**container_kwargs):
    """A container for text that precedes the charts on a screen but, in presentation mode, goes
    below the first chart (so that chart fits a 1024x768 projector). Returns a function giving the
    container: placed here now, or on a projector where the function is first called."""
    box = None if current_style().presentation else st.container(**container_kwargs)

    def place():
        nonlocal box
        if box is None:
            box = st.container(**container_kwargs)
        return box

    return place


def intro(markdown: str) -> None:
    """A page's introduction: shown as text, or in presentation mode folded into an expander so
    that the first chart fits the projector screen."""
    if current_style().presentation:
        with st.expander("About this page"):
            st.markdown(markdown)
    else:
        st.markdown(markdown)
