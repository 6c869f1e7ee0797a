"""Indicators: what the catalogue publishes, and the figures derived from it.

An *indicator* here is one published measure (e.g. alcohol-related A&E
attendances) with the tables that publish it at different grains. Derived
figures (rates per 100,000, proportions, confidence intervals, comparisons,
trends) are computed ONLY from the published (rounded, suppressed) counts,
always with :mod:`pipelines.stats`; nothing here re-implements a statistic.

Pure functions (DataFrames in, DataFrames out) except :func:`load_series`
and friends, which read through :mod:`dashboard.queries`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import streamlit as st

from pipelines import stats

from . import queries

LEVEL_NAMES = {
    "place": "Greater Manchester (place)",
    "la": "Borough",
    "locality": "Locality",
    "ward": "Ward",
    "msoa": "MSOA (neighbourhood)",
    "lsoa": "LSOA (small area)",
    "catchment": "Children's-centre catchment",
}
LEVEL_ORDER = ["place", "la", "locality", "catchment", "ward", "msoa", "lsoa"]
PERIOD_NAMES = {"month": "month", "quarter": "quarter", "financial_year": "financial year", "year": "year"}
PERIODS_PER_YEAR = {"month": 12, "quarter": 4, "financial_year": 1, "year": 1}

# statistic codes
COUNT, RATE, PROPORTION = "count", "rate", "proportion"

STATUS_OK = "shown"
STATUS_SUPPRESSED = "suppressed"
STATUS_NO_DENOM = "no population denominator"
STATUS_DENOM_SUPPRESSED = "denominator suppressed"
STATUS_NOT_COMPUTED = "not computed (rounded numerator exceeds rounded denominator)"


@dataclass(frozen=True)
class Indicator:
    pipeline: str
    measure: str
    label: str
    unit: str
    polarity: str
    denominator: str
    subset_of: str | None
    source: str
    coverage: str
    description: str
    tables: tuple[dict, ...] = field(default_factory=tuple, repr=False)

    @property
    def id(self) -> str:
        return f"{self.pipeline}.{self.measure}"

    @property
    def has_population_denominator(self) -> bool:
        return "population" in (self.denominator or "").lower()

    def levels(self) -> list[str]:
        found = {lvl for t in self.tables for lvl in t["area_levels"]}
        return [lvl for lvl in LEVEL_ORDER if lvl in found]

    def tables_at(self, level: str) -> list[dict]:
        return [t for t in self.tables if level in t["area_levels"]]

    def table_at(self, level: str, period_kind: str | None = None, finest: bool = True) -> dict | None:
        """The table publishing this indicator at ``level`` (optionally of one
        period kind); by default the one with the finest periods."""
        rank = {"month": 0, "quarter": 1, "financial_year": 2, "year": 3}
        cands = [t for t in self.tables_at(level) if period_kind is None or t["period_kind"] == period_kind]
        if not cands:
            return None
        cands.sort(key=lambda t: rank.get(t["period_kind"], 9), reverse=not finest)
        return cands[0]

    def additive_over_periods(self, table: dict) -> bool:
        return "period" in (table.get("additive_over") or [])


def _measure_label(titles: list[str], measure: str) -> str:
    heads = {t.split(": ", 1)[0] for t in titles if ": " in t}
    if len(heads) == 1 and all(": " in t for t in titles):
        return heads.pop()
    return measure.replace("_", " ").capitalize()


def indicators(cat: pd.DataFrame) -> list[Indicator]:
    """Indicators of a release, in catalogue order (count tables only)."""
    records = cat[cat["kind"] == "count"].to_dict("records")
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((str(r["pipeline"]), str(r["measure"])), []).append(r)
    out = []
    for (pipeline, measure), rows in groups.items():
        rows = tuple(rows)
        first = rows[0]
        out.append(Indicator(
            pipeline=str(pipeline), measure=str(measure),
            label=_measure_label([str(r["title"]) for r in rows], str(measure)),
            unit=str(first.get("unit") or "count"), polarity=str(first.get("polarity") or "none"),
            denominator=str(first.get("denominator") or ""),
            subset_of=(first.get("subset_of") or None) if isinstance(first.get("subset_of"), str) else None,
            source=str(first.get("source") or ""), coverage=str(first.get("coverage") or ""),
            description=str(first.get("description") or ""), tables=rows,
        ))
    return out


def parent_indicator(ind: Indicator, inds: list[Indicator]) -> Indicator | None:
    """The indicator ``ind`` is a subset of, when a proportion of it makes
    sense (same pipeline and same unit, e.g. alcohol attendances of all
    attendances)."""
    if not ind.subset_of:
        return None
    for other in inds:
        if other.pipeline == ind.pipeline and other.measure == ind.subset_of and other.unit == ind.unit:
            return other
    return None


def statistics_for(ind: Indicator, inds: list[Indicator]) -> list[str]:
    out = [COUNT]
    if ind.has_population_denominator:
        out.append(RATE)
    if parent_indicator(ind, inds) is not None:
        out.append(PROPORTION)
    return out


def statistic_label(stat: str, ind: Indicator, inds: list[Indicator], period_kind: str = "",
                    annualised: bool = True) -> str:
    if stat == RATE:
        per = PERIOD_NAMES.get(period_kind, "period")
        if period_kind in ("month", "quarter"):
            return ("Rate per 100,000 population, annualised" if annualised
                    else f"Rate per 100,000 population per {per}")
        return "Rate per 100,000 population"
    if stat == PROPORTION:
        parent = parent_indicator(ind, inds)
        return f"% of {parent.label.lower() if parent else 'parent'}"
    return f"Count of {ind.unit} (rounded)"


def policy_of(ind: Indicator) -> dict | None:
    for t in ind.tables:
        p = queries.policy_of(t)
        if p:
            return p
    return None


def extract_date(ind: Indicator) -> pd.Timestamp | None:
    for t in ind.tables:
        m = re.search(r"extract date (\d{4}-\d{2}-\d{2})", str(t.get("notes") or ""))
        if m:
            return pd.Timestamp(m.group(1))
    return None


# ---------------------------------------------------------------------------
# Period labels
# ---------------------------------------------------------------------------

def period_label(start: pd.Timestamp, kind: str) -> str:
    start = pd.Timestamp(start)
    if kind == "month":
        return start.strftime("%b %Y")
    if kind == "financial_year":
        return f"{start.year}/{str(start.year + 1)[-2:]}"
    if kind == "quarter":
        fy = start.year if start.month >= 4 else start.year - 1
        q = ((start.month - 4) % 12) // 3 + 1
        return f"Q{q} {fy}/{str(fy + 1)[-2:]}"
    return str(start.date())


def population_year(start: pd.Series) -> pd.Series:
    """The mid-year estimate used for a period: the calendar year in which
    the period starts (for a financial year, the mid-year of its first half)."""
    return pd.to_datetime(start).dt.year.astype("int64")


# ---------------------------------------------------------------------------
# Deriving values from published counts (pure)
# ---------------------------------------------------------------------------

def derive_values(
    df: pd.DataFrame,
    statistic: str,
    *,
    denominator: pd.Series | None = None,
    denominator_status: pd.Series | None = None,
    multiplier: float = 100_000,
) -> pd.DataFrame:
    """Add ``value``, ``lower``, ``upper`` (95% CI) and ``status`` to ``df``.

    ``df`` has a ``count`` column (NA = suppressed). ``denominator``: the
    population (for ``rate``) or the parent count (for ``proportion``),
    aligned with ``df``; NA where there is none. CIs: count - exact Poisson /
    Byar's (:func:`pipelines.stats.count_ci`); rate - :func:`rate_ci`;
    proportion - Wilson (:func:`proportion_ci`, as a percentage).
    """
    out = df.copy()
    x = out["count"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    status = np.where(np.isnan(x), STATUS_SUPPRESSED, STATUS_OK).astype(object)
    value = np.full(len(out), np.nan)
    lower = np.full(len(out), np.nan)
    upper = np.full(len(out), np.nan)
    if statistic == COUNT:
        ok = ~np.isnan(x)
        if ok.any():
            r = stats.count_ci(x[ok])
            value[ok], lower[ok], upper[ok] = r.value, r.lower, r.upper
        out["denominator"] = np.nan
    else:
        if denominator is None:
            n = np.full(len(out), np.nan)
        else:
            n = pd.Series(denominator).astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        if statistic == RATE:
            status = np.where(~np.isnan(x) & (np.isnan(n) | (n <= 0)), STATUS_NO_DENOM, status)
            ok = ~np.isnan(x) & ~np.isnan(n) & (n > 0)
            if ok.any():
                r = stats.rate_ci(x[ok], n[ok], multiplier=multiplier)
                value[ok], lower[ok], upper[ok] = r.value, r.lower, r.upper
        elif statistic == PROPORTION:
            dstat = (np.asarray(denominator_status, dtype=object) if denominator_status is not None
                     else np.where(np.isnan(n), STATUS_DENOM_SUPPRESSED, STATUS_OK))
            status = np.where(~np.isnan(x) & np.isnan(n), dstat, status)
            status = np.where(~np.isnan(x) & ~np.isnan(n) & ((x > n) | (n <= 0)), STATUS_NOT_COMPUTED, status)
            ok = ~np.isnan(x) & ~np.isnan(n) & (n > 0) & (x <= n)
            if ok.any():
                r = stats.proportion_ci(x[ok], n[ok], multiplier=100)
                value[ok], lower[ok], upper[ok] = r.value, r.lower, r.upper
        else:
            raise ValueError(f"unknown statistic {statistic!r}")
        out["denominator"] = n
    out["value"] = value
    out["lower"] = lower
    out["upper"] = upper
    out["status"] = status
    return out


# ---------------------------------------------------------------------------
# Reading series for an indicator (through the cached queries)
# ---------------------------------------------------------------------------

@dataclass
class Series:
    """Derived values for every area of one level, all periods."""

    data: pd.DataFrame  # area_code, area_name, period_start, period_end, provisional, count, denominator, value, lower, upper, status, period
    table: dict
    statistic: str
    period_kind: str
    multiplier: float
    value_label: str
    notes: list[str]


@queries.per_release
def indicators_of(key: str) -> list[Indicator]:
    """The indicators of a release (cached per release)."""
    return indicators(queries.catalogue(key))


def resolve_table(ind: Indicator, level: str, period_kind: str | None = None,
                  table: dict | None = None) -> tuple[dict | None, bool]:
    """The table publishing ``ind`` at ``level`` with ``period_kind`` periods,
    and whether financial years are summed from its months (only for
    measures that add up over periods)."""
    if table is not None:
        return table, False
    found = ind.table_at(level, period_kind) if period_kind else ind.table_at(level)
    if found is None and period_kind == "financial_year":
        monthly = ind.table_at(level, "month")
        if monthly is not None and ind.additive_over_periods(monthly):
            return monthly, True
    return found, False


def resolve_kind(ind: Indicator, level: str, period_kind: str | None = None) -> str:
    """The kind of periods :func:`load_series` will return."""
    t, aggregated = resolve_table(ind, level, period_kind)
    return "financial_year" if aggregated else (t["period_kind"] if t else (period_kind or "month"))


def periods_of(key: str, ind: Indicator, level: str, period_kind: str | None = None,
               table: dict | None = None) -> pd.DataFrame:
    """period_start, provisional of ``ind`` at ``level`` (oldest first)."""
    t, aggregated = resolve_table(ind, level, period_kind, table)
    if t is None:
        return pd.DataFrame({"period_start": pd.Series(dtype="datetime64[ns]"), "provisional": pd.Series(dtype=bool)})
    return queries.periods(key, t["table_name"], level, aggregated)


def areas_of(key: str, ind: Indicator, level: str, period_kind: str | None = None,
             table: dict | None = None) -> pd.DataFrame:
    """area_code, area_name of the areas ``ind`` is published for at ``level``."""
    t, _ = resolve_table(ind, level, period_kind, table)
    if t is None:
        return pd.DataFrame({"area_code": [], "area_name": []})
    return queries.areas_in(key, t["table_name"], level)


def load_series(
    key: str,
    ind: Indicator,
    inds: list[Indicator],
    level: str,
    statistic: str,
    *,
    period_kind: str | None = None,
    annualised: bool = True,
    sex: str = "All",
    age_band: str = "All",
    table: dict | None = None,
    period: pd.Timestamp | str | None = None,
    areas: tuple[str, ...] | list[str] | None = None,
) -> Series | None:
    """Values of ``ind`` for the areas of ``level`` (only ``areas`` if given),
    all periods or only ``period``. None if not published there.

    When ``period_kind`` is given but no table has it, monthly counts that add
    up over periods are summed into financial years (in DuckDB, see
    :func:`dashboard.queries.series_rows`). Cached per release and arguments."""
    p = None if period is None else pd.Timestamp(period).strftime("%Y-%m-%d")
    a = None if areas is None else tuple(sorted(areas))
    return _series_cached(key, ind.id, level, statistic, period_kind, annualised, sex, age_band,
                          table["table_name"] if table is not None else None, p, a)


@st.cache_resource(show_spinner=False, max_entries=1024)
def _series_cached(key: str, ind_id: str, level: str, statistic: str, period_kind: str | None,
                   annualised: bool, sex: str, age_band: str, table_name: str | None,
                   period: str | None, areas: tuple[str, ...] | None) -> Series | None:
    inds = indicators_of(key)
    ind = next((i for i in inds if i.id == ind_id), None)
    if ind is None:
        return None
    table = next((t for t in ind.tables if t["table_name"] == table_name), None) if table_name else None
    return _load_series(key, ind, inds, level, statistic, period_kind=period_kind, annualised=annualised,
                        sex=sex, age_band=age_band, table=table, period=period, areas=areas)


def _load_series(
    key: str,
    ind: Indicator,
    inds: list[Indicator],
    level: str,
    statistic: str,
    *,
    period_kind: str | None = None,
    annualised: bool = True,
    sex: str = "All",
    age_band: str = "All",
    table: dict | None = None,
    period: str | None = None,
    areas: tuple[str, ...] | None = None,
) -> Series | None:
    notes: list[str] = []
    table, aggregated = resolve_table(ind, level, period_kind, table)
    if table is None:
        return None
    if aggregated:
        notes.append("financial-year counts summed from published monthly counts "
                     "(a year with any suppressed month is not shown)")
    kind = "financial_year" if aggregated else table["period_kind"]
    ptable = None
    if statistic == PROPORTION:
        parent = parent_indicator(ind, inds)
        if parent is not None:
            suffix = table["table_name"].split("__")[-1]
            ptable = next((t for t in parent.tables if t["period_kind"] == table["period_kind"]
                           and level in t["area_levels"] and t["table_name"].split("__")[-1] == suffix), None)
        if ptable is None:
            return None
    df = queries.series_rows(key, table["table_name"], level, sex, age_band, financial_years=aggregated,
                             parent_table=ptable["table_name"] if ptable else None,
                             population=statistic == RATE, period=period, area_codes=areas)
    multiplier = 100_000.0
    denominator = None
    if statistic == RATE:
        denominator = df["population"]
        if kind in ("month", "quarter"):
            if annualised:
                multiplier *= PERIODS_PER_YEAR[kind]
                notes.append(f"rates are annualised: the {PERIOD_NAMES[kind]}ly rate x {PERIODS_PER_YEAR[kind]}")
            else:
                notes.append(f"rates are per {PERIOD_NAMES[kind]} (not annualised)")
        est = df["estimate_year"].to_numpy(float)
        later = ~np.isnan(est) & (df["period_start"].dt.year.to_numpy() != est)
        if later.any():
            notes.append("for periods after the latest population estimate the latest estimate is used")
    elif statistic == PROPORTION:
        denominator = df["parent_count"]
    out = derive_values(df, statistic, denominator=denominator, multiplier=multiplier)
    labels = {p: period_label(p, kind) for p in out["period_start"].unique()}
    out["period"] = out["period_start"].map(labels)
    return Series(out, table, statistic, kind, multiplier,
                  statistic_label(statistic, ind, inds, kind, annualised), notes)


@st.cache_resource(show_spinner=False, max_entries=64)
def _headline_series(key: str, ind_id: str) -> tuple[pd.DataFrame, str, str, str] | None:
    """Values of one indicator for every borough and the place (one query)."""
    inds = indicators_of(key)
    ind = next(i for i in inds if i.id == ind_id)
    levels = tuple(lv for lv in ("la", "place") if lv in ind.levels())
    table = ind.table_at(levels[0]) if levels else None
    if table is None:
        return None
    stat = RATE if ind.has_population_denominator else COUNT
    df = queries.series_rows(key, table["table_name"], tuple(lv for lv in levels if lv in table["area_levels"]),
                             population=stat == RATE)
    kind = table["period_kind"]
    multiplier = 100_000.0 * (PERIODS_PER_YEAR[kind] if stat == RATE and kind in ("month", "quarter") else 1)
    out = derive_values(df, stat, denominator=df["population"] if stat == RATE else None, multiplier=multiplier)
    labels = {p: period_label(p, kind) for p in out["period_start"].unique()}
    out["period"] = out["period_start"].map(labels)
    unit = statistic_label(stat, ind, inds, kind, True) if stat == RATE else f"{ind.unit} (rounded)"
    return out, stat, kind, unit


@st.cache_resource(show_spinner=False, max_entries=1024)
def headline(key: str, ind_id: str, code: str) -> dict | None:
    """The overview's tile for one indicator and one borough (or the place):
    the latest complete period (a forward-looking table ends in provisional
    periods), its value, the change from the same period a year earlier and
    the last two years."""
    found = _headline_series(key, ind_id)
    if found is None:
        return None
    out, stat, kind, unit = found
    d = out[out["area_code"].to_numpy(dtype=object) == code]
    if d.empty:
        return None
    complete = d[~d["provisional"].to_numpy()]
    upto = complete if len(complete) else d
    last = upto.iloc[-1]
    recent = upto.tail(24)
    return {
        "statistic": stat, "unit": unit, "period_kind": kind,
        "last": {k: last[k] for k in ("period", "provisional", "count", "value", "lower", "upper", "status")},
        "change": change_vs_year_earlier(upto, kind),
        "recent": recent[["period", "provisional", "count", "value", "status"]].reset_index(drop=True),
    }


def comparator_area(key: str, level: str, area_codes: list[str] | None = None) -> tuple[str, str] | None:
    """The comparator for areas of ``level``: the place for boroughs (and
    the place itself), the parent borough for areas within a borough."""
    ar = queries.areas(key)
    place = ar[ar["area_level"] == "place"]
    if level in ("la", "place"):
        if place.empty:
            return None
        r = place.iloc[0]
        return str(r["area_code"]), str(r["area_name"])
    sub = ar[ar["area_level"] == level]
    if area_codes:
        sub = sub[sub["area_code"].isin(area_codes)]
    parents = sub["parent_la"].dropna().unique()
    if len(parents) == 1:
        la = ar[ar["area_code"] == parents[0]]
        if not la.empty:
            return str(la.iloc[0]["area_code"]), str(la.iloc[0]["area_name"])
    if place.empty:
        return None
    r = place.iloc[0]
    return str(r["area_code"]), str(r["area_name"])


def comparator_choices(key: str, ind: Indicator, level: str,
                       area_codes: list[str] | None = None) -> list[tuple[str, str, str]]:
    """Comparators ``ind`` is published for: (code, name, role) with role
    'the place' and, for areas within one borough, 'the parent borough'."""
    ar = queries.areas(key)
    out = []
    place = ar[ar["area_level"] == "place"]
    if len(place) and "place" in ind.levels():
        out.append((str(place.iloc[0]["area_code"]), str(place.iloc[0]["area_name"]), "the place"))
    if level not in ("la", "place"):
        sub = ar[ar["area_level"] == level]
        if area_codes:
            sub = sub[sub["area_code"].isin(area_codes)]
        parents = sub["parent_la"].dropna().unique()
        if len(parents) == 1 and "la" in ind.levels():
            la = ar[ar["area_code"] == parents[0]]
            if len(la):
                out.append((str(la.iloc[0]["area_code"]), str(la.iloc[0]["area_name"]), "the parent borough"))
    return out


def comparator_series(
    key: str, ind: Indicator, inds: list[Indicator], series: Series, comparator: tuple[str, str],
    *, annualised: bool = True, sex: str = "All", age_band: str = "All", period=None,
) -> pd.DataFrame | None:
    """The comparator area's values with the same statistic and periods as
    ``series`` (only ``period`` if given)."""
    code, _name = comparator
    ar = queries.areas(key)
    lvl = ar.loc[ar["area_code"] == code, "area_level"]
    if lvl.empty:
        return None
    lvl = str(lvl.iloc[0])
    same_table = lvl in series.table["area_levels"] and not (
        series.period_kind == "financial_year" and series.table["period_kind"] == "month")
    s = load_series(key, ind, inds, lvl, series.statistic, annualised=annualised, sex=sex, age_band=age_band,
                    table=series.table if same_table else None,
                    period_kind=None if same_table else series.period_kind, period=period, areas=(code,))
    if s is None or s.period_kind != series.period_kind:
        return None
    return s.data.reset_index(drop=True)


def compare(values: pd.DataFrame, benchmark: pd.DataFrame, polarity: str) -> pd.Series:
    """Better/Similar/Worse (or Higher/Similar/Lower) for each row of
    ``values`` against the comparator's value in the same period
    (:func:`pipelines.stats.compare_to_benchmark`)."""
    b = values[["period_start"]].merge(
        benchmark[["period_start", "value"]].rename(columns={"value": "_b"}), on="period_start", how="left")["_b"]
    res = stats.compare_to_benchmark(values["lower"].to_numpy(float), values["upper"].to_numpy(float),
                                     b.to_numpy(float), polarity=polarity if polarity in
                                     ("lower_is_better", "higher_is_better") else "none")
    res = np.asarray(res, dtype=object)
    res = np.where(values["status"].to_numpy() == STATUS_SUPPRESSED, "Suppressed", res)
    return pd.Series(res, index=values.index)


def trend(series_rows: pd.DataFrame, statistic: str, multiplier: float, n_points: int = 5) -> stats.TrendResult:
    """Fingertips recent-trend marker over the last ``n_points`` complete
    (non-provisional) periods of one area (:func:`pipelines.stats.trend_test`)."""
    d = series_rows.sort_values("period_start")
    d = d[~d["provisional"]]
    x = d["count"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    if statistic == RATE:
        n = d["denominator"].to_numpy(float)
        return stats.trend_test(x, n, statistic="rate", multiplier=multiplier, n_points=n_points)
    if statistic == PROPORTION:
        n = d["denominator"].to_numpy(float)
        return stats.trend_test(x, n, statistic="proportion", n_points=n_points)
    return stats.trend_test(x, np.ones_like(x), statistic="rate", n_points=n_points,
                            values=d["value"].to_numpy(float), lower=d["lower"].to_numpy(float),
                            upper=d["upper"].to_numpy(float))


def change_vs_year_earlier(rows: pd.DataFrame, period_kind: str) -> dict:
    """Latest period against the same period a year earlier for one area:
    rate ratio with exact CI (:func:`pipelines.stats.before_after`), using the
    population as person-time when there is one."""
    if rows.empty:
        return {"ok": False, "reason": "no data"}
    d = rows.sort_values("period_start")
    starts = d["period_start"].to_numpy()
    counts = d["count"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    dens = (d["denominator"].to_numpy(dtype=float, na_value=np.nan) if "denominator" in d
            else np.full(len(d), np.nan))
    last_start = pd.Timestamp(starts[-1])
    target = last_start - pd.DateOffset(years=1)
    base = {"period": period_label(last_start, period_kind), "provisional": bool(d["provisional"].to_numpy()[-1]),
            "previous_period": period_label(target, period_kind)}
    hit = np.flatnonzero(starts == np.datetime64(target))
    if not len(hit):
        return {**base, "ok": False, "reason": "no figure for the same period a year earlier"}
    i = int(hit[0])
    a, b = counts[-1], counts[i]
    if a != a or b != b:
        return {**base, "ok": False, "reason": "suppressed, so no comparison"}
    pa, pb = dens[-1], dens[i]
    use_pop = pa == pa and pb == pb and pa > 0 and pb > 0
    ta, tb = (float(pa), float(pb)) if use_pop else (1.0, 1.0)
    if a == 0 and b == 0:
        return {**base, "ok": False, "reason": "zero in both periods"}
    r = stats.before_after(float(b), tb, float(a), ta)
    sig = bool(r.lower > 1 or r.upper < 1)
    return {**base, "ok": True, "ratio": float(r.ratio), "lower": float(r.lower), "upper": float(r.upper),
            "p_value": float(r.p_value), "significant": sig,
            "basis": "rate" if use_pop else "count"}
