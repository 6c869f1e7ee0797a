"""Small hand-made extracts with known answers, built from real reference
geography (so postcodes and LSOAs resolve) but no real person."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from pipelines.definitions.alcohol_ae import SCHEMA as AE_SCHEMA
from pipelines.framework.codelists import load_code_list
from pipelines.definitions.alcohol_ae import CODELIST
from pipelines.framework.identifiers import nhs_number_valid
from pipelines.samples.common import nhs_check_digit

AE_COLUMNS = [c.name for c in AE_SCHEMA.columns]


@dataclass(frozen=True)
class Places:
    trafford_postcodes: list[tuple[str, str]]  # (postcode, lsoa)
    trafford_lsoas: list[str]
    manchester_lsoa: str

    @classmethod
    def from_pack(cls, pack) -> "Places":
        con = duckdb.connect()
        pcs = con.execute(
            "SELECT postcode, lsoa_code FROM read_csv(?, all_varchar=true) ORDER BY postcode LIMIT 400",
            [str(pack.file("geography/trafford_postcodes.csv"))],
        ).fetchall()
        # keep postcodes in distinct LSOAs
        seen, chosen = set(), []
        for pc, lsoa in pcs:
            if lsoa not in seen:
                seen.add(lsoa)
                chosen.append((pc, lsoa))
        lsoas = [r[0] for r in con.execute(
            "SELECT DISTINCT lsoa21cd FROM read_csv(?, all_varchar=true) WHERE lad22cd = 'E08000009' ORDER BY 1",
            [str(pack.file("geography/lsoa_to_ward_best-fit_lookup.csv"))]).fetchall()]
        man = con.execute(
            "SELECT min(lsoa21cd) FROM read_csv(?, all_varchar=true) WHERE lad22cd = 'E08000003'",
            [str(pack.file("geography/lsoa_to_ward_best-fit_lookup.csv"))]).fetchone()[0]
        con.close()
        return cls(chosen, lsoas, man)


def alcohol_codes() -> tuple[str, str]:
    cl = load_code_list(CODELIST)
    return cl.codes("involvement")[0], cl.codes("diagnosis")[0]


def valid_nhs(first9: int | str) -> str:
    """The first valid NHS Number (Modulus 11) whose first nine digits are ``first9`` or,
    where that has no valid check digit, the next nine-digit number that has one."""
    first9 = int(first9)
    while (check := int(nhs_check_digit(np.array([first9]))[0])) == 10:
        first9 += 1
    number = f"{first9:09d}{check}"
    assert nhs_number_valid(number)  # the generator's check digit agrees with the pipeline's check
    return number


def ae_row(i: int, **kw) -> dict:
    row = {
        "attendance_id": f"T{i:06d}",
        "nhs_number": "",
        "date_of_birth": "1990-01-15",
        "sex": "1",
        "postcode": "",
        "lsoa_code": "",
        "arrival_datetime": "2023-05-10T10:00:00",
        "chief_complaint_snomed": "",
        "primary_diagnosis_snomed": "",
        "alcohol_drug_involvement_snomed": "",
        "discharge_destination_snomed": "",
    }
    row.update(kw)
    return row


def write_csv(path: Path, rows: list[dict], columns: list[str] = AE_COLUMNS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


EXACT_POLICY = """
name = "exact-for-tests"
description = "No suppression and no rounding: only for tests of aggregation."
threshold = 0
suppress_small = false
zeros_shown = true
rounding = "none"
rounding_base = 1
protection_width = 1
"""
