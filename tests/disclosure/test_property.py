"""Property: after the engine, an independent brute-force attacker finds no leak.

Random small releases: 4 LSOAs under a top area, grouped two ways that are not
nested in each other (two "msoa" and two "ward" groups), monthly counts for a
financial year by sex (with the All margin) for the groups and the top, and
yearly counts per LSOA (all sexes); any preset policy. The attacker
(``_util.brute_force``) uses the full LSOA x month x sex atom formulation with
scipy's linprog; the engine and audit use the projected system and HiGHS.
The attacker's exact ranges must also equal the audit's (``feasible_ranges``),
which checks the projection is exact on these instances.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.framework.disclosure.audit import audit_release, feasible_ranges
from pipelines.framework.disclosure.meta import TableMeta
from pipelines.framework.disclosure.policy import load_policy, preset_names
from pipelines.framework.disclosure.primary import primary_mask
from pipelines.framework.disclosure.secondary import secondary_suppress

from ._util import SEXES, brute_force, frame, period, publish

LSOAS = ["L1", "L2", "L3", "L4"]


def build(fine: np.ndarray, groups_a, groups_b, n_months: int):
    """fine: lsoa x month x sex counts."""
    areas = {"TOP": LSOAS}
    for k, g in enumerate(groups_a):
        areas[f"M{k}"] = [LSOAS[i] for i in g]
    for k, g in enumerate(groups_b):
        areas[f"W{k}"] = [LSOAS[i] for i in g]
    level = {"TOP": "la", **{a: "msoa" for a in areas if a[0] == "M"}, **{a: "ward" for a in areas if a[0] == "W"}}
    am = pd.DataFrame([(a, l) for a, ls in areas.items() for l in ls] + [(l, l) for l in LSOAS],
                      columns=["area_code", "lsoa_code"])
    recs = []
    for a, ls in areas.items():
        ii = [LSOAS.index(x) for x in ls]
        for m in range(n_months):
            s, e = period(f"2023-{4 + m:02d}-01") if m < 9 else period(f"2024-{m - 8:02d}-01")
            for k, sex in enumerate(SEXES + ["All"]):
                v = fine[ii, m, :].sum() if sex == "All" else fine[ii, m, k].sum()
                recs.append(dict(area_code=a, area_level=level[a], period_start=s, period_end=e, sex=sex, count=v))
    monthly = frame(recs)
    s, e = period("2023-04-01", n_months)
    yearly = frame([dict(area_code=l, area_level="lsoa", period_start=s, period_end=e, count=fine[i].sum())
                    for i, l in enumerate(LSOAS)])
    tables = {"monthly": monthly, "yearly": yearly}
    meta = {
        "monthly": TableMeta("monthly", "p", "att", ("sex",), ("area", "period", "sex")),
        "yearly": TableMeta("yearly", "p", "att", (), ("area", "period")),
    }
    return tables, meta, am


partitions = st.sampled_from([
    ([(0, 1), (2, 3)], [(0, 2), (1, 3)]),
    ([(0, 1), (2, 3)], [(1, 2), (0, 3)]),
    ([(0,), (1, 2, 3)], [(0, 1), (2, 3)]),
])


@pytest.mark.slow
@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    seed=st.integers(0, 10_000),
    parts=partitions,
    policy_name=st.sampled_from(preset_names()),
    scale=st.sampled_from([0.6, 1.5, 4.0]),
)
def test_engine_output_withstands_brute_force_attacker(seed, parts, policy_name, scale):
    n_months = 12
    rng = np.random.default_rng(seed)
    fine = rng.poisson(scale, size=(len(LSOAS), n_months, len(SEXES)))
    tables, meta, am = build(fine, parts[0], parts[1], n_months)
    policy = load_policy(policy_name)
    primary = {n: primary_mask(t["count"].to_numpy(), policy) for n, t in tables.items()}
    mask = secondary_suppress(tables, meta, am, policy, primary)
    for n in tables:
        assert (mask[n] | ~primary[n]).all(), "primary suppressions kept"
        if policy.zeros_shown:
            assert not (mask[n] & (tables[n]["count"].to_numpy() == 0)).any(), "a shown 0 is never hidden"
    published = {n: publish(tables[n], mask[n], policy) for n in tables}
    assert audit_release(published, meta, am, policy).passed
    ranges, bad = brute_force(published, am, policy)
    assert bad == [], f"brute-force attacker narrowed {bad[:3]} ({policy_name})"
    # the projected system gives exactly the full formulation's ranges
    ours = feasible_ranges(published, meta, am, policy)
    for n in tables:
        t = ranges[n]["target"].to_numpy(bool)
        np.testing.assert_allclose(ours[n]["lo"].to_numpy()[t], ranges[n]["lo"].to_numpy()[t], atol=1e-5)
        hi_ours = ours[n]["hi"].to_numpy()[t]
        hi_bf = ranges[n]["hi"].to_numpy()[t]
        both_inf = np.isinf(hi_ours) & np.isinf(hi_bf)
        assert np.all(both_inf | (np.abs(np.where(both_inf, 0, hi_ours - hi_bf)) < 1e-5))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 11])
def test_random_patterns_projection_is_exact(seed):
    """Random (not engine-made) suppression patterns: projected and full ranges agree."""
    rng = np.random.default_rng(seed)
    fine = rng.poisson(2.0, size=(len(LSOAS), 12, len(SEXES)))
    tables, meta, am = build(fine, [(0, 1), (2, 3)], [(0, 2), (1, 3)], 12)
    policy = load_policy("suppress-under-10")
    masks = {n: (rng.random(len(t)) < 0.25) & (t["count"].to_numpy() > 0) for n, t in tables.items()}
    published = {n: publish(tables[n], masks[n], policy) for n in tables}
    ranges, _ = brute_force(published, am, policy)
    ours = feasible_ranges(published, meta, am, policy)
    for n in tables:
        t = ranges[n]["target"].to_numpy(bool)
        np.testing.assert_allclose(ours[n]["lo"].to_numpy()[t], ranges[n]["lo"].to_numpy()[t], atol=1e-5)
        a, b = ours[n]["hi"].to_numpy()[t], ranges[n]["hi"].to_numpy()[t]
        assert np.all((np.isinf(a) & np.isinf(b)) | (np.abs(a - b) < 1e-5))
