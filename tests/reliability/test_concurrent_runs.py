"""Two runs at once against the same publication: the lock makes one wait
(`--wait`) or fail clearly (exit 3, "another run is publishing"); the result
is never a corrupt or half-merged file: it opens, every table reads in full,
and the releases form one chain with no run lost.
"""

from __future__ import annotations

import signal
import time

import duckdb
import pytest

from pipelines.framework.publication import releases_dir

from ._support import (
    AUDIT_MISSING,
    State,
    audit_available,
    check_publication_opens,
    cli_env,
    cli_popen,
    leftovers,
    make_rows,
    run_audit,
    write_exact_policy,
    write_extract,
)
from ..pipelines.extract_builder import Places

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def extracts(tmp_path_factory, reference_pack):
    root = tmp_path_factory.mktemp("concurrent")
    places = Places.from_pack(reference_pack)
    policy = write_exact_policy(root)
    files = {n: write_extract(root / f"ae{n}.csv", make_rows(places, n, prefix=f"C{n}-")) for n in (60, 70, 80, 90)}
    return {"files": files, "policy": policy}


def _args(extracts, n, db, *extra):
    return ["run", "alcohol_ae", "--input", str(extracts["files"][n]), "--db", str(db), "--demo",
            "--policy", str(extracts["policy"]), *extra]


def read_everything(db) -> dict[str, int]:
    """Every table of the publication, read in full."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        return {t: len(con.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables}
    finally:
        con.close()


def release_chain(db) -> list[str]:
    """Release ids from the served one back through previous_release_id."""
    rdir = releases_dir(db)
    chain, path = [], db.resolve()
    while path is not None and path.exists():
        con = duckdb.connect(str(path), read_only=True)
        try:
            rid, prev = con.execute("SELECT release_id, previous_release_id FROM release").fetchone()
        finally:
            con.close()
        chain.append(rid)
        path = rdir / f"{prev}.duckdb" if prev else None
    return chain


def _check_result(db, tmp, runs_expected: int) -> None:
    facts = check_publication_opens(db)
    sizes = read_everything(db)
    assert sizes["runs"] == runs_expected
    assert sum(sizes.values()) > 1000
    chain = release_chain(db)
    assert len(chain) == runs_expected and len(set(chain)) == runs_expected
    con = duckdb.connect(str(db), read_only=True)
    try:
        released = {r[0] for r in con.execute("SELECT release_id FROM runs WHERE action = 'run'").fetchall()}
    finally:
        con.close()
    assert released == set(chain)  # every run is in the history, none lost
    assert not any(leftovers(db, tmp).values())
    if audit_available():
        done = run_audit(db, cli_env(tmp))
        assert done.returncode == 0, done.stdout[-1500:]
    return facts


def test_two_runs_started_together_one_waits(extracts, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    db = tmp_path / "pub" / "outcomes.duckdb"
    env = cli_env(tmp)
    procs = {n: cli_popen(_args(extracts, n, db, "--wait", "600"), env) for n in (60, 70)}
    results = {n: (p.wait(timeout=900), p.stdout.read(), p.stderr.read()) for n, p in procs.items()}
    for n, (code, _out, err) in results.items():
        assert code == 0, err[-2000:]
        assert "Traceback" not in err
    facts = _check_result(db, tmp, runs_expected=2)
    assert facts["attendances"] in (60, 70)


def _start_and_hold_lock(args, env):
    """Start a run and stop it (SIGSTOP) the moment it holds the lock."""
    proc = cli_popen(args, dict(env, OUTCOMES_FAULT_POINT="list"))
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.strip() == "fault-point: locked":
            proc.send_signal(signal.SIGSTOP)
            return proc, lines
    raise AssertionError("the run ended before taking the lock: " + "".join(lines)[-2000:])


def test_second_run_without_wait_fails_clearly(extracts, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    db = tmp_path / "pub" / "outcomes.duckdb"
    env = cli_env(tmp)
    first, _ = _start_and_hold_lock(_args(extracts, 60, db), env)
    try:
        second = cli_popen(_args(extracts, 70, db), env)
        out, err = second.communicate(timeout=600)
    finally:
        first.send_signal(signal.SIGCONT)
    text = " ".join(err.split())
    assert second.returncode == 3, text
    assert "another run is publishing" in text and "--wait" in text and "Traceback" not in text
    rest = first.stderr.read()
    assert first.wait(timeout=600) == 0, rest[-2000:]
    facts = _check_result(db, tmp, runs_expected=1)
    assert facts["attendances"] == 60


@pytest.mark.slow
def test_second_run_with_wait_publishes_after_the_first(extracts, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    db = tmp_path / "pub" / "outcomes.duckdb"
    env = cli_env(tmp)
    first, _ = _start_and_hold_lock(_args(extracts, 60, db), env)
    try:
        second = cli_popen(_args(extracts, 70, db, "--wait", "600"), env)
        time.sleep(6)  # long enough to reach the lock and wait on it
        assert second.poll() is None, "the second run did not wait"
        assert not db.exists()
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=600) == 0
    assert second.wait(timeout=600) == 0, second.stderr.read()[-2000:]
    facts = _check_result(db, tmp, runs_expected=2)
    assert facts["attendances"] == 70  # the waiting run published last, on top of the first


@pytest.mark.slow
def test_four_runs_started_together_all_publish_in_turn(extracts, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    db = tmp_path / "pub" / "outcomes.duckdb"
    env = cli_env(tmp)
    procs = [cli_popen(_args(extracts, n, db, "--wait", "900"), env) for n in (60, 70, 80, 90)]
    for p in procs:
        assert p.wait(timeout=1200) == 0, p.stderr.read()[-2000:]
    _check_result(db, tmp, runs_expected=4)
    assert len(State.of(db).releases) == 4


def test_outcomes_audit_is_available_for_concurrency_checks():
    if not audit_available():
        pytest.skip(AUDIT_MISSING)
