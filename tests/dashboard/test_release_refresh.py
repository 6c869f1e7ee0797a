"""Reading the publication: read-only, validated table names, one release per
run, and a new release picked up without mixing."""

from __future__ import annotations

import os
import shutil

import duckdb
import numpy as np
import pytest

from dashboard import queries
from pipelines.framework import publication as pub

from .helpers import release_id_of, text_of


def _new_release(link, new_id: str):
    """A copy of the current release with another id (as a new run would
    publish), then the symlink switches to it atomically."""
    current = link.resolve()
    new = current.parent / f"{new_id}.duckdb"
    shutil.copyfile(current, new)
    con = duckdb.connect(str(new))
    try:
        con.execute("UPDATE release SET release_id = ?, previous_release_id = ?", [new_id, current.stem])
        con.execute("UPDATE catalogue SET release_id = ?", [new_id])
        con.execute("UPDATE areas SET area_name = 'Renamed ' || area_name WHERE area_level = 'la'")
    finally:
        con.close()
    pub.switch_to(link, new)
    return new


def test_new_release_is_picked_up_on_the_next_run_without_mixing(make_app, linked_publication):
    first_id = release_id_of(linked_publication.resolve())
    at = make_app(db=linked_publication)
    assert first_id.replace("-", "\\-") in text_of(at)
    old_labels = [m.label for m in at.metric]
    assert not any("Renamed" in lbl for lbl in old_labels)

    _new_release(linked_publication, "20991231T000000000Z-second")
    at.run()  # the next run (the app's watcher triggers it within seconds)
    assert not at.exception
    text = text_of(at)
    assert "20991231T000000000Z\\-second" in text and first_id.replace("-", "\\-") not in text
    labels = [m.label for m in at.metric]
    # everything on the page comes from the new file: no old names, no old id
    boroughs = [lbl for lbl in labels if not lbl.startswith("Greater Manchester")]
    assert boroughs and all(lbl.startswith("Renamed") for lbl in boroughs)
    for df in at.dataframe:
        if len(df.value):
            assert set(df.value["release_id"]) == {"20991231T000000000Z-second"}


def test_watcher_detects_the_switch(linked_publication):
    before = queries.release_key(queries.resolve_release_file(linked_publication))
    _new_release(linked_publication, "20991231T000000001Z-third")
    after = queries.release_key(queries.resolve_release_file(linked_publication))
    assert before != after and "third" in after


def test_already_resolved_path_still_follows_the_symlink(linked_publication, monkeypatch):
    """`outcomes serve` may pass the resolved release file; later releases
    must still be seen."""
    resolved = linked_publication.resolve()
    monkeypatch.setenv("OUTCOMES_DB", str(resolved))
    assert queries.resolve_release_file() == resolved
    new = _new_release(linked_publication, "20991231T000000002Z-fourth")
    assert queries.resolve_release_file() == new.resolve()


def test_file_replaced_at_the_same_path_is_not_served_from_a_stale_instance(tmp_path, release_file):
    path = tmp_path / "plain.duckdb"
    shutil.copyfile(release_file, path)
    rel = queries.open_release(path)
    assert queries.catalogue(rel.key)["release_id"].iloc[0] == rel.release_id
    replacement = tmp_path / "replacement.duckdb"
    shutil.copyfile(release_file, replacement)
    con = duckdb.connect(str(replacement))
    con.execute("UPDATE release SET release_id = 'replaced-in-place'")
    con.close()
    os.replace(replacement, path)
    rel2 = queries.open_release(path)
    assert rel2.key != rel.key
    assert rel2.release_id == "replaced-in-place"
    queries.clear_caches()


def test_connections_are_read_only(release_file):
    rel = queries.open_release(release_file)
    cur = queries.CONNECTIONS.cursor(rel.key)
    with pytest.raises(duckdb.Error):
        cur.execute("CREATE TABLE x AS SELECT 1")
    with pytest.raises(duckdb.Error):
        cur.execute("DELETE FROM catalogue")
    queries.clear_caches()


