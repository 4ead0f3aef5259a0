"""Deep narrow networks: width d_in + d_out + 1, depth up to 10,000, the special initialisation of
Lee, Choi, Ryu, No (ICML 2022; seed 000) against Kaiming's."""
import numpy as np
import streamlit as st

import ntk_core as nc
from dashboard import controls
from dashboard import deep_narrow_figures as dfig
from dashboard import deep_narrow_jobs as dj
from dashboard.figures import chart, current_style, intro
from dashboard.jobs import run

D = dj.DEFAULTS
SOURCE = ("Lee, Choi, Ryu, No, Neural Tangent Kernel Analysis of Deep Narrow Neural Networks, "
          "ICML 2022 (seed 000): initialisation scheme and NTK experiment.")
LIMIT_LATEX = [
    r"\frac{\Theta_L(x,x')}{L\,C_L^2}\;\xrightarrow[L\to\infty]{}\;\Theta_\infty(x,x')",
    r"\Theta_\infty(x,x') = x^\top x' + d_{out} + \mathbb{E}\big[\mathrm{ReLU}(g(x))\,\mathrm{ReLU}(g(x'))\big]",
    r"g \sim \mathcal{GP}\Big(0,\ \tfrac{\rho^2}{d_{in}}\,x^\top x' + \beta^2\Big)",
    r"\mathbb{E}[\cdot] = \frac{\sqrt{\Sigma_{xx}\Sigma_{x'x'}}}{2\pi}\big(\sin t + (\pi - t)\cos t\big)",
    r"\cos t = \frac{\Sigma_{xx'}}{\sqrt{\Sigma_{xx}\Sigma_{x'x'}}}",
]

shared = controls.shared()
style = current_style()

st.title("Deep narrow networks: trainable at depth 1,000")
intro(
    "A ReLU network only **d_in + d_out + 1** neurons wide can be trained at any depth with the "
    "initialisation of Lee et al. (2022): d_in neurons copy the input (scaled by C_L), one neuron is "
    "random, d_out accumulators hold C_L and the last layer subtracts it, so f = 0 at the start. "
    "Everything below is computed from the actual networks (standard parameterization, ReLU)."
)

# ---- controls ----------------------------------------------------------------------------------
side = st.sidebar
side.markdown("**Deep narrow page**")
side.caption("The shared network controls (width, σ_w, activation, …) do not apply here: these "
             "networks are ReLU, width d_in + d_out + 1, initialised as in the paper.")
rho = controls.url_number("dn_rho", "ρ (random neuron weights ~ N(0, ρ²/d_in))", 0.0, 10.0, D["dn_rho"],
                          step=0.1, help="Scale of the random neuron's weights u ~ N(0, ρ²/d_in). Paper: 1.")
beta = controls.url_number("dn_beta", "β (random neuron bias ~ N(0, C_L² β²))", 0.0, 10.0, D["dn_beta"],
                           step=0.1, help="Scale of the random neuron's bias v ~ N(0, C_L² β²). Paper: 1.")
side.markdown("*NTK experiment (quarter circle, f* = x₁x₂)*")
depth_fmt = lambda d: "off" if d == 0 else f"{d:,}"
L1 = controls.url_select_slider("dn_L1", "Depth 1", dj.DEPTH_OPTIONS, D["dn_L1"], depth_fmt,
                                help="First depth L of the kernel plot (off hides it).")
L2 = controls.url_select_slider("dn_L2", "Depth 2", dj.DEPTH_OPTIONS, D["dn_L2"], depth_fmt,
                                help="Second depth L (off hides it).")
L3 = controls.url_select_slider("dn_L3", "Depth 3", dj.DEPTH_OPTIONS, D["dn_L3"], depth_fmt,
                                help="Third depth L (off hides it).")
C_L = controls.url_number("dn_CL", "C_L (NTK experiment)", 0.01, 1e6, D["dn_CL"], step=1.0,
                          help="Scale of the input copy and the accumulators. The paper's code pairs "
                               "L = 100 with C_L = 5 and L = 10,000 with C_L = 50,000; the theory "
                               "needs L²/C_L → 0.")
trials = controls.url_slider("dn_trials", "Trials (networks per depth)", 1, 20, D["dn_trials"],
                             help="Independent initialisations per depth. Paper: 10.")
steps = controls.url_select_slider("dn_steps", "Full-batch GD steps", [0, 100, 500, 1000, 2000, 5000],
                                   D["dn_steps"], help="Gradient descent steps on the 200 points. Paper: 2,000.")
