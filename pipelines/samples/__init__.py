"""Synthetic partner extracts for development, tests and benchmarks.

No real person-level data may exist in this repository. These generators
produce look-alike extracts for the three partners, drawing only codes and
proportions from the public reference pack (ONS/OS open data; see
``reference.py``):

* ``ae_attendances.csv`` - A&E attendances shaped like an ECDS extract
  (``ae.py``), with the planted effect described in ``planted.py``;
* ``maternity_bookings.csv`` - pregnancy bookings shaped like an MSDS extract
  (``maternity.py``);
* ``police_incidents.parquet`` - police-recorded incidents (``police.py``).

Every NHS number is synthetic (valid Modulus 11 numbers starting with 9, a
range not issued to patients in England), every date of birth is drawn, and
postcodes are real Trafford postcodes chosen at random, so no row describes
a real person.

Output is deterministic: the same arguments and seed give byte-identical
files. Generation is vectorised and written in chunks of a million rows.

Usage::

    from pipelines.samples import generate_samples
    paths = generate_samples("data_samples/generated", rows_per_year=100_000)

or ``python -m pipelines.samples OUT_DIR [--rows-per-year N] [--seed S] [--progress]``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .ae import COLUMNS as AE_COLUMNS
from .ae import alcohol_probability, generate_ae
from .common import nhs_check_digit, nhs_number_is_valid, progress_bar, read_codelist
from .maternity import COLUMNS as MATERNITY_COLUMNS
from .maternity import generate_maternity
from .planted import PLANTED_LOCALITY, PLANTED_REDUCTION, PLANTED_START
from .police import SCHEMA as POLICE_SCHEMA
from .police import generate_police
from .reference import ReferenceDataMissing, load_reference, resolve_reference_dir

AE_FILE = "ae_attendances.csv"
MATERNITY_FILE = "maternity_bookings.csv"
POLICE_FILE = "police_incidents.parquet"
DATASETS = ("ae_attendances", "maternity_bookings", "police_incidents")


def generate_samples(
    out_dir: str | os.PathLike,
    *,
    rows_per_year: int = 100_000,
    seed: int = 20240331,
    reference_dir: str | os.PathLike | None = None,
    bookings_per_year: int = 3000,
    incidents_per_year: int = 20000,
    datasets: Iterable[str] | None = None,
    progress: bool = False,
) -> dict[str, Path]:
    """Write the synthetic partner extracts into ``out_dir``; return their paths by dataset name.

    ``rows_per_year`` A&E attendances, ``bookings_per_year`` maternity
    bookings and ``incidents_per_year`` police incidents per financial year,
    for the three years 2021/22 to 2023/24. ``datasets`` limits which files
    are written (default all of ``DATASETS``). ``progress`` shows a rich
    progress bar. Raises ``ReferenceDataMissing`` if the reference pack is not
    found (see ``reference.resolve_reference_dir``).
    """
    wanted = tuple(DATASETS if datasets is None else datasets)
    unknown = set(wanted) - set(DATASETS)
    if unknown:
        raise ValueError(f"unknown dataset(s) {sorted(unknown)}; choose from {DATASETS}")
    for name, value in (
        ("rows_per_year", rows_per_year),
        ("bookings_per_year", bookings_per_year),
        ("incidents_per_year", incidents_per_year),
    ):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    ref = load_reference(reference_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    with progress_bar(progress) as bar:
        if "ae_attendances" in wanted:
            task = bar.add_task("A&E attendances", total=3 * int(rows_per_year))
            paths["ae_attendances"] = generate_ae(
                out / AE_FILE, ref, rows_per_year=int(rows_per_year), seed=int(seed), progress=bar, task=task
            )
        if "maternity_bookings" in wanted:
            task = bar.add_task("Maternity bookings", total=3 * int(bookings_per_year))
            paths["maternity_bookings"] = generate_maternity(
                out / MATERNITY_FILE, ref, bookings_per_year=int(bookings_per_year), seed=int(seed),
                progress=bar, task=task,
            )
        if "police_incidents" in wanted:
            task = bar.add_task("Police incidents", total=3 * int(incidents_per_year))
            paths["police_incidents"] = generate_police(
                out / POLICE_FILE, ref, incidents_per_year=int(incidents_per_year), seed=int(seed),
                progress=bar, task=task,
            )
    return paths


__all__ = [
    "AE_COLUMNS",
    "DATASETS",
    "MATERNITY_COLUMNS",
    "PLANTED_LOCALITY",
    "PLANTED_REDUCTION",
    "PLANTED_START",
    "POLICE_SCHEMA",
    "ReferenceDataMissing",
    "alcohol_probability",
    "generate_samples",
    "load_reference",
    "nhs_check_digit",
    "nhs_number_is_valid",
    "read_codelist",
    "resolve_reference_dir",
]
