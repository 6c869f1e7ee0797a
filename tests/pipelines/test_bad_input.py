"""Bad input: a clear message naming file, row(s) and column, a non-zero
exit, and the previous publication left exactly as it was.

Each case starts from a good publication and checks its bytes afterwards.
Messages must never contain a value from an identifier column.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from pipelines.cli import main

from .extract_builder import AE_COLUMNS, Places, ae_row, alcohol_codes, write_csv

pytestmark = pytest.mark.pipeline

NHS_IN_EXTRACT = "9434765919"


def _digest(db: Path) -> tuple[str, str]:
    target = db.resolve()
    return str(target), hashlib.sha256(target.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def good(tmp_path_factory, reference_pack):
    """A good extract (40 rows) and a publication built from it."""
    tmp = tmp_path_factory.mktemp("bad_input")
    places = Places.from_pack(reference_pack)
    involvement, _ = alcohol_codes()
    rows = []
    for i in range(40):
        pc, _lsoa = places.trafford_postcodes[i % 5]
        rows.append(ae_row(i + 1, nhs_number=NHS_IN_EXTRACT, postcode=pc, date_of_birth="1985-06-15",
                           sex="2" if i % 2 else "1",
                           arrival_datetime=f"2023-{(i % 12) + 1:02d}-1{i % 10}T12:00:00",
                           alcohol_drug_involvement_snomed=involvement if i % 3 == 0 else ""))
    extract = write_csv(tmp / "good.csv", rows)
    db = tmp / "pub" / "outcomes.duckdb"
    assert main(["run", "alcohol_ae", "--input", str(extract), "--db", str(db), "--demo"]) == 0
    return tmp, rows, db


def run_bad(tmp: Path, db: Path, extract: Path, capsys) -> tuple[int, str]:
    before = _digest(db)
    code = main(["run", "alcohol_ae", "--input", str(extract), "--db", str(db), "--demo"])
    err = capsys.readouterr().err
    assert _digest(db) == before, "the previous publication changed"
    assert NHS_IN_EXTRACT not in err and "1985-06-15" not in err
    return code, " ".join(err.split())


def test_missing_column(good, capsys):
    tmp, rows, db = good
    cols = [c for c in AE_COLUMNS if c != "arrival_datetime"]
    bad = write_csv(tmp / "missing.csv", rows, cols)
    code, err = run_bad(tmp, db, bad, capsys)
    assert code == 2
    assert "missing.csv" in err and "missing column(s) arrival_datetime" in err


def test_column_of_wrong_type_throughout(good, capsys):
    tmp, rows, db = good
    bad_rows = [dict(r, arrival_datetime="yesterday") for r in rows]
    bad = write_csv(tmp / "wrongtype.csv", bad_rows)
    code, err = run_bad(tmp, db, bad, capsys)
    assert code == 2
    assert "wrongtype.csv" in err and "column 'arrival_datetime'" in err
    assert "no value could be read as a timestamp" in err and "rows 1, 2, 3, 4, 5" in err


def test_empty_file(good, capsys):
    tmp, _rows, db = good
    bad = tmp / "empty.csv"
    bad.write_bytes(b"")
    code, err = run_bad(tmp, db, bad, capsys)
    assert code == 2 and "empty.csv" in err and "empty" in err


def test_header_only(good, capsys):
    tmp, _rows, db = good
    bad = write_csv(tmp / "header_only.csv", [])
    code, err = run_bad(tmp, db, bad, capsys)
    assert code == 2 and "no data rows" in err


def test_not_a_csv_at_all(good, capsys):
    tmp, _rows, db = good
    bad = tmp / "picture.csv"
    bad.write_bytes(bytes(range(256)) * 64)
    code, err = run_bad(tmp, db, bad, capsys)
    assert code == 2 and "picture.csv" in err and "not a CSV" in err


def test_text_that_is_not_this_extract(good, capsys):
    tmp, _rows, db = good
    bad = tmp / "notes.csv"
    bad.write_text("Dear colleague,\nplease find attached 9434765919 the extract.\n")
    code, err = run_bad(tmp, db, bad, capsys)
    assert code == 2 and "notes.csv" in err and "none of the expected columns" in err


def test_headerless_extract_does_not_echo_data(good, capsys):
    tmp, rows, db = good
    bad = tmp / "no_header.csv"
    lines = [",".join(r[c] for c in AE_COLUMNS) for r in rows]
    bad.write_text("\n".join(lines) + "\n")
    code, err = run_bad(tmp, db, bad, capsys)
    assert code == 2 and "no_header.csv" in err  # identifiers checked in run_bad


def test_duplicated_attendance_ids(good, capsys):
    tmp, rows, db = good
    dup = [dict(r) for r in rows]
    dup[9]["attendance_id"] = dup[2]["attendance_id"]
    dup[30]["attendance_id"] = dup[2]["attendance_id"]
    bad = write_csv(tmp / "dups.csv", dup)
    code, err = run_bad(tmp, db, bad, capsys)
    assert code == 2
    assert "dups.csv" in err and "column 'attendance_id'" in err
    assert "1 value(s) appear more than once" in err and "rows 3, 10, 31" in err


def test_unusable_rows_are_rejected_counted_and_named(good, capsys, tmp_path):
    tmp, rows, _db = good
    db = tmp_path / "pub" / "outcomes.duckdb"
    some_bad = [dict(r) for r in rows] + [dict(r) for r in rows]
    for i, r in enumerate(some_bad):
        r["attendance_id"] = f"R{i:05d}"
    some_bad[4]["arrival_datetime"] = "31/13/2022 25:00"
    some_bad[50]["arrival_datetime"] = "2099-01-01T00:00:00"
    some_bad[60]["sex"] = "U"
    bad = write_csv(tmp / "some_bad.csv", some_bad)
    assert main(["run", "alcohol_ae", "--input", str(bad), "--db", str(db), "--demo"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 unreadable arrival_datetime (e.g. rows 5)" in out
    assert "1 arrival date in the future (e.g. rows 51)" in out
    assert "1 unknown sex code (e.g. rows 61)" in out


def test_too_many_unusable_rows_fail_with_counts(good, capsys):
    tmp, rows, db = good
    bad_rows = [dict(r) for r in rows]
    for r in bad_rows[:5]:
        r["sex"] = "U"
    bad = write_csv(tmp / "many_bad.csv", bad_rows)
    code, err = run_bad(tmp, db, bad, capsys)
    assert code == 2
    assert "5 of 40 rows (12.5%) are unusable" in err and "unknown sex code: 5 (e.g. rows 1, 2, 3, ...)" in err


def test_missing_input_file(good, capsys):
    tmp, _rows, db = good
    code, err = run_bad(tmp, db, tmp / "nowhere.csv", capsys)
    assert code == 2 and "nowhere.csv" in err and "not found" in err


def test_unknown_policy_is_refused(good, capsys):
    tmp, _rows, db = good
    before = _digest(db)
    code = main(["run", "alcohol_ae", "--input", str(tmp / "good.csv"), "--db", str(db), "--demo", "--policy", "lenient"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown policy 'lenient'" in err
    assert _digest(db) == before


def test_real_data_run_needs_a_key(good, capsys, monkeypatch):
    tmp, _rows, db = good
    monkeypatch.delenv("OUTCOMES_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("OUTCOMES_PSEUDONYM_KEY_FILE", raising=False)
    before = _digest(db)
    code = main(["run", "alcohol_ae", "--input", str(tmp / "good.csv"), "--db", str(db)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "no pseudonymisation key" in err
    assert _digest(db) == before


def test_excel_and_parquet_extracts_give_the_same_tables(good, tmp_path):
    """The same rows as CSV, Excel and Parquet publish identical tables."""
    import duckdb
    import openpyxl
    import pandas as pd

    tmp, rows, _db = good
    frame = pd.DataFrame(rows, columns=AE_COLUMNS)
    xlsx = tmp_path / "ae.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(AE_COLUMNS)
    for r in rows:
        # numbers and dates typed as a spreadsheet would hold them
        values = [r[c] for c in AE_COLUMNS]
        values[AE_COLUMNS.index("nhs_number")] = int(r["nhs_number"])
        values[AE_COLUMNS.index("date_of_birth")] = pd.Timestamp(r["date_of_birth"]).to_pydatetime()
        sheet.append(values)
    book.save(xlsx)
    parquet = tmp_path / "ae.parquet"
    frame.to_parquet(parquet)
    tables = {}
    for name, path in (("csv", tmp / "good.csv"), ("xlsx", xlsx), ("parquet", parquet)):
        db = tmp_path / name / "outcomes.duckdb"
        assert main(["run", "alcohol_ae", "--input", str(path), "--db", str(db), "--demo"]) == 0
        con = duckdb.connect(str(db), read_only=True)
        tables[name] = con.execute(
            "SELECT * FROM alcohol_ae__all_attendances__la_month ORDER BY ALL").df()
        con.close()
    pd.testing.assert_frame_equal(tables["csv"], tables["xlsx"])
    pd.testing.assert_frame_equal(tables["csv"], tables["parquet"])
    shutil.rmtree(tmp_path / "csv")
