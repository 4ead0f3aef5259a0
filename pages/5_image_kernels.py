"""Image kernels: the exact convolutional NTK (CNTK) as a classifier, with and without global
average pooling, against finite CNNs (Arora et al. 2019, seed 001, Table 1)."""
import hashlib

import numpy as np
import pandas as pd
import streamlit as st

import ntk_core as nc
from dashboard import controls
from dashboard import image_kernel_figures as ifig
from dashboard import image_kernel_jobs as ij
from dashboard.figures import chart, current_style, intro, projector_later
from dashboard.jobs import run

SOURCE = ("seed 001 (Arora, Du, Hu, Li, Salakhutdinov, Wang 2019, On exact computation with an "
          "infinitely wide neural net), Sec. 4 (CNTK recursion), Sec. 6 and Table 1 (kernel regression, "
          "targets 0.9 / −0.1, no regulariser).")
D = ij.DEFAULTS

shared = controls.shared()
style = current_style()

st.title("Image kernels: the convolutional NTK as a classifier")
intro(
    "Seed 001 computes the exact **convolutional NTK** of an infinitely wide CNN and uses it for "
    "kernel regression on images: with global average pooling (CNTK-GAP) it beats the plain "
    "flatten readout (CNTK-V), and kernels come within a few points of the CNNs they describe. "
    "Here the same experiment runs on scikit-learn's 8×8 digits (or your own images): every "
    "depth from one recursion, next to the NNGP kernels, the fully connected NTK and finite CNNs "
    "trained by SGD."
)

# ---- controls ----------------------------------------------------------------------------------
side = st.sidebar
side.markdown("**Image kernels page**")
side.caption(f"The shared *Depth* is the number of conv layers here (1..{ij.MAX_KERNEL_DEPTH}); "
             "every depth up to it is computed at once. σ_w, σ_b and the activation apply to every "
             "kernel and network.")
source = controls.url_radio("ik_data", "Images", ["digits", "upload"], D["ik_data"], horizontal=True,
                            help="scikit-learn's digits (1,797 images 8×8, 10 classes), or your own "
                                 "images as an .npz with arrays x (n, H, W, C) and y (n,).")
n_train = controls.url_slider("ik_ntrain", "Training images", 20, nc.MAX_TRAIN_IMAGES, D["ik_ntrain"], step=10,
                              help=f"Stratified, seeded; at most {nc.MAX_TRAIN_IMAGES:,} (the kernel "
                                   "grows as n²).")
n_test = controls.url_slider("ik_ntest", "Test images", 10, nc.MAX_TEST_IMAGES, D["ik_ntest"], step=10,
                             help=f"Disjoint from the training images; at most {nc.MAX_TEST_IMAGES:,}.")
ridge = controls.url_select_slider("ik_ridge", "Ridge (× mean diagonal)", [0.0, 1e-6, 1e-4, 1e-2, 1e-1],
                                   D["ik_ridge"], format_func=lambda r: "none (paper)" if r == 0 else f"{r:g}",
                                   help="The paper uses no regulariser; a ridge is the control when the "
                                        "training kernel is singular.")
readout = controls.url_radio("ik_readout", "Readout to look inside", ["gap", "flatten"], D["ik_readout"],
                             horizontal=True, format_func={"gap": "GAP", "flatten": "flatten (V)"}.get,
                             help="Which CNTK the heatmap, confusion matrix and thumbnails show.")
train_cnn = controls.url_toggle("ik_cnn", "Train finite CNNs (SGD)", D["ik_cnn"],
                                help="One CNN per depth and readout, same σ_w, σ_b, activation.")
controls.declare("ik_channels", "ik_steps", "ik_lr")
channels, steps, lr = D["ik_channels"], D["ik_steps"], D["ik_lr"]
if train_cnn:
    channels = controls.url_select_slider("ik_channels", "CNN channels", [4, 8, 16, 32, 64], D["ik_channels"],
                                          help="Channels per conv layer of the finite CNNs.")
    steps = controls.url_select_slider("ik_steps", "SGD steps", [50, 100, 300, 1000, 3000], D["ik_steps"],
                                       help="Mini-batch SGD steps (batch 64) on the half squared error.")
    lr = controls.url_select_slider("ik_lr", "Learning rate", [0.1, 0.3, 0.5, 1.0, 2.0, 5.0], D["ik_lr"],
                                    help="SGD learning rate (NTK parameterization).")

values = {"depth": shared.depth, "sigma_w": shared.sigma_w, "sigma_b": shared.sigma_b,
          "activation": shared.activation, "seed": shared.seed, "ik_data": source, "ik_ntrain": n_train,
          "ik_ntest": n_test, "ik_ridge": ridge, "ik_cnn": train_cnn, "ik_channels": channels,
          "ik_steps": steps, "ik_lr": lr}
