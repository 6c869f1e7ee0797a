"""Evidence of benefit: did an intervention change an indicator in its areas?

Everything here is computed from the publication only (disclosure-controlled,
rounded and suppressed monthly counts, and the published population
denominators), with the statistics of :mod:`pipelines.stats`; nothing here
re-implements a statistical method. No Streamlit: the page
(``dashboard/pages/evidence.py``) is a thin layer of widgets over:

* :func:`load_inputs` -- read the published monthly series of the chosen
  areas and comparators, their populations, overlaps and other interventions
  (parameterised queries, table names checked against the catalogue);
* :func:`evaluate` -- pure: aggregate the areas, apply the rules below, and
  run the interrupted time series, before/after, difference-in-differences
  and detectable-effect calculations;
* :func:`its_figure`, :func:`comparison_figure` -- plotly figures;
* :func:`report_html` -- a self-contained HTML report (plotly embedded, no
  CDN) with every publication text HTML-escaped.

When can we conclude? (the rules, also stated on the page and in the report)
---------------------------------------------------------------------------
Only complete months are used (months the publication marks provisional are
left out). For the chosen areas added together, a month is *suppressed* if
any area's count in it is suppressed. A method's result is shown only if all
its rules hold; otherwise the page says which rule failed and shows no figure.

* ``MIN_PRE_MONTHS`` (12) complete months before the start for the
  interrupted time series (a full year, so the seasonal pattern and the
  trend are estimated before the start; Wagner et al. 2002 recommend 12
  points on each side) and ``MIN_POST_MONTHS`` (6) complete months from the
  start for every method (earlier than that is too early to tell; with fewer
  than 12 only the early effect is measured).
* At most ``MAX_SUPPRESSED_SHARE`` (10%) of the months a method uses may be
  suppressed, in the intervention areas and in the comparators.
* The mean monthly count before the start must be at least
  ``MIN_MEAN_MONTHLY_COUNT`` (10). Below that, chance variation and the
  rounding of published counts (nearest 5: up to +/-2 per month) swamp any
  plausible effect.
* Suppressed months that remain (at most 10%) are filled with the middle of
  the range the policy says a suppressed count lies in, and every model is
  refitted with the lowest and the highest plausible values; if the
  conclusion (significant or not, and its direction) changes, the result is
  withheld because it depends on the hidden values.
* Areas must not overlap each other, and comparators must not overlap the
  intervention areas (overlap is judged on the LSOAs that make them up).

Rounded counts are used as published. The quasi-Poisson interrupted time
series estimates its overdispersion from the published series, so the
rounding noise is inside its interval. The before/after and
difference-in-differences intervals are exact/Wald Poisson intervals that do
not include it; the page states by how much rounding would widen them.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from pipelines import stats

# ---------------------------------------------------------------------------
# Rules (see the module docstring; the page and the report quote them)
# ---------------------------------------------------------------------------

MIN_PRE_MONTHS = 12
MIN_POST_MONTHS = 6
MAX_SUPPRESSED_SHARE = 0.10
MIN_MEAN_MONTHLY_COUNT = 10.0
DEFAULT_FOLLOW_UP_MONTHS = 12
#: regression-to-the-mean flag: the 12 months before the start above the earlier months by this fraction
RTM_FLAG = 0.10
#: overdispersion above which the Poisson before/after and DiD intervals are flagged as too narrow
OVERDISPERSION_FLAG = 1.5
CONFIDENCE = 0.95
POWER = 0.80
ALPHA = 0.05


def rules_text() -> list[str]:
    """The rules for 'cannot conclude', in plain English (page and report)."""
    return [
        "Only complete months are used; months the publication marks provisional are left out.",
        f"The interrupted time series needs at least {MIN_PRE_MONTHS} complete months before the start "
        f"(a full year, to estimate the trend and the seasonal pattern); every method needs at least "
        f"{MIN_POST_MONTHS} complete months from the start (earlier than that is too early to tell).",
        f"At most {MAX_SUPPRESSED_SHARE:.0%} of the months a method uses may be suppressed (a month of several "
        "areas added together is suppressed if any area's count is), in the intervention areas and in the "
        "comparators.",
        f"The average monthly count before the start must be at least {MIN_MEAN_MONTHLY_COUNT:g}: below that, "
        "chance variation and the rounding of the published counts swamp any plausible effect.",
        "Any remaining suppressed months are filled with the middle of the range the disclosure policy says a "
        "suppressed count lies in, and every model is refitted with the lowest and highest plausible values; if "
        "the conclusion changes, no result is given.",
        "Intervention areas must not overlap each other, and comparators must not overlap the intervention areas.",
    ]


# ---------------------------------------------------------------------------
# The question
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Question:
    """What is asked: did ``name``, started in ``areas`` on ``start``, change ``indicator``?"""

    name: str
    areas: tuple[str, ...]
    start: dt.date
    indicator: str  # "pipeline.measure"
    comparators: tuple[str, ...] = ()
    follow_up_months: int = DEFAULT_FOLLOW_UP_MONTHS
    description: str = ""
    intervention_id: str | None = None  # None: defined ad hoc on the page
    pre_months: int | None = None  # use only this many months before the start (None: all)

    @property
    def start_month(self) -> pd.Timestamp:
        return pd.Timestamp(self.start).to_period("M").to_timestamp()


def _split(text: Any) -> tuple[str, ...]:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ()
    return tuple(p.strip() for p in str(text).split(";") if p.strip())


def questions_from_interventions(interventions: pd.DataFrame) -> list[Question]:
    """One :class:`Question` per (intervention, indicator) of the published table."""
    out = []
    if interventions is None or interventions.empty:
        return out
    for _, r in interventions.iterrows():
        try:
            start = pd.Timestamp(r["start_date"]).date()
        except (ValueError, TypeError):
            continue
        for ind in _split(r.get("indicators")) or ("",):
            out.append(Question(
                name=str(r.get("name") or r.get("intervention_id")),
                areas=_split(r.get("areas")),
                start=start,
                indicator=ind,
                comparators=_split(r.get("comparator_areas")),
                description=str(r.get("description") or ""),
                intervention_id=str(r.get("intervention_id")),
            ))
    return out


# ---------------------------------------------------------------------------
# Reading the publication (parameterised; table names checked)
# ---------------------------------------------------------------------------

def read_catalogue(con) -> pd.DataFrame:
    df = con.execute("SELECT * FROM catalogue").df()
    for c in ("dimensions", "area_levels", "additive_over"):
        if c in df.columns:
            df[c] = [list(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else []
                     for v in df[c]]
    return df


def _tables(con) -> set[str]:
    return set(con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").df()["table_name"])


def read_interventions(con) -> pd.DataFrame:
    if "interventions" not in _tables(con):
        return pd.DataFrame(columns=["intervention_id", "name", "description", "areas", "start_date",
                                     "indicators", "comparator_areas"])
    return con.execute("SELECT * FROM interventions ORDER BY start_date, intervention_id").df()


def read_areas(con) -> pd.DataFrame:
    return con.execute("SELECT area_code, area_name, area_level FROM areas ORDER BY area_level, area_name").df()


def monthly_tables(cat: pd.DataFrame, indicator: str) -> pd.DataFrame:
    """Catalogue rows of the monthly count tables publishing ``indicator``."""
    pipeline, _, measure = indicator.partition(".")
    rows = cat[(cat["kind"] == "count") & (cat["pipeline"] == pipeline) & (cat["measure"] == measure)
               & (cat["period_kind"] == "month")]
    return rows.reset_index(drop=True)


def monthly_indicators(cat: pd.DataFrame) -> dict[str, str]:
    """indicator id -> title, for indicators published by month."""
    rows = cat[(cat["kind"] == "count") & (cat["period_kind"] == "month")]
    out = {}
    for (p, m), g in rows.groupby(["pipeline", "measure"], sort=False):
        out[f"{p}.{m}"] = indicator_label(g)
    return out


def indicator_label(rows: pd.DataFrame) -> str:
    titles = [str(t) for t in rows["title"]]
    heads = {t.split(": ", 1)[0] for t in titles}
    if len(heads) == 1:
        return heads.pop()
    return str(rows["measure"].iloc[0]).replace("_", " ").capitalize()


def table_for_level(tables: pd.DataFrame, level: str) -> pd.Series | None:
    """The monthly table whose area levels include ``level`` (the one with fewest breakdowns)."""
    cands = tables[[level in (lv or []) for lv in tables["area_levels"]]]
    if cands.empty:
        return None
    order = np.argsort([len(d or []) for d in cands["dimensions"]], kind="stable")
    return cands.iloc[order[0]]


def published_areas(con, cat: pd.DataFrame, indicator: str, level: str) -> list[str]:
    """Codes of the areas of ``level`` that a monthly table of ``indicator`` publishes."""
    t = table_for_level(monthly_tables(cat, indicator), level)
    if t is None:
        return []
    ident = _ident(cat, str(t["table_name"]))
    df = con.execute(f"SELECT DISTINCT area_code FROM {ident} WHERE area_level = ? ORDER BY 1", [level]).df()
    return [str(c) for c in df["area_code"]]


def _ident(cat: pd.DataFrame, name: str) -> str:
    """``name`` quoted as an SQL identifier, if it is a count table of this catalogue."""
    ok = cat[(cat["table_name"] == name) & (cat["kind"] == "count")]
    if ok.empty or '"' in name:
        raise ValueError(f"{name!r} is not a count table of this publication")
    return f'"{name}"'


@dataclass
class Inputs:
    """Everything :func:`evaluate` needs, read from one publication."""

    question: Question
    indicator_label: str
    counts: pd.DataFrame  # area_code, period_start, provisional, count (float, NaN = suppressed)
    population: pd.DataFrame  # area_code, year, population
    areas: pd.DataFrame  # area_code, area_name, area_level (the chosen areas and comparators)
    overlaps: list[tuple[str, str]]  # pairs of chosen areas sharing LSOAs
    tables: pd.DataFrame  # catalogue rows of the tables read
    policy: dict | None
    release: dict
    runs: pd.DataFrame
    other_interventions: pd.DataFrame
    missing_areas: list[str] = field(default_factory=list)  # chosen areas no monthly table publishes


def load_inputs(con, question: Question, cat: pd.DataFrame | None = None) -> Inputs:
    """Read what :func:`evaluate` needs from the publication behind ``con``
    (a read-only DuckDB connection or cursor). Every value is a parameter;
    table names come from the catalogue only."""
    cat = read_catalogue(con) if cat is None else cat
    tables = monthly_tables(cat, question.indicator)
    if tables.empty:
        raise ValueError(f"the publication has no monthly table for indicator {question.indicator!r}")
    codes = list(dict.fromkeys([*question.areas, *question.comparators]))
    areas = con.execute(
        "SELECT area_code, area_name, area_level FROM areas WHERE area_code IN (SELECT unnest(?::VARCHAR[]))",
        [codes]).df()
    frames, used, missing = [], [], []
    for level, g in areas.groupby("area_level"):
        t = table_for_level(tables, str(level))
        if t is None:
            missing += list(g["area_code"])
            continue
        ident = _ident(cat, str(t["table_name"]))
        where = ["area_code IN (SELECT unnest(?::VARCHAR[]))"]
        params: list[Any] = [list(g["area_code"])]
        for dim in ("sex", "age_band"):
            if dim in (t["dimensions"] or []):
                where.append(f'"{dim}" = ?')
                params.append("All")
        df = con.execute(
            f"SELECT area_code, period_start, provisional, count FROM {ident} WHERE {' AND '.join(where)}",
            params).df()
        frames.append(df)
        used.append(t)
    missing += [c for c in codes if c not in set(areas["area_code"])]
    counts = (pd.concat(frames, ignore_index=True) if frames
              else pd.DataFrame(columns=["area_code", "period_start", "provisional", "count"]))
    counts["period_start"] = pd.to_datetime(counts["period_start"])
    counts["count"] = pd.to_numeric(counts["count"], errors="coerce").astype(float)
    counts["provisional"] = counts["provisional"].fillna(False).astype(bool)
    pop = con.execute(
        "SELECT area_code, year, population, note FROM population WHERE sex = ? AND age_band = ? "
        "AND area_code IN (SELECT unnest(?::VARCHAR[]))", ["All", "All", codes]).df()
    members = con.execute(
        "SELECT area_code, lsoa_code FROM area_members WHERE area_code IN (SELECT unnest(?::VARCHAR[]))",
        [codes]).df()
    overlaps = _overlaps(members, codes)
    used_df = pd.DataFrame(used).reset_index(drop=True) if used else tables.iloc[:0]
    policy = None
    for raw in used_df.get("policy", pd.Series(dtype=object)):
        if isinstance(raw, str) and raw:
            try:
                policy = json.loads(raw)
                break
            except ValueError:
                pass
    rel = con.execute("SELECT * FROM release LIMIT 1").df()
    release = rel.iloc[0].to_dict() if len(rel) else {}
    pipeline = question.indicator.partition(".")[0]
    runs = con.execute("SELECT * FROM runs WHERE pipeline = ? ORDER BY finished_at DESC NULLS LAST",
                       [pipeline]).df()
    others = _other_interventions(con, question, members)
    return Inputs(
        question=question, indicator_label=indicator_label(tables), counts=counts, population=pop,
        areas=areas, overlaps=overlaps, tables=used_df, policy=policy, release=release, runs=runs,
        other_interventions=others, missing_areas=missing,
    )


def _overlaps(members: pd.DataFrame, codes: Sequence[str]) -> list[tuple[str, str]]:
    sets = {c: set(g["lsoa_code"]) for c, g in members.groupby("area_code")}
    out = []
    codes = list(codes)
    for i, a in enumerate(codes):
        for b in codes[i + 1:]:
            if sets.get(a) and sets.get(b) and sets[a] & sets[b]:
                out.append((a, b))
    return out


def _other_interventions(con, question: Question, members: pd.DataFrame) -> pd.DataFrame:
    """Other published interventions touching the chosen areas or comparators
    and starting within a year before the start or during the follow-up."""
    iv = read_interventions(con)
    if iv.empty:
        return iv
    mine = set(members["lsoa_code"])
    lo = question.start_month - pd.DateOffset(months=12)
    hi = question.start_month + pd.DateOffset(months=question.follow_up_months)
    keep = []
    for _, r in iv.iterrows():
        if question.intervention_id and str(r["intervention_id"]) == question.intervention_id:
            continue
        try:
            s = pd.Timestamp(r["start_date"])
        except (ValueError, TypeError):
            continue
        if not (lo <= s < hi):
            continue
        codes = list(_split(r.get("areas")))
        if not codes:
            continue
        theirs = con.execute(
            "SELECT DISTINCT lsoa_code FROM area_members WHERE area_code IN (SELECT unnest(?::VARCHAR[]))",
            [codes]).df()["lsoa_code"]
        if mine & set(theirs):
            keep.append(r)
    return pd.DataFrame(keep).reset_index(drop=True) if keep else iv.iloc[:0]


# ---------------------------------------------------------------------------
# Pure: aggregating areas, with suppressed cells bounded by the policy
# ---------------------------------------------------------------------------

def suppressed_range(policy: dict | None) -> tuple[float, float]:
    """(lowest, highest) value a primary-suppressed count can have under ``policy``."""
    if not policy:
        return (0.0, 0.0)
    low = 1.0 if policy.get("zeros_shown", True) else 0.0
    high = float(policy.get("threshold") or 0)
    return (low, max(low, high))


def secondary_applied(policy: dict | None) -> bool:
    """Whether cells may also have been hidden to protect others (secondary
    suppression). Publications from before the policy recorded it had it."""
    return bool(policy) and policy.get("secondary_suppression", True) is not False


def rounding_variance(policy: dict | None) -> float:
    """Variance a published count carries from rounding alone: base^2/12
    (the rounding error is spread evenly over one rounding band)."""
    if not policy or policy.get("rounding") in (None, "none"):
        return 0.0
    b = float(policy.get("rounding_base") or 0)
    return b * b / 12.0


def aggregate(counts: pd.DataFrame, codes: Sequence[str], population: pd.DataFrame,
              policy: dict | None) -> pd.DataFrame:
    """Monthly totals over ``codes``: one row per month.

    Columns: period_start, provisional (any area), n_areas, n_suppressed
    (areas whose count is suppressed), published (sum of the shown counts),
    low / mid / high (the total with suppressed cells at the lowest, middle
    and highest plausible values), suppressed (bool), population (sum of the
    areas' mid-year estimates for the year; NaN if any is missing).

    Highest plausible value of a suppressed cell: the policy threshold; where
    the policy also applies secondary suppression, the median of that area's
    shown counts if larger (a secondarily suppressed count can exceed the
    threshold)."""
    cols = ["period_start", "provisional", "n_areas", "n_suppressed", "published", "low", "mid", "high",
            "suppressed", "population"]
    c = counts[counts["area_code"].isin(list(codes))].copy()
    if c.empty:
        empty = pd.DataFrame({k: pd.Series(dtype=float) for k in cols})
        empty["period_start"] = pd.Series(dtype="datetime64[ns]")
        empty["provisional"] = pd.Series(dtype=bool)
        empty["suppressed"] = pd.Series(dtype=bool)
        return empty[cols]
    lo, hi = suppressed_range(policy)
    med = c.groupby("area_code")["count"].median()
    if secondary_applied(policy):
        c["hi_area"] = np.maximum(hi, c["area_code"].map(med).fillna(hi).to_numpy(dtype=float))
    else:
        c["hi_area"] = hi
    sup = c["count"].isna()
    c["low"] = np.where(sup, lo, c["count"])
    c["high"] = np.where(sup, c["hi_area"], c["count"])
    c["mid"] = np.where(sup, (lo + c["hi_area"]) / 2.0, c["count"])
    c["is_sup"] = sup
    c["shown"] = c["count"].fillna(0.0)
    c["year"] = c["period_start"].dt.year
    pop = population.groupby(["area_code", "year"])["population"].sum()
    idx = pd.MultiIndex.from_arrays([c["area_code"].to_numpy(object), c["year"].to_numpy()])
    c["pop"] = pop.reindex(idx).to_numpy(dtype=float)
    g = c.groupby("period_start", sort=True)
    out = pd.DataFrame({
        "provisional": g["provisional"].any(),
        "n_areas": g["area_code"].nunique(),
        "n_suppressed": g["is_sup"].sum().astype(int),
        "published": g["shown"].sum(),
        "low": g["low"].sum(),
        "mid": g["mid"].sum(),
        "high": g["high"].sum(),
        "population": g["pop"].sum(min_count=1),
        "pop_missing": g["pop"].apply(lambda s: bool(s.isna().any())),
    }).reset_index()
    out.loc[out["pop_missing"] | (out["n_areas"] < len(set(codes))), "population"] = np.nan
    out["suppressed"] = out["n_suppressed"] > 0
    return out[cols]


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------

@dataclass
class MethodResult:
    """One method's result, or why there is none."""

    name: str
    ok: bool
    reasons: list[str] = field(default_factory=list)  # why withheld (when not ok)
    effect: stats.Effect | None = None
    p_value: float | None = None
    detail: dict = field(default_factory=dict)
    sensitivity: dict = field(default_factory=dict)  # 'low'/'high' -> Effect


@dataclass
class Evidence:
    question: Question
    indicator_label: str
    area_label: str
    comparator_label: str
    series: pd.DataFrame  # intervention areas' monthly totals (see aggregate) + 'analysed', 'post', fitted...
    comparator_series: pd.DataFrame | None
    its: MethodResult
    before_after: MethodResult
    did: MethodResult
    detectable: dict  # design -> stats.DetectableEffect, or {'reason': str}
    its_result: stats.ITSResult | None
    status: str  # "lower" / "higher" / "no significant change" / "cannot conclude"
    sentence: str
    caveats: list[str]
    data_notes: list[str]
    policy: dict | None
    release: dict
    tables: pd.DataFrame
    runs: pd.DataFrame
    rules: list[str]
    uses_population: bool

    @property
    def release_id(self) -> str:
        return str(self.release.get("release_id", ""))

    @property
    def can_conclude(self) -> bool:
        return self.status != "cannot conclude"


def lower_first(text: str) -> str:
    """'Alcohol-related A&E attendances' -> 'alcohol-related A&E attendances' (acronyms kept)."""
    if not text:
        return text
    if len(text) > 1 and text[1].isupper():
        return text
    return text[0].lower() + text[1:]


def _names(areas: pd.DataFrame, codes: Sequence[str]) -> str:
    names = dict(zip(areas["area_code"], areas["area_name"]))
    parts = [str(names.get(c, c)) for c in codes]
    if not parts:
        return "(no areas)"
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _same_conclusion(a: stats.Effect, b: stats.Effect) -> bool:
    def verdict(e: stats.Effect) -> int:
        return -1 if e.upper < 1 else (1 if e.lower > 1 else 0)
    return verdict(a) == verdict(b)


def _window_reasons(frame: pd.DataFrame, label: str, *, min_mean: bool = True) -> list[str]:
    """Suppression and small-number rules over the months of ``frame``."""
    reasons = []
    n = len(frame)
    if n == 0:
        return [f"{label}: no complete months are published"]
    share = float(frame["suppressed"].mean())
    if share > MAX_SUPPRESSED_SHARE:
        reasons.append(
            f"{label}: {int(frame['suppressed'].sum())} of {n} months ({share:.0%}) are suppressed, more than "
            f"the {MAX_SUPPRESSED_SHARE:.0%} allowed; choose larger areas or a larger group of areas")
    return reasons


def _mean_reason(pre: pd.DataFrame, label: str) -> list[str]:
    if len(pre) == 0:
        return []
    m = float(pre["mid"].mean())
    if m < MIN_MEAN_MONTHLY_COUNT:
        return [f"{label}: the average monthly count before the start is {m:.1f}, below the minimum of "
                f"{MIN_MEAN_MONTHLY_COUNT:g}; numbers this small (and rounded) cannot show an effect reliably"]
    return []


def _pt(frame: pd.DataFrame, use_pop: bool) -> float:
    """Person-time of the months of ``frame``: person-years if populations are used, else months."""
    if use_pop:
        return float((frame["population"] / 12.0).sum())
    return float(len(frame))


def _rr_effect(r: stats.RateRatioResult) -> stats.Effect:
    return stats.Effect(float(r.ratio), float(r.lower), float(r.upper), CONFIDENCE)


def _rounding_widening(totals: Iterable[float], months: Iterable[int], rv: float) -> float:
    """Factor by which rounding (variance ``rv`` per monthly count) would widen a
    log-ratio interval built on Poisson totals: sqrt(sum(1/T + n rv/T^2) / sum(1/T))."""
    pois, extra = 0.0, 0.0
    for t, n in zip(totals, months):
        if t > 0:
            pois += 1.0 / t
            extra += n * rv / (t * t)
    if pois == 0:
        return 1.0
    return math.sqrt((pois + extra) / pois)


def evaluate(inputs: Inputs, *, confidence: float = CONFIDENCE) -> Evidence:
    """Apply the rules and run every method (pure: no I/O)."""
    q = inputs.question
    policy = inputs.policy
    rv = rounding_variance(policy)
    start = q.start_month
    names_area = _names(inputs.areas, q.areas)
    names_comp = _names(inputs.areas, q.comparators) if q.comparators else ""
    data_notes: list[str] = []
    caveats: list[str] = []
    general: list[str] = []  # reasons that stop every method

    if not q.areas:
        general.append("no intervention areas were chosen")
    missing = [c for c in inputs.missing_areas if c in q.areas]
    if missing:
        general.append(f"{', '.join(missing)}: not published by month for this indicator")
    own_overlaps = [(a, b) for a, b in inputs.overlaps if a in q.areas and b in q.areas]
    if own_overlaps:
        general.append("the intervention areas overlap (" + "; ".join(
            f"{_names(inputs.areas, [a])} and {_names(inputs.areas, [b])}" for a, b in own_overlaps)
            + "), so adding them up would count people twice")

    series = aggregate(inputs.counts, q.areas, inputs.population, policy)
    n_prov = int(series["provisional"].sum()) if len(series) else 0
    if n_prov:
        data_notes.append(f"{n_prov} provisional month(s) at the end of the series are left out (incomplete).")
    complete = series[~series["provisional"]].copy() if len(series) else series
    if q.pre_months and len(complete):
        first = start - pd.DateOffset(months=int(q.pre_months))
        dropped = int((complete["period_start"] < first).sum())
        complete = complete[complete["period_start"] >= first]
        if dropped:
            data_notes.append(f"Only the {q.pre_months} months before the start are used ({dropped} earlier months "
                              "left out, as chosen).")
    use_pop = bool(len(complete)) and not complete["population"].isna().any()
    if len(complete) and not use_pop:
        data_notes.append("Population estimates are not published for every area and year, so counts are "
                          "modelled without a population denominator (changes in population are not allowed for).")
    if use_pop and "note" in inputs.population.columns:
        years = set(complete["period_start"].dt.year)
        pn = inputs.population[inputs.population["area_code"].isin(q.areas)
                               & inputs.population["year"].isin(years)]
        if pn["note"].fillna("").str.contains("nearest").any():
            data_notes.append("Denominators: ONS mid-year population estimates from the publication; for years "
                              "without an estimate the nearest available one is used.")
        else:
            data_notes.append("Denominators: ONS mid-year population estimates from the publication.")
    pre = complete[complete["period_start"] < start] if len(complete) else complete
    post = complete[complete["period_start"] >= start] if len(complete) else complete
    n_pre, n_post = len(pre), len(post)
    fu = min(int(q.follow_up_months), n_post)
    if len(complete):
        data_notes.append(
            f"{len(complete)} complete months from {complete['period_start'].min():%B %Y} to "
            f"{complete['period_start'].max():%B %Y}: {n_pre} before the start and {n_post} from it.")
        if complete["suppressed"].any():
            data_notes.append(
                f"{int(complete['suppressed'].sum())} of these months have a suppressed count in at least one area.")

    timing: list[str] = []
    if n_post < MIN_POST_MONTHS:
        timing.append(f"only {n_post} complete month(s) are published from the start; at least "
                      f"{MIN_POST_MONTHS} are needed (too early to tell)")

    # ----- interrupted time series
    its_reasons = list(general) + list(timing)
    if n_pre < MIN_PRE_MONTHS:
        its_reasons.append(f"only {n_pre} complete months are published before the start; the interrupted time "
                           f"series needs at least {MIN_PRE_MONTHS}")
    its_reasons += _window_reasons(complete, "intervention areas")
    its_reasons += _mean_reason(pre, "intervention areas")
    its_result: stats.ITSResult | None = None
    its = MethodResult("Interrupted time series", ok=False)
    if not its_reasons:
        pop = complete["population"].to_numpy(float) if use_pop else np.ones(len(complete))
        dates = complete["period_start"]
        fits = {}
        try:
            for which in ("mid", "low", "high"):
                if which != "mid" and not complete["suppressed"].any():
                    continue
                fits[which] = stats.interrupted_time_series(
                    complete[which].to_numpy(float), pop, dates, start,
                    follow_up_months=q.follow_up_months, confidence=confidence)
        except (ValueError, np.linalg.LinAlgError) as exc:
            its_reasons.append(f"the model could not be fitted ({exc})")
        if not its_reasons:
            its_result = fits["mid"]
            its = MethodResult("Interrupted time series", ok=True, effect=its_result.overall,
                               detail={"level_change": its_result.level_change,
                                       "slope_change": its_result.slope_change,
                                       "dispersion": its_result.dispersion,
                                       "follow_up_months": its_result.follow_up_months,
                                       "observed_total": its_result.observed_total,
                                       "expected_total": its_result.expected_total,
                                       "n_pre": its_result.n_pre, "n_post": its_result.n_post,
                                       "method": its_result.method},
                               sensitivity={k: v.overall for k, v in fits.items() if k != "mid"})
            for k, v in its.sensitivity.items():
                if not _same_conclusion(v, its_result.overall):
                    its.ok = False
                    its.reasons.append(
                        "the conclusion depends on the values hidden by suppression: with suppressed months at "
                        f"their {'lowest' if k == 'low' else 'highest'} plausible values the change is "
                        f"{(v.ratio - 1) * 100:+.0f}% (95% CI {(v.lower - 1) * 100:+.0f}% to "
                        f"{(v.upper - 1) * 100:+.0f}%)")
    if its_reasons:
        its.reasons = its_reasons + its.reasons

    # ----- windows for before/after and DiD: F months before vs the first F months from the start
    win_reasons = list(general) + list(timing)
    before = pre.tail(fu) if fu else pre.iloc[:0]
    after = post.head(fu) if fu else post.iloc[:0]
    if fu and len(before) < fu:
        win_reasons.append(f"only {len(before)} complete months before the start; {fu} are needed to compare with "
                           f"the {fu} months after")
    win_reasons += _window_reasons(pd.concat([before, after]), "intervention areas")
    win_reasons += _mean_reason(before, "intervention areas")

    ba = MethodResult("Before and after", ok=False)
    if not win_reasons:
        ptb, pta = _pt(before, use_pop), _pt(after, use_pop)
        res = {k: stats.before_after(before[k].sum(), ptb, after[k].sum(), pta, confidence)
               for k in ("mid", "low", "high")}
        eff = _rr_effect(res["mid"])
        ba = MethodResult("Before and after", ok=True, effect=eff, p_value=float(res["mid"].p_value),
                          detail={"months": fu, "count_before": float(before["mid"].sum()),
                                  "count_after": float(after["mid"].sum()),
                                  "person_time_before": ptb, "person_time_after": pta,
                                  "window_before": (before["period_start"].min(), before["period_start"].max()),
                                  "window_after": (after["period_start"].min(), after["period_start"].max()),
                                  "rounding_widening": _rounding_widening(
                                      [before["mid"].sum(), after["mid"].sum()], [fu, fu], rv)},
                          sensitivity={k: _rr_effect(res[k]) for k in ("low", "high")
                                       if (pd.concat([before, after])["suppressed"]).any()})
        for k, v in ba.sensitivity.items():
            if not _same_conclusion(v, eff):
                ba.ok = False
                ba.reasons.append("the conclusion depends on the values hidden by suppression")
    else:
        ba.reasons = win_reasons

    # ----- difference in differences against the comparators
    did = MethodResult("Difference in differences", ok=False)
    comp_series = None
    if not q.comparators:
        did.reasons = ["no comparator areas were chosen"]
    else:
        d_reasons = list(win_reasons)
        cmiss = [c for c in inputs.missing_areas if c in q.comparators]
        if cmiss:
            d_reasons.append(f"comparator(s) {', '.join(cmiss)} not published by month for this indicator")
        both = [(a, b) for a, b in inputs.overlaps
                if (a in q.areas and b in q.comparators) or (a in q.comparators and b in q.areas)]
        if both:
            d_reasons.append("comparators overlap the intervention areas (" + "; ".join(
                f"{_names(inputs.areas, [a])} and {_names(inputs.areas, [b])}" for a, b in both) + ")")
        cov = [(a, b) for a, b in inputs.overlaps if a in q.comparators and b in q.comparators]
        if cov:
            d_reasons.append("the comparator areas overlap each other")
        # comparators too often suppressed in the windows are left out (one small comparator would
        # otherwise make every month of the group suppressed)
        kept = list(q.comparators)
        win_months = set(before["period_start"]) | set(after["period_start"])
        cc = inputs.counts[inputs.counts["area_code"].isin(kept)
                           & inputs.counts["period_start"].isin(win_months)]
        if len(cc) and win_months:
            share = cc.groupby("area_code")["count"].apply(lambda v: float(v.isna().mean()))
            dropped = [c for c in kept if share.get(c, 0.0) > MAX_SUPPRESSED_SHARE]
            if dropped and len(dropped) < len(kept):
                kept = [c for c in kept if c not in dropped]
                data_notes.append(f"Comparator(s) left out because more than {MAX_SUPPRESSED_SHARE:.0%} of their "
                                  f"months are suppressed: {_names(inputs.areas, dropped)}.")
                names_comp = _names(inputs.areas, kept)
        comp_series = aggregate(inputs.counts, kept, inputs.population, policy)
        ccomplete = comp_series[~comp_series["provisional"]] if len(comp_series) else comp_series
        cbefore = ccomplete[ccomplete["period_start"].isin(before["period_start"])] if len(ccomplete) else ccomplete
        cafter = ccomplete[ccomplete["period_start"].isin(after["period_start"])] if len(ccomplete) else ccomplete
        if not d_reasons and (len(cbefore) < len(before) or len(cafter) < len(after)):
            d_reasons.append("the comparators are not published for every month of the intervention areas")
        if not d_reasons:
            d_reasons += _window_reasons(pd.concat([cbefore, cafter]), "comparators")
            d_reasons += _mean_reason(cbefore, "comparators")
        c_use_pop = use_pop and len(ccomplete) and not ccomplete["population"].isna().any()
        if not d_reasons:
            ptb, pta = _pt(before, c_use_pop), _pt(after, c_use_pop)
            cptb, cpta = _pt(cbefore, c_use_pop), _pt(cafter, c_use_pop)
            res = {k: stats.difference_in_differences(
                before[k].sum(), ptb, after[k].sum(), pta, cbefore[k].sum(), cptb, cafter[k].sum(), cpta,
                confidence) for k in ("mid", "low", "high")}
            if not np.isfinite(res["mid"].ratio):
                d_reasons.append("a total is zero, so the ratio of rate ratios cannot be calculated")
            else:
                eff = _rr_effect(res["mid"])
                anysup = bool(pd.concat([before, after, cbefore, cafter])["suppressed"].any())
                did = MethodResult(
                    "Difference in differences", ok=True, effect=eff, p_value=float(res["mid"].p_value),
                    detail={"months": fu, "count_before": float(before["mid"].sum()),
                            "count_after": float(after["mid"].sum()),
                            "comparator_before": float(cbefore["mid"].sum()),
                            "comparator_after": float(cafter["mid"].sum()),
                            "comparator_rate_ratio": (float(cafter["mid"].sum()) / cpta)
                            / (float(cbefore["mid"].sum()) / cptb),
                            "rounding_widening": _rounding_widening(
                                [before["mid"].sum(), after["mid"].sum(), cbefore["mid"].sum(),
                                 cafter["mid"].sum()], [fu] * 4, rv)},
                    sensitivity={k: _rr_effect(res[k]) for k in ("low", "high") if anysup})
                for k, v in did.sensitivity.items():
                    if not _same_conclusion(v, eff):
                        did.ok = False
                        did.reasons.append("the conclusion depends on the values hidden by suppression")
        if d_reasons:
            did.reasons = d_reasons + did.reasons

    # ----- detectable effect (planning): baseline = up to 24 complete months before the start
    detectable: dict = {}
    base = pre.tail(24)
    if len(general):
        detectable["reason"] = "; ".join(general)
    elif len(base) < 6:
        detectable["reason"] = (f"only {len(base)} complete months are published before the start; at least 6 are "
                                "needed to estimate the baseline")
    elif float(base["suppressed"].mean()) > MAX_SUPPRESSED_SHARE:
        detectable["reason"] = (f"{int(base['suppressed'].sum())} of the {len(base)} baseline months are "
                                "suppressed, so the baseline cannot be estimated reliably")
    elif float(base["mid"].sum()) <= 0:
        detectable["reason"] = "the baseline counts are all zero"
    else:
        for design in ("before_after", "its"):
            detectable[design] = stats.detectable_effect(
                base["mid"].to_numpy(float), int(q.follow_up_months), POWER, ALPHA, design=design)
        detectable["baseline_months"] = len(base)
        detectable["baseline_from"] = base["period_start"].min()
        detectable["baseline_to"] = base["period_start"].max()

    # ----- headline
    label = inputs.indicator_label
    intervention = f"{q.name} started" if q.name else "the start date"
    if its.ok and its_result is not None:
        sentence = its_result.sentence(outcome=f"{label} in {names_area}", intervention=intervention)
        e = its_result.overall
        status = "lower" if e.upper < 1 else ("higher" if e.lower > 1 else "no significant change")
    else:
        status = "cannot conclude"
        why = "; ".join(its.reasons) or "the interrupted time series could not be run"
        sentence = (f"We cannot say whether {lower_first(label) if label else 'the indicator'} in {names_area} changed "
                    f"after {intervention}: {why}.")

    # ----- caveats (always shown)
    caveats += _caveats(inputs, its, ba, did, complete, pre, rv, policy, names_comp, fu)
    series_out = complete.copy()
    series_out["post"] = series_out["period_start"] >= start if len(series_out) else []
    if its_result is not None:
        idx = pd.PeriodIndex(series_out["period_start"], freq="M")
        series_out["fitted"] = its_result.fitted.reindex(idx).to_numpy()
        series_out["counterfactual"] = its_result.counterfactual.reindex(idx).to_numpy()
        series_out["counterfactual_lower"] = its_result.counterfactual_lower.reindex(idx).to_numpy()
        series_out["counterfactual_upper"] = its_result.counterfactual_upper.reindex(idx).to_numpy()

    return Evidence(
        question=q, indicator_label=label, area_label=names_area, comparator_label=names_comp,
        series=series_out.reset_index(drop=True),
        comparator_series=(comp_series[~comp_series["provisional"]].reset_index(drop=True)
                           if comp_series is not None and len(comp_series) else comp_series),
        its=its, before_after=ba, did=did, detectable=detectable, its_result=its_result,
        status=status, sentence=sentence, caveats=caveats, data_notes=data_notes, policy=policy,
        release=inputs.release, tables=inputs.tables, runs=inputs.runs, rules=rules_text(),
        uses_population=use_pop,
    )


def _caveats(inputs: Inputs, its: MethodResult, ba: MethodResult, did: MethodResult, complete: pd.DataFrame,
             pre: pd.DataFrame, rv: float, policy: dict | None, names_comp: str, fu: int) -> list[str]:
    q = inputs.question
    out = []
    # rounding and suppression
    if policy:
        mean = float(pre["mid"].mean()) if len(pre) else float("nan")
        txt = (f"Published counts are {_rounding_words(policy)}. "
               if policy.get("rounding") not in (None, "none") else "Published counts are not rounded. ")
        if rv > 0 and mean == mean and mean > 0:
            txt += (f"Rounding adds a variance of about {rv:.1f} to each monthly count, about {rv / mean:.0%} of "
                    f"the chance (Poisson) variation of a count averaging {mean:.0f} a month. The interrupted time "
                    "series estimates its overdispersion from the published series, so its interval includes "
                    "this. ")
            widen = [m.detail.get("rounding_widening") for m in (ba, did) if m.ok and m.detail.get("rounding_widening")]
            if widen:
                txt += ("The before/after and difference-in-differences intervals assume exact Poisson counts; "
                        f"allowing for rounding would widen them by about {(max(widen) - 1) * 100:.1f}%.")
        out.append(txt.strip())
        if len(complete) and complete["suppressed"].any():
            lo, hi = suppressed_range(policy)
            out.append(
                f"{int(complete['suppressed'].sum())} month(s) include a suppressed count. These were filled with the "
                f"middle of the plausible range (a suppressed count is between {lo:g} and {hi:g} under the policy"
                + (", or up to the area's typical count if it was hidden to protect another cell"
                   if secondary_applied(policy) else "") + ") and every model was refitted at both ends of that "
                "range.")
    # seasonality
    out.append("Seasonality: the interrupted time series allows for a repeating yearly pattern (two pairs of "
               "Fourier terms). The before/after and difference-in-differences comparisons use the same number "
               "of months before and after the start" + (
                   "; with a whole year on each side the seasons balance." if fu and fu % 12 == 0 else
                   f"; with {fu} months, not a whole number of years, the seasons do not balance and the result "
                   "can reflect the time of year."))
    # regression to the mean
    if len(pre) >= 18:
        last, earlier = pre.tail(12), pre.iloc[:-12]
        r_last = last["mid"].sum() / (last["population"].sum() if inputs.population is not None
                                      and not last["population"].isna().any() else len(last))
        r_early = earlier["mid"].sum() / (earlier["population"].sum() if not earlier["population"].isna().any()
                                         else len(earlier))
        if r_early > 0 and r_last / r_early - 1 > RTM_FLAG:
            out.append(
                f"Regression to the mean: in the 12 months before the start the rate was {r_last / r_early - 1:.0%} "
                "higher than in the earlier months. If the areas were chosen because of this peak, a fall "
                "afterwards is expected anyway; the before/after comparison will exaggerate any benefit. The "
                "interrupted time series (which uses the longer trend) and the comparison with other areas are "
                "less affected.")
        else:
            out.append("Regression to the mean: the 12 months before the start were not unusually high compared "
                       "with the earlier months, so a fall back from a peak is not a likely explanation; it remains "
                       "a risk whenever areas are chosen because their numbers were high.")
    else:
        out.append("Regression to the mean: areas chosen because their numbers were high tend to fall back "
                   "anyway; there are too few months before the start to check for a recent peak.")
    # overdispersion
    if its.detail.get("dispersion") and its.detail["dispersion"] > OVERDISPERSION_FLAG:
        out.append(f"The monthly counts vary {its.detail['dispersion']:.1f} times more than chance alone would "
                   "give; the before/after and difference-in-differences intervals assume chance variation only "
                   "and are too narrow by a factor of about "
                   f"{math.sqrt(its.detail['dispersion']):.1f}. Rely on the interrupted time series.")
    # other changes at the same time
    if inputs.other_interventions is not None and len(inputs.other_interventions):
        names = "; ".join(f"{r['name']} (from {pd.Timestamp(r['start_date']):%d %B %Y})"
                          for _, r in inputs.other_interventions.iterrows())
        out.append("Other changes at the same time: the publication lists other interventions in these areas or "
                   f"their comparators around the start: {names}. Their effects cannot be separated from this one.")
    else:
        out.append("Other changes at the same time: no other published intervention touches these areas or "
                   "comparators around the start, but anything else that changed then (services, recording, "
                   "coding, the economy) would be attributed to the intervention by every method here.")
    if q.comparators:
        out.append(f"Comparators ({names_comp}): the difference-in-differences assumes they would have followed the "
                   "same path as the intervention areas without the intervention (parallel trends); check the chart "
                   "of rates before the start.")
    out.append("Coverage: " + _first(inputs.tables, "coverage", "as described in the publication's catalogue") + ".")
    out.append("An observational comparison cannot prove cause and effect; the result is evidence to weigh with "
               "what is known about how the intervention was delivered.")
    return out


def _first(df: pd.DataFrame, col: str, default: str = "") -> str:
    if df is None or col not in getattr(df, "columns", []) or df.empty:
        return default
    v = df[col].iloc[0]
    return default if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _rounding_words(policy: dict | None) -> str:
    if not policy:
        return "published as counted"
    r, b = policy.get("rounding"), policy.get("rounding_base")
    if r == "nearest":
        return f"rounded to the nearest {b}"
    if r == "midpoint":
        return f"shown as the midpoint of their {b}-wide band"
    return "published exactly (not rounded)"


def policy_plain_english(policy: dict | None) -> list[str]:
    """The disclosure policy in plain English (report and page)."""
    if not policy:
        return ["No disclosure policy is recorded for these counts."]
    out = [f"Policy in force: {policy.get('name', 'unnamed')}. {policy.get('description', '')}".strip()]
    zero = ("A suppressed count is at least 1, because zeros are shown." if policy.get("zeros_shown", True)
            else "A suppressed count may be zero.")
    if secondary_applied(policy):
        out.append("Suppressed counts are hidden to protect privacy, either because they are small or because they "
                   f"would let a small count be worked out from totals. {zero}")
    else:
        out.append("Suppressed counts are hidden to protect privacy because they are small. Only small counts are "
                   "hidden in this release (no secondary suppression), so every suppressed count lies in the "
                   f"range the policy states. {zero}")
    out.append(f"All other counts are {_rounding_words(policy)}; every figure here is calculated from these "
               "published counts, never from the underlying records.")
    return out


# ---------------------------------------------------------------------------
# Convenience: question -> evidence
# ---------------------------------------------------------------------------

def assess(con, question: Question, cat: pd.DataFrame | None = None) -> Evidence:
    return evaluate(load_inputs(con, question, cat))


# ---------------------------------------------------------------------------
# Figures (pure)
# ---------------------------------------------------------------------------

BLUE, ORANGE, GREEN, GREY = "#0072B2", "#D55E00", "#009E73", "#767676"
FONT = dict(family="Source Sans Pro, Arial, sans-serif", size=14, color="#1F1F1F")


def esc(text: Any) -> str:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    return html.escape(str(text), quote=True)


def _layout(fig: go.Figure, title: str, footer: str, y_title: str) -> go.Figure:
    t = dict(text=esc(title), x=0, xanchor="left", font=dict(size=17))
    if footer:
        t["subtitle"] = dict(text=esc(footer), font=dict(size=12, color="#4A4A4A"))
    fig.update_layout(template="plotly_white", title=t, font=FONT, height=520,
                      margin=dict(l=10, r=10, t=90, b=110), yaxis_title=y_title, xaxis_title="Month",
                      legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0))
    return fig


