"""Finite vs infinite width: finite networks trained by GD/SGD next to the NTK-GP prediction."""
import math

import streamlit as st

import ntk_core as nc
from dashboard import caching, controls, jobs, notices
from dashboard.figures import COLORS, chart, current_style, intro
from dashboard.finite_figures import format_time, loss_figure, prediction_figure

MAX_NETS = 100
MAX_STEPS = 20_000
MAX_N_TRAIN = 100
D = caching.PAGE_DEFAULTS
DATA_LABELS = {"cubic": "y = x³ on [0, 1] (seed 003)", "sin": "y = sin x on [−π, π] (cookbook)",
               "upload": "your CSV (columns x, y)"}
KERNEL_LABELS = {"ntk": "NTK-GP (gradient descent to time t)",
                 "nngp": "NNGP posterior (Bayesian, no t)"}
SOURCE_NTKGP = ("seed 003, Theorem 5.1, eqs. (22)-(24) (after Lee et al. 2019, Wide neural "
                "networks of any depth evolve as linear models); kernels in NTK parameterization "
                "as Neural Tangents, diag_reg 1e-4.")

shared = controls.shared()
style = current_style()

st.title("Finite vs infinite width")
intro(
    "A network of the chosen width is trained by gradient descent on a few points; the infinitely "
    "wide network of the same architecture is a Gaussian process whose mean and ±2 sd band at "
    "every training time *t* have closed forms (the **NTK-GP**). Wide networks follow it; narrow "
    "ones drift away from it. An ensemble of *K* networks estimates the same band from samples."
)

# ---- page controls (sidebar, below the shared ones) ------------------------------------------
side = st.sidebar
side.markdown("**Data**")
data_name = controls.url_selectbox("data", "Data set", list(DATA_LABELS), D["data"],
                                   format_func=DATA_LABELS.get,
                                   help="The training data: a function sampled at random points, "
                                        "or your own CSV.")
uploaded = None
if data_name == "upload":
    uploaded = side.file_uploader(
        f"CSV with a header x,y (at most {nc.MAX_CSV_ROWS:,} rows, "
        f"{nc.MAX_CSV_BYTES // 1000:,} kB)", type=["csv"], key="upload_file",
        help="The file is not part of the shareable link.")
n_train, noise = D["n_train"], D["noise"]
if uploaded is None:  # an uploaded file brings its own points and noise
    n_train = controls.url_slider("n_train", "Training points", 1, MAX_N_TRAIN, D["n_train"],
                                  help=f"Drawn uniformly from the domain, 1..{MAX_N_TRAIN}.")
    noise = controls.url_slider("noise", "Noise sd", 0.0, 0.5, D["noise"], step=0.005, format="%.3f",
                                help="y = f(x) + noise · ε with ε ~ N(0, 1) drawn once from the "
                                     "seed.")
else:
    controls.declare("n_train", "noise")
side.markdown("**Finite networks** (width from the network controls above)")
optimizer = controls.url_radio("opt", "Optimizer", ["GD", "SGD"], D["opt"], horizontal=True,
                               help="GD: full batch. SGD: random minibatches without replacement.")
batch = None
if optimizer == "SGD":
    batch = controls.url_number("batch", "SGD batch size", 1, nc.MAX_CSV_ROWS, D["batch"], step=1,
                                help="Training points per SGD step (capped at the number of "
                                     "training points).")
else:
    controls.declare("batch")
lr = controls.url_number("lr", "Learning rate", 0.0001, 10.0, D["lr"], step=0.01, format="%.4f",
                         help="η of each GD/SGD step; training time t = η × steps.")
steps = controls.url_number("steps", f"Steps (1..{MAX_STEPS:,})", 1, MAX_STEPS, D["steps"], step=500,
                            help="Number of GD/SGD steps of every finite network.")
n_nets = controls.url_slider("K", f"Networks K (ensemble, 1..{MAX_NETS})", 1, MAX_NETS, D["K"],
                             help="Independently initialised networks (seeds seed, seed+1, ...); "
                                  "K > 1 adds their mean and ±2 sd band.")
side.markdown("**Display**")
kernel = controls.url_radio("posterior", "Infinite-width prediction", list(KERNEL_LABELS), D["posterior"],
                            format_func=KERNEL_LABELS.get,
                            help="NTK-GP: the distribution of infinitely wide networks trained by "
                                 "GD for time t. NNGP: the Bayesian posterior (no training time).")
show_nets = controls.url_toggle("show_nets", "Draw individual networks (up to 20)", D["show_nets"],
                                help="Off: only the ensemble mean and band of the K networks.")
show_bands = controls.url_toggle("bands", "±2 sd bands", D["bands"],
                                 help="The ±2 standard-deviation bands of the infinite-width "
                                      "prediction and of the ensemble.")

