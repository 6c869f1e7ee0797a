"""The exact stage does not solve for a bound that a feasible point already attains.

A target's row carries its own bounds (a suppressed cell is at least 1 here), so once a
point seen sits on one, that bound is the optimum (``lp._attained``). These tests check
that skipping those solves never changes a range, a verdict or the rows named for a leak's
complement, and that the skip happens (fewer solves), on two-way tables published as under
suppress-under-10 (``test_local_stage._table_system``).
"""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.framework.disclosure import lp
from pipelines.framework.disclosure.lp import ComponentLP, _exact_stage, protect_ranges, record_witness

from .test_local_stage import THRESHOLD, WIDTH, _table_system


def _stage(A, lo, hi, targets, own: bool, points: int):
    """The exact stage on every target, after ``points`` witness solves (the first solve, then
    maximising and minimising the sum of the targets in turn, so many sit on their floor)."""
    AT = A[targets]
    n = len(targets)
    lo_seen, hi_seen = np.full(n, np.inf), np.full(n, -np.inf)
    safe, exact = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    everyone = np.arange(n)
    model = ComponentLP(A, lo, hi, col_hi=np.full(A.shape[1], 1e4))
    status, x, _ = model.first_solve()
    assert status == "optimal"
    record_witness(AT, x, everyone, lo_seen, hi_seen, safe, WIDTH)
    c = np.asarray(AT.sum(axis=0)).ravel()
    for k in range(points - 1):
        status, x, _ = model.solve(np.flatnonzero(c), c[c != 0], maximize=bool(k % 2))
        if status == "optimal":
            record_witness(AT, x, everyone, lo_seen, hi_seen, safe, WIDTH)
    model.set_col_upper(np.full(A.shape[1], np.inf))
    safe[:] = False          # every target goes through the exact stage
    before = model.solves
    binding, feasible, _ = _exact_stage(model, AT, everyone, lo_seen, hi_seen, exact, safe, THRESHOLD, WIDTH,
                                        True, False, None, None, (lo[targets], hi[targets]) if own else None)
    assert feasible
    return lo_seen, hi_seen, safe, binding, model.solves - before, exact


@pytest.mark.parametrize("seed", [1, 2, 3, 5, 8, 13])
def test_skipping_attained_bounds_changes_no_range_and_no_verdict(seed):
    A, lo, hi, targets = _table_system(seed)
    lo_a, hi_a, safe_a, binding_a, solves_a, exact_a = _stage(A, lo, hi, targets, own=True, points=3)
    lo_b, hi_b, safe_b, binding_b, solves_b, exact_b = _stage(A, lo, hi, targets, own=False, points=3)
    assert safe_a.tolist() == safe_b.tolist()
    # a cell settled without its exact range was proven safe by a point the stage found on the
    # way (which points those are depends on the order of the solves, so it may differ
    # between the runs); every other cell has its exact range in both, and they agree
    assert safe_a[~exact_a].all() and safe_b[~exact_b].all()
    both = exact_a & exact_b
    assert both.any()
    # the exact minimum of a cell is its own floor exactly where a point had reached it
    assert lo_a[both] == pytest.approx(lo_b[both], abs=1e-6)
    settled_by_min = np.isfinite(hi_a) & (hi_a != hi_b)   # a min that settled it skips the max
    keep = both & ~settled_by_min
    assert hi_a[keep] == pytest.approx(hi_b[keep], abs=1e-6)
    assert sorted(binding_a) == sorted(binding_b)
    assert solves_a <= solves_b


def test_attained_bounds_are_skipped():
    """Over these tables the skip saves solves (on some tables no point reaches a floor)."""
    saved = 0
    for seed in [1, 2, 3, 5, 8, 13]:
        A, lo, hi, targets = _table_system(seed)
        *_, with_own, _ = _stage(A, lo, hi, targets, own=True, points=3)
        *_, without, _ = _stage(A, lo, hi, targets, own=False, points=3)
        saved += without - with_own
    assert saved > 0


def test_every_target_is_solved_when_no_point_reaches_its_floor():
    """With a single point seen (the first solve's), only the targets it put on their floor
    skip their minimum; on the tables here that is fewer than with three points."""
    A, lo, hi, targets = _table_system(3)
    *_, one, _ = _stage(A, lo, hi, targets, own=True, points=1)
    *_, three, _ = _stage(A, lo, hi, targets, own=True, points=3)
    *_, none, _ = _stage(A, lo, hi, targets, own=False, points=3)
    assert three <= one <= none


def test_protect_ranges_matches_the_exact_ranges(monkeypatch):
    """Through ``protect_ranges`` (which passes the targets' own bounds), every verdict equals
    the one from solving every target exactly."""
    monkeypatch.setattr(lp, "_capped_sweeps", lambda *a, **k: 0)
    for seed in range(1, 21):
        A, lo, hi, targets = _table_system(seed)
        fast = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, want_binding=True, seed=seed, sweeps=2,
                              local_above=10 ** 9, ipm_above=10 ** 9)
        exact = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, exact_all=True)
        assert fast.safe.tolist() == exact.safe.tolist(), seed
        both = fast.exact & exact.exact
        assert fast.lo[both] == pytest.approx(exact.lo[both], abs=1e-6), seed