v = ij.settings(values)
if shared.depth != v["depth"]:
    st.info(f"Depth {shared.depth} is outside 1..{ij.MAX_KERNEL_DEPTH} conv layers; using {v['depth']}.")


# ---- data ----------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=4)
def _digits(n_tr, n_te, seed):
    return ij.digits_split(n_tr, n_te, seed)


@st.cache_data(show_spinner=False, max_entries=2)
def _uploaded(data: bytes, n_tr, n_te, seed):
    x, y, scale = nc.load_images_npz(data)
    return nc.prepare_images(x, y, n_tr, n_te, seed, scale)


split, data_source = None, None
try:
    if source == "digits":
        split, data_source = _digits(int(n_train), int(n_test), shared.seed), ij.digits_source(v)
    else:
        up = st.file_uploader("Images (.npz with x: (n, H, W, C), y: (n,) labels)", type=["npz"],
                              help="At most 32×32 pixels, 4 channels, 50 MB. Pixels are scaled to [0, 1] "
                                   "(/255 for 8-bit images) and standardised per channel.")
        if up is None:
            st.info("Upload an .npz file to use your own images; the digits are used until then.")
            split, data_source = _digits(int(n_train), int(n_test), shared.seed), ij.digits_source(v)
        else:
            raw = up.getvalue()
            split = _uploaded(raw, int(n_train), int(n_test), shared.seed)
            data_source = f"upload {hashlib.sha256(raw).hexdigest()[:16]} n_train={n_train} n_test={n_test} seed={shared.seed}"
except ValueError as err:
    st.error(f"These images cannot be used: {err}.")
    if source == "upload":
        try:
            split, data_source = _digits(int(n_train), int(n_test), shared.seed), ij.digits_source(v)
            st.info("Showing the digits instead.")
        except ValueError:
            split = None

