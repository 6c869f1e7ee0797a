"""Read-only access to the publication: the only place the dashboard touches DuckDB.

Rules kept here, so pages cannot break them:

* The publication path (``OUTCOMES_DB``, default ``var/outcomes.duckdb``, a
  symlink to ``var/releases/outcomes/<release_id>.duckdb``) is resolved ONCE per
  script run (:func:`open_release`); everything that run shows is read from
  that one resolved file, through a :class:`Release` handle. A new release
  switches the symlink; the next run resolves the new file. A page therefore
  never mixes two releases.
* Connections are opened ``read_only`` and cached per release file (keyed on
  the resolved path, its inode and mtime, so a file replaced at the same path
  is never served from a stale DuckDB instance); each thread gets its own
  ``cursor()`` off that connection. When a release file is superseded its
  connection and cursors are closed once no newer run needs it.
* Every query is parameterised. Table names never come from user input: they
  are looked up in the release's ``catalogue`` and checked against it
  (:func:`checked_table`) before being quoted into SQL.
* Results are cached with ``st.cache_resource`` keyed on the release key
  (which embeds the resolved path), so a new release never hits an old cache
  entry. They are shared between sessions without copying: callers treat
  them as read-only (pandas copy-on-write makes accidental writes local).

Nothing here writes, runs user SQL or reads any file other than the
publication (the map's boundary files are read in :mod:`dashboard.geo`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import streamlit as st

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIRED_TABLES = ("catalogue", "runs", "release", "areas", "population")


class PublicationUnavailable(RuntimeError):
    """There is no usable publication; the message says what to do."""


# ---------------------------------------------------------------------------
# Locating the publication
# ---------------------------------------------------------------------------

def configured_path() -> Path:
    """The publication path the dashboard was started with (not resolved)."""
    env = os.environ.get("OUTCOMES_DB")
    return Path(env) if env else REPO_ROOT / "var" / "outcomes.duckdb"


def _publication_link(path: Path) -> Path:
    """If ``path`` is a release file inside ``releases/<name>/`` (or, as laid out
    before the thirteenth session, ``releases/``) that a publication symlink
    beside that folder points at, follow the symlink instead, so that a
    dashboard started with an already-resolved path still sees later
    releases."""
    if path.is_symlink():
        return path
    if path.parent.name == "releases":
        home = path.parent.parent
    elif path.parent.parent.name == "releases":
        home = path.parent.parent.parent
    else:
        return path
    try:
        for candidate in home.iterdir():
            if candidate.is_symlink() and candidate.suffix == ".duckdb":
                target = candidate.resolve()
                if target.parent == path.parent.resolve():
                    return candidate
    except OSError:
        pass
    return path


def resolve_release_file(link: Path | None = None) -> Path | None:
    """The file the publication path points at now, or None if there is none."""
    link = _publication_link(Path(link) if link else configured_path())
    try:
        if not link.exists():
            return None
        return link.resolve()
    except OSError:
        return None


def release_key(path: Path) -> str:
    """Cache key of one release file: path, inode and mtime (a file replaced
    at the same path gets a new key)."""
    st_ = path.stat()
    return f"{path}|{st_.st_ino}|{st_.st_mtime_ns}"


def _path_of(key: str) -> str:
    return key.split("|", 1)[0]


# ---------------------------------------------------------------------------
# Connections: one read-only connection per release file, one cursor per thread
# ---------------------------------------------------------------------------

class _Connections:
    """Read-only connections, one per release key; a cursor per thread.

    Keeps the ``keep`` most recently used release keys open. Opening a key
    whose path was previously opened under another key (the file was
    replaced in place) first closes every connection to that path: DuckDB
    keeps one database instance per path and would otherwise keep serving
    the old file.
    """

    def __init__(self, keep: int = 3) -> None:
        self._lock = threading.RLock()
        self._cons: dict[str, duckdb.DuckDBPyConnection] = {}
        self._cursors: dict[str, dict[int, duckdb.DuckDBPyConnection]] = {}
        self._used: dict[str, float] = {}
        self.keep = keep

    def cursor(self, key: str) -> duckdb.DuckDBPyConnection:
        tid = threading.get_ident()
        with self._lock:
            cur = self._cursors.get(key, {}).get(tid)
            if cur is not None:
                self._used[key] = time.monotonic()
                return cur
            con = self._cons.get(key)
            if con is None:
                path = _path_of(key)
                for other in [k for k in self._cons if _path_of(k) == path]:
                    self._close(other)
                con = duckdb.connect(path, read_only=True)
                self._cons[key] = con
                self._cursors[key] = {}
                self._evict(protect=key)
            self._prune_dead_threads(key)
            cur = con.cursor()
            self._cursors[key][tid] = cur
            self._used[key] = time.monotonic()
            return cur

    def _prune_dead_threads(self, key: str) -> None:
        alive = {t.ident for t in threading.enumerate()}
        curs = self._cursors.get(key, {})
        for tid in [t for t in curs if t not in alive]:
            try:
                curs.pop(tid).close()
            except duckdb.Error:
                pass

    def _evict(self, protect: str) -> None:
        keys = sorted(self._cons, key=lambda k: self._used.get(k, 0.0), reverse=True)
        keys = [k for k in keys if k != protect]
        for k in keys[max(self.keep - 1, 0):]:
            self._close(k)

    def _close(self, key: str) -> None:
        for cur in self._cursors.pop(key, {}).values():
            try:
                cur.close()
            except duckdb.Error:
                pass
        con = self._cons.pop(key, None)
        self._used.pop(key, None)
        if con is not None:
            try:
                con.close()
            except duckdb.Error:
                pass

    def close_all(self) -> None:
        with self._lock:
            for k in list(self._cons):
                self._close(k)


CONNECTIONS = _Connections()


class _PerRelease:
    """A small, thread-safe memo for the per-release metadata the pages look
    up dozens of times a run (catalogue, areas, ...). Keyed on the arguments,
    whose first is always the release key; bounded (least recently used
    entries dropped). st.cache_resource costs ~0.5 ms a call in argument
    inspection alone, which adds up for lookups this frequent; the bigger
    per-release results use st.cache_resource."""

    registry: list["_PerRelease"] = []

    def __init__(self, func, max_entries: int = 64) -> None:
        import functools
        from collections import OrderedDict

        self.func = func
        self.max_entries = max_entries
        self.store: OrderedDict = OrderedDict()
        self.lock = threading.Lock()
        functools.update_wrapper(self, func)
        _PerRelease.registry.append(self)

    def __call__(self, *args):
        with self.lock:
            if args in self.store:
                self.store.move_to_end(args)
                return self.store[args]
        value = self.func(*args)
        with self.lock:
            self.store[args] = value
            while len(self.store) > self.max_entries:
                self.store.popitem(last=False)
        return value

    def clear(self) -> None:
        with self.lock:
            self.store.clear()


def per_release(func=None, *, max_entries: int = 64):
    if func is None:
        return lambda f: _PerRelease(f, max_entries)
    return _PerRelease(func, max_entries)

#: When a list, every query run is appended as (sql, params): the latency
#: benchmark uses it to replay exactly the queries a page needed.
QUERY_LOG: list | None = None


def _query(key: str, sql: str, params: list | None = None) -> pd.DataFrame:
    if QUERY_LOG is not None:
        QUERY_LOG.append((_path_of(key), sql, list(params or [])))
    return CONNECTIONS.cursor(key).execute(sql, params or []).df()


# ---------------------------------------------------------------------------
# The release handle
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Release:
    """One release file, resolved once for a script run."""

    path: Path
    key: str
    release_id: str
    published_at: dt.datetime
    previous_release_id: str | None
    pipelines_refreshed: tuple[str, ...]
    code_version: str

    @property
    def label(self) -> str:
        return f"release {self.release_id}"


def open_release(link: Path | None = None) -> Release:
    """Resolve the publication path once and describe the release it points at.

    Raises :class:`PublicationUnavailable` with what to do when there is no
    publication or it is not one.
    """
    link = Path(link) if link else configured_path()
    path = resolve_release_file(link)
    if path is None:
        raise PublicationUnavailable(
            f"No publication found at {link}. Create one with `make demo` (synthetic data, then serves the "
            "dashboard) or `outcomes samples && outcomes run`, then reload this page. If the publication "
            "lives elsewhere, start the dashboard with `outcomes serve --db PATH` (or set OUTCOMES_DB)."
        )
    try:
        key = release_key(path)
        info = _release_info(key)
    except (duckdb.Error, OSError) as exc:
        raise PublicationUnavailable(
            f"{path} could not be read as a publication ({type(exc).__name__}). Re-run `outcomes run` to "
            "publish a fresh release."
        ) from None
    missing = [t for t in REQUIRED_TABLES if t not in info["tables"]]
    if missing or info["release"] is None:
        raise PublicationUnavailable(
            f"{path} is not a complete publication (missing {', '.join(missing) or 'release row'}). "
            "Re-run `outcomes run` to publish a release."
        )
    r = info["release"]
    return Release(
        path=path,
        key=key,
        release_id=str(r["release_id"]),
        published_at=pd.Timestamp(r["published_at"]).to_pydatetime(),
        previous_release_id=r.get("previous_release_id") or None,
        pipelines_refreshed=tuple(r.get("pipelines_refreshed") or ()),
        code_version=str(r.get("code_version") or ""),
    )


@per_release
def _release_info(key: str) -> dict:
    tables = set(_query(key, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")
                 ["table_name"])
    release = None
    if "release" in tables:
        df = _query(key, "SELECT * FROM release LIMIT 1")
        if len(df):
            row = df.iloc[0].to_dict()
            if row.get("pipelines_refreshed") is not None:
                row["pipelines_refreshed"] = [str(x) for x in row["pipelines_refreshed"]]
            release = row
    return {"tables": sorted(tables), "release": release}


# ---------------------------------------------------------------------------
# Cached reads (all keyed on the release key)
# ---------------------------------------------------------------------------

def _listify(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    for c in cols:
        if c in df.columns:
            df[c] = [list(v) if v is not None and not (isinstance(v, float) and pd.isna(v)) else []
                     for v in df[c]]
    return df


@per_release
def catalogue(key: str) -> pd.DataFrame:
    df = _query(key, "SELECT * FROM catalogue ORDER BY pipeline, table_name")
    return _listify(df, ["dimensions", "additive_over", "area_levels"])


def policy_of(row: dict | pd.Series) -> dict | None:
    """The disclosure policy of a catalogue row as a dict (None for reference data)."""
    raw = row.get("policy") if hasattr(row, "get") else None
    if raw is None or (isinstance(raw, float) and pd.isna(raw)) or raw == "":
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return None


@per_release
def count_tables(key: str) -> dict[str, list[str]]:
    """Count tables of the release: table name -> dimensions."""
    cat = catalogue(key)
    counts = cat[cat["kind"] == "count"]
    return dict(zip(counts["table_name"], counts["dimensions"]))


def checked_table(key: str, name: str) -> str:
    """``name`` if it is a count table listed in this release's catalogue,
    returned as a quoted SQL identifier; else ValueError."""
    if not isinstance(name, str) or name not in count_tables(key):
        raise ValueError(f"{name!r} is not a count table of this release")
    if '"' in name:
        raise ValueError(f"table name {name!r} is not a valid identifier")
    return '"' + name + '"'


@per_release
def runs(key: str) -> pd.DataFrame:
    return _query(key, "SELECT * FROM runs ORDER BY finished_at DESC NULLS LAST")


@per_release
def areas(key: str) -> pd.DataFrame:
    return _query(key, "SELECT area_code, area_name, area_level, parent_la FROM areas ORDER BY area_level, area_name")


@per_release
def area_names(key: str) -> dict[str, str]:
    """area_code -> area_name (plain dict, for labels)."""
    ar = areas(key)
    return dict(zip(ar["area_code"].to_numpy(dtype=object).tolist(), ar["area_name"].to_numpy(dtype=object).tolist()))


@per_release
def population_totals(key: str) -> pd.DataFrame:
    """All-ages, both-sexes populations: area_code, year, population, estimate_year, note."""
    return _query(
        key,
        "SELECT area_code, year, population, estimate_year, note FROM population "
        "WHERE sex = ? AND age_band = ? ORDER BY area_code, year",
        ["All", "All"],
    )


@per_release
def interventions(key: str) -> pd.DataFrame:
    if "interventions" not in _release_info(key)["tables"]:
        return pd.DataFrame()
    return _query(key, "SELECT * FROM interventions")


@st.cache_resource(show_spinner=False, max_entries=256)
def level_counts(key: str, table: str, area_level: str, sex: str = "All", age_band: str = "All") -> pd.DataFrame:
    """Every area of ``area_level`` in ``table``, all periods, for one sex and
    age band ('All' = total; ignored where the table has no such breakdown).

    Columns: area_code, period_start, period_end, provisional, count (Int64,
    NA = suppressed)."""
    ident = checked_table(key, table)
    dims = count_tables(key)[table]
    where = ["area_level = ?"]
    params: list[Any] = [area_level]
    if "sex" in dims:
        where.append("sex = ?")
        params.append(sex)
    if "age_band" in dims:
        where.append("age_band = ?")
        params.append(age_band)
    df = _query(
        key,
        f"SELECT area_code, period_start, period_end, provisional, count FROM {ident} "
        f"WHERE {' AND '.join(where)} ORDER BY area_code, period_start",
        params,
    )
    df["period_start"] = pd.to_datetime(df["period_start"])
    df["period_end"] = pd.to_datetime(df["period_end"])
    df["count"] = df["count"].astype("Int64")
    df["provisional"] = df["provisional"].fillna(False).astype(bool)
    return df


@per_release(max_entries=256)
def breakdown_values(key: str, table: str, column: str) -> list[str]:
    """Distinct values of a breakdown column ('sex' or 'age_band') of a count table."""
    if column not in ("sex", "age_band"):
        raise ValueError("only sex and age_band breakdowns can be listed")
    ident = checked_table(key, table)
    dims = count_tables(key)[table]
    if column not in dims:
        return []
    df = _query(key, f'SELECT DISTINCT "{column}" AS v FROM {ident} ORDER BY 1')
    return [str(v) for v in df["v"]]


def _base_sql(key: str, table: str, area_level: str | tuple[str, ...], sex: str, age_band: str, financial_years: bool,
              period: str | None, area_codes: tuple[str, ...] | None) -> tuple[str, list]:
    """SELECT area_code, period_start, period_end, provisional, count of one
    validated table, filtered by parameters only."""
    ident = checked_table(key, table)
    dims = count_tables(key)[table]
    if isinstance(area_level, tuple):  # several levels at once (e.g. boroughs and the place)
        where, params = ["list_contains(?, area_level)"], [list(area_level)]
    else:
        where, params = ["area_level = ?"], [area_level]
    if "sex" in dims:
        where.append("sex = ?")
        params.append(sex)
    if "age_band" in dims:
        where.append("age_band = ?")
        params.append(age_band)
    if area_codes is not None:
        where.append("list_contains(?, area_code)")
        params.append(list(area_codes))
    if period is not None:
        if financial_years:
            where.append("period_start >= ?::DATE AND period_start < ?::DATE + INTERVAL 1 YEAR")
            params += [period, period]
        else:
            where.append("period_start = ?::DATE")
            params.append(period)
    sql = (f"SELECT area_code, period_start, period_end, provisional, count FROM {ident} "
           f"WHERE {' AND '.join(where)}")
    if financial_years:
        sql = (
            "SELECT area_code, make_date(fy, 4, 1) AS period_start, make_date(fy + 1, 3, 31) AS period_end, "
            "bool_or(provisional) AS provisional, "
            "CASE WHEN count(count) = count(*) THEN sum(count) END::BIGINT AS count "
            "FROM (SELECT *, CASE WHEN month(period_start) >= 4 THEN year(period_start) "
            "ELSE year(period_start) - 1 END AS fy FROM (" + sql + ")) "
            "GROUP BY area_code, fy HAVING count(*) = 12")
    return sql, params


@st.cache_resource(show_spinner=False, max_entries=512)
def series_rows(
    key: str,
    table: str,
    area_level: str | tuple[str, ...],
    sex: str = "All",
    age_band: str = "All",
    *,
    financial_years: bool = False,
    parent_table: str | None = None,
    population: bool = False,
    period: str | None = None,
    area_codes: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """One query for everything a series needs, joined in DuckDB.

    The areas of ``area_level`` in ``table`` (one sex and age band where the
    table has those breakdowns; only ``area_codes`` if given), all periods or
    only ``period`` (ISO date of its start), with the area's name, and
    optionally the all-ages population of the period's year (``population``,
    ``estimate_year``) and the count of ``parent_table`` for the same area and
    period (``parent_count``, for proportions). ``financial_years`` sums
    monthly counts into financial years (only complete years: 12 months, none
    suppressed, else NULL; provisional if any month is).

    Columns: area_code, area_name, period_start, period_end, provisional,
    count (Int64, NA = suppressed) [, population, estimate_year] [, parent_count].
    """
    sql, params = _base_sql(key, table, area_level, sex, age_band, financial_years, period, area_codes)
    select = ["t.area_code", "coalesce(a.area_name, t.area_code) AS area_name", "t.period_start", "t.period_end",
              "t.provisional", "t.count"]
    joins = ["LEFT JOIN (SELECT area_code, any_value(area_name) AS area_name FROM areas GROUP BY area_code) a "
             "ON a.area_code = t.area_code"]
    if population:
        select += ["p.population::DOUBLE AS population", "p.estimate_year::DOUBLE AS estimate_year"]
        joins.append("LEFT JOIN population p ON p.area_code = t.area_code AND p.year = year(t.period_start) "
                     "AND p.sex = 'All' AND p.age_band = 'All'")
    if parent_table:
        psql, pparams = _base_sql(key, parent_table, area_level, sex, age_band, financial_years, period, area_codes)
        select.append("d.count AS parent_count")
        joins.append(f"LEFT JOIN ({psql}) d ON d.area_code = t.area_code AND d.period_start = t.period_start")
        params = params + pparams
    df = _query(key, f"SELECT {', '.join(select)} FROM ({sql}) t {' '.join(joins)} "
                     "ORDER BY t.area_code, t.period_start", params)
    df["period_start"] = pd.to_datetime(df["period_start"])
    df["period_end"] = pd.to_datetime(df["period_end"])
    df["count"] = df["count"].astype("Int64")
    if "parent_count" in df:
        df["parent_count"] = df["parent_count"].astype("Int64")
    df["provisional"] = df["provisional"].fillna(False).astype(bool)
    return df


@st.cache_resource(show_spinner=False, max_entries=256)
def periods(key: str, table: str, area_level: str, financial_years: bool = False) -> pd.DataFrame:
    """The periods of ``table`` at ``area_level``: period_start, provisional
    (any area provisional), oldest first; financial years summed from months
    when ``financial_years`` (complete years only)."""
    ident = checked_table(key, table)
    if financial_years:
        sql = (f"SELECT make_date(fy, 4, 1) AS period_start, bool_or(provisional) AS provisional FROM ("
               f"SELECT provisional, period_start, CASE WHEN month(period_start) >= 4 THEN year(period_start) "
               f"ELSE year(period_start) - 1 END AS fy FROM {ident} WHERE area_level = ?) "
               "GROUP BY fy HAVING count(DISTINCT period_start) = 12 ORDER BY 1")
    else:
        sql = (f"SELECT period_start, bool_or(provisional) AS provisional FROM {ident} WHERE area_level = ? "
               "GROUP BY period_start ORDER BY 1")
    df = _query(key, sql, [area_level])
    df["period_start"] = pd.to_datetime(df["period_start"])
    df["provisional"] = df["provisional"].fillna(False).astype(bool)
    return df


@st.cache_resource(show_spinner=False, max_entries=256)
def areas_in(key: str, table: str, area_level: str) -> pd.DataFrame:
    """The areas of ``area_level`` that ``table`` publishes: area_code, area_name (by name)."""
    ident = checked_table(key, table)
    return _query(
        key,
        f"SELECT t.area_code, coalesce(any_value(a.area_name), t.area_code) AS area_name FROM "
        f"(SELECT DISTINCT area_code FROM {ident} WHERE area_level = ?) t "
        "LEFT JOIN areas a ON a.area_code = t.area_code GROUP BY t.area_code ORDER BY 2",
        [area_level])


@per_release(max_entries=128)
def evidence(key: str, question: Any) -> Any:
    """The evidence-of-benefit assessment of ``question`` (a frozen
    ``dashboard.evidence.Question``) on this release, computed once and shared
    by every session: it fits models, about a second of CPU that a busy server
    should spend once per question. Callers treat the result as read-only."""
    from dashboard import evidence as E

    return E.assess(CONNECTIONS.cursor(key), question, catalogue(key))


@per_release(max_entries=128)
def evidence_figures(key: str, question: Any, footer: str) -> tuple[dict, dict | None]:
    """The evidence page's figures as plotly specs (the interrupted time
    series, and the comparison when there are comparators), built once:
    building them as ``go.Figure`` validates and deep-copies every property."""
    from dashboard import evidence as E

    ev = evidence(key, question)
    its = E.its_figure(ev, footer).to_dict()
    comparison = E.comparison_figure(ev, footer).to_dict() if question.comparators else None
    return its, comparison


def clear_caches() -> None:
    """Drop cached results and close connections (tests, benchmarks)."""
    st.cache_data.clear()
    st.cache_resource.clear()
    for memo in _PerRelease.registry:
        memo.clear()
    CONNECTIONS.close_all()
