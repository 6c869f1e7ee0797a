"""Evidence of benefit: did an intervention change an indicator in its areas?

A thin page: widgets, then calls into :mod:`dashboard.evidence` (which holds
the rules, the models and the report) through the read-only, cached
connection of :mod:`dashboard.queries`.
"""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import streamlit as st

from dashboard import evidence as E
from dashboard import frame, queries



@st.cache_data(show_spinner=False, max_entries=64)
def _published_areas(release_key: str, indicator: str, level: str) -> list[str]:
    return E.published_areas(queries.CONNECTIONS.cursor(release_key), queries.catalogue(release_key),
                             indicator, level)


rel = frame.release()
frame.header(
    "Evidence of benefit", rel,
    "Did an intervention change an indicator in its areas? Choose a published intervention or define one, and "
    "see the published counts, what a model expects would have happened without it, and how sure we can be. "
    "Everything is calculated from this release's published (rounded and suppressed) counts.")
key = rel.key
cat = queries.catalogue(key)
ar = queries.areas(key)
names = dict(zip(ar["area_code"], ar["area_name"]))
levels_of = dict(zip(ar["area_code"], ar["area_level"]))
published = E.questions_from_interventions(queries.interventions(key))
published = [q for q in published if q.indicator and not E.monthly_tables(cat, q.indicator).empty]
indicators = E.monthly_indicators(cat)
if not indicators:
    st.info("This release publishes no indicator by month, so no intervention can be evaluated.")
    st.stop()

modes = ["A published intervention", "Define an intervention"] if published else ["Define an intervention"]
mode = st.radio("Intervention", modes, horizontal=True, key="evidence_mode")

if mode == "A published intervention":
    labels = [f"{q.name} ({indicators.get(q.indicator, q.indicator)})" for q in published]
    i = st.selectbox("Published intervention", range(len(published)), format_func=lambda j: labels[j],
                     key="evidence_intervention")
    base = published[i]
    if base.description:
        st.caption(frame.md(base.description))
    st.markdown(
        f"**Areas:** {frame.md(', '.join(names.get(c, c) for c in base.areas))}  \n"
        f"**Started:** {base.start:%d %B %Y}  \n"
        f"**Comparators:** {frame.md(', '.join(names.get(c, c) for c in base.comparators) or 'none')}")
    question = base
else:
    c1, c2, c3 = st.columns([3, 2, 2])
    ind_ids = list(indicators)
    with c1:
        ind = st.selectbox("Indicator", ind_ids, format_func=lambda x: indicators[x], key="evidence_indicator")
    tables = E.monthly_tables(cat, ind)
    lvls = [lv for lv in ("locality", "ward", "la", "place", "catchment", "msoa", "lsoa")
            if any(lv in (t or []) for t in tables["area_levels"])]
    level_names = {"locality": "Locality", "ward": "Ward", "la": "Borough", "place": "Greater Manchester",
                   "catchment": "Children's-centre catchment", "msoa": "MSOA", "lsoa": "LSOA"}
    with c2:
        level = st.selectbox("Area level", lvls, format_func=lambda x: level_names.get(x, x),
                             key="evidence_level")
    with c3:
        default_start = published[0].start if published else dt.date(2022, 10, 1)
        start = st.date_input("Start date", value=default_start, key="evidence_start")
    codes = sorted(_published_areas(key, ind, level), key=lambda c: names.get(c, c))
    if not codes:
        st.info("No area of this level is published by month for this indicator; choose another level.")
        st.stop()
    default_areas = [c for c in (published[0].areas if published else ()) if c in codes] or codes[:1]
    c4, c5 = st.columns(2)
    with c4:
        areas = st.multiselect("Intervention areas", codes, default=default_areas,
                               format_func=lambda c: names.get(c, c), key=f"evidence_areas_{level}")
    with c5:
        comp_default = [c for c in (published[0].comparators if published else ()) if c in codes and c not in areas]
        comps = st.multiselect("Comparator areas (optional)", [c for c in codes if c not in areas],
                               default=comp_default, format_func=lambda c: names.get(c, c),
                               key=f"evidence_comparators_{level}")
    name = st.text_input("Name of the intervention", value="the intervention", key="evidence_name", max_chars=120)
    question = E.Question(name=name.strip() or "the intervention", areas=tuple(areas), start=start,
                          indicator=ind, comparators=tuple(comps))

c6, c7 = st.columns(2)
with c6:
    follow_up = st.number_input("Follow-up (months after the start)", min_value=3, max_value=36,
                                value=E.DEFAULT_FOLLOW_UP_MONTHS, step=1, key="evidence_follow_up")
