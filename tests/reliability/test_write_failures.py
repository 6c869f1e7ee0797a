"""Disk full, read-only target, I/O errors: a clear message naming the path
and the system's reason, a non-zero exit, the previous publication intact
byte-for-byte, and nothing half-written left behind.

Tests run as root, where permissions don't bite, so failures are injected
where the write path meets the system (DuckDB opening and checkpointing the
new release file, fsync, rename, the symlink and its switch, the lock
file), plus two real kernel failures: a file size limit (``ulimit -f``,
EFBIG) on the release file and on DuckDB's spill files.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import sys

import duckdb
import pytest

from pipelines.cli import main
from pipelines.framework import publication, rollback

from ._support import (
    State,
    cli_env,
    identifier_strings,
    leftovers,
    make_rows,
    write_exact_policy,
    write_extract,
    REPO,
)
from .conftest import copy_publication
from ..pipelines.extract_builder import Places

pytestmark = pytest.mark.pipeline

ROWS = 60
NOTHING_LEFT = {"temporary release files": [], "half-made links": [], "run-private folders": [],
                "never-served releases": []}


@pytest.fixture(scope="module")
def published(tmp_path_factory, reference_pack, fast_pipeline):
    root = tmp_path_factory.mktemp("write_failures")
    places = Places.from_pack(reference_pack)
    extract = write_extract(root / "ae.csv", make_rows(places, ROWS))
    policy = write_exact_policy(root)
    db = root / "pub" / "outcomes.duckdb"
    args = ["run", "alcohol_ae", "--input", str(extract), "--db", str(db), "--demo", "--policy", str(policy)]
    assert main(args) == 0
    return {"db": db, "args": args, "ids": identifier_strings(places), "root": root}


@pytest.fixture
def pub(published, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)
    db = copy_publication(published["db"], tmp_path / "pub")
    args = [str(db) if a == str(published["db"]) else a for a in published["args"]]
    return {"db": db, "args": args, "tmp": tmp_path / "tmp", "ids": published["ids"]}


def _oserror(code: int, path) -> OSError:
    return OSError(code, os.strerror(code), str(path))


# ---- the faults ------------------------------------------------------------

def fail_checkpoint_disk_full(monkeypatch):
    """DuckDB's CHECKPOINT of the new release hits a full disk."""
    real = duckdb.connect

    class Conn:
        def __init__(self, con, path):
            self._con, self._path = con, path

        def execute(self, sql, *args, **kwargs):
            if sql.strip().upper() == "CHECKPOINT":
                raise duckdb.IOException(f'IO Error: Could not write file "{self._path}": No space left on device')
            return self._con.execute(sql, *args, **kwargs)

        def __getattr__(self, name):
            return getattr(self._con, name)

    def connect(database=":memory:", *args, **kwargs):
        con = real(database, *args, **kwargs)
        return Conn(con, database) if str(database).endswith(".tmp.duckdb") else con

    monkeypatch.setattr(publication.duckdb, "connect", connect)


def fail_create_read_only(monkeypatch):
    """The releases folder is on a read-only file system: DuckDB can't create the file."""
    real = duckdb.connect

    def connect(database=":memory:", *args, **kwargs):
        if str(database).endswith(".tmp.duckdb"):
            raise duckdb.IOException(f'IO Error: Cannot open file "{database}": Read-only file system')
        return real(database, *args, **kwargs)

    monkeypatch.setattr(publication.duckdb, "connect", connect)


def fail_fsync_io_error(monkeypatch):
    def fsync(fd):
        raise _oserror(errno.EIO, f"fd {fd}")

    monkeypatch.setattr(publication.os, "fsync", fsync)


def fail_rename_disk_full(monkeypatch):
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(src).endswith(".tmp.duckdb"):
            raise _oserror(errno.ENOSPC, dst)
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(publication.os, "replace", replace)


def fail_symlink_read_only(monkeypatch):
    def symlink(src, dst, *args, **kwargs):
        raise _oserror(errno.EROFS, dst)

    monkeypatch.setattr(publication.os, "symlink", symlink)


def fail_link_switch_read_only(monkeypatch):
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(src).endswith(".link"):
            raise _oserror(errno.EROFS, dst)
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(publication.os, "replace", replace)


