"""NTK Explorer: entry point. Start with `streamlit run app.py`.

Pages come from dashboard/page_registry.py (a page is added there, with its file in pages/); the page
id keys the presets in dashboard/presets.py.
"""
import logging
import time

run_started = time.perf_counter()

import jax  # noqa: E402

# float64 for the NTK-GP linear algebra (kernel matrices are ill-conditioned); measured cost on the
# finite-vs-infinite page is small, see README.
jax.config.update("jax_enable_x64", True)
from dashboard import compile_cache  # noqa: E402

compile_cache.enable_compilation_cache()  # compiled XLA code kept across server restarts

import streamlit as st  # noqa: E402

import ntk_core as nc  # noqa: E402
from dashboard import controls, page_registry, run_times, shutdown, threads  # noqa: E402

# presentation mode opens with the sidebar folded: the charts get the projector's full width
_presenting = str(st.query_params.get("presentation", "0")).lower() in ("1", "true", "yes", "on")
st.set_page_config(page_title="NTK Explorer", page_icon=":material/blur_on:", layout="wide",
                   initial_sidebar_state="collapsed" if _presenting else "auto")

home = st.Page(page_registry.HOME.file, title=page_registry.HOME.title, icon=page_registry.HOME.icon,
               default=True)
pages = [home] + [st.Page(p.file, title=p.title, icon=p.icon, url_path=p.url_path)
                  for p in page_registry.PAGES]
page_ids = {"Home": None, **{p.title: p.id for p in page_registry.PAGES}}

shutdown.install()  # stop within a second of SIGTERM even while a page computes
threads.limit_blas_threads()  # spinning OpenBLAS threads took the cores from the kernels' jobs
nc.release_compiled_code_if_needed()  # a long-lived server compiles many shapes (ntk_core/_compiled.py)
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
run_times.record(pg.title, time.perf_counter() - run_started)
