"""A fresh demo publication under each preset, with secondary suppression on, passes the
external audit (``outcomes audit``), which uses only what was published plus the policy.

Every pipeline, over the session's small seeded extracts (the full-size demo is checked
the same way by hand: see README, "Disclosure control").
"""

from __future__ import annotations

import pytest

from pipelines.framework import registry
from pipelines.framework.disclosure.external import audit_publication
from pipelines.framework.disclosure.policy import preset_names
from pipelines.framework.runner import run_pipelines


@pytest.mark.slow
@pytest.mark.parametrize("preset", preset_names())
def test_fresh_demo_publication_passes_audit(preset, samples_env, tmp_path):
    specs = registry.discover()
    db = tmp_path / "pub.duckdb"
    run_pipelines(list(specs.values()), db=db, policy_name=preset, demo=True, secondary=True)
    report = audit_publication(db, with_previous=False)
    assert report.passed, str(report)
    assert {r["table"].split("__")[0] for r in report.rows} == set(specs)
