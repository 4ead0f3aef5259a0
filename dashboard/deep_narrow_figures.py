"""Figures of the "Deep narrow networks" page (seed 000). Builders take arrays, return plotly Figures."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from dashboard.figures import COLORS, add_band, add_line, add_points, new_figure, rgba

EDGE_STYLES = {   # weight kind -> (colour, width factor, dash); zero weights are not drawn
    "C_L": ("#d62728", 2.2, None),
    "1": ("#1f77b4", 1.2, None),
    "Gaussian": ("#2ca02c", 0.8, "dash"),
}
BIAS_COLORS = {"0": "#bbbbbb", "C_L": "#d62728", "-C_L": "#9467bd", "Gaussian": "#2ca02c"}
DEPTH_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def _kind(value: float, C_L: float) -> str:
    """Which of the paper's kinds a parameter is (anything not 0, 1, +-C_L counts as Gaussian)."""
    if value == 0:
        return "0"
    if value == C_L:
        return "C_L"
    if value == -C_L:
        return "-C_L"
    if value == 1:
        return "1"
    return "Gaussian"


def _role(i: int, d_in: int) -> str:
    return "copy" if i < d_in else ("random" if i == d_in else "accumulator")


def init_drawing(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], d_in: int, C_L: float,
                 *, style=None) -> go.Figure:
    """Layered drawing of an MLP from its parameters: weights[l] is (n_out, n_in) of layer l + 1.

    Edges by weight kind (C_L, 1, Gaussian; zeros left out), nodes coloured by bias kind; hovering a
    node or an edge's midpoint shows its value."""
    fig = new_figure("The special initialisation: the actual initial weights and biases", "layer", "neuron", style=style)
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    ypos = [np.arange(n)[::-1] - (n - 1) / 2 for n in sizes]
    shown = set()
    for l, w in enumerate(weights):
        for kind, (color, wscale, dash) in EDGE_STYLES.items():
            xs, ys, mx, my, text = [], [], [], [], []
            for i in range(w.shape[0]):
                for j in range(w.shape[1]):
                    if _kind(float(w[i, j]), C_L) != kind:
                        continue
                    xs += [l, l + 1, None]
                    ys += [ypos[l][j], ypos[l + 1][i], None]
                    mx.append(l + 0.5)
                    my.append((ypos[l][j] + ypos[l + 1][i]) / 2)
                    text.append(f"W{l + 1}[{i},{j}] = {w[i, j]:.4g} ({kind})")
            if not xs:
                continue
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"weight {kind}",
                                     line=dict(color=color, width=1.5 * wscale, dash=dash),
                                     hoverinfo="skip", legendgroup=kind, showlegend=kind not in shown))
            fig.add_trace(go.Scatter(x=mx, y=my, mode="markers", marker=dict(size=6, color=rgba(color, 0.35)),
                                     text=text, hovertemplate="%{text}<extra></extra>", showlegend=False,
                                     legendgroup=kind))
            shown.add(kind)
    for l, n in enumerate(sizes):
        if l == 0:
            colors, text = ["#7f7f7f"] * n, [f"input x{j + 1}" for j in range(n)]
        else:
            b = biases[l - 1]
            last = l == len(sizes) - 1
            colors = [BIAS_COLORS[_kind(float(b[i]), C_L)] for i in range(n)]
            text = [f"layer {l}, {'output' if last else _role(i, d_in)} {i}: bias {b[i]:.4g} "
                    f"({_kind(float(b[i]), C_L)})" for i in range(n)]
        fig.add_trace(go.Scatter(x=[l] * n, y=ypos[l], mode="markers", showlegend=False,
                                 marker=dict(size=16, color=colors, line=dict(width=1.5, color="#333333")),
                                 text=text, hovertemplate="%{text}<extra></extra>"))
    for kind, color in BIAS_COLORS.items():
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"bias {kind}",
                                 marker=dict(size=12, color=color, line=dict(width=1.5, color="#333333"))))
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(tickmode="array", tickvals=list(range(len(sizes))),
                     ticktext=["x"] + [f"h{l}" for l in range(1, len(sizes) - 1)] + ["f"])
    fig.update_yaxes(showticklabels=False, zeroline=False)
    return fig


