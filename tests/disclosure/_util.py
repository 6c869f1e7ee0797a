"""Test helpers: tiny table builders and an independent brute-force attacker.

The attacker deliberately shares no code with the engine: it writes one
variable per LSOA x month x sex category x single year of age (the full,
unprojected atom formulation) and solves each min/max with
``scipy.optimize.linprog`` from scratch. Published values are read with its
own reading of the presets (not ``primary.published_range``).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
from scipy.optimize import linprog

from pipelines.framework.disclosure.primary import round_counts

SEXES = ["Female", "Male", "Other or not known"]


def period(start: str, months: int = 1) -> tuple[pd.Timestamp, pd.Timestamp]:
    s = pd.Timestamp(start)
    return s, s + pd.offsets.MonthEnd(months)


def frame(records: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(records)
    front = ["area_code", "area_level", "period_start", "period_end", "provisional"]
    for c in front:
        if c not in df:
            df[c] = False if c == "provisional" else None
    rest = [c for c in df.columns if c not in front and c != "count"]
    df = df[front + rest + ["count"]]
    df["count"] = df["count"].astype("int64")
    return df


def publish(true: pd.DataFrame, mask: np.ndarray, policy) -> pd.DataFrame:
    v = round_counts(true["count"].to_numpy(), policy).astype(float)
    v[np.asarray(mask, bool)] = np.nan
    out = true.drop(columns=["count"]).copy()
    out["count"] = pd.array(np.where(np.isnan(v), pd.NA, v), dtype="Int64")
    return out


def attacker_range(value, policy) -> tuple[float, float]:
    """What a published value (None = suppressed) tells, read from the preset's rules."""
    floor = 1 if policy.zeros_shown else 0
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return float(floor), math.inf
    v = float(value)
    if policy.rounding == "none":
        return v, v
    if policy.rounding == "midpoint":
        if v == 0:
            return 0.0, 0.0
        half = policy.rounding_base // 2
        return v - half + 1, v + policy.rounding_base - half
    # nearest multiple of an odd base (5): v-2 .. v+2; small counts never rounded
    if v == 0:
        return 0.0, 0.0
    return max(v - policy.rounding_base // 2, policy.threshold + 1), v + policy.rounding_base // 2


def _age(label: str):
    m = re.match(r"^(\d+)-(\d+)$", label)
    if m:
        return int(m.group(1)), int(m.group(2))
    m = re.match(r"^(\d+)\+$", label)
    if m:
        return int(m.group(1)), 10**6
    raise ValueError(label)


def brute_force(published: dict[str, pd.DataFrame], area_members: pd.DataFrame, policy,
                subset: dict[str, str] | None = None, measure_of: dict[str, str] | None = None):
    """Exact LP min/max of every checked cell over the full atom formulation.

    Returns {table: DataFrame(lo, hi, target)} and the list of under-protected cells.
    All tables count the same events (one measure) unless ``measure_of`` says otherwise.
    """
    measure_of = measure_of or {n: "m" for n in published}
    members = area_members.groupby("area_code")["lsoa_code"].apply(lambda s: set(s)).to_dict()
    lsoas = sorted(set(area_members["lsoa_code"]))
    months = sorted({m for df in published.values() for a, b in zip(df.period_start, df.period_end)
                     for m in pd.period_range(a, b, freq="M")})
    has_sex = any("sex" in df for df in published.values())
    has_age = any("age_band" in df for df in published.values())
    sexes = SEXES if has_sex else ["*"]
    cuts = sorted({0} | {x for df in published.values() if "age_band" in df
                          for lab in df["age_band"].unique() if lab != "All"
                          for x in (_age(lab)[0], _age(lab)[1] + 1) if x < 10**6})
    ages = list(range(max(cuts))) + [max(cuts)] if has_age else [0]   # single years, last = open
    measures = sorted(set(measure_of.values()))
    shape = (len(measures), len(lsoas), len(months), len(sexes), len(ages))
    nvar = int(np.prod(shape))
    idx = np.arange(nvar).reshape(shape)
    rows, lo, hi, where = [], [], [], []
    key_index = {}
    for name, df in published.items():
        mi = measures.index(measure_of[name])
        for i, r in enumerate(df.itertuples(index=False)):
            rd = r._asdict()
            la = [k for k, l in enumerate(lsoas) if l in members.get(rd["area_code"], {rd["area_code"]})]
            mm = [k for k, m in enumerate(months) if rd["period_start"] <= m.start_time <= rd["period_end"]]
            ss = list(range(len(sexes))) if rd.get("sex", "All") == "All" else [sexes.index(rd["sex"])]
            if rd.get("age_band", "All") == "All":
                aa = list(range(len(ages)))
            else:
                a0, a1 = _age(rd["age_band"])
                aa = [k for k, a in enumerate(ages) if a0 <= a <= a1]
            cols = idx[mi][np.ix_(la, mm, ss, aa)].ravel()
            val = rd["count"]
            l, h = attacker_range(None if pd.isna(val) else val, policy)
            rows.append(cols)
            lo.append(l)
            hi.append(h)
            where.append((name, i, pd.isna(val)))
            key_index[(measure_of[name], rd["area_code"], rd["period_start"], rd["period_end"],
                       rd.get("sex", "All"), rd.get("age_band", "All"))] = len(rows) - 1
    # subset_of rows: small - big <= 0
    extra = []
    for small, big in (subset or {}).items():
        for k, ri in key_index.items():
            if k[0] == small and (big,) + k[1:] in key_index:
                extra.append((ri, key_index[(big,) + k[1:]]))
    A_rows, b = [], []
    for k, cols in enumerate(rows):
        if np.isfinite(hi[k]):
            r = np.zeros(nvar)
            r[cols] = 1.0
            A_rows.append(r)
            b.append(hi[k])
        if lo[k] > 0:
            r = np.zeros(nvar)
            r[cols] = -1.0
            A_rows.append(r)
            b.append(-lo[k])
    for s_, g_ in extra:
        r = np.zeros(nvar)
        r[rows[s_]] += 1.0
        r[rows[g_]] -= 1.0
        A_rows.append(r)
        b.append(0.0)
    A = np.array(A_rows) if A_rows else np.zeros((1, nvar))
    b = np.array(b) if b else np.zeros(1)
    out = {name: pd.DataFrame({"lo": np.nan, "hi": np.nan, "target": False}, index=range(len(df)))
           for name, df in published.items()}
    bad = []
    for k, cols in enumerate(rows):
        name, i, sup = where[k]
        l, h = lo[k], hi[k]
        target = sup or (h > l and l <= policy.threshold and h >= 1)
        if not target:
            continue
        c = np.zeros(nvar)
        c[cols] = 1.0
        r1 = linprog(c, A_ub=A, b_ub=b, bounds=(0, None), method="highs")
        r2 = linprog(-c, A_ub=A, b_ub=b, bounds=(0, None), method="highs")
        assert r1.status == 0, r1.message
        vmin = r1.fun
        assert r2.status in (0, 3), r2.message
        vmax = -r2.fun if r2.status == 0 else math.inf
        out[name].loc[i, ["lo", "hi", "target"]] = [vmin, vmax, True]
        meets = vmax >= 1 - 1e-6 and vmin <= policy.threshold + 1e-6
        width = math.inf if not math.isfinite(vmax) else math.floor(vmax + 1e-6) - math.ceil(vmin - 1e-6) + 1
        if meets and width < policy.protection_width:
            bad.append((name, i, vmin, vmax))
    return out, bad
