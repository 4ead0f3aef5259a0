"""Figure builders of the kernel-convergence page (arrays in, plotly Figure out; no computation
beyond picking what to draw)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import plotly.graph_objects as go

from .figures import COLORS, Style, add_band, add_line, add_points, current_style, new_figure

WIDTH_COLORS = ["#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                "#bcbd22"]
INFINITE_COLOR_LIGHT = "#111111"
INFINITE_COLOR_DARK = "#f5f5f5"


def width_color(i: int) -> str:
    return WIDTH_COLORS[i % len(WIDTH_COLORS)]


def _inf_color(style: Style) -> str:
    return INFINITE_COLOR_DARK if style.theme == "dark" else INFINITE_COLOR_LIGHT


def kernel_vs_angle_figure(title: str, angles, infinite, widths: Sequence[int], curves: Sequence,
                           summaries: Sequence, *, individual: bool, y_range=None,
                           style: Optional[Style] = None) -> go.Figure:
    """Theta(x0, x(g)) against g: per width either every seed as a thin line (`curves[i]`, shape
    (n_done, n_angles)) or the band min..max with the mean (`summaries[i]` = (mean, lo, hi)); the
    infinite-width curve on top. Widths with no finished seed are skipped."""
    style = style or current_style()
    fig = new_figure(title, "angle γ (x = (cos γ, sin γ), x₀ = (1, 0))", "Θ(x₀, x)", style=style)
    for i, w in enumerate(widths):
        c = width_color(i)
        rows = np.asarray(curves[i])
        if rows.size == 0:
            continue
        name = f"width {w:,} ({rows.shape[0]} init{'s' if rows.shape[0] != 1 else ''})"
        if individual:
            for k, r in enumerate(rows):
                add_line(fig, angles, r, name, color=c, style=style, width_scale=0.4, opacity=0.7,
                         showlegend=k == 0, legendgroup=f"w{w}", hover=k == 0)
        else:
            mean, lo, hi = summaries[i]
            add_band(fig, angles, lo, hi, f"{name}: min … max", color=c, alpha=0.25, style=style,
                     legendgroup=f"w{w}")
            add_line(fig, angles, mean, f"width {w:,}: mean", color=c, style=style,
                     width_scale=0.7, legendgroup=f"w{w}")
    add_line(fig, angles, infinite, "infinite width (analytic)", color=_inf_color(style),
             style=style, dash="dash")
    fig.update_xaxes(tickvals=[-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi],
                     ticktext=["−π", "−π/2", "0", "π/2", "π"])
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    return fig


def convergence_figure(widths, series: Sequence[dict], reference: Optional[tuple],
                       *, style: Optional[Style] = None) -> go.Figure:
    """Log-log relative Frobenius error against width. Each series: dict(name, color, mean, lo, hi,
    fit (predicted values at `widths`) or None, slope or None). reference: (values, label)."""
    style = style or current_style()
    fig = new_figure("Relative distance to the infinite-width NTK", "width m",
                     "relative error e(m) (formula below)", style=style, log_x=True, log_y=True)
    w = np.asarray(widths, np.float64)
    for s in series:
        mean, lo, hi = (np.asarray(s[k], np.float64) for k in ("mean", "lo", "hi"))
        ok = np.isfinite(mean)
        if not ok.any():
            continue
        fig.add_trace(go.Scatter(
            x=w[ok], y=mean[ok], mode="markers+lines", name=f"{s['name']}: mean over seeds",
            line=dict(color=s["color"], width=style.line_width * 0.5),
            marker=dict(color=s["color"], size=style.marker_size),
            error_y=dict(type="data", symmetric=False, array=(hi - mean)[ok],
                         arrayminus=(mean - lo)[ok], color=s["color"], thickness=1.5),
            hovertemplate=f"{s['name']}: %{{y:.4g}}<extra></extra>",
        ))
        if s.get("fit") is not None:
            add_line(fig, w, s["fit"], f"{s['name']}: fit, slope {s['slope']:.3f}",
                     color=s["color"], dash="dot", style=style, width_scale=0.8)
    if reference is not None:
        add_line(fig, w, reference[0], reference[1], color=COLORS["truth"], dash="dash",
                 style=style, width_scale=0.8)
    fig.update_xaxes(exponentformat="power")
    fig.update_yaxes(exponentformat="power")
    return fig


def percentiles_figure(angles, widths: Sequence[int], finite, gp, train_angles, y_train,
                       percentiles=(10, 50, 90), *, style: Optional[Style] = None) -> go.Figure:
    """Jacot Fig 2: network function percentiles over initialisations (finite: (n_widths, 3, n))
    against the NTK-GP percentiles (gp: (3, n)); training points as markers."""
    style = style or current_style()
    fig = new_figure("Network function after training: percentiles over initialisations",
                     "angle γ", "f(cos γ, sin γ)", style=style)
    lo_p, mid_p, hi_p = percentiles
    add_band(fig, angles, gp[0], gp[2], f"NTK-GP {lo_p}…{hi_p}th percentile",
             color=COLORS["ntk"], alpha=0.18, style=style)
    add_line(fig, angles, gp[1], f"NTK-GP {mid_p}th (median)", color=COLORS["ntk"], style=style)
    for i, w in enumerate(widths):
        c = width_color(i)
        add_line(fig, angles, finite[i][1], f"width {w:,}: {mid_p}th", color=c, style=style,
                 width_scale=0.8, legendgroup=f"w{w}")
        for j in (0, 2):
            add_line(fig, angles, finite[i][j], f"width {w:,}: {lo_p}th / {hi_p}th", color=c,
                     style=style, width_scale=0.6, dash="dot", showlegend=j == 0,
                     legendgroup=f"w{w}")
    add_points(fig, train_angles, y_train, "training points", style=style)
    fig.update_xaxes(tickvals=[-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi],
                     ticktext=["−π", "−π/2", "0", "π/2", "π"])
    return fig
