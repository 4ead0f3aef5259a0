"""Lecture layout in a real browser: every page and preset, at 1280x800 and 1024x768, in normal and
presentation mode, with the chart theme auto, light and dark on a light and a dark app.

Checked on every view (one JavaScript pass, `AUDIT_JS`):
- no formula (KaTeX) wider than its container; no button whose label is cut;
- every chart title, legend and annotation inside its chart; no axis title overlapping a legend;
- chart text contrast >= 4.5 against the chart background (composited over the app background
  when the chart is translucent);
- presentation mode: chart text and main text at least 18 px, and at 1024x768 the first chart of
  the page fully visible without scrolling.

To stay within a few minutes on 2 cores the matrix is covered without reloading where possible:
one server and one browser; per target (a page's defaults or a preset) a presentation-mode load
checked at 1024x768 then resized to 1280x800, and a normal-mode load checked at 1280x800 then
1024x768; the theme combinations are switched in place (the app theme through the emulated
`prefers-color-scheme`, the chart theme through the sidebar radio, a rerun without reload). The six
(chart theme x app theme) combinations are checked on each page's defaults, two of them on every
preset (the presets use the same figure builders). A target whose script is still computing after
SETTLE_S seconds (a long training that waits for shipped results or a button) is checked on what is
drawn, and not switched further. Screenshots go to tests/artifacts/layout_*.png.

Pages come from dashboard/page_registry.py if it exists (any list of entries with a url path), else
from PAGES in app.py; presets from dashboard.presets.PRESETS, so new pages and presets are covered
without editing this file.
"""
from __future__ import annotations

import ast
import os

import pytest

from test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, IDLE_JS, ROOT, server  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.layout]

