"""Home: what the neural tangent kernel is and what each page shows."""
import streamlit as st

from dashboard import page_registry

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

for page in page_registry.PAGES:
    st.page_link(page.file, label=f"**{page.title}**", icon=page.icon)
    st.caption(page.description)
