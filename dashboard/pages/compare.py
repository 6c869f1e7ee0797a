"""Compare areas: areas of one level ranked with 95% CIs against the
comparator (Better/Similar/Worse), and a funnel plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, controls, frame, queries
from dashboard import indicators as I
from pipelines import stats

rel = frame.release()
frame.header("Compare areas", rel, "Areas of one level in one period, ranked, and compared with the comparator "
                                   "area using 95% confidence intervals (Fingertips method).")
key = rel.key
inds = I.indicators_of(key)

c1, c2, c3 = st.columns([3, 2, 2])
with c1:
    ind = controls.pick_indicator(inds, key="compare_indicator")
if ind is None:
    st.info("This release publishes no indicators.")
    st.stop()
with c2:
    level = controls.pick_level(ind, key="compare_level", exclude=("place",),
                                default="ward" if "ward" in ind.levels() else None)
if level is None:
    st.info("This indicator is only published for the whole place; there is nothing to compare.")
    st.stop()
with c3:
    statistic = controls.pick_statistic(ind, inds, key="compare_statistic")
c4, c5, c6 = st.columns([3, 2, 2])
with c5:
    period_kind = controls.pick_period_kind(ind, level, key="compare_period_kind", prefer="financial_year")
    annualised = controls.pick_annualised(period_kind, statistic, key="compare_annualised")
table0 = ind.table_at(level, period_kind) or ind.table_at(level, "month")
with c6:
    sex = controls.pick_sex(key, table0, "compare_sex")
with c4:
    period = controls.pick_period(I.periods_of(key, ind, level, period_kind), I.resolve_kind(ind, level, period_kind),
                                  key="compare_period")
series = I.load_series(key, ind, inds, level, statistic, period_kind=period_kind, annualised=annualised, sex=sex,
                       period=period)
if series is None:
    st.info("This statistic is not published for this indicator at this level; choose another.")
    st.stop()
rows = series.data.copy()
comp3 = controls.pick_comparator(key, ind, level, rows["area_code"].tolist(), "compare_comparator",
                                 prefer="the parent borough")
comp = (comp3[0], comp3[1]) if comp3 else None
comp_rows = (I.comparator_series(key, ind, inds, series, comp, annualised=annualised, sex=sex, period=period)
             if comp else None)
bench_row = None
if comp_rows is not None:
    b = comp_rows[comp_rows["period_start"] == period]
    bench_row = b.iloc[0] if len(b) else None
benchmark = float(bench_row["value"]) if bench_row is not None and pd.notna(bench_row["value"]) else float("nan")
bench_df = pd.DataFrame({"period_start": [period], "value": [benchmark]})
rows["category"] = I.compare(rows, bench_df, ind.polarity).to_numpy()

frame.legend([I.policy_of(ind)], rates=statistic != I.COUNT)
frame.coverage_note(ind)
period_txt = I.period_label(period, series.period_kind)
prov = bool(rows["provisional"].any())
if prov:
    st.warning(f"{period_txt} is provisional: figures may still rise.", icon=":material/schedule:")
comp_name = comp[1] if comp else "no comparator"
st.markdown(f"Comparator: **{frame.md(comp_name)}**"
            + (f" = {benchmark:,.1f}" if benchmark == benchmark else " (not available for this period)")
            + ". Polarity: " + {"lower_is_better": "lower is better", "higher_is_better": "higher is better"}.get(
                ind.polarity, "no judgement (higher/lower only)") + ".")

title = f"{ind.label}, {I.LEVEL_NAMES[level].lower()}s, {period_txt}"
fig = charts.ranked_figure(rows, benchmark=benchmark, benchmark_name=comp_name, title=title,
                           x_title=series.value_label, footer=frame.footer_text(rel))
counts = rows["category"].value_counts()
summary = (f"Ranked chart of {len(rows)} {I.LEVEL_NAMES[level].lower()}s for {ind.label.lower()} "
           f"({series.value_label.lower()}), {period_txt}, against {comp_name}: "
           + ", ".join(f"{int(n)} {k.lower()}" for k, n in counts.items()) + ".")
if len(rows) and rows["value"].notna().any():
    top = rows.loc[rows["value"].idxmax()]
    low = rows.loc[rows["value"].idxmin()]
    summary += f" Highest {top['area_name']} ({top['value']:,.1f}); lowest {low['area_name']} ({low['value']:,.1f})."

# funnel significance (needs a denominator)
funnel_ok = statistic in (I.RATE, I.PROPORTION) and benchmark == benchmark
pts = rows[rows["value"].notna() & rows["denominator"].notna() & (rows["denominator"] > 0)].copy()
if funnel_ok and len(pts):
    fstat = "rate" if statistic == I.RATE else "proportion"
    mult = series.multiplier if statistic == I.RATE else 100
    pts["significance"] = stats.funnel_significance(
        pts["count"].astype(float).to_numpy(), pts["denominator"].astype(float).to_numpy(),
        benchmark=benchmark, statistic=fstat, multiplier=mult)
    rows = rows.merge(pts[["area_code", "significance"]], on="area_code", how="left")
else:
    rows["significance"] = None

ranked = rows.sort_values("value", ascending=False, na_position="last")
shown = pd.DataFrame({
    "area": ranked["area_name"],
    "area code": ranked["area_code"],
    "period": ranked["period"],
    "period start": ranked["period_start"].dt.date.astype(str),
    "provisional": frame.provisional_text(ranked["provisional"]),
    "count (rounded)": frame.counts_text(ranked["count"]),
    "denominator": frame.nums_text(ranked["denominator"], 0),
    series.value_label: frame.values_text(ranked),
    "lower 95% CI": frame.nums_text(ranked["lower"]),
    "upper 95% CI": frame.nums_text(ranked["upper"]),
    f"compared with {comp_name}": ranked["category"],
    "funnel plot": [charts.FUNNEL_NAMES.get(s, "") if isinstance(s, str) else "" for s in ranked["significance"]],
})
tab_rank, tab_funnel = st.tabs(["Ranked with confidence intervals", "Funnel plot"])
with tab_rank:
    frame.chart_block(fig, shown, rel=rel, key="compare_ranked", summary=summary, filename="compare_ranked")
with tab_funnel:
    if statistic == I.COUNT:
        st.info("A funnel plot needs a denominator: choose a rate or a proportion above. Counts alone cannot "
                "be compared fairly between areas of different sizes.")
    elif not funnel_ok:
        st.info("The comparator has no value for this period, so no funnel plot can be drawn.")
    elif pts.empty:
        st.info("No area has both a published count and a denominator in this period (suppressed or no "
                "population), so no funnel plot can be drawn.")
    else:
        lo, hi = float(pts["denominator"].min()), float(pts["denominator"].max())
        grid = np.geomspace(max(lo * 0.8, 1.0), hi * 1.15, 200)
        limits = stats.funnel_limits(grid, benchmark, statistic=fstat, multiplier=mult)
        x_title = "Population" if statistic == I.RATE else f"{(I.parent_indicator(ind, inds) or ind).label} (rounded)"
        ffig = charts.funnel_figure(pts, limits, benchmark=benchmark, benchmark_name=comp_name,
                                    title=f"Funnel plot: {title}", x_title=x_title, y_title=series.value_label,
                                    footer=frame.footer_text(rel))
        fcounts = pts["significance"].value_counts()
        fsummary = (f"Funnel plot of {len(pts)} areas: {series.value_label.lower()} against {x_title.lower()}, "
                    f"with 95% and 99.8% control limits around {comp_name} ({benchmark:,.1f}). "
                    + ", ".join(f"{int(n)} {charts.FUNNEL_NAMES[k].lower()}" for k, n in fcounts.items()) + "."
                    + (f" {len(rows) - len(pts)} areas not plotted (suppressed or no denominator)."
                       if len(rows) > len(pts) else ""))
        fshown = shown[shown["area code"].isin(pts["area_code"])]
        frame.chart_block(ffig, fshown, rel=rel, key="compare_funnel", summary=fsummary, filename="compare_funnel")
notes = list(series.notes)
if (rows["status"] == I.STATUS_NO_DENOM).any():
    notes.append("areas without a population denominator show a count but no rate (outside Trafford only "
                 "boroughs have population estimates)")
notes.append("Better/Worse: the 95% CI lies wholly below/above the comparator (per the indicator's polarity); "
             "Similar: it overlaps. Funnel limits: exact Poisson (rates) or Wilson-based (proportions), PHE method")
st.caption("Notes: " + "; ".join(frame.md(n) for n in notes) + ".")
