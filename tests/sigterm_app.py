"""A page that computes for 60 s without a Streamlit call (tests/test_shutdown.py stops it)."""
import time
from concurrent.futures import ThreadPoolExecutor

import streamlit as st

from dashboard import shutdown

shutdown.install()
st.write("computing")
with ThreadPoolExecutor(2) as pool:  # like ntk_core's run_split: non-daemon pool workers
    list(pool.map(time.sleep, [60, 60]))
st.write("done")
