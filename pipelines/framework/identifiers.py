"""NHS Number checking and keyed pseudonyms, as SQL over DuckDB columns.

Why SQL: a pipeline reads millions of rows; doing these per row in Python
would dominate the run. The pseudonym is HMAC-SHA256 (RFC 2104) of the
normalised NHS Number under a secret key, computed with DuckDB's ``sha256``
on BLOBs: ``sha256(K xor opad || sha256(K xor ipad || m))``. A test checks it
equals Python's ``hmac`` for the same key.

Key custody: the key comes from ``OUTCOMES_PSEUDONYM_KEY`` (hex or text) or
the file named by ``OUTCOMES_PSEUDONYM_KEY_FILE``. A demo run (``--demo``,
used by ``make demo`` and the tests) uses a fixed key labelled demo-only;
any other run refuses to start without a key. The key never leaves process
memory: it is not logged, not published and not part of any message.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from .errors import OutcomesError

DEMO_KEY = b"DEMO-ONLY-outcomes-pseudonym-key-not-for-real-data"
BLOCK = 64  # SHA-256 block size in bytes


class MissingKeyError(OutcomesError):
    pass


def load_key(demo: bool) -> bytes:
    """Return the pseudonymisation key, or refuse to run without one."""
    value = os.environ.get("OUTCOMES_PSEUDONYM_KEY")
    if value:
        return value.encode("utf-8")
    key_file = os.environ.get("OUTCOMES_PSEUDONYM_KEY_FILE")
    if key_file:
        path = Path(key_file)
        if not path.is_file():
            raise MissingKeyError(f"pseudonymisation key file {path} not found (OUTCOMES_PSEUDONYM_KEY_FILE)")
        data = path.read_bytes().strip()
        if len(data) < 16:
            raise MissingKeyError(f"pseudonymisation key file {path} holds fewer than 16 bytes")
        return data
    if demo:
        return DEMO_KEY
    raise MissingKeyError(
        "no pseudonymisation key: set OUTCOMES_PSEUDONYM_KEY or OUTCOMES_PSEUDONYM_KEY_FILE "
        "(see README, 'Key custody'), or pass --demo for synthetic sample data only"
    )


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def _blob_literal(data: bytes) -> str:
    return "'" + "".join(f"\\x{b:02X}" for b in data) + "'::BLOB"


def pseudonym_macro_sql(key: bytes, name: str = "pseudonym") -> str:
    """SQL creating a macro ``name(text)`` = hex HMAC-SHA256(key, text)."""
    ipad, opad = _pads(key)
    return (
        f"CREATE OR REPLACE TEMP MACRO {name}(m) AS "
        f"CASE WHEN m IS NULL THEN NULL ELSE sha256({_blob_literal(opad)} || "
        f"unhex(sha256({_blob_literal(ipad)} || encode(m)))) END"
    )


def pseudonym_python(key: bytes, text: str) -> str:
    """Reference implementation used by tests."""
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def normalise_nhs_number_sql(expr: str) -> str:
    """Remove spaces and hyphens; the result is checked by ``nhs_number_valid_sql``."""
    return f"regexp_replace(coalesce({expr}, ''), '[\\s-]', '', 'g')"


def nhs_number_valid_sql(normalised: str) -> str:
    """Modulus 11 check (NHS Data Dictionary): weights 10..2 on the first nine
    digits; check = 11 - (sum mod 11), 11 -> 0, 10 -> invalid.

    Written with few SQL operations (the weighted sum is one dot product of
    the digits): it runs on every row that may count a person, and there
    DuckDB's cost grows with the number of operations in the expression (one
    term per digit cost about as much as the rest of the person columns)."""
    digits = f"TRY_CAST(string_split(substr({normalised}, 1, 9), '') AS DOUBLE[])"
    weights = "[" + ", ".join(f"{w}.0" for w in range(10, 1, -1)) + "]"
    total = f"CAST(list_dot_product({digits}, {weights}) AS INTEGER)"
    # CASE evaluates its THEN branch only for ten-digit values
    return (
        f"CASE WHEN regexp_full_match({normalised}, '[0-9]{{10}}') "
        f"THEN (11 - {total} % 11) % 11 = TRY_CAST(substr({normalised}, 10, 1) AS INTEGER) ELSE false END"
    )


def nhs_number_valid(number: str) -> bool:
    """Python version of the Modulus 11 check, for tests and the generator."""
    digits = "".join(ch for ch in number if not ch.isspace() and ch != "-")
    if len(digits) != 10 or not digits.isdigit():
        return False
    total = sum(int(d) * (10 - i) for i, d in enumerate(digits[:9]))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])
