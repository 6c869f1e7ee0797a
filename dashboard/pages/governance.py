"""Data and governance: what is published, by whom, on what basis, under
which disclosure policy; when each pipeline ran and what it rejected; and
what the dashboard deliberately cannot show."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import access, frame, queries

rel = frame.release()
frame.header("Data and governance", rel, "Where every figure comes from, the basis on which it is shared, and "
                                         "how people's privacy is protected.")
key = rel.key
cat = queries.catalogue(key)
runs = queries.runs(key)


def _join(v) -> str:
    return ", ".join(str(x) for x in v) if isinstance(v, (list, tuple)) else ("" if v is None else str(v))


st.subheader("This release", divider="gray")
st.markdown(
    f"- Release: **{frame.md(rel.release_id)}**, published {rel.published_at:%d %b %Y %H:%M} UTC\n"
    f"- Previous release: {frame.md(rel.previous_release_id or 'none')}\n"
    f"- Pipelines refreshed in this release: {frame.md(', '.join(rel.pipelines_refreshed) or 'none')}\n"
    f"- Code version: {frame.md(rel.code_version)}"
)

st.subheader("Sources and the basis for sharing", divider="gray")
counts = cat[cat["kind"] == "count"]
sources = counts.groupby("pipeline", sort=True).first().reset_index()
src = pd.DataFrame({
    "pipeline": sources["pipeline"],
    "source": sources["source"],
    "coverage": sources["coverage"],
    "data controller": sources["data_controller"],
    "legal basis": sources["legal_basis"],
    "data sharing agreement": sources["dsa_reference"],
    "purpose": sources["purpose"],
})
for _, r in src.iterrows():
    with st.container(border=True):
        st.markdown(f"**{frame.md(r['source'])}**  \n"
                    f"Data controller: {frame.md(r['data controller'])}  \n"
                    f"Legal basis: {frame.md(r['legal basis'])}  \n"
                    f"Data sharing agreement: {frame.md(r['data sharing agreement'])}  \n"
                    f"Purpose: {frame.md(r['purpose'])}  \n"
                    f"Coverage: {frame.md(r['coverage'])}")
with st.expander("Sources as a table", icon=":material/table:"):
    shown = frame.with_release(src, rel)
    st.dataframe(shown, hide_index=True, key="gov_sources")
    frame.download(shown, rel=rel, key="gov_sources", filename="sources")

st.subheader("How privacy is protected", divider="gray")
st.markdown(
    "Only anonymous counts leave each partner. Before anything is published, a disclosure gate applies the "
    "policy below to every table, then hides further counts where a hidden one could otherwise be worked out "
    "from totals, other areas, other periods or an earlier release (secondary suppression), and an independent "
    "audit checks the result. Rates, percentages and confidence intervals on this dashboard are calculated from "
    "the published (rounded) counts only."
)
st.markdown(f"**Who can see this dashboard.** {access.describe()}")
policies: dict[str, tuple[dict, list[str]]] = {}
for _, r in counts.iterrows():
    p = queries.policy_of(r)
    if p:
        policies.setdefault(p.get("name", "?"), (p, []))[1].append(str(r["pipeline"]))
for name, (p, pipes) in policies.items():
    bullets = [frame.policy_sentence(p)]
    if p.get("suppress_small"):
        bullets.append(f"Counts from 1 to {p.get('threshold')} are not published (shown as *suppressed*)."
                       if p.get("zeros_shown") else
                       f"Counts of {p.get('threshold')} or fewer, including zero, are not published.")
    bullets.append(f"Published counts are {frame.rounding_phrase(p)}.")
    bullets.append("A zero is shown as 0." if p.get("zeros_shown") else "A zero may be hidden, like a small count.")
    if p.get("protection_width"):
        bullets.append(f"No hidden count can be narrowed, by combining published figures, to a range narrower "
                       f"than {p.get('protection_width')}.")
    bullets.append(f"Applies to: {frame.md(', '.join(sorted(set(pipes))))}.")
    with st.container(border=True):
        st.markdown(f"**Policy {frame.md(name)}**\n\n" + "\n".join(f"- {b}" for b in bullets))

st.subheader("When each pipeline last ran, and what it rejected", divider="gray")
run_rows, reject_rows = [], []
for _, r in runs.iterrows():
    rej = json.loads(r["rows_rejected"] or "{}") if isinstance(r["rows_rejected"], str) else {}
    exc = json.loads(r["rows_excluded"] or "{}") if isinstance(r["rows_excluded"], str) else {}
    cells = r["cells_published"]
    supp = r["cells_suppressed"]
    run_rows.append({
        "pipeline": r["pipeline"], "action": r["action"], "release": r["release_id"],
        "finished": "" if pd.isna(r["finished_at"]) else f"{pd.Timestamp(r['finished_at']):%Y-%m-%d %H:%M}",
        "input file": r["input_file"], "rows read": frame.fmt_num(r["rows_read"], 0),
        "rows rejected": sum(rej.values()), "rows not placed in an area": sum(exc.values()),
        "persons not countable (no valid NHS Number)": frame.fmt_num(r["persons_not_countable"], 0),
        "tables": frame.fmt_num(r["tables_published"], 0), "cells published": frame.fmt_num(cells, 0),
        "cells suppressed": frame.fmt_num(supp, 0),
        "% suppressed": (frame.fmt_num(100 * supp / cells, 1)
                         if pd.notna(cells) and pd.notna(supp) and cells > 0 else ""),
        "policy": r["policy"], "note": r["note"],
    })
    for reason, n in rej.items():
        reject_rows.append({"pipeline": r["pipeline"], "release": r["release_id"], "kind": "rejected (invalid)",
                            "reason": reason, "rows": n})
    for reason, n in exc.items():
        reject_rows.append({"pipeline": r["pipeline"], "release": r["release_id"],
                            "kind": "not placed in any area", "reason": reason, "rows": n})
runs_shown = frame.with_release(pd.DataFrame(run_rows), rel)
st.dataframe(runs_shown, hide_index=True, key="gov_runs")
frame.download(runs_shown, rel=rel, key="gov_runs", filename="pipeline_runs")
st.markdown("**Rows rejected or not placed, by reason**")
rej_shown = frame.with_release(pd.DataFrame(reject_rows, columns=["pipeline", "release", "kind", "reason", "rows"]),
                               rel)
st.dataframe(rej_shown, hide_index=True, key="gov_rejects")
frame.download(rej_shown, rel=rel, key="gov_rejects", filename="rows_rejected")

st.subheader("Catalogue: every published table", divider="gray")
catalogue_shown = pd.DataFrame({
    "table": cat["table_name"], "title": cat["title"], "pipeline": cat["pipeline"], "measure": cat["measure"],
    "unit": cat["unit"], "area levels": cat["area_levels"].map(_join), "periods": cat["period_kind"],
    "breakdowns": cat["dimensions"].map(_join), "polarity": cat["polarity"], "denominator": cat["denominator"],
    "kind": cat["kind"], "description": cat["description"], "notes": cat["notes"],
})
cat_shown = frame.with_release(catalogue_shown, rel)
st.dataframe(cat_shown, hide_index=True, key="gov_catalogue")
frame.download(cat_shown, rel=rel, key="gov_catalogue", filename="catalogue")

st.subheader("What this dashboard cannot show, and why", divider="gray")
st.markdown("""
- **Individual people or records.** Only anonymous, aggregated counts are published; no row-level data reaches
  the dashboard, so nothing here can be traced to a person.
- **Small numbers.** Counts below the policy threshold, and some others that would let them be worked out, are
  *suppressed*. A suppressed value is not zero and not missing data.
- **Exact counts.** Counts are rounded under the policy, so totals may not equal the sum of their parts, and
  rates are calculated from rounded counts (small areas' rates are therefore approximate: see the confidence
  intervals).
- **Rates where there is no population denominator.** Only Trafford's small areas and the Greater Manchester
  boroughs have population estimates in the reference data, so elsewhere counts are shown without a rate.
- **Neighbourhood detail outside Trafford.** The partners publish small-area tables for Trafford only.
- **True rates for boroughs other than Trafford from hospital data.** The A&E extract covers one trust's
  departments; residents of other boroughs who attended elsewhere are not counted (see each source's coverage).
- **Age-standardised rates.** Age-band counts are often suppressed in small areas, so standardised rates cannot
  be calculated reliably from the published figures; crude rates are shown.
- **Distinct people across periods.** People are counted once per period; person counts of different periods
  must not be added together.
- **Your own queries or files.** The dashboard reads only this publication and the public boundary files; it does
  not run queries you type or accept uploads.
""")
