"""Shared machinery of the synthetic extract generators.

Everything is vectorised (numpy / pyarrow compute); no Python loop runs over
rows. Random streams are derived from ``(seed, stream name)`` so that each
generator, and each part of it, is reproducible on its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .reference import BAND_LOW, Reference

PERIOD_START = date(2021, 4, 1)
PERIOD_END = date(2024, 3, 31)  # inclusive
EXTRACT_DATE = date(2024, 3, 31)
N_YEARS = 3  # financial years 2021/22, 2022/23, 2023/24
EPOCH = np.datetime64("1970-01-01", "D")
START_DAY = int((np.datetime64(PERIOD_START, "D") - EPOCH).astype(int))
N_DAYS = (PERIOD_END - PERIOD_START).days + 1
CHUNK_ROWS = 1_000_000

CODELIST_PATH = Path(__file__).resolve().parents[1] / "definitions" / "codelists" / "alcohol_ae.csv"

# residence groups
TRAFFORD, OTHER_GM, OUTSIDE = 0, 1, 2


def rng_for(seed: int, *stream: object) -> np.random.Generator:
    """A generator for one named stream of one seed (stable across runs and platforms)."""
    words = [int(seed) & 0xFFFFFFFF]
    for part in stream:
        digest = hashlib.sha256(str(part).encode()).digest()
        words.append(int.from_bytes(digest[:4], "little"))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))


# ---------------------------------------------------------------- NHS numbers

def nhs_check_digit(first9: np.ndarray) -> np.ndarray:
    """Modulus 11 check digit for 9-digit integers; 10 means "no valid number"."""
    rest = np.array(first9, dtype=np.int64, copy=True)
    total = np.zeros_like(rest)
    for weight in range(2, 11):  # last digit has weight 2, first weight 10
        total += (rest % 10) * weight
        rest //= 10
    check = 11 - total % 11
    return np.where(check == 11, 0, check)


def nhs_number_is_valid(value: str) -> bool:
    """Modulus 11 check of one NHS number (spaces allowed, e.g. "943 476 5919")."""
    digits = str(value).replace(" ", "")
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return False
    check = 11 - sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1))) % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def synthetic_nhs_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct valid NHS numbers (int64), all starting with 9.

    Numbers beginning with 9 are not issued to patients in England, so a
    synthetic number cannot be a real person's.
    """
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        need = n - out.size
        cand = 900_000_000 + rng.integers(0, 100_000_000, size=int(need * 1.3) + 64, dtype=np.int64)
        check = nhs_check_digit(cand)
        cand = cand[check != 10] * 10 + check[check != 10]
        both = np.concatenate([out, cand])
        _, first = np.unique(both, return_index=True)
        out = both[np.sort(first)][:n]
    return out


def nhs_number_strings(
    rng: np.random.Generator, numbers: np.ndarray, *, blank=0.03, invalid=0.01, spaced=0.10
) -> pa.Array:
    """Render NHS numbers as a partner sends them: some blank, some mistyped, some spaced."""
    n = numbers.size
    u = rng.random(n)
    bad = (u >= blank) & (u < blank + invalid)
    # change the check digit to any other digit: the Mod 11 check then fails
    check = numbers % 10
    wrong = (check + rng.integers(1, 10, size=n)) % 10
    values = np.where(bad, numbers - check + wrong, numbers)
    text = pc.utf8_lpad(pc.cast(pa.array(values), pa.string()), 10, "0")
    spaced_text = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(text, 0, 3),
        pc.utf8_slice_codeunits(text, 3, 6),
        pc.utf8_slice_codeunits(text, 6, 10),
        " ",
    )
    is_spaced = rng.random(n) < spaced
    text = pc.if_else(pa.array(is_spaced), spaced_text, text)
    return pc.if_else(pa.array(u < blank), pa.scalar(None, pa.string()), text)


# -------------------------------------------------------------- arrow helpers