if split is not None:
    h, w, c = split.x_train.shape[1:]
    data_box = projector_later()
    data_text = (f"{len(split.y_train):,} training and {len(split.y_test):,} test images of {h}×{w}×{c}, "
                 f"{split.n_classes} classes; pixels scaled to [0, 1], then standardised per channel "
                 "with the training statistics; targets 0.9 for the true class and −0.1 otherwise.")
    groups = ij.jobs_for_split(v, split, data_source)
    depths = np.arange(1, v["depth"] + 1)

    kernels_label = "Exact kernels (all depths in one pass)"
    if v["activation"] in nc.CLOSED_FORM_ACTIVATIONS:
        gap, flat, fc = run(groups["kernels"] + groups["fc"], label=kernels_label, key="ik_kernels").results
    else:  # the quadrature GAP kernels (hours) behind their own button; flatten and FC at once
        st.info(f"**{v['activation']}** has no closed-form dual, so its CNTKs come from a 2-D quadrature "
                f"per pixel pair: about {ij.QUAD_GAP_SECONDS_PER_PAIR_LAYER:.0f} s per image pair and "
                f"layer with GAP and {ij.QUAD_FLAT_SECONDS_PER_PAIR_LAYER * 1000:.0f} ms with flatten "
                "(8×8 images, this machine), against microseconds for the compiled closed forms. Use "
                "few images, or one of " + ", ".join(nc.CLOSED_FORM_ACTIVATIONS) + ".")
        gap_job, flat_job = groups["kernels"]
        flat, fc = run([flat_job] + groups["fc"], label=kernels_label, key="ik_kernels").results
        gap = run([gap_job], label="CNTK-GAP by quadrature", key="ik_kernels_gap").results[0]
    table1_box = st.container()  # the chart first; the CNN job's button and progress below it
    data_box().caption(data_text)
    cnn = run(groups["cnn"], label="Finite CNNs (SGD)", key="ik_cnn_run") if groups["cnn"] else None

    series = {}
    if gap is not None:
        series["CNTK-GAP"], series["CNN-GP-GAP"] = gap["acc_ntk"], gap["acc_nngp"]
    if flat is not None:
        series["CNTK-V"], series["CNN-GP-V"] = flat["acc_ntk"], flat["acc_nngp"]
    if fc is not None:
        series["FC NTK"] = fc["acc_ntk"]
    cnn_caption = ""
    if cnn is not None:
        per, cnn_loss = ij.cnn_summary(cnn.results, v["depth"])
        losses = []
        for name, acc, loss in zip(("CNN-GAP", "CNN-V"), per, cnn_loss):
            if np.any(np.isfinite(acc)):
                series[f"{name} (SGD)"] = acc
                losses.append(f"{name} {np.nanmin(loss):.3f} to {np.nanmax(loss):.3f}")
        if losses:
            cnn_caption = (f" Final SGD training loss: {', '.join(losses)} "
                           f"({ij.CONSTANT_PREDICTOR_LOSS:.2f} = predicting 0, i.e. not trained).")

    # ---- Table 1 analogue ------------------------------------------------------------------------
    with table1_box:
        st.subheader("Test accuracy against depth (the analogue of Table 1)")
        if series:
            for name, acc in list(series.items()):
                if np.any(np.isnan(acc)) and name.startswith(("CNTK", "CNN-GP", "FC")):
                    st.warning(f"{name}: the training kernel is singular at some depth (accuracy missing); "
                               "choose a ridge.")
            table = pd.DataFrame({"conv layers": depths, "paper's depth": depths + 1,
                                  **{k: np.round(100 * np.asarray(a, float), 2) for k, a in series.items()}})
            left, right = st.columns([3, 2])
            fig = ifig.accuracy_figure(depths, series, style=style)
            chart(fig, table, [r"f(x_*) = K(x_*, X)\,K(X, X)^{-1} Y",
                               r"Y_{ic} = 0.9\,[y_i = c] - 0.1\,[y_i \neq c]",
                               r"\Theta^{(h)}_{pq} = \mathcal{A}\big[\Sigma^{(h)} + \dot\Sigma^{(h)} \odot \Theta^{(h-1)}\big]_{pq}",
                               r"\text{GAP: } \tfrac{1}{P^2}\textstyle\sum_{p,q},\quad \text{V: } \tfrac{1}{P}\textstyle\sum_p"],
                  SOURCE, "ik_accuracy", where=left,
                  caption="Dashed: NNGP (CNN-GP) kernels; dotted: finite CNNs trained by SGD (mean over seeds)."
                          + cnn_caption)
            with right:
                st.dataframe(table, hide_index=True, width="stretch")
                st.markdown("**Paper, CIFAR-10 (50k training images), % — for reference only**")
                st.dataframe(pd.DataFrame(ij.PAPER_TABLE1), hide_index=True, width="stretch")
                st.caption("Arora et al. 2019, Table 1; their depth counts conv layers + 1. With 2,000 "
                           "training images they report CNTK-V ~41-43 %, CNTK-GAP ~50-52 %.")

    # ---- looking inside --------------------------------------------------------------------------
    res = gap if readout == "gap" else flat
    if res is not None:
        st.subheader(f"Looking inside CNTK-{'GAP' if readout == 'gap' else 'V'}")
        d_in = controls.url_select_slider("ik_depth", "Depth to look inside", list(range(1, v["depth"] + 1)),
                                          v["depth"], where=st,
                                          help="Conv layers of the kernel shown below.")
        k = int(d_in) - 1
        left, right = st.columns(2)
        sub = res["sub_idx"]
        fig = ifig.kernel_heatmap(res["k_sub"][k].astype(float), split.y_test[sub], style=style,
                                  title=f"Normalized CNTK of test images, depth {d_in}")
        chart(fig, {"i": np.repeat(np.arange(len(sub)), len(sub)), "j": np.tile(np.arange(len(sub)), len(sub)),
                    "k_normalized": (res["k_sub"][k] / np.sqrt(np.outer(np.diag(res["k_sub"][k]),
                                                                        np.diag(res["k_sub"][k])))).ravel()},
              r"\bar\Theta(x, x') = \Theta(x, x') / \sqrt{\Theta(x, x)\,\Theta(x', x')}", SOURCE,
              "ik_heatmap", where=left,
              caption=f"{len(sub)} test images, about equally many per class, sorted by class: "
                      "blocks on the diagonal mean the kernel sees classes.")
        pred = res["pred_ntk"][k]
        if np.all(pred >= 0):
            m = nc.confusion_matrix(split.y_test, pred, split.n_classes)
            fig = ifig.confusion_figure(m, split.class_names, style=style,
                                        title=f"Confusion matrix, accuracy {100 * res['acc_ntk'][k]:.1f} %")
            chart(fig, pd.DataFrame(m, index=split.class_names, columns=split.class_names).reset_index(),
                  None, SOURCE, "ik_confusion", where=right, caption="Rows: true class; columns: predicted.")
            wrong = np.flatnonzero(pred != split.y_test)
            if len(wrong):
                shown = wrong[:24]
                scores = res["scores_ntk"][k].astype(float)
                imgs = split.x_test[shown].mean(axis=-1)
                titles = [f"{split.class_names[split.y_test[i]]}→{split.class_names[pred[i]]} "
                          f"({scores[i, pred[i]]:.2f} vs {scores[i, split.y_test[i]]:.2f})" for i in shown]
                fig = ifig.thumbnails_figure(imgs, titles, style=style)
                chart(fig, {"test_index": shown, "true": split.y_test[shown], "predicted": pred[shown],
                            "score_predicted": scores[shown, pred[shown]],
                            "score_true": scores[shown, split.y_test[shown]]},
                      None, SOURCE, "ik_misclassified",
                      caption=f"{len(wrong)} of {len(pred)} test images misclassified (first {len(shown)} "
                              "shown): true → predicted (score of the predicted vs the true class).")
            else:
                st.success("Every test image is classified correctly at this depth.")
        else:
            st.warning("The kernel is singular at this depth: choose a ridge to see predictions.")
