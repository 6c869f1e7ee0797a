"""Map: a choropleth of one indicator at LSOA, ward, MSOA or borough level,
drawn on the real boundaries from the reference pack, offline."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, controls, frame, geo
from dashboard import indicators as I

rel = frame.release()
frame.header("Map", rel, "One indicator in one period, by area, on the ONS boundaries. Hover an area for its "
                         "value; the table under the map has every figure.")
key = rel.key
inds = I.indicators_of(key)

c1, c2, c3 = st.columns([3, 2, 2])
with c1:
    ind = controls.pick_indicator(inds, key="map_indicator", levels=geo.MAP_LEVELS)
if ind is None:
    st.info("No indicator in this release is published at a level the map can draw (LSOA, ward, MSOA, borough).")
    st.stop()
with c2:
    level = controls.pick_level(ind, key="map_level", allowed=geo.MAP_LEVELS,
                                default="ward" if "ward" in ind.levels() else None)
with c3:
    statistic = controls.pick_statistic(ind, inds, key="map_statistic")
c4, c5, _ = st.columns([3, 2, 2])
with c5:
    period_kind = controls.pick_period_kind(ind, level, key="map_period_kind", prefer="financial_year")
    annualised = controls.pick_annualised(period_kind, statistic, key="map_annualised")
with c4:
    period = controls.pick_period(I.periods_of(key, ind, level, period_kind), I.resolve_kind(ind, level, period_kind),
                                  key="map_period")
series = I.load_series(key, ind, inds, level, statistic, period_kind=period_kind, annualised=annualised,
                       period=period)
if series is None:
    st.info("This statistic is not published for this indicator at this level; choose another.")
    st.stop()
rows = series.data

features = geo.load_boundaries(level)
if features is None:
    st.error(f"The reference pack has no boundary file for {I.LEVEL_NAMES[level].lower()}s, so no map can be "
             "drawn. Check OUTCOMES_REFERENCE points at a complete reference pack.")
    st.stop()

frame.legend([I.policy_of(ind)], rates=statistic != I.COUNT)
frame.coverage_note(ind)
period_txt = I.period_label(period, series.period_kind)
if rows["provisional"].any():
    st.warning(f"{period_txt} is provisional: figures may still rise.", icon=":material/schedule:")

policy = I.policy_of(ind)
supp_label = "Suppressed" + (f" (hidden under the {policy['name']} policy)" if policy else "")
title = f"{ind.label}, {I.LEVEL_NAMES[level].lower()}s, {period_txt}: {series.value_label}"
fig = charts.map_figure(rows, features, title=title, value_title=series.value_label,
                        attribution=geo.ATTRIBUTION, footer=frame.footer_text(rel), suppressed_label=supp_label,
                        bounds=geo.bounds_of(level, rows["area_code"]))

valued = rows[rows["value"].notna()]
n_supp = int((rows["status"] == I.STATUS_SUPPRESSED).sum())
n_nodenom = int((rows["status"] == I.STATUS_NO_DENOM).sum())
n_missing = len(set(features) - set(rows["area_code"]))
summary = (f"Map of {ind.label.lower()} ({series.value_label.lower()}) for {len(rows)} "
           f"{I.LEVEL_NAMES[level].lower()}s, {period_txt}.")
if len(valued):
    hi = valued.loc[valued["value"].idxmax()]
    lo = valued.loc[valued["value"].idxmin()]
    summary += (f" Highest: {hi['area_name']} ({hi['value']:,.1f}); lowest: {lo['area_name']} ({lo['value']:,.1f});"
                f" median {valued['value'].median():,.1f}.")
summary += (f" {n_supp} suppressed (grey)." if n_supp else "") + \
    (f" {n_nodenom} with a count but no population denominator, so no rate (light grey)." if n_nodenom else "") + \
    (f" {n_missing} areas of the map are not published for this indicator (very light grey)." if n_missing else "")

shown = pd.DataFrame({
    "area": rows["area_name"],
    "area code": rows["area_code"],
    "period": rows["period"],
    "period start": rows["period_start"].dt.date.astype(str),
    "provisional": frame.provisional_text(rows["provisional"]),
    "count (rounded)": frame.counts_text(rows["count"]),
    "denominator": frame.nums_text(rows["denominator"], 0),
    series.value_label: frame.values_text(rows),
    "lower 95% CI": frame.nums_text(rows["lower"]),
    "upper 95% CI": frame.nums_text(rows["upper"]),
}).sort_values("area")
frame.chart_block(fig, shown, rel=rel, key="map", summary=summary, filename="map")
st.caption(frame.md(geo.ATTRIBUTION) + ". Boundaries: ONS (super generalised), via the reference pack. "
           "No map tiles are used, so the map draws without an internet connection.")
if n_nodenom:
    st.caption("No rate is shown for areas without a population denominator: outside Trafford only boroughs "
               "have population estimates, so their smaller areas show counts only.")
if series.notes:
    st.caption("Notes: " + "; ".join(frame.md(n) for n in series.notes) + ".")
