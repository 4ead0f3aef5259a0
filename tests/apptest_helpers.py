"""Helpers for AppTest runs of the multipage app.

AppTest (streamlit 1.67) treats an app with a pages/ folder as an old-style (v1) multipage app and
runs a switched-to page file on its own, without app.py and its shared sidebar. The real server
switches to st.navigation on the first run; `open_app` does the same for AppTest by keeping
PagesManager.uses_pages_directory False.
"""
from __future__ import annotations

import base64
import json
import os

import numpy as np

from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "app.py")

_original_init = PagesManager.__init__


def _init_without_pages_directory(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    PagesManager.uses_pages_directory = False


PagesManager.__init__ = _init_without_pages_directory


def open_app(page: str | None = None, query_params: dict | None = None,
             timeout: float = 120) -> AppTest:
    """Run app.py once on `page` (a path like "pages/1_finite_vs_infinite.py"; None = home)
    with the URL query `query_params` and return the AppTest."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in (query_params or {}).items():
        at.query_params[key] = str(value)
    if page is not None:
        at.switch_page(page)
    return at.run()


def notices(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def plotly_charts(at: AppTest) -> list[dict]:
    """The figures (plotly JSON) of every st.plotly_chart on the page."""
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def exceptions(at: AppTest) -> list[str]:
    return [e.value for e in at.exception]


def plotly_values(arr) -> np.ndarray:
    """Values of a plotly JSON array, flattened: a plain (nested) list, with None as NaN, or the
    typed-array encoding {"bdata": base64, "dtype": ...}; labels (strings) come back as objects."""
    if arr is None:
        return np.zeros(0)
    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=arr["dtype"]).astype(float)
    flat = np.asarray(arr, dtype=object).ravel()
    try:
        return np.array([np.nan if a is None else a for a in flat], dtype=float)
    except (TypeError, ValueError):
        return flat
