"""Stubborn leaks mended by moves of the true counts (``moves``, ``secondary.MOVE_AFTER``).

* On a two-way table published exactly, one small cell mended by a move gets the cheapest
  rectangle of complements (the per-unit cost of moving a cell is its count + 1, so the
  cheapest rectangle is the one with the smallest corner counts; worked out by hand below),
  and the attacker's range of the cell is what the hand calculation gives.
* With every leak mended by moves from the first round on (``MOVE_AFTER = 1``, far more
  than the engine does by default), on a benchmark-shaped release under every preset, the
  release passes the audit, which shares none of the moves' reasoning: it checks each
  moved point against its own system before using it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipelines.framework.disclosure import secondary
from pipelines.framework.disclosure.audit import audit_release
from pipelines.framework.disclosure.policy import load_policy, preset_names
from pipelines.framework.disclosure.primary import primary_mask
from pipelines.framework.disclosure.secondary import secondary_suppress

from ._util import brute_force, publish
from .test_published_cases import exact_policy, two_way

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from disclosure_scale import make_release  # noqa: E402


def _count_moves(monkeypatch) -> list[int]:
    """Counts the leaks the engine mends by moves, round by round."""
    moved: list[int] = []
    real = secondary._Engine.moves

    def counting(self, cells, *args, **kwargs):
        moved.append(len(cells))
        return real(self, cells, *args, **kwargs)

    monkeypatch.setattr(secondary._Engine, "moves", counting)
    return moved


def test_one_small_cell_gets_the_cheapest_rectangle(monkeypatch):
    #        a   b   c
    # r0:    3  20  30      rectangles through r0|a (corner counts, sum):
    # r1:   25  12  40        b,r1: 20 + 25 + 12 = 57  <- cheapest
    # r2:   35  50  15        c,r1: 30 + 25 + 40 = 95;  b,r2: 20 + 35 + 50 = 105;  c,r2: 30 + 35 + 15 = 80
    tables, meta, am = two_way({"r0": [3, 20, 30], "r1": [25, 12, 40], "r2": [35, 50, 15]}, ["0-9", "10-19", "20-29"])
    t = tables["t"]
    policy = exact_policy(threshold=9, floor_zero=False)   # counts 1-9 hidden, 0 shown, the rest exact
    primary = {"t": primary_mask(t["count"].to_numpy(), policy)}
    assert primary["t"].sum() == 1
    monkeypatch.setattr(secondary, "MOVE_AFTER", 1)
    moved = _count_moves(monkeypatch)
    mask = secondary_suppress(tables, meta, am, policy, primary)["t"]
    assert moved == [1]
    hidden = set(zip(t.loc[mask, "area_code"], t.loc[mask, "age_band"]))
    assert hidden == {("r0", "0-9"), ("r0", "10-19"), ("r1", "0-9"), ("r1", "10-19")}
    ranges, bad = brute_force({"t": publish(t, mask, policy)}, am, policy)
    assert bad == []
    row = ranges["t"][((t["area_code"] == "r0") & (t["age_band"] == "0-9")).to_numpy()].iloc[0]
    # r0|a + r0|b = 53 - 30 = 23, r0|a + r1|a = 63 - 35 = 28, each hidden cell >= 1: r0|a in [1, 22]
    assert (round(row["lo"], 6), round(row["hi"], 6)) == (1.0, 22.0)


@pytest.mark.slow
@pytest.mark.parametrize("policy_name", preset_names())
def test_moves_from_the_first_round_leave_every_preset_safe(monkeypatch, policy_name):
    policy = load_policy(policy_name)
    tables, meta, am = make_release(3, 2, 4, seed=7)
    primary = {n: primary_mask(t["count"].to_numpy(), policy) for n, t in tables.items()}
    monkeypatch.setattr(secondary, "MOVE_AFTER", 1)
    moved = _count_moves(monkeypatch)
    points: dict = {}
    mask = secondary_suppress(tables, meta, am, policy, primary, points=points)
    assert sum(moved) > 0, "no leak was mended by a move: this case would not test them"
    published = {n: publish(tables[n], mask[n], policy) for n in tables}
    res = audit_release(published, meta, am, policy, hints=points)
    assert res.passed, str(res)
    assert audit_release(published, meta, am, policy).passed     # and without the moves' points
