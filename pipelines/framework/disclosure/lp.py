"""Feasible ranges of linear expressions over a published release, with HiGHS.

``ComponentLP`` holds one sparse model (rows over non-negative variables with
row bounds) in a ``highspy.Highs`` instance and re-solves it with new
objectives, warm-started from the previous basis.

``protect_ranges`` decides, for the target rows of one component, whether
each feasible range is wide enough, in five steps:

1. sweeps: a few solves of the whole component with objectives that push the
   undecided targets up and down (random +-1 directions, fixed seed). Any two
   feasible solutions bound a target's range from inside: if the values a
   target takes in the solutions seen differ enough, its range is wide enough
   (this proves most targets at once). On large components (``ipm_above``
   variables) the sweeps use a second model solved by interior point without
   crossover (several times faster there than simplex on these objectives); its
   solutions are only used after checking them against every row
   (``ComponentLP.feasible_point``);
2. capped sweeps (``_capped_sweeps``): solves that push every open target at
   once just far enough to prove it, so that the slack the targets share is
   spread over as many of them as it can serve (where plain sweeps stall);
3. for large components, two local LPs per remaining target over a small
   neighbourhood of variables (the target's, and those of the small rows
   touching them, up to three hops and ``LOCAL_MAX_VARS`` variables): the
   *inner* one fixes every other variable at a feasible point x0 (the mean of
   the solutions seen), so every solution it finds is feasible for the whole
   component and a wide enough range proves the target safe; the *outer* one
   drops every row reaching outside the neighbourhood (a relaxation), so a
   narrow range it finds is a real leak
   (reported as this outer range, which contains the exact one). The inner LP
   is dropped for the rest of the stage once it has proven none of the first
   ``INNER_TRIAL`` targets it tried: after the sweeps, the targets left are
   mostly ones no nearby move of a feasible point widens enough;
4. one min and one max solve of the whole component per target still
   undecided (exact range). Each such solution is also used as a witness for
   the other remaining targets. A narrow range whose bound falls just short of
   a whole number (``NEAR_WHOLE``) is solved again from nothing first, since
   warm starts drift;
5. for narrow targets the row duals of the min/max solves name the published
   rows that make the range narrow (what the suppression engine relaxes). For
   the engine (``want_binding``), a target that shares a row with those
   binding rows of a leak found earlier in the same stage is skipped
   (``deferred``): the leak's complement will often mend it too, and the
   engine checks it again in its next round.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import sys
import threading
from dataclasses import dataclass, field

import highspy
import numpy as np
import scipy.sparse as sp

from .reduction import Reduction

INF = highspy.kHighsInf
TOL = 1e-6
#: an exact bound closer than this to the whole number that would widen its range (but not
#: within ``TOL``) is re-solved from scratch before a cell is called narrow: thousands of
#: warm-started solves on a large model drift (at 10^5 cells a true maximum of 5 came back
#: as 4.9999987, and the audit failed on it)
NEAR_WHOLE = 1e-4

#: HiGHS's primal simplex perturbs the variables' bounds against degeneracy (multiplier 1 by
#: default), then has to take the perturbation out again at the optimum. For the exact stage's
#: warm re-solves (a new objective from the last optimal basis) that clean-up cost more than
#: the perturbation saved: with it off, 60 exact solves on a year of the A&E release with the
#: monthly sex-by-age tables for every borough (15,268 merged variables) took 7.6 s instead of
#: 12.8 s (15,209 iterations instead of 17,448), and the 10^5-cell bench took 95.2-95.8 s
#: instead of 106.0 s (752 cells hidden instead of 754; audit passed). On the A&E demo gate it
#: changed nothing measurable (nhs-digital 10.9 s against 10.3-10.6 s, opensafely 36.5 s
#: against 37.2-37.9 s). A solve that stalls without it ends as any other that fails to
#: finish: ``solve`` runs it again from nothing.
PRIMAL_PERTURBATION = 0.0

_CONSTRUCTING = threading.Lock()


def quiet_highs() -> highspy.Highs:
    """A ``highspy.Highs`` with its logging off, and without its banner on stdout.

    highspy 1.16 prints its copyright banner from the C++ constructor, before any option
    can be set, so ``outcomes run`` showed it once per model, between its own progress
    lines. The constructor runs with file descriptor 1 pointed at /dev/null (C's stdio
    buffer is flushed first, so nothing is written after the descriptor comes back);
    a lock keeps two threads from swapping descriptors at once.
    """
    with _CONSTRUCTING:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.close(devnull)
            h = highspy.Highs()
            _flush_c_stdout()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
    h.setOptionValue("output_flag", False)
    return h


def option_value(h: highspy.Highs, name: str):
    """The value of a HiGHS option (some highspy versions return (status, value))."""
    value = h.getOptionValue(name)
    return value[-1] if isinstance(value, tuple) else value


@functools.lru_cache(maxsize=1)
def _c_fflush():
    """C's ``fflush``, looked up once per process (``None`` where there is no C library)."""
    try:
        return ctypes.CDLL(None).fflush
    except (OSError, AttributeError):
        return None


def _flush_c_stdout() -> None:
    fflush = _c_fflush()
    if fflush is not None:  # no C library to call: nothing buffered there either
        fflush(None)


def integer_width(lo: float, hi: float) -> float:
    """floor(hi) - ceil(lo) + 1 with a tolerance for LP round-off (inf if unbounded)."""
    if not np.isfinite(hi):
        return math.inf
    return math.floor(hi + TOL) - math.ceil(lo - TOL) + 1


