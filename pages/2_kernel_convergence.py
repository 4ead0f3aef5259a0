"""Kernel convergence with width: the finite-width NTK becomes deterministic and frozen
(Jacot et al. 2018, Figs 1-2; Arora et al. 2019)."""
import numpy as np
import streamlit as st

import ntk_core as nc
from dashboard import controls, notices
from dashboard import convergence_cache as cc
from dashboard import convergence_figures as cfig
from dashboard import convergence_summary as summary
from dashboard.figures import COLORS, chart, columns, current_style, intro

WIDTHS = [16, 32, 50, 64, 100, 128, 250, 256, 500, 512, 1000, 1024, 2000, 2048, 4096, 5000, 8192,
          10_000, 16_384]
SWEEP_WIDTHS = [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16_384]
SOURCE_FIG1 = ("Jacot, Gabriel, Hongler 2018 (Neural Tangent Kernel), Fig 1: ReLU, 3 hidden layers, "
               "β = 0.1, widths 500 and 10,000, 10 initialisations, before and after 200 GD steps "
               "on f*(x) = x₁x₂.")
SOURCE_RATE = ("Arora et al. 2019 (On exact computation with an infinitely wide neural net): the "
               "finite NTK approaches the infinite one at about m^(−1/2) in practice.")
SOURCE_FIG2 = ("Jacot et al. 2018, Fig 2: widths 50 and 1,000, 4 training points on the circle, "
               "1,000 steps at lr 1.0, percentiles 10/50/90 over initialisations vs the NTK-GP.")
NTK_LATEX = [
    r"\Theta_m(x,x') = \sum_{p} \frac{\partial f(x)}{\partial p}\,\frac{\partial f(x')}{\partial p}",
    r"\Theta_m \xrightarrow{m\to\infty} \Theta_\infty",
    r"\Sigma^{(1)}(x,x') = \frac{\sigma_w^2}{d}\,x^\top x' + \sigma_b^2",
    r"\Theta^{(1)} = \Sigma^{(1)}",
    r"\Sigma^{(l+1)} = \sigma_w^2\,\mathbb{E}[\phi(u)\phi(v)] + \sigma_b^2",
    r"\Theta^{(l+1)} = \Sigma^{(l+1)}",
    r"\qquad + \,\sigma_w^2\,\mathbb{E}[\phi'(u)\phi'(v)]\,\Theta^{(l)}",
    r"(u,v)\sim\mathcal{N}\!\left(0,\begin{pmatrix}\Sigma^{(l)}_{xx} & \Sigma^{(l)}_{xx'}\\ "
    r"\Sigma^{(l)}_{xx'} & \Sigma^{(l)}_{x'x'}\end{pmatrix}\right)",
]

shared = controls.shared()
style = current_style()
net = (int(shared.depth), float(shared.sigma_w), float(shared.sigma_b), shared.activation)

st.title("Kernel convergence with width")
intro(
    "NTK theory says that as the width m grows, the random kernel Θ_m of a finite network becomes "
    "**deterministic** (every initialisation gives the same kernel) and **frozen** (training no "
    "longer moves it). Below, finite networks are drawn and trained for real; their empirical NTK "
    "is compared with the analytic infinite-width kernel. The depth, activation, σ_w and σ_b on the "
    "left drive everything on this page (the shared *width* is not used: widths are chosen here)."
)

# ---- page controls ---------------------------------------------------------------------------
side = st.sidebar
side.markdown("**Kernel vs angle (Jacot Fig 1)**")
w1 = controls.url_select_slider("cv_w1", "Width A", WIDTHS, 500, format_func=lambda v: f"{v:,}",
    help="Hidden width of the first group of finite networks.")
w2 = controls.url_select_slider("cv_w2", "Width B", WIDTHS, 10_000, format_func=lambda v: f"{v:,}",
    help="Hidden width of the second group.")
w3 = controls.url_selectbox("cv_w3", "Width C (optional)", [0] + WIDTHS, 0,
                            format_func=lambda v: "none" if v == 0 else f"{v:,}",
    help="An optional third width.")
n_seeds = controls.url_slider("cv_seeds", "Initialisations per width", 1, 20, 10,
    help="Independent initialisations drawn per width (band: min … max over them).")
n_angles = controls.url_selectbox("cv_angles", "Angles on the circle", [33, 65, 129, 257], 65,
    help="Points x = (cos γ, sin γ) at which Θ(x₀, x) is evaluated.")
steps = controls.url_number("cv_steps", "GD steps (0 = initialisation only)", 0, 5000, 200, step=50,
    help="Full-batch gradient descent steps before the kernel is measured again.")
lr = controls.url_number("cv_lr", "Learning rate", 0.001, 10.0, 1.0, step=0.1,
    help="GD learning rate η (t = η × steps).")
