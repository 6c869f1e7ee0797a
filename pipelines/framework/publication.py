"""The publication: one DuckDB file the dashboard and auditors may read.

Layout on disk (``--db var/outcomes.duckdb``)::

    var/outcomes.duckdb            -> releases/outcomes/<release_id>.duckdb  (symlink)
    var/releases/outcomes/<release_id>.duckdb  the current and earlier kept releases
    var/outcomes.duckdb.lock       held by the run that is publishing

Each publication has its own folder of releases, named after its file, so
several publications can share a folder (see ``releases_dir``).

Atomicity: a release is written to a hidden temporary file beside the
others, closed, fsynced, renamed to its final name, and only then does the
symlink switch to it (``os.replace`` of a new symlink: atomic on POSIX).
Until that instant readers see the previous release; a failed or killed
run leaves at most a stray temporary file, which the next run removes. The
previous release files are never modified, so a dashboard that has one open
keeps reading it. The last ``KEEP_RELEASES`` releases are kept for audit and
rollback.

Only ``ProtectedRelease`` objects (made by the disclosure gate) can be
written as count tables: ``write_release`` checks the type.

Write failures (disk full, read-only file system, file size or quota
limits, I/O errors) become a ``PublicationWriteError`` that names the path
and what the system said, after the partial files are removed; the
publication keeps serving the previous release.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import glob
import json
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import duckdb
import pandas as pd

from .errors import OutcomesError, PublicationLockedError
from .faults import checkpoint
from .release import ProtectedRelease, RunSummary

KEEP_RELEASES = 5
RELEASES_DIR = "releases"
METADATA_TABLES = ("catalogue", "runs", "areas", "area_members", "release", "interventions")

CATALOGUE_COLUMNS = {
    "table_name": "VARCHAR",
    "pipeline": "VARCHAR",
    "measure": "VARCHAR",
    "title": "VARCHAR",
    "description": "VARCHAR",
    "unit": "VARCHAR",
    "dimensions": "VARCHAR[]",
    "source": "VARCHAR",
    "coverage": "VARCHAR",
    "data_controller": "VARCHAR",
    "legal_basis": "VARCHAR",
    "dsa_reference": "VARCHAR",
    "purpose": "VARCHAR",
    "policy": "VARCHAR",
    "additive_over": "VARCHAR[]",
    "polarity": "VARCHAR",
    "denominator": "VARCHAR",
    "subset_of": "VARCHAR",
    "area_levels": "VARCHAR[]",
    "period_kind": "VARCHAR",
    "kind": "VARCHAR",
    "notes": "VARCHAR",
    "release_id": "VARCHAR",
    "published_at": "TIMESTAMP",
}

RUNS_COLUMNS = {
    "run_id": "VARCHAR",
    "release_id": "VARCHAR",
    "pipeline": "VARCHAR",
    "action": "VARCHAR",
    "input_file": "VARCHAR",
    "input_sha256": "VARCHAR",
    "rows_read": "BIGINT",
    "rows_rejected": "VARCHAR",
    "rows_excluded": "VARCHAR",
    "persons_not_countable": "BIGINT",
    "tables_published": "INTEGER",
    "cells_published": "BIGINT",
    "cells_suppressed": "BIGINT",
    "started_at": "TIMESTAMP",
    "finished_at": "TIMESTAMP",
    "code_version": "VARCHAR",
    "policy": "VARCHAR",
    "note": "VARCHAR",
}


class PublicationError(OutcomesError):
    pass


class PublicationWriteError(PublicationError):
    """The release could not be written: disk full, read-only, ... The
    message names the path and the system's reason; nothing was changed."""


# what the system says -> what to do about it
_WRITE_ADVICE = {
    errno.ENOSPC: "the disk is full: free space there and run again",
    errno.EDQUOT: "the disk quota is used up: free space or raise the quota and run again",
    errno.EFBIG: "the file would exceed the file size limit (ulimit -f): raise the limit and run again",
    errno.EROFS: "the file system is read-only: remount it read-write, or publish elsewhere with --db",
    errno.EACCES: "permission denied: run as a user who may write there, or publish elsewhere with --db",
    errno.EPERM: "operation not permitted: run as a user who may write there, or publish elsewhere with --db",
    errno.EIO: "the disk reported an I/O error: check the disk and run again",
}
# DuckDB reports OS errors in its own exceptions, as text
_DUCKDB_OS_ERRORS = (
    ("no space left on device", errno.ENOSPC),
    ("disk quota exceeded", errno.EDQUOT),
    ("file too large", errno.EFBIG),
    ("read-only file system", errno.EROFS),
    ("permission denied", errno.EACCES),
    ("input/output error", errno.EIO),
)


