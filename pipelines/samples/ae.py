"""Synthetic A&E attendances, shaped like an Emergency Care Data Set extract.

How a row comes about (all vectorised):

1. A pool of people is drawn: about 80% of the weight on Trafford residents
   (LSOA, sex and single year of age drawn in proportion to the ONS mid-2022
   LSOA populations; a real postcode drawn uniformly within the LSOA), 15.5%
   on residents of the other nine GM boroughs (borough weighted by closeness
   to the trust, LSOA uniform within borough) and 4.5% on people from outside
   GM or of unknown address. Each person's attendance propensity is
   (age-specific A&E rate) x (a fixed per-LSOA multiplier, lognormal, seeded)
   x (a gamma "frailty" so a few people attend often).
2. Daily attendance counts follow weekday, month (December high), a mild
   upward trend and some day-to-day noise; arrival times follow the usual
   A&E hour-of-day curve. Each attendance is given a person drawn by
   propensity, so people re-attend and keep their NHS number, date of birth,
   sex and address.
3. Each attendance is alcohol-related with probability ``alcohol_probability``
   (higher for men 18-64, at night, at weekends, in December, for frequent
   attenders and in high-rate neighbourhoods), thinned by the planted effect
   (see ``planted.py``). Alcohol-related rows carry an involvement code and/or
   an alcohol-specific primary diagnosis from the code list file.
4. A few rows are made individually unusable (bad or future arrival time,
   unknown sex code, malformed LSOA code) so rejection reporting has work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import codes as sn
from .common import (
    N_DAYS,
    N_YEARS,
    OTHER_GM,
    OUTSIDE,
    START_DAY,
    TRAFFORD,
    address_columns,
    chunk_bounds,
    lsoa_multiplier,
    lsoa_values,
    nhs_number_strings,
    read_codelist,
    replace_at,
    rng_for,
    sample_residents,
    synthetic_nhs_numbers,
    take_strings,
    weighted_index,
    write_csv_chunk,
)
from .planted import PLANTED_LOCALITY, PLANTED_RATE_RATIO, PLANTED_START
from .reference import Reference

COLUMNS = (
    "attendance_id",
    "nhs_number",
    "date_of_birth",
    "sex",
    "postcode",
    "lsoa_code",
    "arrival_datetime",
    "chief_complaint_snomed",
    "primary_diagnosis_snomed",
    "alcohol_drug_involvement_snomed",
    "discharge_destination_snomed",
)

#: share of attendance weight: Trafford, rest of GM, outside GM / unknown
RESIDENCE_SHARES = (0.80, 0.155, 0.045)
#: pull of each other GM borough on the trust (share of the other-GM attendances)
LA_ATTRACTION = {
    "E08000001": 0.04,  # Bolton
    "E08000002": 0.03,  # Bury
    "E08000003": 0.40,  # Manchester
    "E08000004": 0.03,  # Oldham
    "E08000005": 0.03,  # Rochdale
    "E08000006": 0.22,  # Salford
    "E08000007": 0.12,  # Stockport
    "E08000008": 0.05,  # Tameside
    "E08000010": 0.08,  # Wigan
}

# ECDS stated gender codes; the last two are invalid (for the bad rows)
SEX_VALUES = np.array(["1", "2", "9", "X", "3", "U"])
BAD_DATETIMES = np.array(["31/13/2022 25:00", "not recorded", "2022-02-30T10:15:00", "00/00/0000 00:00"])
BAD_LSOAS = np.array(["E01XXXXXX", "Trafford 012A", "E0100611"])
# shares of rows made unusable
BAD_DATETIME_SHARE = 0.0005
FUTURE_SHARE = 0.0002
BAD_SEX_SHARE = 0.0005
BAD_LSOA_SHARE = 0.0002

#: A&E attendances per person-year by single year of age 0..104
_AGE_RATE_KNOTS = [
    (0, 0, 0.95), (1, 4, 0.55), (5, 14, 0.24), (15, 17, 0.33), (18, 30, 0.42), (31, 44, 0.30),
    (45, 64, 0.28), (65, 74, 0.33), (75, 79, 0.42), (80, 84, 0.60), (85, 89, 0.78), (90, 104, 0.95),
]
AGE_RATE = np.zeros(105)
for _lo, _hi, _r in _AGE_RATE_KNOTS:
    AGE_RATE[_lo : _hi + 1] = _r

# day-of-week (Mon..Sun) and month (Jan..Dec) factors for attendance volume
DOW_FACTOR = np.array([1.00, 0.95, 0.94, 0.95, 0.98, 1.09, 1.09])
MONTH_FACTOR = np.array([1.00, 0.97, 0.99, 0.98, 1.01, 1.02, 1.04, 1.00, 0.99, 1.00, 1.02, 1.13])
HOUR_WEIGHTS = np.array(
    [2.2, 1.8, 1.5, 1.2, 1.0, 1.0, 1.3, 2.0, 3.3, 4.6, 5.4, 5.6,
     5.5, 5.4, 5.3, 5.2, 5.2, 5.2, 5.1, 4.9, 4.5, 4.0, 3.4, 2.8]
)

# alcohol model: baseline probability and multipliers
ALCOHOL_BASE = 0.0196
ALCOHOL_HOUR = np.array(
    [2.6, 2.6, 2.6, 2.4, 1.6, 1.3, 1.0, 0.5, 0.45, 0.45, 0.45, 0.45,
     0.6, 0.6, 0.6, 0.6, 0.6, 0.7, 1.1, 1.2, 1.3, 1.7, 2.0, 2.3]
)
ALCOHOL_DOW = np.array([0.85, 0.8, 0.8, 0.85, 1.1, 1.6, 1.4])
ALCOHOL_MONTH = np.array([0.9, 0.95, 1.0, 1.0, 1.0, 1.0, 1.05, 1.0, 0.95, 1.0, 1.05, 1.45])
ALCOHOL_CAP = 0.9
#: among alcohol-related rows: both codes / involvement code only / diagnosis only
ALCOHOL_CODING = np.array([0.50, 0.35, 0.15])

PLANTED_START_DAY = int((np.datetime64(PLANTED_START, "D") - np.datetime64("1970-01-01", "D")).astype(int))


def alcohol_age_sex_factor(age: np.ndarray, male: np.ndarray) -> np.ndarray:
    """Relative chance an attendance is alcohol-related, by age and sex (men 18-64 highest)."""
    age = np.asarray(age)
    male = np.asarray(male, dtype=bool)
    edges = np.array([0, 12, 16, 18, 25, 45, 65, 80, 200])
    men = np.array([0.01, 0.3, 0.9, 3.0, 2.8, 2.4, 0.8, 0.25])
    women = np.array([0.01, 0.3, 0.9, 2.0, 1.3, 1.0, 0.35, 0.12])
    band = np.clip(np.searchsorted(edges, age, side="right") - 1, 0, len(men) - 1)
    return np.where(male, men[band], women[band])


def alcohol_probability(
    *,
    age: np.ndarray,
    male: np.ndarray,
    hour: np.ndarray,
    dow: np.ndarray,
    month: np.ndarray,
    person_factor: np.ndarray,
    planted: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(counterfactual, actual) probability that an attendance is alcohol-related.

    ``dow`` is 0 = Monday; ``month`` is 1..12; ``planted`` marks attendances by
    residents of the planted locality on or after the planted date. The actual
    probability is exactly ``PLANTED_RATE_RATIO`` times the counterfactual
    where ``planted``, and equal to it elsewhere.
    """
    p_cf = (
        ALCOHOL_BASE
        * alcohol_age_sex_factor(age, male)
        * ALCOHOL_HOUR[hour]
        * ALCOHOL_DOW[dow]
        * ALCOHOL_MONTH[np.asarray(month) - 1]
        * person_factor
    )
    p_cf = np.minimum(p_cf, ALCOHOL_CAP)
    return p_cf, np.where(planted, p_cf * PLANTED_RATE_RATIO, p_cf)