def kernel_vs_angle_figure(angles: np.ndarray, curves: Mapping[int, Mapping[str, np.ndarray]],
                           limit: np.ndarray, *, style=None) -> go.Figure:
    """Theta(x0, x) / (L C_L^2) against the angle: per depth the mean over trials at init (solid) and
    after training (dashed) with the min..max band of the trials at init, and the limit on top."""
    fig = new_figure("Scaled NTK Θ(x₀, x) / (L C_L²) on the quarter circle", "angle of x (rad)",
                     "Θ(x₀, x) / (L C_L²)", style=style)
    for k, (depth, c) in enumerate(sorted(curves.items())):
        color = DEPTH_COLORS[k % len(DEPTH_COLORS)]
        init, trained = np.atleast_2d(c["init"]), np.atleast_2d(c["trained"])
        n = init.shape[0]
        add_band(fig, angles, init.min(0), init.max(0), f"L = {depth:,}: {n} trials at init (range)",
                 color=color, alpha=0.15, style=style, legendgroup=str(depth))
        add_line(fig, angles, init.mean(0), f"L = {depth:,}, init (mean)", color=color, style=style,
                 legendgroup=str(depth))
        add_line(fig, angles, trained.mean(0), f"L = {depth:,}, after training (mean)", color=color,
                 dash="dash", style=style, legendgroup=str(depth))
    add_line(fig, angles, limit, "L → ∞ limit (derived)", color=style.data_color if style else "#111111",
             style=style, width_scale=1.3, dash="dot")
    return fig


def distance_figure(depths: np.ndarray, distance: np.ndarray, fit_line: np.ndarray | None, slope: float | None,
                    trained: Mapping[int, np.ndarray] | None = None, *, style=None) -> go.Figure:
    """Relative distance of the initial scaled kernel to the limit against L (log-log): every trial,
    their mean, the fitted power law; optionally the distance after training at the kernel depths."""
    fig = new_figure("Distance to the L → ∞ limit", "depth L", "‖Θ/(L C_L²) − Θ∞‖ / ‖Θ∞‖",
                     style=style, log_x=True, log_y=True)
    d = np.asarray(depths, float)
    add_points(fig, np.repeat(d, distance.shape[1]), distance.ravel(), "each trial, at init",
               color=rgba(COLORS["ntk"], 0.5), style=style)
    add_line(fig, d, distance.mean(1), "mean at init", color=COLORS["ntk"], style=style)
    if fit_line is not None and slope is not None:
        add_line(fig, d, fit_line, f"fit: ∝ L^{slope:.2f}", color=COLORS["train"], dash="dash", style=style)
    if trained:
        ks = sorted(trained)
        add_points(fig, ks, [float(np.mean(trained[k])) for k in ks], "mean after training",
                   color=COLORS["net"], style=style, symbol="diamond")
    fig.update_layout(hovermode="closest")
    return fig


def training_figure(runs: Sequence[Mapping], metric: str, title: str, y_title: str, *, log_y: bool = False,
                    style=None) -> go.Figure:
    """One curve per run against SGD steps; runs: dicts with init, lr, seed, steps and the metric."""
    fig = new_figure(title, "SGD step", y_title, style=style, log_y=log_y)
    special = [r for r in runs if r["init"] == "special"]
    kaiming = [r for r in runs if r["init"] != "special"]
    for group, base in ((special, COLORS["ntk"]), (kaiming, COLORS["net"])):
        for k, r in enumerate(group):
            shade = 1.0 - 0.55 * k / max(len(group) - 1, 1)
            name = f"{r['init']}, lr {r['lr']:g}" + (f", seed {r['seed']}" if r.get("seed") else "")
            if r.get("diverged"):
                name += " (diverged)"
            add_line(fig, r["steps"], r[metric], name, color=rgba(base, shade), style=style,
                     dash=None if r["init"] == "special" else ("dash" if k % 2 else "dot"))
    return fig
