"""Geography from the reference pack: lookups, areas and their LSOA members.

Every area of every level is a set of LSOA 2021 codes (``area_members``), so
any grouping (wards and MSOAs, which are not nested in each other, localities,
children's-centre catchments) is handled the same way by aggregation and by
disclosure control.

Choices, stated because they change numbers:
- Wards are 2022 wards from the LSOA-to-ward *best-fit* lookup (the postcode
  file's ward codes are 2023 wards and are not used).
- A locality is the set of LSOAs most of whose postcodes lie in it (a few
  LSOAs straddle a locality boundary; ties go to the alphabetically first).
- Postcodes are matched after removing spaces and upper-casing.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from .reference import ReferencePack

POSTCODE_KEY_SQL = "upper(replace(replace(coalesce({x}, ''), ' ', ''), chr(9), ''))"


def postcode_key(expr: str) -> str:
    """SQL normalising a postcode column to its lookup key."""
    return POSTCODE_KEY_SQL.format(x=expr)


def locality_code(pack: ReferencePack, name: str) -> str:
    return f"{pack.place.focus_la_code}-LOC-{name.upper()}"


def load_lookups(con: duckdb.DuckDBPyConnection, pack: ReferencePack) -> None:
    """Create ``ref_lsoas`` and ``ref_postcodes`` in ``con``.

    The postcode table holds only the lookup key and LSOA: full postcodes
    from extracts are joined against it and then dropped.
    """
    stat = str(pack.file("geography/statistical_lookup.csv"))
    ward = str(pack.file("geography/lsoa_to_ward_best-fit_lookup.csv"))
    pcs = str(pack.file("geography/trafford_postcodes.csv"))
    con.execute(
        f"""
        CREATE OR REPLACE TABLE ref_lsoas AS
        WITH s AS (
            SELECT DISTINCT lsoa21cd AS lsoa_code, lsoa21nm AS lsoa_name, msoa21cd AS msoa_code,
                   msoa21nm AS msoa_name, lad22cd AS la_code, lad22nm AS la_name
            FROM read_csv('{_q(stat)}', header=true, all_varchar=true)
        ), w AS (
            SELECT lsoa21cd AS lsoa_code, wd22cd AS ward_code, wd22nm AS ward_name
            FROM read_csv('{_q(ward)}', header=true, all_varchar=true)
        ), loc AS (
            SELECT lsoa_code, arg_min(locality, (-n, locality)) AS locality
            FROM (SELECT lsoa_code, locality, count(*) AS n
                  FROM read_csv('{_q(pcs)}', header=true, all_varchar=true)
                  WHERE locality IS NOT NULL GROUP BY ALL)
            GROUP BY lsoa_code
        ), hcl AS (
            SELECT msoa_code, any_value(msoa_hcl_name) AS msoa_hcl_name
            FROM read_csv('{_q(pcs)}', header=true, all_varchar=true) GROUP BY msoa_code
        )
        SELECT s.lsoa_code, s.lsoa_name, s.msoa_code,
               coalesce(hcl.msoa_hcl_name || ' (' || s.msoa_name || ')', s.msoa_name) AS msoa_name,
               w.ward_code, w.ward_name, s.la_code, s.la_name, loc.locality
        FROM s LEFT JOIN w USING (lsoa_code) LEFT JOIN loc USING (lsoa_code)
        LEFT JOIN hcl USING (msoa_code)
        """
    )
    unmatched = con.execute("SELECT count(*) FROM ref_lsoas WHERE ward_code IS NULL").fetchall()[0][0]
    if unmatched:
        raise ValueError(f"reference pack: {unmatched} LSOAs have no ward in the best-fit lookup")
    con.execute(
        f"""
        CREATE OR REPLACE TABLE ref_postcodes AS
        SELECT DISTINCT {postcode_key('postcode')} AS postcode_key, lsoa_code
        FROM read_csv('{_q(pcs)}', header=true, all_varchar=true)
        WHERE lsoa_code IS NOT NULL
        """
    )


def read_catchments(path: Path) -> pd.DataFrame:
    """A council's catchment file: ``lsoa_code, catchment_code, catchment_name``."""
    con = duckdb.connect()
    try:
        df = con.execute(
            "SELECT * FROM read_csv(?, header=true, all_varchar=true)", [str(path)]
        ).df()
    finally:
        con.close()
    need = {"lsoa_code", "catchment_code", "catchment_name"}
    if not need <= set(df.columns):
        raise ValueError(f"catchment file {path} needs columns {', '.join(sorted(need))}")
    return df[["lsoa_code", "catchment_code", "catchment_name"]]