n_train = controls.url_slider("cv_ntrain", "Training points (x ~ N(0, I₂), y = x₁x₂)", 1, 100, 10,
    help="Training set of the GD steps (Jacot Fig 1: f*(x) = x₁x₂).")
lines = controls.url_toggle("cv_lines", "Individual initialisations as thin lines", False,
                            help="Off: the band min … max over initialisations and their mean.")
side.markdown("**Convergence rate (Arora et al.)**")
s_min = controls.url_select_slider("cv_smin", "Smallest width", SWEEP_WIDTHS[:-1], 32,
    help="Smallest width of the sweep (powers of two).")
s_max = controls.url_select_slider("cv_smax", "Largest width", SWEEP_WIDTHS[1:], 8192,
                                   format_func=lambda v: f"{v:,}",
                                   help="Largest width of the sweep (powers of two).")
s_seeds = controls.url_slider("cv_sseeds", "Seeds per width", 1, 10, 3,
    help="Initialisations per width in the sweep (error bars: min … max).")
s_points = controls.url_selectbox("cv_spoints", "Points on the circle", [4, 8, 16, 32, 64], 16,
    help="Size of the Gram matrix compared with the infinite NTK.")
s_train = controls.url_toggle("cv_strain", "Also after training (steps, lr, points as above)", True,
    help="Also measure the distance after the GD steps set above.")
side.markdown("**Function percentiles (Jacot Fig 2)**")
show_f2 = controls.url_toggle("cv_f2", "Show Jacot Fig 2", False,
    help="Trains networks of two widths and compares their output percentiles with the NTK-GP.")
f2_w1 = controls.url_select_slider("cv_f2w1", "Fig 2 width A", WIDTHS[:-3], 50,
                                   format_func=lambda v: f"{v:,}", disabled=not show_f2,
                                   help=controls.inactive_help("Width of the first Fig 2 group.",
                                                               None if show_f2 else "Fig 2 is off"))
f2_w2 = controls.url_select_slider("cv_f2w2", "Fig 2 width B", WIDTHS[:-3], 1000,
                                   format_func=lambda v: f"{v:,}", disabled=not show_f2,
                                   help=controls.inactive_help("Width of the second Fig 2 group.",
                                                               None if show_f2 else "Fig 2 is off"))
f2_steps = controls.url_number("cv_f2steps", "Fig 2 GD steps", 1, 5000, 1000, step=100,
    help="GD steps of the Fig 2 networks.")
f2_n = controls.url_slider("cv_f2n", "Fig 2 training points on the circle", 1, 16, 4,
    help="Training points, evenly spaced on the circle.")

widths = sorted({int(w) for w in (w1, w2, w3) if w})
if len(widths) < 2:
    st.warning("Widths A, B and C are equal: choose at least two different widths to compare.")
steps, lr, n_train, n_seeds = int(steps), float(lr), int(n_train), int(n_seeds)


def run_with_progress(keys, unit, label, n_points, on_update=None):
    """Compute the missing units one at a time with a progress bar (the charts redraw between)."""
    bar = st.progress(0.0, text=f"{label}: starting …")

    def done(i, total):
        bar.progress(i / total, text=f"{label}: {i} of {total} networks done")
        if on_update is not None:
            on_update()

    cc.run_units(keys, unit, done, n_points_of=lambda k: n_points)
    bar.empty()


def ask_or_run(keys, unit, label, n_points, button_key, on_update=None) -> bool:
    """Run the missing units now if they take at most AUTO_RUN_SECONDS, else after a click.
    Returns True when every unit is available."""
    todo = cc.missing(keys)
    if not todo:
        return True
    est = cc.estimate(todo, lambda k: n_points)
    if est > cc.AUTO_RUN_SECONDS and not st.button(
            f"Compute {len(todo)} network{'s' if len(todo) > 1 else ''} "
            f"(about {est / 60:.1f} min on this machine)", key=button_key, type="primary"):
        st.info(f"{label} needs {len(todo)} more networks, estimated {est / 60:.1f} min on 2 CPU "
                "cores, so it waits for the button above. Results finished so far are shown and "
                "kept: a later run resumes where this one stopped.")
        return False
    try:
        run_with_progress(keys, unit, label, n_points, on_update)
    except ValueError as err:
        st.error(f"{label}: {err}")
        return False
    except Exception as err:  # noqa: BLE001 - a message in the page, never a traceback
        st.error(f"{label} failed ({type(err).__name__}: {err}).")
        return False
    return True


# ---- 1. kernel vs angle ------------------------------------------------------------------------
st.subheader("1 · Kernel vs angle, at initialisation and after training")
try:
    angles, _ = nc.circle_points(int(n_angles))
    inf_curve = cc.infinite_angle(net, int(n_angles))
