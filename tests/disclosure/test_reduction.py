"""``ComponentLP`` gives HiGHS a smaller model with the same feasible points
(``reduction``): separator rows ``x_a - x_b = 0`` merge their variables, and a row over one
variable becomes bounds on it.

Most rows of a release's system are of these two kinds, and leaving them out of the simplex
basis makes each solve several times cheaper. These tests check that nothing an engine or
audit reads changes: optimal values (against scipy's ``linprog`` with every row kept as a
row, on two-way tables and on a real projected release with separators), the duals that
name a leak's binding rows, bounds after the cap is lifted, bounds set on one of several
merged variables, negative coefficients, and infeasibility."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from pipelines.framework.disclosure.lp import ComponentLP, option_value
from pipelines.framework.disclosure.reduction import Reduction

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
    # as shipped: HiGHS's primal simplex without its bound perturbation (``PRIMAL_PERTURBATION``),
    # so these warm re-solves are the ones the exact stage makes
    assert option_value(model.h, "primal_simplex_bound_perturbation_multiplier") == 0.0
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


def test_a_bound_at_infinity_stays_a_bound():
    """A one-variable row whose lower bound is +inf (x0 >= inf) can never hold."""
    A = _sum_rows([[0], [0, 1]], 2)
    model = ComponentLP(A, np.array([np.inf, 0.0]), np.array([np.inf, 10.0]))
    assert model.first_solve()[0] == "infeasible"


def test_conflicting_one_variable_rows_are_infeasible():
    A = _sum_rows([[0], [0], [0, 1]], 2)
    model = ComponentLP(A, np.array([3.0, 0.0, 0.0]), np.array([np.inf, 2.0, 10.0]))
    assert model.first_solve()[0] == "infeasible"


def _glued():
    """Two blocks of the same events glued by separators: x0 = x2 and x1 = x3 (rows 4, 5);
    block one's cells are x0, x1 (rows 0, 1: suppressed, >= 1) and block two's total is
    x2 + x3 (row 2), published as 6 to 10; row 3 is x3 alone, at most 4."""
    A = sp.csr_matrix(np.array([
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 1],
        [0, 0, 0, 1],
        [1, 0, -1, 0],
        [0, 1, 0, -1],
    ], dtype=float))
    lo = np.array([1.0, 1.0, 6.0, 0.0, 0.0, 0.0])
    hi = np.array([np.inf, np.inf, 10.0, 4.0, 0.0, 0.0])
    return A, lo, hi


def test_separators_merge_their_variables():
    A, lo, hi = _glued()
    red = Reduction(A, lo, hi)
    assert red.n_groups == 2 and red.separators.tolist() == [4, 5]
    assert red.matrix.shape == (1, 2)                   # only the total is left as a row
    model = ComponentLP(A, lo, hi)
    model.first_solve()
    for r in range(4):
        for maximize in (False, True):
            status, x, y = model.solve(A[r].indices, A[r].data, maximize)
            assert status == "optimal"
            assert x[0] == pytest.approx(x[2]) and x[1] == pytest.approx(x[3])   # members agree
            assert float((A[r] @ x)[0]) == pytest.approx(_reference(A, lo, hi, r, maximize), abs=1e-9)
            assert y[4] == 0.0 and y[5] == 0.0          # separators are not cells: no dual
    # x0 at most 10 - 1 (x1 >= 1); x1 at most 4 (row 3, through its merged twin x3)
    assert model.solve(np.array([0]), np.array([1.0]), True)[1][0] == pytest.approx(9.0)
    assert model.solve(np.array([1]), np.array([1.0]), True)[1][1] == pytest.approx(4.0)
    status, x, y = model.solve(np.array([1]), np.array([1.0]), True)
    assert abs(y[3]) > 0                                # x3's row binds x1's maximum


def test_a_bound_on_one_member_binds_the_merged_variable():
    A, lo, hi = _glued()
    model = ComponentLP(A, lo, hi)
    model.first_solve()
    model.set_cols_bounds(np.array([2]), np.array([0.0]), np.array([3.0]))      # x2 <= 3, so x0 <= 3
    assert model.solve(np.array([0]), np.array([1.0]), True)[1][0] == pytest.approx(3.0)
    model.set_col_upper(np.full(4, np.inf))
    assert model.solve(np.array([0]), np.array([1.0]), True)[1][0] == pytest.approx(9.0)


def _release_component(monkeypatch, seed: int = 3):
    """The largest component of ``test_projection``'s A&E-shaped release (four linked
    tables, two crossing age schemes), published under suppress-under-10 with a random
    pattern, as the audit writes it: in the cell form (one variable per cell, defined by an
    equation: a cell that is one variable gives a separator over two)."""
    from pipelines.framework.disclosure import audit
    from pipelines.framework.disclosure.policy import load_policy
    from pipelines.framework.disclosure.relations import build_system

    from .test_projection import release

    monkeypatch.setattr(audit, "CELL_FORM_MIN_VARS", 0)
    tables, meta, am = release(seed)
    system = build_system({n: t.drop(columns=["count"]) for n, t in tables.items()}, meta, am)
    values = np.concatenate([tables[n]["count"].to_numpy() for n in tables]).astype(float)
    rng = np.random.default_rng(seed)
    suppressed = (rng.random(len(values)) < 0.3) & (values > 0)
    lo, hi = audit.published_bounds(values, suppressed, load_policy("suppress-under-10"))
    comps = audit.split_components(system, ~suppressed & (hi <= 0), lo, hi)
    c = np.bincount(comps.cell_comp[comps.cell_comp >= 0]).argmax()
    cells, A, rlo, rhi, *_ = audit.ComponentIndex(system, comps).part(int(c), lo, hi)
    return A, rlo, rhi, np.flatnonzero(suppressed[cells])


def test_a_projected_release_with_separators_keeps_its_optima(monkeypatch):
    """A real component, as the audit and the engine write it, checked cell by cell against
    the unreduced model solved by scipy."""
    A, lo, hi, targets = _release_component(monkeypatch)
    red = Reduction(A, lo, hi)
    assert len(red.separators) > 0 and red.n_groups < A.shape[1]
    model = ComponentLP(A, lo, hi)
    assert model.first_solve()[0] == "optimal"
    for r in targets[:40]:
        for maximize in (False, True):
            status, x, _ = model.solve(A[r].indices, A[r].data, maximize)
            assert status == "optimal"
            assert float((A[r] @ x)[0]) == pytest.approx(_reference(A, lo, hi, r, maximize), abs=1e-6)
