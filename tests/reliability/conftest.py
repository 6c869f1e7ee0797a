"""Fixtures for the reliability tests.

``fast_pipeline`` makes in-process ``outcomes run`` calls cheap where the test
is about publishing (write failures, rollback): reference geography is
loaded once, and each pipeline's work up to publication is done once per
(pipeline, input bytes, policy, key) and reused. Everything from the
publication lock onwards runs for real every time.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
from pathlib import Path

import pytest

from pipelines.framework import runner

from ._support import sha256


_GEOGRAPHY: dict = {}


def _cached_geography(real):
    def load_geography(pack, catchments_file):
        key = str(catchments_file)
        if key not in _GEOGRAPHY:
            _GEOGRAPHY[key] = real(pack, catchments_file)
        return _GEOGRAPHY[key]

    return load_geography


@pytest.fixture(scope="module")
def fast_geography():
    """Reference geography loaded once; every pipeline step runs for real."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "load_geography", _cached_geography(runner.load_geography))
        yield


@pytest.fixture(scope="module")
def fast_pipeline():
    cache: dict = {}
    real_run_one = runner.run_one
    load_geography = _cached_geography(runner.load_geography)

    def run_one(spec, input_path, key, pack, areas, members, policy, db, progress):
        k = (spec.name, sha256(input_path), policy.to_json(), key)
        if k not in cache:
            cache[k] = real_run_one(spec, input_path, key, pack, areas, members, policy, db, progress)
        out, gate_seconds = cache[k]
        return dataclasses.replace(out, run_id=secrets.token_hex(6),
                                   summary=dataclasses.replace(out.summary)), gate_seconds

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "run_one", run_one)
        mp.setattr(runner, "load_geography", load_geography)
        yield cache


def copy_publication(db: Path, dest: Path) -> Path:
    """A private copy of a publication folder (the link stays relative)."""
    shutil.copytree(db.parent, dest, symlinks=True)
    return dest / db.name
