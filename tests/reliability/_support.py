"""Shared helpers for the reliability tests: small extracts seeded with known
identifiers, the CLI as a subprocess, and snapshots of a publication's state
on disk (release bytes, the served release, what a killed run left behind).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines.framework.publication import releases_dir
from pipelines.framework.runner import RUN_DIR_PREFIX

from ..pipelines.extract_builder import EXACT_POLICY, Places, ae_row, alcohol_codes, write_csv

REPO = Path(__file__).resolve().parents[2]

# Identifiers planted in every extract these tests make; none may ever
# appear in a message, a log line or a published file.
NHS_NUMBERS = ("9434765919", "4010232137", "9449305552")  # pass the Modulus 11 check
DATES_OF_BIRTH = ("1985-06-15", "1972-11-23", "2001-02-17")


def nhs_valid(number: str) -> bool:
    from pipelines.framework.identifiers import nhs_number_valid

    return nhs_number_valid(number)


def make_rows(places: Places, n: int, *, months: tuple[int, ...] = (5, 6), prefix: str = "T") -> list[dict]:
    involvement, _diagnosis = alcohol_codes()
    rows = []
    for i in range(n):
        pc, _lsoa = places.trafford_postcodes[i % 7]
        rows.append(ae_row(
            i + 1,
            attendance_id=f"{prefix}{i + 1:06d}",
            nhs_number=NHS_NUMBERS[i % len(NHS_NUMBERS)],
            postcode=pc,
            date_of_birth=DATES_OF_BIRTH[i % len(DATES_OF_BIRTH)],
            sex="2" if i % 2 else "1",
            arrival_datetime=f"2023-{months[i % len(months)]:02d}-1{i % 10}T12:{i % 60:02d}:00",
            alcohol_drug_involvement_snomed=involvement if i % 3 == 0 else "",
        ))
    return rows


def planted_postcodes(places: Places) -> list[str]:
    pcs = [pc for pc, _ in places.trafford_postcodes[:7]]
    return pcs + [pc.replace(" ", "") for pc in pcs]


def identifier_strings(places: Places) -> list[str]:
    return [*NHS_NUMBERS, *DATES_OF_BIRTH, *planted_postcodes(places)]


def write_exact_policy(folder: Path) -> Path:
    """The test-only exact policy with the secondary-suppression and audit
    stages switched on (they have nothing to protect here, so they are fast),
    so that kills also land inside those stages."""
    path = folder / "exact.toml"
    path.write_text(EXACT_POLICY + "secondary_suppression = true\n")
    return path


def write_extract(path: Path, rows: list[dict]) -> Path:
    return write_csv(path, rows)


def cli_env(tmpdir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OUTCOMES_FAULT_POINT", "OUTCOMES_DEBUG", "OUTCOMES_PSEUDONYM_KEY",
                        "OUTCOMES_PSEUDONYM_KEY_FILE", "OUTCOMES_MEMORY_LIMIT")}
    env.update(TMPDIR=str(tmpdir), COLUMNS="200", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def cli_popen(args: list[str], env: dict[str, str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class State:
    """What is on disk: the served release and the bytes of every release file."""

    served: str | None
    releases: dict[str, str]  # file name -> sha256

    @classmethod
    def of(cls, db: Path) -> "State":
        rdir = releases_dir(db)
        served = db.resolve().name if db.is_symlink() else None
        files = {p.name: sha256(p) for p in sorted(rdir.glob("*.duckdb"))
                 if not p.name.startswith(".")} if rdir.is_dir() else {}
        return cls(served, files)


def leftovers(db: Path, tmpdir: Path) -> dict[str, list[str]]:
    """What a killed run may leave behind, by kind."""
    rdir = releases_dir(db)
    temporaries = sorted({p.name.split(".tmp.duckdb")[0] for p in rdir.glob(".*.tmp.duckdb*")})
    links = sorted(p.name for p in db.parent.glob(".*.link"))
    run_dirs = sorted(p.name for p in tmpdir.glob(f"{RUN_DIR_PREFIX}*"))
    served = db.resolve().name if db.exists() else None
    never_served = []
    if served:
        con = duckdb.connect(str(db), read_only=True)
        try:
            known = {r[0] for r in con.execute("SELECT DISTINCT release_id FROM runs").fetchall()}
            notes = " ".join(r[0] or "" for r in con.execute("SELECT DISTINCT note FROM runs").fetchall())
        finally:
            con.close()
        never_served = sorted(p.name for p in rdir.glob("*.duckdb") if not p.name.startswith(".")
                              and p.name > served and p.stem not in known and p.stem not in notes)
    return {"temporary release files": temporaries, "half-made links": links,
            "run-private folders": run_dirs, "never-served releases": never_served}


def check_publication_opens(db: Path) -> dict:
    """Open the publication as any reader would and check it is whole:
    every catalogued table is there, the release table names it, the runs
    table has its history. Returns a few facts about it."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert {"catalogue", "runs", "release", "areas", "area_members", "population"} <= tables
        catalogued = [r[0] for r in con.execute("SELECT table_name FROM catalogue").fetchall()]
        assert catalogued and set(catalogued) <= tables
        release_id, previous = con.execute("SELECT release_id, previous_release_id FROM release").fetchone()
        assert release_id == db.resolve().stem
        total = con.execute(
            "SELECT sum(count) FROM alcohol_ae__all_attendances__la_month "
            "WHERE area_code = 'E08000009'").fetchone()[0]
        runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
    finally:
        con.close()
    return {"release_id": release_id, "previous": previous, "attendances": total, "runs": runs}


