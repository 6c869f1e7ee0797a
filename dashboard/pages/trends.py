"""Trends: one indicator over time for chosen areas, with 95% CIs, the
comparator and the Fingertips recent-trend marker."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, controls, frame, queries
from dashboard import indicators as I

rel = frame.release()
frame.header("Trends", rel, "How an indicator has changed over time in the areas you choose, against the "
                             "comparator area.")
key = rel.key
inds = I.indicators_of(key)
ar = queries.areas(key)
names = dict(queries.area_names(key))

c1, c2, c3 = st.columns([3, 2, 2])
with c1:
    ind = controls.pick_indicator(inds, key="trends_indicator")
if ind is None:
    st.info("This release publishes no indicators.")
    st.stop()
with c2:
    level = controls.pick_level(ind, key="trends_level", default="la")
with c3:
    period_kind = controls.pick_period_kind(ind, level, key="trends_period_kind")

c4, c5, c6 = st.columns([3, 2, 2])
with c5:
    statistic = controls.pick_statistic(ind, inds, key="trends_statistic")
with c6:
    annualised = controls.pick_annualised(period_kind, statistic, key="trends_annualised")
table0 = ind.table_at(level, period_kind) or ind.table_at(level, "month")
with c6:
    sex = controls.pick_sex(key, table0, "trends_sex")

options = I.areas_of(key, ind, level, period_kind)
codes = options["area_code"].tolist()
names.update(dict(zip(options["area_code"], options["area_name"])))
default_code = controls.default_borough(key) if level == "la" else None
default = [default_code] if default_code in codes else codes[:1]
with c4:
    picked = st.multiselect("Areas (up to 6)", codes, default=default, max_selections=6,
                            format_func=lambda c: names.get(c, c), key=f"trends_areas_{level}")
show_comparator = st.toggle("Show the comparator", value=True, key="trends_show_comparator")
comp3 = controls.pick_comparator(key, ind, level, picked, "trends_comparator") if show_comparator else None
show_ci = st.toggle("Show 95% confidence intervals", value=True, key="trends_show_ci")

frame.legend([I.policy_of(ind)], rates=statistic != I.COUNT)
frame.coverage_note(ind)

if not picked:
    st.info("Choose at least one area.")
    st.stop()
series = I.load_series(key, ind, inds, level, statistic, period_kind=period_kind, annualised=annualised, sex=sex,
                       areas=picked)
if series is None:
    st.info("This statistic is not published for this indicator at this level; choose another.")
    st.stop()
data = series.data

comp = (comp3[0], comp3[1]) if comp3 else None
comp_rows = None
if comp is not None and show_comparator and comp[0] not in picked:
    comp_rows = I.comparator_series(key, ind, inds, series, comp, annualised=annualised, sex=sex)

sel = data[data["area_code"].isin(picked)].copy()
sel["series"] = sel["area_name"]
sel["role"] = "area"
plot = sel
if comp_rows is not None and len(comp_rows):
    c = comp_rows.copy()
    c["series"] = c["area_name"]
    c["role"] = "comparator"
    plot = pd.concat([sel, c], ignore_index=True)

no_denom = sorted({names.get(c, c) for c in sel.loc[sel["status"] == I.STATUS_NO_DENOM, "area_code"]})
if no_denom:
    st.info("No rate is shown for " + ", ".join(frame.md(n) for n in no_denom) + ": there is no population "
            "estimate for " + ("this area" if len(no_denom) == 1 else "these areas") + " (outside Trafford only "
            "the boroughs have population estimates). Their published counts are in the table below; choose "
            "*Count* to chart them.", icon=":material/info:")

title = f"{ind.label}: {series.value_label}"
fig = charts.trend_figure(plot, title=title, y_title=series.value_label, footer=frame.footer_text(rel),
                          show_ci=show_ci)

# recent-trend markers (Fingertips: last 5 complete periods)
marks = []
for code in picked:
    rows = data[data["area_code"] == code]
    tr = I.trend(rows, statistic, series.multiplier)
    marks.append({"area": names.get(code, code), "recent trend": tr.direction,
                  "points": tr.n_points, "chi-square": frame.fmt_num(tr.statistic, 2),
                  "p value": frame.fmt_num(tr.p_value, 4), "detail": tr.reason})
arrow = {"Increasing": "\u2191 Increasing", "Decreasing": "\u2193 Decreasing",
         "No significant change": "\u2192 No significant change"}
st.markdown("**Recent trend** (last 5 complete " + I.PERIOD_NAMES[series.period_kind] + "s, 99.8% level): "
            + "; ".join(f"{frame.md(m['area'])}: **{arrow.get(m['recent trend'], m['recent trend'])}**"
                        + ("" if m["recent trend"] != "Cannot be calculated" else f" ({frame.md(m['detail'])})")
                        for m in marks))

n_supp = int((sel["status"] == I.STATUS_SUPPRESSED).sum())
n_nodenom = int((sel["status"] == I.STATUS_NO_DENOM).sum())
periods = sel["period_start"]
summary = (f"Line chart of {ind.label.lower()} ({series.value_label.lower()}) by "
           f"{I.PERIOD_NAMES[series.period_kind]} from {I.period_label(periods.min(), series.period_kind)} to "
           f"{I.period_label(periods.max(), series.period_kind)} for {', '.join(names.get(c, c) for c in picked)}"
           + (f", with {comp[1]} as comparator (dashed)" if comp_rows is not None and len(comp_rows) else "")
           + ". Recent trend: " + "; ".join(f"{m['area']} {m['recent trend'].lower()}" for m in marks) + "."
           + (f" {n_supp} suppressed values are marked with crosses on the axis." if n_supp else ""))

table = plot.sort_values(["role", "series", "period_start"])
shown = pd.DataFrame({
    "area": table["area_name"],
    "role": table["role"],
    "period": table["period"],
    "period start": table["period_start"].dt.date.astype(str),
    "provisional": frame.provisional_text(table["provisional"]),
    "count (rounded)": frame.counts_text(table["count"]),
    "denominator": frame.nums_text(table["denominator"], 0),
    series.value_label: frame.values_text(table),
    "lower 95% CI": frame.nums_text(table["lower"]),
    "upper 95% CI": frame.nums_text(table["upper"]),
})
frame.chart_block(fig, shown, rel=rel, key="trends", summary=summary, filename="trends",
                  table_label="Table behind this chart (also shown below)")

st.subheader("The figures", divider="gray")
st.dataframe(frame.with_release(shown, rel), hide_index=True, key="trends_table_inline")
st.dataframe(frame.with_release(pd.DataFrame(marks), rel), hide_index=True, key="trends_marks")
notes = list(series.notes)
if statistic != I.COUNT:
    notes.append("rates and percentages are calculated from the published rounded counts, never from true counts; "
                 "95% CIs: exact Poisson / Byar's (rates), Wilson score (percentages)")
if n_nodenom:
    notes.append("no rate is shown where an area has no population denominator (outside Trafford only boroughs "
                 "have population estimates); the count is shown instead")
if comp3 is not None:
    notes.append(f"comparator: {comp3[1]} ({comp3[2]}); the comparison carries the source's coverage above")
st.caption("Notes: " + "; ".join(frame.md(n) for n in notes) + ".")
