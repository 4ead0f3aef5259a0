"""Sidebar controls bound to the URL, shared by every page.

Every control has a key that is also its URL query parameter, so copying the address reproduces the
screen on another machine. How a value is chosen on each run:

1. the widget's own session state, if it exists (the user moved it, or a preset set it);
2. else the last value this session saw for that key (kept across page switches);
3. else the URL as it was when the session started (parsed and validated: an unparsable or
   out-of-range value falls back to the default and shows a notice at the top of the page);
4. else the default.

At the end of every run `finish_run()` writes all controls rendered in that run back to
`st.query_params` and reports URL parameters that no control on the page knows.

app.py calls, in order::

    controls.begin_run()               # notice area at the top of the page, registry reset
    shared = controls.shared_controls(page_id)   # presets, network, display options (sidebar)
    pg.run()                           # the page adds its own controls
    controls.finish_run()              # unknown-parameter notices, URL write-back

A page reads the shared values with `controls.shared()` (a `SharedControls`) and adds its own
controls with the url_* functions, which all take ``(key, label, ..., default, *, where=st.sidebar,
help=None)`` and return the current value:

    url_slider(key, label, min_value, max_value, default, step=None, format=None)   int or float
    url_number(key, label, min_value, max_value, default, step=None, format=None)   int or float
    url_select_slider(key, label, options, default, format_func=str)
    url_selectbox(key, label, options, default, format_func=str)
    url_radio(key, label, options, default, format_func=str, horizontal=False)
    url_toggle(key, label, default)

Every url_* function also takes ``disabled=False``: a control that does nothing in the current
mode is drawn disabled, with the reason in its help text (see `inactive_help`).
    declare(*keys)      a conditional control's key is known even when it is not drawn

Pages should not call st.stop(): it would skip finish_run (the URL write-back); use if/else.
Options of selectors appear in the URL as ``str(option)``. Keys must be unique across pages (the
shared keys `SHARED_KEYS` and ``preset`` are reserved); a value that is invalid for the widget it
meets (e.g. a key reused with another range) falls back to the default. `notice(msg)` shows a
message in the notice area. Presets live in `dashboard.presets`; ``?preset=<id>`` in a URL applies
one on the first run, explicit URL parameters override it.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import streamlit as st

import ntk_core as nc

from . import presets as _presets

# Limits shown in the UI (ntk_core enforces its own as well).
MAX_DEPTH = 20
MAX_WIDTH = 4096
MAX_SEED = 2**31 - 1
THEMES = ("auto", "light", "dark")

SHARED_DEFAULTS: dict[str, Any] = {
    "depth": 2,
    "width": 512,
    "sigma_w": 1.5,
    "sigma_b": 0.05,
    "activation": "erf",
    "seed": 0,
    "presentation": False,
    "theme": "auto",
}
SHARED_KEYS = tuple(SHARED_DEFAULTS)
PRESET_PARAM = "preset"
_IGNORED_PARAMS = {"embed", "embed_options", PRESET_PARAM}

_STORE = "_urlctl_values"        # key -> last value seen this session (survives page switches)
_INITIAL = "_urlctl_initial_url"  # the URL query params at the first run of the session
_NOTICES = "_urlctl_notices"      # messages shown at the top of the page
_RUN_KEYS = "_urlctl_run_keys"    # key -> formatter, for controls rendered in this run
_CHECKED = "_urlctl_unknown_checked"
_PRESET_CHOICE = "_urlctl_preset_choice"
_NO_PRESET = "(choose a preset)"
_DEFAULTS = "_urlctl_defaults"    # key -> the default its control was drawn with


@dataclasses.dataclass(frozen=True)
class SharedControls:
    """Values of the shared sidebar controls (depth = number of hidden layers)."""

    depth: int
    width: int
    sigma_w: float
    sigma_b: float
    activation: str
    seed: int
    presentation: bool
    theme: str  # "light" or "dark": the theme the charts use (resolved from "auto")

    def mlp(self, **overrides) -> nc.MLP:
        """The fully connected network these controls describe."""
        kwargs = dict(depth=self.depth, width=self.width, w_std=self.sigma_w, b_std=self.sigma_b,
                      activation=self.activation)
        kwargs.update(overrides)
        return nc.MLP(**kwargs)


# --------------------------------------------------------------------------------------------
# Parsing and formatting of URL values
# --------------------------------------------------------------------------------------------
def _fmt_number(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.12g}"


def _number_parser(kind: type, low, high) -> Callable[[Any], Any]:
    def parse(raw):
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            value = raw
        else:
            text = str(raw).strip()
            try:
                value = int(text) if kind is int else float(text)
            except ValueError:
                raise ValueError(f"not {'an integer' if kind is int else 'a number'}") from None
        if kind is int:
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError("not an integer")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError("not a finite number")
        if value < low or value > high:
            raise ValueError(f"outside [{_fmt_number(low)}, {_fmt_number(high)}]")
        return value

    return parse


def _option_parser(options: Sequence) -> Callable[[Any], Any]:
    by_text = {str(o): o for o in options}

    def parse(raw):
        if not isinstance(raw, str):
            for o in options:
                if o == raw and type(o) is type(raw):
                    return o
            raw = str(raw)
        if raw in by_text:
            return by_text[raw]
        raise ValueError("not one of " + ", ".join(by_text))

    return parse


def _parse_bool(raw):
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean (use 1 or 0)")


def _fmt_bool(value) -> str:
    return "1" if value else "0"


# --------------------------------------------------------------------------------------------
# Session bookkeeping
# --------------------------------------------------------------------------------------------
def _store() -> dict:
    return st.session_state.setdefault(_STORE, {})


def _initial_url() -> dict:
    if _INITIAL not in st.session_state:
        st.session_state[_INITIAL] = {k: st.query_params.get(k) for k in st.query_params.keys()}
    return st.session_state[_INITIAL]


def notice(message: str) -> None:
    """Show `message` in the notice area at the top of the page (until dismissed)."""
    notices = st.session_state.setdefault(_NOTICES, [])
    if message not in notices:
        notices.append(message)


def declare(*keys: str) -> None:
    """Mark URL parameters as known on this page without drawing their control (a control that
    is shown only in some states, e.g. the SGD batch size), so they raise no notice."""
    st.session_state.setdefault("_urlctl_declared", set()).update(keys)


def _bind(key: str, default, parse: Callable, fmt: Callable, make_widget: Callable):
    """Initialise st.session_state[key] (state, store, URL, default), draw the widget, remember it."""
    run_keys = st.session_state.setdefault(_RUN_KEYS, {})
    run_keys[key] = fmt
    st.session_state.setdefault(_DEFAULTS, {})[key] = default
    store = _store()
    if key not in st.session_state:
        value = default
        if key in store:
            try:
                value = parse(store[key])
            except ValueError:
                value = default
        else:
            raw = _initial_url().get(key)
            if raw is not None:
                try:
                    value = parse(raw)
                except ValueError as err:
                    notice(f"URL parameter `{key}={raw}` ignored ({err}); using the default "
                           f"`{fmt(default)}`.")
        st.session_state[key] = value
    else:
        try:
            parse(st.session_state[key])
        except ValueError:
            st.session_state[key] = default
    value = make_widget(key)
    store[key] = value
    return value


# --------------------------------------------------------------------------------------------
# URL-bound widgets
# --------------------------------------------------------------------------------------------
def _numeric_kind(*values) -> type:
    return float if any(isinstance(v, float) for v in values if v is not None) else int


def url_slider(key, label, min_value, max_value, default, step=None, format=None, *, where=None,
               help=None,
               disabled=False):
    """st.slider bound to the URL parameter `key`; int if all bounds/default/step are ints."""
    kind = _numeric_kind(min_value, max_value, default, step)
    lo, hi, dflt = kind(min_value), kind(max_value), kind(default)
    step = None if step is None else kind(step)
    box = where if where is not None else st.sidebar
    return _bind(key, dflt, _number_parser(kind, lo, hi), _fmt_number,
                 lambda k: box.slider(label, lo, hi, step=step, format=format, key=k, help=help, disabled=disabled))


def url_number(key, label, min_value, max_value, default, step=None, format=None, *, where=None,
               help=None,
               disabled=False):
    """st.number_input bound to the URL parameter `key`."""
    kind = _numeric_kind(min_value, max_value, default, step)
    lo, hi, dflt = kind(min_value), kind(max_value), kind(default)
    step = None if step is None else kind(step)
    box = where if where is not None else st.sidebar
    return _bind(key, dflt, _number_parser(kind, lo, hi), _fmt_number,
                 lambda k: box.number_input(label, lo, hi, step=step, format=format, key=k,
                                            help=help, disabled=disabled))


def url_select_slider(key, label, options, default, format_func=str, *, where=None, help=None,
               disabled=False):
    """st.select_slider over `options` bound to the URL parameter `key` (as str(option))."""
    options = list(options)
    box = where if where is not None else st.sidebar
    return _bind(key, default, _option_parser(options), str,
                 lambda k: box.select_slider(label, options=options, format_func=format_func,
                                             key=k, help=help, disabled=disabled))


def url_selectbox(key, label, options, default, format_func=str, *, where=None, help=None,
               disabled=False):
    """st.selectbox bound to the URL parameter `key` (as str(option))."""
    options = list(options)
    box = where if where is not None else st.sidebar
    return _bind(key, default, _option_parser(options), str,
                 lambda k: box.selectbox(label, options, format_func=format_func, key=k,
                                         help=help, disabled=disabled))


def url_radio(key, label, options, default, format_func=str, horizontal=False, *, where=None,
              help=None,
               disabled=False):
    """st.radio bound to the URL parameter `key` (as str(option))."""
    options = list(options)
    box = where if where is not None else st.sidebar
    return _bind(key, default, _option_parser(options), str,
                 lambda k: box.radio(label, options, format_func=format_func, key=k, help=help,
                                     horizontal=horizontal, disabled=disabled))


def url_toggle(key, label, default, *, where=None, help=None,
               disabled=False):
    """st.toggle bound to the URL parameter `key` (1 or 0)."""
    box = where if where is not None else st.sidebar
    return _bind(key, bool(default), _parse_bool, _fmt_bool,
                 lambda k: box.toggle(label, key=k, help=help, disabled=disabled))


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------
def apply_preset(preset_id: str) -> None:
    """Set every control named in the preset (shared and page-specific) to the preset's value."""
    values = _presets.PRESETS[preset_id]["values"]
    _mark_chosen(values)
    store = _store()
    for key, value in values.items():
        store[key] = value
        # the widget re-reads (and validates) the value from the store on the next run
        st.session_state.pop(key, None)


