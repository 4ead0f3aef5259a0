"""Lazy training: a wide network trains like its linearisation (seed 003, section 2)."""
import numpy as np
import streamlit as st

import ntk_core as nc
from dashboard import controls
from dashboard import lazy_figures as lfig
from dashboard import lazy_jobs as lj
from dashboard.figures import COLORS, chart, current_style, intro
from dashboard.jobs import run

D = lj.DEFAULTS
DATA_LABELS = {"cubic": "y = x³ on [0, 1] (seed 003)", "sin": "y = sin x on [−π, π] (cookbook)",
               "upload": "your CSV (columns x, y)"}
PARAM_LABELS = {"ntk": "NTK (w_std/√fan-in in the forward pass)",
                "standard": "standard (w_std/√fan-in in the initialisation)"}
LR_MODES = {"multiple": "multiple of 2/λ_max", "absolute": "absolute"}
SOURCE_LIN = ("Seed 003, section 2.2 (after Lee et al. 2019, Wide neural networks of any depth evolve "
              "as linear models under gradient descent; Chizat, Oyallon, Bach 2019, On lazy training).")
SOURCE_CAT = ("Lewkowycz, Bahri, Dyer, Sohl-Dickstein, Gur-Ari 2020, The large learning rate phase of "
              "deep learning: the catapult mechanism.")

shared = controls.shared()
style = current_style()

st.title("Lazy training")
intro(
    "A wide network trained by gradient descent stays close to its **linearisation** around the "
    "initial parameters θ₀: its parameters barely move, its kernel barely changes, and it behaves "
    "like a linear model whose dynamics the NTK at initialisation fixes. Below, the network and its "
    "linearisation are trained side by side from the same θ₀ on the same data, and the distance "
    "between them, the movement of parameters and kernel, and the inverse relative scale κ_f are "
    "measured against the width. Laziness depends on the parameterization and on the learning-rate "
    "scale, not on the width alone.\n\n"
    r"$$f^{\mathrm{lin}}(x;\theta) = f(x;\theta_0) + \nabla_\theta f(x;\theta_0)\,(\theta-\theta_0)$$"
    "\n\n"
    r"$$\mathcal{L} = \tfrac{1}{2n}\textstyle\sum_i (f(x_i)-y_i)^2,\qquad t = \eta\cdot\text{steps}$$")

# ---- controls ----------------------------------------------------------------------------------
side = st.sidebar
side.markdown("**Data**")
data_name = controls.url_selectbox("lz_data", "Data set", list(DATA_LABELS), D["lz_data"],
                                   format_func=DATA_LABELS.get, help="The finite page's data sets.")
n_train = controls.url_slider("lz_ntrain", "Training points", 1, 50, D["lz_ntrain"],
                              help="Drawn uniformly from the domain, 1..50.")
noise = controls.url_slider("lz_noise", "Noise sd", 0.0, 0.5, D["lz_noise"], step=0.005, format="%.3f",
                            help="y = f(x) + noise · ε, ε ~ N(0, 1) drawn once from the seed.")
points = None
if data_name == "upload":
    up = side.file_uploader(f"CSV with a header x,y (at most {nc.MAX_CSV_ROWS:,} rows)", type=["csv"],
                            key="lz_upload", help="The file is not part of the shareable link.")
    if up is None:
        st.info("Upload a CSV with columns **x** and **y** in the sidebar; until then y = x³ is used.")
    else:
        try:
            points = nc.load_xy_csv(up.getvalue())
            if len(points[0]) > 50:
                raise ValueError(f"{len(points[0])} rows; this page trains on at most 50 points")
        except ValueError as err:
            st.error(f"Could not use {up.name}: {err}. The page uses y = x³ instead.")
            points = None
side.markdown("**Training** (width of sections 1 and 3: the network width above)")
param = controls.url_radio("lz_param", "Parameterization", list(PARAM_LABELS), D["lz_param"],
                           format_func=PARAM_LABELS.get,
                           help="NTK: W ~ N(0,1) scaled by w_std/√fan-in in the forward pass. Standard: "
                                "W ~ N(0, w_std²/fan-in); same function at initialisation, but the NTK "
                                "grows with the width.")
lr_mode = controls.url_radio("lz_lrmode", "Learning rate given as", list(LR_MODES), D["lz_lrmode"],
                             format_func=LR_MODES.get, horizontal=True,
                             help="A multiple of 2/λ_max follows each network's own stability boundary; "
                                  "an absolute lr is the same for every width.")