except (ValueError, FloatingPointError) as err:
    st.error(f"The infinite-width kernel could not be computed: {err}")
    inf_curve = None
if inf_curve is not None:
    keys = {(w, s): cc.angle_key(net, w, s, n_angles, steps, lr, n_train)
            for w in widths for s in range(n_seeds)}
    plot_box = st.container()
    live_slot = st.empty()   # partial charts while a long job runs (replaced by the final charts)

    def draw_angle(final: bool):
        got = {ws: cc.angle_unit(k, compute=False) for ws, k in keys.items()}
        init_rows = [np.array([got[(w, s)][0] for s in range(n_seeds) if got[(w, s)] is not None])
                     for w in widths]
        trained_rows = [np.array([got[(w, s)][1] for s in range(n_seeds)
                                  if got[(w, s)] is not None and got[(w, s)][1] is not None])
                        for w in widths]
        all_vals = [inf_curve] + [r for r in init_rows + trained_rows if r.size]
        lo = min(float(np.min(v)) for v in all_vals)
        hi = max(float(np.max(v)) for v in all_vals)
        pad = 0.05 * (hi - lo + 1e-12)
        y_range = (lo - pad, hi + pad)
        panels = [("At initialisation", init_rows, "init")]
        if steps:
            panels.append((f"After {steps:,} GD steps (lr {lr:g}, {n_train} points)", trained_rows,
                           "trained"))
        cols = columns(len(panels), where=plot_box) if final else None
        live = [] if final else live_slot.container().columns(len(panels))
        for i, (title, rows, tag) in enumerate(panels):
            summaries = [summary.seed_summary(r) if r.size else None for r in rows]
            fig = cfig.kernel_vs_angle_figure(title, angles, inf_curve, widths, rows, summaries,
                                              individual=lines, y_range=y_range, style=style)
            if not final:
                live[i].plotly_chart(fig, theme=None, key=f"live_{tag}_{sum(r.shape[0] for r in rows)}")
                continue
            table = {"angle": angles, "infinite": inf_curve}
            for w, r in zip(widths, rows):
                for s, row in enumerate(r):
                    table[f"width {w} init {s}"] = row
            chart(fig, table, NTK_LATEX if i == 0 else None, SOURCE_FIG1 if i == 0 else None,
                  f"convergence_angle_{tag}", where=cols[i])
        return init_rows, trained_rows

    complete = ask_or_run(list(keys.values()), cc.angle_unit, "Kernel vs angle", int(n_angles) + 1,
                          "angle_button", on_update=lambda: draw_angle(final=False))
    live_slot.empty()
    init_rows, trained_rows = draw_angle(final=True)
    if steps and any(r.size for r in trained_rows):
        moves = [f"width {w:,}: {100 * summary.relative_change(a, b):.2f} %"
                 for w, a, b in zip(widths, init_rows, trained_rows) if b.size]
        st.caption("Mean relative change of Θ(x₀, ·) during training — " + "; ".join(moves)
                   + ". Narrow networks scatter more at initialisation and move more in training.")

# ---- 2. convergence rate -----------------------------------------------------------------------
st.subheader("2 · Convergence rate: distance to the infinite kernel against width")
if int(s_min) >= int(s_max):
    st.warning("The smallest width must be below the largest width.")
else:
    sweep = summary.width_sweep(int(s_min), int(s_max))
    s_steps = steps if s_train else 0
    skeys = {(w, s): cc.sweep_key(net, w, s, s_points, s_steps, lr, n_train)
             for w in sweep for s in range(int(s_seeds))}
    try:
        cc.infinite_gram(net, int(s_points))
        notices.kernel_accuracy_notice(*net, nc.sweep_points(int(s_points)))
        ok_sweep = ask_or_run(list(skeys.values()), cc.sweep_unit, "Width sweep", int(s_points),
                              "sweep_button")
    except (ValueError, FloatingPointError) as err:
        st.error(f"The infinite-width kernel could not be computed: {err}")
        ok_sweep = False
    got = {ws: cc.sweep_unit(k, compute=False) for ws, k in skeys.items()}
    e0 = np.array([[got[(w, s)][0] if got[(w, s)] else np.nan for s in range(int(s_seeds))]
                   for w in sweep])
    et = np.array([[got[(w, s)][1] if got[(w, s)] and got[(w, s)][1] is not None else np.nan
                    for s in range(int(s_seeds))] for w in sweep])
    series, table, texts = [], {"width": np.asarray(sweep)}, []
    for name, e, color in (("at initialisation", e0, COLORS["ntk"]),
                           (f"after {s_steps:,} steps", et, COLORS["net"])):
        full = np.all(np.isfinite(e), axis=1)
        if full.sum() == 0:
            continue
        mean, lo, hi = (np.full(len(sweep), np.nan) for _ in range(3))
        m_, l_, h_ = summary.seed_summary(e[full][None], axis=-1)
        mean[full], lo[full], hi[full] = m_[0], l_[0], h_[0]
        fit = slope = None
        if full.sum() >= 2:
            f = nc.fit_loglog_slope(np.asarray(sweep)[full], e[full])
            fit, slope = f.predict(sweep), f.slope
            texts.append(f"**{name}: fitted slope {slope:.3f}**")
        series.append(dict(name=name, color=color, mean=mean, lo=lo, hi=hi, fit=fit, slope=slope))
        for s in range(e.shape[1]):
            table[f"{name} seed {s}"] = e[:, s]
    ref = None
    if np.all(np.isfinite(e0)):
        ref = (summary.reference_line(sweep, e0), "reference m^(−1/2)")
    if series:
        fig = cfig.convergence_figure(sweep, series, ref, style=style)
        chart(fig, table,
              [r"e(m) = \frac{\lVert \Theta_m - \Theta_\infty \rVert_F}"
               r"{\lVert \Theta_\infty \rVert_F}\ \text{on " + f"{int(s_points)}" + r" points}",
               r"\log_{10} e = a + s\,\log_{10} m"],
              SOURCE_RATE, "convergence_rate",
              caption=("Error bars: min … max over seeds. " + "; ".join(texts)
                       + " (the reference line has slope −0.5)."))
        if texts:
            st.markdown(" · ".join(texts) + " — reference m^(−1/2): slope −0.5.")

