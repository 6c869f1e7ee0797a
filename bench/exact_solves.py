"""Where an exact whole-model solve's time goes, on a real component of the scale benchmark.

    python bench/exact_solves.py [--size 100000] [--cells 150] [--option NAME=VALUE ...]

Builds the ``disclosure_scale`` release of the given size, runs the suppression
engine until its first check of a component with at least ``--min-vars``
variables, and takes that component (rows, bounds, target cells) as the engine
saw it (a few seconds at 10^5 cells, so it is taken afresh each run and always
matches the engine's current code). Then, on that component:

1. the stages before the exact one (sweeps, capped sweeps, local LPs), as
   ``lp.protect_ranges`` runs them, to find the cells they leave undecided;
2. for the first ``--cells`` of those, an exact minimum and maximum each, as the
   exact stage does (``lp.ComponentLP``, warm-started primal simplex), timing
   every solve and counting its simplex iterations;
3. the same solves again with each ``--option`` set on the HiGHS model (for
   example ``simplex_primal_edge_weight_strategy=0``), in the same run;
4. HiGHS's fixed cost: re-running a model whose basis is already optimal.

Prints per variant: seconds, mean and median milliseconds a solve, iterations,
and the time relative to the default measured in the same run; and whether the
optimal values agree with the default's. Wall times are noisy: compare the
ratios within one run; no test asserts a time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import disclosure_scale  # noqa: E402
from pipelines.framework.disclosure import audit, lp  # noqa: E402
from pipelines.framework.disclosure.policy import load_policy  # noqa: E402
from pipelines.framework.disclosure.primary import primary_mask  # noqa: E402
from pipelines.framework.disclosure.secondary import secondary_suppress  # noqa: E402


class _Captured(Exception):
    """Raised from the hooked ``protect_ranges`` to stop the engine once it has its component."""


def capture_component(size: int, policy_name: str, min_vars: int) -> tuple:
    """(A, row_lo, row_hi, targets, threshold, width) of the engine's first check of a
    component with at least ``min_vars`` variables, in this process (no workers)."""
    months, n_la, wpl = disclosure_scale.SIZES[size]
    tables, meta, am = disclosure_scale.make_release(months, n_la, wpl)
    policy = load_policy(policy_name)
    primary = {n: primary_mask(t["count"].to_numpy(), policy) for n, t in tables.items()}
    seen: dict = {}
    original = audit.protect_ranges

    def hook(A, row_lo, row_hi, targets, threshold, width, **kwargs):
        seen["largest"] = max(seen.get("largest", 0), A.shape[1])
        if A.shape[1] >= min_vars:
            seen["component"] = (sp.csr_matrix(A), np.asarray(row_lo), np.asarray(row_hi),
                                 np.asarray(targets), threshold, width)
            raise _Captured
        return original(A, row_lo, row_hi, targets, threshold, width, **kwargs)

    audit.protect_ranges = hook
    audit_map = audit.map_components
    # every component checked in this process (not in a worker), so the hook sees it
    audit.map_components = lambda fn, jobs, big: [fn(j) for j in jobs]
    try:
        secondary_suppress(tables, meta, am, policy, primary)
    except _Captured:
        pass
    finally:
        audit.protect_ranges = original
        audit.map_components = audit_map
    if "component" not in seen:
        raise SystemExit(f"no component of {min_vars} variables or more at size {size} "
                         f"(the largest checked had {seen.get('largest', 0)}; see --min-vars)")
    return seen["component"]


def _option(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    for cast in (int, float):
        try:
            return name, cast(value)
        except ValueError:
            pass
    return name, value


def time_solves(A, row_lo, row_hi, AT, cells: np.ndarray, options: list[tuple[str, object]]) -> dict:
    """A minimum and a maximum of each cell, warm-started one after the other."""
    model = lp.ComponentLP(A, row_lo, row_hi)
    model.first_solve()
    for name, value in options:
        model.h.setOptionValue(name, value)
    times, iterations, values = [], [], []
    for t in cells:
        row = AT[t]
        for maximize in (False, True):
            start = time.perf_counter()
            status, x, _ = model.solve(row.indices, row.data, maximize)
            times.append(time.perf_counter() - start)
            iterations.append(model.h.getInfo().simplex_iteration_count)
            values.append(round(float((row @ x)[0]), 6) if status == "optimal" else status)
    rerun = []
    for _ in range(20):
        start = time.perf_counter()
        model.h.run()
        rerun.append(time.perf_counter() - start)
    return {"times": np.array(times), "iterations": np.array(iterations), "values": values,
            "rerun": float(np.median(rerun))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000, choices=sorted(disclosure_scale.SIZES))
    ap.add_argument("--policy", default="nhs-digital")
    ap.add_argument("--min-vars", type=int, default=None,
                    help="smallest component to take (default: 15,000 at 10^5 and above, else 300)")
    ap.add_argument("--cells", type=int, default=150, help="undecided cells to solve for (a minimum and a maximum each)")
    ap.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                    help="a HiGHS option for a variant run (repeatable; each is its own variant)")
    args = ap.parse_args(argv)
    min_vars = args.min_vars or (15_000 if args.size >= 100_000 else 300)
    A, row_lo, row_hi, targets, threshold, width = capture_component(args.size, args.policy, min_vars)
    print(f"component: {A.shape[1]:,} variables, {A.shape[0]:,} rows, {len(targets):,} target cells", flush=True)
    start = time.perf_counter()
    before = lp.protect_ranges(A, row_lo, row_hi, targets, threshold, width, want_binding=True, seed=1,
                               max_exact=0)
    undecided = np.flatnonzero(~before.safe)
    print(f"stages before the exact one: {time.perf_counter() - start:.1f} s, {len(undecided):,} cells left "
          f"undecided", flush=True)
    cells = undecided[:args.cells]
    AT = sp.csr_matrix(A)[targets]
    variants = [("default", [])] + [(text, [_option(text)]) for text in args.option]
    base = None
    print(f"{'variant':<45} {'seconds':>8} {'mean ms':>8} {'median ms':>9} {'p90 ms':>7} {'iters':>7} "
          f"{'ratio':>6}  same values")
    for label, options in variants:
        r = time_solves(A, row_lo, row_hi, AT, cells, options)
        total = float(r["times"].sum())
        base = base or (total, r["values"])
        print(f"{label:<45} {total:8.2f} {1e3 * r['times'].mean():8.1f} {1e3 * np.median(r['times']):9.1f} "
              f"{1e3 * np.percentile(r['times'], 90):7.1f} {int(r['iterations'].sum()):7d} {total / base[0]:6.2f}  "
              f"{r['values'] == base[1]}", flush=True)
        if label == "default":
            print(f"  HiGHS's fixed cost: a re-run from an optimal basis takes {1e3 * r['rerun']:.1f} ms; "
                  f"{int((r['iterations'] <= 2).sum())} of {len(r['iterations'])} solves took at most two "
                  "iterations", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