lr_value, mult_value = D["lz_lr"], D["lz_mult"]
if lr_mode == "absolute":
    lr_value = controls.url_number("lz_lr", "Learning rate η", 0.0001, 100.0, D["lz_lr"], step=0.05, format="%.4f",
                             help="Full-batch GD step size on ½·mean squared error.")
    controls.declare("lz_mult")
else:
    mult_value = controls.url_slider("lz_mult", "η as a multiple of 2/λ_max", 0.05, 0.99, D["lz_mult"], step=0.01,
                        help="Below 1 gradient descent on the linearised model converges.")
    controls.declare("lz_lr")
steps = controls.url_number("lz_steps", "GD steps (sections 1 and 2)", 10, 20_000, D["lz_steps"], step=100,
                            help="10..20,000 full-batch steps.")
side.markdown("**Width sweep (section 2)**")
w_min = controls.url_select_slider("lz_wmin", "Smallest width", lj.SWEEP_WIDTHS[:-1], D["lz_wmin"],
                                   format_func=lambda v: f"{v:,}", help="The sweep multiplies by 4.")
w_max = controls.url_select_slider("lz_wmax", "Largest width", lj.SWEEP_WIDTHS[1:], D["lz_wmax"],
                                   format_func=lambda v: f"{v:,}",
                                   help=f"Networks above {lj.MAX_SWEEP_PARAMS:,} parameters are left out.")
n_seeds = controls.url_slider("lz_seeds", "Seeds per width", 1, 10, D["lz_seeds"],
                              help="Initialisations per width (seed, seed+1, ...).")
side.markdown("**Large learning rates (section 3)**")
m1 = controls.url_slider("lz_m1", "η₁ / (2/λ_max)", 0.05, 5.0, D["lz_m1"], step=0.05,
                         help="Below 1: the lazy phase.")
m2 = controls.url_slider("lz_m2", "η₂ / (2/λ_max)", 0.05, 5.0, D["lz_m2"], step=0.05,
                         help="Between 1 and about 2 (= 4/λ_max): the catapult phase of Lewkowycz et al.")
m3 = controls.url_slider("lz_m3", "η₃ / (2/λ_max)", 0.05, 5.0, D["lz_m3"], step=0.05,
                         help="Above about 2: divergence.")
c_steps = controls.url_number("lz_csteps", "GD steps (section 3)", 10, 5000, D["lz_csteps"], step=50,
                              help="λ_max is recorded at every step up to 1,000 steps.")

values = {"depth": shared.depth, "width": shared.width, "sigma_w": shared.sigma_w, "sigma_b": shared.sigma_b,
          "activation": shared.activation, "seed": shared.seed, "lz_data": data_name,
          "lz_ntrain": n_train, "lz_noise": noise, "lz_param": param, "lz_lrmode": lr_mode,
          "lz_lr": lr_value, "lz_mult": mult_value, "lz_steps": int(steps),
          "lz_wmin": w_min, "lz_wmax": w_max, "lz_seeds": n_seeds, "lz_m1": m1, "lz_m2": m2, "lz_m3": m3,
          "lz_csteps": int(c_steps), "lz_points": points}
net_text = (f"depth {shared.depth}, σ_w {shared.sigma_w:g}, σ_b {shared.sigma_b:g}, {shared.activation}, "
            f"{param} parameterization")
if not callable(shared.activation) and shared.activation == "relu" and shared.sigma_b == 0:
    st.warning("ReLU without bias on 1-D inputs of one sign is a linear function of x: the kernel is "
               "singular and the fit poor. Set σ_b > 0 for a meaningful comparison.")

# ---- 1. side by side --------------------------------------------------------------------------
st.subheader(f"1 · f and f_lin side by side, width {shared.width:,}")
try:
    pair_job = lj.pair_job(values)
    pair = run([pair_job], label="Network and linearisation", key="lz_pair").results[0]
except ValueError as err:
    st.error(f"Section 1: {err}")
    pair = None
