"""Place overview: headline tiles for each indicator, for the place and one borough."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import controls, frame, queries
from dashboard import indicators as I

rel = frame.release()
frame.header("Place overview", rel,
             "The latest complete period of each indicator for Greater Manchester and a borough, with the "
             "change from the same period a year earlier and the last two years as a sparkline.")
key = rel.key
cat = queries.catalogue(key)
inds = I.indicators_of(key)
ar = queries.areas(key)

# --- when the data were last refreshed -------------------------------------
runs = queries.runs(key)
runs_ok = runs[runs["action"] == "run"] if "action" in runs else runs
latest_runs = runs_ok.sort_values("finished_at").groupby("pipeline").tail(1)
refreshed = []
for _, r in latest_runs.sort_values("pipeline").iterrows():
    ind = next((i for i in inds if i.pipeline == r["pipeline"]), None)
    ext = I.extract_date(ind) if ind else None
    refreshed.append(f"{frame.md(r['pipeline'])}: {pd.Timestamp(r['finished_at']):%d %b %Y %H:%M}"
                     + (f" (extract to {ext:%d %b %Y})" if ext is not None else ""))
st.markdown(f"**Last refreshed**: release published {rel.published_at:%d %b %Y %H:%M} UTC. "
            "Pipelines last ran: " + "; ".join(refreshed) + ".")

las = ar[ar["area_level"] == "la"].sort_values("area_name")
place = ar[ar["area_level"] == "place"]
default_la = controls.default_borough(key)
la_codes = las["area_code"].tolist()
la_names = dict(zip(las["area_code"], las["area_name"]))
borough = st.selectbox("Borough", la_codes, index=la_codes.index(default_la) if default_la in la_codes else 0,
                       format_func=lambda c: la_names.get(c, c), key="overview_borough")
names = dict(queries.area_names(key))
tile_areas = ([(str(place.iloc[0]["area_code"]), "place")] if len(place) else []) + [(borough, "la")]

frame.legend([I.policy_of(i) for i in inds], rates=True)

rows, spark_rows = [], []
for ind in inds:
    if not any(lv in ind.levels() for lv in ("place", "la")):
        continue
    head, *cols = st.columns([2] + [3] * len(tile_areas), border=False)
    with head:
        st.markdown(f"**{frame.md(ind.label)}**")
        frame.coverage_note(ind)
    for col, (code, level) in zip(cols, tile_areas):
        name = names.get(code, code)
        t = I.headline(key, ind.id, code)
        with col:
            if t is None:
                st.metric(frame.md(name), "not published",
                          help="This indicator is not published for this area (outside the source's coverage).",
                          border=True)
                rows.append({"indicator": ind.label, "area": name, "period": "", "provisional": "",
                             "count (rounded)": "", "statistic": "", "value": "not published",
                             "status": "not published"})
                continue
            last, ch, unit = t["last"], t["change"], t["unit"]
            if pd.isna(last["value"]):
                value = str(last["status"])
            elif t["statistic"] == I.RATE:
                value = f"{last['value']:,.1f}"
            else:
                value = f"{int(last['count']):,}"
            spark = [float(v) if v == v else float("nan") for v in t["recent"]["value"].to_numpy(float)]
            if ch.get("ok"):
                pct = (ch["ratio"] - 1) * 100
                sig = "significant" if ch["significant"] else "not significant"
                delta = f"{pct:+.1f}% vs {ch['previous_period']} ({sig})"
                if not ch["significant"] or ind.polarity == "none":
                    delta_colour = "off"
                else:
                    delta_colour = "inverse" if ind.polarity == "lower_is_better" else "normal"
            else:
                delta, delta_colour = f"no comparison: {ch.get('reason', '')}", "off"
            prov = " (provisional)" if last["provisional"] else ""
            count_txt = frame.fmt_count(last["count"])
            has_spark = any(v == v for v in spark)
            st.metric(
                f"{frame.md(name)}, {frame.md(last['period'])}{prov}",
                value, delta=delta if ch.get("ok") else None, delta_color=delta_colour,
                chart_data=spark if has_spark else None, chart_type="line", border=True,
                help=f"{unit}. Count {count_txt}. Change: rate ratio with exact 95% CI "
                     f"(before/after test); sparkline: the last {len(spark)} "
                     f"{I.PERIOD_NAMES[t['period_kind']]}s.",
            )
            st.caption(f"{frame.md(unit)}; count {count_txt}"
                       + ("" if ch.get("ok") else f"; {frame.md(delta)}"))
            rows.append({
                "indicator": ind.label, "area": name, "period": last["period"],
                "provisional": "provisional" if last["provisional"] else "", "count (rounded)": count_txt,
                "statistic": unit, "value": frame.value_text(last),
                "lower 95% CI": frame.fmt_num(last["lower"]), "upper 95% CI": frame.fmt_num(last["upper"]),
                "compared with": ch.get("previous_period", ""),
                "change %": frame.fmt_num((ch["ratio"] - 1) * 100) if ch.get("ok") else "",
                "ratio 95% CI": (f"{ch['lower']:.2f} to {ch['upper']:.2f}" if ch.get("ok") else ""),
                "p value": frame.fmt_num(ch["p_value"], 3) if ch.get("ok") else "",
                "significance": ("significant" if ch["significant"] else "not significant") if ch.get("ok")
                else ch.get("reason", ""),
                "status": str(last["status"]),
            })
            r = t["recent"]
            spark_rows.append(pd.DataFrame({
                "indicator": ind.label, "area": name, "period": r["period"],
                "provisional": frame.provisional_text(r["provisional"]),
                "count (rounded)": frame.counts_text(r["count"]), "statistic": unit,
                "value": frame.values_text(r)}))

st.subheader("Tables behind the tiles", divider="gray")
summary = (f"{len(rows)} tiles for {len(tile_areas)} areas. Each tile shows the latest period, the change from the "
           "same period a year earlier (significant when the 95% CI of the ratio excludes 1) and a sparkline of "
           "the last two years.")
st.caption(summary)
tab1, tab2 = st.tabs(["Headline figures", "Sparkline data"])
with tab1:
    shown = frame.with_release(pd.DataFrame(rows).fillna(""), rel)
    st.dataframe(shown, hide_index=True, key="overview_table")
    frame.download(shown, rel=rel, key="overview", filename="overview_headlines")
with tab2:
    shown2 = frame.with_release(pd.concat(spark_rows, ignore_index=True) if spark_rows else pd.DataFrame(), rel)
    st.dataframe(shown2, hide_index=True, key="overview_spark_table")
    frame.download(shown2, rel=rel, key="overview_spark", filename="overview_sparklines")
