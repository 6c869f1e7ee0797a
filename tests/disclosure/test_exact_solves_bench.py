"""``bench/exact_solves.py`` still runs, on a small size: it takes a component from the
engine as the engine saw it (the hook restores the engine afterwards), and a pricing
option changes the simplex path but not an LP's optimal values, so the variant must
report the same values as the default."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import exact_solves  # noqa: E402
from pipelines.framework.disclosure import audit, lp  # noqa: E402


def test_exact_solves_bench_runs_and_restores_the_engine(capsys):
    before = (audit.protect_ranges, audit.map_components, lp.disclosure_workers)
    assert exact_solves.main(["--size", "10000", "--cells", "10",
                              "--option", "simplex_primal_edge_weight_strategy=0"]) == 0
    assert (audit.protect_ranges, audit.map_components, lp.disclosure_workers) == before
    out = capsys.readouterr().out
    assert "component: 552 variables" in out          # the first one of 300+ at 10^4 (fixed seed)
    assert any(line.startswith("default ") for line in out.splitlines())
    variant = next(line for line in out.splitlines() if line.startswith("simplex_primal_edge_weight_strategy=0"))
    assert variant.endswith("True")                    # same optimal values as the default
