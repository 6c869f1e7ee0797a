"""Complete cubes: every area x period x breakdown value, zeros included.

Records are first summed to a few fine tables (see ``FineTables``), so each
published table is a small aggregation rather than another pass over
millions of records. Distinct-person measures are built from each person's
first counted record in each period (of the table's period kind), so persons
add up over areas and breakdowns but not over periods.
"""

from __future__ import annotations

import datetime as dt
from itertools import combinations

import duckdb
import pandas as pd

from .faults import checkpoint
from .release import DraftRelease, DraftTable
from .spec import Breakdown, PeriodKind, PipelineSpec, Table
from .staging import AGE_CAP

PERIOD_MONTHS = {"month": 1, "quarter": 3, "financial_year": 12}


def period_start_sql(kind: PeriodKind, date_expr: str) -> str:
    """First day of the period holding ``date_expr``. Quarters and years are
    financial (April to March); ``date_trunc('quarter')`` already starts
    quarters in January, April, July and October, which are the financial ones."""
    if kind == "month":
        return f"CAST(date_trunc('month', {date_expr}) AS DATE)"
    if kind == "quarter":
        return f"CAST(date_trunc('quarter', {date_expr}) AS DATE)"
    return f"make_date(CAST(year({date_expr}) - CASE WHEN month({date_expr}) < 4 THEN 1 ELSE 0 END AS INTEGER), 4, 1)"


