"""A smaller LP with the same feasible points: what ``lp.ComponentLP`` gives HiGHS.

Why. A component's system has two kinds of rows that need no place in a simplex basis:

* rows over one variable: a published cell that is one variable of the model (most of the
  finest cells). Such a row is a bound on its variable;
* separator rows ``x_a - x_b = 0``: two tables' blocks of the same events glued together
  (``relations``), and, in the audit's cell form (``audit._cell_form``), the definition of
  a cell that is one variable (most of them, at 10^5 bench cells). Such a row says two
  variables are one; every row that mentions either can mention one merged variable
  instead.

Removing them halves the basis or better (one 20,267-variable quarter of the 10^5 bench:
27,610 rows and 20,267 variables become 5,423 rows and 11,761 variables), and a
warm-started solve there took 27 ms instead of 83 ms on average, with the same optimal
values. Merging is done first (a row over two variables that merge becomes a row over
one), then rows over one variable become bounds.

What the caller still sees is the original model: points are expanded back (every member of
a merged variable takes its value), objectives are written over the original variables,
and row duals are given for every original row. A one-variable row's dual is its merged
variable's reduced cost when that variable sits on the bound the row gave it (the row
binds), else 0; a separator row's dual is reported as 0 (the engine reads duals only to
name published cells, and separators are not cells).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

#: a value this close to a bound (relative to its size) sits on it
ON_BOUND = 1e-7


class Reduction:
    """The reduced model of ``row_lo <= A x <= row_hi`` (see the module docstring)."""

    def __init__(self, A: sp.csr_matrix, row_lo: np.ndarray, row_hi: np.ndarray):
        A = sp.csr_matrix(A)
        n_rows, n_cols = A.shape
        self.row_lo, self.row_hi = row_lo, row_hi
        nnz = np.diff(A.indptr)
        two = np.flatnonzero(nnz == 2)
        st = A.indptr[two]
        sep_mask = (row_lo[two] == 0) & (row_hi[two] == 0) & (A.data[st] == -A.data[st + 1]) \
            & (A.data[st] != 0)
        self.separators = two[sep_mask]
        st = A.indptr[self.separators]
        if len(self.separators):
            G = sp.csr_matrix((np.ones(len(st)), (A.indices[st], A.indices[st + 1])), shape=(n_cols, n_cols))
            self.n_groups, group = connected_components(G, directed=False)
        else:
            self.n_groups, group = n_cols, np.arange(n_cols)
        self.group = group.astype(np.int64)
        self.merged = self.n_groups < n_cols
        # members of each group, for meeting their bounds (reduceat over the sorted order)
        self._order = np.argsort(self.group, kind="stable")
        self._starts = np.flatnonzero(np.r_[True, np.diff(self.group[self._order]) != 0])
        keep = np.ones(n_rows, dtype=bool)
        keep[self.separators] = False
        self.rows = np.flatnonzero(keep)                     # original rows of M
        M = A[self.rows]
        if self.merged:
            P = sp.csr_matrix((np.ones(n_cols), (np.arange(n_cols), self.group)), shape=(n_cols, self.n_groups))
            M = (M @ P).tocsr()
        M.sum_duplicates()
        M.eliminate_zeros()
        mnnz = np.diff(M.indptr)
        self.single = np.flatnonzero(mnnz == 1)              # rows of M that become bounds
        self.kept = np.flatnonzero(mnnz != 1)                # rows of M that HiGHS gets
        self.matrix = M[self.kept].tocsr() if len(self.kept) < M.shape[0] else M
        self.s_col = M.indices[M.indptr[self.single]].astype(np.int64)
        a = M.data[M.indptr[self.single]]
        self.s_coef = a
        orig = self.rows[self.single]
        with np.errstate(divide="ignore", invalid="ignore"):
            lo_a, hi_a = row_lo[orig] / a, row_hi[orig] / a
        lo_x = np.where(a > 0, lo_a, hi_a)            # a negative coefficient flips the bounds
        hi_x = np.where(a > 0, hi_a, lo_a)
        self.s_lo = np.full(self.n_groups, -np.inf)
        self.s_hi = np.full(self.n_groups, np.inf)
        np.maximum.at(self.s_lo, self.s_col, np.where(np.isnan(lo_x), -np.inf, lo_x))
        np.minimum.at(self.s_hi, self.s_col, np.where(np.isnan(hi_x), np.inf, hi_x))
        self.n_rows = n_rows

    def row_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self.rows[self.kept]
        return self.row_lo[rows], self.row_hi[rows]

    def col_bounds(self, col_lo: np.ndarray, col_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of the merged variables: their members' bounds and their rows', met."""
        if self.merged:
            lo = np.maximum.reduceat(col_lo[self._order], self._starts)
            hi = np.minimum.reduceat(col_hi[self._order], self._starts)
        else:
            lo, hi = col_lo, col_hi
        return np.maximum(lo, self.s_lo), np.minimum(hi, self.s_hi)

    def objective(self, idx: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An objective over original variables, over the merged ones."""
        if not self.merged or len(idx) == 0:
            return np.asarray(idx, np.int32), np.asarray(val, float)
        g = self.group[np.asarray(idx, np.int64)]
        u, inv = np.unique(g, return_inverse=True)
        return u.astype(np.int32), np.bincount(inv, weights=np.asarray(val, float), minlength=len(u))

    def expand(self, z: np.ndarray) -> np.ndarray:
        """A point of the merged variables as a point of the original ones."""
        return z[self.group] if self.merged else z

    def row_duals(self, row_dual: np.ndarray, col_dual: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Duals of every original row (see the module docstring)."""
        y = np.zeros(self.n_rows)
        y[self.rows[self.kept]] = row_dual
        if len(self.single):
            d = col_dual[self.s_col]
            az = self.s_coef * z[self.s_col]
            orig = self.rows[self.single]
            lo, hi = self.row_lo[orig], self.row_hi[orig]
            tight = ((np.abs(az - lo) <= ON_BOUND * np.maximum(1.0, np.abs(lo)))
                     | (np.abs(az - hi) <= ON_BOUND * np.maximum(1.0, np.abs(hi))))
            y[orig] = np.where(tight, d / self.s_coef, 0.0)
        return y
