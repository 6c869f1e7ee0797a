"""The alcohol_ae publication computed with pandas and numpy alone: the like-for-like baseline.

    python bench/pandas_alcohol_ae.py [--rows N] [--engine pyarrow|c]

What it does: reads an A&E extract (``pandas.read_csv``) and the reference pack's CSV
files (pandas too), and produces the same twelve count tables that
``outcomes run alcohol_ae --primary-only`` publishes, cell for cell: the same
validation (rows rejected by the same reasons, in the same order of precedence),
residence (postcode -> LSOA through the pack's postcode lookup, else the extract's
LSOA code; well-formed codes outside the pack and rows with no location are
excluded), sex labels, age in complete years, the 19 ESP 2013 age bands, calendar
months and financial years, the alcohol definition from the versioned code list,
the three measures (alcohol attendances, all attendances, and distinct persons
with a valid Modulus 11 NHS Number, each counted once per period where their first
alcohol-related attendance of the period falls), every area of every level
(Greater Manchester, boroughs, Trafford localities, wards, MSOAs and LSOAs),
``All`` margins, complete cubes with zeros, the ``provisional`` flag, and the
nhs-digital primary rule (counts 1 to 7 suppressed, others rounded to the nearest
5, 0 shown). No DuckDB and no project code that aggregates: only the code list
loader is reused.

Why it exists: ``bench/pipeline_throughput.py`` compares the pipeline with "what an
analyst would write with pandas alone" (its (c)). Until the thirteenth session that was
one group-by (the DuckDB floor's work), not the pipeline's job; this module is the
like-for-like baseline: idiomatic, vectorised pandas doing the whole job, written as a
competent analyst would for a 1 GB file, not deliberately slow: no loops over rows,
categoricals for columns with few distinct values (so each distinct date of birth,
postcode or LSOA code is parsed or looked up once), and either pandas' default CSV
engine (``--engine c``) or the multi-threaded pyarrow one (the default here). It skips
only what does not change a published number: keyed pseudonyms (persons are told apart
by the normalised NHS Number itself), row numbers of rejected rows, provenance and
writing a DuckDB file.

``tests/pipelines/test_pandas_baseline.py`` checks that these tables equal the
pipeline's ``--primary-only`` publication exactly (same tables, rows, counts and
NULLs), and the rejected/excluded counts equal the run's.

``main`` generates (or reuses) the bench's synthetic extract of N rows
(``pipeline_throughput.extract``, cached in var/bench/) and prints the time taken,
the tables and cells published, and the peak memory of this process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipelines.definitions.alcohol_ae import CODELIST  # noqa: E402  (a path)
from pipelines.framework.codelists import load_code_list  # noqa: E402  (reads the code list file)
from pipelines.framework.reference import ReferencePack  # noqa: E402  (finds the pack)

PIPELINE = "alcohol_ae"
COLUMNS = ["attendance_id", "nhs_number", "date_of_birth", "sex", "postcode", "lsoa_code", "arrival_datetime",
           "primary_diagnosis_snomed", "alcohol_drug_involvement_snomed"]
SEX_LABELS = {"1": "Male", "2": "Female", "9": "Other or not known", "X": "Other or not known"}
SEXES = ["Female", "Male", "Other or not known"]
AGE_BANDS = [f"{lo}-{lo + 4}" for lo in range(0, 90, 5)] + ["90+"]  # ESP 2013
LSOA_PATTERN = r"[EW]01[0-9]{6}"
FEW_VALUES = {"date_of_birth", "sex", "postcode", "lsoa_code", "primary_diagnosis_snomed",
              "alcohol_drug_involvement_snomed"}  # read as categoricals
MAX_REJECT_FRACTION = 0.05
THRESHOLD, BASE = 7, 5  # nhs-digital: 1..7 suppressed, the rest to the nearest 5

MEASURES = ("alcohol_attendances", "all_attendances", "alcohol_persons")
#: grain -> (area levels, period kind, with sex and age band?, only inside the focus borough?)
GRAINS = {
    "la_month": (("la", "place"), "month", False, False),
    "la_year": (("la", "place"), "financial_year", True, False),
    "locality_ward_month": (("locality", "ward"), "month", False, True),
    "msoa_lsoa_year": (("msoa", "lsoa"), "financial_year", False, True),
}


@dataclass
class Summary:
    rows_read: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    persons_not_countable: int = 0


# ---------------------------------------------------------------- reference data

def geography(pack: ReferencePack) -> tuple[pd.Series, pd.DataFrame]:
    """(postcode key -> LSOA, area members: area_code, area_level, lsoa_code for every area)."""
    geo = pack.root / "geography"
    read = dict(dtype=str, keep_default_na=False, na_values=[""])
    stat = pd.read_csv(geo / "statistical_lookup.csv", usecols=["lsoa21cd", "msoa21cd", "lad22cd"], **read)
    stat = stat.drop_duplicates().rename(columns={"lsoa21cd": "lsoa_code", "msoa21cd": "msoa", "lad22cd": "la"})
    ward = pd.read_csv(geo / "lsoa_to_ward_best-fit_lookup.csv", usecols=["lsoa21cd", "wd22cd"], **read)
    ward = ward.rename(columns={"lsoa21cd": "lsoa_code", "wd22cd": "ward"})
    pcs = pd.read_csv(geo / "trafford_postcodes.csv", usecols=["postcode", "lsoa_code", "locality"], **read)
    # an LSOA's locality is the one most of its postcodes are in (ties: alphabetically first)
    loc = (pcs.dropna(subset=["locality"]).groupby(["lsoa_code", "locality"]).size().rename("n").reset_index()
           .sort_values(["lsoa_code", "n", "locality"], ascending=[True, False, True])
           .drop_duplicates("lsoa_code")[["lsoa_code", "locality"]])
    lsoas = stat.merge(ward, on="lsoa_code", how="left").merge(loc, on="lsoa_code", how="left")
    if lsoas["lsoa_code"].duplicated().any() or lsoas["ward"].isna().any():
        raise ValueError("reference pack: an LSOA with no ward, or with two")
    place = pack.place
    focus = lsoas[(lsoas["la"] == place.focus_la_code) & lsoas["locality"].notna()]
    members = pd.concat([
        pd.DataFrame({"area_code": lsoas["lsoa_code"], "area_level": "lsoa", "lsoa_code": lsoas["lsoa_code"]}),
        pd.DataFrame({"area_code": lsoas["msoa"], "area_level": "msoa", "lsoa_code": lsoas["lsoa_code"]}),
        pd.DataFrame({"area_code": lsoas["ward"], "area_level": "ward", "lsoa_code": lsoas["lsoa_code"]}),
        pd.DataFrame({"area_code": lsoas["la"], "area_level": "la", "lsoa_code": lsoas["lsoa_code"]}),
        pd.DataFrame({"area_code": place.place_code, "area_level": "place", "lsoa_code": lsoas["lsoa_code"]}),
        pd.DataFrame({"area_code": place.focus_la_code + "-LOC-" + focus["locality"].str.upper(),
                      "area_level": "locality", "lsoa_code": focus["lsoa_code"]}),
    ], ignore_index=True)
    keys = (pcs.dropna(subset=["lsoa_code"])
            .assign(key=lambda d: postcode_key(d["postcode"].fillna("")))
            .drop_duplicates(["key", "lsoa_code"]))
    if keys["key"].duplicated().any():
        raise ValueError("reference pack: a postcode in two LSOAs")
    return keys.set_index("key")["lsoa_code"], members


# ---------------------------------------------------------------- the extract

def read_extract(path: Path, engine: str = "pyarrow") -> pd.DataFrame:
    """The columns used, matched by name case-insensitively, trimmed, blanks as missing;
    columns with few distinct values as categoricals (each distinct value is then checked once)."""
    header = pd.read_csv(path, nrows=0).columns
    by_name: dict[str, str] = {}
    for name in header:
        by_name.setdefault(str(name).strip().lower(), name)
    missing = [c for c in COLUMNS if c not in by_name]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    df = pd.read_csv(path, engine=engine, dtype=str, usecols=[by_name[c] for c in COLUMNS],
                     keep_default_na=False, na_values=[""])
    df = df.rename(columns={by_name[c]: c for c in COLUMNS})[COLUMNS]
    for c in COLUMNS:
        if c in FEW_VALUES:
            df[c] = trimmed_categorical(df[c])
        elif c != "nhs_number":  # (its check removes every space anyway)
            s = df[c].str.strip()
            df[c] = s.where(s != "")
    return df


def trimmed_categorical(s: pd.Series) -> pd.Series:
    """``s`` trimmed, blanks as missing, as a categorical (each distinct value trimmed once)."""
    raw = s.astype("category")
    trimmed = raw.cat.categories.str.strip()
    values = trimmed[trimmed != ""].unique()
    codes = per_value(raw, lambda v: values.get_indexer(v.str.strip()), -1)
    return pd.Series(pd.Categorical.from_codes(codes, categories=values), index=s.index)


def per_value(s: pd.Series, func, missing) -> np.ndarray:
    """``func`` (vectorised) applied once to each distinct value of the categorical ``s`` and
    spread back over the rows, ``missing`` where ``s`` is missing (code -1: the appended last item)."""
    values = np.asarray(func(s.cat.categories))
    return np.append(values, np.array([missing], dtype=values.dtype))[s.cat.codes.to_numpy()]


def postcode_key(postcodes: pd.Index) -> pd.Index:
    return postcodes.str.replace(" ", "").str.replace("\t", "").str.upper()


def age_in_years(dob: pd.Series, at: pd.Series) -> pd.Series:
    """Complete years from ``dob`` to ``at`` (someone born on 29 February, or on the 31st, is a month
    older on the last day of a shorter month, as DuckDB's ``date_sub('year', ...)`` counts)."""
    months = 12 * (at.dt.year - dob.dt.year) + (at.dt.month - dob.dt.month)
    short = (at.dt.day < dob.dt.day) & (at.dt.day != at.dt.days_in_month)
    return (months - short) // 12


def nhs_number_valid(numbers: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(valid, the number as an integer) after removing spaces and hyphens: ten digits whose
    Modulus 11 check digit is right (a check of 10 never matches a digit)."""
    norm = numbers.fillna("").str.replace(r"[\s-]", "", regex=True)
    ten = norm.str.fullmatch("[0-9]{10}").to_numpy(dtype=bool, na_value=False)
    as_int = np.full(len(norm), -1, dtype=np.int64)
    as_int[ten] = norm[ten].astype("int64").to_numpy()
    digits = (as_int[:, None] // 10 ** np.arange(9, -1, -1)) % 10
    check = (11 - digits[:, :9] @ np.arange(10, 1, -1) % 11) % 11
    return ten & (check == digits[:, 9]), as_int


def stage(df: pd.DataFrame, postcode_lsoa: pd.Series, lsoa_index: pd.Index, codes,
          today: dt.date) -> tuple[pd.DataFrame, Summary]:
    """Check every row; return the accepted records with a place of residence in the pack, and
    the counts of rows rejected (by reason) and excluded."""
    summary = Summary(rows_read=len(df))
    ids = df["attendance_id"].dropna().sort_values(ignore_index=True)
    if (ids == ids.shift()).any():
        raise ValueError("attendance_id: values appear more than once")
    arrival = pd.to_datetime(df["arrival_datetime"], format="ISO8601", errors="coerce", cache=False)
    dob = pd.Series(per_value(df["date_of_birth"], lambda v: pd.to_datetime(v, format="%Y-%m-%d", errors="coerce"),
                              np.datetime64("NaT")), index=df.index)
    for name, parsed in (("date_of_birth", dob), ("arrival_datetime", arrival)):
        present = df[name].notna()
        if present.any() and parsed[present].isna().all():
            raise ValueError(f"{name}: no value could be read")
    event_date = arrival.dt.normalize()
    age = age_in_years(dob, arrival)
    sex = per_value(df["sex"], lambda v: pd.Index(SEXES).get_indexer(v.map(SEX_LABELS)), -1)
    lsoa_wellformed = per_value(df["lsoa_code"], lambda v: v.str.fullmatch(LSOA_PATTERN), False)
    floor = dt.date(today.year - 20, 1, 1)
    # the first reason that applies, in the pipeline's order
    reasons = {
        "missing attendance_id": df["attendance_id"].isna(),
        "missing date_of_birth": df["date_of_birth"].isna(),
        "unreadable date_of_birth": df["date_of_birth"].notna() & dob.isna(),
        "missing sex": df["sex"].isna(),
        "unknown sex code": df["sex"].notna() & (sex < 0),
        "malformed lsoa_code": df["lsoa_code"].notna() & ~lsoa_wellformed,
        "missing arrival_datetime": df["arrival_datetime"].isna(),
        "unreadable arrival_datetime": df["arrival_datetime"].notna() & arrival.isna(),
        "arrival date in the future": event_date > pd.Timestamp(today),
        "arrival before date of birth": event_date < dob,
        "unusable age (date of birth)": age.isna() | (age < 0) | (age > 125),
        f"event date before {floor.isoformat()} (more than 20 years ago)": event_date < pd.Timestamp(floor),
    }
    reason = np.select([np.asarray(m, dtype=bool) for m in reasons.values()], np.arange(1, len(reasons) + 1), 0)
    per_reason = np.bincount(reason, minlength=len(reasons) + 1)
    rejected = {label: int(n) for label, n in zip(reasons, per_reason[1:]) if n}
    summary.rejected = dict(sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0])))
    if sum(rejected.values()) > MAX_REJECT_FRACTION * len(df):
        raise ValueError(f"{sum(rejected.values())} of {len(df)} rows are unusable; nothing was published")

    # residence: the postcode's LSOA, else the extract's LSOA code if the pack has it
    from_postcode = per_value(df["postcode"], lambda v: lsoa_index.get_indexer(postcode_key(v).map(postcode_lsoa)), -1)
    given = per_value(df["lsoa_code"], lsoa_index.get_indexer, -1)
    residence = np.where(from_postcode >= 0, from_postcode, given)
    accepted, placed = reason == 0, residence >= 0
    summary.excluded = {label: int(n) for label, n in (
        ("no usable location (no postcode or LSOA found)", (accepted & ~placed & ~lsoa_wellformed).sum()),
        ("resident outside the reference area", (accepted & ~placed & lsoa_wellformed).sum())) if n}

    keep = accepted & placed
    alcohol = (df["alcohol_drug_involvement_snomed"].isin(codes.codes("involvement"))
               | df["primary_diagnosis_snomed"].isin(codes.codes("diagnosis"))).to_numpy()
    rec = pd.DataFrame({
        "lsoa_code": pd.Categorical.from_codes(residence[keep], categories=lsoa_index),
        "arrival": arrival.to_numpy()[keep],
        "sex": pd.Categorical.from_codes(sex[keep], categories=SEXES),
        "age": age.to_numpy()[keep].astype("int64"),
        "alcohol": alcohol[keep],
    })
    # persons: the NHS Number is checked on alcohol-related records only, as the pipeline does
    valid, number = nhs_number_valid(df["nhs_number"][keep & alcohol])
    summary.persons_not_countable = int((~valid).sum())
    person = np.full(len(rec), -1, dtype=np.int64)
    person[rec["alcohol"].to_numpy()] = np.where(valid, number, -1)
    rec["person"] = person
    return rec, summary


# ---------------------------------------------------------------- cubes

def fine_tables(rec: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """(measure, period kind) -> counts by LSOA, period start, sex and age band."""
    rec = rec.assign(
        month=rec["arrival"].dt.to_period("M"),
        age_band=pd.Categorical.from_codes(np.minimum(rec["age"].to_numpy() // 5, 18), categories=AGE_BANDS),
    )
    keys = ["lsoa_code", "sex", "age_band"]
    events = rec.groupby(["month", *keys], observed=True).agg(
        all_attendances=("alcohol", "size"), alcohol_attendances=("alcohol", "sum")).reset_index()
    out = {}
    for kind, freq in (("month", "M"), ("financial_year", "Y-MAR")):
        by = events.assign(period=events["month"].dt.asfreq(freq)) if kind != "month" else events.rename(
            columns={"month": "period"})
        by = by.groupby(["period", *keys], observed=True)[["all_attendances", "alcohol_attendances"]].sum()
        for measure in ("all_attendances", "alcohol_attendances"):
            out[(measure, kind)] = by[measure].rename("n").reset_index()
        # each person once per period, where their first alcohol-related record of the period is
        persons = rec[rec["alcohol"] & (rec["person"] >= 0)].assign(
            period=lambda d: d["month"].dt.asfreq(freq) if kind != "month" else d["month"])
        first = (persons.sort_values(["person", "arrival", "lsoa_code", "sex", "age"])
                 .drop_duplicates(["person", "period"]))
        out[("alcohol_persons", kind)] = first.groupby(["period", *keys], observed=True).size().rename("n").reset_index()
    for df in out.values():
        df["period"] = df["period"].dt.start_time
    return out


def table_areas(members: pd.DataFrame, levels: tuple[str, ...], focus_only: bool, focus: str) -> pd.DataFrame:
    chosen = members[members["area_level"].isin(levels)]
    if focus_only:
        inside = set(members.loc[members["area_code"] == focus, "lsoa_code"])
        whole = chosen["lsoa_code"].isin(inside).groupby(chosen["area_code"]).all()
        chosen = chosen[chosen["area_code"].isin(whole.index[whole])]
    return chosen


def cube(fine: pd.DataFrame, areas: pd.DataFrame, periods: pd.PeriodIndex, breakdowns: bool,
         first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """Every area x period (x sex x age band, with All) of the table, zeros included, true counts."""
    by = ["sex", "age_band"] if breakdowns else []
    by_lsoa = fine.groupby(["lsoa_code", "period", *by], observed=True)["n"].sum().reset_index()
    mapped = by_lsoa.astype({"lsoa_code": str}).merge(areas[["area_code", "lsoa_code"]], on="lsoa_code")
    g = mapped.groupby(["area_code", "period", *by], observed=True)["n"].sum().reset_index()
    parts = [g.astype({c: str for c in by})]
    if breakdowns:  # the All margins: over age bands, over sexes, over both
        for kept in (["sex"], ["age_band"], []):
            m = g.groupby(["area_code", "period", *kept], observed=True)["n"].sum().reset_index()
            parts.append(m.astype({c: str for c in kept}).assign(**{c: "All" for c in by if c not in kept}))
    counts = pd.concat(parts, ignore_index=True).set_index(["area_code", "period", *by])["n"]
    levels = areas.drop_duplicates("area_code").set_index("area_code")["area_level"]
    frame = [levels.index, periods.start_time]
    if breakdowns:
        frame += [SEXES + ["All"], AGE_BANDS + ["All"]]
    full = counts.reindex(pd.MultiIndex.from_product(frame, names=["area_code", "period", *by]), fill_value=0)
    out = full.rename("count").reset_index().rename(columns={"period": "period_start"})
    ends = dict(zip(periods.start_time, periods.end_time.normalize()))
    out.insert(1, "area_level", out["area_code"].map(levels))
    out.insert(3, "period_end", out["period_start"].map(ends))
    out.insert(4, "provisional", ~((out["period_start"] >= first) & (out["period_end"] <= last)))
    return out.sort_values(["area_level", "area_code", "period_start", *by]).reset_index(drop=True)


def primary(counts: pd.Series) -> pd.Series:
    """nhs-digital: 1..7 suppressed (NULL), every other count to the nearest 5 (0 stays 0;
    with whole numbers and an odd base there are no halves to break)."""
    rounded = (counts + BASE // 2) // BASE * BASE
    return rounded.astype("Int64").mask(counts.between(1, THRESHOLD))


def publish(path: Path, pack: ReferencePack, *, protect: bool = True, engine: str = "pyarrow",
            today: dt.date | None = None) -> tuple[dict[str, pd.DataFrame], Summary]:
    """The published tables (keyed by name) and the run's counts of rejected and excluded rows.
    ``protect=False`` gives the true counts (what the pipeline publishes under a policy that
    neither suppresses nor rounds)."""
    postcode_lsoa, members = geography(pack)
    lsoa_index = pd.Index(sorted(members.loc[members["area_level"] == "lsoa", "lsoa_code"]))
    rec, summary = stage(read_extract(Path(path), engine), postcode_lsoa, lsoa_index, load_code_list(CODELIST),
                         today or dt.date.today())
    if rec.empty:
        raise ValueError(f"{path}: no usable rows with a location in the reference area")
    first, last = rec["arrival"].min().normalize(), rec["arrival"].max().normalize()
    fine = fine_tables(rec)
    tables = {}
    for grain, (levels, kind, breakdowns, focus_only) in GRAINS.items():
        areas = table_areas(members, levels, focus_only, pack.place.focus_la_code)
        periods = pd.period_range(first, last, freq="M" if kind == "month" else "Y-MAR")
        for measure in MEASURES:
            t = cube(fine[(measure, kind)], areas, periods, breakdowns, first, last)
            if protect:
                t["count"] = primary(t["count"])
            tables[f"{PIPELINE}__{measure}__{grain}"] = t
    return tables, summary


def publish_tables(path: Path, pack: ReferencePack | None = None) -> dict[str, pd.DataFrame]:
    """What ``outcomes run alcohol_ae --primary-only --input PATH`` publishes, by table name:
    area_code, area_level, period_start, period_end, provisional, [sex, age_band], count
    (nullable Int64: NULL where suppressed)."""
    return publish(path, pack or ReferencePack.locate())[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--engine", choices=("pyarrow", "c"), default="pyarrow",
                    help="pandas.read_csv engine (default pyarrow: multi-threaded)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))
    from pipeline_throughput import extract

    path = extract(args.rows, "csv")
    pack = ReferencePack.locate()
    t0 = time.perf_counter()
    tables, summary = publish(path, pack, engine=args.engine)
    elapsed = time.perf_counter() - t0
    cells = sum(len(t) for t in tables.values())
    suppressed = sum(int(t["count"].isna().sum()) for t in tables.values())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"extract: {path} ({args.rows:,} rows; read {summary.rows_read:,}, rejected {sum(summary.rejected.values()):,}, "
          f"excluded {sum(summary.excluded.values()):,})")
    print(f"pandas alone ({args.engine} CSV engine): {elapsed:.2f} s  {summary.rows_read / elapsed:,.0f} rows/s; "
          f"{len(tables)} tables, {cells:,} cells, {suppressed:,} suppressed; peak RSS {peak / 1e9:.2f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
