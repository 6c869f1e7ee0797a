"""Expected births by children's-centre catchment (from maternity bookings).

One row per pregnancy booking (shaped like a Maternity Services Data Set
extract). Published: expected births by catchment by due month, and by ward
by financial quarter, for Trafford. Only the *expected* date is used, and
only as a month or quarter: a booking date is never published with an area.

Completeness: bookings for a due month arrive from about 8 months before it
until about 20 weeks before it. A due month after the extract date (the
latest booking date) is still gaining bookings, and a due month less than 32
weeks after the first booking in the extract may be missing bookings made
before the extract began: both are published with ``provisional = true``.
"""

from __future__ import annotations

from pipelines.framework.spec import (
    Column,
    DeriveContext,
    ExtractSchema,
    Governance,
    Measure,
    PipelineSpec,
    RejectRule,
    Table,
)

FOCUS_LA = "E08000009"

SCHEMA = ExtractSchema(
    description="MSDS-shaped extract: one row per pregnancy booking.",
    columns=(
        Column("booking_id", "text", nullable=False, unique=True),
        Column("nhs_number", "text", identifier="nhs_number"),
        Column("mother_date_of_birth", "date", identifier="date_of_birth"),
        Column("postcode", "text", identifier="postcode"),
        Column("lsoa_code", "code", lsoa=True),
        Column("booking_date", "date", nullable=False),
        Column("estimated_due_date", "date", nullable=False),
        Column("previous_live_births", "integer"),
    ),
)


def derive(ctx: DeriveContext) -> str:
    return f"""
        {ctx.location},
        estimated_due_date AS event_date,
        CAST(estimated_due_date AS TIMESTAMP) AS event_order,
        {ctx.no_person},
        booking_date AS extract_basis
    """


GOVERNANCE = Governance(
    source="Maternity Services Data Set (MSDS) bookings extract, Trafford's maternity service (synthetic in this demo)",
    coverage="pregnancies booked with one trust's maternity service: mothers who book elsewhere are not included",
    data_controller="Manchester University NHS Foundation Trust (illustrative)",
    legal_basis="Anonymous aggregates only leave the trust (no personal data shared)",
    dsa_reference="DSA-TRAFFORD-MAT-2024-002 (illustrative)",
    purpose="Planning children's-centre and early-years services for expected births",
)

MEASURES = (
    Measure(
        "expected_births",
        title="Expected births",
        unit="pregnancies",
        description="Pregnancy bookings by the month (or quarter) of the estimated due date.",
        polarity="none",
        denominator=None,
    ),
)

TABLES = (
    Table(
        name="maternity_due_dates__expected_births__catchment_month",
        measure="expected_births",
        area_levels=("catchment", "la"),
        period="month",
        area_scope=FOCUS_LA,
        title="Expected births by children's-centre catchment and due month",
        description="Bookings by estimated due month, by children's-centre catchment, with the Trafford total.",
    ),
    Table(
        name="maternity_due_dates__expected_births__ward_quarter",
        measure="expected_births",
        area_levels=("ward", "la"),
        period="quarter",
        area_scope=FOCUS_LA,
        title="Expected births by ward and due quarter (financial quarters)",
        description="Bookings by the financial quarter of the estimated due date, by 2022 ward, with the Trafford total.",
    ),
)

PIPELINE = PipelineSpec(
    name="maternity_due_dates",
    title="Expected births",
    description="Expected births by children's-centre catchment and ward, looking forward, for planning.",
    schema=SCHEMA,
    governance=GOVERNANCE,
    measures=MEASURES,
    tables=TABLES,
    derive_sql=derive,
    default_input="maternity_bookings.csv",
    reject_rules=(
        RejectRule("booking date in the future", "booking_date > current_date", "booking_date"),
        RejectRule("due date before booking date", "estimated_due_date < booking_date", "estimated_due_date"),
        RejectRule("due date more than 45 weeks after booking",
                   "estimated_due_date > booking_date + INTERVAL 315 DAY", "estimated_due_date"),
    ),
    complete_window_sql=("CAST(min(extract_basis) + INTERVAL 224 DAY AS DATE)", "max(extract_basis)"),
    # secondary suppression and the LP audit complete in seconds on this release
    secondary_suppression=True,
)
