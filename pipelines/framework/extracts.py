"""Reading partner extracts (CSV, Excel, Parquet) into DuckDB, safely.

The extract is exposed to the pipeline as the SQL relation ``src``: one
column per declared schema column, named canonically, all VARCHAR (blank ->
NULL), plus typed copies (``<name>__t``) for date/timestamp/integer columns.
Nothing is materialised here: the staging step selects derived columns from
``src`` in a single projection, so raw identifiers are never stored in a
table (nor spilled to disk) — see ``staging``.

Every failure becomes an ``ExtractError`` naming the file and, where known,
the row(s) and column; DuckDB's own messages are not passed on because they
can quote the offending line, which may hold identifiers.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from .errors import ExtractError
from .spec import Column, ExtractSchema

SAFE_HEADER = re.compile(r"^[A-Za-z_][A-Za-z_ ]{0,40}$")
CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".ods"}
PARQUET_SUFFIXES = {".parquet", ".pq"}


@dataclass
class OpenedExtract:
    """What the staging step needs to know about the opened extract."""

    path: Path
    format: str
    relation_sql: str  # a FROM-able SQL expression with canonical VARCHAR columns
    encoding: str = "utf-8"
    #: CSV only: the same relation reading malformed lines into a reject table
    #: instead of failing; used when the strict (faster) read fails
    tolerant_relation_sql: str | None = None
    structural_rejects: int = 0
    structural_reject_rows: list[int] | None = None


def describe_header(names: list[str]) -> str:
    """Header names safe to show: anything that might be data is masked."""
    shown = [n if SAFE_HEADER.match(n or "") else f"<column {i + 1}>" for i, n in enumerate(names)]
    return ", ".join(shown)


def _match_columns(path: Path, found: list[str], schema: ExtractSchema) -> dict[str, str]:
    """Map canonical schema names to the file's actual header names."""
    by_key = {}
    for name in found:
        by_key.setdefault((name or "").strip().lower(), name)
    mapping, missing = {}, []
    for col in schema.columns:
        actual = by_key.get(col.name.lower())
        if actual is None:
            missing.append(col.name)
        else:
            mapping[col.name] = actual
    if missing:
        if len(missing) == len(schema.columns):
            raise ExtractError(
                str(path),
                f"none of the expected columns were found (expected {', '.join(c.name for c in schema.columns)}; "
                f"the first line has {len(found)} field(s): {describe_header(found)})",
                hint="Is this the right file, with a header row, comma-separated?",
            )
        raise ExtractError(
            str(path),
            f"missing column(s) {', '.join(missing)}",
            hint=f"The header has: {describe_header(found)}",
        )
    return mapping


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def open_extract(con: duckdb.DuckDBPyConnection, path: Path, schema: ExtractSchema) -> OpenedExtract:
    """Check the file and build the ``src`` relation SQL (nothing is read yet)."""
    path = Path(path)
    if not path.exists():
        raise ExtractError(str(path), "file not found")
    if path.is_dir():
        raise ExtractError(str(path), "is a folder, not an extract file")
    if path.stat().st_size == 0:
        raise ExtractError(str(path), "the file is empty")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        opened = _open_parquet(con, path, schema)
    elif suffix in EXCEL_SUFFIXES:
        opened = _open_excel(con, path, schema)
    else:
        opened = _open_csv(con, path, schema)
    return opened


def _canonical_select(mapping: dict[str, str], schema: ExtractSchema, source: str) -> str:
    cols = []
    for col in schema.columns:
        raw = f"nullif(trim(CAST({_quote_ident(mapping[col.name])} AS VARCHAR)), '')"
        cols.append(f"{raw} AS {_quote_ident(col.name)}")
    return f"(SELECT {', '.join(cols)} FROM {source})"


MAX_LINE_BYTES = 1_048_576
SAVE_AS_CSV = "Export the extract as comma-separated UTF-8 text with a header row"


def _looks_like_utf16(head: bytes) -> bool:
    """Text saved as UTF-16 without a byte-order mark: every other byte NUL."""
    sample = head[:4096]
    if len(sample) < 8:
        return False
    even, odd = sample[0::2], sample[1::2]
    return odd.count(0) > 0.8 * len(odd) or even.count(0) > 0.8 * len(even)


def csv_problem(exc: BaseException) -> str:
    """What went wrong reading a CSV, from DuckDB's error, without quoting it
    (its text can hold a line of the extract)."""
    text = str(exc)
    if "Maximum line size" in text:
        return (f"could not be read as a CSV file: a line is longer than {MAX_LINE_BYTES:,} bytes, "
                "the most one row may hold (a runaway quote, or a file that is not this extract?)")
    if "sniffing" in text or "dialect" in text:
        return "could not be read as a CSV file: its rows and columns could not be told apart (check the quoting)"
    return "could not be read as a CSV file"


