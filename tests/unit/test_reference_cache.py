"""The compiled reference pack: a warm cache gives exactly what a fresh build
gives, any change to its inputs builds a new entry, and an unusable cache
folder never stops a run."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipelines.framework import reference_cache as rc
from pipelines.framework.reference import ReferencePack


@pytest.fixture()
def pack() -> ReferencePack:
    return ReferencePack.locate(None)


@pytest.fixture(autouse=True)
def fresh_memo(monkeypatch):
    monkeypatch.setattr(rc, "_MEMO", {})


def _catchments(path: Path, pack: ReferencePack, n: int) -> Path:
    con = duckdb.connect()
    rc.install_lookups(con, pack)
    lsoas = [r[0] for r in con.execute(
        "SELECT lsoa_code FROM ref_lsoas WHERE la_code = ? ORDER BY 1 LIMIT ?", [pack.place.focus_la_code, n]).fetchall()]
    con.close()
    pd.DataFrame({"lsoa_code": lsoas, "catchment_code": "CC-A", "catchment_name": "Catchment A"}).to_csv(path, index=False)
    return path


def test_warm_cache_returns_exactly_the_fresh_build(tmp_path, monkeypatch, pack):
    monkeypatch.setenv("OUTCOMES_CACHE_DIR", str(tmp_path / "cache"))
    catch = _catchments(tmp_path / "catchments.csv", pack, 5)
    fresh = rc.areas_and_population(pack, catch)
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert [e.split("-")[0] for e in entries] == ["geography", "lookups"]
    monkeypatch.setattr(rc, "_MEMO", {})  # a new process: read from the folder
    warm = rc.areas_and_population(pack, catch)
    for a, b in zip(fresh, warm):
        pd.testing.assert_frame_equal(a, b)
    assert (warm[0]["area_level"] == "catchment").sum() == 1
    assert set(warm[1].loc[warm[1]["area_code"] == "CC-A", "lsoa_code"]) == set(pd.read_csv(catch)["lsoa_code"])
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == entries  # nothing rebuilt


def test_memo_hands_out_copies(tmp_path, monkeypatch, pack):
    monkeypatch.setenv("OUTCOMES_CACHE_DIR", str(tmp_path / "cache"))
    areas, _, _ = rc.areas_and_population(pack, None)
    areas.loc[:, "area_name"] = "changed by a caller"
    again, _, _ = rc.areas_and_population(pack, None)
    assert not (again["area_name"] == "changed by a caller").any()


def test_a_changed_input_builds_a_new_entry(tmp_path, monkeypatch, pack):
    monkeypatch.setenv("OUTCOMES_CACHE_DIR", str(tmp_path / "cache"))
    catch = _catchments(tmp_path / "catchments.csv", pack, 5)
    first = rc.areas_and_population(pack, catch)
    _catchments(catch, pack, 7)  # the council changed its catchment file
    second = rc.areas_and_population(pack, catch)
    assert len(second[1][second[1]["area_code"] == "CC-A"]) == 7
    assert len(first[1][first[1]["area_code"] == "CC-A"]) == 5
    # a changed reference file (a copy of the pack with one lookup edited) gets its own lookups too
    copy = tmp_path / "pack"
    shutil.copytree(pack.root, copy)
    pcs = copy / "geography" / "trafford_postcodes.csv"
    lines = pcs.read_text(encoding="utf-8").splitlines(keepends=True)
    pcs.write_text("".join(lines[:-1]), encoding="utf-8")  # one postcode fewer
    fewer = rc.lookups(ReferencePack.locate(copy))["ref_postcodes"]
    assert len(fewer) == len(rc.lookups(pack)["ref_postcodes"]) - 1
    assert len(list((tmp_path / "cache").glob("lookups-*.duckdb"))) == 2


@pytest.mark.parametrize("setting", ["off", "file"])
def test_no_usable_cache_folder_still_builds(tmp_path, monkeypatch, pack, setting):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("OUTCOMES_CACHE_DIR", "off" if setting == "off" else str(blocker / "cache"))
    areas, members, pop = rc.areas_and_population(pack, None)
    assert {"lsoa", "msoa", "ward", "la", "place"} <= set(areas["area_level"])
    assert len(members) and len(pop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]
