"""Synthetic maternity bookings, shaped like a Maternity Services Data Set extract.

One row per pregnancy booking between the period start and the extract date.
Mothers: about 90% Trafford residents (LSOA and age drawn in proportion to
the female population by single year of age times an age-specific fertility
curve, so mostly aged 20-40), 8% from the rest of GM, 2% from outside GM or of
unknown address. Bookings fall on weekdays mostly, with a mild seasonal swing.
Booking is at 8-20 weeks' gestation (mostly 9-12) and the estimated due date
is the booking date plus (40 weeks - gestation at booking), so due dates run
to late 2024: months after the extract date are still gaining bookings.
About 5% of bookings are a second pregnancy of a mother booked earlier in the
period (same NHS number, date of birth and address). No planted effect.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .common import (
    N_DAYS,
    N_YEARS,
    START_DAY,
    address_columns,
    chunk_bounds,
    lsoa_values,
    nhs_number_strings,
    rng_for,
    sample_residents,
    synthetic_nhs_numbers,
    take_strings,
    weighted_index,
    write_csv_chunk,
)
from .reference import BAND_LOW, Reference

COLUMNS = (
    "booking_id",
    "nhs_number",
    "mother_date_of_birth",
    "postcode",
    "lsoa_code",
    "booking_date",
    "estimated_due_date",
    "previous_live_births",
)
RESIDENCE_SHARES = (0.90, 0.08, 0.02)
#: gestation at booking, weeks 8..20 (relative weights)
GESTATION_WEEKS = np.arange(8, 21)
GESTATION_WEIGHTS = np.array([5, 15, 22, 20, 15, 7, 4, 3, 3, 2, 2, 1, 1], dtype=float)
DOW_FACTOR = np.array([1.0, 1.05, 1.05, 1.05, 0.95, 0.12, 0.04])  # Mon..Sun
REPEAT_SHARE = 0.05
#: previous live births 0..5 by age group (<25, 25-34, 35+)
PARITY_WEIGHTS = np.array(
    [
        [0.62, 0.28, 0.08, 0.015, 0.004, 0.001],
        [0.45, 0.35, 0.13, 0.045, 0.015, 0.005],
        [0.30, 0.38, 0.19, 0.080, 0.035, 0.015],
    ]
)


def fertility(age: np.ndarray) -> np.ndarray:
    """Relative age-specific fertility (peak about 31; zero outside 15-49)."""
    age = np.asarray(age, dtype=float)
    return np.where((age >= 15) & (age <= 49), np.exp(-0.5 * ((age - 31.0) / 5.5) ** 2), 0.0)


def generate_maternity(
    out_path: Path, ref: Reference, *, bookings_per_year: int, seed: int, progress=None, task=None
) -> Path:
    n = int(bookings_per_year) * N_YEARS
    rng = rng_for(seed, "maternity", "mothers")

    traf_w = np.zeros_like(ref.lsoa_pop)
    traf_w[:, 1, :] = ref.lsoa_pop[:, 1, :] * fertility(np.arange(91))[None, :]
    band_f = fertility(BAND_LOW + 2)
    other_w = np.zeros_like(ref.other_la_pop)
    other_w[:, 1, :] = ref.other_la_pop[:, 1, :] * band_f
    eng_w = np.zeros_like(ref.england_pop)
    eng_w[1, :] = ref.england_pop[1, :] * band_f
    mothers = sample_residents(
        rng, ref, n, RESIDENCE_SHARES,
        trafford_cell_weights=traf_w, other_cell_weights=other_w, england_cell_weights=eng_w,
    )
    # a teenager drawn from the 15-19 band may come out under 15: keep bookings to ages 15+
    age = np.maximum(mothers.age.astype(np.int64), 15)

    # booking dates: weekdays mostly, mild seasonality
    days = np.arange(N_DAYS)
    absolute = START_DAY + days
    doy = (absolute.astype("datetime64[D]") - absolute.astype("datetime64[D]").astype("datetime64[Y]")).astype(int)
    w = DOW_FACTOR[(absolute + 3) % 7] * (1.0 + 0.05 * np.cos(2 * np.pi * (doy - 40) / 365.25))
    booking = START_DAY + np.repeat(days, rng.multinomial(n, w / w.sum())).astype(np.int64)
    # rows are in booking order; shuffle which mother gets which date so residence is unrelated to date
    order = rng.permutation(n)
    group, postcode, lsoa_idx = mothers.group[order], mothers.postcode[order], mothers.lsoa_text_idx[order]
    age = age[order]

    gest_days = GESTATION_WEEKS[weighted_index(rng, GESTATION_WEIGHTS, n)] * 7 + rng.integers(0, 7, size=n)
    due = booking + 280 - gest_days
    dob = booking - np.floor(age * 365.25).astype(np.int64) - rng.integers(0, 365, size=n)
    nhs = synthetic_nhs_numbers(rng, n)
    age_group = np.where(age < 25, 0, np.where(age < 35, 1, 2))
    cdf = np.cumsum(PARITY_WEIGHTS, axis=1)
    parity = (rng.random(n)[:, None] >= cdf[age_group]).sum(axis=1).clip(0, 5)

    # second pregnancies: copy the identity of a mother booked at least 300 days earlier
    eligible = np.searchsorted(booking, booking - 300, side="right")  # rows booked >= 300 days before
    is_repeat = (rng.random(n) < REPEAT_SHARE) & (eligible > 0)
    src = (rng.random(n) * eligible).astype(np.int64)
    is_repeat &= ~is_repeat[src]  # sources are first bookings
    rows = np.flatnonzero(is_repeat)
    rows = rows[np.unique(src[rows], return_index=True)[1]]  # one repeat per source
    s = src[rows]
    nhs[rows], dob[rows], group[rows] = nhs[s], dob[s], group[s]
    postcode[rows], lsoa_idx[rows] = postcode[s], lsoa_idx[s]
    parity[rows] = np.minimum(parity[s] + 1, 5)

    lsoa_text = lsoa_values(ref)
    for i0, i1 in chunk_bounds(n):
        crng = rng_for(seed, "maternity", "chunk", i0)
        sl = slice(i0, i1)
        pc_idx, ls_idx = address_columns(crng, ref, group[sl], postcode[sl], lsoa_idx[sl])
        ids = pc.binary_join_element_wise(
            "MB", pc.utf8_lpad(pc.cast(pa.array(np.arange(i0 + 1, i1 + 1)), pa.string()), 8, "0"), ""
        )
        table = pa.table(
            {
                "booking_id": ids,
                "nhs_number": nhs_number_strings(crng, nhs[sl]),
                "mother_date_of_birth": pc.cast(pa.array(dob[sl].astype(np.int32), type=pa.date32()), pa.string()),
                "postcode": take_strings(ref.postcode, pc_idx),
                "lsoa_code": take_strings(lsoa_text, ls_idx),
                "booking_date": pc.cast(pa.array(booking[sl].astype(np.int32), type=pa.date32()), pa.string()),
                "estimated_due_date": pc.cast(pa.array(due[sl].astype(np.int32), type=pa.date32()), pa.string()),
                "previous_live_births": pa.array(parity[sl].astype(np.int8)),
            }
        )
        write_csv_chunk(table, out_path, first=i0 == 0)
        if progress is not None:
            progress.advance(task, i1 - i0)
    return out_path
