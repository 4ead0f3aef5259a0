"""Figure builders and the computed summary text of the "Depth" page: arrays in, Figure out.

Nothing here computes the kernels; the numbers come from ntk_core (correlation_map,
correlation_vs_depth, normalized_kernels_vs_depth). Long per-layer curves are thinned to
log-spaced depths for drawing (`log_thin`), which on log axes looks the same.
"""
from __future__ import annotations


import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures import (COLORS, Style, add_line, add_points, apply_style, current_style, fmt_number,
                      new_figure)

FLOAT_FLOOR = 1e-16  # quantities below this are at float64 rounding and drawn at the floor
START_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf")
PHASE_TEXT = {
    "ordered": "ordered (slope at ρ = 1 below 1: ρ → 1 exponentially)",
    "critical": "critical (slope at ρ = 1 equal to 1: ρ → 1 polynomially, if at all)",
    "chaotic": "chaotic (slope at ρ = 1 above 1: ρ → a fixed point below 1)",
    "linear": "linear (the variance vanishes, layers act linearly and ρ freezes)",
}


def log_thin(n_layers: int, n_points: int = 400) -> np.ndarray:
    """Indices 0..n_layers - 1: all of the first 100, then ~n_points log-spaced, and the last."""
    head = np.arange(min(n_layers, 100))
    if n_layers <= 100:
        return head
    tail = np.unique(np.round(np.geomspace(100, n_layers - 1, n_points)).astype(int))
    return np.unique(np.concatenate([head, tail]))


def _floor(y):
    return np.maximum(np.asarray(y, dtype=float), FLOAT_FLOOR)


# ---------------------------------------------------------------------------------------------
# Correlation map and cobweb
# ---------------------------------------------------------------------------------------------
def correlation_map_figure(rho, rho_next, fixed_points, stability, cobweb_x, cobweb_y, *,
                           all_fixed: bool = False, style: Style | None = None) -> go.Figure:
    """rho -> rho' with the diagonal, the fixed points (filled: stable, open: unstable, half:
    marginal) and the cobweb of the iteration."""
    style = style or current_style()
    fig = new_figure("Correlation map ρ → ρ′ (one layer)", "ρ (input correlation)",
                     "ρ′ (output correlation)", style=style)
    add_line(fig, [-1, 1], [-1, 1], "diagonal ρ′ = ρ", color=COLORS["truth"], dash="dot",
             style=style, width_scale=0.7)
    add_line(fig, rho, rho_next, "map ρ → ρ′", color=COLORS["nngp"], style=style)
    add_line(fig, cobweb_x, cobweb_y, "cobweb from ρ₀", color=COLORS["net"], style=style,
             width_scale=0.6)
    if not all_fixed:
        symbols = {"stable": "circle", "unstable": "circle-open", "marginal": "circle-open-dot"}
        for kind in ("stable", "unstable", "marginal"):
            sel = np.asarray(stability) == kind
            if np.any(sel):
                fp = np.asarray(fixed_points)[sel]
                add_points(fig, fp, fp, f"{kind} fixed point", color=COLORS["train"],
                           style=style, symbol=symbols[kind])
    fig.update_xaxes(range=[-1.02, 1.02], constrain="domain")  # the square shrinks, the range stays ρ ∈ [-1, 1]
    fig.update_yaxes(range=[-1.02, 1.02], scaleanchor="x", scaleratio=1)
    fig.update_layout(hovermode="closest")
    if fig.layout.yaxis.type == "log":
        fig.update_yaxes(exponentformat="power")  # 10^-15, not SI prefixes like "1f"
    return fig


