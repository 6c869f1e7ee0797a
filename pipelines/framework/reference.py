"""The reference pack: real ONS/OS open geography and population for a place.

A pack is a folder laid out like ``../shared/reference`` (see README
"Reference data"). It is never copied into the repository; the product reads
it from ``OUTCOMES_REFERENCE`` (default: ``../shared/reference`` beside the
checkout). Another place is another pack, not new code: nothing here names
Trafford except the defaults of ``PlaceConfig``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

#: file (relative to the pack) -> columns that must be present
REQUIRED_FILES: dict[str, tuple[str, ...]] = {
    "geography/statistical_lookup.csv": ("oa21cd", "lsoa21cd", "lsoa21nm", "msoa21cd", "msoa21nm", "lad22cd", "lad22nm"),
    "geography/lsoa_to_ward_best-fit_lookup.csv": ("lsoa21cd", "wd22cd", "wd22nm", "lad22cd"),
    "geography/trafford_postcodes.csv": ("postcode", "lsoa_code", "msoa_code", "msoa_hcl_name", "locality", "la_code"),
    "population/gm_la_mid_year_2018_2023_by_sex_5y_age.csv": ("area_code", "year", "sex", "age_band", "population"),
    "population/trafford_mid_year_2022_all_geographies.csv": ("period", "area_code", "geography", "sex", "all_ages", "0", "90+"),
    "population/trafford_mid_year_2024_all_geographies.csv": ("period", "area_code", "geography", "sex", "all_ages", "0", "90+"),
    "services/trafford_childrens_centres.csv": ("name", "postcode"),
}

#: Boundary files used by the map (optional for pipelines)
BOUNDARY_FILES = {
    "la": "geography/gm_local_authority_super_generalised.geojson",
    "ward": "geography/gm_ward_2022_super_generalised.geojson",
    "msoa": "geography/gm_msoa_super_generalised.geojson",
    "lsoa": "geography/gm_lsoa_super_generalised.geojson",
}

ATTRIBUTION = "Contains National Statistics and OS data © Crown copyright and database right 2024"


class ReferencePackError(RuntimeError):
    """The reference pack is missing or incomplete."""


@dataclass(frozen=True)
class PlaceConfig:
    """The place a pack describes: its combined-authority code and name, and
    the borough that has neighbourhood detail (postcodes, small-area
    populations, localities)."""

    place_code: str = "E47000001"
    place_name: str = "Greater Manchester"
    focus_la_code: str = "E08000009"
    focus_la_name: str = "Trafford"


def default_reference_dir() -> Path:
    env = os.environ.get("OUTCOMES_REFERENCE")
    if env:
        return Path(env)
    return (REPO_ROOT / ".." / "shared" / "reference").resolve()


@dataclass(frozen=True)
class ReferencePack:
    root: Path
    place: PlaceConfig = PlaceConfig()

    @classmethod
    def locate(cls, root: Path | str | None = None) -> "ReferencePack":
        """Find and validate a pack; raise a clear error naming what is missing."""
        path = Path(root) if root else default_reference_dir()
        if not path.is_dir():
            raise ReferencePackError(
                f"reference pack not found at {path}. Set OUTCOMES_REFERENCE to the folder holding "
                "the ONS/OS open data files (see README, 'Reference data')."
            )
        pack = cls(path)
        pack.validate()
        return pack

    def file(self, relative: str) -> Path:
        return self.root / relative

    def validate(self) -> None:
        missing = [rel for rel in REQUIRED_FILES if not (self.root / rel).is_file()]
        if missing:
            raise ReferencePackError(
                f"reference pack at {self.root} is incomplete; missing: {', '.join(missing)} "
                "(see README, 'Reference data', for the official files that make a pack)"
            )
        for rel, cols in REQUIRED_FILES.items():
            with open(self.root / rel, newline="", encoding="utf-8-sig") as f:
                have = set(next(csv.reader(f), []))
            absent = [c for c in cols if c not in have]
            if absent:
                raise ReferencePackError(f"reference file {self.root / rel} lacks column(s) {', '.join(absent)}")

    def boundary_file(self, level: str) -> Path | None:
        rel = BOUNDARY_FILES.get(level)
        if rel is None:
            return None
        path = self.root / rel
        return path if path.is_file() else None
