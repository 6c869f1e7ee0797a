"""Mending a stubborn leak by a move of the true counts.

Why. The engine mends each leak with one complement named by the duals of the leak's
min/max solves, and checks again next round. Most leaks close in a round or two, but
some are pinned by several relations at once, and each round relaxes only one of them:
under suppress-under-10 (counts published exactly) the A&E release took 51 rounds, the
last thirty adding one to five complements each for the same few dozen leaks.

How. The engine, unlike an attacker, knows the true counts, and they are a feasible point
of the attacker's system under any suppression pattern. For a leak we look for a *move*
of the true counts that takes the cell far enough to widen its range to the protection
width and keeps every relation: a small LP around the cell, with everything outside its
neighbourhood fixed at the truth (so the moved point is feasible for the whole
component). Where the move must take a published cell outside the range it stands for,
that cell is suppressed: a complement. Each unit a published cell is moved outside its
range costs its true count + 1, so the LP prefers small cells and keeps off totals; a
move is looked for in a small neighbourhood first, and in larger ones while a move there
still needs complements. So one LP names every complement the leak needs at once.

What it proves. The moved point and the values the cell is known to take (its exact
minimum and maximum, attained by feasible points) bound its range from inside; the
engine checks the cell again next round all the same, and the moved points go to the
audit as hints, which it checks against its own system before using them. Suppressing
more only relaxes the system, so a point once feasible stays feasible.

Used for every target from the first round, this step hid more cells than the LP rounds
(docs/disclosure-engine.md, "What has been tried": construction from the true counts); for the few leaks the LP rounds leave
open round after round it hides fewer, in fewer rounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .lp import INF, TOL, ComponentLP, PointLog, _Local, checked_point, integer_width, integer_widths

#: a move is looked for among this many variables round the target, then among more (a
#: rectangle of cells in one area's sex-by-age block needs few; a region's cell, many)
NEIGHBOURHOOD_VARS = (350, 2500)
#: hops of small rows a neighbourhood may grow by (a region's cell moves through its
#: boroughs' and their wards' cells: more hops than the local stage's three)
HOPS = 8
#: how far a moved cell may sit outside its bound before it counts as a complement
MOVE_TOL = 1e-7


def _tight(model: ComponentLP) -> ComponentLP:
    """Solved to a feasibility tolerance well inside the one every point is checked with
    (``checked_point``: 1e-7), so that its points pass that check."""
    model.h.setOptionValue("primal_feasibility_tolerance", 1e-9)
    return model


@dataclass
class ComponentMoves:
    """What the moves did on one component (local row numbers: row i is the i-th cell)."""

    complements: np.ndarray      # cells to suppress
    proven: np.ndarray           # targets (and complements) proven safe by the points
    points: PointLog | None      # the truth, then every moved point
    repairs: int = 0             # LPs solved
    failed: int = 0              # targets no move within their neighbourhood could protect


def truth_point(A: sp.csr_matrix, row_lo: np.ndarray, row_hi: np.ndarray, n_cells: int,
                truth: np.ndarray) -> np.ndarray | None:
    """A point of the component's variables at which every cell takes its true count
    (the variables below the cells, e.g. the atoms of non-nested areas, are not unique:
    any such point will do), or None when the true counts lie outside the bounds (an
    earlier release published a revised count) or the solver fails."""
    t = np.asarray(truth, float)
    if (t < row_lo[:n_cells] - 1e-9).any() or (t > row_hi[:n_cells] + 1e-9).any():
        return None
    lo, hi = row_lo.copy(), row_hi.copy()
    lo[:n_cells] = t
    hi[:n_cells] = t
    status, x, _ = _tight(ComponentLP(A, lo, hi)).first_solve()
    if status != "optimal":
        return None
    return checked_point(A, row_lo, row_hi, x)


def _goals(lo_seen: float, hi_seen: float, own_lo: float, own_hi: float, width: int):
    """The values the cell must be moved to (down, up; None where no move is needed) so that
    the range seen spans ``width`` whole numbers, centred on the values seen where its own
    bounds allow: two moves of about half the width each fit in the slack of rounded
    neighbours more often than one move of the whole width, so they need fewer
    complements (with moves for every target of a bench-shaped release, 3 months x 10
    boroughs x 6 wards: 320 instead of 349)."""
    lo_int = int(np.ceil(lo_seen - TOL))
    hi_int = int(np.floor(hi_seen + TOL))
    short = width - (hi_int - lo_int + 1)
    down = max(lo_int - short // 2, int(np.ceil(own_lo - TOL)))
    up = down + width - 1
    if up > own_hi + TOL:
        up = int(np.floor(own_hi + TOL))
        down = up - (width - 1)
        if down < own_lo - TOL:
            return None, None          # its own range is narrower than the rule: nothing helps
    return (down if down < lo_seen - TOL else None), (up if up > hi_seen + TOL else None)


class _Repair:
    """Small LPs that move the truth around one target (see the module docstring)."""

    def __init__(self, A: sp.csr_matrix, row_lo, row_hi, x0, relaxable, sup_lo, sup_hi, weight):
        self.A = A
        self.AC = A.tocsc()
        self.lo, self.hi = row_lo, row_hi          # updated as complements are added
        self.x0 = x0
        self.ax0 = A @ x0
        self.relaxable = relaxable                 # updated as complements are added
        self.sup_lo, self.sup_hi = sup_lo, sup_hi
        self.weight = weight
        self.sizes = [_Local(A, row_lo, row_hi, x0, max_vars=v, hops=HOPS) for v in NEIGHBOURHOOD_VARS]

    def move(self, r: int, goal: float, up: bool):
        """(point, rows made complements) or None: the cheapest move of the truth that takes
        row ``r`` to ``goal``, inside a small neighbourhood of ``r``, else a larger one."""
        best = None
        for local in self.sizes:
            found = self._move(local.neighbourhood(r), r, goal, up)
            if found is not None and (best is None or found[2] < best[2] - 1e-9):
                best = found
            if best is not None and len(best[1]) == 0:
                break           # no complement needed: a larger neighbourhood can't do better
        return None if best is None else best[:2]

    def _move(self, V: np.ndarray, r: int, goal: float, up: bool):
        R = np.unique(self.AC[:, V].indices)
        AV = self.A[R][:, V].tocsr()
        fixed = self.ax0[R] - AV @ self.x0[V]
        lo = self.lo[R] - fixed
        hi = self.hi[R] - fixed
        rel = np.flatnonzero(self.relaxable[R])
        k, n, m = len(rel), len(V), len(R)
        U = sp.csr_matrix((np.ones(k), (rel, np.arange(k))), shape=(m, k))
        zk = sp.csr_matrix((k, 2 * k))
        t = int(np.searchsorted(R, r))
        rows = sp.vstack([
            sp.hstack([AV, -U, U]),                       # each row in its range, or moved out of it
            sp.hstack([AV[rel], zk]),                     # ... but a moved cell stays in its suppressed range
            sp.hstack([AV[t], sp.csr_matrix((1, 2 * k))]),  # the target reaches its goal
        ]).tocsr()
        glo, ghi = (goal - fixed[t], INF) if up else (-INF, goal - fixed[t])
        rlo = np.concatenate([lo, self.sup_lo[R[rel]] - fixed[rel], [glo]])
        rhi = np.concatenate([hi, self.sup_hi[R[rel]] - fixed[rel], [ghi]])
        model = _tight(ComponentLP(rows, rlo, rhi))
        w = self.weight[R[rel]]
        status, z, _ = model.solve(np.arange(n, n + 2 * k), np.concatenate([w, w]), maximize=False)
        if status != "optimal":
            return None
        x = self.x0.copy()
        x[V] = np.maximum(z[:n], 0.0)
        moved = z[n:n + k] + z[n + k:]
        return x, R[rel[moved > MOVE_TOL]], float(w @ moved)


def mend_job(args: tuple) -> ComponentMoves:
    """``mend_component(*args)``, as one picklable job for a worker process."""
    return mend_component(*args)


def mend_component(A: sp.csr_matrix, row_lo: np.ndarray, row_hi: np.ndarray, n_cells: int,
                   truth: np.ndarray, targets: np.ndarray, relaxable: np.ndarray,
                   sup_lo: np.ndarray, sup_hi: np.ndarray, weight: np.ndarray,
                   width: int, seen: tuple[np.ndarray, np.ndarray] | None = None) -> ComponentMoves:
    """Protect the ``targets`` (cell rows) of one component, in order, by moves of the truth
    (and the complements the moves add, which become targets too).

    ``relaxable``: the cell rows that may become complements (published and suppressible);
    ``sup_lo``/``sup_hi``: every cell row's bounds once suppressed; ``weight``: the cost per
    unit of moving each cell row outside its published range; ``seen``: values each cell row
    is known to take at some feasible point (NaN where none is known: the truth only), which
    bound its range from inside as much as the points found here do."""
    empty = np.zeros(0, np.int64)
    x0 = truth_point(A, row_lo, row_hi, n_cells, truth)
    if x0 is None:
        return ComponentMoves(empty, empty, None)
    lo, hi = row_lo.astype(float).copy(), row_hi.astype(float).copy()
    relax = np.zeros(A.shape[0], dtype=bool)
    relax[:n_cells] = relaxable
    full = lambda a, fill: np.concatenate([a, np.full(A.shape[0] - n_cells, fill)])  # noqa: E731
    rep = _Repair(A, lo, hi, x0, relax, full(sup_lo, 0.0), full(sup_hi, 0.0), full(weight, 0.0))
    log = PointLog()
    log.add(x0)
    Acells = A[:n_cells]
    value = Acells @ x0
    lo_seen, hi_seen = value.copy(), value.copy()
    if seen is not None:
        known = np.isfinite(seen[0]) & np.isfinite(seen[1])
        lo_seen[known] = np.minimum(lo_seen[known], seen[0][known])
        hi_seen[known] = np.maximum(hi_seen[known], seen[1][known])
    is_target = np.zeros(n_cells, dtype=bool)
    queue = list(np.sort(np.asarray(targets, np.int64)))
    is_target[queue] = True
    complements: list[int] = []
    failed = repairs = 0
    i = 0
    while i < len(queue):
        r = int(queue[i])
        i += 1
        if integer_width(lo_seen[r], hi_seen[r]) >= width:
            continue
        down, up = _goals(lo_seen[r], hi_seen[r], lo[r], hi[r], width)
        if down is None and up is None:
            failed += 1
            continue
        for goal, upwards in ((up, True), (down, False)):
            if goal is None:
                continue
            repairs += 1
            found = rep.move(r, goal, upwards)
            if found is None:
                failed += 1
                break
            x, new = found
            kept = lo[new].copy(), hi[new].copy()
            lo[new], hi[new] = rep.sup_lo[new], rep.sup_hi[new]
            x = checked_point(A, lo, hi, x)
            if x is None:           # round-off took it out of the system: prove nothing with it,
                lo[new], hi[new] = kept     # and suppress nothing for it
                failed += 1
                break
            relax[new] = False
            complements.extend(int(c) for c in new)
            for c in new:
                if not is_target[c]:
                    is_target[c] = True
                    queue.append(int(c))
            log.add(x)
            v = Acells @ x
            np.minimum(lo_seen, v, out=lo_seen)
            np.maximum(hi_seen, v, out=hi_seen)
    proven = np.flatnonzero(is_target & (integer_widths(lo_seen, hi_seen) >= width))
    return ComponentMoves(np.array(sorted(set(complements)), np.int64), proven, log, repairs, failed)