slr = controls.url_select_slider("dn_slr", "Scaled learning rate η L C_L²", [0.01, 0.03, 0.1, 0.3, 1.0],
                                 D["dn_slr"], help="The step is η = this / (L C_L²): the NTK grows like "
                                 "L C_L², so the function moves the same amount per step at every depth. "
                                 "Stable below about n / λ_max(Θ∞) ≈ 0.4 here.")
side.markdown("*Training on digits*")
do_train = controls.url_toggle("dn_train", "Train on digits", D["dn_train"],
                               help="SGD on scikit-learn's 8×8 digits, special init against Kaiming.")
controls.declare("dn_arch", "dn_data", "dn_L", "dn_tCL", "dn_tsteps", "dn_batch", "dn_lr", "dn_sweep",
                 "dn_tseeds")
v = {"dn_rho": rho, "dn_beta": beta, "dn_L1": L1, "dn_L2": L2, "dn_L3": L3, "dn_CL": C_L,
     "dn_trials": trials, "dn_steps": steps, "dn_slr": slr, "dn_train": do_train}
if do_train:
    v["dn_arch"] = controls.url_radio("dn_arch", "Architecture", list(dj.ARCHS), D["dn_arch"],
                                      format_func=dj.ARCHS.get, help="MLP on 64 pixels or CNN on 8×8 images.")
    v["dn_data"] = controls.url_selectbox("dn_data", "Data set", list(dj.DATASETS), D["dn_data"],
                                          format_func=dj.DATASETS.get,
                                          help="Pixels scaled to [0, 1], one-hot targets, MSE loss.")
    v["dn_L"] = controls.url_select_slider("dn_L", "Depth L", dj.TRAIN_DEPTH_OPTIONS, D["dn_L"],
                                           lambda d: f"{d:,}", help="The paper trains MNIST at depth 1,000.")
    v["dn_tCL"] = controls.url_number("dn_tCL", "C_L (training)", 0.01, 1e6, D["dn_tCL"], step=1.0,
                                      help="C_L of the trained networks. Larger C_L makes the NTK "
                                           "larger, so the stable learning rate smaller.")
    v["dn_tsteps"] = controls.url_select_slider("dn_tsteps", "SGD steps", [10, 30, 100, 300, 1000, 3000],
                                                D["dn_tsteps"], help="Minibatch SGD steps.")
    v["dn_batch"] = controls.url_select_slider("dn_batch", "Batch size", [32, 64, 128, 256, 512],
                                               D["dn_batch"], help="The paper: 512.")
    v["dn_lr"] = controls.url_select_slider("dn_lr", "Learning rate (special init)", dj.LR_OPTIONS, D["dn_lr"],
                                            lambda r: f"{r:g}", help="Plain SGD step. The paper: 1e-5 .. 1e-4.")
    v["dn_sweep"] = controls.url_toggle("dn_sweep", "Kaiming at the paper's 6 learning rates", D["dn_sweep"],
                                        help="Kaiming at 1e-5, 1e-4, 1e-3, 0.01, 0.1 and 1 (the paper's "
                                             "sweep); off: Kaiming at the special init's rate only.")
    v["dn_tseeds"] = controls.url_slider("dn_tseeds", "Seeds per run", 1, 5, D["dn_tseeds"],
                                         help="Networks per (init, learning rate).")
v = dj.values_with_defaults(v)

# ---- 1. the initialisation -----------------------------------------------------------------
st.header("1 · The initialisation")
cols = st.columns(3)
d_in = controls.url_slider("dn_draw_in", "d_in (drawing)", 1, 5, D["dn_draw_in"], where=cols[0],
                           help="Inputs of the drawn network.")
d_out = controls.url_slider("dn_draw_out", "d_out (drawing)", 1, 3, D["dn_draw_out"], where=cols[1],
                            help="Outputs of the drawn network.")
n_layers = controls.url_slider("dn_draw_L", "Depth L (drawing)", 2, 6, D["dn_draw_L"], where=cols[2],
                               help="Weight layers of the drawn network.")
