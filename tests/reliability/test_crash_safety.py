"""Crash safety: `outcomes run` killed with SIGKILL at every named fault point
(and at arbitrary times) never harms the publication.

One clean run with ``OUTCOMES_FAULT_POINT=list`` publishes the baseline and
lists every point a run passes (reading, aggregation, suppression, audit,
publication). Then the run is killed at each point in turn, as a power cut
or the OOM killer would, with no chance to clean up. After each kill:

- the publication path opens, is whole, and serves either the same release
  file, byte-for-byte, or (only when killed after the link switched) the
  complete new release; every earlier release file is byte-for-byte intact;
- a reader that had the publication open and readers opening it afresh
  never fail;
- what the killed run left behind does not pile up: at most one of each kind
  (a temporary release file, a half-made link, a run-private folder under
  TMPDIR, a release renamed but never served), because each run removes the
  leftovers of dead runs before making its own;
- and after the last kill the next run succeeds and leaves nothing behind.

The quick test (default) kills at a representative point of each stage; the
slow one at every other point, at evenly spread times, and during rollback.
Together they cover every point. The disclosure step uses the exact policy
(no suppression), which keeps each run short; its fault points are passed
all the same.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ._support import (
    AUDIT_MISSING,
    State,
    audit_available,
    check_publication_opens,
    cli,
    cli_env,
    cli_popen,
    identifier_strings,
    leftovers,
    make_rows,
    run_audit,
    write_exact_policy,
    write_extract,
)
from ..pipelines.extract_builder import Places

pytestmark = pytest.mark.pipeline

ROWS = 60
SWITCHED = ("publication:switched", "published")  # the new release is served from here on
ROLLBACK_POINTS = ("rollback:copied", "rollback:recorded", "rollback:renamed", "publication:link-made")


def quick_points(points: list[str]) -> list[str]:
    """One point in each stage: reading, aggregation, suppression, writing the
    release, between rename and switch, between link and switch."""
    first_cube = next(p for p in points if p.startswith("cube:"))
    return ["alcohol_ae:staged", first_cube, "gate:suppressed", "publication:before-checkpoint",
            "publication:renamed", "publication:link-made"]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, reference_pack):
    """A publication made by one clean run that also lists the fault points."""
    root = tmp_path_factory.mktemp("crash")
    places = Places.from_pack(reference_pack)
    extract = write_extract(root / "ae.csv", make_rows(places, ROWS))
    policy = write_exact_policy(root)
    tmpdir = root / "tmp"
    tmpdir.mkdir()
    db = root / "pub" / "outcomes.duckdb"
    args = ["run", "alcohol_ae", "--input", str(extract), "--db", str(db), "--demo", "--policy", str(policy)]
    t0 = time.perf_counter()
    done = cli(args, cli_env(tmpdir, OUTCOMES_FAULT_POINT="list"))
    seconds = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr
    points = [line.split("fault-point: ", 1)[1].strip() for line in done.stderr.splitlines()
              if line.startswith("fault-point: ")]
    assert len(points) == len(set(points)) >= 20, points
    stages = {"locked", "alcohol_ae:staged", "alcohol_ae:cubes", "gate:suppressed", "gate:audited",
              "publication:created", "publication:before-checkpoint", "publication:renamed",
              "publication:link-made", "publication:switched", "published"}
    assert stages <= set(points)
    return {"root": root, "db": db, "args": args, "points": points, "seconds": seconds,
            "ids": identifier_strings(places)}


class Killer:
    """Kills runs against a private copy of the baseline publication and checks
    the invariants after each kill."""

    def __init__(self, baseline: dict, workdir: Path, audit_each: bool):
        self.workdir = workdir
        shutil.copytree(baseline["db"].parent, workdir / "pub", symlinks=True)
        self.db = workdir / "pub" / "outcomes.duckdb"
        self.tmpdir = workdir / "tmp"
        self.tmpdir.mkdir()
        self.args = [a if a != str(baseline["db"]) else str(self.db) for a in baseline["args"]]
        self.ids = baseline["ids"]
        self.audit_each = audit_each and audit_available()
        self.kills = 0
        self.switched = 0
        self.log: list[str] = []

    def env(self, point: str | None = None):
        return cli_env(self.tmpdir, **({"OUTCOMES_FAULT_POINT": point} if point else {}))

    def kill_at(self, point: str, command: list[str] | None = None) -> None:
        before = State.of(self.db)
        done = cli(command or self.args, self.env(point))
        assert done.returncode == -9, f"{point}: exit {done.returncode}, not killed: {done.stderr[-1500:]}"
        self._check(before, point, done.stdout + done.stderr, may_switch=point in SWITCHED and command is None)

    def kill_after(self, seconds: float) -> None:
        before = State.of(self.db)
        proc = cli_popen(self.args, self.env())
        time.sleep(seconds)
        proc.kill()
        out, err = proc.communicate()
        assert proc.returncode in (-9, 0), err[-1500:]
        self._check(before, f"{seconds:.1f}s", out + err, may_switch=True)

    def _check(self, before: State, label: str, output: str, may_switch: bool) -> None:
        self.kills += 1
        assert "Traceback" not in output, label
        assert not any(i in output for i in self.ids), label
        after = State.of(self.db)
        for name, digest in before.releases.items():
            if name in after.releases:
                assert after.releases[name] == digest, f"{label}: release {name} changed"
            else:
                assert name != before.served, f"{label}: the served release {name} was removed"
        facts = check_publication_opens(self.db)
        assert facts["attendances"] == ROWS, label
        if after.served != before.served:
            assert may_switch, f"{label}: the publication switched to {after.served} before the run was done"
            assert facts["previous"] == Path(before.served).stem, label
            self.switched += 1
        left = leftovers(self.db, self.tmpdir)
        for kind, items in left.items():
            assert len(items) <= 1, f"{label}: {kind} pile up: {items}"
        self.log.append(f"{label}: served {'new' if after.served != before.served else 'same'}; "
                        f"left {sum(len(v) for v in left.values())}")
        if self.audit_each or (after.served != before.served and audit_available()):
            self.audit(label)

    def audit(self, label: str) -> None:
        done = run_audit(self.db, self.env())
        assert done.returncode == 0, f"{label}: outcomes audit exit {done.returncode}: {done.stdout[-1500:]}"

    def finish(self) -> None:
        """The next run succeeds and leaves nothing behind."""
        done = cli(self.args, self.env())
        assert done.returncode == 0, done.stderr[-2000:]
        facts = check_publication_opens(self.db)
        assert facts["attendances"] == ROWS
        assert leftovers(self.db, self.tmpdir) == {
            "temporary release files": [], "half-made links": [], "run-private folders": [],
            "never-served releases": []}
        if audit_available():
            self.audit("after the last kill")


READER = textwrap.dedent("""
    import sys, time, duckdb, pathlib
    db, stop = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    held = duckdb.connect(str(db.resolve()), read_only=True)   # a dashboard with the release open
    held_count = held.execute("SELECT count(*) FROM catalogue").fetchone()[0]
    reads = errors = 0
    while not stop.exists():
        try:
            assert held.execute("SELECT count(*) FROM catalogue").fetchone()[0] == held_count
            fresh = duckdb.connect(str(db), read_only=True)             # a new reader
            fresh.execute("SELECT count(*) FROM alcohol_ae__all_attendances__la_month").fetchone()
            fresh.close()
            reads += 1
        except Exception as exc:
            errors += 1
            print("reader error:", type(exc).__name__, exc, flush=True)
        time.sleep(0.5)
    print(f"reads={reads} errors={errors}", flush=True)
