"""Plain sweeps in ``protect_ranges`` stop as soon as one proves nothing.

A sweep is a pair of whole-model solves with a random objective; it can only prove cells
safe (its points are feasible). Where a sweep proves none of the open cells, the next ones,
drawn the same way, rarely do better: on the A&E release at 10 million rows, blocks of
about 180 cells that no point can prove (each is pinned) went through all six sweeps for
nothing. Here every target is pinned by hand, so the count of solves is known exactly."""

from __future__ import annotations

import numpy as np

from pipelines.framework.disclosure import lp
from pipelines.framework.disclosure.lp import protect_ranges

from .test_local_stage import _sum_rows

THRESHOLD, WIDTH = 7, 5


def _pinned_pairs(k: int):
    """k pairs of suppressed cells (each >= 1) whose published total is exactly 4: each cell
    lies in [1, 3], three values, so every one of the 2k targets leaks."""
    rows = [[i] for i in range(2 * k)] + [[2 * i, 2 * i + 1] for i in range(k)]
    A = _sum_rows(rows, 2 * k)
    lo = np.array([1.0] * (2 * k) + [4.0] * k)
    hi = np.array([np.inf] * (2 * k) + [4.0] * k)
    return A, lo, hi, np.arange(2 * k)


def test_a_sweep_that_proves_nothing_ends_the_sweeps():
    A, lo, hi, targets = _pinned_pairs(60)          # 120 open cells: above the old 50-cell stall rule
    r = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, max_exact=0, sweeps=6)
    assert not r.safe.any()
    assert r.solves == 1 + 2                          # the first solve, then one sweep (max and min)


def test_verdicts_are_exact_after_the_sweeps_stop():
    A, lo, hi, targets = _pinned_pairs(60)
    r = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, sweeps=6)
    assert not r.safe.any()
    assert r.exact.all()
    assert np.allclose(r.lo, 1.0) and np.allclose(r.hi, 3.0)


def _roomy_total(k: int = 60):
    """k suppressed cells under one total with room for 40 more: the first solve leaves them
    all at their floor, and sweeps prove them a few at a time."""
    A = _sum_rows([[i] for i in range(k)] + [list(range(k))], k)
    lo = np.array([1.0] * k + [float(k)])
    hi = np.array([np.inf] * k + [k + 40.0])
    return A, lo, hi, np.arange(k)


def test_sweeps_go_on_while_they_prove_cells(monkeypatch):
    monkeypatch.setattr(lp, "SWEEP_MIN_PROVEN", 1)
    A, lo, hi, targets = _roomy_total()
    r = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, max_exact=0, sweeps=6)
    assert r.solves > 1 + 2


def test_a_sweep_proving_too_few_cells_ends_the_sweeps(monkeypatch):
    """Below ``SWEEP_MIN_PROVEN`` cells a sweep costs more than the exact solves it saves;
    the exact stage then decides the rest, with the same verdicts as solving every cell."""
    monkeypatch.setattr(lp, "SWEEP_MIN_PROVEN", 10 ** 6)
    A, lo, hi, targets = _roomy_total()
    r = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, max_exact=0, sweeps=6)
    assert r.solves == 1 + 2
    full = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, sweeps=6)
    exact = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, exact_all=True)
    assert full.safe.tolist() == exact.safe.tolist()
