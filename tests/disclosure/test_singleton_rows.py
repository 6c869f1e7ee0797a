"""``ComponentLP`` gives HiGHS a row over one variable as bounds on that variable.

Most rows of a release's system are such rows (each finest published cell is one variable),
and leaving them out of the simplex basis halves its size. These tests check that nothing
an engine or audit reads changes: optimal values (against scipy's ``linprog`` with every row
kept as a row), the duals that name a leak's binding rows, bounds after the cap is lifted,
negative coefficients, and infeasibility."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from pipelines.framework.disclosure.lp import ComponentLP

from .test_local_stage import _sum_rows, _table_system


def _reference(A: sp.csr_matrix, lo: np.ndarray, hi: np.ndarray, row: int, maximize: bool) -> float:
    """The optimum of row ``row`` with every row kept as a row (scipy's HiGHS, from nothing)."""
    c = A[row].toarray().ravel() * (-1.0 if maximize else 1.0)
    fin_hi, fin_lo = np.isfinite(hi), np.isfinite(lo)
    A_ub = sp.vstack([A[fin_hi], -A[fin_lo]]).tocsr()
    b_ub = np.concatenate([hi[fin_hi], -lo[fin_lo]])
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=(0, None), method="highs")
    assert res.status == 0
    return float(res.fun) * (-1.0 if maximize else 1.0)


@pytest.mark.parametrize("seed", [1, 2, 3, 5])
def test_optima_equal_those_with_every_row_kept(seed):
    A, lo, hi, targets = _table_system(seed)
    assert (np.diff(A.indptr) == 1).sum() > A.shape[0] // 2      # mostly one-variable rows
    model = ComponentLP(A, lo, hi)
    assert model.first_solve()[0] == "optimal"
    rows = np.concatenate([targets, np.arange(A.shape[1], A.shape[0])])   # cells, then margins
    for r in rows:
        for maximize in (False, True):
            status, x, _ = model.solve(A[r].indices, A[r].data, maximize)
            assert status == "optimal"
            assert float((A[r] @ x)[0]) == pytest.approx(_reference(A, lo, hi, r, maximize), abs=1e-6)
            assert np.all(A @ x >= lo - 1e-6) and np.all(A @ x <= hi + 1e-6)


def _pair():
    """Cells a and b (rows 0, 1: one variable each, suppressed, >= 1), their total (row 2)
    published as exactly 4, and a cell c (row 3) with room, also >= 1, unrelated."""
    A = _sum_rows([[0], [1], [0, 1], [2]], 3)
    lo = np.array([1.0, 1.0, 4.0, 1.0])
    hi = np.array([np.inf, np.inf, 4.0, 50.0])
    return A, lo, hi


def test_a_binding_one_variable_row_has_a_dual():
    A, lo, hi = _pair()
    model = ComponentLP(A, lo, hi)
    model.first_solve()
    status, x, y = model.solve(np.array([0]), np.array([1.0]), maximize=True)
    assert status == "optimal"
    assert x[0] == pytest.approx(3.0)        # a = 4 - b, b >= 1
    named = set(np.flatnonzero(np.abs(y) > 1e-9).tolist())
    assert {1, 2} <= named                   # b's floor and the total pin it
    assert 3 not in named                    # c has nothing to do with it


def test_lifting_the_cap_keeps_the_rows_bounds():
    """``set_col_upper`` (the engine lifts its cap on every variable before exact solves)
    must not lift the bound a one-variable row puts on its variable."""
    A, lo, hi = _pair()
    model = ComponentLP(A, lo, hi, col_hi=np.full(3, 1e4))
    model.first_solve()
    model.set_col_upper(np.full(3, np.inf))
    status, x, _ = model.solve(np.array([2]), np.array([1.0]), maximize=True)
    assert status == "optimal" and x[2] == pytest.approx(50.0)
    model.set_cols_bounds(np.array([2]), np.array([0.0]), np.array([20.0]))
    status, x, _ = model.solve(np.array([2]), np.array([1.0]), maximize=True)
    assert status == "optimal" and x[2] == pytest.approx(20.0)
    status, x, _ = model.solve(np.array([2]), np.array([1.0]), maximize=False)
    assert status == "optimal" and x[2] == pytest.approx(1.0)    # the row's floor still holds


def test_negative_coefficient_flips_the_bounds():
    # -2 x0 in [-10, -4]  <=>  x0 in [2, 5]
    A = sp.csr_matrix(np.array([[-2.0, 0.0], [1.0, 1.0]]))
    model = ComponentLP(A, np.array([-10.0, 0.0]), np.array([-4.0, 100.0]))
    model.first_solve()
    assert model.solve(np.array([0]), np.array([1.0]), maximize=True)[1][0] == pytest.approx(5.0)
    assert model.solve(np.array([0]), np.array([1.0]), maximize=False)[1][0] == pytest.approx(2.0)


def test_conflicting_one_variable_rows_are_infeasible():
    A = _sum_rows([[0], [0], [0, 1]], 2)
    model = ComponentLP(A, np.array([3.0, 0.0, 0.0]), np.array([np.inf, 2.0, 10.0]))
    assert model.first_solve()[0] == "infeasible"
