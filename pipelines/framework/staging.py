"""Staging: one pass over the extract that types, checks and de-identifies it.

The step is a single ``CREATE TABLE staged AS SELECT ...`` over the extract
that keeps only derived columns (LSOA, period date, sex label, age, flags,
keyed pseudonym): raw NHS Numbers, dates of birth and postcodes are never
stored in a table, so they can't reach DuckDB's spill files. Postcodes and
LSOA codes are looked up with hash joins against the reference pack, which
lets DuckDB use every core but does not keep file order; so row numbers for
messages come from a second, ordered scan (``row_number() OVER ()`` keeps
file order) run only when there is something to report.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from .codelists import CodeList
from .errors import ExtractError, TooManyRejectsError, format_rows
from .extracts import (
    SAVE_AS_CSV,
    OpenedExtract,
    _quote_ident,
    collect_csv_structural_rejects,
    csv_problem,
    typed_expression,
)
from .geography import postcode_key
from .identifiers import nhs_number_valid_sql, normalise_nhs_number_sql, pseudonym_macro_sql
from .spec import DeriveContext, PipelineSpec

AGE_CAP = 90  # the highest band start any breakdown uses (ESP 2013: 90+)
# Events dated more than this many years before the run are rejected: a
# mistyped year (0023, 1023, 1901) would otherwise stretch every cube back
# to that date, and a few such rows could make a run take hours and
# gigabytes (or fail on a date Python cannot hold, before year 1).
EVENT_HISTORY_YEARS = 20
EXAMPLE_LIMIT = 200  # reject examples come from the first rejected rows found (the scan stops there)


@dataclass
class StagingResult:
    rows_read: int
    rejected: dict[str, int] = field(default_factory=dict)
    reject_examples: dict[str, list[int]] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    persons_not_countable: int = 0


def register_helpers(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """Create the SQL objects derive expressions use (after lookups are loaded)."""
    con.execute(pseudonym_macro_sql(key))


LSOA_PATTERN = "[EW]01[0-9]{6}"


def derive_context(spec: PipelineSpec, code_lists: dict[str, CodeList]) -> DeriveContext:
    def in_code_list(expr: str, name: str, category: str | None = None) -> str:
        return code_lists[name].sql_in(expr, category)

    lsoa_cols = [c for c in spec.schema.columns if c.lsoa]
    given = f"src.{_quote_ident(lsoa_cols[0].name)}" if lsoa_cols else "NULL"
    residence = "coalesce(_pc._pc_lsoa, _ls._ls_lsoa)"
    status = (
        f"CASE WHEN {residence} IS NOT NULL THEN 'ok' "
        f"WHEN regexp_full_match(coalesce({given}, ''), '{LSOA_PATTERN}') THEN 'outside_area' "
        "ELSE 'no_location' END"
    )
    return DeriveContext(
        pseudonym=lambda e: f"pseudonym({e})",
        normalise_nhs_number=normalise_nhs_number_sql,
        nhs_number_valid=nhs_number_valid_sql,
        lsoa_from_postcode="_pc._pc_lsoa",
        known_lsoa="_ls._ls_lsoa",
        residence_lsoa=residence,
        location_status=status,
        # complete years (a person born on 29 February turns a year older on 28 February)
        age_years=lambda dob, at: f"date_sub('year', {dob}, {at})",
        in_code_list=in_code_list,
    )


def _source_sql(spec: PipelineSpec, opened: OpenedExtract) -> str:
    """The extract with typed columns: ``name`` typed, ``name__raw`` as text."""
    cols = []
    for col in spec.schema.columns:
        ident = _quote_ident(col.name)
        typed = typed_expression(col)
        if typed:
            cols.append(f"{typed} AS {ident}")
            cols.append(f"{ident} AS {_quote_ident(col.name + '__raw')}")
        else:
            cols.append(ident)
    return f"(SELECT {', '.join(cols)} FROM {opened.relation_sql})"


def _lookup_joins(spec: PipelineSpec) -> str:
    joins = []
    postcode = [c for c in spec.schema.columns if c.identifier == "postcode"]
    if postcode:
        joins.append("LEFT JOIN (SELECT postcode_key AS _pc_key, lsoa_code AS _pc_lsoa FROM ref_postcodes) _pc "
                     f"ON _pc._pc_key = {postcode_key('src.' + _quote_ident(postcode[0].name))}")
    else:
        joins.append("LEFT JOIN (SELECT NULL::VARCHAR AS _pc_lsoa) _pc ON FALSE")
    lsoa = [c for c in spec.schema.columns if c.lsoa]
    if lsoa:
        joins.append("LEFT JOIN (SELECT lsoa_code AS _ls_lsoa FROM ref_lsoas) _ls "
                     f"ON _ls._ls_lsoa = src.{_quote_ident(lsoa[0].name)}")
    else:
        joins.append("LEFT JOIN (SELECT NULL::VARCHAR AS _ls_lsoa) _ls ON FALSE")
    return " ".join(joins)


def _generic_checks(spec: PipelineSpec) -> tuple[str, str, str]:
    """SQL for (reject reason, bad-value bitmask, present-value bitmask)."""
    whens, bad_bits, present_bits = [], [], []
    for i, col in enumerate(spec.schema.columns):
        ident = _quote_ident(col.name)
        raw = _quote_ident(col.name + "__raw") if typed_expression(col) else ident
        if not col.nullable:
            whens.append(f"WHEN {raw} IS NULL THEN 'missing {col.name}'")
        if typed_expression(col):
            whens.append(f"WHEN {raw} IS NOT NULL AND {ident} IS NULL THEN 'unreadable {col.name}'")
            bad_bits.append(f"CASE WHEN {raw} IS NOT NULL AND {ident} IS NULL THEN {1 << i} ELSE 0 END")
            present_bits.append(f"CASE WHEN {raw} IS NOT NULL THEN {1 << i} ELSE 0 END")
        if col.allowed:
            allowed = ", ".join("'" + a.replace("'", "''") + "'" for a in col.allowed)
            whens.append(f"WHEN {ident} IS NOT NULL AND {ident} NOT IN ({allowed}) THEN 'unknown {col.name} code'")
        if col.lsoa:
            whens.append(f"WHEN {ident} IS NOT NULL AND NOT regexp_full_match({ident}, '{LSOA_PATTERN}') "
                         f"THEN 'malformed {col.name}'")
    for rule in spec.reject_rules:
        whens.append(f"WHEN ({rule.when}) THEN '{rule.reason}'")
    reason = "CASE " + " ".join(whens) + " END" if whens else "NULL"
    bad = " + ".join(bad_bits) if bad_bits else "0"
    present = " + ".join(present_bits) if present_bits else "0"
    return reason, f"({bad})::BIGINT", f"({present})::BIGINT"


def stage(
    con: duckdb.DuckDBPyConnection,
    spec: PipelineSpec,
    opened: OpenedExtract,
    code_lists: dict[str, CodeList],
) -> StagingResult:
    """Build ``staged`` and check it; raise ``ExtractError`` on a fatal problem."""
    ctx = derive_context(spec, code_lists)
    derive = spec.derive_sql(ctx)
    reason, bad_mask, present_mask = _generic_checks(spec)
    unique = [c for c in spec.schema.columns if c.unique]
    uid = f", hash(src.{_quote_ident(unique[0].name)}) AS _uid_hash" if unique else ""
    strict_source = _source_sql(spec, opened)
    # a pipeline without its own extract_basis dates its extract by its events; added in the
    # same statement (an UPDATE afterwards would rewrite every row)
    basis = "" if re.search(r"\bAS\s+extract_basis\b", derive, re.IGNORECASE) else ", d.event_date AS extract_basis"
    sql = f"""
        CREATE OR REPLACE TABLE staged AS
        SELECT d.* EXCLUDE (_reason){basis}, coalesce(d._reason, {_late_checks(spec)}) AS reject_reason
        FROM (
            SELECT {derive}, {reason} AS _reason, {bad_mask} AS _bad_mask, {present_mask} AS _present_mask{uid}
            FROM {strict_source} src {_lookup_joins(spec)}
        ) d
    """
    try:
        try:
            con.execute(sql)
        except duckdb.InvalidInputException:
            # a line the strict CSV reader could not split: read again, setting
            # such lines aside (they are counted as rejected rows)
            if not opened.tolerant_relation_sql:
                raise
            opened.relation_sql = opened.tolerant_relation_sql
            opened.tolerant_relation_sql = None
            con.execute(sql.replace(strict_source, _source_sql(spec, opened)))
    except duckdb.Error as exc:
        if os.environ.get("OUTCOMES_DEBUG") == "sql":  # developer aid; may quote data
            raise
        if out_of_resources(exc, opened.path):
            raise  # not the extract's fault: the runner says what ran out
        if opened.format == "csv" and "Maximum line size" in str(exc):
            raise ExtractError(str(opened.path), csv_problem(exc), hint=SAVE_AS_CSV) from None
        raise ExtractError(str(opened.path), f"could not be read ({type(exc).__name__})",
                           hint="Check that it is a well-formed extract of this pipeline's kind") from None
    collect_csv_structural_rejects(con, opened)
    required = {"lsoa_code", "location_status", "event_date", "event_order", "sex", "age", "person_id"}
    have = {d[0] for d in con.execute("SELECT * FROM staged LIMIT 0").description}
    if not required <= have:
        raise ValueError(f"pipeline {spec.name}: derive_sql lacks {sorted(required - have)}")
    return _check(con, spec, opened)


_TEMP_FILE_ERRORS = ("no space left on device", "file too large", "disk quota exceeded", "read-only file system")


def out_of_resources(exc: BaseException, extract_path: Path | None = None) -> bool:
    """Out of memory, or an I/O error on DuckDB's temporary files (disk full,
    file size limit) rather than on the extract."""
    if isinstance(exc, duckdb.OutOfMemoryException):
        return True
    if not isinstance(exc, duckdb.IOException):
        return False
    text = str(exc)
    if extract_path is not None and str(extract_path) in text:
        return False
    return "duckdb_temp" in text or any(e in text.lower() for e in _TEMP_FILE_ERRORS)


def _late_checks(spec: PipelineSpec) -> str:
    """Rejections that depend on derived values (sex label, age, event date)."""
    late = []
    if any(b.source == "sex" for t in spec.tables for b in t.breakdowns):
        late.append("WHEN d.sex IS NULL THEN 'unknown sex code'")
    if any(b.source == "age" for t in spec.tables for b in t.breakdowns):
        late.append("WHEN d.age IS NULL OR d.age < 0 OR d.age > 125 THEN 'unusable age (date of birth)'")
    late.append("WHEN d.event_date IS NULL THEN 'no event date'")
    floor = earliest_event_date()
    late.append(f"WHEN d.event_date < DATE '{floor.isoformat()}' THEN '{early_event_reason(floor)}'")
    return "CASE " + " ".join(late) + " END"


def earliest_event_date(today: dt.date | None = None) -> dt.date:
    today = today or dt.date.today()
    return dt.date(today.year - EVENT_HISTORY_YEARS, 1, 1)


def early_event_reason(floor: dt.date) -> str:
    return f"event date before {floor.isoformat()} (more than {EVENT_HISTORY_YEARS} years ago)"


def ordered_rows(con: duckdb.DuckDBPyConnection, spec: PipelineSpec, opened: OpenedExtract,
                 condition: str, limit: int | None = 5, with_value: str | None = None) -> list:
    """Row numbers (file order, from 1) of rows matching ``condition`` (SQL over
    the typed source columns), by a second ordered scan of the extract."""
    value = f", {with_value}" if with_value else ""
    lim = f"LIMIT {int(limit)}" if limit else ""
    rows = con.execute(
        f"SELECT rn{value} FROM (SELECT row_number() OVER () AS rn, * FROM {_source_sql(spec, opened)}) src "
        f"WHERE {condition} {lim}"  # no ORDER BY: file order is kept, and LIMIT stops the scan early
    ).fetchall()
    return [r[0] if not with_value else r for r in rows]


def _check(con: duckdb.DuckDBPyConnection, spec: PipelineSpec, opened: OpenedExtract) -> StagingResult:
    file = str(opened.path)
    # One scan for every count below: rows by (reject reason, location status), and for each
    # typed column how many values were present and how many of those could not be read.
    typed = [(i, col) for i, col in enumerate(spec.schema.columns) if typed_expression(col)]
    column_counts = "".join(
        f", count(*) FILTER (WHERE _present_mask & {1 << i} <> 0), count(*) FILTER (WHERE _bad_mask & {1 << i} <> 0)"
        for i, _ in typed
    )
    groups = con.execute(
        f"SELECT reject_reason, location_status, count(*){column_counts} FROM staged GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    rows = sum(g[2] for g in groups) + opened.structural_rejects
    if rows == 0:
        raise ExtractError(file, "has a header but no data rows")
    # A typed column no value of which could be read is a wrong-type column, not bad rows.
    for k, (i, col) in enumerate(typed):
        present = sum(g[3 + 2 * k] for g in groups)
        bad = sum(g[4 + 2 * k] for g in groups)
        if present > 0 and bad == present:
            raw = _quote_ident(col.name + "__raw")
            examples = ordered_rows(con, spec, opened, f"{raw} IS NOT NULL AND {_quote_ident(col.name)} IS NULL")
            raise ExtractError(file, f"no value could be read as a {col.type}", column=col.name, rows=examples,
                               hint=_type_hint(col.type))
    unique = [c for c in spec.schema.columns if c.unique]
    if unique:
        col = unique[0]
        ndup = _duplicated_hashes(con)
        if ndup:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _dup_hashes AS SELECT _uid_hash AS h FROM staged "
                "WHERE _uid_hash IS NOT NULL GROUP BY 1 HAVING count(*) > 1"
            )
            hits = ordered_rows(con, spec, opened, f"hash({_quote_ident(col.name)}) IN (SELECT h FROM _dup_hashes)",
                                limit=50, with_value=f"hash({_quote_ident(col.name)})")
            groups: dict = {}
            for rn, h in hits:
                groups.setdefault(h, []).append(rn)
            shown = "; ".join(format_rows(g, 4) for g in list(groups.values())[:3])
            raise ExtractError(file, f"{ndup} value(s) appear more than once, e.g. in rows {shown}",
                               column=col.name, hint="Each row must have its own id: remove duplicated rows and rerun")
    result = StagingResult(rows_read=rows)
    rejected_by_reason: dict[str, int] = {}
    excluded_by_status: dict[str, int] = {}
    for reason, status, n, *_ in groups:
        if reason is not None:
            rejected_by_reason[reason] = rejected_by_reason.get(reason, 0) + int(n)
        elif status != "ok":
            status = status or "no_location"  # a pipeline's own status expression gave none
            excluded_by_status[status] = excluded_by_status.get(status, 0) + int(n)
        else:
            result.accepted += int(n)
    for reason, n in sorted(rejected_by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
        result.rejected[reason] = n
    if result.rejected:
        result.reject_examples = _reject_examples(con, spec, opened, rows)
    if opened.structural_rejects:
        label = "malformed CSV row (wrong number of fields or bad quoting)"
        result.rejected[label] = opened.structural_rejects
        result.reject_examples[label] = opened.structural_reject_rows or []
    for status, n in sorted(excluded_by_status.items()):
        result.excluded[_EXCLUSION_LABELS.get(status, status)] = n
    rejected = sum(result.rejected.values())
    if rows and rejected / rows > spec.max_reject_fraction:
        detail = ", ".join(f"{r}: {n}" + (f" (e.g. rows {format_rows(result.reject_examples[r], 3)})"
                                           if result.reject_examples.get(r) else "")
                           for r, n in result.rejected.items())
        raise TooManyRejectsError(
            f"{file}: {rejected} of {rows} rows ({rejected / rows:.1%}) are unusable, more than this pipeline "
            f"allows ({spec.max_reject_fraction:.0%}); nothing was published. {detail}"
        )
    return result


def _duplicated_hashes(con: duckdb.DuckDBPyConnection) -> int:
    """How many id hashes occur more than once. Sorting the hashes (8 bytes a
    row) and comparing neighbours takes a fraction of the time of grouping
    millions of distinct values in DuckDB."""
    hashes = con.execute("SELECT _uid_hash FROM staged WHERE _uid_hash IS NOT NULL").fetchnumpy()["_uid_hash"]
    hashes = np.asarray(hashes)
    hashes.sort()
    repeated = hashes[1:][hashes[1:] == hashes[:-1]]
    return int(np.unique(repeated).size) if repeated.size else 0


def _reject_examples(con: duckdb.DuckDBPyConnection, spec: PipelineSpec, opened: OpenedExtract,
                     rows: int) -> dict[str, list[int]]:
    """First row numbers of each reject reason. Only the first
    ``EXAMPLE_LIMIT`` rejected rows are looked at, so the ordered scan stops
    early; a rare reason may therefore have no example.
    Reasons decided on derived values (sex label, age) are found by the
    same checks re-expressed on the source, where the pipeline's reject
    rules and column checks decide them."""
    reason, _bad, _present = _generic_checks(spec)
    hits = ordered_rows(con, spec, opened, f"({reason}) IS NOT NULL", limit=EXAMPLE_LIMIT, with_value=f"({reason})")
    examples: dict[str, list[int]] = {}
    for rn, why in hits:
        lst = examples.setdefault(why, [])
        if len(lst) < 5:
            lst.append(int(rn))
    return examples


_EXCLUSION_LABELS = {
    "outside_area": "resident outside the reference area",
    "no_location": "no usable location (no postcode or LSOA found)",
}


def _type_hint(kind: str) -> str:
    return {
        "date": "Dates must be written YYYY-MM-DD",
        "timestamp": "Date-times must be ISO 8601, e.g. 2023-12-24T22:15:00",
        "integer": "Values must be whole numbers",
        "boolean": "Values must be Y/N",
    }.get(kind, "")


def coverage(con: duckdb.DuckDBPyConnection, spec: PipelineSpec) -> tuple[object, object, object, object]:
    """(first event date, last event date, complete-from, complete-to) of accepted records."""
    lo, hi = spec.complete_window_sql
    return con.execute(
        f"SELECT min(event_date), max(event_date), {lo}, {hi} FROM staged "
        "WHERE reject_reason IS NULL AND location_status = 'ok'"
    ).fetchall()[0]


def extract_date(con: duckdb.DuckDBPyConnection) -> object:
    return con.execute("SELECT max(extract_basis) FROM staged WHERE reject_reason IS NULL").fetchall()[0][0]
