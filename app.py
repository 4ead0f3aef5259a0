"""NTK Explorer: entry point. Start with `streamlit run app.py`.

Pages: every entry of PAGES whose file exists in pages/ is shown (so a page is added by creating its
file and, if it is new, one line here). The page id (file name without the number prefix and .py)
keys the presets in dashboard/presets.py.
"""
import logging
import os

import jax

# float64 for the NTK-GP linear algebra (kernel matrices are ill-conditioned); measured cost on the
# finite-vs-infinite page is small, see README.
jax.config.update("jax_enable_x64", True)

import streamlit as st  # noqa: E402

from dashboard import controls, shutdown  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))

# (file in pages/, title, icon, url path). Add a page with one line.
PAGES = [
    ("pages/1_finite_vs_infinite.py", "Finite vs infinite width", ":material/compare_arrows:",
     "finite_vs_infinite"),
    ("pages/2_kernel_convergence.py", "Kernel convergence with width", ":material/trending_down:",
     "kernel_convergence"),
    ("pages/3_depth.py", "Depth", ":material/layers:", "depth"),
]

# presentation mode opens with the sidebar folded: the charts get the projector's full width
_presenting = str(st.query_params.get("presentation", "0")).lower() in ("1", "true", "yes", "on")
st.set_page_config(page_title="NTK Explorer", page_icon=":material/blur_on:", layout="wide",
                   initial_sidebar_state="collapsed" if _presenting else "auto")


def _page_id(path: str) -> str:
    name = os.path.splitext(os.path.basename(path))[0]
    return name.split("_", 1)[1] if name[:1].isdigit() and "_" in name else name


available = [p for p in PAGES if os.path.exists(os.path.join(ROOT, p[0]))]
home = st.Page("pages/0_home.py", title="Home", icon=":material/home:", default=True)
pages = [home] + [st.Page(path, title=title, icon=icon, url_path=url)
                  for path, title, icon, url in available]
page_ids = {"Home": None, **{title: _page_id(path) for path, title, _, _ in available}}

shutdown.install()  # stop within a second of SIGTERM even while a page computes
pg = st.navigation(pages)
controls.begin_run()
notice_box = st.container()
controls.shared_controls(page_ids.get(pg.title))
try:
    pg.run()
except Exception as err:  # a bug in a page: a message, not a traceback, in the browser
    if st.get_option("global.appTest"):
        raise  # AppTests see the real exception
    logging.getLogger("ntk_explorer").exception("page %s failed", pg.title)
    st.error(f"This page hit an error ({type(err).__name__}: {err}). Try other settings; "
             "the details are in the server log.")
controls.finish_run(notice_box)
