"""Ages are capped before banding (records are grouped by capped age, then the bands are given
to the groups): the cap must keep an unknown age unknown, not put it in the top band."""

import duckdb

from pipelines.framework.cubes import capped_age_sql


def test_capped_age_keeps_unknown_ages_unknown():
    rows = duckdb.sql(
        f"SELECT age, {capped_age_sql('age', 90)} AS capped FROM (VALUES (0), (89), (90), (107), (NULL)) t(age) "
        "ORDER BY age NULLS LAST"
    ).fetchall()
    assert rows == [(0, 0), (89, 89), (90, 90), (107, 90), (None, None)]