def take_strings(values, idx: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """``values[idx]`` as an arrow string array, null where ``null`` (or idx < 0)."""
    dictionary = pa.array(np.asarray(values, dtype=str), type=pa.string())
    idx = np.asarray(idx)
    mask = idx < 0 if null is None else (np.asarray(null) | (idx < 0))
    indices = pa.array(np.where(mask, 0, idx).astype(np.int32), mask=mask)
    return pc.take(dictionary, indices)


def replace_at(arr: pa.Array, rows: np.ndarray, values: np.ndarray) -> pa.Array:
    """``arr`` with ``arr[rows] = values`` (strings)."""
    rows = np.asarray(rows)
    if rows.size == 0:
        return arr
    order = np.argsort(rows, kind="stable")
    mask = np.zeros(len(arr), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(arr, pa.array(mask), pa.array(np.asarray(values, dtype=str)[order], type=pa.string()))


def day_strings(days: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Days since 1970-01-01 as YYYY-MM-DD strings."""
    arr = pa.array(np.asarray(days, dtype=np.int32), type=pa.date32(), mask=null)
    return pc.cast(arr, pa.string())


def write_csv_chunk(table: pa.Table, path: Path, *, first: bool) -> None:
    """Append a chunk to a CSV file (header with the first chunk). Blank = empty field."""
    with open(path, "wb" if first else "ab") as fh:
        if first:
            fh.write((",".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, quoting_style="none"))


def chunk_bounds(n: int, size: int = CHUNK_ROWS) -> list[tuple[int, int]]:
    return [(i, min(i + size, n)) for i in range(0, n, size)] or [(0, 0)]


# --------------------------------------------------------- residence sampling


def lsoa_multiplier(seed: int, ref: Reference, sigma: float = 0.4) -> np.ndarray:
    """Fixed per-Trafford-LSOA rate multiplier (lognormal, mean 1), seeded."""
    rng = rng_for(seed, "lsoa-multiplier")
    z = rng.standard_normal(len(ref.trafford_lsoa))
    return np.exp(sigma * z - sigma**2 / 2)


def weighted_index(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws of indices with probability proportional to ``weights``."""
    cdf = np.cumsum(np.asarray(weights, dtype=float))
    cdf /= cdf[-1]
    idx = np.searchsorted(cdf, rng.random(n), side="right")
    return np.minimum(idx, len(cdf) - 1)


def ages_in_bands(rng: np.random.Generator, band: np.ndarray) -> np.ndarray:
    """Single-year ages uniformly within 5-year bands (90+ spread over 90-99, falling)."""
    low = BAND_LOW[band]
    age = low + rng.integers(0, 5, size=band.size)
    top = band == len(BAND_LOW) - 1
    age[top] = 90 + np.minimum(rng.geometric(0.3, size=int(top.sum())) - 1, 14)
    return age


@dataclass
class Residents:
    """A set of generated people: where they live, their sex and age."""

    group: np.ndarray  # TRAFFORD / OTHER_GM / OUTSIDE
    sex: np.ndarray  # 0 male, 1 female
    age: np.ndarray  # years, at the reference event
    trafford_lsoa: np.ndarray  # index into ref.trafford_lsoa, -1 if not Trafford
    postcode: np.ndarray  # index into ref.postcode, -1 if not Trafford
    lsoa_text_idx: np.ndarray  # index into lsoa_values(ref), -1 when no code known


def lsoa_values(ref: Reference) -> np.ndarray:
    """All LSOA codes a row can carry: Trafford, rest of GM, outside GM."""
    return np.concatenate([ref.trafford_lsoa, ref.other_lsoa, ref.outside_lsoa])


def sample_residents(
    rng: np.random.Generator,
    ref: Reference,
    n: int,
    shares: tuple[float, float, float],
    *,
    trafford_cell_weights: np.ndarray,
    other_cell_weights: np.ndarray,
    england_cell_weights: np.ndarray,
    outside_with_code: float = 0.65,
) -> Residents:
    """Draw ``n`` residents.

    ``trafford_cell_weights`` has the shape of ``ref.lsoa_pop`` (LSOA x sex x
    age) and gives the relative chance of each cell among Trafford residents;
    ``other_cell_weights`` (LA x sex x band) and ``england_cell_weights``
    (sex x band) do the same for the rest of GM and for people from outside.
    """
    group = weighted_index(rng, np.asarray(shares), n).astype(np.int8)
    sex = np.zeros(n, dtype=np.int8)
    age = np.zeros(n, dtype=np.int16)
    t_lsoa = np.full(n, -1, dtype=np.int32)
    postcode = np.full(n, -1, dtype=np.int32)
    lsoa_idx = np.full(n, -1, dtype=np.int32)
    n_traf = len(ref.trafford_lsoa)
    n_other = len(ref.other_lsoa)

    m = group == TRAFFORD
    k = int(m.sum())
    cells = weighted_index(rng, trafford_cell_weights.ravel(), k)
    li, si, ai = np.unravel_index(cells, trafford_cell_weights.shape)
    t_lsoa[m], sex[m], age[m] = li, si, ai
    age[m] = np.where(ai == 90, 90 + np.minimum(rng.geometric(0.3, size=k) - 1, 14), ai)
    postcode[m] = ref.lsoa_pc_start[li] + (rng.random(k) * ref.lsoa_pc_count[li]).astype(np.int64)
    lsoa_idx[m] = li

    m = group == OTHER_GM
    k = int(m.sum())
    cells = weighted_index(rng, other_cell_weights.ravel(), k)
    la, si, bi = np.unravel_index(cells, other_cell_weights.shape)
    sex[m], age[m] = si, ages_in_bands(rng, bi)
    within = (rng.random(k) * ref.other_la_count[la]).astype(np.int64)
    lsoa_idx[m] = n_traf + ref.other_la_start[la] + within

    m = group == OUTSIDE
    k = int(m.sum())
    cells = weighted_index(rng, england_cell_weights.ravel(), k)
    si, bi = np.unravel_index(cells, england_cell_weights.shape)
    sex[m], age[m] = si, ages_in_bands(rng, bi)
    code = n_traf + n_other + rng.integers(0, len(ref.outside_lsoa), size=k)
    lsoa_idx[m] = np.where(rng.random(k) < outside_with_code, code, -1)
    return Residents(group, sex, age, t_lsoa, postcode, lsoa_idx)


def address_columns(
    rng: np.random.Generator,
    ref: Reference,
    group: np.ndarray,
    postcode: np.ndarray,
    lsoa_idx: np.ndarray,
    *,
    postcode_blank: float = 0.05,
    lsoa_derived: float = 0.70,
) -> tuple[np.ndarray, np.ndarray]:
    """Row-level postcode / LSOA indices as recorded (-1 = blank).

    Trafford: postcode (blank for ``postcode_blank``), LSOA derived for
    ``lsoa_derived`` of rows. Rest of GM: LSOA only. Outside GM: LSOA code or
    nothing, never a postcode.
    """
    n = group.size
    traf = group == TRAFFORD
    pc_out = np.where(traf & (rng.random(n) >= postcode_blank), postcode, -1)
    keep_lsoa = np.where(traf, rng.random(n) < lsoa_derived, True)
    ls_out = np.where(keep_lsoa, lsoa_idx, -1)
    return pc_out.astype(np.int32), ls_out.astype(np.int32)


def read_codelist(path: Path = CODELIST_PATH) -> dict[str, np.ndarray]:
    """Codes of the alcohol code list by category (``involvement``, ``diagnosis``)."""
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(row["category"].strip(), []).append(row["code"].strip())
    for needed in ("involvement", "diagnosis"):
        if not out.get(needed):
            raise ValueError(f"{path}: no codes of category {needed!r}")
    return {k: np.array(v) for k, v in out.items()}


def progress_bar(enabled: bool):
    """A rich progress bar, or a do-nothing stand-in."""
    if enabled:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        return Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
        )

    class _Null:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def add_task(self, *a, **k):
            return 0

        def advance(self, *a, **k):
            pass

        def update(self, *a, **k):
            pass

    return _Null()
