"""Synthetic police-recorded incidents (a third partner; no personal identifiers).

About 70% of incidents are in Trafford's LSOAs (in proportion to population
times the same per-LSOA multiplier the A&E extract uses, raised to 1.3, so the
same neighbourhoods stand out), the rest spread thinly and evenly over the
other GM LSOAs. Incidents are commoner in the evening and at night, at
weekends and in December; the alcohol flag (about 20% "Y") even more so.
Alcohol-flagged incidents lean to violence and public order. No planted
effect: the police data are a control for the A&E one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .common import N_DAYS, N_YEARS, START_DAY, chunk_bounds, lsoa_multiplier, rng_for, take_strings, weighted_index
from .reference import Reference

CATEGORIES = np.array(
    ["Violence against the person", "Public order", "Criminal damage", "Anti-social behaviour", "Other"]
)
CATEGORY_WEIGHTS = np.array(
    [
        [25, 12, 15, 28, 20],  # alcohol_flag N
        [42, 25, 10, 18, 5],  # alcohol_flag Y
    ],
    dtype=float,
)
TRAFFORD_SHARE = 0.70
BLANK_LSOA_SHARE = 0.005
DOW_FACTOR = np.array([0.92, 0.90, 0.92, 0.95, 1.08, 1.25, 1.10])
MONTH_FACTOR = np.array([0.95, 0.92, 0.97, 0.98, 1.02, 1.05, 1.08, 1.06, 1.0, 1.0, 0.98, 1.15])
HOUR_WEIGHTS = np.array(
    [4.5, 4.0, 3.5, 2.8, 2.0, 1.4, 1.2, 1.5, 2.2, 2.8, 3.2, 3.5,
     3.8, 4.0, 4.2, 4.6, 5.0, 5.4, 5.6, 5.8, 5.8, 5.7, 5.4, 5.0]
)
ALCOHOL_BASE = 0.149
ALCOHOL_HOUR = np.array(
    [2.4, 2.5, 2.5, 2.2, 1.6, 1.0, 0.5, 0.35, 0.3, 0.3, 0.3, 0.35,
     0.45, 0.5, 0.55, 0.6, 0.7, 0.85, 1.0, 1.25, 1.5, 1.8, 2.0, 2.2]
)
ALCOHOL_DOW = np.array([0.8, 0.75, 0.8, 0.9, 1.15, 1.5, 1.3])
ALCOHOL_MONTH = np.array([0.9, 0.9, 0.95, 0.95, 1.0, 1.05, 1.05, 1.05, 0.95, 1.0, 1.0, 1.35])

SCHEMA = pa.schema(
    [
        ("incident_ref", pa.string()),
        ("recorded_at", pa.timestamp("s")),
        ("lsoa_code", pa.string()),
        ("alcohol_flag", pa.string()),
        ("incident_category", pa.string()),
    ]
)


def generate_police(
    out_path: Path, ref: Reference, *, incidents_per_year: int, seed: int, progress=None, task=None
) -> Path:
    n = int(incidents_per_year) * N_YEARS
    rng = rng_for(seed, "police", "incidents")
    days = np.arange(N_DAYS)
    absolute = START_DAY + days
    month = absolute.astype("datetime64[D]").astype("datetime64[M]").astype(int) % 12
    w = DOW_FACTOR[(absolute + 3) % 7] * MONTH_FACTOR[month]
    day = np.repeat(days, rng.multinomial(n, w / w.sum()))
    minute = weighted_index(rng, HOUR_WEIGHTS, n) * 60 + rng.integers(0, 60, size=n)
    t = np.sort(day.astype(np.int64) * 1440 + minute)

    traf_lsoa = ref.trafford_lsoa
    traf_w = ref.lsoa_pop.sum(axis=(1, 2)) * lsoa_multiplier(seed, ref) ** 1.3
    values = np.concatenate([traf_lsoa, ref.other_lsoa])
    weights = np.concatenate(
        [TRAFFORD_SHARE * traf_w / traf_w.sum(), np.full(len(ref.other_lsoa), (1 - TRAFFORD_SHARE) / len(ref.other_lsoa))]
    )

    with pq.ParquetWriter(out_path, SCHEMA, compression="zstd") as writer:
        for i0, i1 in chunk_bounds(n):
            crng = rng_for(seed, "police", "chunk", i0)
            k = i1 - i0
            tt = t[i0:i1]
            day_abs = START_DAY + tt // 1440
            hour = (tt % 1440) // 60
            dow = (day_abs + 3) % 7
            mon = day_abs.astype("datetime64[D]").astype("datetime64[M]").astype(int) % 12
            p = np.minimum(ALCOHOL_BASE * ALCOHOL_HOUR[hour] * ALCOHOL_DOW[dow] * ALCOHOL_MONTH[mon], 0.9)
            alcohol = crng.random(k) < p
            cdf = np.cumsum(CATEGORY_WEIGHTS, axis=1)
            cdf /= cdf[:, -1:]
            category = np.minimum((crng.random(k)[:, None] >= cdf[alcohol.astype(int)]).sum(axis=1), 4)
            lsoa = weighted_index(crng, weights, k)
            blank = crng.random(k) < BLANK_LSOA_SHARE
            refs = pc.binary_join_element_wise(
                "INC", pc.utf8_lpad(pc.cast(pa.array(np.arange(i0 + 1, i1 + 1)), pa.string()), 9, "0"), ""
            )
            table = pa.table(
                {
                    "incident_ref": refs,
                    "recorded_at": pa.array((START_DAY * 1440 + tt) * 60, type=pa.timestamp("s")),
                    "lsoa_code": take_strings(values, lsoa, null=blank),
                    "alcohol_flag": take_strings(np.array(["N", "Y"]), alcohol.astype(np.int8)),
                    "incident_category": take_strings(CATEGORIES, category),
                },
                schema=SCHEMA,
            )
            writer.write_table(table)
            if progress is not None:
                progress.advance(task, k)
    return out_path