""")


class Reader:
    def __init__(self, db: Path, workdir: Path):
        self.stop = workdir / "stop-reader"
        self.proc = subprocess.Popen([sys.executable, "-c", READER, str(db), str(self.stop)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def finish(self) -> str:
        self.stop.touch()
        out, _ = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, out
        assert "errors=0" in out and "reads=0" not in out, out
        return out


def test_killed_runs_leave_the_publication_intact(baseline, tmp_path):
    """Kills at one point in each stage (the rest are in the slow test)."""
    killer = Killer(baseline, tmp_path, audit_each=True)
    if audit_available():
        killer.audit("baseline")
    reader = Reader(killer.db, tmp_path)
    for point in quick_points(baseline["points"]):
        killer.kill_at(point)
    killer.finish()
    reader.finish()
    assert killer.kills == 6 and killer.switched == 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_killed_at_every_other_point_and_at_any_time(baseline, tmp_path):
    """Every fault point not covered by the quick test, kills at evenly spread
    times during a run, and kills during rollback. Two workers, each with its
    own copy of the publication and its own TMPDIR, share the work (the runs
    are mostly single-threaded)."""
    rest = [p for p in baseline["points"] if p not in quick_points(baseline["points"])]
    assert len(rest) + 6 == len(baseline["points"]) and len(rest) >= 14
    shares = [rest[0::2], rest[1::2]]
    killers = [Killer(baseline, tmp_path / f"worker{i}", audit_each=True) for i in range(2)]
    reader = Reader(killers[0].db, tmp_path)
    switched = [0, 0]

    def work(i: int) -> None:
        killer = killers[i]
        for point in shares[i]:
            killer.kill_at(point)
        switched[i] = killer.switched
        if i == 0:
            for fraction in (0.15, 0.35, 0.55, 0.75, 0.95):
                killer.kill_after(fraction * baseline["seconds"])
        else:
            served = State.of(killer.db).served
            rollback = ["rollback", "--db", str(killer.db), "--reason", "crash test"]
            for point in ROLLBACK_POINTS:
                killer.kill_at(point, rollback)
                assert State.of(killer.db).served == served, point
        killer.finish()

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(work, i) for i in range(2)]:
            future.result()
    reader.finish()
    assert sum(switched) == len(SWITCHED)
    assert sum(k.kills for k in killers) == len(rest) + 5 + len(ROLLBACK_POINTS)


def test_outcomes_audit_is_available():
    """The crash tests run `outcomes audit` after kills when it exists."""
    if not audit_available():
        pytest.skip(AUDIT_MISSING)