def _on_preset_chosen():
    choice = st.session_state.get(_PRESET_CHOICE)
    if choice and choice != _NO_PRESET:
        apply_preset(choice)


def _preset_still_holds(preset_id: str) -> bool:
    """Whether every control of the preset still has the preset's value (the widget's new value if
    the user just moved it, else the stored one)."""
    store = _store()
    for key, value in _presets.PRESETS[preset_id]["values"].items():
        current = st.session_state[key] if key in st.session_state else store.get(key)
        if current is None or not _same(current, value):
            return False
    return True


def _preset_selector(page_id: str | None) -> None:
    ids = _presets.for_page(page_id)
    if not ids:
        return
    choice = st.session_state.get(_PRESET_CHOICE)
    # the chosen preset stays shown until a control it sets is changed
    if choice not in ids or not _preset_still_holds(choice):
        st.session_state[_PRESET_CHOICE] = _NO_PRESET
    st.sidebar.selectbox(
        "Preset (paper figure)",
        [_NO_PRESET, *ids],
        format_func=lambda i: i if i == _NO_PRESET else _presets.PRESETS[i]["label"],
        key=_PRESET_CHOICE,
        on_change=_on_preset_chosen,
        help="Sets every control to reproduce a figure; you can then move any control.",
    )


def _apply_url_preset() -> None:
    """On the first run: ?preset=<id> sets the controls the URL does not set itself."""
    raw = _initial_url().get(PRESET_PARAM)
    if raw is None or st.session_state.get("_urlctl_preset_done"):
        return
    st.session_state["_urlctl_preset_done"] = True
    if raw not in _presets.PRESETS:
        notice(f"URL parameter `{PRESET_PARAM}={raw}` ignored (unknown preset; known: "
               f"{', '.join(_presets.PRESETS)}).")
        return
    explicit = _initial_url()
    store = _store()
    _mark_chosen(_presets.PRESETS[raw]["values"])
    for key, value in _presets.PRESETS[raw]["values"].items():
        if key not in explicit:
            store[key] = value
    st.session_state[_PRESET_CHOICE] = raw