def audit_available() -> bool:
    return importlib.util.find_spec("pipelines.framework.disclosure.external") is not None


AUDIT_MISSING = ("`outcomes audit` is not available yet: pipelines/framework/disclosure/external.py "
                 "(owned by the disclosure colleague) does not exist")


_AUDIT_LOCK = threading.Lock()


def run_audit(db: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`outcomes audit --db DB`, in this process (the same code and exit
    status as the command, without paying for a new interpreter each time)."""
    import contextlib
    import io

    from pipelines.cli import main

    out = io.StringIO()
    with _AUDIT_LOCK, contextlib.redirect_stdout(out):  # sys.stdout is global: one at a time
        status = main(["audit", "--db", str(db)])
    return subprocess.CompletedProcess(["outcomes", "audit", "--db", str(db)], status, out.getvalue(), "")


class SpillWatcher:
    """Reads DuckDB's spill files under ``root`` while a run is going.

    DuckDB truncates its temporary files when the connection closes, so
    looking at them afterwards proves nothing: this thread re-reads every
    ``duckdb_temp*`` file every ``interval`` seconds and records any of
    ``patterns`` (byte strings) it sees, and any token matched by a regex in
    ``tokens`` (name -> (compiled regex, set of forbidden values)). Coverage is
    best effort (a block written and freed between two looks is missed), so
    tests also check it saw real spill."""

    def __init__(self, root: Path, patterns: list[bytes] = (), interval: float = 0.02,
                 tokens: dict | None = None):
        self.root, self.patterns, self.interval = Path(root), list(patterns), interval
        self.tokens = tokens or {}
        self.hits: set[tuple[str, int]] = set()
        self.token_hits: dict[str, set[bytes]] = {name: set() for name in self.tokens}
        self.files: set[str] = set()
        self.bytes_seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "SpillWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._look()

    def _look(self) -> None:
        for f in self.root.rglob("duckdb_temp*"):
            try:
                data = f.read_bytes()
            except OSError:
                continue
            if data:
                self.files.add(f.name)
                self.bytes_seen += len(data)
                self.hits.update((f.name, i) for i, p in enumerate(self.patterns) if p in data)
                for name, (regex, forbidden) in self.tokens.items():
                    self.token_hits[name].update(t for t in regex.findall(data) if t in forbidden)

    def _run(self) -> None:
        import time as _time

        while not self._stop.is_set():
            self._look()
            _time.sleep(self.interval)