def demo_catchments(con: duckdb.DuckDBPyConnection, pack: ReferencePack) -> pd.DataFrame:
    """Derive a demo catchment file from the focus borough's localities.

    Each locality is one catchment, named after the children's centre(s) in
    the pack whose postcode falls in it, otherwise after the locality.
    """
    load_lookups(con, pack)
    centres = str(pack.file("services/trafford_childrens_centres.csv"))
    df = con.execute(
        f"""
        WITH c AS (
            SELECT r.locality, string_agg(c.name, ' and ' ORDER BY c.name) AS centres
            FROM read_csv('{_q(centres)}', header=true, all_varchar=true) c
            JOIN ref_postcodes p ON p.postcode_key = {postcode_key('c.postcode')}
            JOIN ref_lsoas r ON r.lsoa_code = p.lsoa_code
            GROUP BY r.locality
        )
        SELECT r.lsoa_code,
               ? || '-CC-' || upper(r.locality) AS catchment_code,
               coalesce(c.centres || ' catchment', ? || ' ' || r.locality || ' children''s centres catchment')
                   AS catchment_name
        FROM ref_lsoas r LEFT JOIN c USING (locality)
        WHERE r.locality IS NOT NULL
        ORDER BY 1
        """,
        [pack.place.focus_la_code, pack.place.focus_la_name],
    ).df()
    return df


def build_areas(
    con: duckdb.DuckDBPyConnection, pack: ReferencePack, catchments: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (areas, area_members) for every level the pack supports.

    Levels: lsoa, msoa, ward, la, place, locality (focus borough), and
    catchment when a catchment file is given.
    """
    place = pack.place
    con.execute("CREATE OR REPLACE TEMP TABLE _catch (lsoa_code VARCHAR, catchment_code VARCHAR, catchment_name VARCHAR)")
    if catchments is not None and len(catchments):
        con.register("_catch_df", catchments)
        con.execute("INSERT INTO _catch SELECT lsoa_code, catchment_code, catchment_name FROM _catch_df")
        con.unregister("_catch_df")
        unknown = con.execute(
            "SELECT count(*) FROM _catch WHERE lsoa_code NOT IN (SELECT lsoa_code FROM ref_lsoas)"
        ).fetchall()[0][0]
        if unknown:
            raise ValueError(f"catchment file lists {unknown} LSOA code(s) not in the reference pack")
    members = con.execute(
        f"""
        SELECT lsoa_code AS area_code, lsoa_name AS area_name, 'lsoa' AS area_level, lsoa_code, la_code AS parent_la FROM ref_lsoas
        UNION ALL SELECT msoa_code, msoa_name, 'msoa', lsoa_code, la_code FROM ref_lsoas
        UNION ALL SELECT ward_code, ward_name, 'ward', lsoa_code, la_code FROM ref_lsoas
        UNION ALL SELECT la_code, la_name, 'la', lsoa_code, la_code FROM ref_lsoas
        UNION ALL SELECT '{place.place_code}', '{_q(place.place_name)}', 'place', lsoa_code, NULL FROM ref_lsoas
        UNION ALL SELECT '{place.focus_la_code}-LOC-' || upper(locality), '{_q(place.focus_la_name)} ' || locality || ' locality',
                         'locality', lsoa_code, la_code FROM ref_lsoas WHERE locality IS NOT NULL AND la_code = '{place.focus_la_code}'
        UNION ALL SELECT c.catchment_code, c.catchment_name, 'catchment', c.lsoa_code, r.la_code
                  FROM _catch c JOIN ref_lsoas r USING (lsoa_code)
        """
    ).df()
    areas = (
        members.groupby(["area_code", "area_name", "area_level"], as_index=False)
        .agg(parent_la=("parent_la", "first"))
        .sort_values(["area_level", "area_code"])
        .reset_index(drop=True)
    )
    dupes = areas["area_code"].duplicated()
    if dupes.any():
        raise ValueError(f"area codes with two names or levels: {sorted(areas.loc[dupes, 'area_code'])[:5]}")
    area_members = members[["area_code", "lsoa_code"]].drop_duplicates().sort_values(["area_code", "lsoa_code"])
    return areas, area_members.reset_index(drop=True)


def _q(text: str) -> str:
    return text.replace("'", "''")
