"""Figure builders of the "Finite vs infinite width" page: arrays in, plotly Figure out."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from .figures import COLORS, Style, add_band, add_line, add_points, new_figure


def format_time(t: float) -> str:
    return "∞" if math.isinf(t) else f"{t:g}"


def prediction_figure(
    *,
    x_test: np.ndarray,
    x_train: np.ndarray,
    y_train: np.ndarray,
    truth: np.ndarray | None,
    truth_label: str,
    theory_mean: np.ndarray,
    theory_sd: np.ndarray | None,
    theory_label: str,
    theory_color: str,
    net_predictions: np.ndarray | None = None,
    net_label: str = "finite network",
    ensemble_mean: np.ndarray | None = None,
    ensemble_sd: np.ndarray | None = None,
    show_nets: bool = True,
    show_bands: bool = True,
    max_nets_drawn: int = 20,
    title: str = "Prediction",
    style: Style | None = None,
) -> go.Figure:
    """Theory mean (+/- 2 sd band), finite networks, ensemble mean (+/- 2 sd), data, truth.

    x_test (m,), theory_* (m,), net_predictions (K, m): predictions at the chosen time."""
    fig = new_figure(title, "x", "f(x)", style=style)
    if show_bands and theory_sd is not None:
        add_band(fig, x_test, theory_mean - 2 * theory_sd, theory_mean + 2 * theory_sd,
                 f"{theory_label} ± 2 sd", color=theory_color,
                 alpha=0.35 if style is not None and style.theme == "dark" else 0.22, style=style)
    if show_bands and ensemble_mean is not None and ensemble_sd is not None:
        add_band(fig, x_test, ensemble_mean - 2 * ensemble_sd, ensemble_mean + 2 * ensemble_sd,
                 "ensemble ± 2 sd", color=COLORS["ensemble"], alpha=0.12, dash="dash",
                 style=style)
    if truth is not None:
        add_line(fig, x_test, truth, truth_label, color=COLORS["truth"], dash="dot", style=style)
    add_line(fig, x_test, theory_mean, f"{theory_label} mean", color=theory_color, style=style)
    if net_predictions is not None and show_nets:
        drawn = net_predictions[:max_nets_drawn]
        for i, pred in enumerate(drawn):
            add_line(fig, x_test, pred, net_label if len(drawn) == 1 else "finite networks",
                     color=COLORS["net"], style=style, width_scale=0.6 if len(drawn) > 1 else 1.0,
                     opacity=0.55 if len(drawn) > 1 else 1.0, showlegend=i == 0,
                     legendgroup="nets", hover=len(drawn) == 1)
    if ensemble_mean is not None:
        add_line(fig, x_test, ensemble_mean, "ensemble mean", color=COLORS["ensemble"],
                 style=style)
    add_points(fig, x_train, y_train, "training points", style=style)
    return fig


def loss_figure(
    *,
    theory_times: np.ndarray,
    theory_train: np.ndarray,
    theory_test: np.ndarray | None,
    theory_label: str,
    net_times: np.ndarray | None = None,
    net_train: np.ndarray | None = None,
    net_test: np.ndarray | None = None,
    net_label: str = "finite network",
    t_marker: float | None = None,
    style: Style | None = None,
) -> go.Figure:
    """Train (solid) and test (dashed) loss against time on a log axis (t > 0 only)."""
    fig = new_figure("Loss during training", "time t = learning rate × steps (log scale)",
                     "loss ½·mean (f − y)²", style=style, log_x=True, log_y=True)

    def positive(t, *ys):
        keep = np.asarray(t) > 0
        return (np.asarray(t)[keep], *[None if y is None else np.asarray(y)[keep] for y in ys])

    tt, tr, te = positive(theory_times, theory_train, theory_test)
    add_line(fig, tt, tr, f"{theory_label}: train", color=COLORS["ntk"], style=style)
    if te is not None:
        add_line(fig, tt, te, f"{theory_label}: test", color=COLORS["ntk"], dash="dash",
                 style=style)
    if net_times is not None and net_train is not None:
        nt, ntr, nte = positive(net_times, net_train, net_test)
        add_line(fig, nt, ntr, f"{net_label}: train", color=COLORS["net"], style=style)
        if nte is not None:
            add_line(fig, nt, nte, f"{net_label}: test", color=COLORS["net"], dash="dash",
                     style=style)
    if t_marker is not None and math.isfinite(t_marker) and t_marker > 0:
        fig.add_vline(x=t_marker, line=dict(color=COLORS["truth"], dash="dot"),
                      annotation_text=f"t = {format_time(t_marker)}",
                      annotation_position="top left")
    return fig