if not os.path.exists(CHROMIUM):
    pytest.skip("chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

SETTLE_S = 40          # longest wait for a page's script per load
MIN_CONTRAST = 4.5
MIN_FONT_PX = 18
SIZES = {"1024": {"width": 1024, "height": 768}, "1280": {"width": 1280, "height": 800}}


def _page_entries() -> list[tuple[str, str]]:
    """(page id, url path) of every page: the page registry if present, else app.py's PAGES."""
    entries = []
    try:
        from dashboard import page_registry  # type: ignore  # noqa: PLC0415
    except ImportError:
        page_registry = None
    if page_registry is not None:
        for name in ("PAGES", "REGISTRY", "pages"):
            items = getattr(page_registry, name, None)
            items = items() if callable(items) else items
            for item in items or []:
                url = getattr(item, "url_path", None) or getattr(item, "url", None)
                pid = getattr(item, "page_id", None) or getattr(item, "id", None)
                if isinstance(item, dict):
                    url, pid = item.get("url_path") or item.get("url"), item.get("page_id") or item.get("id")
                if url:
                    entries.append((pid or url, url))
            if entries:
                return entries
    tree = ast.parse(open(os.path.join(ROOT, "app.py")).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PAGES"
                                                for t in node.targets):
            for path, _title, _icon, url in ast.literal_eval(node.value):
                name = os.path.splitext(os.path.basename(path))[0]
                pid = name.split("_", 1)[1] if name[:1].isdigit() and "_" in name else name
                if os.path.exists(os.path.join(ROOT, path)):
                    entries.append((pid, url))
    return entries


def _targets() -> list[tuple[str, str, bool]]:
    """(name, url path with query, full theme matrix?) for the home page, every page's defaults
    and every preset."""
    from dashboard.presets import PRESETS

    pages = _page_entries()
    url_of = {pid: url for pid, url in pages}
    targets = [("home", "", False)]
    targets += [(pid, url, True) for pid, url in pages]
    for preset_id, preset in PRESETS.items():
        if preset["page"] in url_of:
            targets.append((preset_id, f"{url_of[preset['page']]}?preset={preset_id}", False))
    return targets


AUDIT_JS = r"""
(opts) => {
  const problems = [];
  const r = (el) => el.getBoundingClientRect();
  const visible = (el) => { const b = r(el); return b.width > 0 && b.height > 0; };
  const name = (el) => (el.textContent || '').trim().slice(0, 60);
  const parse = (c) => { c = (c || '').trim();
    const h = c.match(/^#([0-9a-f]{3}|[0-9a-f]{6})$/i);
    if (h) { let x = h[1]; if (x.length === 3) x = x.split('').map(ch => ch + ch).join('');
      return [0, 2, 4].map(i => parseInt(x.slice(i, i + 2), 16)).concat([1]); }
    const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
    const p = m[1].split(',').map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (top, bottom) => { const a = top[3]; return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat([1]); };
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const contrast = (a, b) => { const l1 = lum(a), l2 = lum(b); return (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05); };
  const inside = (a, b, tol) => a.left >= b.left - tol && a.right <= b.right + tol && a.top >= b.top - tol && a.bottom <= b.bottom + tol;
  const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1 && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
  const appBg = parse(getComputedStyle(document.querySelector("[data-testid='stApp']")).backgroundColor) || [255, 255, 255, 1];

  // formulas
  document.querySelectorAll('.katex-display').forEach(d => {
    if (!visible(d)) return;
    const box = r(d.closest("[data-testid='stElementContainer']") || d.parentElement);
    let right = -1e9, left = 1e9;
    d.querySelectorAll('.katex-html .base').forEach(b => { const q = r(b); right = Math.max(right, q.right); left = Math.min(left, q.left); });
    if (right > box.right + 1 || left < box.left - 1)
      problems.push(`formula wider than its container (${Math.round(right - left)} px in ${Math.round(box.width)} px): ${name(d.querySelector('annotation') || d)}`);
  });
  // buttons
  // a folded sidebar (presentation mode) is off screen: its buttons are not seen until it opens
  const folded = (el) => { const sb = el.closest("[data-testid='stSidebar']"); return sb && r(sb).width < 50; };
  document.querySelectorAll('button').forEach(b => {
    if (!visible(b) || folded(b) || b.closest('.modebar') || b.closest('[data-testid="stToolbar"]')) return;
    const els = [b, ...b.querySelectorAll('*')];
    for (const el of els) {
      if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 && (el.textContent || '').trim()) {
        problems.push(`button label cut: "${name(b)}" (${el.scrollWidth} > ${el.clientWidth} px)`); break; }
    }
  });
  // charts
  const charts = [...document.querySelectorAll('.js-plotly-plot')].filter(visible);
  charts.forEach((gd, i) => {
    const svg = gd.querySelector('.main-svg'); if (!svg) return;
    const box = r(svg);
    const L = gd._fullLayout || {};
    const tag = `chart ${i + 1} (${name(gd.querySelector('.gtitle') || svg).slice(0, 40)})`;
    gd.querySelectorAll('.gtitle, .legend, .annotation').forEach(el => {
      if (visible(el) && !inside(r(el), box, 1)) problems.push(`${tag}: ${el.getAttribute('class')} outside the chart`);
    });
    const legends = [...gd.querySelectorAll('.legend')].filter(visible);
    gd.querySelectorAll('.infolayer text[class$="title"]').forEach(t => {
      if (!visible(t) || t.classList.contains('gtitle')) return;
      legends.forEach(lg => { if (overlap(r(t), r(lg))) problems.push(`${tag}: axis title "${name(t)}" overlaps the legend`); });
    });
    gd.querySelectorAll('.xtick text, .x2tick text').forEach(t => {
      legends.forEach(lg => { if (visible(t) && overlap(r(t), r(lg))) problems.push(`${tag}: tick label "${name(t)}" overlaps the legend`); });
    });
    const paper = parse(L.paper_bgcolor) || [0, 0, 0, 0];
    const bg = paper[3] < 1 ? over(paper, appBg) : paper;
    gd.querySelectorAll('.main-svg text').forEach(t => {
      if (!visible(t) || !(t.textContent || '').trim() || t.closest('.hoverlayer')) return;
      const cs = getComputedStyle(t);
      const fill = parse(cs.fill); if (!fill) return;
      const c = contrast(over(fill, bg), bg);
      // text in heatmap cells sits on the cell colour, and plotly picks black or white per cell
      if (c < opts.minContrast && !t.closest('.heatmaplayer')) problems.push(`${tag}: text "${name(t)}" contrast ${c.toFixed(2)} < ${opts.minContrast}`);
      if (opts.presentation && parseFloat(cs.fontSize) < opts.minFont) problems.push(`${tag}: text "${name(t)}" ${cs.fontSize} < ${opts.minFont} px`);
    });
  });
  if (opts.presentation) {
    document.querySelectorAll("[data-testid='stMain'] [data-testid='stMarkdownContainer'] p").forEach(p => {
      // slider scale labels (min, max, value) are widget chrome, not text to read
      if (p.closest("[data-testid='stSlider']") && !p.closest("[data-testid='stWidgetLabel']")) return;
      if (visible(p) && parseFloat(getComputedStyle(p).fontSize) < opts.minFont)
        problems.push(`main text ${getComputedStyle(p).fontSize} < ${opts.minFont} px: ${name(p)}`);
    });
  }
  if (opts.firstChartVisible && charts.length) {
    const b = r(charts[0]);
    if (b.top < 0 || b.bottom > window.innerHeight + 1 || b.left < 0 || b.right > window.innerWidth + 1)
      problems.push(`first chart not fully visible without scrolling (top ${Math.round(b.top)}, bottom ${Math.round(b.bottom)}, viewport ${window.innerHeight})`);
  }
  return {problems, charts: charts.length, bg: charts.map(g => (g._fullLayout || {}).paper_bgcolor)};
}
"""


def _settle(page, timeout_s: float = SETTLE_S, first_run: bool = False) -> bool:
    """Wait until the script has finished (True) or `timeout_s` passed (False); then let plotly
    draw. After a page load (`first_run`) the script has not even started while the app still
    reads 'notRunning': wait for the URL the end of the first run writes (the shared controls)."""
    page.wait_for_selector("[data-testid='stApp']", timeout=60_000)
    settled = True
    try:
        if first_run:
            page.wait_for_function("() => location.search.includes('sigma_w=')",
                                   timeout=timeout_s * 1000)
        page.wait_for_timeout(400)
        page.wait_for_function(IDLE_JS, timeout=timeout_s * 1000)   # and no job running
        page.wait_for_timeout(400)
        page.wait_for_function(IDLE_JS, timeout=timeout_s * 1000)
    except sync_api.TimeoutError:
        settled = False
    if settled:  # every chart drawn (plotly's bundle loads once per browser context)
        try:
            page.wait_for_function(
                "() => [...document.querySelectorAll(\"[data-testid='stPlotlyChart']\")]"
                ".every(e => e.querySelector('.main-svg'))", timeout=30_000)
        except sync_api.TimeoutError:
            settled = False
    page.wait_for_timeout(700)  # plotly's responsive relayout after the last render
    return settled


def _audit(page, *, presentation: bool, first_chart: bool = False) -> dict:
    return page.evaluate(AUDIT_JS, {"minContrast": MIN_CONTRAST, "minFont": MIN_FONT_PX,
                                    "presentation": presentation,
                                    "firstChartVisible": first_chart})


def _switch_chart_theme(page, theme: str, expected_bg: str | None) -> bool:
    """Click the sidebar chart-theme radio (a rerun, no reload) and wait for the charts to redraw
    with `expected_bg` as their background."""
    page.locator("[data-testid='stSidebar'] [data-testid='stRadio']").filter(
        has_text="Chart theme").get_by_text(theme, exact=True).click()
    settled = _settle(page)
    if expected_bg is not None and settled:
        page.wait_for_function(
            "(bg) => [...document.querySelectorAll('.js-plotly-plot')].every("
            "g => (g._fullLayout || {}).paper_bgcolor === bg)", arg=expected_bg, timeout=20_000)
    return settled


def _url(server_url: str, path: str, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{server_url}/{path}{'&' if '?' in path else '?'}{query}"


LIGHT_BG, DARK_BG = "#ffffff", "#0e1117"


def test_layout_of_every_page_and_preset(server, browser_layout):  # noqa: F811
    os.makedirs(ARTIFACTS, exist_ok=True)
    failures: list[str] = []
    report_path = os.path.join(ARTIFACTS, "layout_report.txt")
    open(report_path, "w").close()

    def record(where: str, result: dict) -> None:
        lines = [f"{where}: {p}" for p in result["problems"]]
        failures.extend(lines)
        with open(report_path, "a") as f:  # readable while the test runs
            f.write(f"{where}: {result['charts']} charts, {len(lines)} problems"
                    f"{'' if result.get('settled', True) else ' (still computing: fit and contrast only)'}\n")
            f.writelines(line + "\n" for line in lines)

    only = [t for t in os.environ.get("NTK_LAYOUT_TARGETS", "").split(",") if t]
    for name, path, full_matrix in _targets():
        if only and name not in only:
            continue
        # ---- presentation mode, forced dark charts on the light app: 1024x768 then 1280x800 --
        ctx = browser_layout.new_context(viewport=SIZES["1024"], color_scheme="light")
        page = ctx.new_page()
        page.goto(_url(server, path, presentation=1, theme="dark"), wait_until="domcontentloaded")
        settled = _settle(page, first_run=True)
        where = f"{name} [presentation, 1024x768, charts dark, app light]"
        assert page.locator("[data-testid='stException']").count() == 0, where
        # the presentation checks need the finished page (fonts of a page still computing may not
        # have their page CSS yet); an unfinished page is checked for fit and contrast only
        record(where, {**_audit(page, presentation=settled, first_chart=settled), "settled": settled})
        page.screenshot(path=os.path.join(ARTIFACTS, f"layout_{name}_presentation_1024.png"))
        page.set_viewport_size(SIZES["1280"])
        page.wait_for_timeout(700)
        record(f"{name} [presentation, 1280x800, charts dark, app light]",
               _audit(page, presentation=settled))
        ctx.close()

        # ---- normal mode, forced light charts on the dark app: 1280x800 then 1024x768 ---------
        ctx = browser_layout.new_context(viewport=SIZES["1280"], color_scheme="dark")
        page = ctx.new_page()
        page.goto(_url(server, path, theme="light"), wait_until="domcontentloaded")
        settled = _settle(page, first_run=True) and settled
        record(f"{name} [normal, 1280x800, charts light, app dark]", _audit(page, presentation=False))
        page.set_viewport_size(SIZES["1024"])
        page.wait_for_timeout(700)
        record(f"{name} [normal, 1024x768, charts light, app dark]", _audit(page, presentation=False))
        page.screenshot(path=os.path.join(ARTIFACTS, f"layout_{name}_normal_1024_dark.png"))

        # ---- the remaining theme combinations, switched in place ------------------------------
        if settled and page.locator(".js-plotly-plot").count():
            combos = [("dark", "auto", DARK_BG)]
            if full_matrix:
                combos += [("light", "light", LIGHT_BG), ("light", "auto", LIGHT_BG),
                           ("dark", "dark", DARK_BG)]
            for app_theme, chart_theme, bg in combos:
                page.emulate_media(color_scheme=app_theme)
                if not _switch_chart_theme(page, chart_theme, bg):
                    break
                record(f"{name} [normal, 1024x768, charts {chart_theme}, app {app_theme}]",
                       _audit(page, presentation=False))
        ctx.close()

    assert not failures, f"{len(failures)} layout problems:\n" + "\n".join(failures)


@pytest.fixture(scope="module")
def browser_layout():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()
