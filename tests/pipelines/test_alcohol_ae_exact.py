"""alcohol_ae on a hand-made extract whose every count is known.

Published under a test-only policy with no suppression and no rounding, so
the aggregation itself (geography, periods, sex/age bands, All margins,
distinct persons at their first attendance, completeness with zeros, and the
rejected/excluded accounting) is checked value by value.
"""

from __future__ import annotations

import json

import duckdb
import pytest

from pipelines.cli import main

from .extract_builder import EXACT_POLICY, Places, ae_row, alcohol_codes, valid_nhs, write_csv

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def published(tmp_path_factory, reference_pack):
    tmp = tmp_path_factory.mktemp("exact")
    places = Places.from_pack(reference_pack)
    (pc1, l1), (pc2, l2) = places.trafford_postcodes[0], places.trafford_postcodes[1]
    l3 = next(x for x in places.trafford_lsoas if x not in (l1, l2))
    involvement, diagnosis = alcohol_codes()
    a = valid_nhs("943476591")
    b_invalid = a[:-1] + str((int(a[-1]) + 1) % 10)
    c = valid_nhs("401023213")
    rows = [
        # person A: three alcohol attendances, first in L1 (May), then L2 (May), L2 (June)
        ae_row(1, nhs_number=a, sex="2", date_of_birth="1993-02-01", postcode=pc1,
               arrival_datetime="2023-05-10T10:00:00", alcohol_drug_involvement_snomed=involvement),
        ae_row(2, nhs_number=a[:3] + " " + a[3:6] + " " + a[6:], sex="2", date_of_birth="1993-02-01", postcode=pc2,
               arrival_datetime="2023-05-20T23:30:00", primary_diagnosis_snomed=diagnosis),
        ae_row(3, nhs_number=a, sex="2", date_of_birth="1993-02-01", postcode=pc2,
               arrival_datetime="2023-06-01T01:00:00", alcohol_drug_involvement_snomed=involvement),
        # person B: invalid NHS number (not countable as a person), male, 70
        ae_row(4, nhs_number=b_invalid, sex="1", date_of_birth="1953-01-01", postcode=pc1,
               arrival_datetime="2023-05-11T12:00:00", alcohol_drug_involvement_snomed=involvement),
        # person C: not alcohol-related, sex 9, LSOA given only
        ae_row(5, nhs_number=c, sex="9", date_of_birth="2010-07-01", lsoa_code=l3,
               arrival_datetime="2023-05-12T08:00:00"),
        # rejected: unknown sex code
        ae_row(6, nhs_number=c, sex="3", postcode=pc1, arrival_datetime="2023-05-13T08:00:00"),
        # excluded: well-formed LSOA outside the pack (outside Greater Manchester)
        ae_row(7, lsoa_code="E01099999", arrival_datetime="2023-05-14T08:00:00"),
        # excluded: no usable location
        ae_row(8, arrival_datetime="2023-05-15T08:00:00"),
        # other GM borough (Manchester), alcohol-related, LSOA only
        ae_row(9, nhs_number=valid_nhs("401023214"), sex="1", date_of_birth="1980-03-03",
               lsoa_code=places.manchester_lsoa, arrival_datetime="2023-06-15T20:00:00",
               alcohol_drug_involvement_snomed=involvement),
    ]
    extract = write_csv(tmp / "ae.csv", rows)
    policy = tmp / "exact.toml"
    policy.write_text(EXACT_POLICY)
    db = tmp / "pub" / "outcomes.duckdb"
    code = main(["run", "alcohol_ae", "--input", str(extract), "--db", str(db), "--policy", str(policy), "--demo",
                 "--max-rejects", "0.2"])
    assert code == 0
    con = duckdb.connect(str(db), read_only=True)
    yield con, {"l1": l1, "l2": l2, "l3": l3, "man": places.manchester_lsoa}
    con.close()


def value(con, table, **keys):
    where = " AND ".join(f"{k} = ?" for k in keys)
    rows = con.execute(f'SELECT count FROM "{table}" WHERE {where}', list(keys.values())).fetchall()
    assert len(rows) == 1, (table, keys, rows)
    return rows[0][0]


T = "alcohol_ae__{}__{}"