def _start_line(fig: go.Figure, start: pd.Timestamp, label: str) -> None:
    fig.add_shape(type="line", x0=start, x1=start, y0=0, y1=1, yref="paper",
                  line=dict(color="#3B3B3B", width=1.5, dash="dot"))
    fig.add_annotation(x=start, y=1, yref="paper", text=esc(label), showarrow=False, xanchor="left",
                       yanchor="bottom", font=dict(size=12))


def its_figure(ev: Evidence, footer: str = "") -> go.Figure:
    """Observed monthly counts, the fitted model and the counterfactual (what
    the model expects without the intervention) with its 95% band."""
    s = ev.series
    fig = go.Figure()
    if len(s):
        x = s["period_start"]
        if "counterfactual" in s:
            post = s[s["post"]]
            fig.add_trace(go.Scatter(
                x=pd.concat([post["period_start"], post["period_start"][::-1]]),
                y=pd.concat([post["counterfactual_upper"], post["counterfactual_lower"][::-1]]),
                fill="toself", fillcolor="rgba(213,94,0,0.15)", line=dict(width=0), hoverinfo="skip",
                name="Expected without the intervention: 95% band"))
            fig.add_trace(go.Scatter(x=post["period_start"], y=post["counterfactual"], mode="lines",
                                     line=dict(color=ORANGE, dash="dash", width=2),
                                     name="Expected without the intervention"))
            fig.add_trace(go.Scatter(x=x, y=s["fitted"], mode="lines", line=dict(color=BLUE, width=2),
                                     name="Model fitted to the published counts"))
        shown = s[~s["suppressed"]]
        fig.add_trace(go.Scatter(x=shown["period_start"], y=shown["published"], mode="markers",
                                 marker=dict(color=BLUE, size=7, symbol="circle"),
                                 name="Published monthly count"))
        sup = s[s["suppressed"]]
        if len(sup):
            fig.add_trace(go.Scatter(
                x=sup["period_start"], y=sup["mid"], mode="markers",
                marker=dict(color=GREY, size=9, symbol="x"),
                error_y=dict(type="data", symmetric=False, array=(sup["high"] - sup["mid"]),
                             arrayminus=(sup["mid"] - sup["low"]), color=GREY),
                name="Month with a suppressed count (plausible range)"))
        _start_line(fig, ev.question.start_month, f"{ev.question.name} starts")
    title = f"{ev.indicator_label}: {ev.area_label}"
    return _layout(fig, title, footer, "Count per month")


