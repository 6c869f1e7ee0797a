"""The audit may start from the suppression engine's feasible points ("hints"); they can
save it work but must never decide a verdict on trust.

* ``hinted_ranges`` on a hand-made system: a feasible hint widens the range seen, an
  infeasible one is ignored;
* the engine's points, as the gate passes them, prove cells in the audit, and the audit's
  verdicts are the same with and without them (random linked tables, every preset);
* points the engine found on a *more* suppressed release are not feasible for a release that
  leaks, and cannot make it pass (sdcTable's two-per-line case, whose w|b = 47 is exactly
  computable).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from pipelines.framework.disclosure import audit as audit_mod
from pipelines.framework.disclosure.audit import audit_release
from pipelines.framework.disclosure.lp import PointLog, hinted_ranges
from pipelines.framework.disclosure.policy import load_policy, preset_names
from pipelines.framework.disclosure.primary import primary_mask
from pipelines.framework.disclosure.secondary import secondary_suppress

from ._util import publish
from .test_property import LSOAS, SEXES, build
from .test_published_cases import COL, SDC_BANDS, SDC_INNER, SDC_SUPPRESSED, exact_policy, hide, sdc_nine, two_way

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from disclosure_scale import make_release  # noqa: E402


def test_hinted_ranges_use_feasible_points_only():
    # x1 + x2 = 10, x1 <= 9; target: x1
    A = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0]]))
    lo, hi = np.array([10.0, 0.0]), np.array([10.0, 9.0])
    feasible = [np.array([2.0, 8.0]), np.array([7.0, 3.0])]
    r = hinted_ranges(A, lo, hi, np.array([1]), 5, feasible)
    assert (r.lo[0], r.hi[0], bool(r.safe[0])) == (2.0, 7.0, True)      # 2..7: six values
    # breaks the first row; and breaks x1 <= 9; and a negative variable: none may count
    bad = [np.array([0.0, 1.0]), np.array([10.0, 0.0]), np.array([12.0, -2.0]), np.array([2.0])]
    r = hinted_ranges(A, lo, hi, np.array([1]), 5, feasible[:1] + bad)
    assert (r.lo[0], r.hi[0], bool(r.safe[0])) == (2.0, 2.0, False)
    assert not r.exact.any()       # seen values, never claimed as the exact range


def count_hint_proofs(monkeypatch) -> list[int]:
    """A list to which every ``hinted_ranges`` call the audit makes adds how many cells its
    hints proved safe."""
    proven: list[int] = []
    real = audit_mod.hinted_ranges

    def counting(*args):
        r = real(*args)
        proven.append(int(r.safe.sum()))
        return r

    monkeypatch.setattr(audit_mod, "hinted_ranges", counting)
    return proven


@pytest.mark.parametrize("policy_name", preset_names())
def test_engine_points_prove_cells_without_changing_a_verdict(monkeypatch, policy_name):
    proven = count_hint_proofs(monkeypatch)
    policy = load_policy(policy_name)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        fine = rng.poisson(1.5, size=(len(LSOAS), 12, len(SEXES)))
        tables, meta, am = build(fine, [(0, 1), (2, 3)], [(1, 2), (0, 3)], 12)
        primary = {n: primary_mask(t["count"].to_numpy(), policy) for n, t in tables.items()}
        points: dict = {}
        mask = secondary_suppress(tables, meta, am, policy, primary, points=points)
        assert points, "the engine kept no points"
        published = {n: publish(tables[n], mask[n], policy) for n in tables}
        with_hints = audit_release(published, meta, am, policy, hints=points)
        without = audit_release(published, meta, am, policy)
        assert with_hints.passed and without.passed
        for n in tables:
            assert with_hints.tables[n].failing_rows == without.tables[n].failing_rows == ()
    assert sum(proven) > 0, "the hints proved no cell: this test would prove nothing"


def test_points_of_a_safer_release_cannot_pass_a_leaking_one():
    tables, meta, am = two_way(SDC_INNER, SDC_BANDS)
    df = tables["t"]
    prim = sdc_nine(df)
    pol = exact_policy(threshold=50)
    points: dict = {}
    mask = secondary_suppress(tables, meta, am, pol, {"t": prim}, points=points)["t"]
    assert (mask & ~prim).any() and points    # the engine hid one more cell, and kept its points
    # the nine published suppressions alone: w|b = 47 exactly (rows w+x against columns a+c)
    leaking = {"t": hide(df, [(r, COL[c]) for r, c in SDC_SUPPRESSED])}
    res = audit_release(leaking, meta, am, pol, hints=points)
    assert not res.passed
    assert res.tables["t"].worst_cell["area_code"] == "w" and res.tables["t"].worst_cell["age_band"] == "10-19"
    assert res.tables["t"].worst_range == (47.0, 47.0)


def test_point_log_gives_back_every_point():
    rng = np.random.default_rng(5)
    pts = [rng.uniform(0, 9, size=40)]
    for _ in range(30):
        x = pts[-1].copy()
        k = rng.choice(40, size=rng.integers(0, 6), replace=False)
        x[k] = rng.uniform(0, 9, size=len(k))
        pts.append(x)
    log = PointLog()
    for x in pts:
        log.add(x)
    log.drop_last()
    back = list(log.points())
    assert len(log) == len(back) == 31
    assert all(np.array_equal(a, b) for a, b in zip(back, pts))
    assert log.values < 40 * 31 // 2          # kept as differences, not whole points
    cut = list(log.first(25).points())
    assert all(np.array_equal(a, b[:25]) for a, b in zip(cut, pts))


def test_point_log_with_a_limit_keeps_the_points_before_it_and_no_more():
    rng = np.random.default_rng(6)
    pts = [rng.uniform(0, 9, size=40)]
    for _ in range(30):
        x = pts[-1].copy()
        x[rng.choice(40, size=5, replace=False)] += 1.0 + rng.uniform(0, 1, size=5)   # 5 entries change
        pts.append(x)
    log = PointLog(limit=40 + 5 * 10)         # the whole first point, then ten differences
    for x in pts:
        log.add(x)
    log.drop_last()
    back = list(log.points())
    assert log.full and len(log) == len(back) == 11 and log.values == 90
    assert all(np.array_equal(a, b) for a, b in zip(back, pts[:11]))
    unlimited = PointLog()
    for x in pts:
        unlimited.add(x)
    assert not unlimited.full and len(unlimited) == 31


def _engine_points(policy, seed):
    # a small release shaped like the benchmark's, whose components are large enough that the
    # engine's exact stages prove cells the sweeps do not (the random tables above are too
    # small for that: their exact stages hardly run)
    tables, meta, am = make_release(3, 2, 4, seed=seed)
    primary = {n: primary_mask(t["count"].to_numpy(), policy) for n, t in tables.items()}
    points: dict = {}
    mask = secondary_suppress(tables, meta, am, policy, primary, points=points)
    published = {n: publish(tables[n], mask[n], policy) for n in tables}
    return published, meta, am, points


def test_logged_exact_points_prove_more_cells_and_corrupt_ones_none(monkeypatch):
    """On a release shaped like the benchmark's, the exact stage's optimal points, kept as
    ``PointLog``s, prove cells the sweeps' points alone do not; the verdicts stay those of
    the audit without hints; and a log whose points were tampered with (one value moved far,
    so a relation breaks) proves nothing more than no log at all."""
    proven = count_hint_proofs(monkeypatch)
    policy = load_policy("nhs-digital")
    totals = {"logs": 0, "no logs": 0, "corrupt": 0}
    for seed in (7, 8):
        published, meta, am, points = _engine_points(policy, seed)
        assert any(len(v[2]) for v in points.values()), "the engine logged no exact point"
        corrupt = {}
        for key, (vars_, dense, logs) in points.items():
            bad = []
            for log in logs:
                b = log.first(len(vars_))
                b.base = b.base.copy()
                b.base[0] += 1000.0       # every later point keeps it: each breaks a relation
                b.diffs = [(i[i != 0], v[i != 0]) for i, v in b.diffs]
                bad.append(b)
            corrupt[key] = (vars_, dense, bad)
        variants = {"logs": points, "no logs": {k: (v[0], v[1], []) for k, v in points.items()},
                    "corrupt": corrupt}
        verdicts = []
        for name, hints in variants.items():
            proven.clear()
            res = audit_release(published, meta, am, policy, hints=hints)
            totals[name] += sum(proven)
            verdicts.append({n: t.failing_rows for n, t in res.tables.items()})
            assert res.passed
        verdicts.append({n: t.failing_rows for n, t in audit_release(published, meta, am, policy).tables.items()})
        assert all(v == verdicts[-1] for v in verdicts)
    assert totals["logs"] > totals["no logs"], totals
    assert totals["corrupt"] == totals["no logs"], totals


def test_logged_points_stay_within_their_memory_cap(monkeypatch):
    """Over all components the engine keeps at most ``KEEP_LOG_VALUES_TOTAL`` logged numbers
    (a cap set here far below what this release logs), and the audit still passes: a dropped
    log only costs the audit its own solves."""
    monkeypatch.setattr(audit_mod, "KEEP_LOG_VALUES_TOTAL", 3_000)
    policy = load_policy("nhs-digital")
    published, meta, am, points = _engine_points(policy, 7)
    kept = sum(log.values for v in points.values() for log in v[2])
    assert 0 < kept <= 3_000
    assert audit_release(published, meta, am, policy, hints=points).passed
