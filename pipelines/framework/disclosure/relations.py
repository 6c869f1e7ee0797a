"""The linear system an attacker can build from a release's structure.

Only the *structure* of the published tables is used here (area codes and
levels, periods, breakdown labels, the measures' metadata and
``area_members``); counts never are, so the very same system is built inside
the gate (from the true tables) and by an outside auditor (from the published
ones).

Formulation
-----------
For each measure (for a measure not additive over ``period``, for each
measure and period length: a "pseudo-measure", because distinct persons
counted per month and per year are different counts) every dimension is cut
into **atoms**, the finest pieces its published values imply:

* area: LSOAs grouped by their membership signature over every published area
  of the measure (LSOAs that always appear together are one atom: a Trafford
  ward's LSOAs that lie in the same MSOA and locality, or a whole borough that
  is never split);
* period: months grouped the same way over the published periods;
* breakdowns: category labels; age bands (``a-b``, ``a+``) are cut at every
  boundary of every scheme (``0-17`` and ``15-19`` give ``15-17`` and
  ``18-19``), so bands of different schemes are related exactly; ``All`` is
  the union of every atom.

A published cell is the sum of the non-negative true counts of the atoms
inside it. Writing one variable per atom combination (the full product) is
exact but large (LSOA x month x sex x age band). We use an exact projection
instead. Each table has a **profile**: on every dimension the partition of
the atoms its values generate (atoms it never covers take the partition the
other tables induce there). Variables are kept per profile block, and
profiles are glued along a tree by **separator** equations: for an edge
(L, N) and every block of the common coarsening S = join(L, N), the sum of
L's variables in the block equals the sum of N's. This projection is exact
(every solution of the projected system is the aggregate of a non-negative
atom-level solution) when every edge satisfies, on each dimension d,
either L_d is coarser than or equal to N_d, or L_d refines N_d and N_d is the
finest partition of d in the tree built so far. Proof by induction over the
tree: let x_T be an atom-level solution for the tree so far at M = the meet
of its profiles, and x_L the leaf's variables. On the blocks of
J = join(M, L) the two agree (the condition makes J equal S, where the
separator equations hold), and inside one block of J the blocks of the meet
of M and L form a product (L's finer dimensions x M's finer dimensions, the
partitions being comparable), so finding the joint is a transportation
problem with equal non-negative margins, which always has a non-negative
solution (north-west corner rule). So LSOA x year cells, ward x month cells
and borough x month x sex x age cells need no LSOA x month x sex x age
variables. Where a profile cannot be attached under this condition it is
merged with a tree profile (their meet, i.e. finer variables), which is always
exact; in the worst case this falls back to the full atom product.

Relations across measures are added as inequality rows between cell
expressions: ``subset_of`` (cell <= the other measure's cell with the same
keys), and for measures not additive over ``period`` (distinct persons placed
by their first record in each period): a total is at most the sum of its
parts for every cell whose parts are all published with the same keys, and at
least each part where that is certainly true, i.e. where every breakdown is
``All`` and the area is not inside another published area (a person's area
or age band may differ between the month and the year, so "at least each
part" does not hold for sub-totals and would make true data infeasible).

Besides the rows, ``relations_ptr``/``relations_idx`` list simple relations
between published cells (``All`` = sum of categories, an area = the disjoint
union of areas of one level, and for measures additive over time a period =
the sum of the periods of one length that partition it). They are implied by
the rows and used only by fast screens and bound propagation; ``ge_cells``
holds the inequality rows written over cells.

The audit (``audit.split_components``) then removes the variables a published
exact 0 forces to 0 and splits the rest into independent connected
components; inside a component, blocks linked only by the inequality rows
(measures, period lengths) are checked separately first (``audit._decoupled``).

Which relations are *not* modelled: "at least each part" for distinct-person
sub-totals (see above), subset_of between cells whose keys differ, and
earlier releases' own relations (only their published values are used, see
``audit``). Breakdown labels are assumed to mean the same thing in every
table of a measure, and each table's categories to add up to its ``All``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .meta import TableMeta

STRUCT_COLUMNS = ("area_code", "area_level", "period_start", "period_end", "provisional", "count")
_RNG_SEED = 20240611
_BAND = re.compile(r"^\s*(\d+)\s*(?:-|to)\s*(\d+)\s*$")
_OPEN = re.compile(r"^\s*(\d+)\s*\+\s*$")


def breakdown_columns(df: pd.DataFrame, m: TableMeta | None = None) -> list[str]:
    if m is not None and m.breakdowns:
        return [c for c in m.breakdowns if c in df.columns]
    return [c for c in df.columns if c not in STRUCT_COLUMNS]


def _month_index(values) -> np.ndarray:
    d = pd.to_datetime(pd.Series(values)).reset_index(drop=True)
    return (d.dt.year * 12 + d.dt.month - 1).to_numpy(dtype=np.int64)


def _signature_labels(member_rows: np.ndarray, member_cols: np.ndarray, n_cols: int,
                      salt: int = 0) -> np.ndarray:
    """Label columns (atoms) by the set of rows (values) containing them.

    Returns compact labels 0..k-1 (by first appearance), -1 for columns in no row.
    A 64-bit random hash of the membership set is used (collisions have
    probability ~2^-64 per pair and would only merge atoms, never split a value).
    """
    rng = np.random.default_rng(_RNG_SEED + salt)
    n_rows = int(member_rows.max()) + 1 if len(member_rows) else 0
    w = rng.integers(1, 2**63 - 1, size=max(n_rows, 1), dtype=np.int64).astype(np.uint64)
    sig = np.zeros(n_cols, dtype=np.uint64)
    cnt = np.zeros(n_cols, dtype=np.int64)
    if len(member_rows):
        np.add.at(sig, member_cols, w[member_rows])
        np.add.at(cnt, member_cols, 1)
    # fold in the count to make accidental sums even less likely
    sig = sig * np.uint64(1000003) + cnt.astype(np.uint64)
    out = np.full(n_cols, -1, dtype=np.int64)
    covered = cnt > 0
    if covered.any():
        _, first, inv = np.unique(sig[covered], return_index=True, return_inverse=True)
        order = np.argsort(np.argsort(first, kind="stable"), kind="stable")
        out[covered] = order[inv]
    return out


def _compact(labels: np.ndarray) -> np.ndarray:
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first, kind="stable"), kind="stable")
    return order[inv].astype(np.int64)


def _refines(p: np.ndarray, q: np.ndarray) -> bool:
    """True when partition p (labels over atoms) refines q (every p-block inside one q-block)."""
    np_ = int(p.max()) + 1
    pairs = np.unique(p * (int(q.max()) + 1) + q)
    return len(pairs) == np_


def _meet(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return _compact(p * (int(q.max()) + 1) + q)


def _nblocks(prof: tuple[np.ndarray, ...]) -> int:
    n = 1
    for lab in prof:
        n *= int(lab.max()) + 1
    return n


# ----------------------------------------------------------------------------------------
# per-dimension values -> atoms


@dataclass
class _Dim:
    name: str
    n_atoms: int
    # value code -> atoms (CSR)
    ptr: np.ndarray
    idx: np.ndarray

    def atoms(self, code: int) -> np.ndarray:
        return self.idx[self.ptr[code]:self.ptr[code + 1]]


def _csr_from_lists(lists: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(lists) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(x) for x in lists])
    idx = np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, dtype=np.int64)
    return ptr, idx


def _parse_band(label: str) -> tuple[int, float] | None:
    m = _BAND.match(label)
    if m:
        return int(m.group(1)), float(int(m.group(2)) + 1)
    m = _OPEN.match(label)
    if m:
        return int(m.group(1)), np.inf
    return None


def _breakdown_dim(name: str, labels: list[str]) -> tuple[_Dim, dict[str, int]]:
    """Atoms of a breakdown column from every label used (``All`` = all atoms)."""
    cats = sorted({lab for lab in labels if lab != "All"})
    bands = {lab: _parse_band(lab) for lab in cats}
    interval_labels = [lab for lab in cats if bands[lab] is not None]
    other = [lab for lab in cats if bands[lab] is None]
    cuts = sorted({0.0} | {b[0] for lab in interval_labels for b in [bands[lab]]}
                  | {b[1] for lab in interval_labels for b in [bands[lab]] if np.isfinite(b[1])})
    pieces = [(cuts[i], cuts[i + 1]) for i in range(len(cuts) - 1)] + ([(cuts[-1], np.inf)] if interval_labels else [])
    n_int = len(pieces)
    lists: list[np.ndarray] = []
    code: dict[str, int] = {}
    for lab in interval_labels:
        lo, hi = bands[lab]
        lists.append(np.array([i for i, (a, b) in enumerate(pieces) if a >= lo and b <= hi], dtype=np.int64))
        code[lab] = len(lists) - 1
    for j, lab in enumerate(other):
        lists.append(np.array([n_int + j], dtype=np.int64))
        code[lab] = len(lists) - 1
    n_atoms = max(n_int + len(other), 1)
    lists.append(np.arange(n_atoms, dtype=np.int64))
    code["All"] = len(lists) - 1
    ptr, idx = _csr_from_lists(lists)
    # merge atoms that always appear together
    rows = np.repeat(np.arange(len(lists)), np.diff(ptr))
    lab = _signature_labels(rows, idx, n_atoms, salt=7)
    lab[lab < 0] = lab.max() + 1 if (lab >= 0).any() else 0
    lab = _compact(lab)
    lists2 = [np.unique(lab[x]) for x in lists]
    ptr, idx = _csr_from_lists(lists2)
    return _Dim(name, int(lab.max()) + 1, ptr, idx), code


# ----------------------------------------------------------------------------------------
# the system


@dataclass(eq=False)  # identity: profiles hold numpy arrays
class Profile:
    labels: tuple[np.ndarray, ...]
    tables: list[int] = field(default_factory=list)
    offset: int = 0

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(x.max()) + 1 for x in self.labels)

    @property
    def n_blocks(self) -> int:
        return _nblocks(self.labels)


@dataclass
class LinearSystem:
    """Rows over non-negative variables; cell rows are in table order (``slices``)."""

    n_vars: int
    cells: sp.csr_matrix          # one row per published cell
    eq: sp.csr_matrix             # rows == 0 (separators)
    ge: sp.csr_matrix             # rows >= 0 (subset_of, non-additive periods)
    slices: dict[str, slice]
    names: list[str]
    relations_ptr: np.ndarray     # simple parent = sum(children) relations between cells
    relations_idx: np.ndarray     # first entry of each relation is the parent
    notes: list[str] = field(default_factory=list)
    ge_cells: sp.csr_matrix | None = None   # ``ge`` as rows over published cells (ge = ge_cells @ cells)

    @property
    def n_cells(self) -> int:
        return self.cells.shape[0]


def _table_frames(tables: dict[str, pd.DataFrame], meta: dict[str, TableMeta]):
    names = list(tables)
    offsets = {}
    o = 0
    for n in names:
        offsets[n] = slice(o, o + len(tables[n]))
        o += len(tables[n])
    return names, offsets, o


def build_system(
    tables: dict[str, pd.DataFrame],
    meta: dict[str, TableMeta],
    area_members: pd.DataFrame,
) -> LinearSystem:
    """Build the attacker's linear system from the tables' structure (counts unused)."""
    names, slices, n_cells = _table_frames(tables, meta)
    notes: list[str] = []
    # area -> LSOA sets
    am = area_members[["area_code", "lsoa_code"]].drop_duplicates()
    lsoa_codes = pd.Index(pd.unique(am["lsoa_code"].astype(str)))
    members: dict[str, np.ndarray] = {}
    if len(am):
        li = lsoa_codes.get_indexer(am["lsoa_code"].astype(str))
        for code, grp in pd.Series(li).groupby(am["area_code"].astype(str).to_numpy()):
            members[code] = np.unique(grp.to_numpy())
    extra_lsoa: dict[str, int] = {}

    def area_set(code: str) -> np.ndarray:
        if code in members:
            return members[code]
        if code in lsoa_codes:
            return np.array([lsoa_codes.get_loc(code)], dtype=np.int64)
        if code not in extra_lsoa:
            extra_lsoa[code] = len(lsoa_codes) + len(extra_lsoa)
            notes.append(f"area {code} has no members in area_members: treated as one indivisible area")
        return np.array([extra_lsoa[code]], dtype=np.int64)

    # per-table keys
    tinfo = []
    for ti, name in enumerate(names):
        df = tables[name]
        m = meta[name]
        bcols = breakdown_columns(df, m)
        m0 = _month_index(df["period_start"])
        m1 = _month_index(df["period_end"])
        nmon = m1 - m0 + 1
        tinfo.append(dict(name=name, df=df, meta=m, bcols=bcols, m0=m0, m1=m1, nmon=nmon,
                          area=df["area_code"].astype(str).to_numpy(),
                          level=df["area_level"].astype(str).to_numpy() if "area_level" in df else None))

    # pseudo-measures: a measure not additive over period is split by period length
    # (rows of one table may fall in several)
    groups: dict[tuple, list[dict]] = {}
    for t in tinfo:
        m = t["meta"]
        gid = np.arange(len(t["df"])) + slices[t["name"]].start
        if "period" in m.additive_over:
            groups.setdefault((m.measure, None), []).append(dict(t, gid=gid))
            continue
        for k in np.unique(t["nmon"]):
            sel = t["nmon"] == k
            part = dict(t, df=t["df"][sel].reset_index(drop=True), m0=t["m0"][sel], m1=t["m1"][sel],
                        nmon=t["nmon"][sel], area=t["area"][sel],
                        level=None if t["level"] is None else t["level"][sel], gid=gid[sel])
            groups.setdefault((m.measure, int(k)), []).append(part)

    cell_blocks = []   # (global rows, var indices) triples
    eq_blocks = []
    n_vars = 0
    cell_rows_all: list[np.ndarray] = []
    cell_cols_all: list[np.ndarray] = []
    eq_rows: list[np.ndarray] = []
    eq_cols: list[np.ndarray] = []
    eq_vals: list[np.ndarray] = []
    n_eq = 0
    rel_lists: list[np.ndarray] = []
    key_frames = []  # for cross relations

    for gkey, parts in groups.items():
        res = _build_group(gkey, parts, area_set, n_vars, n_eq, notes)
        rows, cols, nv, (er, ec, ev, ne), rels, kf = res
        cell_rows_all.append(rows)
        cell_cols_all.append(cols)
        eq_rows.append(er)
        eq_cols.append(ec)
        eq_vals.append(ev)
        n_eq += ne
        n_vars += nv
        rel_lists.extend(rels)
        key_frames.append(kf)

    cr = np.concatenate(cell_rows_all) if cell_rows_all else np.zeros(0, np.int64)
    cc = np.concatenate(cell_cols_all) if cell_cols_all else np.zeros(0, np.int64)
    cells = sp.csr_matrix((np.ones(len(cr)), (cr, cc)), shape=(n_cells, n_vars))
    cells.sum_duplicates()
    cells.data[:] = 1.0
    eq = sp.csr_matrix((np.concatenate(eq_vals) if eq_vals else np.zeros(0),
                        (np.concatenate(eq_rows) if eq_rows else np.zeros(0, np.int64),
                         np.concatenate(eq_cols) if eq_cols else np.zeros(0, np.int64))),
                       shape=(n_eq, n_vars))
    eq.sum_duplicates()
    eq.eliminate_zeros()

    keys = pd.concat(key_frames, ignore_index=True) if key_frames else pd.DataFrame()
    ge, ge_cells = _cross_rows(keys, tinfo, cells, meta, notes)
    rel_lists.extend(_period_relations(keys, meta))
    if rel_lists:
        rptr, ridx = _csr_from_lists(rel_lists)
    else:
        rptr, ridx = np.zeros(1, np.int64), np.zeros(0, np.int64)
    return LinearSystem(n_vars, cells, eq, ge, slices, names, rptr, ridx, notes, ge_cells)


def _build_group(gkey, ts, area_set, var_offset, eq_offset, notes):
    """Variables, cell rows and separators for one (pseudo-)measure."""
    bcols = sorted({c for t in ts for c in t["bcols"]})
    dims = ["area", "period", *bcols]
    # --- area atoms
    area_codes = pd.unique(np.concatenate([t["area"] for t in ts]))
    a_lists = [area_set(a) for a in area_codes]
    rows = np.repeat(np.arange(len(a_lists)), [len(x) for x in a_lists])
    cols = np.concatenate(a_lists)
    lsoa_used, cols_c = np.unique(cols, return_inverse=True)
    lab = _signature_labels(rows, cols_c, len(lsoa_used), salt=1)
    n_area_atoms = int(lab.max()) + 1
    area_atoms = [np.unique(lab[cols_c[rows == i]]) for i in range(len(a_lists))] if len(a_lists) < 2000 else None
    if area_atoms is None:
        order = np.argsort(rows, kind="stable")
        r_sorted = rows[order]
        l_sorted = lab[cols_c[order]]
        bounds = np.searchsorted(r_sorted, np.arange(len(a_lists) + 1))
        area_atoms = [np.unique(l_sorted[bounds[i]:bounds[i + 1]]) for i in range(len(a_lists))]
    aptr, aidx = _csr_from_lists(area_atoms)
    area_dim = _Dim("area", n_area_atoms, aptr, aidx)
    area_index = pd.Index(area_codes)
    # --- period atoms (months)
    pkey = np.unique(np.concatenate([t["m0"] * 100000 + t["m1"] for t in ts]))
    pers = [(int(k // 100000), int(k % 100000)) for k in pkey]
    mmin = min(p[0] for p in pers)
    mmax = max(p[1] for p in pers)
    p_lists = [np.arange(a - mmin, b - mmin + 1) for a, b in pers]
    rows = np.repeat(np.arange(len(p_lists)), [len(x) for x in p_lists])
    plab = _signature_labels(rows, np.concatenate(p_lists), mmax - mmin + 1, salt=2)
    plab[plab < 0] = plab.max() + 1
    plab = _compact(plab)
    pptr, pidx = _csr_from_lists([np.unique(plab[x]) for x in p_lists])
    period_dim = _Dim("period", int(plab.max()) + 1, pptr, pidx)
    period_index = {p: i for i, p in enumerate(pers)}
    # --- breakdowns
    bdims = {}
    bcodes = {}
    for c in bcols:
        labels = sorted({str(v) for t in ts if c in t["bcols"] for v in pd.unique(t["df"][c].astype(str))} | {"All"})
        bdims[c], bcodes[c] = _breakdown_dim(c, labels)
    dim_objs = [area_dim, period_dim] + [bdims[c] for c in bcols]

    # --- per-table value codes per dim
    tcodes = []
    for t in ts:
        codes = [area_index.get_indexer(t["area"]),
                 np.searchsorted(pkey, t["m0"] * 100000 + t["m1"])]
        for c in bcols:
            if c in t["bcols"]:
                lab_index = pd.Index(list(bcodes[c].keys()))
                pos = lab_index.get_indexer(t["df"][c].astype(str).to_numpy(dtype=object))
                codes.append(np.array(list(bcodes[c].values()), dtype=np.int64)[pos])
            else:
                codes.append(np.full(len(t["df"]), bcodes[c]["All"], dtype=np.int64))
        tcodes.append(codes)

    # --- profiles per table
    profs = []
    for k, t in enumerate(ts):
        labs = []
        for d, dim in enumerate(dim_objs):
            used = np.unique(tcodes[k][d])
            lists = [dim.atoms(u) for u in used]
            rows = np.repeat(np.arange(len(lists)), [len(x) for x in lists])
            labs.append(_signature_labels(rows, np.concatenate(lists), dim.n_atoms, salt=10 + d))
        profs.append(labs)
    # fill atoms a table never covers with the partition the other tables induce there
    for d in range(len(dims)):
        for k in range(len(profs)):
            lab = profs[k][d]
            unc = lab < 0
            if not unc.any():
                continue
            others = [profs[j][d] for j in range(len(profs)) if j != k]
            if others:
                sig = np.zeros(unc.sum(), dtype=np.int64)
                for o in others:
                    sig = sig * (int(o.max()) + 2) + (o[unc] + 1)
                    sig = _compact(sig)
            else:
                sig = np.zeros(unc.sum(), dtype=np.int64)
            lab = lab.copy()
            lab[unc] = int(lab.max()) + 1 + sig
            profs[k][d] = _compact(lab)
    # dedupe identical profiles
    plist: list[Profile] = []
    for k, labs in enumerate(profs):
        labs = tuple(_compact(x) for x in labs)
        for p in plist:
            if all(np.array_equal(a, b) for a, b in zip(p.labels, labs)):
                p.tables.append(k)
                break
        else:
            plist.append(Profile(labs, [k]))

    nodes, edges = _glue(plist, len(dims))
    # --- variables
    nv = 0
    for p in nodes:
        p.offset = var_offset + nv
        nv += p.n_blocks
    if nv > 50_000_000:
        raise MemoryError(f"measure {gkey[0]}: projected system needs {nv} variables")
    table_prof = {}
    for p in nodes:
        for k in p.tables:
            table_prof[k] = p

    # --- cell rows
    crow, ccol = [], []
    for k, t in enumerate(ts):
        p = table_prof[k]
        sizes = p.sizes
        strides = np.ones(len(sizes), dtype=np.int64)
        for d in range(len(sizes) - 2, -1, -1):
            strides[d] = strides[d + 1] * sizes[d + 1]
        n = len(t["df"])
        cell = np.arange(n, dtype=np.int64)
        flat = np.zeros(n, dtype=np.int64)
        for d, dim in enumerate(dim_objs):
            codes = tcodes[k][d]
            uniq, inv = np.unique(codes, return_inverse=True)
            mem = [np.unique(p.labels[d][dim.atoms(u)]) for u in uniq]
            mptr, midx = _csr_from_lists(mem)
            cinv = inv[cell]
            cnt = np.diff(mptr)[cinv]
            new_cell = np.repeat(cell, cnt)
            starts = np.repeat(mptr[cinv], cnt)
            within = np.arange(len(new_cell)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            members = midx[starts + within]
            flat = np.repeat(flat, cnt) + members * strides[d]
            cell = new_cell
        crow.append(t["gid"][cell])
        ccol.append(flat + p.offset)
    # --- separators
    er, ec, ev = [], [], []
    ne = 0
    for (li, ni) in edges:
        L, N = nodes[li], nodes[ni]
        s_labels = []
        for d in range(len(dims)):
            s_labels.append(L.labels[d] if _refines(N.labels[d], L.labels[d]) else N.labels[d])
        s_sizes = [int(x.max()) + 1 for x in s_labels]
        for prof, sign in ((L, 1.0), (N, -1.0)):
            sizes = prof.sizes
            # map each block (mixed radix) to its S block
            sflat = np.zeros(1, dtype=np.int64)
            for d in range(len(dims)):
                m = np.zeros(sizes[d], dtype=np.int64)
                m[prof.labels[d]] = s_labels[d]
                sflat = (sflat[:, None] * s_sizes[d] + m[None, :]).ravel()
            er.append(sflat + eq_offset + ne)
            ec.append(np.arange(prof.n_blocks, dtype=np.int64) + prof.offset)
            ev.append(np.full(prof.n_blocks, sign))
        ne += _nblocks(tuple(s_labels))
    # --- simple relations (for the fast screen): breakdown All = sum of categories within a table
    rels = []
    for k, t in enumerate(ts):
        df = t["df"]
        gid = t["gid"]
        for c in t["bcols"]:
            others = [x for x in ["area_code", "period_start", "period_end"] + t["bcols"] if x != c]
            is_all = (df[c].astype(str) == "All").to_numpy()
            if not is_all.any():
                continue
            g = df.groupby(others, sort=False, observed=True).ngroup().to_numpy()
            order = np.lexsort((~is_all, g))
            gs = g[order]
            bnd = np.flatnonzero(np.diff(gs)) + 1
            for chunk in np.split(order, bnd):
                if len(chunk) > 1 and is_all[chunk[0]] and not is_all[chunk[1:]].any():
                    rels.append(gid[chunk])
        rels.extend(_area_relations(t, area_dim, area_index))
    # --- keys for cross-measure relations
    kf = []
    for k, t in enumerate(ts):
        df = t["df"]
        d = pd.DataFrame({
            "gid": t["gid"],
            "measure": t["meta"].measure,
            "area": t["area"],
            "m0": t["m0"], "m1": t["m1"],
        })
        bkey = np.full(len(df), "", dtype=object)
        for c in bcols:
            vals = df[c].astype(str).to_numpy() if c in t["bcols"] else np.full(len(df), "All", dtype=object)
            bkey = bkey + "|" + c + "=" + vals.astype(object)
        d["bkey"] = bkey
        d["all_breakdowns"] = np.all([(df[c].astype(str) == "All").to_numpy() for c in t["bcols"]], axis=0) \
            if t["bcols"] else True
        # root area: not strictly inside another area of this (pseudo-)measure
        d["root"] = _root_areas(area_dim, area_index)[area_index.get_indexer(t["area"])]
        kf.append(d)
    return (np.concatenate(crow), np.concatenate(ccol), nv,
            (np.concatenate(er) if er else np.zeros(0, np.int64),
             np.concatenate(ec) if ec else np.zeros(0, np.int64),
             np.concatenate(ev) if ev else np.zeros(0), ne),
            rels, pd.concat(kf, ignore_index=True))


def _root_areas(area_dim: _Dim, area_index: pd.Index) -> np.ndarray:
    n = len(area_index)
    rows = np.repeat(np.arange(n), np.diff(area_dim.ptr))
    inc = sp.csr_matrix((np.ones(len(rows)), (rows, area_dim.idx)), shape=(n, area_dim.n_atoms))
    inter = (inc @ inc.T).tocoo()
    size = np.diff(area_dim.ptr)
    # i strictly inside j: |i & j| == |i| and |j| > |i|
    inside = (inter.data == size[inter.row]) & (size[inter.col] > size[inter.row])
    root = np.ones(n, dtype=bool)
    root[inter.row[inside]] = False
    return root


def _area_relations(t, area_dim: _Dim, area_index: pd.Index) -> list[np.ndarray]:
    """Within one table: area = disjoint union of other areas of one level (same other keys)."""
    df = t["df"]
    codes = pd.unique(t["area"])
    if len(codes) < 2 or t["level"] is None:
        return []
    ids = area_index.get_indexer(codes)
    n = len(codes)
    lists = [area_dim.atoms(i) for i in ids]
    rows = np.repeat(np.arange(n), [len(x) for x in lists])
    inc = sp.csr_matrix((np.ones(len(rows)), (rows, np.concatenate(lists))), shape=(n, area_dim.n_atoms))
    inter = (inc @ inc.T).tocoo()
    size = np.array([len(x) for x in lists])
    level_of = pd.Series(t["level"]).groupby(t["area"]).first()
    lev = level_of.reindex(codes).to_numpy()
    templates = []
    inside = (inter.data == size[inter.col]) & (size[inter.row] > size[inter.col])
    par, chi = inter.row[inside], inter.col[inside]
    for p in np.unique(par):
        kids = chi[par == p]
        for lv in np.unique(lev[kids]):
            kk = kids[lev[kids] == lv]
            if size[kk].sum() == size[p]:
                templates.append((codes[p], list(codes[kk])))
    if not templates:
        return []
    others = ["period_start", "period_end"] + t["bcols"]
    key = df.groupby(others, sort=False, observed=True).ngroup().to_numpy()
    nkey = int(key.max()) + 1
    aidx = pd.Index(codes).get_indexer(t["area"])
    grid = np.full((len(codes), nkey), -1, dtype=np.int64)
    grid[aidx, key] = t["gid"]
    pos = {c: i for i, c in enumerate(codes)}
    out = []
    for parent, kids in templates:
        mat = np.column_stack([grid[pos[parent]]] + [grid[pos[k]] for k in kids])
        ok = (mat >= 0).all(axis=1)
        out.extend(list(mat[ok]))
    return out


def _glue(plist: list[Profile], ndim: int) -> tuple[list[Profile], list[tuple[int, int]]]:
    """Arrange profiles in a tree under the exactness condition, merging where needed."""
    profiles = sorted(plist, key=lambda p: (-p.n_blocks, min(p.tables)))
    while True:
        tree = [profiles[0]]
        finest = list(profiles[0].labels)
        edges: list[tuple[int, int]] = []
        pending = list(profiles[1:])
        progress = True
        while pending and progress:
            progress = False
            for L in list(pending):
                for ni, N in enumerate(tree):
                    if _can_attach(L, N, finest):
                        tree.append(L)
                        edges.append((len(tree) - 1, ni))
                        finest = [_meet(f, l) for f, l in zip(finest, L.labels)]
                        pending.remove(L)
                        progress = True
                        break
        if not pending:
            return tree, edges
        L = pending[0]
        best = None
        for N in profiles:
            if N is L:
                continue
            merged = tuple(_meet(a, b) for a, b in zip(N.labels, L.labels))
            nb = _nblocks(merged)
            if best is None or nb < best[0]:
                best = (nb, N, merged)
        _, N, merged = best
        newp = Profile(merged, sorted(N.tables + L.tables))
        profiles = [p for p in profiles if p is not N and p is not L] + [newp]
        profiles.sort(key=lambda p: (-p.n_blocks, min(p.tables)))


def _can_attach(L: Profile, N: Profile, finest: list[np.ndarray]) -> bool:
    for d in range(len(L.labels)):
        l, n = L.labels[d], N.labels[d]
        if _refines(n, l):
            continue
        if _refines(l, n) and _refines(n, finest[d]):
            continue
        return False
    return True


def _period_relations(keys: pd.DataFrame, meta) -> list[np.ndarray]:
    """Simple relations over time (for the fast screens): for a measure additive over
    ``period``, a cell equals the sum of the cells with the same area and breakdowns whose
    periods (all of one length) partition its period, in any table of the measure."""
    if len(keys) == 0:
        return []
    additive = {m.measure for m in meta.values() if "period" in m.additive_over}
    out: list[np.ndarray] = []
    k_all = keys[keys.measure.isin(additive)].drop_duplicates(["measure", "area", "m0", "m1", "bkey"])
    if len(k_all) == 0:
        return out
    k_all = k_all.assign(nmon=k_all.m1 - k_all.m0 + 1)
    for meas, k_ in k_all.groupby("measure", sort=True):
        kinds = sorted(k_.nmon.unique())
        for ci, ck in enumerate(kinds):
            coarse = k_[k_.nmon == ck][["gid", "area", "bkey", "m0", "m1"]]
            for fk in kinds[:ci]:
                fine = k_[k_.nmon == fk][["gid", "area", "bkey", "m0", "m1"]]
                mrg = coarse.merge(fine, on=["area", "bkey"], suffixes=("_c", "_f"))
                mrg = mrg[(mrg.m0_f >= mrg.m0_c) & (mrg.m1_f <= mrg.m1_c)]
                if len(mrg) == 0:
                    continue
                # fine periods of one length with distinct starts are disjoint; they partition
                # the coarse period when their count times their length equals its length
                n = mrg.groupby("gid_c").gid_f.transform("size")
                mrg = mrg[n.to_numpy() * fk == ck].sort_values(["gid_c", "m0_f"], kind="stable")
                if len(mrg) == 0:
                    continue
                gc = mrg.gid_c.to_numpy()
                gf = mrg.gid_f.to_numpy()
                bnd = np.flatnonzero(np.diff(gc)) + 1
                for par, kids in zip(np.split(gc, bnd), np.split(gf, bnd)):
                    out.append(np.concatenate([[par[0]], kids]).astype(np.int64))
    return out


def _cross_rows(keys: pd.DataFrame, tinfo, cells: sp.csr_matrix, meta, notes):
    """Inequality rows (>= 0) between cell expressions: subset_of and non-additive periods.

    Returns the rows over the variables and the same rows over the published cells."""
    n_cells = cells.shape[0]
    r_rows, r_cols, r_vals = [], [], []
    nrow = 0
    if len(keys) == 0:
        return sp.csr_matrix((0, cells.shape[1])), sp.csr_matrix((0, n_cells))
    subset = {m.measure: m.subset_of for m in meta.values() if m.subset_of}
    additive = {m.measure: ("period" in m.additive_over) for m in meta.values()}
    # subset_of: big - small >= 0 for the same keys
    for small, big in subset.items():
        a = keys[keys.measure == small]
        b = keys[keys.measure == big]
        if len(a) == 0 or len(b) == 0:
            continue
        mrg = a.merge(b, on=["area", "m0", "m1", "bkey"], suffixes=("_s", "_b"))
        mrg = mrg.drop_duplicates("gid_s")
        k = len(mrg)
        r_rows += [np.arange(nrow, nrow + k)] * 2
        r_cols += [mrg.gid_b.to_numpy(), mrg.gid_s.to_numpy()]
        r_vals += [np.ones(k), -np.ones(k)]
        nrow += k
    # non-additive periods: total <= sum of parts; total >= each part at the top
    for meas, add in additive.items():
        if add:
            continue
        k_ = keys[keys.measure == meas].drop_duplicates(["area", "m0", "m1", "bkey"])
        if len(k_) == 0:
            continue
        k_ = k_.assign(nmon=k_.m1 - k_.m0 + 1)
        kinds = sorted(k_.nmon.unique())
        for ci, ck in enumerate(kinds):
            coarse = k_[k_.nmon == ck]
            for fk in kinds[:ci]:
                fine = k_[k_.nmon == fk]
                mrg = coarse.merge(fine, on=["area", "bkey"], suffixes=("_c", "_f"))
                mrg = mrg[(mrg.m0_f >= mrg.m0_c) & (mrg.m1_f <= mrg.m1_c)]
                if len(mrg) == 0:
                    continue
                # at least each part (top cells only)
                top = mrg[mrg.all_breakdowns_c & mrg.root_c]
                kk = len(top)
                if kk:
                    r_rows += [np.arange(nrow, nrow + kk)] * 2
                    r_cols += [top.gid_c.to_numpy(), top.gid_f.to_numpy()]
                    r_vals += [np.ones(kk), -np.ones(kk)]
                    nrow += kk
                # at most the sum of parts, where the parts cover the total
                g = mrg.groupby("gid_c")
                cover = g.apply(lambda x: (x.m1_f - x.m0_f + 1).sum(), include_groups=False)
                full = cover[cover == (mrg.groupby("gid_c").m1_c.first() - mrg.groupby("gid_c").m0_c.first() + 1)]
                sel = mrg[mrg.gid_c.isin(full.index)]
                if len(sel):
                    rid = pd.Index(full.index).get_indexer(sel.gid_c) + nrow
                    r_rows += [rid, np.arange(nrow, nrow + len(full))]
                    r_cols += [sel.gid_f.to_numpy(), full.index.to_numpy()]
                    r_vals += [np.ones(len(sel)), -np.ones(len(full))]
                    nrow += len(full)
    if nrow == 0:
        return sp.csr_matrix((0, cells.shape[1])), sp.csr_matrix((0, n_cells))
    D = sp.csr_matrix((np.concatenate(r_vals), (np.concatenate(r_rows), np.concatenate(r_cols))),
                      shape=(nrow, n_cells))
    G = (D @ cells).tocsr()
    G.eliminate_zeros()
    return G, D