def integer_widths(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``integer_width`` of every (lo, hi) pair at once (inf where hi is)."""
    return np.floor(hi + TOL) - np.ceil(lo - TOL) + 1


def checked_point(A: sp.csr_matrix, row_lo: np.ndarray, row_hi: np.ndarray, x: np.ndarray,
                  col_lo=0.0, col_hi=np.inf, tol: float = 1e-7) -> np.ndarray | None:
    """``x`` clipped to the column bounds if ``row_lo <= A x <= row_hi`` holds within ``tol``
    (relative to the bound's size), else None: the test every witness passes before use."""
    x = np.clip(np.asarray(x, float), col_lo, col_hi)
    ax = A @ x
    slack_lo = np.where(np.isfinite(row_lo), ax - row_lo, 0.0)
    slack_hi = np.where(np.isfinite(row_hi), row_hi - ax, 0.0)
    scale = 1.0 + np.abs(np.where(np.isfinite(row_lo), row_lo, 0.0)) \
        + np.abs(np.where(np.isfinite(row_hi), row_hi, 0.0))
    if (slack_lo < -tol * scale).any() or (slack_hi < -tol * scale).any():
        return None
    return x


class PointLog:
    """Feasible points in little memory: the first whole, each later one as the entries
    where it differs from the one before (consecutive solutions of one warm-started model
    differ in about a tenth of their entries). ``points()`` gives them back whole.

    Why: the exact stage's optimal points prove most of the cells the engine proves one by
    one, and the audit can check them instead of solving again (see ``hinted_ranges``).

    ``limit``: the most numbers the log holds; points past it are not kept (the log is
    ``full``). Why: at 10^6 bench cells an exact stage makes 2,000 or more solves on a
    component of about 105,000 variables, and the process gathering eight such components'
    results held all their logs at once, before the audit's own cap
    (``audit.KEEP_LOG_VALUES_TOTAL``) cut them. A point not kept only means a later check
    solves that cell itself."""

    def __init__(self, limit: int | None = None) -> None:
        self.base: np.ndarray | None = None
        self.diffs: list[tuple[np.ndarray, np.ndarray]] = []
        self._last: np.ndarray | None = None
        #: numbers held (the base point's length plus every difference's), kept as they come
        self.values = 0
        self.limit = limit
        self.full = False

    def __len__(self) -> int:
        return 0 if self.base is None else 1 + len(self.diffs)

    def add(self, x: np.ndarray) -> None:
        if self.full:
            return
        x = np.asarray(x, float)
        if self.base is None:
            self.base = x.copy()
            self.values = len(x)
        else:
            idx = np.flatnonzero(x != self._last).astype(np.int32)
            if self.limit is not None and self.values + len(idx) > self.limit:
                self.full = True
                self._last = None
                return
            self.diffs.append((idx, x[idx].copy()))
            self.values += len(idx)
        self._last = x.copy()

    def points(self):
        if self.base is None:
            return
        x = self.base.copy()
        yield x.copy()
        for idx, val in self.diffs:
            x[idx] = val
            yield x.copy()

    def first(self, n: int) -> "PointLog":
        """The same points cut to their first ``n`` entries (the variables of a cell-form model)."""
        out = PointLog()
        if self.base is not None:
            out.base = self.base[:n].copy()
            for idx, val in self.diffs:
                keep = idx < n
                out.diffs.append((idx[keep], val[keep]))
            out.values = len(out.base) + sum(len(i) for i, _ in out.diffs)
        return out

    def drop_last(self) -> None:
        """Forget where the log ended (a finished log is only read)."""
        self._last = None


def hinted_ranges(A: sp.csr_matrix, row_lo: np.ndarray, row_hi: np.ndarray, targets: np.ndarray,
                  width: int, hints) -> RangeResult:
    """Ranges seen of rows ``targets`` over the ``hints`` that are feasible points of
    ``row_lo <= A x <= row_hi, x >= 0`` (each checked by ``checked_point``; the others are
    ignored), and which targets they prove safe. ``hints``: any iterable of points (read once).

    Why: the suppression engine's checks find feasible points of the same system under
    tighter bounds (suppressing a cell only relaxes its row), so they stay feasible for the
    published release, and the audit can start from them instead of re-finding them. A
    hint is only ever a candidate: one that fails the check proves nothing, so the audit's
    verdicts do not rest on the engine's."""
    nt = len(targets)
    out = RangeResult(np.full(nt, np.inf), np.full(nt, -np.inf), np.zeros(nt, bool), np.zeros(nt, bool))
    if nt == 0:
        return out
    AT = A[targets]
    everyone = np.arange(nt)
    for h in hints:
        x = checked_point(A, row_lo, row_hi, h) if len(h) == A.shape[1] else None
        if x is not None:
            record_witness(AT, x, everyone, out.lo, out.hi, out.safe, width)
    return out


class ComponentLP:
    """One sparse LP (rows ``A`` over variables >= 0) re-solved with new objectives.

    HiGHS gets a smaller model with the same feasible points (``reduction``: separator rows
    merge their two variables, and rows over one variable become bounds): at 10^5 bench
    cells a warm-started solve took 27 ms instead of 83 ms, with the same optima
    (``tests/disclosure/test_reduction.py``). Everything here speaks of the original model:
    objectives and points over its variables, duals for every one of its rows."""

    def __init__(self, A: sp.csr_matrix, row_lo: np.ndarray, row_hi: np.ndarray,
                 col_hi: np.ndarray | None = None, threads: int = 1):
        A = sp.csr_matrix(A)
        A.sum_duplicates()
        self.A = A
        self.n_rows, self.n_cols = A.shape
        row_lo = np.asarray(row_lo, float)
        row_hi = np.asarray(row_hi, float)
        self._row_lo = row_lo
        self._row_hi = row_hi
        self._red = red = Reduction(A, row_lo, row_hi)
        M = red.matrix
        h = quiet_highs()
        h.setOptionValue("threads", threads)
        h.setOptionValue("random_seed", 0)
        # re-solves only change the objective: keep the basis (no presolve) and use primal
        # simplex, for which the previous optimal basis stays feasible
        h.setOptionValue("presolve", "off")
        h.setOptionValue("simplex_strategy", 4)
        h.setOptionValue("primal_simplex_bound_perturbation_multiplier", PRIMAL_PERTURBATION)
        lp = highspy.HighsLp()
        lp.num_col_ = red.n_groups
        lp.num_row_ = M.shape[0]
        lp.col_cost_ = np.zeros(red.n_groups)
        self._col_lo = np.zeros(self.n_cols)
        self._col_hi = np.full(self.n_cols, INF) if col_hi is None else np.array(col_hi, dtype=float)
        lp.col_lower_, lp.col_upper_ = red.col_bounds(self._col_lo, self._col_hi)
        self._ipm = False
        rlo, rhi = red.row_bounds()
        lp.row_lower_ = np.where(np.isfinite(rlo), rlo, -INF)
        lp.row_upper_ = np.where(np.isfinite(rhi), rhi, INF)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = M.indptr.astype(np.int32)
        lp.a_matrix_.index_ = M.indices.astype(np.int32)
        lp.a_matrix_.value_ = M.data.astype(float)
        h.passModel(lp)
        self.h = h
        self._cost_idx = np.zeros(0, dtype=np.int32)
        self.solves = 0
        # the first solve of a large model starts from nothing: presolve and dual simplex are
        # far faster there (seconds instead of tens of seconds on 10^4 variables); later solves
        # start from the previous basis without presolve
        self._fresh = self.n_cols > 300

    def _pass_col_bounds(self, cols: np.ndarray | None = None) -> None:
        """Give HiGHS the bounds of the merged variables holding ``cols`` (all when None).
        Infinities pass as they are (``INF`` is numpy's): a lower bound of +inf must stay
        infeasible, not turn into "no bound"."""
        lo, hi = self._red.col_bounds(self._col_lo, self._col_hi)
        groups = np.arange(self._red.n_groups) if cols is None else np.unique(self._red.group[cols])
        self.h.changeColsBounds(len(groups), groups.astype(np.int32), lo[groups], hi[groups])

    def _optimal(self):
        sol = self.h.getSolution()
        z = np.asarray(sol.col_value)
        y = self._red.row_duals(np.asarray(sol.row_dual), np.asarray(sol.col_dual), z)
        return "optimal", self._red.expand(z), y

    def use_interior_point(self) -> None:
        """Solve by interior point without crossover (for sweeps on large models: each solve
        is a fresh one, and an interior optimum spreads values, which makes better witnesses)."""
        self.h.setOptionValue("solver", "ipm")
        self.h.setOptionValue("run_crossover", "off")
        self.h.setOptionValue("presolve", "on")
        self._fresh = False
        self._ipm = True

    def feasible_point(self, x: np.ndarray, tol: float = 1e-7) -> np.ndarray | None:
        """``x`` clipped to the column bounds if it satisfies every row within ``tol``
        (relative to the bound's size), else None."""
        return checked_point(self.A, self._row_lo, self._row_hi, x, self._col_lo, self._col_hi, tol)

    def first_solve(self):
        """Solve with no objective, from nothing: dual simplex is faster there; the
        re-solves that follow change only the objective and are primal. Returns as ``solve``."""
        self.h.setOptionValue("simplex_strategy", 1)
        out = self.solve(np.zeros(0), np.zeros(0), maximize=False)
        self.h.setOptionValue("simplex_strategy", 4)
        return out

    def solve_afresh(self, cost_idx: np.ndarray, cost_val: np.ndarray, maximize: bool):
        """``solve`` from nothing (presolve on, no basis kept): for re-checking an optimum
        that warm starts may have carried round-off into. Later solves warm-start from it."""
        self.h.clearSolver()
        self._fresh = True
        return self.solve(cost_idx, cost_val, maximize)

    def set_col_upper(self, hi: np.ndarray) -> None:
        self._col_lo = np.zeros(self.n_cols)
        self._col_hi = np.array(hi, dtype=float)   # a copy: ``set_cols_bounds`` writes into it
        self._pass_col_bounds()

    def set_cols_bounds(self, cols: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """New bounds for some columns (kept here too, for ``feasible_point``; HiGHS gets
        them met with the bounds of the variables they are merged with, and of their rows)."""
        cols = np.asarray(cols, dtype=np.int64)
        self._col_lo[cols] = np.asarray(lo, float)
        self._col_hi[cols] = np.asarray(hi, float)
        self._pass_col_bounds(cols)

    def solve(self, cost_idx: np.ndarray, cost_val: np.ndarray, maximize: bool):
        """Returns (status, col_values, row_duals); status 'optimal', 'unbounded' or 'infeasible'."""
        h = self.h
        if len(self._cost_idx):
            h.changeColsCost(len(self._cost_idx), self._cost_idx, np.zeros(len(self._cost_idx)))
        cost_idx, cost_val = self._red.objective(cost_idx, cost_val)
        h.changeColsCost(len(cost_idx), cost_idx, cost_val)
        self._cost_idx = cost_idx
        h.changeObjectiveSense(highspy.ObjSense.kMaximize if maximize else highspy.ObjSense.kMinimize)
        if self._fresh:
            self._fresh = False
            strategy = option_value(h, "simplex_strategy")
            h.setOptionValue("presolve", "on")
            h.setOptionValue("simplex_strategy", 1)
            h.run()
            h.setOptionValue("presolve", "off")
            h.setOptionValue("simplex_strategy", strategy)
        else:
            h.run()
        self.solves += 1
        st = h.getModelStatus()
        if self._ipm:
            # witnesses only: any point that satisfies the rows will do, optimal or not
            if st in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kUnknown):
                x = self.feasible_point(self._red.expand(np.asarray(h.getSolution().col_value)))
                if x is not None:
                    return "optimal", x, None
            return "failed", None, None
        if st == highspy.HighsModelStatus.kOptimal:
            return self._optimal()
        if st in (highspy.HighsModelStatus.kUnbounded,):
            return "unbounded", None, None
        if st == highspy.HighsModelStatus.kUnboundedOrInfeasible:
            # decide: solve a feasibility problem
            h.changeColsCost(len(cost_idx), cost_idx, np.zeros(len(cost_idx)))
            h.run()
            if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
                return "unbounded", None, None
            return "infeasible", None, None
        if st == highspy.HighsModelStatus.kInfeasible:
            return "infeasible", None, None
        # time limit / numerical trouble: retry from scratch once
        h.clearSolver()
        h.run()
        st = h.getModelStatus()
        if st == highspy.HighsModelStatus.kOptimal:
            return self._optimal()
        if st == highspy.HighsModelStatus.kUnbounded:
            return "unbounded", None, None
        return "infeasible", None, None


#: plain sweeps stop after one that proves fewer cells than this. A sweep is two whole-model
#: solves with dense objectives, each about 15 times the cost of an exact stage's warm solve
#: (10^5 bench quarter: 0.45 s against about 30 ms), and a cell left to the exact stage costs
#: one or two such solves; so below about 20 cells a sweep costs more than it saves (in the
#: 10^5 bench's third round each quarter's later sweeps proved 5-17 cells for 0.9 s each).
SWEEP_MIN_PROVEN = 20
#: capped sweeps solve by interior point on components with more variables than this, else by
#: dual simplex warm-started from the previous capped solve. Interior point was the better of
#: the two before HiGHS got the reduced model (``reduction``); with it, dual simplex is faster
#: everywhere measured (fifteenth session): the 10^5 bench 153 s instead of 173-178 s, the A&E
#: demo gate under nhs-digital 13.2-13.5 s instead of 15.7-17.1 s, under opensafely 38.9 s
#: instead of 50.5 s, suppress-under-10 26.7 s instead of 29.8 s, opensafely-midpoint6 16.6 s
#: instead of 20.7 s. So by default never (``OUTCOMES_CAPPED_IPM_ABOVE`` to set it).
CAPPED_IPM_ABOVE = int(os.environ.get("OUTCOMES_CAPPED_IPM_ABOVE", str(10 ** 12)))
#: capped sweeps stop when one proves fewer than this share of the targets still open, or
#: fewer than ``CAPPED_MIN_CELLS``, or after ``CAPPED_MAX`` solves in one direction
CAPPED_MIN_SHARE = 0.01
#: A capped solve costs about as much as 10 to 30 of the exact stage's warm solves (10^5
#: bench quarter: 0.28 s against 17-30 ms; a year of the A&E release with Trafford and
#: Greater Manchester by month, sex and age band: 1.8 s for the first, from nothing, and
#: 4-5 s for each warm re-solve, against about 0.15 s), and a cell left to the exact stage
#: costs one or two of those. So, as for the plain sweeps (``SWEEP_MIN_PROVEN``), one that
#: proves fewer than 20 cells costs more than it saves. On that A&E release the capped
#: solves after the first proved 17, 8, 5 and 1 cells at 4-5 s each. With 20 instead of 3
#: (seventeenth session): its gate 166.8 s instead of 212.9 s (4,290 cells hidden instead
#: of 4,284); the 10^5 bench 87.0 s instead of 93.7 s (752 hidden either way); the A&E demo
#: gate 9.9 s instead of 10.8 s under nhs-digital and 33.9 s instead of 36.6 s under
#: opensafely (the same cells hidden)
CAPPED_MIN_CELLS = 20
CAPPED_MAX = 30
#: engine only, first round only (``protect_ranges(defer=True)``): in the local and exact stages, skip the
#: targets that share a row with a binding row of a leak found before them in the same stage
#: (``RangeResult.deferred``); the engine checks them in its next round, after the leak's
#: complement, and never defers again (deferring in every round could starve a cell that only
#: its own complement would mend: a test found one under opensafely-midpoint6). In the first
#: round one complement mends several leaks (about five on the A&E release), so most skipped
#: targets need no exact LP at all. The local stage defers the same way, from the binding rows
#: of the leaks its outer LPs find (10^5 bench: 350 s instead of 375-382 s, 764 cells hidden
#: instead of 769). ``OUTCOMES_DISCLOSURE_DEFER=0`` turns it off.
DEFER = os.environ.get("OUTCOMES_DISCLOSURE_DEFER", "1") != "0"
#: feasible points a check keeps and returns (``RangeResult.points``)
KEEP_POINTS = 50
#: the most numbers one exact stage logs (``PointLog(limit=...)``): 5 million (60 MB as
#: differences). At 10^6 cells the first round has eight components of about 105,000
#: variables and 2,000-2,300 exact solves each, so unbounded logs would hold tens of millions
#: of numbers each, all eight at once in the process that gathers them. The debug line of
#: each exact stage prints how many its log holds.
EXACT_LOG_VALUES = 5_000_000
#: the local stage gives up when none of this many cells was decided by it. It visits the
#: cells in a random order (fixed seed): on a year of the A&E release with monthly sex-by-age
#: tables for every borough (17,800 variables), the first ten cells in table order were ones
#: it cannot decide, so it gave up, while in a random order it found 263 leaks, and the
#: component's first-round check took 216 s instead of 267 s (604 exact solves, not 953)
LOCAL_TRIAL = 20
#: ... and stops trying the inner LP when it has proven none of this many cells safe (at
#: 10^5 bench cells it proved none after the capped sweeps, and was 60% of the stage's
#: time: dropping it took the run from 142 s to 122 s, with the same cells hidden)
INNER_TRIAL = 10
#: a target's neighbourhood: this many hops of small rows, at most this many variables
LOCAL_HOPS = 3
LOCAL_MAX_VARS = 600
#: exact stages with at least this many cells are split into ``EXACT_SHARES`` shares, solved
#: in worker processes where allowed; but only where the caller has no other large component
#: to run beside it (``protect_ranges(exact_shares=...)``)
PARALLEL_EXACT_MIN = 200
EXACT_SHARES = 2


def disclosure_workers() -> int:
    """Worker processes for the LPs (``OUTCOMES_DISCLOSURE_WORKERS``, default up to 2)."""
    env = os.environ.get("OUTCOMES_DISCLOSURE_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, min(2, os.cpu_count() or 1))


def _may_fork() -> bool:
    """False inside a worker process (daemonic processes may not have children)."""
    import multiprocessing as mp

    return not mp.current_process().daemon


def record_witness(AT: sp.csr_matrix, x: np.ndarray, which: np.ndarray, lo_seen: np.ndarray,
                   hi_seen: np.ndarray, safe: np.ndarray, width: int) -> None:
    """A feasible point ``x`` widens the ranges seen of the targets ``which`` (rows of
    ``AT``); those whose range seen now holds ``width`` whole numbers are proven safe."""
    v = AT[which] @ x
    lo_seen[which] = np.minimum(lo_seen[which], v)
    hi_seen[which] = np.maximum(hi_seen[which], v)
    ok = integer_widths(lo_seen[which], hi_seen[which]) >= width
    safe[which[ok]] = True


def _capped_sweeps(A: sp.csr_matrix, row_lo: np.ndarray, row_hi: np.ndarray, targets: np.ndarray,
                   AT: sp.csr_matrix, und: np.ndarray, lo_seen: np.ndarray, hi_seen: np.ndarray,
                   safe: np.ndarray, width: int, col_hi: np.ndarray | None, up: bool, witness,
                   rng: np.random.Generator, interior: bool = False) -> int:
    """Push every open target just far enough, all at once. For ``up``: maximise
    sum_t w_t * min(x_t - lo_seen_t, room_t) over the targets ``und`` (rows of ``AT``), where
    room_t is how far above the smallest value seen the target must be seen to span ``width``
    whole numbers; ``down`` is the mirror image, from the largest value seen.

    Why: a plain sweep's objective has no cap, so its optimum spends the slack the targets
    share (the totals over them) on a few of them; once the easy targets are proven, plain
    sweeps stall on the tight ones, and each of those costs two whole-model solves (about
    110 ms at 20,000 variables). Capped, a target gains nothing past its cap, so the optimum
    (a simplex vertex: most targets at their cap, or giving their slack to others) proves
    together every target the shared slack can serve. The weights w_t (random in [1, 2],
    fixed seed) make a target's loss below the value seen cost less than another's gain,
    so targets trade slack instead of all staying put (on a table whose margins are
    published exactly, a target can only go up if another goes down). Re-solved, warm, with
    the proven targets taken out of the objective, until a solve proves few (on one
    quarter of the 10^5-cell bench, 20,267 variables: about ten solves proved 950 of the
    3,157 targets the plain sweeps had left, where two solves per target had been needed).

    Down: only targets whose own published range stops them going up far enough (a rounded
    cell seen above its lowest value); any other target is better served upwards.

    Every solution's x part satisfies every row of the component: an ordinary witness
    (``witness``), so the stage can prove a target safe but never call one a leak. Returns
    the number of solves.

    ``interior``: each solve by interior point without crossover, like the plain sweeps on
    large components (its points are checked against every row before use). Each capped
    solve changes the objective a lot (proven targets leave it, their s_t freed), so the
    previous simplex basis is a poor start: on a 17,280-variable component of a monthly
    sex-by-age release, warm dual simplex took 8-9 s a solve (23,000 iterations, more than
    the 13,000 of the first solve from nothing), interior point about 1 s, for the same
    targets proven; on a 10^5-bench quarter (20,267 variables) 0.9 s against 1.1 s. Those
    figures are from before HiGHS got the reduced model (``reduction``); with it warm dual
    simplex is the faster, and the default (``CAPPED_IPM_ABOVE``)."""
    rows = targets[und]
    up_need = np.ceil(lo_seen[und] - TOL) + (width - 1)
    if up:
        ok = np.isfinite(lo_seen[und]) & (row_hi[rows] >= up_need - TOL)
        room = up_need - lo_seen[und]
    else:
        need = np.floor(hi_seen[und] + TOL) - (width - 1)
        ok = np.isfinite(hi_seen[und]) & (row_lo[rows] <= need + TOL) & (row_hi[rows] < up_need - TOL)
        room = hi_seen[und] - need
    und, room = und[ok], room[ok]
    k = len(und)
    if k < 2:
        return 0
    m, n = A.shape
    # variables x (n), then s (k); rows: the component's, then x_t - s_t >= lo_seen_t (up)
    # or x_t + s_t <= hi_seen_t (down), so s_t is at most the distance moved
    S = sp.identity(k, format="csr")
    B = sp.vstack([sp.hstack([A, sp.csr_matrix((m, k))]),
                   sp.hstack([AT[und], -S if up else S])]).tocsr()
    if up:
        blo, bhi = np.concatenate([row_lo, lo_seen[und]]), np.concatenate([row_hi, np.full(k, np.inf)])
    else:
        blo, bhi = np.concatenate([row_lo, np.full(k, -np.inf)]), np.concatenate([row_hi, hi_seen[und]])
    xcap = np.full(n, INF) if col_hi is None else np.asarray(col_hi, float)
    model = ComponentLP(B, blo, bhi, col_hi=np.concatenate([xcap, room + 1e-7]))
    s_cols = np.arange(n, n + k, dtype=np.int32)
    model.set_cols_bounds(s_cols, np.full(k, -INF), room + 1e-7)   # s_t may be negative
    if interior:
        model.use_interior_point()
    else:
        model.h.setOptionValue("simplex_strategy", 1)
    weights = rng.uniform(1.0, 2.0, size=k)
    open_ = np.ones(k, dtype=bool)
    for _ in range(CAPPED_MAX):
        status, x, _ = model.solve(s_cols, weights, maximize=True)
        if status != "optimal":
            break
        before = int(open_.sum())
        witness(x[:n], und[open_])
        done = open_ & safe[und]
        open_ &= ~done
        gained = int(done.sum())
        if not open_.any() or gained < max(CAPPED_MIN_CELLS, CAPPED_MIN_SHARE * before):
            break
        # a proven target leaves the objective, its s_t free (its row no longer binds)
        closed = np.flatnonzero(done).astype(np.int32)
        weights[closed] = 0.0
        model.set_cols_bounds(n + closed, np.full(len(closed), -INF), np.full(len(closed), INF))
    return model.solves


def _exact_stage(model: "ComponentLP", AT: sp.csr_matrix, order: np.ndarray, lo_seen: np.ndarray,
                 hi_seen: np.ndarray, exact: np.ndarray, safe: np.ndarray, threshold: int, width: int,
                 want_binding: bool, exact_all: bool,
                 log: PointLog | None = None,
                 near: np.ndarray | None = None,
                 own_bounds: tuple[np.ndarray, np.ndarray] | None = None,
                 ) -> tuple[dict[int, np.ndarray], bool, np.ndarray]:
    """Exact min (and max, unless the min and the largest value seen already settle it) of
    each target in ``order``, updating the arrays in place. Every optimal point found is also
    a witness for the targets still open in ``order``, and is added to ``log`` if given.
    With ``own_bounds`` (each target row's own lower and upper bound), a bound that a
    feasible point already seen attains is the optimum, and is not solved for (see
    ``_attained``). With
    ``near`` (engine only: columns already named by leaks' binding rows; see ``DEFER``), a
    target sharing a column with a binding row of a leak found before it is skipped. Returns
    (binding rows of each leaking target, whether every LP was feasible, the targets skipped
    and still unproven)."""
    binding: dict[int, np.ndarray] = {}
    feasible = True
    defer = near is not None
    if defer:
        near = near.copy()       # the caller's stays as it was (each share starts from it)
    skipped = []
    for t in order:
        if safe[t] and not exact_all:
            continue
        if defer and near[AT[t].indices].any():
            skipped.append(int(t))
            continue
        row = AT[t]
        idx, val = row.indices, row.data
        bounds = [np.nan, np.nan]
        duals = []
        decided = False
        for k, maximize in enumerate((False, True)):
            own = _attained(own_bounds, t, lo_seen, hi_seen, maximize)
            if own is not None:
                bounds[k] = own
            else:
                status, x, y = model.solve(idx, val, maximize)
                if status == "optimal":
                    bounds[k] = float((row @ x)[0])
                    if log is not None:
                        log.add(x)
                    if not exact_all:
                        record_witness(AT, x, order[~safe[order]], lo_seen, hi_seen, safe, width)
                    if want_binding:
                        duals.append(np.flatnonzero(np.abs(y) > 1e-9))
                elif status == "unbounded":
                    bounds[k] = np.inf if maximize else -np.inf
                else:
                    feasible = False
            if k == 0 and not exact_all and np.isfinite(bounds[0]):
                # the exact minimum and the largest value seen may already settle it
                lo_seen[t] = bounds[0]
                if bounds[0] > threshold + TOL or integer_width(bounds[0], hi_seen[t]) >= width:
                    safe[t] = True
                    decided = True
                    break
        if decided:
            continue
        if not _rule_ok(bounds[0], bounds[1], threshold, width):
            _resolve_near_whole(model, idx, val, row, bounds)
        lo, hi = bounds
        lo_seen[t], hi_seen[t] = lo, hi
        exact[t] = True
        safe[t] = _rule_ok(lo, hi, threshold, width)
        if want_binding and not safe[t]:
            binding[int(t)] = np.unique(np.concatenate(duals)) if duals else np.zeros(0, np.int64)
            if defer and len(binding[int(t)]):
                near[np.unique(model.A[binding[int(t)]].indices)] = True
    skipped = np.asarray(skipped, dtype=np.int64)
    return binding, feasible, skipped[~safe[skipped]] if len(skipped) else skipped


def _attained(own_bounds: tuple[np.ndarray, np.ndarray] | None, t: int, lo_seen: np.ndarray,
              hi_seen: np.ndarray, maximize: bool) -> float | None:
    """The target's own bound in that direction, if a feasible point seen attains it (else None).

    Why. A target's row carries its own bound (a suppressed cell's floor: at least 1 or 0; a
    rounded cell's range), and no feasible point goes past it; so when one already sits on
    it (``lo_seen``/``hi_seen`` hold only values of feasible points by the time the exact
    stage runs), that bound is the exact optimum and needs no LP. Small suppressed cells often
    sit on their floor in the sweeps' points, and HiGHS spends about 6 ms on every solve even
    when no pivot is needed. For a leak, the solve skipped is the one at the floor, whose row
    duals name only rows the cell cannot be moved past anyway."""
    if own_bounds is None:
        return None
    lo, hi = own_bounds
    bound = hi[t] if maximize else lo[t]
    if not np.isfinite(bound):
        return None
    seen = hi_seen[t] if maximize else lo_seen[t]
    if (seen >= bound - TOL) if maximize else (seen <= bound + TOL):
        return float(bound)
    return None


def _near_whole(value: float, up: bool) -> bool:
    """``value`` lies just short of the next whole number in direction ``up`` (or down),
    by more than ``TOL`` (else it already counts as that number) but less than ``NEAR_WHOLE``."""
    if not np.isfinite(value):
        return False
    gap = math.ceil(value) - value if up else value - math.floor(value)
    return TOL < gap < NEAR_WHOLE


def _resolve_near_whole(model: "ComponentLP", idx, val, row, bounds: list[float]) -> None:
    """Re-solve from scratch each bound of a narrow range that sits just short of a whole
    number (see ``NEAR_WHOLE``), keeping the fresh optimum. Only a fresh optimum can widen
    the range; if it says the same, the cell stays narrow."""
    for k, maximize in enumerate((False, True)):
        if _near_whole(bounds[k], up=maximize):
            status, x, _ = model.solve_afresh(idx, val, maximize)
            if status == "optimal":
                bounds[k] = float((row @ x)[0])


def _exact_share(args):
    """One worker's share of an exact stage (a picklable job; see ``protect_ranges``)."""
    A, row_lo, row_hi, AT, share, lo_seen, hi_seen, safe, threshold, width, want_binding, near, own = args
    model = ComponentLP(A, row_lo, row_hi)
    model.first_solve()
    lo_seen, hi_seen, safe = lo_seen.copy(), hi_seen.copy(), safe.copy()
    exact = np.zeros(len(safe), dtype=bool)
    log = PointLog(EXACT_LOG_VALUES)
    binding, feasible, deferred = _exact_stage(model, AT, share, lo_seen, hi_seen, exact, safe, threshold,
                                               width, want_binding, False, log, near, own)
    log.drop_last()
    return (lo_seen[share], hi_seen[share], exact[share], safe[share], binding, feasible, model.solves, log,
            deferred)


@dataclass
class RangeResult:
    lo: np.ndarray          # per target: LP minimum (exact) or smallest value seen (when proven by witnesses)
    hi: np.ndarray
    exact: np.ndarray       # True where lo/hi are the LP min/max
    safe: np.ndarray        # protection rule holds
    feasible: bool = True
    binding: dict[int, np.ndarray] = field(default_factory=dict)  # target -> rows with nonzero dual
    solves: int = 0
    #: feasible points found (the first solve's, the sweeps' and the capped sweeps': at most
    #: ``KEEP_POINTS``), which a later check of a relaxed system can start from
    #: (``hinted_ranges``)
    points: list[np.ndarray] = field(default_factory=list)
    #: the exact stage's optimal points (``PointLog``s: one per share), kept apart from
    #: ``points`` because there may be thousands
    exact_points: list["PointLog"] = field(default_factory=list)
    #: targets the local or exact stage skipped (engine only): they share a binding row with a
    #: leak found before them, whose complement may well mend them too; checked in the next round
    deferred: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def _rule_ok(lo: float, hi: float, threshold: int, width: int) -> bool:
    if hi < 1 - TOL or lo > threshold + TOL:
        return True  # range does not meet [1, threshold]
    return integer_width(lo, hi) >= width


def _rule_ok_meets(lo: float, hi: float, threshold: int) -> bool:
    """True when a range known to lie inside the feasible range meets [1, threshold]."""
    return hi >= 1 - TOL and lo <= threshold + TOL


class _Local:
    """Small LPs around one target row (see module docstring, step 3)."""

    def __init__(self, A: sp.csr_matrix, row_lo, row_hi, x0, small_row: int = 40,
                 max_vars: int = LOCAL_MAX_VARS, hops: int = LOCAL_HOPS):
        self.A = A
        self.AC = A.tocsc()
        self.lo = row_lo
        self.hi = row_hi
        self.x0 = np.maximum(x0, 0.0)
        self.ax0 = A @ self.x0
        self.rowlen = np.diff(A.indptr)
        self.small_row = small_row
        self.max_vars = max_vars
        self.hops = hops

    def _rows_of(self, V: np.ndarray) -> np.ndarray:
        return np.unique(self.AC[:, V].indices)

    def neighbourhood(self, r: int) -> np.ndarray:
        """The target's variables, then those of the small rows touching them, hop by hop
        (shortest rows first), until the next row would take it past ``max_vars``.

        Why row by row: a move that keeps every relation (e.g. +1, -1 round a rectangle of
        cells in two areas and two age bands) needs cells three hops away, and a whole hop
        is usually too many variables; cutting the hop short still gives the local LPs the
        nearest of them. (Taking whole hops only, the stage decided no cell at all on the
        A&E release or at 10^5 cells.)"""
        V = self.A[r].indices
        have = set(V.tolist())
        for _ in range(self.hops):
            R = self._rows_of(np.fromiter(have, dtype=np.int64))
            R = R[self.rowlen[R] <= self.small_row]
            R = R[np.argsort(self.rowlen[R], kind="stable")]
            grew = False
            for row in R:
                cols = self.A.indices[self.A.indptr[row]:self.A.indptr[row + 1]]
                extra = [c for c in cols.tolist() if c not in have]
                if not extra:
                    continue
                if len(have) + len(extra) > self.max_vars:
                    return np.fromiter(sorted(have), dtype=np.int64)
                have.update(extra)
                grew = True
            if not grew:
                break
        return np.fromiter(sorted(have), dtype=np.int64)

    def _solve(self, A, lo, hi, obj_row, chi, want_duals=False):
        m = ComponentLP(A, lo, hi, col_hi=chi)
        out = []
        duals = []
        for maximize in (False, True):
            st, x, y = m.solve(obj_row.indices, obj_row.data, maximize)
            if st == "optimal":
                out.append(float((obj_row @ x)[0]))
                if want_duals:
                    duals.append(np.flatnonzero(np.abs(y) > 1e-9))
            elif st == "unbounded":
                out.append(np.inf if maximize else -np.inf)
            else:
                return None, None, None
        return out[0], out[1], duals

    def inner(self, r: int, V: np.ndarray):
        R = self._rows_of(V)
        sub = self.A[R]
        AV = sub[:, V]
        fixed = (sub @ self.x0) - (AV @ self.x0[V])
        lo = self.lo[R] - fixed
        hi = self.hi[R] - fixed
        # tolerate round-off in x0
        lo = np.where(np.isfinite(lo), lo - 1e-7, lo)
        hi = np.where(np.isfinite(hi), hi + 1e-7, hi)
        obj = self.A[r][:, V]
        a, b, _ = self._solve(AV, lo, hi, obj, np.full(len(V), INF))
        return a, b

    def outer(self, r: int, V: np.ndarray, want_duals: bool):
        R = self._rows_of(V)
        sub = self.A[R]
        keep = np.diff(sub[:, V].indptr) == np.diff(sub.indptr)   # rows entirely inside
        R2 = R[keep]
        if len(R2) == 0:
            return None, None, np.zeros(0, np.int64)
        obj = self.A[r][:, V]
        a, b, duals = self._solve(self.A[R2][:, V], self.lo[R2], self.hi[R2], obj,
                                  np.full(len(V), INF), want_duals)
        rows = R2[np.unique(np.concatenate(duals))] if want_duals and duals else np.zeros(0, np.int64)
        return a, b, rows


def protect_ranges(
    A: sp.csr_matrix,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    targets: np.ndarray,
    threshold: int,
    width: int,
    *,
    want_binding: bool = False,
    seed: int = 0,
    sweeps: int = 6,
    max_exact: int | None = None,
    exact_all: bool = False,
    local_above: int = 3000,
    ipm_above: int = 2000,
    defer: bool = False,
    exact_shares: int = EXACT_SHARES,
) -> RangeResult:
    """Check the protection rule for rows ``targets`` of the system ``row_lo <= A x <= row_hi, x >= 0``.

    ``exact_shares``: how many shares a large exact stage is split into (each on a model of
    its own, in worker processes where allowed). One share is one sequence of warm solves in
    which every optimal point is a witness for every cell still open; two shares run in
    parallel but see only their own points. So a caller that already runs other large
    components beside this one (``audit._run_jobs``) asks for one: at 10^5 bench cells, four
    quarter components two at a time, that took the run from 122 s to 107 s (a quarter fewer
    exact solves), with the same cells hidden."""
    A = sp.csr_matrix(A)
    nt = len(targets)
    lo_seen = np.full(nt, np.inf)
    hi_seen = np.full(nt, -np.inf)
    exact = np.zeros(nt, dtype=bool)
    safe = np.zeros(nt, dtype=bool)
    outer_leak = np.zeros(nt, dtype=bool)
    res = RangeResult(lo_seen, hi_seen, exact, safe)
    if nt == 0:
        return res
    AT = A[targets]
    finite_hi = row_hi[np.isfinite(row_hi)]
    cap = max(1e4, 10.0 * (finite_hi.max() if len(finite_hi) else 0.0) + 1000.0)
    model = ComponentLP(A, row_lo, row_hi, col_hi=np.full(A.shape[1], cap))
    rng = np.random.default_rng(seed)

    sols: list[np.ndarray] = []

    def witness(x: np.ndarray, which: np.ndarray) -> None:
        if len(sols) < KEEP_POINTS:
            sols.append(x)
        record_witness(AT, x, which, lo_seen, hi_seen, safe, width)

    import time as _time, os as _os
    _dbg = _os.environ.get("OUTCOMES_DISCLOSURE_DEBUG")   # progress of each phase, on stdout
    _t0 = _time.perf_counter()
    def _log(tag):
        if _dbg:
            print(f"  [pr] nt={nt} vars={A.shape[1]} rows={A.shape[0]} {tag}: undecided={int((~safe).sum())} solves={model.solves}+{sweeper.solves if sweeper is not model else 0} t={_time.perf_counter()-_t0:.2f}", flush=True)
    sweeper = model
    undecided = np.arange(nt)
    status, x, _ = model.first_solve()
    if status == "infeasible":
        model.set_col_upper(np.full(A.shape[1], INF))
        cap = None
        status, x, _ = model.solve(np.zeros(0), np.zeros(0), maximize=False)
        if status == "infeasible":
            res.feasible = False
            res.solves = model.solves
            return res
    witness(x, undecided)
    undecided = undecided[~safe[undecided]]
    # the variables' upper bounds the sweeps use (none where the cap made the model infeasible)
    col_cap = None if cap is None else np.full(A.shape[1], cap)
    sweeper = model
    if A.shape[1] > ipm_above and not exact_all and len(undecided) > 8:
        sweeper = ComponentLP(A, row_lo, row_hi, col_hi=col_cap)
        sweeper.use_interior_point()
    for _ in range(0 if exact_all else sweeps):
        if len(undecided) == 0:
            break
        before = len(undecided)
        w = rng.choice([-1.0, 1.0], size=len(undecided))
        c = np.asarray(AT[undecided].T @ w).ravel()
        idx = np.flatnonzero(c)
        for maximize in (True, False):
            status, x, _ = sweeper.solve(idx, c[idx], maximize)
            if status == "optimal":
                witness(x, undecided)
        undecided = undecided[~safe[undecided]]
        _log(f"sweep (undecided before: {before})")
        # a sweep that proved nothing ends them (pinned cells: later ones rarely do better;
        # tests/disclosure/test_plain_sweeps.py), as does a poor one on a few cells, and one that
        # proved fewer cells than its two solves would settle in the exact stage
        # (``SWEEP_MIN_PROVEN``)
        if len(undecided) == before or (len(undecided) > 0.7 * before and before < 50) \
                or before - len(undecided) < SWEEP_MIN_PROVEN:
            break
    _log("sweeps")
    # capped sweeps: every open target pushed just far enough, up, then down
    capped = 0
    if not exact_all and len(undecided) > 8:
        for up in (True, False):
            capped += _capped_sweeps(A, row_lo, row_hi, targets, AT, undecided, lo_seen, hi_seen, safe, width,
                                     col_cap, up, witness, rng,
                                     interior=sweeper is not model and A.shape[1] > CAPPED_IPM_ABOVE)
            undecided = undecided[~safe[undecided]]
    _log(f"capped ({capped} solves)")
    # local inner / outer LPs on large components
    # deferral (see ``DEFER``): the columns of the binding rows of the leaks found so far
    near = np.zeros(A.shape[1], dtype=bool) if (defer and DEFER and want_binding and not exact_all) else None
    local_deferred = np.zeros(nt, dtype=bool)
    if not exact_all and A.shape[1] > local_above and len(undecided):
        undecided = undecided[~safe[undecided]]
        x0 = np.mean(sols, axis=0)
        loc = _Local(A, row_lo, row_hi, x0, max_vars=LOCAL_MAX_VARS)
        tried = decided = inner_tried = inner_proved = 0
        # in a random order (fixed seed), so that the trial below samples every table of the
        # component, not only the cells of its first one
        for t in rng.permutation(undecided):
            if near is not None and near[AT[t].indices].any():
                local_deferred[t] = True
                continue
            # a shortcut, not a proof step: where it has decided none of the first cells it
            # tried, the rest go straight to the exact LPs (on the A&E release it decided
            # none at all, and cost up to a minute)
            if tried >= LOCAL_TRIAL and decided == 0:
                break
            tried += 1
            r = int(targets[t])
            V = loc.neighbourhood(r)
            ilo = None
            if inner_tried < INNER_TRIAL or inner_proved > 0:
                inner_tried += 1
                ilo, ihi = loc.inner(r, V)
            if ilo is not None:
                lo_seen[t] = min(lo_seen[t], ilo)
                hi_seen[t] = max(hi_seen[t], ihi)
                if integer_width(lo_seen[t], hi_seen[t]) >= width:
                    safe[t] = True
                    decided += 1
                    inner_proved += 1
                    continue
            olo, ohi, rows = loc.outer(r, V, want_binding)
            # a narrow outer range that round-off may have narrowed goes to the exact stage
            if olo is not None and not _rule_ok(olo, ohi, threshold, width) \
                    and not (_near_whole(olo, up=False) or _near_whole(ohi, up=True)) \
                    and _rule_ok_meets(lo_seen[t], hi_seen[t], threshold):
                lo_seen[t], hi_seen[t] = olo, ohi
                exact[t] = False
                outer_leak[t] = True
                decided += 1
                if want_binding:
                    res.binding[int(t)] = rows
                    if near is not None and len(rows):
                        near[np.unique(A[rows].indices)] = True
        undecided = undecided[~safe[undecided] & ~outer_leak[undecided] & ~local_deferred[undecided]]
    _log(f"local (outer leaks {int(outer_leak.sum())}, deferred {int(local_deferred.sum())})")
    # exact per-target ranges
    # (each target's own row bounds: a bound a point seen already attains is not solved for)
    own = None if exact_all else (row_lo[targets], row_hi[targets])
    if cap is not None:
        model.set_col_upper(np.full(A.shape[1], INF))
    order = np.arange(nt) if exact_all else undecided[~safe[undecided] & ~outer_leak[undecided]
                                                      & ~local_deferred[undecided]]
    res.deferred = np.flatnonzero(local_deferred & ~safe)
    _log(f"exact order {len(order)}")
    if max_exact is not None:
        order = order[:max_exact]
    if not exact_all and exact_shares > 1 and len(order) >= PARALLEL_EXACT_MIN:
        # always the same shares (interleaved, so each gets cells of every table), each
        # re-solved on a model of its own: in worker processes where allowed, else one
        # after the other here. So the result depends on the input only, not on the machine.
        shares = [order[i::exact_shares] for i in range(exact_shares)]
        args = [(A, row_lo, row_hi, AT, share, lo_seen, hi_seen, safe, threshold, width, want_binding,
                 near, own)
                for share in shares]
        results = None
        if disclosure_workers() > 1 and _may_fork():
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            try:
                with ProcessPoolExecutor(max_workers=exact_shares, mp_context=mp.get_context("fork")) as ex:
                    results = list(ex.map(_exact_share, args))
            except (OSError, RuntimeError):
                results = None
        if results is None:
            results = [_exact_share(a) for a in args]
        for share, (lo_s, hi_s, ex_s, safe_s, binding, feasible, solves, log, dfr) in zip(shares, results):
            res.deferred = np.concatenate([res.deferred, dfr])
            lo_seen[share], hi_seen[share], exact[share], safe[share] = lo_s, hi_s, ex_s, safe_s
            res.binding.update(binding)
            res.feasible &= feasible
            model.solves += solves
            if len(log):
                res.exact_points.append(log)
        order = order[:0]
    log = PointLog(EXACT_LOG_VALUES)
    binding, feasible, deferred = _exact_stage(model, AT, order, lo_seen, hi_seen, exact, safe, threshold,
                                               width, want_binding, exact_all, None if exact_all else log, near,
                                               own)
    res.deferred = np.concatenate([res.deferred, deferred])
    log.drop_last()
    if len(log):
        res.exact_points.append(log)
    res.binding.update(binding)
    res.feasible &= feasible
    res.solves = model.solves
    res.points = sols
    _log("exact (points logged: " + ", ".join(f"{lg.values}{' full' if lg.full else ''}" for lg in res.exact_points)
         + ")")
    return res
