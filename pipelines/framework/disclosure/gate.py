"""The disclosure gate: the one way true counts become publishable counts.

Order of work, for all tables of a pipeline's release at once:
1. primary rules (``primary``): small counts suppressed, others rounded;
2. secondary suppression (``secondary``): more cells hidden until no hidden
   or rounded small count can be narrowed below the policy's protection width
   using every relation in the release (margins, area hierarchy, time,
   linked tables, and earlier kept releases);
3. audit (``audit``): an independent check of the result by linear
   programming; a release that fails is refused with the table, cell and
   range named.
Derived figures are never computed here: they come later from the
published counts only.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import pandas as pd

from ..faults import checkpoint
from ..release import DraftRelease, GateReport, ProtectedRelease
from .meta import TableMeta
from .policy import Policy
from .primary import primary_mask, round_counts

_GATE_TOKEN = object()


class DisclosureError(RuntimeError):
    """A release failed the disclosure audit and was not published."""


def table_meta_from_draft(draft: DraftRelease) -> dict[str, TableMeta]:
    subset = {t.measure.name: t.measure.subset_of for t in draft.tables}
    return {
        t.name: TableMeta(
            name=t.name,
            pipeline=draft.pipeline,
            measure=t.measure.name,
            breakdowns=tuple(t.spec.breakdown_columns),
            additive_over=tuple(t.additive_over),
            subset_of=subset.get(t.measure.name),
        )
        for t in draft.tables
    }


def protect(
    draft: DraftRelease,
    policy: Policy,
    previous: dict[str, pd.DataFrame] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ProtectedRelease:
    """Apply ``policy`` to every table of ``draft`` and return what may be published.

    ``previous`` holds the same pipeline's tables as published in the kept
    earlier release (if any), which an attacker may still have.
    """
    from . import audit as audit_mod
    from . import secondary

    started = time.perf_counter()
    meta = table_meta_from_draft(draft)
    true_tables = {t.name: t.data for t in draft.tables}
    primary = {name: primary_mask(df["count"].to_numpy(), policy) for name, df in true_tables.items()}
    # feasible points the engine finds, which the audit tries first (each checked before use)
    points: dict = {}
    if policy.secondary_suppression:
        if progress:
            progress("secondary suppression")
        suppressed = secondary.secondary_suppress(
            true_tables, meta, draft.area_members, policy, primary, previous=previous, points=points
        )
    else:
        suppressed = {name: mask.copy() for name, mask in primary.items()}
    published = _apply(true_tables, suppressed, policy)
    checkpoint("gate:suppressed")
    result = None
    if policy.secondary_suppression:
        for attempt in range(REPAIR_ATTEMPTS + 1):
            if progress:
                progress("audit")
            result = audit_mod.audit_release(published, meta, draft.area_members, policy, previous=previous,
                                             hints=points)
            checkpoint("gate:audited")
            failing = {n: np.asarray(t.failing_rows, dtype=np.int64)
                       for n, t in result.tables.items() if t.failing_rows}
            if result.passed or not failing or attempt == REPAIR_ATTEMPTS:
                break
            # The engine re-checks only what a suppression could have changed; the audit
            # re-checks everything. Where they disagree the audit decides: the engine starts
            # again from the current suppressions, hiding a related cell for each cell the
            # audit found under-protected.
            if progress:
                progress(f"audit found {sum(len(v) for v in failing.values())} under-protected cell(s): "
                         "suppressing more")
            suppressed = secondary.secondary_suppress(
                true_tables, meta, draft.area_members, policy, suppressed, previous=previous, must_fix=failing,
                points=points,
            )
            published = _apply(true_tables, suppressed, policy)
        if not result.passed:
            raise DisclosureError(result.failure_message())
    elapsed = time.perf_counter() - started
    reports = []
    for t in draft.tables:
        mask = suppressed[t.name]
        prim = primary[t.name]
        table_audit = None if result is None else result.tables.get(t.name)
        reports.append(
            GateReport(
                table_name=t.name,
                cells=len(mask),
                primary_suppressed=int(prim.sum()),
                secondary_suppressed=int((mask & ~prim).sum()),
                rounded=int((~mask).sum()) if policy.rounding != "none" else 0,
                audit_passed=result is not None,
                narrowest_range=None if table_audit is None else table_audit.narrowest_width,
                seconds=elapsed / max(len(draft.tables), 1),
            )
        )
    return ProtectedRelease(
        _GATE_TOKEN,
        pipeline=draft.pipeline,
        tables=published,
        specs={t.name: t.spec for t in draft.tables},
        measures={t.measure.name: t.measure for t in draft.tables},
        policy=_policy_dict(policy),
        reports=reports,
    )


#: times the gate lets the engine suppress more after a failed audit before refusing
REPAIR_ATTEMPTS = 3


def _apply(true_tables: dict[str, pd.DataFrame], suppressed: dict[str, np.ndarray],
           policy: Policy) -> dict[str, pd.DataFrame]:
    """The tables as they would be published: rounded, suppressed cells NA."""
    published: dict[str, pd.DataFrame] = {}
    for name, df in true_tables.items():
        values = round_counts(df["count"].to_numpy(), policy).astype("float64")
        values[suppressed[name]] = np.nan
        out = df.drop(columns=["count"]).copy()
        out["count"] = pd.array(np.where(np.isnan(values), pd.NA, values), dtype="Int64")
        published[name] = out
    return published


def _policy_dict(policy: Policy) -> dict:
    import json

    return json.loads(policy.to_json())
