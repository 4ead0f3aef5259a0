"""Stop the server promptly on SIGTERM / Ctrl-C, even while a page is computing.

Why the server took more than 15 s to stop: Streamlit's SIGTERM handler stops the web server and
asks each session's script thread to stop, but a script thread only notices at its next Streamlit
call. A page busy in a long numba / JAX / numpy computation (training, kernel sweeps, the thread
pools of ntk_core's `run_split` and training workers) makes no Streamlit call for many seconds, and
at interpreter exit Python joins every non-daemon thread (the script threads and the
ThreadPoolExecutor workers) before the process ends. So the process lived until the running
computation finished.

`install()` registers, once per process, a hook that Python's threading shutdown calls *before* it
joins those threads (threading._register_atexit hooks run in reverse order of registration, so it
runs before concurrent.futures' own join). The hook flushes the log streams and ends the process
with `os._exit(0)`: results under computation are discarded (the caches hold only finished
results, so nothing on disk or in memory is half-written that a restart would read).

It acts only inside a real `streamlit run` server (not in AppTests or unit tests, where ending the
process would cut pytest short).
"""
from __future__ import annotations

import logging
import os
import sys
import threading
# imported before the hook is registered, so that its own exit hook (which joins the pool workers)
# runs after ours
import concurrent.futures.thread  # noqa: F401,E402

_INSTALLED = False


def _in_streamlit_server() -> bool:
    try:
        import streamlit as st
        from streamlit import runtime
    except ImportError:  # pragma: no cover
        return False
    try:
        if st.get_option("global.appTest"):
            return False
    except Exception:  # noqa: BLE001 - option missing in another streamlit version
        pass
    return runtime.exists() and "pytest" not in sys.modules


def _exit_now() -> None:
    busy = [t.name for t in threading.enumerate()
            if t is not threading.current_thread() and not t.daemon and t.is_alive()]
    if busy:
        logging.getLogger("ntk_explorer").info(
            "stopping without waiting for %d running thread(s): %s", len(busy), ", ".join(busy))
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream must not block the exit
            pass
    logging.shutdown()
    os._exit(0)


def install() -> bool:
    """Register the prompt-exit hook (idempotent). Returns True when it is active."""
    global _INSTALLED
    if _INSTALLED:
        return True
    if not _in_streamlit_server():
        return False
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # pragma: no cover - Python without the hook
        return False
    try:
        register(_exit_now)
    except RuntimeError:  # the interpreter is already shutting down
        return False
    _INSTALLED = True
    return True
