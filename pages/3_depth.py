"""Depth: correlation maps and the normalized infinite-width kernels against the matrix of ones
(St-Arnaud, Carvalho, Farnadi; seed 002)."""
import numpy as np
import streamlit as st

import ntk_core as nc
from dashboard import controls, depth_cache, jobs
from dashboard import depth_figures as dfig
from dashboard.figures import chart, columns, current_style, fmt_number, intro, projector_later

MAX_DEPTH_OPTIONS = [10, 30, 100, 300, 1000, 3000, 10_000]
DATA_LABELS = {"sphere": "n points uniform on the sphere S^(d−1)",
               "digits": "scikit-learn digits (8×8), each scaled to norm 1"}
SOURCE_DEPTH = ("seed 002 (St-Arnaud, Carvalho, Farnadi, Understanding the role of depth in the "
                "NTK), Definitions 3-4; recursion of Jacot et al. 2018 / Arora et al. 2019 in the "
                "NTK parameterization (as Neural Tangents).")
SOURCE_MAP = ("Poole et al. 2016 (Exponential expressivity in deep neural networks through "
              "transient chaos); Schoenholz et al. 2017 (Deep information propagation).")

D = depth_cache.PAGE_DEFAULTS
shared = controls.shared()
style = current_style()

st.title("Depth: does the normalized NTK approach the matrix of ones?")
intro(
    "Seed 002 says that as a ReLU network gets deeper its normalized infinite-width NTK "
    "Θ̄⁽ᴸ⁾ approaches the matrix of ones, slowly, while the kernel predictor settles early. "
    "This page iterates the exact layer recursion up to 10,000 hidden layers for any activation "
    "and bias (σ_w, σ_b and the activation are the network controls on the left) and shows what "
    "the numbers do."
)

# ---- page controls -------------------------------------------------------------------------
side = st.sidebar
side.markdown("**Depth page**")
data = controls.url_selectbox("d_data", "Data set", list(DATA_LABELS), D["d_data"],
                              format_func=DATA_LABELS.get,
                              help="Inputs of the kernels: random points on the unit sphere or "
                                   "real images (normalised).")
n_points = controls.url_slider("d_n", "Training points n", 3, 100, D["d_n"],
                               help="Plus one test point for the predictor. 3..100.")
dim = 64
if data == "sphere":
    dim = controls.url_slider("d_dim", "Input dimension d", 2, 64, D["d_dim"],
                              help="Points uniform on the unit sphere in R^d.")
max_depth = controls.url_select_slider("L_max", "Largest depth L_max", MAX_DEPTH_OPTIONS, D["L_max"],
                                       format_func=lambda v: f"{v:,}",
                                       help="The recursion is iterated for every L = 1 … L_max.")
rho0 = controls.url_slider("rho0", "Cobweb start ρ₀", -1.0, 1.0, D["rho0"], step=0.01,
                           help="Starting correlation of the cobweb drawn on the correlation map.")

act, sw, sb = shared.activation, float(shared.sigma_w), float(shared.sigma_b)
data_label = (f"{n_points} points on S^{dim - 1}" if data == "sphere"
              else f"{n_points} digits on S^63")

# ---- computation (cached) ------------------------------------------------------------------
cmap = curves = kern = None
try:
    cmap = depth_cache.correlation_map(act, sw, sb, dim, float(rho0))
    done = jobs.run(depth_cache.depth_jobs({"d_data": data, "d_n": n_points, "d_dim": dim,
                                            "L_max": max_depth, "seed": shared.seed,
                                            "activation": act, "sigma_w": sw, "sigma_b": sb}),
                    label=f"the layer recursion to depth {int(max_depth):,}", key="depth")
    if done.complete:
        curves = depth_cache.curves_result(done.results[0])
        kern = depth_cache.kernels_result(done.results[1])
except (ValueError, FloatingPointError) as err:
    st.error(f"The depth recursion could not be computed for these settings: {err}")
except Exception as err:  # noqa: BLE001 - a message in the page, never a traceback
    st.error(f"The depth recursion failed ({type(err).__name__}: {err}).")

