"""Running pipelines: extract -> staging -> cubes -> gate -> publication.

One call publishes one release holding every pipeline run in it, plus the
other pipelines' tables carried over unchanged from the current release.
Each pipeline runs in its own in-memory DuckDB whose spill directory is a
run-private folder removed when the pipeline finishes, whether it succeeded
or not, so no temporary file outlives the run. A run that is killed (power
cut, OOM killer) cannot clean up: each run-private folder holds an
``.owner`` file locked by the process that made it, and the next run removes
every such folder whose lock is free (its owner is dead).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import os
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb
import pandas as pd

from . import cubes, publication, reference_cache, staging
from .faults import checkpoint
from .codelists import load_code_list
from .disclosure import gate
from .disclosure.policy import Policy, load_policy
from .errors import OutcomesError
from .extracts import open_extract
from .identifiers import load_key
from .reference import REPO_ROOT, ReferencePack
from .release import RunSummary
from .spec import PipelineSpec

DATA_SAMPLES = REPO_ROOT / "data_samples"
SYNTHETIC_MARKER = ".synthetic"


def default_db() -> Path:
    return Path(os.environ.get("OUTCOMES_DB", REPO_ROOT / "var" / "outcomes.duckdb"))


def samples_dir() -> Path:
    return Path(os.environ.get("OUTCOMES_SAMPLES", DATA_SAMPLES))


@dataclass
class RunResult:
    release_id: str
    db: Path
    summaries: list[RunSummary] = field(default_factory=list)
    seconds: float = 0.0
    gate_seconds: float = 0.0
    step_seconds: dict[str, float] = field(default_factory=dict)


Progress = Callable[[str], None]


def _sha256(path: Path, out: dict) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(8 * 1024 * 1024), b""):
            h.update(chunk)
    out["sha256"] = h.hexdigest()


RUN_DIR_PREFIX = "outcomes-"
RUN_DIR_OWNER = ".owner"
UNOWNED_STALE_SECONDS = 3600


def make_run_dir(name: str) -> tuple[Path, int]:
    """A run-private folder under TMPDIR, and the fd holding its owner lock.

    The owner file is locked before it gets its final name, so a folder with
    an ``.owner`` whose lock is free belongs to a dead process."""
    remove_stale_run_dirs()
    tmpdir = Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{name}-"))
    pending = tmpdir / f"{RUN_DIR_OWNER}.{os.getpid()}"
    fd = os.open(pending, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.rename(pending, tmpdir / RUN_DIR_OWNER)
    return tmpdir, fd


def remove_run_dir(tmpdir: Path, owner_fd: int | None) -> None:
    shutil.rmtree(tmpdir, ignore_errors=True)
    if owner_fd is not None:
        os.close(owner_fd)


def remove_stale_run_dirs(root: Path | None = None) -> list[Path]:
    """Remove run-private folders left by killed runs; returns those removed."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    try:
        candidates = [d for d in root.glob(f"{RUN_DIR_PREFIX}*") if d.is_dir() and not d.is_symlink()]
    except OSError:
        return removed
    for d in candidates:
        owner = d / RUN_DIR_OWNER
        try:
            fd = os.open(owner, os.O_RDWR)
        except FileNotFoundError:
            # no owner: a folder being made this instant, or one from an older
            # version; only the latter is old
            with contextlib.suppress(OSError):
                if time.time() - d.stat().st_mtime > UNOWNED_STALE_SECONDS:
                    shutil.rmtree(d, ignore_errors=True)
                    removed.append(d)
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # the owner is alive
        finally:
            os.close(fd)
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


class ResourceError(OutcomesError):
    """The run ran out of memory or of temporary disk space."""


def resource_failure(exc: BaseException, input_path: Path, tmpdir: Path) -> ResourceError:
    """A clear message when DuckDB runs out of memory or of room for its
    temporary files. DuckDB's own text is not passed on (it is not needed,
    and messages never quote the extract)."""
    code = publication._os_error_code(exc)
    limit = os.environ.get("OUTCOMES_MEMORY_LIMIT")
    limit_note = f"OUTCOMES_MEMORY_LIMIT is {limit}" if limit else "no OUTCOMES_MEMORY_LIMIT is set"
    if code is not None:
        import errno as _errno

        what = (f"could not write temporary files in {tmpdir}: {os.strerror(code)} "
                f"({_errno.errorcode.get(code, code)})")
        advice = ("raise the file size limit (ulimit -f) and run again" if code == _errno.EFBIG else
                  "free space there, or point TMPDIR at a disk with room, and run again")
    else:
        what = "ran out of memory, or of room for temporary files"
        advice = (f"free space in TMPDIR ({tmpdir.parent}) or raise OUTCOMES_MEMORY_LIMIT ({limit_note}) "
                  "and run again")
    return ResourceError(f"{input_path}: {what} while processing the extract; {advice}. "
                         "The publication was not changed.")


