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


@dataclasses.dataclass(frozen=True)
class Style:
    """Chart style: theme ("light"/"dark") and presentation mode (projector)."""

    theme: str = "light"
    presentation: bool = False

    @property
    def template(self) -> str:
        return "plotly_dark" if self.theme == "dark" else "plotly_white"

    @property
    def font_size(self) -> int:
        return 22 if self.presentation else 14

    @property
    def line_width(self) -> float:
        return 4.5 if self.presentation else 2.0

    @property
    def marker_size(self) -> int:
        return 14 if self.presentation else 8

    @property
    def height(self) -> int:
        return 560 if self.presentation else 440

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


def new_figure(title: str, x_title: str, y_title: str, *, style: Style | None = None,
               log_x: bool = False, log_y: bool = False) -> go.Figure:
    """An empty figure with axis titles, legend, unified hover and the theme's template."""
    style = style or current_style()
    # one layout dict: plotly's update_layout/update_xaxes machinery costs ~0.1 s per figure
    axis_font = dict(size=style.font_size + 2)
    fig = go.Figure(layout=dict(
        title=dict(text=title, font=dict(size=style.font_size + 4)),
        font=dict(size=style.font_size),
        height=style.height,
        hovermode="x unified",
        legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0.0,
                    font=dict(size=style.font_size)),
        margin=dict(l=60, r=20, t=60, b=40),
        paper_bgcolor="rgba(0,0,0,0)",
        xaxis=dict(title=dict(text=x_title, font=axis_font), type="log" if log_x else "linear"),
        yaxis=dict(title=dict(text=y_title, font=axis_font), type="log" if log_y else "linear"),
    ))
    set_template(fig, style.template)
    return fig


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
        name=name, fill="toself", fillcolor=rgba(color, alpha),
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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "chart"


def chart(fig: go.Figure, data, formula_latex: str | Sequence[str] | None, source: str | None,
          key: str, *, caption: str | None = None, where=None) -> None:
    """Render `fig`, a CSV download of `data`, and the formula(s) with their source."""
    box = where if where is not None else st.container()
    with box:
        st.plotly_chart(fig, theme=None, key=f"chart_{key}", config={"displaylogo": False})
        frame = to_frame(data)
        cols = st.columns([1, 3])
        with cols[0]:
            st.download_button(
                "Download data (CSV)", frame.to_csv(index=False).encode(),
                file_name=f"{_slug(key)}.csv", mime="text/csv", key=f"csv_{key}",
                on_click="ignore",
            )
        with cols[1]:
            if caption:
                st.caption(caption)
        if formula_latex:
            formulas: Iterable[str] = ([formula_latex] if isinstance(formula_latex, str)
                                       else formula_latex)
            for f in formulas:
                st.latex(f)
        if source:
            st.caption(f"Source: {source}")
