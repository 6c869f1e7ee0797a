"""What the disclosure engine knows about a table, from inside or outside.

The same ``TableMeta`` is built from a draft release (inside a run) and from
a publication's ``catalogue`` (``outcomes audit``), so the audit an outside
auditor runs is exactly the one the gate ran.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableMeta:
    """Structure of one count table.

    ``breakdowns`` are the breakdown columns (their value ``All`` is the total
    over the others; age-band labels such as ``18-24``, ``65+`` name whole-year
    intervals, so bands of different tables can be related). ``additive_over``
    lists the dimensions (``area``, ``period``, breakdown columns) over which
    counts add up exactly; over the others a total is at most the sum of its
    parts and at least each part. ``subset_of`` names the measure whose events
    include this measure's (its counts are at most that measure's count in the
    same cell). Tables with the same ``measure`` count the same events.
    """

    name: str
    pipeline: str
    measure: str
    breakdowns: tuple[str, ...]
    additive_over: tuple[str, ...]
    subset_of: str | None = None
