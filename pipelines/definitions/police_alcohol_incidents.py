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
    Grain,
    Measure,
    PipelineSpec,
    RejectRule,
    tables_by_grain,
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
        {ctx.location},
        CAST(recorded_at AS DATE) AS event_date,
        recorded_at AS event_order,
        {ctx.no_person},
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

GRAINS = (
    Grain("la_month", ("la", "place"), "month", "boroughs and Greater Manchester by month"),
    Grain("ward_month", ("ward",), "month", "Trafford wards by month", area_scope="E08000009"),
    Grain("lsoa_year", ("lsoa",), "financial_year", "Trafford LSOAs by financial year", area_scope="E08000009"),
)

TABLES = tables_by_grain("police_alcohol_incidents", MEASURES, GRAINS)

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
    # secondary suppression and the LP audit complete in seconds on this release
    secondary_suppression=True,
)