def _matching_presets(page_id: str | None) -> list[str]:
    store = _store()
    matches = []
    for pid in _presets.for_page(page_id):
        values = _presets.PRESETS[pid]["values"]
        if all(key in store and _same(store[key], v) for key, v in values.items()):
            matches.append(pid)
    return matches


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


# --------------------------------------------------------------------------------------------
# Page topics and "Reset this page"
# --------------------------------------------------------------------------------------------
# A page's topic (`PageInfo.topic`) is applied when the page opens, unless the session carries
# shared settings somebody chose: URL parameters or a preset at the start of the session, or a
# shared control moved away from the value the app set itself (a default or an earlier topic).
# Display options (presentation, theme) are never touched.
_AUTO = "_urlctl_auto"            # shared key -> the value the app itself last set (default/topic)
_CHOSEN = "_urlctl_chosen"        # shared keys set by the URL or a preset (explicit choices)
_PAGE = "_urlctl_page"            # the page id of the previous run
_PAGE_KEYS = "_urlctl_page_keys"  # page id -> keys of every control that page has drawn
_DISPLAY_KEYS = ("presentation", "theme")
TOPIC_KEYS = tuple(k for k in SHARED_KEYS if k not in _DISPLAY_KEYS)


def topic(page_id: str | None) -> dict:
    """The shared values the page's topic is about (empty for the home page)."""
    if page_id is None:
        return {}
    from . import page_registry
    try:
        return dict(page_registry.by_id(page_id).topic)
    except KeyError:
        return {}