# ---- 3. Jacot Fig 2 ----------------------------------------------------------------------------
if show_f2:
    st.subheader("3 · Network function after training vs the NTK-GP (Jacot Fig 2)")
    f2_widths = sorted({int(f2_w1), int(f2_w2)})
    key = cc.fig2_key(net, f2_widths, n_seeds if n_seeds >= 2 else 2, f2_n, f2_steps, lr)
    res = cc.fig2(key, compute=False)
    if res is None:
        est = cc.fig2_estimate(net, f2_widths, key[2], int(f2_n), int(f2_steps))
        if est <= cc.AUTO_RUN_SECONDS or st.button(
                f"Train the Fig 2 networks (about {est / 60:.1f} min)", key="fig2_button"):
            bar = st.progress(0.0, text="Training the Fig 2 networks …")
            try:
                res = cc.fig2(key, progress=lambda f: bar.progress(
                    min(max(f, 0.0), 1.0), text=f"Training the Fig 2 networks: {f:.0%}"))
            except ValueError as err:
                st.error(f"Fig 2: {err}")
            except Exception as err:  # noqa: BLE001
                st.error(f"Fig 2 failed ({type(err).__name__}: {err}).")
            bar.empty()
        else:
            st.info(f"Fig 2 takes about {est / 60:.1f} min and waits for the button above.")
    if res is not None and res.warning:
        st.warning(f"Fig 2 training: {res.warning}")
    if res is not None:
        fig = cfig.percentiles_figure(res.angles, list(res.widths), res.finite, res.gp,
                                      res.train_angles, res.y_train, style=style)
        table = {"angle": res.angles, "gp p10": res.gp[0], "gp p50": res.gp[1],
                 "gp p90": res.gp[2]}
        for w, f in zip(res.widths, res.finite):
            table.update({f"width {w} p10": f[0], f"width {w} p50": f[1], f"width {w} p90": f[2]})
        chart(fig, table,
              [r"f_t(x_*) \sim \mathcal{N}\big(\mu_t(x_*),\ \Sigma_t(x_*)\big)",
               r"\mu_t(x_*) = \Theta(x_*,X)\,\Theta^{-1}(I-e^{-\eta\Theta t/n})\,Y",
               r"p\text{-th percentile} = \mu + z_p\,\sigma"],
              SOURCE_FIG2, "convergence_fig2",
              caption=f"{key[2]} initialisations per width, lr {lr:g}, {int(f2_steps):,} steps.")

with st.expander("How this page computes and caches"):
    st.markdown(
        "- Every finite network is drawn (float32, W, b ~ N(0, 1), NTK parameterisation), its "
        "empirical NTK computed per layer on the needed points only, trained by full-batch "
        "gradient descent on ½·mean squared error (t = lr·steps, as `nc.train`), and freed before "
        "the next one, so memory holds one network.\n"
        "- Each (network settings, width, seed) is cached in this server process: a warm rerun "
        "only redraws, and a long job stopped halfway resumes where it stopped.\n"
        f"- Jobs estimated above {cc.AUTO_RUN_SECONDS:.0f} s wait for a button. On this 2-core "
        "machine a width-10,000 network (2·10⁸ weights) takes ~4 s to draw and ~0.4 s per GD "
        "step, so Jacot's Fig 1 (10 inits, 200 steps) takes minutes the first time.")