# ---- data -----------------------------------------------------------------------------------
dataset = None
if data_name == "upload":
    if uploaded is None:
        st.info("Upload a CSV file with columns **x** and **y** in the sidebar. Until then the "
                "page shows y = x³.")
    else:
        try:
            xs, ys = nc.load_xy_csv(uploaded.getvalue())
            dataset = nc.dataset_from_points(xs, ys, n_test=caching.N_TEST)
            st.success(f"Using {len(xs):,} points from {uploaded.name}.")
        except ValueError as err:
            st.error(f"Could not use {uploaded.name}: {err}. The page shows y = x³ instead.")
if dataset is None:
    dataset = caching.page_dataset(data_name, n_train, noise, shared.seed)
x_tr, y_tr = dataset.x_train, dataset.y_train
x_te = dataset.x_test
y_te = dataset.y_test
truth_label = {"cubic": "true f(x) = x³", "sin": "true f(x) = sin x"}.get(dataset.name, "")

# ---- time ------------------------------------------------------------------------------------
t = controls.url_select_slider(
    "t", "Training time t = learning rate × steps (∞: converged)", caching.T_OPTIONS, D["t"],
    format_func=format_time, where=st, disabled=kernel == "nngp",
    help=controls.inactive_help("The NTK-GP prediction and the networks at this time.",
                                "the NNGP posterior has no training time; choose NTK-GP in the "
                                "sidebar" if kernel == "nngp" else None))
t_trained = lr * steps

# ---- theory (cached, milliseconds) ----------------------------------------------------------
arch = dict(depth=shared.depth, sigma_w=shared.sigma_w, sigma_b=shared.sigma_b,
            activation=shared.activation)
theory_now = theory_curve = None
try:
    theory_now = caching.theory(**arch, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
                                kernel=kernel, times=(t,))
    theory_curve = caching.theory(**arch, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
                                  kernel="ntk",
                                  times=caching.loss_time_grid(max(t_trained, 1000.0)))
    for th in (theory_now, theory_curve):
        if th.warning:
            st.warning(f"Infinite-width prediction: {th.warning}")
    notices.kernel_accuracy_notice(shared.depth, shared.sigma_w, shared.sigma_b, shared.activation, x_tr)
except ValueError as err:
    st.error(f"The infinite-width prediction could not be computed: {err}")
except Exception as err:  # noqa: BLE001 - a message in the page, never a traceback
    st.error(f"The infinite-width prediction failed ({type(err).__name__}: {err}).")

# ---- finite networks (dashboard.jobs: stored, shared, trained only when their parameters change)
batch_size = None if batch is None else min(int(batch), len(x_tr))
train_jobs = caching.training_jobs(
    depth=shared.depth, width=shared.width, sigma_w=shared.sigma_w, sigma_b=shared.sigma_b,
    activation=shared.activation, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
    lr=float(lr), steps=int(steps), batch_size=batch_size, n_nets=int(n_nets), seed=shared.seed)
done = jobs.run(train_jobs, key="train",
                label=f"{n_nets} network{'s' if n_nets > 1 else ''} of width {shared.width}, "
                      f"{steps:,} steps")
run = caching.ensemble(done.results) if done.complete else None
if run is not None and run.warning:
    st.warning(f"Finite networks: {run.warning}")

# ---- prediction plot ------------------------------------------------------------------------
theory_label = "NTK-GP" if kernel == "ntk" else "NNGP"
theory_color = COLORS["ntk"] if kernel == "ntk" else COLORS["nngp"]
t_note = "" if kernel == "nngp" else f" at t = {format_time(t)}"
if theory_now is not None:
    k_idx = None
    net_preds = ens_mean = ens_sd = None
    if run is not None:
        k_idx, net_preds = run.at(t)
        if n_nets > 1:
            ens_mean, ens_sd = nc.ensemble_mean_sd(net_preds)
    net_time = None if run is None else float(run.times[k_idx])
    fig = prediction_figure(
        x_test=x_te[:, 0], x_train=x_tr[:, 0], y_train=y_tr[:, 0],
        truth=None if y_te is None else y_te[:, 0], truth_label=truth_label,
        theory_mean=theory_now.mean[0], theory_sd=theory_now.sd[0], theory_label=theory_label,
        theory_color=theory_color, net_predictions=net_preds,
        net_label=f"width-{shared.width} network", ensemble_mean=ens_mean, ensemble_sd=ens_sd,
        show_nets=show_nets, show_bands=show_bands,
        title=f"Prediction{t_note}: width {shared.width} vs infinite width", style=style)
    data = {"x": x_te[:, 0], f"{theory_label}_mean": theory_now.mean[0],
            f"{theory_label}_sd": theory_now.sd[0]}
    if y_te is not None:
        data["true_f"] = y_te[:, 0]
    if net_preds is not None:
        for i, pred in enumerate(net_preds):
            data[f"net_{i}"] = pred
        if ens_mean is not None:
            data["ensemble_mean"], data["ensemble_sd"] = ens_mean, ens_sd
    data["x_train"], data["y_train"] = x_tr[:, 0], y_tr[:, 0]
    caption = None
    if run is not None and math.isfinite(t) and t > t_trained:
        caption = (f"The networks were trained to t = {t_trained:g} ({steps:,} steps); they are "
                   f"drawn at their last step.")
    elif run is not None and net_time is not None and kernel == "ntk":
        caption = f"Networks drawn at t = {net_time:g} (step {int(run.steps[k_idx]):,})."
    if kernel == "ntk":
        formulas = [
            r"\mu_t(x) = \Theta(x, X)\,\Theta^{-1}\bigl(I - e^{-\Theta t/n}\bigr)\,Y",
            r"A_t(x) = \Theta(x, X)\,\Theta^{-1}\bigl(I - e^{-\Theta t/n}\bigr)",
            r"\Sigma_t(x, x) = K(x, x) + A_t(x)\,K\,A_t(x)^\top",
            r"\qquad\qquad - \,2\,A_t(x)\,K(X, x)",
        ]
        source = (SOURCE_NTKGP + " Here t = η × steps (η the learning rate) and the loss is "
                  "1/(2n) Σ (f − y)², so seed 003's ηΘt becomes Θt/n.")
    else:
        formulas = [r"\mu(x) = K(x, X)\,(K + \sigma^2 I)^{-1} Y",
                    r"\Sigma(x, x) = K(x, x)",
                    r"\qquad - K(x, X)(K + \sigma^2 I)^{-1}K(X, x)"]
        source = ("Gaussian-process regression with the NNGP kernel K (Lee et al. 2018, Deep "
                  "neural networks as Gaussian processes); sigma^2 = diag_reg 1e-4, as the "
                  "Neural Tangents cookbook.")
    chart(fig, data, formulas, source, key="prediction", caption=caption)

