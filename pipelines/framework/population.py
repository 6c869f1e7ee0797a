"""Population denominators from the reference pack's ONS mid-year estimates.

Published as the ``population`` table, marked in the catalogue as public
reference data: it is not disclosive and does not pass the disclosure gate.

Which estimate stands for which year (stated in the ``note`` column and the
catalogue): each (area, year) uses the estimate of that year where the pack
has one, otherwise the nearest earlier one, otherwise (only before the first
estimate the pack holds) the nearest later one. Small-area figures (LSOA and
everything built from LSOAs: MSOA, 2022 ward, locality, catchment) are sums of
LSOA estimates, which come only for the focus borough (2022 and 2024);
borough figures for every borough come from the five-year-band file
(2018-2023), and the combined authority is the sum of its boroughs.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from .reference import ReferencePack
from .spec import AGE_BROAD, AGE_ESP2013, Breakdown

SEX_MAP = {"Females": "Female", "Males": "Male", "Persons": "All", "Female": "Female", "Male": "Male"}


def _band_case(breakdown: Breakdown, age_expr: str) -> str:
    parts = []
    for label, lo, hi in breakdown.bands:
        cond = f"{age_expr} >= {lo}" + (f" AND {age_expr} <= {hi}" if hi is not None else "")
        parts.append(f"WHEN {cond} THEN '{label}'")
    return "CASE " + " ".join(parts) + " END"


def build_population(
    con: duckdb.DuckDBPyConnection,
    pack: ReferencePack,
    area_members: pd.DataFrame,
    areas: pd.DataFrame,
    years: range,
) -> pd.DataFrame:
    """Return the ``population`` table: area_code, year, sex, age_band,
    population, estimate_year, note."""
    con.register("_members", area_members)
    con.register("_areas", areas[["area_code", "area_level"]])
    single_year_cols = [str(a) for a in range(90)] + ["90+"]
    unpivot_cols = ", ".join(f'"{c}"' for c in single_year_cols)
    frames = []
    for file_year in (2022, 2024):
        path = str(pack.file(f"population/trafford_mid_year_{file_year}_all_geographies.csv"))
        frames.append(
            f"""SELECT {file_year} AS estimate_year, area_code AS lsoa_code, sex,
                       CASE WHEN age = '90+' THEN 90 ELSE CAST(age AS INTEGER) END AS age, CAST(population AS DOUBLE) AS population
                FROM (UNPIVOT (SELECT * FROM read_csv('{path}', header=true, all_varchar=true) WHERE geography = 'LSOA')
                      ON {unpivot_cols} INTO NAME age VALUE population)"""
        )
    con.execute("CREATE OR REPLACE TEMP TABLE _lsoa_pop AS " + " UNION ALL ".join(frames))
    broad = _band_case(AGE_BROAD, "age")
    esp = _band_case(AGE_ESP2013, "age")
    # Small areas (any area made of LSOAs that all have estimates): sums of LSOAs.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _small AS
        WITH complete AS (
            SELECT m.area_code FROM _members m
            LEFT JOIN (SELECT DISTINCT lsoa_code FROM _lsoa_pop) p USING (lsoa_code)
            JOIN _areas a USING (area_code)
            WHERE a.area_level NOT IN ('place')
            GROUP BY m.area_code HAVING bool_and(p.lsoa_code IS NOT NULL)
        ), base AS (
            SELECT m.area_code, p.estimate_year,
                   CASE p.sex WHEN 'Females' THEN 'Female' WHEN 'Males' THEN 'Male' ELSE 'All' END AS sex,
                   p.age, sum(p.population) AS population
            FROM _lsoa_pop p JOIN _members m USING (lsoa_code) JOIN complete USING (area_code)
            GROUP BY ALL
        )
        SELECT area_code, estimate_year, sex, {broad} AS age_band, sum(population) AS population FROM base GROUP BY ALL
        UNION ALL
        SELECT area_code, estimate_year, sex, {esp}, sum(population) FROM base GROUP BY ALL
        UNION ALL
        SELECT area_code, estimate_year, sex, 'All', sum(population) FROM base GROUP BY ALL
        """
    )
    # Boroughs (five-year bands, 2018-2023) and the place as their sum.
    la_file = str(pack.file("population/gm_la_mid_year_2018_2023_by_sex_5y_age.csv"))
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _la AS
        WITH raw AS (
            SELECT area_code, CAST(year AS INTEGER) AS estimate_year,
                   CASE sex WHEN 'Persons' THEN 'All' ELSE sex END AS sex,
                   CASE WHEN age_band = 'All ages' THEN 'All' ELSE replace(age_band, ' yrs', '') END AS age_band,
                   CAST(population AS DOUBLE) AS population
            FROM read_csv('{la_file}', header=true, all_varchar=true)
            WHERE area_code IN (SELECT area_code FROM _areas WHERE area_level = 'la')
        )
        SELECT * FROM raw
        UNION ALL
        SELECT '{pack.place.place_code}', estimate_year, sex, age_band, sum(population)
        FROM raw GROUP BY ALL
        HAVING count(*) = (SELECT count(*) FROM _areas WHERE area_level = 'la')
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _estimates AS
        SELECT * FROM _la
        UNION ALL
        SELECT * FROM _small s
        WHERE NOT EXISTS (SELECT 1 FROM _la l WHERE l.area_code = s.area_code AND l.estimate_year = s.estimate_year)
          AND s.area_code NOT IN (SELECT area_code FROM _areas WHERE area_level = 'la')
        """
    )
    # Boroughs with LSOA estimates but no five-year-band estimate for that year (e.g. the
    # focus borough in 2024) take the LSOA sums.
    con.execute(
        """
        INSERT INTO _estimates
        SELECT s.* FROM _small s JOIN _areas a USING (area_code)
        WHERE a.area_level = 'la'
          AND NOT EXISTS (SELECT 1 FROM _la l WHERE l.area_code = s.area_code AND l.estimate_year = s.estimate_year)
        """
    )
    years_sql = ", ".join(str(y) for y in years)
    df = con.execute(
        f"""
        WITH avail AS (SELECT DISTINCT area_code, estimate_year FROM _estimates),
        want AS (SELECT a.area_code, y.year FROM (SELECT DISTINCT area_code FROM avail) a,
                 (SELECT unnest([{years_sql}]) AS year) y),
        pick AS (
            SELECT w.area_code, w.year,
                   coalesce(max(v.estimate_year) FILTER (WHERE v.estimate_year <= w.year),
                            min(v.estimate_year)) AS estimate_year
            FROM want w JOIN avail v USING (area_code) GROUP BY ALL
        )
        SELECT p.area_code, p.year, e.sex, e.age_band, round(e.population)::BIGINT AS population,
               p.estimate_year,
               CASE WHEN p.estimate_year = p.year THEN 'mid-year estimate for the year'
                    WHEN p.estimate_year < p.year THEN 'no estimate for the year: nearest earlier (' || p.estimate_year || ') used'
                    ELSE 'no estimate for the year or before: nearest later (' || p.estimate_year || ') used' END AS note
        FROM pick p JOIN _estimates e USING (area_code, estimate_year)
        ORDER BY 1, 2, 3, 4
        """
    ).df()
    con.unregister("_members")
    con.unregister("_areas")
    return df