def test_borough_month_counts(published):
    con, _ = published
    t = T.format("alcohol_attendances", "la_month")
    assert value(con, t, area_code="E08000009", period_start="2023-05-01") == 3
    assert value(con, t, area_code="E08000009", period_start="2023-06-01") == 1
    # Greater Manchester = Trafford + Manchester
    assert value(con, t, area_code="E47000001", period_start="2023-06-01") == 2
    assert value(con, t, area_code="E08000003", period_start="2023-06-01") == 1
    assert value(con, t, area_code="E08000003", period_start="2023-05-01") == 0
    all_t = T.format("all_attendances", "la_month")
    assert value(con, all_t, area_code="E08000009", period_start="2023-05-01") == 4
    # monthly tables are by area only: no sex or age columns
    cols = {r[0] for r in con.execute(f'DESCRIBE "{t}"').fetchall()}
    assert not {"sex", "age_band"} & cols


def test_persons_counted_once_at_first_attendance(published):
    con, areas = published
    t = T.format("alcohol_persons", "la_month")
    # May: A (B's NHS number is invalid, so B is not countable)
    assert value(con, t, area_code="E08000009", period_start="2023-05-01") == 1
    # June: A again (persons do not add over periods)
    assert value(con, t, area_code="E08000009", period_start="2023-06-01") == 1
    # the year: A once (and the Manchester resident in Greater Manchester)
    year_la = T.format("alcohol_persons", "la_year")
    assert value(con, year_la, area_code="E08000009", period_start="2023-04-01", sex="All", age_band="All") == 1
    assert value(con, year_la, area_code="E47000001", period_start="2023-04-01", sex="All", age_band="All") == 2
    year = T.format("alcohol_persons", "msoa_lsoa_year")
    fy = "2023-04-01"
    assert value(con, year, area_code=areas["l1"], period_start=fy) == 1  # first attendance of the year
    assert value(con, year, area_code=areas["l2"], period_start=fy) == 0
    att = T.format("alcohol_attendances", "msoa_lsoa_year")
    assert value(con, att, area_code=areas["l2"], period_start=fy) == 2
    assert value(con, att, area_code=areas["l1"], period_start=fy) == 2
    runs = con.execute("SELECT persons_not_countable FROM runs WHERE pipeline = 'alcohol_ae'").fetchone()
    assert runs[0] == 1


def test_esp_bands_and_financial_year(published):
    con, _ = published
    t = T.format("alcohol_attendances", "la_year")
    fy = dict(area_code="E08000009", period_start="2023-04-01")
    assert value(con, t, **fy, sex="All", age_band="All") == 4
    assert value(con, t, **fy, sex="Female", age_band="30-34") == 3
    assert value(con, t, **fy, sex="Male", age_band="70-74") == 1
    # sex and age margins (the monthly tables have none)
    assert value(con, t, **fy, sex="Female", age_band="All") == 3
    assert value(con, t, **fy, sex="Male", age_band="All") == 1
    assert value(con, t, **fy, sex="All", age_band="70-74") == 1
    assert value(con, t, **fy, sex="Male", age_band="30-34") == 0
    man = dict(area_code="E08000003", period_start="2023-04-01")
    assert value(con, t, **man, sex="Male", age_band="40-44") == 1   # born March 1980, attended June 2023
    assert value(con, t, area_code="E47000001", period_start="2023-04-01", sex="All", age_band="All") == 5
    all_t = T.format("all_attendances", "la_year")
    assert value(con, all_t, **fy, sex="Other or not known", age_band="10-14") == 1  # born July 2010, May 2023
    row = con.execute(f'SELECT period_end, provisional FROM "{t}" WHERE area_code = ? LIMIT 1', ["E08000009"]).fetchone()
    assert str(row[0]) == "2024-03-31"
    assert row[1] is True  # the extract covers only May-June of the year


def test_complete_cubes_with_zeros(published):
    con, _ = published
    t = T.format("alcohol_attendances", "la_month")
    n, nulls = con.execute(f'SELECT count(*), count(*) - count(count) FROM "{t}"').fetchone()
    # 10 boroughs + GM, 2 months (by area only)
    assert n == 11 * 2
    assert nulls == 0
    ward = T.format("alcohol_attendances", "locality_ward_month")
    levels = dict(con.execute(f'SELECT area_level, count(*) FROM "{ward}" GROUP BY 1').fetchall())
    assert levels == {"locality": 4 * 2, "ward": 21 * 2}


def test_rejected_and_excluded_rows_are_reported(published):
    con, _ = published
    rows_read, rejected, excluded = con.execute(
        "SELECT rows_read, rows_rejected, rows_excluded FROM runs WHERE pipeline = 'alcohol_ae'").fetchone()
    assert rows_read == 9
    assert json.loads(rejected) == {"unknown sex code": 1}
    assert json.loads(excluded) == {
        "resident outside the reference area": 1,
        "no usable location (no postcode or LSOA found)": 1,
    }