def _encrypt_spill_files(con: duckdb.DuckDBPyConnection) -> None:
    """Encrypt everything DuckDB spills, under a key that exists only in this
    process for this run.

    Keeping raw identifiers out of every table is not enough: DuckDB writes
    whole memory blocks to its spill files, and a block's unused bytes can
    still hold what an earlier buffer held (e.g. values read from the
    extract). The reliability benchmark found extract NHS Numbers and dates
    of birth in plaintext spill files at 1 and 50 million rows. DuckDB
    encrypts temporary files when an encrypted database is attached; an
    in-memory one is enough. Without the httpfs extension DuckDB's built-in
    (mbedtls) cipher must be allowed explicitly; it is used here only for
    spill files that live as long as the run, with a random key."""
    con.execute("SET force_mbedtls_unsafe = 'true'")
    con.execute(f"ATTACH ':memory:' AS _spill_encryption (ENCRYPTION_KEY '{secrets.token_hex(32)}')")
    con.execute("SET temp_file_encryption = true")


def _connect(tmpdir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET enable_progress_bar = false")
    _encrypt_spill_files(con)
    con.execute(f"SET temp_directory = '{tmpdir}'")
    limit = os.environ.get("OUTCOMES_MEMORY_LIMIT")
    if limit:
        con.execute(f"SET memory_limit = '{limit}'")
    threads = os.environ.get("OUTCOMES_THREADS")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def load_geography(pack: ReferencePack, catchments_file: Path | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """areas, area_members and population for the whole release (compiled once, see ``reference_cache``)."""
    return reference_cache.areas_and_population(pack, catchments_file)


def catchments_path() -> Path:
    return Path(os.environ.get("OUTCOMES_CATCHMENTS", samples_dir() / "catchments.csv"))


def interventions_table() -> pd.DataFrame | None:
    path = Path(os.environ.get("OUTCOMES_INTERVENTIONS", DATA_SAMPLES / "interventions.csv"))
    if not path.exists():
        return None
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def run_one(
    spec: PipelineSpec,
    input_path: Path,
    key: bytes,
    pack: ReferencePack,
    areas: pd.DataFrame,
    members: pd.DataFrame,
    policy: Policy,
    db: Path,
    progress: Progress,
) -> tuple[publication.PipelineOutput, float]:
    """Run one pipeline up to (not including) publication."""
    started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    summary = RunSummary(pipeline=spec.name, input_file=input_path.name)
    tmpdir, owner_fd = make_run_dir(spec.name)
    hashed: dict = {}
    hasher = threading.Thread(target=_sha256, args=(input_path, hashed), daemon=True) if input_path.is_file() else None
    try:
        if hasher:
            hasher.start()
        con = _connect(tmpdir)
        try:
            checkpoint(f"{spec.name}:start")
            progress(f"{spec.name}: reading and checking {input_path.name}")
            reference_cache.install_lookups(con, pack)
            staging.register_helpers(con, key)
            code_lists = {name: load_code_list(path) for name, path in spec.code_lists.items()}
            opened = open_extract(con, input_path, spec.schema)
            staged = staging.stage(con, spec, opened, code_lists)
            checkpoint(f"{spec.name}:staged")
            summary.rows_read = staged.rows_read
            summary.rows_rejected = staged.rejected
            summary.reject_examples = staged.reject_examples
            summary.rows_excluded = staged.excluded
            summary.persons_not_countable = _persons_not_countable(con, spec)
            first, last, complete_from, complete_to = staging.coverage(con, spec)
            if first is None:
                raise OutcomesError(f"{input_path}: no usable rows with a location in the reference area; nothing to publish")
            extract_date = staging.extract_date(con)
            progress(f"{spec.name}: aggregating {staged.accepted:,} records into {len(spec.tables)} tables")
            draft = cubes.build_release(con, spec, areas, members, first, last, complete_from, complete_to, extract_date)
            checkpoint(f"{spec.name}:cubes")
        except (duckdb.OutOfMemoryException, duckdb.IOException) as exc:
            if not staging.out_of_resources(exc, input_path):
                raise
            raise resource_failure(exc, input_path, tmpdir) from None
        finally:
            con.close()
        policy_for = policy
        progress(f"{spec.name}: disclosure control ({policy_for.name})")
        t0 = time.perf_counter()
        previous = publication.previous_tables(db, spec.name)
        protected = gate.protect(draft, policy_for, previous=previous or None, progress=lambda s: progress(f"{spec.name}: {s}"))
        gate_seconds = time.perf_counter() - t0
        checkpoint(f"{spec.name}:gated")
        summary.tables_published = len(protected.tables)
        summary.cells_published = sum(len(df) for df in protected.tables.values())
        summary.cells_suppressed = sum(int(df["count"].isna().sum()) for df in protected.tables.values())
        summary.gate_seconds = gate_seconds
        if hasher:
            hasher.join()
        summary.input_sha256 = hashed.get("sha256", "")
        rows = catalogue_rows(spec, protected, policy_for, draft)
        finished = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        return publication.PipelineOutput(protected, summary, rows, started, finished, policy_for.name), gate_seconds
    finally:
        remove_run_dir(tmpdir, owner_fd)


def _persons_not_countable(con: duckdb.DuckDBPyConnection, spec: PipelineSpec) -> int:
    person_measures = [m for m in spec.measures if m.distinct_persons]
    if not person_measures:
        return 0
    where = " OR ".join(f"({m.where})" for m in person_measures)
    return con.execute(
        f"SELECT count(*) FROM staged WHERE reject_reason IS NULL AND location_status = 'ok' "
        f"AND person_id IS NULL AND ({where})"
    ).fetchall()[0][0]


def catalogue_rows(spec: PipelineSpec, protected, policy: Policy, draft) -> list[dict]:
    gov = spec.governance
    code_list_note = "; ".join(
        load_code_list(p).citation() for p in spec.code_lists.values()
    )
    rows = []
    for t in draft.tables:
        m = t.measure
        notes = [f"extract date {draft.extract_date}"]
        if code_list_note:
            notes.append(f"definition: {code_list_note}")
        if m.distinct_persons:
            notes.append("distinct persons: each counted once per period, where their first counted record falls; "
                         "do not add across periods")
        if not policy.secondary_suppression:
            notes.append("disclosure control: primary suppression and rounding only; secondary suppression and "
                         "the LP audit were not run for this release (see `outcomes audit`)")
        if t.data["provisional"].any():
            notes.append("periods marked provisional are incomplete (data still arriving or not wholly covered by the extract)")
        rows.append({
            "table_name": t.name,
            "pipeline": spec.name,
            "measure": m.name,
            "title": t.spec.title or m.title,
            "description": (t.spec.description or m.description),
            "unit": m.unit,
            "dimensions": t.dimensions,
            "source": gov.source,
            "coverage": gov.coverage,
            "data_controller": gov.data_controller,
            "legal_basis": gov.legal_basis,
            "dsa_reference": gov.dsa_reference,
            "purpose": gov.purpose,
            "policy": policy.to_json(),
            "additive_over": t.additive_over,
            "polarity": m.polarity,
            "denominator": m.denominator,
            "subset_of": m.subset_of,
            "area_levels": list(t.spec.area_levels),
            "period_kind": t.spec.period,
            "kind": "count",
            "notes": "; ".join(notes),
        })
    return rows


def run_pipelines(
    specs: list[PipelineSpec],
    *,
    input_path: Path | None = None,
    db: Path | None = None,
    policy_name: str | None = None,
    demo: bool = False,
    reference_dir: Path | None = None,
    wait_seconds: float = 0.0,
    max_reject_fraction: float | None = None,
    secondary: bool | None = None,
    progress: Progress = lambda s: None,
) -> RunResult:
    """Run ``specs`` and publish one release. Raises ``OutcomesError`` on failure,
    leaving the current publication untouched."""
    t_start = time.perf_counter()
    db = Path(db or default_db())
    if max_reject_fraction is not None:
        specs = [dataclasses.replace(s, max_reject_fraction=max_reject_fraction) for s in specs]
    if input_path is not None and len(specs) != 1:
        raise OutcomesError("--input can only be given when running a single named pipeline")
    inputs = {s.name: (Path(input_path) if input_path else samples_dir() / s.default_input) for s in specs}
    for name, path in inputs.items():
        if not path.exists():
            hint = " (run `outcomes samples` to generate the demo extracts)" if input_path is None else ""
            raise OutcomesError(f"input for pipeline {name} not found: {path}{hint}")
    synthetic = input_path is None and (samples_dir() / SYNTHETIC_MARKER).exists()
    if synthetic and not demo:
        progress("inputs are the synthetic demo samples: using the DEMO-ONLY pseudonymisation key")
    key = load_key(demo or synthetic)
    pack = ReferencePack.locate(reference_dir)
    progress("loading reference geography and populations")
    areas, members, pop = load_geography(pack, catchments_path())
    needs_catchment = any("catchment" in t.area_levels for s in specs for t in s.tables)
    if needs_catchment and not (areas["area_level"] == "catchment").any():
        raise OutcomesError(
            f"catchment file not found at {catchments_path()}: run `outcomes samples` (it writes a demo one) "
            "or set OUTCOMES_CATCHMENTS to a CSV of lsoa_code, catchment_code, catchment_name"
        )
    result = RunResult(release_id="", db=db)
    with publication.publication_lock(db, wait_seconds):
        checkpoint("locked")
        outputs = []
        for spec in specs:
            policy = load_policy(policy_name or spec.policy)
            wanted = secondary if secondary is not None else spec.secondary_suppression
            if wanted is not None and wanted != policy.secondary_suppression:
                policy = dataclasses.replace(policy, secondary_suppression=wanted)
            out, gate_s = run_one(spec, inputs[spec.name], key, pack, areas, members, policy, db, progress)
            outputs.append(out)
            result.summaries.append(out.summary)
            result.gate_seconds += gate_s
        progress("publishing the release")
        reference = publication.ReferenceTables(
            areas=areas, area_members=members, population=pop,
            population_notes="Where a year has no estimate the nearest earlier one is used (see the note column).",
            interventions=interventions_table(),
        )
        result.release_id = publication.write_release(db, outputs, reference)
        checkpoint("published")
    result.seconds = time.perf_counter() - t_start
    return result
