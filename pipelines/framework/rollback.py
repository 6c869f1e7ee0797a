"""Withdrawing a bad release: point the publication back at the previous
kept release, atomically, and record why.

The withdrawn release file is kept (for audit) but no longer served. The
reason is recorded as a ``runs`` row with action ``rollback`` in a new
release file built from the restored one, so the restored data are
byte-for-byte those of the earlier release's tables while the history says
what happened: ``runs`` carries the withdrawn release's whole history on,
so after successive rollbacks every one of them is still recorded.
"""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
from pathlib import Path

import duckdb

from .errors import OutcomesError
from .faults import checkpoint
from .publication import (
    code_version,
    current_release_path,
    install_release,
    list_releases,
    new_release_id,
    publication_lock,
    releases_dir,
    _q,
    _remove_stale_temporaries,
    _write_errors,
)


def rollback(db_link, reason: str, wait_seconds: float = 0.0) -> str:
    """Serve the release before the current one. Returns the new release id."""
    if not reason or not reason.strip():
        raise OutcomesError("say why the release is withdrawn (--reason)")
    with publication_lock(db_link, wait_seconds):
        current = current_release_path(db_link)
        if current is None:
            raise OutcomesError(f"no publication at {db_link}")
        con = duckdb.connect(str(current), read_only=True)
        try:
            previous_id = con.execute("SELECT previous_release_id FROM release").fetchall()[0][0]
            withdrawn_id = con.execute("SELECT release_id FROM release").fetchall()[0][0]
        finally:
            con.close()
        if not previous_id:
            raise OutcomesError("the current release has no earlier release to restore")
        candidates = [p for p in list_releases(db_link) if p.stem == previous_id]
        if not candidates:
            raise OutcomesError(f"the previous release {previous_id} is no longer kept; cannot roll back")
        source = candidates[0]
        release_id = new_release_id()
        rdir = releases_dir(db_link)
        with _write_errors("prepare the releases folder", rdir, db_link):
            _remove_stale_temporaries(rdir, db_link)

        def restore(tmp: Path) -> None:
            shutil.copyfile(source, tmp)
            checkpoint("rollback:copied")
            _record_rollback(tmp, current, release_id, withdrawn_id, previous_id, reason)
            checkpoint("rollback:recorded")

        install_release(db_link, release_id, restore, what="restored release", checkpoints="rollback")
        return release_id


def _record_rollback(tmp: Path, current: Path, release_id: str, withdrawn_id: str, previous_id: str,
                     reason: str) -> None:
    """Make the copy of the restored release the new current one. Its data
    tables stay as they were; ``runs`` becomes the withdrawn release's whole
    history (earlier rollbacks and the withdrawn runs included) plus this
    rollback, so successive rollbacks never lose what happened."""
    con = duckdb.connect(str(tmp))
    try:
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        con.execute(f"ATTACH '{_q(str(current))}' AS withdrawn (READ_ONLY)")
        con.execute("DELETE FROM runs")
        con.execute("INSERT INTO runs BY NAME SELECT * FROM withdrawn.runs")
        con.execute("DETACH withdrawn")
        con.execute(
            "INSERT INTO runs (run_id, release_id, pipeline, action, started_at, finished_at, code_version, note) "
            "VALUES (?, ?, '*', 'rollback', ?, ?, ?, ?)",
            [secrets.token_hex(6), release_id, now, now, code_version(),
             f"withdrew release {withdrawn_id}, restored {previous_id}: {reason.strip()}"],
        )
        # previous_release_id stays the restored release's own, so a
        # second rollback goes further back, never to the withdrawn one
        con.execute("UPDATE release SET release_id = ?, published_at = ?", [release_id, now])
        con.execute("UPDATE catalogue SET release_id = ?", [release_id])
        con.execute("CHECKPOINT")
    finally:
        con.close()
