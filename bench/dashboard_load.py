"""Dashboard under load: N simulated users against `outcomes serve`.

Starts `outcomes serve` on a free port against a demo publication (built
here from `outcomes samples` + `outcomes run --demo`, or an existing one
given with --db), then, in one run:

1. warm-up: one session visits every page once (the first visit of a page
   after a new release fills the server's caches; both phases below measure
   warm pages, as most visits are);
2. baseline: ONE user browses for --baseline-seconds (default: as long as
   the load), visiting every page in turn (a shuffled order each round), so
   that its page mix is the uniform mix the load users draw from;
3. load: --users users (default 20) browse together for --seconds (60),
   arriving over the first --think seconds.

Each user is a websocket session speaking Streamlit's own protocol (the
protobufs that ship with streamlit: BackMsg / ForwardMsg), as the browser
does: it connects to /_stcore/stream, asks for a page (a ``rerun_script``
BackMsg naming the page, as the browser sends on navigation), reads every
ForwardMsg the server sends, and takes the page as done when the server says
the script finished. It then pauses --think seconds (2, like a person
reading) and picks another page at random (pages from the app's own
navigation message), or now and then re-runs the same page (a click). It
also honours the server's auto-rerun requests (the fragment that checks for
a new release every 3 s), as a browser tab does, so the server carries that
load too; those runs are counted for errors but not timed as pages.

Page time is measured from sending the request to the script-finished
message: the server's whole work for the page (script run, queries, charts,
serialisation) plus the websocket transfer of every element, but not the
browser's drawing. Why not real browsers: 20 Chromium contexts on 2 cores
would spend most of the CPU drawing and measure the load generator rather
than the server; this client costs little CPU (it only parses protobufs), so
what is measured is the server under 20 sessions.

Errors (must be 0): an exception element on a page, a script that did not
finish successfully, a dropped connection, or no answer within --timeout.

Server memory: the RSS of the server's whole process tree (psutil), sampled
every 0.5 s; the peak in each phase is printed. So is the server's CPU (user
+ system of the tree over the phase): how many of the cores it kept busy,
and CPU seconds per page. Streamlit runs every session's script in threads
of one Python process, so where that stays near 1 core while pages queue,
the limit is the interpreter lock, not the machine.

Target (issue 6): p95 at 20 users under 3x the single-user p95.

    python bench/dashboard_load.py [--users 20] [--seconds 60] [--think 2]
                                   [--baseline-seconds S] [--db PATH]
                                   [--rows-per-year 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dashboard.balancer import answers_health_check, default_workers, free_port  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proc_tree import tree_sum  # noqa: E402
from st_client import Session, Stats  # noqa: E402
BIN = Path(sys.executable).parent


# ---------------------------------------------------------------------------
# The publication and the server
# ---------------------------------------------------------------------------

def build_publication(workdir: Path, rows_per_year: int) -> Path:
    samples = workdir / "samples"
    db = workdir / "var" / "outcomes.duckdb"
    env = dict(os.environ, OUTCOMES_SAMPLES=str(samples))
    t = time.perf_counter()
    subprocess.run([str(BIN / "outcomes"), "samples", "--rows-per-year", str(rows_per_year), "--out", str(samples)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([str(BIN / "outcomes"), "run", "--demo", "--db", str(db)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    print(f"built a demo publication ({rows_per_year:,} A&E rows a year) in {time.perf_counter() - t:.0f} s: {db}")
    return db


def start_server(db: Path, port: int, log: Path, workers: int) -> subprocess.Popen:
    out = open(log, "wb")
    proc = subprocess.Popen([str(BIN / "outcomes"), "serve", "--db", str(db), "--port", str(port),
                             "--workers", str(workers)],
                            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if answers_health_check(f"http://127.0.0.1:{port}"):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    stop_server(proc)
    raise SystemExit("the server did not start:\n" + log.read_text(errors="replace")[-3000:])


def stop_server(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by the server's process tree."""
    def cpu(q: psutil.Process) -> float:
        t = q.cpu_times()
        return t.user + t.system
    return float(tree_sum(pid, cpu))


def tree_rss(pid: int) -> int:
    return int(tree_sum(pid, lambda q: q.memory_info().rss))


# ---------------------------------------------------------------------------
# A simulated user (the websocket client: bench/st_client.py)
# ---------------------------------------------------------------------------

async def user(url: str, stats: Stats, until: float, think: float, timeout: float, rng: random.Random,
               start_delay: float, cycle: bool = False) -> None:
    await asyncio.sleep(start_delay)  # people do not all arrive in the same millisecond
    s = Session(url, stats, timeout)
    try:
        await s.connect()
    except Exception as exc:
        stats.errors.append(f"connect: {type(exc).__name__}")
        return
    try:
        await s.visit("")  # the landing page, as a browser's first request
        queue: list[str] = []
        while time.monotonic() < until:
            await asyncio.sleep(think)
            if time.monotonic() >= until:
                break
            pages = s.pages or [""]
            if cycle:  # every page in turn, in a shuffled order each round
                if not queue:
                    queue = rng.sample(pages, len(pages))
                page = queue.pop()
            else:
                page = s.page if rng.random() < 0.2 else rng.choice(pages)
            await s.visit(page)
    finally:
        await s.close()


