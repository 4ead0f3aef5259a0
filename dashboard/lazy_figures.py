"""Figure builders of the lazy-training page: arrays in, plotly Figure out (no computation)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from .figures import COLORS, Style, add_band, add_line, add_points, new_figure

PHASE_COLORS = ("#2ca02c", "#ff7f0e", "#1f77b4", "#d62728")   # lazy, catapult, converged, diverged


def outputs_figure(x_test, net, lin, times, x_train, y_train, y_true=None, *, style: Style | None = None
                   ) -> go.Figure:
    """f_t (solid) and f_lin,t (dashed) on the test grid at a few times (rows of net / lin); one legend
    entry per time (the pair), so the legend fits a half-width column."""
    fig = new_figure("Network f (solid) and its linearisation f_lin (dashed)", "x", "output", style=style)
    if y_true is not None and np.all(np.isfinite(y_true)):
        add_line(fig, x_test, y_true, "true function", color=COLORS["truth"], dash="dot", style=style)
    shades = np.linspace(0.35, 1.0, len(times))
    for k, (t, a) in enumerate(zip(times, shades)):
        add_line(fig, x_test, net[k], f"t = {t:.3g}", color=COLORS["net"], style=style, opacity=a,
                 legendgroup=f"t{k}")
        add_line(fig, x_test, lin[k], f"f_lin, t = {t:.3g}", color=COLORS["ntk"], dash="dash", style=style,
                 opacity=a, legendgroup=f"t{k}", showlegend=False)
    add_points(fig, x_train, y_train, "training data", style=style)
    return fig


def distance_figure(times, sup_distance, *, style: Style | None = None) -> go.Figure:
    """sup_x |f_t - f_lin,t| against training time (log y)."""
    fig = new_figure("Distance between f and f_lin during training", "time t = lr × steps",
                     "sup over the test grid of |f − f_lin|", style=style, log_y=True)
    d = np.asarray(sup_distance, np.float64)
    keep = d > 0
    add_line(fig, np.asarray(times)[keep], d[keep], "sup |f − f_lin|", color=COLORS["net"], style=style)
    return fig


def width_figure(title: str, y_title: str, widths, values, fit=None, slope=None, references=(),
                 *, color=COLORS["net"], style: Style | None = None) -> go.Figure:
    """Log-log: per-seed points, the mean over seeds with min..max band, the fitted line and reference
    lines [(values, name)]."""
    fig = new_figure(title, "width m", y_title, style=style, log_x=True, log_y=True)
    w = np.asarray(widths, np.float64)
    v = np.asarray(values, np.float64)
    ok = np.all(np.isfinite(v) & (v > 0), axis=1)
    if ok.any():
        add_band(fig, w[ok], v[ok].min(axis=1), v[ok].max(axis=1), "min … max over seeds", color=color,
                 style=style)
        add_line(fig, w[ok], v[ok].mean(axis=1), "mean over seeds", color=color, style=style)
        add_points(fig, np.repeat(w[ok], v.shape[1]), v[ok].ravel(), "one network", color=color, style=style)
    if fit is not None:
        add_line(fig, w, fit, f"fitted slope {slope:.2f}", color="#000000" if (style and style.theme == "light")
                 else "#888888", dash="dash", style=style)
    for ref, name, dash in references:
        add_line(fig, w, ref, name, color=COLORS["truth"], dash=dash, style=style)
    return fig


def catapult_figure(title: str, y_title: str, runs: Sequence[dict], key: str, *, boundary=None,
                    log_y: bool = True, style: Style | None = None) -> go.Figure:
    """One curve per run (dict with steps, `key`, label, phase index) against steps."""
    fig = new_figure(title, "GD step", y_title, style=style, log_y=log_y)
    for r in runs:
        y = np.asarray(r[key], np.float64)
        keep = np.isfinite(y) & ((y > 0) if log_y else True)
        add_line(fig, np.asarray(r["steps"])[keep], y[keep], r["label"], color=PHASE_COLORS[int(r["phase"])],
                 style=style)
    if boundary is not None:
        for value, name in boundary:
            steps = np.concatenate([np.asarray(r["steps"]) for r in runs]) if runs else np.array([0, 1])
            add_line(fig, [steps.min(), steps.max()], [value, value], name, color=COLORS["truth"], dash="dot",
                     style=style)
    return fig
