"""The LP audit: can any hidden or rounded small count be narrowed too far?

``audit_release`` uses only what is published (counts, NULL = suppressed),
the tables' structure (``relations.build_system``), ``area_members`` and the
policy, so the same function audits a publication from the outside
(``external.audit_publication``).

Rule checked (the gate's protection rule): for each suppressed cell, and each
rounded cell whose published range can hold a count in [1, threshold], let
[lo, hi] be its feasible range (LP min and max) given every published value
(rounded values as the ranges they stand for, suppressed cells >= the
policy's floor) and every relation; if [lo, hi] meets [1, threshold], then
floor(hi) - ceil(lo) + 1 must be >= ``policy.protection_width``.

Earlier release (``previous``): for a cell with the same keys in the kept
earlier release, the attacker holds both published values. If the two ranges
overlap, the count is taken as unchanged and the cell is bounded by their
intersection (the attacker's strongest reading); if they do not overlap the
count was revised and the earlier value says nothing about the current one.
Should the intersected ranges make a component infeasible (a revision that
happened to stay inside the old range), that component is re-checked without
the earlier ranges, and a note says so.

Speed (none of it changes a result): inequality rows that the cells' own bounds
and the equality relations already imply are left out before the system is split
into components (``redundant_ge``: they never bind, and leaving them in would
tie the "alcohol" and "all attendances" measures into one large component);
large components are written in an equivalent, sparser form with one variable
per cell (``_cell_form``) and checked two at a time in worker processes
(``OUTCOMES_DISCLOSURE_WORKERS``, default 2).

``narrowest_width`` per table is the narrowest integer width found among the
checked cells whose range meets [1, threshold]: exact where a min/max LP was solved for the cell, otherwise a
lower bound proven by two feasible solutions (already wide enough).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from .lp import EXACT_SHARES, disclosure_workers, hinted_ranges, integer_width, protect_ranges
from .meta import TableMeta
from .policy import Policy
from .primary import published_range
from .relations import LinearSystem, breakdown_columns, build_system

KEY_BASE = ["area_code", "period_start", "period_end"]


@dataclass
class TableAudit:
    table_name: str
    cells: int
    suppressed: int
    narrowest_width: float | None
    passed: bool
    worst_cell: dict | None = None
    worst_range: tuple[float, float] | None = None
    failing_cells: int = 0
    #: rows (positions in the table) of the under-protected cells
    failing_rows: tuple[int, ...] = ()


@dataclass
class AuditResult:
    tables: dict[str, TableAudit] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tables.values())

    def failure_message(self) -> str:
        bad = [t for t in self.tables.values() if not t.passed]
        return "; ".join(
            f"table {t.table_name}: cell {t.worst_cell} can be narrowed to {t.worst_range}"
            f" ({t.failing_cells} cell(s) under-protected)" for t in bad
        )


# ----------------------------------------------------------------------------------------
# shared machinery (also used by the suppression engine)


def published_bounds(values: np.ndarray, suppressed: np.ndarray, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
    v = np.where(suppressed, 0.0, np.asarray(values, dtype=float))
    lo, hi = published_range(v, suppressed, policy)
    return lo.astype(float), hi.astype(float)


def target_mask(lo: np.ndarray, hi: np.ndarray, suppressed: np.ndarray, policy: Policy) -> np.ndarray:
    """Cells the rule applies to: suppressed ones, and rounded ranges that can hold a small count."""
    rounded_small = (~suppressed) & (hi > lo) & (lo <= policy.threshold) & (hi >= 1)
    return suppressed | rounded_small


def previous_bounds(tables: dict[str, pd.DataFrame], meta: dict[str, TableMeta],
                    previous: dict[str, pd.DataFrame] | None, policy: Policy,
                    system: LinearSystem) -> tuple[np.ndarray, np.ndarray]:
    """Ranges the earlier release gives for each current cell (NaN where none)."""
    n = system.n_cells
    plo = np.full(n, np.nan)
    phi = np.full(n, np.nan)
    if not previous:
        return plo, phi
    for name, df in tables.items():
        old = previous.get(name)
        if old is None or len(old) == 0:
            continue
        cols = KEY_BASE + breakdown_columns(df, meta.get(name))
        if not all(c in old.columns for c in cols):
            continue
        cur = df[cols].copy()
        cur["_row"] = np.arange(len(df))
        o = old[cols].copy()
        vals = pd.to_numeric(old["count"], errors="coerce").to_numpy(dtype=float)
        o["_sup"] = np.isnan(vals)
        o["_val"] = np.where(np.isnan(vals), 0.0, vals)
        for c in ("period_start", "period_end"):
            cur[c] = pd.to_datetime(cur[c])
            o[c] = pd.to_datetime(o[c])
        for c in cols:
            if c not in ("period_start", "period_end"):
                cur[c] = cur[c].astype(str)
                o[c] = o[c].astype(str)
        m = cur.merge(o.drop_duplicates(cols), on=cols, how="inner")
        if len(m) == 0:
            continue
        lo, hi = published_range(m["_val"].to_numpy(), m["_sup"].to_numpy(), policy)
        rows = m["_row"].to_numpy() + system.slices[name].start
        plo[rows] = lo
        phi[rows] = hi
    return plo, phi


def combine_previous(lo, hi, plo, phi):
    """Intersect with the earlier ranges where they overlap (count taken as unchanged)."""
    has = ~np.isnan(plo)
    nlo = np.where(has, np.maximum(lo, np.where(has, plo, -np.inf)), lo)
    nhi = np.where(has, np.minimum(hi, np.where(has, phi, np.inf)), hi)
    overlap = has & (nlo <= nhi)
    return np.where(overlap, nlo, lo), np.where(overlap, nhi, hi), overlap


@dataclass
class Components:
    n: int
    var_comp: np.ndarray       # component of each variable (-1: fixed at 0)
    cell_comp: np.ndarray      # component of each cell row (-1: no free variable)
    eq_comp: np.ndarray
    ge_comp: np.ndarray


def term_implied_ranges(lo: np.ndarray, hi: np.ndarray, ptr: np.ndarray, idx: np.ndarray,
                        rel_of: np.ndarray, child: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every term of every simple relation ``parent = sum(children)``
    (CSR ``ptr``/``idx``; ``rel_of`` the relation of each term; ``child``
    False for the parent term), the range that relation alone implies for the
    term's cell from the other terms' ranges: a child lies within
    [parent lo - sum of the other children's hi, parent hi - their lo]; a
    parent within [sum of the children's lo, sum of their hi]. Interval
    arithmetic only, so every bound holds for every solution; an infinite
    upper bound on another term leaves the lower bound unbounded."""
    nrel = len(ptr) - 1
    ch = child
    l = lo[idx]
    h = hi[idx]
    hinf = ~np.isfinite(h)
    hfin = np.where(hinf, 0.0, h)
    s_lo = np.bincount(rel_of[ch], weights=l[ch], minlength=nrel)
    s_hi = np.bincount(rel_of[ch], weights=hfin[ch], minlength=nrel)
    s_inf = np.bincount(rel_of[ch], weights=hinf[ch].astype(float), minlength=nrel)
    p_lo = lo[idx[ptr[:-1]]]
    p_hi = hi[idx[ptr[:-1]]]
    r = rel_of
    other_inf = s_inf[r] - (hinf & ch)
    other_hi = s_hi[r] - np.where(ch, hfin, 0.0)
    other_lo = s_lo[r] - np.where(ch, l, 0.0)
    imp_lo = np.where(ch, np.where(other_inf > 0, -np.inf, p_lo[r] - other_hi), s_lo[r])
    imp_hi = np.where(ch, p_hi[r] - other_lo, np.where(s_inf[r] > 0, np.inf, s_hi[r]))
    return imp_lo, imp_hi