def periods(kind: PeriodKind, first: dt.date, last: dt.date) -> list[tuple[dt.date, dt.date]]:
    """All periods of ``kind`` from the one holding ``first`` to the one holding ``last``."""
    step = PERIOD_MONTHS[kind]
    start = dt.date(first.year, first.month, 1)
    if kind == "quarter":
        start = dt.date(start.year, ((start.month - 1) // 3) * 3 + 1, 1)
    elif kind == "financial_year":
        start = dt.date(start.year - (1 if start.month < 4 else 0), 4, 1)
    out = []
    while start <= last:
        nxt = _add_months(start, step)
        out.append((start, nxt - dt.timedelta(days=1)))
        start = nxt
    return out


def _add_months(d: dt.date, n: int) -> dt.date:
    m = d.month - 1 + n
    return dt.date(d.year + m // 12, m % 12 + 1, 1)


def capped_age_sql(expr: str, cap: int) -> str:
    """``expr`` with ages above ``cap`` set to ``cap``, and an unknown (NULL) age left unknown
    (DuckDB's ``least`` skips NULLs, so ``least(NULL, 90)`` would be 90: an unknown age
    would land in the top band)."""
    return f"CASE WHEN {expr} > {cap} THEN {cap} ELSE {expr} END"


def _breakdown_sql(b: Breakdown) -> str:
    if b.source == "sex":
        return "sex"
    parts = []
    for label, lo, hi in b.bands:
        cond = f"age >= {lo}" + (f" AND age <= {hi}" if hi is not None else "")
        parts.append(f"WHEN {cond} THEN '{label}'")
    return "CASE " + " ".join(parts) + " END"


#: Area levels that are unions of whole local authorities: tables of only
#: these levels are aggregated from local-authority totals, not from LSOAs.
LA_UNION_LEVELS = {"la", "place"}


def _resolution(table: Table) -> str:
    return "la" if set(table.area_levels) <= LA_UNION_LEVELS else "lsoa"


class FineTables:
    """Pre-aggregates shared by tables with the same needs.

    Each published table is a small aggregation of a fine table keyed by
    (resolution unit, month, its breakdown values), where the unit is the
    LSOA, or the local authority for tables of whole boroughs. Fine tables are
    built once per (measure kind, resolution, breakdowns, period kind for
    persons) and reused, so millions of records are scanned a few times in
    all rather than once per table. To keep those scans few and cheap:

    - a local-authority fine table is summed from the LSOA fine table of the
      same kind and breakdowns when another table needs that one anyway
      (an LSOA belongs to its authorities whichever way round it is summed);
    - records are grouped by their breakdowns' sources (sex, age capped
      where no band tells ages apart) and the bands are given to the groups,
      not to every record;
    - each distinct-person measure's records, and each person's first record
      per period, are picked out of the staged records once.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, spec: PipelineSpec, members: pd.DataFrame,
                 areas: pd.DataFrame, tables: tuple[Table, ...] = ()):
        self.con = con
        self.spec = spec
        self.built: dict[tuple, str] = {}
        self._tables: dict[tuple, Table] = {}
        for table in tables:
            self._tables.setdefault(self._key(table), table)
        self._person_records: dict[str, str] = {}
        self._first_records: dict[tuple[str, str], str] = {}
        la_members = members.merge(areas.loc[areas["area_level"] == "la", ["area_code"]], on="area_code")
        con.register("_lsoa_la_df", la_members.rename(columns={"area_code": "la_code"}))
        con.execute("CREATE OR REPLACE TEMP TABLE _lsoa_la AS SELECT lsoa_code, la_code FROM _lsoa_la_df").fetchall()
        con.unregister("_lsoa_la_df")

    def _key(self, table: Table) -> tuple:
        measure = self.spec.measure(table.measure)
        signature = tuple((b.column, b.source, b.bands) for b in table.breakdowns)
        kind = ("persons", table.period, measure.name) if measure.distinct_persons else ("events",)
        return (kind, _resolution(table), signature)

    def table_for(self, table: Table) -> str:
        key = self._key(table)
        self._tables.setdefault(key, table)
        return self._fine(key)

    def _fine(self, key: tuple) -> str:
        if key not in self.built:
            kind, resolution, signature = key
            lsoa_key = (kind, "lsoa", signature)
            # built first (it takes the next name), when the borough table is summed from it
            lsoa_fine = self._fine(lsoa_key) if resolution == "la" and lsoa_key in self._tables else None
            name = f"_fine_{len(self.built)}"
            if lsoa_fine is not None:
                self._sum_to_la(name, lsoa_fine)
            else:
                self._build(name, self._tables[key], resolution)
            self.built[key] = name
        return self.built[key]

    def _measure_columns(self, table: Table) -> list[str]:
        measure = self.spec.measure(table.measure)
        if measure.distinct_persons:
            return [f"m_{measure.name}"]
        return [f"m_{m.name}" for m in self.spec.measures if not m.distinct_persons]

    def _sum_to_la(self, name: str, lsoa_fine: str) -> None:
        cols = [d[0] for d in self.con.execute(f"SELECT * FROM {lsoa_fine} LIMIT 0").description]
        keys = [c for c in cols if c != "unit" and not c.startswith("m_")]
        sums = ", ".join(f'CAST(sum(f."{c}") AS BIGINT) AS "{c}"' for c in cols if c.startswith("m_"))
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {name} AS
            SELECT l.la_code AS unit{''.join(f', f."{c}"' for c in keys)}, {sums}
            FROM {lsoa_fine} f JOIN _lsoa_la l ON l.lsoa_code = f.unit
            GROUP BY ALL
            """
        ).fetchall()

    def _person_records_of(self, measure) -> str:
        """The accepted records a distinct-person measure counts (a few per cent of them all)."""
        if measure.name not in self._person_records:
            name = f"_persons_{len(self._person_records)}"
            self.con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE {name} AS
                SELECT person_id, event_order, lsoa_code, event_date, sex, age
                FROM staged
                WHERE reject_reason IS NULL AND location_status = 'ok' AND person_id IS NOT NULL AND ({measure.where})
                """
            ).fetchall()
            self._person_records[measure.name] = name
        return self._person_records[measure.name]

    def _first_records_of(self, table: Table, measure) -> str:
        """Each person's first counted record in each period of ``table.period``."""
        key = (measure.name, table.period)
        if key not in self._first_records:
            name = f"_first_{len(self._first_records)}"
            pstart = period_start_sql(table.period, "event_date")
            self.con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE {name} AS
                SELECT lsoa_code, event_date, sex, {capped_age_sql('age', AGE_CAP)} AS age
                FROM {self._person_records_of(measure)}
                QUALIFY row_number() OVER (PARTITION BY person_id, {pstart}
                                           ORDER BY event_order, lsoa_code, sex, age) = 1
                """
            ).fetchall()
            self._first_records[key] = name
        return self._first_records[key]

    def _build(self, name: str, table: Table, resolution: str) -> None:
        measure = self.spec.measure(table.measure)
        unit = "l.la_code" if resolution == "la" else "r.lsoa_code"
        join = "JOIN _lsoa_la l ON l.lsoa_code = r.lsoa_code" if resolution == "la" else ""
        if measure.distinct_persons:
            source = self._first_records_of(table, measure)
            sums = f'count(*) AS "m_{measure.name}"'
        else:
            source = "(SELECT * FROM staged WHERE reject_reason IS NULL AND location_status = 'ok')"
            sums = ", ".join(
                f'count(*) FILTER (WHERE {m.where}) AS "m_{m.name}"'
                for m in self.spec.measures if not m.distinct_persons
            )
        # group by the breakdowns' sources; ages from ``cap`` up fall in the same bands
        bands = [band for b in table.breakdowns if b.source == "age" for band in b.bands]
        cap = max((max(lo, hi + 1 if hi is not None else lo) for _, lo, hi in bands), default=0)
        sources = []
        if any(b.source == "sex" for b in table.breakdowns):
            sources.append("r.sex AS sex")
        if bands:
            sources.append(f"{capped_age_sql('r.age', cap)} AS age")
        grouped = f"""
            SELECT {unit} AS unit, CAST(date_trunc('month', r.event_date) AS DATE) AS event_month
                   {''.join(', ' + c for c in sources)}, {sums}
            FROM {source} r {join}
            GROUP BY ALL
        """
        if not table.breakdowns:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {grouped}").fetchall()
            return
        bcols = "".join(f", {_breakdown_sql(b)} AS {b.column}" for b in table.breakdowns)
        sums = ", ".join(f'CAST(sum("{c}") AS BIGINT) AS "{c}"' for c in self._measure_columns(table))
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {name} AS
            SELECT unit, event_month{bcols}, {sums}
            FROM ({grouped}) g
            GROUP BY ALL
            """
        ).fetchall()


def unit_members(table: Table, chosen: pd.DataFrame, members: pd.DataFrame, areas: pd.DataFrame) -> pd.DataFrame:
    """(area_code, unit) pairs: which resolution units make up each area of the table."""
    m = members[members["area_code"].isin(chosen["area_code"])]
    if _resolution(table) == "lsoa":
        return m.rename(columns={"lsoa_code": "unit"})[["area_code", "unit"]]
    la = members.merge(areas.loc[areas["area_level"] == "la", ["area_code"]], on="area_code")
    la = la.rename(columns={"area_code": "unit"})
    joined = m.merge(la, on="lsoa_code")
    have = joined.groupby(["area_code", "unit"]).size().rename("n").reset_index()
    size = la.groupby("unit").size().rename("size").reset_index()
    whole = have.merge(size, on="unit")
    whole = whole[whole["n"] == whole["size"]]
    return whole[["area_code", "unit"]]


def table_areas(areas: pd.DataFrame, members: pd.DataFrame, table: Table) -> pd.DataFrame:
    """The areas a table covers: its levels, within its scope if any."""
    chosen = areas[areas["area_level"].isin(table.area_levels)]
    if table.area_scope:
        scope = set(members.loc[members["area_code"] == table.area_scope, "lsoa_code"])
        if not scope:
            raise ValueError(f"table {table.name}: unknown area scope {table.area_scope}")
        inside = members["lsoa_code"].isin(scope).groupby(members["area_code"]).all()  # every member LSOA inside
        chosen = chosen[chosen["area_code"].map(inside).fillna(False).astype(bool)]
    return chosen[["area_code", "area_level"]].reset_index(drop=True)


def build_table(
    con: duckdb.DuckDBPyConnection,
    spec: PipelineSpec,
    table: Table,
    areas: pd.DataFrame,
    members: pd.DataFrame,
    first: dt.date,
    last: dt.date,
    complete_from: dt.date,
    complete_to: dt.date,
    fine: FineTables | None = None,
) -> pd.DataFrame:
    """One complete cube with true counts (see ``release`` for its columns)."""
    fine = fine or FineTables(con, spec, members, areas)
    fine_name = fine.table_for(table)
    chosen = table_areas(areas, members, table)
    con.register("_t_areas", chosen)
    con.register("_t_members", unit_members(table, chosen, members, areas))
    plist = periods(table.period, first, last)
    con.register(
        "_t_periods",
        pd.DataFrame(
            {
                "period_start": [p[0] for p in plist],
                "period_end": [p[1] for p in plist],
                "provisional": [not (p[0] >= complete_from and p[1] <= complete_to) for p in plist],
            }
        ),
    )
    bcols = [b.column for b in table.breakdowns]
    mapped_cols = ", ".join(f"src.{c}" for c in bcols)
    sets = []
    for k in range(len(bcols), -1, -1):
        for combo in combinations(bcols, k):
            sets.append("(" + ", ".join(["area_code", "period_start", *combo]) + ")")
    labels = ", ".join(f"CASE WHEN grouping({c}) = 1 THEN 'All' ELSE {c} END AS {c}" for c in bcols)
    frame_joins = " ".join(
        f"CROSS JOIN (SELECT unnest([{', '.join(repr(v) for v in (*b.labels, 'All'))}]) AS {b.column}) AS _b{i}"
        for i, b in enumerate(table.breakdowns)
    )
    join_on = " AND ".join(["f.area_code = a.area_code", "f.period_start = a.period_start"] + [f"f.{c} = a.{c}" for c in bcols])
    sel_b = "".join(f", f.{c}" for c in bcols)
    sql = f"""
        WITH mapped AS (
            SELECT m.area_code, {period_start_sql(table.period, 'src.event_month')} AS period_start,
                   {mapped_cols + ',' if mapped_cols else ''} src."m_{table.measure}" AS n
            FROM {fine_name} src JOIN _t_members m ON m.unit = src.unit
        ),
        agg AS (
            SELECT area_code, period_start{', ' + labels if labels else ''}, sum(n) AS count
            FROM mapped GROUP BY GROUPING SETS ({', '.join(sets)})
        ),
        frame AS (
            SELECT a.area_code, a.area_level, p.period_start, p.period_end, p.provisional{''.join(f', _b{i}.{c}' for i, c in enumerate(bcols))}
            FROM _t_areas a CROSS JOIN _t_periods p {frame_joins}
        )
        SELECT f.area_code, f.area_level, f.period_start, f.period_end, f.provisional{sel_b},
               CAST(coalesce(a.count, 0) AS BIGINT) AS count
        FROM frame f LEFT JOIN agg a ON {join_on}
        ORDER BY f.area_level, f.area_code, f.period_start{sel_b}
    """
    df = con.execute(sql).df()
    for name in ("_t_areas", "_t_members", "_t_periods"):
        con.unregister(name)
    df["period_start"] = pd.to_datetime(df["period_start"]).dt.date
    df["period_end"] = pd.to_datetime(df["period_end"]).dt.date
    return df


def build_release(
    con: duckdb.DuckDBPyConnection,
    spec: PipelineSpec,
    areas: pd.DataFrame,
    members: pd.DataFrame,
    first: dt.date,
    last: dt.date,
    complete_from: dt.date,
    complete_to: dt.date,
    extract_date: object,
) -> DraftRelease:
    fine = FineTables(con, spec, members, areas, spec.tables)
    tables = []
    for table in spec.tables:
        data = build_table(con, spec, table, areas, members, first, last, complete_from, complete_to, fine)
        checkpoint(f"cube:{table.name}")
        tables.append(DraftTable(spec=table, measure=spec.measure(table.measure), data=data))
    used = set().union(*(set(t.data["area_code"]) for t in tables)) if tables else set()
    return DraftRelease(
        pipeline=spec.name,
        tables=tables,
        area_members=members[members["area_code"].isin(used)].reset_index(drop=True),
        areas=areas[areas["area_code"].isin(used)].reset_index(drop=True),
        extract_date=extract_date,
    )
