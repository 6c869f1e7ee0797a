"""Text from the publication (area names, titles, sources, descriptions,
interventions) carrying HTML and JavaScript is shown as text on every page:
escaped for Streamlit's markdown (frame.md) and for plotly's pseudo-HTML
(charts.esc). The browser test (tests/browser/test_xss.py) checks that a
real browser runs none of it."""

from __future__ import annotations

import json
import re

import pytest

from dashboard import charts, frame

from .helpers import (EVIL_AREA, EVIL_INTERVENTION, EVIL_LABEL, EVIL_TEXT, PAGES,
                      make_hostile_publication, plotly_specs)

ALL_PAGES = PAGES + ("evidence",)
RAW = re.compile(r"<(img|script|svg|b)\b|\]\(|!\[", re.I)


def _unescape_md(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _texts(at) -> list[str]:
    """Everything Streamlit renders as markdown on the page."""
    out = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        out += [str(e.value) for e in getattr(at, kind)]
    out += [str(m.label) for m in at.metric]
    out += [str(b.label) for b in at.button]
    for r in at.radio:
        out += [str(r.label)] + [str(o) for o in r.options]
    out += [str(e.proto.label) for e in at.get("expander")]
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, release_file):
    return make_hostile_publication(release_file, tmp_path_factory.mktemp("hostile") / "hostile.duckdb")


def test_escaping_helpers():
    evil = '<img src=x onerror="alert(1)"> [a](javascript:x) ![i](y) :red[z] $m$ *b* `c`'
    md = frame.md(evil)
    assert not RAW.search(re.sub(r"\\.", "", md))
    assert _unescape_md(md) == evil                         # shown literally
    esc = charts.esc(evil)
    assert "<" not in esc and ">" not in esc and '"' not in esc
    assert esc.startswith("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;")
    assert charts._escs(["<b>", "a&b"]) == ["&lt;b&gt;", "a&amp;b"]
    assert frame.md(None) == "" and frame.md(float("nan")) == ""
    assert frame.md("line\nbreak") == "line break"


@pytest.mark.parametrize("page", ALL_PAGES)
def test_hostile_metadata_is_shown_as_text(make_app, hostile, page):
    at = make_app(db=hostile, page=page)
    assert not at.exception, at.exception
    texts = _texts(at)
    for t in texts:
        assert not RAW.search(re.sub(r"\\.", "", t)), f"unescaped markup on {page}: {t[:200]!r}"
    specs = json.dumps(plotly_specs(at))
    assert not re.search(r"<(img|script|svg)\b", specs, re.I), f"raw HTML in a chart on {page}"
    shown = "\n".join(_unescape_md(t) for t in texts)
    expected = {
        "overview": [EVIL_AREA, EVIL_LABEL],
        "evidence": [EVIL_TEXT],
        "governance": [EVIL_TEXT],
    }.get(page, [])
    for s in expected:
        assert s.replace("\n", " ") in shown, f"{s!r} not shown literally on {page}"
    for s in {"compare": [EVIL_AREA, EVIL_LABEL], "trends": [EVIL_LABEL]}.get(page, []):
        # in the charts (bar names, titles), escaped for plotly; the JSON escapes '"' again
        assert json.dumps(charts.esc(s))[1:-1] in specs, f"{s!r} not in the charts on {page}"


def test_published_intervention_name_is_escaped(make_app, hostile):
    at = make_app(db=hostile, page="evidence")
    sel = [s for s in at.selectbox if s.label == "Published intervention"]
    assert sel and EVIL_INTERVENTION in sel[0].options[0]  # a plain-text widget: shown as text
    assert not at.exception
