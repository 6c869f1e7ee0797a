"""Boundaries for the map, read from the reference pack (never from the network).

Only the boundary files named in :data:`pipelines.framework.reference.BOUNDARY_FILES`
are read, from :func:`pipelines.framework.reference.default_reference_dir`
(``OUTCOMES_REFERENCE``). The user never supplies a path.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from pipelines.framework.reference import ATTRIBUTION, BOUNDARY_FILES, default_reference_dir

__all__ = ["ATTRIBUTION", "MAP_LEVELS", "boundary_path", "load_boundaries"]

#: area levels the map can draw (levels with a boundary file), finest last
MAP_LEVELS = ("la", "ward", "msoa", "lsoa")


def boundary_path(level: str) -> Path | None:
    rel = BOUNDARY_FILES.get(level)
    if rel is None:
        return None
    path = default_reference_dir() / rel
    return path if path.is_file() else None


def _stamp(path: Path) -> str:
    s = path.stat()
    return f"{path}|{s.st_mtime_ns}|{s.st_size}"


@st.cache_resource(show_spinner=False, max_entries=8)
def _load(stamp: str) -> dict:
    path = Path(stamp.split("|", 1)[0])
    with open(path, encoding="utf-8") as f:
        gj = json.load(f)
    feats = {}
    for feat in gj.get("features", []):
        props = feat.get("properties") or {}
        code = props.get("area_code")
        if code:
            feats[str(code)] = {"type": "Feature", "id": str(code), "geometry": feat["geometry"],
                                "properties": {"area_code": str(code), "area_name": str(props.get("area_name", ""))}}
    return feats


def load_boundaries(level: str) -> dict[str, dict] | None:
    """area_code -> GeoJSON feature for ``level``; None if the pack has no file.

    Cached per process (the features are shared, treat them as read-only)."""
    path = boundary_path(level)
    if path is None:
        return None
    return _load(_stamp(path))


def bounds(features: list[dict]) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) of some features."""
    xs: list[float] = []
    ys: list[float] = []

    def walk(c):
        if isinstance(c, (list, tuple)) and c and isinstance(c[0], (int, float)):
            xs.append(float(c[0]))
            ys.append(float(c[1]))
        elif isinstance(c, (list, tuple)):
            for cc in c:
                walk(cc)

    for f in features:
        walk(f["geometry"]["coordinates"])
    if not xs:
        return None
    return min(xs), min(ys), max(xs), max(ys)
