"""Audit a publication from the outside (``outcomes audit``).

Reads a published DuckDB read-only: ``catalogue`` (table_name, pipeline,
measure, dimensions, additive_over, policy as JSON of the ``Policy`` fields,
subset_of), ``area_members`` and each count table; rebuilds each table's
``TableMeta`` (breakdowns = dimensions other than ``area`` and ``period``),
groups tables by pipeline and runs the same ``audit_release`` the gate runs,
on the published values only. Tables whose catalogue ``policy`` is NULL are
public reference data (e.g. population) and are skipped.

Earlier releases: the publication path is normally a symlink
``.../outcomes.duckdb -> releases/outcomes/<release_id>.duckdb`` (``releases/``
itself before the thirteenth session); the other files of that folder are the
earlier kept releases (release ids sort in time order). With ``with_previous`` each pipeline is also audited combined
with its previous published version: the most recent earlier release whose
catalogue shows a different ``release_id`` for the pipeline's tables (a
release that did not refresh the pipeline carries the same tables).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from .audit import audit_release
from .meta import TableMeta
from .policy import Policy, load_policy


@dataclass
class PublicationAudit:
    """One row per audited table (and per table combined with the earlier release)."""

    db_path: str
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r["passed"] for r in self.rows)

    @property
    def message(self) -> str:
        bad = [r for r in self.rows if not r["passed"]]
        lines = [f"table {r['table_name']}: cell {r['worst_cell']} can be narrowed to {r['worst_range']}"
                 for r in bad]
        return "\n".join(lines + self.notes)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def __str__(self) -> str:
        out = [f"disclosure audit of {self.db_path}: {'PASS' if self.passed else 'FAIL'}"]
        for r in self.rows:
            w = "-" if r["narrowest_width"] is None else f"{r['narrowest_width']:g}"
            out.append(f"  {r['table_name']}: {r['cells']} cells, {r['suppressed']} suppressed, "
                       f"narrowest range {w}: {'pass' if r['passed'] else 'FAIL'}")
        if self.message:
            out.append(self.message)
        return "\n".join(out)


def _read(path: Path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
        if "catalogue" not in names:
            return None, None, {}, con
        cat = con.execute("SELECT * FROM catalogue").df()
        am = con.execute("SELECT area_code, lsoa_code FROM area_members").df() if "area_members" in names \
            else pd.DataFrame(columns=["area_code", "lsoa_code"])
        return cat, am, names, con
    except Exception:
        con.close()
        raise


def _as_list(v) -> list[str]:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return []
    return [str(x) for x in list(v)]


def _meta_of(row) -> TableMeta:
    dims = _as_list(row["dimensions"])
    subset = row.get("subset_of")
    subset = None if subset is None or (isinstance(subset, float) and pd.isna(subset)) else str(subset)
    return TableMeta(
        name=str(row["table_name"]),
        pipeline=str(row["pipeline"]),
        measure=str(row["measure"]),
        breakdowns=tuple(d for d in dims if d not in ("area", "period")),
        additive_over=tuple(_as_list(row["additive_over"])),
        subset_of=subset,
    )


def _earlier_releases(db_path: Path) -> list[Path]:
    current = db_path.resolve()
    folder = current.parent
    if db_path.is_symlink() or "releases" in (folder.name, folder.parent.name):
        files = sorted(p for p in folder.glob("*.duckdb") if not p.name.startswith("."))
        return [p for p in files if p.resolve() != current and p.name < current.name][::-1]
    return []


def audit_publication(db_path, policy: str | Path | Policy | None = None,
                      with_previous: bool = True) -> PublicationAudit:
    """Audit every count table of a publication; see the module docstring."""
    db_path = Path(db_path)
    report = PublicationAudit(str(db_path))
    override = policy if isinstance(policy, Policy) else (load_policy(policy) if policy else None)
    cat, am, names, con = _read(db_path)
    try:
        if cat is None:
            report.notes.append("no catalogue: nothing to audit")
            return report
        cat = cat[cat["policy"].notna()]
        if "kind" in cat:
            cat = cat[cat["kind"].isna() | (cat["kind"] == "count")]
        cat = cat[cat["table_name"].isin(names)]
        for pipeline, rows in cat.groupby("pipeline", sort=True):
            rows = rows.drop_duplicates("table_name")
            meta = {r["table_name"]: _meta_of(r) for _, r in rows.iterrows()}
            tables = {n: con.execute(f'SELECT * FROM "{n}"').df() for n in meta}
            for pol_json, prow in rows.groupby("policy", sort=True):
                pol = override or Policy.from_json(pol_json)
                sub = list(prow["table_name"])
                res = audit_release({n: tables[n] for n in sub}, {n: meta[n] for n in sub}, am, pol)
                report.notes.extend(f"{pipeline}: {x}" for x in res.notes)
                for n in sub:
                    report.rows.append(_row(pipeline, n, res.tables[n], scope="current"))
                if with_previous:
                    rel = prow["release_id"].iloc[0] if "release_id" in prow else None
                    prev = _previous_version(db_path, pipeline, sub, rel)
                    if prev is None:
                        continue
                    prev_id, prev_tables = prev
                    res2 = audit_release({n: tables[n] for n in sub}, {n: meta[n] for n in sub}, am, pol,
                                         previous=prev_tables)
                    for n in sub:
                        report.rows.append(_row(pipeline, n, res2.tables[n], scope=f"with earlier {prev_id}"))
    finally:
        con.close()
    return report


def _row(pipeline: str, name: str, t, scope: str) -> dict:
    label = name if scope == "current" else f"{name} [{scope}]"
    return {
        "pipeline": pipeline,
        "table_name": label,
        "table": name,
        "scope": scope,
        "cells": t.cells,
        "suppressed": t.suppressed,
        "narrowest_width": t.narrowest_width,
        "passed": t.passed,
        "worst_cell": t.worst_cell,
        "worst_range": t.worst_range,
        "failing_cells": t.failing_cells,
    }


def _previous_version(db_path: Path, pipeline: str, table_names: list[str], release_id):
    for path in _earlier_releases(db_path):
        try:
            cat, _, names, con = _read(path)
        except duckdb.Error:
            continue
        try:
            if cat is None:
                continue
            rows = cat[(cat["pipeline"] == pipeline) & cat["table_name"].isin(table_names)]
            if len(rows) == 0:
                continue
            if release_id is not None and "release_id" in rows and (rows["release_id"] == release_id).all():
                continue    # same version of the pipeline's tables carried forward
            prev = {n: con.execute(f'SELECT * FROM "{n}"').df() for n in rows["table_name"] if n in names}
            return path.stem, prev
        finally:
            con.close()
    return None


def policy_json(policy: Policy) -> str:
    """The catalogue's ``policy`` text for a policy (as the publication writes it)."""
    return json.dumps(json.loads(policy.to_json()), sort_keys=True)
