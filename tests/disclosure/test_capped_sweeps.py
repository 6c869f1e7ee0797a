"""Capped sweeps in ``protect_ranges``: every open target pushed just far enough at once.

The cases are built so the exact answer is known by hand: suppressed cells (each >= 1)
under one published total, so the total's slack is shared by all of them."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.framework.disclosure import lp
from pipelines.framework.disclosure.lp import TOL, _capped_sweeps, protect_ranges, record_witness

from .test_local_stage import _sum_rows, _table_system

THRESHOLD, WIDTH = 7, 5


def _shared_total(k: int, total_hi: float):
    """k suppressed cells (rows 0..k-1: each >= 1) and a total row (k) in [k, total_hi]."""
    A = _sum_rows([[i] for i in range(k)] + [list(range(k))], k)
    lo = np.array([1.0] * k + [float(k)])
    hi = np.array([np.inf] * k + [total_hi])
    return A, lo, hi, np.arange(k)


def _run_capped(A, lo, hi, targets, seen: np.ndarray, up: bool = True):
    """The stage alone, after one witness ``seen`` (as the plain sweeps would leave it)."""
    nt = len(targets)
    AT = A[targets]
    lo_seen, hi_seen = np.full(nt, np.inf), np.full(nt, -np.inf)
    safe = np.zeros(nt, dtype=bool)
    record_witness(AT, seen, np.arange(nt), lo_seen, hi_seen, safe, WIDTH)
    points = []

    def witness(x, which):
        assert np.all(A @ x >= lo - 1e-7) and np.all(A @ x <= hi + 1e-7)   # every row holds
        points.append(x)
        record_witness(AT, x, which, lo_seen, hi_seen, safe, WIDTH)

    solves = _capped_sweeps(A, lo, hi, targets, AT, np.arange(nt), lo_seen, hi_seen, safe, WIDTH,
                            None, up, witness, np.random.default_rng(0))
    return solves, safe, lo_seen, hi_seen, points


def test_one_capped_solve_proves_every_target_the_shared_slack_can_serve():
    # six cells, each seen only at 1; the total may reach 30, so all six can be at 5 at once:
    # one solve, every cell proven (each cell's true range is [1, 25])
    A, lo, hi, t = _shared_total(6, 30.0)
    solves, safe, lo_seen, hi_seen, points = _run_capped(A, lo, hi, t, np.ones(6))
    assert safe.all()
    assert solves == 1
    assert lo_seen.tolist() == [1.0] * 6
    assert np.all(hi_seen >= 5 - TOL)
    # capped: no cell is pushed past what proves it, so the slack left is the total's 0
    assert np.allclose(points[0], 5.0)


def test_proven_targets_stop_drawing_on_the_slack(monkeypatch):
    # the total may reach 18: only three cells can be at 5 at once. The first solve proves
    # three (a vertex: each cell at its cap or at its floor), the re-solve with those three
    # out of the objective lets the other three take the slack. (Re-solves that prove so few
    # cells are not worth their cost on real releases: ``CAPPED_MIN_CELLS`` is lowered here
    # so that the re-solve runs at all; the next test keeps it.)
    monkeypatch.setattr(lp, "CAPPED_MIN_CELLS", 1)
    A, lo, hi, t = _shared_total(6, 18.0)
    solves, safe, _, hi_seen, points = _run_capped(A, lo, hi, t, np.ones(6))
    assert solves == 2
    assert safe.all()
    first = np.isclose(points[0], 5.0)
    assert first.sum() == 3
    assert np.isclose(points[1][~first], 5.0).all()


@pytest.mark.parametrize("min_cells, solves", [(3, 2), (4, 1)])
def test_a_solve_proving_fewer_than_the_minimum_ends_the_stage(monkeypatch, min_cells, solves):
    # as above, the first solve proves 3 of the 6 cells and a re-solve would prove the rest:
    # it runs only if 3 cells a solve is worth it
    monkeypatch.setattr(lp, "CAPPED_MIN_CELLS", min_cells)
    A, lo, hi, t = _shared_total(6, 18.0)
    n, safe, _, _, _ = _run_capped(A, lo, hi, t, np.ones(6))
    assert n == solves
    assert int(safe.sum()) == (6 if solves == 2 else 3)


def test_the_default_minimum_stops_after_a_solve_proving_few_cells():
    # with the shipped minimum (20 cells), a first solve that proves 3 cells ends the stage
    assert lp.CAPPED_MIN_CELLS == 20
    A, lo, hi, t = _shared_total(6, 18.0)
    n, safe, _, _, _ = _run_capped(A, lo, hi, t, np.ones(6))
    assert n == 1 and int(safe.sum()) == 3


def test_a_target_whose_own_bounds_cannot_reach_the_cap_is_left_alone():
    # cell 0 is published as a range [1, 3] (it can never span five values): it is not
    # pushed, and the stage proves the others without it
    A, lo, hi, t = _shared_total(4, 40.0)
    hi[0] = 3.0
    solves, safe, _, _, points = _run_capped(A, lo, hi, t, np.ones(4))
    assert safe.tolist() == [False, True, True, True]
    assert solves == 1


def test_down_pushes_rounded_cells_seen_above_their_lowest_value():
    # two rounded cells published as 5 (true value within [3, 7]), each seen only at 7, and
    # each beside a larger rounded cell (10: within [8, 12], not a target) under an exact
    # total of 15. Up is no use (they can't reach 11); down, one solve takes both to 3, so
    # each is seen at 3 and 7: five values
    A = _sum_rows([[0], [1], [0, 1], [2], [3], [2, 3]], 4)
    lo = np.array([3.0, 8.0, 15.0, 3.0, 8.0, 15.0])
    hi = np.array([7.0, 12.0, 15.0, 7.0, 12.0, 15.0])
    targets = np.array([0, 3])
    seen = np.array([7.0, 8.0, 7.0, 8.0])
    solves, safe, lo_seen, hi_seen, _ = _run_capped(A, lo, hi, targets, seen, up=True)
    assert solves == 0 and not safe.any()
    solves, safe, lo_seen, hi_seen, _ = _run_capped(A, lo, hi, targets, seen, up=False)
    assert solves == 1 and safe.all()
    assert np.allclose(lo_seen, 3.0) and np.allclose(hi_seen, 7.0)


def test_down_leaves_cells_that_could_go_up():
    # suppressed cells seen at 9 under a fixed total: going up is open to them, so the down
    # pass leaves them alone (holding them all at or below 9 would pin the total)
    A, lo, hi, t = _shared_total(4, 36.0)
    lo[4] = 36.0
    solves, safe, _, _, _ = _run_capped(A, lo, hi, t, np.full(4, 9.0), up=False)
    assert solves == 0 and not safe.any()


@pytest.mark.parametrize("interior", [False, True], ids=["simplex", "interior-point"])
def test_capped_sweeps_never_change_a_verdict(monkeypatch, interior):
    real = lp._capped_sweeps
    decided = []
    used_interior = []

    def counting(*args, **kwargs):
        safe = args[8]
        before = int(safe.sum())
        used_interior.append(kwargs.get("interior", False))
        n = real(*args, **kwargs)
        decided.append(int(safe.sum()) - before)
        return n

    monkeypatch.setattr(lp, "_capped_sweeps", counting)
    for seed in range(1, 21):
        A, lo, hi, targets = _table_system(seed)
        # no plain sweeps and no local stage: capped sweeps see every target the first point
        # did not settle, and the exact stage decides the rest
        # ipm_above=0 and CAPPED_IPM_ABOVE=0: every component counts as large, so the capped
        # stage solves by interior point (as it can be set to on large releases)
        monkeypatch.setattr(lp, "CAPPED_IPM_ABOVE", 0 if interior else 10 ** 12)
        fast = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, seed=seed, sweeps=0,
                              local_above=10 ** 9, ipm_above=0 if interior else 10 ** 9)
        exact = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, exact_all=True)
        assert fast.safe.tolist() == exact.safe.tolist(), seed
    # and they did decide cells (else this test would prove nothing), by the solver asked for
    assert sum(decided) > 0
    assert set(used_interior) == {interior}


def test_capped_sweeps_prove_cells_the_table_cases_leave():
    proven = 0
    for seed in range(1, 21):
        A, lo, hi, targets = _table_system(seed)
        status, x, _ = lp.ComponentLP(A, lo, hi).first_solve()
        assert status == "optimal"
        # one point proves no cell (each is seen at one value), so every cell safe after the
        # stage was proven by it
        proven += int(_run_capped(A, lo, hi, targets, x)[1].sum())
    assert proven > 0