def day_weights(seed: int) -> np.ndarray:
    """Expected relative attendance volume of each day of the period."""
    days = np.arange(N_DAYS)
    absolute = START_DAY + days
    dates = absolute.astype("datetime64[D]")
    dow = (absolute + 3) % 7  # 1970-01-01 was a Thursday
    month = dates.astype("datetime64[M]").astype(int) % 12
    trend = 1.0 + 0.02 * days / 365.25
    noise = rng_for(seed, "ae", "day-noise").gamma(400.0, 1 / 400.0, size=N_DAYS)
    return DOW_FACTOR[dow] * MONTH_FACTOR[month] * trend * noise


def _pick(rng: np.random.Generator, weights: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """For each row, an index drawn from the row of ``weights`` selected by ``groups``."""
    cdf = np.cumsum(weights, axis=1)
    cdf = cdf / cdf[:, -1:]
    u = rng.random(groups.size)
    out = np.empty(groups.size, dtype=np.int64)
    for g in range(weights.shape[0]):  # a handful of groups, not rows
        rows = groups == g
        out[rows] = np.searchsorted(cdf[g], u[rows], side="right")
    return np.minimum(out, weights.shape[1] - 1)


def _unique_positions(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    if k <= 0 or n <= 0:
        return np.empty(0, dtype=np.int64)
    k = min(k, n)
    cand = rng.integers(0, n, size=k * 2 + 16)
    _, first = np.unique(cand, return_index=True)
    out = cand[np.sort(first)][:k]
    if out.size < k:  # tiny n: fall back to a permutation
        out = rng.permutation(n)[:k]
    return out


def generate_ae(
    out_path: Path, ref: Reference, *, rows_per_year: int, seed: int, progress=None, task=None
) -> Path:
    codelist = read_codelist()
    inv_codes, alc_dx_codes = codelist["involvement"], codelist["diagnosis"]
    n_rows = int(rows_per_year) * N_YEARS

    # ---- 1. the pool of people -------------------------------------------
    rng = rng_for(seed, "ae", "persons")
    n_people = int(2.5 * rows_per_year) + 2000
    mult = lsoa_multiplier(seed, ref)
    la_w = np.array([LA_ATTRACTION.get(la, 0.02) for la in ref.other_la])
    other_w = ref.other_la_pop / ref.other_la_pop.sum(axis=(1, 2), keepdims=True) * la_w[:, None, None]
    people = sample_residents(
        rng, ref, n_people, (0.78, 0.16, 0.06),
        trafford_cell_weights=ref.lsoa_pop, other_cell_weights=other_w, england_cell_weights=ref.england_pop,
    )
    traf = people.group == TRAFFORD
    # attendance propensity: gamma spread, plus a small group of frequent attenders
    frequent = rng.random(n_people) < 0.015
    frailty = rng.gamma(1.3, 1 / 1.3, size=n_people) * np.where(frequent, 7.0, 1.0)
    area = np.where(traf, mult[np.maximum(people.trafford_lsoa, 0)], 1.0)
    weight = AGE_RATE[np.minimum(people.age, 104)] * np.where(people.sex == 0, 1.03, 1.0) * frailty * area
    for g, share in zip((TRAFFORD, OTHER_GM, OUTSIDE), RESIDENCE_SHARES):
        m = people.group == g
        weight[m] *= share / weight[m].sum()
    # frequent attenders and people in high-rate neighbourhoods more often attend because of alcohol
    alcohol_person = (np.where(frequent, 3.0, 1.0) * np.where(traf, area**0.8, 1.0)).astype(np.float32)
    del frailty, area, frequent
    sex_idx = people.sex.astype(np.int8)  # "1" male, "2" female
    u = rng.random(n_people)
    sex_idx[u < 0.004] = 3  # "X" not known
    sex_idx[u < 0.001] = 2  # "9" indeterminate
    del u
    nhs = synthetic_nhs_numbers(rng, n_people)
    planted_person = traf & (ref.postcode_locality[np.maximum(people.postcode, 0)] == PLANTED_LOCALITY)

    # ---- 2. arrival times and who arrives ----------------------------------
    rng = rng_for(seed, "ae", "arrivals")
    dw = day_weights(seed)
    per_day = rng.multinomial(n_rows, dw / dw.sum())
    day = np.repeat(np.arange(N_DAYS, dtype=np.int32), per_day)
    minute = weighted_index(rng, HOUR_WEIGHTS, n_rows) * 60 + rng.integers(0, 60, size=n_rows)
    t = np.sort(day * 1440 + minute.astype(np.int32))  # minutes since the period start
    person = weighted_index(rng, weight, n_rows).astype(np.int32)
    del day, minute
    # date of birth: the drawn age holds at the person's first attendance
    seen, first = np.unique(person, return_index=True)
    first_day = np.zeros(n_people, dtype=np.int64)
    first_day[seen] = START_DAY + t[first] // 1440
    dob = (first_day - np.floor(people.age * 365.25).astype(np.int64) - rng.integers(0, 365, size=n_people)).astype(
        np.int32
    )
    del seen, first, first_day, weight

    # unusable rows, at random positions
    rng = rng_for(seed, "ae", "bad-rows")
    k = [round(n_rows * s) for s in (BAD_DATETIME_SHARE, FUTURE_SHARE, BAD_SEX_SHARE, BAD_LSOA_SHARE)]
    pos = _unique_positions(rng, n_rows, sum(k))
    cuts = np.cumsum(k)[:-1]
    bad_dt, future, bad_sex, bad_lsoa = np.split(pos, cuts)

    lsoa_text = lsoa_values(ref)
    diag_values = np.concatenate([sn.codes(sn.DIAGNOSES), alc_dx_codes])
    alc_dx_w = 0.6 ** np.arange(len(alc_dx_codes))
    inv_w = 0.75 ** np.arange(len(inv_codes))
    complaint_values = sn.codes(sn.COMPLAINTS)
    discharge_values = sn.codes(sn.DISCHARGES)

    # ---- 3. rows, chunk by chunk -------------------------------------------
    for i0, i1 in chunk_bounds(n_rows):
        rng = rng_for(seed, "ae", "chunk", i0)
        n = i1 - i0
        p = person[i0:i1]
        tt = t[i0:i1].astype(np.int64)
        day_abs = START_DAY + tt // 1440
        hour = (tt % 1440) // 60
        dow = (day_abs + 3) % 7
        month = day_abs.astype("datetime64[D]").astype("datetime64[M]").astype(int) % 12 + 1
        age = np.floor((day_abs - dob[p]) / 365.25).astype(np.int64)
        male = people.sex[p] == 0
        planted = planted_person[p] & (day_abs >= PLANTED_START_DAY)
        _, p_alc = alcohol_probability(
            age=age, male=male, hour=hour, dow=dow, month=month,
            person_factor=alcohol_person[p], planted=planted,
        )
        alcohol = rng.random(n) < p_alc
        coding = weighted_index(rng, ALCOHOL_CODING, n)
        has_inv = alcohol & (coding <= 1)
        has_alc_dx = alcohol & (coding != 1)

        age_group = np.where(age < 16, 0, np.where(age < 65, 1, 2))
        complaint = _pick(rng, sn.COMPLAINT_WEIGHTS, age_group)
        complaint = np.where(alcohol, weighted_index(rng, sn.ALCOHOL_COMPLAINT_WEIGHTS, n), complaint)
        diagnosis = _pick(rng, sn.DIAGNOSIS_GIVEN_COMPLAINT, complaint)
        injury_dx = sn.ALCOHOL_INJURY_DIAGNOSES[weighted_index(rng, sn.ALCOHOL_INJURY_WEIGHTS, n)]
        alc_dx = len(sn.DIAGNOSES) + weighted_index(rng, alc_dx_w, n)
        diagnosis = np.where(has_alc_dx, alc_dx, np.where(alcohol, injury_dx, diagnosis))
        involvement = np.where(has_inv, weighted_index(rng, inv_w, n), -1)
        discharge = np.where(
            alcohol, weighted_index(rng, sn.ALCOHOL_DISCHARGE_WEIGHTS, n), _pick(rng, sn.DISCHARGE_WEIGHTS, age_group)
        )

        group = people.group[p]
        pc_idx, ls_idx = address_columns(rng, ref, group, people.postcode[p], people.lsoa_text_idx[p])
        sex = sex_idx[p].copy()
        seconds = (START_DAY * 1440 + tt) * 60
        arrival = pc.utf8_replace_slice(  # "2022-12-03 23:41:00" -> "2022-12-03T23:41:00"
            pc.cast(pa.array(seconds, type=pa.timestamp("s")), pa.string()), start=10, stop=11, replacement="T"
        )

        # unusable rows falling in this chunk
        def local(positions: np.ndarray) -> np.ndarray:
            return positions[(positions >= i0) & (positions < i1)] - i0

        rows_dt, rows_future, rows_sex, rows_lsoa = local(bad_dt), local(future), local(bad_sex), local(bad_lsoa)
        fut = (np.datetime64("2027-01-01T00:00", "m")
               + rng.integers(0, 365 * 1440, rows_future.size).astype("timedelta64[m]"))
        arrival = replace_at(
            arrival,
            np.concatenate([rows_dt, rows_future]),
            np.concatenate([BAD_DATETIMES[rng.integers(0, len(BAD_DATETIMES), rows_dt.size)],
                            np.datetime_as_string(fut, unit="s")]),
        )
        sex[rows_sex] = rng.integers(4, 6, rows_sex.size)
        lsoa_col = replace_at(
            take_strings(lsoa_text, ls_idx), rows_lsoa, BAD_LSOAS[rng.integers(0, len(BAD_LSOAS), rows_lsoa.size)]
        )
        pc_idx[rows_lsoa] = -1

        ids = pc.binary_join_element_wise(
            "AE", pc.utf8_lpad(pc.cast(pa.array(np.arange(i0 + 1, i1 + 1)), pa.string()), 10, "0"), ""
        )
        table = pa.table(
            {
                "attendance_id": ids,
                "nhs_number": nhs_number_strings(rng, nhs[p]),
                "date_of_birth": pc.cast(pa.array(dob[p].astype(np.int32), type=pa.date32()), pa.string()),
                "sex": take_strings(SEX_VALUES, sex),
                "postcode": take_strings(ref.postcode, pc_idx),
                "lsoa_code": lsoa_col,
                "arrival_datetime": arrival,
                "chief_complaint_snomed": take_strings(complaint_values, complaint),
                "primary_diagnosis_snomed": take_strings(diag_values, diagnosis),
                "alcohol_drug_involvement_snomed": take_strings(inv_codes, involvement),
                "discharge_destination_snomed": take_strings(discharge_values, discharge),
            }
        )
        write_csv_chunk(table, out_path, first=i0 == 0)
        if progress is not None:
            progress.advance(task, n)
    return out_path
