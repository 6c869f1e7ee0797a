"""NHS Number check and keyed pseudonyms (SQL and Python agree)."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.framework.identifiers import (
    DEMO_KEY,
    MissingKeyError,
    load_key,
    nhs_number_valid,
    nhs_number_valid_sql,
    normalise_nhs_number_sql,
    pseudonym_macro_sql,
    pseudonym_python,
)

# NHS Data Dictionary worked example: 943 476 5919 is valid (check digit 9).
VALID = ["9434765919", "943 476 5919", "4010232137"]
INVALID = ["9434765918", "943476591", "94347659190", "abcdefghij", "", "1000000010"]


@pytest.mark.parametrize("number", VALID)
def test_valid_numbers(number):
    assert nhs_number_valid(number)


@pytest.mark.parametrize("number", INVALID)
def test_invalid_numbers(number):
    assert not nhs_number_valid(number)


def test_sql_check_agrees_with_python_on_every_check_digit():
    con = duckdb.connect()
    numbers = [f"{p:09d}{d}" for p in (123456789, 401023213, 943476591, 987654321, 100000001) for d in range(10)]
    numbers += VALID + INVALID + [None]
    norm = normalise_nhs_number_sql("n")
    rows = con.execute(
        f"SELECT n, {nhs_number_valid_sql(norm)} FROM unnest(?) AS t(n)", [numbers]).fetchall()
    for n, ok in rows:
        assert bool(ok) == (n is not None and nhs_number_valid(n)), n
    # exactly one check digit (or none, when it would be 10) is valid for each prefix
    for p in (123456789, 401023213, 943476591):
        assert sum(nhs_number_valid(f"{p:09d}{d}") for d in range(10)) <= 1


@pytest.mark.parametrize("key", [b"k", b"a-much-longer-secret-key-" * 4, DEMO_KEY])
def test_sql_hmac_equals_python_hmac(key):
    con = duckdb.connect()
    con.execute(pseudonym_macro_sql(key))
    for text in ["9434765919", "4010232137", "x"]:
        assert con.execute("SELECT pseudonym(?)", [text]).fetchone()[0] == pseudonym_python(key, text)
    assert con.execute("SELECT pseudonym(NULL)").fetchone()[0] is None


def test_different_keys_give_unlinkable_pseudonyms():
    assert pseudonym_python(b"key-one", "9434765919") != pseudonym_python(b"key-two", "9434765919")


def test_key_is_required_outside_the_demo(monkeypatch, tmp_path):
    monkeypatch.delenv("OUTCOMES_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("OUTCOMES_PSEUDONYM_KEY_FILE", raising=False)
    with pytest.raises(MissingKeyError, match="no pseudonymisation key"):
        load_key(demo=False)
    assert load_key(demo=True) == DEMO_KEY
    monkeypatch.setenv("OUTCOMES_PSEUDONYM_KEY", "from-env")
    assert load_key(demo=False) == b"from-env"
    monkeypatch.delenv("OUTCOMES_PSEUDONYM_KEY")
    key_file = tmp_path / "key"
    key_file.write_bytes(b"0123456789abcdef0123\n")
    monkeypatch.setenv("OUTCOMES_PSEUDONYM_KEY_FILE", str(key_file))
    assert load_key(demo=False) == b"0123456789abcdef0123"
    key_file.write_bytes(b"short")
    with pytest.raises(MissingKeyError, match="fewer than 16 bytes"):
        load_key(demo=False)