def describe(values: dict) -> str:
    """Short text of shared values, e.g. 'ReLU, depth 3, σ_w = 1, σ_b = 0.1'."""
    names = {"sigma_w": "σ_w", "sigma_b": "σ_b"}
    parts = []
    for key, value in values.items():
        if key == "activation":
            parts.append({"relu": "ReLU", "erf": "erf", "tanh": "tanh"}.get(value, str(value)))
        elif key in ("depth", "width", "seed"):
            parts.append(f"{key} {value}")
        else:
            parts.append(f"{names.get(key, key)} = {_fmt_number(value)}")
    return ", ".join(parts)


def _mark_chosen(values: dict) -> None:
    st.session_state.setdefault(_CHOSEN, set()).update(k for k in values if k in TOPIC_KEYS)


def _auto() -> dict:
    return st.session_state.setdefault(_AUTO, {k: SHARED_DEFAULTS[k] for k in TOPIC_KEYS})


def chosen_shared_keys() -> set:
    """Shared keys whose current value somebody chose (URL, preset, a moved control)."""
    store, auto = _store(), _auto()
    chosen = set(st.session_state.get(_CHOSEN, set()))
    chosen.update(k for k in TOPIC_KEYS if k in store and not _same(store[k], auto[k]))
    return chosen


def _set_values(values: dict) -> None:
    """Set controls to `values` before their widgets are drawn (like a preset)."""
    store = _store()
    for key, value in values.items():
        store[key] = value
        st.session_state.pop(key, None)


def _apply_topic(page_id: str | None) -> None:
    values = topic(page_id)
    _set_values(values)
    _auto().update({k: v for k, v in values.items() if k in TOPIC_KEYS})
    st.session_state[_CHOSEN] = set(st.session_state.get(_CHOSEN, set())) - set(values)


def _apply_topic_on_open(page_id: str | None) -> None:
    """When the page changes (or the session starts): the topic, unless settings were chosen."""
    first = _PAGE not in st.session_state
    opened = first or st.session_state[_PAGE] != page_id
    st.session_state[_PAGE] = page_id
    if first:
        _mark_chosen({k: None for k in _initial_url()})
    if opened and topic(page_id) and not chosen_shared_keys():
        _apply_topic(page_id)