def comparison_figure(ev: Evidence, footer: str = "") -> go.Figure:
    """Monthly rates (per 100,000, annualised) of the intervention areas and
    the comparators, for judging parallel trends before the start."""
    fig = go.Figure()
    per = "Rate per 100,000 a year" if ev.uses_population else "Count per month"

    def values(s: pd.DataFrame) -> pd.Series:
        if ev.uses_population and not s["population"].isna().any():
            return s["mid"] / s["population"] * 100_000 * 12
        return s["mid"]

    s = ev.series
    if len(s):
        fig.add_trace(go.Scatter(x=s["period_start"], y=values(s), mode="lines+markers",
                                 line=dict(color=BLUE), marker=dict(size=5, symbol="circle"),
                                 name=esc(f"Intervention areas: {ev.area_label}")))
    c = ev.comparator_series
    if c is not None and len(c):
        fig.add_trace(go.Scatter(x=c["period_start"], y=values(c), mode="lines+markers",
                                 line=dict(color=GREEN, dash="dash"), marker=dict(size=5, symbol="square"),
                                 name=esc(f"Comparators: {ev.comparator_label}")))
    if len(s):
        _start_line(fig, ev.question.start_month, "start")
    return _layout(fig, f"{ev.indicator_label}: intervention areas and comparators", footer, per)


