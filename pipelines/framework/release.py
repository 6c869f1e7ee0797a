"""Draft and protected releases: the only two shapes aggregated data takes.

A ``DraftRelease`` holds a pipeline's complete cubes with their *true*
counts. It exists only inside the pipeline process. The disclosure gate
(``pipelines.framework.disclosure.gate``) is the only code that turns a draft
into a ``ProtectedRelease``, and ``publication`` accepts nothing else, so
there is no way to write a published table that has not passed the gate.

Each draft table is a DataFrame with the columns
``area_code, area_level, period_start, period_end, provisional,
<breakdown columns...>, count`` where breakdown columns hold category labels
or ``All`` (the total over the other labels). The structure the disclosure
engine needs to derive every relation an attacker could use is carried with
it: the table's spec (period kind, breakdowns with their fine categories),
the measure (whether counts add up over periods) and ``area_members``
(every area as a set of LSOAs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .spec import Measure, Table

KEY_COLUMNS = ("area_code", "period_start", "period_end")


@dataclass
class DraftTable:
    """A complete cube of true counts for one published table."""

    spec: Table
    measure: Measure
    data: pd.DataFrame

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dimensions(self) -> list[str]:
        return ["area", "period", *self.spec.breakdown_columns]

    @property
    def additive_over(self) -> list[str]:
        """Dimensions over which counts add up exactly.

        Event counts add up over everything; distinct persons add up over
        areas and breakdowns (each person is placed once per period) but not
        over periods.
        """
        dims = self.dimensions
        if self.measure.distinct_persons:
            return [d for d in dims if d != "period"]
        return dims


@dataclass
class DraftRelease:
    """All tables one pipeline run produces, with their true counts."""

    pipeline: str
    tables: list[DraftTable]
    #: area_code, lsoa_code for every area used by any table (an LSOA lists itself)
    area_members: pd.DataFrame
    #: area_code, area_name, area_level
    areas: pd.DataFrame
    extract_date: object = None

    def table(self, name: str) -> DraftTable:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)


@dataclass(frozen=True)
class GateReport:
    """What the gate did, per table: for the run summary and provenance."""

    table_name: str
    cells: int
    primary_suppressed: int
    secondary_suppressed: int
    rounded: int
    audit_passed: bool
    narrowest_range: float | None = None
    seconds: float = 0.0


class ProtectedRelease:
    """Tables whose counts have passed the disclosure gate.

    Only the gate constructs these (it passes the module-private token);
    ``publication`` refuses anything else.
    """

    __slots__ = ("pipeline", "tables", "policy", "reports", "specs", "measures")

    def __init__(
        self,
        token: object,
        pipeline: str,
        tables: dict[str, pd.DataFrame],
        specs: dict[str, Table],
        measures: dict[str, Measure],
        policy: dict,
        reports: list[GateReport],
    ) -> None:
        from .disclosure import gate

        if token is not gate._GATE_TOKEN:
            raise PermissionError("only the disclosure gate can create a ProtectedRelease")
        self.pipeline = pipeline
        self.tables = tables
        self.specs = specs
        self.measures = measures
        self.policy = policy
        self.reports = reports


@dataclass
class RunSummary:
    """Counts reported after a run and stored in ``runs``."""

    pipeline: str
    input_file: str = ""
    input_sha256: str = ""
    rows_read: int = 0
    rows_rejected: dict[str, int] = field(default_factory=dict)
    rows_excluded: dict[str, int] = field(default_factory=dict)
    persons_not_countable: int = 0
    tables_published: int = 0
    cells_published: int = 0
    cells_suppressed: int = 0
    gate_seconds: float = 0.0
    reject_examples: dict[str, list[int]] = field(default_factory=dict)
