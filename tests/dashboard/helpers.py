"""Helpers shared by the dashboard tests."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGES = ("overview", "trends", "compare", "map", "early_years", "governance")


def release_id_of(path: Path) -> str:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT release_id FROM release").fetchone()[0]
    finally:
        con.close()


def plotly_specs(at: AppTest) -> list[dict]:
    import json

    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def text_of(at: AppTest) -> str:
    """All markdown, captions, titles, metric labels and alerts of a run."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value} {m.delta}" for m in at.metric]
    return "\n".join(parts)


# Text that would run in a browser if the dashboard let it through as HTML.
# Each payload sets window.__xss; none contains ": " (the catalogue title's
# head, before ": ", is the indicator's label).
EVIL_AREA = 'Trafford <img src=x onerror="window.__xss=1"> & <b>co</b>'
EVIL_LABEL = 'Alcohol <script>window.__xss=2</script><img src=x onerror="window.__xss=3"> harm'
EVIL_TEXT = ('Notes <img src=x onerror="window.__xss=4"> <svg onload="window.__xss=5"></svg> '
             '[link](javascript:window.__xss=6) ![i](x.png) <script>window.__xss=7</script>')
EVIL_INTERVENTION = '<img src=x onerror="window.__xss=8">North programme'


def make_hostile_publication(source: Path, target: Path) -> Path:
    """A copy of the release ``source`` whose metadata carries HTML and
    JavaScript: Trafford's name, the alcohol indicator's titles, sources,
    coverage and descriptions, and the published intervention."""
    import shutil

    import duckdb

    shutil.copyfile(Path(source).resolve(), target)
    con = duckdb.connect(str(target))
    try:
        con.execute("UPDATE areas SET area_name = ? WHERE area_code = 'E08000009'", [EVIL_AREA])
        con.execute("UPDATE catalogue SET title = ? || ': ' || split_part(title, ': ', 2), source = ?, "
                    "coverage = ?, description = ?, notes = ? WHERE measure = 'alcohol_attendances'",
                    [EVIL_LABEL, EVIL_TEXT, EVIL_TEXT, EVIL_TEXT, EVIL_TEXT])
        con.execute("UPDATE interventions SET name = ?, description = ?", [EVIL_INTERVENTION, EVIL_TEXT])
    finally:
        con.close()
    return target
