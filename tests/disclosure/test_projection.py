"""The projected system against the full atom formulation on a release shaped like A&E's.

Two age schemes whose bands cross (``0-7, 8-17, 18+`` by month; ``0-4, 5-11,
12+`` by year), areas at two levels by month and per LSOA by year, sex with
its All margin only where the age detail is: the projection merges the two
age schemes' profiles and glues the LSOA-by-year and group-by-month profiles
along a tree. Feasible ranges must equal those of the brute-force attacker
(one variable per LSOA x month x sex x single year of age), for random
suppression patterns and for the engine's own output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.framework.disclosure.audit import audit_release, feasible_ranges
from pipelines.framework.disclosure.meta import TableMeta
from pipelines.framework.disclosure.policy import load_policy
from pipelines.framework.disclosure.primary import primary_mask
from pipelines.framework.disclosure.relations import build_system
from pipelines.framework.disclosure.secondary import secondary_suppress

from ._util import SEXES, brute_force, frame, period, publish

LSOAS = ["L1", "L2", "L3"]
GROUPS = {"TOP": LSOAS, "G1": ["L1", "L2"], "G2": ["L3"], "W1": ["L1"], "W2": ["L2", "L3"]}
MONTHS = 4
SCHEME_A = [("0-7", 0, 7), ("8-17", 8, 17), ("18+", 18, 99)]
SCHEME_B = [("0-4", 0, 4), ("5-11", 5, 11), ("12+", 12, 99)]
AGE_CLASSES = [(0, 4), (5, 7), (8, 11), (12, 17), (18, 99)]     # the true counts' age pieces


def release(seed: int):
    rng = np.random.default_rng(seed)
    fine = rng.poisson(1.2, size=(len(LSOAS), MONTHS, len(SEXES), len(AGE_CLASSES)))

    def count(lsoas, months, sexes, band):
        li = [LSOAS.index(x) for x in lsoas]
        ai = [k for k, (a, b) in enumerate(AGE_CLASSES) if band is None or (a >= band[0] and b <= band[1])]
        return int(fine[np.ix_(li, months, sexes, ai)].sum())

    all_sex = list(range(len(SEXES)))
    recs_a = []
    for area in ("TOP", "G1", "G2"):
        for m in range(MONTHS):
            s, e = period(f"2023-{4 + m:02d}-01")
            for k, sex in enumerate(SEXES + ["All"]):
                sx = all_sex if sex == "All" else [k]
                for lab, a, b in SCHEME_A + [("All", 0, 99)]:
                    recs_a.append(dict(area_code=area, area_level="la" if area == "TOP" else "msoa",
                                       period_start=s, period_end=e, sex=sex, age_band=lab,
                                       count=count(GROUPS[area], [m], sx, (a, b))))
    s, e = period("2023-04-01", MONTHS)
    recs_b = [dict(area_code=area, area_level="la" if area == "TOP" else "msoa", period_start=s, period_end=e,
                   sex=sex, age_band=lab, count=count(GROUPS[area], list(range(MONTHS)),
                                                      all_sex if sex == "All" else [k], (a, b)))
              for area in ("TOP", "G1", "G2") for k, sex in enumerate(SEXES + ["All"])
              for lab, a, b in SCHEME_B + [("All", 0, 99)]]
    recs_w = []
    for area in ("W1", "W2"):
        for m in range(MONTHS):
            s, e = period(f"2023-{4 + m:02d}-01")
            recs_w.append(dict(area_code=area, area_level="ward", period_start=s, period_end=e,
                               count=count(GROUPS[area], [m], all_sex, None)))
    s, e = period("2023-04-01", MONTHS)
    recs_l = [dict(area_code=l, area_level="lsoa", period_start=s, period_end=e,
                   count=count([l], list(range(MONTHS)), all_sex, None)) for l in LSOAS]
    tables = {"by_month": frame(recs_a), "by_year": frame(recs_b), "wards": frame(recs_w), "lsoas": frame(recs_l)}
    full = ("area", "period", "sex", "age_band")
    meta = {
        "by_month": TableMeta("by_month", "ae", "att", ("sex", "age_band"), full),
        "by_year": TableMeta("by_year", "ae", "att", ("sex", "age_band"), full),
        "wards": TableMeta("wards", "ae", "att", (), ("area", "period")),
        "lsoas": TableMeta("lsoas", "ae", "att", (), ("area", "period")),
    }
    am = pd.DataFrame([(a, l) for a, ls in GROUPS.items() for l in ls] + [(l, l) for l in LSOAS],
                      columns=["area_code", "lsoa_code"])
    return tables, meta, am


def compare(published, meta, am, policy):
    ours = feasible_ranges(published, meta, am, policy)
    theirs, bad = brute_force(published, am, policy)
    for n in published:
        t = theirs[n]["target"].to_numpy(bool)
        assert (ours[n]["lo"].notna().to_numpy() == t).all()
        np.testing.assert_allclose(ours[n]["lo"].to_numpy()[t], theirs[n]["lo"].to_numpy()[t], atol=1e-5)
        a, b = ours[n]["hi"].to_numpy()[t], theirs[n]["hi"].to_numpy()[t]
        inf = np.isinf(a) & np.isinf(b)
        assert np.all(inf | (np.abs(np.where(inf, 0, a - b)) < 1e-5)), n
    return bad


def test_projection_is_smaller_than_the_atom_product():
    tables, meta, am = release(0)
    system = build_system({n: t.drop(columns=["count"]) for n, t in tables.items()}, meta, am)
    atoms = len(LSOAS) * MONTHS * len(SEXES) * 5      # LSOA x month x sex x age piece
    assert system.n_vars <= atoms


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_projection_matches_full_formulation(seed):
    tables, meta, am = release(seed)
    pol = load_policy("suppress-under-10")
    rng = np.random.default_rng(100 + seed)
    masks = {n: (rng.random(len(t)) < 0.3) & (t["count"].to_numpy() > 0) for n, t in tables.items()}
    compare({n: publish(tables[n], masks[n], pol) for n in tables}, meta, am, pol)


@pytest.mark.slow
@pytest.mark.parametrize("policy_name", ["nhs-digital", "opensafely-midpoint6"])
def test_engine_on_mixed_release(policy_name):
    tables, meta, am = release(7)
    pol = load_policy(policy_name)
    primary = {n: primary_mask(t["count"].to_numpy(), pol) for n, t in tables.items()}
    mask = secondary_suppress(tables, meta, am, pol, primary)
    published = {n: publish(tables[n], mask[n], pol) for n in tables}
    assert audit_release(published, meta, am, pol).passed
    assert compare(published, meta, am, pol) == []
