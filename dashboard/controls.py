"""Widgets shared by several pages (indicator, level, statistic, period)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from . import indicators as I
from . import queries
from .frame import md


def pick_indicator(inds: list[I.Indicator], key: str, levels: tuple[str, ...] | None = None,
                   exclude_pipelines: tuple[str, ...] = ()) -> I.Indicator | None:
    choices = [i for i in inds if (levels is None or any(lv in i.levels() for lv in levels))
               and i.pipeline not in exclude_pipelines]
    if not choices:
        return None
    ids = [i.id for i in choices]
    by_id = {i.id: i for i in choices}
    picked = st.selectbox("Indicator", ids, format_func=lambda x: by_id[x].label, key=key)
    return by_id[picked]


def pick_level(ind: I.Indicator, key: str, allowed: tuple[str, ...] | None = None,
               exclude: tuple[str, ...] = (), default: str | None = None) -> str | None:
    levels = [lv for lv in ind.levels() if (allowed is None or lv in allowed) and lv not in exclude]
    if not levels:
        return None
    idx = levels.index(default) if default in levels else 0
    return st.selectbox("Area level", levels, index=idx, format_func=lambda x: I.LEVEL_NAMES.get(x, x), key=key)


def pick_statistic(ind: I.Indicator, inds: list[I.Indicator], key: str, exclude: tuple[str, ...] = ()) -> str:
    options = [s for s in I.statistics_for(ind, inds) if s not in exclude] or [I.COUNT]
    labels = {I.COUNT: "Count", I.RATE: "Rate per 100,000", I.PROPORTION: "Proportion (%)"}
    default = I.RATE if I.RATE in options else options[0]
    return st.radio("Show", options, index=options.index(default), format_func=lambda x: labels[x],
                    key=key, horizontal=True)


def pick_annualised(period_kind: str, statistic: str, key: str) -> bool:
    if statistic != I.RATE or period_kind not in ("month", "quarter"):
        return True
    choice = st.radio(f"Rates for each {I.PERIOD_NAMES[period_kind]}",
                      ["annualised", "per period"], key=key, horizontal=True,
                      format_func=lambda x: ("annualised (x12 for months, x4 for quarters)" if x == "annualised"
                                             else f"per {I.PERIOD_NAMES[period_kind]}"),
                      help="Monthly counts give a rate per month; annualising multiplies it by the number of "
                           "periods in a year so it reads like an annual rate.")
    return choice == "annualised"


def pick_sex(key_: str, table: dict, widget_key: str) -> str:
    if "sex" not in (table.get("dimensions") or []):
        return "All"
    values = queries.breakdown_values(key_, table["table_name"], "sex")
    options = ["All"] + [v for v in values if v != "All"]
    return st.selectbox("Sex", options, key=widget_key, format_func=lambda x: "All persons" if x == "All" else x)


def pick_period(periods: pd.DataFrame, kind: str, key: str) -> pd.Timestamp:
    """Select one period (latest first); provisional periods are labelled."""
    p = periods.drop_duplicates("period_start").sort_values("period_start", ascending=False)
    starts = list(p["period_start"])
    prov = dict(zip(p["period_start"], p["provisional"]))
    # default: the latest period that is not provisional
    default = next((i for i, s in enumerate(starts) if not prov[s]), 0)
    return st.selectbox("Period", starts, index=default, key=key,
                        format_func=lambda s: I.period_label(s, kind) + (" (provisional)" if prov[s] else ""))


def default_borough(key: str) -> str | None:
    """The borough with neighbourhood detail (the parent of published
    localities or catchments), else the first borough."""
    ar = queries.areas(key)
    sub = ar[ar["area_level"].isin(["locality", "catchment"])]["parent_la"].dropna()
    if len(sub):
        return str(sub.mode().iloc[0])
    las = ar[ar["area_level"] == "la"]
    return str(las.iloc[0]["area_code"]) if len(las) else None


def period_kinds(ind: I.Indicator, level: str) -> list[str]:
    """Period kinds available for ``ind`` at ``level``: those published, plus
    financial years summed from months where counts add up over periods."""
    order = ["month", "quarter", "financial_year", "year"]
    kinds = sorted({t["period_kind"] for t in ind.tables_at(level)},
                   key=lambda k: order.index(k) if k in order else 9)
    monthly = ind.table_at(level, "month")
    if "financial_year" not in kinds and monthly is not None and ind.additive_over_periods(monthly):
        kinds.append("financial_year")
    return kinds


def pick_period_kind(ind: I.Indicator, level: str, key: str, prefer: str = "month") -> str:
    """Choose the periods; ``prefer`` is the default when it is published at
    this level (a kind summed from months is offered but never the default,
    since one suppressed month hides the whole year)."""
    kinds = period_kinds(ind, level)
    published = {t["period_kind"] for t in ind.tables_at(level)}
    idx = kinds.index(prefer) if prefer in published else 0
    return st.selectbox("Periods", kinds, index=idx, key=key,
                        format_func=lambda k: I.PERIOD_NAMES[k].capitalize() + "s"
                        + ("" if k in published else " (summed from months)"))


def pick_comparator(key: str, ind: I.Indicator, level: str, area_codes, widget_key: str,
                    prefer: str = "the place") -> tuple[str, str, str] | None:
    """Choose the comparator (the place, or the parent borough for areas within one)."""
    choices = I.comparator_choices(key, ind, level, list(area_codes) if area_codes is not None else None)
    if not choices:
        return None
    if len(choices) == 1:
        return choices[0]
    roles = [c[2] for c in choices]
    idx = roles.index(prefer) if prefer in roles else 0
    # radio options are rendered as markdown: area names are escaped
    picked = st.radio("Comparator", roles, index=idx, key=widget_key, horizontal=True,
                      format_func=lambda r: md(f"{next(c[1] for c in choices if c[2] == r)} ({r})"))
    return next(c for c in choices if c[2] == picked)