# ---- loss curves ----------------------------------------------------------------------------
if theory_curve is not None:
    net_times = net_train = net_test = None
    net_label = f"width-{shared.width} network"
    if run is not None:
        net_times = run.times
        if n_nets == 1:
            net_train, net_test = run.train_loss[0], run.test_loss[0]
        else:
            # the loss of the ensemble mean (seed 003, Fig 3)
            net_train = nc.half_mse(run.mean_train_prediction, y_tr)
            net_test = nc.half_mse(run.mean_test_prediction, y_te) if y_te is not None else None
            net_label = f"mean of {n_nets} width-{shared.width} networks"
        if y_te is None:
            net_test = None
    fig = loss_figure(theory_times=theory_curve.times, theory_train=theory_curve.train_loss,
                      theory_test=theory_curve.test_loss, theory_label="NTK-GP mean",
                      net_times=net_times, net_train=net_train, net_test=net_test,
                      net_label=net_label, t_marker=t, style=style)
    data = {"t_theory": theory_curve.times, "ntkgp_train_loss": theory_curve.train_loss}
    if theory_curve.test_loss is not None:
        data["ntkgp_test_loss"] = theory_curve.test_loss
    if net_times is not None:
        data["t_networks"] = net_times
        data["networks_train_loss"] = net_train
        if net_test is not None:
            data["networks_test_loss"] = net_test
    chart(fig, data,
          [r"\mathcal{L}(t) = \frac{1}{2n}\sum_{i=1}^{n}\bigl(f_t(x_i) - y_i\bigr)^2",
           r"f_t^{\,\mathrm{lin}}(X) - Y = e^{-\Theta t/n}\,(f_0(X) - Y)"],
          "seed 003, sec. 4 (gradient flow of the linearised network) and Figs 1-3; the NTK-GP "
          "curve is the loss of its mean; test loss against the noise-free f on the test grid.",
          key="loss",
          caption=("Solid: training loss" + (", dashed: test loss" if theory_curve.test_loss
                                             is not None else " (an uploaded file has no test "
                                             "function, so no test loss)")
                   + ". The finite networks are recorded every steps/200 steps."))

with st.expander("How this page computes and caches"):
    st.markdown(
        f"""
- **Theory**: the NNGP and NTK kernels of the infinitely wide network come from `ntk_core`
  (closed forms or Gauss-Hermite quadrature, float64); the NTK-GP uses one eigendecomposition of
  Θ on the training points for all times.
- **Networks**: `K` networks with seeds seed, seed+1, ... are trained together (vmapped) in float32
  with the loss 1/(2n) Σ (f − y)²; their outputs are recorded every steps/200 steps.
- **Responsiveness**: trained networks are kept in the app's result store (shared by every
  visitor, kept across restarts; presets ship with the app) by (network, data, learning rate,
  steps, optimizer, seeds), {caching.CHUNK} networks per job. Moving *t*, switching NTK-GP/NNGP,
  the bands or the drawn networks reuses them. The noise level changes the training targets (the
  standard normal draws are fixed by the seed and only scaled), so it retrains, once per value;
  going back to a value is instant. Work estimated above {jobs.ASK_ABOVE_SECONDS:.0f} s waits for
  a button.
- **Limits**: width ≤ {controls.MAX_WIDTH:,}, K ≤ {MAX_NETS}, steps ≤ {MAX_STEPS:,}, at most
  {nc.MAX_CSV_ROWS:,} uploaded points.
"""
    )