def _os_error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        return code
    text = str(exc).lower()
    for pattern, code in _DUCKDB_OS_ERRORS:
        if pattern in text:
            return code
    return None


def write_failure(action: str, path: Path, exc: BaseException, db_link: Path) -> PublicationWriteError:
    """A clear message for a failed write: what, where, why, what to do."""
    code = _os_error_code(exc)
    if code is not None:
        reason = f"{os.strerror(code)} ({errno.errorcode.get(code, code)})"
        advice = _WRITE_ADVICE.get(code, "check the disk and run again")
    else:
        reason = type(exc).__name__
        advice = "check the disk and run again"
    return PublicationWriteError(
        f"could not {action} {path}: {reason}; {advice}. "
        f"The publication {db_link} was not changed."
    )


@contextlib.contextmanager
def _write_errors(action: str, path: Path, db_link: Path) -> Iterator[None]:
    """Turn OS-level write failures (from Python or DuckDB) into PublicationWriteError."""
    try:
        yield
    except PublicationError:
        raise
    except OSError as exc:
        raise write_failure(action, path, exc, db_link) from exc
    except duckdb.Error as exc:
        if isinstance(exc, (duckdb.IOException, duckdb.PermissionException)) or _os_error_code(exc) is not None:
            raise write_failure(action, path, exc, db_link) from exc
        raise


@dataclass
class ReferenceTables:
    """Tables published beside the counts: geography and denominators."""

    areas: pd.DataFrame
    area_members: pd.DataFrame
    population: pd.DataFrame
    population_notes: str = ""
    interventions: pd.DataFrame | None = None


@dataclass
class PipelineOutput:
    """One pipeline's contribution to a release."""

    protected: ProtectedRelease
    summary: RunSummary
    catalogue_rows: list[dict]
    started_at: dt.datetime
    finished_at: dt.datetime
    policy_name: str
    run_id: str = field(default_factory=lambda: secrets.token_hex(6))


def releases_dir(db_link: Path) -> Path:
    """The folder of the publication's releases: ``releases/<name>/`` beside it.

    One folder per publication, because everything done to "the releases" (pruning the
    oldest, removing files no run served, listing them for rollback, auditing the earlier
    ones) must see that publication's files only. Until the thirteenth session every
    publication in a folder shared ``releases/``: publishing ``var/b.duckdb`` five times
    deleted the only release of ``var/a.duckdb``, leaving its link dangling, and the audit of
    earlier releases mixed the two. Publications named ``x.duckdb`` and ``x.db`` in one
    folder would still share one: give them different names."""
    db_link = Path(db_link)
    return db_link.parent / RELEASES_DIR / db_link.stem


def new_release_id() -> str:
    now = dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-" + secrets.token_hex(3)


def code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        base = version("outcomes-dashboard")
    except PackageNotFoundError:
        base = "dev"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{base}+{sha}" if sha else base


