"""Scale benchmark of secondary suppression and the LP audit.

Builds one measure's hierarchical release (top area > local authorities >
wards, every ward one LSOA) as two tables:

* top + LAs + wards by month x sex (4 incl. All) x broad age band (8 incl. All),
* LAs + wards by financial quarter, sex All, age All (linked to the first
  through months within quarters),

with Poisson counts whose means vary by ward (many small cells; fixed seed),
then runs ``secondary_suppress`` and ``audit_release`` for sizes of about
10^3, 10^4, 10^5 and 10^6 cells, printing time and peak memory per size and
the fitted growth exponent (log-log slope of time against cells).

    python bench/disclosure_scale.py --max-cells 100000 [--policy nhs-digital]
    python bench/disclosure_scale.py --max-cells 1000000 --size-timeout 900

With ``--size-timeout`` each size runs in its own process (own process group) and a size
that has not finished in time is stopped and reported as such (the exponent is then fitted
to the sizes that finished).

Peak memory is reported twice: the process's peak RSS growth while the size ran (psutil,
sampled every 50 ms; HiGHS's C++ allocations included), and the peak of the whole job,
this process and its worker processes, as their proportional set size summed (shared
pages counted once; ``/proc/PID/smaps_rollup``, sampled every 0.5 s). The second is the
one issue 3's target ("10^6 cells completing within 4 GB") is read against: the engine
checks large components in forked workers, whose memory the first figure misses.
``--tracemalloc``
adds tracemalloc's peak of Python allocations, but slows the run about
tenfold, so times are only meaningful without it.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.framework.disclosure.audit import audit_release  # noqa: E402
from pipelines.framework.disclosure.meta import TableMeta  # noqa: E402
from pipelines.framework.disclosure.policy import load_policy  # noqa: E402
from pipelines.framework.disclosure.primary import primary_mask, round_counts  # noqa: E402
from pipelines.framework.disclosure.secondary import secondary_suppress  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proc_tree import pss_bytes, tree_sum  # noqa: E402

SIZES = {
    # cells: (months, local authorities, wards per LA)
    1_000: (3, 2, 3),
    10_000: (12, 4, 5),
    100_000: (12, 10, 25),
    1_000_000: (24, 20, 65),
}
SEX = ["Female", "Male", "Other or not known"]
AGE = ["0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"]


def make_release(months: int, n_la: int, wards_per_la: int, seed: int = 1):
    """Return (true tables, meta, area_members) for one measure."""
    rng = np.random.default_rng(seed)
    wards = [f"W{la:03d}{w:03d}" for la in range(n_la) for w in range(wards_per_la)]
    las = [f"LA{la:03d}" for la in range(n_la)]
    ward_la = np.repeat(np.arange(n_la), wards_per_la)
    am = pd.DataFrame({
        "area_code": wards + [las[i] for i in ward_la] + ["TOP"] * len(wards),
        "lsoa_code": wards * 3,
    })
    month_starts = pd.date_range("2023-04-01", periods=months, freq="MS")
    # ward x month x sex x age fine counts: many small ones
    base = rng.gamma(0.8, 2.5, size=len(wards))
    sex_w = np.array([1.0, 0.9, 0.05])
    age_w = np.array([1.2, 0.6, 0.8, 0.8, 0.9, 1.0, 1.4])
    lam = base[:, None, None, None] * sex_w[None, None, :, None] * age_w[None, None, None, :] \
        * np.ones((1, months, 1, 1))
    fine = rng.poisson(lam)                                    # ward, month, sex, age
    # aggregate to every level incl. All margins
    def margins(arr):  # arr: area x month x sex x age -> area x month x 4 x 8
        out = np.zeros(arr.shape[:2] + (4, 8), dtype=np.int64)
        out[:, :, :3, :7] = arr
        out[:, :, 3, :7] = arr.sum(axis=2)
        out[:, :, :, 7] = out[:, :, :, :7].sum(axis=3)
        return out
    ward_c = margins(fine)
    la_c = margins(np.stack([fine[ward_la == i].sum(axis=0) for i in range(n_la)]))
    top_c = margins(fine.sum(axis=0, keepdims=True))
    codes = ["TOP"] + las + wards
    levels = ["region"] + ["la"] * n_la + ["ward"] * len(wards)
    allc = np.concatenate([top_c, la_c, ward_c])               # area x month x 4 x 8
    A, M, S, G = np.meshgrid(np.arange(len(codes)), np.arange(months), np.arange(4), np.arange(8), indexing="ij")
    ms = month_starts[M.ravel()]
    t1 = pd.DataFrame({
        "area_code": np.array(codes)[A.ravel()],
        "area_level": np.array(levels)[A.ravel()],
        "period_start": ms,
        "period_end": ms + pd.offsets.MonthEnd(0),
        "provisional": False,
        "sex": np.array(SEX + ["All"])[S.ravel()],
        "age_band": np.array(AGE + ["All"])[G.ravel()],
        "count": allc.ravel(),
    })
    # quarterly table for LAs and wards, all ages / sexes
    nq = months // 3
    q_tot = allc[1:, : nq * 3, 3, 7].reshape(len(codes) - 1, nq, 3).sum(axis=2)
    qs = pd.date_range("2023-04-01", periods=nq, freq="3MS")
    Aq, Q = np.meshgrid(np.arange(1, len(codes)), np.arange(nq), indexing="ij")
    t2 = pd.DataFrame({
        "area_code": np.array(codes)[Aq.ravel()],
        "area_level": np.array(levels)[Aq.ravel()],
        "period_start": qs[Q.ravel()],
        "period_end": qs[Q.ravel()] + pd.offsets.MonthEnd(3),
        "provisional": False,
        "count": q_tot.ravel(),
    })
    tables = {"monthly": t1, "quarterly": t2}
    meta = {
        "monthly": TableMeta("monthly", "bench", "attendances", ("sex", "age_band"),
                             ("area", "period", "sex", "age_band")),
        "quarterly": TableMeta("quarterly", "bench", "attendances", (), ("area", "period")),
    }
    return tables, meta, am


class _RssPeak:
    def __init__(self):
        import psutil
        self.proc = psutil.Process()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        #: peak of the summed proportional set size of this process and its children (bytes)
        self.tree_pss_peak = 0

    def _tree_pss(self) -> int:
        return int(tree_sum(self.proc.pid, pss_bytes))

    def _run(self):
        tick = 0
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            if tick % 10 == 0:
                self.tree_pss_peak = max(self.tree_pss_peak, self._tree_pss())
            tick += 1
            time.sleep(0.05)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.tree_pss_peak = max(self.tree_pss_peak, self._tree_pss())


def run_size(target: int, policy_name: str, trace: bool = True, no_hints: bool = False) -> dict:
    months, n_la, wpl = SIZES[target]
    tables, meta, am = make_release(months, n_la, wpl)
    policy = load_policy(policy_name)
    cells = sum(len(t) for t in tables.values())
    if trace:
        tracemalloc.start()
    with _RssPeak() as rss:
        t0 = time.perf_counter()
        primary = {n: primary_mask(t["count"].to_numpy(), policy) for n, t in tables.items()}
        # as the gate does: the engine's feasible points are handed to the audit, which
        # checks each before it uses it (``--no-hints``: the audit finds its own)
        points: dict | None = None if no_hints else {}
        mask = secondary_suppress(tables, meta, am, policy, primary, points=points)
        t1 = time.perf_counter()
        published = {}
        for n, t in tables.items():
            v = round_counts(t["count"].to_numpy(), policy).astype(float)
            v[mask[n]] = np.nan
            out = t.drop(columns=["count"]).copy()
            out["count"] = pd.array(np.where(np.isnan(v), pd.NA, v), dtype="Int64")
            published[n] = out
        res = audit_release(published, meta, am, policy, hints=points)
        t2 = time.perf_counter()
    py_peak = tracemalloc.get_traced_memory()[1] if trace else 0
    if trace:
        tracemalloc.stop()
    return {
        "cells": cells,
        "primary": int(sum(p.sum() for p in primary.values())),
        "secondary": int(sum((mask[n] & ~primary[n]).sum() for n in tables)),
        "suppress_s": t1 - t0,
        "audit_s": t2 - t1,
        "total_s": t2 - t0,
        "rss_peak_mb": (rss.peak - rss.base) / 2**20,
        "job_pss_peak_mb": rss.tree_pss_peak / 2**20,
        "py_peak_mb": py_peak / 2**20,
        "passed": res.passed,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-cells", type=int, default=100_000, help="largest size to run (1e3 .. 1e6)")
    ap.add_argument("--policy", default="nhs-digital")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also trace Python allocations (slows this code about tenfold; RSS is always measured)")
    ap.add_argument("--no-tracemalloc", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--size-timeout", type=float, default=None, metavar="SECONDS",
                    help="run each size in its own process and stop it after this long")
    ap.add_argument("--no-hints", action="store_true",
                    help="the audit does not start from the engine's feasible points (as before the eighth session)")
    ap.add_argument("--only", type=int, default=None, metavar="CELLS",
                    help="run one size only (1000, 10000, 100000 or 1000000) and print its result as JSON")
    args = ap.parse_args(argv)
    if args.only is not None:
        import json
        r = run_size(args.only, args.policy, trace=args.tracemalloc and not args.no_tracemalloc,
                     no_hints=args.no_hints)
        print("RESULT " + json.dumps(r), flush=True)
        return 0
    rows = []
    for target in sorted(SIZES):
        if target > args.max_cells:
            break
        if args.size_timeout:
            r = _run_isolated(target, args)
            if r is None:
                print(f"~{target:>8} cells  did not finish within {args.size_timeout:.0f}s (stopped)", flush=True)
                break
        else:
            r = run_size(target, args.policy, trace=args.tracemalloc and not args.no_tracemalloc,
                         no_hints=args.no_hints)
        rows.append(r)
        print(f"{r['cells']:>9} cells  primary {r['primary']:>7}  secondary {r['secondary']:>6}  "
              f"suppress {r['suppress_s']:8.2f}s  audit {r['audit_s']:8.2f}s  total {r['total_s']:8.2f}s  "
              f"peak RSS +{r['rss_peak_mb']:7.0f} MB  job PSS {r['job_pss_peak_mb']:7.0f} MB  "
              f"python peak {r['py_peak_mb']:7.0f} MB  "
              f"audit {'passed' if r['passed'] else 'FAILED'}", flush=True)
    if len(rows) >= 2:
        x = np.log([r["cells"] for r in rows])
        y = np.log([r["total_s"] for r in rows])
        slope = np.polyfit(x, y, 1)[0]
        print(f"growth exponent (log-log slope of total time vs cells): {slope:.2f}")
    return 0


def _run_isolated(target: int, args) -> dict | None:
    """One size in a child process (own session, so its worker processes stop with it)."""
    import json
    import os
    import signal
    import subprocess

    cmd = [sys.executable, __file__, "--only", str(target), "--policy", args.policy]
    if args.tracemalloc:
        cmd.append("--tracemalloc")
    if args.no_hints:
        cmd.append("--no-hints")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=args.size_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return None


if __name__ == "__main__":
    raise SystemExit(main())
