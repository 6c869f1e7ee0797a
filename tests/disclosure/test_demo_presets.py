"""A fresh demo publication under each preset, with secondary suppression on, passes the
external audit (``outcomes audit``), which uses only what was published plus the policy.

Every pipeline, over the session's small seeded extracts, with the A&E extract cut to its
last financial year (2023/24): a third of the A&E cells, so that the four presets run in a
few minutes on 2 cores (under ``opensafely`` the engine needs about six minutes for the
three years; the full-size demo under each preset is timed in docs/disclosure-engine.md).
"""

from __future__ import annotations

import pytest

from pipelines.framework import registry
from pipelines.framework.disclosure.external import audit_publication
from pipelines.framework.disclosure.policy import preset_names
from pipelines.framework.runner import run_pipelines

LAST_YEAR = ("2023-04-01", "2024-04-01")


@pytest.fixture(scope="module")
def one_year_samples(demo_samples, tmp_path_factory):
    """The session's samples, the A&E extract cut to financial year 2023/24."""
    import shutil

    import duckdb

    out = tmp_path_factory.mktemp("one_year")
    for f in demo_samples.iterdir():
        if f.name != "ae_attendances.csv":
            shutil.copy(f, out / f.name)
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM read_csv('{demo_samples / 'ae_attendances.csv'}', all_varchar=true) "
        f"WHERE try_cast(arrival_datetime AS TIMESTAMP) >= TIMESTAMP '{LAST_YEAR[0]}' "
        f"AND try_cast(arrival_datetime AS TIMESTAMP) < TIMESTAMP '{LAST_YEAR[1]}') "
        f"TO '{out / 'ae_attendances.csv'}' (HEADER)")
    con.close()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("preset", preset_names())
def test_fresh_demo_publication_passes_audit(preset, one_year_samples, monkeypatch, tmp_path):
    monkeypatch.setenv("OUTCOMES_SAMPLES", str(one_year_samples))
    specs = registry.discover()
    db = tmp_path / "pub.duckdb"
    run_pipelines(list(specs.values()), db=db, policy_name=preset, demo=True, secondary=True)
    report = audit_publication(db, with_previous=False)
    assert report.passed, str(report)
    assert {r["table"].split("__")[0] for r in report.rows} == set(specs)