async def phase(url: str, users: int, seconds: float, think: float, timeout: float, seed: int,
                server_pid: int, cycle: bool = False) -> tuple[Stats, int]:
    stats = Stats()
    until = time.monotonic() + seconds
    peak = 0

    async def sample():
        nonlocal peak
        while True:
            peak = max(peak, tree_rss(server_pid))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    cpu0, wall0 = tree_cpu(server_pid), time.monotonic()
    rng = random.Random(seed)
    await asyncio.gather(*(user(url, stats, until, think, timeout, random.Random(rng.random()),
                                start_delay=0 if cycle else rng.uniform(0, think), cycle=cycle)
                           for _ in range(users)))
    sampler.cancel()
    stats.server_cpu, stats.wall = tree_cpu(server_pid) - cpu0, time.monotonic() - wall0
    return stats, peak


async def warm_up(url: str, timeout: float, workers: int) -> Stats:
    """One session per worker process, all at once (so the balancer puts one on each),
    each visiting every page: every worker's caches are filled before anything is timed."""
    stats = Stats()
    sessions = [Session(url, stats, timeout) for _ in range(workers)]
    for s in sessions:
        await s.connect()

    async def visit_all(s: Session) -> None:
        await s.visit("")
        for p in list(s.pages):
            await s.visit(p)
        await s.close()

    await asyncio.gather(*(visit_all(s) for s in sessions))
    return stats


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def report(name: str, stats: Stats, peak: int, seconds: float) -> None:
    t = stats.times
    print(f"{name:<22} pages {len(t):>5}  ({len(t) / seconds:5.1f}/s)  p50 {pct(t, .5) * 1000:7.0f} ms  "
          f"p95 {pct(t, .95) * 1000:7.0f} ms  max {max(t, default=float('nan')) * 1000:7.0f} ms  "
          f"errors {len(stats.errors)}  fragment runs {stats.fragment_runs}  "
          f"server RSS peak {peak / 2**20:,.0f} MiB")
    if stats.wall:
        print(f"{'':<22} server CPU {stats.server_cpu / stats.wall:4.2f} cores busy on average "
              f"({stats.server_cpu / max(len(t), 1):.2f} CPU-s per page, fragment runs included)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--baseline-seconds", type=float, default=None, help="default: --seconds")
    ap.add_argument("--think", type=float, default=2.0, help="pause between a user's actions (s)")
    ap.add_argument("--timeout", type=float, default=120.0, help="longest wait for one page (s)")
    ap.add_argument("--db", help="an existing publication (default: build a demo one)")
    ap.add_argument("--rows-per-year", type=int, default=100_000, help="A&E rows a year of the demo publication")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--workers", type=int, default=None,
                    help="`outcomes serve --workers` (default: its own default; 1 = one Streamlit process)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="dashboard-load-") as tmp:
        work = Path(tmp)
        db = Path(args.db) if args.db else build_publication(work, args.rows_per_year)
        port = free_port()
        workers = args.workers if args.workers is not None else default_workers()
        proc = start_server(db, port, work / "serve.log", workers)
        url = f"http://127.0.0.1:{port}"
        try:
            idle = tree_rss(proc.pid)
            t = time.perf_counter()
            warm = asyncio.run(warm_up(url, args.timeout, workers))
            print(f"server {url} ({workers} worker process{'es' if workers > 1 else ''}), "
                  f"{os.cpu_count()} CPUs; idle RSS {idle / 2**20:,.0f} MiB; warm-up visited "
                  f"{len(warm.times)} pages in {time.perf_counter() - t:.1f} s "
                  f"({', '.join(f'{p} {v[0] * 1000:.0f} ms' for p, v in warm.by_page.items())})")
            if warm.errors:
                print("warm-up errors:", warm.errors)
            base, base_peak = asyncio.run(phase(url, 1, args.baseline_seconds or args.seconds, args.think,
                                                args.timeout, args.seed, proc.pid, cycle=True))
            load, load_peak = asyncio.run(phase(url, args.users, args.seconds, args.think, args.timeout,
                                                args.seed + 1, proc.pid))
            end_rss = tree_rss(proc.pid)
        finally:
            stop_server(proc)
        print(f"\nthink time {args.think:g} s between actions; page time = request to script finished")
        report("1 user (baseline)", base, base_peak, args.baseline_seconds or args.seconds)
        report(f"{args.users} users", load, load_peak, args.seconds)
        print(f"server RSS after the load: {end_rss / 2**20:,.0f} MiB")
        print("\np95 by page (ms):  page         1 user   " + f"{args.users} users")
        for p in sorted(set(base.by_page) | set(load.by_page)):
            b, lo = base.by_page.get(p, []), load.by_page.get(p, [])
            print(f"                   {p:<12} {pct(b, .95) * 1000:7.0f}  {pct(lo, .95) * 1000:9.0f}   "
                  f"(n={len(b)}/{len(lo)})")
        ratio = pct(load.times, .95) / pct(base.times, .95)
        ratio50 = pct(load.times, .5) / pct(base.times, .5)
        errors = base.errors + load.errors + warm.errors
        met = ratio < 3 and not errors
        print(f"\np95 ratio ({args.users} users / 1 user): {ratio:.2f}x   (p50 ratio {ratio50:.2f}x)")
        print(f"target: p95 under 3x the single-user time, 0 errors: {'MET' if met else 'NOT MET'}")
        if errors:
            from collections import Counter
            print("errors:", dict(Counter(errors)))
        return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