def off_topic(page_id: str | None) -> dict:
    """The topic values the current settings differ from (empty when on topic), leaving out the
    shared controls the page does not use."""
    store, url = _store(), _initial_url()
    unused = UNUSED_SHARED.get(page_id or "", {})

    def now(key):  # before this run draws the control: its last value, else its default
        return store[key] if key in store else None if key in url else SHARED_DEFAULTS[key]

    return {k: v for k, v in topic(page_id).items() if k not in unused and not _same(now(k), v)}


def switch_to_topic(page_id: str | None) -> None:
    """Set the shared controls to the page's topic (button callback)."""
    _apply_topic(page_id)


def reset_page(page_id: str | None) -> None:
    """Every control this page has drawn back to its default, then the topic; display options kept
    (button callback)."""
    defaults = st.session_state.get(_DEFAULTS, {})
    keys = st.session_state.get(_PAGE_KEYS, {}).get(page_id, set())
    values = {k: defaults[k] for k in keys if k in defaults and k not in _DISPLAY_KEYS}
    values.update({k: SHARED_DEFAULTS[k] for k in TOPIC_KEYS})
    _set_values(values)
    st.session_state[_AUTO] = {k: SHARED_DEFAULTS[k] for k in TOPIC_KEYS}
    st.session_state[_CHOSEN] = set()
    _apply_topic(page_id)


def _remember_page_keys(run_keys: dict) -> None:
    page_id = st.session_state.get(_PAGE)
    if page_id is not None:
        st.session_state.setdefault(_PAGE_KEYS, {}).setdefault(page_id, set()).update(run_keys)


def _page_tools(page_id: str | None) -> None:
    """Sidebar: 'Switch to this page's setting (...)' when off topic, and 'Reset this page'. A
    preset of this page that still holds is on topic too (the paper's own setting)."""
    if page_id is None:
        return
    choice = st.session_state.get(_PRESET_CHOICE)
    own_preset = choice in _presets.for_page(page_id) and _preset_still_holds(choice)
    missing = {} if own_preset else off_topic(page_id)
    side = st.sidebar
    if missing:
        side.button(f"Switch to this page's setting ({describe(topic(page_id))})",
                    key="_urlctl_topic_button", on_click=switch_to_topic, args=(page_id,),
                    width="stretch",
                    help="Your shared settings were kept from the link or another page; this "
                         f"page's topic is about {describe(topic(page_id))}.")
    side.button("Reset this page", key="_urlctl_reset_button", on_click=reset_page,
                args=(page_id,), icon=":material/restart_alt:", width="stretch",
                help="Every control of this page back to its default and the shared network to "
                     "this page's topic; presentation mode and theme are kept.")


# --------------------------------------------------------------------------------------------
# The run protocol used by app.py
# --------------------------------------------------------------------------------------------
def begin_run() -> None:
    """Reset the per-run registry and draw the notice area (call before any control)."""
    st.session_state[_RUN_KEYS] = {}
    st.session_state["_urlctl_declared"] = set()
    st.session_state["_urlctl_preset_box"] = None
    _initial_url()
    _apply_url_preset()


# Shared controls a page does not use: drawn disabled, with the reason (page id -> key -> reason).
# A new page that ignores a shared control adds one line here.
UNUSED_SHARED: dict[str, dict[str, str]] = {
    "kernel_convergence": {"width": "this page sets its widths itself (Width A, B, C and the "
                                    "sweep below)"},
    "depth": {"width": "this page is about the infinite-width kernels only",
              "depth": "this page sweeps the depth itself (Largest depth L_max below)"},
    "deep_narrow": dict.fromkeys(
        ("depth", "width", "sigma_w", "sigma_b", "activation"),
        "these networks are ReLU, d_in + d_out + 1 wide and initialised as in Lee et al. (2022); "
        "their depths are set on the page"),
    "image_kernels": {"width": "the kernels are infinite-width and the finite CNNs take their "
                               "width from CNN channels below"},
}


