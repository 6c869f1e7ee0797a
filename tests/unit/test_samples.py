"""Tests of the synthetic partner-extract generator (pipelines.samples)."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipelines.samples import (
    AE_COLUMNS,
    MATERNITY_COLUMNS,
    ReferenceDataMissing,
    alcohol_probability,
    generate_samples,
    nhs_check_digit,
    nhs_number_is_valid,
    read_codelist,
    resolve_reference_dir,
)
from pipelines.samples.common import synthetic_nhs_numbers
from pipelines.samples.planted import PLANTED_LOCALITY, PLANTED_REDUCTION, PLANTED_START

try:
    REF = resolve_reference_dir()
except ReferenceDataMissing as exc:  # pragma: no cover - depends on the machine
    pytestmark = pytest.mark.skip(reason=str(exc))
    REF = None

PERIOD_START = pd.Timestamp("2021-04-01")
PERIOD_END = pd.Timestamp("2024-04-01")  # exclusive
SMALL = dict(rows_per_year=5000, bookings_per_year=1000, incidents_per_year=3000, seed=7)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def reference():
    postcodes = pd.read_csv(REF / "geography/trafford_postcodes.csv", dtype=str)
    lookup = pd.read_csv(REF / "geography/lsoa_to_ward_best-fit_lookup.csv", dtype=str)
    return {
        "postcodes": postcodes,
        "locality": dict(zip(postcodes["postcode"], postcodes["locality"])),
        "trafford_lsoa": set(lookup.loc[lookup["lad22cd"] == "E08000009", "lsoa21cd"]),
        "gm_lsoa": set(lookup["lsoa21cd"]),
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return generate_samples(tmp_path_factory.mktemp("small"), **SMALL)


@pytest.fixture(scope="module")
def ae(small):
    df = _read(small["ae_attendances"])
    df["arrival"] = pd.to_datetime(df["arrival_datetime"], format="%Y-%m-%dT%H:%M:%S", errors="coerce")
    codes = read_codelist()
    df["alcohol"] = df["alcohol_drug_involvement_snomed"].isin(codes["involvement"]) | df[
        "primary_diagnosis_snomed"
    ].isin(codes["diagnosis"])
    df["in_period"] = df["arrival"].notna() & (df["arrival"] >= PERIOD_START) & (df["arrival"] < PERIOD_END)
    return df


# ------------------------------------------------------------------ NHS numbers


def test_mod11_known_examples():
    assert nhs_number_is_valid("9434765919")
    assert nhs_number_is_valid("943 476 5919")
    assert not nhs_number_is_valid("9434765918")
    assert not nhs_number_is_valid("943476591")
    assert not nhs_number_is_valid("")
    assert nhs_check_digit(np.array([943476591]))[0] == 9
    assert nhs_number_is_valid("4010232137")
    assert nhs_check_digit(np.array([401023213]))[0] == 7
    # a weighted sum divisible by 11 gives check digit 0; remainder 1 gives 10, i.e. no valid number
    digits = np.array([200000001, 100000000, 100000001])  # weighted sums 22, 10, 12
    assert list(nhs_check_digit(digits)) == [0, 1, 10]
    assert nhs_number_is_valid("2000000010") and not nhs_number_is_valid("1000000010")


def test_synthetic_nhs_numbers_valid_distinct_and_unissued():
    numbers = synthetic_nhs_numbers(np.random.default_rng(1), 20_000)
    assert len(np.unique(numbers)) == numbers.size
    assert ((numbers >= 9_000_000_000) & (numbers <= 9_999_999_999)).all()
    assert all(nhs_number_is_valid(str(n)) for n in numbers[:2000])


def test_nhs_number_quality_mix(ae):
    nhs = ae["nhs_number"]
    blank = (nhs == "").mean()
    spaced = nhs.str.contains(" ").mean()
    filled = nhs[nhs != ""]
    assert filled.str.fullmatch(r"\d{10}|\d{3} \d{3} \d{4}").all()
    invalid = 1 - filled.map(nhs_number_is_valid).mean()
    assert 0.015 <= blank <= 0.05
    assert 0.07 <= spaced <= 0.13
    assert 0.004 <= invalid <= 0.02


# ------------------------------------------------------------------ determinism


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    args = dict(rows_per_year=1500, bookings_per_year=300, incidents_per_year=600)
    a = generate_samples(tmp_path / "a", seed=11, **args)
    b = generate_samples(tmp_path / "b", seed=11, **args)
    c = generate_samples(tmp_path / "c", seed=12, **args)
    assert set(a) == {"ae_attendances", "maternity_bookings", "police_incidents"}
    for name in a:
        assert a[name].read_bytes() == b[name].read_bytes(), name
        assert a[name].read_bytes() != c[name].read_bytes(), name


def test_missing_reference_pack_is_a_clear_error(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-pack"
    with pytest.raises(ReferenceDataMissing) as info:
        generate_samples(tmp_path / "out", rows_per_year=100, reference_dir=missing)
    assert str(missing) in str(info.value) and "OUTCOMES_REFERENCE" in str(info.value)
    monkeypatch.setenv("OUTCOMES_REFERENCE", str(missing))
    with pytest.raises(ReferenceDataMissing, match="OUTCOMES_REFERENCE"):
        resolve_reference_dir()
    monkeypatch.setenv("OUTCOMES_REFERENCE", str(REF))
    assert resolve_reference_dir() == REF.resolve()


def test_samples_command_without_a_reference_pack_says_where_it_looked(tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    missing = tmp_path / "no-such-pack"
    monkeypatch.setenv("OUTCOMES_REFERENCE", str(missing))
    code = main(["samples", "--rows-per-year", "100", "--out", str(tmp_path / "out")])
    cap = capsys.readouterr()
    out = " ".join((cap.out + cap.err).split())     # the console wraps long lines
    assert code == 2
    assert "internal error" not in out
    assert "Reference pack not found" in out and "OUTCOMES_REFERENCE" in out and "no-such-pack" in out


# ------------------------------------------------------------------ A&E extract


def test_ae_columns_and_ids(small):
    header = small["ae_attendances"].read_text().split("\n", 1)[0]
    assert header.split(",") == list(AE_COLUMNS)
    df = _read(small["ae_attendances"])
    assert len(df) == 3 * SMALL["rows_per_year"]
    assert df["attendance_id"].is_unique
    assert df["attendance_id"].str.fullmatch(r"AE\d{10}").all()


def test_ae_residence_mix_and_real_postcodes(ae, reference):
    postcode, lsoa = ae["postcode"], ae["lsoa_code"]
    assert postcode[postcode != ""].isin(reference["locality"]).all()
    trafford = (postcode != "") | lsoa.isin(reference["trafford_lsoa"])
    other_gm = lsoa.isin(reference["gm_lsoa"] - reference["trafford_lsoa"])
    outside = lsoa.str.fullmatch(r"E01\d{6}") & ~lsoa.isin(reference["gm_lsoa"])
    assert 0.75 <= trafford.mean() <= 0.85
    assert 0.12 <= other_gm.mean() <= 0.18
    assert 0.01 <= outside.mean() <= 0.05
    assert (postcode[other_gm | outside] == "").all()
    # rows with a postcode: LSOA derived for about 70%, and then it is the postcode's LSOA
    with_pc = ae[postcode != ""]
    assert 0.65 <= (with_pc["lsoa_code"] != "").mean() <= 0.75
    pc_lsoa = dict(zip(reference["postcodes"]["postcode"], reference["postcodes"]["lsoa_code"]))
    derived = with_pc[with_pc["lsoa_code"] != ""]
    assert (derived["postcode"].map(pc_lsoa) == derived["lsoa_code"]).all()


def test_ae_alcohol_share_and_pattern(ae):
    ok = ae[ae["in_period"]]
    assert 0.02 <= ok["alcohol"].mean() <= 0.05
    hour = ok["arrival"].dt.hour
    assert ok.loc[(hour >= 22) | (hour < 4), "alcohol"].mean() > 2 * ok.loc[(hour >= 8) & (hour < 18), "alcohol"].mean()
    weekend = ok["arrival"].dt.day_of_week >= 5
    assert ok.loc[weekend, "alcohol"].mean() > ok.loc[~weekend, "alcohol"].mean()
    age = (ok["arrival"] - pd.to_datetime(ok["date_of_birth"])).dt.days / 365.25
    men = (ok["sex"] == "1") & (age >= 18) & (age < 65)
    assert ok.loc[men, "alcohol"].mean() > 2 * ok.loc[~men, "alcohol"].mean()
    # alcohol codes come from the code list; nothing else is recorded as involvement
    codes = read_codelist()
    involvement = ok["alcohol_drug_involvement_snomed"]
    assert involvement[involvement != ""].isin(codes["involvement"]).all()


def test_ae_seasonality(ae):
    arrival = ae.loc[ae["in_period"], "arrival"]
    daily = arrival.dt.normalize().value_counts()
    by_month = daily.groupby(daily.index.month).mean()
    assert by_month.loc[12] > by_month.mean() * 1.05
    weekend = daily.index.day_of_week >= 5
    assert daily[weekend].mean() > daily[~weekend].mean() * 1.05


def test_ae_age_profile_and_sex_codes(ae):
    ok = ae[ae["in_period"]]
    age = (ok["arrival"] - pd.to_datetime(ok["date_of_birth"])).dt.days / 365.25
    assert (age >= 0).all() and age.max() < 110
    bands = pd.cut(age, [0, 5, 18, 31, 45, 65, 80, 120], right=False).value_counts(normalize=True)
    assert bands.iloc[0] > 0.05 and bands.iloc[2] > 0.12 and bands.iloc[-1] > 0.06
    sex = ae["sex"].value_counts(normalize=True)
    assert sex["1"] > 0.4 and sex["2"] > 0.4
    assert sex.get("9", 0) + sex.get("X", 0) < 0.01


def test_ae_repeat_attenders_keep_identity(ae):
    nhs = ae["nhs_number"].str.replace(" ", "")
    valid = ae[(nhs != "") & nhs.map(nhs_number_is_valid)].assign(nhs=nhs)
    counts = valid["nhs"].value_counts()
    assert (counts > 1).sum() > 0.1 * len(counts)
    assert counts.max() >= 5
    repeat = valid[valid["nhs"].isin(counts.index[counts > 1])]
    assert (repeat.groupby("nhs")["date_of_birth"].nunique() == 1).all()
    sexes = repeat[repeat["sex"].isin(["1", "2", "9", "X"])]
    assert (sexes.groupby("nhs")["sex"].nunique() == 1).all()
    postcodes = repeat[repeat["postcode"] != ""]
    assert (postcodes.groupby("nhs")["postcode"].nunique() == 1).all()


def test_ae_dates_sorted_and_unusable_rows(ae, reference):
    n = len(ae)
    unparseable = ae["arrival"].isna()
    future = ae["arrival"] > pd.Timestamp("2024-03-31 23:59:59")
    assert 0 < unparseable.sum() <= 0.001 * n + 1
    assert 0 < future.sum() <= 0.0005 * n + 1
    assert (ae.loc[future, "arrival"].dt.year >= 2025).all()
    assert (ae.loc[~unparseable & ~future, "arrival"] >= PERIOD_START).all()
    assert ae.loc[ae["in_period"], "arrival"].is_monotonic_increasing
    bad_sex = ~ae["sex"].isin(["1", "2", "9", "X"])
    lsoa = ae["lsoa_code"]
    bad_lsoa = (lsoa != "") & ~lsoa.str.fullmatch(r"E01\d{6}")
    assert 0 < bad_sex.sum() <= 0.001 * n + 1
    assert 0 < bad_lsoa.sum() <= 0.0005 * n + 1
    assert (ae.loc[bad_lsoa, "postcode"] == "").all()
    assert (unparseable | future | bad_sex | bad_lsoa).mean() < 0.05
    # bad rows are scattered, not bunched at the start or end
    positions = np.flatnonzero(unparseable | future | bad_sex | bad_lsoa) / n
    assert positions.min() < 0.5 < positions.max()


def test_neighbourhood_rates_differ(ae):
    lsoa = ae.loc[ae["lsoa_code"].str.startswith("E01"), "lsoa_code"]
    counts = lsoa.value_counts()
    trafford = counts[counts.index.isin(set(ae.loc[ae["postcode"] != "", "lsoa_code"]))]
    assert trafford.max() > 2.5 * trafford.median()


# ------------------------------------------------------------------ planted effect


def test_planted_constants():
    assert PLANTED_LOCALITY == "North"
    assert PLANTED_START == date(2022, 10, 1)
    assert PLANTED_REDUCTION == pytest.approx(0.30)


def test_planted_effect_exact_in_expectation():
    rng = np.random.default_rng(0)
    n = 10_000
    kwargs = dict(
        age=rng.integers(0, 100, n),
        male=rng.random(n) < 0.5,
        hour=rng.integers(0, 24, n),
        dow=rng.integers(0, 7, n),
        month=rng.integers(1, 13, n),
        person_factor=rng.gamma(2.0, 0.5, n),
    )
    planted = rng.random(n) < 0.5
    p_cf, p = alcohol_probability(planted=planted, **kwargs)
    np.testing.assert_allclose(p[planted], (1 - PLANTED_REDUCTION) * p_cf[planted], rtol=1e-12)
    np.testing.assert_array_equal(p[~planted], p_cf[~planted])


def test_planted_effect_visible_in_data(tmp_path, reference):
    paths = generate_samples(tmp_path, rows_per_year=60_000, seed=2024, datasets=["ae_attendances"])
    df = _read(paths["ae_attendances"])
    arrival = pd.to_datetime(df["arrival_datetime"], format="%Y-%m-%dT%H:%M:%S", errors="coerce")
    codes = read_codelist()
    alcohol = df["alcohol_drug_involvement_snomed"].isin(codes["involvement"]) | df[
        "primary_diagnosis_snomed"
    ].isin(codes["diagnosis"])
    locality = df["postcode"].map(reference["locality"])
    ok = arrival.notna() & (arrival < PERIOD_END)
    after = arrival >= pd.Timestamp(PLANTED_START)
    ratio = {}
    for name in ("North", "Central", "South", "West"):
        m = ok & (locality == name)
        ratio[name] = alcohol[m & after].mean() / alcohol[m & ~after].mean()
    others = [ratio[k] for k in ratio if k != PLANTED_LOCALITY]
    assert ratio[PLANTED_LOCALITY] < 0.85
    assert ratio[PLANTED_LOCALITY] < min(others) - 0.1
    assert 0.55 < ratio[PLANTED_LOCALITY] / np.mean(others) < 0.85
    # total attendances in the locality are not thinned
    north = ok & (locality == PLANTED_LOCALITY)
    share_before = north[ok & ~after].mean()
    share_after = north[ok & after].mean()
    assert share_after == pytest.approx(share_before, rel=0.05)


# ------------------------------------------------------------------ maternity


def test_maternity_bookings(small, reference):
    header = small["maternity_bookings"].read_text().split("\n", 1)[0]
    assert header.split(",") == list(MATERNITY_COLUMNS)
    df = _read(small["maternity_bookings"])
    assert len(df) == 3 * SMALL["bookings_per_year"]
    assert df["booking_id"].is_unique
    booking = pd.to_datetime(df["booking_date"], format="%Y-%m-%d")
    due = pd.to_datetime(df["estimated_due_date"], format="%Y-%m-%d")
    dob = pd.to_datetime(df["mother_date_of_birth"], format="%Y-%m-%d")
    assert booking.min() >= PERIOD_START and booking.max() <= pd.Timestamp("2024-03-31")
    gestation_weeks = (280 - (due - booking).dt.days) / 7
    assert gestation_weeks.between(8, 21).all()
    assert gestation_weeks.between(9, 13).mean() > 0.6
    assert due.max() > pd.Timestamp("2024-09-01")
    age = (booking - dob).dt.days / 365.25
    assert age.between(20, 40).mean() > 0.8 and age.min() >= 15
    parity = df["previous_live_births"].astype(int)
    assert parity.between(0, 5).all() and parity.isin([0, 1, 2]).mean() > 0.8
    trafford = (df["postcode"] != "") | df["lsoa_code"].isin(reference["trafford_lsoa"])
    assert 0.85 <= trafford.mean() <= 0.95
    assert df.loc[df["postcode"] != "", "postcode"].isin(reference["locality"]).all()
    nhs = df["nhs_number"]
    assert 0.01 <= (nhs == "").mean() <= 0.06


# ------------------------------------------------------------------ police


def test_police_incidents(small, reference):
    table = pq.read_table(small["police_incidents"])
    assert table.column_names == ["incident_ref", "recorded_at", "lsoa_code", "alcohol_flag", "incident_category"]
    assert str(table.schema.field("recorded_at").type).startswith("timestamp")
    df = table.to_pandas()
    assert len(df) == 3 * SMALL["incidents_per_year"]
    assert df["incident_ref"].is_unique
    assert df["recorded_at"].min() >= PERIOD_START and df["recorded_at"].max() < PERIOD_END
    assert df["recorded_at"].is_monotonic_increasing
    assert 0.001 <= df["lsoa_code"].isna().mean() <= 0.015
    assert df["lsoa_code"].dropna().isin(reference["gm_lsoa"]).all()
    trafford = df["lsoa_code"].isin(reference["trafford_lsoa"]).mean()
    assert 0.6 <= trafford <= 0.8
    assert set(df["alcohol_flag"]) == {"Y", "N"}
    y = df["alcohol_flag"] == "Y"
    assert 0.15 <= y.mean() <= 0.25
    hour = df["recorded_at"].dt.hour
    assert y[(hour >= 22) | (hour < 4)].mean() > y[(hour >= 8) & (hour < 18)].mean()
    assert set(df["incident_category"]) <= {
        "Violence against the person", "Public order", "Criminal damage", "Anti-social behaviour", "Other",
    }


def test_no_copy_of_reference_files_in_repo():
    repo = Path(__file__).resolve().parents[2]
    names = {p.name for d in ("geography", "population") for p in (REF / d).iterdir() if p.suffix in {".csv", ".geojson"}}
    found = [p for p in (repo / "pipelines").rglob("*") if p.name in names]
    assert not found