@contextlib.contextmanager
def publication_lock(db_link: Path, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold the publication's lock; a second run waits up to ``wait_seconds``
    and then fails clearly instead of racing the first."""
    db_link = Path(db_link)
    lock_path = db_link.with_name(db_link.name + ".lock")
    with _write_errors("create the lock file", lock_path, db_link):
        db_link.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PublicationLockedError(
                        f"another run is publishing to {db_link} (lock {lock_path} is held); "
                        "wait for it to finish, or pass --wait SECONDS"
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)


def current_release_path(db_link: Path) -> Path | None:
    db_link = Path(db_link)
    if not db_link.exists():
        return None
    return db_link.resolve()


def connect_readonly(db_path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(db_path), read_only=True)


def _table_names(con: duckdb.DuckDBPyConnection, schema: str = "main", catalog: str | None = None) -> set[str]:
    q = "SELECT table_name FROM information_schema.tables WHERE table_schema = ?"
    params: list = [schema]
    if catalog:
        q += " AND table_catalog = ?"
        params.append(catalog)
    return {r[0] for r in con.execute(q, params).fetchall()}


def previous_tables(db_link: Path, pipeline: str) -> dict[str, pd.DataFrame]:
    """The pipeline's tables as currently published (for the gate's
    successive-release check)."""
    path = current_release_path(db_link)
    if path is None:
        return {}
    con = connect_readonly(path)
    try:
        if "catalogue" not in _table_names(con):
            return {}
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM catalogue WHERE pipeline = ? AND policy IS NOT NULL", [pipeline]).fetchall()]
        return {n: con.execute(f'SELECT * FROM "{n}"').df() for n in names}
    finally:
        con.close()


def _create_from_df(con: duckdb.DuckDBPyConnection, name: str, df: pd.DataFrame, types: dict[str, str] | None = None) -> None:
    view = f"_df_{secrets.token_hex(4)}"
    con.register(view, df)
    try:
        if types:
            cols = ", ".join(
                f'CAST("{c}" AS {types[c]}) AS "{c}"' if c in df.columns else f'CAST(NULL AS {t}) AS "{c}"'
                for c, t in types.items()
            )
        else:
            cols = "*"
        con.execute(f'CREATE TABLE "{name}" AS SELECT {cols} FROM {view}')
    finally:
        con.unregister(view)


def _count_table_types(df: pd.DataFrame) -> dict[str, str]:
    types = {}
    for c in df.columns:
        if c in ("period_start", "period_end"):
            types[c] = "DATE"
        elif c == "count":
            types[c] = "BIGINT"
        elif c == "provisional":
            types[c] = "BOOLEAN"
        elif pd.api.types.is_float_dtype(df[c]):
            types[c] = "DOUBLE"
        else:
            types[c] = "VARCHAR"
    return types


def install_release(db_link: Path, release_id: str, write: Callable[[Path], None], *, what: str,
                    checkpoints: str) -> Path:
    """Write a release file with ``write(tmp)``, then make it the served one
    atomically: fsync, rename into ``releases/<name>/<release_id>.duckdb``, switch the
    publication link. Used by publishing and by rollback, so both follow the
    same crash-safe steps. On any failure nothing half-written stays behind
    and the link still names the previous release."""
    rdir = releases_dir(db_link)
    tmp = rdir / f".{release_id}.tmp.duckdb"
    final = rdir / f"{release_id}.duckdb"
    renamed = False
    try:
        with _write_errors(f"write the {what}", tmp, db_link):
            write(tmp)
            _fsync(tmp)
        with _write_errors(f"rename the {what} to", final, db_link):
            os.replace(tmp, final)
        renamed = True
        checkpoint(f"{checkpoints}:renamed")
        with _write_errors("switch the publication to", final, db_link):
            switch_to(db_link, final)
    except BaseException:
        _unlink_quietly(tmp, Path(str(tmp) + ".wal"))
        if renamed and current_release_path(db_link) != final.resolve():
            _unlink_quietly(final)
        raise
    return final


def write_release(
    db_link: Path,
    outputs: list[PipelineOutput],
    reference: ReferenceTables,
    derive_columns=None,
    keep: int = KEEP_RELEASES,
) -> str:
    """Build a new release file holding ``outputs`` plus every other
    pipeline's tables from the current release, then switch to it.

    Must be called while holding ``publication_lock``. Returns the release id.
    """
    for out in outputs:
        if not isinstance(out.protected, ProtectedRelease):
            raise PublicationError("refusing to publish tables that have not passed the disclosure gate")
    db_link = Path(db_link)
    rdir = releases_dir(db_link)
    with _write_errors("prepare the releases folder", rdir, db_link):
        rdir.mkdir(parents=True, exist_ok=True)
        _adopt_plain_file(db_link, rdir)
        _remove_stale_temporaries(rdir, db_link)
    release_id = new_release_id()
    published_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    previous = current_release_path(db_link)
    refreshed = {o.protected.pipeline for o in outputs}

    def build(tmp: Path) -> None:
        _build_release_file(tmp, previous, outputs, reference, derive_columns, release_id, published_at, refreshed)
        checkpoint("publication:closed")

    install_release(db_link, release_id, build, what="new release", checkpoints="publication")
    checkpoint("publication:switched")
    try:
        prune_releases(db_link, keep)
    except OSError:
        pass  # the release is published; pruning is retried by the next run
    return release_id


def _build_release_file(tmp: Path, previous: Path | None, outputs: list[PipelineOutput], reference: ReferenceTables,
                        derive_columns, release_id: str, published_at: dt.datetime, refreshed: set[str]) -> None:
    """Write every table of the new release into ``tmp`` and close it."""
    con = duckdb.connect(str(tmp))
    checkpoint("publication:created")
    try:
        con.execute("SET enable_progress_bar = false")
        kept_catalogue = pd.DataFrame(columns=list(CATALOGUE_COLUMNS))
        kept_runs = pd.DataFrame(columns=list(RUNS_COLUMNS))
        kept_interventions = None
        if previous is not None:
            con.execute(f"ATTACH '{_q(str(previous))}' AS prev (READ_ONLY)")
            prev_tables = _table_names(con, catalog="prev")
            if "catalogue" in prev_tables:
                kept_catalogue = con.execute(
                    "SELECT * FROM prev.catalogue WHERE pipeline NOT IN (SELECT unnest(?)) AND kind = 'count'",
                    [sorted(refreshed)],
                ).df()
                for name in kept_catalogue["table_name"]:
                    if name in prev_tables:
                        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM prev."{name}"')
            if "runs" in prev_tables:
                kept_runs = con.execute("SELECT * FROM prev.runs").df()
            if "interventions" in prev_tables and reference.interventions is None:
                kept_interventions = con.execute("SELECT * FROM prev.interventions").df()
            con.execute("DETACH prev")
        catalogue_rows = []
        run_rows = []
        for out in outputs:
            for name, df in out.protected.tables.items():
                if derive_columns is not None:
                    df = derive_columns(name, df, out.protected, reference)
                _create_from_df(con, name, df, _count_table_types(df))
                checkpoint(f"publication:table:{name}")
            for row in out.catalogue_rows:
                catalogue_rows.append({**row, "release_id": release_id, "published_at": published_at})
            s = out.summary
            run_rows.append({
                "run_id": out.run_id, "release_id": release_id, "pipeline": s.pipeline, "action": "run",
                "input_file": s.input_file, "input_sha256": s.input_sha256, "rows_read": s.rows_read,
                "rows_rejected": json.dumps(s.rows_rejected, sort_keys=True),
                "rows_excluded": json.dumps(s.rows_excluded, sort_keys=True),
                "persons_not_countable": s.persons_not_countable,
                "tables_published": s.tables_published, "cells_published": s.cells_published,
                "cells_suppressed": s.cells_suppressed,
                "started_at": out.started_at, "finished_at": out.finished_at,
                "code_version": code_version(), "policy": out.policy_name, "note": "",
            })
        # reference data: geography and denominators (not disclosive: public ONS data)
        _create_from_df(con, "areas", reference.areas)
        _create_from_df(con, "area_members", reference.area_members)
        _create_from_df(con, "population", reference.population)
        catalogue_rows.append(_population_catalogue_row(reference, release_id, published_at))
        interventions = reference.interventions if reference.interventions is not None else kept_interventions
        if interventions is not None:
            _create_from_df(con, "interventions", interventions)
        catalogue = pd.concat(
            [kept_catalogue, pd.DataFrame(catalogue_rows)], ignore_index=True
        ) if len(kept_catalogue) else pd.DataFrame(catalogue_rows)
        _create_from_df(con, "catalogue", catalogue, CATALOGUE_COLUMNS)
        checkpoint("publication:catalogue")
        runs = pd.concat([kept_runs, pd.DataFrame(run_rows)], ignore_index=True) if len(kept_runs) else pd.DataFrame(run_rows)
        _create_from_df(con, "runs", runs, RUNS_COLUMNS)
        con.execute(
            "CREATE TABLE release AS SELECT ?::VARCHAR AS release_id, ?::TIMESTAMP AS published_at, "
            "?::VARCHAR AS previous_release_id, ?::VARCHAR[] AS pipelines_refreshed, ?::VARCHAR AS code_version",
            [release_id, published_at, previous.stem if previous else None, sorted(refreshed), code_version()],
        )
        checkpoint("publication:before-checkpoint")
        con.execute("CHECKPOINT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.close()
        raise
    con.close()


def _unlink_quietly(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def switch_to(db_link: Path, release_file: Path) -> None:
    """Atomically point the publication path at ``release_file``."""
    db_link = Path(db_link)
    tmp_link = db_link.with_name(f".{db_link.name}.{secrets.token_hex(4)}.link")
    target = os.path.relpath(release_file, db_link.parent)
    os.symlink(target, tmp_link)
    try:
        checkpoint("publication:link-made")
        os.replace(tmp_link, db_link)
    except BaseException:
        _unlink_quietly(tmp_link)
        raise
    _fsync_dir(db_link.parent)


def list_releases(db_link: Path) -> list[Path]:
    rdir = releases_dir(db_link)
    if not rdir.is_dir():
        return []
    return sorted(p for p in rdir.glob("*.duckdb") if not p.name.startswith("."))


def prune_releases(db_link: Path, keep: int = KEEP_RELEASES) -> None:
    current = current_release_path(db_link)
    files = list_releases(db_link)
    for old in files[:-keep] if keep > 0 else []:
        if current is not None and old.resolve() == current:
            continue
        old.unlink(missing_ok=True)
        Path(str(old) + ".wal").unlink(missing_ok=True)


def _adopt_plain_file(db_link: Path, rdir: Path) -> None:
    """A --db path holding a plain DuckDB file (not yet a symlink) becomes the
    first kept release, so publishing never writes into a file a reader may
    have open."""
    if db_link.exists() and not db_link.is_symlink():
        adopted = rdir / f"{new_release_id()}-adopted.duckdb"
        os.replace(db_link, adopted)
        switch_to(db_link, adopted)


def _remove_stale_temporaries(rdir: Path, db_link: Path) -> None:
    """Remove what a killed run left behind (call while holding the lock):
    hidden temporary release files (and DuckDB's ``.wal``/``.tmp`` beside
    them), half-made links, and release files that were renamed into place
    but never served (killed between the rename and the link switch)."""
    for stale in rdir.glob(".*.tmp.duckdb*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    # half-made links of this publication (``switch_to`` makes them beside its link)
    for stale in Path(db_link).parent.glob(f".{glob.escape(Path(db_link).name)}.*.link"):
        if stale.is_symlink() or stale.is_file():
            stale.unlink(missing_ok=True)
    for orphan in _never_served(db_link):
        orphan.unlink(missing_ok=True)
        Path(str(orphan) + ".wal").unlink(missing_ok=True)


def _never_served(db_link: Path) -> list[Path]:
    """Release files newer than the served one that no run or rollback in
    its history names: a run died after renaming its file into place and
    before switching the link. (Withdrawn releases are older than the
    rollback that withdrew them, and are kept.)"""
    current = current_release_path(db_link)
    if current is None or not current.exists():
        return []
    newer = [p for p in list_releases(db_link) if p.name > current.name and p.resolve() != current]
    if not newer:
        return []
    try:
        con = connect_readonly(current)
    except duckdb.Error:
        return []
    try:
        if "runs" not in _table_names(con):
            return []
        known = {r[0] for r in con.execute("SELECT DISTINCT release_id FROM runs").fetchall()}
        notes = " ".join(r[0] or "" for r in con.execute("SELECT DISTINCT note FROM runs").fetchall())
    finally:
        con.close()
    return [p for p in newer if p.stem not in known and p.stem not in notes]


def _population_catalogue_row(reference: ReferenceTables, release_id: str, published_at: dt.datetime) -> dict:
    return {
        "table_name": "population",
        "pipeline": "reference",
        "measure": "population",
        "title": "Resident population (ONS mid-year estimates)",
        "description": "Denominators for rates: ONS mid-year population estimates by area, year, sex and age band. "
        + reference.population_notes,
        "unit": "persons",
        "dimensions": ["area", "year", "sex", "age_band"],
        "source": "ONS mid-year population estimates (via the reference pack)",
        "coverage": "usual residents of each area",
        "data_controller": "Office for National Statistics",
        "legal_basis": "Open Government Licence v3.0 (public reference data, not disclosive)",
        "dsa_reference": "not applicable (open data)",
        "purpose": "denominators for rates",
        "policy": None,
        "additive_over": ["area", "sex", "age_band"],
        "polarity": "none",
        "denominator": None,
        "subset_of": None,
        "area_levels": sorted(set(reference.areas["area_level"])),
        "period_kind": "year",
        "kind": "reference",
        "notes": "public reference data: not passed through the disclosure gate",
        "release_id": release_id,
        "published_at": published_at,
    }


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _q(text: str) -> str:
    return text.replace("'", "''")
