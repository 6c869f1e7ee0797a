"""The local stage of ``protect_ranges``: neighbourhoods, and that its shortcuts never
change a verdict (a cell it calls safe is safe, a leak it finds is a leak)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from pipelines.framework.disclosure import lp
from pipelines.framework.disclosure.lp import _Local, protect_ranges

THRESHOLD, WIDTH = 7, 5


def _sum_rows(rows: list[list[int]], n_vars: int) -> sp.csr_matrix:
    """One row per list: the sum of the variables it names."""
    indptr = np.cumsum([0] + [len(r) for r in rows])
    return sp.csr_matrix((np.ones(indptr[-1]), np.concatenate(rows), indptr), shape=(len(rows), n_vars))


def _window_system(n: int = 30) -> sp.csr_matrix:
    """Rows 0..n-1: one variable each; then rows over variables (i, i+1, i+2)."""
    return _sum_rows([[i] for i in range(n)] + [[i, i + 1, i + 2] for i in range(n - 2)], n)


def test_neighbourhood_takes_whole_hops_when_they_fit():
    A = _window_system()
    loc = _Local(A, np.zeros(A.shape[0]), np.full(A.shape[0], np.inf), np.ones(A.shape[1]), max_vars=400)
    # each hop reaches two variables further each way; three hops from variable 10
    assert loc.neighbourhood(10).tolist() == list(range(4, 17))


def test_neighbourhood_stops_at_the_row_that_would_pass_the_cap():
    A = _window_system()
    loc = _Local(A, np.zeros(A.shape[0]), np.full(A.shape[0], np.inf), np.ones(A.shape[1]), max_vars=5)
    # first hop, rows in order: (8,9,10) adds 8, 9; (9,10,11) adds 11; (10,11,12) adds 12 -> 5
    # variables; the next row, (6,7,8), would make 7: stop there (a whole-hop rule would
    # have kept the target alone once the second hop was too big)
    assert loc.neighbourhood(10).tolist() == [8, 9, 10, 11, 12]


def _table_system(seed: int, n_rows: int = 9, n_cols: int = 9):
    """A two-way table with its margins, published as under suppress-under-10: shown counts
    exact, suppressed ones known to be >= 1 (rows [1, inf)), every margin shown. The interior
    cells are the variables; every cell and margin is a row. Where a line has one suppressed
    cell it is a real leak (the margin gives it away); where it has several they may protect
    each other."""
    rng = np.random.default_rng(seed)
    x = rng.poisson(12.0, size=(n_rows, n_cols))
    idx = np.arange(n_rows * n_cols).reshape(n_rows, n_cols)
    rows = [[int(i)] for i in idx.ravel()] + [idx[r].tolist() for r in range(n_rows)] + \
        [idx[:, c].tolist() for c in range(n_cols)] + [idx.ravel().tolist()]
    values = np.concatenate([x.ravel(), x.sum(axis=1), x.sum(axis=0), [x.sum()]]).astype(float)
    A = _sum_rows(rows, x.size)
    suppressed = np.zeros(len(values), dtype=bool)
    suppressed[: x.size] = (x.ravel() >= 1) & (x.ravel() <= 9) | (rng.random(x.size) < 0.08)
    lo = np.where(suppressed, 1.0, values)
    hi = np.where(suppressed, np.inf, values)
    return A, lo, hi, np.flatnonzero(suppressed)


def _fast_and_exact(seed: int, monkeypatch):
    A, lo, hi, targets = _table_system(seed)
    monkeypatch.setattr(lp, "LOCAL_MAX_VARS", 12)           # small neighbourhoods: most rows reach out
    monkeypatch.setattr(lp, "LOCAL_TRIAL", 10 ** 6)
    # no sweeps, no capped sweeps: the local stage sees every target the first point did
    # not settle, safe ones included
    monkeypatch.setattr(lp, "_capped_sweeps", lambda *a, **k: 0)
    fast = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, want_binding=True, seed=seed,
                          sweeps=0, local_above=0, ipm_above=10 ** 9)
    exact = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, exact_all=True)
    assert fast.feasible and exact.feasible
    return fast, exact


def test_local_stage_never_changes_a_verdict(monkeypatch):
    for seed in range(1, 31):
        fast, exact = _fast_and_exact(seed, monkeypatch)
        assert fast.safe.tolist() == exact.safe.tolist(), seed


@pytest.mark.parametrize("seed", [4, 7, 21, 34])
def test_local_stage_finds_leaks_with_the_rows_that_pin_them(seed, monkeypatch):
    fast, exact = _fast_and_exact(seed, monkeypatch)
    # decided by the local stage's relaxation: not an exact range, not safe
    by_local = ~fast.safe & ~fast.exact
    assert by_local.any()
    for t in np.flatnonzero(by_local):
        assert not exact.safe[t]
        # the relaxation's range contains the exact one
        assert fast.lo[t] <= exact.lo[t] + 1e-6 and fast.hi[t] >= exact.hi[t] - 1e-6
        assert len(fast.binding[int(t)]) > 0


def _square_system():
    """A 2x2 table of suppressed cells (each >= 1) whose four margins are all 6: each cell's
    true range is [1, 5], five whole numbers, so each is safe under the rule."""
    A = _sum_rows([[0], [1], [2], [3], [0, 1], [2, 3], [0, 2], [1, 3]], 4)
    lo = np.array([1.0] * 4 + [6.0] * 4)
    hi = np.array([np.inf] * 4 + [6.0] * 4)
    return A, lo, hi, np.arange(4)


def _drifting_solve(monkeypatch, exact_when_fresh: bool) -> None:
    """Make every maximum ``ComponentLP.solve`` returns 1.3e-6 short (as warm-started solves
    on a large model did), except, when ``exact_when_fresh``, a solve from nothing."""
    warm = lp.ComponentLP.solve

    def drifting(self, cost_idx, cost_val, maximize):
        fresh = self._fresh
        status, x, y = warm(self, cost_idx, cost_val, maximize)
        if status == "optimal" and maximize and not (exact_when_fresh and fresh):
            x = x - 1.3e-6
        return status, x, y

    monkeypatch.setattr(lp.ComponentLP, "solve", drifting)


def test_exact_bound_drifted_short_of_a_whole_number_is_re_solved(monkeypatch):
    """Warm-started solves on a large model can return a maximum of 5 as 4.9999987 (seen at
    10^5 cells). Such a bound is re-solved from scratch before the cell is called narrow."""
    A, lo, hi, targets = _square_system()
    _drifting_solve(monkeypatch, exact_when_fresh=True)
    r = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, exact_all=True)
    assert r.exact.all()
    assert r.hi.tolist() == pytest.approx([5.0] * 4, abs=1e-9)
    assert r.safe.all()


def test_a_bound_really_short_of_a_whole_number_stays_narrow(monkeypatch):
    """The re-solve is a second opinion, not a tolerance: where the fresh optimum agrees, the
    range keeps its width (here every solve, fresh or not, is 4.9999987 at most)."""
    A, lo, hi, targets = _square_system()
    _drifting_solve(monkeypatch, exact_when_fresh=False)
    r = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, exact_all=True)
    assert not r.safe.any()


def _count_inner(monkeypatch) -> list[int]:
    """Count the local stage's inner LPs (each still solved for real)."""
    calls: list[int] = []
    real = lp._Local.inner

    def counted(self, r, V):
        calls.append(r)
        return real(self, r, V)

    monkeypatch.setattr(lp._Local, "inner", counted)
    return calls