def inactive_help(help_text: str | None, reason: str | None) -> str | None:
    """The help text of a control, with the reason it does nothing now (if it does nothing)."""
    if not reason:
        return help_text
    return f"Not used here: {reason}." + (f" {help_text}" if help_text else "")


def shared_controls(page_id: str | None = None) -> SharedControls:
    """Draw the shared sidebar block (presets, network, display) and return its values."""
    _apply_topic_on_open(page_id)
    _page_tools(page_id)
    _preset_selector(page_id)
    side = st.sidebar
    unused = UNUSED_SHARED.get(page_id or "", {})
    side.markdown("**Network** (fully connected, NTK parameterization)")
    depth = url_slider("depth", "Depth (hidden layers)", 0, MAX_DEPTH, SHARED_DEFAULTS["depth"],
                       help=inactive_help(f"Number of hidden layers, 0..{MAX_DEPTH}; a width-1 "
                                          "readout follows.", unused.get("depth")),
                       disabled="depth" in unused)
    width = url_number("width", "Width (hidden units)", 1, MAX_WIDTH, SHARED_DEFAULTS["width"],
                       step=1, help=inactive_help(
                           f"Hidden units per layer of the finite networks, 1..{MAX_WIDTH}. The "
                           "infinite-width theory does not depend on it.", unused.get("width")),
                       disabled="width" in unused)
    sigma_w = url_slider("sigma_w", "sigma_w (weight std)", 0.05, 4.0, SHARED_DEFAULTS["sigma_w"],
                         step=0.05, help=inactive_help(
                             "σ_w: weights are σ_w/√fan-in · N(0, 1) (NTK parameterization). With "
                             "σ_b it sets the phase: ordered (small), critical, chaotic (large).",
                             unused.get("sigma_w")), disabled="sigma_w" in unused)
    sigma_b = url_slider("sigma_b", "sigma_b (bias std)", 0.0, 2.0, SHARED_DEFAULTS["sigma_b"],
                         step=0.01, help=inactive_help(
                             "σ_b: biases are σ_b · N(0, 1); 0 means no bias.",
                             unused.get("sigma_b")), disabled="sigma_b" in unused)
    activation = url_selectbox("activation", "Activation", nc.ACTIVATIONS,
                               SHARED_DEFAULTS["activation"], help=inactive_help(
                                   "The nonlinearity φ of every hidden layer; the infinite-width "
                                   "kernels use its exact dual (closed form or quadrature).",
                                   unused.get("activation")), disabled="activation" in unused)
    seed = url_number("seed", "Seed", 0, MAX_SEED, SHARED_DEFAULTS["seed"], step=1,
                      help="Seeds the data, the initialisations and SGD batches.")
    side.markdown("**Display**")
    presentation = url_toggle("presentation", "Presentation mode (projector)",
                              SHARED_DEFAULTS["presentation"],
                              help="Larger fonts, lines and markers.")
    theme_choice = url_radio("theme", "Chart theme", THEMES, SHARED_DEFAULTS["theme"],
                             horizontal=True,
                             help="'auto' follows the app theme (System, Light or Dark in the ⋮ "
                                  "menu at the top right).")
    # filled by finish_run, once the page has drawn (and stored) its own controls
    st.session_state["_urlctl_preset_box"] = (side.empty(), page_id)
    _page_css(presentation)
    values = SharedControls(depth=depth, width=int(width), sigma_w=sigma_w, sigma_b=sigma_b,
                            activation=activation, seed=int(seed), presentation=presentation,
                            theme=resolve_theme(theme_choice))
    st.session_state["_urlctl_shared"] = values
    return values


def _run_through_app_shell() -> None:
    """Streamlit treats an app with a pages/ folder as an old-style multipage app until the first
    st.navigation call in the process, so the very first request of a fresh server for a page URL
    runs the page file without app.py. Switch to st.navigation and rerun through app.py."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - streamlit internals moved
        return
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def shared() -> SharedControls:
    """The shared control values of this run (after app.py drew them)."""
    _run_through_app_shell()
    values = st.session_state.get("_urlctl_shared")
    if values is None:  # a page run on its own (e.g. a unit test): draw them here
        values = shared_controls()
    return values


def resolve_theme(choice: str) -> str:
    """'light' or 'dark': the explicit choice, else the app's theme (st.context.theme.type)."""
    if choice in ("light", "dark"):
        return choice
    try:
        kind = st.context.theme.type
    except Exception:  # noqa: BLE001 - no browser context (tests, bare mode)
        kind = None
    return kind if kind in ("light", "dark") else "light"


