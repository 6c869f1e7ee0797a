"""The declarative vocabulary a pipeline definition is written in.

A pipeline module under ``pipelines/definitions/`` builds one ``PipelineSpec``
from these types and the framework does everything else (reading, validation,
geography, cubes, disclosure control, publication). Keeping the vocabulary
small and frozen is what lets an analyst add a pipeline without touching any
other file: everything the framework needs to know is said here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal

ColumnType = Literal["text", "integer", "date", "timestamp", "code", "boolean"]
IdentifierKind = Literal["nhs_number", "date_of_birth", "postcode", "name"]
PeriodKind = Literal["month", "quarter", "financial_year"]
Polarity = Literal["lower_is_better", "higher_is_better", "none"]


@dataclass(frozen=True)
class Column:
    """One column of a partner extract, as the partner sends it.

    ``identifier`` marks personal identifiers: their values never appear in
    any message, log or output; the framework pseudonymises or drops them in
    the first (staging) step. ``allowed`` lists the valid codes of a ``code``
    column (anything else rejects the row). ``nullable`` says a blank value
    is acceptable; a blank in a non-nullable column rejects the row.
    """

    name: str
    type: ColumnType = "text"
    nullable: bool = True
    identifier: IdentifierKind | None = None
    allowed: tuple[str, ...] | None = None
    unique: bool = False
    lsoa: bool = False
    description: str = ""


@dataclass(frozen=True)
class ExtractSchema:
    """The shape of an extract and how each file format is read.

    Column names are matched case-insensitively after trimming; extra columns
    are ignored (and never read into the pipeline's memory).
    """

    columns: tuple[Column, ...]
    description: str = ""

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def identifier_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.identifier)


@dataclass(frozen=True)
class Breakdown:
    """A breakdown column of published tables (e.g. ``sex`` or ``age_band``).

    ``source`` is the column of the standard record it is derived from
    (``sex`` or ``age``). For ``age`` the ``bands`` give (label, lowest age,
    highest age or None for open-ended); for ``sex`` the ``values`` are the
    category labels. Every breakdown also has the value ``All``: the total.
    """

    column: str
    source: Literal["sex", "age"]
    values: tuple[str, ...] = ()
    bands: tuple[tuple[str, int, int | None], ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        if self.source == "age":
            return tuple(b[0] for b in self.bands)
        return self.values


SEX_VALUES = ("Female", "Male", "Other or not known")

SEX = Breakdown(column="sex", source="sex", values=SEX_VALUES)

AGE_BROAD = Breakdown(
    column="age_band",
    source="age",
    bands=(
        ("0-17", 0, 17),
        ("18-24", 18, 24),
        ("25-34", 25, 34),
        ("35-44", 35, 44),
        ("45-54", 45, 54),
        ("55-64", 55, 64),
        ("65+", 65, None),
    ),
)

#: The 19 five-year bands of the European Standard Population 2013, so that
#: directly standardised rates can be computed from published counts.
AGE_ESP2013 = Breakdown(
    column="age_band",
    source="age",
    bands=tuple((f"{lo}-{lo + 4}", lo, lo + 4) for lo in range(0, 90, 5)) + (("90+", 90, None),),
)


@dataclass(frozen=True)
class Measure:
    """What a published count counts.

    ``where`` is a SQL boolean over the standard record columns (see
    ``RECORD_COLUMNS``) selecting the records counted. With ``distinct_persons``
    each person (``person_id``) is counted once per period, in the area and
    breakdown of their first counted record in that period; such counts add up
    over areas and breakdowns but not over periods. ``subset_of`` names a
    measure of the same pipeline whose events include this one's (e.g. alcohol
    attendances are a subset of all attendances): the disclosure engine uses
    it as a relation an attacker knows.
    """

    name: str
    title: str
    unit: str
    where: str = "TRUE"
    distinct_persons: bool = False
    description: str = ""
    polarity: Polarity = "none"
    denominator: str | None = None
    subset_of: str | None = None


@dataclass(frozen=True)
class Table:
    """One published table: a measure at a grain.

    ``area_levels`` are levels of the ``areas`` contract table (``lsoa``,
    ``msoa``, ``ward``, ``la``, ``place``, ``locality``, ``catchment``...);
    ``area_scope`` restricts the areas to those inside the given area (e.g.
    ``E08000009`` for Trafford's wards only).
    """

    name: str
    measure: str
    area_levels: tuple[str, ...]
    period: PeriodKind
    breakdowns: tuple[Breakdown, ...] = ()
    area_scope: str | None = None
    title: str | None = None
    description: str = ""

    @property
    def breakdown_columns(self) -> tuple[str, ...]:
        return tuple(b.column for b in self.breakdowns)


@dataclass(frozen=True)
class Grain:
    """Where and when a measure is published: one table per measure and grain."""

    suffix: str
    area_levels: tuple[str, ...]
    period: PeriodKind
    description: str
    breakdowns: tuple[Breakdown, ...] = ()
    area_scope: str | None = None


def tables_by_grain(pipeline: str, measures: Iterable["Measure"], grains: Iterable[Grain]) -> tuple[Table, ...]:
    """Every measure at every grain, named ``<pipeline>__<measure>__<grain suffix>``
    (the naming the catalogue and the disclosure engine's linked tables rely on)."""
    grains = tuple(grains)
    return tuple(
        Table(name=f"{pipeline}__{m.name}__{g.suffix}", measure=m.name, area_levels=g.area_levels,
              period=g.period, breakdowns=g.breakdowns, area_scope=g.area_scope,
              title=f"{m.title}: {g.description}", description=m.description)
        for m in measures for g in grains
    )


@dataclass(frozen=True)
class Governance:
    """Who is responsible for the source data and on what basis it is used."""

    source: str
    coverage: str
    data_controller: str
    legal_basis: str
    dsa_reference: str
    purpose: str


@dataclass(frozen=True)
class RejectRule:
    """A row-level check: rows for which ``when`` (SQL over staged columns) is
    true are rejected and counted under ``reason``."""

    reason: str
    when: str
    column: str


#: The columns of the standard record every pipeline's ``derive`` produces
#: (``extract_basis``, a DATE, may be added: the date whose maximum is the
#: extract date, e.g. the booking date; it defaults to ``event_date``).
#: ``lsoa_code`` is the LSOA 2021 of residence/occurrence (NULL if unknown),
#: ``location_status`` is 'ok', 'outside_area' or 'no_location',
#: ``event_date`` fixes the period, ``event_order`` orders a person's records
#: (first record per period), ``sex`` is one of ``SEX_VALUES`` or NULL,
#: ``age`` is whole years or NULL, ``person_id`` is a keyed pseudonym or NULL.
RECORD_COLUMNS = (
    "lsoa_code",
    "location_status",
    "event_date",
    "event_order",
    "sex",
    "age",
    "person_id",
)


@dataclass(frozen=True)
class PipelineSpec:
    """Everything the framework needs to run one pipeline.

    ``derive_sql(ctx)`` returns a SELECT over the staging table ``staged``
    producing ``RECORD_COLUMNS`` plus any flag columns used by the measures'
    ``where``. ``ctx`` offers the SQL helpers the framework registered (the
    pseudonym macro, the postcode lookup, code lists). ``default_input`` is
    relative to ``data_samples/``. ``complete_window_sql`` gives two SQL
    aggregates over the accepted records (columns of ``RECORD_COLUMNS`` plus
    ``extract_basis``) bounding the dates whose data are complete; a period not
    wholly inside that window is published with ``provisional = true``. The
    extract date is ``max(extract_basis)``.
    """

    name: str
    title: str
    description: str
    schema: ExtractSchema
    governance: Governance
    measures: tuple[Measure, ...]
    tables: tuple[Table, ...]
    derive_sql: Callable[["DeriveContext"], str]
    default_input: str
    reject_rules: tuple[RejectRule, ...] = ()
    max_reject_fraction: float = 0.05
    complete_window_sql: tuple[str, str] = ("min(extract_basis)", "max(extract_basis)")
    policy: str | None = None
    code_lists: dict[str, Path] = field(default_factory=dict)
    #: Secondary suppression and the LP audit for this pipeline's release:
    #: None follows the policy file; True/False is the pipeline's own choice
    #: (True where the engine completes in seconds). ``outcomes run
    #: --secondary`` / ``--primary-only`` override both.
    secondary_suppression: bool | None = None

    def measure(self, name: str) -> Measure:
        for m in self.measures:
            if m.name == name:
                return m
        raise KeyError(f"pipeline {self.name} has no measure {name!r}")


@dataclass(frozen=True)
class DeriveContext:
    """SQL helpers the framework provides to a pipeline's ``derive_sql``.

    ``pseudonym(x)``: keyed HMAC-SHA256 of ``x`` (hex);
    ``normalise_nhs_number(x)``; ``nhs_number_valid(normalised)``: Modulus 11;
    ``lsoa_from_postcode``: SQL for the LSOA 2021 of the extract's postcode
    column (the column marked ``identifier="postcode"``) from the pack's
    postcode lookup, NULL if not found; ``known_lsoa``: SQL for the extract's
    LSOA column (marked ``lsoa=True``) if it is an LSOA of the pack, else
    NULL; ``residence_lsoa`` the first of those two that is known, and
    ``location_status`` 'ok', 'outside_area' (a well-formed LSOA code not in the
    pack) or 'no_location'; ``age_years(dob, at)``: whole years; ``in_code_list(x, list,
    category)``: membership of one of the pipeline's code lists.
    """

    pseudonym: Callable[[str], str]
    normalise_nhs_number: Callable[[str], str]
    nhs_number_valid: Callable[[str], str]
    lsoa_from_postcode: str
    known_lsoa: str
    residence_lsoa: str
    location_status: str
    age_years: Callable[[str, str], str]
    in_code_list: Callable[..., str]

    @property
    def location(self) -> str:
        """The ``lsoa_code`` and ``location_status`` columns, as every pipeline places its records."""
        return f"{self.residence_lsoa} AS lsoa_code, {self.location_status} AS location_status"

    #: ``sex``, ``age`` and ``person_id`` for sources that record no person
    #: (typed NULLs, so the standard record keeps its types).
    no_person: str = ("CAST(NULL AS VARCHAR) AS sex, CAST(NULL AS INTEGER) AS age, "
                      "CAST(NULL AS VARCHAR) AS person_id")
