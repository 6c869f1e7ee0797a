"""Raw identifiers never leave the pipeline's memory.

Generates extracts, runs every pipeline, and looks for any NHS Number,
postcode or date of birth from the extracts in: every column of every table
of the publication, every file the run wrote (publication folder and the
process's temporary folder), and every file in DuckDB's spill folder just
before the run removes it. A second run forces DuckDB to spill to disk by
setting a low memory limit.
"""

from __future__ import annotations

import calendar
import datetime as dt
import os
import re
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipelines.framework import registry, runner
from pipelines.framework.runner import run_pipelines

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

TEN_DIGITS = re.compile(rb"(?<![0-9])[0-9]{10}(?![0-9])")
ISO_DATE = re.compile(rb"(?:19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]")
POSTCODE_ISH = re.compile(rb"[A-Z]{1,2}[0-9][0-9A-Z]? ?[0-9][A-Z]{2}")


def _is_period_boundary(text: str) -> bool:
    """Published periods start on a first and end on a last day of a month;
    such dates are in the publication by construction, not from the data."""
    d = dt.date.fromisoformat(text)
    return d.day == 1 or d.day == calendar.monthrange(d.year, d.month)[1]


def identifiers(samples: Path) -> dict[str, set[str]]:
    ae = pd.read_csv(samples / "ae_attendances.csv", dtype=str, keep_default_na=False)
    mat = pd.read_csv(samples / "maternity_bookings.csv", dtype=str, keep_default_na=False)
    nhs = {n.replace(" ", "") for n in pd.concat([ae["nhs_number"], mat["nhs_number"]]) if n.strip()}
    postcodes = {p for p in pd.concat([ae["postcode"], mat["postcode"]]) if p.strip()}
    postcodes |= {p.replace(" ", "") for p in postcodes}
    dobs = {d for d in pd.concat([ae["date_of_birth"], mat["mother_date_of_birth"]]) if d.strip()}
    dobs = {d for d in dobs if not _is_period_boundary(d)}
    return {"nhs": nhs, "postcode": postcodes, "dob": dobs}


def scan_bytes(data: bytes, ids: dict[str, set[str]]) -> list[str]:
    found = []
    for m in TEN_DIGITS.findall(data):
        if m.decode() in ids["nhs"]:
            found.append(f"NHS number {m.decode()}")
    for m in ISO_DATE.findall(data):
        if m.decode() in ids["dob"]:
            found.append(f"date of birth {m.decode()}")
    for m in POSTCODE_ISH.findall(data):
        text = m.decode()
        if text in ids["postcode"] or text.replace(" ", "") in ids["postcode"]:
            found.append(f"postcode {text}")
    return found


def scan_publication(db: Path, ids: dict[str, set[str]]) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    found = []
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        assert len(tables) > 10
        for t in tables:
            cols = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [t]).fetchall()]
            for c in cols:
                values = con.execute(f'SELECT DISTINCT CAST("{c}" AS VARCHAR) FROM "{t}"').fetchall()
                for (v,) in values:
                    if v is None:
                        continue
                    hits = scan_bytes(v.encode(), ids)
                    if v in ids["nhs"] or v in ids["postcode"] or v in ids["dob"]:
                        hits.append(f"value {v}")
                    found += [f"{t}.{c}: {h}" for h in hits]
    finally:
        con.close()
    return found


def scan_tree(root: Path, ids: dict[str, set[str]]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            found += [f"{path}: {h}" for h in scan_bytes(path.read_bytes(), ids)]
    return found


def _run_and_capture_spill(monkeypatch, tmp_path: Path, samples: Path, memory_limit: str | None):
    """Run every pipeline; capture the contents of each run-private spill
    folder at the moment the runner removes it."""
    monkeypatch.setenv("OUTCOMES_SAMPLES", str(samples))
    process_tmp = tmp_path / "tmp"
    process_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(process_tmp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    if memory_limit:
        monkeypatch.setenv("OUTCOMES_MEMORY_LIMIT", memory_limit)
        monkeypatch.setenv("OUTCOMES_THREADS", "1")
    spilled: dict[str, bytes] = {}
    real_rmtree = shutil.rmtree

    def capturing_rmtree(path, *args, **kwargs):
        for f in Path(path).rglob("*"):
            if f.is_file():
                spilled[str(f)] = f.read_bytes()
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(runner.shutil, "rmtree", capturing_rmtree)
    db = tmp_path / "pub" / "outcomes.duckdb"
    run_pipelines(list(registry.discover().values()), db=db, demo=True)
    return db, process_tmp, spilled


@pytest.fixture(scope="module")
def ids(demo_samples):
    found = identifiers(demo_samples)
    assert len(found["nhs"]) > 1000 and len(found["postcode"]) > 1000 and len(found["dob"]) > 1000
    return found


def test_no_identifier_in_publication_or_files(monkeypatch, tmp_path, demo_samples, ids):
    db, process_tmp, spilled = _run_and_capture_spill(monkeypatch, tmp_path, demo_samples, None)
    assert scan_publication(db, ids) == []
    assert scan_tree(db.parent, ids) == []
    assert scan_tree(process_tmp, ids) == []
    assert [k for k, v in spilled.items() if scan_bytes(v, ids)] == []
    # the run-private folders are gone
    assert not any(p.name.startswith("outcomes-") for p in process_tmp.iterdir())


def test_no_identifier_when_duckdb_spills_to_disk(monkeypatch, tmp_path, demo_samples, ids):
    db, process_tmp, spilled = _run_and_capture_spill(monkeypatch, tmp_path, demo_samples, "64MB")
    # the low memory limit really made DuckDB write temporary files
    assert spilled, "DuckDB did not spill: lower the memory limit in this test"
    hits = {k: scan_bytes(v, ids) for k, v in spilled.items()}
    assert {k: v for k, v in hits.items() if v} == {}
    assert scan_publication(db, ids) == []
    assert scan_tree(process_tmp, ids) == []
    assert not any(p.name.startswith("outcomes-") for p in process_tmp.iterdir())


def test_identifier_scanner_finds_what_it_should(ids, tmp_path):
    """The scan above can fail: planted identifiers are found."""
    nhs = sorted(ids["nhs"])[0]
    pc = sorted(ids["postcode"])[0]
    dob = sorted(ids["dob"])[0]
    (tmp_path / "leak.bin").write_bytes(b"\x00xx" + nhs.encode() + b"\x01" + pc.encode() + b";" + dob.encode())
    assert len(scan_tree(tmp_path, ids)) == 3
    os.remove(tmp_path / "leak.bin")