def _local_stage_only(monkeypatch, A, lo, hi, targets, seed: int = 0):
    monkeypatch.setattr(lp, "LOCAL_TRIAL", 10 ** 6)
    monkeypatch.setattr(lp, "_capped_sweeps", lambda *a, **k: 0)
    return protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, want_binding=True, sweeps=0,
                          local_above=0, ipm_above=10 ** 9, seed=seed)


def test_inner_lp_is_dropped_once_it_has_proven_none_of_the_first_cells(monkeypatch):
    """Twelve lines of three cells and their total (shown), one cell suppressed in each: the
    total gives every one away, so no inner LP can prove any safe. After ``INNER_TRIAL`` of
    them the stage stops trying, and its outer LPs still find every leak."""
    n = 12
    rows = [[i] for i in range(3 * n)] + [[3 * k, 3 * k + 1, 3 * k + 2] for k in range(n)]
    A = _sum_rows(rows, 3 * n)
    x = np.tile([2.0, 20.0, 30.0], n)
    suppressed = np.zeros(4 * n, dtype=bool)
    suppressed[0:3 * n:3] = True
    values = np.concatenate([x, x.reshape(n, 3).sum(axis=1)])
    lo = np.where(suppressed, 1.0, values)
    hi = np.where(suppressed, np.inf, values)
    calls = _count_inner(monkeypatch)
    r = _local_stage_only(monkeypatch, A, lo, hi, np.flatnonzero(suppressed))
    assert len(calls) == lp.INNER_TRIAL
    assert not r.safe.any()
    assert not r.exact.any()              # every leak found by an outer LP, none solved exactly
    assert r.hi.tolist() == [2.0] * n


def test_inner_lp_is_kept_while_it_proves_cells(monkeypatch):
    """Five independent 2x2 blocks of suppressed cells with margins of 6 (each cell's range is
    [1, 5]: safe). From the first feasible point alone nothing is proven; each inner LP over
    a block proves its cell, so the stage keeps solving them, one per target."""
    A0, lo0, hi0, t0 = _square_system()
    blocks = 5
    A = sp.block_diag([A0] * blocks, format="csr")
    lo, hi = np.tile(lo0, blocks), np.tile(hi0, blocks)
    targets = np.concatenate([t0 + k * A0.shape[0] for k in range(blocks)])
    calls = _count_inner(monkeypatch)
    r = _local_stage_only(monkeypatch, A, lo, hi, targets)
    assert r.safe.all()
    assert len(calls) == len(targets) > lp.INNER_TRIAL


def test_local_stage_visits_cells_in_a_fixed_random_order(monkeypatch):
    """The local stage's trial (``LOCAL_TRIAL``) must sample the whole component, not only
    the cells of its first table: it visits the open targets in a random order drawn from the
    check's seed, so the same input gives the same order (and the same result), and a
    different seed another order."""
    A, lo, hi, targets = _table_system(3, 12, 12)
    visits: list[int] = []
    real = lp._Local.neighbourhood

    def counted(self, r):
        visits.append(int(r))
        return real(self, r)

    monkeypatch.setattr(lp._Local, "neighbourhood", counted)
    orders = []
    for seed in (3, 3, 4):
        visits.clear()
        _local_stage_only(monkeypatch, A, lo, hi, targets, seed=seed)
        orders.append(list(visits))
    assert len(orders[0]) > 20
    assert orders[0] == orders[1]
    assert orders[0] != sorted(orders[0])
    assert orders[2] != orders[0]
