"""Pipeline throughput against baselines measured in the same run.

    python bench/pipeline_throughput.py [--rows N] [--format csv|parquet] [--skip-pandas]
                                        [--check-spill [--memory-limit 4GB]]

Generates a synthetic A&E extract of N rows (default 10 million; cached in
var/bench/), then times, on the same file:
  (a) ``outcomes run alcohol_ae --input FILE`` (a real run, as a subprocess),
      with the time spent in the disclosure gate reported separately;
  (b) the floor: DuckDB alone reading the file and computing the same
      counts (postcode -> LSOA lookup, month, sex, age: all and alcohol-related
      attendances, and persons by month and financial year), with none of the
      pipeline's checks, the results kept in DuckDB;
  (c) what an analyst would write with pandas alone: the same job, the same
      twelve tables under the primary rule (``bench/pandas_alcohol_ae.py``; a
      test checks its tables equal the pipeline's), with pandas' default CSV
      engine, and again with ``engine="pyarrow"`` (multi-threaded), which a
      pandas-savvy analyst would pick (CSV only; skipped above 10 million rows).
Prints rows/s of each, the ratios (a - gate) / b and c / a, and the peak
memory (RSS, including children) of (a). Targets (2 cores): (a - gate)/b <=
1.5, c/a >= 5, peak memory of (a) under 2 GB at 10 million rows. Wall times
are never asserted in tests: machines are noisy, so only ratios within one
run are meaningful.

``--check-spill`` runs (a) with a run-private TMPDIR and
``OUTCOMES_MEMORY_LIMIT`` (default 4GB), so DuckDB spills to a folder this
script watches. DuckDB empties its spill files when it closes, so a scanner
thread reads every spill file over and over while the run goes and collects
identifier-shaped tokens (10-digit numbers, ISO dates, postcodes); afterwards
they are checked against the extract's own NHS Numbers, dates of birth and
postcodes, and only counts are printed. A canary (DuckDB deliberately
spilling the extract's raw identifiers) shows the scanner would see them.
It also reports the spill volume seen, the peak memory and whether the
machine swapped. The scanner competes for CPU, so (a) is a little slower
in this mode.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.definitions.alcohol_ae import CODELIST  # noqa: E402
from pipelines.framework.codelists import load_code_list  # noqa: E402
from pipelines.framework.reference import ReferencePack  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proc_tree import tree_sum  # noqa: E402


def extract(rows: int, fmt: str) -> Path:
    from pipelines.samples import generate_samples

    cache = ROOT / "var" / "bench"
    csv = cache / f"ae_{rows}" / "ae_attendances.csv"
    if not csv.exists():
        print(f"generating {rows:,} rows (cached in {csv.parent}) ...", flush=True)
        generate_samples(csv.parent, rows_per_year=max(rows // 3, 1), datasets=["ae_attendances"], progress=True)
    if fmt == "csv":
        return csv
    pq = csv.with_suffix(".parquet")
    if not pq.exists():
        con = duckdb.connect()
        con.execute(f"COPY (SELECT * FROM read_csv('{csv}', all_varchar=true)) TO '{pq}' (FORMAT parquet)")
        con.close()
    return pq


class PeakRSS:
    """Samples the RSS of a process tree every 50 ms."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, int(tree_sum(self.proc.pid, lambda p: p.memory_info().rss)))
            except psutil.Error:
                pass
            time.sleep(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.peak


# identifier-shaped tokens, as DuckDB would hold them in a spilled block (short
# strings are stored inline, between binary bytes); the look-arounds skip
# digit runs inside hex pseudonyms
NHS_TOKEN = re.compile(rb"(?<![0-9A-Za-z])(?:[0-9]{10}|[0-9]{3} [0-9]{3} [0-9]{4})(?![0-9A-Za-z])")
DATE_TOKEN = re.compile(rb"(?<![0-9])(?:19|20)[0-9]{2}-[01][0-9]-[0-3][0-9](?![0-9])")
POSTCODE_TOKEN = re.compile(rb"(?<![A-Z])[A-Z]{1,2}[0-9][0-9A-Z]? ?[0-9][A-Z]{2}(?![A-Z])")
TOKEN_CAP = 2_000_000  # per kind; beyond it the scan says so


@dataclass
class SpillScan:
    nhs: set = field(default_factory=set)
    dates: set = field(default_factory=set)
    postcodes: set = field(default_factory=set)
    files: set = field(default_factory=set)
    bytes_scanned: int = 0
    passes: int = 0
    peak_spill: int = 0
    capped: bool = False


class SpillScanner:
    """Reads every DuckDB spill file under ``root`` again and again while a
    run goes, collecting identifier-shaped tokens (best effort: a block
    written and freed between two passes is missed; the canary and the
    counts of passes and bytes say how well it saw)."""

    def __init__(self, root: Path, pause: float = 0.2):
        self.root, self.pause = Path(root), pause
        self.scan = SpillScan()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _add(self, bucket: set, tokens: list) -> None:
        if len(bucket) < TOKEN_CAP:
            bucket.update(tokens)
        else:
            self.scan.capped = True

    def _pass(self) -> None:
        total = 0
        for f in list(self.root.rglob("duckdb_temp*")):
            try:
                with open(f, "rb") as fh:
                    tail = b""
                    while chunk := fh.read(64 << 20):
                        data = tail + chunk
                        self._add(self.scan.nhs, NHS_TOKEN.findall(data))
                        self._add(self.scan.dates, DATE_TOKEN.findall(data))
                        self._add(self.scan.postcodes, POSTCODE_TOKEN.findall(data))
                        self.scan.bytes_scanned += len(chunk)
                        total += len(chunk)
                        tail = data[-16:]
                        if self._stop.is_set() and self.scan.passes > 0:
                            break
            except OSError:
                continue
            if total:
                self.scan.files.add(f.name)
        self.scan.peak_spill = max(self.scan.peak_spill, total)
        self.scan.passes += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._pass()
            time.sleep(self.pause)

    def stop(self) -> SpillScan:
        self._stop.set()
        self._t.join()
        return self.scan


def identifier_hits(scan: SpillScan, path: Path) -> dict[str, int]:
    """How many spilled tokens are identifiers from the extract (counts only:
    nothing found is ever printed)."""
    reader = f"read_parquet('{path}')" if path.suffix == ".parquet" else f"read_csv('{path}', all_varchar=true)"
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    try:
        def hits(tokens: set, sql: str) -> int:
            if not tokens:
                return 0
            con.execute("CREATE OR REPLACE TEMP TABLE tok (t VARCHAR)")
            con.executemany("INSERT INTO tok VALUES (?)", [[t.decode("ascii", "replace")] for t in tokens])
            return con.execute(f"SELECT count(*) FROM tok WHERE t IN ({sql})").fetchone()[0]

        return {
            "NHS numbers": hits({t.replace(b" ", b"") for t in scan.nhs},
                                f"SELECT replace(nhs_number, ' ', '') FROM {reader}"),
            # published periods start on the 1st and end on a month's last day: not data
            "dates of birth": hits({d for d in scan.dates if not d.endswith(b"-01")},
                                   f"SELECT CAST(date_of_birth AS VARCHAR) FROM {reader}"),
            # as written in the extract (with the space): only the extract holds them so
            "postcodes": hits({t for t in scan.postcodes if b" " in t}, f"SELECT postcode FROM {reader}"),
            # the lookup-key form (no space) is also in the public reference lookup
            "postcode keys": hits({t for t in scan.postcodes if b" " not in t},
                                  f"SELECT replace(postcode, ' ', '') FROM {reader}"),
        }
    finally:
        con.close()


def canary(path: Path, workdir: Path) -> dict[str, int]:
    """DuckDB deliberately spilling the extract's raw identifiers: the scanner
    must see them, or its clean result above would mean nothing."""
    reader = f"read_parquet('{path}')" if path.suffix == ".parquet" else f"read_csv('{path}', all_varchar=true)"
    spill = workdir / "canary"
    spill.mkdir()
    scanner = SpillScanner(spill, pause=0.02)
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET temp_directory = '{spill}'")
        con.execute("SET memory_limit = '64MB'")
        con.execute("SET threads = 1")
        con.execute(f"CREATE TABLE raw AS SELECT nhs_number, date_of_birth, postcode, row_number() OVER () AS i "
                    f"FROM {reader} LIMIT 1000000")
        con.execute("SELECT nhs_number, date_of_birth, postcode, count(*) FROM raw GROUP BY ALL ORDER BY ALL").fetchall()
    finally:
        con.close()
        scan = scanner.stop()
    return identifier_hits(scan, path)


def run_pipeline(path: Path, check_spill: bool = False, memory_limit: str = "4GB") -> tuple[float, float, int, dict]:
    env = dict(os.environ, COLUMNS="200")
    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pipelines.cli", "run", "alcohol_ae", "--input", str(path),
               "--db", str(Path(tmp) / "outcomes.duckdb"), "--demo"]
        spill_root = Path(tmp) / "tmpdir"
        scanner = None
        if check_spill:
            spill_root.mkdir()
            env.update(TMPDIR=str(spill_root), OUTCOMES_MEMORY_LIMIT=memory_limit)
            scanner = SpillScanner(spill_root)
        swap_before = psutil.swap_memory()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        meter = PeakRSS(proc.pid)
        out, _ = proc.communicate()
        wall = time.perf_counter() - t0
        peak = meter.stop()
        swap_after = psutil.swap_memory()
        report["swapped_bytes"] = (swap_after.sout - swap_before.sout) if swap_after.total else 0
        report["swap_total"] = swap_after.total
        if scanner is not None:
            report["scan"] = scanner.stop()
            report["left_behind"] = sorted(p.name for p in spill_root.iterdir())
            report["hits"] = identifier_hits(report["scan"], path)
            report["canary"] = canary(path, Path(tmp))
            shutil.rmtree(spill_root, ignore_errors=True)
    if proc.returncode != 0:
        print(out)
        raise SystemExit(f"outcomes run failed with status {proc.returncode}")
    m = re.search(r"of which ([0-9.]+)s in the disclosure gate", out)
    gate = float(m.group(1)) if m else 0.0
    return wall, gate, peak, report


