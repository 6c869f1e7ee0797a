"""Charts are pure functions of DataFrames; derived figures come from
pipelines.stats; publication text is escaped; nothing risky is offered."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from dashboard import charts, frame
from dashboard import indicators as I
from pipelines import stats

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"


def _series(names=("A", "B"), n=8, suppressed=(("A", 2),), provisional_last=True):
    rows = []
    for name in names:
        for i in range(n):
            count = pd.NA if (name, i) in suppressed else 50 + 5 * i
            rows.append({"series": name, "role": "area", "period_start": pd.Timestamp(2022, 4, 1) + pd.DateOffset(months=i),
                         "period": f"M{i}", "count": count, "provisional": provisional_last and i == n - 1})
    df = pd.DataFrame(rows)
    df["count"] = df["count"].astype("Int64")
    return I.derive_values(df, I.COUNT)


def test_trend_figure_marks_suppressed_and_provisional():
    df = _series()
    fig = go.Figure(charts.trend_figure(df, title="T <b>x</b>", y_title="Count", footer="release R"))  # validates
    names = [t.name for t in fig.data]
    assert "Suppressed (crosses on the axis)" in names
    assert "Provisional (open markers)" in names
    main = [t for t in fig.data if t.name == "A"][0]
    assert main.y[2] is None  # a gap at the suppressed period, explained by the cross
    cross = [t for t in fig.data if t.name == "Suppressed" and t.showlegend is False][0]
    assert list(cross.y) == [0]
    assert fig.layout.title.text == "T &lt;b&gt;x&lt;/b&gt;"  # escaped
    assert fig.layout.title.subtitle.text == "release R"


def test_ranked_figure_colours_categories_and_lists_suppressed():
    df = pd.DataFrame({
        "area_name": ["<a href='x'>Evil</a>", "B", "C", "D"], "value": [10.0, 20.0, 30.0, np.nan],
        "lower": [5.0, 15.0, 25.0, np.nan], "upper": [15.0, 25.0, 35.0, np.nan],
        "category": ["Better", "Similar", "Worse", "Suppressed"], "status": ["shown"] * 3 + ["suppressed"],
    })
    fig = go.Figure(charts.ranked_figure(df, benchmark=20.0, benchmark_name="Place", title="t", x_title="Rate"))
    by_name = {t.name: t for t in fig.data}
    assert by_name["Better"].marker.color == charts.CATEGORY_COLOURS["Better"]
    assert by_name["Worse"].marker.color == charts.CATEGORY_COLOURS["Worse"]
    supp = [t for t in fig.data if str(t.name).startswith("Suppressed")][0]
    assert list(supp.text) == ["suppressed"]
    assert all("<a" not in str(y) for t in fig.data for y in (t.y or []))


def test_category_colours_are_distinct_and_not_red_green():
    cols = charts.CATEGORY_COLOURS
    assert len(set(cols.values())) == len(cols)
    assert cols["Better"] == "#0072B2" and cols["Worse"] == "#D55E00"  # Okabe-Ito blue / vermillion


def test_funnel_figure_has_both_limits():
    limits = stats.funnel_limits(np.geomspace(1_000, 100_000, 50), 500.0)
    pts = pd.DataFrame({"area_name": ["a", "b"], "denominator": [5_000, 50_000], "value": [900.0, 480.0]})
    pts["significance"] = stats.funnel_significance([45, 240], [5_000, 50_000], benchmark=500.0)
    fig = go.Figure(charts.funnel_figure(pts, limits, benchmark=500.0, benchmark_name="P", title="f",
                                         x_title="Population", y_title="Rate"))
    names = {t.name for t in fig.data}
    assert {"95% limits", "99.8% limits"} <= names
    assert "High: above the 99.8% limit" in names


def test_map_figure_is_offline_and_shows_every_state():
    sq = lambda x: {"type": "Polygon", "coordinates": [[[x, 53], [x + 0.1, 53], [x + 0.1, 53.1], [x, 53.1], [x, 53]]]}
    feats = {c: {"type": "Feature", "id": c, "geometry": sq(i * 0.1 - 2.5),
                 "properties": {"area_code": c, "area_name": c}} for i, c in enumerate("ABCD")}
    df = pd.DataFrame({"area_code": ["A", "B", "C"], "area_name": ["A", "B", "C"], "value": [1.0, np.nan, np.nan],
                       "lower": [0.5, np.nan, np.nan], "upper": [2.0, np.nan, np.nan],
                       "count": pd.array([10, pd.NA, 5], dtype="Int64"),
                       "status": ["shown", "suppressed", I.STATUS_NO_DENOM]})
    fig = go.Figure(charts.map_figure(df, feats, title="m", value_title="Rate", attribution="ATTR"))
    assert fig.layout.map.style == "white-bg"
    assert all(t.type == "choroplethmap" for t in fig.data)
    names = [t.name for t in fig.data]
    assert any(n.startswith("Not published") for n in names)  # D
    assert "Suppressed" in names  # B
    assert any("no population denominator" in n for n in names)  # C
    assert any(a.text == "ATTR" for a in fig.layout.annotations)


def test_births_figure_hatches_provisional_and_marks_extract_date():
    df = pd.DataFrame({"area_name": ["X"] * 3, "period_start": pd.date_range("2024-01-01", periods=3, freq="MS"),
                       "period": ["a", "b", "c"], "count": pd.array([10, pd.NA, 20], dtype="Int64"),
                       "provisional": [False, False, True], "status": ["shown", "suppressed", "shown"]})
    fig = go.Figure(charts.births_figure(df, title="b", extract_date=pd.Timestamp("2024-02-15")))
    bars = [t for t in fig.data if t.type == "bar" and t.name == "X"][0]
    assert list(bars.marker.pattern.shape) == ["", "", "/"]
    assert any("extract date" in a.text for a in fig.layout.annotations)
    assert "Suppressed (crosses on the axis)" in [t.name for t in fig.data]


def test_derive_values_uses_stats_and_never_invents_values():
    df = pd.DataFrame({"count": pd.array([50, pd.NA, 20, 12], dtype="Int64")})
    den = pd.Series([100_000, 100_000, np.nan, 10], dtype="Float64")
    r = I.derive_values(df, I.RATE, denominator=den)
    exp = stats.rate_ci(50.0, 100_000.0)
    assert r["value"].iloc[0] == pytest.approx(exp.value)
    assert r["lower"].iloc[0] == pytest.approx(exp.lower) and r["upper"].iloc[0] == pytest.approx(exp.upper)
    assert list(r["status"]) == ["shown", "suppressed", I.STATUS_NO_DENOM, "shown"]
    assert np.isnan(r["value"].iloc[1]) and np.isnan(r["value"].iloc[2])
    p = I.derive_values(df, I.PROPORTION, denominator=pd.Series([100, 100, np.nan, 10], dtype="Float64"))
    assert p["value"].iloc[0] == pytest.approx(50.0)
    assert p["status"].iloc[2] == I.STATUS_DENOM_SUPPRESSED
    assert p["status"].iloc[3] == I.STATUS_NOT_COMPUTED  # rounded 12 > rounded 10


def test_period_labels():
    assert I.period_label(pd.Timestamp("2023-04-01"), "financial_year") == "2023/24"
    assert I.period_label(pd.Timestamp("2024-01-01"), "quarter") == "Q4 2023/24"
    assert I.period_label(pd.Timestamp("2024-03-01"), "month") == "Mar 2024"


def test_markdown_escape_blocks_injection():
    evil = "[click](http://x) ![img](http://y) <script>x</script> :red[big] $x$ **b**"
    out = frame.md(evil)
    assert "](" not in out.replace("\\]\\(", "")
    assert "<script>" not in out
    assert ":red[" not in out


def test_dashboard_offers_no_sql_uploads_or_unsafe_html():
    src = "\n".join(p.read_text() for p in DASHBOARD.rglob("*.py") if p.name != "evidence.py")
    for forbidden in ("unsafe_allow_html=True", "file_uploader", "st.text_area", "st.text_input", "st.chat_input",
                      "st.html(", "components.html", "read_only=False"):
        assert forbidden not in src, forbidden
    # only queries.py talks to DuckDB, and its SQL interpolates no value: values
    # (levels, sexes, periods, area codes) are parameters, table names come
    # from checked_table (validated against the catalogue)
    for p in DASHBOARD.rglob("*.py"):
        if p.name not in ("queries.py", "evidence.py"):
            text = p.read_text()
            assert ".execute(" not in text and "duckdb.connect" not in text, p.name
    q = (DASHBOARD / "queries.py").read_text()
    values = ("area_level", "sex", "age_band", "period", "area_codes", "table", "name", "parent_table", "link")
    for m in re.finditer(r'f"([^"]*)"', q):
        if not re.search(r"SELECT|FROM|WHERE|JOIN", m.group(1)):
            continue
        for expr in re.findall(r"\{([^{}]+)\}", m.group(1)):
            assert not any(re.search(rf"\b{v}\b", expr) for v in values), (expr, m.group(0))