# ---------------------------------------------------------------------------
# Words
# ---------------------------------------------------------------------------

def _pct(e: stats.Effect) -> str:
    return (f"{(e.ratio - 1) * 100:+.1f}% (rate ratio {e.ratio:.3f}, 95% CI {e.lower:.3f} to {e.upper:.3f})")


def method_lines(ev: Evidence) -> list[tuple[str, str]]:
    """(method, result or why withheld) rows for the page and the report."""
    rows = []
    its = ev.its
    if its.ok and its.effect is not None:
        d = its.detail
        txt = (f"Overall change over the first {d['follow_up_months']} months: {_pct(its.effect)}; "
               f"observed {d['observed_total']:.0f} against {d['expected_total']:.0f} expected. "
               f"Step at the start {_pct(d['level_change'])}")
        if d.get("slope_change") is not None:
            txt += f"; change in trend per month {_pct(d['slope_change'])}"
        txt += f". Overdispersion {d['dispersion']:.2f}; {d['n_pre']} months before, {d['n_post']} from the start."
        rows.append((its.name, txt))
    else:
        rows.append((its.name, "Not shown: " + "; ".join(its.reasons) + "."))
    for m in (ev.before_after, ev.did):
        if m.ok and m.effect is not None:
            d = m.detail
            if m is ev.before_after:
                txt = (f"Rate in the {d['months']} months from the start against the {d['months']} months before: "
                       f"{_pct(m.effect)}, p = {m.p_value:.3g} ({d['count_before']:.0f} before, "
                       f"{d['count_after']:.0f} after).")
            else:
                txt = (f"Change in the intervention areas relative to the change in the comparators "
                       f"(ratio of rate ratios): {_pct(m.effect)}, p = {m.p_value:.3g}. Comparators changed by "
                       f"{(d['comparator_rate_ratio'] - 1) * 100:+.1f}% over the same months.")
            rows.append((m.name, txt))
        else:
            rows.append((m.name, "Not shown: " + "; ".join(m.reasons) + "."))
    return rows


