"""``audit_publication`` on a DuckDB publication laid out like the real one."""

from __future__ import annotations

import os

import duckdb
import numpy as np
import pandas as pd

from pipelines.framework.disclosure.external import audit_publication, policy_json
from pipelines.framework.disclosure.policy import load_policy

from ._util import frame, period, publish

S, E = period("2024-04-01")
POL = load_policy("suppress-under-10")


def counts(a, b, c):
    return frame([dict(area_code="L1", area_level="lsoa", period_start=S, period_end=E, sex=s, count=v)
                  for s, v in (("Female", a), ("Male", b), ("Other or not known", c), ("All", a + b + c))])


def write_release(path, release_id, tables: dict[str, pd.DataFrame]):
    con = duckdb.connect(str(path))
    cat = pd.DataFrame([
        dict(table_name=n, pipeline="ae", measure="attendances", dimensions=["area", "period", "sex"],
             additive_over=["area", "period", "sex"], policy=policy_json(POL), subset_of=None,
             kind="count", release_id=release_id)
        for n in tables
    ] + [dict(table_name="population", pipeline="reference", measure="population",
              dimensions=["area", "period"], additive_over=["area"], policy=None, subset_of=None,
              kind="reference", release_id=release_id)])
    con.register("cat_df", cat)
    con.execute("CREATE TABLE catalogue AS SELECT table_name, pipeline, measure, "
                "CAST(dimensions AS VARCHAR[]) AS dimensions, CAST(additive_over AS VARCHAR[]) AS additive_over, "
                "CAST(policy AS VARCHAR) AS policy, CAST(subset_of AS VARCHAR) AS subset_of, kind, release_id "
                "FROM cat_df")
    con.register("am_df", pd.DataFrame({"area_code": ["L1"], "lsoa_code": ["L1"]}))
    con.execute("CREATE TABLE area_members AS SELECT * FROM am_df")
    for n, df in tables.items():
        d = df.copy()
        d["count"] = d["count"].astype("Int64")
        con.register("t_df", d)
        con.execute(f'CREATE TABLE "{n}" AS SELECT * EXCLUDE (count), CAST(count AS BIGINT) AS count FROM t_df')
        con.unregister("t_df")
    con.execute("CREATE TABLE population AS SELECT 'L1' AS area_code, 1500 AS population")
    con.close()


def test_external_audit_reads_catalogue_and_combines_with_earlier_release(tmp_path):
    df = counts(3, 30, 20)
    rel = tmp_path / "releases"
    rel.mkdir()
    old_id, new_id = "20240101T000000000Z-aaaaaa", "20240201T000000000Z-bbbbbb"
    write_release(rel / f"{old_id}.duckdb", old_id, {"ae_sex": publish(df, np.array([1, 1, 0, 0], bool), POL)})
    write_release(rel / f"{new_id}.duckdb", new_id, {"ae_sex": publish(df, np.array([1, 0, 1, 0], bool), POL)})
    link = tmp_path / "outcomes.duckdb"
    os.symlink(os.path.join("releases", f"{new_id}.duckdb"), link)

    alone = audit_publication(link, with_previous=False)
    assert alone.passed
    assert [r["table"] for r in alone.rows] == ["ae_sex"]          # population skipped
    assert alone.rows[0]["cells"] == 4 and alone.rows[0]["suppressed"] == 2

    both = audit_publication(link)
    assert not both.passed
    combined = [r for r in both.rows if r["scope"] != "current"]
    assert combined and combined[0]["scope"] == f"with earlier {old_id}"
    assert combined[0]["worst_range"] == (3.0, 3.0)
    assert "ae_sex" in both.message and "FAIL" in str(both)

    # a stricter policy given on the command line is applied instead of the catalogue's
    strict = audit_publication(link, policy="opensafely", with_previous=False)
    assert strict.rows[0]["table"] == "ae_sex"


def test_external_audit_flags_primary_only_publication(tmp_path):
    path = tmp_path / "plain.duckdb"
    df = counts(3, 30, 20)
    write_release(path, "r1", {"ae_sex": publish(df, np.array([1, 0, 0, 0], bool), POL)})
    rep = audit_publication(path)
    assert not rep.passed and rep.rows[0]["worst_range"] == (3.0, 3.0)