@pytest.mark.parametrize("name", [
    "catalogue", "runs", "population", "not_a_table",
    'alcohol_ae__alcohol_attendances__la_month"; DROP TABLE catalogue; --',
    "read_csv('/etc/passwd')",
])
def test_only_catalogued_count_tables_can_be_queried(release_file, name):
    rel = queries.open_release(release_file)
    with pytest.raises(ValueError):
        queries.checked_table(rel.key, name)
    with pytest.raises(ValueError):
        queries.level_counts(rel.key, name, "la")
    queries.clear_caches()


def test_breakdown_listing_is_restricted_to_known_columns(release_file):
    rel = queries.open_release(release_file)
    table = queries.catalogue(rel.key).query("kind == 'count'")["table_name"].iloc[0]
    with pytest.raises(ValueError):
        queries.breakdown_values(rel.key, table, "count; DROP TABLE catalogue")
    queries.clear_caches()


def test_missing_or_broken_publication_explains_what_to_do(tmp_path):
    with pytest.raises(queries.PublicationUnavailable, match="make demo"):
        queries.open_release(tmp_path / "none.duckdb")
    broken = tmp_path / "broken.duckdb"
    broken.write_bytes(b"not a database")
    with pytest.raises(queries.PublicationUnavailable, match="outcomes run"):
        queries.open_release(broken)
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    with pytest.raises(queries.PublicationUnavailable, match="not a complete publication"):
        queries.open_release(empty)
    queries.clear_caches()


def test_financial_years_summed_in_duckdb_need_every_month(release_file):
    """Summing months into financial years: complete years only, NULL when any
    month is suppressed, provisional when any month is."""
    rel = queries.open_release(release_file)
    cat = queries.catalogue(rel.key)
    table = cat[(cat["kind"] == "count") & (cat["period_kind"] == "month")
                & cat["area_levels"].map(lambda v: "ward" in v)]["table_name"].iloc[0]
    months = queries.series_rows(rel.key, table, "ward")
    years = queries.series_rows(rel.key, table, "ward", financial_years=True)
    m = months.copy()
    m["fy"] = np.where(m["period_start"].dt.month >= 4, m["period_start"].dt.year, m["period_start"].dt.year - 1)
    g = m.groupby(["area_code", "fy"]).agg(n=("count", "size"), missing=("count", lambda s: s.isna().sum()),
                                           total=("count", "sum"), prov=("provisional", "any")).reset_index()
    g = g[g["n"] == 12]
    assert len(years) == len(g) > 0
    merged = years.assign(fy=years["period_start"].dt.year).merge(g, on=["area_code", "fy"])
    assert (merged["count"].isna() == (merged["missing"] > 0)).all()
    ok = merged["count"].notna()
    assert (merged.loc[ok, "count"].astype(int) == merged.loc[ok, "total"].astype(int)).all()
    assert (merged["provisional"] == merged["prov"]).all()
    one = queries.series_rows(rel.key, table, "ward", financial_years=True,
                              period=str(years["period_start"].iloc[0].date()))
    assert set(one["period_start"]) == {years["period_start"].iloc[0]}
    queries.clear_caches()


@pytest.mark.parametrize("layout", ["releases/outcomes", "releases"])
def test_a_resolved_release_path_follows_its_publication_link(tmp_path, layout):
    """A dashboard started on the release file itself (an already-resolved path) follows
    the publication's link, in each publication's own ``releases/<name>/`` and in the
    shared ``releases/`` folder of earlier layouts; a file elsewhere is read as given."""
    folder = tmp_path / layout
    folder.mkdir(parents=True)
    first, second = folder / "20260101T000000000Z-aaaaaa.duckdb", folder / "20260102T000000000Z-bbbbbb.duckdb"
    for f in (first, second):
        duckdb.connect(str(f)).close()
    link = tmp_path / "outcomes.duckdb"
    pub.switch_to(link, first)
    assert queries.resolve_release_file(first) == first.resolve()
    pub.switch_to(link, second)
    assert queries.resolve_release_file(first) == second.resolve()     # the link, not the file given
    loose = tmp_path / "elsewhere" / "copy.duckdb"
    loose.parent.mkdir()
    shutil.copyfile(first, loose)
    assert queries.resolve_release_file(loose) == loose.resolve()