def detectable_lines(ev: Evidence) -> list[str]:
    d = ev.detectable
    if "reason" in d:
        return [f"The detectable effect cannot be estimated: {d['reason']}."]
    ba, its = d["before_after"], d["its"]
    fu = ev.question.follow_up_months
    return [
        f"Baseline: {d['baseline_months']} complete months ({d['baseline_from']:%B %Y} to {d['baseline_to']:%B %Y}) "
        f"averaging {ba.baseline_mean:.1f} a month, overdispersion {ba.dispersion:.2f}.",
        f"With {fu} months of follow-up, a before/after comparison of these published counts could detect "
        f"(80% power, 5% significance) a fall of {ba.reduction_pct:.0f}% or a rise of {ba.increase_pct:.0f}%.",
        f"An interrupted time series (which must also estimate the trend) could detect a fall of "
        f"{its.reduction_pct:.0f}% or a rise of {its.increase_pct:.0f}%.",
    ]


def method_text() -> list[str]:
    return [
        "Interrupted time series (Lopez Bernal, Cummins & Gasparrini 2017): a segmented quasi-Poisson regression "
        "of the monthly counts with the population as an offset, an underlying trend, a step and a change in "
        "trend at the start, and a yearly seasonal pattern. The counterfactual is the model with the step and "
        "the change in trend removed. The overall effect is the ratio of the fitted to the counterfactual total "
        "over the follow-up, with a 95% confidence interval by the delta method.",
        "Before and after: the rate in the follow-up months against the same number of months just before the "
        "start, with an exact conditional (binomial) 95% confidence interval (as R's poisson.test).",
        "Difference in differences: the intervention areas' before/after rate ratio divided by the comparators' "
        "over the same months (ratio of rate ratios), with a Wald 95% interval from the four counts.",
        "Detectable effect (planning): the smallest fall or rise the published series could detect with 80% "
        "power at 5% significance over the chosen follow-up, from the mean and overdispersion of the baseline.",
        "All calculations use pipelines/stats.py; see docs/methods.md.",
    ]


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------

