"""The dashboard in a real browser: `outcomes serve` on a free port, Debian's
Chromium driven by Playwright, every page visited.

Checks: no exception on any page; plotly charts really draw (SVG paths in
the plot area); the MapLibre map really draws (non-blank canvas pixels,
offline, in software WebGL); keyboard focus moves through the page; caption
text meets WCAG AA contrast; a release published while the page is open is
picked up within seconds. Screenshots of every page are saved to a temporary
folder, or to ``OUTCOMES_SCREENSHOTS`` (``OUTCOMES_SCREENSHOTS=docs/screenshots``
refreshes the README's), so a test run never changes tracked files.

Where CI=true a missing browser is a failure; elsewhere the test is skipped
with the reason. No network is used (the server binds to 127.0.0.1 and the
browser is launched with background networking off).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import duckdb
import pytest

from dashboard.balancer import free_port
from tests.browser._serve import serving

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("OUTCOMES_SCREENSHOTS") or Path(tempfile.gettempdir()) / "outcomes-screenshots")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]
PAGES = [("", "overview", "Place overview"), ("trends", "trends", "Trends"),
         ("compare", "compare", "Compare areas"), ("map", "map", "Map"),
         ("early_years", "early_years", "Early years"), ("governance", "governance", "Data and governance")]
if (REPO / "dashboard" / "pages" / "evidence.py").exists():
    PAGES.insert(5, ("evidence", "evidence", None))


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} not found (apt-get install -y chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def linked(tmp_path_factory, request) -> Path:
    """The publication laid out as in production (symlink to a release file)."""
    from pipelines.framework import publication as pub

    override = os.environ.get("OUTCOMES_DASHBOARD_TEST_DB")
    source = Path(override) if override else request.getfixturevalue("demo_publication")
    var = tmp_path_factory.mktemp("browser") / "var"
    (var / "releases").mkdir(parents=True)
    first = var / "releases" / f"{source.resolve().stem}.duckdb"
    shutil.copyfile(source.resolve(), first)
    link = var / "outcomes.duckdb"
    pub.switch_to(link, first)
    return link


@pytest.fixture(scope="module")
def server(linked):
    with serving(linked, free_port(), log=linked.parent / "serve.log") as url:
        yield url


def wait_until_run_finished(page, timeout_ms: int = 90_000) -> None:
    """/_stcore/health answers before the script has run: wait for the app to
    finish (no running status widget, no skeletons), then for charts."""
    page.wait_for_selector("[data-testid=stApp]", timeout=timeout_ms)
    page.wait_for_function(
        """() => {
            const running = document.querySelector('[data-testid=stStatusWidget]');
            const skel = document.querySelectorAll('[data-testid=stSkeleton]').length;
            const main = document.querySelector('[data-testid=stMain]');
            return !running && skel === 0 && main && main.innerText.length > 50;
        }""", timeout=timeout_ms)
    page.wait_for_timeout(1500)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=timeout_ms)


def _screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=stMain]'); return m ? m.scrollHeight : 1000 }")
    page.set_viewport_size({"width": 1400, "height": int(min(max(height, 900), 7000))})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    page.set_viewport_size({"width": 1400, "height": 1000})


def _canvas_ink(page) -> int:
    """Non-white pixels of the map's WebGL canvas (from a real screenshot)."""
    import numpy as np
    from PIL import Image

    canvas = page.locator(".js-plotly-plot canvas").first
    canvas.scroll_into_view_if_needed()
    img = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB"))
    return int((img.min(axis=2) < 235).sum())


def _luminance(rgb: tuple[float, float, float]) -> float:
    def ch(c):
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (ch(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(fg, bg) -> float:
    a, b = sorted([_luminance(fg), _luminance(bg)], reverse=True)
    return (a + 0.05) / (b + 0.05)


def test_every_page_draws_in_a_real_browser(browser, server, linked):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    failed_requests: list[str] = []
    page.on("requestfailed", lambda r: failed_requests.append(r.url))
    for path, name, heading in PAGES:
        page.goto(f"{server}/{path}")
        wait_until_run_finished(page)
        if heading:
            page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=30_000)
        assert page.locator("[data-testid=stException]").count() == 0, f"exception on {name}"
        charts = page.locator(".js-plotly-plot")
        if name in ("trends", "compare", "early_years"):
            charts.first.wait_for(timeout=30_000)
            # the data really drew: SVG paths inside the plot area
            page.wait_for_function(
                "() => document.querySelectorAll('.js-plotly-plot .main-svg .trace path').length > 5",
                timeout=30_000)
        if name == "map":
            charts.first.wait_for(timeout=30_000)
            page.wait_for_selector(".js-plotly-plot canvas", timeout=30_000)
            page.wait_for_timeout(2500)  # MapLibre renders asynchronously
            ink = _canvas_ink(page)
            assert ink > 5_000, f"the map canvas is blank ({ink} drawn pixels)"
        if name == "overview":
            assert page.locator("[data-testid=stMetric]").count() >= 4
        _screenshot(page, name)
        if name == "compare":  # the funnel plot, behind its tab
            page.get_by_role("tab", name="Funnel plot").click()
            page.wait_for_function(
                "() => [...document.querySelectorAll('.js-plotly-plot')].some(p => p.offsetParent !== null "
                "&& p.querySelectorAll('.trace path').length > 5 && p.innerText.includes('99.8% limits'))",
                timeout=30_000)
            _screenshot(page, "compare_funnel")
    # nothing was fetched from the internet (maps, fonts, icons all local)
    external = [u for u in failed_requests if not u.startswith(server)]
    assert not external, external
    page.close()


def test_keyboard_and_contrast(browser, server):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/trends")
    wait_until_run_finished(page)
    focused = set()
    for _ in range(12):
        page.keyboard.press("Tab")
        tag = page.evaluate("() => document.activeElement && (document.activeElement.getAttribute('aria-label') "
                            "|| document.activeElement.tagName)")
        focused.add(tag)
    assert len(focused - {"BODY", None}) >= 4, focused  # focus moves through the controls
    colours = page.evaluate("""() => {
        const el = document.querySelector('[data-testid=stCaptionContainer]');
        const s = getComputedStyle(el);
        let bgEl = el, bg = 'rgba(0, 0, 0, 0)';
        while (bgEl && (bg === 'rgba(0, 0, 0, 0)' || bg === 'transparent')) {
            bg = getComputedStyle(bgEl).backgroundColor; bgEl = bgEl.parentElement; }
        return [s.color, bg];
    }""")

    def rgb(css: str):
        parts = [float(x) for x in css[css.index("(") + 1:-1].split(",")]
        if len(parts) == 4:  # blend alpha over white
            a = parts[3]
            return tuple(p * a + 255 * (1 - a) for p in parts[:3])
        return tuple(parts)

    assert _contrast(rgb(colours[0]), rgb(colours[1])) >= 4.5, colours
    page.close()


def test_new_release_appears_without_reload(browser, server, linked):
    from pipelines.framework import publication as pub

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/governance")
    wait_until_run_finished(page)
    current = linked.resolve()
    new_id = "20991231T235959000Z-browser"
    new = current.parent / f"{new_id}.duckdb"
    shutil.copyfile(current, new)
    con = duckdb.connect(str(new))
    con.execute("UPDATE release SET release_id = ?", [new_id])
    con.close()
    pub.switch_to(linked, new)
    page.wait_for_function(f"() => document.body.innerText.includes('{new_id}')", timeout=20_000)
    wait_until_run_finished(page)
    assert page.locator("[data-testid=stException]").count() == 0
    assert current.stem not in page.locator("[data-testid=stMain]").inner_text()
    page.close()
