"""Published hard cases, rebuilt here from their numbers (no code copied).

* tau-Argus 4.1 user's manual, section 2.15 "Audit" (github:sdcTools/tauargus,
  TauManualV4.1.pdf, pp. 31-32): a 3x2 table with margins, four cells
  suppressed; feasibility interval of cell (1,1) is [3, 6].
* sdcTable, tests/testthat/test-simpleheuristic.R (github:sdcTools/sdcTable):
  a 4x4 table (rows w,x,y,z; columns a,b,c,d) with nine suppressions, two in
  every row and column, yet w|b = 47 is exactly computable (rows w+x against
  columns a+c). With one more suppression the package's ``attack()`` gives
  w|b in [0, 78].
* sdcTools/UserSupport issue 136 "sdcTable::protectLinkedTables can be
  unsafe": regions A,B,I,J,K,L,M,N with counts 2,2,8,8,3,3,3,7, grouped two
  ways (county-1 = A,B,I,J / county-2 = K,L,M,N; and BIG = L,M / small = the
  rest). The suppression pattern below is ours: the cells with count <= 3
  suppressed, which each grouping protects on its own (every group has two or
  more hidden cells), while combining the two groupings gives K exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.framework.disclosure.audit import audit_release, feasible_ranges
from pipelines.framework.disclosure.meta import TableMeta
from pipelines.framework.disclosure.policy import Policy
from pipelines.framework.disclosure.secondary import secondary_suppress

from ._util import brute_force, frame, period

S, E = period("2024-04-01")


def exact_policy(threshold: int, floor_zero: bool = True) -> Policy:
    """Counts published exactly; suppressed counts known only to be >= 0 (as in sdcTable/tau-Argus)."""
    return Policy("test", "test", threshold=threshold, suppress_small=True, zeros_shown=not floor_zero,
                  rounding="none", rounding_base=1)


def two_way(inner: dict[str, list[int]], bands: list[str]):
    """Rows = LSOAs under one LA, columns = age bands; margins computed from the inner cells."""
    recs = []
    for area, vals in inner.items():
        for b, v in zip(bands, vals):
            recs.append(dict(area_code=area, area_level="lsoa", period_start=S, period_end=E, age_band=b, count=v))
        recs.append(dict(area_code=area, area_level="lsoa", period_start=S, period_end=E, age_band="All",
                         count=sum(vals)))
    cols = np.array(list(inner.values())).sum(axis=0)
    for b, v in zip(bands, cols):
        recs.append(dict(area_code="TOT", area_level="la", period_start=S, period_end=E, age_band=b, count=v))
    recs.append(dict(area_code="TOT", area_level="la", period_start=S, period_end=E, age_band="All",
                     count=int(cols.sum())))
    am = pd.DataFrame({"area_code": list(inner) * 2 + ["TOT"] * len(inner), "lsoa_code": list(inner) * 3})
    meta = {"t": TableMeta("t", "p", "m", ("age_band",), ("area", "period", "age_band"))}
    return {"t": frame(recs)}, meta, am


def hide(df: pd.DataFrame, cells: list[tuple[str, str]], col: str = "age_band") -> pd.DataFrame:
    mask = np.zeros(len(df), bool)
    for a, b in cells:
        mask |= (df.area_code == a).to_numpy() & (df[col] == b).to_numpy()
    out = df.drop(columns=["count"]).copy()
    out["count"] = pd.array(np.where(mask, pd.NA, df["count"]), dtype="Int64")
    return out


def rng_of(ranges: pd.DataFrame, area: str, band: str) -> tuple[float, float]:
    r = ranges[(ranges.area_code == area) & (ranges.age_band == band)].iloc[0]
    return float(r.lo), float(r.hi)


# --- tau-Argus manual, section 2.15 -------------------------------------------------------

def test_tau_argus_manual_audit_example():
    # rows 1..3 (LSOAs R1..R3) x columns 1, 2 (two age bands); row totals 7, 3, 6; column totals 9, 7;
    # cells (1,1), (1,2), (2,1), (2,2) suppressed, row 3 published as 3, 3. True values: any
    # consistent ones (here 4, 3 / 2, 1).
    tables, meta, am = two_way({"R1": [4, 3], "R2": [2, 1], "R3": [3, 3]}, ["0-17", "18+"])
    assert tables["t"]["count"].tolist()[-3:] == [9, 7, 16]
    pub = {"t": hide(tables["t"], [("R1", "0-17"), ("R1", "18+"), ("R2", "0-17"), ("R2", "18+")])}
    pol = exact_policy(threshold=9)
    ranges = feasible_ranges(pub, meta, am, pol)["t"]
    assert rng_of(ranges, "R1", "0-17") == (3.0, 6.0)     # the manual's X11 interval
    assert rng_of(ranges, "R1", "18+") == (1.0, 4.0)
    assert rng_of(ranges, "R2", "0-17") == (0.0, 3.0)
    res = audit_release(pub, meta, am, pol)
    assert not res.passed                                  # width 4 < 5
    assert res.tables["t"].narrowest_width == 4
    msg = res.failure_message()
    assert "table t" in msg and "area_code" in msg and "(" in msg


# --- sdcTable test-simpleheuristic.R -----------------------------------------------------------

SDC_BANDS = ["0-9", "10-19", "20-29", "30+"]     # stand-ins for columns a, b, c, d
SDC_INNER = {"w": [30, 47, 64, 89], "x": [90, 124, 5, 31], "y": [92, 100, 59, 85], "z": [800, 991, 651, 685]}
SDC_SUPPRESSED = [("w", "a"), ("w", "b"), ("w", "c"), ("x", "a"), ("x", "c"), ("y", "b"), ("y", "d"),
                  ("z", "b"), ("z", "d")]
COL = dict(zip("abcd", SDC_BANDS))


def sdc_nine(df: pd.DataFrame) -> np.ndarray:
    """Mask of sdcTable's nine suppressed cells in ``two_way(SDC_INNER, SDC_BANDS)``."""
    mask = np.zeros(len(df), bool)
    for r, c in SDC_SUPPRESSED:
        mask |= (df.area_code == r).to_numpy() & (df.age_band == COL[c]).to_numpy()
    return mask


