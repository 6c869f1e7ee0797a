"""Boundaries for the map, read from the reference pack (never from the network).

Only the boundary files named in :data:`pipelines.framework.reference.BOUNDARY_FILES`
are read, from :func:`pipelines.framework.reference.default_reference_dir`
(``OUTCOMES_REFERENCE``). The user never supplies a path.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

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


#: coordinates are rounded to 5 decimal places (about 1 m; the boundaries are
#: super-generalised to tens of metres), which makes the map's JSON smaller
COORD_DECIMALS = 5


def _round(c):
    if c and isinstance(c[0], (int, float)):
        return [round(float(c[0]), COORD_DECIMALS), round(float(c[1]), COORD_DECIMALS)]
    return [_round(x) for x in c]


def _extent(c, box: list[float]) -> None:
    if c and isinstance(c[0], (int, float)):
        box[0] = min(box[0], c[0])
        box[1] = min(box[1], c[1])
        box[2] = max(box[2], c[0])
        box[3] = max(box[3], c[1])
    else:
        for x in c:
            _extent(x, box)


_LOCK = threading.Lock()
_LOADED: dict[str, tuple[dict, dict]] = {}


def _load(stamp: str) -> tuple[dict, dict]:
    """(area_code -> feature, area_code -> (west, south, east, north)); cached
    per process: the boundaries do not change with the release."""
    with _LOCK:
        if stamp in _LOADED:
            return _LOADED[stamp]
    path = Path(stamp.split("|", 1)[0])
    with open(path, encoding="utf-8") as f:
        gj = json.load(f)
    feats, boxes = {}, {}
    for feat in gj.get("features", []):
        props = feat.get("properties") or {}
        code = props.get("area_code")
        geom = feat.get("geometry")
        if not code or not geom:
            continue
        geom = {"type": geom["type"], "coordinates": _round(geom["coordinates"])}
        feats[str(code)] = {"type": "Feature", "id": str(code), "geometry": geom,
                            "properties": {"area_code": str(code), "area_name": str(props.get("area_name", ""))}}
        box = [float("inf"), float("inf"), float("-inf"), float("-inf")]
        _extent(geom["coordinates"], box)
        boxes[str(code)] = tuple(box)
    with _LOCK:
        _LOADED[stamp] = (feats, boxes)
    return feats, boxes


def load_boundaries(level: str) -> dict[str, dict] | None:
    """area_code -> GeoJSON feature for ``level``; None if the pack has no file.

    Cached per process (the features are shared, treat them as read-only)."""
    path = boundary_path(level)
    if path is None:
        return None
    return _load(_stamp(path))[0]


def bounds_of(level: str, codes) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) around ``codes`` of ``level`` (all areas if none match)."""
    path = boundary_path(level)
    if path is None:
        return None
    boxes = _load(_stamp(path))[1]
    sel = [boxes[c] for c in codes if c in boxes] or list(boxes.values())
    if not sel:
        return None
    return (min(b[0] for b in sel), min(b[1] for b in sel), max(b[2] for b in sel), max(b[3] for b in sel))


def bounds(features: list[dict]) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) of some features."""
    box = [float("inf"), float("inf"), float("-inf"), float("-inf")]
    for f in features:
        _extent(f["geometry"]["coordinates"], box)
    return tuple(box) if box[0] != float("inf") else None