if pair is not None:
    lam0, lr_used = float(pair["lambda_max"]), float(pair["lr"])
    idx = np.unique(np.linspace(0, len(pair["times"]) - 1, 5).astype(int))
    fig = lfig.outputs_figure(pair["x_test"], pair["net_test"][idx], pair["lin_test"][idx], pair["times"][idx],
                              pair["x_train"], pair["y_train"], pair["y_true"], style=style)
    table = {"x": pair["x_test"]}
    for k in idx:
        table[f"f t={pair['times'][k]:.4g}"] = pair["net_test"][k]
        table[f"f_lin t={pair['times'][k]:.4g}"] = pair["lin_test"][k]
    cols = st.columns(2)
    chart(fig, table, None, SOURCE_LIN, "lazy_outputs", where=cols[0],
          caption=f"{net_text}; η = {lr_used:.4g}, λ_max = {lam0:.4g}, 2/λ_max = {2 / lam0:.4g}.")
    fig = lfig.distance_figure(pair["times"], pair["sup_distance"], style=style)
    chart(fig, {"t": pair["times"], "sup |f - f_lin|": pair["sup_distance"]},
          r"\sup_{x\in\text{grid}} |f_t(x) - f^{\mathrm{lin}}_t(x)|", None, "lazy_distance", where=cols[1],
          caption=f"After training: {pair['sup_distance'][-1]:.3g} (output scale "
                  f"{np.max(np.abs(pair['lin_test'][-1])):.3g}).")
    if bool(pair["diverged"]):
        st.warning("The loss blew up at this learning rate (the run was stopped there).")

# ---- 2. against width -------------------------------------------------------------------------
st.subheader("2 · Laziness against width")
jobs = lj.width_jobs(values)
widths = sorted({int(j.params["width"]) for j in jobs})
if len(widths) < 2:
    st.warning("Choose a largest width above the smallest one (the sweep needs two widths).")
else:
    done = run(jobs, label="Width sweep", key="lz_sweep")
    grid = {(int(j.params["width"]), int(j.params["seed"])): r for j, r in zip(jobs, done.results)}
    seeds = sorted({int(j.params["seed"]) for j in jobs})

    def table_of(name):
        return np.array([[float(grid[(w, s)][name]) if grid[(w, s)] is not None else np.nan for s in seeds]
                         for w in widths])

    panels = [("distance", "sup |f − f_lin| after training", "distance f − f_lin", COLORS["net"],
               r"\sup_x |f_T(x) - f^{\mathrm{lin}}_T(x)|"),
              ("parameter_change", "relative parameter change", "‖θ_T − θ₀‖ / ‖θ₀‖", COLORS["ensemble"],
               r"\lVert\theta_T-\theta_0\rVert / \lVert\theta_0\rVert"),
              ("kernel_change", "relative kernel change", "‖Θ_T − Θ₀‖_F / ‖Θ₀‖_F", COLORS["ntk"],
               r"\lVert\Theta_T-\Theta_0\rVert_F / \lVert\Theta_0\rVert_F\ \text{(training set)}"),
              ("kappa", "inverse relative scale κ_f at θ₀", "κ_f", COLORS["nngp"],
               r"\kappa_f = \lVert f(\theta_0)-y\rVert\,\frac{\lVert\nabla^2 f(\theta_0)\rVert}"
               r"{\lVert\nabla f(\theta_0)\rVert^2}")]
    slopes = {}
    cols = st.columns(2)
    for i, (name, title, y_title, color, latex) in enumerate(panels):
        vals = table_of(name)
        full = np.all(np.isfinite(vals) & (vals > 0), axis=1)
        fit = slope = None
        if full.sum() >= 2:
            f = nc.fit_loglog_slope(np.asarray(widths)[full], vals[full])
            fit, slope = f.predict(widths), f.slope
            slopes[name] = slope
        refs = []
        if full.any():
            log_c = np.mean(np.log(vals[full]) + 0.5 * np.log(np.asarray(widths, float)[full])[:, None])
            refs.append((np.exp(log_c) * np.asarray(widths, float) ** -0.5, "reference m^(−1/2)", "dot"))
        if name == "kappa" and shared.depth == 1:
            refs.append((2.0 * np.asarray(widths, float) ** -0.5, "essay: 2 m^(−1/2)", "dashdot"))
        fig = lfig.width_figure(title, y_title, widths, vals, fit, slope, refs, color=color, style=style)
        table = {"width": widths}
        for j, s in enumerate(seeds):
            table[f"seed {s}"] = vals[:, j]
        chart(fig, table, latex, SOURCE_LIN if i == 0 else None, f"lazy_width_{name}", where=cols[i % 2],
              caption=None if slope is None else f"fitted slope {slope:.3f} (reference −0.5)")
    if slopes:
        st.info("Fitted log-log slopes for this net (" + net_text + "): "
                + "; ".join(f"{n.replace('_', ' ')} **{s:.2f}**" for n, s in slopes.items())
                + ". m^(−1/2) is the rate of the bounds (Lee et al. 2019; for κ_f seed 003's 2 m^(−1/2) for "
                  "one hidden layer without bias). The relative parameter change divides by ‖θ₀‖ ~ "
                  "√(number of parameters), so it falls like m^(−1/2) with one hidden layer and faster "
                  "with more. In the NTK parameterization f − f_lin and the kernel change during training "
                  "are often observed to fall like m^(−1) (Dyer & Gur-Ari 2019); the standard "
                  "parameterization with η a multiple of 2/λ_max (which then shrinks like 1/m) is lazy in "
                  "another way.")
    if not done.complete:
        st.caption(f"{done.n_done} of {len(jobs)} networks computed; the charts show those.")