def floor_duckdb(path: Path, pack: ReferencePack) -> float:
    """(b): DuckDB alone computing the counts the pipeline publishes, with none of its checks.

    One pass over the file groups attendances by (LSOA, month, sex, age), with the
    alcohol-related ones among them, and keeps each alcohol-related attendance's NHS
    Number and time in the key, so that the persons measure (each person once per
    month and per financial year, at their first such attendance) is two small
    group-bys after it. The results stay in DuckDB, as the pipeline's do: fetching
    the 2.6 million fine groups into Python (what earlier sessions' floor did) took
    about 1.5 s of its time at 10 million rows, work the pipeline never does. The
    roll-ups to the published areas are a few thousand rows and are left out, as is
    everything the pipeline checks (NHS Number validity, reject reasons, ids).
    """
    codes = load_code_list(CODELIST)
    inv = ", ".join(f"'{c}'" for c in codes.codes("involvement"))
    diag = ", ".join(f"'{c}'" for c in codes.codes("diagnosis"))
    reader = f"read_parquet('{path}')" if path.suffix == ".parquet" else f"read_csv('{path}', all_varchar=true)"
    alcohol = f"(r.alcohol_drug_involvement_snomed IN ({inv}) OR r.primary_diagnosis_snomed IN ({diag}))"
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    t0 = time.perf_counter()
    con.execute(
        f"CREATE TABLE pcs AS SELECT upper(replace(postcode, ' ', '')) AS k, any_value(lsoa_code) AS lsoa "
        f"FROM read_csv('{pack.file('geography/trafford_postcodes.csv')}', all_varchar=true) GROUP BY 1"
    )
    con.execute(
        f"""
        CREATE TABLE fine AS
        SELECT coalesce(p.lsoa, r.lsoa_code) AS lsoa, date_trunc('month', CAST(r.arrival_datetime AS TIMESTAMP)) AS month,
               r.sex, date_diff('year', CAST(r.date_of_birth AS DATE), CAST(r.arrival_datetime AS TIMESTAMP)) AS age,
               CASE WHEN {alcohol} THEN r.nhs_number END AS person,
               CASE WHEN {alcohol} THEN CAST(r.arrival_datetime AS TIMESTAMP) END AS arrival,
               count(*) AS attendances, count(*) FILTER (WHERE {alcohol}) AS alcohol
        FROM (SELECT * FROM {reader} WHERE TRY_CAST(arrival_datetime AS TIMESTAMP) IS NOT NULL
                                      AND TRY_CAST(date_of_birth AS DATE) IS NOT NULL) r
        LEFT JOIN pcs p ON p.k = upper(replace(r.postcode, ' ', ''))
        GROUP BY ALL
        """
    )
    for period in ("month", "year(arrival - INTERVAL 3 MONTH)"):
        con.execute(
            f"""
            CREATE OR REPLACE TABLE persons AS
            SELECT lsoa, {period} AS period, sex, age, count(*) AS persons
            FROM (SELECT * FROM fine WHERE person IS NOT NULL
                  QUALIFY row_number() OVER (PARTITION BY person, {period} ORDER BY arrival) = 1)
            GROUP BY ALL
            """
        )
    elapsed = time.perf_counter() - t0
    con.close()
    return elapsed