# ---------------------------------------------------------------------------------------------
# rho^(L) against depth
# ---------------------------------------------------------------------------------------------
def rho_vs_depth_figure(depths, rho0, rho, rate=None, rate_label: str = "",
                        *, style: Style | None = None) -> go.Figure:
    """1 - rho^(L) against L on log-log axes, one line per starting correlation rho0 (rows of
    `rho`), the predicted rate dashed. Values below 1e-16 are at float64 rounding (floored)."""
    style = style or current_style()
    fig = new_figure("How fast correlations approach 1: 1 − ρ⁽ᴸ⁾ against depth",
                     "depth L (hidden layers)", "1 − ρ⁽ᴸ⁾", style=style, log_x=True, log_y=True)
    depths = np.asarray(depths)
    idx = log_thin(len(depths))
    idx = idx[depths[idx] >= 1]
    for i, r0 in enumerate(np.asarray(rho0)):
        add_line(fig, depths[idx], _floor(1 - np.asarray(rho)[i, idx]), f"ρ₀ = {r0:g}",
                 color=START_COLORS[i % len(START_COLORS)], style=style)
    if rate is not None:
        shown = idx[np.asarray(rate)[idx] <= 1.0]  # the asymptote means nothing while C/L^2 > 1
        add_line(fig, depths[shown], np.asarray(rate)[shown], rate_label or "predicted rate",
                 color=style.data_color, dash="dash", style=style)
    fig.update_layout(hovermode="closest")
    if fig.layout.yaxis.type == "log":
        fig.update_yaxes(exponentformat="power")  # 10^-15, not SI prefixes like "1f"
    return fig


# ---------------------------------------------------------------------------------------------
# Heatmaps of the normalized kernels
# ---------------------------------------------------------------------------------------------
def kernel_heatmaps(ntk, nngp, depth: int, *, style: Style | None = None) -> go.Figure:
    """Theta_bar^(L) and rho^(L) over the training points side by side, on one colour scale
    ending at 1 (the matrix of ones is uniformly the top colour)."""
    style = style or current_style()
    ntk, nngp = np.asarray(ntk), np.asarray(nngp)
    low = -1.0 if min(ntk.min(), nngp.min()) < 0 else 0.0
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08, subplot_titles=(
        f"normalized NTK Θ̄⁽ᴸ⁾, L = {depth}", f"normalized NNGP ρ⁽ᴸ⁾, L = {depth}"))
    for col, (mat, name) in enumerate(((ntk, "Θ̄"), (nngp, "ρ")), start=1):
        fig.add_trace(go.Heatmap(
            z=mat, zmin=low, zmax=1.0, colorscale="Viridis", showscale=col == 2,
            colorbar=dict(title=dict(text="entry")),
            hovertemplate=f"i = %{{y}}, j = %{{x}}: {name} = %{{z:.6f}}<extra></extra>"),
            row=1, col=col)
        fig.update_xaxes(title_text="point j", row=1, col=col)
        fig.update_yaxes(title_text="point i", autorange="reversed", scaleanchor=f"x{col}",
                         row=1, col=col)
    return apply_style(fig, style)


# ---------------------------------------------------------------------------------------------
# Distance to the matrix of ones, predictor, condition number
# ---------------------------------------------------------------------------------------------
def distance_to_ones_figure(depths, ntk_max, ntk_mean, nngp_max, nngp_mean, ntk_limit_distance,
                            *, depth_marker: int | None = None,
                            style: Style | None = None) -> go.Figure:
    """max / mean off-diagonal |1 - entry| against depth (log axes) for the normalized NTK and
    NNGP, and the distance of the computed NTK limit to ones (horizontal line)."""
    style = style or current_style()
    fig = new_figure("Distance of the normalized kernels to the matrix of ones",
                     "depth L (hidden layers)", "off-diagonal |1 − entry|", style=style,
                     log_x=True, log_y=True)
    depths = np.asarray(depths)
    idx = log_thin(len(depths))
    idx = idx[depths[idx] >= 1]
    x = depths[idx]
    add_line(fig, x, _floor(np.asarray(ntk_max)[idx]), "NTK Θ̄: max", color=COLORS["ntk"],
             style=style)
    add_line(fig, x, _floor(np.asarray(ntk_mean)[idx]), "NTK Θ̄: mean", color=COLORS["ntk"],
             dash="dash", style=style)
    add_line(fig, x, _floor(np.asarray(nngp_max)[idx]), "NNGP ρ: max", color=COLORS["nngp"],
             style=style)
    add_line(fig, x, _floor(np.asarray(nngp_mean)[idx]), "NNGP ρ: mean", color=COLORS["nngp"],
             dash="dash", style=style)
    if ntk_limit_distance is not None and ntk_limit_distance > FLOAT_FLOOR:
        add_line(fig, [x[0], x[-1]], [ntk_limit_distance] * 2,
                 f"NTK limit: mean |1 − Θ̄∞| = {ntk_limit_distance:.4g}", color=COLORS["net"],
                 dash="dot", style=style)
    if depth_marker is not None and depth_marker >= 1:
        fig.add_vline(x=depth_marker, line=dict(color=COLORS["truth"], width=1, dash="dot"))
    fig.update_layout(hovermode="closest")
    if fig.layout.yaxis.type == "log":
        fig.update_yaxes(exponentformat="power")  # 10^-15, not SI prefixes like "1f"
    return fig


