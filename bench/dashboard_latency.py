"""Dashboard latency at Greater-Manchester scale, against the bare queries.

Builds a synthetic release at the scale of the whole place: all 1,702 LSOAs
(and 353 MSOAs), 215 wards, 10 boroughs and the place, 5 financial years of
months (60), a measure and its denominator measure (for proportions), sex
and age breakdowns at borough level, and expected births by catchment. Then
measures, with Streamlit's AppTest (server side: the script run, caching,
figure building and serialisation; not the browser's drawing), for every
page:

* first render, cold: a new session after the caches were cleared and the
  connections closed (what the first visitor after a new release gets);
* first render, warm: a new session with the process caches filled;
* filter change: one widget set to a value not seen before in that session
  (the caches are cold for it; the connection is open);

each the median of ``--runs`` runs, next to the time of the bare DuckDB
queries the page needed (exactly the SQL the page issued, recorded by
``dashboard.queries.QUERY_LOG`` during its cold render, replayed on a fresh
read-only connection, opening the file included for the cold render; median
of the same number of replays). It prints the
ratios and checks the targets: first render < 1 s median, filter change
< 300 ms, and no page slower than max(3 x its bare queries, bare + 200 ms).

How the release is built (documented choice): counts are synthetic
(Poisson, fixed seed) at LSOA x month and added up the real hierarchy from
the reference pack (LSOA -> MSOA / ward -> borough -> place), then the
publication's primary disclosure rules are applied (``primary_mask``,
``round_counts`` of the nhs-digital policy: 1-7 suppressed, rounded to 5).
Secondary suppression and the LP audit are NOT run: at this size they are a
benchmark of their own (``bench/disclosure_scale.py``) and do not change what
the dashboard does, only which cells are hidden. The file is written with the
publication contract's schema (catalogue, runs, release, areas, area_members,
population from the reference pack) and served through a release symlink,
exactly as a real publication. It is synthetic and never published.

    python bench/dashboard_latency.py [--runs 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.framework import publication as pub  # noqa: E402
from pipelines.framework.disclosure.policy import load_policy  # noqa: E402
from pipelines.framework.disclosure.primary import primary_mask, round_counts  # noqa: E402
from pipelines.framework.reference import ReferencePack  # noqa: E402
from pipelines.framework.runner import load_geography  # noqa: E402

MONTHS = pd.date_range("2019-04-01", periods=60, freq="MS")
SEX = ["Female", "Male", "Other or not known"]
AGE = ["0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
PIPELINE = "bench_ae"
BIRTHS = "bench_births"


# ---------------------------------------------------------------------------
# Building the release
# ---------------------------------------------------------------------------

def _protect(true_counts: np.ndarray, policy) -> np.ndarray:
    """The primary rules of the policy: small counts hidden (NaN), the rest rounded."""
    flat = np.asarray(true_counts).reshape(-1)
    vals = round_counts(flat, policy).astype("float64")
    vals[primary_mask(flat, policy)] = np.nan
    return vals


def _frame(codes, level, months, counts, provisional=None, extra: dict | None = None) -> pd.DataFrame:
    n_a, n_m = len(codes), len(months)
    df = pd.DataFrame({
        "area_code": np.repeat(np.asarray(codes, dtype=object), n_m),
        "area_level": level,
        "period_start": np.tile(months.values, n_a),
        "period_end": np.tile((months + pd.offsets.MonthEnd(0)).values, n_a),
        "provisional": np.tile(provisional if provisional is not None else np.zeros(n_m, bool), n_a),
    })
    for k, v in (extra or {}).items():
        df[k] = v
    c = np.asarray(counts, dtype="float64").reshape(-1)
    df["count"] = pd.array(np.where(np.isnan(c), 0, c).astype("int64"), dtype="Int64")
    df.loc[np.isnan(c), "count"] = pd.NA
    return df


def build_release(out: Path, seed: int = 20240331) -> Path:
    """Write the GM-scale release; return the publication symlink."""
    pack = ReferencePack.locate()
    catch_csv = out / "catchments.csv"
    import duckdb

    from pipelines.framework import geography

    con = duckdb.connect()
    geography.demo_catchments(con, pack).to_csv(catch_csv, index=False)
    con.close()
    areas, members, population = load_geography(pack, catch_csv)
    policy = load_policy("nhs-digital")
    rng = np.random.default_rng(seed)

    lsoas = areas.loc[areas["area_level"] == "lsoa", "area_code"].tolist()
    idx = {c: i for i, c in enumerate(lsoas)}
    n_l, n_m = len(lsoas), len(MONTHS)
    season = 1 + 0.25 * (MONTHS.month == 12)
    base = rng.gamma(1.2, 1.6, size=n_l)
    alcohol = rng.poisson(base[:, None] * season[None, :])            # lsoa x month
    allatt = alcohol + rng.poisson(base[:, None] * 14 * season[None, :])

    def agg(level: str, fine: np.ndarray) -> tuple[list[str], np.ndarray]:
        codes = areas.loc[areas["area_level"] == level, "area_code"].tolist()
        m = members[members["area_code"].isin(codes) & members["lsoa_code"].isin(idx)]
        out_ = np.zeros((len(codes), fine.shape[1]), dtype=np.int64)
        pos = {c: i for i, c in enumerate(codes)}
        np.add.at(out_, m["area_code"].map(pos).to_numpy(), fine[m["lsoa_code"].map(idx).to_numpy()])
        return codes, out_

    tables: dict[str, pd.DataFrame] = {}
    for measure, fine in (("alcohol_attendances", alcohol), ("all_attendances", allatt)):
        parts = []
        for level in ("msoa", "lsoa"):
            codes, c = (lsoas, fine) if level == "lsoa" else agg(level, fine)
            parts.append(_frame(codes, level, MONTHS, _protect(c, policy)))
        tables[f"{PIPELINE}__{measure}__lsoa_month"] = pd.concat(parts, ignore_index=True)
        codes, c = agg("ward", fine)
        tables[f"{PIPELINE}__{measure}__ward_month"] = _frame(codes, "ward", MONTHS, _protect(c, policy))
        # boroughs and place by month x sex x age (split the totals multinomially)
        parts = []
        for level in ("la", "place"):
            codes, c = agg(level, fine)
            sex_p = np.array([0.48, 0.5, 0.02])
            age_p = np.array([0.05, 0.2, 0.22, 0.17, 0.15, 0.12, 0.09])
            cells = rng.multinomial(c.reshape(-1), np.outer(sex_p, age_p).reshape(-1))
            cells = cells.reshape(len(codes), n_m, 3, 7)
            full = np.zeros((len(codes), n_m, 4, 8), dtype=np.int64)
            full[:, :, :3, :7] = cells
            full[:, :, 3, :7] = cells.sum(axis=2)
            full[:, :, :, 7] = full[:, :, :, :7].sum(axis=3)
            for si, sex in enumerate(SEX + ["All"]):
                for ai, age in enumerate(AGE + ["All"]):
                    parts.append(_frame(codes, level, MONTHS, _protect(full[:, :, si, ai], policy),
                                        extra={"sex": sex, "age_band": age}))
        df = pd.concat(parts, ignore_index=True)
        tables[f"{PIPELINE}__{measure}__la_month"] = df[
            ["area_code", "area_level", "period_start", "period_end", "provisional", "sex", "age_band", "count"]]

    # expected births by catchment, due months running 8 months past the extract date
    due = pd.date_range("2019-04-01", periods=68, freq="MS")
    prov = np.arange(len(due)) >= 60
    parts = []
    for level in ("catchment", "la"):
        codes = areas.loc[areas["area_level"] == level, "area_code"].tolist()
        if level == "la":
            codes = ["E08000009"]
        lam = np.where(prov, 0.6, 1.0)[None, :] * (60 if level == "la" else 15)
        c = rng.poisson(np.broadcast_to(lam, (len(codes), len(due))))
        parts.append(_frame(codes, level, due, _protect(c, policy), provisional=prov))
    tables[f"{BIRTHS}__expected_births__catchment_month"] = pd.concat(parts, ignore_index=True)

    release_id = pub.new_release_id() + "-bench"
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    policy_json = policy.to_json()
    common = dict(source="Synthetic benchmark counts (Greater Manchester scale)",
                  coverage="synthetic: every LSOA of the place", data_controller="benchmark (synthetic)",
                  legal_basis="synthetic data, no personal data", dsa_reference="not applicable",
                  purpose="dashboard latency benchmark", policy=policy_json, release_id=release_id,
                  published_at=now, notes="extract date 2024-03-31; synthetic benchmark release", kind="count")
    cat = []
    for name in tables:
        pipe, measure, grain = name.split("__")
        levels = {"lsoa_month": ["msoa", "lsoa"], "ward_month": ["ward"], "la_month": ["la", "place"],
                  "catchment_month": ["catchment", "la"]}[grain]
        dims = ["area", "period", "sex", "age_band"] if grain == "la_month" else ["area", "period"]
        cat.append({**common, "table_name": name, "pipeline": pipe, "measure": measure,
                    "title": {"alcohol_attendances": "Alcohol-related A&E attendances",
                              "all_attendances": "All A&E attendances",
                              "expected_births": "Expected births"}[measure] + f": {grain.replace('_', ' by ')}",
                    "description": "synthetic", "unit": "pregnancies" if pipe == BIRTHS else "attendances",
                    "dimensions": dims, "additive_over": dims,
                    "polarity": "lower_is_better" if measure == "alcohol_attendances" else "none",
                    "denominator": None if pipe == BIRTHS else "population table, per 100,000",
                    "subset_of": "all_attendances" if measure == "alcohol_attendances" else None,
                    "area_levels": levels, "period_kind": "month"})
    cat.append({**common, "table_name": "population", "pipeline": "reference", "measure": "population",
                "title": "Resident population", "description": "ONS mid-year estimates", "unit": "persons",
                "dimensions": ["area", "year", "sex", "age_band"], "additive_over": ["area", "sex", "age_band"],
                "polarity": "none", "policy": None, "area_levels": sorted(set(areas["area_level"])),
                "period_kind": "year", "kind": "reference"})
    runs = pd.DataFrame([{
        "run_id": f"bench{i}", "release_id": release_id, "pipeline": p, "action": "run",
        "input_file": "synthetic", "input_sha256": "", "rows_read": 0, "rows_rejected": "{}",
        "rows_excluded": "{}", "persons_not_countable": 0,
        "tables_published": sum(1 for t in tables if t.startswith(p)),
        "cells_published": sum(len(d) for t, d in tables.items() if t.startswith(p)),
        "cells_suppressed": sum(int(d["count"].isna().sum()) for t, d in tables.items() if t.startswith(p)),
        "started_at": now, "finished_at": now, "code_version": pub.code_version(), "policy": policy.name,
        "note": "synthetic benchmark"} for i, p in enumerate((PIPELINE, BIRTHS))])

    rdir = out / "var" / "releases"
    rdir.mkdir(parents=True, exist_ok=True)
    final = rdir / f"{release_id}.duckdb"
    con = duckdb.connect(str(final))
    try:
        for name, df in tables.items():
            pub._create_from_df(con, name, df, pub._count_table_types(df))
        pub._create_from_df(con, "areas", areas)
        pub._create_from_df(con, "area_members", members)
        pub._create_from_df(con, "population", population)
        pub._create_from_df(con, "catalogue", pd.DataFrame(cat), pub.CATALOGUE_COLUMNS)
        pub._create_from_df(con, "runs", runs, pub.RUNS_COLUMNS)
        con.execute(
            "CREATE TABLE release AS SELECT ?::VARCHAR AS release_id, ?::TIMESTAMP AS published_at, "
            "NULL::VARCHAR AS previous_release_id, ?::VARCHAR[] AS pipelines_refreshed, ?::VARCHAR AS code_version",
            [release_id, now, [PIPELINE, BIRTHS], pub.code_version()])
        con.execute("CHECKPOINT")
    finally:
        con.close()
    link = out / "var" / "outcomes.duckdb"
    pub.switch_to(link, final)
    cells = sum(len(d) for d in tables.values())
    supp = sum(int(d["count"].isna().sum()) for d in tables.values())
    print(f"release {release_id}: {len(tables)} count tables, {cells:,} cells ({supp:,} suppressed), "
          f"{final.stat().st_size / 1e6:.1f} MB")
    return link


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------

# page -> (widget kind, key, new value) for the filter change
FILTER_CHANGES = {
    "overview": ("selectbox", "overview_borough", "E08000003"),
    "trends": ("selectbox", "trends_level", "ward"),
    "compare": ("selectbox", "compare_level", "lsoa"),
    "map": ("selectbox", "map_level", "lsoa"),
    "early_years": ("toggle", "early_forward", False),
    "governance": None,
}


_COMPONENTS = None


def _app(page: str):
    """A new session (AppTest) on ``page``. AppTest scans installed packages
    for custom components once per AppTest object (~0.7 s here), which a
    running server does once at start-up: the scan is shared between the
    sessions so that it is not counted as page time."""
    global _COMPONENTS
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=300)
    if _COMPONENTS is not None and hasattr(at, "_bidi_component_manager"):
        at._bidi_component_manager = _COMPONENTS
    if page != "overview":
        # land on the page directly, as a visitor following a link would
        at.switch_page(f"pages/{page}.py")
    return at


def _timed_run(at) -> float:
    global _COMPONENTS
    t = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - t
    _COMPONENTS = _COMPONENTS or getattr(at, "_bidi_component_manager", None)
    if at.exception:
        raise RuntimeError(f"page raised: {at.exception[0].value}")
    return elapsed


def _change(at, spec) -> float:
    kind, key, value = spec
    getattr(at, kind)(key=key).set_value(value)
    return _timed_run(at)


def _bare(log: list, runs: int, connect: bool) -> float:
    """Median time to run exactly the logged queries (fetching them as
    DataFrames, as the page does) on a read-only connection; ``connect``:
    opening the release file is part of it (a cold render opens it)."""
    import duckdb

    if not log:
        return 0.0
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        con = duckdb.connect(log[0][0], read_only=True)
        if not connect:
            t = time.perf_counter()
        for _path, sql, params in log:
            con.execute(sql, params).df()
        times.append(time.perf_counter() - t)
        con.close()
    return statistics.median(times)


def measure(link: Path, runs: int) -> list[dict]:
    os.environ["OUTCOMES_DB"] = str(link)
    from dashboard import queries
    from dashboard.server import apply_in_process

    apply_in_process()  # the options `outcomes serve` runs the app with

    # process warm-up (imports, first plotly/scipy use), not counted
    t = time.perf_counter()
    for page in FILTER_CHANGES:
        _timed_run(_app(page))
    warmup = time.perf_counter() - t
    print(f"process warm-up (imports and first use, all pages once): {warmup:.1f} s, not counted")
    results = []
    for page, change in FILTER_CHANGES.items():
        cold, warm, filt, logs_first, logs_change = [], [], [], [], []
        for _ in range(runs):
            queries.clear_caches()
            queries.QUERY_LOG = []
            at = _app(page)
            cold.append(_timed_run(at))
            logs_first.append(queries.QUERY_LOG)
            if change:
                queries.QUERY_LOG = []
                filt.append(_change(at, change))
                logs_change.append(queries.QUERY_LOG)
            queries.QUERY_LOG = None
            warm.append(_timed_run(_app(page)))
        bare_first = _bare(logs_first[0], runs, connect=True)
        bare_change = _bare(logs_change[0], runs, connect=False) if change else None
        results.append({
            "page": page,
            "cold": statistics.median(cold), "warm": statistics.median(warm),
            "change": statistics.median(filt) if filt else None,
            "cold_min": min(cold), "change_min": min(filt) if filt else None,
            "bare_first": bare_first, "bare_change": bare_change,
            "queries_first": len(logs_first[0]), "queries_change": len(logs_change[0]) if change else 0,
        })
    queries.QUERY_LOG = None
    return results


def report(results: list[dict]) -> bool:
    ok = True
    head = (f"{'page':<12} {'first(cold)':>11} {'first(warm)':>11} {'bare q':>8} {'ratio':>6} {'queries':>7}"
            f" | {'filter chg':>10} {'bare q':>8} {'ratio':>6} {'queries':>7} | verdict")
    print("\nserver-side times, medians (ms); ratio = page / bare queries")
    print(head)
    print("-" * len(head))
    for r in results:
        def lim(bare):
            return max(3 * bare, bare + 0.200)
        verdicts = []
        if r["cold"] >= 1.0:
            verdicts.append("first render >= 1 s")
        if r["cold"] > lim(r["bare_first"]):
            verdicts.append("first render > max(3x bare, bare+200ms)")
        if r["change"] is not None:
            if r["change"] >= 0.300:
                verdicts.append("filter change >= 300 ms")
            if r["change"] > lim(r["bare_change"]):
                verdicts.append("filter change > max(3x bare, bare+200ms)")
        ok &= not verdicts
        def ratio(t, bare):
            return f"{t / bare:>6.1f}" if bare > 0 else f"{'-':>6}"
        ch = (f"{r['change'] * 1000:>10.0f} {r['bare_change'] * 1000:>8.0f} "
              f"{ratio(r['change'], r['bare_change'])} {r['queries_change']:>7}"
              if r["change"] is not None else f"{'n/a':>10} {'':>8} {'':>6} {'':>7}")
        print(f"{r['page']:<12} {r['cold'] * 1000:>11.0f} {r['warm'] * 1000:>11.0f} {r['bare_first'] * 1000:>8.0f} "
              f"{ratio(r['cold'], r['bare_first'])} {r['queries_first']:>7} | {ch} | "
              + ("meets targets" if not verdicts else "; ".join(verdicts)))
    print("\ntargets: first render < 1000 ms (cold, median); filter change < 300 ms; "
          "page <= max(3 x bare queries, bare + 200 ms)")
    print("fastest of the runs (less disturbed by other processes): " + "; ".join(
        f"{r['page']} {r['cold_min'] * 1000:.0f}" + (f"/{r['change_min'] * 1000:.0f}" if r["change_min"] else "")
        for r in results) + " ms (first render cold / filter change)")
    return ok


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--out", help="folder for the benchmark release (default: a temporary folder)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    logging.disable(logging.WARNING)
    import psutil

    print(f"CPU cores: {psutil.cpu_count(logical=True)}; runs per figure: {args.runs}; "
          f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="outcomes-bench-dashboard-") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        link = build_release(out)
        print(f"built in {time.perf_counter() - t:.1f} s")
        results = measure(link, args.runs)
        from dashboard import queries

        queries.clear_caches()
    ok = report(results)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
          "(other processes on the machine inflate these times)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
