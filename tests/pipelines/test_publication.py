"""The publication contract and its atomic, kept releases."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import duckdb
import pytest

from pipelines.framework import publication, registry
from pipelines.framework.errors import PublicationLockedError
from pipelines.framework.runner import run_pipelines

pytestmark = pytest.mark.pipeline

CATALOGUE_REQUIRED = {
    "table_name": "VARCHAR", "pipeline": "VARCHAR", "measure": "VARCHAR", "title": "VARCHAR",
    "description": "VARCHAR", "unit": "VARCHAR", "dimensions": "VARCHAR[]", "source": "VARCHAR",
    "coverage": "VARCHAR", "data_controller": "VARCHAR", "legal_basis": "VARCHAR", "dsa_reference": "VARCHAR",
    "policy": "VARCHAR", "additive_over": "VARCHAR[]", "polarity": "VARCHAR", "denominator": "VARCHAR",
    "release_id": "VARCHAR", "published_at": "TIMESTAMP",
}
IDENTIFIER_WORDS = ("nhs", "postcode", "birth", "dob", "name_of", "person_id", "attendance_id", "booking_id")


@pytest.fixture(scope="module")
def con(demo_publication):
    c = duckdb.connect(str(demo_publication), read_only=True)
    yield c
    c.close()


def test_catalogue_has_the_contract_columns(con):
    types = dict(con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'catalogue'").fetchall())
    for col, typ in CATALOGUE_REQUIRED.items():
        assert types.get(col) == typ, col


def test_every_pipeline_and_population_is_catalogued(con):
    pipelines = {r[0] for r in con.execute("SELECT DISTINCT pipeline FROM catalogue").fetchall()}
    assert set(registry.discover()) | {"reference"} == pipelines
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    catalogued = {r[0] for r in con.execute("SELECT table_name FROM catalogue").fetchall()}
    assert catalogued <= tables
    assert tables - catalogued == {"catalogue", "runs", "areas", "area_members", "release", "interventions"}
    pop = con.execute("SELECT policy, kind FROM catalogue WHERE table_name = 'population'").fetchone()
    assert pop == (None, "reference")


def test_count_tables_follow_the_contract(con):
    rows = con.execute(
        "SELECT table_name, dimensions, additive_over, policy FROM catalogue WHERE kind = 'count'").fetchall()
    assert len(rows) >= 20
    for table, dims, additive, policy in rows:
        cols = dict(con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [table]).fetchall())
        assert cols["area_code"] == "VARCHAR" and cols["count"] == "BIGINT"
        assert cols["period_start"] == "DATE" and cols["period_end"] == "DATE"
        assert cols["provisional"] == "BOOLEAN"
        assert not any(w in c.lower() for c in cols for w in IDENTIFIER_WORDS), table
        breakdowns = [d for d in dims if d not in ("area", "period")]
        assert all(b in cols for b in breakdowns)
        assert set(additive) <= set(dims)
        assert policy is not None
        # complete within each area level: areas x periods x breakdown values
        for level in [r[0] for r in con.execute(f'SELECT DISTINCT area_level FROM "{table}"').fetchall()]:
            parts = ["count(DISTINCT area_code)", "count(DISTINCT period_start)"] + [
                f"count(DISTINCT {b})" for b in breakdowns]
            sizes = con.execute(f'SELECT count(*), {", ".join(parts)} FROM "{table}" WHERE area_level = ?',
                                [level]).fetchone()
            expected = 1
            for n in sizes[1:]:
                expected *= n
            assert sizes[0] == expected, (table, level)
        for b in breakdowns:
            assert con.execute(f'SELECT count(*) FROM "{table}" WHERE {b} = \'All\'').fetchone()[0] > 0
        # periods are whole months
        bad = con.execute(
            f'SELECT count(*) FROM "{table}" WHERE day(period_start) <> 1 OR period_end <> last_day(period_end)'
        ).fetchone()[0]
        assert bad == 0


def test_published_counts_obey_the_policy(con):
    """Default policy: no count 1-7 is shown, every shown count is a multiple of 5 or 0."""
    for (table,) in con.execute("SELECT table_name FROM catalogue WHERE kind = 'count'").fetchall():
        bad = con.execute(
            f'SELECT count(*) FROM "{table}" WHERE count IS NOT NULL AND (count BETWEEN 1 AND 7 OR count % 5 <> 0)'
        ).fetchone()[0]
        assert bad == 0, table


def test_areas_and_members(con):
    levels = dict(con.execute("SELECT area_level, count(*) FROM areas GROUP BY 1").fetchall())
    assert levels["lsoa"] == 1702 and levels["ward"] == 215 and levels["msoa"] == 353
    assert levels["la"] == 10 and levels["place"] == 1 and levels["locality"] == 4 and levels["catchment"] == 4
    assert con.execute("SELECT area_name FROM areas WHERE area_code = 'E47000001'").fetchone()[0] == "Greater Manchester"
    # an LSOA lists itself; every area has members
    assert con.execute(
        "SELECT count(*) FROM areas a WHERE area_level = 'lsoa' AND NOT EXISTS "
        "(SELECT 1 FROM area_members m WHERE m.area_code = a.area_code AND m.lsoa_code = a.area_code)").fetchone()[0] == 0
    assert con.execute(
        "SELECT count(*) FROM areas a WHERE NOT EXISTS (SELECT 1 FROM area_members m WHERE m.area_code = a.area_code)").fetchone()[0] == 0


def test_ward_population_is_the_sum_of_its_lsoas(con):
    diff = con.execute(
        """
        SELECT max(abs(w.population - s.total)) FROM population w
        JOIN (SELECT m.area_code, p.year, sum(p.population) AS total FROM area_members m
              JOIN population p ON p.area_code = m.lsoa_code AND p.sex = 'All' AND p.age_band = 'All'
              JOIN areas a ON a.area_code = m.area_code AND a.area_level = 'ward'
              GROUP BY ALL) s USING (area_code, year)
        WHERE w.sex = 'All' AND w.age_band = 'All'
        """
    ).fetchone()[0]
    assert diff is not None and diff <= 1  # rounding of each LSOA sum


def test_population_uses_nearest_earlier_estimate(con):
    rows = dict(con.execute(
        "SELECT year, estimate_year FROM population WHERE area_code = 'E01006112' AND sex = 'All' AND age_band = 'All'"
    ).fetchall())
    assert rows[2022] == 2022 and rows[2023] == 2022 and rows[2024] == 2024
    assert rows[2021] == 2022  # no earlier small-area estimate in the pack: nearest later, flagged in note


def test_runs_record_provenance(con):
    rows = con.execute("SELECT pipeline, input_file, input_sha256, rows_read, code_version, policy FROM runs").fetchall()
    assert {r[0] for r in rows} == set(registry.discover())
    for r in rows:
        assert len(r[2]) == 64 and r[3] > 0 and r[4] and r[5] == "nhs-digital"


def test_publication_is_a_symlink_to_a_kept_release(demo_publication):
    assert demo_publication.is_symlink()
    target = demo_publication.resolve()
    assert target.parent == publication.releases_dir(demo_publication).resolve() and target.exists()
    assert target.parent.parent.name == "releases"
    con = duckdb.connect(str(target), read_only=True)
    assert con.execute("SELECT release_id FROM release").fetchone()[0] == target.stem
    con.close()


@pytest.fixture()
def fresh_db(tmp_path, samples_env):
    db = tmp_path / "pub" / "outcomes.duckdb"
    specs = registry.discover()
    run_pipelines([specs["police_alcohol_incidents"], specs["maternity_due_dates"]], db=db, demo=True)
    return db


def test_running_one_pipeline_keeps_the_others(fresh_db, samples_env):
    con = duckdb.connect(str(fresh_db.resolve()), read_only=True)
    before = con.execute(
        "SELECT * FROM maternity_due_dates__expected_births__catchment_month ORDER BY ALL").df()
    first_release = con.execute("SELECT release_id FROM release").fetchone()[0]
    con.close()
    run_pipelines([registry.get("police_alcohol_incidents")], db=fresh_db, demo=True)
    con = duckdb.connect(str(fresh_db.resolve()), read_only=True)
    after = con.execute("SELECT * FROM maternity_due_dates__expected_births__catchment_month ORDER BY ALL").df()
    rel = con.execute("SELECT release_id, previous_release_id, pipelines_refreshed FROM release").fetchone()
    runs = con.execute("SELECT pipeline, release_id FROM runs ORDER BY started_at").fetchall()
    con.close()
    assert before.equals(after)
    assert rel[1] == first_release and rel[2] == ["police_alcohol_incidents"]
    assert [r[0] for r in runs].count("police_alcohol_incidents") == 2


def test_earlier_releases_are_kept_and_pruned(fresh_db, samples_env):
    spec = registry.get("police_alcohol_incidents")
    for _ in range(publication.KEEP_RELEASES + 1):
        run_pipelines([spec], db=fresh_db, demo=True)
    kept = publication.list_releases(fresh_db)
    assert len(kept) == publication.KEEP_RELEASES
    assert fresh_db.resolve() == kept[-1]


def test_failed_run_leaves_the_publication_readable_and_unchanged(fresh_db, samples_env, tmp_path):
    target = fresh_db.resolve()
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    reader = duckdb.connect(str(fresh_db), read_only=True)  # a dashboard holding it open
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(Exception):
        run_pipelines([registry.get("police_alcohol_incidents")], input_path=bad, db=fresh_db, demo=True)
    assert fresh_db.resolve() == target
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
    assert reader.execute("SELECT count(*) FROM catalogue").fetchone()[0] > 0
    reader.close()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]


def test_second_run_fails_clearly_while_one_is_publishing(fresh_db, samples_env):
    with publication.publication_lock(fresh_db):
        with pytest.raises(PublicationLockedError, match="another run is publishing"):
            run_pipelines([registry.get("police_alcohol_incidents")], db=fresh_db, demo=True)


def test_plain_file_at_the_db_path_is_adopted_not_overwritten(tmp_path, samples_env):
    db = tmp_path / "plain.duckdb"
    c = duckdb.connect(str(db))
    c.execute("CREATE TABLE note AS SELECT 'earlier file' AS t")
    c.close()
    run_pipelines([registry.get("police_alcohol_incidents")], db=db, demo=True)
    assert db.is_symlink()
    adopted = [p for p in publication.list_releases(db) if p.stem.endswith("-adopted")]
    assert len(adopted) == 1
    c = duckdb.connect(str(adopted[0]), read_only=True)
    assert c.execute("SELECT t FROM note").fetchone()[0] == "earlier file"
    c.close()
    assert os.path.exists(db)


def _secondary_flags(db: Path) -> dict[str, bool]:
    import json

    c = duckdb.connect(str(db), read_only=True)
    try:
        rows = c.execute("SELECT pipeline, policy FROM catalogue WHERE kind = 'count'").fetchall()
    finally:
        c.close()
    flags: dict[str, set] = {}
    for pipeline, policy in rows:
        flags.setdefault(pipeline, set()).add(json.loads(policy)["secondary_suppression"])
    assert all(len(v) == 1 for v in flags.values()), flags
    return {p: v.pop() for p, v in flags.items()}


def test_secondary_suppression_follows_pipeline_then_command_line(fresh_db, samples_env):
    # police and maternity ask for it (PipelineSpec.secondary_suppression=True); the policy file does not
    assert _secondary_flags(fresh_db) == {"police_alcohol_incidents": True, "maternity_due_dates": True}
    run_pipelines([registry.get("police_alcohol_incidents")], db=fresh_db, demo=True, secondary=False)
    assert _secondary_flags(fresh_db) == {"police_alcohol_incidents": False, "maternity_due_dates": True}
    run_pipelines([registry.get("police_alcohol_incidents")], db=fresh_db, demo=True)
    assert _secondary_flags(fresh_db)["police_alcohol_incidents"] is True