try:
    spec = nc.DeepNarrowMLP(depth=n_layers, d_in=d_in, d_out=d_out, C_L=C_L, rho=rho, beta=beta)
    p = nc.init_params(spec, shared.seed, d_in, dtype=np.float64)
    weights = [np.asarray(p["w_in"])] + list(np.asarray(p["w"])) + [np.asarray(p["w_out"])]
    biases = [np.asarray(p["b_in"])] + list(np.asarray(p["b"])) + [np.asarray(p["b_out"])]
    rows = [(l + 1, i, j, w[i, j]) for l, w in enumerate(weights) for i in range(w.shape[0])
            for j in range(w.shape[1])]
    chart(dfig.init_drawing(weights, biases, d_in, C_L, style=style),
          {"layer": [r[0] for r in rows], "to": [r[1] for r in rows], "from": [r[2] for r in rows],
           "weight": [r[3] for r in rows]},
          [r"W^1 = \begin{bmatrix} C_L I \\ u^1 \\ 0\end{bmatrix},\ "
           r"W^l = \begin{bmatrix} I & 0 & 0\\ u^l & 0 & 0\\ 0 & 0 & I\end{bmatrix},\ "
           r"W^L = \begin{bmatrix} 0 & 0 & I\end{bmatrix}",
           r"b^1 = (0, v^1, C_L\mathbb{1}),\ b^l = (0, v^l, 0),\ b^L = -C_L\mathbb{1}",
           r"u^l_i \sim \mathcal{N}(0, \rho^2/d_{in}),\ v^l \sim \mathcal{N}(0, C_L^2\beta^2)"],
          SOURCE, "dn_drawing",
          caption=f"Seed {shared.seed}; hover a node for its bias, an edge's midpoint for its weight. "
                  "Neurons top to bottom: input copies, the random neuron, accumulators.")
except ValueError as err:
    st.error(f"The drawing could not be made: {err}")

# ---- 2. the NTK experiment -------------------------------------------------------------------
st.header("2 · The NTK at depth L and its L → ∞ limit")
st.markdown(
    "**Derivation of the limit.** At the special initialisation the output only depends on the "
    "accumulators, W^l's accumulator block is the identity and ReLU′(C_L) = 1, so the gradient "
    "reaches every layer through the accumulators only: ∂f_k/∂W^l = e_k h^{l−1}(x)ᵀ and "
    "∂f_k/∂b^l = e_k. Hence Θ(x, x′) = Σ_l (h^{l−1}(x)·h^{l−1}(x′) + 1) with "
    "h^{l−1}·h′^{l−1} = C_L² xᵀx′ + d_out C_L² + r^{l−1}(x) r^{l−1}(x′), where the random neuron "
    "r^l(x) = C_L ReLU(uᵀx + β ξ) is i.i.d. over layers. Divided by L C_L², the law of large numbers "
    "gives the kernel below (error O(L^−1/2) from the random terms, O(1/L) from the first layer and "
    "the biases); the check is the second chart.")
_, x_circle = nc.quarter_circle_points()
angles = nc.quarter_circle_points()[0]
ntk_spec = dj.ntk_spec(v, 10)
limit = nc.deep_narrow_limit_ntk(ntk_spec, nc.DEEP_NARROW_X0, x_circle)[0]
depths = dj.kernel_depths(v)
if not depths:
    st.info("Choose at least one depth in the sidebar.")
else:
    kjobs = dj.kernel_jobs(v)
    preview = st.empty()

    def kernel_curves(results):
        curves = {}
        for job, res in zip(kjobs, results):
            if res is not None:
                c = curves.setdefault(job.params["depth"], {"init": [], "trained": []})
                c["init"].append(res["theta_init"])
                c["trained"].append(res["theta_trained"])
        return {d: {k: np.asarray(a) for k, a in c.items()} for d, c in curves.items()}

    def redraw(results):
        preview.plotly_chart(dfig.kernel_vs_angle_figure(angles, kernel_curves(results), limit, style=style),
                             theme=None)

    done = run(kjobs, label="NTK experiment", key="dn_kernel", on_result=redraw)
    preview.empty()
    curves = kernel_curves(done.results)
    trained_dist = {d: [nc.relative_distance(t, limit) for t in c["trained"]] for d, c in curves.items()}
    if curves:
        table = {"angle": angles, "limit": limit}
        for d, c in sorted(curves.items()):
            table[f"L={d} init mean"] = c["init"].mean(0)
            table[f"L={d} trained mean"] = c["trained"].mean(0)
        chart(dfig.kernel_vs_angle_figure(angles, curves, limit, style=style), table, LIMIT_LATEX, SOURCE,
              "dn_kernel_angle",
              caption=(f"x₀ = (cos π/4, sin π/4); {done.n_done} of {len(kjobs)} networks computed. "
                       f"Float64, {steps:,} GD steps at η = {slr:g}/(L C_L²) on f*(x) = x₁x₂, C_L = {C_L:g}. "
                       + " ".join(f"L = {d:,}: relative distance to the limit "
                                  f"{np.mean([nc.relative_distance(t, limit) for t in c['init']]):.3g} at init, "
                                  f"{np.mean(trained_dist[d]):.3g} after training."
                                  for d, c in sorted(curves.items()))))
    djob = dj.distance_job(v)
    dist = run([djob], label="distance to the limit", key="dn_distance").results[0]
    if dist is not None:
        dd, dist_v = dist["depths"], dist["distance"]
        fit = nc.fit_loglog_slope(dd, dist_v)
        chart(dfig.distance_figure(dd, dist_v, fit.predict(dd), fit.slope, trained_dist, style=style),
              {"L": dd, "mean distance at init": dist_v.mean(1),
               **{f"trial {j}": dist_v[:, j] for j in range(dist_v.shape[1])}},
              [r"e_L = \frac{\big\|\Theta_L(x_0,\cdot)/(L C_L^2) - \Theta_\infty(x_0,\cdot)\big\|_2}"
               r"{\|\Theta_\infty(x_0,\cdot)\|_2}\ \approx\ a\,L^{s}"],
              SOURCE, "dn_distance",
              caption=(f"Fitted slope s = **{fit.slope:.2f}** (least squares over every trial, depths "
                       f"{', '.join(f'{int(d):,}' for d in dd)}); the derivation predicts −1/2 for the "
                       "random-neuron average."))