def predictor_change_figure(stored_depths, change, to_final, ntk_mean_dist, *,
                            depth_marker: int | None = None,
                            style: Style | None = None) -> go.Figure:
    """How much the predictor Theta_bar(x, X) Theta_bar(X, X)^-1 moves from L to L + 1 and how
    far it is from its value at the largest depth, next to the NTK's mean distance to ones."""
    style = style or current_style()
    fig = new_figure("The predictor settles, the kernel keeps moving",
                     "depth L (hidden layers)", "size (log scale)", style=style, log_x=True,
                     log_y=True)
    d = np.asarray(stored_depths)
    sel = d >= 1
    add_line(fig, d[sel], _floor(np.asarray(change)[sel]), "predictor change L → L+1 (max)",
             color=COLORS["ensemble"], style=style)
    before = sel & (d < d.max())  # at L_max itself the difference is 0 by definition
    add_line(fig, d[before], _floor(np.asarray(to_final)[before]),
             "predictor − predictor at L_max (max)", color=COLORS["ensemble"], dash="dash",
             style=style)
    add_line(fig, d[sel], _floor(np.asarray(ntk_mean_dist)[d[sel]]),
             "NTK Θ̄: mean distance to ones", color=COLORS["ntk"], style=style)
    if depth_marker is not None and depth_marker >= 1:
        fig.add_vline(x=depth_marker, line=dict(color=COLORS["truth"], width=1, dash="dot"))
    fig.update_layout(hovermode="closest")
    if fig.layout.yaxis.type == "log":
        fig.update_yaxes(exponentformat="power")  # 10^-15, not SI prefixes like "1f"
    return fig


def predictor_vector_figure(weights, weights_final, depth: int, final_depth: int, *,
                            style: Style | None = None) -> go.Figure:
    """The predictor vector kappa_x kappa^-1 (one entry per training point) at the chosen depth
    and at the largest depth."""
    style = style or current_style()
    fig = new_figure("Predictor Θ̄(x, X) Θ̄(X, X)⁻¹ for one test point x",
                     "training point j", "weight on y_j", style=style)
    j = np.arange(len(weights))
    fig.add_trace(go.Bar(x=j, y=np.asarray(weights), name=f"L = {depth}",
                         marker_color=COLORS["ensemble"]))
    fig.add_trace(go.Scatter(x=j, y=np.asarray(weights_final), name=f"L = {final_depth}",
                             mode="markers", marker=dict(color=COLORS["net"], size=style.marker_size,
                                                         symbol="diamond")))
    fig.update_layout(hovermode="x unified", bargap=0.15)
    return fig


def condition_figure(stored_depths, condition, *, depth_marker: int | None = None,
                     style: Style | None = None) -> go.Figure:
    """Condition number of Theta(X, X) against depth; numerically singular depths (inf) are
    marked at the top of the axis."""
    style = style or current_style()
    fig = new_figure("Condition number of Θ⁽ᴸ⁾(X, X)", "depth L (hidden layers)",
                     "κ = λ_max / λ_min", style=style, log_x=True, log_y=True)
    d = np.asarray(stored_depths)
    c = np.asarray(condition, dtype=float)
    ok = (d >= 1) & np.isfinite(c)
    add_line(fig, d[ok], c[ok], "condition number", color=COLORS["ntk"], style=style)
    bad = (d >= 1) & ~np.isfinite(c)
    if np.any(bad):
        top = float(np.max(c[ok])) * 10 if np.any(ok) else 1e16
        add_points(fig, d[bad], np.full(bad.sum(), top), "numerically singular",
                   color=COLORS["train"], style=style, symbol="x")
    if depth_marker is not None and depth_marker >= 1:
        fig.add_vline(x=depth_marker, line=dict(color=COLORS["truth"], width=1, dash="dot"))
    fig.update_layout(hovermode="closest")
    if fig.layout.yaxis.type == "log":
        fig.update_yaxes(exponentformat="power")  # 10^-15, not SI prefixes like "1f"
    return fig


