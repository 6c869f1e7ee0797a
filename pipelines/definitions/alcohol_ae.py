"""Alcohol-related A&E attendances (from an Emergency Care Data Set extract).

Three measures at every grain: alcohol-related attendances, all attendances
(the denominator of the proportion) and distinct persons with one or more
alcohol-related attendance in the period (only where the NHS Number passes
the Modulus 11 check; the number that could not be counted is reported).

"Alcohol-related" is defined by the versioned code list
``codelists/alcohol_ae.csv``: an alcohol involvement code in
``alcohol_drug_involvement_snomed`` or an alcohol-specific diagnosis in
``primary_diagnosis_snomed``.

Residence: postcode -> LSOA 2021 through the reference pack's postcode
lookup, else the trust's ``lsoa_code``. A well-formed LSOA code that is not in
the pack is a resident outside the place (counted and reported); a malformed
one rejects the row.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.framework.spec import (
    AGE_ESP2013,
    SEX,
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

CODELIST = Path(__file__).with_name("codelists") / "alcohol_ae.csv"
FOCUS_LA = "E08000009"  # Trafford: the borough with neighbourhood detail

SCHEMA = ExtractSchema(
    description="ECDS-shaped extract: one row per A&E attendance, all attendances.",
    columns=(
        Column("attendance_id", "text", nullable=False, unique=True),
        Column("nhs_number", "text", identifier="nhs_number"),
        Column("date_of_birth", "date", nullable=False, identifier="date_of_birth"),
        Column("sex", "code", nullable=False, allowed=("1", "2", "9", "X")),
        Column("postcode", "text", identifier="postcode"),
        Column("lsoa_code", "code", lsoa=True),
        Column("arrival_datetime", "timestamp", nullable=False),
        Column("chief_complaint_snomed", "code"),
        Column("primary_diagnosis_snomed", "code"),
        Column("alcohol_drug_involvement_snomed", "code"),
        Column("discharge_destination_snomed", "code"),
    ),
)

def derive(ctx: DeriveContext) -> str:
    """Standard record columns from the typed extract (see ``RECORD_COLUMNS``).

    The NHS Number is checked and pseudonymised only on alcohol-related rows
    (nested CASE, so the other rows never pay for it): persons are counted
    only for the alcohol measure."""
    alcohol = "(" + ctx.in_code_list("alcohol_drug_involvement_snomed", "alcohol", "involvement") + " OR " + \
        ctx.in_code_list("primary_diagnosis_snomed", "alcohol", "diagnosis") + ")"
    nhs = ctx.normalise_nhs_number("nhs_number")
    valid = ctx.nhs_number_valid(nhs)
    return f"""
        {ctx.location},
        CAST(arrival_datetime AS DATE) AS event_date,
        arrival_datetime AS event_order,
        CASE sex WHEN '2' THEN 'Female' WHEN '1' THEN 'Male' WHEN '9' THEN 'Other or not known'
                 WHEN 'X' THEN 'Other or not known' END AS sex,
        {ctx.age_years('date_of_birth', 'arrival_datetime')} AS age,
        CASE WHEN {alcohol} THEN (CASE WHEN {valid} THEN {ctx.pseudonym(nhs)} END) END AS person_id,
        {alcohol} AS is_alcohol
    """


GOVERNANCE = Governance(
    source="Emergency Care Data Set (ECDS) extract, Trafford's acute trust (synthetic in this demo)",
    coverage="attendances at one trust's A&E departments: residents who attended elsewhere are not included, "
    "so rates for boroughs other than Trafford are far below their true rates",
    data_controller="Manchester University NHS Foundation Trust (illustrative)",
    legal_basis="Anonymous aggregates only leave the trust: no personal data are shared "
    "(UK GDPR does not apply to anonymous information; processing inside the trust under Article 6(1)(e) and 9(2)(h))",
    dsa_reference="DSA-TRAFFORD-AE-2024-001 (illustrative)",
    purpose="Monitoring alcohol-related harm by neighbourhood and evaluating the whole-place alcohol programme",
)

MEASURES = (
    Measure(
        "alcohol_attendances",
        title="Alcohol-related A&E attendances",
        unit="attendances",
        where="is_alcohol",
        description="A&E attendances with alcohol involvement recorded or an alcohol-specific primary diagnosis.",
        polarity="lower_is_better",
        denominator="population table (ONS mid-year estimate for the area, sex and age band), per 100,000; "
        "or as a proportion of all_attendances",
        subset_of="all_attendances",
    ),
    Measure(
        "all_attendances",
        title="All A&E attendances",
        unit="attendances",
        description="Every A&E attendance of residents of the area (the denominator of the alcohol proportion).",
        polarity="none",
        denominator="population table, per 100,000",
    ),
    Measure(
        "alcohol_persons",
        title="People with an alcohol-related A&E attendance",
        unit="persons",
        where="is_alcohol",
        distinct_persons=True,
        description="Distinct people (by valid NHS Number) with one or more alcohol-related attendance in the period, "
        "each counted once, in the area, age band and sex of their first such attendance in the period.",
        polarity="lower_is_better",
        denominator="population table, per 100,000",
        subset_of="alcohol_attendances",
    ),
)

# Monthly counts by sex and age band for every borough would be mostly zeros and small
# counts (the trust sees few residents of other boroughs), so they are published by year:
# a table that is mostly suppressed informs nobody, and its secondary suppression would
# take many minutes. Monthly trends are by area, all ages.
GRAINS = (
    Grain("la_month", ("la", "place"), "month", "borough and Greater Manchester by month, all ages"),
    Grain("la_year", ("la", "place"), "financial_year",
          "borough and Greater Manchester by financial year, sex and five-year age band (for standardised rates)",
          breakdowns=(SEX, AGE_ESP2013)),
    Grain("locality_ward_month", ("locality", "ward"), "month", "Trafford localities and wards by month, all ages",
          area_scope=FOCUS_LA),
    Grain("msoa_lsoa_year", ("msoa", "lsoa"), "financial_year", "Trafford MSOAs and LSOAs by financial year, all ages",
          area_scope=FOCUS_LA),
)

TABLES = tables_by_grain("alcohol_ae", MEASURES, GRAINS)

PIPELINE = PipelineSpec(
    name="alcohol_ae",
    title="Alcohol-related A&E attendances",
    description="Alcohol-related and all A&E attendances, and people attending, by area, month or year, sex and age.",
    schema=SCHEMA,
    governance=GOVERNANCE,
    measures=MEASURES,
    tables=TABLES,
    derive_sql=derive,
    default_input="ae_attendances.csv",
    reject_rules=(
        RejectRule("arrival date in the future", "CAST(arrival_datetime AS DATE) > current_date", "arrival_datetime"),
        RejectRule("arrival before date of birth", "CAST(arrival_datetime AS DATE) < date_of_birth", "date_of_birth"),
    ),
    max_reject_fraction=0.05,
    code_lists={"alcohol": CODELIST},
    # secondary suppression and the LP audit on this release: about half a minute on the demo
    secondary_suppression=True,
)