# ---- 3. training on digits ------------------------------------------------------------------
st.header("3 · Training on digits: special initialisation against Kaiming")
if not do_train:
    st.info("Training is off (sidebar: *Train on digits*).")
else:
    try:
        x_tr, y_tr, x_te, y_te = dj.digits_data(v["dn_arch"], v["dn_data"])
        const_loss = float(np.mean((y_tr - y_tr.mean(0)) ** 2))
        sp = dj.train_spec(v, "special")
        lr_crit = nc.critical_lr(sp, x_tr, v["dn_batch"])
        tjobs = dj.train_jobs(v)
    except ValueError as err:
        st.error(f"These training settings are not possible: {err}")
        tjobs = []
    if tjobs:
        st.markdown(
            f"{sp.depth:,} layers, width {sp.width}, "
            f"C_L = {sp.C_L:g}, batch {min(v['dn_batch'], len(x_tr))}, {v['dn_tsteps']:,} SGD steps on "
            f"{len(x_tr):,} images (test {len(x_te)}); loss mean((f − y)²) over points and outputs "
            "(PyTorch's MSELoss). "
            + (f"The limit NTK predicts the special init's SGD to be stable below lr ≈ **{lr_crit:.2g}**."
               if np.isfinite(lr_crit) else ""))
        box = st.empty()

        def train_curves(results):
            out = []
            for job, res in zip(tjobs, results):
                if res is not None:
                    out.append({**job.params, **{k: np.asarray(a) for k, a in res.items()},
                                "diverged": bool(res["diverged"])})
            return out

        def redraw_train(results):
            box.plotly_chart(dfig.training_figure(train_curves(results), "train_loss", "Train loss",
                                                  "train loss", log_y=True, style=style), theme=None)

        tdone = run(tjobs, label="digits training", key="dn_train", on_result=redraw_train)
        box.empty()
        runs_done = train_curves(tdone.results)
        if runs_done:
            left, right = st.columns(2)
            table = {"step": runs_done[0]["steps"]}
            for r in runs_done:
                table[f"{r['init']} lr={r['lr']:g} seed={r['seed']} train_loss"] = r["train_loss"]
                table[f"{r['init']} lr={r['lr']:g} seed={r['seed']} test_accuracy"] = r["test_accuracy"]
            fig = dfig.training_figure(runs_done, "train_loss", "Train loss", "mean (f − y)²", log_y=True,
                                       style=style)
            chart(fig, table, r"\mathcal{L} = \frac{1}{n\,d_{out}}\sum_{i,k} (f_k(x_i) - y_{ik})^2",
                  "Seed 000, Experiments (depth-1,000 MLP and CNN on MNIST; here scikit-learn digits).",
                  "dn_train_loss", where=left,
                  caption=f"Best constant prediction: loss {const_loss:.4f}. NaN (diverged) runs end early.")
            fig = dfig.training_figure(runs_done, "test_accuracy", "Test accuracy", "test accuracy",
                                       style=style)
            chart(fig, table, [r"\text{accuracy} = \tfrac{1}{n_{test}}\,\#\{i : \hat y_i = y_i\}",
                               r"\hat y_i = \arg\max_k f_k(x_i)"],
                  None, "dn_train_accuracy", where=right, caption="Chance: about 0.1.")
            lines = []
            for r in runs_done:
                ok = np.isfinite(r["train_loss"])
                last = int(np.flatnonzero(ok)[-1]) if ok.any() else 0
                lines.append(f"| {r['init']} | {r['lr']:g} | {r['seed']} | {r['train_loss'][0]:.4f} | "
                             f"{r['train_loss'][last]:.4f} | {r['test_accuracy'][last]:.3f} | "
                             f"{'diverged' if r['diverged'] else ''} |")
            st.markdown("| init | lr | seed | loss at step 0 | last loss | last test accuracy | |\n"
                        "|---|---|---|---|---|---|---|\n" + "\n".join(lines))