# ---------------------------------------------------------------------------------------------
# The honest text box
# ---------------------------------------------------------------------------------------------
def _fmt(v: float, digits: int = 4) -> str:
    """`digits` significant digits, scientific below 10⁻³ (never "0.0000" for a small number)."""
    return fmt_number(v, digits)


def summary_markdown(*, activation: str, sigma_w: float, sigma_b: float, data_label: str,
                     max_depth: int, phase: str, chi_1: float, slope_at_one: float,
                     variance_status: str, ntk_now: tuple, ntk_limit: tuple, nngp_limit: tuple,
                     limit_depths, limit_change: float, settling_depth, dist_at_settling,
                     dist_final: float, closeness: float = 1e-2) -> str:
    """What seed 002 claims and what the computed numbers on screen say (all inputs computed).

    ntk_now, ntk_limit, nngp_limit: (min, mean, max) of off-diagonal entries."""
    claim = ("**Claim (seed 002, St-Arnaud et al.):** for ReLU networks on the sphere the normalized "
             "NTK Θ̄⁽ᴸ⁾ tends to the matrix of ones as the depth L grows, slowly, while the kernel "
             "predictor Θ̄(x, X) Θ̄(X, X)⁻¹ settles at small depth.")
    setting = (f"**Computed here** ({activation}, σ_w = {sigma_w:g}, σ_b = {sigma_b:g}, "
               f"{data_label}): phase **{phase}** (slope of the correlation map at ρ = 1: "
               f"{_fmt(slope_at_one)}; χ₁ = σ_w² E[φ′(u)²] = {_fmt(chi_1)}; variance: "
               f"{variance_status}).")
    lo, mean, hi = ntk_now
    now = (f"At L = {max_depth:,} the off-diagonal entries of Θ̄ lie in [{_fmt(lo)}, {_fmt(hi)}] "
           f"(mean {_fmt(mean)}).")
    l_lo, l_mean, l_hi = ntk_limit
    r_lo, r_mean, r_hi = nngp_limit
    a, b, c = (int(t) for t in limit_depths)
    limit = (f"The recursion approaches **{_fmt(l_mean)}** off the diagonal for the NTK "
             f"(entries {_fmt(l_lo)} to {_fmt(l_hi)}; extrapolated from L = {a:,}, {b:,}, {c:,}; "
             f"entries still moved by up to {_fmt(limit_change)} between L = {b:,} and {c:,}) "
             f"and **{_fmt(r_mean)}** for the NNGP correlation ρ.")
    if abs(1 - l_lo) < closeness and abs(1 - l_hi) < closeness:
        verdict = "This agrees with the claim: Θ̄ approaches the matrix of ones."
    else:
        verdict = (f"This does **not** agree with the claim for these settings: Θ̄ approaches "
                   f"≈ {_fmt(l_mean)} off the diagonal, not 1")
        verdict += (f", although ρ itself approaches {_fmt(r_mean)}." if abs(1 - r_mean) < closeness
                    else f", and ρ approaches {_fmt(r_mean)}.")
    if settling_depth is None:
        pred = ("The predictor still changes by more than 10⁻³ per layer at the largest depth "
                "computed.")
    else:
        pred = (f"The predictor changes by less than 10⁻³ per layer from L ≈ {settling_depth:,} on, "
                f"where the NTK's mean distance to ones is {_fmt(dist_at_settling)} "
                f"({_fmt(dist_final)} at L = {max_depth:,}).")
    return "\n\n".join([claim, setting, now + " " + limit + " " + verdict, pred])