_CSS = """
body{font-family:Arial,Helvetica,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1f1f1f;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}
.headline{font-size:1.15rem;background:#eef5fb;border-left:4px solid #0072B2;padding:.75rem 1rem}
.warn{background:#fff4e5;border-left:4px solid #D55E00}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
td{overflow-wrap:anywhere}.scroll{overflow-x:auto}
small,.muted{color:#555}
@media print{.js-plotly-plot,table{page-break-inside:avoid}}
"""


def _ul(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def _table(rows: Iterable[tuple[Any, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{esc(a)}</th><td>{esc(b)}</td></tr>" for a, b in rows) + "</table>"


def _ts(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    try:
        return f"{pd.Timestamp(v):%d %B %Y %H:%M} UTC"
    except (ValueError, TypeError):
        return str(v)


def report_html(ev: Evidence, figures: Sequence[go.Figure] | None = None,
                generated_at: dt.datetime | None = None) -> str:
    """A self-contained HTML report of ``ev``: question, data, method, result,
    caveats, provenance and the disclosure policy in plain English. plotly's
    JavaScript is embedded once (no CDN), so it opens offline. Every text that
    comes from the publication or the user is HTML-escaped."""
    q = ev.question
    rid = ev.release_id
    footer = f"Source: outcomes publication, release {rid}"
    figures = list(figures) if figures is not None else [its_figure(ev, footer), comparison_figure(ev, footer)]
    gen = generated_at or dt.datetime.now(dt.timezone.utc)
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{esc('Evidence of benefit: ' + q.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc('Evidence of benefit: ' + q.name)}</h1>",
        f"<p class=\"muted\">From release {esc(rid)} of the outcomes publication; report generated "
        f"{esc(f'{gen:%d %B %Y %H:%M} UTC')}.</p>",
        f"<p class=\"headline{'' if ev.can_conclude else ' warn'}\">{esc(ev.sentence)}</p>",
        "<h2 id=\"question\">Question</h2>",
        f"<p>Did {esc(q.name)}, which started on {esc(f'{pd.Timestamp(q.start):%d %B %Y}')} in "
        f"{esc(ev.area_label)}, change {esc(lower_first(ev.indicator_label))}?</p>",
    ]
    if q.description:
        parts.append(f"<p>{esc(q.description)}</p>")
    parts.append(_table([
        ("Intervention", q.name + (f" ({q.intervention_id})" if q.intervention_id else " (defined for this report)")),
        ("Areas", f"{ev.area_label} ({'; '.join(q.areas)})"),
        ("Start", f"{pd.Timestamp(q.start):%d %B %Y}"),
        ("Indicator", f"{ev.indicator_label} ({q.indicator})"),
        ("Comparators", f"{ev.comparator_label} ({'; '.join(q.comparators)})" if q.comparators else "none"),
        ("Follow-up", f"{q.follow_up_months} months"),
    ]))
    parts += ["<h2 id=\"data\">Data</h2>", _ul(ev.data_notes)]
    tables = ", ".join(str(t) for t in ev.tables.get("table_name", pd.Series(dtype=object)))
    parts.append(f"<p>Published tables used: {esc(tables or 'none')}; population denominators from the "
                 "publication's population table (ONS mid-year estimates).</p>")
    parts += ["<h2 id=\"method\">Method</h2>", _ul(method_text()),
              "<p>When a result is withheld (the rules):</p>", _ul(ev.rules)]
    parts += ["<h2 id=\"result\">Result</h2>",
              f"<p class=\"headline{'' if ev.can_conclude else ' warn'}\">{esc(ev.sentence)}</p>",
              _table(method_lines(ev))]
    for i, fig in enumerate(figures):
        parts.append(fig.to_html(include_plotlyjs=(i == 0), full_html=False,
                                 config={"displaylogo": False, "responsive": True}))
    parts += ["<h3>Planning: the smallest effect these data could detect</h3>", _ul(detectable_lines(ev))]
    parts += ["<h2 id=\"caveats\">Caveats</h2>", _ul(ev.caveats)]
    # provenance
    cat = ev.tables.iloc[0].to_dict() if len(ev.tables) else {}
    parts += ["<h2 id=\"provenance\">Data provenance</h2>", _table([
        ("Release", rid),
        ("Published", _ts(ev.release.get("published_at"))),
        ("Code version", ev.release.get("code_version", "")),
        ("Source", cat.get("source", "")),
        ("Coverage", cat.get("coverage", "")),
        ("Data controller", cat.get("data_controller", "")),
        ("Legal basis", cat.get("legal_basis", "")),
        ("Data sharing agreement", cat.get("dsa_reference", "")),
        ("Purpose", cat.get("purpose", "")),
        ("Notes", cat.get("notes", "")),
    ])]
    if ev.runs is not None and len(ev.runs):
        head = ["run_id", "release_id", "action", "input_file", "input_sha256", "rows_read", "cells_published",
                "cells_suppressed", "finished_at", "code_version", "policy"]
        head = [h for h in head if h in ev.runs.columns]
        shown = ev.runs.head(3)
        parts.append("<p>Pipeline runs behind these tables (most recent first):</p><div class=\"scroll\"><table>"
                     + "".join(f"<tr><th>{esc(h)}</th>" + "".join(f"<td>{esc(v)}</td>" for v in shown[h]) + "</tr>"
                               for h in head) + "</table></div>")
    parts += ["<h2 id=\"policy\">Disclosure policy</h2>", _ul(policy_plain_english(ev.policy))]
    parts.append("</body></html>")
    return "\n".join(parts)
