"""How many shares an exact stage is split into (``lp.protect_ranges(exact_shares=...)``).

Two shares run in two processes but each sees only its own optimal points; one share is one
sequence in which every point is a witness for every cell still open. Components that run
beside each other are already the parallel unit, so ``audit._run_jobs`` gives each of them one
share, and only a lone large component two. The choice may change how much work is done,
never a verdict, and it depends on the release only (never on the machine's cores).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from pipelines.framework.disclosure import audit, lp
from pipelines.framework.disclosure.lp import protect_ranges

from .test_local_stage import _table_system

THRESHOLD, WIDTH = 7, 5


@pytest.mark.parametrize("seed", [2, 5, 11])
def test_one_share_or_two_give_the_exact_verdicts(seed, monkeypatch):
    A, lo, hi, targets = _table_system(seed, 12, 12)
    monkeypatch.setattr(lp, "PARALLEL_EXACT_MIN", 4)
    monkeypatch.setattr(lp, "_capped_sweeps", lambda *a, **k: 0)
    monkeypatch.setenv("OUTCOMES_DISCLOSURE_WORKERS", "1")      # shares one after the other, here
    calls = []
    real = lp._exact_share
    monkeypatch.setattr(lp, "_exact_share", lambda args: calls.append(1) or real(args))
    exact = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, exact_all=True)
    for shares in (1, 2, 3):
        calls.clear()
        r = protect_ranges(A, lo, hi, targets, THRESHOLD, WIDTH, want_binding=True, seed=seed, sweeps=1,
                           exact_shares=shares)
        assert len(calls) == (0 if shares == 1 else shares)
        assert r.safe.tolist() == exact.safe.tolist(), shares
        # every leak keeps the rows that pin it, whichever share found it
        assert all(len(r.binding[int(t)]) > 0 for t in np.flatnonzero(~r.safe))


def _job(n_vars: int):
    """A job shaped like ``analyse``'s (only the matrix's width matters to ``_run_jobs``)."""
    return (sp.csr_matrix((1, n_vars)),) + (None,) * 13


@pytest.mark.parametrize("workers", ["1", "2"])
def test_run_jobs_gives_one_share_when_large_components_run_side_by_side(workers, monkeypatch):
    monkeypatch.setenv("OUTCOMES_DISCLOSURE_WORKERS", workers)
    seen = []
    monkeypatch.setattr(audit, "map_components", lambda fn, jobs, big: [seen.append(j[14]) for j in jobs])
    big, small = audit.PARALLEL_MIN_VARS, audit.PARALLEL_MIN_VARS - 1
    audit._run_jobs([_job(big), _job(small)])
    assert seen == [lp.EXACT_SHARES, lp.EXACT_SHARES]
    seen.clear()
    audit._run_jobs([_job(big), _job(small), _job(big)])
    assert seen == [1, 1, 1]