def pandas_only(path: Path, pack: ReferencePack, engine: str) -> float:
    """(c): the pipeline's job done with pandas alone (``bench/pandas_alcohol_ae.py``: the same
    twelve tables, checked equal to the pipeline's ``--primary-only`` publication by
    ``tests/pipelines/test_pandas_baseline.py``), with the given ``read_csv`` engine."""
    from pandas_alcohol_ae import publish

    t0 = time.perf_counter()
    publish(path, pack, engine=engine)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--format", choices=("csv", "parquet"), default="csv")
    ap.add_argument("--skip-pandas", action="store_true")
    ap.add_argument("--check-spill", action="store_true",
                    help="run (a) with a private TMPDIR and a memory limit, and scan DuckDB's spill files for identifiers")
    ap.add_argument("--memory-limit", default="4GB", help="OUTCOMES_MEMORY_LIMIT for --check-spill (default 4GB)")
    args = ap.parse_args()
    pack = ReferencePack.locate()
    path = extract(args.rows, args.format)
    size = path.stat().st_size
    print(f"extract: {path} ({size / 1e9:.2f} GB, {args.rows:,} rows), {os.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.1f} GiB memory, "
          f"{psutil.swap_memory().total / 2**30:.1f} GiB swap", flush=True)
    floor = floor_duckdb(path, pack)  # also warms the page cache for everyone
    wall, gate, peak, report = run_pipeline(path, args.check_spill, args.memory_limit)
    floor = min(floor, floor_duckdb(path, pack))
    pandas_s: dict[str, float] = {}
    if not args.skip_pandas and args.rows <= 10_000_000 and args.format == "csv":
        for engine in ("c", "pyarrow"):
            pandas_s[engine] = pandas_only(path, pack, engine)
    n = args.rows
    print()
    print(f"(a) outcomes run alcohol_ae : {wall:8.2f} s  {n / wall:12,.0f} rows/s  (gate {gate:.2f} s; "
          f"without gate {wall - gate:.2f} s = {n / (wall - gate):,.0f} rows/s)")
    print(f"(b) DuckDB floor            : {floor:8.2f} s  {n / floor:12,.0f} rows/s")
    for engine, secs in pandas_s.items():
        label = f"(c) pandas, {engine} engine"
        print(f"{label:28s}: {secs:8.2f} s  {n / secs:12,.0f} rows/s")
    print()
    print(f"(a - gate) / b = {(wall - gate) / floor:.2f}   (target <= 1.5)")
    for engine, secs in pandas_s.items():
        print(f"c / a          = {secs / wall:.2f}   ({engine} engine; target >= 5); "
              f"c / (a - gate) = {secs / (wall - gate):.2f}")
    print(f"peak memory (a) = {peak / 1e9:.2f} GB   (target < 2 GB at 10 million rows)")
    if report.get("swap_total"):
        print(f"swapped out during (a): {report['swapped_bytes'] / 1e6:.1f} MB")
    else:
        print("swap: none configured, so (a) cannot have swapped")
    if args.check_spill:
        scan = report["scan"]
        print()
        print(f"spill check (OUTCOMES_MEMORY_LIMIT={args.memory_limit}, run-private TMPDIR):")
        print(f"  spill files seen: {len(scan.files)}; largest spill seen at once: {scan.peak_spill / 1e9:.2f} GB; "
              f"{scan.passes} passes read {scan.bytes_scanned / 1e9:.2f} GB"
              + ("; token cap reached, scan incomplete" if scan.capped else ""))
        print(f"  identifier-shaped tokens: {len(scan.nhs):,} ten-digit, {len(scan.dates):,} dates, "
              f"{len(scan.postcodes):,} postcode-like")
        hits = report["hits"]
        print("  identifiers from the extract found in spill files: "
              + ", ".join(f"{k} {v}" for k, v in hits.items())
              + ("   (none: OK)" if not any(hits.values()) else "   LEAK"))
        print("  canary (DuckDB spilling raw identifiers on purpose): scanner found "
              + ", ".join(f"{k} {v}" for k, v in report["canary"].items()))
        print(f"  left in TMPDIR after the run: {report['left_behind'] or 'nothing'}")
        if not scan.files:
            print("  note: DuckDB did not spill at this size and limit; lower --memory-limit to exercise spilling")


if __name__ == "__main__":
    main()
