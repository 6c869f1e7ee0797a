"""Shared fixtures: a small synthetic extract set and a publication built
from it by the real pipelines, once per test session.

Data are generated with a fixed seed; nothing here reads real person-level
data. The reference pack comes from OUTCOMES_REFERENCE (default
../shared/reference beside the checkout), as in production.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.framework.reference import ReferencePack

SEED = 20240331
SMALL_ROWS_PER_YEAR = 20_000


@pytest.fixture(scope="session")
def reference_pack() -> ReferencePack:
    return ReferencePack.locate()


@pytest.fixture(scope="session")
def demo_samples(tmp_path_factory, reference_pack) -> Path:
    """Synthetic extracts (all pipelines), small enough to run in seconds."""
    from pipelines.cli import main

    out = tmp_path_factory.mktemp("samples")
    assert main(["samples", "--rows-per-year", str(SMALL_ROWS_PER_YEAR), "--seed", str(SEED), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def demo_publication(tmp_path_factory, demo_samples) -> Path:
    """A publication of every pipeline over ``demo_samples`` (default policy: secondary
    suppression and the audit included, about a minute).

    Built once for the whole run and shared by the xdist workers (every worker's
    ``demo_samples`` are identical: same seed), under a file lock; tests only read it
    or copy it."""
    import fcntl

    if not os.environ.get("PYTEST_XDIST_WORKER"):       # not under xdist
        return _build_demo_publication(tmp_path_factory.mktemp("pub"), demo_samples)
    shared = tmp_path_factory.getbasetemp().parent / "shared_demo_publication"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / "pub" / "outcomes.duckdb"
        if not done.exists():
            _build_demo_publication(shared / "pub", demo_samples)
        return done


def _build_demo_publication(folder: Path, samples: Path) -> Path:
    from pipelines.framework import registry
    from pipelines.framework.runner import run_pipelines

    db = folder / "outcomes.duckdb"
    old = os.environ.get("OUTCOMES_SAMPLES")
    os.environ["OUTCOMES_SAMPLES"] = str(samples)
    try:
        run_pipelines(list(registry.discover().values()), db=db, demo=True)
    finally:
        if old is None:
            os.environ.pop("OUTCOMES_SAMPLES", None)
        else:
            os.environ["OUTCOMES_SAMPLES"] = old
    return db


@pytest.fixture()
def samples_env(monkeypatch, demo_samples):
    """Point the default inputs (data_samples/) at the generated samples."""
    monkeypatch.setenv("OUTCOMES_SAMPLES", str(demo_samples))
    return demo_samples
