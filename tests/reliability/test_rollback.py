"""Withdrawing a bad release: `outcomes rollback --reason` serves the previous
kept release again, atomically, records why in `runs`, and a new reader sees
it; successive rollbacks go further back; with no earlier release it fails
clearly and changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.cli import main

from ._support import (
    State,
    check_publication_opens,
    cli,
    cli_env,
    leftovers,
    make_rows,
    write_exact_policy,
    write_extract,
)
from .conftest import copy_publication
from ..pipelines.extract_builder import Places

pytestmark = pytest.mark.pipeline

SIZES = (60, 70, 80)  # three releases whose totals tell them apart


def count_tables(db) -> dict[str, list]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM catalogue WHERE kind = 'count' ORDER BY 1").fetchall()]
        return {n: con.execute(f'SELECT * FROM "{n}" ORDER BY ALL').fetchall() for n in names}
    finally:
        con.close()


@pytest.fixture(scope="module")
def three_releases(tmp_path_factory, reference_pack, fast_pipeline):
    root = tmp_path_factory.mktemp("rollback")
    places = Places.from_pack(reference_pack)
    policy = write_exact_policy(root)
    db = root / "pub" / "outcomes.duckdb"
    extracts = [write_extract(root / f"ae{n}.csv", make_rows(places, n)) for n in SIZES]
    releases = []
    for extract in extracts:
        assert main(["run", "alcohol_ae", "--input", str(extract), "--db", str(db), "--demo",
                     "--policy", str(policy)]) == 0
        releases.append({"file": db.resolve().name, "facts": check_publication_opens(db),
                         "tables": count_tables(db)})
    assert [r["facts"]["attendances"] for r in releases] == list(SIZES)
    return {"db": db, "releases": releases, "extracts": extracts, "policy": policy}


@pytest.fixture
def pub(three_releases, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)
    return copy_publication(three_releases["db"], tmp_path / "pub")


def _runs(db) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT action, release_id, note FROM runs ORDER BY finished_at").fetchall()
    finally:
        con.close()


def test_rollback_restores_the_previous_release_and_records_why(three_releases, pub, capsys):
    r1, r2, r3 = three_releases["releases"]
    before = State.of(pub)
    assert before.served == r3["file"]
    # a dashboard has the withdrawn release open while it is withdrawn
    held = duckdb.connect(str(pub.resolve()), read_only=True)
    try:
        assert main(["rollback", "--db", str(pub), "--reason", "wrong code list in release 3"]) == 0
        assert held.execute("SELECT count(*) FROM runs").fetchone()[0] == r3["facts"]["runs"]
    finally:
        held.close()
    out = " ".join(capsys.readouterr().out.split())
    after = State.of(pub)
    restored = after.served
    assert restored not in before.releases and f"now serves release {restored[:-7]}" in out
    # a new reader sees the restored figures: the previous release's tables, exactly
    facts = check_publication_opens(pub)
    assert facts["attendances"] == SIZES[1]
    assert count_tables(pub) == r2["tables"]
    assert facts["previous"] == r2["facts"]["previous"]  # so the next rollback goes further back
    # every earlier release file is kept, byte-for-byte, the withdrawn one included
    assert {k: v for k, v in after.releases.items() if k != restored} == before.releases
    # the reason is in runs, with what was withdrawn and what was restored
    action, release_id, note = _runs(pub)[-1]
    assert action == "rollback" and release_id == restored[:-7]
    assert "wrong code list in release 3" in note
    assert r3["file"][:-7] in note and r2["file"][:-7] in note


def test_successive_rollbacks_go_further_back_then_fail_clearly(three_releases, pub, capsys):
    r1, r2, _r3 = three_releases["releases"]
    assert main(["rollback", "--db", str(pub), "--reason", "first"]) == 0
    assert count_tables(pub) == r2["tables"]
    assert main(["rollback", "--db", str(pub), "--reason", "second"]) == 0
    assert count_tables(pub) == r1["tables"]
    assert check_publication_opens(pub)["attendances"] == SIZES[0]
    notes = [n for a, _r, n in _runs(pub) if a == "rollback"]
    assert len(notes) == 2 and notes[0].endswith("first") and notes[1].endswith("second")
    capsys.readouterr()
    before = State.of(pub)
    status = main(["rollback", "--db", str(pub), "--reason", "third"])
    err = " ".join(capsys.readouterr().err.split())
    assert status == 2 and "no earlier release to restore" in err
    assert State.of(pub) == before


def test_a_run_after_a_rollback_builds_on_the_restored_release(three_releases, pub):
    assert main(["rollback", "--db", str(pub), "--reason", "withdrawn"]) == 0
    restored = State.of(pub).served
    assert main(["run", "alcohol_ae", "--input", str(three_releases["extracts"][0]), "--db", str(pub), "--demo",
                 "--policy", str(three_releases["policy"])]) == 0
    facts = check_publication_opens(pub)
    assert facts["previous"] == restored[:-7] and facts["attendances"] == SIZES[0]
    assert [a for a, _r, _n in _runs(pub)].count("rollback") == 1  # history kept


def test_rollback_with_nothing_to_go_back_to(tmp_path, three_releases, capsys):
    assert main(["rollback", "--db", str(tmp_path / "none" / "outcomes.duckdb"), "--reason", "x"]) == 2
    assert "no publication at" in capsys.readouterr().err
    db = tmp_path / "one" / "outcomes.duckdb"
    assert main(["run", "alcohol_ae", "--input", str(three_releases["extracts"][0]), "--db", str(db), "--demo",
                 "--policy", str(three_releases["policy"])]) == 0
    before = State.of(db)
    capsys.readouterr()
    assert main(["rollback", "--db", str(db), "--reason", "x"]) == 2
    assert "the current release has no earlier release to restore" in " ".join(capsys.readouterr().err.split())
    assert main(["rollback", "--db", str(db), "--reason", "   "]) == 2
    assert "say why" in capsys.readouterr().err
    assert State.of(db) == before


def test_rollback_while_a_run_is_publishing_fails_clearly(pub, capsys):
    from pipelines.framework.publication import publication_lock

    before = State.of(pub)
    with publication_lock(pub):
        assert main(["rollback", "--db", str(pub), "--reason", "x"]) == 3
    assert "another run is publishing" in " ".join(capsys.readouterr().err.split())
    assert State.of(pub) == before


def test_killed_rollback_changes_nothing(pub, tmp_path):
    """SIGKILL after the restored file is written and recorded, before it is
    renamed into place: the withdrawn release is still served, unchanged;
    the next rollback cleans up and succeeds."""
    before = State.of(pub)
    env = cli_env(tmp_path / "tmp", OUTCOMES_FAULT_POINT="rollback:recorded")
    done = cli(["rollback", "--db", str(pub), "--reason", "killed"], env)
    assert done.returncode == -9
    assert State.of(pub) == before
    assert leftovers(pub, tmp_path / "tmp")["temporary release files"]
    done = cli(["rollback", "--db", str(pub), "--reason", "again"], cli_env(tmp_path / "tmp"))
    assert done.returncode == 0, done.stderr
    assert not any(leftovers(pub, tmp_path / "tmp").values())
    assert check_publication_opens(pub)["attendances"] == SIZES[1]


@pytest.mark.slow
def test_rollback_past_the_kept_releases_fails_clearly(three_releases, pub, capsys):
    """Only the last five releases are kept; rolling back past them says so."""
    for _ in range(3):
        assert main(["run", "alcohol_ae", "--input", str(three_releases["extracts"][0]), "--db", str(pub), "--demo",
                     "--policy", str(three_releases["policy"])]) == 0
    assert len(State.of(pub).releases) == 5  # six published, the oldest pruned
    for i in range(4):
        assert main(["rollback", "--db", str(pub), "--reason", f"step {i}"]) == 0
    capsys.readouterr()
    before = State.of(pub)
    assert main(["rollback", "--db", str(pub), "--reason", "too far"]) == 2
    assert "is no longer kept" in " ".join(capsys.readouterr().err.split())
    assert State.of(pub) == before


def test_governance_page_shows_a_rollback(pub, monkeypatch):
    """The rollback's row in `runs` has no cell counts (NULL): the provenance table shows
    it without failing (found by the concurrent-refresh test: the page raised on it)."""
    from streamlit.testing.v1 import AppTest

    from dashboard import queries
    from dashboard.server import apply_in_process

    assert main(["rollback", "--db", str(pub), "--reason", "shown on the governance page"]) == 0
    apply_in_process()
    queries.clear_caches()
    monkeypatch.setenv("OUTCOMES_DB", str(pub))
    app = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=120)
    at.run()
    at.switch_page("pages/governance.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    shown = next(d.value for d in at.dataframe if "% suppressed" in d.value.columns)
    rollback = shown[shown["action"] == "rollback"]
    assert len(rollback) == 1 and rollback["% suppressed"].iloc[0] == ""
    assert "shown on the governance page" in rollback["note"].iloc[0]


def test_publications_sharing_a_folder_keep_their_own_releases(three_releases, tmp_path, capsys):
    """Two publications in one folder: publishing one more often than releases are kept
    neither removes nor lists the other's releases (when they shared ``releases/``, this
    deleted the other's only release and left its link dangling), and each one's rollback
    and audit of earlier releases see its own releases only."""
    from pipelines.framework.disclosure.external import _earlier_releases
    from pipelines.framework.publication import KEEP_RELEASES

    folder = tmp_path / "shared"
    a, b = folder / "a.duckdb", folder / "b.duckdb"
    extracts, policy = three_releases["extracts"], three_releases["policy"]

    def run(db, extract):
        return main(["run", "alcohol_ae", "--input", str(extract), "--db", str(db), "--demo", "--policy", str(policy)])

    assert run(a, extracts[0]) == 0
    a_before = State.of(a)
    for i in range(KEEP_RELEASES + 1):
        assert run(b, extracts[i % len(extracts)]) == 0
    assert State.of(a) == a_before                       # still served, its file byte for byte
    assert check_publication_opens(a)["attendances"] == SIZES[0]
    b_after = State.of(b)
    assert len(b_after.releases) == KEEP_RELEASES and not set(b_after.releases) & set(a_before.releases)
    assert _earlier_releases(a) == []
    assert {p.name for p in _earlier_releases(b)} == set(b_after.releases) - {b_after.served}
    capsys.readouterr()
    assert main(["rollback", "--db", str(a), "--reason", "nothing earlier of its own"]) == 2
    assert "no earlier release to restore" in " ".join(capsys.readouterr().err.split())
