"""Hostile text in the publication does not run in a real browser.

A copy of the demo release whose metadata carries HTML and JavaScript
(Trafford's area name, the alcohol indicator's catalogue titles, sources,
coverage and descriptions, the published intervention: see
``tests.dashboard.helpers.make_hostile_publication``) is served by
`outcomes serve`, and Debian's Chromium visits every page, hovers over the
charts and opens the tables. Every payload sets ``window.__xss`` if it runs;
it must stay undefined, and the text must appear literally on the page.

Uses the server and browser fixtures of test_browser.py (same rules: CI=true
makes a missing browser a failure).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.browser.test_browser import PAGES, browser, server, wait_until_run_finished  # noqa: F401 (fixtures)
from tests.dashboard.helpers import EVIL_AREA, EVIL_INTERVENTION, EVIL_LABEL, EVIL_TEXT, make_hostile_publication

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# literal text expected on each page (innerText, which includes SVG text)
LITERAL = {
    "overview": [EVIL_AREA, EVIL_LABEL],
    "compare": [EVIL_AREA],
    "evidence": [EVIL_TEXT],
    "governance": [EVIL_TEXT],
}


@pytest.fixture(scope="module")
def linked(tmp_path_factory, request) -> Path:
    """The hostile release, laid out as in production (overrides
    test_browser's ``linked`` for the ``server`` fixture)."""
    from pipelines.framework import publication as pub

    source = request.getfixturevalue("demo_publication")
    var = tmp_path_factory.mktemp("xss") / "var"
    (var / "releases").mkdir(parents=True)
    first = var / "releases" / f"{Path(source).resolve().stem}.duckdb"
    make_hostile_publication(Path(source).resolve(), first)
    link = var / "outcomes.duckdb"
    pub.switch_to(link, first)
    return link


def _assert_nothing_ran(page, where: str) -> None:
    assert page.evaluate("() => typeof window.__xss") == "undefined", \
        f"injected script ran on {where}: window.__xss = {page.evaluate('() => window.__xss')}"


def test_hostile_metadata_never_runs_in_the_browser(browser, server):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    # a canary: the same check sees a payload that does run
    page.goto(f"{server}/")
    wait_until_run_finished(page)
    page.evaluate("() => { const d = document.createElement('div'); "
                  "d.innerHTML = '<img src=x onerror=\"window.__canary=1\">'; document.body.appendChild(d); }")
    page.wait_for_function("() => window.__canary === 1", timeout=10_000)

    for path, name, _heading in PAGES:
        page.goto(f"{server}/{path}")
        wait_until_run_finished(page)
        assert page.locator("[data-testid=stException]").count() == 0, f"exception on {name}"
        # hover over chart marks (plotly renders hover labels from the same text)
        marks = page.locator(".js-plotly-plot .trace path, .js-plotly-plot .point path")
        for i in range(min(marks.count(), 6)):
            try:
                marks.nth(i).hover(timeout=2_000, force=True)
                page.wait_for_timeout(200)
            except Exception:  # a mark hidden behind another: hovering the others is enough
                pass
        # open every expander (tables behind the charts, legends)
        for exp in page.locator("[data-testid=stExpander] summary").all()[:8]:
            try:
                exp.click(timeout=2_000)
            except Exception:
                pass
        page.wait_for_timeout(800)
        _assert_nothing_ran(page, name)
        text = page.locator("[data-testid=stApp]").inner_text()
        svg_text = page.evaluate(
            "() => [...document.querySelectorAll('.js-plotly-plot svg text')].map(t => t.textContent).join('\\n')")
        for s in LITERAL.get(name, []):
            flat = " ".join(s.split())
            assert flat in " ".join(text.split()) or flat in " ".join(svg_text.split()), \
                f"{s!r} is not shown literally on {name}"
        # nothing from the payloads became an element
        assert page.locator("img[src=x], img[src='x.png'], [onerror], [onload]").count() == 0, name
        assert page.locator("a[href^='javascript']").count() == 0, name

    # the published intervention's name, in the evidence page's drop-down
    page.goto(f"{server}/evidence")
    wait_until_run_finished(page)
    # the drop-downs can arrive after the page's first text: wait for them
    # (a timeout falls through to the assertion, which shows what was there)
    try:
        page.wait_for_selector("[data-testid=stSelectbox] input", timeout=30_000)
    except Exception:
        pass
    boxes = " ".join(page.locator("[data-testid=stSelectbox]").all_inner_texts()
                     + page.locator("[data-testid=stSelectbox] input").evaluate_all("els => els.map(e => e.value)"))
    assert EVIL_INTERVENTION in boxes, \
        (boxes[:500], page.locator("[data-testid=stMain]").inner_text()[:1000])
    _assert_nothing_ran(page, "evidence")
    assert not dialogs, dialogs
    page.close()
