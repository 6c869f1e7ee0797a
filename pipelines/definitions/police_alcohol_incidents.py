"""Police-recorded alcohol-related incidents by area and month.

Written only through the pipeline interface (this file is the whole
pipeline): it proves that adding a partner is one module, with no edits
elsewhere. The extract is Parquet and holds no personal identifiers; the
incident's location is already an LSOA.
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

CATEGORIES = ("Violence against the person", "Public order", "Criminal damage", "Anti-social behaviour", "Other")

SCHEMA = ExtractSchema(
    description="Police incident extract (Parquet): one row per recorded incident, located by LSOA.",
    columns=(
        Column("incident_ref", "text", nullable=False, unique=True),
        Column("recorded_at", "timestamp", nullable=False),
        Column("lsoa_code", "code", lsoa=True),
        Column("alcohol_flag", "boolean", nullable=False),
        Column("incident_category", "code", allowed=CATEGORIES),
    ),
)


def derive(ctx: DeriveContext) -> str:
    return f"""
        {ctx.residence_lsoa} AS lsoa_code,
        {ctx.location_status} AS location_status,
        CAST(recorded_at AS DATE) AS event_date,
        recorded_at AS event_order,
        CAST(NULL AS VARCHAR) AS sex,
        CAST(NULL AS INTEGER) AS age,
        CAST(NULL AS VARCHAR) AS person_id,
        alcohol_flag AS is_alcohol
    """


GOVERNANCE = Governance(
    source="Police-recorded incidents extract, Greater Manchester Police (synthetic in this demo)",
    coverage="incidents recorded by one police force, located where they happened (not where people live)",
    data_controller="Chief Constable of Greater Manchester Police (illustrative)",
    legal_basis="Anonymous aggregates only leave the force (no personal data shared)",
    dsa_reference="DSA-GMP-ALC-2024-003 (illustrative)",
    purpose="Monitoring alcohol-related disorder alongside health outcomes in the whole-place programme",
)

MEASURES = (
    Measure(
        "alcohol_incidents",
        title="Alcohol-related police incidents",
        unit="incidents",
        where="is_alcohol",
        description="Incidents the recording officer flagged as alcohol-related.",
        polarity="lower_is_better",
        denominator="population table, per 100,000",
        subset_of="all_incidents",
    ),
    Measure(
        "all_incidents",
        title="All police incidents",
        unit="incidents",
        description="Every recorded incident located in the area.",
        polarity="none",
        denominator="population table, per 100,000",
    ),
)

TABLES = tuple(
    Table(
        name=f"police_alcohol_incidents__{m.name}__{suffix}",
        measure=m.name,
        area_levels=levels,
        period=period,
        area_scope=scope,
        title=f"{m.title}: {desc}",
        description=m.description,
    )
    for m in MEASURES
    for suffix, levels, period, scope, desc in (
        ("la_month", ("la", "place"), "month", None, "boroughs and Greater Manchester by month"),
        ("ward_month", ("ward",), "month", "E08000009", "Trafford wards by month"),
        ("lsoa_year", ("lsoa",), "financial_year", "E08000009", "Trafford LSOAs by financial year"),
    )
)

PIPELINE = PipelineSpec(
    name="police_alcohol_incidents",
    title="Alcohol-related police incidents",
    description="Police-recorded alcohol-related incidents by area and month.",
    schema=SCHEMA,
    governance=GOVERNANCE,
    measures=MEASURES,
    tables=TABLES,
    derive_sql=derive,
    default_input="police_incidents.parquet",
    reject_rules=(
        RejectRule("recorded in the future", "CAST(recorded_at AS DATE) > current_date", "recorded_at"),
    ),
)
