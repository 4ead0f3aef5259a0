"""Home: what the neural tangent kernel is and what each page shows."""
import os

import streamlit as st

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

st.title("NTK Explorer")
st.markdown(
    """
A neural network trained by gradient descent on a squared loss changes its output along the
**neural tangent kernel** (NTK) $\\Theta(x, x') = \\nabla_\\theta f(x)\\cdot\\nabla_\\theta f(x')$.
As the hidden layers grow wider, this kernel stops depending on the random initialisation and stops
moving during training (Jacot et al. 2018), so training becomes kernel regression and the network's
prediction at every time $t$ is a Gaussian process whose mean and covariance have closed forms
(Lee et al. 2019; the *NTK-GP*). The *NNGP* kernel $K$ is the covariance of the untrained network
and gives the Bayesian posterior of the same infinitely wide network.

This dashboard puts the theory next to finite networks you can train: the network, the data and
the training settings are on the left, every setting is in the address bar (copy it to share exactly
what is on screen), and the presets reproduce the figures of the source papers.
"""
)

PAGES = [
    ("pages/1_finite_vs_infinite.py", "Finite vs infinite width",
     "a finite network (or an ensemble of up to 100) trained by GD/SGD next to the NTK-GP "
     "prediction and its +/- 2 sd band at any training time, with train and test loss curves; "
     "y = x^3, sin x, or your own CSV."),
    ("pages/2_kernel_convergence.py", "Kernel convergence with width",
     "the empirical NTK of finite networks at initialisation and after training approaching the "
     "infinite-width kernel as the width grows."),
    ("pages/3_depth.py", "Depth",
     "what happens to the NNGP and NTK correlations, and to the kernel predictor, as networks "
     "get deeper."),
]
for path, title, what in PAGES:
    if os.path.exists(os.path.join(ROOT, path)):
        st.page_link(path, label=f"**{title}**")
        st.caption(what)