def test_sdctable_two_per_line_yet_exactly_computable():
    tables, meta, am = two_way(SDC_INNER, SDC_BANDS)
    cells = [(r, COL[c]) for r, c in SDC_SUPPRESSED]
    pol = exact_policy(threshold=50)   # w|b = 47 counts as "small" so the rule applies to it
    pub = {"t": hide(tables["t"], cells)}
    ranges = feasible_ranges(pub, meta, am, pol)["t"]
    assert rng_of(ranges, "w", COL["b"]) == (47.0, 47.0)
    res = audit_release(pub, meta, am, pol)
    assert not res.passed
    assert res.tables["t"].worst_cell["area_code"] == "w" and res.tables["t"].worst_cell["age_band"] == "10-19"
    assert res.tables["t"].worst_range == (47.0, 47.0)
    # one more suppression (x|d = 31) and sdcTable's attack() bounds are reproduced: w|b in [0, 78]
    pub2 = {"t": hide(tables["t"], cells + [("x", COL["d"])])}
    ranges2 = feasible_ranges(pub2, meta, am, pol)["t"]
    assert rng_of(ranges2, "w", COL["b"]) == (0.0, 78.0)
    assert audit_release(pub2, meta, am, pol).passed


def test_sdctable_engine_repairs_with_one_small_complement():
    tables, meta, am = two_way(SDC_INNER, SDC_BANDS)
    df = tables["t"]
    prim = sdc_nine(df)
    pol = exact_policy(threshold=50)
    mask = secondary_suppress(tables, meta, am, pol, {"t": prim})["t"]
    added = df[mask & ~prim]
    assert len(added) == 1 and int(added["count"].iloc[0]) <= 124   # no margin, no large cell
    pub = {"t": hide(df, [(a, b) for a, b in zip(df.area_code[mask], df.age_band[mask])])}
    assert audit_release(pub, meta, am, pol).passed
    _, bad = brute_force(pub, am, pol)
    assert bad == []


# --- UserSupport issue 136: two overlapping groupings of the same regions ---------------------

REGIONS = ["A", "B", "I", "J", "K", "L", "M", "N"]
COUNTS = [2, 2, 8, 8, 3, 3, 3, 7]
COUNTY = {"county-1": ["A", "B", "I", "J"], "county-2": ["K", "L", "M", "N"]}
GROUP = {"BIG": ["L", "M"], "small": ["A", "B", "I", "J", "K", "N"]}


def issue136(groupings: list[dict]):
    area_sets = {"Total": REGIONS}
    for g in groupings:
        area_sets.update(g)
    am = pd.DataFrame([(a, r) for a, rs in area_sets.items() for r in rs] + [(r, r) for r in REGIONS],
                      columns=["area_code", "lsoa_code"])
    level = {"Total": "place", **{k: "la" for k in COUNTY}, **{k: "catchment" for k in GROUP}}
    val = dict(zip(REGIONS, COUNTS))
    tables, meta = {}, {}
    for i, g in enumerate(groupings):
        recs = [dict(area_code=r, area_level="lsoa", period_start=S, period_end=E, count=val[r]) for r in REGIONS]
        recs += [dict(area_code=a, area_level=level[a], period_start=S, period_end=E, count=sum(val[r] for r in rs))
                 for a, rs in list(g.items()) + [("Total", REGIONS)]]
        tables[f"t{i}"] = frame(recs)
        meta[f"t{i}"] = TableMeta(f"t{i}", "p", "m", (), ("area", "period"))
    return tables, meta, am


