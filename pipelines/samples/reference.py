"""Read the public reference pack (ONS/OS open data) the generators draw on.

The pack lives outside the repository: ``reference_dir`` if given, else the
``OUTCOMES_REFERENCE`` environment variable, else ``../shared/reference``
relative to the repository root. Nothing from it is ever copied into the
repository; the generators only sample codes and proportions from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

ENV_VAR = "OUTCOMES_REFERENCE"
TRAFFORD_LA = "E08000009"
ENGLAND = "E92000001"
#: the ten GM local authorities (2023 codes)
GM_LAS = tuple(f"E0800000{i}" for i in range(1, 10)) + ("E08000010",)
POPULATION_YEAR = 2022

POSTCODES = Path("geography/trafford_postcodes.csv")
LSOA_LOOKUP = Path("geography/lsoa_to_ward_best-fit_lookup.csv")
TRAFFORD_POP = Path("population/trafford_mid_year_2022_all_geographies.csv")
GM_LA_POP = Path("population/gm_la_mid_year_2018_2023_by_sex_5y_age.csv")
REQUIRED = (POSTCODES, LSOA_LOOKUP, TRAFFORD_POP, GM_LA_POP)

#: 5-year age bands of the GM LA file, in order, with their lowest age
BANDS = tuple(f"{a}-{a + 4} yrs" for a in range(0, 90, 5)) + ("90+ yrs",)
BAND_LOW = np.arange(0, 95, 5)


class ReferenceDataMissing(FileNotFoundError):
    """The reference pack (or a file in it) is not where it was looked for."""


def default_reference_dir() -> Path:
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"


def resolve_reference_dir(reference_dir: str | os.PathLike | None = None) -> Path:
    """The reference pack directory, checked to hold the files the generators read."""
    if reference_dir is not None:
        path, how = Path(reference_dir), "the reference_dir argument"
    elif os.environ.get(ENV_VAR):
        path, how = Path(os.environ[ENV_VAR]), f"the {ENV_VAR} environment variable"
    else:
        path, how = default_reference_dir(), f"the default (no {ENV_VAR} set)"
    path = path.resolve()
    missing = [str(f) for f in REQUIRED if not (path / f).is_file()]
    if missing:
        raise ReferenceDataMissing(
            f"Reference pack not found: tried {path} (from {how}); missing {', '.join(missing)}. "
            f"Set {ENV_VAR} to the directory holding the reference pack "
            "(geography/, population/ ...), or pass reference_dir."
        )
    return path


@dataclass(frozen=True)
class Reference:
    """Arrays derived from the reference pack, ready for vectorised sampling."""

    path: Path
    # Trafford postcodes, sorted by LSOA then postcode
    postcode: np.ndarray  # str
    postcode_locality: np.ndarray  # str
    postcode_lsoa_idx: np.ndarray  # index into trafford_lsoa
    localities: tuple[str, ...]
    # Trafford LSOAs (sorted codes) and where their postcodes are
    trafford_lsoa: np.ndarray  # str, 139
    lsoa_pc_start: np.ndarray
    lsoa_pc_count: np.ndarray
    #: population by LSOA, sex (0 male, 1 female), single year of age 0..90 (90 = 90+)
    lsoa_pop: np.ndarray  # (n_lsoa, 2, 91) float
    # the rest of GM: LSOA codes grouped by LA
    gm_lsoa_all: frozenset
    other_la: tuple[str, ...]
    other_lsoa: np.ndarray  # str, grouped by LA in other_la order
    other_la_start: np.ndarray
    other_la_count: np.ndarray
    #: population of the other nine LAs by sex and 5-year band: (9, 2, 19)
    other_la_pop: np.ndarray
    #: England population by sex and band: (2, 19)
    england_pop: np.ndarray
    #: plausible English LSOA codes that are not in GM
    outside_lsoa: np.ndarray


def _read_csv(path: Path, **kw) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kw)
    except FileNotFoundError as exc:  # pragma: no cover - checked before
        raise ReferenceDataMissing(str(exc)) from exc


@lru_cache(maxsize=4)
def _load(path: Path) -> Reference:
    pc = _read_csv(path / POSTCODES, dtype=str, usecols=["postcode", "lsoa_code", "locality"])
    pc = pc.dropna().sort_values(["lsoa_code", "postcode"], kind="stable").reset_index(drop=True)
    trafford_lsoa, pc_lsoa_idx = np.unique(pc["lsoa_code"].to_numpy(dtype=str), return_inverse=True)
    counts = np.bincount(pc_lsoa_idx, minlength=len(trafford_lsoa))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    pop = _read_csv(path / TRAFFORD_POP)
    pop = pop[pop["geography"] == "LSOA"]
    ages = [str(a) for a in range(90)] + ["90+"]
    lsoa_pop = np.zeros((len(trafford_lsoa), 2, 91))
    pos = {c: i for i, c in enumerate(trafford_lsoa)}
    for s, label in enumerate(("Males", "Females")):
        part = pop[pop["sex"] == label]
        idx = part["area_code"].map(pos)
        ok = idx.notna().to_numpy()
        lsoa_pop[idx[ok].astype(int).to_numpy(), s, :] = part.loc[ok, ages].to_numpy(dtype=float)
    if not (lsoa_pop.sum(axis=(1, 2)) > 0).all():
        raise ValueError(f"{path / TRAFFORD_POP}: some Trafford LSOAs have no population rows")

    lk = _read_csv(path / LSOA_LOOKUP, dtype=str)
    gm_all = frozenset(lk["lsoa21cd"])
    other = lk[lk["lad22cd"] != TRAFFORD_LA].sort_values(["lad22cd", "lsoa21cd"])
    other_la = tuple(sorted(other["lad22cd"].unique()))
    la_counts = other.groupby("lad22cd").size().reindex(other_la).to_numpy()
    la_starts = np.concatenate([[0], np.cumsum(la_counts)[:-1]])

    gp = _read_csv(path / GM_LA_POP)
    gp = gp[(gp["year"] == POPULATION_YEAR) & gp["sex"].isin(["Male", "Female"]) & gp["age_band"].isin(BANDS)]
    table = gp.pivot_table(index=["area_code", "sex"], columns="age_band", values="population", aggfunc="sum")
    table = table.reindex(columns=list(BANDS)).fillna(0.0)

    def by_sex(area: str) -> np.ndarray:
        return np.stack([table.loc[(area, "Male")].to_numpy(), table.loc[(area, "Female")].to_numpy()])

    other_la_pop = np.stack([by_sex(a) for a in other_la])
    england_pop = by_sex(ENGLAND)

    # English LSOA 2021 codes run from E01000001 to about E01035700; GM holds a block of them.
    numbers = np.arange(1, 35_600)
    gm_numbers = {int(c[3:]) for c in gm_all if c.startswith("E01") and c[3:].isdigit()}
    keep = ~np.isin(numbers, np.fromiter(gm_numbers, dtype=np.int64))
    outside = np.array([f"E01{n:06d}" for n in numbers[keep]])

    return Reference(
        path=path,
        postcode=pc["postcode"].to_numpy(dtype=str),
        postcode_locality=pc["locality"].to_numpy(dtype=str),
        postcode_lsoa_idx=pc_lsoa_idx,
        localities=tuple(sorted(pc["locality"].unique())),
        trafford_lsoa=trafford_lsoa,
        lsoa_pc_start=starts,
        lsoa_pc_count=counts,
        lsoa_pop=lsoa_pop,
        gm_lsoa_all=gm_all,
        other_la=other_la,
        other_lsoa=other["lsoa21cd"].to_numpy(dtype=str),
        other_la_start=la_starts,
        other_la_count=la_counts,
        other_la_pop=other_la_pop,
        england_pop=england_pop,
        outside_lsoa=outside,
    )


def load_reference(reference_dir: str | os.PathLike | None = None) -> Reference:
    """Load (and cache) the reference pack."""
    return _load(resolve_reference_dir(reference_dir))