with c7:
    pre_choice = st.selectbox("Months before the start to use", ["all", 24, 36, 48, 60],
                              format_func=lambda v: "All published months" if v == "all" else f"The last {v}",
                              key="evidence_pre_months")
question = E.Question(
    name=question.name, areas=question.areas, start=question.start, indicator=question.indicator,
    comparators=question.comparators, follow_up_months=int(follow_up), description=question.description,
    intervention_id=question.intervention_id, pre_months=None if pre_choice == "all" else int(pre_choice))

if not question.areas:
    st.info("Choose at least one intervention area.")
    st.stop()

ev = queries.evidence(key, question)
footer = frame.footer_text(rel)

st.subheader("Result")
if ev.status == "cannot conclude":
    st.warning(frame.md(ev.sentence), icon=":material/block:")
    st.markdown("No effect is shown because the published counts cannot support one (see the rules below). "
                "Larger areas, a group of areas or a longer follow-up may help.")
elif ev.status == "no significant change":
    st.info(frame.md(ev.sentence), icon=":material/info:")
else:
    st.success(frame.md(ev.sentence), icon=":material/insights:")

safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"evidence_{question.intervention_id or 'adhoc'}_{rel.release_id}")
st.download_button(
    "Download this evidence as a report (HTML)", data=lambda: E.report_html(ev).encode("utf-8"),
    file_name=f"{safe}.html", mime="text/html", key="evidence_report", icon=":material/download:",
    on_click="ignore", help="A self-contained report (charts included, works offline) to circulate: question, "
                            "data, method, result, caveats, provenance and the disclosure policy.")
frame.legend([ev.policy], rates=ev.uses_population, provisional=True)

fig, cfig = queries.evidence_figures(key, question, footer)
table = ev.series.copy()
table = table.rename(columns={"period_start": "month", "published": "published_count_sum",
                              "mid": "count_used"})
table["month"] = pd.to_datetime(table["month"]).dt.strftime("%Y-%m")
summary = (f"Monthly {E.lower_first(ev.indicator_label)} in {ev.area_label} from the published counts, with the "
           f"start of {question.name} on {question.start:%d %B %Y} marked. " + (
               "The model's fitted line and the counterfactual (expected without the intervention) with its 95% "
               "band are drawn from the start." if ev.its_result is not None else
               "No model is drawn because the published counts cannot support one."))
frame.chart_block(fig, table, rel=rel, key="evidence_its", summary=summary, filename="evidence_series")

st.markdown("**Each method**")
st.table(pd.DataFrame(E.method_lines(ev), columns=["Method", "Result"]).set_index("Method"))

if question.comparators:
    ctab = pd.concat([
        ev.series.assign(group="intervention areas"),
        ev.comparator_series.assign(group="comparators") if ev.comparator_series is not None else None,
    ], ignore_index=True)[["group", "period_start", "mid", "population", "suppressed"]]
    ctab["period_start"] = pd.to_datetime(ctab["period_start"]).dt.strftime("%Y-%m")
    frame.chart_block(cfig, ctab.rename(columns={"period_start": "month", "mid": "count_used"}), rel=rel,
                      key="evidence_comparison",
                      summary=f"Monthly {'rates' if ev.uses_population else 'counts'} in {ev.area_label} and in "
                              f"the comparators ({ev.comparator_label}); before the start the lines should move "
                              "together for the difference-in-differences to be fair.",
                      filename="evidence_comparison")

st.subheader("Planning: the smallest effect these data could detect")
st.markdown("\n".join(f"- {frame.md(t)}" for t in E.detectable_lines(ev)))
st.caption("Use this before an intervention starts: if the effect you hope for is smaller than this, the "
           "published series of these areas will not be able to show it; choose larger areas or a longer "
           "follow-up.")

st.subheader("Method and caveats")
with st.expander("Method", expanded=False):
    st.markdown("\n".join(f"- {frame.md(t)}" for t in E.method_text()))
with st.expander("When this page will not give a result", expanded=ev.status == "cannot conclude"):
    st.markdown("\n".join(f"- {frame.md(t)}" for t in ev.rules))
st.markdown("\n".join(f"- {frame.md(t)}" for t in ev.caveats))
with st.expander("Data used", expanded=False):
    st.markdown("\n".join(f"- {frame.md(t)}" for t in ev.data_notes))
    st.markdown("\n".join(f"- {frame.md(t)}" for t in E.policy_plain_english(ev.policy)))