def fail_lock_read_only(monkeypatch):
    real = os.open

    def open_(path, flags, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise _oserror(errno.EROFS, path)
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(publication.os, "open", open_)


def fail_checkpoint_quota(monkeypatch):
    """As disk full, with the wording of a quota."""
    real = duckdb.connect

    def connect(database=":memory:", *args, **kwargs):
        con = real(database, *args, **kwargs)
        if str(database).endswith(".tmp.duckdb"):
            con.close()
            raise duckdb.IOException(f'IO Error: Could not write file "{database}": Disk quota exceeded')
        return con

    monkeypatch.setattr(publication.duckdb, "connect", connect)


FAULTS = [
    (fail_checkpoint_disk_full, "ENOSPC", "could not write the new release"),
    (fail_create_read_only, "EROFS", "could not write the new release"),
    (fail_checkpoint_quota, "EDQUOT", "could not write the new release"),
    (fail_fsync_io_error, "EIO", "could not write the new release"),
    (fail_rename_disk_full, "ENOSPC", "could not rename the new release to"),
    (fail_symlink_read_only, "EROFS", "could not switch the publication to"),
    (fail_link_switch_read_only, "EROFS", "could not switch the publication to"),
    (fail_lock_read_only, "EROFS", "could not create the lock file"),
]


@pytest.mark.parametrize("fault, code, action", FAULTS, ids=[f[0].__name__ for f in FAULTS])
def test_write_failure_is_clear_and_changes_nothing(pub, fault, code, action, monkeypatch, capsys):
    db = pub["db"]
    before = State.of(db)
    capsys.readouterr()
    fault(monkeypatch)
    status = main(pub["args"])
    monkeypatch.undo()
    err = " ".join(capsys.readouterr().err.split())
    assert status == 2, err
    assert "internal error" not in err and "Traceback" not in err
    assert action in err and f"({code})" in err and os.strerror(getattr(errno, code)) in err
    assert str(db.parent) in err and f"The publication {db} was not changed" in err
    assert not any(i in err for i in pub["ids"])
    assert State.of(db) == before  # same served release, same bytes, no new release file
    assert leftovers(db, pub["tmp"]) == NOTHING_LEFT


def test_after_a_write_failure_the_next_run_publishes(pub, monkeypatch, capsys):
    db = pub["db"]
    before = State.of(db)
    fail_checkpoint_disk_full(monkeypatch)
    assert main(pub["args"]) == 2
    monkeypatch.undo()
    monkeypatch.setenv("TMPDIR", str(pub["tmp"]))
    assert main(pub["args"]) == 0
    after = State.of(db)
    assert after.served != before.served and len(after.releases) == len(before.releases) + 1
    assert leftovers(db, pub["tmp"]) == NOTHING_LEFT


def test_rollback_on_a_full_disk_changes_nothing(pub, monkeypatch, capsys):
    db = pub["db"]
    assert main(pub["args"]) == 0  # a second release, so there is one to go back to
    before = State.of(db)
    capsys.readouterr()

    def copyfile(src, dst, *args, **kwargs):
        with open(dst, "wb") as f:
            f.write(b"partial")
        raise _oserror(errno.ENOSPC, dst)

    monkeypatch.setattr(rollback.shutil, "copyfile", copyfile)
    status = main(["rollback", "--db", str(db), "--reason", "bad figures"])
    monkeypatch.undo()
    err = " ".join(capsys.readouterr().err.split())
    assert status == 2 and "could not write the restored release" in err and "(ENOSPC)" in err
    assert State.of(db) == before
    assert leftovers(db, pub["tmp"]) == NOTHING_LEFT


def _file_size_limit(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_real_file_size_limit_on_the_release_file(pub):
    """Not injected: the kernel refuses to let the new release file grow past
    1 MB (the release is about 6 MB)."""
    import subprocess

    db = pub["db"]
    before = State.of(db)
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", *pub["args"]], cwd=REPO,
                          env=cli_env(pub["tmp"]), capture_output=True, text=True, timeout=300,
                          preexec_fn=_file_size_limit(1_000_000))
    err = " ".join(done.stderr.split())
    assert done.returncode == 2, err
    assert "could not write the new release" in err and "(EFBIG)" in err and "ulimit -f" in err
    assert "Traceback" not in err and not any(i in err for i in pub["ids"])
    assert State.of(db) == before
    assert leftovers(db, pub["tmp"]) == NOTHING_LEFT


@pytest.mark.slow
def test_real_file_size_limit_on_spill_files(pub, demo_samples):
    """DuckDB spills to the run-private folder (memory limit 24 MB) and the
    kernel refuses to let a spill file grow: a clear message that blames
    the temporary folder, not the extract."""
    import subprocess

    db = pub["db"]
    before = State.of(db)
    args = ["run", "alcohol_ae", "--input", str(demo_samples / "ae_attendances.csv"), "--db", str(db), "--demo"]
    env = cli_env(pub["tmp"], OUTCOMES_MEMORY_LIMIT="24MB", OUTCOMES_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, preexec_fn=_file_size_limit(200_000))
    err = " ".join(done.stderr.split())
    assert done.returncode == 2, err
    assert "could not write temporary files in" in err and str(pub["tmp"]) in err and "(EFBIG)" in err
    assert "could not be read" not in err and "Traceback" not in err
    assert State.of(db) == before
    assert leftovers(db, pub["tmp"]) == NOTHING_LEFT
