"""The reference pack, compiled once and reused by every run.

Every run needs the same reference tables: the LSOA and postcode lookups
that staging joins against, and the areas, their LSOA members and the
population estimates that cubes and the publication use. Building them means
reading and reshaping the pack's CSV files (about 1-2 s of a small run, most
of a test's run), so they are compiled once into a DuckDB file in the cache
folder and read back from there (a few tens of milliseconds).

The cache holds public reference data only (no extract ever reaches it).
An entry is named by a fingerprint of everything it is built from: the path,
size and modification time of every file in the pack, the bytes of the
catchment file, the source of the modules that build it, and the years
covered; any change builds a new entry. Entries are written to a temporary
file and renamed into place, so a killed run leaves no half-written entry
that a later run could read, and two runs building at once both succeed.
Fresh builds go through the same DuckDB round trip as cached reads, so a run
sees exactly the same tables whether or not the cache was warm.

Folder: ``OUTCOMES_CACHE_DIR``, else ``$XDG_CACHE_HOME/outcomes``, else
``~/.cache/outcomes``. If it can't be written, runs build in memory as before.
Set ``OUTCOMES_CACHE_DIR=off`` to never use it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Callable

import duckdb
import pandas as pd

from . import geography, population
from .reference import ReferencePack

FORMAT = 1  # bump when the tables' shape changes without a module source change
LOOKUP_TABLES = ("ref_lsoas", "ref_postcodes")
GEOGRAPHY_TABLES = ("areas", "area_members", "population")

_MEMO: dict[str, dict[str, pd.DataFrame]] = {}


def cache_dir() -> Path | None:
    configured = os.environ.get("OUTCOMES_CACHE_DIR")
    if configured:
        return None if configured.lower() == "off" else Path(configured)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "outcomes"


def population_years() -> range:
    return range(2018, dt.date.today().year + 1)


def _fingerprint(kind: str, pack: ReferencePack, extra: bytes = b"") -> str:
    h = hashlib.sha256(f"{kind}:{FORMAT}".encode())
    for path in sorted(p for p in pack.root.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(pack.root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    for module in (geography, population):
        h.update(Path(module.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update(extra)
    return h.hexdigest()[:32]


def _round_trip(tables: dict[str, pd.DataFrame], path: Path | None) -> dict[str, pd.DataFrame]:
    """Store ``tables`` in a DuckDB file at ``path`` (or in memory) and read them back."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp") if path else None
    con = duckdb.connect(str(tmp) if tmp else ":memory:")
    try:
        for name, df in tables.items():
            con.register("_df", df)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM _df")
            con.unregister("_df")
        out = {name: con.execute(f"SELECT * FROM {name}").df() for name in tables}
    finally:
        con.close()
    if tmp is not None:
        os.replace(tmp, path)
    return out


def _read(path: Path, names: tuple[str, ...]) -> dict[str, pd.DataFrame] | None:
    try:
        con = duckdb.connect(str(path), read_only=True)
    except (duckdb.Error, OSError):
        return None
    try:
        return {name: con.execute(f"SELECT * FROM {name}").df() for name in names}
    except duckdb.Error:
        return None
    finally:
        con.close()


def _cached(kind: str, fingerprint: str, names: tuple[str, ...],
            build: Callable[[], dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    key = f"{kind}-{fingerprint}"
    if key in _MEMO:
        return {name: df.copy() for name, df in _MEMO[key].items()}  # callers may change theirs
    folder = cache_dir()
    path = folder / f"{key}.duckdb" if folder else None
    tables = _read(path, names) if path is not None and path.is_file() else None
    if tables is None:
        built = build()
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            tables = _round_trip(built, path)
        except (OSError, duckdb.IOException):
            tables = _round_trip(built, None)  # cache folder not writable: build in memory
    _MEMO[key] = tables
    return {name: df.copy() for name, df in tables.items()}


def lookups(pack: ReferencePack) -> dict[str, pd.DataFrame]:
    """``ref_lsoas`` and ``ref_postcodes`` (see ``geography.load_lookups``)."""

    def build() -> dict[str, pd.DataFrame]:
        con = duckdb.connect()
        try:
            con.execute("SET enable_progress_bar = false")
            geography.load_lookups(con, pack)
            return {name: con.execute(f"SELECT * FROM {name}").df() for name in LOOKUP_TABLES}
        finally:
            con.close()

    return _cached("lookups", _fingerprint("lookups", pack), LOOKUP_TABLES, build)


def install_lookups(con: duckdb.DuckDBPyConnection, pack: ReferencePack) -> None:
    """Create ``ref_lsoas`` and ``ref_postcodes`` in ``con`` from the compiled pack."""
    for name, df in lookups(pack).items():
        con.register("_lookup_df", df)
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _lookup_df")
        con.unregister("_lookup_df")


def areas_and_population(pack: ReferencePack, catchments_file: Path | None
                         ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """areas, area_members and population for the whole release."""
    catchment_bytes = catchments_file.read_bytes() if catchments_file and catchments_file.exists() else b""
    years = population_years()
    extra = json.dumps([years.start, years.stop]).encode() + b"|" + catchment_bytes

    def build() -> dict[str, pd.DataFrame]:
        con = duckdb.connect()
        try:
            con.execute("SET enable_progress_bar = false")
            install_lookups(con, pack)
            catchments = geography.read_catchments(catchments_file) if catchment_bytes else None
            areas, members = geography.build_areas(con, pack, catchments)
            pop = population.build_population(con, pack, members, areas, years)
        finally:
            con.close()
        return {"areas": areas, "area_members": members, "population": pop}

    t = _cached("geography", _fingerprint("geography", pack, extra), GEOGRAPHY_TABLES, build)
    return t["areas"], t["area_members"], t["population"]
