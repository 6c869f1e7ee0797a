"""Every page renders from a real publication, shows its release, legends,
and suppressed values as suppressed; widgets change what is shown."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from .helpers import PAGES, plotly_specs, release_id_of, text_of


@pytest.fixture(scope="module")
def truth(release_file):
    con = duckdb.connect(str(release_file), read_only=True)
    yield con
    con.close()


def _no_failures(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_and_names_its_release(make_app, release_file, page):
    at = make_app(page=page)
    _no_failures(at)
    rid = release_id_of(release_file)
    assert rid.replace("-", "\\-") in text_of(at) or rid in text_of(at)
    # every export carries the release
    for df in at.dataframe:
        if len(df.value):
            assert (df.value["release_id"] == rid).all()
    # every chart has its table one click away and a CSV download
    charts = plotly_specs(at)
    if charts:
        assert any("Table behind this chart" in e.label for e in at.expander)
        assert len(at.get("download_button")) >= len(charts)
        for spec in charts:  # exported images name the release too
            sub = spec["layout"]["title"].get("subtitle", {}).get("text", "")
            assert rid in sub


@pytest.mark.parametrize("page", ["trends", "compare", "map", "early_years"])
def test_chart_pages_explain_suppression_and_coverage(make_app, page):
    at = make_app(page=page)
    labels = [e.label for e in at.expander]
    assert any("suppressed" in lbl and "rounded" in lbl for lbl in labels)
    legend = text_of(at)
    assert "Coverage" in legend
    assert "Policy in force" in legend  # the legend names the policy
    # each chart has a text alternative
    for el in at.get("plotly_chart"):
        assert len(el.proto.alt) > 40


def test_overview_tiles_and_borough_choice(make_app):
    at = make_app()
    _no_failures(at)
    labels = [m.label for m in at.metric]
    assert any("Greater Manchester" in lbl for lbl in labels)
    assert any("Trafford" in lbl for lbl in labels)
    assert "Last refreshed" in text_of(at)
    at.selectbox(key="overview_borough").set_value("E08000003").run()  # Manchester
    _no_failures(at)
    labels = [m.label for m in at.metric]
    assert any("Manchester," in lbl for lbl in labels)
    assert not any(lbl.startswith("Trafford") for lbl in labels)


def test_trends_widgets_change_what_is_shown(make_app):
    at = make_app(page="trends")
    _no_failures(at)
    before = at.dataframe[0].value.copy()
    assert "Rate per 100,000 population, annualised" in before.columns
    at.radio(key="trends_statistic").set_value("count").run()
    _no_failures(at)
    after = at.dataframe[0].value
    assert not any(c.startswith("Rate") for c in after.columns)
    at.selectbox(key="trends_level").set_value("ward").run()
    _no_failures(at)
    wards = at.dataframe[0].value
    assert set(wards["area"]) != set(after["area"])
    assert "Recent trend" in text_of(at)
    # add areas: the chart gets one line per area
    ms = at.multiselect(key="trends_areas_ward")
    ms.set_value(ms.options[:3]).run()
    _no_failures(at)
    spec = plotly_specs(at)[0]
    names = {t.get("name") for t in spec["data"] if t.get("mode") == "lines+markers"}
    assert len(names) >= 3


def test_trends_proportion_uses_the_parent_measure(make_app):
    at = make_app(page="trends")
    at.radio(key="trends_statistic").set_value("proportion").run()
    _no_failures(at)
    df = at.dataframe[0].value
    col = [c for c in df.columns if c.startswith("% of")]
    assert col, df.columns
    vals = pd.to_numeric(df[col[0]], errors="coerce").dropna()
    assert len(vals) and (vals >= 0).all() and (vals <= 100).all()


def test_compare_shows_suppressed_areas_as_suppressed(make_app, truth):
    at = make_app(page="compare")
    _no_failures(at)
    at.selectbox(key="compare_level").set_value("ward").run()
    at.selectbox(key="compare_period_kind").set_value("month").run()
    _no_failures(at)
    shown = at.dataframe[0].value
    start = pd.Timestamp(shown["period start"].iloc[0]).date()
    rows = truth.execute(
        'SELECT area_code, count FROM "alcohol_ae__alcohol_attendances__locality_ward_month" '
        "WHERE area_level = 'ward' AND period_start = ?", [start]).df()
    supp = set(rows.loc[rows["count"].isna(), "area_code"])
    assert supp, "the demo publication should have suppressed ward-months"
    by_code = shown.set_index("area code")
    for code in supp:
        assert by_code.loc[code, "count (rounded)"] == "suppressed"
        assert by_code.loc[code, "compared with Trafford"] == "Suppressed"
    published = rows.dropna()
    for code, count in zip(published["area_code"], published["count"]):
        assert by_code.loc[code, "count (rounded)"] == str(int(count))
    spec = plotly_specs(at)[0]
    assert any(str(t.get("name", "")).startswith("Suppressed") for t in spec["data"])


def test_compare_categories_and_funnel(make_app):
    at = make_app(page="compare")
    at.selectbox(key="compare_level").set_value("la").run()
    _no_failures(at)
    shown = at.dataframe[0].value
    assert set(shown["compared with Greater Manchester"]) <= {"Better", "Similar", "Worse", "Suppressed",
                                                              "Not compared"}
    specs = plotly_specs(at)
    assert len(specs) == 2  # ranked + funnel
    funnel = specs[1]
    names = {t.get("name") for t in funnel["data"]}
    assert {"95% limits", "99.8% limits"} <= names
    at.radio(key="compare_statistic").set_value("count").run()
    _no_failures(at)
    assert any("funnel plot needs a denominator" in i.value for i in at.info)


def test_map_draws_real_boundaries_offline(make_app):
    at = make_app(page="map")
    _no_failures(at)
    spec = plotly_specs(at)[0]
    assert spec["layout"]["map"]["style"] == "white-bg"
    types = {t["type"] for t in spec["data"]}
    assert types == {"choroplethmap"}
    n_features = sum(len(t["geojson"]["features"]) for t in spec["data"])
    assert n_features == 215  # every GM ward is drawn (published, suppressed or not published)
    texts = " ".join(a.get("text", "") for a in spec["layout"].get("annotations", []))
    assert "Contains National Statistics and OS data © Crown copyright and database right 2024" in texts
    at.selectbox(key="map_level").set_value("lsoa").run()
    _no_failures(at)
    spec = plotly_specs(at)[0]
    assert sum(len(t["geojson"]["features"]) for t in spec["data"]) == 1702
    names = [t.get("name", "") for t in spec["data"]]
    assert any(n.startswith("Suppressed") for n in names)
    shown = at.dataframe[0].value
    assert (shown["count (rounded)"] == "suppressed").any()
    assert not (shown["count (rounded)"] == "").any()


def test_early_years_marks_provisional_and_looks_forward(make_app):
    at = make_app(page="early_years")
    _no_failures(at)
    shown = at.dataframe[0].value
    assert (shown["provisional"] == "provisional").any()
    assert (shown["after extract date"] == "yes").any()
    n_forward = len(shown)
    at.toggle(key="early_forward").set_value(False).run()
    _no_failures(at)
    assert len(at.dataframe[0].value) > n_forward
    spec = plotly_specs(at)[0]
    assert any("Provisional" in str(t.get("name", "")) for t in spec["data"])
    at.selectbox(key="early_view").set_value(at.selectbox(key="early_view").options[-1]).run()
    _no_failures(at)


def test_governance_lists_sources_policy_runs_and_limits(make_app, truth):
    at = make_app(page="governance")
    _no_failures(at)
    text = text_of(at)
    for controller, dsa in truth.execute(
            "SELECT DISTINCT data_controller, dsa_reference FROM catalogue WHERE kind = 'count'").fetchall():
        assert controller.split(" (")[0] in text.replace("\\", "")
        assert dsa.split(" ")[0] in text.replace("\\", "")
    assert "cannot show" in text
    assert "Policy" in text and "rounded to the nearest" in text
    runs = [df.value for df in at.dataframe if "rows rejected" in df.value.columns][0]
    assert set(runs["pipeline"]) == {r[0] for r in truth.execute("SELECT DISTINCT pipeline FROM runs").fetchall()}


def test_no_publication_says_how_to_make_one(make_app, tmp_path):
    at = make_app(db=tmp_path / "nothing-here.duckdb")
    assert not at.exception
    assert any("no publication" in w.value.lower() for w in at.warning)
    assert any("make demo" in c.value and "outcomes run" in c.value for c in at.code)
    at.switch_page("pages/map.py")
    at.run()
    assert not at.exception
    assert any("no publication" in w.value.lower() for w in at.warning)


def test_area_without_population_shows_counts_and_says_why(make_app, release_file, tmp_path):
    """Outside Trafford only boroughs have populations: such areas get counts
    and an explanation, never a made-up rate."""
    import shutil

    db = tmp_path / "nopop.duckdb"
    shutil.copyfile(release_file, db)
    con = duckdb.connect(str(db))
    # a ward with a published count in the latest complete month (the map's default period)
    ward = con.execute(
        'SELECT area_code FROM "alcohol_ae__alcohol_attendances__locality_ward_month" t '
        "WHERE area_level = 'ward' AND count IS NOT NULL AND period_start = (SELECT max(period_start) FROM "
        '"alcohol_ae__alcohol_attendances__locality_ward_month" WHERE NOT provisional) '
        "ORDER BY count DESC, area_code LIMIT 1").fetchone()[0]
    con.execute("DELETE FROM population WHERE area_code = ?", [ward])
    con.close()
    at = make_app(db=db, page="trends")
    at.selectbox(key="trends_level").set_value("ward").run()
    at.multiselect(key="trends_areas_ward").set_value([ward]).run()
    _no_failures(at)
    assert any("No rate is shown" in i.value and "population" in i.value for i in at.info)
    shown = at.dataframe[0].value
    mine = shown[shown["role"] == "area"]
    rate_col = [c for c in shown.columns if c.startswith("Rate")][0]
    assert (mine[rate_col].isin(["no population denominator", "suppressed"])).all()
    assert (mine["count (rounded)"] != "").all()
    at.switch_page("pages/map.py")
    at.run()
    _no_failures(at)
    spec = plotly_specs(at)[0]
    assert any("no population denominator" in str(t.get("name", "")) for t in spec["data"])


def test_comparator_can_be_the_place_or_the_parent_borough(make_app):
    at = make_app(page="compare")
    at.selectbox(key="compare_level").set_value("ward").run()
    _no_failures(at)
    assert "compared with Trafford" in at.dataframe[0].value.columns
    at.radio(key="compare_comparator").set_value("the place").run()
    _no_failures(at)
    assert "compared with Greater Manchester" in at.dataframe[0].value.columns
    at = make_app(page="trends")
    at.selectbox(key="trends_level").set_value("ward").run()
    _no_failures(at)
    roles = set(at.dataframe[0].value["role"])
    assert roles == {"area", "comparator"}
    comp = at.dataframe[0].value.query("role == 'comparator'")["area"].iloc[0]
    assert comp == "Greater Manchester"  # the place by default on Trends