def hidden_small(tables):
    out = {}
    for n, df in tables.items():
        mask = (df["count"] <= 3).to_numpy()
        pub = df.drop(columns=["count"]).copy()
        pub["count"] = pd.array(np.where(mask, pd.NA, df["count"]), dtype="Int64")
        out[n] = pub
    return out


def test_issue136_each_grouping_alone_is_safe_but_not_together():
    pol = Policy("test", "test", threshold=3, suppress_small=True, zeros_shown=False, rounding="none",
                 rounding_base=1)
    for g in (COUNTY, GROUP):
        tables, meta, am = issue136([g])
        assert audit_release(hidden_small(tables), meta, am, pol).passed
    tables, meta, am = issue136([COUNTY, GROUP])
    pub = hidden_small(tables)
    res = audit_release(pub, meta, am, pol)
    assert not res.passed
    ranges = feasible_ranges(pub, meta, am, pol)
    k = ranges["t0"][ranges["t0"].area_code == "K"].iloc[0]
    assert (k.lo, k.hi) == (3.0, 3.0)           # K = small - (A + B) = 7 - 4, from both groupings
    # the engine protects the combination; the brute-force attacker agrees
    prim = {n: (t["count"] <= 3).to_numpy() for n, t in tables.items()}
    mask = secondary_suppress(tables, meta, am, pol, prim)
    out = {}
    for n, df in tables.items():
        p = df.drop(columns=["count"]).copy()
        p["count"] = pd.array(np.where(mask[n], pd.NA, df["count"]), dtype="Int64")
        out[n] = p
    assert audit_release(out, meta, am, pol).passed
    _, bad = brute_force(out, am, pol)
    assert bad == []


# --- the gate: the audit overrules an engine that missed a leak -------------------------------

def test_gate_repairs_what_the_engine_missed(monkeypatch):
    """If secondary suppression returns a pattern the full audit fails (here: an engine that
    returns sdcTable's nine suppressions unchanged on its first call), the gate does not
    publish it: it hands the audit's failing cells back to the engine, which hides a related
    cell for each, and audits again. The release that comes out passes the independent
    brute-force attacker."""
    from pipelines.framework.disclosure import gate, secondary
    from pipelines.framework.release import DraftRelease, DraftTable
    from pipelines.framework.spec import Breakdown, Measure, Table

    tables, _meta, am = two_way(SDC_INNER, SDC_BANDS)
    df = tables["t"]
    bands = tuple((b, 10 * i, 10 * i + 9) for i, b in enumerate(SDC_BANDS))
    spec = Table(name="t", measure="m", area_levels=("lsoa", "la"), period="month",
                 breakdowns=(Breakdown("age_band", "age", bands=bands),))
    draft = DraftRelease(pipeline="p", tables=[DraftTable(spec, Measure("m", "m", "events"), df)],
                         area_members=am, areas=pd.DataFrame())
    pol = Policy("test", "test", threshold=50, suppress_small=False, zeros_shown=False, rounding="none",
                 rounding_base=1, secondary_suppression=True)
    nine = sdc_nine(df)
    real = secondary.secondary_suppress
    calls: list[dict | None] = []

    def forgetful(tables_, meta_, members_, policy_, primary_, previous=None, must_fix=None, points=None):
        calls.append(must_fix)
        if len(calls) == 1:
            return {"t": nine.copy()}          # misses that w|b = 47 is exactly computable
        return real(tables_, meta_, members_, policy_, primary_, previous=previous, must_fix=must_fix,
                    points=points)

    monkeypatch.setattr(secondary, "secondary_suppress", forgetful)
    out = gate.protect(draft, pol)
    assert len(calls) == 2
    wb = int(np.flatnonzero((df.area_code == "w").to_numpy() & (df.age_band == COL["b"]).to_numpy())[0])
    assert wb in calls[1]["t"].tolist()       # the audit's failing cell was handed back
    published = out.tables["t"]
    hidden = published["count"].isna().to_numpy()
    assert (hidden & nine).sum() == nine.sum() and hidden.sum() > nine.sum()
    _, bad = brute_force({"t": published}, am, pol)
    assert bad == []
