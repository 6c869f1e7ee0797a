"""Withdrawing a bad release: point the publication back at the previous
kept release, atomically, and record why.

The withdrawn release file is kept (for audit) but no longer served. The
reason is recorded as a ``runs`` row with action ``rollback`` in a new
release file built from the restored one, so the restored data are
byte-for-byte those of the earlier release's tables while the history says
what happened.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil

import duckdb

from .errors import OutcomesError
from .publication import (
    code_version,
    current_release_path,
    list_releases,
    new_release_id,
    publication_lock,
    releases_dir,
    switch_to,
    _fsync,
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
        tmp = rdir / f".{release_id}.tmp.duckdb"
        final = rdir / f"{release_id}.duckdb"
        shutil.copyfile(source, tmp)
        try:
            con = duckdb.connect(str(tmp))
            try:
                now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
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
            _fsync(tmp)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        switch_to(db_link, final)
        return release_id