# ---- 3. large learning rates ------------------------------------------------------------------
st.subheader(f"3 · Large learning rates: lazy, catapult, divergence (width {shared.width:,})")
try:
    cjobs = lj.catapult_jobs(values)
    cdone = run(cjobs, label="Large learning rates", key="lz_catapult")
except ValueError as err:
    st.error(f"Section 3: {err}")
    cdone = None
if cdone is not None and any(r is not None for r in cdone.results):
    runs = []
    for r in cdone.results:
        if r is None:
            continue
        runs.append({**r, "label": f"η = {float(r['multiple']):g} × 2/λ₀ ({lj.PHASES[int(r['phase'])]})"})
    lam0 = float(runs[0]["lambda_0"])
    cols = st.columns(2)
    fig = lfig.catapult_figure("Training loss", "½ · mean squared error", runs, "loss", style=style)
    table = {"step": runs[0]["steps"]}
    for r in runs:
        table[f"loss {r['label']}"] = r["loss"]
        table[f"lambda_max {r['label']}"] = r["lambda_max"]
    chart(fig, table, None, SOURCE_CAT, "lazy_catapult_loss", where=cols[0])
    bounds = [(lam0, "λ₀")] + [(2.0 / float(r["lr"]), f"2/η for {float(r['multiple']):g}×") for r in runs]
    fig = lfig.catapult_figure("Top kernel eigenvalue λ_max(Θ_t)/n", "λ_max", runs, "lambda_max",
                               boundary=bounds, style=style)
    chart(fig, table, [r"\lambda_{\max} = \lambda_{\max}(\Theta_t(X,X))/n",
                       r"\text{GD on } f^{\mathrm{lin}} \text{ converges iff } \eta < 2/\lambda_{\max}"], None, "lazy_catapult_lambda", where=cols[1])
    lines = []
    for r in runs:
        phase = lj.PHASES[int(r["phase"])]
        lam_end = r["lambda_max"][np.isfinite(r["lambda_max"])]
        end = f"λ_max {float(lam_end[-1]):.4g} at the end" if lam_end.size else "λ_max not finite"
        what = {"lazy": "converged without a loss spike",
                "catapult": f"the loss rose to {float(r['peak_loss']):.3g} (from {float(r['loss'][0]):.3g}), "
                            "then converged",
                "converged": "converged although η is above 2/λ₀",
                "diverged": "diverged (the loss blew up or ended above its initial value)"}[phase]
        lines.append(f"- η = {float(r['multiple']):g} × 2/λ₀ = {float(r['lr']):.4g}: **{phase}**: {what}; "
                     f"{end} (2/η = {2 / float(r['lr']):.4g}).")
    st.info(f"λ₀ = λ_max(Θ₀)/n = {lam0:.4g}, so 2/λ₀ = {2 / lam0:.4g} and 4/λ₀ = {4 / lam0:.4g}. "
            "What the computation gives for this network:\n" + "\n".join(lines)
            + "\n\nLewkowycz et al. 2020 predict, for wide nets, the catapult phase for 2/λ₀ < η < about "
              "4/λ₀ (the loss spikes while λ_max drops below 2/η, then GD converges) and divergence above.")

with st.expander("How this page computes"):
    st.markdown(
        "- f_lin is trained in parameter space with one Jacobian-vector and one vector-Jacobian product "
        "per step (jax.linearize), never a stored Jacobian; both models start from the same θ₀ "
        "(`nc.init_params`) and use the loss and time of `nc.train` (`nc.train_pair`).\n"
        "- λ_max = λ_max(Θ(X, X))/n is the top eigenvalue of the loss Hessian's Gauss–Newton part for "
        "½·mean squared error: GD on f_lin converges iff η < 2/λ_max (exactly).\n"
        "- ‖∇²f‖ in κ_f is the norm of the second derivative as a bilinear map into ℝⁿ, found by "
        "alternating maximisation with Lanczos iterations on Hessian-vector products "
        "(`nc.relative_scale`); ‖∇f‖² = λ_max(Θ₀).\n"
        f"- Each (width, seed) of the sweep is one stored job (float64); networks above "
        f"{lj.MAX_SWEEP_PARAMS:,} parameters are left out.")
