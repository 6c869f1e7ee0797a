"""Secondary (complementary) suppression.

Loop until the LP audit passes on the would-be publication:

1. fast screen: for every simple relation between cells (``All`` = sum of
   the categories; an area = the disjoint union of other areas of one level
   in the same table; a period = the sum of the periods that partition it,
   for measures additive over time), interval arithmetic on the published
   ranges alone. A narrow range found from one relation is a real leak
   (dropping the other relations only widens ranges), so a complement is
   added in that relation right away, without any LP; one per neighbourhood
   per pass. ``OUTCOMES_SCREEN_PROPAGATION=k`` first propagates bounds through
   k rounds of all relations (finds more leaks without LPs, so fewer LP
   rounds, but its complements are chosen less well: about four times as many
   cells hidden on ``bench/disclosure_scale.py``, so it is off by default);
2. the audit's LP analysis (``audit.analyse``: sweeps, then exact min/max per
   undecided cell) on the components that changed. For each cell still
   narrowed too far, the row duals of its min/max solves name the published
   cells whose values pin it; one of them is suppressed;
3. a leak still open after ``MOVE_AFTER`` rounds (pinned by several relations,
   each round's complement relaxing only one) is mended instead by a move of
   the true counts (``moves``): one small LP names every complement it needs.

Choosing a complement: among the candidate cells (published, not a 0 when
zeros are shown, since a shown 0 is never suppressed and a suppressed cell is
known to be >= 1), prefer the smallest count that alone gives enough room
(at least ``width - 1 + 2*floor - count(cell)``), otherwise the smallest;
ties by table order and row. So totals and whole series are hidden only when
no small cell in the narrowing relation would do. Every round adds at least
one suppression or stops, so the loop ends; the result is deterministic for
the same input (fixed seeds, stable orderings).

Earlier release: the same intersected ranges as the audit (see ``audit``).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd

from .audit import (
    ComponentIndex,
    analyse,
    combine_previous,
    implied_bounds,
    map_components,
    term_implied_ranges,
    previous_bounds,
    published_bounds,
    split_components,
    target_mask,
)
from .moves import mend_job
from .lp import TOL, integer_widths
from .meta import TableMeta
from .policy import Policy
from .primary import round_counts
from .relations import LinearSystem, build_system

MAX_ROUNDS = 200
#: a leak still open after this many LP rounds is mended by a move of the true counts
#: (``moves``) instead of one more complement named by its duals (0: never;
#: ``OUTCOMES_DISCLOSURE_MOVE_AFTER``)
MOVE_AFTER = int(os.environ.get("OUTCOMES_DISCLOSURE_MOVE_AFTER", "3"))
#: components with this many leaks to move are worth a worker process of their own
MOVE_PARALLEL_CELLS = 20
_DEBUG = bool(os.environ.get("OUTCOMES_DISCLOSURE_DEBUG"))
#: rounds of interval propagation in the screen (0: each relation alone, with published bounds)
SCREEN_PROPAGATION = int(os.environ.get("OUTCOMES_SCREEN_PROPAGATION", "0"))


def _width(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return integer_widths(lo, np.where(np.isfinite(hi), hi, 1e18))


def secondary_suppress(
    tables: dict[str, pd.DataFrame],
    meta: dict[str, TableMeta],
    area_members: pd.DataFrame,
    policy: Policy,
    primary: dict[str, np.ndarray],
    previous: dict[str, pd.DataFrame] | None = None,
    must_fix: dict[str, np.ndarray] | None = None,
    points: dict | None = None,
) -> dict[str, np.ndarray]:
    """Suppression masks (per table) that satisfy the protection rule, starting from
    ``primary``. ``must_fix`` names cells (table -> row positions) an audit found
    under-protected: each gets a complement among its related cells before anything else.
    ``points``: if given, filled with the feasible points the LP rounds found (per component;
    see ``audit.analyse(keep_points=...)``), for the audit to start from (``audit_release(hints=...)``);
    suppressing more only relaxes the system, so they stay feasible for the final masks.
    A dict that already holds points (from an earlier call on the same release) is added to."""
    names = list(tables)
    if not names:
        return {}
    structure = {n: tables[n].drop(columns=["count"]) for n in names}
    system = build_system(structure, meta, area_members)
    truth = np.concatenate([np.asarray(tables[n]["count"], dtype=np.int64) for n in names])
    mask = np.concatenate([np.asarray(primary[n], dtype=bool) for n in names])
    engine = _Engine(system, truth, mask, policy, tables, meta, previous)
    if points is not None:
        engine.points = points
    if must_fix:
        engine.fix([system.slices[n].start + int(i) for n, rows in must_fix.items() if n in system.slices
                    for i in rows])
    mask = engine.run()
    return {n: mask[system.slices[n]].copy() for n in names}


class _Engine:
    def __init__(self, system: LinearSystem, truth, mask, policy: Policy, tables, meta, previous):
        self.s = system
        self.truth = truth
        self.mask = mask.copy()
        self.p = policy
        self.rounded = round_counts(truth, policy).astype(float)
        self.floor = policy.suppressed_minimum
        self.suppressible = ~((truth == 0) & policy.zeros_shown)
        self.plo, self.phi = previous_bounds(tables, meta, previous, policy, system)
        self.rounds = 0
        self.added_screen = 0
        self.added_lp = 0
        self.added_moves = 0
        self.leak_rounds = np.zeros(len(mask), dtype=np.int64)
        self.points: dict | None = None
        # the simple relation of each term, and the inequality rows both ways (for ``_related``)
        ptr = system.relations_ptr
        self.rel_of = np.repeat(np.arange(max(len(ptr) - 1, 0)), np.diff(ptr)) if len(ptr) else ptr
        ge = system.ge_cells
        self.ge_rows = ge.tocsr() if ge is not None and ge.shape[0] else None
        self.ge_by_cell = self.ge_rows.tocsc() if self.ge_rows is not None else None

    def bounds(self):
        lo, hi = published_bounds(self.rounded, self.mask, self.p)
        base = (lo, hi)
        lo, hi, _ = combine_previous(lo, hi, self.plo, self.phi)
        return lo, hi, base

    def _pick(self, candidates: np.ndarray, cell: int) -> int | None:
        c = candidates[(~self.mask[candidates]) & self.suppressible[candidates] & (candidates != cell)]
        if len(c) == 0:
            return None
        need = self.p.protection_width - 1 + 2 * self.floor - self.truth[cell]
        v = self.truth[c]
        order = np.lexsort((c, v, v < need))
        return int(c[order[0]])

    def fix(self, cells: list[int]) -> None:
        """Suppress one related cell for each of ``cells`` (found leaking by an audit)."""
        new = set()
        for cell in cells:
            pick = self._pick(self._related(cell), cell)
            if pick is not None:
                new.add(pick)
        if new:
            self.mask[sorted(new)] = True
            self.added_lp += len(new)

    def _related(self, cell: int) -> np.ndarray:
        """Every cell in a relation with ``cell``: its simple relations, the inequality rows
        over it, and the cells sharing a variable with it."""
        s = self.s
        out = [np.zeros(0, dtype=np.int64)]
        ptr, idx = s.relations_ptr, s.relations_idx
        if len(ptr) > 1:
            for r in np.unique(self.rel_of[idx == cell]):
                out.append(idx[ptr[r]:ptr[r + 1]])
        if self.ge_rows is not None:
            G = self.ge_by_cell
            rows = G.indices[G.indptr[cell]:G.indptr[cell + 1]]
            if len(rows):
                out.append(self.ge_rows[rows].indices)
        C = s.cells
        shared = (C @ C[cell].T).tocoo()
        out.append(shared.row[shared.data != 0])
        return np.unique(np.concatenate(out).astype(np.int64))

    # -- fast screen ---------------------------------------------------------------
    def screen(self) -> int:
        """Interval-arithmetic screen over the simple relations (margins, areas, periods).

        Bounds are first propagated through all simple relations (``implied_bounds``);
        every bound so found holds for every solution, so a cell whose propagated range is
        too narrow is a real leak, found without any LP. For each such cell, the relation
        that alone narrows it most gets a complement (``_pick``); repeat until none leaks.
        """
        s = self.s
        ptr, idx = s.relations_ptr, s.relations_idx
        if len(ptr) < 2:
            return 0
        added = 0
        nrel = len(ptr) - 1
        rel_of = self.rel_of
        is_parent = np.zeros(len(idx), dtype=bool)
        is_parent[ptr[:-1]] = True
        ch = ~is_parent
        W = self.p.protection_width
        term_order = np.argsort(idx, kind="stable")
        term_cells = idx[term_order]

        def cell_terms(cell: int) -> np.ndarray:
            return term_order[np.searchsorted(term_cells, cell):np.searchsorted(term_cells, cell, "right")]
        for _ in range(MAX_ROUNDS * 5):
            lo0, hi0, base = self.bounds()
            targets = target_mask(base[0], base[1], self.mask, self.p)
            lo, hi = implied_bounds(self.s, lo0, hi0, iters=SCREEN_PROPAGATION)
            if (lo > hi + 1e-6).any():
                lo, hi = lo0, hi0          # inconsistent (earlier release revised): single step only
            own_w = _width(lo, hi)
            leak_cell = targets & (hi >= 1 - TOL) & (lo <= self.p.threshold + TOL) & (own_w < W)
            if not leak_cell.any():
                break
            imp_lo, imp_hi = term_implied_ranges(lo, hi, ptr, idx, rel_of, ch)
            # width each relation alone leaves a term (with its own published range)
            rel_w = _width(np.maximum(lo0[idx], imp_lo), np.minimum(hi0[idx], imp_hi))
            terms = np.flatnonzero(leak_cell[idx])
            # for each leaking cell, its relation of least width (ties: first relation)
            order = np.lexsort((terms, rel_w[terms], idx[terms]))
            t_sorted = terms[order]
            starts = np.flatnonzero(np.r_[True, idx[t_sorted[1:]] != idx[t_sorted[:-1]]])
            new = set()
            # one complement per neighbourhood per pass: a complement often mends several
            # leaks at once, so leaks sharing a relation with this pass's picks wait for the
            # next pass (fewer cells hidden)
            touched = np.zeros(nrel, dtype=bool)
            for grp in np.split(t_sorted, starts[1:]):
                cell = int(idx[grp[0]])
                if touched[rel_of[cell_terms(cell)]].any():
                    continue
                for k in grp:          # the cell's relations, narrowest first, until one has a candidate
                    rel = rel_of[k]
                    members = idx[ptr[rel]:ptr[rel + 1]]
                    pick = self._pick(members, cell)
                    if pick is not None:
                        new.add(pick)
                        touched[rel_of[cell_terms(cell)]] = True
                        touched[rel_of[cell_terms(pick)]] = True
                        break
            new -= set(np.flatnonzero(self.mask).tolist())
            if not new:
                break
            self.mask[sorted(new)] = True
            added += len(new)
        self.added_screen += added
        return added

    # -- moves of the true counts ---------------------------------------------------------
    def moves(self, cells: np.ndarray, comps, lo: np.ndarray, hi: np.ndarray,
              seen: tuple[np.ndarray, np.ndarray]) -> tuple[set[int], np.ndarray]:
        """Mend the leaks ``cells`` by moves of the true counts (``moves``), component by
        component: returns the complements chosen and the cells the moves prove (their
        points are kept for the audit, ``self.points``). ``seen``: values each cell takes at
        some feasible point (its exact min and max where known, else NaN)."""
        n = len(self.mask)
        only = np.zeros(n, dtype=bool)
        only[cells] = True
        slo, shi = published_bounds(self.rounded, np.ones(n, dtype=bool), self.p)
        slo, shi, _ = combine_previous(slo, shi, self.plo, self.phi)
        relaxable = ~self.mask & self.suppressible
        weight = 1.0 + self.truth.astype(float)
        index = ComponentIndex(self.s, comps)
        parts, jobs = [], []
        for c in np.unique(comps.cell_comp[only & (comps.cell_comp >= 0)]):
            part_cells, A, rlo, rhi, nce, _, _, vars_, key, _ = index.part(int(c), lo, hi)
            parts.append((part_cells, vars_, key))
            jobs.append((A, rlo, rhi, nce, self.truth[part_cells], np.flatnonzero(only[part_cells]),
                         relaxable[part_cells], slo[part_cells], shi[part_cells], weight[part_cells],
                         self.p.protection_width, (seen[0][part_cells], seen[1][part_cells])))
        results = map_components(mend_job, jobs, [len(j[5]) >= MOVE_PARALLEL_CELLS for j in jobs])
        new: set[int] = set()
        proven = np.zeros(n, dtype=bool)
        for (part_cells, vars_, key), out in zip(parts, results):
            if _DEBUG:
                print(f"  [moves] {len(out.proven)} proven, {len(out.complements)} complement(s), "
                      f"{out.failed} not protected by any move, {out.repairs} move LPs", flush=True)
            new.update(int(c) for c in part_cells[out.complements])
            proven[part_cells[out.proven]] = True
            if self.points is not None and out.points is not None:
                dense, logs = self.points[key][1:] if key in self.points else ([], [])
                self.points[key] = (vars_, dense, logs + [out.points.first(len(vars_))])
        return new, proven

    # -- LP loop -------------------------------------------------------------------
    def run(self) -> np.ndarray:
        """Screen, then LP rounds. Suppressing a cell only relaxes its row's bounds (from the
        published value or range to [floor, inf)), so the feasible set grows and every range
        can only widen: a cell once proven safe stays safe. Each round therefore re-checks
        only the cells still failing, the newly suppressed ones, and (after the first round)
        those the first round's local and exact stages deferred (``lp.DEFER``): the loop ends
        only when none is left unchecked, or when a leak has no cell left to hide (the gate's
        audit then decides)."""
        started = time.perf_counter()
        self.screen()
        state = None
        check: np.ndarray | None = None
        for _ in range(MAX_ROUNDS):
            self.rounds += 1
            lo, hi, base = self.bounds()
            # re-split every round: suppression relaxes bounds, so fewer inequality rows are
            # provably redundant (a cell proven safe earlier stays safe: ranges only widen)
            comps = split_components(self.s, (~self.mask) & (hi <= 0), base[0], base[1])
            targets = target_mask(base[0], base[1], self.mask, self.p)
            todo = targets if check is None else targets & check
            comps_todo = set(np.unique(comps.cell_comp[todo]).tolist()) - {-1}
            state = analyse(self.s, comps, lo, hi, todo, self.p, only=comps_todo, want_binding=True,
                            fallback=base, previous_state=state, keep_points=self.points,
                            defer=self.rounds == 1)
            deferred = state.deferred if state.deferred is not None else np.zeros(len(self.mask), bool)
            deferred &= targets
            state.deferred = None
            leaking = targets & ~state.safe & ~deferred
            leaks = np.flatnonzero(leaking)
            if len(leaks) == 0 and not deferred.any():
                break
            self.leak_rounds = np.where(leaking, self.leak_rounds + 1, 0)
            new = set()
            moved = np.zeros(len(self.mask), dtype=bool)
            stuck = leaks[self.leak_rounds[leaks] >= MOVE_AFTER] if MOVE_AFTER > 0 else leaks[:0]
            if len(stuck):
                seen = (np.where(state.exact, state.lo, np.nan), np.where(state.exact, state.hi, np.nan))
                new, moved = self.moves(stuck, comps, lo, hi, seen)
                self.added_moves += len(new)
            for cell in leaks:
                if moved[cell]:
                    continue
                cand = state.binding.get(int(cell))
                pick = None if cand is None or len(cand) == 0 else self._pick(np.asarray(cand), int(cell))
                if pick is None:
                    # the duals named no cell that can still be suppressed (the narrowing runs
                    # through inequality rows, or every named cell is already hidden): widen the
                    # search to every cell related to this one
                    pick = self._pick(self._related(int(cell)), int(cell))
                if pick is not None:
                    new.add(pick)
            if _DEBUG:
                print(f"  [secondary] round {self.rounds}: {len(leaks)} leak(s), {int(deferred.sum())} deferred, "
                      f"{len(new)} complement(s), {time.perf_counter() - started:.1f} s since the start", flush=True)
            # no complement for a leak: stop (the gate's audit decides); only deferred cells
            # left: check them in another round
            if not new and (len(leaks) > 0 or not deferred.any()):
                break
            before = self.mask.copy()
            self.mask[sorted(new)] = True
            self.added_lp += len(new)
            self.screen()
            check = np.zeros(len(self.mask), dtype=bool)
            check[leaks] = True
            check |= self.mask & ~before
            check |= deferred
            state.safe[check] = True
            state.binding = {}
        return self.mask
