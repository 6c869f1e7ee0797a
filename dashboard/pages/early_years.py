"""Early years: expected births by children's-centre catchment (or ward) by
due month (or quarter), looking forward, for planning."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, frame, queries
from dashboard import indicators as I

rel = frame.release()
frame.header("Early years", rel, "Expected births by the month they are due, from maternity bookings: for "
                                 "planning children's-centre and early-years services.")
key = rel.key
inds = I.indicators_of(key)
births = [i for i in inds if "catchment" in i.levels()]
if not births:
    st.info("This release publishes nothing by children's-centre catchment (the expected-births pipeline has "
            "not run). Run `outcomes run maternity_due_dates` to publish it.")
    st.stop()
ind = births[0]
ar = queries.areas(key)
names = dict(queries.area_names(key))

views = [(t["table_name"], lvl) for t in ind.tables for lvl in t["area_levels"] if lvl != "la"]
view_label = {
    (tn, lvl): f"{I.LEVEL_NAMES[lvl]} by due {I.PERIOD_NAMES[t['period_kind']]}"
    for t in ind.tables for tn, lvl in [(t["table_name"], lv) for lv in t["area_levels"]] if tn == t["table_name"]
}
c1, c2 = st.columns([2, 3])
with c1:
    view = st.selectbox("View", views, format_func=lambda v: view_label[v], key="early_view")
table = next(t for t in ind.tables if t["table_name"] == view[0])
level = view[1]
series = I.load_series(key, ind, inds, level, I.COUNT, table=table)
data = series.data
codes = sorted(data["area_code"].unique(), key=lambda c: names.get(c, c))
with c2:
    picked = st.multiselect("Areas", codes, default=codes if len(codes) <= 6 else codes[:6],
                            format_func=lambda c: names.get(c, c), key=f"early_areas_{level}")
ext = I.extract_date(ind)
forward_only = st.toggle("Looking forward only (from 12 months before the extract date)", value=True,
                         key="early_forward")

frame.legend([I.policy_of(ind)])
frame.coverage_note(ind)
st.caption("Provisional due months are still gaining bookings (bookings for a month arrive from about 8 months "
           "before it until about 20 weeks before), or fall so soon after the extract began that earlier "
           "bookings are missing. Treat them as a floor, not a forecast.")

if not picked:
    st.info("Choose at least one area.")
    st.stop()
sel = data[data["area_code"].isin(picked)].copy()
if forward_only and ext is not None:
    sel = sel[sel["period_start"] >= ext - pd.DateOffset(months=12)]
sel = sel.sort_values(["area_name", "period_start"])

title = f"Expected births by {I.LEVEL_NAMES[level].lower()} and due {I.PERIOD_NAMES[series.period_kind]}"
fig = charts.births_figure(sel, title=title, footer=frame.footer_text(rel), extract_date=ext)

after = sel[sel["period_start"] > ext] if ext is not None else sel.iloc[0:0]
summary = (f"Bar chart of expected births (rounded) for {len(picked)} {I.LEVEL_NAMES[level].lower()}s by due "
           f"{I.PERIOD_NAMES[series.period_kind]}, {sel['period'].iloc[0] if len(sel) else ''} to "
           f"{sel['period'].iloc[-1] if len(sel) else ''}.")
if len(after):
    tot = after.groupby("area_name")["count"].sum(min_count=1)
    summary += (" Due after the extract date: " +
                "; ".join(f"{n}: {('at least ' + str(int(v))) if pd.notna(v) else 'suppressed'}"
                          for n, v in tot.items()) + " (provisional: bookings still arriving).")
n_supp = int((sel["status"] == I.STATUS_SUPPRESSED).sum())
if n_supp:
    summary += f" {n_supp} values are suppressed (crosses on the axis)."

shown = pd.DataFrame({
    "area": sel["area_name"],
    "due " + I.PERIOD_NAMES[series.period_kind]: sel["period"],
    "period start": sel["period_start"].dt.date.astype(str),
    "expected births (rounded)": frame.counts_text(sel["count"]),
    "provisional": frame.provisional_text(sel["provisional"]),
    "after extract date": (sel["period_start"] > ext).map({True: "yes", False: ""}) if ext is not None else "",
})
frame.chart_block(fig, shown, rel=rel, key="early", summary=summary, filename="expected_births")

if len(after):
    st.subheader("Looking forward", divider="gray")
    st.caption("Expected births due after the extract date, by area (rounded; provisional).")
    pivot = after.pivot_table(index="area_name", columns="period_start", values="count", aggfunc="first")
    pivot.columns = [I.period_label(c, series.period_kind) for c in pivot.columns]
    pivot = pivot.apply(lambda col: col.map(frame.fmt_count)).reset_index().rename(columns={"area_name": "area"})
    forward = frame.with_release(pivot, rel)
    st.dataframe(forward, hide_index=True, key="early_forward_table")
    frame.download(forward, rel=rel, key="early_forward", filename="expected_births_forward")
