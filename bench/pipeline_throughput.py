"""Pipeline throughput against baselines measured in the same run.

    python bench/pipeline_throughput.py [--rows N] [--format csv|parquet] [--repeat R]

Generates a synthetic A&E extract of N rows (default 10 million; cached in
var/bench/), then times, on the same file:
  (a) ``outcomes run alcohol_ae --input FILE`` (a real run, as a subprocess),
      with the time spent in the disclosure gate reported separately;
  (b) the floor: DuckDB alone reading the file and computing the same
      group-by counts (postcode -> LSOA lookup, month, sex, age, alcohol flag);
  (c) what an analyst would write with pandas alone (skipped above 10
      million rows).
Prints rows/s of each, the ratios (a - gate) / b and c / a, and the peak
memory (RSS, including children) of (a). Targets (2 cores): (a - gate)/b <=
1.5, c/a >= 5, peak memory of (a) under 2 GB at 10 million rows. Wall times
are never asserted in tests: machines are noisy, so only ratios within one
run are meaningful.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.definitions.alcohol_ae import CODELIST  # noqa: E402
from pipelines.framework.codelists import load_code_list  # noqa: E402
from pipelines.framework.reference import ReferencePack  # noqa: E402


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
                procs = [self.proc, *self.proc.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass
            time.sleep(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.peak


def run_pipeline(path: Path) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pipelines.cli", "run", "alcohol_ae", "--input", str(path),
               "--db", str(Path(tmp) / "outcomes.duckdb"), "--demo"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, COLUMNS="200"))
        meter = PeakRSS(proc.pid)
        out, _ = proc.communicate()
        wall = time.perf_counter() - t0
        peak = meter.stop()
    if proc.returncode != 0:
        print(out)
        raise SystemExit(f"outcomes run failed with status {proc.returncode}")
    m = re.search(r"of which ([0-9.]+)s in the disclosure gate", out)
    gate = float(m.group(1)) if m else 0.0
    return wall, gate, peak


def floor_duckdb(path: Path, pack: ReferencePack) -> float:
    codes = load_code_list(CODELIST)
    inv = ", ".join(f"'{c}'" for c in codes.codes("involvement"))
    diag = ", ".join(f"'{c}'" for c in codes.codes("diagnosis"))
    reader = f"read_parquet('{path}')" if path.suffix == ".parquet" else f"read_csv('{path}', all_varchar=true)"
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    t0 = time.perf_counter()
    con.execute(
        f"CREATE TABLE pcs AS SELECT upper(replace(postcode, ' ', '')) AS k, any_value(lsoa_code) AS lsoa "
        f"FROM read_csv('{pack.file('geography/trafford_postcodes.csv')}', all_varchar=true) GROUP BY 1"
    )
    con.execute(
        f"""
        SELECT coalesce(p.lsoa, r.lsoa_code) AS lsoa, date_trunc('month', CAST(r.arrival_datetime AS TIMESTAMP)) AS month,
               r.sex, date_diff('year', CAST(r.date_of_birth AS DATE), CAST(r.arrival_datetime AS TIMESTAMP)) AS age,
               count(*) AS attendances,
               count(*) FILTER (WHERE r.alcohol_drug_involvement_snomed IN ({inv}) OR r.primary_diagnosis_snomed IN ({diag})) AS alcohol
        FROM (SELECT * FROM {reader} WHERE TRY_CAST(arrival_datetime AS TIMESTAMP) IS NOT NULL
                                      AND TRY_CAST(date_of_birth AS DATE) IS NOT NULL) r
        LEFT JOIN pcs p ON p.k = upper(replace(r.postcode, ' ', ''))
        GROUP BY ALL
        """
    ).fetchall()
    elapsed = time.perf_counter() - t0
    con.close()
    return elapsed


def pandas_only(path: Path, pack: ReferencePack) -> float:
    import pandas as pd

    codes = load_code_list(CODELIST)
    t0 = time.perf_counter()
    df = pd.read_csv(path, dtype=str, keep_default_na=False) if path.suffix == ".csv" else pd.read_parquet(path)
    pcs = pd.read_csv(pack.file("geography/trafford_postcodes.csv"), dtype=str, usecols=["postcode", "lsoa_code"])
    pcs["k"] = pcs["postcode"].str.replace(" ", "").str.upper()
    df["k"] = df["postcode"].str.replace(" ", "").str.upper()
    df = df.merge(pcs[["k", "lsoa_code"]].rename(columns={"lsoa_code": "lsoa_pc"}), on="k", how="left")
    df["lsoa"] = df["lsoa_pc"].fillna(df["lsoa_code"])
    arrival = pd.to_datetime(df["arrival_datetime"], errors="coerce", format="ISO8601")
    dob = pd.to_datetime(df["date_of_birth"], errors="coerce", format="ISO8601")
    df = df[arrival.notna() & dob.notna()]
    arrival, dob = arrival[df.index], dob[df.index]
    df["month"] = arrival.dt.to_period("M")
    df["age"] = arrival.dt.year - dob.dt.year
    df["alcohol"] = df["alcohol_drug_involvement_snomed"].isin(codes.codes("involvement")) | \
        df["primary_diagnosis_snomed"].isin(codes.codes("diagnosis"))
    df.groupby(["lsoa", "month", "sex", "age"]).agg(attendances=("alcohol", "size"), alcohol=("alcohol", "sum"))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--format", choices=("csv", "parquet"), default="csv")
    ap.add_argument("--skip-pandas", action="store_true")
    args = ap.parse_args()
    pack = ReferencePack.locate()
    path = extract(args.rows, args.format)
    size = path.stat().st_size
    print(f"extract: {path} ({size / 1e9:.2f} GB, {args.rows:,} rows), {os.cpu_count()} cores")
    floor = floor_duckdb(path, pack)  # also warms the page cache for everyone
    wall, gate, peak = run_pipeline(path)
    floor = min(floor, floor_duckdb(path, pack))
    pandas_s = None
    if not args.skip_pandas and args.rows <= 10_000_000:
        pandas_s = pandas_only(path, pack)
    n = args.rows
    print()
    print(f"(a) outcomes run alcohol_ae : {wall:8.2f} s  {n / wall:12,.0f} rows/s  (gate {gate:.2f} s; "
          f"without gate {wall - gate:.2f} s = {n / (wall - gate):,.0f} rows/s)")
    print(f"(b) DuckDB floor            : {floor:8.2f} s  {n / floor:12,.0f} rows/s")
    if pandas_s is not None:
        print(f"(c) pandas alone            : {pandas_s:8.2f} s  {n / pandas_s:12,.0f} rows/s")
    print()
    print(f"(a - gate) / b = {(wall - gate) / floor:.2f}   (target <= 1.5)")
    if pandas_s is not None:
        print(f"c / a          = {pandas_s / wall:.2f}   (target >= 5)")
    print(f"peak memory (a) = {peak / 1e9:.2f} GB   (target < 2 GB at 10 million rows)")


if __name__ == "__main__":
    main()