def _open_csv(con: duckdb.DuckDBPyConnection, path: Path, schema: ExtractSchema) -> OpenedExtract:
    with path.open("rb") as f:
        head = f.read(65536)
    encoding = "utf-8"
    if head.startswith(b"\xff\xfe"):
        encoding = "utf-16"  # little-endian with a byte-order mark: Excel's "Unicode text"
    elif head.startswith(b"\xfe\xff"):
        raise ExtractError(str(path), "is UTF-16 big-endian text, which cannot be read", hint=SAVE_AS_CSV)
    elif b"\x00" in head[:4096]:
        if _looks_like_utf16(head):
            raise ExtractError(str(path), "looks like UTF-16 text without a byte-order mark, which cannot be read",
                               hint=SAVE_AS_CSV)
        raise ExtractError(str(path), "is not a CSV file (it contains binary data)",
                           hint="Export the extract as comma-separated text with a header row")
    else:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not just a multi-byte character cut at the buffer end
                encoding = "latin-1"
    options = (
        f"header=true, all_varchar=true, delim=',', quote='\"', escape='\"', "
        f"encoding={_sql_str(encoding)}, max_line_size={MAX_LINE_BYTES}"
    )
    base = f"read_csv({_sql_str(str(path))}, {options})"
    tolerant = (
        f"read_csv({_sql_str(str(path))}, {options}, ignore_errors=true, store_rejects=true, "
        "rejects_table='_csv_reject_errors', rejects_scan='_csv_reject_scans')"
    )
    try:
        found = [d[0] for d in con.execute(f"SELECT * FROM {base} LIMIT 0").description]
    except duckdb.Error as strict_error:
        # a malformed line among the first rows (e.g. a file cut short): read
        # the header with such lines set aside; staging counts them as rejected
        try:
            found = [d[0] for d in con.execute(
                f"SELECT * FROM read_csv({_sql_str(str(path))}, {options}, ignore_errors=true) LIMIT 0"
            ).description]
        except duckdb.Error:
            raise ExtractError(str(path), csv_problem(strict_error), hint=SAVE_AS_CSV) from None
    mapping = _match_columns(path, found, schema)
    return OpenedExtract(path, "csv", _canonical_select(mapping, schema, base), encoding,
                         tolerant_relation_sql=_canonical_select(mapping, schema, tolerant))


def collect_csv_structural_rejects(con: duckdb.DuckDBPyConnection, opened: OpenedExtract) -> None:
    """After the staging scan, count CSV rows DuckDB could not split into fields.

    The reject table DuckDB keeps holds the raw line; only line numbers are
    read from it and it is dropped at once.
    """
    if opened.format != "csv":
        return
    try:
        rows = con.execute("SELECT DISTINCT line FROM _csv_reject_errors ORDER BY line").fetchall()
    except duckdb.Error:
        return
    finally:
        for t in ("_csv_reject_errors", "_csv_reject_scans"):
            try:
                con.execute(f"DROP TABLE IF EXISTS {t}")
            except duckdb.Error:
                pass
    opened.structural_rejects = len(rows)
    opened.structural_reject_rows = [int(r[0]) - 1 for r in rows[:5]]


def _open_parquet(con: duckdb.DuckDBPyConnection, path: Path, schema: ExtractSchema) -> OpenedExtract:
    base = f"read_parquet({_sql_str(str(path))})"
    try:
        found = [d[0] for d in con.execute(f"SELECT * FROM {base} LIMIT 0").description]
    except duckdb.Error:
        raise ExtractError(str(path), "could not be read as a Parquet file") from None
    mapping = _match_columns(path, found, schema)
    return OpenedExtract(path, "parquet", _canonical_select(mapping, schema, base))


def _excel_cell_to_text(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    return str(value)


def _open_excel(con: duckdb.DuckDBPyConnection, path: Path, schema: ExtractSchema) -> OpenedExtract:
    """Read the first sheet with calamine (DuckDB's excel extension needs a
    download these deployments often cannot make); values become text the
    same way a CSV export would show them (whole numbers without '.0', dates
    in ISO 8601)."""
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
        rows = book.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except Exception:
        raise ExtractError(str(path), "could not be read as an Excel workbook") from None
    if not rows:
        raise ExtractError(str(path), "the first sheet is empty")
    header = [str(h).strip() if h is not None else "" for h in rows[0]]
    mapping = _match_columns(path, header, schema)
    index = {name: header.index(actual) for name, actual in mapping.items()}
    data = {
        name: pa.array([_excel_cell_to_text(r[i]) if i < len(r) else None for r in rows[1:]], type=pa.string())
        for name, i in index.items()
    }
    table = pa.table(data)
    con.register("_excel_extract", table)
    identity = {c.name: c.name for c in schema.columns}
    return OpenedExtract(path, "excel", _canonical_select(identity, schema, "_excel_extract"))


def typed_expression(col: Column) -> str | None:
    """SQL parsing a VARCHAR column to its declared type (NULL if unparseable)."""
    ident = _quote_ident(col.name)
    if col.type == "date":
        return f"TRY_CAST({ident} AS DATE)"
    if col.type == "timestamp":
        return f"TRY_CAST({ident} AS TIMESTAMP)"  # ISO 8601, with 'T' or a space
    if col.type == "integer":
        return f"TRY_CAST({ident} AS BIGINT)"
    if col.type == "boolean":
        return (f"CASE upper({ident}) WHEN 'Y' THEN true WHEN 'YES' THEN true WHEN 'TRUE' THEN true "
                f"WHEN '1' THEN true WHEN 'N' THEN false WHEN 'NO' THEN false WHEN 'FALSE' THEN false "
                f"WHEN '0' THEN false END")
    return None