def implied_bounds(system: LinearSystem, lo: np.ndarray, hi: np.ndarray, iters: int = 4
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on every cell implied by the cell rows and the simple relations alone.

    Interval arithmetic over ``parent = sum(children)`` relations (never over the
    inequality rows, so that these bounds can prove an inequality row redundant).
    Every bound returned holds for every solution of the system.
    """
    lo = np.maximum(np.asarray(lo, float), 0.0)
    hi = np.asarray(hi, float).copy()
    ptr, idx = system.relations_ptr, system.relations_idx
    if len(ptr) < 2:
        return lo, hi
    nrel = len(ptr) - 1
    rel_of = np.repeat(np.arange(nrel), np.diff(ptr))
    is_parent = np.zeros(len(idx), dtype=bool)
    is_parent[ptr[:-1]] = True
    ch = ~is_parent
    for _ in range(iters):
        imp_lo, imp_hi = term_implied_ranges(lo, hi, ptr, idx, rel_of, ch)
        nlo = lo.copy()
        nhi = hi.copy()
        np.maximum.at(nlo, idx, imp_lo)
        np.minimum.at(nhi, idx, imp_hi)
        if np.array_equal(nlo, lo) and np.array_equal(nhi, hi):
            break
        lo, hi = nlo, nhi
    return lo, hi


def redundant_ge(system: LinearSystem, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Inequality rows that every solution of the other rows satisfies (dropping them is exact).

    A row sum_j d_j cell_j >= 0 is redundant when its least value over the cells'
    implied bounds (``implied_bounds``: cell rows and equality relations only) is >= 0.
    """
    D = system.ge_cells
    n = system.ge.shape[0]
    if D is None or n == 0:
        return np.zeros(n, dtype=bool)
    blo, bhi = implied_bounds(system, lo, hi)
    if (blo > bhi + 1e-6).any():
        return np.zeros(n, dtype=bool)   # inconsistent bounds: prove nothing
    Dc = D.tocoo()
    pos = Dc.data > 0
    with np.errstate(invalid="ignore"):
        contrib = np.where(pos, Dc.data * blo[Dc.col], Dc.data * bhi[Dc.col])
    contrib = np.where(np.isnan(contrib), -np.inf, contrib)
    least = np.full(n, 0.0)
    np.add.at(least, Dc.row, contrib)
    return least >= -1e-9


def split_components(system: LinearSystem, fixed_zero_cells: np.ndarray,
                     lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> Components:
    """Independent components. With the cells' bounds ``lo``/``hi``, inequality rows that
    those bounds prove redundant are left out (they never bind), which splits linked
    measures apart where their counts are far apart."""
    C, E, G = system.cells, system.eq, system.ge
    if lo is not None and G.shape[0]:
        red = redundant_ge(system, lo, hi)
        if red.any():
            G = (sp.diags((~red).astype(float)) @ G).tocsr()
            G.eliminate_zeros()
    nv = system.n_vars
    fixed = np.zeros(nv, dtype=bool)
    if fixed_zero_cells.any():
        fixed[C[np.flatnonzero(fixed_zero_cells)].indices] = True
    M = sp.vstack([C, E, G]).tocsr()
    keep = sp.diags((~fixed).astype(float))
    Mf = (M @ keep).tocsr()
    Mf.eliminate_zeros()
    B = sp.bmat([[None, Mf.T], [Mf, None]]).tocsr()
    ncomp, lab = connected_components(B, directed=False)
    var_lab = lab[:nv]
    row_lab = lab[nv:]
    row_has = np.diff(Mf.indptr) > 0
    row_lab = np.where(row_has, row_lab, -1)
    var_lab = np.where(fixed, -1, var_lab)
    # compact component ids in order of first cell
    used = np.unique(np.concatenate([row_lab[row_lab >= 0]]))
    remap = np.full(ncomp, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    row_lab = np.where(row_lab >= 0, remap[np.maximum(row_lab, 0)], -1)
    var_lab = np.where(var_lab >= 0, remap[np.maximum(var_lab, 0)], -1)
    nc_, ne_ = C.shape[0], E.shape[0]
    return Components(len(used), var_lab, row_lab[:nc_], row_lab[nc_:nc_ + ne_], row_lab[nc_ + ne_:])


@dataclass
class Analysis:
    lo: np.ndarray        # per cell (NaN where not a target)
    hi: np.ndarray
    exact: np.ndarray
    safe: np.ndarray      # per cell (True where not a target)
    binding: dict[int, np.ndarray]   # leaking cell -> cells whose published value narrows it
    infeasible: list[int]
    notes: list[str]
    deferred: np.ndarray | None = None   # per cell: left unchecked this round (engine only)


def analyse(system: LinearSystem, comps: Components, lo: np.ndarray, hi: np.ndarray,
            targets: np.ndarray, policy: Policy, *, only: set[int] | None = None,
            want_binding: bool = False, fallback: tuple[np.ndarray, np.ndarray] | None = None,
            previous_state: "Analysis | None" = None, exact_all: bool = False,
            hints: dict | None = None, keep_points: dict | None = None, defer: bool = False) -> Analysis:
    """Check the rule for every target cell, component by component.

    ``keep_points``: a dict to which the feasible points each component's check found are
    added (variable-set key -> (variables, [values, ...], [PointLog, ...]): the sweeps' points,
    the newest kept, and the exact stages' optimal points, as ``lp.PointLog``s, the oldest
    dropped past ``KEEP_LOG_VALUES_PER_COMPONENT``). ``hints``: such points
    from an earlier analysis of the same system under tighter bounds, tried first on every
    component with the same variables (each checked against every row before use: see
    ``lp.hinted_ranges``)."""
    n = system.n_cells
    if previous_state is None:
        res = Analysis(np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, bool), np.ones(n, bool), {}, [], [])
    else:
        res = previous_state
    C = system.cells
    # targets without free variables: value identically 0
    const = targets & (comps.cell_comp < 0)
    for i in np.flatnonzero(const):
        res.lo[i] = res.hi[i] = 0.0
        res.exact[i] = True
        res.safe[i] = True
    tcomp = comps.cell_comp[targets & (comps.cell_comp >= 0)]
    todo = np.unique(tcomp)
    if only is not None:
        todo = np.array([c for c in todo if c in only], dtype=np.int64)
    if len(todo) == 0:
        return res
    index = ComponentIndex(system, comps)
    jobs = []
    for c in todo:
        part = index.part(int(c), lo, hi)
        cells, A, rlo, rhi, nce, neq, nge, vars_, key, n_def = part
        fb = None
        if fallback is not None:
            fb = (np.concatenate([fallback[0][cells], np.zeros(neq), np.zeros(nge)]),
                  np.concatenate([fallback[1][cells], np.zeros(neq), np.full(nge, np.inf)]))
        tloc = np.flatnonzero(targets[cells])
        pts = None
        if hints and key in hints:
            # hints are over the variables; the cell form also has one column per cell
            # (its values worked out as each point is read: see ``_hint_points``)
            pts = (hints[key][1], hints[key][2] if len(hints[key]) > 2 else [],
                   C[cells][:, vars_].tocsr() if n_def else None)
        jobs.append((int(c), cells, (A, rlo, rhi, nce, neq, nge, tloc, policy, want_binding,
                                     int(c) + 1, exact_all, fb, pts, defer), vars_, key))
    if os.environ.get("OUTCOMES_DISCLOSURE_DEBUG") and hints is not None:
        print(f"  [analyse] {sum(j[2][-1] is not None for j in jobs)} of {len(jobs)} components have hints "
              f"({len(hints)} kept)", flush=True)
    for (c, cells, args, vars_, key), (r, fell_back) in zip(jobs, _run_jobs([j[2] for j in jobs])):
        nce, tloc = args[3], args[6]
        if keep_points is not None and (r.points or r.exact_points):
            nv = len(vars_)
            kept, logs = keep_points[key][1:] if key in keep_points else ([], [])
            keep = max(KEEP_POINTS_MIN, min(KEEP_POINTS_PER_COMPONENT, KEEP_VALUES_PER_COMPONENT // max(nv, 1)))
            logs = logs + [log.first(nv) for log in r.exact_points]
            while sum(log.values for log in logs) > KEEP_LOG_VALUES_PER_COMPONENT and len(logs) > 1:
                logs.pop(0)
            others = sum(log.values for k, v in keep_points.items() if k != key for log in v[2])
            while logs and others + sum(log.values for log in logs) > KEEP_LOG_VALUES_TOTAL:
                logs.pop(0)
            keep_points[key] = (vars_, (kept + [x[:nv] for x in r.points])[-keep:], logs)
        if fell_back:
            res.notes.append(f"component {c}: earlier-release ranges inconsistent with this release; "
                             "checked without them")
        if not r.feasible:
            res.infeasible.append(int(c))
        g = cells[tloc]
        res.lo[g] = r.lo
        res.hi[g] = r.hi
        res.exact[g] = r.exact
        res.safe[g] = r.safe if r.feasible else False
        for t, rows in r.binding.items():
            rows = rows[rows < nce]
            res.binding[int(cells[tloc[t]])] = cells[rows]
        if len(r.deferred):
            if res.deferred is None:
                res.deferred = np.zeros(n, dtype=bool)
            res.deferred[cells[tloc[r.deferred]]] = True
    return res


#: points kept per component over an engine's rounds (the newest): at most this many, and at
#: most ``KEEP_VALUES_PER_COMPONENT`` values (16 MB) but never fewer than ``KEEP_POINTS_MIN``
#: points, so that memory stays bounded on very large components (10^6-cell releases)
KEEP_POINTS_PER_COMPONENT = 100
KEEP_VALUES_PER_COMPONENT = 2_000_000
KEEP_POINTS_MIN = 10
#: the exact stages' points (``lp.PointLog``, as differences) kept per component: at most
#: this many numbers (the oldest logs dropped first; 240 MB at most), and over all components
#: at most ``KEEP_LOG_VALUES_TOTAL`` (about 480 MB), so that a release of a million cells, with
#: dozens of large components, stays within its memory budget. A dropped log only means the
#: audit solves those cells itself.
KEEP_LOG_VALUES_PER_COMPONENT = 20_000_000
KEEP_LOG_VALUES_TOTAL = 40_000_000


class ComponentIndex:
    """Each component's rows and variables, found by binary search in orders sorted once
    (used by ``analyse`` and by the engine's moves, ``secondary._Engine.moves``)."""

    def __init__(self, system: LinearSystem, comps: Components):
        self.system = system
        self.cell_order = np.argsort(comps.cell_comp, kind="stable")
        self.cell_sorted = comps.cell_comp[self.cell_order]
        self.eq_order = np.argsort(comps.eq_comp, kind="stable")
        self.eq_sorted = comps.eq_comp[self.eq_order]
        self.ge_order = np.argsort(comps.ge_comp, kind="stable")
        self.ge_sorted = comps.ge_comp[self.ge_order]
        self.var_order = np.argsort(comps.var_comp, kind="stable")
        self.var_sorted = comps.var_comp[self.var_order]
        rptr = system.relations_ptr
        rel_parent = system.relations_idx[rptr[:-1]] if len(rptr) > 1 else np.zeros(0, np.int64)
        self.rel_parent_order = np.argsort(rel_parent, kind="stable")
        self.rel_parent_sorted = rel_parent[self.rel_parent_order]

    @staticmethod
    def _members(order: np.ndarray, sorted_: np.ndarray, c: int) -> np.ndarray:
        return order[np.searchsorted(sorted_, c):np.searchsorted(sorted_, c, "right")]

    def part(self, c: int, lo: np.ndarray, hi: np.ndarray):
        """(cells, A, row_lo, row_hi, n_cells, n_eq, n_ge, variables, key, n_def) of component
        ``c``: rows are the cells (row i is ``cells[i]``, with its bounds), then equations
        (= 0), then inequality rows (>= 0); in the cell form (``n_def`` > 0) the first
        ``n_def`` equations define one extra variable per cell (see ``_cell_form``)."""
        system = self.system
        C = system.cells
        cells = np.sort(self._members(self.cell_order, self.cell_sorted, c))
        eqs = self._members(self.eq_order, self.eq_sorted, c)
        ges = self._members(self.ge_order, self.ge_sorted, c)
        vars_ = self._members(self.var_order, self.var_sorted, c)
        nce = len(cells)
        A, n_def = None, 0
        if CELL_FORM and len(vars_) >= CELL_FORM_MIN_VARS:
            A = _cell_form(system, cells, vars_, eqs, ges, self.rel_parent_order, self.rel_parent_sorted)
            n_def = nce if A is not None else 0
        if A is None:
            A = sp.vstack([C[cells][:, vars_], system.eq[eqs][:, vars_], system.ge[ges][:, vars_]]).tocsr()
        neq = n_def + len(eqs)
        rlo = np.concatenate([lo[cells], np.zeros(neq), np.zeros(len(ges))])
        rhi = np.concatenate([hi[cells], np.zeros(neq), np.full(len(ges), np.inf)])
        return cells, A, rlo, rhi, nce, neq, len(ges), vars_, _var_key(vars_), n_def


def _hint_points(hints):
    """The points of a component's hints (dense points, point logs, and the cell-sum block
    when the model is in cell form), one at a time, each over the model's columns."""
    dense, logs, Cc = hints
    for source in [dense] + [log.points() for log in logs]:
        for v in source:
            yield v if Cc is None else np.concatenate([v, Cc @ v])


def _var_key(vars_: np.ndarray) -> tuple[int, bytes]:
    """Identity of a component's (sorted) set of variables."""
    return len(vars_), hashlib.blake2b(np.asarray(vars_, dtype=np.int64).tobytes(), digest_size=16).digest()


#: write large components in the sparser "cell form" (see ``_cell_form``)
CELL_FORM = os.environ.get("OUTCOMES_DISCLOSURE_CELL_FORM", "1") != "0"
CELL_FORM_MIN_VARS = int(os.environ.get("OUTCOMES_DISCLOSURE_CELL_FORM_MIN_VARS", "1000"))


def _cell_form(system: LinearSystem, cells: np.ndarray, vars_: np.ndarray, eqs: np.ndarray,
               ges: np.ndarray, rel_parent_order: np.ndarray, rel_parent_sorted: np.ndarray):
    """The component's system with one extra variable y_c per published cell (an equivalent LP,
    far sparser where cells are sums of many variables).

    Rows, in order: ``y_c`` (one per cell, carrying the cell's published bounds, so row i is
    still cell i); ``y_c - expr_c = 0``; the separators (unchanged); the inequality rows
    written over the y's. ``expr_c`` is ``sum(y_children)`` where a simple relation
    ``c = sum(children)`` holds *exactly* on the variables (checked here, term by term),
    otherwise the sum of c's own variables. So every solution maps to one of the original
    system with the same cell values, and back: the two LPs give the same ranges.
    """
    nce, nv = len(cells), len(vars_)
    Cc = system.cells[cells][:, vars_].tocsr()
    local = np.full(system.n_cells, -1, dtype=np.int64)
    local[cells] = np.arange(nce)
    ptr, idx = system.relations_ptr, system.relations_idx
    expr_rows: list[np.ndarray] = []
    expr_cols: list[np.ndarray] = []
    expr_vals: list[np.ndarray] = []
    rowlen = np.diff(Cc.indptr)
    used = np.zeros(nce, dtype=bool)
    lo_i = np.searchsorted(rel_parent_sorted, cells)
    hi_i = np.searchsorted(rel_parent_sorted, cells, "right")
    for i in np.flatnonzero((hi_i > lo_i) & (rowlen > 8)):
        for r in rel_parent_order[lo_i[i]:hi_i[i]]:
            kids = local[idx[ptr[r] + 1:ptr[r + 1]]]
            kids = kids[kids >= 0]
            if len(kids) == 0 or len(kids) >= rowlen[i]:
                continue
            S = Cc[kids].sum(axis=0).A1
            row = np.zeros(nv)
            row[Cc.indices[Cc.indptr[i]:Cc.indptr[i + 1]]] = 1.0
            if np.array_equal(S, row):
                expr_rows.append(np.full(len(kids), i))
                expr_cols.append(nv + kids)
                expr_vals.append(np.full(len(kids), -1.0))
                used[i] = True
                break
    if not used.any():
        return None
    plain = Cc[~used].tocoo()
    plain_rows = np.flatnonzero(~used)[plain.row]
    D = sp.coo_matrix((np.concatenate([np.ones(nce), -plain.data] + expr_vals),
                       (np.concatenate([np.arange(nce), plain_rows] + expr_rows),
                        np.concatenate([nv + np.arange(nce), plain.col] + expr_cols))),
                      shape=(nce, nv + nce)).tocsr()
    Y = sp.csr_matrix((np.ones(nce), (np.arange(nce), nv + np.arange(nce))), shape=(nce, nv + nce))
    E = sp.hstack([system.eq[eqs][:, vars_], sp.csr_matrix((len(eqs), nce))]).tocsr()
    if len(ges):
        Gc = system.ge_cells[ges].tocsr()
        Gy = sp.hstack([sp.csr_matrix((len(ges), nv)), Gc[:, cells]]).tocsr()
        # a term over a cell outside the component is over fixed-at-0 variables only
        outside = np.setdiff1d(np.unique(Gc.indices), cells)
        if len(outside) and abs(system.cells[outside][:, vars_]).sum() > 0:
            return None
    else:
        Gy = sp.csr_matrix((0, nv + nce))
    return sp.vstack([Y, D, E, Gy]).tocsr()


#: components with more variables than this are worth a worker process of their own
PARALLEL_MIN_VARS = 1500


def _check_component(args):
    """Check one component (a picklable job: ``analyse``'s, to which ``_run_jobs`` adds how
    many shares its exact stage may be split into). Returns (result, fell_back)."""
    A, rlo, rhi, nce, neq, nge, tloc, policy, want_binding, seed, exact_all, fb, hints, defer, shares = args
    if hints and not exact_all:
        # targets the hints prove safe need no LP; the rest are checked as usual
        pre = hinted_ranges(A, rlo, rhi, tloc, policy.protection_width, _hint_points(hints))
        rest = np.flatnonzero(~pre.safe)
        if os.environ.get("OUTCOMES_DISCLOSURE_DEBUG"):
            print(f"  [hints] nt={len(tloc)} vars={A.shape[1]}: {len(tloc) - len(rest)} proven by "
                  f"{len(hints[0])} hints and {sum(len(log) for log in hints[1])} logged points", flush=True)
        if len(rest) == 0:
            return pre, False
        if len(rest) < len(tloc):
            r, fell_back = _check_component((A, rlo, rhi, nce, neq, nge, tloc[rest], policy, want_binding,
                                              seed, exact_all, fb, None, defer, shares))
            pre.lo[rest], pre.hi[rest], pre.exact[rest], pre.safe[rest] = r.lo, r.hi, r.exact, r.safe
            pre.feasible, pre.solves, pre.points, pre.exact_points = r.feasible, r.solves, r.points, r.exact_points
            pre.binding = {int(rest[t]): rows for t, rows in r.binding.items()}
            pre.deferred = rest[r.deferred]
            return pre, fell_back
    r = None
    if nge and not exact_all:
        r = _decoupled(A, rlo, rhi, nce, neq, nge, tloc, policy, want_binding, seed, defer, shares)
    if r is None:
        r = protect_ranges(A, rlo, rhi, tloc, policy.threshold, policy.protection_width,
                           want_binding=want_binding, seed=seed, exact_all=exact_all, defer=defer,
                           exact_shares=shares)
    if not r.feasible and fb is not None:
        r = protect_ranges(A, fb[0], fb[1], tloc, policy.threshold, policy.protection_width,
                           want_binding=want_binding, seed=seed, exact_all=exact_all, exact_shares=shares)
        return r, True
    return r, False


def _run_jobs(jobs: list) -> list:
    """Run component checks, the large ones in worker processes (see ``map_components``).

    Where two or more components are large, they are what runs in parallel, and each exact
    stage is one share (see ``lp.protect_ranges(exact_shares=...)``); a lone large component
    splits its exact stage instead. The number of large components depends on the release
    only, so the result does not depend on the machine."""
    big = [j[0].shape[1] >= PARALLEL_MIN_VARS for j in jobs]
    shares = 1 if sum(big) >= 2 else EXACT_SHARES
    return map_components(_check_component, [tuple(j) + (shares,) for j in jobs], big)


def map_components(fn, jobs: list, big: list[bool]) -> list:
    """``[fn(job) for job in jobs]``, the ``big`` ones in worker processes when there are two
    or more of them (each result depends only on its own job, so the order of work does not
    matter, and the result is the same with or without workers)."""
    big_idx = [i for i, b in enumerate(big) if b]
    out: list = [None] * len(jobs)
    workers = disclosure_workers()
    if workers > 1 and len(big_idx) >= 2:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        try:
            with ProcessPoolExecutor(max_workers=min(workers, len(big_idx)),
                                     mp_context=mp.get_context("fork")) as ex:
                futs = {i: ex.submit(fn, jobs[i]) for i in big_idx}
                for i, j in enumerate(jobs):
                    if i not in futs:
                        out[i] = fn(j)
                for i, f in futs.items():
                    out[i] = f.result()
            return out
        except (OSError, RuntimeError):
            pass   # no worker processes here: do it in this one
    return [fn(j) for j in jobs]


def _decoupled(A, rlo, rhi, nce, neq, nge, tloc, policy, want_binding, seed, defer, shares):
    """Check a component whose blocks (measures, or period lengths of a distinct-persons
    measure) are linked only by inequality rows, block by block.

    One joint solve gives a point x* maximising the total slack of the linking rows. Each
    block is then checked with every other block's variables fixed at x*: its feasible set
    is a subset of the true one (an inner approximation), so every range it finds lies inside
    the true range and a cell it proves safe is safe. Cells not proven safe this way are
    re-checked on the whole component. Returns None when the component is one block.
    """
    from .lp import INF, ComponentLP, RangeResult

    nrow = A.shape[0]
    inner = A[: nce + neq]
    nb, blab = connected_components(sp.bmat([[None, inner.T], [inner, None]]).tocsr(), directed=False)
    nv = A.shape[1]
    var_block = blab[:nv]
    blocks = np.unique(var_block)
    if len(blocks) < 2:
        return None
    G = A[nce + neq:]
    finite = rhi[np.isfinite(rhi)]
    cap = max(1e4, 10.0 * (finite.max() if len(finite) else 0.0) + 1000.0)
    joint = ComponentLP(A, rlo, rhi, col_hi=np.full(nv, cap))
    c = np.asarray(G.sum(axis=0)).ravel()
    idx = np.flatnonzero(c)
    st, x, _ = joint.solve(idx, c[idx], maximize=True)
    if st != "optimal":
        return None
    row_block = np.full(nce + neq, -1)
    Ic = inner.tocoo()
    row_block[Ic.row] = var_block[Ic.col]
    nt = len(tloc)
    out = RangeResult(np.full(nt, np.inf), np.full(nt, -np.inf), np.zeros(nt, bool), np.zeros(nt, bool))
    pos = {int(t): k for k, t in enumerate(tloc)}
    for b in blocks:
        vb = np.flatnonzero(var_block == b)
        rows_b = np.flatnonzero(row_block == b)
        Gb = G[:, vb]
        touch = np.flatnonzero(np.diff(Gb.tocsr().indptr) > 0)
        other = (G[touch] @ x) - (Gb[touch] @ x[vb])
        Ab = sp.vstack([A[rows_b][:, vb], Gb[touch]]).tocsr()
        lob = np.concatenate([rlo[rows_b], -other - 1e-7])
        hib = np.concatenate([rhi[rows_b], np.full(len(touch), np.inf)])
        tb = np.flatnonzero(np.isin(rows_b, tloc))
        if len(tb) == 0:
            continue
        # witnesses only: with the other blocks fixed a narrow range proves nothing, and every
        # cell not proven here is checked exactly on the whole component below
        r = protect_ranges(Ab, lob, hib, tb, policy.threshold, policy.protection_width,
                           want_binding=False, seed=seed, max_exact=0)
        if not r.feasible:
            return None
        for k, t in enumerate(tb):
            j = pos[int(rows_b[t])]
            out.lo[j], out.hi[j], out.safe[j] = r.lo[k], r.hi[k], r.safe[k]
    redo = np.flatnonzero(~out.safe)
    out.solves = 0
    if len(redo):
        r = protect_ranges(A, rlo, rhi, tloc[redo], policy.threshold, policy.protection_width,
                           want_binding=want_binding, seed=seed, defer=defer, exact_shares=shares)
        out.feasible = r.feasible
        out.lo[redo], out.hi[redo], out.exact[redo], out.safe[redo] = r.lo, r.hi, r.exact, r.safe
        out.points, out.exact_points = r.points, r.exact_points
        for t, rows in r.binding.items():
            out.binding[int(redo[t])] = rows
        out.deferred = redo[r.deferred]
    del INF, nrow, nb
    return out


def _cell_dict(df: pd.DataFrame, i: int) -> dict:
    row = df.iloc[i]
    out = {}
    for c in df.columns:
        if c in ("count", "provisional"):
            continue
        v = row[c]
        if isinstance(v, pd.Timestamp):
            v = v.date().isoformat()
        elif hasattr(v, "isoformat"):
            v = v.isoformat()
        out[c] = v
    return out


def audit_release(
    published: dict[str, pd.DataFrame],
    meta: dict[str, TableMeta],
    area_members: pd.DataFrame,
    policy: Policy,
    previous: dict[str, pd.DataFrame] | None = None,
    hints: dict | None = None,
) -> AuditResult:
    """Audit published tables (NA = suppressed) against the protection rule.

    ``hints``: feasible points the suppression engine found (``secondary_suppress(points=...)``),
    tried first; each is checked against every published value and relation before it counts
    (``lp.hinted_ranges``), so they save time and never change a verdict's basis."""
    result = AuditResult()
    names = [n for n in published if n in meta]
    if not names:
        return result
    tables = {n: published[n] for n in names}
    system = build_system(tables, meta, area_members)
    result.notes.extend(system.notes)
    counts = np.concatenate([pd.to_numeric(tables[n]["count"], errors="coerce").to_numpy(dtype=float)
                             for n in names])
    suppressed = np.isnan(counts)
    lo, hi = published_bounds(counts, suppressed, policy)
    base = (lo, hi)
    plo, phi = previous_bounds(tables, meta, previous, policy, system)
    lo, hi, _ = combine_previous(lo, hi, plo, phi)
    targets = target_mask(base[0], base[1], suppressed, policy)
    comps = split_components(system, (~suppressed) & (hi <= 0), base[0], base[1])
    an = analyse(system, comps, lo, hi, targets, policy, fallback=base, hints=hints)
    result.notes.extend(an.notes)
    infeasible_cells = np.isin(comps.cell_comp, an.infeasible) if an.infeasible else np.zeros(len(counts), bool)
    for n in names:
        s = system.slices[n]
        df = tables[n]
        t = targets[s]
        safe = an.safe[s]
        # narrowest range among the cells the rule constrains (ranges meeting [1, threshold])
        widths = np.array([integer_width(a, b) if tt and not np.isnan(a)
                           and b >= 1 - 1e-6 and a <= policy.threshold + 1e-6 else np.inf
                           for a, b, tt in zip(an.lo[s], an.hi[s], t)])
        narrow = float(widths.min()) if t.any() and np.isfinite(widths.min()) else None
        bad = np.flatnonzero(t & ~safe)
        bad_inf = np.flatnonzero(infeasible_cells[s])
        ta = TableAudit(n, len(df), int(suppressed[s].sum()), narrow, len(bad) == 0 and len(bad_inf) == 0)
        ta.failing_cells = len(bad)
        ta.failing_rows = tuple(int(i) for i in bad)
        if len(bad):
            w = widths[bad]
            i = int(bad[np.argmin(w)])
            ta.worst_cell = _cell_dict(df, i)
            ta.worst_range = (float(an.lo[s][i]), float(an.hi[s][i]))
        elif len(bad_inf):
            ta.worst_cell = _cell_dict(df, int(bad_inf[0]))
            ta.worst_range = (float("nan"), float("nan"))
            result.notes.append(f"table {n}: published values are inconsistent with the relations")
        result.tables[n] = ta
    return result


def feasible_ranges(
    published: dict[str, pd.DataFrame],
    meta: dict[str, TableMeta],
    area_members: pd.DataFrame,
    policy: Policy,
    previous: dict[str, pd.DataFrame] | None = None,
) -> dict[str, pd.DataFrame]:
    """Exact LP min and max of every checked cell (one pair of solves per cell: small releases only).

    Returns per table the published frame with columns ``lo``, ``hi`` (NaN for cells the rule
    does not apply to) and ``safe``.
    """
    names = [n for n in published if n in meta]
    tables = {n: published[n] for n in names}
    system = build_system(tables, meta, area_members)
    counts = np.concatenate([pd.to_numeric(tables[n]["count"], errors="coerce").to_numpy(dtype=float)
                             for n in names])
    suppressed = np.isnan(counts)
    lo, hi = published_bounds(counts, suppressed, policy)
    base = (lo, hi)
    plo, phi = previous_bounds(tables, meta, previous, policy, system)
    lo, hi, _ = combine_previous(lo, hi, plo, phi)
    targets = target_mask(base[0], base[1], suppressed, policy)
    comps = split_components(system, (~suppressed) & (hi <= 0), base[0], base[1])
    an = analyse(system, comps, lo, hi, targets, policy, fallback=base, exact_all=True)
    out = {}
    for n in names:
        s = system.slices[n]
        df = tables[n].copy()
        df["lo"] = an.lo[s]
        df["hi"] = an.hi[s]
        df["safe"] = an.safe[s]
        out[n] = df
    return out