def _page_css(presentation: bool) -> None:
    """Page-wide CSS in one markdown element whose own slot is hidden (not st.html: Streamlit
    defers a style-only st.html to the end of the run, so a page in a long computation would be
    drawn without it).

    Always: formulas in half-width columns slightly smaller, so that a formula line fits its
    column. Presentation: main text and captions at least 18 px, compact headings and top padding
    so the first chart of a page fits a 1024x768 projector; formulas larger."""
    rules = ("[data-testid='stElementContainer']:has(style.ntk-css) {display: none;}"
             "[data-testid='stColumn'] .katex-display .katex {font-size: 0.95em;}")
    if presentation:
        rules += (
            "[data-testid='stMain'] [data-testid='stMarkdownContainer'] p,"
            " [data-testid='stMain'] [data-testid='stMarkdownContainer'] li {font-size: 1.25rem;}"
            "[data-testid='stMain'] [data-testid='stCaptionContainer'],"
            " [data-testid='stMain'] [data-testid='stCaptionContainer'] p {font-size: 1.15rem;}"
            "[data-testid='stMain'] [data-testid='stWidgetLabel'] p,"
            " [data-testid='stMain'] summary p, [data-testid='stMain'] [data-testid='stProgress'] p"
            " {font-size: 1.15rem;}"
            "[data-testid='stMain'] h1 {font-size: 2.2rem; padding-top: 0; padding-bottom: 0.3rem;}"
            "[data-testid='stMain'] h2, [data-testid='stMain'] h3 {font-size: 1.6rem;}"
            "[data-testid='stMainBlockContainer'] {padding-top: 3.75rem;}"  # just below the header
            "[data-testid='stSidebar'] label p {font-size: 1.1rem;}"
            ".katex-display .katex {font-size: 1.3em;}"
        )
    st.markdown(f"<style class='ntk-css'>{rules}</style>", unsafe_allow_html=True)


def show_notices(where=None) -> None:
    """Draw the pending notices (app.py calls this in a container at the top of the page)."""
    notices = st.session_state.get(_NOTICES, [])
    if not notices:
        return
    box = where if where is not None else st
    with box:
        for msg in notices:
            st.warning(msg, icon="⚠️")
        if st.button("Dismiss notices", key="_urlctl_dismiss"):
            st.session_state[_NOTICES] = []
            st.rerun()


def finish_run(notice_box=None) -> None:
    """Report unknown URL parameters (first run only), draw notices, write controls to the URL."""
    run_keys: dict = st.session_state.get(_RUN_KEYS, {})
    _remember_page_keys(run_keys)
    if not st.session_state.get(_CHECKED):
        st.session_state[_CHECKED] = True
        for key, raw in _initial_url().items():
            declared = st.session_state.get("_urlctl_declared", set())
            if key not in run_keys and key not in declared and key.lower() not in _IGNORED_PARAMS:
                notice(f"URL parameter `{key}={raw}` ignored (this page has no control "
                       f"named `{key}`).")
    show_notices(notice_box)
    box, page_id = st.session_state.get("_urlctl_preset_box") or (None, None)
    if box is not None:
        matches = _matching_presets(page_id)
        if matches:
            with box.container():
                for m in matches:
                    st.caption(f"Settings match preset: {_presets.PRESETS[m]['label']}. "
                               f"{_presets.PRESETS[m].get('source', '')}")
    store = _store()
    wanted = {key: fmt(store[key]) for key, fmt in run_keys.items() if key in store}
    current = {k: st.query_params.get(k) for k in st.query_params.keys()
               if k.lower() not in ("embed", "embed_options")}
    if current != wanted:
        st.query_params.from_dict(wanted)


def current_values() -> dict:
    """Every control value this session has seen (key -> value); for tests and debugging."""
    return dict(_store())
