"""``bench/pandas_alcohol_ae.py`` (the pandas-only baseline of the throughput bench) publishes
exactly what ``outcomes run alcohol_ae --primary-only`` publishes.

The extract is the bench's synthetic A&E extract at about 20,000 rows (same generator and
seed), with a few hand-made rows appended for rules the generator never exercises (a 29 February
birthday, a postcode and an LSOA code that disagree, padded and lower-case values, NHS Numbers
written with spaces or hyphens, ties between a person's first attendances, a period only partly
covered, and rows each reject rule catches). Compared: the set of count tables in the catalogue, and every table row for row (keys,
``area_level``, ``provisional``, counts, NULLs where suppressed), plus the rows rejected by
reason, excluded and not countable as persons. Once under the default policy (nhs-digital
primary rules: what the bench times), and once under a test policy that neither suppresses
nor rounds, so the true counts are compared too (rounding to 5 would hide an off-by-one).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipelines.cli import main

from ..conftest import SEED
from .extract_builder import AE_COLUMNS, EXACT_POLICY, Places, ae_row, alcohol_codes, valid_nhs

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import pandas_alcohol_ae  # noqa: E402

pytestmark = pytest.mark.pipeline

ROWS_PER_YEAR = 6_667  # 20,001 rows over the three financial years, as pipeline_throughput.extract(20_001) makes


def edge_rows(places: Places) -> list[dict]:
    """Rows for rules the generator never exercises; persons have NHS Numbers starting with 4
    (the generator's start with 9)."""
    pcs = places.trafford_postcodes
    inv, diag = alcohol_codes()
    a, c, d, e = (valid_nhs(n) for n in (401000000, 402000000, 403000000, 404000000))
    return [
        # 29 February birthday: 30 on 28 February 2022 (DuckDB's date_sub), not 29
        ae_row(1, nhs_number=a, date_of_birth="1992-02-29", sex="1", postcode=pcs[0][0],
               arrival_datetime="2022-02-28T12:00:00", alcohol_drug_involvement_snomed=inv),
        # postcode (Trafford) and LSOA code (Manchester) disagree: the postcode wins
        ae_row(2, nhs_number=valid_nhs(405000000), date_of_birth="1985-05-05", sex="2", postcode=pcs[1][0],
               lsoa_code=places.manchester_lsoa, arrival_datetime="2022-06-10T22:00:00",
               alcohol_drug_involvement_snomed=inv),
        # padded, lower-case values: trimmed, and the postcode matched without case or spaces
        ae_row(3, attendance_id="  T000003 ", nhs_number=f" {c} ", date_of_birth=" 1970-03-03 ", sex=" 2 ",
               postcode=f"  {pcs[2][0].lower()} ", arrival_datetime=" 2022-07-01T01:00:00 ",
               primary_diagnosis_snomed=f" {diag} "),
        # one person, NHS Number written two ways, twice in a month: counted once, where first seen
        ae_row(4, nhs_number=f"{d[:3]} {d[3:6]} {d[6:]}", date_of_birth="1960-01-01", sex="1", postcode=pcs[3][0],
               arrival_datetime="2022-11-02T02:00:00", alcohol_drug_involvement_snomed=inv),
        ae_row(5, nhs_number=f"{d[:3]}-{d[3:6]}-{d[6:]}", date_of_birth="1960-01-01", sex="1", postcode=pcs[4][0],
               arrival_datetime="2022-11-20T02:00:00", alcohol_drug_involvement_snomed=inv),
        # one person, two attendances at the same minute: the first by LSOA code, then by sex
        ae_row(6, nhs_number=e, date_of_birth="1975-06-15", sex="1", postcode=pcs[6][0],
               arrival_datetime="2023-01-07T23:59:00", alcohol_drug_involvement_snomed=inv),
        ae_row(7, nhs_number=e, date_of_birth="1975-06-15", sex="2", postcode=pcs[5][0],
               arrival_datetime="2023-01-07T23:59:00", alcohol_drug_involvement_snomed=inv),
        ae_row(8, nhs_number=e, date_of_birth="1975-06-15", sex="1", postcode=pcs[5][0],
               arrival_datetime="2023-01-07T23:59:00", alcohol_drug_involvement_snomed=inv),
        # other ISO 8601 forms of the arrival time
        ae_row(9, nhs_number=valid_nhs(406000000), date_of_birth="1930-08-08", sex="9", postcode=pcs[7][0],
               arrival_datetime="2022-08-15 03:00:00", alcohol_drug_involvement_snomed=inv),
        ae_row(10, date_of_birth="1999-12-31", sex="X", postcode=pcs[8][0], arrival_datetime="2022-10-10"),
        # after the last generated attendance: a month and a financial year only partly covered
        ae_row(11, date_of_birth="1950-01-01", sex="2", postcode=pcs[9][0], arrival_datetime="2024-04-10T09:00:00"),
        # rejected, one per rule
        ae_row(12, date_of_birth="2023-01-01", postcode=pcs[0][0], arrival_datetime="2022-12-01T10:00:00"),
        ae_row(13, date_of_birth="1890-01-01", postcode=pcs[0][0], arrival_datetime="2022-01-01T10:00:00"),
        ae_row(14, lsoa_code="NA", arrival_datetime="2022-01-01T10:00:00"),
        ae_row(15, postcode=pcs[0][0], arrival_datetime="2001-06-01T10:00:00"),
        ae_row(16, attendance_id="", postcode=pcs[0][0]),
        ae_row(17, sex="x", postcode=pcs[0][0]),
        ae_row(18, date_of_birth="1990-02-30", postcode=pcs[0][0]),
        ae_row(19, date_of_birth="", postcode=pcs[0][0]),
        ae_row(20, postcode=pcs[0][0], arrival_datetime="   "),  # blank once trimmed: missing, not unreadable
    ]


@pytest.fixture(scope="module")
def extract(tmp_path_factory, reference_pack) -> Path:
    from pipelines.samples import AE_FILE, generate_samples

    out = tmp_path_factory.mktemp("pandas_baseline")
    generate_samples(out, rows_per_year=ROWS_PER_YEAR, seed=SEED, datasets=["ae_attendances"])
    path = out / AE_FILE
    with open(path, "a", newline="", encoding="utf-8") as f:  # ids T000001...: the generator's are AE...
        csv.DictWriter(f, fieldnames=AE_COLUMNS).writerows(edge_rows(Places.from_pack(reference_pack)))
    return path


def published(db: Path) -> tuple[dict[str, pd.DataFrame], dict]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM catalogue WHERE pipeline = 'alcohol_ae' AND kind = 'count'").fetchall()]
        tables = {n: con.execute(f'SELECT * FROM "{n}"').df() for n in names}
        read, rejected, excluded, not_countable = con.execute(
            "SELECT rows_read, rows_rejected, rows_excluded, persons_not_countable FROM runs "
            "WHERE pipeline = 'alcohol_ae'").fetchone()
    finally:
        con.close()
    return tables, {"rows_read": read, "rejected": json.loads(rejected), "excluded": json.loads(excluded),
                    "persons_not_countable": not_countable}


def normalised(df: pd.DataFrame) -> pd.DataFrame:
    """Same columns in the same order, comparable types, rows in key order."""
    out = df.copy()
    for c in ("period_start", "period_end"):
        out[c] = pd.to_datetime(out[c]).astype("datetime64[ns]")
    out["provisional"] = out["provisional"].astype(bool)
    out["count"] = out["count"].astype("Int64")
    keys = [c for c in out.columns if c != "count"]
    for c in keys:
        if c not in ("period_start", "period_end", "provisional"):
            out[c] = out[c].astype(object)
    return out.sort_values(keys).reset_index(drop=True)


@pytest.mark.parametrize("policy", ["nhs-digital", "exact"])
def test_pandas_baseline_equals_the_primary_only_publication(extract, reference_pack, tmp_path, policy):
    args = ["run", "alcohol_ae", "--demo", "--primary-only", "--input", str(extract),
            "--db", str(tmp_path / "x.duckdb")]
    if policy == "exact":
        (tmp_path / "exact.toml").write_text(EXACT_POLICY)
        args += ["--policy", str(tmp_path / "exact.toml")]
    assert main(args) == 0
    pipeline_tables, run = published(tmp_path / "x.duckdb")

    tables, summary = pandas_alcohol_ae.publish(extract, reference_pack, protect=policy != "exact")

    assert len(pipeline_tables) == 12
    assert set(tables) == set(pipeline_tables)
    suppressed = 0
    for name, expected in pipeline_tables.items():
        got = tables[name]
        assert list(got.columns) == list(expected.columns), name
        pd.testing.assert_frame_equal(normalised(got), normalised(expected), check_dtype=False, obj=name)
        suppressed += int(expected["count"].isna().sum())
    # the comparison means something: counts of every size, and suppressed cells under the real policy
    assert (suppressed > 0) == (policy != "exact")
    assert max(int(t["count"].max()) for t in pipeline_tables.values()) > 1000
    assert summary.rejected == run["rejected"] and sum(summary.rejected.values()) > 0
    assert summary.excluded == run["excluded"]
    assert summary.persons_not_countable == run["persons_not_countable"]
    assert summary.rows_read == run["rows_read"] == 3 * ROWS_PER_YEAR + len(edge_rows(Places.from_pack(reference_pack)))
    assert len(run["rejected"]) == 11  # rows for every reject rule


def test_publish_tables_is_the_primary_only_publication(extract, reference_pack):
    """The bench's entry point gives the nhs-digital tables (NULL where suppressed)."""
    tables = pandas_alcohol_ae.publish_tables(extract, reference_pack)
    counts = pd.concat([t["count"] for t in tables.values()])
    assert counts.isna().any()
    shown = counts.dropna().astype(int)
    assert (shown % 5 == 0).all() and not shown.between(1, 7).any()
