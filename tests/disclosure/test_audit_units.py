"""The audit on tiny tables whose feasible ranges are known by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.framework.disclosure.audit import audit_release, feasible_ranges
from pipelines.framework.disclosure.meta import TableMeta
from pipelines.framework.disclosure.policy import load_policy
from pipelines.framework.disclosure.primary import primary_mask
from pipelines.framework.disclosure.secondary import secondary_suppress

from ._util import brute_force, frame, period, publish

S, E = period("2024-04-01")
META = {"t": TableMeta("t", "p", "m", ("sex",), ("area", "period", "sex"))}
AM = pd.DataFrame({"area_code": ["L1", "L2", "LA", "LA"], "lsoa_code": ["L1", "L2", "L1", "L2"]})


def two_by_two(a, b, c, d):
    """LSOAs L1, L2 in LA x sex Female, Male, with All margins (Other = 0 throughout)."""
    inner = {"L1": (a, b), "L2": (c, d)}
    recs = []
    for area, (f, m) in inner.items():
        for sex, v in (("Female", f), ("Male", m), ("Other or not known", 0), ("All", f + m)):
            recs.append(dict(area_code=area, area_level="lsoa", period_start=S, period_end=E, sex=sex, count=v))
    for sex, v in (("Female", a + c), ("Male", b + d), ("Other or not known", 0), ("All", a + b + c + d)):
        recs.append(dict(area_code="LA", area_level="la", period_start=S, period_end=E, sex=sex, count=v))
    return frame(recs)


def hide(df, cells, policy):
    mask = np.zeros(len(df), bool)
    for area, sex in cells:
        mask |= (df.area_code == area).to_numpy() & (df.sex == sex).to_numpy()
    return publish(df, mask, policy)


def test_single_suppression_is_recomputed_exactly():
    pol = load_policy("suppress-under-10")
    df = two_by_two(3, 10, 12, 20)
    pub = {"t": hide(df, [("L1", "Female")], pol)}
    res = audit_release(pub, META, AM, pol)
    assert not res.passed
    t = res.tables["t"]
    assert t.worst_range == (3.0, 3.0) and t.narrowest_width == 1
    assert t.worst_cell["area_code"] == "L1" and t.worst_cell["sex"] == "Female"
    assert "table t" in res.failure_message() and "(3.0, 3.0)" in res.failure_message()


def test_four_suppressed_pass_when_the_numbers_allow():
    pol = load_policy("suppress-under-10")
    cells = [("L1", "Female"), ("L1", "Male"), ("L2", "Female"), ("L2", "Male")]
    # a + b = 13, a + c = 15: a in [1, 12] (b, c >= 1 since 0 would have been shown)
    pub = {"t": hide(two_by_two(3, 10, 12, 20), cells, pol)}
    r = feasible_ranges(pub, META, AM, pol)["t"]
    a = r[(r.area_code == "L1") & (r.sex == "Female")].iloc[0]
    assert (a.lo, a.hi) == (1.0, 12.0)
    assert audit_release(pub, META, AM, pol).passed


def test_four_suppressed_fail_when_the_numbers_do_not():
    pol = load_policy("suppress-under-10")
    cells = [("L1", "Female"), ("L1", "Male"), ("L2", "Female"), ("L2", "Male")]
    # a + b = 5, a + c = 7: a in [1, 4], width 4 < 5
    pub = {"t": hide(two_by_two(3, 2, 4, 20), cells, pol)}
    r = feasible_ranges(pub, META, AM, pol)["t"]
    a = r[(r.area_code == "L1") & (r.sex == "Female")].iloc[0]
    assert (a.lo, a.hi) == (1.0, 4.0)
    res = audit_release(pub, META, AM, pol)
    assert not res.passed and res.tables["t"].narrowest_width == 4


def test_floor_differs_between_presets():
    df = two_by_two(3, 2, 4, 20)
    cells = [("L1", "Female"), ("L1", "Male"), ("L2", "Female"), ("L2", "Male")]
    exact = load_policy("suppress-under-10")
    # same data, cells known >= 0 (opensafely reads suppressed as possibly 0): a in [0, 5] -> width 6
    import dataclasses
    zero_floor = dataclasses.replace(exact, zeros_shown=False)
    r = feasible_ranges({"t": hide(df, cells, zero_floor)}, META, AM, zero_floor)["t"]
    a = r[(r.area_code == "L1") & (r.sex == "Female")].iloc[0]
    assert (a.lo, a.hi) == (0.0, 5.0)


def test_rounded_neighbours_give_protection():
    # nhs-digital: 5 hidden; 40 and 45 published as ranges 38..42 and 43..47 -> 5 in [1, 9]
    pol = load_policy("nhs-digital")
    df = two_by_two(5, 40, 30, 30)
    pub = {"t": publish(df, primary_mask(df["count"].to_numpy(), pol), pol)}
    r = feasible_ranges(pub, META, AM, pol)["t"]
    a = r[(r.area_code == "L1") & (r.sex == "Female")].iloc[0]
    assert a.lo == 1.0 and a.hi >= 9.0
    assert audit_release(pub, META, AM, pol).passed


def test_midpoint_published_small_value_narrowed_by_its_parts():
    # opensafely-midpoint6: a published 3 stands for 1..6. A total of 3 (1..6) over three
    # parts each published 3 (each >= 1) pins each part to 1..4: width 4 < 5.
    pol = load_policy("opensafely-midpoint6")
    recs = []
    for sex, v in (("Female", 1), ("Male", 1), ("Other or not known", 2), ("All", 4)):
        recs.append(dict(area_code="L1", area_level="lsoa", period_start=S, period_end=E, sex=sex, count=v))
    df = frame(recs)
    am = pd.DataFrame({"area_code": ["L1"], "lsoa_code": ["L1"]})
    pub = {"t": publish(df, np.zeros(len(df), bool), pol)}
    assert pub["t"]["count"].tolist() == [3, 3, 3, 3]
    res = audit_release(pub, META, am, pol)
    assert not res.passed and res.tables["t"].worst_range == (1.0, 4.0)
    mask = secondary_suppress({"t": df}, META, am, pol, {"t": np.zeros(len(df), bool)})
    pub2 = {"t": publish(df, mask["t"], pol)}
    assert audit_release(pub2, META, am, pol).passed
    assert brute_force(pub2, am, pol)[1] == []


# --- earlier release -----------------------------------------------------------------------

def row_table(a, b, c):
    recs = [dict(area_code="L1", area_level="lsoa", period_start=S, period_end=E, sex=s, count=v)
            for s, v in (("Female", a), ("Male", b), ("Other or not known", c), ("All", a + b + c))]
    return frame(recs)


def test_previous_release_combination_is_audited():
    pol = load_policy("suppress-under-10")
    am = pd.DataFrame({"area_code": ["L1"], "lsoa_code": ["L1"]})
    df = row_table(3, 30, 20)
    # earlier release hid Female and Male (Other = 20 shown); this one hides Female and Other
    prev = {"t": publish(df, np.array([True, True, False, False]), pol)}
    cur = {"t": publish(df, np.array([True, False, True, False]), pol)}
    assert audit_release(prev, META, am, pol).passed
    assert audit_release(cur, META, am, pol).passed
    res = audit_release(cur, META, am, pol, previous=prev)
    assert not res.passed and res.tables["t"].worst_range == (3.0, 3.0)
    # the engine, told of the earlier release, avoids the combination
    prim = {"t": primary_mask(df["count"].to_numpy(), pol)}
    alone = secondary_suppress({"t": df}, META, am, pol, prim)["t"]
    assert alone.tolist() == [True, False, True, False]        # smallest complement: Other = 20
    both = secondary_suppress({"t": df}, META, am, pol, prim, previous=prev)["t"]
    assert audit_release({"t": publish(df, both, pol)}, META, am, pol, previous=prev).passed


def test_revised_count_outside_old_range_is_ignored():
    pol = load_policy("suppress-under-10")
    am = pd.DataFrame({"area_code": ["L1"], "lsoa_code": ["L1"]})
    old = row_table(3, 30, 20)
    new = row_table(3, 30, 40)     # Other revised 20 -> 40
    prev = {"t": publish(old, np.array([True, True, False, False]), pol)}
    cur = {"t": publish(new, np.array([True, False, True, False]), pol)}
    assert audit_release(cur, META, am, pol, previous=prev).passed


# --- relations across periods and measures ----------------------------------------------------

def months_and_year(month_vals, year_val, distinct: bool):
    recs = []
    for m, v in enumerate(month_vals):
        s, e = period(f"2024-{4 + m:02d}-01")
        recs.append(dict(area_code="L1", area_level="lsoa", period_start=s, period_end=e, count=v))
    s, e = period("2024-04-01", len(month_vals))
    recs.append(dict(area_code="L1", area_level="lsoa", period_start=s, period_end=e, count=year_val))
    add = ("area",) if distinct else ("area", "period")
    meta = {"t": TableMeta("t", "p", "persons" if distinct else "events", (), add)}
    return {"t": frame(recs)}, meta


@pytest.mark.parametrize("distinct", [False, True])
def test_distinct_persons_do_not_add_over_periods(distinct):
    pol = load_policy("suppress-under-10")
    am = pd.DataFrame({"area_code": ["L1"], "lsoa_code": ["L1"]})
    # three months 3, 40, 12 and a quarter of 55 (events) or 50 (persons: some came twice)
    tables, meta = months_and_year([3, 40, 12], 50 if distinct else 55, distinct)
    pub = {"t": publish(tables["t"], np.array([True, False, False, False]), pol)}
    r = feasible_ranges(pub, meta, am, pol)["t"].iloc[0]
    if distinct:
        # quarter <= sum of months -> m1 >= 50 - 52 (no information); quarter >= each month -> m1 <= 50
        assert (r.lo, r.hi) == (1.0, 50.0)
        assert audit_release(pub, meta, am, pol).passed
    else:
        assert (r.lo, r.hi) == (3.0, 3.0)
        assert not audit_release(pub, meta, am, pol).passed


def test_subset_of_bounds_the_subset_measure():
    pol = load_policy("suppress-under-10")
    am = pd.DataFrame({"area_code": ["L1"], "lsoa_code": ["L1"]})
    big = row_table(12, 30, 20)            # all attendances
    small = row_table(4, 8, 0)             # alcohol-related: a subset
    meta = {
        "all": TableMeta("all", "p", "att", ("sex",), ("area", "period", "sex")),
        "alc": TableMeta("alc", "p", "alc", ("sex",), ("area", "period", "sex"), subset_of="att"),
    }
    pub = {"all": publish(big, np.zeros(4, bool), pol),
           "alc": publish(small, np.array([True, True, False, False]), pol)}
    r = feasible_ranges(pub, meta, am, pol)["alc"]
    # Female + Male = 12; Female <= 12 (all attendances, Female) adds nothing; Male <= 30 nothing
    assert (r.iloc[0].lo, r.iloc[0].hi) == (1.0, 11.0)
    big2 = row_table(12, 9, 20)
    pub2 = {"all": publish(big2, np.array([False, True, False, False]), pol) , "alc": pub["alc"]}
    pub2["all"]["count"] = pd.array([12, pd.NA, 20, 41], dtype="Int64")
    r2 = feasible_ranges(pub2, meta, am, pol)["alc"]
    # all-Male = 41 - 12 - 20 = 9, so alcohol Male <= 9 and alcohol Female >= 12 - 9 = 3
    assert (r2.iloc[0].lo, r2.iloc[0].hi) == (3.0, 11.0)
    mf = brute_force(pub2, am, pol, subset={"alc": "att"}, measure_of={"all": "att", "alc": "alc"})[0]["alc"]
    assert (mf.iloc[0].lo, mf.iloc[0].hi) == (3.0, 11.0)