if kern is not None and cmap is not None and curves is not None:
    depths_avail = [int(d) for d in kern.stored_depths if d >= 1]
    default_depth = min(depths_avail, key=lambda d: abs(d - 10))
    settle = kern.settling_depth(1e-3)

    # ---- the honest text box (on a projector below the first charts, which then fit the screen)
    summary_box = projector_later(border=True)
    left, right = columns(2)
    with summary_box():
        st.markdown(dfig.summary_markdown(
            activation=act, sigma_w=sw, sigma_b=sb, data_label=data_label,
            max_depth=int(max_depth), phase=cmap.phase, chi_1=cmap.chi_1,
            slope_at_one=cmap.slope_at_one, variance_status=cmap.variance_status,
            ntk_now=kern.offdiag(kern.ntk[-1]), ntk_limit=kern.offdiag(kern.ntk_limit),
            nngp_limit=kern.offdiag(kern.nngp_limit), limit_depths=kern.limit_depths,
            limit_change=kern.ntk_limit_change, settling_depth=settle,
            dist_at_settling=None if settle is None else float(kern.ntk_mean_dist[settle]),
            dist_final=float(kern.ntk_mean_dist[-1])))

    # ---- correlation map and rho^(L) -------------------------------------------------------
    fig = dfig.correlation_map_figure(cmap.rho, cmap.rho_next, cmap.fixed_points, cmap.stability,
                                      cmap.cobweb_x, cmap.cobweb_y, all_fixed=cmap.all_fixed,
                                      style=style)
    fixed = ("every ρ is fixed (linear map)" if cmap.all_fixed else
             ", ".join(f"{fmt_number(f, 4)} ({s})" for f, s in zip(cmap.fixed_points, cmap.stability)))
    chart(fig, {"rho": cmap.rho, "rho_next": cmap.rho_next, "slope": cmap.slope,
                "cobweb_x": cmap.cobweb_x, "cobweb_y": cmap.cobweb_y},
          [r"\rho' = \frac{\sigma_w^2\,\mathbb{E}[\phi(u)\phi(v)] + \sigma_b^2}{q'}",
           r"q' = \sigma_w^2\,\mathbb{E}[\phi(u)^2] + \sigma_b^2",
           r"(u, v) \sim \mathcal{N}\!\left(0, q\begin{pmatrix}1 & \rho\\ \rho & 1\end{pmatrix}\right)",
           r"\chi_1 = \sigma_w^2\,\mathbb{E}[\phi'(u)^2]",
           r"\frac{d\rho'}{d\rho}\Big|_{\rho=1} = \frac{\sigma_w^2\, q\,\mathbb{E}[\phi'(u)^2]}{q'}"],
          SOURCE_MAP, "depth_correlation_map", where=left,
          caption=(f"Phase: {dfig.PHASE_TEXT[cmap.phase]}. Map taken at variance "
                   f"q = {fmt_number(cmap.variance, 4)} ({cmap.variance_status}); "
                   f"χ₁ = {fmt_number(cmap.chi_1, 4)}, slope at ρ = 1: "
                   f"{fmt_number(cmap.slope_at_one, 6)}. Fixed points: {fixed}."))

    rate = nc.predicted_rate(act, sb, curves.depths)
    rate_label = ("9π²/(2L²) (seed 002)" if act == "relu" else "C/L² (derived)")
    fig = dfig.rho_vs_depth_figure(curves.depths, curves.rho0, curves.rho, rate, rate_label,
                                   style=style)
    thin = dfig.log_thin(len(curves.depths))
    table = {"L": curves.depths[thin]}
    table.update({f"rho0={r:g}": curves.rho[i, thin] for i, r in enumerate(curves.rho0)})
    table.update({f"ntk_bar rho0={r:g}": curves.ntk[i, thin] for i, r in enumerate(curves.rho0)})
    if rate is not None:
        table["predicted 1-rho"] = rate[thin]
    chart(fig, table,
          [r"\rho^{(L)} = \frac{\Sigma^{(L)}_{xx'}}{\sqrt{\Sigma^{(L)}_{xx}\,\Sigma^{(L)}_{x'x'}}}",
           r"\text{ReLU},\ \sigma_b = 0:",
           r"1-\rho^{(L)} \sim \frac{9\pi^2}{2L^2}"],
          SOURCE_DEPTH, "depth_rho_vs_L", where=right,
          caption=("Inputs: unit vectors in R^d with cosine ρ₀. Values below 10⁻¹⁶ are float64 "
                   "rounding and drawn at 10⁻¹⁶."
                   + ("" if rate is not None else " No closed-form rate is known for this "
                      "activation and bias.")))

    # ---- heatmaps at the chosen depth ------------------------------------------------------
    depth = controls.url_select_slider("L", "Depth L for the heatmaps and the predictor",
                                       depths_avail, default_depth,
                                       format_func=lambda v: f"{v:,}", where=st,
                                       help="The depth shown by the heatmaps, the predictor bars "
                                            "and the dotted markers (depths computed up to L_max).")
    i_depth = kern.stored_index(depth)
    n = kern.n_train
    fig = dfig.kernel_heatmaps(kern.ntk[i_depth][:n, :n], kern.nngp[i_depth][:n, :n],
                               int(kern.stored_depths[i_depth]), style=style)
    ntk_lo, ntk_mean, ntk_hi = kern.offdiag(kern.ntk[i_depth])
    chart(fig, {"i": np.repeat(np.arange(n), n), "j": np.tile(np.arange(n), n),
                "ntk_bar": kern.ntk[i_depth][:n, :n].ravel(),
                "rho": kern.nngp[i_depth][:n, :n].ravel()},
          [r"\bar\Theta^{(L)}(x,x') = \frac{\Theta^{(L)}(x,x')}{\sqrt{\Theta^{(L)}(x,x)\,"
           r"\Theta^{(L)}(x',x')}}",
           r"\Theta^{(l)} = \Sigma^{(l)} + \sigma_w^2\,\mathbb{E}[\phi'(u)\phi'(v)]\,\Theta^{(l-1)}"],
          SOURCE_DEPTH, "depth_heatmaps",
          caption=(f"{data_label}. Off-diagonal Θ̄ at L = {int(kern.stored_depths[i_depth]):,}: "
                   f"{fmt_number(ntk_lo, 4)} … {fmt_number(ntk_hi, 4)} (mean {fmt_number(ntk_mean, 4)}). The matrix of ones would "
                   "be uniformly yellow."))

    # ---- distance to ones and the predictor ------------------------------------------------
    lim_lo, lim_mean, lim_hi = kern.offdiag(kern.ntk_limit)
    left, right = columns(2)
    fig = dfig.distance_to_ones_figure(kern.depths, kern.ntk_max_dist, kern.ntk_mean_dist,
                                       kern.nngp_max_dist, kern.nngp_mean_dist,
                                       abs(1 - lim_mean), depth_marker=depth, style=style)
    thin = dfig.log_thin(len(kern.depths))
    chart(fig, {"L": kern.depths[thin], "ntk_max": kern.ntk_max_dist[thin],
                "ntk_mean": kern.ntk_mean_dist[thin], "nngp_max": kern.nngp_max_dist[thin],
                "nngp_mean": kern.nngp_mean_dist[thin]},
          [r"\max_{i\neq j} \big|1 - \bar\Theta^{(L)}(x_i,x_j)\big|",
           r"\operatorname{mean}_{i\neq j} \big|1 - \bar\Theta^{(L)}(x_i,x_j)\big|"],
          SOURCE_DEPTH, "depth_distance_to_ones", where=left,
          caption=(f"Computed off-diagonal limit of Θ̄: {fmt_number(lim_mean, 6)} (entries "
                   f"{fmt_number(lim_lo, 6)} … {fmt_number(lim_hi, 6)}); of ρ: "
                   f"{fmt_number(kern.offdiag(kern.nngp_limit)[1], 6)}."))
    fig = dfig.predictor_change_figure(kern.stored_depths, kern.predictor_change,
                                       kern.predictor_to_final, kern.ntk_mean_dist,
                                       depth_marker=depth, style=style)
    chart(fig, {"L": kern.stored_depths, "predictor_change": kern.predictor_change,
                "predictor_to_final": kern.predictor_to_final,
                "ntk_mean_dist": kern.ntk_mean_dist[kern.stored_depths]},
          [r"\kappa^{(L)}_x = \bar\Theta^{(L)}(x, X)\,\bar\Theta^{(L)}(X, X)^{-1}",
           r"\big\|\kappa^{(L+1)}_x - \kappa^{(L)}_x\big\|_\infty"],
          SOURCE_DEPTH + " Figure 1.", "depth_predictor_change", where=right,
          caption=("Settles (change < 10⁻³ per layer) from L ≈ " + f"{settle:,}." if settle
                   else "The predictor has not settled to 10⁻³ per layer by L_max."))

    left, right = columns(2)
    weights = kern.predictor[i_depth, 0]
    fig = dfig.predictor_vector_figure(weights, kern.predictor[-1, 0],
                                       int(kern.stored_depths[i_depth]), int(max_depth),
                                       style=style)
    chart(fig, {"j": np.arange(n), f"weight_L{int(kern.stored_depths[i_depth])}": weights,
                f"weight_L{int(max_depth)}": kern.predictor[-1, 0]},
          r"f_\infty(x) = \bar\Theta(x, X)\,\bar\Theta(X, X)^{-1} Y",
          SOURCE_DEPTH, "depth_predictor_vector", where=left,
          caption="Weights the infinite-width predictor puts on each training label for the "
                  "test point (on the sphere Θ and Θ̄ give the same predictor).")
    fig = dfig.condition_figure(kern.stored_depths, kern.condition, depth_marker=depth,
                                style=style)
    chart(fig, {"L": kern.stored_depths, "condition": kern.condition},
          r"\kappa\big(\Theta^{(L)}(X,X)\big) = \lambda_{\max}/\lambda_{\min}",
          SOURCE_DEPTH, "depth_condition", where=right,
          caption="Closed-form solution needs Θ(X, X) invertible (seed 002). Depth 0 with d "
                  "smaller than n is singular (rank d); 'numerically singular' marks λ_min at "
                  "rounding level.")
